#define _POSIX_C_SOURCE 200809L

/* test_helpers.c: unit tests for the errors and signals of examples/hardened/plumbing.c.
 * Each test builds the situation a helper exists for, with real sockets, pipes, signals and
 * processes: a signal in the middle of recv, a peer that has gone, an error to report.
 * Nothing waits without a time limit, so a bug fails a test rather than hanging it.
 * The loops and helpers that moved from the header into the programs have their own files:
 * test_stream_loops.c (tcp_client.c) and test_read_whole.c (udp_receiver.c).
 * Run: make build/test_helpers && ./build/test_helpers */

#include <errno.h>
#include <limits.h>
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

#include "../examples/hardened/plumbing.c"
#include "children.h"
#include "ticks.h"

enum {
    CPU_LIMIT_S = 10, /* ends a run stuck in a loop that never waits */
    TICK_US = 20000,  /* a SIGALRM every 20 ms */
    WAKE_TICK = 3,    /* the tick that brings what the interrupted call waits for */
    RETURNED = 99,    /* the exit code of a child whose die, fail or usage_error came back */
};

static void make_socket_pair(int pair[2]) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
}

static void make_pipe(int ends[2]) { assert_int_equal(pipe(ends), 0); }

static void write_one_byte(int fd) {
    ssize_t written = write(fd, "!", 1);
    (void)written;
}

/* In a child: send one byte to a peer that has closed its end, report, and exit. */
static void send_to_a_closed_peer_and_report(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == -1)
        die("socketpair");
    close(pair[1]);
    ssize_t result = send(pair[0], "x", 1, 0);
    fprintf(stderr, "send returned %d: %s\n", (int)result, strerror(errno));
    _exit(0);
}

/* 1. EINTR: real signals interrupt real calls. */

static void retry_on_eintr_keeps_a_recv_going_through_signals(void **state) {
    (void)state;
    int pair[2];
    make_socket_pair(pair);
    char byte;

    /* The control: with nothing to read, the first signal makes a plain recv fail. */
    start_ticking(TICK_US, NO_WAKE, NULL, -1);
    ssize_t plain_result = recv(pair[0], &byte, 1, 0);
    int plain_errno = errno;
    stop_ticking();

    /* RETRY_ON_EINTR receives again after each signal; the third one writes the byte. */
    start_ticking(TICK_US, WAKE_TICK, write_one_byte, pair[1]);
    ssize_t retry_result;
    RETRY_ON_EINTR(retry_result, recv(pair[0], &byte, 1, 0));
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

/* 2. SIGPIPE and EPIPE. */

static void send_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        set_up_program("/some/dir/prog"); /* which ignores SIGPIPE */
        send_to_a_closed_peer_and_report();
    }
    finish_child(&child);

    assert_string_equal(child.output, "send returned -1: Broken pipe\n");
    assert_string_equal(child.ending, "exit 0");
}

static void send_to_a_closed_peer_kills_a_process_that_keeps_sigpipe(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        signal(SIGPIPE, SIG_DFL); /* as a program starts, whatever ran these tests */
        send_to_a_closed_peer_and_report();
    }
    finish_child(&child);

    assert_string_equal(child.output, "");
    assert_string_equal(child.ending, killed_by(SIGPIPE));
}

/* 3. Error messages and exit codes. */

static void die_prints_the_program_what_and_strerror_then_exits_1(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        program_name = "prog";
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
    if (start_child(&child, false) == 0) {
        program_name = "prog";
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
    if (start_child(&child, false) == 0) {
        program_name = "prog";
        usage_error("bad port");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: bad port\n");
    assert_string_equal(child.ending, "exit 2");
}

int main(int argc, char **argv) {
    (void)argv;
    (void)argc;
    program_name = "test_helpers";

    /* Every wait above has a time limit. A bug that loops without waiting meets this one:
     * after CPU_LIMIT_S seconds of CPU time the kernel ends the run with SIGXCPU. */
    struct rlimit cpu_limit = {CPU_LIMIT_S, CPU_LIMIT_S + 1};
    if (setrlimit(RLIMIT_CPU, &cpu_limit) == -1)
        die("setrlimit");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retry_on_eintr_keeps_a_recv_going_through_signals),
        cmocka_unit_test(retry_on_eintr_keeps_a_read_going_through_signals),
        cmocka_unit_test(send_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored),
        cmocka_unit_test(send_to_a_closed_peer_kills_a_process_that_keeps_sigpipe),
        cmocka_unit_test(die_prints_the_program_what_and_strerror_then_exits_1),
        cmocka_unit_test(fail_prints_the_program_what_and_why_then_exits_1),
        cmocka_unit_test(usage_error_prints_the_program_and_message_then_exits_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
