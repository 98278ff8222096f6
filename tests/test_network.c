#define _POSIX_C_SOURCE 200809L
/* test_network.c: the hardened programs (examples/hardened/) against a network and peers that
 * misbehave. strace interrupts every blocking call (EINTR); a proxy cuts the stream into
 * one-byte or coalesced pieces; a fake peer resets, closes or falls silent in the middle of a
 * conversation, cannot take a reply, sends and goes without reading the greeting, or answers
 * in another's place; datagrams come longer than the buffer, or empty; and the bytes that come
 * are meant for the learner's terminal (escape sequences, a bell, NUL). Each test checks exact
 * output and exit status against the program contract, and that the program serves everyone
 * else meanwhile. Fake peers live in this process or in a forked child, on loopback ports the
 * kernel picks or in the temporary directory, and every wait has a deadline. Run from the
 * repository root: build/test_network (BIN_DIR=dir picks other binaries). The strace tests are
 * skipped without strace (failed under REQUIRE_TOOLS=1). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    ECHO_CLIENTS = 3,              /* select_server's clients in a test */
    TALK_SIZE = 3000,              /* -m text through a proxy: more than one recv buffer */
    BIG_PAYLOAD_SIZE = 64 << 20,   /* 64 MiB */
    BYTE_PAYLOAD_SIZE = 256 << 10, /* one byte per send is slow: 256 KiB is enough there */
    BIG_TIMEOUT_MS = 60 * 1000,
    A_LITTLE = 64 << 10,      /* what a fake peer reads before it goes */
    GREETING_ROOM = 64,       /* bytes we keep of what a client receives */
    IDLE_S = 1,               /* tcp_server's -t in the test of an idle client */
    DEAF_COUNT = 300,         /* datagrams from a peer that never reads its replies */
    SENDER_SECONDS = 2,       /* udp_sender's -t behind that peer */
    DEFAULT_DGRAM_QUEUE = 10, /* datagrams a UNIX socket queues (Linux's max_dgram_qlen) */
    DATAGRAM_BUFFER = 1024,   /* udp_receiver's and udp_sender's receive buffer */
};

#define TRUNCATED(program) program ": datagram truncated: longer than the 1024-byte buffer\n"

/* Bytes that would clear the screen and ring the bell on a terminal, with a NUL and a byte
 * that is not UTF-8; "\xff" "B" is split because B is a hex digit. */
static const char HOSTILE[] = "A\x1b[2J\x07\x00\xff"
                              "B\n";
#define HOSTILE_LENGTH (sizeof HOSTILE - 1)
/* The same as a program shows them on a terminal. */
#define HOSTILE_SHOWN "A\\x1b[2J\\x07\\x00\\xffB\n"

/* Read A_LITTLE bytes and drop them, as a peer that is about to go; the count read. */
static ssize_t read_a_little(int sock) {
    static char sink[A_LITTLE];
    return receive_within(sock, sink, sizeof sink, now_ms() + FINISH_TIMEOUT_MS);
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
    struct child proxy;
    int port = start_proxy(atoi(ready_port(server)), mode, 1, &proxy);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", reply, "-p", formatted("%d", port)), NULL);

    assert_exit(client, 0);
    assert_stdout(
        client, formatted("Client connected!\nReceived from server: %s\nreply sent!\n", greeting));
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, formatted("Got from client: %s\n", reply));
    assert_proxy_finished(&proxy);
}

static void select_server_echoes_through_a_proxy(enum proxy_mode mode) {
    struct process *server = start_program(
        ARGV("select_server", "-e", "-n", formatted("%d", ECHO_CLIENTS), "-p", "0"), NULL);
    struct child proxy;
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
            formatted("Client connected!\nReceived from server: %s\nreply sent!\n", messages[i]));
        assert_stderr(everyone[i], "");
    }
    assert_exit(server, 0);
    assert_stdout_starts_with(server, "listening\n");
    assert_int_equal(count_lines(&server->out, "accepting new socket"), ECHO_CLIENTS);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), ECHO_CLIENTS);
    assert_true(count_lines(&server->out, "socket sent data") >= ECHO_CLIENTS);
    assert_proxy_finished(&proxy);
}

/* tcp_client -m - sends size random bytes through the proxy; tcp_server must print them all. */
static void big_payload_goes_through_a_proxy(enum proxy_mode mode, size_t size) {
    const char *payload = temp_path("payload");
    const char *received = temp_path("received");
    uint64_t sent = write_random_file(payload, size);
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"),
                                           &(struct run_options){.output_file = received});
    struct child proxy;
    int port = start_proxy(atoi(ready_port(server)), mode, 1, &proxy);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", "-", "-p", formatted("%d", port)),
                      &(struct run_options){.input_file = payload});

    assert_exit_within(client, 0, BIG_TIMEOUT_MS);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit_within(server, 0, BIG_TIMEOUT_MS); /* the proxy may still hold bytes for it */
    assert_file_holds(received, "Got from client: ", size, sent, "\n");
    assert_proxy_finished(&proxy);
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
    send_text(server, "Hello!", now_ms() + FINISH_TIMEOUT_MS);
    assert_int_equal(shutdown(server, SHUT_WR), 0);
    assert_int_equal(read_a_little(server), A_LITTLE);
    if (reset)
        reset_connection(server);
    else
        close_tracked(server);

    assert_exit(client, 1);
    assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
    assert_stderr_one_of(client, "", SEND_BROKEN_PIPE("tcp_client"), SEND_RESET("tcp_client"));
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
 * socket half closed: the errno is then EPIPE on Linux, which raises SIGPIPE if not ignored).
 * The server then prints what the client sent (nothing), and reports the failed send. */
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
    assert_stdout(server, "Got from client: \n");
    const char *ready = formatted("tcp_server: ready on 127.0.0.1 port %s\n", port);
    assert_stderr_one_of(server, ready, SEND_BROKEN_PIPE("tcp_server"), SEND_RESET("tcp_server"));
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
    send_text(server, part, now_ms() + FINISH_TIMEOUT_MS);
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
    send_text(server, "Hello!", now_ms() + FINISH_TIMEOUT_MS);
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
        assert_stderr_one_of(client, "", SEND_BROKEN_PIPE("tcp_client"), SEND_RESET("tcp_client"));
    }
}

static void select_server_reports_a_client_that_resets_and_keeps_serving_others(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(server);
    /* The rude client gets the echo of a byte (the server has read it and waits for more),
     * then resets the connection. */
    int rude = connect_to_loopback(atoi(port));
    send_text(rude, "x", now_ms() + FINISH_TIMEOUT_MS);
    char echo[2] = "";
    assert_int_equal(receive_within(rude, echo, 1, now_ms() + FINISH_TIMEOUT_MS), 1);
    assert_string_equal(echo, "x");
    reset_connection(rude);
    assert_true(wait_for_output(server, "socket disconnected\n", FINISH_TIMEOUT_MS));
    struct process *client = start_program(ARGV("tcp_client", "-e", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, ECHO_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket sent data\nsocket "
                          "disconnected\n" ONE_EVENT_CLIENT);
    assert_stderr(server, formatted("select_server: ready on 127.0.0.1 port %s\n"
                                    "select_server: recv: Connection reset by peer\n",
                                    port));
}

/* ====================================================================================== */
/* ---- tcp_server goes on after a client fails ---- */

/* A client that reads the greeting to its end (the server has shut down its side and waits for
 * the reply), then resets the connection. */
static void greet_and_reset(int port) {
    int rude = connect_to_loopback(port);
    char received[GREETING_ROOM] = "";
    /* Fewer bytes than room for: the greeting came, and then its end. */
    assert_int_equal(
        receive_within(rude, received, sizeof received - 1, now_ms() + slow(FINISH_TIMEOUT_MS)),
        strlen("Hello!"));
    assert_string_equal(received, "Hello!");
    reset_connection(rude);
}

static void tcp_server_serving_forever_goes_on_after_clients_that_reset(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-n", "0", "-p", "0"), NULL);
    const char *port = ready_port(server);
    const char *reset = "tcp_server: recv: Connection reset by peer\n";
    greet_and_reset(atoi(port));
    assert_true(wait_for_stderr(server, reset, slow(FINISH_TIMEOUT_MS)));
    greet_and_reset(atoi(port));
    assert_true(wait_for_stderr(server, formatted("%s%s", reset, reset), slow(FINISH_TIMEOUT_MS)));

    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    const char *lines = "Got from client: \nGot from client: \nGot from client: Thanks! Bye.\n";
    assert_true(wait_for_output(server, lines, slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(server));
    stop(server);
    assert_stdout(server, lines);
    assert_stderr(server,
                  formatted("tcp_server: ready on 127.0.0.1 port %s\n%s%s", port, reset, reset));
}

static void tcp_server_serves_count_clients_and_exits_1_when_one_of_them_failed(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(server);
    greet_and_reset(atoi(port));
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 1);
    assert_stdout(server, "Got from client: \nGot from client: Thanks! Bye.\n");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                    "tcp_server: recv: Connection reset by peer\n",
                                    port));
}

static void tcp_server_with_t_drops_a_client_that_sends_nothing_and_serves_the_next(void **state) {
    (void)state;
    const char *idle_s = formatted("%d", IDLE_S);
    struct process *server =
        start_program(ARGV("tcp_server", "-t", idle_s, "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(server);
    /* It takes the greeting, and then neither replies nor closes. */
    int idle = connect_to_loopback(atoi(port));
    long long connected = now_ms();
    char received[GREETING_ROOM] = "";
    assert_int_equal(
        receive_within(idle, received, sizeof received - 1, now_ms() + slow(FINISH_TIMEOUT_MS)),
        strlen("Hello!"));
    assert_string_equal(received, "Hello!");
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);

    const char *dropped = formatted("tcp_server: recv: nothing for %d s: client dropped\n", IDLE_S);
    assert_true(wait_for_stderr(server, dropped, slow(IDLE_S * 1000 + FINISH_TIMEOUT_MS)));
    long long waited = now_ms() - connected;
    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 1); /* a client failed */
    assert_stdout(server, "Got from client: \nGot from client: Thanks! Bye.\n");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n%s", port, dropped));
    if (waited < IDLE_S * 1000)
        fail_msg("the idle client was dropped after %lld ms, before its %d s", waited, IDLE_S);
    /* It was dropped with a reset: what it sends now fails (EPIPE once the end had come). */
    assert_int_equal(send(idle, "late", strlen("late"), MSG_NOSIGNAL), -1);
    assert_true(errno == EPIPE || errno == ECONNRESET);
}

/* A UNIX client connected to the server at path (tracked). */
static int connect_to_path(const char *path) {
    int sock = unix_socket(SOCK_STREAM, NULL);
    struct sockaddr_un address = unix_address(path);
    assert_int_equal(connect(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

static void
tcp_server_prints_what_a_send_only_client_sent_then_reports_the_failed_greeting(void **state) {
    (void)state;
    const char *path = temp_path("server.sock");
    struct process *server = start_program(ARGV("tcp_server", "-u", path, "-n", "2"), NULL);
    assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);

    /* The first client holds the server, which serves one at a time: it has the greeting and
     * its end, and the server waits for its reply. */
    int first = connect_to_path(path);
    char received[GREETING_ROOM] = "";
    assert_int_equal(receive_within(first, received, sizeof received - 1, deadline),
                     strlen("Hello!"));
    /* Meanwhile a client as TLPI's us_xfr_cl: it connects, sends and closes without reading.
     * It waits in the queue, and is gone when the server gets to it: the greeting cannot
     * reach it, but what it sent is there. */
    int sender = connect_to_path(path);
    send_text(sender, "sent, then gone", deadline);
    close_tracked(sender);
    send_text(first, "first reply", deadline);
    close_tracked(first);

    assert_exit(server, 1); /* a client failed */
    assert_stdout(server, "Got from client: first reply\nGot from client: sent, then gone\n");
    assert_stderr_one_of(server, formatted("tcp_server: ready on %s\n", path),
                         SEND_BROKEN_PIPE("tcp_server"), SEND_RESET("tcp_server"));
}

/* ====================================================================================== */
/* ---- udp_receiver goes on when a reply cannot be delivered ---- */

static void send_datagram_to(int sock, const char *text, const char *path) {
    struct sockaddr_un address = unix_address(path);
    assert_int_equal(
        sendto(sock, text, strlen(text), 0, (struct sockaddr *)&address, sizeof address),
        (ssize_t)strlen(text));
}

/* How many datagrams a UNIX datagram socket queues before its senders must wait. */
static int datagram_queue_length(void) {
    int length = DEFAULT_DGRAM_QUEUE;
    FILE *setting = fopen("/proc/sys/net/unix/max_dgram_qlen", "r"); /* Linux */
    if (setting != NULL) {
        if (fscanf(setting, "%d", &length) != 1)
            length = DEFAULT_DGRAM_QUEUE;
        fclose(setting);
    }
    return length;
}

static void udp_receiver_skips_replies_it_cannot_deliver_and_goes_on(void **state) {
    (void)state;
    const char *path = temp_path("receiver.sock");
    const char *gone_path = temp_path("gone.sock"), *closed_path = temp_path("closed.sock");
    const char *deaf_path = temp_path("deaf.sock");
    /* A peer that never reads: its queue takes `queued` replies; the others find no room. */
    int queued = datagram_queue_length() + 1, deaf_count = DEAF_COUNT;
    const char *count = formatted("%d", 3 + deaf_count + 1);
    struct process *receiver = start_program(ARGV("udp_receiver", "-u", path, "-n", count), NULL);
    assert_int_equal(wait_for_ready_line(receiver, slow(READY_TIMEOUT_MS)), 0);

    /* Three peers that cannot take a reply, each for its own reason. The receiver is stopped
     * meanwhile, so that each has gone before the reply is sent. */
    assert_int_equal(kill(receiver->pid, SIGSTOP), 0);
    wait_until_stopped(receiver);
    send_datagram_to(unix_socket(SOCK_DGRAM, NULL), "from a socket without an address", path);
    int gone = unix_socket(SOCK_DGRAM, gone_path);
    send_datagram_to(gone, "from a socket closed and removed", path);
    close_tracked(gone);
    assert_int_equal(unlink(gone_path), 0);
    int closed = unix_socket(SOCK_DGRAM, closed_path);
    send_datagram_to(closed, "from a socket closed", path);
    close_tracked(closed);
    assert_int_equal(kill(receiver->pid, SIGCONT), 0);

    /* Then one that sends and never reads. Its sends wait while the receiver's queue is full
     * (SO_SNDTIMEO bounds the wait); the receiver's replies fill the peer's own queue. */
    int deaf = unix_socket(SOCK_DGRAM, deaf_path);
    struct timeval bound = {.tv_sec = slow(FINISH_TIMEOUT_MS) / 1000};
    assert_int_equal(setsockopt(deaf, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound), 0);
    for (int i = 0; i < deaf_count; i++)
        send_datagram_to(deaf, "deaf", path);

    /* Behind them all, a sender that reads its reply gets it, within its -t: the receiver
     * has not waited for room for any of the deaf peer's replies. */
    const char *give_up = formatted("%d", SENDER_SECONDS);
    struct process *sender = start_program(ARGV("udp_sender", "-u", path, "-t", give_up), NULL);
    assert_exit_within(sender, 0, slow(FINISH_TIMEOUT_MS));
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");

    assert_exit(receiver, 0);
    const char *skipped = "udp_receiver: sendto: Resource temporarily unavailable: reply skipped";
    assert_int_equal(count_lines(&receiver->err, skipped), deaf_count - queued);
    const char *lines =
        formatted("udp_receiver: ready on %s\n"
                  "udp_receiver: sendto: Transport endpoint is not connected: reply skipped\n"
                  "udp_receiver: sendto: No such file or directory: reply skipped\n"
                  "udp_receiver: sendto: Connection refused: reply skipped\n",
                  path);
    for (int i = 0; i < deaf_count - queued; i++)
        lines = formatted("%s%s\n", lines, skipped);
    assert_stderr(receiver, lines);
    assert_int_equal(count_lines(&receiver->out, "Received: deaf"), deaf_count);
    assert_int_equal(count_lines(&receiver->out, "Received: Hello!"), 1);
}

/* ====================================================================================== */
/* ---- udp_sender takes its reply from the receiver only ---- */

static void udp_sender_ignores_a_datagram_from_anyone_but_the_receiver(void **state) {
    (void)state;
    int port;
    int receiver = bound_on_loopback(SOCK_DGRAM, &port);
    struct process *sender =
        start_program(ARGV("udp_sender", "-t", "10", "-p", formatted("%d", port)), NULL);
    char datagram[GREETING_ROOM] = "";
    struct sockaddr_in from;
    socklen_t from_length = sizeof from;
    assert_true(wait_for_socket(receiver, POLLIN, now_ms() + slow(READY_TIMEOUT_MS)));
    assert_int_equal(recvfrom(receiver, datagram, sizeof datagram - 1, 0, (struct sockaddr *)&from,
                              &from_length),
                     strlen("Hello!"));

    /* A stranger answers first, from another port: the kernel must drop that datagram. */
    int stranger = tracked(socket(AF_INET, SOCK_DGRAM, 0));
    assert_int_equal(
        sendto(stranger, "SPOOFED", strlen("SPOOFED"), 0, (struct sockaddr *)&from, from_length),
        strlen("SPOOFED"));
    assert_int_equal(
        sendto(receiver, "got it!", strlen("got it!"), 0, (struct sockaddr *)&from, from_length),
        strlen("got it!"));

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
}

/* ====================================================================================== */
/* ---- datagrams longer than the buffer, and empty ones ---- */

static void
udp_receiver_prints_the_first_1024_bytes_of_a_longer_datagram_and_says_so(void **state) {
    (void)state;
    const char *message = long_text("datagram", 2000);
    struct process *receiver = start_program(ARGV("udp_receiver", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-m", "-", "-p", port),
                                           &(struct run_options){.input = message});

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout_around(receiver, "Waiting for data...\nReceived: ", message, DATAGRAM_BUFFER,
                         "\n");
    assert_stderr(
        receiver,
        formatted("udp_receiver: ready on 127.0.0.1 port %s\n" TRUNCATED("udp_receiver"), port));
}

static void udp_sender_prints_the_first_1024_bytes_of_a_longer_reply_and_says_so(void **state) {
    (void)state;
    const char *reply = long_text("datagram", 3000);
    struct process *receiver = start_program(ARGV("udp_receiver", "-m", "-", "-p", "0"),
                                             &(struct run_options){.input = reply});
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-p", port), NULL);

    assert_exit(sender, 0);
    assert_stdout_around(sender, "Sending data...\nGot response: ", reply, DATAGRAM_BUFFER, "\n");
    assert_stderr(sender, TRUNCATED("udp_sender"));
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
}

static void datagrams_of_exactly_1024_bytes_are_not_reported_as_truncated(void **state) {
    (void)state;
    const char *message = long_text("datagram", DATAGRAM_BUFFER);
    struct process *receiver = start_program(ARGV("udp_receiver", "-m", "-", "-p", "0"),
                                             &(struct run_options){.input = message});
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-m", "-", "-p", port),
                                           &(struct run_options){.input = message});

    assert_exit(sender, 0);
    assert_stdout(sender, formatted("Sending data...\nGot response: %s\n", message));
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, formatted("Waiting for data...\nReceived: %s\n", message));
    assert_stderr(receiver, formatted("udp_receiver: ready on 127.0.0.1 port %s\n", port));
}

static void an_empty_datagram_is_printed_as_an_empty_line_and_answered(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-m", "", "-p", port), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: \n");
    assert_stderr(receiver, formatted("udp_receiver: ready on 127.0.0.1 port %s\n", port));
}

static void an_empty_reply_is_printed_as_an_empty_line(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "-m", "", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-p", port), NULL);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: \n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: Hello!\n");
}

/* ====================================================================================== */
/* ---- bytes meant for the terminal ---- */

/* Each function below runs one program with stdout on a terminal (or a pipe) while its peer
 * sends it the bytes in the file at `payload`, and returns it once both have exited 0. */

static struct process *tcp_client_receiving(const char *payload, bool terminal) {
    struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                           &(struct run_options){.input_file = payload});
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("tcp_client", "-p", port), &(struct run_options){.terminal = terminal});
    assert_exit(client, 0);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    return client;
}

static struct process *echo_client_receiving(const char *payload, bool terminal) {
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    /* The client sends the payload and prints it as select_server echoes it back. */
    struct process *client =
        start_program(ARGV("tcp_client", "-e", "-m", "-", "-p", port),
                      &(struct run_options){.input_file = payload, .terminal = terminal});
    assert_exit(client, 0);
    assert_exit(server, 0);
    return client;
}

static struct process *select_client_receiving(const char *payload, bool terminal) {
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    /* select_client sends its input and prints the echo as it comes. */
    struct process *client =
        start_program(ARGV("select_client", "-p", port),
                      &(struct run_options){.input_file = payload, .terminal = terminal});
    assert_exit(client, 0);
    assert_stderr(client, "");
    assert_exit(server, 0);
    return client;
}

static struct process *tcp_server_receiving(const char *payload, bool terminal) {
    struct process *server =
        start_program(ARGV("tcp_server", "-p", "0"), &(struct run_options){.terminal = terminal});
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-m", "-", "-p", port),
                                           &(struct run_options){.input_file = payload});
    assert_exit(client, 0);
    assert_exit(server, 0);
    return server;
}

static struct process *udp_receiver_receiving(const char *payload, bool terminal) {
    struct process *receiver =
        start_program(ARGV("udp_receiver", "-p", "0"), &(struct run_options){.terminal = terminal});
    const char *port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-m", "-", "-p", port),
                                           &(struct run_options){.input_file = payload});
    assert_exit(sender, 0);
    assert_exit(receiver, 0);
    return receiver;
}

static struct process *udp_sender_receiving(const char *payload, bool terminal) {
    struct process *receiver = start_program(ARGV("udp_receiver", "-m", "-", "-p", "0"),
                                             &(struct run_options){.input_file = payload});
    const char *port = ready_port(receiver);
    struct process *sender =
        start_program(ARGV("udp_sender", "-p", port), &(struct run_options){.terminal = terminal});
    assert_exit(sender, 0);
    assert_exit(receiver, 0);
    return sender;
}

static void tcp_client_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = tcp_client_receiving(payload, true);
    assert_stdout(on_terminal,
                  "Client connected!\nReceived from server: " HOSTILE_SHOWN "\nreply sent!\n");
    struct process *into_pipe = tcp_client_receiving(payload, false);
    assert_stdout_around(into_pipe, "Client connected!\nReceived from server: ", HOSTILE,
                         HOSTILE_LENGTH, "\nreply sent!\n");
}

static void tcp_client_in_echo_mode_shows_hostile_bytes_as_hex_on_a_terminal(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = echo_client_receiving(payload, true);
    assert_stdout(on_terminal,
                  "Client connected!\nReceived from server: " HOSTILE_SHOWN "\nreply sent!\n");
    struct process *into_pipe = echo_client_receiving(payload, false);
    assert_stdout_around(into_pipe, "Client connected!\nReceived from server: ", HOSTILE,
                         HOSTILE_LENGTH, "\nreply sent!\n");
}

static void
select_client_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = select_client_receiving(payload, true);
    assert_stdout(on_terminal, HOSTILE_SHOWN);
    struct process *into_pipe = select_client_receiving(payload, false);
    assert_stdout_around(into_pipe, "", HOSTILE, HOSTILE_LENGTH, "");
}

static void tcp_server_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = tcp_server_receiving(payload, true);
    assert_stdout(on_terminal, "Got from client: " HOSTILE_SHOWN "\n");
    struct process *into_pipe = tcp_server_receiving(payload, false);
    assert_stdout_around(into_pipe, "Got from client: ", HOSTILE, HOSTILE_LENGTH, "\n");
}

static void
udp_receiver_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = udp_receiver_receiving(payload, true);
    assert_stdout(on_terminal, "Waiting for data...\nReceived: " HOSTILE_SHOWN "\n");
    struct process *into_pipe = udp_receiver_receiving(payload, false);
    assert_stdout_around(into_pipe, "Waiting for data...\nReceived: ", HOSTILE, HOSTILE_LENGTH,
                         "\n");
}

static void udp_sender_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = udp_sender_receiving(payload, true);
    assert_stdout(on_terminal, "Sending data...\nGot response: " HOSTILE_SHOWN "\n");
    struct process *into_pipe = udp_sender_receiving(payload, false);
    assert_stdout_around(into_pipe, "Sending data...\nGot response: ", HOSTILE, HOSTILE_LENGTH,
                         "\n");
}

/* Every byte value 0..255 as a program must show them on a terminal: printable ASCII,
 * newline and tab as they are, everything else as \xNN in lowercase hex. */
static const char *every_byte_shown(void) {
    char text[4 * 256 + 1];
    size_t used = 0;
    for (int byte = 0; byte < 256; byte++) {
        if ((byte >= 0x20 && byte <= 0x7e) || byte == '\n' || byte == '\t')
            text[used++] = (char)byte;
        else
            used += (size_t)sprintf(text + used, "\\x%02x", byte);
    }
    text[used] = '\0';
    return formatted("%s", text);
}

static void every_byte_outside_printable_ascii_shows_as_hex_on_a_terminal(void **state) {
    (void)state;
    const char *payload = every_byte_file("every-byte", 1);
    const char *bytes_shown = every_byte_shown();

    assert_stdout(tcp_server_receiving(payload, true),
                  formatted("Got from client: %s\n", bytes_shown));
    assert_stdout(
        tcp_client_receiving(payload, true),
        formatted("Client connected!\nReceived from server: %s\nreply sent!\n", bytes_shown));
    assert_stdout(udp_receiver_receiving(payload, true),
                  formatted("Waiting for data...\nReceived: %s\n", bytes_shown));
    assert_stdout(udp_sender_receiving(payload, true),
                  formatted("Sending data...\nGot response: %s\n", bytes_shown));
    assert_stdout(select_client_receiving(payload, true), bytes_shown);
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
        TEST(tcp_server_serving_forever_goes_on_after_clients_that_reset),
        TEST(tcp_server_serves_count_clients_and_exits_1_when_one_of_them_failed),
        TEST(tcp_server_with_t_drops_a_client_that_sends_nothing_and_serves_the_next),
        TEST(tcp_server_prints_what_a_send_only_client_sent_then_reports_the_failed_greeting),
        TEST(udp_receiver_skips_replies_it_cannot_deliver_and_goes_on),
        TEST(udp_sender_ignores_a_datagram_from_anyone_but_the_receiver),
        TEST(udp_receiver_prints_the_first_1024_bytes_of_a_longer_datagram_and_says_so),
        TEST(udp_sender_prints_the_first_1024_bytes_of_a_longer_reply_and_says_so),
        TEST(datagrams_of_exactly_1024_bytes_are_not_reported_as_truncated),
        TEST(an_empty_datagram_is_printed_as_an_empty_line_and_answered),
        TEST(an_empty_reply_is_printed_as_an_empty_line),
        TEST(tcp_client_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe),
        TEST(tcp_client_in_echo_mode_shows_hostile_bytes_as_hex_on_a_terminal),
        TEST(select_client_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe),
        TEST(tcp_server_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe),
        TEST(udp_receiver_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe),
        TEST(udp_sender_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe),
        TEST(every_byte_outside_printable_ascii_shows_as_hex_on_a_terminal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
