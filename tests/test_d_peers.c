#define _POSIX_C_SOURCE 200809L
/* test_d_peers.c: our programs against the tutorial's own D programs, each pair the tutorial
 * describes, with both sides' bytes and exit statuses checked exactly: the tutorial-sized
 * programs (bin/NAME), and the hardened ones (bin/hardened/NAME, "hardened_" tests). The D programs
 * are not in this repository: docs/testing.md says how to build them into a folder DIR; run with
 * D_PEERS=DIR; without D_PEERS every test here is skipped (even under REQUIRE_TOOLS=1: the D
 * programs are a choice, not a tool). They are IPv4 only, take their port as their first
 * argument and print no ready line (their stdout reaches a pipe only when they exit): a D
 * server is given port 0, which has the kernel pick a free port, and we learn which from the
 * kernel's table of sockets (/proc/net), by the socket the server holds. Our servers start on
 * port 0 too, and name theirs in the ready line. Linux only, loopback only.
 * Run from the repository root: D_PEERS=DIR build/test_d_peers. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum { WAIT_STEP_MS = 10 /* between two looks at /proc/net for a D server's socket */ };

#define SKIP_MESSAGE                                                              \
    "D peers: skipped: set D_PEERS=DIR to a folder of the tutorial's D programs " \
    "(docs/testing.md says how to build them)\n"

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
        print_error("D_PEERS=%s has no program %s: docs/testing.md says how to build them\n",
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

/* Start the D server `name` on port 0 and wait until it listens (or is bound): the kernel's
 * table of sockets shows its socket, on the port the kernel picked for it, which we return.
 * A D server that writes on stderr first (an exception) or does neither before the deadline
 * fails the test. */
static const char *start_d_server(const char *name, int type, struct process **server) {
    *server = start_d(D_PEER(name), "0", 0);
    long long deadline = now_ms() + slow(READY_TIMEOUT_MS);
    int port;
    while ((port = bound_port((*server)->pid, type)) == 0) {
        struct pollfd errors = {.fd = (*server)->stderr_fd, .events = POLLIN};
        if (poll(&errors, 1, WAIT_STEP_MS) > 0 || ms_until(deadline) == 0) {
            int status = finish(*server, slow(FINISH_TIMEOUT_MS));
            fail_msg("D %s never %s a port (exit status %d); its stderr: %s", name,
                     type == SOCK_STREAM ? "listened on" : "bound", status,
                     shown((*server)->err.data, (*server)->err.length));
        }
    }
    return formatted("%d", port);
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

/* Start our server `name` on port 0; its ready line names the port it got. */
static const char *start_our_server(const char *name, struct process **server) {
    *server = start_ours(name, "0", 0, NULL);
    return ready_port(*server);
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
    const char *port = start_our_server(our_receiver, &receiver);
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
    const char *port = start_our_server(our_server, &server);
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
    const char *port = start_our_server(name, &everyone[0]);
    for (int i = 1; i <= TUTORIAL_CLIENTS; i++)
        everyone[i] = start_d(d_client, port, i);
    assert_clients_printed(everyone, 1 + TUTORIAL_CLIENTS, EVENT_CLIENT_LINES);
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
    assert_clients_printed(everyone, 1 + TUTORIAL_CLIENTS, expected);
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
