/* children.h: for the unit tests that run code in a forked child and compare errno values
 * (test_claims, test_helpers, test_stream_loops, test_read_whole): the one copy of each such
 * helper. Static inline in a header, because those tests compile an example in and cannot
 * take harness.h's names. Include after cmocka.h. */
#ifndef CHILDREN_H
#define CHILDREN_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
    CHILD_WAIT_S = 5,        /* the longest finish_child waits for a child to end */
    CHILD_LIFETIME_S = 10,   /* alarm() ends a child that outlives its test */
    CHILD_OUTPUT_SIZE = 512, /* of a child's stderr, kept */
    CHILD_ENDING_SIZE = 64,
};

/* Compare errno values by their messages, so that a failure reads
 * "Broken pipe" != "Connection refused" rather than two numbers. */
#define assert_errno_equal(actual, expected)                                     \
    do {                                                                         \
        char actual_message[128];                                                \
        snprintf(actual_message, sizeof actual_message, "%s", strerror(actual)); \
        assert_string_equal(actual_message, strerror(expected));                 \
    } while (0)

/* "killed by signal 13 (Broken pipe)": tests/checks.c. */
const char *killed_by(int signal_number);

/* The time `seconds` from now, on a clock that only goes forward. */
static inline struct timespec time_limit_from_now(int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += seconds;
    return deadline;
}

static inline int milliseconds_until(struct timespec deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left =
        (deadline.tv_sec - now.tv_sec) * 1000LL + (deadline.tv_nsec - now.tv_nsec) / 1000000;
    return left > 0 ? (int)left : 0;
}

/* Wait until `fd` has something to read (or its end) or `deadline` passes. */
static inline bool readable_before(int fd, struct timespec deadline) {
    struct pollfd wanted = {.fd = fd, .events = POLLIN};
    int ready;
    do
        ready = poll(&wanted, 1, milliseconds_until(deadline));
    while (ready == -1 && errno == EINTR);
    return ready == 1;
}

/* A child process. Its stderr is collected through a pipe into `output`; with capture_stdout,
 * its stdout goes into a temporary file (a pipe nobody reads meanwhile would fill up and stop
 * it) that finish_child reads into `printed`, which the test frees. `ending` says how it
 * ended: "exit 1", "killed by signal 13 (Broken pipe)", or "timed out" if we had to kill it. */
struct child {
    pid_t pid;
    int error_output;
    FILE *printed_file; /* NULL without capture_stdout */
    char output[CHILD_OUTPUT_SIZE];
    char *printed; /* malloc'ed, with a '\0' after printed_length bytes; NULL without */
    size_t printed_length;
    char ending[CHILD_ENDING_SIZE];
};

/* fork, with the child's stderr going to a pipe (and its stdout to a file) that finish_child
 * reads. Returns 0 in the child, which must end with exit or _exit and make no cmocka
 * assertion: those belong to the parent (a failing one would go on to run the other tests in
 * the child). Call finish_child before asserting anything in the parent. */
static inline pid_t start_child(struct child *child, bool capture_stdout) {
    int error_pipe[2];
    assert_int_equal(pipe(error_pipe), 0);
    FILE *printed_file = capture_stdout ? tmpfile() : NULL;
    assert_true(printed_file != NULL || !capture_stdout);
    fflush(NULL); /* or the child would print the parent's pending output again at exit */
    pid_t pid = fork();
    assert_int_not_equal(pid, -1);
    if (pid == 0) {
        dup2(error_pipe[1], STDERR_FILENO);
        if (printed_file != NULL)
            dup2(fileno(printed_file), STDOUT_FILENO);
        close(error_pipe[0]);
        close(error_pipe[1]);
        alarm(CHILD_LIFETIME_S); /* in case the parent is no longer there to kill it */
        return 0;
    }
    close(error_pipe[1]);
    *child =
        (struct child){.pid = pid, .error_output = error_pipe[0], .printed_file = printed_file};
    return pid;
}

/* Collect the child's stderr until the pipe closes, which it does when the child exits, and
 * reap the child. If CHILD_WAIT_S passes first, kill it and report "timed out". Then read
 * what it printed on stdout, if that was captured. */
static inline void finish_child(struct child *child) {
    struct timespec deadline = time_limit_from_now(CHILD_WAIT_S);
    size_t filled = 0;
    bool closed = false;
    while (!closed && readable_before(child->error_output, deadline)) {
        char chunk[CHILD_OUTPUT_SIZE];
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
    if (child->printed_file == NULL)
        return;

    struct stat printed_status;
    assert_int_equal(fstat(fileno(child->printed_file), &printed_status), 0);
    child->printed_length = (size_t)printed_status.st_size;
    child->printed = malloc(child->printed_length + 1);
    assert_non_null(child->printed);
    rewind(child->printed_file);
    assert_int_equal(fread(child->printed, 1, child->printed_length, child->printed_file),
                     child->printed_length);
    child->printed[child->printed_length] = '\0';
    fclose(child->printed_file);
}

#endif
