/* tcp_client.c: "Communication by stream", the client.
 * Connects to tcp_server, prints everything the server sends until it has finished, then
 * replies "Thanks! Bye.". With -e it sends first and prints the echo (select_server -e).
 *
 *   Terminal 1: ./bin/tcp_server            Terminal 2: ./bin/tcp_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define REPLY "Thanks! Bye."
enum { BUFFER_SIZE = 65536, HINT_MS = 3000, MAX_TIMEOUT = 86400 };

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *reply;
    long timeout; /* -t: seconds a send or a wait for data may stall; 0 = no limit */
    int echo_mode;
};

/* The reply to send: the -m text, or all of stdin for "-m -", a piece at a time. */
struct message {
    const char *text; /* NULL once sent; "-" reads stdin */
    char buffer[BUFFER_SIZE];
};

static struct options parse_options(int argc, char **argv);
static int connect_to_server(const struct options *options);
static void wait_for_data(int sock, const struct options *options, int *hinted);
static size_t next_piece(struct message *message, int sock, const char **piece);
static void print_received(const char *data, size_t length);
static _Noreturn void die_sending(const struct options *options);
static int talk_to_an_echo_server(int sock, const struct options *options);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    keep_standard_descriptors();
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);

    /* A client needs only a socket connected to the server (try it with no server running:
     * connect fails with "Connection refused"). */
    int sock = connect_to_server(&options);
    if (printf("Client connected!\n") < 0)
        die("stdout");

    /* Optionally give up when sending stalls ("About timeouts"): SO_SNDTIMEO, once the server
     * stops taking what we send. (Receiving waits in poll: see wait_for_data.) */
    struct timeval send_timeout = {.tv_sec = options.timeout};
    if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout) == -1)
        die("setsockopt SO_SNDTIMEO");

    /* An echo server waits for us to speak first (-e): the same two loops, the other way. */
    if (options.echo_mode)
        return talk_to_an_echo_server(sock, &options);

    /* Receive until the server has finished. recv returns what has arrived so far, in
     * whatever pieces the network made, and 0 once the server has shut down its sending side.
     * We print each piece as it comes; the tutorial collects them and prints them at the end. */
    printf("Received from server: ");
    char buffer[BUFFER_SIZE];
    ssize_t bytes_read;
    int hinted = 0;
    do {
        wait_for_data(sock, &options, &hinted);
        RETRY_ON_EINTR(bytes_read, recv(sock, buffer, sizeof buffer, 0));
        if (bytes_read > 0)
            print_received(buffer, (size_t)bytes_read);
    } while (bytes_read > 0);
    int receive_error = bytes_read == -1 ? errno : 0;
    printf("\n"); /* ends the line, also before an error line */
    if (receive_error != 0)
        fail("recv", strerror(receive_error));

    /* Send our reply the same way. send may take only part of what we give it: advance past
     * what went and send the rest, until every byte is gone. */
    struct message reply = {.text = options.reply};
    const char *piece;
    size_t length;
    while ((length = next_piece(&reply, sock, &piece)) > 0) {
        while (length > 0) {
            ssize_t bytes_sent;
            RETRY_ON_EINTR(bytes_sent, send(sock, piece, length, 0));
            if (bytes_sent == -1)
                die_sending(&options);
            piece += bytes_sent;
            length -= (size_t)bytes_sent;
        }
    }
    if (printf("reply sent!\n") < 0)
        die("stdout");

    /* Done: close the connection. The server's recv returns 0. */
    close(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}

/* ---- The rest is plumbing: options, the connection, waiting, output. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                                 \
    "usage: tcp_client [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-t SECONDS] [-e]\n" \
    "  -4, -6      IPv4 (default) or IPv6\n"                                                  \
    "  -u PATH     connect to the UNIX stream socket at PATH instead of IP\n"                 \
    "  -H HOST     the server's host (default localhost)\n"                                   \
    "  -p PORT     the server's port (default " DEFAULT_PORT ")\n"                            \
    "  -m TEXT     reply to send (default \"Thanks! Bye.\"; - sends all of stdin)\n"          \
    "  -t SECONDS  give up when sending or receiving stalls this long (0 = never)\n"          \
    "  -e          echo mode: send first, then print all the server sends back\n"

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
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, REPLY, 0, 0};
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:t:e")) != -1) {
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
        case 'm': options.reply = optarg; break;
        case 't': options.timeout = parse_number(optarg, "timeout", MAX_TIMEOUT); break;
        case 'e': options.echo_mode = 1; break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default: usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (options.family == AF_UNIX && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (strcmp(options.reply, "-") == 0 && (fcntl(STDIN_FILENO, F_GETFL) & O_ACCMODE) == O_WRONLY)
        fail("stdin", strerror(EBADF)); /* it was closed: see keep_standard_descriptors */
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

/* Milliseconds on a clock that only goes forward (the wall clock may be set back). */
static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait until the server sends something or ends, for at most -t seconds (0: no limit). After
 * HINT_MS of silence say once, on stderr, what we wait for: against an echo server both
 * sides would wait for the other in silence for ever. */
static void wait_for_data(int sock, const struct options *options, int *hinted) {
    long long start = now_ms(), limit_ms = options->timeout > 0 ? options->timeout * 1000 : -1;
    for (;;) {
        long long waited_ms = now_ms() - start;
        if (limit_ms != -1 && waited_ms >= limit_ms) {
            printf("\n"); /* ends the line before the error line */
            fflush(stdout);
            fprintf(stderr, "%s: no data within %ld s\n", program_name, options->timeout);
            exit(EXIT_FAILURE);
        }
        if (!*hinted && waited_ms >= HINT_MS) {
            fflush(stdout);
            fprintf(stderr,
                    "%s: still waiting for the server to end its message (an echo server "
                    "waits for ours first: use tcp_client -e)\n",
                    program_name);
            *hinted = 1;
        }
        /* Sleep in poll until data comes, or until the sooner of the two moments above. */
        long long until_ms = limit_ms;
        if (!*hinted && (until_ms == -1 || HINT_MS < until_ms))
            until_ms = HINT_MS;
        struct pollfd readable = {.fd = sock, .events = POLLIN};
        int ready = poll(&readable, 1, until_ms == -1 ? -1 : (int)(until_ms - waited_ms));
        if (ready == 1)
            return;
        if (ready == -1 && errno != EINTR)
            die("poll");
    }
}

/* The next piece of the message and its length, or 0 when all of it is sent: the -m text
 * in one piece, or stdin for "-m -" one read at a time, so that any size streams through.
 * A non-blocking stdin (EAGAIN) is waited for. If stdin fails, the message is cut short: the
 * connection `sock` is aborted, so that its peer sees a failure and not a clean end. */
static size_t next_piece(struct message *message, int sock, const char **piece) {
    if (message->text == NULL)
        return 0;
    if (strcmp(message->text, "-") != 0) {
        *piece = message->text;
        message->text = NULL;
        return strlen(*piece);
    }
    for (;;) {
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, read(STDIN_FILENO, message->buffer, sizeof message->buffer));
        if (bytes_read >= 0) {
            *piece = message->buffer;
            return (size_t)bytes_read;
        }
        struct pollfd readable = {.fd = STDIN_FILENO, .events = POLLIN};
        if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
            (poll(&readable, 1, -1) == -1 && errno != EINTR)) {
            int error = errno;
            abort_connection(sock);
            fail("stdin", strerror(error));
        }
    }
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

/* A send failed: with -t, SO_SNDTIMEO's EAGAIN means the server took nothing for that long. */
static _Noreturn void die_sending(const struct options *options) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        die("send");
    fflush(stdout);
    fprintf(stderr, "%s: could not send for %ld s\n", program_name, options->timeout);
    exit(EXIT_FAILURE);
}

/* -e: send the whole reply, shut down our sending side so that the server sees its end, then
 * print all the server sends back, until it ends too. main's two loops, the other way round:
 * an echo server waits for us first. */
static int talk_to_an_echo_server(int sock, const struct options *options) {
    struct message reply = {.text = options->reply};
    const char *piece;
    size_t length;
    while ((length = next_piece(&reply, sock, &piece)) > 0) {
        while (length > 0) {
            ssize_t bytes_sent;
            RETRY_ON_EINTR(bytes_sent, send(sock, piece, length, 0));
            if (bytes_sent == -1)
                die_sending(options);
            piece += bytes_sent;
            length -= (size_t)bytes_sent;
        }
    }
    if (shutdown(sock, SHUT_WR) == -1)
        die("shutdown");
    printf("reply sent!\n");

    printf("Received from server: ");
    char buffer[BUFFER_SIZE];
    ssize_t bytes_read;
    int hinted = 1; /* we have said all we had: no hint */
    do {
        wait_for_data(sock, options, &hinted);
        RETRY_ON_EINTR(bytes_read, recv(sock, buffer, sizeof buffer, 0));
        if (bytes_read > 0)
            print_received(buffer, (size_t)bytes_read);
    } while (bytes_read > 0);
    int receive_error = bytes_read == -1 ? errno : 0;
    if (printf("\n") < 0) /* ends the line, also before an error line */
        die("stdout");
    if (receive_error != 0)
        fail("recv", strerror(receive_error));

    close(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}
