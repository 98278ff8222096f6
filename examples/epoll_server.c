/* epoll_server.c: "Event-driven programming", and its closing remark: select is best for small
 * numbers of connections, not for thousands; use the operating system's functions. This is
 * select_server with Linux's epoll: the kernel keeps the list of sockets we watch and tells
 * us only which are ready, so a turn costs the same with ten clients or ten thousand.
 * The tutorial's protocol by default, an echo server with -e, as select_server.
 * `diff examples/select_server.c examples/epoll_server.c` shows all that changes;
 * docs/benchmarks.md measures it.
 *
 *   Terminal 1: ./bin/epoll_server          Terminals 2 to 6: ./bin/tcp_client
 *   Terminal 1: ./bin/epoll_server -e       Terminals 2 and more: ./bin/select_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options. */
#define _POSIX_C_SOURCE 200809L
#ifdef __linux__ /* epoll is Linux only: elsewhere this file is the few lines at its end */

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { BACKLOG = 10, PENDING_SIZE = 4096, MAX_COUNT = 1000000, MAX_CLIENTS = 100000 };
enum { MAX_EVENTS = 64 }; /* how many ready sockets one epoll_wait reports at most */
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, MAX_TIMEOUT = 86400 };

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                               \
    "usage: epoll_server [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n"    \
    "                    [-t SECONDS] [-e]\n"                                               \
    "  -4, -6      IPv4 (default) or IPv6\n"                                                \
    "  -u PATH     a UNIX stream socket at PATH instead of IP\n"                            \
    "  -H HOST     address to listen on (default localhost)\n"                              \
    "  -p PORT     port to listen on (default 2525; 0 picks a free one)\n"                  \
    "  -m TEXT     greeting (default \"Hello!\" and a newline; - reads stdin)\n"            \
    "  -n COUNT    exit once this many clients have left (default 5; 0 = never)\n"          \
    "  -t SECONDS  say \"Select timed out.\" after this long idle (default 5; 0 = never)\n" \
    "  -e          echo: send back all a client sends (default: the tutorial's protocol)\n"

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *greeting;
    long count, timeout;
    int echo_mode;
};

/* Every kind of address fits in here; `any` is the view that bind and getsockname take. */
union socket_address {
    struct sockaddr any;
    struct sockaddr_in ip4;
    struct sockaddr_in6 ip6;
    struct sockaddr_un local;
};

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET,  DEFAULT_HOST,  DEFAULT_PORT,    NULL,
                              GREETING, DEFAULT_COUNT, DEFAULT_TIMEOUT, 0};
    int host_or_port_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:n:t:e")) != -1) {
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
        case 'e': options.echo_mode = 1; break;
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

/* The greeting: the -m text, or all of stdin for "-m -", read once since every client
 * gets it. It must fit in a client's pending output: at most PENDING_SIZE bytes. */
static size_t load_message(const char *text, char *message, size_t size) {
    ssize_t length = -1;
    if (strcmp(text, "-") == 0) {
        length = read_whole(STDIN_FILENO, message, size);
        if (length == -1 && errno != EMSGSIZE)
            die("stdin");
    } else if (strlen(text) < size) {
        length = (ssize_t)strlen(text);
        memcpy(message, text, length);
    }
    if (length == -1)
        fail("greeting too long", "at most 4096 bytes");
    return length;
}

/* A connected client, and the output the kernel has not taken from us yet. */
struct client {
    int sock;
    uint32_t interest; /* the events epoll watches for it: EPOLLIN, EPOLLOUT */
    int finished;      /* it shut down its sending side: close it once pending is sent */
    int shut_down;     /* the tutorial's protocol: we shut down ours after the greeting */
    size_t pending_length;
    char pending[PENDING_SIZE]; /* the greeting and the echo, waiting to be sent */
};

/* Make send and recv on this socket return at once (EAGAIN) instead of waiting. */
static void make_nonblocking(int sock) {
    int flags = fcntl(sock, F_GETFL);
    if (flags == -1 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");
}

/* Whether to read from this client now. An echo needs room in its pending output: one that
 * sends and never reads costs us PENDING_SIZE bytes at most (backpressure). The tutorial's
 * protocol drops what it reads, so it always has room. */
static int has_room(const struct client *client, int echo_mode) {
    return !echo_mode || client->pending_length < PENDING_SIZE;
}

/* Send as much pending output as the kernel takes now, without waiting; keep the rest.
 * Returns 0, or -1 when the client has gone. */
static int send_pending(struct client *client) {
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent, send(client->sock, client->pending, client->pending_length, 0));
    if (bytes_sent == -1)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    client->pending_length -= bytes_sent;
    memmove(client->pending, client->pending + bytes_sent, client->pending_length);
    return 0;
}

/* How many clients we make room for: one per descriptor we may open (RLIMIT_NOFILE), at
 * most MAX_CLIENTS. accept fails (EMFILE) before a process has more than that. */
static int max_clients(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == -1)
        die("getrlimit RLIMIT_NOFILE");
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > MAX_CLIENTS)
        return MAX_CLIENTS;
    return (int)limit.rlim_cur;
}

/* Tell epoll what to watch for this client, when that changed (a system call each time).
 * Unlike the tutorial we also ask when a client can take more output (EPOLLOUT): a send
 * to a client that does not read would otherwise block the whole server. And we read
 * from a client only while its pending output has room, so one that sends and never
 * reads costs us PENDING_SIZE bytes at most (backpressure). */
static void update_interest(int epoll, struct client *client, int operation, int echo_mode) {
    uint32_t interest = 0;
    if (!client->finished && has_room(client, echo_mode))
        interest |= EPOLLIN;
    if (client->pending_length > 0)
        interest |= EPOLLOUT;
    if (operation == EPOLL_CTL_MOD && interest == client->interest)
        return;
    struct epoll_event event = {.events = interest, .data.ptr = client};
    if (epoll_ctl(epoll, operation, client->sock, &event) == -1)
        die("epoll_ctl");
    client->interest = interest;
}

/* Readable as select means it: data, the end of the stream, or an error. epoll reports the
 * last two (EPOLLHUP, EPOLLERR) even unasked: only read when we asked for EPOLLIN. */
static int is_readable(const struct client *client, uint32_t events) {
    return (client->interest & EPOLLIN) && (events & (EPOLLIN | EPOLLHUP | EPOLLERR));
}

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    signal(SIGINT, stop_on_signal);
    signal(SIGTERM, stop_on_signal);
    static char greeting[PENDING_SIZE + 1];
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
    if (options.family == AF_UNIX) {
        remove_stale_socket(options.path);
        socket_file = options.path; /* from now on a signal removes it */
    }
    if (bind(listener, &address.any, address_length) == -1)
        die("bind");
    atexit(remove_socket_file);
    if (listen(listener, BACKLOG) == -1)
        die("listen");
    printf("listening\n");
    print_ready_line(listener, &options);

    /* accept must not wait if a client gave up between epoll_wait and accept. */
    make_nonblocking(listener);

    /* An epoll instance: the kernel's list of the sockets we watch, and of those ready.
     * The listener's event carries no client (data.ptr NULL); each client's, the client. */
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll == -1)
        die("epoll_create1");
    struct epoll_event listener_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &listener_event) == -1)
        die("epoll_ctl");

    /* The connected clients by descriptor (clients[sock], NULL where none), only to close
     * them all at the end: epoll hands us the client itself when it is ready. */
    int client_limit = max_clients();
    struct client **clients = calloc(client_limit, sizeof(struct client *));
    if (clients == NULL)
        die("calloc");
    long disconnected_count = 0;
    int accepting = 1; /* whether we watch the listener */

    while (options.count == 0 || disconnected_count < options.count) {
        /* Wait until a socket is ready (a read or write will not block: data, a new
         * connection, room to send, the peer's close, or an error) or the timeout passes.
         * No sets to fill first: epoll remembers what we watch (see update_interest), and
         * returns one event per ready socket, at most MAX_EVENTS at a time. */
        /* Watch the listener only while we can accept (select and poll leave it out of
         * their sets instead); epoll_ctl changes what epoll watches. */
        if (listener_event.events != (accepting ? EPOLLIN : 0u)) {
            listener_event.events = accepting ? EPOLLIN : 0u;
            if (epoll_ctl(epoll, EPOLL_CTL_MOD, listener, &listener_event) == -1)
                die("epoll_ctl");
        }
        struct epoll_event events[MAX_EVENTS];
        int timeout_ms = options.timeout > 0 ? (int)options.timeout * 1000 : -1;
        int event_count = epoll_wait(epoll, events, MAX_EVENTS, timeout_ms);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("epoll_wait");
        if (event_count == 0) {
            printf("Select timed out.\n");
            continue;
        }

        /* A readable listener means a client is waiting: accept it, queue its greeting.
         * The listener's event is the one that carries no client. */
        int listener_ready = 0;
        for (int i = 0; i < event_count; i++)
            listener_ready |= events[i].data.ptr == NULL;
        if (listener_ready) {
            printf("accepting new socket\n");
            int sock;
            RETRY_ON_EINTR(sock, accept(listener, NULL, NULL));
            struct client *client = NULL;
            if (sock == -1 && (errno == EMFILE || errno == ENFILE))
                accepting = 0; /* out of descriptors: stop watching until a client leaves */
            if (sock == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
                fprintf(stderr, "%s: accept: %s\n", program_name, strerror(errno));
            else if (sock >= client_limit) /* clients[sock] would be past the array */
                fprintf(stderr, "%s: refusing a client: room for descriptors below %d only\n",
                        program_name, client_limit);
            else if (sock != -1 && (client = malloc(sizeof *client)) == NULL)
                fprintf(stderr, "%s: no memory for another client\n", program_name);
            if (client != NULL) {
                make_nonblocking(sock);
                *client = (struct client){.sock = sock, .pending_length = greeting_length};
                memcpy(client->pending, greeting, greeting_length);
                clients[sock] = client;
                update_interest(epoll, client, EPOLL_CTL_ADD, options.echo_mode);
            } else if (sock != -1) {
                close(sock);
            }
        }

        /* Only the clients that are ready: no turn looks at every client. */
        for (int i = 0; i < event_count; i++) {
            struct client *client = events[i].data.ptr;
            if (client == NULL)
                continue; /* the listener, done above */
            int failed = 0, has_new_data = 0;

            /* The tutorial's protocol notes what the client sends and drops it: an echo could
             * not go out after the shutdown. -e puts it in the pending output, to send back. */
            if (is_readable(client, events[i].events)) {
                char dropped[PENDING_SIZE];
                char *into = options.echo_mode ? client->pending + client->pending_length : dropped;
                size_t room =
                    options.echo_mode ? PENDING_SIZE - client->pending_length : sizeof dropped;
                ssize_t bytes_read;
                RETRY_ON_EINTR(bytes_read, recv(client->sock, into, room, 0));
                if (bytes_read == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
                    fprintf(stderr, "%s: recv: %s\n", program_name, strerror(errno));
                    failed = 1;
                } else if (bytes_read == 0) {
                    client->finished = 1; /* recv returns 0: the client has finished sending */
                } else if (bytes_read > 0) {
                    if (options.echo_mode)
                        client->pending_length += bytes_read;
                    has_new_data = options.echo_mode;
                    printf("socket sent data\n");
                }
            }

            /* Send what the client can take now: right after new data (most often the kernel
             * takes it all at once), or when it said it has room again. The rest waits. */
            int writable = (events[i].events & EPOLLOUT) != 0;
            if (!failed && (has_new_data || writable) && send_pending(client) == -1) {
                fprintf(stderr, "%s: send: %s\n", program_name, strerror(errno));
                failed = 1;
            }

            /* The tutorial's protocol: once the greeting is all sent, shut down our sending
             * side, so the client sees the end of it (its recv returns 0). */
            if (!failed && !options.echo_mode && !client->shut_down &&
                client->pending_length == 0) {
                client->shut_down = 1;
                if (shutdown(client->sock, SHUT_WR) == -1) {
                    fprintf(stderr, "%s: shutdown: %s\n", program_name, strerror(errno));
                    failed = 1;
                }
            }

            /* Done with this client once it has finished and has all its echo, or failed:
             * close it (which also takes it out of epoll). Otherwise watch it for what it
             * needs now. */
            if (failed || (client->finished && client->pending_length == 0)) {
                close(client->sock);
                clients[client->sock] = NULL;
                free(client);
                disconnected_count++;
                accepting = 1; /* a descriptor is free again */
                printf("socket disconnected\n");
            } else {
                update_interest(epoll, client, EPOLL_CTL_MOD, options.echo_mode);
            }
        }
    }

    /* The count is reached: close the clients still connected, then the listener. */
    for (int sock = 0; sock < client_limit; sock++) {
        if (clients[sock] == NULL)
            continue;
        close(clients[sock]->sock);
        free(clients[sock]);
    }
    free(clients);
    close(epoll);
    close(listener);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}

#else /* not Linux */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    fputs("epoll_server: epoll is Linux only; use poll_server\n", stderr);
    return EXIT_FAILURE;
}
#endif
