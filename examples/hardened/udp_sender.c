/* udp_sender.c: "Communication by datagram", the sending side.
 * Sends "Hello!" to udp_receiver, then waits for its reply and prints it.
 *
 *   Terminal 1: ./bin/udp_receiver          Terminal 2: ./bin/udp_sender
 *
 * -6 for IPv6, -u PATH for a UNIX datagram socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "8765"
#define MESSAGE "Hello!"
/* The tutorial's buffer, and the largest UDP payload over IPv4: 65535 bytes less the 8-byte
 * UDP header and the 20-byte IPv4 header. */
enum { BUFFER_SIZE = 1024, MAX_DATAGRAM = 65535 - 8 - 20 };
enum { DEFAULT_TIMEOUT = 5, MAX_TIMEOUT = 86400 };

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *message;
    long timeout;
};

static struct options parse_options(int argc, char **argv);
static socklen_t make_address(const struct options *options, int type,
                              struct sockaddr_storage *address);
static socklen_t make_own_address(const struct options *options, struct sockaddr_storage *address);
static void remove_socket_file(void);
static void stop_on_signal(int signal_number);
static size_t load_message(const char *text, char *message, size_t size, const char *too_long);
static void print_received(const char *data, size_t length);
static long long now_ms(void);
static void wait_until_ready(int sock, short events, long long deadline_ms, long timeout);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    keep_standard_descriptors();
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    signal(SIGINT, stop_on_signal);
    signal(SIGTERM, stop_on_signal);
    static char message[MAX_DATAGRAM + 1];
    size_t message_length =
        load_message(options.message, message, sizeof message, "message too long for one datagram");

    /* A datagram socket of the chosen family: IPv4, IPv6 or UNIX. */
    int sock = socket(options.family, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Bind our own end to any address and any port (the tutorial's ADDR_ANY, PORT_ANY): we
     * only receive replies, and the receiver learns our address from each datagram. */
    struct sockaddr_storage own_address;
    socklen_t own_length = make_own_address(&options, &own_address);
    if (bind(sock, (struct sockaddr *)&own_address, own_length) == -1)
        die("bind");
    atexit(remove_socket_file);

    /* The tutorial's sendTo names the receiver in each call. We connect the datagram socket to
     * it instead (no handshake: the kernel only notes the address), and then use send: our
     * socket then takes replies from the receiver only (a datagram from anyone else is
     * dropped), and learns of a closed port at once (ECONNREFUSED) instead of waiting. */
    struct sockaddr_storage receiver;
    socklen_t receiver_length = make_address(&options, SOCK_DGRAM, &receiver);
    int connected;
    RETRY_ON_EINTR(connected, connect(sock, (struct sockaddr *)&receiver, receiver_length));
    if (connected == -1)
        die("connect");

    /* A lost datagram, or a receiver that does not answer, is never reported: without a limit
     * ("About timeouts") we would wait for ever. -t is a deadline for sending and receiving both
     * (see wait_until_ready): a timeout per call, as SO_RCVTIMEO gives, would start again
     * each time the call is interrupted. */
    long long deadline_ms = now_ms() + options.timeout * 1000;
    if (printf("Sending data...\n") < 0)
        die("stdout");

    /* One datagram: it goes whole or not at all. */
    wait_until_ready(sock, POLLOUT, deadline_ms, options.timeout);
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent, send(sock, message, message_length, 0));
    if (bytes_sent == -1)
        die("send");

    /* Any socket can both send and receive: wait here for the reply. recvmsg is recvfrom
     * that also tells (MSG_TRUNC) when the datagram was longer than our buffer. */
    wait_until_ready(sock, POLLIN, deadline_ms, options.timeout);
    char buffer[BUFFER_SIZE];
    struct iovec into = {.iov_base = buffer, .iov_len = sizeof buffer};
    struct msghdr datagram = {.msg_iov = &into, .msg_iovlen = 1};
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recvmsg(sock, &datagram, 0));
    if (bytes_read == -1)
        die("recvmsg");

    printf("Got response: ");
    print_received(buffer, (size_t)bytes_read);
    if (printf("\n") < 0)
        die("stdout");
    if (datagram.msg_flags & MSG_TRUNC)
        fprintf(stderr, "%s: datagram truncated: longer than the %d-byte buffer\n", program_name,
                BUFFER_SIZE);

    close(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}

/* ---- The rest is plumbing: options, addresses, signals, socket files, output. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)
#define PID_SUFFIX_LENGTH (sizeof ".2147483647" - 1) /* "." and the largest process id */

#define USAGE                                                                            \
    "usage: udp_sender [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-t SECONDS]\n" \
    "  -4, -6      IPv4 (default) or IPv6\n"                                             \
    "  -u PATH     send to the UNIX datagram socket at PATH instead of IP\n"             \
    "  -H HOST     the receiver's host (default localhost)\n"                            \
    "  -p PORT     the receiver's port (default " DEFAULT_PORT ")\n"                     \
    "  -m TEXT     message to send (default \"Hello!\"; - reads it from stdin)\n"        \
    "  -t SECONDS  how long to wait for the reply (default 5; 0 = forever)\n"

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
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, MESSAGE, DEFAULT_TIMEOUT};
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:t:")) != -1) {
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
        case 'm': options.message = optarg; break;
        case 't': options.timeout = parse_number(optarg, "timeout", MAX_TIMEOUT); break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default: usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (options.family == AF_UNIX && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (options.family == AF_UNIX && strlen(options.path) > MAX_PATH_LENGTH - PID_SUFFIX_LENGTH)
        usage_error("socket path too long (at most %zu bytes: we add .PID to it for our own "
                    "socket): %s",
                    MAX_PATH_LENGTH - PID_SUFFIX_LENGTH, options.path);
    if (options.family != AF_UNIX)
        options.family = family_for(options.host, options.family, family_given);
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

/* Our UNIX socket file, if we made one: it outlives the socket, so we remove it at exit. */
static const char *socket_file;

static void remove_socket_file(void) {
    if (socket_file != NULL)
        unlink(socket_file);
}

/* Our own address: any address and any port for IP. A UNIX socket has no "any": the reply
 * needs a name to go to, so we take the receiver's path with our process id added. */
static socklen_t make_own_address(const struct options *options, struct sockaddr_storage *address) {
    static char own_socket_file[MAX_PATH_LENGTH + 1];
    memset(address, 0, sizeof *address);
    if (options->family == AF_INET) {
        struct sockaddr_in *ip4 = (struct sockaddr_in *)address;
        ip4->sin_family = AF_INET;
        ip4->sin_addr.s_addr = htonl(INADDR_ANY);
        ip4->sin_port = htons(0);
        return sizeof *ip4;
    }
    if (options->family == AF_INET6) {
        struct sockaddr_in6 *ip6 = (struct sockaddr_in6 *)address;
        ip6->sin6_family = AF_INET6;
        ip6->sin6_addr = in6addr_any;
        ip6->sin6_port = htons(0);
        return sizeof *ip6;
    }
    int length =
        snprintf(own_socket_file, sizeof own_socket_file, "%s.%ld", options->path, (long)getpid());
    if (length < 0 || (size_t)length >= sizeof own_socket_file)
        usage_error("socket path too long to add our process id: %s", options->path);
    struct sockaddr_un *local = (struct sockaddr_un *)address;
    local->sun_family = AF_UNIX;
    strcpy(local->sun_path, own_socket_file);
    socket_file = own_socket_file; /* from now on a signal removes it */
    return sizeof *local;
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

/* Milliseconds on a clock that only goes forward (the wall clock may be set back). */
static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait until the socket is ready for `events` (POLLOUT: room to send; POLLIN: a reply, or an
 * error such as ECONNREFUSED), or exit once the deadline of -t has passed (0: no limit).
 * poll waits for what is left of it, so that a signal, or a stop (Ctrl-Z, then fg), does not
 * start the time again. */
static void wait_until_ready(int sock, short events, long long deadline_ms, long timeout) {
    for (;;) {
        long long left_ms = deadline_ms - now_ms();
        if (timeout > 0 && left_ms <= 0) {
            fprintf(stderr, "%s: %s within %ld s — is udp_receiver running?\n", program_name,
                    events == POLLIN ? "no reply" : "could not send", timeout);
            exit(EXIT_FAILURE);
        }
        struct pollfd ready = {.fd = sock, .events = events};
        int result = poll(&ready, 1, timeout > 0 ? (int)left_ms : -1);
        if (result == 1)
            return;
        if (result == -1 && errno != EINTR)
            die("poll");
    }
}
