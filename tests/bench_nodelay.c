#define _POSIX_C_SOURCE 200809L

/* bench_nodelay.c: the tutorial's "Performance tweaks" made visible, with TCP_NODELAY.
 * A client sends requests over 127.0.0.1, each a small header and a small body in two
 * writes, and reads a small reply after each; a server answers once it has the whole request.
 * Timed three ways: with Nagle's algorithm (the default), with TCP_NODELAY on the client,
 * and with the request in one write. Prints the round trips' mean and median per way.
 * Run: make bench, or build/bench_nodelay [REQUESTS] (default 200, at most 1000). */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    DEFAULT_REQUESTS = 200,
    MAX_REQUESTS = 1000,
    HEADER_SIZE = 16, /* a request: a header ... */
    BODY_SIZE = 64,   /* ... and a body */
    REQUEST_SIZE = HEADER_SIZE + BODY_SIZE,
    REPLY_SIZE = 16,
    WAIT_LIMIT_MS = 2000,     /* the longest one read may wait: beyond it, we fail */
    TIME_BUDGET_MS = 10000,   /* a way that takes longer stops early (and says so) */
    SERVER_TIME_LIMIT_S = 60, /* alarm() ends a server that outlives us */
};

/* How the client writes its requests. */
struct way {
    const char *name;
    bool no_delay; /* TCP_NODELAY on the client */
    bool one_write;
};

static const struct way WAYS[] = {
    {"two writes, Nagle (default)", false, false},
    {"two writes, TCP_NODELAY", true, false},
    {"one write, Nagle (default)", false, true},
};
enum { WAY_COUNT = sizeof WAYS / sizeof WAYS[0] };

struct result {
    int requests; /* done within the time budget */
    double mean_ms, median_ms;
};

static _Noreturn void die(const char *what) {
    fprintf(stderr, "bench_nodelay: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double milliseconds_between(struct timespec start, struct timespec end) {
    return (double)(end.tv_sec - start.tv_sec) * 1000.0 +
           (double)(end.tv_nsec - start.tv_nsec) / 1e6;
}

/* Read exactly `size` bytes, each read waiting at most WAIT_LIMIT_MS. False at end of stream. */
static bool read_exactly(int sock, char *buffer, size_t size) {
    size_t filled = 0;
    while (filled < size) {
        struct pollfd wanted = {.fd = sock, .events = POLLIN};
        int ready = poll(&wanted, 1, WAIT_LIMIT_MS);
        if (ready == -1 && errno == EINTR)
            continue;
        if (ready == 0)
            errno = ETIMEDOUT;
        if (ready != 1)
            die("waiting to read");
        ssize_t bytes_read = recv(sock, buffer + filled, size - filled, 0);
        if (bytes_read == -1 && errno == EINTR)
            continue;
        if (bytes_read == -1)
            die("recv");
        if (bytes_read == 0)
            return false;
        filled += (size_t)bytes_read;
    }
    return true;
}

/* send all of `size` bytes (small ones here: a send takes them at once or fails). */
static void send_whole(int sock, const char *data, size_t size) {
    if (send(sock, data, size, 0) != (ssize_t)size)
        die("send");
}

/* The server: for each of WAY_COUNT clients in turn, answer every whole request with a reply,
 * until the client closes. It replies only once it has the whole request, as a server that
 * parses requests does: until then it has nothing to send the client's ACK with. */
static _Noreturn void serve(int listener) {
    alarm(SERVER_TIME_LIMIT_S);
    char request[REQUEST_SIZE], reply[REPLY_SIZE];
    memset(reply, 'r', sizeof reply);
    for (int client_number = 0; client_number < WAY_COUNT; client_number++) {
        int client = accept(listener, NULL, NULL);
        if (client == -1)
            die("accept");
        while (read_exactly(client, request, sizeof request))
            send_whole(client, reply, sizeof reply);
        close(client);
    }
    _exit(0);
}

static int compare_doubles(const void *left, const void *right) {
    double a = *(const double *)left, b = *(const double *)right;
    return (a > b) - (a < b);
}

/* Time `requests` round trips written `way`, on a new connection to `address`. */
static struct result time_round_trips(const struct sockaddr_in *address, const struct way *way,
                                      int requests) {
    static double round_trips_ms[MAX_REQUESTS];
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1)
        die("socket");
    int no_delay = way->no_delay;
    if (setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &no_delay, sizeof no_delay) == -1)
        die("setsockopt TCP_NODELAY");
    if (connect(sock, (const struct sockaddr *)address, sizeof *address) == -1)
        die("connect");

    char request[REQUEST_SIZE], reply[REPLY_SIZE];
    memset(request, 'q', sizeof request);
    struct timespec began, start, end;
    clock_gettime(CLOCK_MONOTONIC, &began);
    struct result result = {0, 0.0, 0.0};
    double total_ms = 0.0;
    while (result.requests < requests) {
        clock_gettime(CLOCK_MONOTONIC, &start);
        if (way->one_write) {
            send_whole(sock, request, REQUEST_SIZE);
        } else {
            /* With Nagle, this second small write waits until the first is acknowledged. */
            send_whole(sock, request, HEADER_SIZE);
            send_whole(sock, request + HEADER_SIZE, BODY_SIZE);
        }
        if (!read_exactly(sock, reply, sizeof reply)) {
            fprintf(stderr, "bench_nodelay: the server closed the connection\n");
            exit(1);
        }
        clock_gettime(CLOCK_MONOTONIC, &end);
        round_trips_ms[result.requests] = milliseconds_between(start, end);
        total_ms += round_trips_ms[result.requests];
        result.requests++;
        if (milliseconds_between(began, end) > TIME_BUDGET_MS)
            break;
    }
    close(sock);

    qsort(round_trips_ms, (size_t)result.requests, sizeof round_trips_ms[0], compare_doubles);
    int middle = result.requests / 2;
    result.mean_ms = total_ms / result.requests;
    result.median_ms = result.requests % 2 == 1
                           ? round_trips_ms[middle]
                           : (round_trips_ms[middle - 1] + round_trips_ms[middle]) / 2.0;
    return result;
}

int main(int argc, char **argv) {
    long requests = DEFAULT_REQUESTS;
    char *end = NULL;
    if (argc == 2)
        requests = strtol(argv[1], &end, 10);
    if (argc > 2 || (argc == 2 && (*end != '\0' || requests < 1 || requests > MAX_REQUESTS))) {
        fprintf(stderr, "usage: bench_nodelay [REQUESTS (1 to %d)]\n", MAX_REQUESTS);
        return 2;
    }

    /* The server listens on a port the kernel picks, and runs in a child. */
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener == -1 || bind(listener, (struct sockaddr *)&address, length) == -1 ||
        getsockname(listener, (struct sockaddr *)&address, &length) == -1 ||
        listen(listener, WAY_COUNT) == -1)
        die("listen");
    fflush(stdout);
    pid_t server = fork();
    if (server == -1)
        die("fork");
    if (server == 0)
        serve(listener);
    close(listener);

    printf("bench_nodelay: %ld requests over 127.0.0.1, each a %d-byte header and a %d-byte body,\n"
           "then a %d-byte reply; one connection per way.\n\n",
           requests, HEADER_SIZE, BODY_SIZE, REPLY_SIZE);
    printf("%-30s %9s %11s %13s\n", "request written as", "requests", "mean (ms)", "median (ms)");
    struct result results[WAY_COUNT];
    for (int way = 0; way < WAY_COUNT; way++) {
        results[way] = time_round_trips(&address, &WAYS[way], (int)requests);
        printf("%-30s %9d %11.3f %13.3f%s\n", WAYS[way].name, results[way].requests,
               results[way].mean_ms, results[way].median_ms,
               results[way].requests < requests ? "  (stopped: time budget)" : "");
        fflush(stdout);
    }

    int status;
    if (waitpid(server, &status, 0) == -1)
        die("waitpid");
    double ratio = results[0].median_ms / results[1].median_ms;
    printf("\nTwo writes with Nagle: median round trip %.0f times that with TCP_NODELAY.\n", ratio);
    printf("The second write waits for the ACK of the first, which the server delays (about\n"
           "40 ms on Linux) in the hope of sending it with a reply that needs the second write.\n");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
