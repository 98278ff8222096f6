#define _POSIX_C_SOURCE 200809L
/* checks.c: the shared assertions of checks.h. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "checks.h"

const char *shown(const char *data, size_t length) {
    char text[4 * SHOWN_BYTES + 32];
    size_t used = 0;
    for (size_t i = 0; data != NULL && i < length && i < SHOWN_BYTES; i++) {
        unsigned char byte = (unsigned char)data[i];
        if (byte == '\n')
            used += (size_t)sprintf(text + used, "\\n");
        else if (byte == '"' || byte == '\\')
            used += (size_t)sprintf(text + used, "\\%c", byte);
        else if (byte < ' ' || byte == 0x7f)
            used += (size_t)sprintf(text + used, "\\x%02x", byte);
        else
            text[used++] = (char)byte; /* UTF-8 stays readable: the em dash */
    }
    text[used] = '\0';
    return formatted("\"%s\"%s", text, length > SHOWN_BYTES ? "..." : "");
}

int slow(int ms) { return under_valgrind() ? ms * VALGRIND_SLOWDOWN : ms; }

bool wait_for_socket(int sock, short events, long long deadline) {
    struct pollfd ready = {.fd = sock, .events = events};
    int result;
    do
        result = poll(&ready, 1, ms_until(deadline));
    while (result == -1 && errno == EINTR);
    assert_int_not_equal(result, -1);
    return result == 1;
}

const char *killed_by(int signal_number) {
    return formatted("killed by signal %d (%s)", signal_number, strsignal(signal_number));
}

void check_exit(struct process *process, int expected, int timeout_ms, const char *file, int line) {
    int status = finish(process, timeout_ms);
    if (status == expected)
        return;
    print_error("%s: expected exit status %d, got %s\n    its stdout: %s\n    its stderr: %s\n",
                process->label, expected,
                status == TIMED_OUT ? "none (killed at the deadline)"
                : status > 128      ? formatted("%d (killed by signal %d)", status, status - 128)
                                    : formatted("%d", status),
                shown(process->out.data, process->out.length),
                shown(process->err.data, process->err.length));
    _fail(file, line);
}

void check_output(const struct process *process, const char *stream, const struct output *got,
                  const char *expected, size_t length, bool prefix_only, const char *file,
                  int line) {
    const char *got_data = got->data ? got->data : "";
    size_t same = 0; /* how many bytes match from the start */
    while (same < length && same < got->length && got_data[same] == expected[same])
        same++;
    if (same == length && (prefix_only || got->length == length))
        return;
    /* Show both from a little before the first difference: outputs can be long. */
    size_t from = same > SHOWN_BYTES / 2 ? same - SHOWN_BYTES / 4 : 0;
    print_error("%s %s%s:\n    expected %s%s (%zu bytes)\n    got      %s (%zu bytes)\n",
                process->label, stream, from > 0 ? formatted(", from byte %zu on", from) : "",
                prefix_only ? "a start of " : "", shown(expected + from, length - from), length,
                shown(got_data + from, got->length - from), got->length);
    _fail(file, line);
}

const char *ready_port(struct process *server) {
    int port = wait_for_ready_line(server, slow(READY_TIMEOUT_MS));
    assert_true(port > 0);
    return formatted("%d", port);
}

int count_lines(const struct output *output, const char *line) {
    int count = 0;
    for (const char *start = output->data; start != NULL && *start != '\0';) {
        const char *end = strchr(start, '\n');
        size_t length = end ? (size_t)(end - start) : strlen(start);
        count += line == NULL || (length == strlen(line) && memcmp(start, line, length) == 0);
        start = end ? end + 1 : NULL;
    }
    return count;
}

const char *server_of(void **state) {
    const char *server = *state;
#ifndef __linux__
    if (strcmp(server, "epoll_server") == 0) {
        print_message("epoll_server: epoll is Linux only; test skipped\n");
        skip();
    }
#endif
    return server;
}
