/* epoll_server.c: select_server with Linux's epoll ("Event-driven programming": select suits
 * a few connections, not thousands). The kernel keeps the list of the sockets we watch and
 * reports only the ready ones; `diff` with select_server.c shows the rest. -6 for IPv6,
 * -u PATH for a UNIX stream socket, -h for all options.
 *
 *   Terminal 1: ./bin/epoll_server          Terminals 2 to 6: ./bin/tcp_client
 *   Terminal 1: ./bin/epoll_server -e       Terminals 2 and more: ./bin/select_client */
#define _POSIX_C_SOURCE 200809L
#ifdef __linux__ /* epoll is Linux only: elsewhere this file is the few lines at its end */

#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { PENDING_SIZE = 4096, LOG_SIZE = 65536, MAX_COUNT = 1000000, DRAIN_MS = 2000 };
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, MAX_TIMEOUT = 86400, RETRY_MS = 200 };
enum { MAX_CLIENTS = 100000, MAX_EVENTS = 512 }; /* events: the most one epoll_wait reports */

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *greeting;
    long count, timeout;
    int echo_mode;
    size_t greeting_length; /* the greeting is loaded, and -m - read, with the options */
};

struct client {
    int sock, interest;      /* interest: what epoll watches for it, EPOLLIN and EPOLLOUT */
    int finished, shut_down; /* finished: its sending side has ended; shut_down: ours */
    size_t pending_length;
    char pending[PENDING_SIZE]; /* output not sent yet: the greeting, and with -e the echo */
};

static struct options parse_options(int argc, char **argv);
static socklen_t make_address(const struct options *options, int type,
                              struct sockaddr_storage *address);
static void print_ready_line(int sock, const struct options *options);
static void claim_socket_file(const char *path, int type);
static int catch_stop_signals(void);
static _Noreturn void stop_now(void);
static void say(const FILE *stream, const char *format, ...);
static int flush_logs(int wait_ms);
static int accept_client(int listener);
static struct client *new_client(int sock, const char *greeting, size_t greeting_length);
static int receive_from(struct client *client, int echo_mode);
static int send_pending(struct client *client, int echo_mode);
static void update_interest(int epoll, struct client *client, int operation, int echo_mode);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    keep_standard_descriptors();
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    int wake_fd = catch_stop_signals(); /* readable once Ctrl-C or SIGTERM came */

    /* It starts like tcp_server: create the socket, bind an address, and listen. */
    int listener = socket(options.family, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");
    int reuse = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt SO_REUSEADDR");
    struct sockaddr_storage address;
    socklen_t address_length = make_address(&options, SOCK_STREAM, &address);
    if (options.path != NULL) /* a UNIX address: a file */
        claim_socket_file(options.path, SOCK_STREAM);
    if (bind(listener, (struct sockaddr *)&address, address_length) == -1)
        die("bind");
    /* The tutorial's backlog of 10 is a number for a demo: a burst of clients would overflow it
     * (docs/04-events.md). SOMAXCONN asks for the most the system allows. */
    if (listen(listener, SOMAXCONN) == -1)
        die("listen");
    if (printf("listening\n") < 0) /* a broken stdout is said at once, not at the end */
        die("stdout");
    print_ready_line(listener, &options);

    /* Readiness can be a false alarm (select(2) says so): accept on a blocking listener would
     * then wait, and stall every client. Non-blocking (the tutorial's blocking = false), it
     * fails with EAGAIN instead. */
    int flags = fcntl(listener, F_GETFL);
    if (flags == -1 || fcntl(listener, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");

    /* An epoll instance: the kernel's list of the sockets we watch, and of those ready.
     * The listener's event carries no client (data.ptr NULL); each client's, the client;
     * wake_fd's, its own address. */
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll == -1)
        die("epoll_create1");
    struct epoll_event listener_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &listener_event) == -1 ||
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake_fd,
                  &(struct epoll_event){.events = EPOLLIN, .data.ptr = &wake_fd}) == -1)
        die("epoll_ctl");

    /* The connected clients by descriptor (clients[sock], NULL where none), only to close
     * them all at the end: epoll hands us the client itself when it is ready. Room for as
     * many as we may open descriptors: accept fails with EMFILE beyond. */
    long open_max = sysconf(_SC_OPEN_MAX);
    int client_limit = open_max > 0 && open_max < MAX_CLIENTS ? (int)open_max : MAX_CLIENTS;
    struct client **clients = calloc(client_limit, sizeof(struct client *));
    if (clients == NULL)
        die("calloc");
    long disconnected_count = 0;

    while (options.count == 0 || disconnected_count < options.count) {
        /* Our lines go out first, as far as stdout takes them now (see say): a server must
         * never wait for its reader. Lines that still wait make us come back in RETRY_MS. */
        int retrying = flush_logs(0);

        /* Wait until a socket is ready (a read or write will not block: data, a new
         * connection, room to send, the peer's close, or an error) or the timeout passes.
         * No sets to fill first: epoll remembers what we watch (see update_interest), and
         * returns one event per ready socket, at most MAX_EVENTS at a time. */
        struct epoll_event events[MAX_EVENTS];
        int wait_ms = retrying ? RETRY_MS : options.timeout > 0 ? (int)options.timeout * 1000 : -1;
        int event_count = epoll_wait(epoll, events, MAX_EVENTS, wait_ms);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("epoll_wait");
        if (event_count == 0 && !retrying)
            say(stdout, "Select timed out.");
        if (event_count == 0)
            continue;

        /* A readable listener means clients are waiting: accept them all, until accept says
         * none is left. A burst of connections must not wait a turn each while the kernel's
         * queue overflows. The listener's event is the one that carries no client. */
        int listener_ready = 0;
        for (int i = 0; i < event_count; i++) {
            if (events[i].data.ptr == &wake_fd)
                stop_now(); /* a signal asks us to stop */
            listener_ready |= events[i].data.ptr == NULL;
        }
        if (listener_ready) {
            int sock;
            while ((sock = accept_client(listener)) != -1) {
                struct client *client = NULL;
                if (sock >= client_limit) { /* clients[sock] would be past the array */
                    say(stderr, "refusing a client: room for descriptors below %d only",
                        client_limit);
                    close(sock);
                } else {
                    client = new_client(sock, options.greeting, options.greeting_length);
                }
                if (client != NULL) {
                    clients[sock] = client;
                    update_interest(epoll, client, EPOLL_CTL_ADD, options.echo_mode);
                }
            }
        }

        /* Each client that is ready, and only those: no turn looks at every client. epoll
         * reports the peer's close and errors (EPOLLHUP, EPOLLERR) even unasked: read only
         * when we asked for EPOLLIN, as select would. */
        for (int i = 0; i < event_count; i++) {
            struct client *client = events[i].data.ptr;
            if (client == NULL)
                continue; /* the listener, done above */
            uint32_t ready = events[i].events;
            int readable =
                (client->interest & EPOLLIN) && (ready & (EPOLLIN | EPOLLHUP | EPOLLERR));
            int writable = (ready & EPOLLOUT) != 0;
            int failed = readable && receive_from(client, options.echo_mode) == -1;
            if (!failed && (readable || writable))
                failed = send_pending(client, options.echo_mode) == -1;

            /* Done with this client once it has finished and has all its output, or failed:
             * close it (which also takes it out of epoll). Otherwise watch it for what it
             * needs now. */
            if (failed || (client->finished && client->pending_length == 0)) {
                close(client->sock);
                clients[client->sock] = NULL;
                free(client);
                disconnected_count++;
                say(stdout, "socket disconnected");
            } else {
                update_interest(epoll, client, EPOLL_CTL_MOD, options.echo_mode);
            }
        }
    }

    /* The count is reached: close the clients still connected, then the listener, and give
     * our last lines some time to go out. */
    for (int sock = 0; sock < client_limit; sock++) {
        if (clients[sock] == NULL)
            continue;
        close(clients[sock]->sock);
        free(clients[sock]);
    }
    free(clients);
    close(epoll);
    close(listener);
    flush_logs(DRAIN_MS);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}

/* ---- The rest is plumbing: options, addresses, signals, socket files, clients. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                               \
    "usage: epoll_server [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n"    \
    "                    [-t SECONDS] [-e]\n"                                               \
    "  -4, -6      IPv4 (default) or IPv6\n"                                                \
    "  -u PATH     a UNIX stream socket at PATH instead of IP\n"                            \
    "  -H HOST     address to listen on (default localhost)\n"                              \
    "  -p PORT     port to listen on (default " DEFAULT_PORT "; 0 picks a free one)\n"      \
    "  -m TEXT     greeting (default \"Hello!\" and a newline; - reads stdin)\n"            \
    "  -n COUNT    exit once this many clients have left (default 5; 0 = never)\n"          \
    "  -t SECONDS  say \"Select timed out.\" after this long idle (default 5; 0 = never)\n" \
    "  -e          echo: send back all a client sends (default: the tutorial's protocol)\n"

/* A whole number from 0 to max given on the command line, or a usage error naming `what`. */
static long parse_number(const char *text, const char *what, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
        usage_error("bad %s '%s': not a number from 0 to %ld", what, text, max);
    return value;
}

/* Read all of `input` into buffer. Returns its size, or -1 (errno EMSGSIZE when it fills
 * the buffer: pass one byte more than the longest you accept). A non-blocking input (EAGAIN)
 * is waited for, not an error. */
static ssize_t read_whole(int input, char *buffer, size_t size) {
    size_t filled = 0;
    for (;;) {
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, read(input, buffer + filled, size - filled));
        if (bytes_read == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd readable = {.fd = input, .events = POLLIN};
            if (poll(&readable, 1, -1) == -1 && errno != EINTR)
                return -1;
            continue;
        }
        if (bytes_read <= 0)
            return bytes_read == 0 ? (ssize_t)filled : -1;
        filled += (size_t)bytes_read;
        if (filled == size) {
            errno = EMSGSIZE;
            return -1;
        }
    }
}

/* The message to send, whole: the -m text, or all of stdin for "-m -". It must fit in
 * size - 1 bytes; if not, fail with `too_long` ("message too long for one datagram"). */
static size_t load_message(const char *text, char *message, size_t size, const char *too_long) {
    ssize_t length = -1;
    if (strcmp(text, "-") == 0) {
        length = read_whole(STDIN_FILENO, message, size);
        if (length == -1 && errno != EMSGSIZE)
            die("stdin");
    } else if (strlen(text) < size) {
        length = (ssize_t)strlen(text);
        memcpy(message, text, (size_t)length);
    }
    if (length == -1) {
        char limit[sizeof "at most 18446744073709551615 bytes"];
        snprintf(limit, sizeof limit, "at most %zu bytes", size - 1);
        fail(too_long, limit);
    }
    return (size_t)length;
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
    struct options options = {
        AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, GREETING, DEFAULT_COUNT, DEFAULT_TIMEOUT, 0, 0};
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:n:t:e")) != -1) {
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
        case 'e': options.echo_mode = 1; break;
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
    static char greeting[PENDING_SIZE + 1]; /* every client gets it: read it once */
    options.greeting_length =
        load_message(options.greeting, greeting, sizeof greeting, "greeting too long");
    options.greeting = greeting;
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

/* Ctrl-C (SIGINT) or SIGTERM. The handler only notes the signal and writes a byte into
 * wake_pipe: the loop watches the pipe like a socket, so it wakes at once even when the
 * signal came just before it began to wait, and calls stop_now. (Writing our lines, or
 * anything that may wait, is no job for a handler: it may have interrupted say.) */
static volatile sig_atomic_t stop_signal; /* SIGINT or SIGTERM, once one came */
static int wake_pipe[2];

/* write may set errno, which the code we interrupted may be about to read: so we put it back
 * (errno is thread-local, safe here whatever clang-tidy's list of safe calls says). */
static void note_stop_signal(int signal_number) {
    int saved_errno = errno; /* NOLINT(bugprone-signal-handler) */
    stop_signal = signal_number;
    ssize_t written = write(wake_pipe[1], "", 1);
    (void)written;       /* the pipe was full: a byte waits already */
    errno = saved_errno; /* NOLINT(bugprone-signal-handler) */
}

/* Returns the end of the pipe to watch. Both ends are non-blocking: a full pipe already
 * holds a wake-up, and a read of an empty one must not wait. */
static int catch_stop_signals(void) {
    if (pipe(wake_pipe) == -1)
        die("pipe");
    for (int end = 0; end < 2; end++) {
        int flags = fcntl(wake_pipe[end], F_GETFL);
        if (flags == -1 || fcntl(wake_pipe[end], F_SETFL, flags | O_NONBLOCK) == -1)
            die("fcntl O_NONBLOCK");
    }
    signal(SIGINT, note_stop_signal);
    signal(SIGTERM, note_stop_signal);
    return wake_pipe[0];
}

/* The loop saw the wake-up after a signal: our last lines go out as far as stdout and stderr take
 * them now (never waiting for a reader), the socket file goes, and we die of that same
 * signal so that whoever started us sees it. */
static _Noreturn void stop_now(void) {
    say(stderr, "stopped by %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    flush_logs(0);
    remove_socket_file();
    signal(stop_signal, SIG_DFL);
    raise(stop_signal);
    /* cppcheck-suppress unreachableCode ; with the default action back, raise ends us: this
     * line only tells the compiler so */
    _Exit(EXIT_FAILURE);
}

/* Make send, recv and accept on this socket return at once (EAGAIN) instead of waiting. */
static void make_nonblocking(int sock) {
    int flags = fcntl(sock, F_GETFL);
    if (flags == -1 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");
}

/* ---- Our own output. A server must never wait for whoever reads its log: a pipe that nobody
 * empties would stop it serving every client. So in the event loop a line waits in a buffer
 * until stdout (or stderr) has room, and each turn writes what fits. ---- */

struct log {
    int fd;
    size_t length;
    long dropped;      /* lines that found the buffer full */
    int said_dropping; /* and we have said so on stderr */
    char data[LOG_SIZE];
};
static struct log out_log = {STDOUT_FILENO, 0, 0, 0, ""}, err_log = {STDERR_FILENO, 0, 0, 0, ""};

/* One line, printf-like, for stdout, or for stderr after "program: " (say(stderr, ...)). It
 * waits in its log until flush_logs; a line that does not fit is counted, and said later. */
static void say(const FILE *stream, const char *format, ...) {
    struct log *log = stream == stderr ? &err_log : &out_log;
    char *end = log->data + log->length;
    size_t room = sizeof log->data - log->length;
    int prefix = stream == stderr ? snprintf(end, room, "%s: ", program_name) : 0;
    int text = -1;
    if (strchr(format, '%') == NULL && prefix >= 0 && strlen(format) < room - (size_t)prefix) {
        text = (int)strlen(format); /* a plain line: no formatting to do, the common case */
        memcpy(end + prefix, format, (size_t)text);
    } else if (prefix >= 0 && (size_t)prefix < room) {
        va_list arguments;
        va_start(arguments, format);
        text = vsnprintf(end + prefix, room - (size_t)prefix, format, arguments);
        va_end(arguments);
    }
    if (text < 0 || (size_t)(prefix + text) + 1 >= room) { /* with its '\n' it does not fit */
        log->dropped++;
        return;
    }
    end[prefix + text] = '\n';
    log->length += (size_t)(prefix + text) + 1;
}

/* Write what the log's descriptor takes, waiting for room at most wait_ms each time: poll
 * says when there is room, and we write at most PIPE_BUF bytes at a time, which a pipe with
 * room takes without blocking. A write error on stdout ends the server, as `server | head -1`
 * ends a filter; on stderr there is no one left to tell. */
static void flush_log(struct log *log, int wait_ms) {
    struct pollfd room = {.fd = log->fd, .events = POLLOUT};
    while (log->length > 0) {
        int ready = poll(&room, 1, wait_ms);
        if (ready == 0 || (ready == -1 && errno != EINTR))
            break;
        size_t chunk = log->length < PIPE_BUF ? log->length : PIPE_BUF;
        ssize_t written = ready == 1 ? write(log->fd, log->data, chunk) : 0;
        if (written == -1 && errno == EINTR)
            continue;
        if (written == -1 && log == &out_log)
            die("stdout");
        if (written == -1)
            written = (ssize_t)log->length; /* stderr is gone: drop what waits for it */
        log->length -= (size_t)written;
        memmove(log->data, log->data + written, log->length);
    }
    if (log->dropped > 0 && !log->said_dropping && log == &out_log)
        say(stderr, "stdout is not read: its lines are dropped, and counted, until it is");
    log->said_dropping = log->dropped > 0;
    if (log->length == 0 && log->dropped > 0) {
        say(stderr, "%ld lines for %s dropped: it was not read in time", log->dropped,
            log == &out_log ? "stdout" : "stderr");
        log->dropped = 0;
    }
}

/* Write what stdout and stderr take, waiting for room at most wait_ms each time (0: what they
 * take now). Returns whether lines still wait, for a reader that is slow or stopped: then we
 * come back in RETRY_MS. */
static int flush_logs(int wait_ms) {
    flush_log(&out_log, wait_ms);
    flush_log(&err_log, wait_ms);
    return out_log.length > 0 || err_log.length > 0;
}

/* A new client: its greeting waits in its pending output until the socket can take it.
 * Returns NULL (and closes the socket) when there is no memory for it. */
static struct client *new_client(int sock, const char *greeting, size_t greeting_length) {
    struct client *client = malloc(sizeof *client);
    if (client == NULL) {
        say(stderr, "no memory for another client");
        close(sock);
        return NULL;
    }
    make_nonblocking(sock);
    *client = (struct client){.sock = sock, .pending_length = greeting_length};
    memcpy(client->pending, greeting, greeting_length);
    return client;
}

/* Accept one client that waits, with the tutorial's "accepting new socket". Returns its
 * socket, or -1 once none is left (EAGAIN) or accept failed (said on stderr). Out of
 * descriptors (EMFILE, ENFILE), the waiting connection would wake us at once, forever: so we
 * keep one descriptor in reserve, give it up to accept that client and turn it away at once
 * (it sees the connection close), then take it back. Once descriptors are free again,
 * clients come in as before. */
static int accept_client(int listener) {
    static int reserve = -2; /* -2: not opened yet; -1: could not be opened */
    if (reserve == -2)
        reserve = open("/dev/null", O_RDONLY);
    int sock;
    RETRY_ON_EINTR(sock, accept(listener, NULL, NULL));
    if (sock != -1) {
        say(stdout, "accepting new socket");
        return sock;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        say(stderr, "accept: %s", strerror(errno));
    if ((errno == EMFILE || errno == ENFILE) && reserve >= 0) {
        close(reserve);
        RETRY_ON_EINTR(sock, accept(listener, NULL, NULL));
        if (sock != -1) {
            say(stderr, "turned a client away: out of descriptors");
            close(sock);
        }
        reserve = open("/dev/null", O_RDONLY);
    }
    return -1;
}

/* What we wait for from this client, as poll's events: POLLIN to read, POLLOUT to send.
 * Read until its end, but for an echo only while its pending output has room, so that one
 * that sends and never reads costs us PENDING_SIZE bytes at most (backpressure); the
 * tutorial's protocol drops what it reads. Send while output is pending, and in the
 * tutorial's protocol until we have shut down our side after the greeting. */
static short wanted_events(const struct client *client, int echo_mode) {
    short events = 0;
    if (!client->finished && (!echo_mode || client->pending_length < PENDING_SIZE))
        events |= POLLIN;
    if (client->pending_length > 0 || (!echo_mode && !client->shut_down))
        events |= POLLOUT;
    return events;
}

/* Read what the client sent: the tutorial's protocol notes it ("socket sent data") and
 * drops it, since an echo could not go out after the shutdown; -e puts it in the pending
 * output, to send back. recv returns 0 at the client's end. Returns -1 if the client failed. */
static int receive_from(struct client *client, int echo_mode) {
    char dropped[PENDING_SIZE];
    char *into = echo_mode ? client->pending + client->pending_length : dropped;
    size_t room = echo_mode ? PENDING_SIZE - client->pending_length : sizeof dropped;
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recv(client->sock, into, room, 0));
    if (bytes_read == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0; /* readiness can be a false alarm: nothing to read after all */
    if (bytes_read == -1) {
        say(stderr, "recv: %s", strerror(errno));
        return -1;
    }
    if (bytes_read == 0)
        client->finished = 1; /* the client has shut down its sending side */
    if (bytes_read > 0 && echo_mode)
        client->pending_length += (size_t)bytes_read;
    if (bytes_read > 0)
        say(stdout, "socket sent data");
    return 0;
}

/* Send as much pending output as the kernel takes now, without waiting; keep the rest. In
 * the tutorial's protocol, once the greeting is all sent, shut down our sending side: the
 * client sees the end of it (its recv returns 0). Returns -1 if the client has gone. */
static int send_pending(struct client *client, int echo_mode) {
    if (client->pending_length > 0) {
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, send(client->sock, client->pending, client->pending_length, 0));
        if (bytes_sent == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
            say(stderr, "send: %s", strerror(errno));
            return -1;
        }
        if (bytes_sent > 0) {
            client->pending_length -= (size_t)bytes_sent;
            memmove(client->pending, client->pending + bytes_sent, client->pending_length);
        }
    }
    if (!echo_mode && !client->shut_down && client->pending_length == 0) {
        client->shut_down = 1;
        if (shutdown(client->sock, SHUT_WR) == -1) {
            say(stderr, "shutdown: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Tell epoll what to watch for this client, when that changed (a system call each time). */
static void update_interest(int epoll, struct client *client, int operation, int echo_mode) {
    short wanted = wanted_events(client, echo_mode);
    int interest = (wanted & POLLIN ? EPOLLIN : 0) | (wanted & POLLOUT ? EPOLLOUT : 0);
    if (operation == EPOLL_CTL_MOD && interest == client->interest)
        return;
    struct epoll_event event = {.events = (uint32_t)interest, .data.ptr = client};
    if (epoll_ctl(epoll, operation, client->sock, &event) == -1)
        die("epoll_ctl");
    client->interest = interest;
}

#else /* not Linux */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    fputs("epoll_server: epoll is Linux only; use poll_server\n", stderr);
    return EXIT_FAILURE;
}
#endif
