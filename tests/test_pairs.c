#define _POSIX_C_SOURCE 200809L
/* test_pairs.c: the hardened programs (examples/hardened/, bin/hardened/NAME) with peers that
 * behave: each pair's exact output over IPv4, IPv6 and UNIX sockets; the event servers'
 * contract, kept alike by select_server, poll_server and epoll_server (each such test runs
 * once per server); select_client with the keyboard and the network at once; 64 MiB byte for
 * byte; and the command line: every option, every bad input with its message and exit status,
 * and the errors a program meets before or instead of a conversation. Servers start on -p 0
 * and tell us their port in the ready line: no fixed port, no sleep.
 * Run from the repository root: build/test_pairs (BIN_DIR=dir picks other binaries). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    CLIENT_COUNT = 5,            /* the event servers' default -n */
    BIG_PAYLOAD_SIZE = 64 << 20, /* 64 MiB */
    BIG_TIMEOUT_MS = 60 * 1000,
    TIMEOUT_WAIT_MS = 5 * 1000, /* for "-t 1" to show its effect */
    HINT_MS = 3000,             /* tcp_client's silence before its hint about -e */
    GIVE_UP_S = 5,              /* its -t in the test of the hint: some time after the hint */
    BOTH_WAYS_SIZE = 16 << 20,  /* select_client's input, echoed while it still sends */
    SELECT_CLIENTS = 3,         /* select_clients connected to one server at once */
    LARGEST_DATAGRAM = 65507,   /* 65535 - 8 (UDP header) - 20 (IPv4 header) */
    EVERY_BYTE_ROUNDS = 16,     /* 4 KiB: each of the 256 byte values, NUL and newline too */
};

static const char *const PROGRAMS[] = {"udp_receiver", "udp_sender",    "tcp_server",
                                       "tcp_client",   "select_server", "select_client"};
static const char *const SERVERS[] = {"udp_receiver", "tcp_server", "select_server"};
static const char *const CLIENTS[] = {"udp_sender", "tcp_client", "select_client"};
/* With poll_server and epoll_server: every program of the tier. */
static const char *const EVERY_PROGRAM[] = {"udp_receiver", "udp_sender",    "tcp_server",
                                            "tcp_client",   "select_server", "poll_server",
                                            "epoll_server", "select_client"};

#define HINT                                                                                 \
    "tcp_client: still waiting for the server to end its message (an echo server waits for " \
    "ours first: use tcp_client -e)\n"

/* Run a program that must fail with exit status 1 and this line on stderr. */
static struct process *expect_runtime_error(const char *const argv[], const char *message) {
    struct process *program = start_program(argv, NULL);
    assert_exit(program, 1);
    assert_stderr(program, message);
    return program;
}

static bool is_client(const char *program) {
    for (size_t i = 0; i < COUNT(CLIENTS); i++)
        if (strcmp(program, CLIENTS[i]) == 0)
            return true;
    return false;
}

/* ---- the tutorial's conversations, with the tutorial's defaults ---- */

static void udp_pair_prints_the_tutorial_lines(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-p", port), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
    assert_stderr(receiver, formatted("udp_receiver: ready on 127.0.0.1 port %s\n", port));
}

static void tcp_pair_prints_the_tutorial_lines(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n", port));
}

static void udp_receiver_answers_count_datagrams_then_exits(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    for (int i = 1; i <= 2; i++) {
        const char *message = formatted("datagram %d", i);
        struct process *sender = start_program(ARGV("udp_sender", "-m", message, "-p", port), NULL);
        assert_exit(sender, 0);
        assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    }

    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: datagram 1\n"
                            "Waiting for data...\nReceived: datagram 2\n");
}

static void tcp_server_serves_count_clients_in_turn_then_exits(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(server);
    for (int i = 1; i <= 2; i++) {
        const char *message = formatted("client %d", i);
        struct process *client = start_program(ARGV("tcp_client", "-m", message, "-p", port), NULL);
        assert_exit(client, 0);
        assert_stdout(client, TCP_CLIENT_LINES);
    }

    assert_exit(server, 0);
    assert_stdout(server, "Got from client: client 1\nGot from client: client 2\n");
}

/* ---- the same over IPv6, and over UNIX domain sockets ---- */

static void udp_pair_talks_over_ipv6(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "-6", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-6", "-p", port), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
    assert_stderr(receiver, formatted("udp_receiver: ready on ::1 port %s\n", port));
}

static void tcp_pair_talks_over_ipv6(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-6", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-6", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_stderr(server, formatted("tcp_server: ready on ::1 port %s\n", port));
}

static void a_numeric_ipv6_address_needs_no_6(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-H", "::1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    assert_stderr(server, formatted("tcp_server: ready on ::1 port %s\n", port));
    struct process *client = start_program(ARGV("tcp_client", "-H", "::1", "-p", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");

    struct process *receiver = start_program(ARGV("udp_receiver", "-H", "::1", "-p", "0"), NULL);
    port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-H", "::1", "-p", port), NULL);
    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_exit(receiver, 0);
    assert_stderr(receiver, formatted("udp_receiver: ready on ::1 port %s\n", port));

    server = start_program(ARGV("select_server", "-e", "-n", "1", "-H", "::1", "-p", "0"), NULL);
    port = ready_port(server);
    client = start_program(ARGV("select_client", "-H", "::1", "-p", port),
                           &(struct run_options){.input = "over IPv6\n"});
    assert_exit(client, 0);
    assert_stdout(client, "over IPv6\n");
    assert_exit(server, 0);
    assert_stderr(server, formatted("select_server: ready on ::1 port %s\n", port));
}

static void udp_pair_talks_over_a_unix_socket_and_removes_both_socket_files(void **state) {
    (void)state;
    const char *path = temp_path("udp.sock");
    struct process *receiver = start_program(ARGV("udp_receiver", "-u", path), NULL);
    assert_int_equal(wait_for_ready_line(receiver, READY_TIMEOUT_MS), 0);
    struct process *sender = start_program(ARGV("udp_sender", "-u", path), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_false(file_exists(formatted("%s.%d", path, (int)sender->pid)));
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
    assert_stderr(receiver, formatted("udp_receiver: ready on %s\n", path));
    assert_false(file_exists(path));
}

static void tcp_pair_talks_over_a_unix_socket_and_removes_the_socket_file(void **state) {
    (void)state;
    const char *path = temp_path("tcp.sock");
    struct process *server = start_program(ARGV("tcp_server", "-u", path), NULL);
    assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
    struct process *client = start_program(ARGV("tcp_client", "-u", path), NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_stderr(server, formatted("tcp_server: ready on %s\n", path));
    assert_false(file_exists(path));
}

/* A link-local IPv6 address names its interface: "fe80::1%eth0". The longest, an address of
 * 39 characters on an interface whose name has 15, does not fit INET6_ADDRSTRLEN, and
 * getnameinfo would fail. Such an interface is made in a network namespace of its own, with
 * only its loopback, renamed: the server starts there, and the client joins it. */
#define LONG_INTERFACE "loopback-name15"
#define LONGEST_LINK_LOCAL "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

static void tcp_pair_talks_over_a_link_local_ipv6_address_on_a_long_interface_name(void **state) {
    (void)state;
    NEED_TOOL("unshare", "util-linux");
    NEED_TOOL("nsenter", "util-linux");
    NEED_TOOL("ip", "iproute2");
    struct process *allowed = start_command(ARGV("unshare", "-n", "true"), NULL);
    if (finish(allowed, slow(FINISH_TIMEOUT_MS)) != 0) {
        print_message("no network namespace here (unshare -n needs CAP_SYS_ADMIN): %s",
                      allowed->err.data ? allowed->err.data : "\n");
        skip();
    }
    const char *address = LONGEST_LINK_LOCAL "%" LONG_INTERFACE;
    const char *const in_a_namespace[] = {
        "unshare",
        "-n",
        "sh",
        "-c",
        "ip link set lo name " LONG_INTERFACE " && ip link set " LONG_INTERFACE " up && "
        "ip -6 addr add " LONGEST_LINK_LOCAL "/128 dev " LONG_INTERFACE " nodad && "
        "exec \"$0\" \"$@\"",
        NULL};
    struct process *server = start_program(ARGV("tcp_server", "-6", "-H", address, "-p", "0"),
                                           &(struct run_options){.wrapper = in_a_namespace});
    const char *port = ready_port(server);
    assert_stderr(server, formatted("tcp_server: ready on %s port %s\n", address, port));
    const char *const in_its_namespace[] = {"nsenter", "-t", formatted("%d", (int)server->pid),
                                            "-n", NULL};
    struct process *client = start_program(ARGV("tcp_client", "-6", "-H", address, "-p", port),
                                           &(struct run_options){.wrapper = in_its_namespace});

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
}

/* ---- the event servers: select_server's contract, kept by poll_server and epoll_server ---- */

static void echoes_five_clients_in_turn(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-e", "-p", "0"), NULL);
    const char *port = ready_port(server);
    for (int i = 0; i < CLIENT_COUNT; i++) {
        struct process *client = start_program(ARGV("tcp_client", "-e", "-p", port), NULL);
        assert_exit(client, 0);
        assert_stdout(client, ECHO_CLIENT_LINES);
        assert_stderr(client, "");
    }

    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT ONE_EVENT_CLIENT ONE_EVENT_CLIENT
                              ONE_EVENT_CLIENT ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

static void echoes_five_concurrent_clients_each_its_own_message(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-e", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *everyone[1 + CLIENT_COUNT] = {server};
    for (int i = 1; i <= CLIENT_COUNT; i++) {
        const char *message = formatted("message from client %d", i);
        everyone[i] = start_program(ARGV("tcp_client", "-e", "-m", message, "-p", port), NULL);
    }
    finish_all(everyone, 1 + CLIENT_COUNT, slow(FINISH_TIMEOUT_MS));

    for (int i = 1; i <= CLIENT_COUNT; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(everyone[i], formatted("Client connected!\nReceived from server: message "
                                             "from client %d\nreply sent!\n",
                                             i));
    }
    assert_exit(server, 0);
    assert_stdout_starts_with(server, "listening\n");
    assert_int_equal(count_lines(&server->out, "accepting new socket"), CLIENT_COUNT);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), CLIENT_COUNT);
    int chunks = count_lines(&server->out, "socket sent data"); /* a message may come in parts */
    assert_true(chunks >= CLIENT_COUNT);
    assert_int_equal(count_lines(&server->out, NULL), 1 + 2 * CLIENT_COUNT + chunks);
}

static void talks_over_ipv6(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-e", "-6", "-p", "0", "-n", "1"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-6", "-e", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, ECHO_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on ::1 port %s\n", name, port));
}

static void talks_over_a_unix_socket_and_removes_the_socket_file(void **state) {
    const char *name = server_of(state);
    const char *path = temp_path("server.sock");
    struct process *server = start_program(ARGV(name, "-e", "-u", path, "-n", "1"), NULL);
    assert_int_equal(wait_for_ready_line(server, slow(READY_TIMEOUT_MS)), 0);
    struct process *client = start_program(ARGV("tcp_client", "-e", "-u", path), NULL);

    assert_exit(client, 0);
    assert_stdout(client, ECHO_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on %s\n", name, path));
    assert_false(file_exists(path));
}

static void says_select_timed_out_when_no_client_comes(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-p", "0", "-t", "1"), NULL);
    ready_port(server);

    assert_true(wait_for_output(server, "Select timed out.\n", slow(TIMEOUT_WAIT_MS)));
    assert_stdout_starts_with(server, "listening\nSelect timed out.\n");
    stop(server);
}

static void takes_the_same_options_as_select_server(void **state) {
    const char *name = server_of(state);
    struct process *help = start_program(ARGV(name, "-h"), NULL);
    assert_exit(help, 0);
    assert_stdout_starts_with(help, formatted("usage: %s [-4 | -6 | -u PATH] [-H HOST] [-p PORT] "
                                              "[-m TEXT] [-n COUNT]\n",
                                              name));
    const char *const *bad[] = {ARGV(name, "-x"), ARGV(name, "-p", "abc"), ARGV(name, "-n", "-1"),
                                ARGV(name, "-t", "86401"), ARGV(name, "-u", "x", "-p", "1")};
    const char *messages[] = {
        "unknown option -x (try -h)", "bad port 'abc': not a number from 0 to 65535",
        "bad count '-1': not a number from 0 to 1000000",
        "bad timeout '86401': not a number from 0 to 86400", "-u PATH takes no -H or -p"};
    for (size_t i = 0; i < COUNT(bad); i++)
        assert_usage_error(bad[i], formatted("%s: %s\n", name, messages[i]));
}

/* The tutorial's protocol, by default. */

static void serves_five_plain_tcp_clients_at_once_as_in_the_tutorial(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *everyone[1 + CLIENT_COUNT] = {server};
    for (int i = 1; i <= CLIENT_COUNT; i++)
        everyone[i] = start_program(ARGV("tcp_client", "-p", port), NULL);
    assert_clients_printed(everyone, 1 + CLIENT_COUNT, EVENT_CLIENT_LINES);
    assert_exit(server, 0); /* by itself: the fifth client has gone */
    assert_stdout_starts_with(server, "listening\n");
    assert_int_equal(count_lines(&server->out, "accepting new socket"), CLIENT_COUNT);
    assert_int_equal(count_lines(&server->out, "socket sent data"), CLIENT_COUNT);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), CLIENT_COUNT);
    assert_int_equal(count_lines(&server->out, NULL), 1 + 3 * CLIENT_COUNT);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

static void gives_tcp_client_in_echo_mode_only_the_greeting_without_e(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("tcp_client", "-e", "-m", "dropped", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, EVENT_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* -e: every byte back. */

static void echoes_every_byte_value_exactly_with_e(void **state) {
    const char *name = server_of(state);
    const char *path = every_byte_file("every-byte", EVERY_BYTE_ROUNDS);
    struct process *server = start_program(ARGV(name, "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-e", "-m", "-", "-p", port),
                                           &(struct run_options){.input_file = path});

    assert_exit(client, 0);
    char payload[256 * EVERY_BYTE_ROUNDS];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i % 256);
    assert_stdout_around(client, "Client connected!\nReceived from server: ", payload,
                         sizeof payload, "\nreply sent!\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* What UNP's tcpcli01, and every echo client like it, does: write a line, read the same line
 * back, again; a greeting first would make each reply one line late. */
static void sends_back_each_line_of_a_line_by_line_echo_client_and_nothing_else(void **state) {
    const char *name = server_of(state);
    const char *const lines[] = {"first line\n", "2nd\n", "and a third, longer line\n"};
    struct process *server = start_program(ARGV(name, "-e", "-n", "1", "-t", "0", "-p", "0"), NULL);
    const char *port = ready_port(server);
    int sock = connect_to_loopback(atoi(port));
    for (size_t i = 0; i < COUNT(lines); i++) {
        size_t length = strlen(lines[i]);
        char back[64];
        send_text(sock, lines[i], now_ms() + slow(FINISH_TIMEOUT_MS));
        ssize_t got = receive_within(sock, back, length, now_ms() + slow(FINISH_TIMEOUT_MS));
        if (got != (ssize_t)length || memcmp(back, lines[i], length) != 0)
            fail_msg("%s -e: line %zu sent was %s, line %zu back was %s", name, i + 1,
                     shown(lines[i], length), i + 1, got < 0 ? "none" : shown(back, (size_t)got));
    }
    /* Our end: then only the server's end comes back, nothing more. */
    assert_int_equal(shutdown(sock, SHUT_WR), 0);
    char more[64];
    assert_int_equal(receive_within(sock, more, sizeof more, now_ms() + slow(FINISH_TIMEOUT_MS)),
                     0);

    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket sent data\nsocket sent data\n"
                          "socket sent data\nsocket disconnected\n");
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* select_client, in both modes. */

static void greets_select_client_and_drops_its_input_without_e(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("select_client", "-p", port),
                                           &(struct run_options){.input = "typed line\n"});

    assert_exit(client, 0);
    assert_stdout(client, "Hello!\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

static void echoes_select_client_s_input_with_e_and_greets_it_only_with_m(void **state) {
    const char *name = server_of(state);
    const char *const *const servers[] = {ARGV(name, "-e", "-n", "1", "-p", "0"),
                                          ARGV(name, "-e", "-m", "Hi!\n", "-n", "1", "-p", "0")};
    const char *const echoes[] = {"typed line\n", "Hi!\ntyped line\n"};
    for (size_t i = 0; i < COUNT(servers); i++) {
        struct process *server = start_program(servers[i], NULL);
        const char *port = ready_port(server);
        struct process *client = start_program(ARGV("select_client", "-p", port),
                                               &(struct run_options){.input = "typed line\n"});

        assert_exit(client, 0);
        assert_stdout(client, echoes[i]);
        assert_stderr(client, "");
        assert_exit(server, 0);
        assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
        assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
    }
}

static void goes_on_reading_select_client_after_ending_its_own_side(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("select_client", "-p", port), &(struct run_options){.input_pipe = true});
    /* The greeting, then the end of the server's side; our side stays open. */
    assert_true(wait_for_output(client, "Hello!\n", slow(FINISH_TIMEOUT_MS)));

    assert_true(send_input(client, "first line\n"));
    assert_true(wait_for_output(server, "socket sent data\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(client, "second line\n"));
    assert_true(
        wait_for_output(server, "socket sent data\nsocket sent data\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(client));
    close_input(client);

    assert_exit(client, 0);
    assert_stdout(client, "Hello!\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket sent data\nsocket sent data\n"
                          "socket disconnected\n");
}

/* ---- select_server -e and tcp_client without -e: each waits for the other ---- */

static void tcp_client_without_e_says_to_use_e_when_an_echo_server_stays_silent(void **state) {
    (void)state;
    /* -t 0: no "Select timed out." while both wait, as long as the client's -t. */
    struct process *server =
        start_program(ARGV("select_server", "-e", "-n", "1", "-t", "0", "-p", "0"), NULL);
    const char *port = ready_port(server);
    long long started = now_ms();
    const char *give_up = formatted("%d", GIVE_UP_S);
    struct process *client = start_program(ARGV("tcp_client", "-t", give_up, "-p", port), NULL);

    /* Silence: the echo server waits for our message and its end, we for its end. */
    assert_true(wait_for_stderr(client, HINT, slow(HINT_MS + FINISH_TIMEOUT_MS)));
    long long hinted_after = now_ms() - started;
    assert_true(is_running(client)); /* it said so, and goes on waiting */
    assert_exit(client, 1);
    long long ended_after = now_ms() - started;
    assert_stdout(client, "Client connected!\nReceived from server: \n");
    assert_stderr(client, formatted(HINT "tcp_client: no data within %d s\n", GIVE_UP_S));
    if (hinted_after < HINT_MS || ended_after < GIVE_UP_S * 1000)
        fail_msg("tcp_client hinted after %lld ms (expected %d or more) and gave up after %lld ms "
                 "(expected %d or more)",
                 hinted_after, HINT_MS, ended_after, GIVE_UP_S * 1000);
    /* A client that gives up aborts the connection (a reset): the server sees a failure, not
     * the clean end of a message that never came. */
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket disconnected\n");
    assert_stderr(server, formatted("select_server: ready on 127.0.0.1 port %s\n"
                                    "select_server: recv: Connection reset by peer\n",
                                    port));
}

/* ---- select_client: the keyboard and the network in one select() ---- */

static void select_client_prints_each_echo_while_its_input_goes_on(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("select_client", "-p", port), &(struct run_options){.input_pipe = true});

    /* Typed a line at a time: each echo shows before the next line is typed. */
    assert_true(send_input(client, "first line\n"));
    assert_true(wait_for_output(client, "first line\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(client, "second "));
    assert_true(wait_for_output(client, "first line\nsecond ", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(client, "line\n"));
    assert_true(wait_for_output(client, "first line\nsecond line\n", slow(FINISH_TIMEOUT_MS)));
    close_input(client);

    assert_exit(client, 0);
    assert_stdout(client, "first line\nsecond line\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket sent data\nsocket sent data\n"
                          "socket sent data\nsocket disconnected\n");
}

static void select_client_goes_on_sending_to_tcp_server_after_its_greeting(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("select_client", "-p", port), &(struct run_options){.input_pipe = true});
    /* tcp_server sends "Hello!" and ends its side at once; ours stays open. */
    assert_true(wait_for_output(client, "Hello!", slow(FINISH_TIMEOUT_MS)));

    assert_true(send_input(client, "first line\n"));
    assert_true(wait_for_output(server, "Got from client: first line\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(client, "second line\n"));
    assert_true(wait_for_output(server, "first line\nsecond line\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(server)); /* it waits for the end of our message */
    close_input(client);

    assert_exit(client, 0);
    assert_stdout(client, "Hello!");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: first line\nsecond line\n\n");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n", port));
}

static void select_clients_connected_at_once_each_get_their_own_echo(void **state) {
    (void)state;
    const char *count = formatted("%d", SELECT_CLIENTS);
    /* A greeting (-m) tells each client that it is connected. */
    struct process *server =
        start_program(ARGV("select_server", "-e", "-m", "Hello!\n", "-n", count, "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *everyone[1 + SELECT_CLIENTS] = {server};
    for (int i = 1; i <= SELECT_CLIENTS; i++) {
        everyone[i] = start_program(ARGV("select_client", "-p", port),
                                    &(struct run_options){.input_pipe = true});
        assert_true(wait_for_output(everyone[i], "Hello!\n", slow(FINISH_TIMEOUT_MS)));
    }

    /* All connected: each speaks in turn, and gets its own line back. */
    for (int i = 1; i <= SELECT_CLIENTS; i++) {
        const char *line = formatted("line from client %d\n", i);
        assert_true(send_input(everyone[i], line));
        assert_true(wait_for_output(everyone[i], line, slow(FINISH_TIMEOUT_MS)));
    }
    for (int i = 1; i <= SELECT_CLIENTS; i++)
        close_input(everyone[i]);
    finish_all(everyone, COUNT(everyone), slow(FINISH_TIMEOUT_MS));

    for (int i = 1; i <= SELECT_CLIENTS; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(everyone[i], formatted("Hello!\nline from client %d\n", i));
        assert_stderr(everyone[i], "");
    }
    assert_exit(server, 0);
    assert_stdout(server, "listening\n"
                          "accepting new socket\naccepting new socket\naccepting new socket\n"
                          "socket sent data\nsocket sent data\nsocket sent data\n"
                          "socket disconnected\nsocket disconnected\nsocket disconnected\n");
}

static void select_client_talks_over_ipv6_and_over_a_unix_socket(void **state) {
    (void)state;
    const char *path = temp_path("select.sock");
    struct process *server =
        start_program(ARGV("select_server", "-e", "-6", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("select_client", "-6", "-p", port),
                                           &(struct run_options){.input = "over IPv6\n"});
    assert_exit(client, 0);
    assert_stdout(client, "over IPv6\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);

    server = start_program(ARGV("select_server", "-e", "-u", path, "-n", "1"), NULL);
    assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
    client = start_program(ARGV("select_client", "-u", path),
                           &(struct run_options){.input = "over a UNIX socket\n"});
    assert_exit(client, 0);
    assert_stdout(client, "over a UNIX socket\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_false(file_exists(path));
}

/* ---- 64 MiB of binary data through each direction of a connection ---- */

static void tcp_client_sends_64_mib_from_stdin_byte_for_byte(void **state) {
    (void)state;
    const char *payload = temp_path("payload");
    const char *received = temp_path("received");
    uint64_t sent = write_random_file(payload, BIG_PAYLOAD_SIZE);
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"),
                                           &(struct run_options){.output_file = received});
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-m", "-", "-p", port),
                                           &(struct run_options){.input_file = payload});
    finish(client, BIG_TIMEOUT_MS); /* the client first: if it fails, no need to wait more */

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 0);
    assert_file_holds(received, "Got from client: ", BIG_PAYLOAD_SIZE, sent, "\n");
}

static void tcp_server_sends_64_mib_from_stdin_byte_for_byte(void **state) {
    (void)state;
    const char *payload = temp_path("payload");
    const char *received = temp_path("received");
    uint64_t sent = write_random_file(payload, BIG_PAYLOAD_SIZE);
    struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                           &(struct run_options){.input_file = payload});
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-p", port),
                                           &(struct run_options){.output_file = received});
    finish(client, BIG_TIMEOUT_MS);

    assert_exit(client, 0);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_file_holds(received, "Client connected!\nReceived from server: ", BIG_PAYLOAD_SIZE, sent,
                      "\nreply sent!\n");
}

static void select_client_sends_16_mib_while_the_echo_comes_back(void **state) {
    (void)state;
    const char *payload = temp_path("payload");
    const char *received = temp_path("received");
    uint64_t sent = write_random_file(payload, BOTH_WAYS_SIZE);
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "1", "-p", "0"),
                                           &(struct run_options){.output_file = "/dev/null"});
    const char *port = ready_port(server);
    /* Far more than the socket buffers hold: it must read the echo while it still sends. */
    struct process *client =
        start_program(ARGV("select_client", "-p", port),
                      &(struct run_options){.input_file = payload, .output_file = received});

    assert_exit_within(client, 0, BIG_TIMEOUT_MS);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_file_holds(received, "", BOTH_WAYS_SIZE, sent, "");
}

/* ---- the command line ---- */

static void every_program_prints_usage_on_stdout_for_h(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        struct process *program = start_program(ARGV(PROGRAMS[i], "-h"), NULL);
        assert_exit(program, 0);
        assert_stdout_starts_with(program, formatted("usage: %s", PROGRAMS[i]));
        assert_stderr(program, "");
    }
}

static void every_program_prints_the_usage_of_h_on_stdout_for_help(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(EVERY_PROGRAM); i++) {
        if (!built(EVERY_PROGRAM[i]))
            continue;
        struct process *h = start_program(ARGV(EVERY_PROGRAM[i], "-h"), NULL);
        assert_exit(h, 0);
        struct process *help = start_program(ARGV(EVERY_PROGRAM[i], "--help"), NULL);
        assert_exit(help, 0);
        assert_stdout_starts_with(help, formatted("usage: %s", EVERY_PROGRAM[i]));
        assert_stdout(help, h->out.data);
        assert_stderr(help, "");
    }
}

static void a_message_of_m_may_be_the_text_help(void **state) {
    (void)state;
    /* --help as the argument of -m is a message, as getopt reads it, not a request for help. */
    struct process *receiver = start_program(ARGV("udp_receiver", "-m", "--help", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-m", "--help", "-p", port), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: --help\n");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: --help\n");
}

static void every_program_rejects_an_unknown_option(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++)
        assert_usage_error(ARGV(PROGRAMS[i], "-x"),
                           formatted("%s: unknown option -x (try -h)\n", PROGRAMS[i]));
}

static void every_program_rejects_an_option_without_its_argument(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++)
        assert_usage_error(ARGV(PROGRAMS[i], "-p"),
                           formatted("%s: option -p needs an argument\n", PROGRAMS[i]));
}

static void every_program_rejects_a_port_that_is_not_0_to_65535(void **state) {
    (void)state;
    const char *const bad_ports[] = {"abc", "65536", "-1", "", "80x"};
    for (size_t i = 0; i < COUNT(PROGRAMS); i++)
        for (size_t j = 0; j < COUNT(bad_ports); j++)
            assert_usage_error(ARGV(PROGRAMS[i], "-p", bad_ports[j]),
                               formatted("%s: bad port '%s': not a number from 0 to 65535\n",
                                         PROGRAMS[i], bad_ports[j]));
}

static void every_client_rejects_port_0_and_every_server_takes_it(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(CLIENTS); i++)
        assert_usage_error(
            ARGV(CLIENTS[i], "-p", "0"),
            formatted("%s: bad port '0': a destination needs a port from 1 to 65535\n",
                      CLIENTS[i]));
    for (size_t i = 0; i < COUNT(SERVERS); i++) {
        struct process *server = start_program(ARGV(SERVERS[i], "-p", "0"), NULL);
        assert_true(atoi(ready_port(server)) > 0); /* a free port, picked for it */
        stop(server);
    }
}

static void every_server_rejects_a_count_that_is_not_0_to_1000000(void **state) {
    (void)state;
    const char *const bad_counts[] = {"abc", "1000001", "-1"};
    for (size_t i = 0; i < COUNT(SERVERS); i++)
        for (size_t j = 0; j < COUNT(bad_counts); j++)
            assert_usage_error(ARGV(SERVERS[i], "-n", bad_counts[j]),
                               formatted("%s: bad count '%s': not a number from 0 to 1000000\n",
                                         SERVERS[i], bad_counts[j]));
}

static void programs_with_t_reject_a_timeout_that_is_not_0_to_86400(void **state) {
    (void)state;
    const char *const timed[] = {"udp_sender", "tcp_client", "select_server", "select_client"};
    const char *const bad_timeouts[] = {"abc", "86401", "-1"};
    for (size_t i = 0; i < COUNT(timed); i++)
        for (size_t j = 0; j < COUNT(bad_timeouts); j++)
            assert_usage_error(ARGV(timed[i], "-t", bad_timeouts[j]),
                               formatted("%s: bad timeout '%s': not a number from 0 to 86400\n",
                                         timed[i], bad_timeouts[j]));
}

static void every_program_rejects_an_extra_argument(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++)
        assert_usage_error(ARGV(PROGRAMS[i], "foo"),
                           formatted("%s: unexpected argument 'foo' (try -h)\n", PROGRAMS[i]));
}

static void every_program_refuses_a_host_or_port_with_a_unix_path(void **state) {
    (void)state;
    const char *path = temp_path("never.sock");
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        const char *message = formatted("%s: -u PATH takes no -H or -p\n", PROGRAMS[i]);
        assert_usage_error(ARGV(PROGRAMS[i], "-u", path, "-p", "1"), message);
        assert_usage_error(ARGV(PROGRAMS[i], "-H", "localhost", "-u", path), message);
    }
}

static void every_program_refuses_4_or_6_with_a_unix_path(void **state) {
    (void)state;
    /* Either order: the last would win, unsaid, and a server would listen on IP while it
     * removes PATH at exit, another program's socket. That one stays. */
    const char *path = temp_path("live.sock");
    unix_socket(SOCK_STREAM, path);
    for (size_t i = 0; i < COUNT(EVERY_PROGRAM); i++) {
        if (!built(EVERY_PROGRAM[i]))
            continue;
        const char *message = formatted("%s: -u PATH takes no -4 or -6\n", EVERY_PROGRAM[i]);
        assert_usage_error(ARGV(EVERY_PROGRAM[i], "-u", path, "-4"), message);
        assert_usage_error(ARGV(EVERY_PROGRAM[i], "-6", "-u", path), message);
        assert_usage_error(ARGV(EVERY_PROGRAM[i], "-4", "-u", path), message);
        assert_usage_error(ARGV(EVERY_PROGRAM[i], "-u", path, "-6"), message);
        assert_true(file_exists(path));
    }
}

static void every_program_refuses_an_empty_unix_path_or_host(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(EVERY_PROGRAM); i++) {
        if (!built(EVERY_PROGRAM[i]))
            continue;
        const char *port = is_client(EVERY_PROGRAM[i]) ? "1" : "0";
        assert_usage_error(
            ARGV(EVERY_PROGRAM[i], "-u", ""),
            formatted("%s: -u needs a path (an empty one is no file)\n", EVERY_PROGRAM[i]));
        assert_usage_error(ARGV(EVERY_PROGRAM[i], "-H", "", "-p", port),
                           formatted("%s: -H needs a host\n", EVERY_PROGRAM[i]));
    }
}

static void every_program_rejects_a_unix_path_longer_than_sun_path(void **state) {
    (void)state;
    struct sockaddr_un unix_address;
    char path[sizeof unix_address.sun_path + 1]; /* one byte more than fits, with its '\0' */
    memset(path, 'x', sizeof path - 1);
    memcpy(path, "/tmp/", strlen("/tmp/"));
    path[sizeof path - 1] = '\0';
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        if (strcmp(PROGRAMS[i], "udp_sender") == 0)
            continue; /* its limit is shorter: see the next test */
        assert_usage_error(ARGV(PROGRAMS[i], "-u", path),
                           formatted("%s: socket path too long (at most %zu bytes): %s\n",
                                     PROGRAMS[i], sizeof path - 2, path));
    }
}

/* A path in the temporary directory that is exactly `length` bytes long. */
static const char *temp_path_of_length(size_t length) {
    const char *directory = temp_path("");
    assert_true(strlen(directory) < length);
    char name[sizeof((struct sockaddr_un *)0)->sun_path];
    assert_true(length - strlen(directory) < sizeof name);
    memset(name, 'x', length - strlen(directory));
    name[length - strlen(directory)] = '\0';
    return temp_path(name);
}

static void udp_sender_keeps_room_in_sun_path_for_the_pid_it_adds_to_its_own_socket(void **state) {
    (void)state;
    /* Its own socket is PATH.PID: the path must leave room for "." and the largest pid. */
    struct sockaddr_un unix_address;
    size_t longest = sizeof unix_address.sun_path - 1 - strlen(".2147483647");
    const char *too_long = temp_path_of_length(longest + 1);
    assert_usage_error(ARGV("udp_sender", "-u", too_long),
                       formatted("udp_sender: socket path too long (at most %zu bytes: we add "
                                 ".PID to it for our own socket): %s\n",
                                 longest, too_long));

    const char *path = temp_path_of_length(longest);
    struct process *receiver = start_program(ARGV("udp_receiver", "-u", path), NULL);
    assert_int_equal(wait_for_ready_line(receiver, slow(READY_TIMEOUT_MS)), 0);
    struct process *sender = start_program(ARGV("udp_sender", "-u", path), NULL);
    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_false(file_exists(path));
}

static void tcp_server_reading_its_message_from_stdin_needs_n_1(void **state) {
    (void)state;
    assert_usage_error(ARGV("tcp_server", "-m", "-", "-n", "2"),
                       "tcp_server: -m - reads stdin once, so it needs -n 1\n");
}

static void programs_reject_an_m_text_longer_than_their_buffer_as_a_bad_command_line(void **state) {
    (void)state;
    /* A datagram holds 65507 bytes; an event server keeps its greeting in a client's pending
     * output, PENDING_SIZE (4096) bytes. */
    char *text = malloc(LARGEST_DATAGRAM + 2);
    assert_non_null(text);
    memset(text, 'x', LARGEST_DATAGRAM + 1);
    text[LARGEST_DATAGRAM + 1] = '\0';
    const char *datagram = formatted("%s", text);
    text[4096 + 1] = '\0';
    const char *greeting = formatted("%s", text);
    free(text);
    const char *const udp[] = {"udp_receiver", "udp_sender"};
    for (size_t i = 0; i < COUNT(udp); i++)
        assert_usage_error(ARGV(udp[i], "-m", datagram, "-p", "1"),
                           formatted("%s: message too long for one datagram: at most %d bytes\n",
                                     udp[i], LARGEST_DATAGRAM));
    const char *const event_servers[] = {"select_server", "poll_server", "epoll_server"};
    for (size_t i = 0; i < COUNT(event_servers); i++) {
        if (!built(event_servers[i]))
            continue;
        assert_usage_error(
            ARGV(event_servers[i], "-m", greeting, "-p", "0"),
            formatted("%s: greeting too long: at most 4096 bytes\n", event_servers[i]));
    }
}

static void every_program_refuses_a_numeric_address_of_the_other_family(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(EVERY_PROGRAM); i++) {
        if (!built(EVERY_PROGRAM[i]))
            continue;
        assert_usage_error(ARGV(EVERY_PROGRAM[i], "-4", "-H", "::1"),
                           formatted("%s: ::1 is an IPv6 address: use -6\n", EVERY_PROGRAM[i]));
        assert_usage_error(
            ARGV(EVERY_PROGRAM[i], "-6", "-H", "127.0.0.1"),
            formatted("%s: 127.0.0.1 is an IPv4 address: use -4\n", EVERY_PROGRAM[i]));
    }
}

/* ---- what goes wrong at run time ---- */

static void every_program_reports_a_host_that_does_not_resolve(void **state) {
    (void)state;
    const char *host = "no-such-host.invalid";
    /* The reason depends on the resolver here ("Name or service not known" with no DNS
     * server that answers for it): ask it the same question the programs ask. */
    struct addrinfo hints = {.ai_family = AF_INET}, *found = NULL;
    int error = getaddrinfo(host, NULL, &hints, &found);
    if (error == 0)
        freeaddrinfo(found);
    assert_int_not_equal(error, 0);
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        const char *port = is_client(PROGRAMS[i]) ? "1" : "0"; /* a destination needs a port */
        struct process *program =
            expect_runtime_error(ARGV(PROGRAMS[i], "-H", host, "-p", port),
                                 formatted("%s: %s: %s\n", PROGRAMS[i], host, gai_strerror(error)));
        /* Nothing comes before the error: not even udp_sender's "Sending data...". */
        assert_stdout(program, "");
    }
}

static void every_server_reports_an_address_already_in_use(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(SERVERS); i++) {
        struct process *first = start_program(ARGV(SERVERS[i], "-p", "0"), NULL);
        const char *port = ready_port(first);
        expect_runtime_error(ARGV(SERVERS[i], "-p", port),
                             formatted("%s: bind: Address already in use\n", SERVERS[i]));
        stop(first);
    }
}

static void tcp_client_reports_connection_refused_when_nobody_listens(void **state) {
    (void)state;
    const char *port = formatted("%d", refusing_port(SOCK_STREAM));
    struct process *client = expect_runtime_error(ARGV("tcp_client", "-p", port),
                                                  "tcp_client: connect: Connection refused\n");
    assert_stdout(client, "");
}

static void select_client_reports_connection_refused_when_nobody_listens(void **state) {
    (void)state;
    const char *port = formatted("%d", refusing_port(SOCK_STREAM));
    struct process *client = expect_runtime_error(ARGV("select_client", "-p", port),
                                                  "select_client: connect: Connection refused\n");
    assert_stdout(client, "");
}

static void
udp_sender_reports_connection_refused_at_once_when_nobody_takes_its_datagram(void **state) {
    (void)state;
    /* Its socket is connected to the receiver's address: the kernel's "port unreachable"
     * reaches it as ECONNREFUSED, long before -t. */
    const char *port = formatted("%d", refusing_port(SOCK_DGRAM));
    struct process *sender = start_program(ARGV("udp_sender", "-t", "60", "-p", port), NULL);

    assert_exit(sender, 1);
    assert_stdout(sender, "Sending data...\n");
    assert_stderr(sender, "udp_sender: recvmsg: Connection refused\n");
}

static void udp_sender_gives_up_after_t_seconds_without_a_reply(void **state) {
    (void)state;
    /* A UDP socket that is bound, so nothing refuses the datagram, and never answers. */
    int port;
    bound_on_loopback(SOCK_DGRAM, &port);
    struct process *sender =
        start_program(ARGV("udp_sender", "-t", "1", "-p", formatted("%d", port)), NULL);

    assert_exit_within(sender, 1, slow(TIMEOUT_WAIT_MS));
    assert_stdout(sender, "Sending data...\n");
    assert_stderr(sender, "udp_sender: no reply within 1 s \u2014 is udp_receiver running?\n");
}

static void tcp_client_gives_up_after_t_seconds_without_data(void **state) {
    (void)state;
    /* A listener that never accepts: the kernel completes the connection, nobody sends. */
    int port;
    listen_on_loopback(&port);
    struct process *client =
        start_program(ARGV("tcp_client", "-t", "1", "-p", formatted("%d", port)), NULL);

    assert_exit_within(client, 1, slow(TIMEOUT_WAIT_MS));
    /* The line was started before the wait, and ended before the error line. */
    assert_stdout(client, "Client connected!\nReceived from server: \n");
    assert_stderr(client, "tcp_client: no data within 1 s\n");
}

static void select_client_gives_up_after_t_seconds_when_nothing_happens(void **state) {
    (void)state;
    /* A listener that never accepts, and input that never comes: nothing to wait for. */
    int port;
    listen_on_loopback(&port);
    struct process *client =
        start_program(ARGV("select_client", "-t", "1", "-p", formatted("%d", port)),
                      &(struct run_options){.input_pipe = true});

    assert_exit_within(client, 1, slow(TIMEOUT_WAIT_MS));
    assert_stdout(client, "");
    assert_stderr(client, "select_client: nothing happened for 1 s\n");
}

static void udp_programs_reject_a_message_too_long_for_one_datagram(void **state) {
    (void)state;
    char *message = malloc(LARGEST_DATAGRAM + 2);
    assert_non_null(message);
    memset(message, 'x', LARGEST_DATAGRAM + 1);
    message[LARGEST_DATAGRAM + 1] = '\0';
    const struct run_options too_long = {.input = message};
    struct process *sender = start_program(ARGV("udp_sender", "-m", "-", "-p", "1"), &too_long);
    struct process *receiver = start_program(ARGV("udp_receiver", "-m", "-", "-p", "0"), &too_long);
    free(message);

    assert_exit(sender, 1);
    assert_stderr(sender, "udp_sender: message too long for one datagram: at most 65507 bytes\n");
    assert_exit(receiver, 1);
    assert_stderr(receiver,
                  "udp_receiver: message too long for one datagram: at most 65507 bytes\n");
}

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    const struct CMUnitTest tests[] = {
        TEST(udp_pair_prints_the_tutorial_lines),
        TEST(tcp_pair_prints_the_tutorial_lines),
        TEST(udp_receiver_answers_count_datagrams_then_exits),
        TEST(tcp_server_serves_count_clients_in_turn_then_exits),
        TEST(udp_pair_talks_over_ipv6),
        TEST(tcp_pair_talks_over_ipv6),
        TEST(a_numeric_ipv6_address_needs_no_6),
        TEST(udp_pair_talks_over_a_unix_socket_and_removes_both_socket_files),
        TEST(tcp_pair_talks_over_a_unix_socket_and_removes_the_socket_file),
        TEST(tcp_pair_talks_over_a_link_local_ipv6_address_on_a_long_interface_name),
        PER_SERVER(echoes_five_clients_in_turn),
        PER_SERVER(echoes_five_concurrent_clients_each_its_own_message),
        PER_SERVER(talks_over_ipv6),
        PER_SERVER(talks_over_a_unix_socket_and_removes_the_socket_file),
        PER_SERVER(says_select_timed_out_when_no_client_comes),
        FOR_SERVER("poll_server", takes_the_same_options_as_select_server),
        FOR_SERVER("epoll_server", takes_the_same_options_as_select_server),
        PER_SERVER(serves_five_plain_tcp_clients_at_once_as_in_the_tutorial),
        PER_SERVER(gives_tcp_client_in_echo_mode_only_the_greeting_without_e),
        PER_SERVER(echoes_every_byte_value_exactly_with_e),
        PER_SERVER(sends_back_each_line_of_a_line_by_line_echo_client_and_nothing_else),
        PER_SERVER(greets_select_client_and_drops_its_input_without_e),
        PER_SERVER(echoes_select_client_s_input_with_e_and_greets_it_only_with_m),
        PER_SERVER(goes_on_reading_select_client_after_ending_its_own_side),
        TEST(tcp_client_without_e_says_to_use_e_when_an_echo_server_stays_silent),
        TEST(select_client_prints_each_echo_while_its_input_goes_on),
        TEST(select_client_goes_on_sending_to_tcp_server_after_its_greeting),
        TEST(select_clients_connected_at_once_each_get_their_own_echo),
        TEST(select_client_talks_over_ipv6_and_over_a_unix_socket),
        TEST(tcp_client_sends_64_mib_from_stdin_byte_for_byte),
        TEST(tcp_server_sends_64_mib_from_stdin_byte_for_byte),
        TEST(select_client_sends_16_mib_while_the_echo_comes_back),
        TEST(every_program_prints_usage_on_stdout_for_h),
        TEST(every_program_prints_the_usage_of_h_on_stdout_for_help),
        TEST(a_message_of_m_may_be_the_text_help),
        TEST(every_program_rejects_an_unknown_option),
        TEST(every_program_rejects_an_option_without_its_argument),
        TEST(every_program_rejects_a_port_that_is_not_0_to_65535),
        TEST(every_client_rejects_port_0_and_every_server_takes_it),
        TEST(every_server_rejects_a_count_that_is_not_0_to_1000000),
        TEST(programs_with_t_reject_a_timeout_that_is_not_0_to_86400),
        TEST(every_program_rejects_an_extra_argument),
        TEST(every_program_refuses_a_host_or_port_with_a_unix_path),
        TEST(every_program_refuses_4_or_6_with_a_unix_path),
        TEST(every_program_refuses_an_empty_unix_path_or_host),
        TEST(every_program_rejects_a_unix_path_longer_than_sun_path),
        TEST(udp_sender_keeps_room_in_sun_path_for_the_pid_it_adds_to_its_own_socket),
        TEST(tcp_server_reading_its_message_from_stdin_needs_n_1),
        TEST(programs_reject_an_m_text_longer_than_their_buffer_as_a_bad_command_line),
        TEST(every_program_refuses_a_numeric_address_of_the_other_family),
        TEST(every_program_reports_a_host_that_does_not_resolve),
        TEST(every_server_reports_an_address_already_in_use),
        TEST(tcp_client_reports_connection_refused_when_nobody_listens),
        TEST(select_client_reports_connection_refused_when_nobody_listens),
        TEST(udp_sender_reports_connection_refused_at_once_when_nobody_takes_its_datagram),
        TEST(udp_sender_gives_up_after_t_seconds_without_a_reply),
        TEST(tcp_client_gives_up_after_t_seconds_without_data),
        TEST(select_client_gives_up_after_t_seconds_when_nothing_happens),
        TEST(udp_programs_reject_a_message_too_long_for_one_datagram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
