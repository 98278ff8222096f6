#define _POSIX_C_SOURCE 200809L
/* test_tutorial.c: the tutorial-sized programs of examples/ (bin/NAME), which take one optional
 * argument, the port. Each pair the tutorial describes; the command line of all six; each
 * pair again with strace's EINTR in every socket call, and through a proxy that cuts the
 * stream into other pieces; more clients than select() can watch, and programs started with
 * their descriptors filled up to FD_SETSIZE; a client that resets. Exact bytes and exit
 * statuses, loopback only, servers on port 0, every wait with a deadline.
 * Run from the repository root: build/test_tutorial (BIN_DIR=dir picks other binaries). The
 * strace and bash tests are skipped without those tools (failed under REQUIRE_TOOLS=1). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    WAIT_MS = 5 * 1000,           /* udp_sender's wait for a reply, select_server's for events */
    EXTRA_CLIENTS = 20,           /* connections beyond FD_SETSIZE */
    FILES_LIMIT = 2 * FD_SETSIZE, /* RLIMIT_NOFILE for all of them, or a filled descriptor table */
    SELECT_SERVER_OWN_FDS = 4,    /* stdin, stdout, stderr and the listener */
    GREETING_SIZE = sizeof "Hello!\n" - 1,
};

#define UDP_SENDER_LINES "Sending data...\nGot response: got it!\n"
#define UDP_RECEIVER_LINES "Waiting for data...\nReceived: Hello!\n"
#define TCP_SERVER_LINES "Got from client: Thanks! Bye.\n"
#define TOO_MANY "select_server: too many clients for select: one turned away\n"
#define TOO_LARGE(program) program ": socket: descriptor too large for select (FD_SETSIZE)\n"
#define REFUSED(program) program ": connect: Connection refused\n"

/* The six programs: the lowest port each takes (a server may ask for 0: any free one) and
 * the one it takes without an argument. */
static const struct {
    const char *name;
    int lowest;
    const char *default_port;
} PROGRAMS[] = {{"udp_receiver", 0, "8765"},  {"udp_sender", 1, "8765"},
                {"tcp_server", 0, "2525"},    {"tcp_client", 1, "2525"},
                {"select_server", 0, "2525"}, {"select_client", 1, "2525"}};

/* `count` copies of line. */
static const char *repeated(const char *line, int count) {
    size_t length = strlen(line);
    char *lines = malloc(length * (size_t)count + 1);
    assert_non_null(lines);
    for (int i = 0; i < count; i++)
        memcpy(lines + length * (size_t)i, line, length);
    lines[length * (size_t)count] = '\0';
    const char *kept = formatted("%s", lines);
    free(lines);
    return kept;
}

/* "listening", then `count` times each line of one client, a client at a time. */
static const char *clients_one_after_another(int count) {
    return formatted("listening\n%s", repeated(ONE_EVENT_CLIENT, count));
}

/* tcp_clients one after another against select_server on port, each waiting until the server
 * has seen the one before go, so that the server's lines come in order; select_server's stdout
 * already holds `before` and then, client after client, ONE_EVENT_CLIENT. */
static void serve_tcp_clients_in_turn(struct process *server, const char *port, int count,
                                      const char *before) {
    for (int i = 1; i <= count; i++) {
        struct process *client =
            start_program(ARGV("tcp_client", port),
                          &(struct run_options){.label = formatted("tcp_client %d", i)});
        assert_exit(client, 0);
        assert_stdout(client, EVENT_CLIENT_LINES);
        assert_stderr(client, "");
        const char *so_far = formatted("%s%s", before, repeated(ONE_EVENT_CLIENT, i));
        assert_true(wait_for_output(server, so_far, slow(FINISH_TIMEOUT_MS)));
    }
}

/* ====================================================================================== */
/* ---- the tutorial's pairs ---- */

static void udp_pair_prints_the_tutorial_lines(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", port), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, UDP_SENDER_LINES);
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, UDP_RECEIVER_LINES);
    assert_stderr(receiver, ready_line("udp_receiver", port));
}

static void tcp_pair_prints_the_tutorial_lines(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, TCP_SERVER_LINES);
    /* It binds every interface, as the tutorial's does. */
    assert_stderr(server, formatted("tcp_server: ready on 0.0.0.0 port %s\n", port));
}

/* Five clients `name` at once against select_server, each with this input (NULL: none), each
 * to print `expected`; the server then exits by itself. */
static void five_clients_at_once(const char *name, const char *input, const char *expected) {
    struct process *everyone[1 + TUTORIAL_CLIENTS];
    everyone[0] = start_program(ARGV("select_server", "0"), NULL);
    const char *port = ready_port(everyone[0]);
    for (int i = 1; i <= TUTORIAL_CLIENTS; i++)
        everyone[i] = start_program(
            ARGV(name, port),
            &(struct run_options){.input = input, .label = formatted("%s %d", name, i)});
    assert_clients_printed(everyone, 1 + TUTORIAL_CLIENTS, expected);
    assert_exit(everyone[0], 0);
    /* Five seconds without an event (a slow start of the clients under valgrind) would make
     * it say so: the program's contract, not a fault of the pair. */
    assert_five_clients_served(everyone[0], "Select timed out.");
    assert_stderr(everyone[0], ready_line("select_server", port));
}

static void select_server_serves_five_tcp_clients_at_once_and_exits(void **state) {
    (void)state;
    five_clients_at_once("tcp_client", NULL, EVENT_CLIENT_LINES);
}

static void five_select_clients_at_once_get_the_greeting_of_select_server(void **state) {
    (void)state;
    five_clients_at_once("select_client", "one\n", "Hello!\n");
}

/* One select() waits on the keyboard and the network: the greeting shows while the input is
 * still open, and a line typed then goes to the server at once. */
static void select_client_prints_the_greeting_while_its_input_is_still_open(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("select_server", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("select_client", port), &(struct run_options){.input_pipe = true});
    assert_true(wait_for_output(client, "Hello!\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(client));
    assert_true(send_input(client, "one\n"));
    assert_true(wait_for_output(server, "socket sent data\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(client));
    close_input(client);

    assert_exit(client, 0);
    assert_stdout(client, "Hello!\n");
    assert_stderr(client, "");
    assert_true(wait_for_output(server, clients_one_after_another(1), slow(FINISH_TIMEOUT_MS)));
    assert_stdout(server, clients_one_after_another(1));
    assert_stderr(server, ready_line("select_server", port));
}

/* Against the hardened echo server (no greeting: only the echo), each line comes back while the
 * next is not typed yet. */
static void select_client_prints_each_echo_of_the_hardened_echo_server_as_it_comes(void **state) {
    (void)state;
    struct process *server =
        start_program(ARGV("hardened/select_server", "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("select_client", port), &(struct run_options){.input_pipe = true});
    assert_true(send_input(client, "one\n"));
    assert_true(wait_for_output(client, "one\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(client, "two\n"));
    assert_true(wait_for_output(client, "one\ntwo\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(client));
    close_input(client);

    assert_exit(client, 0);
    assert_stdout(client, "one\ntwo\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket sent data\nsocket sent data\n"
                          "socket disconnected\n");
    assert_stderr(server, ready_line("hardened/select_server", port));
}

/* stdout is line-buffered: into a pipe too, each line shows while the program still waits. */
static void each_line_shows_at_once_while_the_program_still_waits(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "0"), NULL);
    ready_port(receiver);
    assert_true(wait_for_output(receiver, "Waiting for data...\n", slow(READY_TIMEOUT_MS)));
    assert_true(is_running(receiver));

    struct process *server = start_program(ARGV("select_server", "0"), NULL);
    ready_port(server);
    assert_true(wait_for_output(server, "listening\n", slow(READY_TIMEOUT_MS)));
    assert_true(is_running(server));

    /* A server that never answers: the test's own sockets. */
    int port;
    listen_on_loopback(&port); /* the kernel accepts; nobody sends a greeting */
    struct process *client = start_program(ARGV("tcp_client", formatted("%d", port)), NULL);
    assert_true(wait_for_output(client, "Client connected!\n", slow(READY_TIMEOUT_MS)));
    assert_true(is_running(client));

    int deaf_port;
    bound_on_loopback(SOCK_DGRAM, &deaf_port); /* it receives, and never answers */
    struct process *sender = start_program(ARGV("udp_sender", formatted("%d", deaf_port)), NULL);
    assert_true(wait_for_output(sender, "Sending data...\n", slow(READY_TIMEOUT_MS)));
    assert_true(is_running(sender));
}

static void select_server_says_when_5_seconds_pass_without_an_event(void **state) {
    (void)state;
    long long start = now_ms();
    struct process *server = start_program(ARGV("select_server", "0"), NULL);
    ready_port(server);
    assert_true(wait_for_output(server, "listening\nSelect timed out.\n", slow(2 * WAIT_MS)));
    long long waited = now_ms() - start;
    if (waited < WAIT_MS)
        fail_msg("select_server said \"Select timed out.\" after %lld ms, before 5 s", waited);
    assert_stdout(server, "listening\nSelect timed out.\n");
    assert_true(is_running(server));
}

/* ====================================================================================== */
/* ---- the command line: one optional argument, the port ---- */

static const char *usage(int i) {
    return formatted("usage: %s [PORT]   (PORT %d to 65535, default %s)\n", PROGRAMS[i].name,
                     PROGRAMS[i].lowest, PROGRAMS[i].default_port);
}

/* Run program i with one bad argument list: it must print its usage on stderr only, exit 2. */
#define assert_usage_error_of(i, argv) \
    assert_usage_error(argv, formatted("%s: %s", PROGRAMS[i].name, usage(i)))

static void every_program_prints_its_usage_on_stdout_for_h_and_help(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        const char *const options[] = {"-h", "--help"};
        for (size_t j = 0; j < COUNT(options); j++) {
            struct process *program = start_program(ARGV(PROGRAMS[i].name, options[j]), NULL);
            assert_exit(program, 0);
            assert_stdout(program, usage((int)i));
            assert_stderr(program, "");
        }
    }
}

static void every_program_refuses_a_port_that_is_not_a_number(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        const char *const bad[] = {"http", "80x", "", "0x50", "8765.0", " 80", "+80", "80 "};
        for (size_t j = 0; j < COUNT(bad); j++)
            assert_usage_error_of((int)i, ARGV(PROGRAMS[i].name, bad[j]));
    }
}

static void every_program_refuses_a_port_out_of_range(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        assert_usage_error_of((int)i, ARGV(PROGRAMS[i].name, "65536"));
        assert_usage_error_of((int)i, ARGV(PROGRAMS[i].name, "-1"));
        assert_usage_error_of((int)i, ARGV(PROGRAMS[i].name, "99999999999999999999"));
        if (PROGRAMS[i].lowest == 1) /* a client cannot reach port 0 */
            assert_usage_error_of((int)i, ARGV(PROGRAMS[i].name, "0"));
    }
}

static void every_program_refuses_two_arguments_and_any_option(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        const char *name = PROGRAMS[i].name;
        assert_usage_error_of((int)i, ARGV(name, "2525", "2526"));
        assert_usage_error_of((int)i, ARGV(name, "-x"));
        assert_usage_error_of((int)i, ARGV(name, "-p", "2525")); /* the hardened tier's option */
        assert_usage_error_of((int)i, ARGV(name, "-h", "2525"));
    }
}

static void udp_sender_without_a_receiver_gives_up_after_5_seconds(void **state) {
    (void)state;
    /* Nobody takes the datagram: a socket of ours holds the port, and takes datagrams from
     * nobody else. */
    long long start = now_ms();
    struct process *sender =
        start_program(ARGV("udp_sender", formatted("%d", refusing_port(SOCK_DGRAM))), NULL);

    assert_exit_within(sender, 1, slow(WAIT_MS + FINISH_TIMEOUT_MS));
    long long waited = now_ms() - start;
    if (waited < WAIT_MS)
        fail_msg("udp_sender gave up after %lld ms, before its 5 s", waited);
    assert_stdout(sender, "Sending data...\n");
    assert_stderr(sender,
                  "udp_sender: recvfrom: no reply within 5 seconds (is udp_receiver running?)\n");
}

static void tcp_client_without_a_server_says_connection_refused(void **state) {
    (void)state;
    const char *port = formatted("%d", refusing_port(SOCK_STREAM));
    struct process *client = start_program(ARGV("tcp_client", port), NULL);

    assert_exit(client, 1);
    assert_stdout(client, "");
    assert_stderr(client, REFUSED("tcp_client"));
}

static void select_client_without_a_server_says_connection_refused(void **state) {
    (void)state;
    const char *port = formatted("%d", refusing_port(SOCK_STREAM));
    struct process *client = start_program(ARGV("select_client", port), NULL);

    assert_exit(client, 1);
    assert_stdout(client, "");
    assert_stderr(client, REFUSED("select_client"));
}

/* ====================================================================================== */
/* ---- EINTR: strace fails every socket call once, then every other time ---- */

static void udp_pair_prints_the_same_with_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("udp_receiver", "0"),
                                      .client = ARGV("udp_sender", PORT),
                                      .client_count = 1,
                                      .server_stdout = UDP_RECEIVER_LINES,
                                      .client_stdout = UDP_SENDER_LINES};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void tcp_pair_prints_the_same_with_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("tcp_server", "0"),
                                      .client = ARGV("tcp_client", PORT),
                                      .client_count = 1,
                                      .server_stdout = TCP_SERVER_LINES,
                                      .client_stdout = TCP_CLIENT_LINES};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void
select_server_and_five_tcp_clients_print_the_same_with_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("select_server", "0"),
                                      .client = ARGV("tcp_client", PORT),
                                      .client_count = TUTORIAL_CLIENTS,
                                      .server_stdout = clients_one_after_another(TUTORIAL_CLIENTS),
                                      .client_stdout = EVENT_CLIENT_LINES,
                                      .client_done = "socket disconnected\n"};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void select_client_and_select_server_print_the_same_with_eintr_in_every_read_and_socket_call(
    void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("select_server", "0"),
                                      .client = ARGV("select_client", PORT),
                                      .client_count = TUTORIAL_CLIENTS,
                                      .client_input = file_with("input", "one\n", strlen("one\n")),
                                      .server_stdout = clients_one_after_another(TUTORIAL_CLIENTS),
                                      .client_stdout = "Hello!\n",
                                      .client_done = "socket disconnected\n"};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
    expect_same_conversation(&talk, EINTR_IN_STDIN_READS);
}

/* ====================================================================================== */
/* ---- a proxy between client and server cuts the stream into other pieces ---- */

/* One byte at a time is ONE_BYTE_PER_PAUSE: the tutorial's messages are a few bytes, which
 * sent back to back are all there before the reader looks. Paced, each recv gets one byte. */

static void tcp_pair_through_a_proxy(enum proxy_mode mode) {
    struct process *server = start_program(ARGV("tcp_server", "0"), NULL);
    const char *server_port = ready_port(server);
    struct child proxy;
    int port = start_proxy(atoi(server_port), mode, 1, &proxy);
    struct process *client = start_program(ARGV("tcp_client", formatted("%d", port)), NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, TCP_SERVER_LINES);
    assert_stderr(server, ready_line("tcp_server", server_port));
    assert_proxy_finished(&proxy);
}

/* Five tcp_clients at once through the proxy: each prints the same. The server notes each
 * piece it receives ("socket sent data"): one or more per client, however the proxy cut it. */
static void select_server_through_a_proxy(enum proxy_mode mode) {
    struct process *everyone[1 + TUTORIAL_CLIENTS];
    everyone[0] = start_program(ARGV("select_server", "0"), NULL);
    const char *server_port = ready_port(everyone[0]);
    struct child proxy;
    const char *port =
        formatted("%d", start_proxy(atoi(server_port), mode, TUTORIAL_CLIENTS, &proxy));
    for (int i = 1; i <= TUTORIAL_CLIENTS; i++)
        everyone[i] = start_program(ARGV("tcp_client", port),
                                    &(struct run_options){.label = formatted("tcp_client %d", i)});
    assert_clients_printed(everyone, 1 + TUTORIAL_CLIENTS, EVENT_CLIENT_LINES);
    struct process *server = everyone[0];
    assert_exit(server, 0);
    assert_stdout_starts_with(server, "listening\n");
    int pieces = count_lines(&server->out, "socket sent data");
    int others = count_lines(&server->out, "Select timed out.");
    assert_int_equal(count_lines(&server->out, "accepting new socket"), TUTORIAL_CLIENTS);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), TUTORIAL_CLIENTS);
    assert_in_range(pieces, TUTORIAL_CLIENTS, TUTORIAL_CLIENTS * strlen("Thanks! Bye."));
    assert_int_equal(count_lines(&server->out, NULL), 1 + 2 * TUTORIAL_CLIENTS + pieces + others);
    assert_stderr(server, ready_line("select_server", server_port));
    assert_proxy_finished(&proxy);
}

static void tcp_pair_talks_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    tcp_pair_through_a_proxy(ONE_BYTE_PER_PAUSE);
}

static void tcp_pair_talks_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    tcp_pair_through_a_proxy(COALESCING);
}

static void
select_server_serves_five_tcp_clients_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    select_server_through_a_proxy(ONE_BYTE_PER_PAUSE);
}

static void
select_server_serves_five_tcp_clients_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    select_server_through_a_proxy(COALESCING);
}

/* ====================================================================================== */
/* ---- FD_SETSIZE: select() watches descriptors below it only ---- */

static void
select_server_turns_away_clients_beyond_fd_setsize_and_still_exits_after_five(void **state) {
    (void)state;
    enum { CONNECTIONS = FD_SETSIZE + EXTRA_CLIENTS, CLOSED_BY_US = TUTORIAL_CLIENTS - 1 };
    need_open_files(FILES_LIMIT);
    struct process *server = start_program(ARGV("select_server", "0"), NULL);
    const char *port = ready_port(server);

    /* One connection at a time, each waiting for its answer, so that the listen queue never
     * overflows. Once the server's descriptors reach FD_SETSIZE it turns every new one away:
     * it closes it without a greeting. */
    static int greeted[CONNECTIONS];
    int served = 0, turned_away = 0;
    for (int i = 0; i < CONNECTIONS; i++) {
        int sock;
        if (connect_and_get_greeted(server, port, i + 1, &sock)) {
            if (turned_away > 0)
                fail_showing_server(server, formatted("connection %d was greeted after %d were "
                                                      "turned away",
                                                      i + 1, turned_away));
            greeted[served++] = sock;
        } else {
            turned_away++;
            close_tracked(sock);
        }
    }
    if (served > FD_SETSIZE - SELECT_SERVER_OWN_FDS || served < CLOSED_BY_US)
        fail_showing_server(server, formatted("of %d connections, %d were greeted and %d turned "
                                              "away; expected %d to %d greeted (FD_SETSIZE, less "
                                              "the server's own descriptors)",
                                              CONNECTIONS, served, turned_away, CLOSED_BY_US,
                                              FD_SETSIZE - SELECT_SERVER_OWN_FDS));

    /* Four of the greeted go: their descriptors are free again, below FD_SETSIZE, and the
     * next client is served. With it, five are done: the server exits by itself. */
    for (int i = 0; i < CLOSED_BY_US; i++)
        close_tracked(greeted[i]);
    assert_true(wait_for_output(server, repeated("socket disconnected\n", CLOSED_BY_US),
                                slow(FINISH_TIMEOUT_MS)));
    struct process *client = start_program(ARGV("tcp_client", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client, EVENT_CLIENT_LINES);

    assert_exit(server, 0);
    assert_stdout(server,
                  formatted("listening\n%s%s%s", repeated("accepting new socket\n", CONNECTIONS),
                            repeated("socket disconnected\n", CLOSED_BY_US), ONE_EVENT_CLIENT));
    assert_stderr(server, formatted("%s%s", ready_line("select_server", port),
                                    repeated(TOO_MANY, turned_away)));
}

static void select_client_whose_socket_would_be_fd_setsize_fails_before_connecting(void **state) {
    (void)state;
    NEED_TOOL("bash", "bash");
    need_open_files(FILES_LIMIT);
    struct process *server = start_program(ARGV("select_server", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_with_descriptors_filled(ARGV("select_client", port));

    assert_exit(client, 1);
    assert_stdout(client, "");
    assert_stderr(client, TOO_LARGE("select_client"));
    /* No connection reached the server: the next five clients are its five. */
    serve_tcp_clients_in_turn(server, port, TUTORIAL_CLIENTS, "listening\n");
    assert_exit(server, 0);
    assert_stdout(server, clients_one_after_another(TUTORIAL_CLIENTS));
    assert_stderr(server, ready_line("select_server", port));
}

static void select_server_whose_listener_would_be_fd_setsize_fails_at_once(void **state) {
    (void)state;
    NEED_TOOL("bash", "bash");
    need_open_files(FILES_LIMIT);
    struct process *server = start_with_descriptors_filled(ARGV("select_server", "0"));

    assert_exit(server, 1);
    assert_stdout(server, "");
    assert_stderr(server, TOO_LARGE("select_server"));
}

/* ====================================================================================== */
/* ---- a client that resets ---- */

/* A raw client reads the greeting to its end (so the server has greeted it and shut down its
 * side: the reset cannot overtake those), then closes with a reset, having sent nothing. The
 * server's receive fails: it says so, counts the client as done and greets the next four. */
static void select_server_reports_a_client_that_resets_and_greets_the_others(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("select_server", "0"), NULL);
    const char *port = ready_port(server);
    int rude = connect_to_loopback(atoi(port));
    char greeting[GREETING_SIZE + 1];
    assert_int_equal(receive_within(rude, greeting, sizeof greeting, now_ms() + FINISH_TIMEOUT_MS),
                     GREETING_SIZE);
    assert_memory_equal(greeting, "Hello!\n", GREETING_SIZE);
    reset_connection(rude);
    const char *after_reset = "listening\naccepting new socket\nsocket disconnected\n";
    assert_true(wait_for_output(server, after_reset, slow(FINISH_TIMEOUT_MS)));

    serve_tcp_clients_in_turn(server, port, TUTORIAL_CLIENTS - 1, after_reset);
    assert_exit(server, 0);
    assert_stdout(server,
                  formatted("%s%s", after_reset, repeated(ONE_EVENT_CLIENT, TUTORIAL_CLIENTS - 1)));
    assert_stderr(server, formatted("%sselect_server: recv: Connection reset by peer\n",
                                    ready_line("select_server", port)));
}

int main(void) {
    /* The programs must start with SIGPIPE's default action (death), as from a learner's
     * shell: an "ignore" inherited from whoever started us would hide a missing
     * ignore_sigpipe(). Our own sends use MSG_NOSIGNAL, or go to sockets that stay open. */
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        TEST(udp_pair_prints_the_tutorial_lines),
        TEST(tcp_pair_prints_the_tutorial_lines),
        TEST(select_server_serves_five_tcp_clients_at_once_and_exits),
        TEST(five_select_clients_at_once_get_the_greeting_of_select_server),
        TEST(select_client_prints_the_greeting_while_its_input_is_still_open),
        TEST(select_client_prints_each_echo_of_the_hardened_echo_server_as_it_comes),
        TEST(each_line_shows_at_once_while_the_program_still_waits),
        TEST(select_server_says_when_5_seconds_pass_without_an_event),
        TEST(every_program_prints_its_usage_on_stdout_for_h_and_help),
        TEST(every_program_refuses_a_port_that_is_not_a_number),
        TEST(every_program_refuses_a_port_out_of_range),
        TEST(every_program_refuses_two_arguments_and_any_option),
        TEST(udp_sender_without_a_receiver_gives_up_after_5_seconds),
        TEST(tcp_client_without_a_server_says_connection_refused),
        TEST(select_client_without_a_server_says_connection_refused),
        TEST(udp_pair_prints_the_same_with_eintr_in_every_socket_call),
        TEST(tcp_pair_prints_the_same_with_eintr_in_every_socket_call),
        TEST(select_server_and_five_tcp_clients_print_the_same_with_eintr_in_every_socket_call),
        TEST(
            select_client_and_select_server_print_the_same_with_eintr_in_every_read_and_socket_call),
        TEST(tcp_pair_talks_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(tcp_pair_talks_through_a_proxy_that_coalesces_bytes),
        TEST(select_server_serves_five_tcp_clients_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(select_server_serves_five_tcp_clients_through_a_proxy_that_coalesces_bytes),
        TEST(select_server_turns_away_clients_beyond_fd_setsize_and_still_exits_after_five),
        TEST(select_client_whose_socket_would_be_fd_setsize_fails_before_connecting),
        TEST(select_server_whose_listener_would_be_fd_setsize_fails_at_once),
        TEST(select_server_reports_a_client_that_resets_and_greets_the_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
