/* select_server.c: "Event-driven programming": one server, many clients at once, select().
 * By default it speaks the tutorial's protocol: greets each client with "Hello!", shuts down
 * its sending side, notes each chunk the client sends, and exits once five clients have come
 * and gone. With -e it is an echo server instead: it sends back every byte it receives.
 *
 *   Terminal 1: ./bin/select_server         Terminals 2 to 6: ./bin/tcp_client
 *   Terminal 1: ./bin/select_server -e      Terminals 2 and more: ./bin/select_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options. Where this port departs
 * from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { BACKLOG = 10, PENDING_SIZE = 4096, MAX_COUNT = 1000000 };
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, MAX_TIMEOUT = 86400 };

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *greeting;
    long count, timeout;
    int echo_mode;
};

struct client {
    int sock;
    int finished, shut_down; /* its sending side has ended; ours has (the tutorial's protocol) */
    size_t pending_length;
    char pending[PENDING_SIZE]; /* output not sent yet: the greeting, and with -e the echo */
};

static struct options parse_options(int argc, char **argv);
static socklen_t make_address(const struct options *options, int type,
                              struct sockaddr_storage *address);
static void print_ready_line(int sock, const struct options *options);
static void claim_socket_file(const char *path);
static void stop_on_signal(int signal_number);
static size_t load_message(const char *text, char *message, size_t size, const char *too_long);
static int accept_client(int listener, int *accepting);
static struct client *new_client(int sock, const char *greeting, size_t greeting_length);
static int wants_to_read(const struct client *client, int echo_mode);
static int wants_to_write(const struct client *client, int echo_mode);
static int receive_from(struct client *client, int echo_mode);
static int send_pending(struct client *client, int echo_mode);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    signal(SIGINT, stop_on_signal);
    signal(SIGTERM, stop_on_signal);
    static char greeting[PENDING_SIZE + 1];
    size_t greeting_length =
        load_message(options.greeting, greeting, sizeof greeting, "greeting too long");

    /* It starts like tcp_server: create the socket, bind an address, and listen. */
    int listener = socket(options.family, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");
    int reuse = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt SO_REUSEADDR");
    struct sockaddr_storage address;
    socklen_t address_length = make_address(&options, SOCK_STREAM, &address);
    if (options.family == AF_UNIX)
        claim_socket_file(options.path);
    if (bind(listener, (struct sockaddr *)&address, address_length) == -1)
        die("bind");
    if (listen(listener, BACKLOG) == -1)
        die("listen");
    printf("listening\n");
    print_ready_line(listener, &options);

    /* Readiness can be a false alarm (select(2) says so): accept on a blocking listener would
     * then wait, and stall every client. Non-blocking (the tutorial's blocking = false), it
     * fails with EAGAIN instead. */
    int flags = fcntl(listener, F_GETFL);
    if (flags == -1 || fcntl(listener, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");

    /* The connected clients. An fd_set only has room for descriptors below FD_SETSIZE, so no
     * client can have a larger one and this array never overflows. */
    struct client *clients[FD_SETSIZE];
    int client_count = 0;
    long disconnected_count = 0;
    int accepting = 1; /* whether we watch the listener */

    while (options.count == 0 || disconnected_count < options.count) {
        /* select() changes the sets it is given, so fill them afresh on every turn: the
         * listener, and each client we want to read from. Unlike the tutorial we also ask
         * when a client can take more output (write_set): a send to a client that does not
         * read would otherwise block the whole server. */
        fd_set read_set, write_set;
        FD_ZERO(&read_set);
        FD_ZERO(&write_set);
        if (accepting)
            FD_SET(listener, &read_set);
        int highest = listener;
        for (int i = 0; i < client_count; i++) {
            if (wants_to_read(clients[i], options.echo_mode))
                FD_SET(clients[i]->sock, &read_set);
            if (wants_to_write(clients[i], options.echo_mode))
                FD_SET(clients[i]->sock, &write_set);
            highest = clients[i]->sock > highest ? clients[i]->sock : highest;
        }

        /* Wait until a socket is ready (a read or write will not block: data, a new
         * connection, room to send, the peer's close, or an error) or the timeout passes.
         * select may change the timeout too, so set it on every turn. */
        struct timeval timeout = {.tv_sec = options.timeout};
        int event_count =
            select(highest + 1, &read_set, &write_set, NULL, options.timeout > 0 ? &timeout : NULL);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("select");
        if (event_count == 0) {
            printf("Select timed out.\n");
            continue;
        }

        /* A readable listener means a client is waiting: accept it and queue its greeting.
         * FD_SET on a descriptor of FD_SETSIZE or more would write past the fd_set. */
        if (FD_ISSET(listener, &read_set)) {
            int sock = accept_client(listener, &accepting);
            struct client *client = NULL;
            if (sock >= FD_SETSIZE) {
                fprintf(stderr, "%s: refusing a client: select handles descriptors below %d\n",
                        program_name, FD_SETSIZE);
                close(sock);
            } else if (sock != -1) {
                client = new_client(sock, greeting, greeting_length);
            }
            if (client != NULL)
                clients[client_count++] = client;
        }

        /* Each client that is ready: read what it sent, and send what it can take now. */
        for (int i = 0; i < client_count; i++) {
            struct client *client = clients[i];
            int readable = FD_ISSET(client->sock, &read_set);
            int writable = FD_ISSET(client->sock, &write_set);
            int failed = readable && receive_from(client, options.echo_mode) == -1;
            if (!failed && (readable || writable))
                failed = send_pending(client, options.echo_mode) == -1;

            /* Done with this client once it has finished and has all its output, or failed:
             * close it, and move the last client into its place to look at next. */
            if (failed || (client->finished && client->pending_length == 0)) {
                close(client->sock);
                free(client);
                clients[i--] = clients[--client_count];
                disconnected_count++;
                accepting = 1; /* a descriptor is free again */
                printf("socket disconnected\n");
            }
        }
    }

    /* The count is reached: close the clients still connected, then the listener. */
    for (int i = 0; i < client_count; i++) {
        close(clients[i]->sock);
        free(clients[i]);
    }
    close(listener);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}

/* ---- The rest is plumbing: options, addresses, signals, socket files, clients. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                               \
    "usage: select_server [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n"   \
    "                     [-t SECONDS] [-e]\n"                                              \
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
    if (options.path && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (options.path && strlen(options.path) > MAX_PATH_LENGTH)
        usage_error("socket path too long (at most %zu bytes): %s", MAX_PATH_LENGTH, options.path);
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

/* Free PATH for bind if it holds a socket file left by an earlier run (never delete anything
 * else), and take it as ours: from now on a signal or exit removes it. */
static void claim_socket_file(const char *path) {
    struct stat status;
    if (lstat(path, &status) == 0) {
        if (!S_ISSOCK(status.st_mode))
            fail(path, "exists and is not a socket");
        if (unlink(path) == -1)
            die(path);
    }
    socket_file = path;
    atexit(remove_socket_file);
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

/* Read all of `input` into buffer. Returns its size, or -1 (errno EMSGSIZE when it fills
 * the buffer: pass one byte more than the longest you accept). */
static ssize_t read_whole(int input, char *buffer, size_t size) {
    size_t filled = 0;
    for (;;) {
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, read(input, buffer + filled, size - filled));
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

/* Make send, recv and accept on this socket return at once (EAGAIN) instead of waiting. */
static void make_nonblocking(int sock) {
    int flags = fcntl(sock, F_GETFL);
    if (flags == -1 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");
}

/* A new client: its greeting waits in its pending output until the socket can take it.
 * Returns NULL (and closes the socket) when there is no memory for it. */
static struct client *new_client(int sock, const char *greeting, size_t greeting_length) {
    struct client *client = malloc(sizeof *client);
    if (client == NULL) {
        fprintf(stderr, "%s: no memory for another client\n", program_name);
        close(sock);
        return NULL;
    }
    make_nonblocking(sock);
    *client = (struct client){.sock = sock, .pending_length = greeting_length};
    memcpy(client->pending, greeting, greeting_length);
    return client;
}

/* Accept the client that waits, after the tutorial's "accepting new socket". Returns its
 * socket, or -1 when there is none after all or accept failed (said on stderr). Out of
 * descriptors (EMFILE, ENFILE), stop watching the listener (*accepting = 0) until a client
 * leaves: else the waiting connection would wake us at once, forever. */
static int accept_client(int listener, int *accepting) {
    printf("accepting new socket\n");
    int sock;
    RETRY_ON_EINTR(sock, accept(listener, NULL, NULL));
    if (sock == -1 && (errno == EMFILE || errno == ENFILE))
        *accepting = 0;
    if (sock == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
        fprintf(stderr, "%s: accept: %s\n", program_name, strerror(errno));
    return sock;
}

/* Whether to read from this client now: not after its end, and for an echo only while its
 * pending output has room, so that one that sends and never reads costs us PENDING_SIZE
 * bytes at most (backpressure). The tutorial's protocol drops what it reads: always room. */
static int wants_to_read(const struct client *client, int echo_mode) {
    return !client->finished && (!echo_mode || client->pending_length < PENDING_SIZE);
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
        fprintf(stderr, "%s: recv: %s\n", program_name, strerror(errno));
        return -1;
    }
    if (bytes_read == 0)
        client->finished = 1; /* the client has shut down its sending side */
    if (bytes_read > 0 && echo_mode)
        client->pending_length += (size_t)bytes_read;
    if (bytes_read > 0)
        printf("socket sent data\n");
    return 0;
}

/* Whether to send to this client when it can take more: while output is pending, and in the
 * tutorial's protocol until we have shut down our side after the greeting. */
static int wants_to_write(const struct client *client, int echo_mode) {
    return client->pending_length > 0 || (!echo_mode && !client->shut_down);
}

/* Send as much pending output as the kernel takes now, without waiting; keep the rest. In
 * the tutorial's protocol, once the greeting is all sent, shut down our sending side: the
 * client sees the end of it (its recv returns 0). Returns -1 if the client has gone. */
static int send_pending(struct client *client, int echo_mode) {
    if (client->pending_length > 0) {
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, send(client->sock, client->pending, client->pending_length, 0));
        if (bytes_sent == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
            fprintf(stderr, "%s: send: %s\n", program_name, strerror(errno));
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
            fprintf(stderr, "%s: shutdown: %s\n", program_name, strerror(errno));
            return -1;
        }
    }
    return 0;
}
