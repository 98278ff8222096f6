#define _POSIX_C_SOURCE 200809L
/* bench.c: `make bench`. Measures in one run, on loopback, and prints as Markdown:
 *  - the echo servers (select_server, poll_server, epoll_server) and the barest epoll loop
 *    (bench_epoll_baseline) under echo_load: 10 to 10,000 clients that all send, then 10
 *    that send among many idle ones;
 *  - the TCP pair moving 1 GiB (tcp_client -m - to tcp_server) against nc doing the same;
 *  - the peak memory (RSS) of each program in those runs, from /usr/bin/time -v;
 * then the targets of docs/benchmarks.md, met or missed, and the page's Mermaid chart.
 * Run by make bench: BIN_DIR=bin build/bench build (the directory of echo_load and the
 * baseline). It exits 1 if a program in a run failed; a missed target is only reported. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum {
    RUN_SECONDS = 2,             /* each echo_load run sends for this long */
    ROUNDS = 5,                  /* busy runs, servers in turn: the median of five */
    BASELINE_FROM = 1000,        /* the baseline runs with this many busy clients and more */
    MESSAGE_SIZE = 64,           /* bytes per request */
    BUSY_AMONG_IDLE = 10,        /* clients that send in the idle runs */
    RUN_TIMEOUT_MS = 120 * 1000, /* a whole run: connecting, sending, closing */
    BULK_SIZE = 1 << 30,         /* the TCP pair's payload: 1 GiB */
    SMALL_BULK_SIZE = 1 << 20,   /* and a small one, to see that memory does not grow */
    BULK_ROUNDS = 3,             /* each pair moves the payload this often; median */
    SERVER_OWN_FDS = 4,          /* stdin, stdout, stderr and the listener */
    SPARE_FDS = 16,              /* echo_load's own, besides its connections */
    MAX_RSS_KB = 4 << 10,        /* tcp_client and tcp_server: under 4 MiB */
    RSS_GROWTH_KB = 512,   /* "does not grow": from 1 MiB to 1 GiB of payload. Peak RSS varies by
                              some 250 KiB between runs (which pages of the C library happen to be
                              mapped); a program that kept the payload would grow by 1 GiB. */
    MAX_KB_PER_CLIENT = 8, /* "a few KiB" per connected client */
};
#define MIN_RATIO 0.9         /* select vs poll, epoll_server vs the baseline */
#define MAX_CONNECT_RATIO 2.0 /* a server's time to connect a burst vs the baseline's */

#define BASELINE "bench_epoll_baseline"
/* The servers, and the baseline last: index BASELINE_INDEX. */
static const char *const SERVERS[] = {"select_server", "poll_server", "epoll_server", BASELINE};
enum { SERVER_COUNT = 3, BASELINE_INDEX = 3 };
static const int CLIENTS[] = {10, 100, 1000, 10000};
static const int IDLE[] = {1000, 10000};
#define COUNT(array) (sizeof(array) / sizeof(array)[0])

/* One echo_load run against one server. */
struct run {
    char skipped[96];       /* why it did not run, or "" */
    bool failed;            /* a program exited with an unexpected status */
    double connect_seconds; /* echo_load's time to connect every client, a few at a time */
    double rate, p50_ms, p99_ms;
    long failed_connections;
    long long mismatched;
    long peak_kb;                /* the server's peak RSS, or -1 */
    double cpu_user, cpu_system; /* the server's CPU time, in seconds, or -1 */
};

/* One transfer of the bulk payload by a pair of programs. */
struct transfer {
    double seconds;
    long sender_kb, receiver_kb;
    bool failed;
};

static const char *build_dir;
static bool any_failure;
static rlim_t descriptor_limit;

static double now_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Let us and our children (servers, echo_load) open as many descriptors as we may. */
static void raise_descriptor_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    descriptor_limit = getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 1024;
}

/* Wrap a program in /usr/bin/time -v, whose report goes to time_file. */
static const char *const *timed(const char *time_file) {
    static const char *wrapper[] = {"/usr/bin/time", "-v", "-o", NULL, NULL};
    wrapper[3] = time_file;
    return wrapper;
}

/* One number from a report of /usr/bin/time -v, by the scanf format of its line, or -1. */
static double time_report(const char *time_file, const char *format) {
    FILE *file = fopen(time_file, "r");
    char line[256];
    double value = -1;
    while (file != NULL && value == -1 && fgets(line, sizeof line, file) != NULL)
        if (sscanf(line, format, &value) != 1)
            value = -1;
    if (file != NULL)
        fclose(file);
    return value;
}

static long peak_rss_kb(const char *time_file) {
    return (long)time_report(time_file, " Maximum resident set size (kbytes): %lf");
}

/* The program that /usr/bin/time started for us (Linux /proc), so that we can kill it if
 * it hangs: killing time would leave it running. -1 when unknown. */
static pid_t child_of(pid_t parent) {
    FILE *file = fopen(formatted("/proc/%d/task/%d/children", (int)parent, (int)parent), "r");
    int child = -1;
    if (file != NULL) {
        if (fscanf(file, "%d", &child) != 1)
            child = -1;
        fclose(file);
    }
    return child;
}

/* Say why a program's run failed, with the end of what it said on stderr. */
static void report_failure(const struct process *process, int expected) {
    size_t length = process->err.length, from = length > 300 ? length - 300 : 0;
    fprintf(stderr, "bench: %s exited with %d (expected %d); its stderr ends: %.*s\n",
            process->label, process->status, expected, (int)(length - from),
            process->err.data ? process->err.data + from : "");
    any_failure = true;
}

/* Start one server on a free port, with -n count, its stdout into a pipe that we read as
 * fast as it comes (as `server | cat >/dev/null`); NULL and a message if it does not start. The
 * baseline runs bare (it never exits by itself). */
static struct process *start_server(const char *server, int count, const char *time_file,
                                    int *port) {
    struct process *process;
    if (strcmp(server, BASELINE) == 0)
        process = start_command(ARGV(formatted("%s/%s", build_dir, BASELINE), "0"), NULL);
    else
        process = start_program(
            ARGV(server, "-e", "-m", "Hello!\n", "-n", formatted("%d", count), "-p", "0", "-t",
                 "0"), /* -m: echo_load waits for a greeting, which -e alone does not send */
            &(struct run_options){.discard_output = true, .wrapper = timed(time_file)});
    *port = wait_for_ready_line(process, READY_TIMEOUT_MS);
    if (*port > 0)
        return process;
    any_failure = true;
    return NULL;
}

/* Run echo_load with `busy` clients that send and `idle` ones that do not, against a
 * fresh server that exits once they have all left. */
static struct run measure(const char *server, int busy, int idle) {
    struct run run = {.peak_kb = -1, .cpu_user = -1, .cpu_system = -1};
    int connections = busy + idle;
    if (strcmp(server, "select_server") == 0 && connections + SERVER_OWN_FDS > FD_SETSIZE) {
        snprintf(run.skipped, sizeof run.skipped,
                 "not run: select takes descriptors below FD_SETSIZE (%d) only", FD_SETSIZE);
        return run;
    }
    if ((rlim_t)connections + SPARE_FDS > descriptor_limit) {
        snprintf(run.skipped, sizeof run.skipped, "not run: the descriptor limit is %lu",
                 (unsigned long)descriptor_limit);
        return run;
    }
    fprintf(stderr, "bench: %s, %d busy and %d idle clients...\n", server, busy, idle);
    const char *time_file = temp_path("server.time");
    int port;
    struct process *process = start_server(server, connections, time_file, &port);
    if (process == NULL) {
        snprintf(run.skipped, sizeof run.skipped, "failed: %s did not start", server);
        clean_up();
        return run;
    }
    pid_t server_pid = strcmp(server, BASELINE) == 0 ? process->pid : child_of(process->pid);
    struct process *load =
        start_command(ARGV(formatted("%s/echo_load", build_dir), "-c", formatted("%d", busy), "-i",
                           formatted("%d", idle), "-s", formatted("%d", MESSAGE_SIZE), "-d",
                           formatted("%d", RUN_SECONDS), "-p", formatted("%d", port)),
                      NULL);
    if (strcmp(server, BASELINE) == 0) {
        finish(load, RUN_TIMEOUT_MS);
        stop(process);
        process->status = 0; /* killed by us, as planned */
    } else {
        struct process *const both[] = {load, process};
        finish_all(both, 2, RUN_TIMEOUT_MS);
        if (process->status == TIMED_OUT && server_pid > 0)
            kill(server_pid, SIGKILL); /* time was killed, not what it ran */
        if (process->status != 0)
            report_failure(process, 0);
        run.peak_kb = peak_rss_kb(time_file);
        run.cpu_user = time_report(time_file, " User time (seconds): %lf");
        run.cpu_system = time_report(time_file, " System time (seconds): %lf");
    }
    if (load->status != 0)
        report_failure(load, 0);
    run.failed = load->status != 0 || process->status != 0;
    if (load->out.data == NULL ||
        sscanf(load->out.data,
               "%*d busy and %*d idle clients connected in %lf s, %*d-byte messages, %*f s: %*d "
               "requests, %lf req/s, p50 %lf ms, p99 %lf ms, %ld failed connections, %lld "
               "mismatched bytes",
               &run.connect_seconds, &run.rate, &run.p50_ms, &run.p99_ms, &run.failed_connections,
               &run.mismatched) != 6) {
        snprintf(run.skipped, sizeof run.skipped, "failed: no result from echo_load");
        any_failure = true;
    }
    clean_up();
    return run;
}

/* A table row for a run. */
static void print_run(const char *server, int clients, const struct run *run) {
    printf("| %s | %d | ", server, clients);
    if (run->skipped[0] != '\0')
        printf("%s | | | | | | | |\n", run->skipped);
    else
        printf("%.0f | %.3f | %.3f | %ld | %lld | %.2f | %s | %s |\n", run->rate, run->p50_ms,
               run->p99_ms, run->failed_connections, run->mismatched, run->connect_seconds,
               run->peak_kb >= 0 ? formatted("%ld", run->peak_kb) : "",
               run->cpu_user >= 0 ? formatted("%.2f + %.2f", run->cpu_user, run->cpu_system) : "");
    fflush(stdout);
}

/* A file of `size` bytes of zeros, as a hole: reading it costs no disk. */
static const char *payload_of(size_t size) {
    const char *path = temp_path(formatted("payload-%zu", size));
    FILE *file = fopen(path, "w");
    if (file == NULL || ftruncate(fileno(file), (off_t)size) == -1) {
        perror(path);
        exit(EXIT_FAILURE);
    }
    fclose(file);
    return path;
}

/* nc -v -l prints "Listening on localhost PORT" on stderr once it listens: its port, or -1. */
static int nc_port(struct process *nc) {
    char text[512];
    size_t length = 0;
    double deadline = now_seconds() + READY_TIMEOUT_MS / 1000.0;
    while (length < sizeof text - 1 && now_seconds() < deadline) {
        struct pollfd readable = {.fd = nc->stderr_fd, .events = POLLIN};
        if (poll(&readable, 1, (int)((deadline - now_seconds()) * 1000) + 1) <= 0)
            continue;
        ssize_t bytes_read = read(nc->stderr_fd, text + length, sizeof text - 1 - length);
        if (bytes_read <= 0)
            break;
        length += (size_t)bytes_read;
        text[length] = '\0';
        const char *line = strstr(text, "Listening on ");
        const char *end = line ? strchr(line, '\n') : NULL;
        if (end != NULL) {
            while (end > line && end[-1] != ' ')
                end--;
            return atoi(end);
        }
    }
    fprintf(stderr, "bench: nc -l did not say where it listens: %.*s\n", (int)length, text);
    return -1;
}

/* Move the payload once, from a sender that reads it on stdin to a receiver that writes it
 * to /dev/null: the TCP pair, or nc. Seconds from the sender's start to both ends' exit. */
static struct transfer transfer(bool with_nc, const char *payload) {
    struct transfer result = {.failed = true};
    const char *receiver_time = temp_path("receiver.time"), *sender_time = temp_path("sender.time");
    const struct run_options receiver_options = {.output_file = "/dev/null",
                                                 .wrapper = timed(receiver_time)};
    const struct run_options sender_options = {
        .input_file = payload, .output_file = "/dev/null", .wrapper = timed(sender_time)};
    struct process *receiver, *sender;
    int port;
    if (with_nc) {
        receiver = start_command(
            ARGV("/usr/bin/time", "-v", "-o", receiver_time, "nc", "-v", "-l", "127.0.0.1", "0"),
            &(struct run_options){.output_file = "/dev/null", .label = "nc -l"});
        port = nc_port(receiver);
    } else {
        receiver = start_program(ARGV("tcp_server", "-p", "0"), &receiver_options);
        port = wait_for_ready_line(receiver, READY_TIMEOUT_MS);
    }
    if (port <= 0) {
        any_failure = true;
        return result;
    }
    double start = now_seconds();
    if (with_nc)
        sender =
            start_command(ARGV("/usr/bin/time", "-v", "-o", sender_time, "nc", "-N", "127.0.0.1",
                               formatted("%d", port)),
                          &(struct run_options){
                              .input_file = payload, .output_file = "/dev/null", .label = "nc -N"});
    else
        sender = start_program(ARGV("tcp_client", "-m", "-", "-p", formatted("%d", port)),
                               &sender_options);
    struct process *const both[] = {sender, receiver};
    finish_all(both, 2, RUN_TIMEOUT_MS);
    result.seconds = now_seconds() - start;
    for (int i = 0; i < 2; i++)
        if (both[i]->status != 0)
            report_failure(both[i], 0);
    result.failed = sender->status != 0 || receiver->status != 0;
    result.sender_kb = peak_rss_kb(sender_time);
    result.receiver_kb = peak_rss_kb(receiver_time);
    return result;
}

static int by_rate(const void *left, const void *right) {
    double difference = ((const struct run *)left)->rate - ((const struct run *)right)->rate;
    return (difference > 0) - (difference < 0);
}

/* The run of median req/s among the rounds, with the failures and mismatches of all. */
static struct run median_of(const struct run rounds[ROUNDS]) {
    struct run sorted[ROUNDS];
    memcpy(sorted, rounds, sizeof sorted);
    qsort(sorted, ROUNDS, sizeof *sorted, by_rate);
    struct run median = sorted[ROUNDS / 2];
    median.failed_connections = median.mismatched = 0;
    for (int round = 0; round < ROUNDS; round++) {
        median.failed = median.failed || rounds[round].failed;
        median.failed_connections += rounds[round].failed_connections;
        median.mismatched += rounds[round].mismatched;
        if (rounds[round].skipped[0] != '\0')
            memcpy(median.skipped, rounds[round].skipped, sizeof median.skipped);
    }
    return median;
}

static int by_value(const void *left, const void *right) {
    double difference = *(const double *)left - *(const double *)right;
    return (difference > 0) - (difference < 0);
}

/* The median over the rounds of one server's req/s divided by another's in the same round:
 * the two ran minutes apart at most, so a machine that speeds up or slows down over the run
 * moves both alike, and the ratio less than either. */
static double median_ratio(const struct run over[ROUNDS], const struct run under[ROUNDS]) {
    double ratios[ROUNDS];
    for (int round = 0; round < ROUNDS; round++)
        ratios[round] = under[round].rate > 0 ? over[round].rate / under[round].rate : 0;
    qsort(ratios, ROUNDS, sizeof *ratios, by_value);
    return ratios[ROUNDS / 2];
}

static int by_seconds(const void *left, const void *right) {
    double difference =
        ((const struct transfer *)left)->seconds - ((const struct transfer *)right)->seconds;
    return (difference > 0) - (difference < 0);
}

/* The machine, at the top of the page. */
static void print_machine(void) {
    struct utsname system;
    char model[256] = "unknown CPU", line[512];
    FILE *cpuinfo = fopen("/proc/cpuinfo", "r");
    while (cpuinfo != NULL && fgets(line, sizeof line, cpuinfo) != NULL)
        if (strncmp(line, "model name", strlen("model name")) == 0) {
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (cpuinfo != NULL)
        fclose(cpuinfo);
    uname(&system);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("Machine: %ld cores (%s), %s %s %s; descriptor limit %lu. Measured %s.\n\n",
           sysconf(_SC_NPROCESSORS_ONLN), model, system.sysname, system.release, system.machine,
           (unsigned long)descriptor_limit, date);
}

/* A Mermaid xychart-beta: one line per server (SERVER_COUNT), each of `count` runs, one
 * server after the other in `runs`. */
static void print_chart(const char *title, const char *x_label, const int *x, size_t count,
                        const struct run *const *runs) {
    printf("\n```mermaid\n---\nconfig:\n  themeVariables:\n    xyChart:\n"
           "      plotColorPalette: \"#d62728, #1f77b4, #2ca02c\"\n---\nxychart-beta\n"
           "    title \"%s\"\n    x-axis \"%s\" [",
           title, x_label);
    for (size_t j = 0; j < count; j++)
        printf("%s%d", j == 0 ? "" : ", ", x[j]);
    printf("]\n    y-axis \"requests per second\"\n");
    for (size_t i = 0; i < SERVER_COUNT; i++) {
        printf("    line [");
        for (size_t j = 0; j < count; j++) {
            const struct run *run = runs[i * count + j];
            printf("%s%.0f", j == 0 ? "" : ", ", run->skipped[0] ? 0 : run->rate);
        }
        printf("]\n");
    }
    printf("```\n");
}

static const char *verdict(bool met) { return met ? "met" : "**missed**"; }

int main(int argc, char **argv) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    build_dir = argc > 1 ? argv[1] : "build";
    signal(SIGPIPE, SIG_IGN);
    raise_descriptor_limit();
    print_machine();

    /* 1. Every client sends: a request of MESSAGE_SIZE bytes, its echo, the next. The
     * servers take turns at each client count, ROUNDS times, so that a machine that speeds
     * up or slows down over the minutes favours none of them. */
    static struct run rounds[COUNT(SERVERS)][COUNT(CLIENTS)][ROUNDS];
    static struct run busy[COUNT(SERVERS)][COUNT(CLIENTS)];
    for (int round = 0; round < ROUNDS; round++)
        for (size_t j = 0; j < COUNT(CLIENTS); j++)
            for (size_t i = 0; i < COUNT(SERVERS); i++)
                if (i != BASELINE_INDEX || CLIENTS[j] >= BASELINE_FROM)
                    rounds[i][j][round] = measure(SERVERS[i], CLIENTS[j], 0);
    printf("Echo servers (`-e`) under `echo_load -s %d -d %d`: every client connects at once "
           "(a burst; *connect s* is the time until all have their greeting), then sends one "
           "request, waits for its echo, and sends the next. Each server's stdout goes into a "
           "pipe that the bench reads as fast as it comes, as `server | cat >/dev/null` would. "
           "Each row is the run of median req/s of %d, the servers taking turns; failed and "
           "mismatched count all %d.\n\n",
           MESSAGE_SIZE, RUN_SECONDS, ROUNDS, ROUNDS);
    printf("| server | clients | req/s | p50 ms | p99 ms | failed | mismatched bytes | "
           "connect s | peak RSS KiB | server CPU s, user + sys |\n| --- | ---: | ---: | ---: "
           "| ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < COUNT(SERVERS); i++)
        for (size_t j = 0; j < COUNT(CLIENTS); j++) {
            busy[i][j] = median_of(rounds[i][j]);
            if (i != BASELINE_INDEX || CLIENTS[j] >= BASELINE_FROM)
                print_run(SERVERS[i], CLIENTS[j], &busy[i][j]);
        }
    printf("\nThe baseline (tests/%s.c) runs without /usr/bin/time: it never exits by "
           "itself.\n",
           BASELINE);

    /* The servers' memory per connected client: peak RSS from 10 clients to the most. */
    printf("\nMemory per connected client (peak RSS at the most clients run minus at %d, "
           "divided by the difference):",
           CLIENTS[0]);
    double kb_per_client[SERVER_COUNT];
    for (size_t i = 0; i < SERVER_COUNT; i++) {
        size_t most = COUNT(CLIENTS) - 1;
        while (most > 0 && busy[i][most].peak_kb < 0)
            most--;
        kb_per_client[i] = most == 0 || busy[i][0].peak_kb < 0
                               ? -1
                               : (double)(busy[i][most].peak_kb - busy[i][0].peak_kb) /
                                     (CLIENTS[most] - CLIENTS[0]);
        printf("%s %s %.1f KiB (to %d)", i == 0 ? "" : ",", SERVERS[i], kb_per_client[i],
               CLIENTS[most]);
    }
    printf(".\n\n");

    /* 2. A few clients send among many that only wait: what a turn of the loop costs. */
    printf("%d clients send as above, among idle ones that are connected and silent:\n\n",
           BUSY_AMONG_IDLE);
    printf("| server | idle clients | req/s | p50 ms | p99 ms | failed | mismatched bytes | "
           "connect s | peak RSS KiB | server CPU s, user + sys |\n| --- | ---: | ---: | ---: "
           "| ---: | ---: | ---: | ---: | ---: | ---: |\n");
    static struct run idle[SERVER_COUNT][COUNT(IDLE)];
    for (size_t i = 0; i < SERVER_COUNT; i++)
        for (size_t j = 0; j < COUNT(IDLE); j++) {
            idle[i][j] = measure(SERVERS[i], BUSY_AMONG_IDLE, IDLE[j]);
            print_run(SERVERS[i], IDLE[j], &idle[i][j]);
        }

    /* 3. The TCP pair and nc move 1 GiB in turns; then the pair moves 1 MiB. */
    fprintf(stderr, "bench: 1 GiB through the TCP pair and through nc, %d times each...\n",
            BULK_ROUNDS);
    const char *big = payload_of(BULK_SIZE), *small = payload_of(SMALL_BULK_SIZE);
    struct transfer pair[BULK_ROUNDS], nc[BULK_ROUNDS], small_pair[BULK_ROUNDS];
    for (int round = 0; round < BULK_ROUNDS; round++) {
        pair[round] = transfer(false, big);
        nc[round] = transfer(true, big);
        small_pair[round] = transfer(false, small);
    }
    qsort(pair, BULK_ROUNDS, sizeof *pair, by_seconds);
    qsort(nc, BULK_ROUNDS, sizeof *nc, by_seconds);
    qsort(small_pair, BULK_ROUNDS, sizeof *small_pair, by_seconds);
    const struct transfer *pair_median = &pair[BULK_ROUNDS / 2], *nc_median = &nc[BULK_ROUNDS / 2];
    const struct transfer pair_small = small_pair[BULK_ROUNDS / 2];
    printf("\n1 GiB over TCP on loopback, read from a file on stdin, written to /dev/null "
           "(median of %d runs each, taken in turns):\n\n",
           BULK_ROUNDS);
    printf("| pair | seconds | GiB/s | sender peak RSS KiB | receiver peak RSS KiB |\n"
           "| --- | ---: | ---: | ---: | ---: |\n");
    printf("| `tcp_client -m -` to `tcp_server` | %.2f | %.2f | %ld | %ld |\n",
           pair_median->seconds, 1 / pair_median->seconds, pair_median->sender_kb,
           pair_median->receiver_kb);
    printf("| `nc -N` to `nc -l` | %.2f | %.2f | %ld | %ld |\n", nc_median->seconds,
           1 / nc_median->seconds, nc_median->sender_kb, nc_median->receiver_kb);
    printf("| `tcp_client -m -` to `tcp_server`, 1 MiB | %.3f | | %ld | %ld |\n",
           pair_small.seconds, pair_small.sender_kb, pair_small.receiver_kb);
    printf("\nTCP pair / nc: %.2f of nc's time.\n\n", pair_median->seconds / nc_median->seconds);
    clean_up();

    /* The targets. */
    const struct run *epoll_10000 = &busy[2][3];
    double select_vs_poll = median_ratio(rounds[0][2], rounds[1][2]);
    double vs_baseline_1000 = median_ratio(rounds[2][2], rounds[BASELINE_INDEX][2]);
    double vs_baseline_10000 = median_ratio(rounds[2][3], rounds[BASELINE_INDEX][3]);
    long most_kb = pair_median->sender_kb > pair_median->receiver_kb ? pair_median->sender_kb
                                                                     : pair_median->receiver_kb;
    long growth_kb = (pair_median->sender_kb - pair_small.sender_kb) >
                             (pair_median->receiver_kb - pair_small.receiver_kb)
                         ? pair_median->sender_kb - pair_small.sender_kb
                         : pair_median->receiver_kb - pair_small.receiver_kb;
    bool memory_ok = true;
    for (size_t i = 0; i < SERVER_COUNT; i++)
        memory_ok = memory_ok && kb_per_client[i] >= 0 && kb_per_client[i] <= MAX_KB_PER_CLIENT;
    printf("| target | measured | |\n| --- | --- | --- |\n");
    printf("| epoll_server holds 10,000 clients, none failed, no byte mismatched | %s | %s |\n",
           epoll_10000->skipped[0]
               ? epoll_10000->skipped
               : formatted("%ld failed, %lld mismatched", epoll_10000->failed_connections,
                           epoll_10000->mismatched),
           verdict(!epoll_10000->skipped[0] && !epoll_10000->failed &&
                   epoll_10000->failed_connections == 0 && epoll_10000->mismatched == 0));
    /* A burst: 1,000 clients at once for every server, 10,000 for poll and epoll. */
    bool burst_ok = true;
    char burst_text[256] = "";
    for (size_t i = 0; i < SERVER_COUNT; i++)
        for (size_t j = 2; j < COUNT(CLIENTS); j++) {
            if (i == 0 && j == 3)
                continue; /* select_server cannot hold 10,000 */
            const struct run *run = &busy[i][j], *base = &busy[BASELINE_INDEX][j];
            double times =
                base->connect_seconds > 0 ? run->connect_seconds / base->connect_seconds : 0;
            burst_ok = burst_ok && !run->skipped[0] && run->failed_connections == 0 &&
                       times <= MAX_CONNECT_RATIO;
            snprintf(burst_text + strlen(burst_text), sizeof burst_text - strlen(burst_text),
                     "%s%s %d: %ld failed, %.1fx", burst_text[0] ? "; " : "", SERVERS[i],
                     CLIENTS[j], run->failed_connections, times);
        }
    printf("| a burst of 1,000 clients (10,000 for poll and epoll): none failed, all connected "
           "in <= %.0f x the baseline's time | %s | %s |\n",
           MAX_CONNECT_RATIO, burst_text, verdict(burst_ok));
    printf("| select_server >= %.1f x poll_server's req/s at 1,000 clients (median of the "
           "rounds' ratios) | %.2f | %s |\n",
           MIN_RATIO, select_vs_poll, verdict(select_vs_poll >= MIN_RATIO));
    printf("| epoll_server >= %.1f x the baseline's req/s at 1,000 and 10,000 clients | %.2f "
           "and %.2f | %s |\n",
           MIN_RATIO, vs_baseline_1000, vs_baseline_10000,
           verdict(vs_baseline_1000 >= MIN_RATIO && vs_baseline_10000 >= MIN_RATIO));
    printf("| the TCP pair moves 1 GiB in no more time than nc | %.2f s and %.2f s | %s |\n",
           pair_median->seconds, nc_median->seconds,
           verdict(pair_median->seconds <= nc_median->seconds));
    printf("| tcp_client and tcp_server peak RSS < %d KiB, not growing with the payload | at "
           "most %ld KiB; %+ld KiB from 1 MiB to 1 GiB | %s |\n",
           MAX_RSS_KB, most_kb, growth_kb,
           verdict(most_kb > 0 && most_kb < MAX_RSS_KB && growth_kb <= RSS_GROWTH_KB));
    printf("| servers' memory per connected client <= %d KiB | %.1f, %.1f, %.1f KiB | %s |\n",
           MAX_KB_PER_CLIENT, kb_per_client[0], kb_per_client[1], kb_per_client[2],
           verdict(memory_ok));

    /* The charts of docs/benchmarks.md: req/s, 0 where a server cannot hold the clients. */
    enum { IDLE_POINTS = 1 + COUNT(IDLE) };
    const struct run *busy_runs[SERVER_COUNT * COUNT(CLIENTS)];
    const struct run *idle_runs[SERVER_COUNT * IDLE_POINTS];
    int idle_counts[IDLE_POINTS] = {0};
    for (size_t i = 0; i < SERVER_COUNT; i++) {
        for (size_t j = 0; j < COUNT(CLIENTS); j++)
            busy_runs[i * COUNT(CLIENTS) + j] = &busy[i][j];
        idle_runs[i * IDLE_POINTS] = &busy[i][0]; /* 10 busy clients and no idle one */
        for (size_t j = 0; j < COUNT(IDLE); j++) {
            idle_runs[i * IDLE_POINTS + j + 1] = &idle[i][j];
            idle_counts[j + 1] = IDLE[j];
        }
    }
    print_chart("req/s against clients: select (red, 0 where FD_SETSIZE bars it), poll (blue), "
                "epoll (green)",
                "clients, all sending", CLIENTS, COUNT(CLIENTS), busy_runs);
    print_chart("req/s of 10 busy clients among idle ones: select (red, 0 where FD_SETSIZE bars "
                "it), poll (blue), epoll (green)",
                "idle clients", idle_counts, IDLE_POINTS, idle_runs);
    /* The burst: seconds until every client of a burst has its greeting, baseline included;
     * select_server is not in the 10,000 one (FD_SETSIZE). */
    for (size_t j = 2; j < COUNT(CLIENTS); j++) {
        size_t first = j == 2 ? 0 : 1;
        printf("\n```mermaid\nxychart-beta\n    title \"seconds until %d clients connecting at "
               "once all have their greeting\"\n    x-axis [",
               CLIENTS[j]);
        for (size_t i = first; i < COUNT(SERVERS); i++)
            printf("%s%s", i == first ? "" : ", ", SERVERS[i]);
        double most = 0;
        for (size_t i = first; i < COUNT(SERVERS); i++)
            most = busy[i][j].connect_seconds > most ? busy[i][j].connect_seconds : most;
        printf("]\n    y-axis \"seconds\" 0 --> %.2f\n    bar [", most * 1.25 + 0.01);
        for (size_t i = first; i < COUNT(SERVERS); i++)
            printf("%s%.2f", i == first ? "" : ", ", busy[i][j].connect_seconds);
        printf("]\n```\n");
    }
    return any_failure ? EXIT_FAILURE : EXIT_SUCCESS;
}
