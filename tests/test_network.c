#define _POSIX_C_SOURCE 200809L
/* test_faults.c: the programs on a hostile network. strace interrupts every blocking call
 * (EINTR), a proxy cuts the stream into one-byte or coalesced pieces, a fake peer resets or
 * closes in the middle of a transfer, and SIGINT or SIGTERM arrives while a server waits.
 * Each test checks exact output and exit status against the program contract; fake peers
 * live in this process or in a forked child, on loopback ports the kernel picks, and every
 * wait has a deadline. Run from the repository root: build/test_faults (BIN_DIR=dir picks
 * other binaries). The strace tests are skipped without strace (failed under REQUIRE_TOOLS=1).
 * Also the recipes that docs/ offers for such a network: framing, a connect with a time limit,
 * addresses by hand, keepalive, dual stack. Each is saved from its page as a reader would
 * (tests/extract_recipes.sh, into build/recipes) and included here as it stands. */

/* Before cmocka.h, whose fail() macro would rename the fail() of socket_helpers.h. */
#include "address_by_hand.c"
#include "connect_within.c"
#include "dual_stack.c"
#include "framing.c"
#include "keepalive.c"

#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    ECHO_CLIENTS = 3,              /* select_server's clients in a test */
    TALK_SIZE = 3000,              /* -m text through a proxy: more than one recv buffer */
    BIG_PAYLOAD_SIZE = 64 << 20,   /* 64 MiB */
    BYTE_PAYLOAD_SIZE = 256 << 10, /* one byte per send is slow: 256 KiB is enough there */
    BIG_TIMEOUT_MS = 60 * 1000,
    A_LITTLE = 64 << 10, /* what a fake peer reads before it goes */
};

static const char *const SERVERS[] = {"udp_receiver", "tcp_server", "select_server"};
static const int STOP_SIGNALS[] = {SIGINT, SIGTERM};

static bool file_exists(const char *path) {
    struct stat status;
    return lstat(path, &status) == 0;
}

/* ---- assertions, as in test_programs.c: each failure says what was expected and what came */

static void check_gone(const char *path, const char *file, int line) {
    if (!file_exists(path))
        return;
    print_error("%s: expected no such file, but it is still there\n", path);
    _fail(file, line);
}

/* Fail unless stderr is exactly one of two texts (when either errno may come). */
static void check_stderr_either(const struct process *process, const char *one, const char *other,
                                const char *file, int line) {
    const char *got = process->err.data ? process->err.data : "";
    if (strcmp(got, one) == 0 || strcmp(got, other) == 0)
        return;
    print_error("%s stderr:\n    expected %s\n    or       %s\n    got      %s\n", process->label,
                shown(one, strlen(one)), shown(other, strlen(other)),
                shown(got, process->err.length));
    _fail(file, line);
}

#define assert_stderr_either(process, one, other) \
    check_stderr_either(process, one, other, __FILE__, __LINE__)
/* Fail unless nothing is at path (a socket file that should have been removed). */
#define assert_gone(path) check_gone(path, __FILE__, __LINE__)

/* ---- the test's own sockets, as fake peers (tracked: closed by tear_down) ---- */

static int accept_within(int listener, int timeout_ms) {
    assert_true(wait_for_socket(listener, POLLIN, now_ms() + timeout_ms));
    return tracked(accept(listener, NULL, NULL));
}

/* Read A_LITTLE bytes and drop them, as a peer that is about to go; the count read. */
static ssize_t read_a_little(int sock) {
    static char sink[A_LITTLE];
    return receive_within(sock, sink, sizeof sink, now_ms() + FINISH_TIMEOUT_MS);
}

static void send_text(int sock, const char *text) {
    assert_int_equal(send(sock, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

static int tear_down(void **state) {
    (void)state;
    clean_up_peers();
    clean_up();
    return 0;
}

/* ---- payloads ---- */

/* FNV-1a, a 64-bit word at a time (length a multiple of 8): a fingerprint to compare 64 MiB
 * by, quick even under valgrind. Feed it piece by piece, starting from FNV_START. */
#define FNV_START 0xcbf29ce484222325u
static uint64_t fingerprint(uint64_t hash, const unsigned char *data, size_t length) {
    for (size_t i = 0; i + sizeof(uint64_t) <= length; i += sizeof(uint64_t)) {
        uint64_t word;
        memcpy(&word, data + i, sizeof word);
        hash = (hash ^ word) * 0x100000001b3u;
    }
    return hash;
}

/* Write size pseudo-random bytes (every byte value) to path; return their fingerprint. */
static uint64_t write_random_file(const char *path, size_t size) {
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    uint64_t state = 0x9E3779B97F4A7C15u, hash = FNV_START; /* xorshift64 */
    static unsigned char chunk[1 << 16];
    for (size_t written = 0; written < size; written += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i += sizeof state) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            memcpy(chunk + i, &state, sizeof state);
        }
        size_t length = size - written < sizeof chunk ? size - written : sizeof chunk;
        assert_int_equal(fwrite(chunk, 1, length, file), length);
        hash = fingerprint(hash, chunk, length);
    }
    assert_int_equal(fclose(file), 0);
    return hash;
}

/* A file of size zero bytes, written by nobody (sparse): for payloads whose bytes no one checks. */
static const char *zero_file(const char *name, off_t size) {
    const char *path = temp_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_not_equal(fd, -1);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
    return path;
}

/* Fail unless the file holds exactly: before, `size` bytes with this fingerprint, after. */
static void check_received(const char *path, const char *before, size_t size, uint64_t expected,
                           const char *after, const char *file, int line) {
    struct stat status;
    assert_int_equal(stat(path, &status), 0);
    size_t want = strlen(before) + size + strlen(after), got = (size_t)status.st_size;
    unsigned char *data = malloc(got + 1);
    FILE *stream = fopen(path, "rb");
    assert_non_null(data);
    assert_non_null(stream);
    bool read_all = fread(data, 1, got, stream) == got;
    fclose(stream);
    uint64_t hash = got == want ? fingerprint(FNV_START, data + strlen(before), size) : 0;
    bool same = read_all && got == want && memcmp(data, before, strlen(before)) == 0 &&
                hash == expected && memcmp(data + got - strlen(after), after, strlen(after)) == 0;
    free(data);
    if (same)
        return;
    print_error("%s: expected %s + %zu bytes of fingerprint %016llx + %s (%zu bytes),\n"
                "    got %zu bytes%s\n",
                path, shown(before, strlen(before)), size, (unsigned long long)expected,
                shown(after, strlen(after)), want, got,
                got == want
                    ? formatted(", the middle of fingerprint %016llx", (unsigned long long)hash)
                    : "");
    _fail(file, line);
}
#define assert_file_holds(path, before, size, fingerprint, after) \
    check_received(path, before, size, fingerprint, after, __FILE__, __LINE__)

/* Lines "<what>, line 0001\n"... cut at size bytes: a -m text longer than any one buffer. */
static const char *long_text(const char *what, size_t size) {
    char *text = malloc(size + 64);
    assert_non_null(text);
    size_t used = 0;
    for (int i = 1; used < size; i++)
        used += (size_t)sprintf(text + used, "%s, line %04d\n", what, i);
    text[size] = '\0';
    const char *kept = formatted("%s", text);
    free(text);
    return kept;
}

/* ====================================================================================== */
/* ---- EINTR: strace makes every blocking socket call fail once, then every other time ---- */

static void udp_pair_survives_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("udp_receiver", "-p", "0"),
                                      .client = ARGV("udp_sender", "-p", PORT),
                                      .client_count = 1};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void tcp_pair_survives_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("tcp_server", "-p", "0"),
                                      .client = ARGV("tcp_client", "-p", PORT),
                                      .client_count = 1};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void select_server_and_echo_clients_survive_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {.server = ARGV("select_server", "-e", "-n", "3", "-p", "0"),
                                      .client = ARGV("tcp_client", "-e", "-p", PORT),
                                      .client_count = ECHO_CLIENTS};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void
select_client_and_echo_server_survive_eintr_in_every_read_and_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {
        .server = ARGV("select_server", "-e", "-n", "3", "-p", "0"),
        .client = ARGV("select_client", "-p", PORT),
        .client_count = ECHO_CLIENTS,
        .client_input = file_with("input", "typed line\n", strlen("typed line\n"))};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
    expect_same_conversation(&talk, EINTR_IN_STDIN_READS);
}

static void tcp_pair_reading_stdin_survives_eintr_in_every_read_and_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {
        .server = ARGV("tcp_server", "-m", "-", "-p", "0"),
        .client = ARGV("tcp_client", "-m", "-", "-p", PORT),
        .client_count = 1,
        .server_input =
            file_with("greeting", long_text("greeting from stdin", TALK_SIZE), TALK_SIZE),
        .client_input = file_with("reply", long_text("reply from stdin", TALK_SIZE), TALK_SIZE)};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
    expect_same_conversation(&talk, EINTR_IN_STDIN_READS);
}

/* ====================================================================================== */
/* ---- chunking: a proxy between client and server cuts the stream into other pieces ---- */

static void tcp_pair_talks_through_a_proxy(enum proxy_mode mode) {
    const char *greeting = long_text("greeting", TALK_SIZE);
    const char *reply = long_text("reply", TALK_SIZE);
    struct process *server = start_program(ARGV("tcp_server", "-m", greeting, "-p", "0"), NULL);
    struct helper *proxy;
    int port = start_proxy(atoi(ready_port(server)), mode, 1, &proxy);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", reply, "-p", formatted("%d", port)), NULL);

    assert_exit(client, 0);
    assert_stdout(
        client, formatted("Client connected!\nReceived from server: %s\nreply sent!\n", greeting));
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, formatted("Got from client: %s\n", reply));
    assert_proxy_finished(proxy);
}

static void select_server_echoes_through_a_proxy(enum proxy_mode mode) {
    struct process *server = start_program(
        ARGV("select_server", "-e", "-n", formatted("%d", ECHO_CLIENTS), "-p", "0"), NULL);
    struct helper *proxy;
    const char *port =
        formatted("%d", start_proxy(atoi(ready_port(server)), mode, ECHO_CLIENTS, &proxy));
    struct process *everyone[1 + ECHO_CLIENTS] = {server};
    const char *messages[1 + ECHO_CLIENTS];
    for (int i = 1; i <= ECHO_CLIENTS; i++) {
        messages[i] = long_text(formatted("client %d", i), TALK_SIZE);
        everyone[i] = start_program(ARGV("tcp_client", "-e", "-m", messages[i], "-p", port), NULL);
    }
    finish_all(everyone, COUNT(everyone), FINISH_TIMEOUT_MS);

    for (int i = 1; i <= ECHO_CLIENTS; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(
            everyone[i],
            formatted("Client connected!\nreply sent!\nReceived from server: Hello!\n%s\n",
                      messages[i]));
        assert_stderr(everyone[i], "");
    }
    assert_exit(server, 0);
    assert_stdout_starts_with(server, "listening\n");
    assert_int_equal(count_lines(&server->out, "accepting new socket"), ECHO_CLIENTS);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), ECHO_CLIENTS);
    assert_true(count_lines(&server->out, "socket sent data") >= ECHO_CLIENTS);
    assert_proxy_finished(proxy);
}

/* tcp_client -m - sends size random bytes through the proxy; tcp_server must print them all. */
static void big_payload_goes_through_a_proxy(enum proxy_mode mode, size_t size) {
    const char *payload = temp_path("payload");
    const char *received = temp_path("received");
    uint64_t sent = write_random_file(payload, size);
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"),
                                           &(struct run_options){.output_file = received});
    struct helper *proxy;
    int port = start_proxy(atoi(ready_port(server)), mode, 1, &proxy);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", "-", "-p", formatted("%d", port)),
                      &(struct run_options){.input_file = payload});

    assert_exit_within(client, 0, BIG_TIMEOUT_MS);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit_within(server, 0, BIG_TIMEOUT_MS); /* the proxy may still hold bytes for it */
    assert_file_holds(received, "Got from client: ", size, sent, "\n");
    assert_proxy_finished(proxy);
}

static void tcp_pair_talks_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    tcp_pair_talks_through_a_proxy(ONE_BYTE_PER_SEND);
}

static void tcp_pair_talks_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    tcp_pair_talks_through_a_proxy(COALESCING);
}

static void
select_server_echoes_clients_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    select_server_echoes_through_a_proxy(ONE_BYTE_PER_SEND);
}

static void select_server_echoes_clients_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    select_server_echoes_through_a_proxy(COALESCING);
}

static void tcp_client_sends_256_kib_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    big_payload_goes_through_a_proxy(ONE_BYTE_PER_SEND, BYTE_PAYLOAD_SIZE);
}

static void tcp_client_sends_64_mib_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    big_payload_goes_through_a_proxy(COALESCING, BIG_PAYLOAD_SIZE);
}

/* ====================================================================================== */
/* ---- the peer dies in the middle of a transfer ---- */

#define SEND_BROKEN_PIPE(prog) prog ": send: Broken pipe\n"
#define SEND_RESET(prog) prog ": send: Connection reset by peer\n"

/* tcp_client -m - sends 64 MiB to a fake tutorial server (greets, shuts down its side), which
 * reads a little and then goes: with a reset, or with a plain close of a socket that still
 * holds unread bytes (which the kernel answers with a reset too). tcp_client must report the
 * failed send and exit 1: not die of SIGPIPE, not hang. */
static void tcp_client_sending_to_a_server_that_goes(bool reset) {
    const char *payload = zero_file("payload", BIG_PAYLOAD_SIZE);
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", "-", "-p", formatted("%d", port)),
                      &(struct run_options){.input_file = payload});
    int server = accept_within(listener, READY_TIMEOUT_MS);
    close_tracked(listener);
    send_text(server, "Hello!");
    assert_int_equal(shutdown(server, SHUT_WR), 0);
    assert_int_equal(read_a_little(server), A_LITTLE);
    if (reset)
        reset_connection(server);
    else
        close_tracked(server);

    assert_exit(client, 1);
    assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
    assert_stderr_either(client, SEND_BROKEN_PIPE("tcp_client"), SEND_RESET("tcp_client"));
}

static void tcp_client_reports_a_server_that_resets_while_it_sends_64_mib(void **state) {
    (void)state;
    tcp_client_sending_to_a_server_that_goes(true);
}

static void tcp_client_reports_a_server_that_closes_while_it_sends_64_mib(void **state) {
    (void)state;
    tcp_client_sending_to_a_server_that_goes(false);
}

/* tcp_server -m - sends a 64 MiB greeting to a fake client that reads a little, then resets;
 * with hung_up, the client has first shut down its own side (so the reset finds the server's
 * socket half closed: the errno is then EPIPE on Linux, which raises SIGPIPE if not ignored). */
static void tcp_server_sending_to_a_client_that_resets(bool hung_up) {
    const char *payload = zero_file("payload", BIG_PAYLOAD_SIZE);
    struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                           &(struct run_options){.input_file = payload});
    const char *port = ready_port(server);
    int client = connect_to_loopback(atoi(port));
    if (hung_up)
        assert_int_equal(shutdown(client, SHUT_WR), 0);
    assert_int_equal(read_a_little(client), A_LITTLE);
    reset_connection(client);

    assert_exit(server, 1);
    assert_stdout(server, "");
    const char *ready = formatted("tcp_server: ready on 127.0.0.1 port %s\n", port);
    assert_stderr_either(server, formatted("%s%s", ready, SEND_BROKEN_PIPE("tcp_server")),
                         formatted("%s%s", ready, SEND_RESET("tcp_server")));
}

static void tcp_server_reports_a_client_that_resets_while_it_sends_a_64_mib_greeting(void **state) {
    (void)state;
    tcp_server_sending_to_a_client_that_resets(false);
}

static void
tcp_server_reports_a_client_that_hangs_up_and_resets_during_a_64_mib_greeting(void **state) {
    (void)state;
    tcp_server_sending_to_a_client_that_resets(true);
}

static void tcp_client_reports_a_server_that_resets_in_the_middle_of_its_greeting(void **state) {
    (void)state;
    enum { PART = 1000 }; /* of a greeting that never ends */
    char part[PART + 1];
    memset(part, 'x', PART);
    part[PART] = '\0';
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client = start_program(ARGV("tcp_client", "-p", formatted("%d", port)), NULL);
    int server = accept_within(listener, READY_TIMEOUT_MS);
    close_tracked(listener);
    /* A reset that comes before connect has returned fails connect instead of recv. */
    assert_true(wait_for_output(client, "Client connected!\n", FINISH_TIMEOUT_MS));
    send_text(server, part);
    reset_connection(server);

    assert_exit(client, 1);
    assert_stderr(client, "tcp_client: recv: Connection reset by peer\n");
    /* The bytes that came before the reset, if any (the reset may overtake them), then at
     * most the end of the line. */
    const char *start = "Client connected!\nReceived from server: ";
    assert_stdout_starts_with(client, start);
    size_t rest = client->out.length - strlen(start);
    const char *received = client->out.data + strlen(start);
    size_t xs = strspn(received, "x");
    if (!(xs <= PART && (rest == xs || (rest == xs + 1 && received[xs] == '\n')))) {
        print_error("tcp_client stdout: expected %s, up to %d 'x' and maybe \"\\n\"; got %s\n",
                    shown(start, strlen(start)), PART, shown(client->out.data, client->out.length));
        fail();
    }
}

static void tcp_client_takes_a_plain_close_as_the_end_of_the_greeting(void **state) {
    (void)state;
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client = start_program(ARGV("tcp_client", "-p", formatted("%d", port)), NULL);
    int server = accept_within(listener, READY_TIMEOUT_MS);
    close_tracked(listener);
    send_text(server, "Hello!");
    close_tracked(server); /* no shutdown first, and never reads the reply */

    /* The reply then goes to a closed socket: the send may still succeed (the peer's kernel
     * answers it with a reset later), or fail. Either is fine; a signal or a hang is not. */
    int status = finish(client, FINISH_TIMEOUT_MS);
    assert_true(status == 0 || status == 1);
    if (status == 0) {
        assert_stdout(client, TCP_CLIENT_LINES);
        assert_stderr(client, "");
    } else {
        assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
        assert_stderr_either(client, SEND_BROKEN_PIPE("tcp_client"), SEND_RESET("tcp_client"));
    }
}

static void select_server_reports_a_client_that_resets_and_keeps_serving_others(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(server);
    int rude = connect_to_loopback(atoi(port));
    char greeting[sizeof "Hello!\n"] = "";
    assert_int_equal(
        receive_within(rude, greeting, strlen("Hello!\n"), now_ms() + FINISH_TIMEOUT_MS),
        strlen("Hello!\n"));
    assert_string_equal(greeting, "Hello!\n");
    reset_connection(rude);
    assert_true(wait_for_output(server, "socket disconnected\n", FINISH_TIMEOUT_MS));
    struct process *client = start_program(ARGV("tcp_client", "-e", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, ECHO_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server,
                  "listening\naccepting new socket\nsocket disconnected\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("select_server: ready on 127.0.0.1 port %s\n"
                                    "select_server: recv: Connection reset by peer\n",
                                    port));
}

/* ====================================================================================== */
/* ---- SIGINT and SIGTERM ---- */

static const char *signal_name(int signal_number) {
    return signal_number == SIGINT ? "SIGINT" : "SIGTERM";
}

/* What a server has printed on stdout by the time it waits for its first client. */
static const char *stdout_when_waiting(const char *server) {
    if (strcmp(server, "udp_receiver") == 0)
        return "Waiting for data...\n";
    return strcmp(server, "select_server") == 0 ? "listening\n" : "";
}

/* Wait until the server has printed what it prints before it waits (the ready line is on
 * stderr, and for udp_receiver "Waiting for data..." comes after it). */
static void wait_until_waiting(struct process *server) {
    const char *waiting = stdout_when_waiting(server->name);
    assert_true(*waiting == '\0' || wait_for_output(server, waiting, READY_TIMEOUT_MS));
}

static void
every_unix_server_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file(void **state) {
    (void)state;
    const char *path = temp_path("server.sock");
    for (size_t i = 0; i < COUNT(SERVERS); i++) {
        for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
            int signal_number = STOP_SIGNALS[j];
            struct process *server = start_program(ARGV(SERVERS[i], "-u", path), NULL);
            assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
            wait_until_waiting(server);
            assert_true(file_exists(path));
            assert_int_equal(kill(server->pid, signal_number), 0);

            assert_exit(server, 128 + signal_number);
            assert_stdout(server, stdout_when_waiting(SERVERS[i]));
            assert_stderr(server, formatted("%s: ready on %s\n%s: stopped by %s\n", SERVERS[i],
                                            path, SERVERS[i], signal_name(signal_number)));
            assert_gone(path);
        }
    }
}

static void
udp_sender_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file(void **state) {
    (void)state;
    /* A receiver that never answers: once the datagram is here, the sender waits for the reply. */
    const char *path = temp_path("receiver.sock");
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, path);
    int receiver = tracked(socket(AF_UNIX, SOCK_DGRAM, 0));
    assert_int_equal(bind(receiver, (struct sockaddr *)&address, sizeof address), 0);
    for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
        int signal_number = STOP_SIGNALS[j];
        struct process *sender = start_program(ARGV("udp_sender", "-t", "0", "-u", path), NULL);
        const char *own_file = formatted("%s.%d", path, (int)sender->pid);
        struct sockaddr_un from = {0};
        socklen_t from_length = sizeof from;
        char datagram[sizeof "Hello!"] = "";
        assert_true(wait_for_socket(receiver, POLLIN, now_ms() + READY_TIMEOUT_MS));
        assert_int_equal(recvfrom(receiver, datagram, sizeof datagram - 1, 0,
                                  (struct sockaddr *)&from, &from_length),
                         strlen("Hello!"));
        assert_string_equal(datagram, "Hello!");
        assert_string_equal(from.sun_path, own_file);
        assert_true(file_exists(own_file));
        assert_int_equal(kill(sender->pid, signal_number), 0);

        assert_exit(sender, 128 + signal_number);
        assert_stdout(sender, "Sending data...\n");
        assert_stderr(sender, formatted("udp_sender: stopped by %s\n", signal_name(signal_number)));
        assert_gone(own_file);
    }
}

/* Bind the port again, as a restarted server would (with SO_REUSEADDR); 0 or an errno. */
static int bind_again(int port, int type) {
    struct sockaddr_in address = loopback(port);
    int sock = socket(AF_INET, type, 0), reuse = 1, error = 0;
    assert_int_not_equal(sock, -1);
    if (setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1 ||
        bind(sock, (struct sockaddr *)&address, sizeof address) == -1 ||
        (type == SOCK_STREAM && listen(sock, 1) == -1))
        error = errno;
    close(sock);
    return error;
}

static void
every_ip_server_stopped_by_sigint_or_sigterm_says_so_and_frees_its_port_at_once(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(SERVERS); i++) {
        for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
            int signal_number = STOP_SIGNALS[j];
            bool udp = strcmp(SERVERS[i], "udp_receiver") == 0;
            struct process *server = start_program(ARGV(SERVERS[i], "-p", "0"), NULL);
            const char *port = ready_port(server);
            wait_until_waiting(server);
            /* A TCP server is stopped in the middle of a conversation: its connection then
             * lingers in the kernel, which SO_REUSEADDR lets a new server bind past. */
            int client = -1;
            char greeting[sizeof "Hello!"] = "";
            if (!udp) {
                client = connect_to_loopback(atoi(port));
                assert_int_equal(receive_within(client, greeting, strlen("Hello!"),
                                                now_ms() + FINISH_TIMEOUT_MS),
                                 strlen("Hello!"));
                assert_string_equal(greeting, "Hello!");
            }
            assert_int_equal(kill(server->pid, signal_number), 0);

            assert_exit(server, 128 + signal_number);
            assert_stderr(server,
                          formatted("%s: ready on 127.0.0.1 port %s\n%s: stopped by %s\n",
                                    SERVERS[i], port, SERVERS[i], signal_name(signal_number)));
            int error = bind_again(atoi(port), udp ? SOCK_DGRAM : SOCK_STREAM);
            if (error != 0) {
                print_error("%s stopped by %s: binding port %s again failed: %s\n", SERVERS[i],
                            signal_name(signal_number), port, strerror(error));
                fail();
            }
            if (client != -1)
                close_tracked(client);
        }
    }
}

#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

/* ---- the recipes of docs/, as they stand on the pages ---- */

/* docs/framing.md: messages of every size and lines, sent through a proxy that forwards one
 * byte per send: each recv of the reader gets a byte or a few, yet every message comes out
 * whole, and the stream's end after the last one reads as "no more". */
static const uint32_t MESSAGE_SIZES[] = {0, 1, 5, 1000, 3000, MAX_MESSAGE};
static const char *const LINES[] = {"first", "", "a third line, longer than the others"};

static void framing_messages_and_lines_come_whole_through_one_byte_pieces(void **state) {
    (void)state;
    static char sent[MAX_MESSAGE], received[MAX_MESSAGE];
    for (size_t i = 0; i < sizeof sent; i++)
        sent[i] = (char)('a' + i % 26);
    for (int framing = 0; framing < 2; framing++) { /* 0: length first; 1: lines */
        int port, proxy_port;
        int listener = listen_on_loopback(&port);
        struct helper *proxy;
        proxy_port = start_proxy(port, ONE_BYTE_PER_SEND, 1, &proxy);
        struct helper *sender = fork_helper();
        if (sender == NULL) { /* the child: send them all, then end the stream */
            signal(SIGPIPE, SIG_IGN);
            struct sockaddr_in address = loopback(proxy_port);
            int sock = socket(AF_INET, SOCK_STREAM, 0);
            bool good =
                sock != -1 && connect(sock, (struct sockaddr *)&address, sizeof address) == 0;
            for (size_t i = 0; framing == 0 && good && i < COUNT(MESSAGE_SIZES); i++)
                good = send_message(sock, sent, MESSAGE_SIZES[i]) == 0;
            for (size_t i = 0; framing == 1 && good && i < COUNT(LINES); i++)
                good = send_line(sock, LINES[i]) == 0;
            _exit(good && shutdown(sock, SHUT_WR) == 0 ? 0 : 1);
        }
        int reader = accept_within(listener, FINISH_TIMEOUT_MS);
        struct timeval limit = {.tv_sec = FINISH_TIMEOUT_MS / 1000}; /* no recv waits longer */
        assert_int_equal(setsockopt(reader, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
        if (framing == 0) {
            for (size_t i = 0; i < COUNT(MESSAGE_SIZES); i++) {
                uint32_t length = UINT32_MAX;
                assert_int_equal(receive_message(reader, received, &length), 1);
                assert_int_equal(length, MESSAGE_SIZES[i]);
                assert_memory_equal(received, sent, length);
            }
            uint32_t length;
            assert_int_equal(receive_message(reader, received, &length), 0); /* the end */
        } else {
            static struct line_reader lines;
            lines = (struct line_reader){.sock = reader};
            char *line;
            for (size_t i = 0; i < COUNT(LINES); i++) {
                assert_int_equal(read_line(&lines, &line), 1);
                assert_string_equal(line, LINES[i]);
            }
            assert_int_equal(read_line(&lines, &line), 0); /* the end */
        }
        assert_int_equal(finish_helper(sender, FINISH_TIMEOUT_MS), 0);
        close_tracked(reader);
        assert_proxy_finished(proxy);
        close_tracked(listener);
    }
}

/* docs/framing.md: a length above the limit is refused, and a stream that ends inside a
 * message is an error, not an end. */
static void framing_refuses_a_huge_length_and_a_message_cut_short(void **state) {
    (void)state;
    static char buffer[MAX_MESSAGE];
    int port;
    int listener = listen_on_loopback(&port);
    int sender = connect_to_loopback(port);
    int reader = accept_within(listener, FINISH_TIMEOUT_MS);
    uint32_t huge = htonl(UINT32_MAX), length;
    assert_int_equal(send(sender, &huge, sizeof huge, MSG_NOSIGNAL), (ssize_t)sizeof huge);
    assert_int_equal(receive_message(reader, buffer, &length), -1);
    assert_int_equal(errno, EMSGSIZE);

    uint32_t ten = htonl(10);
    assert_int_equal(send(sender, &ten, sizeof ten, MSG_NOSIGNAL), (ssize_t)sizeof ten);
    assert_int_equal(send(sender, "only 7!", 7, MSG_NOSIGNAL), 7);
    assert_int_equal(shutdown(sender, SHUT_WR), 0);
    assert_int_equal(receive_message(reader, buffer, &length), -1);
    assert_int_equal(errno, EPROTO);
    close_tracked(reader);
    close_tracked(sender);
    close_tracked(listener);
}

/* docs/connect-timeout.md: connects at once to a listener, fails at once where nobody
 * listens, and gives up at its limit against a listener whose queue is full. */
static void connect_within_connects_is_refused_or_times_out_on_a_full_queue(void **state) {
    (void)state;
    enum { LIMIT_MS = 300, BACKLOG = 1, QUEUED = BACKLOG + 1 /* what Linux lets wait */ };
    int port;
    int listener = tracked(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    assert_int_equal(bind(listener, (struct sockaddr *)&address, length), 0);
    assert_int_equal(listen(listener, BACKLOG), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length), 0);
    port = ntohs(address.sin_port);

    /* Connected: the kernel completes the handshake; nobody needs to accept. */
    int first = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect_within(first, (struct sockaddr *)&address, length, LIMIT_MS), 0);

    /* Refused: a port where nothing listens answers with a reset, at once. */
    struct sockaddr_in nowhere = loopback(unused_port(SOCK_STREAM));
    int refused = tracked(socket(AF_INET, SOCK_STREAM, 0));
    long long start = now_ms();
    assert_int_equal(connect_within(refused, (struct sockaddr *)&nowhere, sizeof nowhere, LIMIT_MS),
                     -1);
    assert_int_equal(errno, ECONNREFUSED);
    assert_true(now_ms() - start < LIMIT_MS);

    /* A full queue: Linux drops the SYN, and only our limit ends the wait. */
    for (int i = 1; i < QUEUED; i++)
        assert_int_equal(connect_within(tracked(socket(AF_INET, SOCK_STREAM, 0)),
                                        (struct sockaddr *)&address, length, LIMIT_MS),
                         0);
    int late = tracked(socket(AF_INET, SOCK_STREAM, 0));
    start = now_ms();
    int result = connect_within(late, (struct sockaddr *)&address, length, LIMIT_MS);
    int late_errno = errno;
    long long waited = now_ms() - start;
#if defined(__linux__)
    assert_int_equal(result, -1);
    assert_int_equal(late_errno, ETIMEDOUT);
    assert_in_range(waited, LIMIT_MS, 10 * LIMIT_MS);
#else
    (void)result, (void)late_errno, (void)waited; /* BSD lets more wait: no full queue yet */
#endif
    (void)port;
    close_tracked(listener);
}

/* docs/byte-order.md: the port goes in most significant byte first, the address made by hand
 * connects, and it prints back as it was written. */
static void address_by_hand_is_in_network_byte_order_and_connects(void **state) {
    (void)state;
    struct sockaddr_in example = ipv4_address("127.0.0.1", 2525);
    const unsigned char *port_bytes = (const unsigned char *)&example.sin_port;
    assert_int_equal(port_bytes[0], 0x09);
    assert_int_equal(port_bytes[1], 0xdd);
    char text[ADDRESS_TEXT];
    describe_ipv4(&example, text);
    assert_string_equal(text, "127.0.0.1 port 2525");

    int port;
    int listener = listen_on_loopback(&port);
    struct sockaddr_in address = ipv4_address("127.0.0.1", (uint16_t)port);
    int client = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect(client, (struct sockaddr *)&address, sizeof address), 0);
    close_tracked(accept_within(listener, FINISH_TIMEOUT_MS));
    close_tracked(client);
    close_tracked(listener);
}

/* docs/dead-peers.md: the three numbers are set on the socket (where the system has them). */
static void keep_alive_sets_idle_interval_and_count(void **state) {
    (void)state;
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(keep_alive(sock, 60, 10, 3), 0);
    int on = 0;
    socklen_t size = sizeof on;
    assert_int_equal(getsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &on, &size), 0);
    assert_int_not_equal(on, 0);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
    const int options[] = {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT}, expected[] = {60, 10, 3};
    for (size_t i = 0; i < COUNT(options); i++) {
        int value = 0;
        size = sizeof value;
        assert_int_equal(getsockopt(sock, IPPROTO_TCP, options[i], &value, &size), 0);
        assert_int_equal(value, expected[i]);
    }
#endif
    close_tracked(sock);
}

/* docs/dual-stack.md: bound to ::ffff:127.0.0.1 with IPV6_V6ONLY off, the IPv6 listener takes
 * a client of 127.0.0.1 and sees it as ::ffff:127.0.0.1; with the option on, no bind. */
static void dual_stack_listener_takes_an_ipv4_client_as_a_mapped_address(void **state) {
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe == -1) {
        print_error("no IPv6 here: nothing to test\n");
        skip();
    }
    close(probe);
    uint16_t port = (uint16_t)unused_port(SOCK_STREAM);
    int listener = tracked(listen_dual_stack("::ffff:127.0.0.1", port));
    int client = connect_to_loopback(port);
    struct sockaddr_in6 peer;
    socklen_t length = sizeof peer;
    assert_true(wait_for_socket(listener, POLLIN, now_ms() + FINISH_TIMEOUT_MS));
    int server = tracked(accept(listener, (struct sockaddr *)&peer, &length));
    char text[INET6_ADDRSTRLEN];
    assert_int_equal(peer.sin6_family, AF_INET6);
    assert_true(IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr));
    assert_non_null(inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text));
    assert_string_equal(text, "::ffff:127.0.0.1");
    close_tracked(server);
    close_tracked(client);
    close_tracked(listener);

    /* IPV6_V6ONLY on: a mapped IPv4 address is not this socket's to bind. */
    int only6 = tracked(socket(AF_INET6, SOCK_STREAM, 0)), on = 1;
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr), 1);
    assert_int_equal(setsockopt(only6, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on), 0);
    assert_int_equal(bind(only6, (struct sockaddr *)&mapped, sizeof mapped), -1);
    close_tracked(only6);
}

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    /* The programs must start with SIGPIPE's default action (death), as from a learner's
     * shell: an "ignore" inherited from whoever started us would hide a missing
     * ignore_sigpipe(). Our own sends use MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        TEST(udp_pair_survives_eintr_in_every_socket_call),
        TEST(tcp_pair_survives_eintr_in_every_socket_call),
        TEST(select_server_and_echo_clients_survive_eintr_in_every_socket_call),
        TEST(select_client_and_echo_server_survive_eintr_in_every_read_and_socket_call),
        TEST(tcp_pair_reading_stdin_survives_eintr_in_every_read_and_socket_call),
        TEST(tcp_pair_talks_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(tcp_pair_talks_through_a_proxy_that_coalesces_bytes),
        TEST(select_server_echoes_clients_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(select_server_echoes_clients_through_a_proxy_that_coalesces_bytes),
        TEST(tcp_client_sends_256_kib_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(tcp_client_sends_64_mib_through_a_proxy_that_coalesces_bytes),
        TEST(tcp_client_reports_a_server_that_resets_while_it_sends_64_mib),
        TEST(tcp_client_reports_a_server_that_closes_while_it_sends_64_mib),
        TEST(tcp_server_reports_a_client_that_resets_while_it_sends_a_64_mib_greeting),
        TEST(tcp_server_reports_a_client_that_hangs_up_and_resets_during_a_64_mib_greeting),
        TEST(tcp_client_reports_a_server_that_resets_in_the_middle_of_its_greeting),
        TEST(tcp_client_takes_a_plain_close_as_the_end_of_the_greeting),
        TEST(select_server_reports_a_client_that_resets_and_keeps_serving_others),
        TEST(every_unix_server_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file),
        TEST(udp_sender_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file),
        TEST(every_ip_server_stopped_by_sigint_or_sigterm_says_so_and_frees_its_port_at_once),
        TEST(framing_messages_and_lines_come_whole_through_one_byte_pieces),
        TEST(framing_refuses_a_huge_length_and_a_message_cut_short),
        TEST(connect_within_connects_is_refused_or_times_out_on_a_full_queue),
        TEST(address_by_hand_is_in_network_byte_order_and_connects),
        TEST(keep_alive_sets_idle_interval_and_count),
        TEST(dual_stack_listener_takes_an_ipv4_client_as_a_mapped_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
