/* plumbing.h: what the hardened programs share, written once (plumbing.c has the code). Each
 * function has a one-line contract here; the why is beside its code. The programs define
 * _POSIX_C_SOURCE 200809L before they include this file.
 *
 *   errors      fail, die, usage_error, RETRY_ON_EINTR
 *   surroundings   set_up_program: SIGPIPE, closed standard descriptors, line-buffered stdout
 *   options     parse_options: -4 -6 -u -H -p, and -m -n -t -e where a program takes them
 *   addresses   make_address, print_ready_line, claim_socket_file, connect_to_server
 *   messages    load_message (whole), next_piece (streamed), print_received
 *   signals     stop_on_signal (one-shot programs), catch_stop_signals (event loops)
 *   the log     say, flush_log, report_dropped_lines: lines that never make a server wait
 *   clients     the event servers' bookkeeping: accept_client, receive_from, send_pending */
#ifndef PLUMBING_H
#define PLUMBING_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- errors ---- */

/* Exit statuses: 0 done, 1 (EXIT_FAILURE) an error at run time, 2 a bad command line. */
enum { EXIT_USAGE = 2 };

/* Make a blocking call again for as long as a signal interrupts it (-1 with errno EINTR). */
#define RETRY_ON_EINTR(result, call) \
    do                               \
        (result) = (call);           \
    while ((result) == -1 && errno == EINTR)

/* The program's name, without its directory: "tcp_client" in "tcp_client: connect: ...". */
extern const char *program_name;

/* Print "program: what: why" on stderr and exit 1; what stdout holds goes out first. */
_Noreturn void fail(const char *what, const char *why);

/* fail() with errno's text, like perror: call it right after the call that failed. */
_Noreturn void die(const char *what);

/* A bad command line: "program: " and the message (printf format) on stderr, exit 2. */
_Noreturn void usage_error(const char *format, ...);

/* ---- surroundings ---- */

/* First thing in main: take the program's name from argv0, ignore SIGPIPE (a send to a peer
 * that has gone fails with EPIPE), put /dev/null in place of a closed stdin, stdout or
 * stderr (never a socket there), and make stdout line-buffered (each line shows at once). */
void set_up_program(const char *argv0);

/* ---- options ---- */

enum { MAX_COUNT = 1000000, MAX_TIMEOUT = 86400 };
enum role { SERVER, CLIENT }; /* a server may listen on port 0; a client needs a real port */

struct options {
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *host, *port, *path;
    const char *message; /* -m: what this program sends; "-" reads stdin */
    long count;          /* -n: datagrams or clients to handle; 0 = forever */
    long timeout;        /* -t: seconds; 0 = no limit. Each program says what it bounds */
    int echo_mode;       /* -e */
};

/* What a program takes on its command line, beyond -h, -4, -6, -u PATH, -H HOST, -p PORT. */
struct command_line {
    const char *letters;     /* more getopt letters, from "m:n:t:e" */
    const char *usage;       /* printed by -h */
    enum role role;          /* SERVER or CLIENT */
    size_t path_room_needed; /* bytes a program adds to -u PATH (udp_sender: ".PID") */
    struct options defaults;
};

/* The options of argv, checked; a usage error (exit 2) for anything wrong, -h prints usage. */
struct options parse_options(int argc, char **argv, const struct command_line *command_line);

/* The -h of the event servers, which take the same options: EVENT_SERVER_USAGE("poll_server"). */
#define EVENT_SERVER_USAGE(name)                                                               \
    "usage: " name " [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-n COUNT]\n"           \
    "       [-t SECONDS] [-e]\n"                                                               \
    "  -4, -6      IPv4 (default) or IPv6\n"                                                   \
    "  -u PATH     a UNIX stream socket at PATH instead of IP\n"                               \
    "  -H HOST     address to listen on (default localhost)\n"                                 \
    "  -p PORT     port to listen on (default 2525; 0 picks a free one)\n"                     \
    "  -m TEXT     greeting (default \"Hello!\" and a newline, none with -e; - reads stdin)\n" \
    "  -n COUNT    exit once this many clients have left (default 5; 0 = never)\n"             \
    "  -t SECONDS  say \"Select timed out.\" after this long idle (default 5; 0 = never)\n"    \
    "  -e          echo: send back exactly what a client sends (default: the tutorial's\n"     \
    "              protocol)\n"

/* ---- addresses ---- */

/* The longest UNIX socket path: sun_path is a fixed array (108 bytes on Linux, 104 on macOS)
 * that ends with a '\0'. */
#define MAX_PATH_LENGTH (sizeof((struct sockaddr_un *)0)->sun_path - 1)

/* The address the options name, for a socket of this type: a UNIX path, or host and port. */
socklen_t make_address(const struct options *options, int type, struct sockaddr_storage *address);

/* Say on stderr where a bound socket is: "program: ready on 127.0.0.1 port 2525", or PATH. */
void print_ready_line(int sock, const struct options *options);

/* Free PATH for bind if a dead program left its socket file there; fail if anything else is
 * there, a live program's socket included (without disturbing it). */
void claim_socket_file(const char *path);

/* Once bind has made the file at path: remove it at exit, and on a signal that stops us. */
void own_socket_file(const char *path);

/* Remove our socket file now, if we have one (async-signal-safe). */
void remove_socket_file(void);

/* A stream socket connected to the server the options name (each of a host's
 * addresses in turn); exits on failure. Until it is closed with close_connection, an exit
 * on an error aborts it (the peer sees a reset, not the clean end of our message). */
int connect_to_server(const struct options *options);

/* Watch over a connection (connect_to_server does it for its own): an exit or a stop signal
 * before close_connection aborts it, so that the peer sees a failure. */
void track_connection(int sock);

/* Close a connection, the normal way (its peer sees the end), and stop watching over it. */
void close_connection(int sock);

/* Close a connection with a reset (RST): the peer sees that something went wrong. */
void abort_connection(int sock);

/* Make send, recv and accept on this descriptor return at once (EAGAIN) instead of waiting. */
void make_nonblocking(int fd);

/* ---- messages ---- */

/* The message to send, whole, into message (size - 1 bytes at most): the -m text, or all of
 * stdin for "-m -". Fails with too_long ("message too long for one datagram") if larger. */
size_t load_message(const char *text, char *message, size_t size, const char *too_long);

/* Read all of input into buffer: its size, or -1 (EMSGSIZE: it filled the buffer). */
ssize_t read_whole(int input, char *buffer, size_t size);

/* A message sent a piece at a time: the -m text, or stdin for "-m -" read by read. */
enum { PIECE_SIZE = 65536 };
struct message {
    const char *text; /* NULL once sent; "-" reads stdin */
    char buffer[PIECE_SIZE];
};

/* The next piece of the message and its length, or 0 once all is sent. If stdin fails, the
 * connection sock is aborted (the peer sees a failure, not an end) and we exit. */
size_t next_piece(struct message *message, int sock, const char **piece);

/* Bytes from the network on stdout; on a terminal, unprintable bytes show as \xNN. Like
 * print_text, it waits for a non-blocking stdout rather than lose data. */
void print_received(const char *data, size_t length);

/* Text of ours on stdout, after what stdio holds; waits for a non-blocking stdout. */
void print_text(const char *text);

/* Milliseconds on a clock that only goes forward. */
long long monotonic_ms(void);

/* ---- signals ---- */

/* One-shot programs: on SIGINT, SIGTERM, SIGHUP or SIGQUIT abort the connection being
 * watched (track_connection), remove our socket file, say so, and die of that signal. */
void stop_on_signal(void);

/* After a stop (Ctrl-Z) and continue, make the wait we were in return EINTR, so that a
 * program can count its time from a deadline rather than from where the wait left off. */
void interrupt_on_continue(void);

/* Event loops: on SIGINT, SIGTERM, SIGHUP or SIGQUIT only note it. Returns a descriptor that
 * becomes readable then: watch it with the sockets, and call stop_now when it is. */
int catch_stop_signals(void);

/* After catch_stop_signals's descriptor became readable: say why, remove our socket file,
 * and die of the signal that came. */
_Noreturn void stop_now(void);

/* ---- the log of the event servers ---- */

/* One line, printf-like: on stdout, or on stderr after "program: " (say(stderr, ...)). A line
 * for stdout waits in the log until flush_log; one for stderr goes out at once. */
void say(const FILE *stream, const char *format, ...);

/* Write the log's lines if stdout takes them now; else drop and count them. Never waits. */
void flush_log(void);

/* Say how many lines were dropped, if any: at the end, after waiting until stdout takes lines
 * again (at most wait_ms, and not past a signal that makes wake_fd readable). */
void report_dropped_lines(int wait_ms, int wake_fd);

/* ---- the clients of the event servers ---- */

enum { PENDING_SIZE = 4096 };

struct client {
    int sock;
    int finished;  /* it has shut down its sending side (our recv returned 0) */
    int shut_down; /* we have shut down ours */
    int interest;  /* epoll_server only: what epoll watches for it */
    size_t pending_length;
    char pending[PENDING_SIZE]; /* output not sent yet: the greeting, and with -e the echo */
};

/* A new client, non-blocking, its greeting waiting in its pending output; NULL (the socket
 * closed, said on stderr) when there is no memory for it. */
struct client *new_client(int sock, const char *greeting, size_t greeting_length);

/* Accept one waiting client (with the tutorial's "accepting new socket"): its socket, or -1
 * once none waits. Out of descriptors, turn the client away rather than spin. */
int accept_client(int listener);

/* What to wait for from this client, as poll's events: POLLIN, POLLOUT, both or neither. */
short wanted_events(const struct client *client, int echo_mode);

/* Read what the client sent (noted, and with -e kept to send back): -1 if it failed. */
int receive_from(struct client *client, int echo_mode);

/* Send what the client's socket takes now, and shut down our side when done: -1 on failure. */
int send_pending(struct client *client, int echo_mode);

#endif
