/* checks.h: the cmocka assertions every test of the programs uses. Each failure says what was
 * expected and what came. Include after cmocka.h and harness.h. */
#ifndef CHECKS_H
#define CHECKS_H

#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

enum {
    SHOWN_BYTES = 400,     /* of an output, in a failure message */
    VALGRIND_SLOWDOWN = 10 /* deadlines are this many times longer under valgrind */
};

/* Bytes as a C string literal would show them, cut after SHOWN_BYTES. */
const char *shown(const char *data, size_t length);

/* A deadline in milliseconds, stretched when the programs run under valgrind. */
int slow(int ms);

/* Wait until sock is ready for `events` (POLLIN, POLLOUT); false at the deadline. */
bool wait_for_socket(int sock, short events, long long deadline);

/* "killed by signal 13 (Broken pipe)": how a report names a death by that signal. */
const char *killed_by(int signal_number);

/* Finish the process within timeout_ms; fail unless it exited with `expected`. */
void check_exit(struct process *process, int expected, int timeout_ms, const char *file, int line);

/* Fail unless `got` holds exactly the `length` bytes of expected (or starts with them). */
void check_output(const struct process *process, const char *stream, const struct output *got,
                  const char *expected, size_t length, bool prefix_only, const char *file,
                  int line);

/* Wait for the server's ready line and return its port as text, for the client's -p. */
const char *ready_port(struct process *server);

/* How many lines of the output are exactly `line` (NULL: how many lines in all). */
int count_lines(const struct output *output, const char *line);

/* A test that runs once per event server has the server's name as its state (PER_SERVER, in
 * a file that has a tear_down). epoll is Linux only: elsewhere its runs are skipped. */
const char *server_of(void **state);
#define PER_SERVER(test)                                                                \
    cmocka_unit_test_prestate_setup_teardown(test, NULL, tear_down, "select_server"),   \
        cmocka_unit_test_prestate_setup_teardown(test, NULL, tear_down, "poll_server"), \
        cmocka_unit_test_prestate_setup_teardown(test, NULL, tear_down, "epoll_server")

/* Finish the process and fail unless it exited with this status. */
#define assert_exit(process, status) \
    check_exit(process, status, slow(FINISH_TIMEOUT_MS), __FILE__, __LINE__)
#define assert_exit_within(process, status, timeout_ms) \
    check_exit(process, status, timeout_ms, __FILE__, __LINE__)
/* Fail unless stdout (stderr) holds exactly these bytes, or starts with them. */
#define assert_stdout(process, text) \
    check_output(process, "stdout", &(process)->out, text, strlen(text), false, __FILE__, __LINE__)
#define assert_stderr(process, text) \
    check_output(process, "stderr", &(process)->err, text, strlen(text), false, __FILE__, __LINE__)
#define assert_stdout_starts_with(process, text) \
    check_output(process, "stdout", &(process)->out, text, strlen(text), true, __FILE__, __LINE__)

#endif
