/* ticks.h: for the tests that interrupt blocking calls on purpose (test_helpers.c and
 * test_stream_loops.c): SIGALRM at a steady rate. The functions are static, in a header,
 * because each of those tests compiles an example in (its die() among them): this is their
 * one copy. Include it after that example or the header. */
#ifndef TICKS_H
#define TICKS_H

#include <errno.h>
#include <signal.h>
#include <sys/time.h>

enum { NO_WAKE = 0 /* ticks count from 1: never */ };

/* Ticks: SIGALRM at a steady rate, counted by on_tick. On tick `wake_tick` the handler also
 * runs wake_action(wake_fd), which brings what the interrupted call is waiting for. A
 * handler may only make async-signal-safe calls (write, accept). */
static volatile sig_atomic_t ticks;
static volatile sig_atomic_t wake_tick;
static volatile sig_atomic_t wake_fd = -1;
static void (*wake_action)(int fd);
static struct sigaction saved_alarm_action;

static void on_tick(int signal_number) {
    int saved_errno = errno; /* the interrupted code may read errno next */
    (void)signal_number;
    ticks++;
    if (ticks == wake_tick)
        wake_action(wake_fd);
    errno = saved_errno;
}

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

/* Stop the ticks. A tick may already be pending: ignoring SIGALRM discards it (POSIX),
 * before the old action (the default: end the process) comes back. */
static void stop_ticking(void) {
    struct itimerval never = {{0, 0}, {0, 0}};
    if (setitimer(ITIMER_REAL, &never, NULL) == -1)
        die("setitimer");
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGALRM, &ignore, NULL) == -1 ||
        sigaction(SIGALRM, &saved_alarm_action, NULL) == -1)
        die("sigaction");
}

#endif
