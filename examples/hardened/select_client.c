/* select_client.c: "Event-driven programming", its closing remark: reading from several
 * sources at once, like the keyboard and the network, is what Phobos cannot do. C can: one
 * select() waits on standard input and on the socket. Each line you type goes to the server,
 * and what the server sends is printed as it arrives. Ctrl-D (end of input) ends our side;
 * the program ends once the server has ended too.
 *
 *   Terminal 1: ./bin/select_server -e      Terminals 2 and more: ./bin/select_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
enum { BUFFER_SIZE = 4096, MAX_TIMEOUT = 86400 };

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path;
    long timeout;
};

static struct options parse_options(int argc, char **argv);
static int connect_to_server(const struct options *options);
static void make_nonblocking(int sock);
static void print_received(const char *data, size_t length);
static void print_from_server(const char *data, size_t length);
static void say_on_a_terminal(const char *line);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    keep_standard_descriptors();
    ignore_sigpipe();
    struct options options = parse_options(argc, argv);

    /* Connect as tcp_client does. Then make the socket non-blocking: select says that a
     * send will not block, not that it takes all we give it, so send takes what it can. */
    int sock = connect_to_server(&options);
    if (sock >= FD_SETSIZE) /* FD_SET on it would write past the fd_set */
        fail("socket", "descriptor too large for select");
    make_nonblocking(sock);
    say_on_a_terminal("connected: each line you type is sent, Ctrl-D ends");

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
        struct timeval timeout = {.tv_sec = options.timeout};
        int ready =
            select(sock + 1, &read_set, &write_set, NULL, options.timeout > 0 ? &timeout : NULL);
        if (ready == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: wait again */
        if (ready == -1)
            die("select");
        if (ready == 0) {
            fprintf(stderr, "%s: nothing happened for %ld s\n", program_name, options.timeout);
            exit(EXIT_FAILURE);
        }

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

    close(sock);
    return EXIT_SUCCESS;
}

/* ---- The rest is plumbing: options, the connection, output. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                              \
    "usage: select_client [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-t SECONDS]\n"          \
    "  -4, -6      IPv4 (default) or IPv6\n"                                               \
    "  -u PATH     connect to the UNIX stream socket at PATH instead of IP\n"              \
    "  -H HOST     the server's host (default localhost)\n"                                \
    "  -p PORT     the server's port (default " DEFAULT_PORT ")\n"                         \
    "  -t SECONDS  give up when nothing happens for this long (default 0 = never)\n"       \
    "Sends standard input, a line at a time from a terminal, and prints what the server\n" \
    "sends; ends once both input and the server have ended.\n"

/* A whole number from 0 to max given on the command line, or a usage error naming `what`. */
static long parse_number(const char *text, const char *what, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
        usage_error("bad %s '%s': not a number from 0 to %ld", what, text, max);
    return value;
}

/* A numeric address says its own family: -H ::1 is IPv6 without -6, -H 127.0.0.1 IPv4.
 * Returns the family to use; a usage error when it contradicts the -4 or -6 given. */
static int family_for(const char *host, int family, int family_given) {
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *found;
    if (getaddrinfo(host, NULL, &hints, &found) != 0)
        return family; /* a name: looked up later, in the family asked for */
    int numeric = found->ai_family == AF_INET6 ? AF_INET6 : AF_INET;
    freeaddrinfo(found);
    if (numeric != family && family_given)
        usage_error("%s is an %s address: use %s", host, numeric == AF_INET6 ? "IPv6" : "IPv4",
                    numeric == AF_INET6 ? "-6" : "-4");
    return numeric;
}

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, 0};
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:t:")) != -1) {
        switch (option) {
        case 'h': fputs(USAGE, stdout); exit(EXIT_SUCCESS);
        case '4':
        case '6':
            options.family = option == '4' ? AF_INET : AF_INET6;
            family_given = 1;
            break;
        case 'u':
            options.family = AF_UNIX;
            options.path = optarg;
            break;
        case 'H':
            options.host = optarg;
            host_or_port_given = 1;
            break;
        case 'p':
            if (parse_number(optarg, "port", 65535) == 0) /* 16 bits */
                usage_error("bad port '0': a destination needs a port from 1 to 65535");
            options.port = optarg;
            host_or_port_given = 1;
            break;
        case 't': options.timeout = parse_number(optarg, "timeout", MAX_TIMEOUT); break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default: usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (options.family == AF_UNIX && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (options.family == AF_UNIX && strlen(options.path) > MAX_PATH_LENGTH)
        usage_error("socket path too long (at most %zu bytes): %s", MAX_PATH_LENGTH, options.path);
    if (options.family != AF_UNIX)
        options.family = family_for(options.host, options.family, family_given);
    return options;
}

/* connect, surviving EINTR. The handshake goes on after an interruption, so the next call
 * may wait again (Linux), answer EISCONN (done) or EALREADY (still going: wait for it to
 * finish, then read its result from SO_ERROR), depending on the system. */
static int connect_retry(int sock, const struct sockaddr *address, socklen_t length) {
    int result;
    RETRY_ON_EINTR(result, connect(sock, address, length));
    if (result == 0 || errno == EISCONN)
        return 0;
    if (errno != EALREADY)
        return -1;
    struct pollfd writable = {.fd = sock, .events = POLLOUT};
    RETRY_ON_EINTR(result, poll(&writable, 1, -1));
    int error = 0;
    socklen_t error_length = sizeof error;
    if (result == -1 || getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &error_length) == -1)
        return -1;
    errno = error;
    return error == 0 ? 0 : -1;
}

/* Close a connection with a reset (RST) instead of the end of the stream (FIN): linger 0
 * makes close throw away what is unsent and tell the peer that something went wrong. (If
 * setsockopt fails, the close still ends the connection, only not as a failure.) */
static void abort_connection(int sock) {
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(sock, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(sock);
}

/* The connection, until main has closed it. If we exit before, on an error, it is aborted
 * on the way out, so that the server sees a failure, not the clean end of our message. */
static int connection = -1;

static void abort_unclosed_connection(void) {
    if (connection != -1 && fcntl(connection, F_GETFD) != -1)
        abort_connection(connection);
}

/* Create a socket and connect it to the server. A host name may stand for several
 * addresses: try each in turn until one accepts. Exits with the last error if none does. */
static int connect_to_server(const struct options *options) {
    if (options->family == AF_UNIX) {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strcpy(address.sun_path, options->path); /* parse_options checked its length */
        int sock = socket(AF_UNIX, SOCK_STREAM, 0);
        if (sock == -1)
            die("socket");
        if (connect_retry(sock, (struct sockaddr *)&address, sizeof address) == -1)
            die("connect");
        connection = sock;
        atexit(abort_unclosed_connection);
        return sock;
    }
    /* "localhost" means the loopback of the family: /etc/hosts may lack ::1. */
    const char *host = options->host;
    if (strcmp(host, "localhost") == 0)
        host = options->family == AF_INET ? "127.0.0.1" : "::1";
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    int sock = -1;
    for (struct addrinfo *candidate = found; candidate && sock == -1;
         candidate = candidate->ai_next) {
        sock = socket(candidate->ai_family, candidate->ai_socktype, candidate->ai_protocol);
        if (sock == -1)
            continue;
        if (connect_retry(sock, candidate->ai_addr, candidate->ai_addrlen) == -1) {
            int connect_error = errno;
            close(sock);
            sock = -1;
            errno = connect_error;
        }
    }
    freeaddrinfo(found);
    if (sock == -1)
        die("connect");
    connection = sock;
    atexit(abort_unclosed_connection);
    return sock;
}

/* Make send, recv and accept on this socket return at once (EAGAIN) instead of waiting. */
static void make_nonblocking(int sock) {
    int flags = fcntl(sock, F_GETFL);
    if (flags == -1 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");
}

/* Bytes from the network, on stdout. On a terminal, each byte that is not printable text
 * shows as \xNN: a peer's escape sequences must not reach the terminal raw. */
static void print_received(const char *data, size_t length) {
    if (!isatty(STDOUT_FILENO)) {
        if (fwrite(data, 1, length, stdout) != length)
            die("stdout");
        return;
    }
    for (size_t i = 0; i < length; i++) {
        unsigned char byte = (unsigned char)data[i];
        int shown =
            isprint(byte) || byte == '\n' || byte == '\t' ? putchar(byte) : printf("\\x%02x", byte);
        if (shown < 0)
            die("stdout");
    }
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
