/* udp_receiver.c: "Communication by datagram", the receiving side (start it first).
 * Waits for one datagram, prints it, and answers the sender with "got it!".
 *
 *   Terminal 1: ./bin/udp_receiver          Terminal 2: ./bin/udp_sender
 *
 * -6 for IPv6, -u PATH for a UNIX datagram socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "8765"
#define REPLY "got it!"
enum { BUFFER_SIZE = 1024, MAX_DATAGRAM = 65507, MAX_COUNT = 1000000 };

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                            \
    "usage: udp_receiver [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n" \
    "  -4, -6     IPv4 (default) or IPv6\n"                                              \
    "  -u PATH    a UNIX datagram socket at PATH instead of IP\n"                        \
    "  -H HOST    address to bind (default localhost)\n"                                 \
    "  -p PORT    port to bind (default 8765; 0 picks a free one)\n"                     \
    "  -m TEXT    reply to send (default \"got it!\"; - reads it from stdin)\n"          \
    "  -n COUNT   datagrams to answer before exiting (default 1; 0 = forever)\n"

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *reply;
    long count;
};

/* Every kind of address fits in here; `any` is the view that bind and sendto take. */
union socket_address {
    struct sockaddr any;
    struct sockaddr_in ip4;
    struct sockaddr_in6 ip6;
    struct sockaddr_un local;
};

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, REPLY, 1};
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
        case 'm': options.reply = optarg; break;
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
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    socklen_t length = found->ai_addrlen;
    memcpy(address, found->ai_addr, length);
    freeaddrinfo(found);
    return length;
}

/* One line on stderr once we are bound: with -p 0 only we know the port. */
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

/* The message to send: the -m text, or all of stdin for "-m -". A datagram holds at most
 * MAX_DATAGRAM bytes, one less than `size`. */
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
        fail("message too long for one datagram", "at most 65507 bytes");
    return length;
}

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    signal(SIGINT, stop_on_signal);
    signal(SIGTERM, stop_on_signal);

    /* The reply must fit in one datagram. */
    static char reply[MAX_DATAGRAM + 1];
    size_t reply_length = load_message(options.reply, reply, sizeof reply);

    /* A datagram socket of the chosen family: IPv4, IPv6 or UNIX. */
    int sock = socket(options.family, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Bind to a fixed, known address so that the sender can find us. A datagram socket
     * needs no connection: once bound, it can receive. */
    union socket_address address;
    socklen_t address_length = make_address(&options, &address);
    if (options.family == AF_UNIX) {
        remove_stale_socket(options.path);
        socket_file = options.path; /* from now on a signal removes it */
    }
    if (bind(sock, &address.any, address_length) == -1)
        die("bind");
    atexit(remove_socket_file);
    print_ready_line(sock, &options);

    for (long answered = 0; options.count == 0 || answered < options.count; answered++) {
        printf("Waiting for data...\n");

        /* Receive one datagram and the address it came from, as the tutorial's receiveFrom.
         * We use recvmsg, the general form of recvfrom, because it also tells (MSG_TRUNC)
         * when the datagram did not fit: the rest of it is lost. A buffer of size 0 would
         * receive nothing. A signal may interrupt the wait: RETRY_ON_EINTR is the
         * tutorial's `goto try_again`. */
        char buffer[BUFFER_SIZE];
        union socket_address sender;
        struct iovec into = {.iov_base = buffer, .iov_len = sizeof buffer};
        struct msghdr datagram = {
            .msg_name = &sender, .msg_namelen = sizeof sender, .msg_iov = &into, .msg_iovlen = 1};
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, recvmsg(sock, &datagram, 0));
        if (bytes_read == -1)
            die("recvmsg");

        /* Zero bytes is an empty datagram, not a closed connection: there is none. */
        printf("Received: ");
        if (write_received(stdout, buffer, bytes_read) == -1)
            die("stdout");
        printf("\n");
        if (datagram.msg_flags & MSG_TRUNC)
            fprintf(stderr, "%s: datagram truncated: longer than the %d-byte buffer\n",
                    program_name, BUFFER_SIZE);

        /* Answer the address the datagram came from. A datagram is sent whole or not
         * at all, so there is no partial send to loop over. */
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent,
                       sendto(sock, reply, reply_length, 0, &sender.any, datagram.msg_namelen));
        if (bytes_sent == -1)
            die("sendto");
    }

    close(sock);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}
