/* tcp_server.c: "Communication by stream", the server (start it first).
 * Accepts one client, sends it "Hello!", then prints what the client sends back.
 *
 *   Terminal 1: ./bin/tcp_server            Terminal 2: ./bin/tcp_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define GREETING "Hello!"
enum { BACKLOG = 10, MAX_COUNT = 1000000 };

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                          \
    "usage: tcp_server [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n" \
    "  -4, -6     IPv4 (default) or IPv6\n"                                            \
    "  -u PATH    a UNIX stream socket at PATH instead of IP\n"                        \
    "  -H HOST    address to listen on (default localhost)\n"                          \
    "  -p PORT    port to listen on (default 2525; 0 picks a free one)\n"              \
    "  -m TEXT    greeting to send (default \"Hello!\"; - sends all of stdin)\n"       \
    "  -n COUNT   clients to serve, one after another (default 1; 0 = forever)\n"

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *greeting;
    long count;
};

/* Every kind of address fits in here; `any` is the view that bind and getsockname take. */
union socket_address {
    struct sockaddr any;
    struct sockaddr_in ip4;
    struct sockaddr_in6 ip6;
    struct sockaddr_un local;
};

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, GREETING, 1};
    int host_or_port_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:n:")) != -1) {
        switch (option) {
        case 'h': fputs(USAGE, stdout); exit(EXIT_SUCCESS);
        case '4': options.family = AF_INET; break;
        case '6': options.family = AF_INET6; break;
        case 'u':
            options.family = AF_UNIX;
            options.path = optarg;
            break;
        case 'H':
            options.host = optarg;
            host_or_port_given = 1;
            break;
        case 'p':
            parse_number(optarg, "port", 65535);
            options.port = optarg;
            host_or_port_given = 1;
            break;
        case 'm': options.greeting = optarg; break;
        case 'n': options.count = parse_number(optarg, "count", MAX_COUNT); break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default: usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (options.path && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (options.path && strlen(options.path) > MAX_PATH_LENGTH)
        usage_error("socket path too long (at most %zu bytes): %s", MAX_PATH_LENGTH, options.path);
    if (options.count != 1 && strcmp(options.greeting, "-") == 0)
        usage_error("-m - reads stdin once, so it needs -n 1");
    return options;
}

/* The address named by the options: a UNIX path, or a host and port looked up by
 * getaddrinfo. "localhost" means the loopback of the family: /etc/hosts may lack ::1. */
static socklen_t make_address(const struct options *options, union socket_address *address) {
    memset(address, 0, sizeof *address);
    if (options->family == AF_UNIX) {
        address->local.sun_family = AF_UNIX;
        strcpy(address->local.sun_path, options->path); /* parse_options checked its length */
        return sizeof address->local;
    }
    const char *host = options->host;
    if (strcmp(host, "localhost") == 0)
        host = options->family == AF_INET ? "127.0.0.1" : "::1";
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    socklen_t length = found->ai_addrlen;
    memcpy(address, found->ai_addr, length);
    freeaddrinfo(found);
    return length;
}

/* One line on stderr once we listen: with -p 0 only we know the port. */
static void print_ready_line(int sock, const struct options *options) {
    union socket_address bound;
    socklen_t length = sizeof bound;
    char host[INET6_ADDRSTRLEN], port[sizeof "65535"];
    if (options->family == AF_UNIX)
        fprintf(stderr, "%s: ready on %s\n", program_name, options->path);
    else if (getsockname(sock, &bound.any, &length) == 0 &&
             getnameinfo(&bound.any, length, host, sizeof host, port, sizeof port,
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

/* Ctrl-C (SIGINT) or SIGTERM: remove our file, say why we stop, and die of that same signal
 * so that whoever started us sees it. Only async-signal-safe calls in here. */
static void stop_on_signal(int signal_number) {
    const char *reason =
        signal_number == SIGINT ? ": stopped by SIGINT\n" : ": stopped by SIGTERM\n";
    remove_socket_file();
    ssize_t written = write(STDERR_FILENO, program_name, strlen(program_name));
    if (written != -1)
        written = write(STDERR_FILENO, reason, strlen(reason));
    (void)written; /* if stderr is gone, there is no one left to tell */
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

/* Free PATH for bind if it holds a socket file left by an earlier run; never delete
 * anything else. */
static void remove_stale_socket(const char *path) {
    struct stat status;
    if (lstat(path, &status) == -1)
        return;
    if (!S_ISSOCK(status.st_mode))
        fail(path, "exists and is not a socket");
    if (unlink(path) == -1)
        die(path);
}

int main(int argc, char **argv) {
    set_program_name(argv[0]);
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
     * we bind localhost unless -H says otherwise, so a demo is not open to the network. */
    union socket_address address;
    socklen_t address_length = make_address(&options, &address);
    if (options.family == AF_UNIX) {
        remove_stale_socket(options.path);
        socket_file = options.path; /* from now on a signal removes it */
    }
    if (bind(listener, &address.any, address_length) == -1)
        die("bind");
    atexit(remove_socket_file);

    /* Listen: the kernel now completes connections and queues up to BACKLOG of them
     * until we accept them. */
    if (listen(listener, BACKLOG) == -1)
        die("listen");
    print_ready_line(listener, &options);

    for (long served = 0; options.count == 0 || served < options.count; served++) {
        /* Wait for a client. accept returns a new socket for this one connection; the
         * listener stays open for the next. */
        int client;
        RETRY_ON_EINTR(client, accept(listener, NULL, NULL));
        if (client == -1)
            die("accept");

        /* send may take only part of the message: send_all loops until every byte is
         * gone. "-m -" streams stdin through in chunks, whatever its size. */
        int sent = strcmp(options.greeting, "-") == 0
                       ? send_until_eof(client, STDIN_FILENO)
                       : send_all(client, options.greeting, strlen(options.greeting));
        if (sent == FILE_FAILED)
            die("stdin");
        if (sent == SOCKET_FAILED)
            die("send");

        /* Shut down our sending side only: the client sees the end of our message
         * (recv returns 0) while we can still receive its reply. */
        if (shutdown(client, SHUT_WR) == -1)
            die("shutdown");

        /* The reply may come in any number of pieces: print each as it arrives, until
         * the client shuts down its side too. */
        printf("Got from client: ");
        int received = receive_until_eof(client, stdout);
        int receive_error = errno;
        printf("\n"); /* ends the line, also before an error line */
        errno = receive_error;
        if (received == FILE_FAILED)
            die("stdout");
        if (received == SOCKET_FAILED)
            die("recv");

        close(client);
    }

    close(listener);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}
