/* udp_receiver.c: "Communication by datagram", the receiving side (start it first).
 * Waits for one datagram, prints it, and answers the sender with "got it!".
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
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "8765"
#define REPLY "got it!"
/* The tutorial's buffer, and the largest UDP payload over IPv4: 65535 bytes less the 8-byte
 * UDP header and the 20-byte IPv4 header. */
enum { BUFFER_SIZE = 1024, MAX_DATAGRAM = 65535 - 8 - 20, MAX_COUNT = 1000000 };

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *reply;
    long count;
};

static struct options parse_options(int argc, char **argv);
static socklen_t make_address(const struct options *options, int type,
                              struct sockaddr_storage *address);
static void print_ready_line(int sock, const struct options *options);
static void claim_socket_file(const char *path, int type);
static void stop_on_signal(int signal_number);
static size_t load_message(const char *text, char *message, size_t size, const char *too_long);
static void print_received(const char *data, size_t length);

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    keep_standard_descriptors();
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);
    signal(SIGINT, stop_on_signal);
    signal(SIGTERM, stop_on_signal);
    static char reply[MAX_DATAGRAM + 1];
    size_t reply_length =
        load_message(options.reply, reply, sizeof reply, "message too long for one datagram");

    /* A datagram socket of the chosen family: IPv4, IPv6 or UNIX. */
    int sock = socket(options.family, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Bind to a fixed, known address so that the sender can find us. A datagram socket
     * needs no connection: once bound, it can receive. (sockaddr_storage holds an address
     * of any family; the socket calls take a pointer to the generic struct sockaddr.) */
    struct sockaddr_storage address;
    socklen_t address_length = make_address(&options, SOCK_DGRAM, &address);
    if (options.path != NULL) /* a UNIX address: a file */
        claim_socket_file(options.path, SOCK_DGRAM);
    if (bind(sock, (struct sockaddr *)&address, address_length) == -1)
        die("bind");
    print_ready_line(sock, &options);

    for (long answered = 0; options.count == 0 || answered < options.count; answered++) {
        if (printf("Waiting for data...\n") < 0) /* a broken stdout is said at once */
            die("stdout");

        /* Receive one datagram and the address it came from, as the tutorial's receiveFrom.
         * We use recvmsg, the general form of recvfrom, because it also tells (MSG_TRUNC)
         * when the datagram did not fit: the rest of it is lost. A buffer of size 0 would
         * receive nothing. A signal may interrupt the wait: RETRY_ON_EINTR is the
         * tutorial's `goto try_again`. */
        char buffer[BUFFER_SIZE];
        struct sockaddr_storage sender;
        struct iovec into = {.iov_base = buffer, .iov_len = sizeof buffer};
        struct msghdr datagram = {
            .msg_name = &sender, .msg_namelen = sizeof sender, .msg_iov = &into, .msg_iovlen = 1};
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, recvmsg(sock, &datagram, 0));
        if (bytes_read == -1)
            die("recvmsg");

        /* Zero bytes is an empty datagram, not a closed connection: there is none. */
        printf("Received: ");
        print_received(buffer, (size_t)bytes_read);
        if (printf("\n") < 0)
            die("stdout");
        if (datagram.msg_flags & MSG_TRUNC)
            fprintf(stderr, "%s: datagram truncated: longer than the %d-byte buffer\n",
                    program_name, BUFFER_SIZE);

        /* Answer the address the datagram came from. A datagram is sent whole or not
         * at all, so there is no partial send to loop over. A reply that cannot go out is
         * said and skipped: one peer must not stop the receiver for the others. That
         * includes a UNIX peer that never reads, whose full queue would make sendto wait:
         * MSG_DONTWAIT (Linux, the BSDs, macOS) makes it fail at once (EAGAIN) instead. */
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, sendto(sock, reply, reply_length, MSG_DONTWAIT,
                                          (struct sockaddr *)&sender, datagram.msg_namelen));
        if (bytes_sent == -1) /* it has gone, never had an address, or never reads */
            fprintf(stderr, "%s: sendto: %s: reply skipped\n", program_name, strerror(errno));
    }

    close(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}

/* ---- The rest is plumbing: options, addresses, signals, socket files, output. ---- */

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                            \
    "usage: udp_receiver [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n" \
    "  -4, -6     IPv4 (default) or IPv6\n"                                              \
    "  -u PATH    a UNIX datagram socket at PATH instead of IP\n"                        \
    "  -H HOST    address to bind (default localhost)\n"                                 \
    "  -p PORT    port to bind (default " DEFAULT_PORT "; 0 picks a free one)\n"         \
    "  -m TEXT    reply to send (default \"got it!\"; - reads it from stdin)\n"          \
    "  -n COUNT   datagrams to answer before exiting (default 1; 0 = forever)\n"

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
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, REPLY, 1};
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:n:")) != -1) {
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
        case 'm': options.reply = optarg; break;
        case 'n': options.count = parse_number(optarg, "count", MAX_COUNT); break;
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
