/* checks.h: what the tests share, each piece written once: the cmocka assertions (each
 * failure says what was expected and what came), the tear_down of every test, the data they
 * send, the test's own sockets as fake peers, the kernel's table of sockets, forked children,
 * ticks of SIGALRM, a proxy that cuts the stream into other pieces, and strace's EINTR in
 * every socket call. Include after cmocka.h and harness.h. tests/README.md says which file a
 * new test goes in. */
#ifndef CHECKS_H
#define CHECKS_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/un.h>

#include "harness.h"

enum {
    SHOWN_BYTES = 400,    /* of an output, in a failure message */
    TUTORIAL_CLIENTS = 5, /* the tutorial's select server exits once this many are done */
    PATTERN_PERIOD = 251, /* fill_pattern's bytes repeat every 251 (prime: no buffer aligns) */
};

#define COUNT(array) (sizeof(array) / sizeof(array)[0])

/* What the tutorial's programs print in its pairs. */
#define TCP_CLIENT_LINES "Client connected!\nReceived from server: Hello!\nreply sent!\n"
/* The event servers greet with "Hello!\n": tcp_client prints it, then ends the line. */
#define EVENT_CLIENT_LINES "Client connected!\nReceived from server: Hello!\n\nreply sent!\n"
/* tcp_client -e against an echo server (-e, no greeting): its reply comes back, and only that;
 * "reply sent!" once all of it is sent and all of the echo received. */
#define ECHO_CLIENT_LINES "Client connected!\nReceived from server: Thanks! Bye.\nreply sent!\n"
/* An event server's lines for one client of the tutorial's (it sends one piece, then goes). */
#define ONE_EVENT_CLIENT "accepting new socket\nsocket sent data\nsocket disconnected\n"

/* ---- assertions ---- */

/* Bytes as a C string literal would show them, cut after SHOWN_BYTES. */
const char *shown(const char *data, size_t length);

/* Wait until fd is ready for `events` (POLLIN, POLLOUT): the events that came (POLLHUP and
 * POLLERR come unasked), or 0 at the deadline. */
short wait_for_socket(int fd, short events, long long deadline);

/* "killed by signal 13 (Broken pipe)": how a report names a death by that signal. */
const char *killed_by(int signal_number);

/* Whether anything (a file, a socket file) is at path. */
bool file_exists(const char *path);

/* Finish the process within timeout_ms; fail unless it exited with `expected`. */
void check_exit(struct process *process, int expected, int timeout_ms, const char *file, int line);

/* Fail unless `got` holds exactly the `length` bytes of expected (or starts with them). */
void check_output(const struct process *process, const char *stream, const struct output *got,
                  const char *expected, size_t length, bool prefix_only, const char *file,
                  int line);

/* Fail unless stdout holds exactly before, the `length` bytes of middle (NULs too), after. */
void check_stdout_around(const struct process *process, const char *before, const char *middle,
                         size_t length, const char *after, const char *file, int line);

/* Fail unless stderr is exactly `before` followed by one of the NULL-terminated endings
 * (when the timing decides which error a peer's reset shows up as). */
void check_stderr_one_of(const struct process *process, const char *before,
                         const char *const endings[], const char *file, int line);

/* Run a program with a bad command line: fail unless it prints only `message`, on stderr,
 * and exits 2. */
void check_usage_error(const char *const argv[], const char *message, const char *file, int line);

/* Wait for the server's ready line and return its port as text, for the client's -p. */
const char *ready_port(struct process *server);

/* The ready line of our server `name` ("tcp_server", or "hardened/tcp_server") on port. Each
 * binds 127.0.0.1, but the tutorial-sized tcp_server binds every interface, as the tutorial's. */
const char *ready_line(const char *name, const char *port);

/* How many lines of the output are exactly `line` (NULL: how many lines in all). */
int count_lines(const struct output *output, const char *line);

/* Whether make builds the program here: epoll_server is Linux only. */
bool built(const char *program);

/* After each test: kill what it started, close its sockets, put the limits back, remove its
 * files (clean_up_peers, then clean_up). TEST(name) is a test with this tear_down. */
int tear_down(void **state);
#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

/* A test that runs once per event server has the server's name as its state, and the name
 * before its own: "poll_server: talks_over_ipv6". FOR_SERVER is one such run, PER_SERVER all
 * three. epoll is Linux only: elsewhere its runs are skipped. */
const char *server_of(void **state);
#define FOR_SERVER(server, test) \
    { server ": " #test, test, NULL, tear_down, (void *)server }
#define PER_SERVER(test)                                                \
    FOR_SERVER("select_server", test), FOR_SERVER("poll_server", test), \
        FOR_SERVER("epoll_server", test)

/* Fail unless the event server's stdout is "listening", then TUTORIAL_CLIENTS times each line of
 * ONE_EVENT_CLIENT, interleaved in any order. `also`: one more line that may come any number
 * of times (NULL: none). */
void check_five_clients_served(const struct process *server, const char *also, const char *file,
                               int line);

/* A server and its clients, started at once: finish them all, and fail unless each client
 * (list[1] on) exited 0 and printed exactly `expected`, and nothing on stderr. What became of
 * the server (list[0]) is for the caller to check. */
void check_clients_printed(struct process *const list[], size_t count, const char *expected,
                           const char *file, int line);

/* Finish all the processes; fail, showing each one that did not exit 0, unless all did. */
void check_all_exit_0(struct process *const list[], size_t count, const char *file, int line);

/* Fail unless the file at path holds before, then `size` bytes with this fingerprint (see
 * write_random_file), then after. */
void check_file_holds(const char *path, const char *before, size_t size, uint64_t fingerprint,
                      const char *after, const char *file, int line);

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
#define assert_stdout_around(process, before, middle, length, after) \
    check_stdout_around(process, before, middle, length, after, __FILE__, __LINE__)
#define assert_usage_error(argv, message) check_usage_error(argv, message, __FILE__, __LINE__)
#define assert_stderr_one_of(process, before, ...)                                           \
    check_stderr_one_of(process, before, (const char *const[]){__VA_ARGS__, NULL}, __FILE__, \
                        __LINE__)
#define assert_five_clients_served(server, also) \
    check_five_clients_served(server, also, __FILE__, __LINE__)
#define assert_all_exit_0(list, count) check_all_exit_0(list, count, __FILE__, __LINE__)
#define assert_clients_printed(list, count, expected) \
    check_clients_printed(list, count, expected, __FILE__, __LINE__)
#define assert_file_holds(path, before, size, fingerprint, after) \
    check_file_holds(path, before, size, fingerprint, after, __FILE__, __LINE__)

/* ---- what the tests send ---- */

/* size bytes that differ from their neighbours and repeat every PATTERN_PERIOD, so that a
 * lost, repeated or reordered chunk shows; none is 0, and a '\0' follows them (buffer holds
 * size + 1), so that they can be a -m TEXT as well. */
void fill_pattern(char *buffer, size_t size);

/* Lines "<what>, line 0001\n"... cut at size bytes: a text longer than any one buffer. */
const char *long_text(const char *what, size_t size);

/* Write length bytes of data to a new file in the temporary directory; return its path. */
const char *file_with(const char *name, const char *data, size_t length);

/* A new file in the temporary directory with every byte value, 0 to 255, `rounds` times. */
const char *every_byte_file(const char *name, int rounds);

/* Write size pseudo-random bytes (every byte value; size a multiple of 8) to path: the same on
 * every run. Returns their fingerprint, for assert_file_holds. */
uint64_t write_random_file(const char *path, size_t size);

/* ---- the test's own sockets, as fake peers: closed by clean_up_peers if a test fails ---- */

/* Remember fd (a socket or a pipe end of the test) for clean_up_peers, and mark it
 * close-on-exec: a program we start must not keep a copy open. Fails if fd is -1. */
int tracked(int fd);

/* Close a tracked fd now. */
void close_tracked(int fd);

/* O_NONBLOCK on fd. */
void set_nonblocking(int fd);

/* 127.0.0.1, port. */
struct sockaddr_in loopback(int port);

/* A tracked socket of `type` bound to a free loopback port; *port gets the port. */
int bound_on_loopback(int type, int *port);

/* A tracked TCP socket listening on a free loopback port; *port gets the port. */
int listen_on_loopback(int *port);

/* A loopback port that refuses whatever comes to it, held all the while by a tracked socket
 * of ours, so that no other program can take it: a TCP socket bound to it that does not
 * listen (a connect gets a reset: "Connection refused"), or a UDP socket bound to it and
 * connected to itself, which takes datagrams from nobody else (the kernel answers them with
 * "port unreachable", which a connected sender reads as "Connection refused"). */
int refusing_port(int type);

/* A UNIX socket address for path. */
struct sockaddr_un unix_address(const char *path);

/* A tracked UNIX socket of `type`, bound to path unless path is NULL. */
int unix_socket(int type, const char *path);

/* A tracked TCP connection to 127.0.0.1:port, made before it returns (fails if refused). */
int connect_to_loopback(int port);

/* A tracked, non-blocking TCP socket connecting to 127.0.0.1:port: the connection completes
 * later (poll for POLLOUT, then SO_ERROR says how). */
int start_connecting(int port);

/* A tracked, non-blocking TCP connection to 127.0.0.1:port, made by the deadline; -1 with
 * errno if it fails (ETIMEDOUT at the deadline). */
int open_connection(const char *port, long long deadline);

/* The next connection to the listener, tracked; fails the test if none comes in timeout_ms. */
int accept_within(int listener, int timeout_ms);

/* Send all of text, waiting for room up to the deadline (on a non-blocking socket too);
 * fails the test if the deadline passes or the send fails. No SIGPIPE. */
void send_text(int sock, const char *text, long long deadline);

/* Receive length bytes, waiting up to the deadline. Returns how many came: fewer when the
 * stream ended first (the peer closed or reset it), -1 when the deadline passed first. */
ssize_t receive_within(int sock, char *buffer, size_t length, long long deadline);

/* Close so that the peer gets a reset (RST), not an end of stream: linger on, for 0 s. */
void reset_connection(int sock);

/* Open connection number `number` to the server's port and see what the server does first:
 * greet it with "Hello!\n" (true) or close it without a byte (false). Anything else fails the
 * test, showing what became of the server. */
bool connect_and_get_greeted(struct process *server, const char *port, int number, int *sock);

/* Fail the test with `what`, and show what became of the server: its exit status and the end
 * of its stderr, where a crash report would be. */
void fail_showing_server(struct process *server, const char *what);

/* Make sure this process and the programs it starts may open `needed` descriptors; false if
 * the hard limit does not allow it (valgrind refuses to raise it). clean_up_peers puts the
 * limit back. */
bool allow_open_files(rlim_t needed);

/* Kill the forked children still running, close the tracked fds, put the open-files limit
 * back. */
void clean_up_peers(void);

/* ---- the kernel's table of sockets (Linux: /proc/net/tcp, udp, tcp6, udp6) ---- */

/* One socket of the table, of any process. */
struct socket_row {
    int local_port, remote_port;
    int state;           /* TCP: 1 once connected, 10 when it listens; UDP: 7 */
    long sending;        /* bytes it holds to send that the peer has not acknowledged */
    long unread;         /* bytes it has received that its process has not read */
    unsigned long inode; /* "socket:[inode]" in /proc/PID/fd of a process that holds it */
};

/* The row of the established TCP connection whose local port is local_port and remote port
 * remote_port: the side of it that one end holds. False if there is none now. Skips the test
 * where the system has no such table. */
bool connection_row(int local_port, int remote_port, struct socket_row *row);

/* The port of the socket by which process pid listens (SOCK_STREAM) or is bound (SOCK_DGRAM):
 * how we learn the port of a program that binds port 0 and does not say which it
 * got. 0 while it has none. Skips the test where the system has no such table. */
int bound_port(pid_t pid, int type);

/* ---- forked children of a test (a fake peer, the proxy, code run apart): killed by
 * clean_up_peers if the test fails ---- */

enum { CHILD_OUTPUT_SIZE = 512, CHILD_ENDING_SIZE = 64 };

/* A child process. Its stderr is collected through a pipe into `output`; with capture_stdout,
 * its stdout goes into a temporary file (a pipe nobody reads meanwhile would fill up and stop
 * it) that finish_child reads into `printed`, which the test frees. Once finished, `status`
 * is its exit status (as the harness reports one: 128 + signal, TIMED_OUT), and `ending` says
 * the same in words: "exit 1", "killed by signal 13 (Broken pipe)" or "timed out". */
struct child {
    pid_t pid;
    int error_output;   /* read end of the child's stderr: end of file once it has exited */
    FILE *printed_file; /* NULL without capture_stdout */
    char output[CHILD_OUTPUT_SIZE];
    char *printed; /* malloc'ed, with a '\0' after printed_length bytes; NULL without */
    size_t printed_length;
    int status;
    char ending[CHILD_ENDING_SIZE];
};

/* fork, with the child's stderr going to a pipe (and its stdout to a file) that finish_child
 * reads. Returns 0 in the child, which must end with exit or _exit and make no cmocka
 * assertion: those belong to the parent (a failing one would go on to run the other tests in
 * the child); an alarm ends it after two minutes. Call finish_child before asserting
 * anything about it in the parent. */
pid_t start_child(struct child *child, bool capture_stdout);

/* Collect the child's stderr until the pipe closes, which it does when the child exits, and
 * reap the child; at the deadline (FINISH_TIMEOUT_MS, stretched under valgrind) kill it and
 * say "timed out". Then read what it printed on stdout, if that was captured. */
void finish_child(struct child *child);

/* Compare errno values by their messages, so that a failure reads
 * "Broken pipe" != "Connection refused" rather than two numbers. */
#define assert_errno_equal(actual, expected)                                     \
    do {                                                                         \
        char actual_message[128];                                                \
        snprintf(actual_message, sizeof actual_message, "%s", strerror(actual)); \
        assert_string_equal(actual_message, strerror(expected));                 \
    } while (0)

/* ---- ticks: SIGALRM at a steady rate, to interrupt blocking calls on purpose ---- */

enum {
    NO_WAKE = 0,   /* ticks count from 1: never */
    TICKED_OUT = 3 /* the exit status of a process whose last tick came */
};

/* How to tick: a SIGALRM every interval_us microseconds, its handler installed with these
 * sigaction flags (0: each signal makes a blocked call fail with EINTR, or return what it has
 * moved so far; SA_RESTART: the kernel restarts it where it can). On tick wake_on (NO_WAKE:
 * never) the handler runs action(fd), which brings what the interrupted call waits for: it
 * may only make async-signal-safe calls (write, accept). On tick `last` (0: never) the
 * process ends with TICKED_OUT: a child's watchdog, since the ticks take alarm()'s timer. */
struct ticking {
    long interval_us;
    int flags;
    int wake_on;
    void (*action)(int fd);
    int fd;
    int last;
};

/* How many ticks have come since start_ticking. */
extern volatile sig_atomic_t ticks;

/* Start ticking. Children call this too, so a failure ends the process with a message on
 * stderr rather than a cmocka assertion. */
void start_ticking(struct ticking how);

/* Stop the ticks, and put back what SIGALRM did before. */
void stop_ticking(void);

/* A wake action: write one byte, '!', to fd. */
void write_one_byte(int fd);

/* ---- a proxy between client and server that cuts the stream into other pieces ---- */

enum proxy_mode {
    ONE_BYTE_PER_SEND,  /* every byte its own send, TCP_NODELAY: one segment each */
    ONE_BYTE_PER_PAUSE, /* the same, PROXY_PACE_MS apart: a slow link. A short message sent
                           one byte per send back to back is all there by the time the reader
                           looks; paced, each recv of the reader gets one byte. */
    COALESCING,         /* hold bytes until PROXY_COALESCE_SIZE wait or PROXY_QUIET_MS pass */
};

enum {
    PROXY_MAX_LINKS = 8,             /* connections through one proxy */
    PROXY_COALESCE_SIZE = 256 << 10, /* the coalescing proxy forwards once this much waits, */
    PROXY_QUIET_MS = 20,             /* or once nothing more came for this long */
    PROXY_PACE_MS = 5,               /* between two bytes, one byte per pause */
};

/* Start a proxy to the server at server_port for `connections` clients, one after another or
 * at once; returns its port. It forwards both ways until both have ended, then exits. */
int start_proxy(int server_port, enum proxy_mode mode, int connections, struct child *proxy);

/* Fail unless the proxy forwarded everything, saw both ways of each connection end and exited. */
void check_proxy_finished(struct child *proxy, const char *file, int line);
#define assert_proxy_finished(proxy) check_proxy_finished(proxy, __FILE__, __LINE__)

/* ---- EINTR: strace makes every blocking socket call fail once, then every other time ---- */

/* What strace does to the programs of a run. Reads of stdin are interrupted in a run of their
 * own: strace -P counts and injects only the calls on the stdin file, so that the dynamic
 * loader's reads of the libraries (which it does not retry) stay whole. */
enum injection { NO_INJECTION, EINTR_IN_SOCKET_CALLS, EINTR_IN_STDIN_READS };

enum { CONVERSATION_CLIENTS = TUTORIAL_CLIENTS /* the most clients of one conversation */ };

/* In a client's argument list, stands for the server's port: ARGV("tcp_client", PORT). */
extern const char PORT[];

/* A server on a free port (its argv asks for port 0), and its clients one after another (so
 * the output is the same on every run). Inputs are files for stdin, or NULL. */
struct conversation {
    const char *const *server;
    const char *const *client;
    int client_count; /* at most CONVERSATION_CLIENTS */
    const char *server_input, *client_input;
    const char *server_stdout, *client_stdout; /* exactly what each prints, or NULL: unchecked */
    /* With server_stdout: the line the server prints once a client is done. The next client
     * starts after it, so that an event server's lines come in the same order on every run. */
    const char *client_done;
};

/* Run the conversation plainly, then with the faults (each program under strace): every
 * program must exit 0 and print the very same bytes both times, the server's stderr be its
 * ready line, and each must really have been interrupted. Needs strace (NEED_TOOL). */
void expect_same_conversation(const struct conversation *talk, enum injection injection);

/* ---- many descriptors open: what a careless parent leaves to the program it starts ---- */

/* Skip the test unless this process and the programs it starts may open `needed` descriptors
 * (allow_open_files; clean_up_peers puts the limit back). */
void need_open_files(rlim_t needed);

/* Start a program with every descriptor from 3 to FD_SETSIZE - 1 open (on /dev/null), as a
 * careless parent might leave them: the first descriptor it makes is FD_SETSIZE. bash opens
 * them, then becomes the program (exec), which inherits them. It runs without valgrind: the
 * wrapper takes valgrind's place (the other tests run it under valgrind). Needs bash
 * (NEED_TOOL) and need_open_files(2 * FD_SETSIZE). */
struct process *start_with_descriptors_filled(const char *const argv[]);

/* ---- strace on one file: what the program finds there ---- */

/* Start a program under strace, which makes the calls on path (and only those: -P) fail as
 * inject says: "inject=%%stat:error=ENOENT", and it finds nothing at path whatever is there.
 * Without valgrind (strace takes its place), and without leak checks (as under
 * expect_same_conversation). Needs strace (NEED_TOOL). */
struct process *start_with_injection_on(const char *const argv[], const char *path,
                                        const char *inject);

#endif
