/* udp_receiver.c: "Communication by datagram", the receiving side (start it first).
 * Waits for one datagram, prints it, and answers the sender with "got it!".
 *
 *   Terminal 1: ./bin/hardened/udp_receiver   Terminal 2: ./bin/hardened/udp_sender
 *
 * -6 for IPv6, -u PATH for a UNIX datagram socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "plumbing.h"

#define DEFAULT_PORT "8765"
#define REPLY "got it!"
/* The tutorial's buffer, and the largest UDP payload over IPv4: 65535 bytes less the 8-byte
 * UDP header and the 20-byte IPv4 header. */
enum { BUFFER_SIZE = 1024, MAX_DATAGRAM = 65535 - 8 - 20 };

#define USAGE                                                                            \
    "usage: udp_receiver [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n" \
    "  -4, -6     IPv4 (default) or IPv6\n"                                              \
    "  -u PATH    a UNIX datagram socket at PATH instead of IP\n"                        \
    "  -H HOST    address to bind (default localhost)\n"                                 \
    "  -p PORT    port to bind (default " DEFAULT_PORT "; 0 picks a free one)\n"         \
    "  -m TEXT    reply to send (default \"got it!\"; - reads it from stdin)\n"          \
    "  -n COUNT   datagrams to answer before exiting (default 1; 0 = forever)\n"

static const struct command_line COMMAND_LINE = {.letters = "m:n:",
                                                 .usage = USAGE,
                                                 .role = SERVER,
                                                 .defaults = {.family = AF_INET,
                                                              .host = "localhost",
                                                              .port = DEFAULT_PORT,
                                                              .message = REPLY,
                                                              .count = 1}};

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    struct options options = parse_options(argc, argv, &COMMAND_LINE);
    stop_on_signal();
    static char reply[MAX_DATAGRAM + 1];
    size_t reply_length =
        load_message(options.message, reply, sizeof reply, "message too long for one datagram");

    /* A datagram socket of the chosen family: IPv4, IPv6 or UNIX. */
    int sock = socket(options.family, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Bind to a fixed, known address so that the sender can find us. A datagram socket
     * needs no connection: once bound, it can receive. (sockaddr_storage holds an address
     * of any family; the socket calls take a pointer to the generic struct sockaddr.) */
    struct sockaddr_storage address;
    socklen_t address_length = make_address(&options, SOCK_DGRAM, &address);
    if (options.path != NULL) /* a UNIX address: a file */
        claim_socket_file(options.path);
    if (bind(sock, (struct sockaddr *)&address, address_length) == -1)
        die("bind");
    if (options.path != NULL) /* ours now: removed at exit, and on a signal that stops us */
        own_socket_file(options.path);
    print_ready_line(sock, &options);
    /* Non-blocking: a reply that cannot go out at once fails (EAGAIN) instead of waiting, see
     * below; so we wait for each datagram in poll. */
    make_nonblocking(sock);

    for (long answered = 0; options.count == 0 || answered < options.count; answered++) {
        if (printf("Waiting for data...\n") < 0) /* a broken stdout is said at once */
            die("stdout");

        /* Receive one datagram and the address it came from, as the tutorial's receiveFrom.
         * We use recvmsg, the general form of recvfrom, because it also tells (MSG_TRUNC)
         * when the datagram did not fit: the rest of it is lost. A buffer of size 0 would
         * receive nothing. A signal may interrupt the wait: RETRY_ON_EINTR is the
         * tutorial's `goto try_again`. */
        char buffer[BUFFER_SIZE];
        struct sockaddr_storage sender;
        struct iovec into = {.iov_base = buffer, .iov_len = sizeof buffer};
        struct msghdr datagram = {
            .msg_name = &sender, .msg_namelen = sizeof sender, .msg_iov = &into, .msg_iovlen = 1};
        ssize_t bytes_read = -1;
        while (bytes_read == -1) {
            struct pollfd readable = {.fd = sock, .events = POLLIN};
            if (poll(&readable, 1, -1) == -1 && errno != EINTR)
                die("poll");
            datagram.msg_namelen = sizeof sender;
            bytes_read = recvmsg(sock, &datagram, 0);
            if (bytes_read == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                die("recvmsg");
        }

        /* Zero bytes is an empty datagram, not a closed connection: there is none. */
        printf("Received: ");
        print_received(buffer, (size_t)bytes_read);
        if (printf("\n") < 0)
            die("stdout");
        if (datagram.msg_flags & MSG_TRUNC)
            fprintf(stderr, "%s: datagram truncated: longer than the %d-byte buffer\n",
                    program_name, BUFFER_SIZE);

        /* Answer the address the datagram came from. A datagram is sent whole or not
         * at all, so there is no partial send to loop over. A reply that cannot go out is
         * said and skipped: one peer must not stop the receiver for the others. That
         * includes a UNIX peer that never reads, whose full queue would make sendto wait: the
         * socket is non-blocking, so it fails at once (EAGAIN) instead. (MSG_DONTWAIT would do
         * it for one call, but it is not POSIX.1-2008.) */
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, sendto(sock, reply, reply_length, 0, (struct sockaddr *)&sender,
                                          datagram.msg_namelen));
        if (bytes_sent == -1) /* it has gone, never had an address, or never reads */
            fprintf(stderr, "%s: sendto: %s: reply skipped\n", program_name, strerror(errno));
    }

    close(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}
