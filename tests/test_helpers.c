#define _POSIX_C_SOURCE 200809L

/* test_helpers.c: unit tests for examples/socket_helpers.h.
 * Each test builds the situation a helper exists for, with real sockets, pipes, signals and
 * processes: a signal in the middle of recv, a send that takes only part of the buffer, a
 * peer that has gone. Nothing waits without a time limit, so a bug fails a test rather
 * than hanging it. Run: make build/test_helpers && ./build/test_helpers */

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h> /* needs setjmp.h, stdarg.h, stddef.h and stdint.h first */
#undef fail /* cmocka's fail() macro would hide the header's fail(); we use its asserts only */

/* send_all calls send. In this file it calls fake_send instead, which passes each call on to
 * the real send (the #undef below brings it back) and counts what came back. */
static ssize_t fake_send(int sock, const void *data, size_t size, int flags);
#define send fake_send
#include "../examples/socket_helpers.h"
#undef send

enum {
    TIME_LIMIT_S = 5,        /* the longest a test waits for anything */
    CHILD_TIME_LIMIT_S = 10, /* alarm() ends a child that outlives its test */
    CPU_LIMIT_S = 10,        /* ends a run stuck in a loop that never waits */
    TICK_US = 20000,         /* a SIGALRM every 20 ms */
    NO_WAKE = 0,             /* the tick handler only counts */
    WAKE_TICK = 3,           /* the tick that brings what the interrupted call waits for */
    ROOM_TICK = 5,           /* the tick that makes room in a full accept queue */
    SHORT_TIMEOUT_MS = 50,
    STINGY_SEND_BYTES = 3, /* the most the fake send takes at once, when told to */
    MESSAGE_SIZE = 101,
    SMALL_BUFFER_SIZE = 4096,
    PIPE_TRANSFER_SIZE = 1 << 20,
    LARGE_TRANSFER_SIZE = 4 << 20,
    READ_SIZE = 65536, /* the most receive_all asks for at once */
    OUTPUT_SIZE = 512,
    ENDING_SIZE = 64,
    RETURNED = 99, /* the exit code of a child whose die, fail or usage_error came back */
};

/* Room for the largest transfer, shared by the tests that move megabytes. */
static char sent_bytes[LARGE_TRANSFER_SIZE];
static char received_bytes[LARGE_TRANSFER_SIZE + 1];

/* Compare errno values by their messages, so that a failure reads
 * "Broken pipe" != "Connection refused" rather than two numbers. */
#define assert_errno_equal(actual, expected)                                     \
    do {                                                                         \
        char actual_message[128];                                                \
        snprintf(actual_message, sizeof actual_message, "%s", strerror(actual)); \
        assert_string_equal(actual_message, strerror(expected));                 \
    } while (0)

/* fake_send: what send_all calls here (see the #define above). It passes each call on to the
 * real send and counts the results. A test can make it take at most `max_bytes` at a time
 * and fail every other call with EINTR, as a busy kernel and a signal may. */
struct fake_send_state {
    size_t max_bytes;
    bool interrupt_every_other;
    int calls, cut_short, interrupted;
};
static struct fake_send_state fake = {SIZE_MAX, false, 0, 0, 0};

static void configure_fake_send(size_t max_bytes, bool interrupt_every_other) {
    fake = (struct fake_send_state){max_bytes, interrupt_every_other, 0, 0, 0};
}

static ssize_t fake_send(int sock, const void *data, size_t size, int flags) {
    fake.calls++;
    if (fake.interrupt_every_other && fake.calls % 2 == 1) {
        fake.interrupted++;
        errno = EINTR;
        return -1;
    }
    ssize_t bytes_sent = send(sock, data, size < fake.max_bytes ? size : fake.max_bytes, flags);
    if (bytes_sent == -1 && errno == EINTR)
        fake.interrupted++;
    else if (bytes_sent >= 0 && (size_t)bytes_sent < size)
        fake.cut_short++;
    return bytes_sent;
}

/* Bytes that differ from their neighbours and never line up with a buffer size (251 is
 * prime), so a lost, repeated or reordered chunk shows. */
static void fill_pattern(char *buffer, size_t size) {
    for (size_t offset = 0; offset < size; offset++)
        buffer[offset] = (char)(offset % 251);
}

static void make_socket_pair(int pair[2]) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
}

static void make_pipe(int ends[2]) { assert_int_equal(pipe(ends), 0); }

/* Make blocking sends and receives on `sock` give up after `milliseconds` (EAGAIN). */
static void set_time_limit(int sock, int milliseconds) {
    struct timeval limit = {milliseconds / 1000, milliseconds % 1000 * 1000};
    assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
    assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit), 0);
}

/* A TCP socket bound to 127.0.0.1 on a port the kernel picks; `address` gets that port. */
static int bind_loopback(struct sockaddr_in *address) {
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(sock, -1);
    *address = (struct sockaddr_in){.sin_family = AF_INET};
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof *address;
    assert_int_equal(bind(sock, (struct sockaddr *)address, length), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)address, &length), 0);
    return sock;
}

static int listen_on_loopback(struct sockaddr_in *address, int backlog) {
    int listener = bind_loopback(address);
    assert_int_equal(listen(listener, backlog), 0);
    return listener;
}

/* The time TIME_LIMIT_S from now, on a clock that only goes forward. */
static struct timespec time_limit_from_now(void) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += TIME_LIMIT_S;
    return deadline;
}

static int milliseconds_until(struct timespec deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left =
        (deadline.tv_sec - now.tv_sec) * 1000LL + (deadline.tv_nsec - now.tv_nsec) / 1000000;
    return left > 0 ? (int)left : 0;
}

/* Wait until `fd` has something to read (or its end) or `deadline` passes. */
static bool readable_before(int fd, struct timespec deadline) {
    struct pollfd wanted = {.fd = fd, .events = POLLIN};
    int ready;
    do
        ready = poll(&wanted, 1, milliseconds_until(deadline));
    while (ready == -1 && errno == EINTR);
    return ready == 1;
}

/* Read from `fd` until end of stream, until `buffer` is full or until TIME_LIMIT_S passes.
 * Returns the bytes read: pass room for one byte more than expected, to catch any extra. */
static size_t receive_all(int fd, char *buffer, size_t capacity) {
    struct timespec deadline = time_limit_from_now();
    size_t filled = 0;
    while (filled < capacity && readable_before(fd, deadline)) {
        size_t room = capacity - filled;
        ssize_t bytes_read = read(fd, buffer + filled, room < READ_SIZE ? room : READ_SIZE);
        if (bytes_read <= 0)
            break;
        filled += (size_t)bytes_read;
    }
    return filled;
}

/* accept, waiting at most TIME_LIMIT_S for a connection; -1 if none came. */
static int accept_in_time(int listener) {
    return readable_before(listener, time_limit_from_now()) ? accept(listener, NULL, NULL) : -1;
}

/* Ticks: SIGALRM at a steady rate, counted by on_tick. On tick `wake_tick` the handler also
 * runs wake_action(wake_fd), which brings what the interrupted call is waiting for. A
 * handler may only make async-signal-safe calls: write and accept are. */
static volatile sig_atomic_t ticks;
static volatile sig_atomic_t wake_tick;
static volatile sig_atomic_t wake_fd = -1;
static void (*wake_action)(int fd);
static volatile sig_atomic_t accepted_by_handler = -1;
static struct sigaction saved_alarm_action;

static void on_tick(int signal_number) {
    int saved_errno = errno; /* the interrupted code may read errno next */
    (void)signal_number;
    ticks++;
    if (ticks == wake_tick)
        wake_action(wake_fd);
    errno = saved_errno;
}

static void write_one_byte(int fd) {
    ssize_t written = write(fd, "!", 1);
    (void)written;
}

static void accept_one(int listener) { accepted_by_handler = accept(listener, NULL, NULL); }

/* Send this process SIGALRM every `interval_us` microseconds. The handler is installed
 * without SA_RESTART, so each signal makes a blocked call fail with EINTR (or return what it
 * has moved so far). On tick `wake_on` (NO_WAKE: never) it runs action(fd). Children call this
 * too, so a failure ends the process with die() rather than a cmocka assertion. */
static void start_ticking(long interval_us, int wake_on, void (*action)(int fd), int fd) {
    ticks = 0;
    wake_tick = wake_on;
    wake_action = action;
    wake_fd = fd;
    struct sigaction tick_action = {.sa_handler = on_tick, .sa_flags = 0};
    sigemptyset(&tick_action.sa_mask);
    if (sigaction(SIGALRM, &tick_action, &saved_alarm_action) == -1)
        die("sigaction");
    struct itimerval every = {{0, interval_us}, {0, interval_us}};
    if (setitimer(ITIMER_REAL, &every, NULL) == -1)
        die("setitimer");
}

static void stop_ticking(void) {
    struct itimerval never = {{0, 0}, {0, 0}};
    if (setitimer(ITIMER_REAL, &never, NULL) == -1)
        die("setitimer");
    if (sigaction(SIGALRM, &saved_alarm_action, NULL) == -1)
        die("sigaction");
}

/* A child process, its stderr collected through a pipe. `ending` says how it ended:
 * "exit 1", "killed by signal 13 (Broken pipe)", or "timed out" if we had to kill it. */
struct child {
    pid_t pid;
    int error_output;
    char output[OUTPUT_SIZE];
    char ending[ENDING_SIZE];
};

/* The ending finish_child reports for a child killed by `signal_number`. */
static const char *killed_by(int signal_number) {
    static char ending[ENDING_SIZE];
    snprintf(ending, sizeof ending, "killed by signal %d (%s)", signal_number,
             strsignal(signal_number));
    return ending;
}

/* fork, with the child's stderr going to a pipe that finish_child reads. Returns 0 in the
 * child, which must end with exit or _exit and make no cmocka assertion: those belong to the
 * parent. Call finish_child before asserting anything in the parent. */
static pid_t start_child(struct child *child) {
    int error_pipe[2];
    make_pipe(error_pipe);
    fflush(NULL); /* or the child would print the parent's pending output again at exit */
    pid_t pid = fork();
    assert_int_not_equal(pid, -1);
    if (pid == 0) {
        dup2(error_pipe[1], STDERR_FILENO);
        close(error_pipe[0]);
        close(error_pipe[1]);
        alarm(CHILD_TIME_LIMIT_S); /* in case the parent is no longer there to kill it */
        return 0;
    }
    close(error_pipe[1]);
    *child = (struct child){.pid = pid, .error_output = error_pipe[0]};
    return pid;
}

/* Collect the child's stderr until the pipe closes, which it does when the child exits, and
 * reap the child. If TIME_LIMIT_S passes first, kill it and report "timed out". */
static void finish_child(struct child *child) {
    struct timespec deadline = time_limit_from_now();
    size_t filled = 0;
    bool closed = false;
    while (!closed && readable_before(child->error_output, deadline)) {
        char chunk[OUTPUT_SIZE];
        ssize_t bytes_read = read(child->error_output, chunk, sizeof chunk);
        closed = bytes_read <= 0;
        size_t room = sizeof child->output - 1 - filled;
        size_t kept = closed ? 0 : (size_t)bytes_read < room ? (size_t)bytes_read : room;
        memcpy(child->output + filled, chunk, kept);
        filled += kept;
    }
    child->output[filled] = '\0';
    close(child->error_output);
    if (!closed)
        kill(child->pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(child->pid, &status, 0), child->pid);
    if (!closed)
        snprintf(child->ending, sizeof child->ending, "timed out");
    else if (WIFEXITED(status))
        snprintf(child->ending, sizeof child->ending, "exit %d", WEXITSTATUS(status));
    else
        snprintf(child->ending, sizeof child->ending, "%s", killed_by(WTERMSIG(status)));
}

/* In a child: send one byte to a peer that has closed its end, report, and exit. */
static void send_to_a_closed_peer_and_report(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == -1)
        die("socketpair");
    close(pair[1]);
    int result = send_all(pair[0], "x", 1);
    fprintf(stderr, "send_all returned %d: %s\n", result, strerror(errno));
    _exit(0);
}

/* 1. EINTR: real signals interrupt real calls. */

static void recv_retry_survives_signals_that_interrupt_recv(void **state) {
    (void)state;
    int pair[2];
    make_socket_pair(pair);
    char byte;

    /* The control: with nothing to read, the first signal makes a plain recv fail. */
    start_ticking(TICK_US, NO_WAKE, NULL, -1);
    ssize_t plain_result = recv(pair[0], &byte, 1, 0);
    int plain_errno = errno;
    stop_ticking();

    /* recv_retry waits on through the signals; the third one writes the byte it waits for. */
    start_ticking(TICK_US, WAKE_TICK, write_one_byte, pair[1]);
    ssize_t retry_result = recv_retry(pair[0], &byte, 1);
    int ticks_seen = ticks;
    stop_ticking();
    close(pair[0]);
    close(pair[1]);

    assert_int_equal(plain_result, -1);
    assert_errno_equal(plain_errno, EINTR);
    assert_int_equal(retry_result, 1);
    assert_int_equal(byte, '!');
    assert_in_range(ticks_seen, WAKE_TICK, INT_MAX);
}

static void retry_on_eintr_keeps_a_read_going_through_signals(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    char byte;

    /* The control: a plain read of an empty pipe fails at the first signal. */
    start_ticking(TICK_US, NO_WAKE, NULL, -1);
    ssize_t plain_result = read(ends[0], &byte, 1);
    int plain_errno = errno;
    stop_ticking();

    /* RETRY_ON_EINTR reads again after each signal; the third one writes the byte. */
    start_ticking(TICK_US, WAKE_TICK, write_one_byte, ends[1]);
    ssize_t retry_result;
    RETRY_ON_EINTR(retry_result, read(ends[0], &byte, 1));
    int ticks_seen = ticks;
    stop_ticking();
    close(ends[0]);
    close(ends[1]);

    assert_int_equal(plain_result, -1);
    assert_errno_equal(plain_errno, EINTR);
    assert_int_equal(retry_result, 1);
    assert_int_equal(byte, '!');
    assert_in_range(ticks_seen, WAKE_TICK, INT_MAX);
}

/* 2. send_all and partial writes. */

static void send_all_survives_partial_writes_and_interruptions(void **state) {
    (void)state;
    char message[MESSAGE_SIZE];
    fill_pattern(message, sizeof message);
    int pair[2];
    make_socket_pair(pair);
    set_time_limit(pair[0], TIME_LIMIT_S * 1000); /* a send_all that never stops fails, not hangs */

    /* Every other send fails with EINTR, and the others take at most 3 bytes. */
    configure_fake_send(STINGY_SEND_BYTES, true);
    int result = send_all(pair[0], message, sizeof message);
    int calls = fake.calls;
    configure_fake_send(SIZE_MAX, false);
    shutdown(pair[0], SHUT_WR);
    char received[MESSAGE_SIZE + 1];
    size_t received_size = receive_all(pair[1], received, sizeof received);
    close(pair[0]);
    close(pair[1]);

    assert_int_equal(result, 0);
    assert_int_equal(received_size, MESSAGE_SIZE);
    assert_memory_equal(received, message, MESSAGE_SIZE);
    /* One interrupted call and one short one for every 3 bytes. */
    assert_int_equal(calls, 2 * ((MESSAGE_SIZE + STINGY_SEND_BYTES - 1) / STINGY_SEND_BYTES));
}

static void send_all_delivers_megabytes_through_signals_and_a_full_buffer(void **state) {
    (void)state;
    fill_pattern(sent_bytes, LARGE_TRANSFER_SIZE);
    int pair[2], go[2];
    make_socket_pair(pair);
    make_pipe(go);

    /* The sender's one big send fills the small buffer and waits, as nobody reads yet. The
     * first tick cuts that send short; the next ones interrupt sends that moved nothing, and
     * the third one also tells this process to start reading. */
    struct child sender;
    if (start_child(&sender) == 0) {
        close(pair[1]);
        int buffer_size = SMALL_BUFFER_SIZE;
        setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof buffer_size);
        configure_fake_send(SIZE_MAX, false);
        start_ticking(TICK_US, WAKE_TICK, write_one_byte, go[1]);
        int result = send_all(pair[0], sent_bytes, LARGE_TRANSFER_SIZE);
        stop_ticking();
        fprintf(stderr, "send_all returned %d; sends cut short: %s; sends interrupted: %s\n",
                result, fake.cut_short > 0 ? "some" : "none",
                fake.interrupted > 0 ? "some" : "none");
        _exit(0);
    }
    close(pair[0]);
    close(go[1]);
    readable_before(go[0], time_limit_from_now());
    size_t received_size = receive_all(pair[1], received_bytes, LARGE_TRANSFER_SIZE + 1);
    close(pair[1]);
    close(go[0]);
    finish_child(&sender);

    assert_string_equal(sender.output,
                        "send_all returned 0; sends cut short: some; sends interrupted: some\n");
    assert_string_equal(sender.ending, "exit 0");
    assert_int_equal(received_size, LARGE_TRANSFER_SIZE);
    assert_memory_equal(received_bytes, sent_bytes, LARGE_TRANSFER_SIZE);
}

/* 3. SIGPIPE and EPIPE. */

static void send_all_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child) == 0) {
        ignore_sigpipe();
        send_to_a_closed_peer_and_report();
    }
    finish_child(&child);

    assert_string_equal(child.output, "send_all returned -1: Broken pipe\n");
    assert_string_equal(child.ending, "exit 0");
}

static void send_all_to_a_closed_peer_kills_a_process_that_keeps_sigpipe(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child) == 0) {
        signal(SIGPIPE, SIG_DFL); /* as a program starts, whatever ran these tests */
        send_to_a_closed_peer_and_report();
    }
    finish_child(&child);

    assert_string_equal(child.output, "");
    assert_string_equal(child.ending, killed_by(SIGPIPE));
}

/* 4. receive_until_eof. */

static void receive_until_eof_writes_exactly_what_arrived_across_chunk_boundaries(void **state) {
    (void)state;
    const size_t chunk_sizes[] = {1, 2, 3, 7, 4096 + 1, IO_CHUNK_SIZE + 1, 2 * IO_CHUNK_SIZE - 1};
    fill_pattern(sent_bytes, LARGE_TRANSFER_SIZE);
    int pair[2];
    make_socket_pair(pair);
    set_time_limit(pair[1], TIME_LIMIT_S * 1000);

    /* Everything fits in the socket's buffer, so one process can send it all first. */
    size_t sent_size = 0;
    for (size_t chunk = 0; chunk < sizeof chunk_sizes / sizeof chunk_sizes[0]; chunk++) {
        ssize_t bytes_sent = send(pair[0], sent_bytes + sent_size, chunk_sizes[chunk], 0);
        assert_int_equal(bytes_sent, chunk_sizes[chunk]);
        sent_size += chunk_sizes[chunk];
    }
    shutdown(pair[0], SHUT_WR);
    char *received;
    size_t received_size;
    FILE *out = open_memstream(&received, &received_size);
    assert_non_null(out);
    int result = receive_until_eof(pair[1], out);
    fclose(out);
    close(pair[0]);
    close(pair[1]);

    assert_int_equal(result, 0);
    assert_int_equal(received_size, sent_size);
    assert_memory_equal(received, sent_bytes, sent_size);
    free(received);
}

static void receive_until_eof_fails_with_eagain_when_the_receive_timeout_passes(void **state) {
    (void)state;
    int pair[2];
    make_socket_pair(pair);
    set_time_limit(pair[1], SHORT_TIMEOUT_MS);

    /* Some bytes, but no end of stream. */
    assert_int_equal(send(pair[0], "partial", 7, 0), 7);
    char *received;
    size_t received_size;
    FILE *out = open_memstream(&received, &received_size);
    assert_non_null(out);
    int result = receive_until_eof(pair[1], out);
    int receive_errno = errno == EWOULDBLOCK ? EAGAIN : errno; /* POSIX allows either */
    fclose(out);
    close(pair[0]);
    close(pair[1]);

    assert_int_equal(result, -1);
    assert_errno_equal(receive_errno, EAGAIN);
    /* What came before the timeout is written all the same. */
    assert_int_equal(received_size, 7);
    assert_memory_equal(received, "partial", 7);
    free(received);
}

/* 5. send_until_eof. */

static void send_until_eof_copies_a_whole_pipe_to_the_socket(void **state) {
    (void)state;
    fill_pattern(sent_bytes, PIPE_TRANSFER_SIZE);
    int data_pipe[2], pair[2];
    make_pipe(data_pipe);
    make_socket_pair(pair);

    /* writer | send_until_eof -> socket -> this process, each in its own process. */
    struct child writer, sender;
    if (start_child(&writer) == 0) {
        close(data_pipe[0]);
        close(pair[0]);
        close(pair[1]);
        /* A blocking write to a pipe returns only once all is written (no signals here). */
        ssize_t written = write(data_pipe[1], sent_bytes, PIPE_TRANSFER_SIZE);
        _exit(written == PIPE_TRANSFER_SIZE ? 0 : 1);
    }
    close(data_pipe[1]);
    if (start_child(&sender) == 0) {
        close(pair[1]);
        int result = send_until_eof(pair[0], data_pipe[0]);
        fprintf(stderr, "send_until_eof returned %d\n", result);
        _exit(0);
    }
    close(data_pipe[0]);
    close(pair[0]);
    size_t received_size = receive_all(pair[1], received_bytes, PIPE_TRANSFER_SIZE + 1);
    close(pair[1]);
    finish_child(&writer);
    finish_child(&sender);

    assert_string_equal(writer.ending, "exit 0");
    assert_string_equal(sender.output, "send_until_eof returned 0\n");
    assert_string_equal(sender.ending, "exit 0");
    assert_int_equal(received_size, PIPE_TRANSFER_SIZE);
    assert_memory_equal(received_bytes, sent_bytes, PIPE_TRANSFER_SIZE);
}

/* 6. read_whole. */

static void read_whole_returns_the_size_of_input_shorter_than_the_buffer(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    assert_int_equal(write(ends[1], "hello", 5), 5);
    close(ends[1]);

    char buffer[16];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    close(ends[0]);

    assert_int_equal(result, 5);
    assert_memory_equal(buffer, "hello", 5);
}

static void read_whole_fails_with_emsgsize_when_input_fills_the_buffer(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    assert_int_equal(write(ends[1], "12345678", 8), 8);
    close(ends[1]);

    char buffer[8];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    int read_errno = errno;
    close(ends[0]);

    assert_int_equal(result, -1);
    assert_errno_equal(read_errno, EMSGSIZE);
}

static void read_whole_returns_zero_for_empty_input(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    close(ends[1]);

    char buffer[16];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    close(ends[0]);

    assert_int_equal(result, 0);
}

/* 7. connect_retry. */

static void connect_retry_connects_to_a_loopback_listener(void **state) {
    (void)state;
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(client, -1);

    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int accepted = accept_in_time(listener);
    close(accepted);
    close(client);
    close(listener);

    assert_int_equal(result, 0);
    assert_int_not_equal(accepted, -1);
}

static void connect_retry_fails_with_econnrefused_when_nothing_listens(void **state) {
    (void)state;
    /* A bound socket that does not listen holds the port, so no one else can take it. */
    struct sockaddr_in address;
    int not_listening = bind_loopback(&address);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(client, -1);

    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int connect_errno = errno;
    close(client);
    close(not_listening);

    assert_int_equal(result, -1);
    assert_errno_equal(connect_errno, ECONNREFUSED);
}

static void connect_retry_survives_signals_while_the_handshake_waits(void **state) {
    (void)state;
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 0);

    /* One connection fills the queue of a listener with backlog 0. The kernel then drops a
     * new client's SYN, and the client sends it again only a second later: until then its
     * connect waits, and each tick interrupts it. Tick 5 accepts the first connection, so
     * the SYN sent again finds room. */
    int first = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(first, (struct sockaddr *)&address, sizeof address), 0);
    assert_true(readable_before(listener, time_limit_from_now()));
    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(client, -1);

    start_ticking(TICK_US, ROOM_TICK, accept_one, listener);
    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int ticks_seen = ticks;
    stop_ticking();
    int accepted = accept_in_time(listener);
    close(accepted);
    close(accepted_by_handler);
    close(client);
    close(first);
    close(listener);

    assert_int_equal(result, 0);
    assert_in_range(ticks_seen, ROOM_TICK, INT_MAX);
    assert_int_not_equal(accepted, -1);
}

/* 8. Error messages and exit codes. */

static void die_prints_the_program_what_and_strerror_then_exits_1(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child) == 0) {
        set_program_name("/some/dir/prog");
        errno = ECONNREFUSED;
        die("connect");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: connect: Connection refused\n");
    assert_string_equal(child.ending, "exit 1");
}

static void fail_prints_the_program_what_and_why_then_exits_1(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child) == 0) {
        set_program_name("/some/dir/prog");
        fail("what", "why");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: what: why\n");
    assert_string_equal(child.ending, "exit 1");
}

static void usage_error_prints_the_program_and_message_then_exits_2(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child) == 0) {
        set_program_name("/some/dir/prog");
        usage_error("bad port");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: bad port\n");
    assert_string_equal(child.ending, "exit 2");
}

int main(int argc, char **argv) {
    (void)argc;
    set_program_name(argv[0]);

    /* Every wait above has a time limit. A bug that loops without waiting meets this one:
     * after CPU_LIMIT_S seconds of CPU time the kernel ends the run with SIGXCPU. */
    struct rlimit cpu_limit = {CPU_LIMIT_S, CPU_LIMIT_S + 1};
    if (setrlimit(RLIMIT_CPU, &cpu_limit) == -1)
        die("setrlimit");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(recv_retry_survives_signals_that_interrupt_recv),
        cmocka_unit_test(retry_on_eintr_keeps_a_read_going_through_signals),
        cmocka_unit_test(send_all_survives_partial_writes_and_interruptions),
        cmocka_unit_test(send_all_delivers_megabytes_through_signals_and_a_full_buffer),
        cmocka_unit_test(send_all_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored),
        cmocka_unit_test(send_all_to_a_closed_peer_kills_a_process_that_keeps_sigpipe),
        cmocka_unit_test(receive_until_eof_writes_exactly_what_arrived_across_chunk_boundaries),
        cmocka_unit_test(receive_until_eof_fails_with_eagain_when_the_receive_timeout_passes),
        cmocka_unit_test(send_until_eof_copies_a_whole_pipe_to_the_socket),
        cmocka_unit_test(read_whole_returns_the_size_of_input_shorter_than_the_buffer),
        cmocka_unit_test(read_whole_fails_with_emsgsize_when_input_fills_the_buffer),
        cmocka_unit_test(read_whole_returns_zero_for_empty_input),
        cmocka_unit_test(connect_retry_connects_to_a_loopback_listener),
        cmocka_unit_test(connect_retry_fails_with_econnrefused_when_nothing_listens),
        cmocka_unit_test(connect_retry_survives_signals_while_the_handshake_waits),
        cmocka_unit_test(die_prints_the_program_what_and_strerror_then_exits_1),
        cmocka_unit_test(fail_prints_the_program_what_and_why_then_exits_1),
        cmocka_unit_test(usage_error_prints_the_program_and_message_then_exits_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
