/* socket_helpers.h: what every example needs and none of them teaches. Errors: print
 * "program: what: why" and exit. EINTR: a signal interrupts a blocking call, so call it again.
 * SIGPIPE: a send to a peer that has gone must fail, not kill the program. And stdin, stdout
 * and stderr must stay what they are, even if we were started with one of them closed.
 * Each program defines _POSIX_C_SOURCE 200809L before it includes this file. */
#ifndef SOCKET_HELPERS_H
#define SOCKET_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses: 0 done, 1 (EXIT_FAILURE) an error at run time, 2 a bad command line. */
enum { EXIT_USAGE = 2 };

/* Evaluate a blocking call again for as long as a signal interrupts it (-1 with EINTR). */
#define RETRY_ON_EINTR(result, call) \
    do                               \
        (result) = (call);           \
    while ((result) == -1 && errno == EINTR)

static const char *program_name = "example";

/* Name errors after the program, without its directory: "tcp_client: connect: ...". */
static inline void set_program_name(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    program_name = slash ? slash + 1 : argv0;
}

/* Print "program: what: why" on stderr and exit 1. What stdout holds goes out first, so that
 * the lines keep their order on a terminal. */
static inline _Noreturn void fail(const char *what, const char *why) {
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s\n", program_name, what, why);
    exit(EXIT_FAILURE);
}

/* fail() with errno's text, like perror: call it right after the call that failed. */
static inline _Noreturn void die(const char *what) { fail(what, strerror(errno)); }

/* A bad command line: "program: " and the message (printf format) on stderr, exit 2. */
static inline _Noreturn void usage_error(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "%s: ", program_name);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    exit(EXIT_USAGE);
}

/* A send to a peer that has closed raises SIGPIPE, whose default action kills the process
 * without a word. Ignored, the send fails with EPIPE instead, and we report it. SIG_IGN is
 * POSIX everywhere and covers writes to a closed pipe on stdout too; MSG_NOSIGNAL (per call)
 * is missing on macOS, SO_NOSIGPIPE (per socket) on Linux. */
static inline void ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/* Descriptors 0, 1 and 2 are stdin, stdout and stderr. Started with one of them closed
 * (`program >&-`), we would get its number for our next socket, and print into the connection.
 * So fill the gap with /dev/null, opened the wrong way round: any read or write there fails
 * (EBADF), and the program says so. Without /dev/null we cannot go on safely, nor tell. */
static inline void keep_standard_descriptors(void) {
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
        if (fcntl(fd, F_GETFD) == -1 &&
            open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY) != fd)
            exit(EXIT_FAILURE);
}

#endif
