/* socket_helpers.h: what every example needs and none of them teaches: errors, EINTR, SIGPIPE,
 * the port argument and the ready line. Define _POSIX_C_SOURCE 200809L before including it. */
#ifndef SOCKET_HELPERS_H
#define SOCKET_HELPERS_H
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
/* Make a blocking call again for as long as a signal interrupts it (-1 with errno EINTR). */
#define RETRY_ON_EINTR(result, call) \
    do                               \
        (result) = (call);           \
    while ((result) == -1 && errno == EINTR)
static const char *program_name = "example"; /* set by port_argument */
/* Print "program: what: why" on stderr and exit 1; what stdout holds goes out first. */
static inline _Noreturn void fail(const char *what, const char *why) {
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s\n", program_name, what, why);
    exit(EXIT_FAILURE);
}
/* fail() with errno's text: call it right after the call that failed. */
static inline _Noreturn void die(const char *what) { fail(what, strerror(errno)); }
/* A send to a peer that has gone raises SIGPIPE, which kills the program without a word.
 * Ignored, the send fails with EPIPE instead, and we say so. (D's std.socket does this.) */
static inline void ignore_sigpipe(void) {
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    if (sigaction(SIGPIPE, &ignore, NULL) == -1)
        die("sigaction");
}
/* The port: argv[1] (lowest to 65535) or else fallback. -h prints the usage and exits 0;
 * anything else is a bad command line: the usage on stderr, exit 2. */
static inline const char *port_argument(int argc, char *argv[], const char *fallback, long lowest) {
    const char *slash = strrchr(argv[0], '/');
    char *end = NULL;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : lowest;
    int help = argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
    int digits = argc == 2 && *argv[1] >= '0' && *argv[1] <= '9' && *end == '\0';
    program_name = slash ? slash + 1 : argv[0];
    if (help || argc > 2 || (argc == 2 && (!digits || port < lowest || port > 65535))) {
        fprintf(help ? stdout : stderr, "%s%susage: %s [PORT]   (PORT %ld to 65535, default %s)\n",
                help ? "" : program_name, help ? "" : ": ", program_name, lowest, fallback);
        exit(help ? EXIT_SUCCESS : 2);
    }
    return argc == 2 ? argv[1] : fallback;
}
/* Say on stderr where a server listens: with port 0 the system picks one, and this tells. */
static inline void say_ready(int sock) {
    struct sockaddr_in bound;
    socklen_t length = sizeof bound;
    char text[INET_ADDRSTRLEN];
    if (getsockname(sock, (struct sockaddr *)&bound, &length) == -1)
        die("getsockname");
    fprintf(stderr, "%s: ready on %s port %d\n", program_name,
            inet_ntop(AF_INET, &bound.sin_addr, text, sizeof text), ntohs(bound.sin_port));
}
#endif
