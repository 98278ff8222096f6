#define _POSIX_C_SOURCE 200809L

/* test_read_whole.c: unit tests for read_whole, which reads all of stdin for "-m -" in the
 * programs that send one whole message: udp_receiver.c, udp_sender.c and the three servers,
 * each with its own copy of the same text (test_sources.c checks that they stay the same).
 * The copy tested here is udp_receiver.c's: its source is compiled into this file, its main
 * renamed udp_receiver_main. Input comes through a real pipe, which never blocks here: each
 * test writes all of it, and closes the pipe, before reading.
 * Run: make build/test_read_whole && ./build/test_read_whole */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h> /* needs setjmp.h, stdarg.h, stddef.h and stdint.h first */
#undef fail /* cmocka's fail() macro would hide the header's fail(); we use its asserts only */

#define main udp_receiver_main
#include "../examples/hardened/udp_receiver.c"
#include "../examples/hardened/plumbing.c"
#include "children.h"
#undef main

static void make_pipe(int ends[2]) { assert_int_equal(pipe(ends), 0); }

static void
udp_receiver_read_whole_returns_the_size_of_input_shorter_than_the_buffer(void **state) {
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

static void udp_receiver_read_whole_fails_with_emsgsize_when_input_fills_the_buffer(void **state) {
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

static void udp_receiver_read_whole_returns_zero_for_empty_input(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    close(ends[1]);

    char buffer[16];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    close(ends[0]);

    assert_int_equal(result, 0);
}

int main(int argc, char **argv) {
    (void)argv;
    (void)argc;
    program_name = "test";

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(udp_receiver_read_whole_returns_the_size_of_input_shorter_than_the_buffer),
        cmocka_unit_test(udp_receiver_read_whole_fails_with_emsgsize_when_input_fills_the_buffer),
        cmocka_unit_test(udp_receiver_read_whole_returns_zero_for_empty_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
