/* checks.h: what the tests of the programs share, each piece written once: the cmocka
 * assertions (each failure says what was expected and what came), the test's own sockets as
 * fake peers, a proxy that cuts the stream into other pieces, and strace's EINTR in every
 * socket call. Include after cmocka.h and harness.h. A test file that uses the peers, the
 * proxy or the open-files limit calls clean_up_peers() in its tear_down. */
#ifndef CHECKS_H
#define CHECKS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "harness.h"

enum {
    SHOWN_BYTES = 400,      /* of an output, in a failure message */
    VALGRIND_SLOWDOWN = 10, /* deadlines are this many times longer under valgrind */
    TUTORIAL_CLIENTS = 5,   /* the tutorial's select server exits once this many are done */
};

#define COUNT(array) (sizeof(array) / sizeof(array)[0])

/* What the tutorial's programs print in its pairs. */
#define TCP_CLIENT_LINES "Client connected!\nReceived from server: Hello!\nreply sent!\n"
/* The event servers greet with "Hello!\n": tcp_client prints it, then ends the line. */
#define EVENT_CLIENT_LINES "Client connected!\nReceived from server: Hello!\n\nreply sent!\n"
/* tcp_client -e against an echo server: the greeting comes back after its reply. */
#define ECHO_CLIENT_LINES \
    "Client connected!\nreply sent!\nReceived from server: Hello!\nThanks! Bye.\n"
/* An event server's lines for one client of the tutorial's (it sends one piece, then goes). */
#define ONE_EVENT_CLIENT "accepting new socket\nsocket sent data\nsocket disconnected\n"

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

/* The ready line of our server `name` ("tcp_server", or "hardened/tcp_server") on port. Each
 * binds 127.0.0.1, but the tutorial-sized tcp_server binds every interface, as the tutorial's. */
const char *ready_line(const char *name, const char *port);

/* How many lines of the output are exactly `line` (NULL: how many lines in all). */
int count_lines(const struct output *output, const char *line);

/* A test that runs once per event server has the server's name as its state (PER_SERVER, in
 * a file that has a tear_down). epoll is Linux only: elsewhere its runs are skipped. */
const char *server_of(void **state);
#define PER_SERVER(test)                                                                \
    cmocka_unit_test_prestate_setup_teardown(test, NULL, tear_down, "select_server"),   \
        cmocka_unit_test_prestate_setup_teardown(test, NULL, tear_down, "poll_server"), \
        cmocka_unit_test_prestate_setup_teardown(test, NULL, tear_down, "epoll_server")

/* Fail unless the event server's stdout is "listening", then TUTORIAL_CLIENTS times each line of
 * ONE_EVENT_CLIENT, interleaved in any order. `also`: one more line that may come any number
 * of times (NULL: none). */
void check_five_clients_served(const struct process *server, const char *also, const char *file,
                               int line);

/* Write length bytes of data to a new file in the temporary directory; return its path. */
const char *file_with(const char *name, const char *data, size_t length);

/* Finish all the processes; fail, showing each one that did not exit 0, unless all did. */
void check_all_exit_0(struct process *const list[], size_t count, const char *file, int line);

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
#define assert_five_clients_served(server, also) \
    check_five_clients_served(server, also, __FILE__, __LINE__)
#define assert_all_exit_0(list, count) check_all_exit_0(list, count, __FILE__, __LINE__)

/* ---- the test's own sockets, as fake peers: closed by clean_up_peers if a test fails ---- */

/* Remember fd (a socket or a pipe end of the test) for clean_up_peers, and mark it
 * close-on-exec: a program we start must not keep a copy open. Fails if fd is -1. */
int tracked(int fd);

/* Close a tracked fd now. */
void close_tracked(int fd);

/* 127.0.0.1, port. */
struct sockaddr_in loopback(int port);

/* A tracked TCP socket listening on a free loopback port; *port gets the port. */
int listen_on_loopback(int *port);

/* A tracked TCP connection to 127.0.0.1:port, made before it returns (fails if refused). */
int connect_to_loopback(int port);

/* A tracked, non-blocking TCP connection to 127.0.0.1:port, made by the deadline; -1 with
 * errno if it fails (ETIMEDOUT at the deadline). */
int open_connection(const char *port, long long deadline);

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

/* Kill the forked helpers still running, close the tracked fds, put the open-files limit back. */
void clean_up_peers(void);

/* ---- forked helpers of a test (the proxy, a fake peer): killed by clean_up_peers ---- */

struct helper {
    pid_t pid;
    int exited; /* read end of a pipe whose write end only the child holds: EOF once it exits */
};

/* fork: in the child return NULL (it must end with _exit and make no cmocka assertion; an
 * alarm ends it after two minutes), in the test the new helper. */
struct helper *fork_helper(void);

/* Wait for the helper to exit and return its status (as the harness reports one), or kill it
 * at the deadline and return TIMED_OUT. */
int finish_helper(struct helper *helper, int timeout_ms);

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
int start_proxy(int server_port, enum proxy_mode mode, int connections, struct helper **proxy);

/* Fail unless the proxy forwarded everything, saw both ways of each connection end and exited. */
void check_proxy_finished(struct helper *proxy, const char *file, int line);
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

#endif
