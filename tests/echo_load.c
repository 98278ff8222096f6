/* echo_load.c: a load generator for the echo servers (select_server, poll_server,
 * epoll_server -e), on loopback only. It opens CLIENTS connections all at once, as a burst of
 * real clients would (or with -R, a few at a time), and takes each one's greeting. Then each client
 * sends a SIZE-byte message, waits for the whole echo, checks every byte and sends the next,
 * for SECONDS. At the end it closes every connection cleanly and prints requests per second,
 * round-trip latency (p50, p99), failed connections and mismatched bytes; it exits 1 if any
 * connection failed or any byte did not match. A measuring tool, not a lesson: it lives in
 * tests/ (docs/benchmarks.md). One poll() loop drives every connection.
 *
 *   Terminal 1: ./bin/epoll_server -e -n 0 -t 0  Terminal 2: build/echo_load -c 1000 -d 3 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "../examples/hardened/plumbing.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { DEFAULT_CLIENTS = 10, DEFAULT_SIZE = 64, DEFAULT_SECONDS = 1 };
enum { MAX_CLIENTS = 100000, MAX_SIZE = 1 << 20, MAX_SECONDS = 3600, MAX_REQUESTS = 1000000000 };
enum {
    SETTLE_MS = 10 * 1000,     /* the longest we wait for a greeting, an echo or a close */
    SPARE_DESCRIPTORS = 16,    /* stdin, stdout, stderr and a few more, besides the clients */
    RECEIVE_SIZE = 1 << 16,    /* bytes read by one recv */
    PATTERN_PERIOD = 251,      /* message bytes repeat every 251 (prime: no size aligns) */
    MAX_ERROR_LINES = 5,       /* failures told one by one on stderr; then only counted */
    BUCKETS_PER_DOUBLING = 32, /* the latency histogram's resolution: 1/32, about 3% */
    HISTOGRAM_SIZE = 40 * BUCKETS_PER_DOUBLING, /* round trips up to 2^40 microseconds */
};

#define USAGE                                                                              \
    "usage: echo_load [-4 | -6] [-H HOST] [-p PORT] [-c CLIENTS] [-i IDLE] [-s SIZE]\n"    \
    "                 [-d SECONDS] [-r REQUESTS] [-R RAMP]\n"                              \
    "  -4, -6       the server on 127.0.0.1 (default) or ::1\n"                            \
    "  -H HOST      127.0.0.1, ::1 or localhost: loopback only\n"                          \
    "  -p PORT      the server's port (default 2525)\n"                                    \
    "  -c CLIENTS   connections that send (default 10)\n"                                  \
    "  -i IDLE      more connections that only take the greeting and wait (default 0)\n"   \
    "  -s SIZE      bytes in each message (default 64)\n"                                  \
    "  -d SECONDS   how long the clients send (default 1)\n"                               \
    "  -r REQUESTS  stop sooner, after this many requests in all (default 0 = no limit)\n" \
    "  -R RAMP      connect at most RAMP at a time (default 0: all at once, a burst)\n"

struct load_options {
    int family;
    const char *host, *port;
    long clients, idle, size, seconds, requests, ramp;
};

/* What a connection is doing; connection_events says what each state waits for. */
enum state { CONNECTING, AWAITING_GREETING, READY, AWAITING_ECHO, CLOSING, CLOSED, FAILED };

struct connection {
    int sock;
    enum state state;
    size_t sent, received;  /* bytes of the current message (or greeting) so far */
    unsigned long requests; /* how many this connection has started */
    long long started_ns;   /* when the current request's first byte was sent */
};

/* What the run measured. */
struct results {
    long long requests;   /* round trips completed in the measured time */
    long long mismatched; /* echoed bytes that differ from those sent, or that came unasked */
    long failed;          /* connections that failed */
    long long latency[HISTOGRAM_SIZE]; /* how many round trips took how long (bucket_of) */
};

static struct load_options options;
static struct connection *connections;
static size_t connection_count;
static struct pollfd *poll_set; /* one turn's poll array */
static size_t *polled;          /* which connection each poll_set entry is */
static unsigned char pattern[MAX_SIZE + PATTERN_PERIOD]; /* pattern[i] = i % PATTERN_PERIOD */
static unsigned char incoming[RECEIVE_SIZE];             /* what one recv brings */
static struct results results;
static int issuing;       /* start the next request when one completes */
static long long stop_ns; /* requests that complete later are not counted */
static long long issued;  /* requests started, for -r */
static long long last_counted_ns;

/* A whole number from 0 to max given on the command line, or a usage error naming `what`. */
static long parse_number(const char *text, const char *what, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
        usage_error("bad %s '%s': not a number from 0 to %ld", what, text, max);
    return value;
}

static struct load_options parse_load_options(int argc, char **argv) {
    struct load_options parsed = {
        AF_INET, NULL, DEFAULT_PORT, DEFAULT_CLIENTS, 0, DEFAULT_SIZE, DEFAULT_SECONDS, 0, 0};
    int option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, ":h46H:p:c:i:s:d:r:R:")) != -1) {
        switch (option) {
        case 'h': fputs(USAGE, stdout); exit(EXIT_SUCCESS);
        case '4': parsed.family = AF_INET; break;
        case '6': parsed.family = AF_INET6; break;
        case 'H': parsed.host = optarg; break;
        case 'p':
            parse_number(optarg, "port", 65535);
            parsed.port = optarg;
            break;
        case 'c': parsed.clients = parse_number(optarg, "client count", MAX_CLIENTS); break;
        case 'i': parsed.idle = parse_number(optarg, "idle count", MAX_CLIENTS); break;
        case 's': parsed.size = parse_number(optarg, "size", MAX_SIZE); break;
        case 'd': parsed.seconds = parse_number(optarg, "duration", MAX_SECONDS); break;
        case 'r': parsed.requests = parse_number(optarg, "request count", MAX_REQUESTS); break;
        case 'R': parsed.ramp = parse_number(optarg, "ramp", MAX_CLIENTS); break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default: usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (parsed.clients == 0 || parsed.size == 0 || parsed.seconds == 0)
        usage_error("-c, -s and -d take a number from 1");
    if (parsed.clients + parsed.idle > MAX_CLIENTS)
        usage_error("at most %d connections in all", MAX_CLIENTS);
    /* A load generator must never be pointed at someone else's machine. */
    if (parsed.host == NULL || strcmp(parsed.host, "localhost") == 0)
        parsed.host = parsed.family == AF_INET ? "127.0.0.1" : "::1";
    else if (strcmp(parsed.host, "127.0.0.1") == 0)
        parsed.family = AF_INET;
    else if (strcmp(parsed.host, "::1") == 0)
        parsed.family = AF_INET6;
    else
        usage_error("%s: not loopback; echo_load talks to 127.0.0.1 or ::1 only", parsed.host);
    return parsed;
}

/* The server's address, from the options (both loopback, checked above). */
static socklen_t server_address(struct sockaddr_storage *address) {
    memset(address, 0, sizeof *address);
    uint16_t port = htons((uint16_t)strtol(options.port, NULL, 10));
    if (options.family == AF_INET) {
        struct sockaddr_in *ip4 = (struct sockaddr_in *)address;
        ip4->sin_family = AF_INET;
        ip4->sin_port = port;
        inet_pton(AF_INET, options.host, &ip4->sin_addr);
        return sizeof *ip4;
    }
    struct sockaddr_in6 *ip6 = (struct sockaddr_in6 *)address;
    ip6->sin6_family = AF_INET6;
    ip6->sin6_port = port;
    inet_pton(AF_INET6, options.host, &ip6->sin6_addr);
    return sizeof *ip6;
}

/* Every connection is a descriptor: raise our soft limit up to the hard one if need be. */
static void allow_descriptors(rlim_t needed) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == -1)
        die("getrlimit RLIMIT_NOFILE");
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        limit.rlim_cur =
            limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed ? limit.rlim_max : needed;
        if (setrlimit(RLIMIT_NOFILE, &limit) == -1)
            die("setrlimit RLIMIT_NOFILE");
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
        fprintf(stderr, "%s: %lu connections need %lu descriptors; the hard limit is %lu\n",
                program_name, (unsigned long)connection_count, (unsigned long)needed,
                (unsigned long)limit.rlim_max);
        exit(EXIT_FAILURE);
    }
}

static long long now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* Milliseconds until a deadline in now_ns() time, for poll: 0 once it has passed. */
static int ms_until(long long deadline_ns) {
    long long left = (deadline_ns - now_ns() + 999999) / 1000000;
    return left > 0 ? (int)left : 0;
}

/* Round-trip times go into buckets that widen with the time: exact up to 31 microseconds,
 * then BUCKETS_PER_DOUBLING buckets between each power of two and the next. */
static int bucket_of(long long microseconds) {
    int doubling = 0;
    if (microseconds < BUCKETS_PER_DOUBLING)
        return microseconds < 0 ? 0 : (int)microseconds;
    while ((microseconds >> doubling) >= 2LL * BUCKETS_PER_DOUBLING)
        doubling++;
    if (doubling + 1 >= HISTOGRAM_SIZE / BUCKETS_PER_DOUBLING)
        return HISTOGRAM_SIZE - 1; /* hours: the last bucket holds them all */
    return (doubling + 1) * BUCKETS_PER_DOUBLING + (int)(microseconds >> doubling) -
           BUCKETS_PER_DOUBLING;
}

/* The middle of a bucket, in milliseconds. */
static double bucket_ms(int bucket) {
    if (bucket < BUCKETS_PER_DOUBLING)
        return bucket / 1000.0;
    int doubling = bucket / BUCKETS_PER_DOUBLING - 1;
    double low = (double)((bucket % BUCKETS_PER_DOUBLING + BUCKETS_PER_DOUBLING) << doubling);
    return (low + (double)(1LL << doubling) / 2) / 1000.0;
}

/* The round-trip time that `fraction` of the requests did not exceed, in milliseconds. */
static double percentile_ms(double fraction) {
    long long wanted = (long long)(fraction * (double)results.requests + 0.999999), seen = 0;
    for (int bucket = 0; bucket < HISTOGRAM_SIZE; bucket++) {
        seen += results.latency[bucket];
        if (seen >= wanted && seen > 0)
            return bucket_ms(bucket);
    }
    return 0;
}

/* Give up on a connection: say why (the first few times), count it, close it. */
static void connection_failed(struct connection *connection, const char *what, const char *why) {
    if (results.failed++ < MAX_ERROR_LINES)
        fprintf(stderr, "%s: connection %zu: %s%s%s\n", program_name,
                (size_t)(connection - connections), what, why ? ": " : "", why ? why : "");
    close(connection->sock);
    connection->state = FAILED;
}

/* Start connecting, without waiting: the event loop sees the connection complete. */
static void open_connection(struct connection *connection, const struct sockaddr_storage *address,
                            socklen_t length) {
    *connection = (struct connection){.sock = socket(options.family, SOCK_STREAM, 0)};
    if (connection->sock == -1)
        die("socket");
    int flags = fcntl(connection->sock, F_GETFL);
    if (flags == -1 || fcntl(connection->sock, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");
    if (connect(connection->sock, (const struct sockaddr *)address, length) == 0)
        connection->state = AWAITING_GREETING;
    else if (errno == EINPROGRESS || errno == EINTR)
        connection->state = CONNECTING;
    else
        connection_failed(connection, "connect", strerror(errno));
}

/* The bytes of a connection's current message: a window into the pattern that moves with
 * the connection and the request, so that an echo sent to the wrong client shows. */
static const unsigned char *message_of(const struct connection *connection) {
    size_t number = (size_t)(connection - connections);
    return pattern + (number * 7 + connection->requests * 13) % PATTERN_PERIOD;
}

/* Send what the kernel takes now of the current message. */
static void send_more(struct connection *connection) {
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent, send(connection->sock, message_of(connection) + connection->sent,
                                    (size_t)options.size - connection->sent, 0));
    if (bytes_sent >= 0)
        connection->sent += (size_t)bytes_sent;
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
        connection_failed(connection, "send", strerror(errno));
}

/* Start the next request on this connection, unless the run is over. */
static void start_request(struct connection *connection) {
    if (!issuing || (options.requests > 0 && issued == options.requests))
        return;
    issued++;
    connection->requests++;
    connection->state = AWAITING_ECHO;
    connection->sent = connection->received = 0;
    connection->started_ns = now_ns();
    send_more(connection);
}

/* Count the bytes of `got` that differ from `expected`. */
static void compare(const unsigned char *got, const unsigned char *expected, size_t length) {
    if (memcmp(got, expected, length) == 0)
        return;
    for (size_t i = 0; i < length; i++)
        results.mismatched += got[i] != expected[i];
}

/* Receive up to `wanted` bytes into incoming. Returns how many came, 0 at the end of the
 * stream (the connection then failed, unless end_is_expected), or -1 for nothing yet or a
 * failure. */
static ssize_t receive(struct connection *connection, size_t wanted, int end_is_expected,
                       const char *waiting_for) {
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recv(connection->sock, incoming, wanted, 0));
    if (bytes_read == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
        connection_failed(connection, "recv", strerror(errno));
    else if (bytes_read == 0 && !end_is_expected)
        connection_failed(connection, waiting_for, "the server closed the connection");
    return bytes_read;
}

/* What a connection waits for, as poll events; 0 when it waits for nothing. */
static short connection_events(const struct connection *connection) {
    switch (connection->state) {
    case CONNECTING: return POLLOUT;
    case AWAITING_GREETING:
    case CLOSING: return POLLIN;
    case AWAITING_ECHO:
        return (short)(POLLIN | (connection->sent < (size_t)options.size ? POLLOUT : 0));
    default: return 0;
    }
}

/* CONNECTING, and poll says the attempt is over: did it work? */
static void finish_connecting(struct connection *connection) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(connection->sock, SOL_SOCKET, SO_ERROR, &error, &length) == -1)
        error = errno;
    if (error != 0)
        connection_failed(connection, "connect", strerror(error));
    else
        connection->state = AWAITING_GREETING;
}

/* AWAITING_GREETING: the server speaks first; once its whole greeting is here, the client is READY.
 */
static void take_greeting(struct connection *connection) {
    ssize_t length =
        receive(connection, strlen(GREETING) - connection->received, 0, "waiting for the greeting");
    if (length <= 0)
        return;
    compare(incoming, (const unsigned char *)GREETING + connection->received, (size_t)length);
    connection->received += (size_t)length;
    if (connection->received == strlen(GREETING))
        connection->state = READY;
}

/* AWAITING_ECHO: send the rest of the message when there is room, and check the echo as it
 * comes. Once it is all here, count the round trip and start the next one. */
static void exchange(struct connection *connection, short revents) {
    if ((revents & POLLOUT) && connection->sent < (size_t)options.size)
        send_more(connection);
    if (!(revents & (POLLIN | POLLHUP | POLLERR)) || connection->state != AWAITING_ECHO)
        return;
    size_t left = (size_t)options.size - connection->received;
    ssize_t length =
        receive(connection, left < RECEIVE_SIZE ? left : RECEIVE_SIZE, 0, "waiting for an echo");
    if (length <= 0)
        return;
    compare(incoming, message_of(connection) + connection->received, (size_t)length);
    connection->received += (size_t)length;
    if (connection->received < (size_t)options.size)
        return;
    long long done_ns = now_ns();
    if (done_ns <= stop_ns) {
        results.requests++;
        results.latency[bucket_of((done_ns - connection->started_ns) / 1000)]++;
        last_counted_ns = done_ns;
    }
    connection->state = READY;
    start_request(connection);
}

/* CLOSING: after the last echo only the end of the stream may come; any byte is one too
 * many. */
static void take_end(struct connection *connection) {
    ssize_t length = receive(connection, RECEIVE_SIZE, 1, NULL);
    if (length > 0)
        results.mismatched += length;
    if (length == 0) {
        close(connection->sock);
        connection->state = CLOSED;
    }
}

/* Move a connection on after poll said it is ready (revents). */
static void advance(struct connection *connection, short revents) {
    switch (connection->state) {
    case CONNECTING: finish_connecting(connection); break;
    case AWAITING_GREETING: take_greeting(connection); break;
    case AWAITING_ECHO: exchange(connection, revents); break;
    case CLOSING: take_end(connection); break;
    default: break;
    }
}

/* One turn of the event loop over connections[from, to): wait at most timeout_ms for those
 * that wait for something, and move each ready one on. Returns how many were ready. */
static int turn(size_t from, size_t to, int timeout_ms) {
    nfds_t count = 0;
    for (size_t i = from; i < to; i++) {
        short events = connection_events(&connections[i]);
        if (events != 0) {
            poll_set[count] = (struct pollfd){.fd = connections[i].sock, .events = events};
            polled[count++] = i;
        }
    }
    int ready;
    RETRY_ON_EINTR(ready, poll(poll_set, count, timeout_ms));
    if (ready == -1)
        die("poll");
    for (nfds_t i = 0; i < count; i++)
        if (poll_set[i].revents != 0)
            advance(&connections[polled[i]], poll_set[i].revents);
    return ready;
}

/* How many of connections[from, to) are in `state`. */
static size_t count_in(enum state state, size_t from, size_t to) {
    size_t count = 0;
    for (size_t i = from; i < to; i++)
        count += connections[i].state == state;
    return count;
}

/* Every connection that is still in `state` has waited too long: it failed. */
static void fail_every(enum state state, size_t from, size_t to, const char *what) {
    for (size_t i = from; i < to; i++)
        if (connections[i].state == state)
            connection_failed(&connections[i], what, "nothing for 10 s");
}

/* Open every connection: all at once by default, as a burst of clients does; with -R RAMP,
 * at most RAMP at a time that have not had their greeting yet. */
static void connect_all(void) {
    struct sockaddr_storage address;
    socklen_t length = server_address(&address);
    size_t next = 0, oldest = 0; /* connections[oldest, next) may still be on their way */
    long long deadline = now_ns() + SETTLE_MS * 1000000LL;
    for (;;) {
        while (oldest < next && connections[oldest].state != CONNECTING &&
               connections[oldest].state != AWAITING_GREETING)
            oldest++;
        size_t on_the_way =
            count_in(CONNECTING, oldest, next) + count_in(AWAITING_GREETING, oldest, next);
        size_t at_once = options.ramp > 0 ? (size_t)options.ramp : connection_count;
        while (on_the_way < at_once && next < connection_count) {
            open_connection(&connections[next], &address, length);
            on_the_way += connections[next++].state != FAILED;
        }
        if (on_the_way == 0 && next == connection_count)
            return;
        if (turn(oldest, next, ms_until(deadline)) > 0) {
            deadline = now_ns() + SETTLE_MS * 1000000LL;
        } else if (ms_until(deadline) == 0) {
            fail_every(CONNECTING, oldest, next, "connect");
            fail_every(AWAITING_GREETING, oldest, next, "waiting for the greeting");
        }
    }
}

/* The busy clients send, wait for the echo and send again, for options.seconds; then the
 * requests still on their way finish (they are checked, not counted). */
static double send_requests(void) {
    size_t busy = (size_t)options.clients;
    long long start_ns = now_ns();
    stop_ns = start_ns + options.seconds * 1000000000LL;
    issuing = 1;
    for (size_t i = 0; i < busy; i++)
        if (connections[i].state == READY)
            start_request(&connections[i]);
    long long deadline = stop_ns;
    while (count_in(AWAITING_ECHO, 0, busy) > 0) {
        if (issuing && now_ns() >= stop_ns) {
            issuing = 0;
            deadline = now_ns() + SETTLE_MS * 1000000LL;
        }
        if (!issuing && ms_until(deadline) == 0) {
            fail_every(AWAITING_ECHO, 0, busy, "waiting for an echo");
            break;
        }
        if (turn(0, busy, ms_until(deadline)) > 0 && !issuing)
            deadline = now_ns() + SETTLE_MS * 1000000LL;
    }
    /* Stopped by -r before the time was up: the run lasted until its last echo. */
    long long end_ns = stop_ns;
    if (options.requests > 0 && issued == options.requests && last_counted_ns > start_ns)
        end_ns = last_counted_ns < stop_ns ? last_counted_ns : stop_ns;
    return (double)(end_ns - start_ns) / 1e9;
}

/* Every client says it has finished (shutdown), and the server, having sent everything,
 * closes: we expect the end of the stream and not one byte more. */
static void close_all(void) {
    for (size_t i = 0; i < connection_count; i++) {
        if (connections[i].state != READY)
            continue;
        if (shutdown(connections[i].sock, SHUT_WR) == -1)
            connection_failed(&connections[i], "shutdown", strerror(errno));
        else
            connections[i].state = CLOSING;
    }
    long long deadline = now_ns() + SETTLE_MS * 1000000LL;
    while (count_in(CLOSING, 0, connection_count) > 0) {
        if (turn(0, connection_count, ms_until(deadline)) > 0)
            deadline = now_ns() + SETTLE_MS * 1000000LL;
        else if (ms_until(deadline) == 0)
            fail_every(CLOSING, 0, connection_count, "waiting for the end of the stream");
    }
}

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    options = parse_load_options(argc, argv);
    connection_count = (size_t)(options.clients + options.idle);
    allow_descriptors((rlim_t)connection_count + SPARE_DESCRIPTORS);
    connections = calloc(connection_count, sizeof *connections);
    poll_set = calloc(connection_count, sizeof *poll_set);
    polled = calloc(connection_count, sizeof *polled);
    if (connections == NULL || poll_set == NULL || polled == NULL)
        die("calloc");
    for (size_t i = 0; i < (size_t)options.size + PATTERN_PERIOD; i++)
        pattern[i] = (unsigned char)(i % PATTERN_PERIOD);

    long long connect_start_ns = now_ns();
    connect_all();
    double connect_seconds = (double)(now_ns() - connect_start_ns) / 1e9;
    double seconds = send_requests();
    close_all();

    printf("%ld busy and %ld idle clients connected in %.2f s, %ld-byte messages, %.2f s: %lld "
           "requests, %.0f req/s, "
           "p50 %.3f ms, p99 %.3f ms, %ld failed connections, %lld mismatched bytes\n",
           options.clients, options.idle, connect_seconds, options.size, seconds, results.requests,
           seconds > 0 ? (double)results.requests / seconds : 0.0, percentile_ms(0.50),
           percentile_ms(0.99), results.failed, results.mismatched);
    free(connections);
    free(poll_set);
    free(polled);
    if (fflush(stdout) == EOF)
        die("stdout");
    return results.failed == 0 && results.mismatched == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
