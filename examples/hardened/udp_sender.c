/* udp_sender.c: "Communication by datagram", the sending side.
 * Sends "Hello!" to udp_receiver, then waits for its reply and prints it.
 *
 *   Terminal 1: ./bin/hardened/udp_receiver   Terminal 2: ./bin/hardened/udp_sender
 *
 * -6 for IPv6, -u PATH for a UNIX datagram socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "plumbing.h"

#define DEFAULT_PORT "8765"
#define MESSAGE "Hello!"
/* The tutorial's buffer, and the largest UDP payload over IPv4: 65535 bytes less the 8-byte
 * UDP header and the 20-byte IPv4 header. */
enum { BUFFER_SIZE = 1024, MAX_DATAGRAM = 65535 - 8 - 20, DEFAULT_TIMEOUT = 5 };
#define PID_SUFFIX_LENGTH (sizeof ".2147483647" - 1) /* "." and the largest process id */

#define USAGE                                                                            \
    "usage: udp_sender [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-t SECONDS]\n" \
    "  -4, -6      IPv4 (default) or IPv6\n"                                             \
    "  -u PATH     send to the UNIX datagram socket at PATH instead of IP\n"             \
    "  -H HOST     the receiver's host (default localhost)\n"                            \
    "  -p PORT     the receiver's port (default " DEFAULT_PORT ")\n"                     \
    "  -m TEXT     message to send (default \"Hello!\"; - reads it from stdin)\n"        \
    "  -t SECONDS  how long to wait for the reply (default 5; 0 = forever)\n"

static const struct command_line COMMAND_LINE = {.letters = "m:t:",
                                                 .usage = USAGE,
                                                 .role = CLIENT,
                                                 .path_room_needed = PID_SUFFIX_LENGTH,
                                                 .defaults = {.family = AF_INET,
                                                              .host = "localhost",
                                                              .port = DEFAULT_PORT,
                                                              .message = MESSAGE,
                                                              .timeout = DEFAULT_TIMEOUT}};

static socklen_t make_own_address(const struct options *options, struct sockaddr_storage *address);
static void wait_until_ready(int sock, short events, long long deadline_ms, long timeout);

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    struct options options = parse_options(argc, argv, &COMMAND_LINE);
    stop_on_signal();
    static char message[MAX_DATAGRAM + 1];
    size_t message_length =
        load_message(options.message, message, sizeof message, "message too long for one datagram");

    /* A datagram socket of the chosen family: IPv4, IPv6 or UNIX. */
    int sock = socket(options.family, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Bind our own end to any address and any port (the tutorial's ADDR_ANY, PORT_ANY): we
     * only receive replies, and the receiver learns our address from each datagram. */
    static struct sockaddr_storage own_address; /* static: its path outlives main, for exit */
    socklen_t own_length = make_own_address(&options, &own_address);
    const char *own_path =
        options.family == AF_UNIX ? ((struct sockaddr_un *)&own_address)->sun_path : NULL;
    if (bind(sock, (struct sockaddr *)&own_address, own_length) == -1)
        die(own_path != NULL ? own_path : "bind"); /* a file: name it */
    if (own_path != NULL) /* ours now: removed at exit, and on a signal that stops us */
        own_socket_file(own_path);

    /* The tutorial's sendTo names the receiver in each call. We connect the datagram socket to
     * it instead (no handshake: the kernel only notes the address), and then use send: our
     * socket then takes replies from the receiver only (a datagram from anyone else is
     * dropped), and learns of a closed port at once (ECONNREFUSED) instead of waiting. */
    struct sockaddr_storage receiver;
    socklen_t receiver_length = make_address(&options, SOCK_DGRAM, &receiver);
    int connected;
    RETRY_ON_EINTR(connected, connect(sock, (struct sockaddr *)&receiver, receiver_length));
    if (connected == -1)
        die("connect");

    /* A lost datagram, or a receiver that does not answer, is never reported: without a limit
     * ("About timeouts") we would wait for ever. -t is a deadline for sending and receiving both
     * (see wait_until_ready): a timeout per call, as SO_RCVTIMEO gives, would start again
     * each time the call is interrupted. */
    long long deadline_ms = monotonic_ms() + options.timeout * 1000;
    if (printf("Sending data...\n") < 0)
        die("stdout");

    /* One datagram: it goes whole or not at all. */
    wait_until_ready(sock, POLLOUT, deadline_ms, options.timeout);
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent, send(sock, message, message_length, 0));
    if (bytes_sent == -1)
        die("send");

    /* Any socket can both send and receive: wait here for the reply. recvmsg is recvfrom
     * that also tells (MSG_TRUNC) when the datagram was longer than our buffer. */
    wait_until_ready(sock, POLLIN, deadline_ms, options.timeout);
    char buffer[BUFFER_SIZE];
    struct iovec into = {.iov_base = buffer, .iov_len = sizeof buffer};
    struct msghdr datagram = {.msg_iov = &into, .msg_iovlen = 1};
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recvmsg(sock, &datagram, 0));
    if (bytes_read == -1)
        die("recvmsg");

    printf("Got response: ");
    print_received(buffer, (size_t)bytes_read);
    if (printf("\n") < 0)
        die("stdout");
    if (datagram.msg_flags & MSG_TRUNC)
        fprintf(stderr, "%s: datagram truncated: longer than the %d-byte buffer\n", program_name,
                BUFFER_SIZE);

    close(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}

/* Our own address: any address and any port for IP. A UNIX socket has no "any": the reply
 * needs a name to go to, so we take the receiver's path with our process id added. */
static socklen_t make_own_address(const struct options *options, struct sockaddr_storage *address) {
    static char path_with_pid[MAX_PATH_LENGTH + 1];
    memset(address, 0, sizeof *address);
    if (options->family == AF_INET) {
        struct sockaddr_in *ip4 = (struct sockaddr_in *)address;
        ip4->sin_family = AF_INET;
        ip4->sin_addr.s_addr = htonl(INADDR_ANY);
        ip4->sin_port = htons(0);
        return sizeof *ip4;
    }
    if (options->family == AF_INET6) {
        struct sockaddr_in6 *ip6 = (struct sockaddr_in6 *)address;
        ip6->sin6_family = AF_INET6;
        ip6->sin6_addr = in6addr_any;
        ip6->sin6_port = htons(0);
        return sizeof *ip6;
    }
    int length =
        snprintf(path_with_pid, sizeof path_with_pid, "%s.%ld", options->path, (long)getpid());
    if (length < 0 || (size_t)length >= sizeof path_with_pid)
        usage_error("socket path too long to add our process id: %s", options->path);
    struct sockaddr_un *local = (struct sockaddr_un *)address;
    local->sun_family = AF_UNIX;
    strcpy(local->sun_path, path_with_pid);
    return sizeof *local;
}

/* Wait until the socket is ready for `events` (POLLOUT: room to send; POLLIN: a reply, or an
 * error such as ECONNREFUSED), or exit once the deadline of -t has passed (0: no limit).
 * poll waits for what is left of it, so that a signal, or a stop (Ctrl-Z, then fg), does not
 * start the time again. */
static void wait_until_ready(int sock, short events, long long deadline_ms, long timeout) {
    for (;;) {
        long long left_ms = deadline_ms - monotonic_ms();
        if (timeout > 0 && left_ms <= 0) {
            fprintf(stderr, "%s: %s within %ld s — is udp_receiver running?\n", program_name,
                    events == POLLIN ? "no reply" : "could not send", timeout);
            exit(EXIT_FAILURE);
        }
        struct pollfd ready = {.fd = sock, .events = events};
        int result = poll(&ready, 1, timeout > 0 ? (int)left_ms : -1);
        if (result == 1)
            return;
        if (result == -1 && errno != EINTR)
            die("poll");
    }
}
