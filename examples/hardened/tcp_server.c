/* tcp_server.c: "Communication by stream", the server (start it first).
 * Accepts one client, sends it "Hello!", then prints what the client sends back.
 *
 *   Terminal 1: ./bin/hardened/tcp_server   Terminal 2: ./bin/hardened/tcp_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "plumbing.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!"
enum { BUFFER_SIZE = 65536 };

#define USAGE                                                                          \
    "usage: tcp_server [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n" \
    "                  [-t SECONDS]\n"                                                 \
    "  -4, -6     IPv4 (default) or IPv6\n"                                            \
    "  -u PATH    a UNIX stream socket at PATH instead of IP\n"                        \
    "  -H HOST    address to listen on (default localhost)\n"                          \
    "  -p PORT    port to listen on (default " DEFAULT_PORT "; 0 picks a free one)\n"  \
    "  -m TEXT    greeting to send (default \"Hello!\"; - sends all of stdin)\n"       \
    "  -n COUNT   clients to serve, one after another (default 1; 0 = forever)\n"      \
    "  -t SECONDS drop a client that sends or takes nothing this long (default 0 = never)\n"

static const struct command_line COMMAND_LINE = {.letters = "m:n:t:",
                                                 .usage = USAGE,
                                                 .role = SERVER,
                                                 .defaults = {.family = AF_INET,
                                                              .host = "localhost",
                                                              .port = DEFAULT_PORT,
                                                              .message = GREETING,
                                                              .count = 1}};

static void drop_client(int client, const char *what, long timeout);
static long dropped_count; /* clients that failed: the exit status says if any did */

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    struct options options = parse_options(argc, argv, &COMMAND_LINE);
    if (strcmp(options.message, "-") == 0 && options.count != 1)
        usage_error("-m - reads stdin once, so it needs -n 1");
    stop_on_signal();
    /* We print what clients send: a stdout that cannot take it must fail now, before a client
     * believes its reply arrived (set_up_program put /dev/null, read-only, in a closed one). */
    if ((fcntl(STDOUT_FILENO, F_GETFL) & O_ACCMODE) == O_RDONLY)
        fail("stdout", strerror(EBADF));

    /* A stream socket of the chosen family: TCP over IPv4 or IPv6, or a UNIX stream. */
    int listener = socket(options.family, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");

    /* Allow binding the port again at once after a restart, while the last connection
     * lingers in TIME_WAIT; without it bind fails with EADDRINUSE for a minute or two. */
    int reuse = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt SO_REUSEADDR");

    /* Bind the address clients will connect to. The tutorial listens on every interface;
     * we bind localhost unless -H says otherwise, so a demo is not open to the network.
     * (sockaddr_storage holds an address of any family.) */
    struct sockaddr_storage address;
    socklen_t address_length = make_address(&options, SOCK_STREAM, &address);
    if (options.path != NULL) /* a UNIX address: a file */
        claim_socket_file(options.path);
    if (bind(listener, (struct sockaddr *)&address, address_length) == -1)
        die("bind");
    if (options.path != NULL) /* ours now: removed at exit, and on a signal that stops us */
        own_socket_file(options.path);

    /* Listen: the kernel now completes connections and queues them until we accept them.
     * The tutorial's backlog of 10 is a number for a demo: a burst of clients would overflow
     * it (docs/03-streams.md). SOMAXCONN asks for the longest queue the system allows. */
    if (listen(listener, SOMAXCONN) == -1)
        die("listen");
    print_ready_line(listener, &options);

    for (long served = 0; options.count == 0 || served < options.count; served++) {
        /* Wait for a client. accept returns a new socket for this one connection; the
         * listener stays open for the next. */
        int client;
        RETRY_ON_EINTR(client, accept(listener, NULL, NULL));
        if (client == -1 && (errno == ECONNABORTED || errno == EPROTO)) {
            drop_client(-1, "accept", options.timeout); /* it gave up while it waited */
            continue;
        }
        if (client == -1)
            die("accept");
        track_connection(client); /* a signal before the end aborts it: see plumbing.h */

        /* -t: give up on a client that takes nothing, or sends nothing, for that long ("About
         * timeouts"), so that one idle client cannot hold up all those that wait behind it. */
        struct timeval timeout = {.tv_sec = options.timeout};
        if (setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) == -1 ||
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == -1)
            die("setsockopt");

        /* Send the greeting. send may take only part of what we give it: advance past what
         * went and send the rest, until every byte is gone. */
        struct message greeting = {.text = options.message};
        const char *piece;
        size_t length;
        int send_error = 0;
        while (send_error == 0 && (length = next_piece(&greeting, client, &piece)) > 0) {
            while (length > 0) {
                ssize_t bytes_sent;
                RETRY_ON_EINTR(bytes_sent, send(client, piece, length, 0));
                if (bytes_sent == -1) {
                    send_error = errno;
                    break;
                }
                piece += bytes_sent;
                length -= (size_t)bytes_sent;
            }
        }
        /* A client that sends and closes without reading makes our send fail (EPIPE, or
         * ECONNRESET): what it sent still waits for us, so read it before we say so. Any other
         * failure (the -t timeout) ends this client at once. */
        if (send_error != 0 && send_error != EPIPE && send_error != ECONNRESET) {
            errno = send_error;
            drop_client(client, "send", options.timeout);
            continue; /* the tutorial's `goto accept_another` */
        }

        /* Shut down our sending side only: the client sees the end of our message (its
         * recv returns 0), and we can still receive its reply. */
        if (send_error == 0 && shutdown(client, SHUT_WR) == -1) {
            drop_client(client, "shutdown", options.timeout);
            continue;
        }

        /* Receive the reply: it may come in any number of pieces. Print each as it arrives,
         * until recv returns 0: the client has shut down its side too. */
        printf("Got from client: ");
        char buffer[BUFFER_SIZE];
        ssize_t bytes_read;
        do {
            RETRY_ON_EINTR(bytes_read, recv(client, buffer, sizeof buffer, 0));
            if (bytes_read > 0)
                print_received(buffer, (size_t)bytes_read);
        } while (bytes_read > 0);
        int receive_error = bytes_read == -1 ? errno : 0;
        if (printf("\n") < 0) /* ends the line, also before an error line */
            die("stdout");
        errno = receive_error;
        if (receive_error != 0) {
            drop_client(client, "recv", options.timeout);
            continue;
        }
        if (send_error != 0) { /* it sent all it had, and took nothing: say so, as a failure */
            errno = send_error;
            drop_client(client, "send", options.timeout);
            continue;
        }

        /* Done with this client; the listener waits for the next. */
        close_connection(client);
    }

    close(listener);
    if (fflush(stdout) == EOF)
        die("stdout");
    return dropped_count == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* One client failed (`what` says where; errno, or the -t timeout, why): say so, and abort the
 * connection, so that the client sees a failure too; the server goes on with the next. */
static void drop_client(int client, const char *what, long timeout) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        fprintf(stderr, "%s: %s: nothing for %ld s: client dropped\n", program_name, what, timeout);
    else
        fprintf(stderr, "%s: %s: %s\n", program_name, what, strerror(errno));
    if (client != -1)
        abort_connection(client);
    dropped_count++;
}
