/* socket_helpers.h: errors ("program: what: why", then exit), EINTR (a signal interrupts a
 * blocking call: retry it) and partial I/O (send and recv may move fewer bytes than asked).
 * Each program defines _POSIX_C_SOURCE 200809L before including this file. */
#ifndef SOCKET_HELPERS_H
#define SOCKET_HELPERS_H

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { EXIT_USAGE = 2, IO_CHUNK_SIZE = 65536 };

/* Evaluate a blocking call again for as long as a signal interrupts it. */
#define RETRY_ON_EINTR(result, call) \
    do                               \
        (result) = (call);           \
    while ((result) == -1 && errno == EINTR)

static const char *program_name = "example";

/* Name errors after the program, without its directory. */
static inline void set_program_name(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    program_name = slash ? slash + 1 : argv0;
}

/* Print "program: what: why" and exit 1. */
static inline _Noreturn void fail(const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", program_name, what, why);
    exit(EXIT_FAILURE);
}

/* Like perror, then exit 1: call it right after a call that set errno. */
static inline _Noreturn void die(const char *what) { fail(what, strerror(errno)); }

/* A bad command line: one line (printf format) on stderr, exit 2. */
static inline _Noreturn void usage_error(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "%s: ", program_name);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    exit(EXIT_USAGE);
}

/* A whole number from 0 to max given on the command line, or a usage error naming `what`. */
static inline long parse_number(const char *text, const char *what, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
        usage_error("bad %s '%s': not a number from 0 to %ld", what, text, max);
    return value;
}

/* A send to a peer that has gone raises SIGPIPE, which kills silently; ignored, the send
 * fails with EPIPE and we report it. SIG_IGN is POSIX everywhere and covers stdout too;
 * MSG_NOSIGNAL (per send) is missing on macOS, SO_NOSIGPIPE (per socket) on Linux. */
static inline void ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/* recv, retried on EINTR. Returns the bytes read, 0 at end of stream, or -1. */
static inline ssize_t recv_retry(int sock, void *buffer, size_t size) {
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recv(sock, buffer, size, 0));
    return bytes_read;
}

/* Send every byte, however many calls it takes. Returns 0, or -1 with errno set. */
static inline int send_all(int sock, const void *data, size_t size) {
    const char *next = data;
    while (size > 0) {
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, send(sock, next, size, 0));
        if (bytes_sent == -1)
            return -1;
        next += bytes_sent;
        size -= (size_t)bytes_sent;
    }
    return 0;
}

/* Write bytes from the network to `out`. On a terminal, each byte that is not printable text
 * shows as \xNN: a peer's escape sequences must not reach the terminal raw. */
static inline int write_received(FILE *out, const char *data, size_t length) {
    if (!isatty(fileno(out)))
        return fwrite(data, 1, length, out) == length ? 0 : -1;
    for (size_t i = 0; i < length; i++) {
        unsigned char byte = (unsigned char)data[i];
        int shown = isprint(byte) || byte == '\n' || byte == '\t' ? fputc(byte, out)
                                                                  : fprintf(out, "\\x%02x", byte);
        if (shown < 0)
            return -1;
    }
    return 0;
}

enum { SOCKET_FAILED = -1, FILE_FAILED = -2 }; /* what the two copy loops below return */

/* Copy the stream to `out` as it arrives, in whatever pieces, until the peer shuts down its
 * sending side (recv returns 0). Returns 0, SOCKET_FAILED (errno EAGAIN: a timeout passed)
 * or FILE_FAILED, with errno set. */
static inline int receive_until_eof(int sock, FILE *out) {
    char buffer[IO_CHUNK_SIZE];
    ssize_t bytes_read;
    while ((bytes_read = recv_retry(sock, buffer, sizeof buffer)) > 0)
        if (write_received(out, buffer, (size_t)bytes_read) == -1)
            return FILE_FAILED;
    return bytes_read == 0 ? 0 : SOCKET_FAILED;
}

/* Send all that `input` holds, chunk by chunk, whatever its size. Returns 0, SOCKET_FAILED
 * or FILE_FAILED (reading input), with errno set. */
static inline int send_until_eof(int sock, int input) {
    char buffer[IO_CHUNK_SIZE];
    ssize_t bytes_read;
    for (;;) {
        RETRY_ON_EINTR(bytes_read, read(input, buffer, sizeof buffer));
        if (bytes_read == -1)
            return FILE_FAILED;
        if (bytes_read == 0)
            return 0;
        if (send_all(sock, buffer, (size_t)bytes_read) == -1)
            return SOCKET_FAILED;
    }
}

/* Read all of `input` into buffer. Returns its size, or -1 (errno EMSGSIZE when it fills
 * the buffer: pass one byte more than the longest you accept). */
static inline ssize_t read_whole(int input, char *buffer, size_t size) {
    size_t filled = 0;
    for (;;) {
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, read(input, buffer + filled, size - filled));
        if (bytes_read <= 0)
            return bytes_read == 0 ? (ssize_t)filled : -1;
        filled += (size_t)bytes_read;
        if (filled == size) {
            errno = EMSGSIZE;
            return -1;
        }
    }
}

/* connect, surviving EINTR. The handshake goes on after an interruption, so the next call
 * may wait again (Linux), answer EISCONN (done) or EALREADY (still going: wait for it to
 * finish, then read its result from SO_ERROR), depending on the system. */
static inline int connect_retry(int sock, const struct sockaddr *address, socklen_t length) {
    int result;
    RETRY_ON_EINTR(result, connect(sock, address, length));
    if (result == 0 || errno == EISCONN)
        return 0;
    if (errno != EALREADY)
        return -1;
    struct pollfd writable = {.fd = sock, .events = POLLOUT};
    RETRY_ON_EINTR(result, poll(&writable, 1, -1));
    int error = 0;
    socklen_t error_length = sizeof error;
    if (result == -1 || getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &error_length) == -1)
        return -1;
    errno = error;
    return error == 0 ? 0 : -1;
}

#endif
