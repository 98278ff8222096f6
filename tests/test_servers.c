#define _POSIX_C_SOURCE 200809L
/* test_servers.c: the three event servers, select_server, poll_server and epoll_server, keep
 * one contract: by default the tutorial's protocol (a greeting, then the end of their side;
 * what a client sends is noted and dropped), with -e an echo server; the same output lines,
 * options and greeting; a client that never reads stalls nobody. Each talks to tcp_client and
 * to select_client in both modes, and echo_load, the load generator of `make bench`, runs
 * clean against all three. Each test below runs once per server (some only for poll_server and
 * epoll_server, when test_programs.c has select_server's); epoll_server's are skipped off
 * Linux. Servers start on -p 0 and tell us their port in the ready line: no fixed port, no
 * sleep. Run from the repository root: build/test_servers (BIN_DIR=dir picks other binaries;
 * echo_load is taken from the directory of this test). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    CLIENT_COUNT = 5,               /* the servers' default -n */
    LOAD_CLIENTS = 3,               /* echo_load's smoke run: a few clients, one second */
    TIMEOUT_WAIT_MS = 5 * 1000,     /* for "-t 1" to show its effect */
    CONVERSATION_MS = 5 * 1000,     /* a small conversation, even next to a hostile client */
    HOG_DEADLINE_MS = 30 * 1000,    /* to get the hog stuck, or to read its echo back */
    QUIET_MS = 1000,                /* the kernel took nothing for this long: the hog is stuck */
    VALGRIND_QUIET_MS = 3000,       /* the same with a server under valgrind (slower to read) */
    HOG_LIMIT = 64 << 20,           /* the most the hog pushes: far more than the kernel holds */
    PEAK_MEMORY_LIMIT_KB = 8 << 10, /* a server's peak resident memory (VmHWM) meanwhile */
    CHUNK_SIZE = 1 << 16,
    PATTERN_PERIOD = 251, /* the hog's bytes repeat every 251 (prime: no chunk aligns) */
};

#define GREETING "Hello!\n"

static char echo_load[4096]; /* the load generator's path: next to this test's binary */

/* ---- plumbing ---- */

static int hog = -1; /* the test's own raw client, tracked (checks.h): closed by tear_down */

static int tear_down(void **state) {
    (void)state;
    clean_up();
    clean_up_peers();
    hog = -1;
    return 0;
}

/* ---- select_server's contract, kept by each server ---- */

static void greets_and_echoes_five_clients_in_turn(void **state) {
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
        assert_stdout(everyone[i], formatted("Client connected!\nreply sent!\nReceived from "
                                             "server: Hello!\nmessage from client %d\n",
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
    struct stat status;
    assert_int_equal(lstat(path, &status), -1);
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
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct process *program = start_program(bad[i], NULL);
        assert_exit(program, 2);
        assert_stderr(program, formatted("%s: %s\n", name, messages[i]));
        assert_stdout(program, "");
    }
}

/* ---- the tutorial's protocol, by default ---- */

static void serves_five_plain_tcp_clients_at_once_as_in_the_tutorial(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *everyone[1 + CLIENT_COUNT] = {server};
    for (int i = 1; i <= CLIENT_COUNT; i++)
        everyone[i] = start_program(ARGV("tcp_client", "-p", port), NULL);
    finish_all(everyone, 1 + CLIENT_COUNT, slow(FINISH_TIMEOUT_MS));

    for (int i = 1; i <= CLIENT_COUNT; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(everyone[i], EVENT_CLIENT_LINES);
        assert_stderr(everyone[i], "");
    }
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
    assert_stdout(client, "Client connected!\nreply sent!\nReceived from server: Hello!\n\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* ---- -e: every byte back ---- */

static void echoes_every_byte_value_exactly_with_e(void **state) {
    const char *name = server_of(state);
    enum { ROUNDS = 16 }; /* 4 KiB: each of the 256 byte values, NUL and newline too, 16 times */
    char payload[256 * ROUNDS];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i % 256);
    const char *path = temp_path("every-byte");
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(payload, 1, sizeof payload, file), sizeof payload);
    assert_int_equal(fclose(file), 0);
    struct process *server = start_program(ARGV(name, "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-e", "-m", "-", "-p", port),
                                           &(struct run_options){.input_file = path});

    assert_exit(client, 0);
    const char *before = "Client connected!\nreply sent!\nReceived from server: Hello!\n";
    char expected[128 + sizeof payload];
    size_t length = strlen(before);
    memcpy(expected, before, length);
    memcpy(expected + length, payload, sizeof payload);
    length += sizeof payload;
    expected[length++] = '\n';
    check_output(client, "stdout", &client->out, expected, length, false, __FILE__, __LINE__);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* ---- select_client, in both modes ---- */

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

static void greets_select_client_and_echoes_its_input_with_e(void **state) {
    const char *name = server_of(state);
    struct process *server = start_program(ARGV(name, "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("select_client", "-p", port),
                                           &(struct run_options){.input = "typed line\n"});

    assert_exit(client, 0);
    assert_stdout(client, "Hello!\ntyped line\n");
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "listening\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
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

/* ---- a client that sends and never reads ---- */

/* The hog's bytes: byte n of its stream is pattern[n % PATTERN_PERIOD]. */
static unsigned char pattern[CHUNK_SIZE + PATTERN_PERIOD];

/* Push the hog's bytes without reading anything until the kernel has taken nothing for
 * quiet_ms: true (the server stopped reading from it), or false when `limit` bytes went. */
static bool push_until_stuck(size_t *sent, int quiet_ms, long long deadline) {
    while (*sent < HOG_LIMIT) {
        if (ms_until(deadline) == 0)
            fail_msg("the hog sent %zu bytes and was neither stuck nor done at the deadline",
                     *sent);
        int wait = ms_until(deadline) < quiet_ms ? ms_until(deadline) : quiet_ms;
        struct pollfd writable = {.fd = hog, .events = POLLOUT};
        int ready = poll(&writable, 1, wait);
        if (ready == 0 && wait == quiet_ms)
            return true;
        if (ready <= 0)
            continue; /* EINTR, or the deadline: checked above */
        size_t left = HOG_LIMIT - *sent;
        ssize_t bytes_sent =
            send(hog, pattern + *sent % PATTERN_PERIOD, left < CHUNK_SIZE ? left : CHUNK_SIZE, 0);
        if (bytes_sent == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            fail_msg("the hog's send after %zu bytes: %s", *sent, strerror(errno));
        *sent += bytes_sent > 0 ? (size_t)bytes_sent : 0;
    }
    return false;
}

/* Read the hog's stream to its end: the greeting, then exactly the `sent` bytes it sent. */
static void expect_greeting_and_echo(size_t sent, long long deadline) {
    static unsigned char chunk[CHUNK_SIZE];
    size_t received = 0; /* the greeting's bytes, then the echo's */
    for (;;) {
        if (!wait_for_socket(hog, POLLIN, deadline))
            fail_msg("the hog got %zu of %zu bytes back by the deadline", received,
                     strlen(GREETING) + sent);
        ssize_t length = recv(hog, chunk, sizeof chunk, 0);
        if (length == -1 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (length <= 0)
            break;
        for (size_t i = 0; i < (size_t)length; i++, received++) {
            size_t echoed = received - strlen(GREETING);
            unsigned char expected = received < strlen(GREETING) ? (unsigned char)GREETING[received]
                                                                 : pattern[echoed % PATTERN_PERIOD];
            if (chunk[i] != expected || (received >= strlen(GREETING) && echoed >= sent))
                fail_msg("the hog's stream differs at byte %zu (greeting and echo of %zu bytes)",
                         received, sent);
        }
    }
    if (received != strlen(GREETING) + sent)
        fail_msg("the hog sent %zu bytes and got %zu back, greeting included, then the end", sent,
                 received);
}

static void serves_others_while_a_client_sends_without_reading(void **state) {
    const char *name = server_of(state);
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
    const char *server_lines = temp_path("server.out"); /* one line per chunk echoed */
    struct process *server = start_program(ARGV(name, "-e", "-n", "2", "-p", "0"),
                                           &(struct run_options){.output_file = server_lines});
    const char *port = ready_port(server);
    long long deadline = now_ms() + slow(HOG_DEADLINE_MS);
    hog = open_connection(port, deadline);
    assert_int_not_equal(hog, -1);

    /* Once the hog is stuck, another client is served all the same. */
    size_t sent = 0;
    bool stuck = push_until_stuck(&sent, under_valgrind() ? VALGRIND_QUIET_MS : QUIET_MS, deadline);
    if (!stuck)
        fail_msg("the hog sent all its %zu bytes and never got stuck: %s reads from a client "
                 "that does not read its echo",
                 sent, name);
    struct process *client =
        start_program(ARGV("tcp_client", "-e", "-m", "still served", "-p", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client,
                  "Client connected!\nreply sent!\nReceived from server: Hello!\nstill served\n");
    long peak_kb = peak_memory_kb(server->pid);
    if (!under_valgrind() && peak_kb >= PEAK_MEMORY_LIMIT_KB)
        fail_msg("%s's peak memory is %ld KiB (limit %d KiB) after the hog sent %zu bytes", name,
                 peak_kb, PEAK_MEMORY_LIMIT_KB, sent);

    /* Now the hog reads: the greeting and every byte it sent, then the end. */
    assert_int_equal(shutdown(hog, SHUT_WR), 0);
    expect_greeting_and_echo(sent, now_ms() + slow(HOG_DEADLINE_MS));
    assert_exit(server, 0);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* ---- echo_load against each server ---- */

static void survives_a_second_of_echo_load_without_a_mismatch(void **state) {
    const char *name = server_of(state);
    const char *count = formatted("%d", LOAD_CLIENTS);
    struct process *server = start_program(ARGV(name, "-e", "-n", count, "-p", "0"),
                                           &(struct run_options){.output_file = "/dev/null"});
    const char *port = ready_port(server);
    struct process *load = start_command(ARGV(echo_load, "-c", count, "-d", "1", "-p", port), NULL);

    assert_exit(load, 0);
    assert_stderr(load, "");
    long long requests = 0, mismatched = -1;
    int failed = -1;
    assert_int_equal(
        sscanf(load->out.data,
               "3 busy and 0 idle clients connected in %*f s, 64-byte messages, %*f s: "
               "%lld requests, "
               "%*f req/s, p50 %*f ms, p99 %*f ms, %d failed connections, "
               "%lld mismatched bytes\n",
               &requests, &failed, &mismatched),
        3);
    assert_true(requests > 0);
    assert_int_equal(failed, 0);
    assert_int_equal(mismatched, 0);
    assert_exit(server, 0); /* it counted all three clients in and out */
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* ---- echo_load's own contract ---- */

static void echo_load_counts_bytes_that_differ_and_exits_1(void **state) {
    (void)state;
    /* "Howdy!\n" where echo_load expects "Hello!\n": four bytes differ. */
    struct process *server =
        start_program(ARGV("select_server", "-e", "-m", "Howdy!\n", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *load =
        start_command(ARGV(echo_load, "-c", "1", "-d", "1", "-r", "10", "-p", port), NULL);

    assert_exit(load, 1);
    const char *tail = ", 0 failed connections, 4 mismatched bytes\n";
    const char *got = load->out.data ? load->out.data : "";
    if (strlen(got) < strlen(tail) || strcmp(got + strlen(got) - strlen(tail), tail) != 0)
        fail_msg("echo_load: expected a line ending %s, got %s", shown(tail, strlen(tail)),
                 shown(got, strlen(got)));
    assert_exit(server, 0);
}

static void echo_load_refuses_an_address_that_is_not_loopback(void **state) {
    (void)state;
    struct process *load = start_command(ARGV(echo_load, "-H", "192.0.2.1", "-p", "7"), NULL);
    assert_exit(load, 2);
    assert_stderr(load,
                  "echo_load: 192.0.2.1: not loopback; echo_load talks to 127.0.0.1 or ::1 only\n");
    assert_stdout(load, "");
}

/* One test for each server: "poll_server: talks_over_ipv6". */
#define FOR_SERVER(server, test) \
    { server ": " #test, test, NULL, tear_down, (void *)server }
#define FOR_EACH_SERVER(test) FOR_SERVER("poll_server", test), FOR_SERVER("epoll_server", test)
#define FOR_ALL_SERVERS(test) FOR_SERVER("select_server", test), FOR_EACH_SERVER(test)
#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

int main(int argc, char **argv) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    snprintf(echo_load, sizeof echo_load, "%.*s/echo_load", slash ? (int)(slash - argv[0]) : 1,
             slash ? argv[0] : ".");
    const struct CMUnitTest tests[] = {
        FOR_EACH_SERVER(greets_and_echoes_five_clients_in_turn),
        FOR_EACH_SERVER(echoes_five_concurrent_clients_each_its_own_message),
        FOR_EACH_SERVER(talks_over_ipv6),
        FOR_EACH_SERVER(talks_over_a_unix_socket_and_removes_the_socket_file),
        FOR_EACH_SERVER(says_select_timed_out_when_no_client_comes),
        FOR_EACH_SERVER(takes_the_same_options_as_select_server),
        FOR_EACH_SERVER(serves_others_while_a_client_sends_without_reading),
        FOR_ALL_SERVERS(serves_five_plain_tcp_clients_at_once_as_in_the_tutorial),
        FOR_ALL_SERVERS(gives_tcp_client_in_echo_mode_only_the_greeting_without_e),
        FOR_ALL_SERVERS(echoes_every_byte_value_exactly_with_e),
        FOR_ALL_SERVERS(greets_select_client_and_drops_its_input_without_e),
        FOR_ALL_SERVERS(greets_select_client_and_echoes_its_input_with_e),
        FOR_ALL_SERVERS(goes_on_reading_select_client_after_ending_its_own_side),
        FOR_SERVER("select_server", survives_a_second_of_echo_load_without_a_mismatch),
        FOR_EACH_SERVER(survives_a_second_of_echo_load_without_a_mismatch),
        TEST(echo_load_counts_bytes_that_differ_and_exits_1),
        TEST(echo_load_refuses_an_address_that_is_not_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
