/* tcp_server.c: "Communication by stream", the server (start it first).
 * Accepts one client, sends it "Hello!", then prints what the client sends back.
 *
 *   Terminal 1: ./bin/tcp_server            Terminal 2: ./bin/tcp_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define GREETING "Hello!"
enum { BUFFER_SIZE = 65536, MAX_COUNT = 1000000, MAX_TIMEOUT = 86400 };

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *greeting;
    long count, timeout;
};

/* The message to send: the -m text, or all of stdin for "-m -", a piece at a time. */
struct message {
    const char *text; /* NULL once sent; "-" reads stdin */
    char buffer[BUFFER_SIZE];
};

static struct options parse_options(int argc, char **argv);
static socklen_t make_address(const struct options *options, int type,
                              struct sockaddr_storage *address);
static void print_ready_line(int sock, const struct options *options);
static void claim_socket_file(const char *path, int type);
static void stop_on_signal(int signal_number);
static size_t next_piece(struct message *message, int sock, const char **piece);
static void drop_client(int client, const char *what, long timeout);
static long dropped_count; /* clients that failed: the exit status says if any did */
static void print_received(const char *data, size_t length);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    keep_standard_descriptors();
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    signal(SIGINT, stop_on_signal);
    signal(SIGTERM, stop_on_signal);

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
        claim_socket_file(options.path, SOCK_STREAM);
    if (bind(listener, (struct sockaddr *)&address, address_length) == -1)
        die("bind");

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

        /* -t: give up on a client that takes nothing, or sends nothing, for that long ("About
         * timeouts"), so that one idle client cannot hold up all those that wait behind it. */
        struct timeval timeout = {.tv_sec = options.timeout};
        if (setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) == -1 ||
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == -1)
            die("setsockopt");

        /* Send the greeting. send may take only part of what we give it: advance past what
         * went and send the rest, until every byte is gone. */
        struct message greeting = {.text = options.greeting};
        const char *piece;
        size_t length;
        while ((length = next_piece(&greeting, client, &piece)) > 0) {
            while (length > 0) {
                ssize_t bytes_sent;
                RETRY_ON_EINTR(bytes_sent, send(client, piece, length, 0));
                if (bytes_sent == -1) {
                    drop_client(client, "send", options.timeout);
                    goto next_client; /* the tutorial's `goto accept_another` */
                }
                piece += bytes_sent;
                length -= (size_t)bytes_sent;
            }
        }

        /* Shut down our sending side only: the client sees the end of our message (its
         * recv returns 0), and we can still receive its reply. */
        if (shutdown(client, SHUT_WR) == -1) {
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

        /* Done with this client; the listener waits for the next. */
        close(client);
    next_client:;
    }

    close(listener);
    if (fflush(stdout) == EOF)
        die("stdout");
    return dropped_count == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- The rest is plumbing: options, addresses, signals, socket files, output. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

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
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, GREETING, 1, 0};
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:n:t:")) != -1) {
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
            parse_number(optarg, "port", 65535); /* 16 bits */
            options.port = optarg;
            host_or_port_given = 1;
            break;
        case 'm': options.greeting = optarg; break;
        case 'n': options.count = parse_number(optarg, "count", MAX_COUNT); break;
        case 't': options.timeout = parse_number(optarg, "timeout", MAX_TIMEOUT); break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default: usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (options.family == AF_UNIX && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (strcmp(options.greeting, "-") == 0 &&
        (fcntl(STDIN_FILENO, F_GETFL) & O_ACCMODE) == O_WRONLY)
        fail("stdin", strerror(EBADF)); /* it was closed: see keep_standard_descriptors */
    if (options.family == AF_UNIX && strlen(options.path) > MAX_PATH_LENGTH)
        usage_error("socket path too long (at most %zu bytes): %s", MAX_PATH_LENGTH, options.path);
    if (options.family != AF_UNIX)
        options.family = family_for(options.host, options.family, family_given);
    if (options.count != 1 && strcmp(options.greeting, "-") == 0)
        usage_error("-m - reads stdin once, so it needs -n 1");
    return options;
}

/* The address named by the options, for a socket of this type: a UNIX path, or a host and
 * port looked up by getaddrinfo. "localhost" means the loopback of the family: /etc/hosts
 * may lack ::1. */
static socklen_t make_address(const struct options *options, int type,
                              struct sockaddr_storage *address) {
    memset(address, 0, sizeof *address);
    if (options->family == AF_UNIX) {
        struct sockaddr_un *local = (struct sockaddr_un *)address;
        local->sun_family = AF_UNIX;
        strcpy(local->sun_path, options->path); /* parse_options checked its length */
        return sizeof *local;
    }
    const char *host = options->host;
    if (strcmp(host, "localhost") == 0)
        host = options->family == AF_INET ? "127.0.0.1" : "::1";
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = type};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    socklen_t length = found->ai_addrlen;
    memcpy(address, found->ai_addr, length);
    freeaddrinfo(found);
    return length;
}

/* One line on stderr once the socket is bound: with -p 0 only we know the port. */
static void print_ready_line(int sock, const struct options *options) {
    struct sockaddr_storage bound;
    socklen_t length = sizeof bound;
    char host[INET6_ADDRSTRLEN], port[sizeof "65535"];
    if (options->family == AF_UNIX)
        fprintf(stderr, "%s: ready on %s\n", program_name, options->path);
    else if (getsockname(sock, (struct sockaddr *)&bound, &length) == 0 &&
             getnameinfo((struct sockaddr *)&bound, length, host, sizeof host, port, sizeof port,
                         NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        fprintf(stderr, "%s: ready on %s port %s\n", program_name, host, port);
    else
        die("getsockname");
}

/* Our UNIX socket file, if we made one: it outlives the socket, so we remove it at exit. */
static const char *socket_file;

static void remove_socket_file(void) {
    if (socket_file != NULL)
        unlink(socket_file);
}

/* Free PATH for bind if it holds a socket file that an earlier run left behind, and take it as
 * ours: from now on a signal or exit removes it. Never delete anything else: not a file of
 * another kind, nor the socket of a server that still runs there. A connect tells, without
 * disturbing that server: a socket of the other type gets EPROTOTYPE when someone has bound
 * the path, ECONNREFUSED when nobody has. */
static void claim_socket_file(const char *path, int type) {
    struct stat status;
    if (lstat(path, &status) == 0) {
        if (!S_ISSOCK(status.st_mode))
            fail(path, "exists and is not a socket");
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strcpy(address.sun_path, path); /* parse_options checked its length */
        int probe = socket(AF_UNIX, type == SOCK_STREAM ? SOCK_DGRAM : SOCK_STREAM, 0);
        if (probe == -1)
            die("socket");
        int answered = connect(probe, (struct sockaddr *)&address, sizeof address) == 0;
        int error = errno;
        close(probe);
        if (answered || error == EPROTOTYPE)
            fail("bind", strerror(EADDRINUSE)); /* a live server: as an IP port in use */
        if (error != ECONNREFUSED)
            fail(path, strerror(error));
        if (unlink(path) == -1)
            die(path);
    }
    socket_file = path;
    atexit(remove_socket_file);
}

/* Ctrl-C (SIGINT) or SIGTERM: remove our file, say why we stop, and die of that same signal
 * so that whoever started us sees it. Only async-signal-safe calls in here, and no write that
 * could wait: stderr may be a pipe that nobody reads, so write only when poll says it has
 * room (a few bytes then go in at once). */
static void stop_on_signal(int signal_number) {
    const char *reason =
        signal_number == SIGINT ? ": stopped by SIGINT\n" : ": stopped by SIGTERM\n";
    remove_socket_file();
    struct pollfd room = {.fd = STDERR_FILENO, .events = POLLOUT};
    int said = poll(&room, 1, 0) == 1 &&
               write(STDERR_FILENO, program_name, strlen(program_name)) != -1 &&
               poll(&room, 1, 0) == 1 && write(STDERR_FILENO, reason, strlen(reason)) != -1;
    (void)said; /* if stderr is full or gone, there is no one to tell */
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

/* Close a connection with a reset (RST) instead of the end of the stream (FIN): linger 0
 * makes close throw away what is unsent and tell the peer that something went wrong. (If
 * setsockopt fails, the close still ends the connection, only not as a failure.) */
static void abort_connection(int sock) {
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(sock, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(sock);
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
