/* tcp_client.c: "Communication by stream", the client.
 * Connects to tcp_server, prints everything the server sends until it has finished, then
 * replies "Thanks! Bye.". With -e it sends first and prints the echo (for select_server).
 *
 *   Terminal 1: ./bin/tcp_server            Terminal 2: ./bin/tcp_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

#include "socket_helpers.h"

#define DEFAULT_HOST "localhost"
#define DEFAULT_PORT "2525"
#define REPLY "Thanks! Bye."
enum { MAX_TIMEOUT = 86400, HINT_MS = 3000 };

/* sun_path is a fixed array (108 bytes on Linux, 104 on macOS) that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

#define USAGE                                                                                 \
    "usage: tcp_client [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-t SECONDS] [-e]\n" \
    "  -4, -6      IPv4 (default) or IPv6\n"                                                  \
    "  -u PATH     connect to the UNIX stream socket at PATH instead of IP\n"                 \
    "  -H HOST     the server's host (default localhost)\n"                                   \
    "  -p PORT     the server's port (default 2525)\n"                                        \
    "  -m TEXT     reply to send (default \"Thanks! Bye.\"; - sends all of stdin)\n"          \
    "  -t SECONDS  give up when sending or receiving stalls this long (0 = never)\n"          \
    "  -e          echo mode: send first, then print all the server sends back\n"

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path, *reply;
    long timeout;
    int echo_mode;
};

static struct options parse_options(int argc, char **argv) {
    struct options options = {AF_INET, DEFAULT_HOST, DEFAULT_PORT, NULL, REPLY, 0, 0};
    int host_or_port_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46u:H:p:m:t:e")) != -1) {
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

/* Create a socket and connect it to the server. A host name may stand for several
 * addresses: try each in turn until one accepts. Exits with the last error if none does. */
static int connect_to_server(const struct options *options) {
    if (options->family == AF_UNIX) {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strcpy(address.sun_path, options->path); /* parse_options checked its length */
        int sock = socket(AF_UNIX, SOCK_STREAM, 0);
        if (sock == -1)
            die("socket");
        if (connect_retry(sock, (struct sockaddr *)&address, sizeof address) == -1)
            die("connect");
        return sock;
    }
    /* "localhost" means the loopback of the family: /etc/hosts may lack ::1. */
    const char *host = options->host;
    if (strcmp(host, "localhost") == 0)
        host = options->family == AF_INET ? "127.0.0.1" : "::1";
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    int sock = -1;
    for (struct addrinfo *candidate = found; candidate && sock == -1;
         candidate = candidate->ai_next) {
        sock = socket(candidate->ai_family, candidate->ai_socktype, candidate->ai_protocol);
        if (sock == -1)
            continue;
        if (connect_retry(sock, candidate->ai_addr, candidate->ai_addrlen) == -1) {
            int connect_error = errno;
            close(sock);
            sock = -1;
            errno = connect_error;
        }
    }
    freeaddrinfo(found);
    if (sock == -1)
        die("connect");
    return sock;
}

/* Send our reply whole: the -m text, or all of stdin for "-m -", chunk by chunk. */
static void send_reply(int sock, const char *reply, long timeout) {
    int sent = strcmp(reply, "-") == 0 ? send_until_eof(sock, STDIN_FILENO)
                                       : send_all(sock, reply, strlen(reply));
    if (sent == FILE_FAILED)
        die("stdin");
    if (sent == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        fprintf(stderr, "%s: could not send for %ld s\n", program_name, timeout);
        exit(EXIT_FAILURE);
    }
    if (sent == -1)
        die("send");
}

/* Milliseconds on a clock that only goes forward (the wall clock may be set back). */
static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait until the server sends something or ends, for at most -t seconds (0: no limit). After
 * HINT_MS of silence say once, on stderr, what we wait for: against an echo server both
 * sides would wait for the other in silence for ever. */
static void wait_for_data(int sock, const struct options *options, int *hinted) {
    long long start = now_ms(), limit_ms = options->timeout * 1000, hint_ms = HINT_MS;
    for (;;) {
        long long waited_ms = now_ms() - start;
        if (options->timeout > 0 && waited_ms >= limit_ms) {
            printf("\n"); /* ends the line before the error line */
            fprintf(stderr, "%s: no data within %ld s\n", program_name, options->timeout);
            exit(EXIT_FAILURE);
        }
        if (!*hinted && waited_ms >= hint_ms) {
            fflush(stdout);
            fprintf(stderr,
                    "%s: still waiting for the server to end its message (an echo server "
                    "waits for ours first: use tcp_client -e)\n",
                    program_name);
            *hinted = 1;
        }
        long long next_ms = options->timeout > 0 ? limit_ms : -1;
        if (!*hinted && (next_ms == -1 || hint_ms < next_ms))
            next_ms = hint_ms;
        struct pollfd readable = {.fd = sock, .events = POLLIN};
        int ready = poll(&readable, 1, next_ms == -1 ? -1 : (int)(next_ms - waited_ms));
        if (ready == 1)
            return;
        if (ready == -1 && errno != EINTR)
            die("poll");
    }
}

/* Print everything the server sends, in whatever pieces it comes, until it shuts down
 * its sending side (recv returns 0). */
static void print_server_message(int sock, const struct options *options) {
    printf("Received from server: ");
    int hinted = options->echo_mode; /* no hint for -e: it has sent all it had */
    char buffer[IO_CHUNK_SIZE];
    ssize_t bytes_read;
    do {
        wait_for_data(sock, options, &hinted);
        bytes_read = recv_retry(sock, buffer, sizeof buffer);
        if (bytes_read > 0 && write_received(stdout, buffer, (size_t)bytes_read) == -1)
            die("stdout");
    } while (bytes_read > 0);
    int receive_error = errno;
    printf("\n"); /* ends the line, also before an error line */
    errno = receive_error;
    if (bytes_read == -1)
        die("recv");
}

int main(int argc, char **argv) {
    set_program_name(argv[0]);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows at once, also into a pipe */
    struct options options = parse_options(argc, argv);

    /* A client only needs a socket connected to the server (try it with no server
     * running: connect fails with "Connection refused"). */
    int sock = connect_to_server(&options);
    printf("Client connected!\n");

    /* Optionally give up when sending stalls ("About timeouts"): SO_SNDTIMEO when the server
     * stops taking what we send. (Receiving waits in poll: see wait_for_data.) */
    struct timeval timeout = {.tv_sec = options.timeout};
    if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) == -1)
        die("setsockopt");

    if (options.echo_mode) {
        /* Echo mode: send first, then shut down our sending side so that the server
         * sees the end of our message, and print everything it sends back. We read only
         * after sending it all: fine for a message, but an echo larger than the socket
         * buffers would leave both sides waiting (-t turns that into an error). */
        send_reply(sock, options.reply, options.timeout);
        if (shutdown(sock, SHUT_WR) == -1)
            die("shutdown");
        printf("reply sent!\n");
        print_server_message(sock, &options);
    } else {
        /* The tutorial's order: the server speaks first, then we reply. */
        print_server_message(sock, &options);
        send_reply(sock, options.reply, options.timeout);
        printf("reply sent!\n");
    }

    close(sock);
    if (fflush(stdout) == EOF || ferror(stdout))
        die("stdout");
    return EXIT_SUCCESS;
}
