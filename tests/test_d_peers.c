#define _POSIX_C_SOURCE 200809L
/* test_d_peers.c: our programs against the tutorial's own D programs, each pair the tutorial
 * describes, with both sides' bytes and exit statuses checked exactly: the tutorial-sized
 * programs (bin/NAME), and the hardened ones (bin/hardened/NAME, "hardened_" tests). The D programs
 * are not in this repository: build them with ../shared/tutorial/d/build.sh DIR and run with
 * D_PEERS=DIR; without D_PEERS every test here is skipped (even under REQUIRE_TOOLS=1: the D
 * programs are a choice, not a tool). They are IPv4 only, take their port as their first
 * argument and print no ready line (their stdout reaches a pipe only when they exit), so we
 * give each a port nobody uses and watch /proc/net for its socket. Linux only, loopback only.
 * Run from the repository root: D_PEERS=DIR build/test_d_peers. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    BIND_ATTEMPTS = 3, /* ports tried when another program may take the one we chose */
    WAIT_STEP_MS = 10, /* between two looks at /proc/net for a D server's socket */
    TCP_LISTEN = 0x0A, /* the state column of /proc/net/tcp for a listening socket */
};

#define SKIP_MESSAGE                                                              \
    "D peers: skipped: set D_PEERS=DIR to a folder of the tutorial's D programs " \
    "(../shared/tutorial/d/build.sh DIR)\n"

static int tear_down(void **state) {
    (void)state;
    clean_up();
    return 0;
}

/* ---- the D programs ---- */

/* The folder of the D programs, or NULL (main says once how to set it). */
static const char *d_peers_dir(void) {
    const char *dir = getenv("D_PEERS");
    return dir != NULL && *dir != '\0' ? dir : NULL;
}

/* The path of the D program `name`; skips the test without D_PEERS, fails if it is not there. */
#define D_PEER(name) d_peer(name, __FILE__, __LINE__)
static const char *d_peer(const char *name, const char *file, int line) {
    if (d_peers_dir() == NULL)
        skip();
    const char *path = formatted("%s/%s", d_peers_dir(), name);
    if (access(path, X_OK) != 0) {
        print_error("D_PEERS=%s has no program %s: build them with "
                    "../shared/tutorial/d/build.sh DIR\n",
                    d_peers_dir(), name);
        _fail(file, line);
    }
    return path;
}

/* Start the D program at path with port, labelled "D name" (number > 0: "D name number") in
 * messages: our programs have the same names. */
static struct process *start_d(const char *path, const char *port, int number) {
    const char *name = strrchr(path, '/') + 1;
    struct run_options options = {.label = number > 0 ? formatted("D %s %d", name, number)
                                                      : formatted("D %s", name)};
    return start_command(ARGV(path, port), &options);
}

/* Whether process `pid` holds the socket with this inode (a link "socket:[inode]" in its fd/). */
static bool holds_socket(pid_t pid, unsigned long inode) {
    const char *fd_dir = formatted("/proc/%ld/fd", (long)pid);
    const char *wanted = formatted("socket:[%lu]", inode);
    DIR *dir = opendir(fd_dir);
    bool found = false;
    for (struct dirent *entry; !found && dir != NULL && (entry = readdir(dir)) != NULL;) {
        char target[64];
        ssize_t length =
            readlink(formatted("%s/%s", fd_dir, entry->d_name), target, sizeof target - 1);
        target[length > 0 ? length : 0] = '\0';
        found = strcmp(target, wanted) == 0;
    }
    if (dir != NULL)
        closedir(dir);
    return found;
}

/* Whether the process has a socket on this port in /proc/net/tcp (listening) or
 * /proc/net/udp (bound). Only reading: a probe bind could take the port from it. */
static bool has_socket_on(const struct process *server, int type, int port) {
    const char *table = type == SOCK_STREAM ? "/proc/net/tcp" : "/proc/net/udp";
    FILE *file = fopen(table, "r");
    if (file == NULL)
        fail_msg("cannot read %s, where the D servers' sockets are seen", table);
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, file) != NULL) {
        unsigned int local_port, state;
        unsigned long inode;
        /* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode; the first
         * line, of these column names, does not match. */
        if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &local_port,
                   &state, &inode) == 3 &&
            (int)local_port == port && (type == SOCK_DGRAM || state == TCP_LISTEN))
            found = holds_socket(server->pid, inode);
    }
    fclose(file);
    return found;
}

/* Wait until the D server listens (or is bound) on port: true. False if it writes on stderr
 * first: it printed an exception and is ending (another program took the port?). A server
 * that does neither before the deadline fails the test. */
static bool d_server_ready(struct process *server, const char *name, int type, int port) {
    long long deadline = now_ms() + slow(READY_TIMEOUT_MS);
    while (!has_socket_on(server, type, port)) {
        struct pollfd errors = {.fd = server->stderr_fd, .events = POLLIN};
        if (poll(&errors, 1, WAIT_STEP_MS) > 0)
            return false;
        if (ms_until(deadline) == 0) {
            stop(server);
            fail_msg("D %s: no socket on port %d in /proc/net after %d ms", name, port,
                     slow(READY_TIMEOUT_MS));
        }
    }
    return true;
}

/* Start the D server `name` on a free port and wait until it is there; returns the port. */
static const char *start_d_server(const char *name, int type, struct process **server) {
    const char *path = D_PEER(name);
    for (int attempt = 1; attempt <= BIND_ATTEMPTS; attempt++) {
        const char *port = formatted("%d", unused_port(type));
        *server = start_d(path, port, 0);
        if (d_server_ready(*server, name, type, atoi(port)))
            return port;
        int status = finish(*server, slow(FINISH_TIMEOUT_MS));
        print_error("D %s never %s port %s (exit status %d); its stderr: %s\n", name,
                    type == SOCK_STREAM ? "listened on" : "bound", port, status,
                    shown((*server)->err.data, (*server)->err.length));
    }
    fail_msg("D %s could not take a free port in %d attempts", name, BIND_ATTEMPTS);
    return NULL;
}

/* ---- our programs ---- */

/* Start our program `name` ("tcp_client", or "hardened/tcp_client") with the port as its tier
 * takes it: a tutorial-sized program as its one argument, a hardened one after -p. Labelled
 * with its name (number > 0: "name number") in messages; input for stdin, or NULL. */
static struct process *start_ours(const char *name, const char *port, int number,
                                  const char *input) {
    bool hardened = strncmp(name, "hardened/", strlen("hardened/")) == 0;
    const struct run_options options = {
        .input = input, .label = number > 0 ? formatted("%s %d", name, number) : name};
    return start_program(hardened ? ARGV(name, "-p", port) : ARGV(name, port), &options);
}

/* Start our server `name` on a free port it is given; its ready line must name that port. */
static const char *start_our_server(const char *name, int type, struct process **server) {
    for (int attempt = 1; attempt <= BIND_ATTEMPTS; attempt++) {
        const char *port = formatted("%d", unused_port(type));
        *server = start_ours(name, port, 0, NULL);
        int ready = wait_for_ready_line(*server, slow(READY_TIMEOUT_MS));
        if (ready != NO_PORT) {
            assert_int_equal(ready, atoi(port));
            return port;
        }
        bool hangs = (*server)->stderr_fd != -1; /* it did not end: a new port will not help */
        stop(*server); /* the harness showed its stderr: another program took the port? */
        if (hangs)
            fail_msg("%s printed no ready line in %d ms", name, slow(READY_TIMEOUT_MS));
    }
    fail_msg("%s could not take a free port in %d attempts", name, BIND_ATTEMPTS);
    return NULL;
}

/* ---- the tutorial's pairs, each with our program of either tier ---- */

static void udp_sender_against_the_d_udp_receiver(const char *our_sender) {
    struct process *receiver;
    const char *port = start_d_server("udp_receiver", SOCK_DGRAM, &receiver);
    struct process *sender = start_ours(our_sender, port, 0, NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
    assert_stderr(receiver, "");
}

static void udp_receiver_against_the_d_udp_sender(const char *our_receiver) {
    const char *d_sender = D_PEER("udp_sender");
    struct process *receiver;
    const char *port = start_our_server(our_receiver, SOCK_DGRAM, &receiver);
    struct process *sender = start_d(d_sender, port, 0);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
    assert_stderr(receiver, ready_line(our_receiver, port));
}

static void tcp_client_against_the_d_tcp_server(const char *our_client) {
    struct process *server;
    const char *port = start_d_server("tcp_server", SOCK_STREAM, &server);
    struct process *client = start_ours(our_client, port, 0, NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_stderr(server, "");
}

static void tcp_server_against_the_d_tcp_client(const char *our_server) {
    const char *d_client = D_PEER("tcp_client");
    struct process *server;
    const char *port = start_our_server(our_server, SOCK_STREAM, &server);
    struct process *client = start_d(d_client, port, 0);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_stderr(server, ready_line(our_server, port));
}

/* Five D tcp_clients at once against our event server `name`, which then exits by itself. */
static void serve_five_d_tcp_clients(const char *name) {
    const char *d_client = D_PEER("tcp_client");
    struct process *everyone[1 + TUTORIAL_CLIENTS];
    const char *port = start_our_server(name, SOCK_STREAM, &everyone[0]);
    for (int i = 1; i <= TUTORIAL_CLIENTS; i++)
        everyone[i] = start_d(d_client, port, i);
    finish_all(everyone, 1 + TUTORIAL_CLIENTS, slow(FINISH_TIMEOUT_MS));

    for (int i = 1; i <= TUTORIAL_CLIENTS; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(everyone[i], EVENT_CLIENT_LINES);
        assert_stderr(everyone[i], "");
    }
    assert_exit(everyone[0], 0);
    assert_five_clients_served(everyone[0], NULL);
    assert_stderr(everyone[0], ready_line(name, port));
}

/* Five of our clients `name` at once against the D select_server, each with this input (NULL:
 * none), each to print `expected`; the D server then exits by itself. */
static void five_clients_against_the_d_select_server(const char *name, const char *input,
                                                     const char *expected) {
    struct process *everyone[1 + TUTORIAL_CLIENTS];
    const char *port = start_d_server("select_server", SOCK_STREAM, &everyone[0]);
    for (int i = 1; i <= TUTORIAL_CLIENTS; i++)
        everyone[i] = start_ours(name, port, i, input);
    finish_all(everyone, 1 + TUTORIAL_CLIENTS, slow(FINISH_TIMEOUT_MS));

    for (int i = 1; i <= TUTORIAL_CLIENTS; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(everyone[i], expected);
        assert_stderr(everyone[i], "");
    }
    assert_exit(everyone[0], 0);
    /* The D server says "Select timed out." after 5 s with no event: a slow start of our
     * clients (under valgrind) may let that happen. It is the D program's, not the pair's. */
    assert_five_clients_served(everyone[0], "Select timed out.");
    assert_stderr(everyone[0], "");
}

/* ---- the tutorial-sized programs (bin/NAME) ---- */

static void udp_sender_gets_the_answer_of_the_d_udp_receiver(void **state) {
    (void)state;
    udp_sender_against_the_d_udp_receiver("udp_sender");
}

static void udp_receiver_answers_a_datagram_from_the_d_udp_sender(void **state) {
    (void)state;
    udp_receiver_against_the_d_udp_sender("udp_receiver");
}

static void tcp_client_answers_the_d_tcp_server(void **state) {
    (void)state;
    tcp_client_against_the_d_tcp_server("tcp_client");
}

static void tcp_server_greets_the_d_tcp_client_and_prints_its_reply(void **state) {
    (void)state;
    tcp_server_against_the_d_tcp_client("tcp_server");
}

static void select_server_serves_five_d_tcp_clients_at_once(void **state) {
    (void)state;
    serve_five_d_tcp_clients("select_server");
}

static void five_tcp_clients_at_once_get_the_greeting_of_the_d_select_server(void **state) {
    (void)state;
    five_clients_against_the_d_select_server("tcp_client", NULL, EVENT_CLIENT_LINES);
}

/* The D server echoes what a client sends, but it has shut down its sending side after the
 * greeting: the echo fails (EPIPE, which D ignores) and only the greeting arrives. */
static void five_select_clients_at_once_get_the_greeting_of_the_d_select_server(void **state) {
    (void)state;
    five_clients_against_the_d_select_server("select_client", "one\n", "Hello!\n");
}

/* ---- the hardened programs (bin/hardened/NAME, with -p PORT) ---- */

static void hardened_udp_sender_gets_the_answer_of_the_d_udp_receiver(void **state) {
    (void)state;
    udp_sender_against_the_d_udp_receiver("hardened/udp_sender");
}

static void hardened_udp_receiver_answers_a_datagram_from_the_d_udp_sender(void **state) {
    (void)state;
    udp_receiver_against_the_d_udp_sender("hardened/udp_receiver");
}

static void hardened_tcp_client_answers_the_d_tcp_server(void **state) {
    (void)state;
    tcp_client_against_the_d_tcp_server("hardened/tcp_client");
}

static void hardened_tcp_server_greets_the_d_tcp_client_and_prints_its_reply(void **state) {
    (void)state;
    tcp_server_against_the_d_tcp_client("hardened/tcp_server");
}

static void hardened_select_server_serves_five_d_tcp_clients_at_once(void **state) {
    (void)state;
    serve_five_d_tcp_clients("hardened/select_server");
}

static void poll_server_serves_five_d_tcp_clients_at_once(void **state) {
    (void)state;
    serve_five_d_tcp_clients("hardened/poll_server");
}

static void epoll_server_serves_five_d_tcp_clients_at_once(void **state) {
    (void)state;
    serve_five_d_tcp_clients("hardened/epoll_server");
}

static void
five_hardened_tcp_clients_at_once_get_the_greeting_of_the_d_select_server(void **state) {
    (void)state;
    five_clients_against_the_d_select_server("hardened/tcp_client", NULL, EVENT_CLIENT_LINES);
}

#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(udp_sender_gets_the_answer_of_the_d_udp_receiver),
        TEST(udp_receiver_answers_a_datagram_from_the_d_udp_sender),
        TEST(tcp_client_answers_the_d_tcp_server),
        TEST(tcp_server_greets_the_d_tcp_client_and_prints_its_reply),
        TEST(select_server_serves_five_d_tcp_clients_at_once),
        TEST(five_tcp_clients_at_once_get_the_greeting_of_the_d_select_server),
        TEST(five_select_clients_at_once_get_the_greeting_of_the_d_select_server),
        TEST(hardened_udp_sender_gets_the_answer_of_the_d_udp_receiver),
        TEST(hardened_udp_receiver_answers_a_datagram_from_the_d_udp_sender),
        TEST(hardened_tcp_client_answers_the_d_tcp_server),
        TEST(hardened_tcp_server_greets_the_d_tcp_client_and_prints_its_reply),
        TEST(hardened_select_server_serves_five_d_tcp_clients_at_once),
        TEST(poll_server_serves_five_d_tcp_clients_at_once),
        TEST(epoll_server_serves_five_d_tcp_clients_at_once),
        TEST(five_hardened_tcp_clients_at_once_get_the_greeting_of_the_d_select_server),
    };
    if (d_peers_dir() == NULL) {
        fputs(SKIP_MESSAGE, stdout);
        fflush(stdout);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
