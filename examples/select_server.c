/* select_server.c: "Event-driven programming", an echo server for many clients at once.
 * Greets each client with "Hello!", sends back every byte it receives, and exits after five
 * clients have come and gone. select() tells it which sockets are ready.
 *
 *   Terminal 1: ./bin/select_server         Terminals 2 and more: ./bin/tcp_client -e
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { BACKLOG = 10, BUFFER_SIZE = 1024, MAX_GREETING = 65536, MAX_COUNT = 1000000 };
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, MAX_TIMEOUT = 86400 };

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                             \
    "usage: select_server [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n" \
    "                     [-t SECONDS]\n"                                                 \
    "  -4, -6      IPv4 (default) or IPv6\n"                                              \
    "  -u PATH     a UNIX stream socket at PATH instead of IP\n"                          \
    "  -H HOST     address to listen on (default localhost)\n"                            \
    "  -p PORT     port to listen on (default 2525; 0 picks a free one)\n"                \
    "  -m TEXT     greeting (default \"Hello!\" and a newline; - reads stdin)\n"          \
    "  -n COUNT    exit once this many clients have left (default 5; 0 = never)\n"        \
    "  -t SECONDS  say \"Select timed out.\" after this long idle (default 5; 0 = never)\n"

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *greeting;
    long count, timeout;
};

/* Every kind of address fits in here; `any` is the view that bind and sendto take. */
union socket_address {
    struct sockaddr any;
    struct sockaddr_in ip4;
    struct sockaddr_in6 ip6;
    struct sockaddr_un local;
};

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET,  DEFAULT_HOST,  DEFAULT_PORT,   NULL,
                              GREETING, DEFAULT_COUNT, DEFAULT_TIMEOUT};
    int host_or_port_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:n:t:")) != -1) {
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
        case 't': options.timeout = parse_number(optarg, "timeout", MAX_TIMEOUT); break;
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
    char host[INET6_ADDRSTRLEN];
    if (options->family == AF_UNIX) {
        fprintf(stderr, "%s: ready on %s\n", program_name, options->path);
        return;
    }
    if (getsockname(sock, &bound.any, &length) == -1)
        die("getsockname");
    int is_ip4 = bound.any.sa_family == AF_INET;
    inet_ntop(bound.any.sa_family, is_ip4 ? (void *)&bound.ip4.sin_addr : &bound.ip6.sin6_addr,
              host, sizeof host);
    fprintf(stderr, "%s: ready on %s port %u\n", program_name, host,
            ntohs(is_ip4 ? bound.ip4.sin_port : bound.ip6.sin6_port));
}

/* Our socket file, removed when we exit: a UNIX socket leaves a file behind. */
static const char *socket_file;

static void remove_socket_file(void) { unlink(socket_file); }

static void remove_socket_file_and_die(int signal_number) {
    unlink(socket_file); /* unlink, signal and raise are safe inside a handler */
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

/* The greeting: the -m text, or all of stdin for "-m -", read once since every client
 * gets it. It may hold at most MAX_GREETING bytes, one less than `size`. */
static size_t load_message(const char *text, char *message, size_t size) {
    ssize_t length = strlen(text) < size ? (ssize_t)strlen(text) : -1;
    if (strcmp(text, "-") == 0)
        length = read_whole(STDIN_FILENO, message, size);
    else if (length != -1)
        memcpy(message, text, length);
    if (length == -1 && errno != EMSGSIZE)
        die("stdin");
    if (length == -1)
        fail("greeting too long", "at most 65536 bytes");
    return length;
}

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    static char greeting[MAX_GREETING + 1];
    size_t greeting_length = load_message(options.greeting, greeting, sizeof greeting);

    /* It starts like tcp_server: create the socket, bind an address, and listen. */
    int listener = socket(options.family, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");
    int reuse = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt SO_REUSEADDR");
    union socket_address address;
    socklen_t address_length = make_address(&options, &address);
    if (options.family == AF_UNIX)
        remove_stale_socket(options.path);
    if (bind(listener, &address.any, address_length) == -1)
        die("bind");
    if (options.family == AF_UNIX) {
        socket_file = options.path;
        atexit(remove_socket_file);
        signal(SIGINT, remove_socket_file_and_die);
        signal(SIGTERM, remove_socket_file_and_die);
    }
    if (listen(listener, BACKLOG) == -1)
        die("listen");
    printf("listening\n");
    print_ready_line(listener, &options);

    /* The connected clients. An fd_set only has room for descriptors below FD_SETSIZE,
     * so no client can have a larger one and this array never overflows. */
    int clients[FD_SETSIZE];
    int client_count = 0;
    long disconnected_count = 0;

    while (options.count == 0 || disconnected_count < options.count) {
        /* select() changes the set it is given, so fill it afresh on every turn: every
         * client, and the listener for new connections. select also needs the highest
         * descriptor plus one. */
        fd_set read_set;
        FD_ZERO(&read_set);
        FD_SET(listener, &read_set);
        int highest = listener;
        for (int i = 0; i < client_count; i++) {
            FD_SET(clients[i], &read_set);
            highest = clients[i] > highest ? clients[i] : highest;
        }

        /* Wait until a socket is readable (a read will not block: data, a new connection,
         * the peer's close, or an error) or the timeout passes. select also changes the
         * timeout on some systems, so set it on every turn too. */
        struct timeval timeout = {.tv_sec = options.timeout};
        int event_count =
            select(highest + 1, &read_set, NULL, NULL, options.timeout > 0 ? &timeout : NULL);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("select");
        if (event_count == 0) {
            printf("Select timed out.\n");
            continue;
        }

        /* A readable listener means a client is waiting: accept it and greet it. */
        if (FD_ISSET(listener, &read_set)) {
            printf("accepting new socket\n");
            int client;
            RETRY_ON_EINTR(client, accept(listener, NULL, NULL));
            if (client == -1) {
                /* The client may have given up already: that is its problem, not ours. */
                fprintf(stderr, "%s: accept: %s\n", program_name, strerror(errno));
            } else if (client >= FD_SETSIZE) {
                /* FD_SET on such a descriptor would write past the end of the fd_set. */
                fprintf(stderr, "%s: refusing a client: select handles descriptors below %d\n",
                        program_name, FD_SETSIZE);
                close(client);
            } else if (send_all(client, greeting, greeting_length) == -1) {
                fprintf(stderr, "%s: send: %s\n", program_name, strerror(errno));
                close(client);
            } else {
                /* Unlike the tutorial we do not shut down sending here: we still have
                 * to echo, and a send after shutdown fails with EPIPE. */
                clients[client_count++] = client;
            }
            event_count--;
        }

        /* Find the clients select marked readable, until all events are handled. */
        for (int i = 0; i < client_count && event_count > 0; i++) {
            int client = clients[i];
            if (!FD_ISSET(client, &read_set))
                continue;
            event_count--;

            /* Echo what came; recv returns 0 once the client has closed its side. */
            char buffer[BUFFER_SIZE];
            ssize_t bytes_read = recv_retry(client, buffer, sizeof buffer);
            if (bytes_read > 0 && send_all(client, buffer, bytes_read) == 0) {
                printf("socket sent data\n");
                continue;
            }
            if (bytes_read == -1 || bytes_read > 0) /* one client's error ends only its turn */
                fprintf(stderr, "%s: %s: %s\n", program_name, bytes_read == -1 ? "recv" : "send",
                        strerror(errno));

            /* The client is gone: close it and move the last client into its place, then
             * look at this place again. */
            close(client);
            disconnected_count++;
            printf("socket disconnected\n");
            clients[i--] = clients[--client_count];
        }
    }

    /* The count is reached: close the clients still connected, then the listener. */
    for (int i = 0; i < client_count; i++)
        close(clients[i]);
    close(listener);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}
