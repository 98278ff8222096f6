/* select_client.c: "Event-driven programming", its closing remark: reading from several
 * sources at once, like the keyboard and the network, is what Phobos cannot do. C can: one
 * select() waits on standard input and on the socket. Each line you type goes to the server,
 * and what the server sends is printed as it arrives. Ctrl-D (end of input) ends our side;
 * the program ends once the server has ended too.
 *
 *   Terminal 1: ./bin/hardened/select_server -e   Terminals 2 and more:
 * ./bin/hardened/select_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "plumbing.h"

#define DEFAULT_PORT "2525"
enum { BUFFER_SIZE = 4096 };

#define USAGE                                                                              \
    "usage: select_client [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-t SECONDS]\n"          \
    "  -4, -6      IPv4 (default) or IPv6\n"                                               \
    "  -u PATH     connect to the UNIX stream socket at PATH instead of IP\n"              \
    "  -H HOST     the server's host (default localhost)\n"                                \
    "  -p PORT     the server's port (default " DEFAULT_PORT ")\n"                         \
    "  -t SECONDS  give up when nothing happens for this long (default 0 = never)\n"       \
    "Sends standard input, a line at a time from a terminal, and prints what the server\n" \
    "sends; ends once both input and the server have ended.\n"

static const struct command_line COMMAND_LINE = {
    .letters = "t:",
    .usage = USAGE,
    .role = CLIENT,
    .defaults = {.family = AF_INET, .host = "localhost", .port = DEFAULT_PORT}};

static void print_from_server(const char *data, size_t length);
static void say_on_a_terminal(const char *line);

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    struct options options = parse_options(argc, argv, &COMMAND_LINE);
    stop_on_signal(); /* a signal mid-stream aborts the connection: see plumbing.h */

    /* Connect as tcp_client does. Then make the socket non-blocking: select says that a
     * send will not block, not that it takes all we give it, so send takes what it can. */
    int sock = connect_to_server(&options);
    if (sock >= FD_SETSIZE) /* FD_SET on it would write past the fd_set */
        fail("socket", "descriptor too large for select");
    make_nonblocking(sock);
    say_on_a_terminal("connected: each line you type is sent, Ctrl-D ends");

    /* -t: give up once nothing has happened for that long, a deadline on a clock that only goes
     * forward. After a stop (Ctrl-Z) and fg, the kernel would restart select with the time it
     * had left when stopped: interrupt_on_continue makes select return EINTR instead, and we
     * count again from the deadline. */
    interrupt_on_continue();
    long long deadline_ms = monotonic_ms() + options.timeout * 1000;
    char outgoing[BUFFER_SIZE]; /* read from stdin, not sent yet */
    size_t outgoing_length = 0;
    int input_ended = 0, server_ended = 0;
    while (!input_ended || !server_ended) {
        /* select() changes the sets, so fill them on every turn: the socket for what the
         * server sends; stdin only once all we read before is sent; the socket for room
         * to send while something waits. */
        fd_set read_set, write_set;
        FD_ZERO(&read_set);
        FD_ZERO(&write_set);
        if (!server_ended)
            FD_SET(sock, &read_set);
        if (!input_ended && outgoing_length == 0)
            FD_SET(STDIN_FILENO, &read_set);
        if (outgoing_length > 0)
            FD_SET(sock, &write_set);

        /* Wait for whichever comes first: the keyboard, the network, or room to send. */
        long long left_ms = deadline_ms - monotonic_ms();
        if (options.timeout > 0 && left_ms <= 0) {
            fprintf(stderr, "%s: nothing happened for %ld s\n", program_name, options.timeout);
            exit(EXIT_FAILURE);
        }
        struct timeval timeout = {.tv_sec = (time_t)(left_ms / 1000),
                                  .tv_usec = (suseconds_t)(left_ms % 1000) * 1000};
        int ready =
            select(sock + 1, &read_set, &write_set, NULL, options.timeout > 0 ? &timeout : NULL);
        if (ready == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: wait again */
        if (ready == -1)
            die("select");
        if (ready == 0)
            continue;                                          /* the deadline: said above */
        deadline_ms = monotonic_ms() + options.timeout * 1000; /* something happened */

        /* The server sent something: print it as it comes, in whatever pieces. recv
         * returns 0 once the server has shut down its sending side. */
        if (FD_ISSET(sock, &read_set)) {
            char buffer[BUFFER_SIZE];
            ssize_t bytes_read = recv(sock, buffer, sizeof buffer, 0);
            if (bytes_read == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                die("recv");
            if (bytes_read > 0)
                print_from_server(buffer, (size_t)bytes_read);
            if (bytes_read == 0) {
                server_ended = 1;
                if (!input_ended)
                    say_on_a_terminal("the server has finished sending; Ctrl-D ends our side");
            }
        }

        /* A line typed (or a piece of a file or pipe): keep it until it is sent. At the end
         * of input, shut down our sending side: the server's recv returns 0. */
        if (FD_ISSET(STDIN_FILENO, &read_set)) {
            ssize_t bytes_read = read(STDIN_FILENO, outgoing, sizeof outgoing);
            if (bytes_read == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                die("stdin");
            if (bytes_read > 0)
                outgoing_length = (size_t)bytes_read;
            if (bytes_read == 0) {
                input_ended = 1;
                if (shutdown(sock, SHUT_WR) == -1)
                    die("shutdown");
            }
        }

        /* Send what the socket takes now; a partial send leaves the rest for the next turn. */
        if (outgoing_length > 0) {
            ssize_t bytes_sent = send(sock, outgoing, outgoing_length, 0);
            if (bytes_sent == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                die("send");
            if (bytes_sent > 0) {
                outgoing_length -= (size_t)bytes_sent;
                memmove(outgoing, outgoing + bytes_sent, outgoing_length);
            }
        }
    }

    close_connection(sock);
    return EXIT_SUCCESS;
}

/* Whether the server's last byte on stdout ended a line. */
static int line_is_open;

/* What the server sent, on stdout at once: it need not end with a newline. */
static void print_from_server(const char *data, size_t length) {
    print_received(data, length);
    if (fflush(stdout) == EOF)
        die("stdout");
    line_is_open = data[length - 1] != '\n';
}

/* A word for the person at the keyboard, on stderr, on a line of its own; nothing when input
 * comes from a file or a pipe, where nobody reads it. */
static void say_on_a_terminal(const char *line) {
    if (!isatty(STDIN_FILENO))
        return;
    if (line_is_open && isatty(STDOUT_FILENO)) /* "Hello!" and no newline: end the line */
        print_from_server("\n", 1);
    fprintf(stderr, "%s: %s\n", program_name, line);
}
