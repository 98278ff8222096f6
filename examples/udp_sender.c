/* udp_sender.c: "Communication by datagram", the sending side.
 * Sends "Hello!" to udp_receiver, then waits for its reply and prints it.
 *
 *   Terminal 1: ./bin/udp_receiver          Terminal 2: ./bin/udp_sender
 *
 * -6 for IPv6, -u PATH for a UNIX datagram socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "8765"
#define MESSAGE "Hello!"
enum { BUFFER_SIZE = 1024, MAX_DATAGRAM = 65507, DEFAULT_TIMEOUT = 5, MAX_TIMEOUT = 86400 };

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                            \
    "usage: udp_sender [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-t SECONDS]\n" \
    "  -4, -6      IPv4 (default) or IPv6\n"                                             \
    "  -u PATH     send to the UNIX datagram socket at PATH instead of IP\n"             \
    "  -H HOST     the receiver's host (default localhost)\n"                            \
    "  -p PORT     the receiver's port (default 8765)\n"                                 \
    "  -m TEXT     message to send (default \"Hello!\"; - reads it from stdin)\n"        \
    "  -t SECONDS  how long to wait for the reply (default 5; 0 = forever)\n"

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *message;
    long timeout;
};

/* Every kind of address fits in here; `any` is the view that bind and sendto take. */
union socket_address {
    struct sockaddr any;
    struct sockaddr_in ip4;
    struct sockaddr_in6 ip6;
    struct sockaddr_un local;
};

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, MESSAGE, DEFAULT_TIMEOUT};
    int host_or_port_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:t:")) != -1) {
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
        case 'm': options.message = optarg; break;
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

/* The address we bind: any address and any port (the tutorial's ADDR_ANY and PORT_ANY),
 * since we only receive replies to what we send. A UNIX socket has no "any": the reply
 * needs a name to go to, so we take the receiver's path with our process id added. */
static char own_socket_file[MAX_PATH_LENGTH + 1];

static socklen_t make_own_address(const struct options *options, union socket_address *address) {
    memset(address, 0, sizeof *address);
    address->any.sa_family = options->family;
    if (options->family == AF_INET) {
        address->ip4.sin_addr.s_addr = htonl(INADDR_ANY);
        return sizeof address->ip4;
    }
    if (options->family == AF_INET6) {
        address->ip6.sin6_addr = in6addr_any;
        return sizeof address->ip6;
    }
    int length =
        snprintf(own_socket_file, sizeof own_socket_file, "%s.%ld", options->path, (long)getpid());
    if (length < 0 || (size_t)length >= sizeof own_socket_file)
        usage_error("socket path too long to add our process id: %s", options->path);
    strcpy(address->local.sun_path, own_socket_file);
    return sizeof address->local;
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
    static char message[MAX_DATAGRAM + 1];
    size_t message_length = load_message(options.message, message, sizeof message);

    /* A datagram socket of the chosen family: IPv4, IPv6 or UNIX. */
    int sock = socket(options.family, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Bind our own end; the receiver learns it from each datagram we send. */
    union socket_address own_address;
    socklen_t own_length = make_own_address(&options, &own_address);
    if (options.family == AF_UNIX)
        socket_file = own_socket_file; /* from now on a signal removes it */
    if (bind(sock, &own_address.any, own_length) == -1)
        die("bind");
    atexit(remove_socket_file);

    /* A lost datagram or a missing receiver is never reported: without a receive timeout
     * (SO_RCVTIMEO, see "About timeouts") we would wait for the reply forever. */
    struct timeval timeout = {.tv_sec = options.timeout};
    if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == -1)
        die("setsockopt SO_RCVTIMEO");

    printf("Sending data...\n");

    /* No connection: each datagram names its destination. It goes whole or not at all. */
    union socket_address receiver;
    socklen_t receiver_length = make_address(&options, &receiver);
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent,
                   sendto(sock, message, message_length, 0, &receiver.any, receiver_length));
    if (bytes_sent == -1)
        die("sendto");

    /* Any socket can both send and receive: wait here for the reply. recvmsg is recvfrom
     * that also tells (MSG_TRUNC) when the datagram was longer than our buffer. */
    char buffer[BUFFER_SIZE];
    struct iovec into = {.iov_base = buffer, .iov_len = sizeof buffer};
    struct msghdr datagram = {.msg_iov = &into, .msg_iovlen = 1};
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recvmsg(sock, &datagram, 0));
    if (bytes_read == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        fprintf(stderr, "%s: no reply within %ld s — is udp_receiver running?\n", program_name,
                options.timeout);
        exit(EXIT_FAILURE);
    }
    if (bytes_read == -1)
        die("recvmsg");

    printf("Got response: ");
    if (write_received(stdout, buffer, bytes_read) == -1)
        die("stdout");
    printf("\n");
    if (datagram.msg_flags & MSG_TRUNC)
        fprintf(stderr, "%s: datagram truncated: longer than the %d-byte buffer\n", program_name,
                BUFFER_SIZE);

    close(sock);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}
