#define _POSIX_C_SOURCE 200809L
/* test_hostile.c: the programs against peers that misbehave. A client that sends without
 * ever reading, more clients than select() can watch, datagrams longer than the buffer or
 * empty, and bytes meant for the learner's terminal (escape sequences, a bell, NUL). Each
 * test checks that the program keeps its contract and serves everyone else meanwhile.
 * Only loopback, servers on -p 0, every wait with a deadline.
 * Run from the repository root: build/test_hostile (BIN_DIR=dir picks other binaries). */
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
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    CONVERSATION_MS = 5 * 1000,      /* a small conversation, even next to a hostile client */
    HOG_DEADLINE_MS = 30 * 1000,     /* to get the hog stuck, or to read its echo back */
    QUIET_MS = 1000,                 /* the kernel took nothing for this long: the hog is stuck */
    VALGRIND_QUIET_MS = 3000,        /* the same with a server under valgrind (slower to read) */
    MEANWHILE_BYTES = 1 << 20,       /* pushed before a client comes in while the hog pushes */
    HOG_LIMIT = 256 << 20,           /* the most the hog pushes: far more than the kernel holds */
    VALGRIND_HOG_LIMIT = 32 << 20,   /* under valgrind (memory is not checked there) */
    PEAK_MEMORY_LIMIT_KB = 16 << 10, /* select_server's peak resident memory (VmHWM) */
    CHUNK_SIZE = 1 << 16,
    PATTERN_PERIOD = 251,      /* the hog's bytes repeat every 251 (prime: no chunk aligns) */
    EXTRA_CLIENTS = 20,        /* connections beyond FD_SETSIZE */
    FILES_LIMIT = 2048,        /* RLIMIT_NOFILE for FD_SETSIZE + EXTRA_CLIENTS connections */
    SELECT_SERVER_OWN_FDS = 4, /* stdin, stdout, stderr and the listener, all below 1024 */
    DATAGRAM_BUFFER = 1024,    /* udp_receiver's and udp_sender's receive buffer */
};

#define GREETING "Hello!\n"
#define REFUSAL "select_server: refusing a client: select handles descriptors below 1024"

/* Bytes that would clear the screen and ring the bell on a terminal, with a NUL and a byte
 * that is not UTF-8; "\xff" "B" is split because B is a hex digit. */
static const char HOSTILE[] = "A\x1b[2J\x07\x00\xff"
                              "B\n";
#define HOSTILE_LENGTH (sizeof HOSTILE - 1)
/* The same as a program shows them on a terminal. */
#define HOSTILE_SHOWN "A\\x1b[2J\\x07\\x00\\xffB\n"

/* ---- assertions: each failure says what was expected and what came ---- */

/* Fail unless stdout holds exactly before + the `length` bytes of middle + after. */
static void check_stdout_around(const struct process *process, const char *before,
                                const char *middle, size_t length, const char *after,
                                const char *file, int line) {
    size_t expected_length = strlen(before) + length + strlen(after);
    char *expected = malloc(expected_length + 1);
    assert_non_null(expected);
    memcpy(expected, before, strlen(before));
    memcpy(expected + strlen(before), middle, length);
    strcpy(expected + strlen(before) + length, after);
    check_output(process, "stdout", &process->out, expected, expected_length, false, file, line);
    free(expected);
}

/* Fail unless stdout holds before, the length bytes of middle (NULs too), after. */
#define assert_stdout_around(process, before, middle, length, after) \
    check_stdout_around(process, before, middle, length, after, __FILE__, __LINE__)

/* ---- plumbing ---- */

/* Send all of text on a non-blocking socket, waiting for room up to the deadline. */
static void send_text(int sock, const char *text, long long deadline) {
    for (size_t sent = 0; sent < strlen(text);) {
        if (!wait_for_socket(sock, POLLOUT, deadline))
            fail_msg("could not send \"%s\" within the deadline", text);
        ssize_t bytes_sent = send(sock, text + sent, strlen(text) - sent, 0);
        if (bytes_sent == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            fail_msg("send: %s", strerror(errno));
        sent += bytes_sent > 0 ? (size_t)bytes_sent : 0;
    }
}

/* The whole file at path, as the harness keeps a program's output (for count_lines). */
static struct output file_contents(const char *path) {
    struct output contents = {0};
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    char chunk[CHUNK_SIZE];
    size_t bytes_read;
    while ((bytes_read = fread(chunk, 1, sizeof chunk, file)) > 0) {
        contents.data = realloc(contents.data, contents.length + bytes_read + 1);
        assert_non_null(contents.data);
        memcpy(contents.data + contents.length, chunk, bytes_read);
        contents.length += bytes_read;
        contents.data[contents.length] = '\0';
    }
    fclose(file);
    if (contents.data == NULL)
        contents.data = calloc(1, 1);
    return contents;
}

/* length letters, "abcd...zabc...", so that a cut at any place shows. */
static const char *letters(size_t length) {
    char *text = malloc(length + 1);
    assert_non_null(text);
    for (size_t i = 0; i < length; i++)
        text[i] = (char)('a' + i % 26);
    text[length] = '\0';
    const char *kept = formatted("%s", text);
    free(text);
    return kept;
}

static int tear_down(void **state) {
    (void)state;
    clean_up();
    clean_up_peers();
    return 0;
}

/* ---- a client that sends and never reads ---- */

/* The hog's bytes: byte n of its stream is pattern[n % PATTERN_PERIOD], and any CHUNK_SIZE
 * bytes from offset n are at pattern + n % PATTERN_PERIOD. */
static unsigned char pattern[CHUNK_SIZE + PATTERN_PERIOD];

/* Push the hog's bytes from *sent on without reading anything, until the kernel has taken
 * nothing for quiet_ms (true: the server stopped reading from it) or `limit` bytes are sent
 * in all (false). Fails if neither happens before the deadline. */
static bool push_until_stuck(int hog, size_t *sent, size_t limit, int quiet_ms,
                             long long deadline) {
    while (*sent < limit) {
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
        size_t left = limit - *sent;
        ssize_t bytes_sent =
            send(hog, pattern + *sent % PATTERN_PERIOD, left < CHUNK_SIZE ? left : CHUNK_SIZE, 0);
        if (bytes_sent == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            fail_msg("the hog's send after %zu bytes: %s", *sent, strerror(errno));
        *sent += bytes_sent > 0 ? (size_t)bytes_sent : 0;
    }
    return false;
}

/* Read the hog's stream to its end and fail unless it is the greeting and then exactly the
 * `sent` bytes the hog sent. */
static void expect_greeting_and_echo(int hog, size_t sent, long long deadline) {
    char greeting[sizeof GREETING - 1];
    ssize_t length = receive_within(hog, greeting, sizeof greeting, deadline);
    if (length != (ssize_t)sizeof greeting || memcmp(greeting, GREETING, sizeof greeting) != 0)
        fail_msg("the hog expected the greeting \"Hello!\\n\", got %s",
                 length == -1 ? "nothing within the deadline" : shown(greeting, (size_t)length));
    size_t echoed = 0;
    char chunk[CHUNK_SIZE];
    while ((length = receive_within(hog, chunk, sizeof chunk, deadline)) > 0) {
        for (size_t i = 0; i < (size_t)length; i++)
            if ((unsigned char)chunk[i] != pattern[(echoed + i) % PATTERN_PERIOD])
                fail_msg("the echo differs from what the hog sent at byte %zu", echoed + i);
        echoed += (size_t)length;
        if (echoed > sent)
            break;
    }
    if (echoed != sent || length == -1)
        fail_msg("the hog sent %zu bytes and got %zu back%s", sent, echoed,
                 length == -1 ? " by the deadline" : " and then the end of the stream");
}

#define STILL_SERVED "Client connected!\nreply sent!\nReceived from server: Hello!\nstill served\n"

static void select_server_serves_others_while_a_client_sends_without_reading(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
    const char *server_lines = temp_path("select_server.out"); /* one line per chunk echoed */
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "3", "-p", "0"),
                                           &(struct run_options){.output_file = server_lines});
    const char *port = ready_port(server);
    long long deadline = now_ms() + slow(HOG_DEADLINE_MS);
    int hog = open_connection(port, deadline);
    assert_int_not_equal(hog, -1);
    /* Under valgrind the hog pushes less (the server reads slowly); memory goes unchecked. */
    size_t limit = under_valgrind() ? VALGRIND_HOG_LIMIT : HOG_LIMIT;
    int quiet_ms = under_valgrind() ? VALGRIND_QUIET_MS : QUIET_MS;

    /* A client comes while the hog is pushing, and another once the hog is stuck. */
    size_t sent = 0;
    push_until_stuck(hog, &sent, MEANWHILE_BYTES, quiet_ms, deadline);
    const char *const client_argv[] = {"tcp_client", "-e", "-m", "still served", "-p", port, NULL};
    struct process *meanwhile = start_program(client_argv, NULL);
    bool stuck = push_until_stuck(hog, &sent, limit, quiet_ms, deadline);
    assert_exit_within(meanwhile, 0, slow(CONVERSATION_MS));
    assert_stdout(meanwhile, STILL_SERVED);
    struct process *afterwards = start_program(client_argv, NULL);
    assert_exit_within(afterwards, 0, slow(CONVERSATION_MS));
    assert_stdout(afterwards, STILL_SERVED);

    /* Had the server read all the hog sent (stuck or not), its memory would show it. */
    long peak_kb = peak_memory_kb(server->pid);
    if (under_valgrind())
        print_message("under valgrind: memory not checked (valgrind's own is in VmHWM)\n");
    else if (peak_kb == -1)
        print_message("no /proc/PID/status here: select_server's memory not checked\n");
    else if (peak_kb >= PEAK_MEMORY_LIMIT_KB)
        fail_msg("select_server's peak memory is %ld KiB (limit %d KiB) after the hog sent "
                 "%zu bytes (%s)",
                 peak_kb, PEAK_MEMORY_LIMIT_KB, sent, stuck ? "and got stuck" : "never stuck");
    /* And the kernel holds far less than HOG_LIMIT: the hog must have been stopped. */
    if (!stuck && !under_valgrind())
        fail_msg("the hog sent all its %zu bytes and never got stuck: select_server reads from "
                 "a client that does not read its echo",
                 sent);

    /* Now the hog reads: it gets the greeting and every byte it sent, then the end. */
    assert_int_equal(shutdown(hog, SHUT_WR), 0);
    expect_greeting_and_echo(hog, sent, now_ms() + slow(HOG_DEADLINE_MS));
    assert_exit(server, 0);
    assert_stderr(server, formatted("select_server: ready on 127.0.0.1 port %s\n", port));
    struct output lines = file_contents(server_lines);
    int accepted = count_lines(&lines, "accepting new socket");
    int disconnected = count_lines(&lines, "socket disconnected");
    free(lines.data);
    assert_int_equal(accepted, 3);
    assert_int_equal(disconnected, 3);
}

/* ---- more clients than select() can watch ---- */

static void select_server_refuses_clients_beyond_fd_setsize_and_serves_the_others(void **state) {
    (void)state;
    enum { CONNECTIONS = FD_SETSIZE + EXTRA_CLIENTS };
    if (!allow_open_files(FILES_LIMIT)) {
        print_message("cannot raise RLIMIT_NOFILE to %d here (try ulimit -n %d first; "
                      "valgrind refuses to raise it): test skipped\n",
                      FILES_LIMIT, FILES_LIMIT);
        skip();
    }
    /* The server inherits our limit, so it can accept descriptors of 1024 and above. */
    const char *server_lines = temp_path("select_server.out");
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "0", "-p", "0"),
                                           &(struct run_options){.output_file = server_lines});
    const char *port = ready_port(server);

    /* One connection at a time, each waiting for its answer, so that the listen queue never
     * overflows. Once the server's descriptors reach 1024 it must refuse every new one. */
    int first = -1, last = -1, served = 0, refused = 0;
    for (int i = 0; i < CONNECTIONS; i++) {
        int sock;
        if (connect_and_get_greeted(server, port, i + 1, &sock)) {
            served++;
            first = first == -1 ? sock : first;
            last = sock;
        } else {
            refused++;
        }
    }
    assert_true(refused >= CONNECTIONS - (FD_SETSIZE - SELECT_SERVER_OWN_FDS));
    assert_true(served > 0);

    /* The first client and the last one served still get their echo. */
    long long deadline = now_ms() + slow(CONVERSATION_MS);
    char echo[sizeof "ping\n" - 1];
    for (int i = 0; i < 2; i++) {
        int sock = i == 0 ? first : last;
        send_text(sock, "ping\n", deadline);
        ssize_t length = receive_within(sock, echo, sizeof echo, deadline);
        if (length != (ssize_t)sizeof echo || memcmp(echo, "ping\n", sizeof echo) != 0)
            fail_showing_server(server,
                                formatted("%s client: expected the echo \"ping\\n\", got %s",
                                          i == 0 ? "the first" : "the last served",
                                          length == -1 ? "nothing within the deadline"
                                                       : shown(echo, (size_t)length)));
    }

    /* Stop it: it dies by the signal, having said nothing but what we expect. */
    assert_int_equal(kill(server->pid, SIGTERM), 0);
    assert_exit(server, 128 + SIGTERM);
    const char *ready_line = formatted("select_server: ready on 127.0.0.1 port %s\n", port);
    const char *refusals = "";
    for (int i = 0; i < refused; i++)
        refusals = formatted("%s%s\n", refusals, REFUSAL);
    assert_stderr(server,
                  formatted("%s%sselect_server: stopped by SIGTERM\n", ready_line, refusals));
    struct output lines = file_contents(server_lines);
    int accepted = count_lines(&lines, "accepting new socket");
    int echoed = count_lines(&lines, "socket sent data");
    int all = count_lines(&lines, NULL);
    free(lines.data);
    assert_int_equal(accepted, CONNECTIONS);
    assert_int_equal(echoed, 2);
    assert_int_equal(all, 1 + CONNECTIONS + 2);
}

/* ---- datagrams longer than the buffer, and empty ones ---- */

#define TRUNCATED(program) program ": datagram truncated: longer than the 1024-byte buffer\n"

static void
udp_receiver_prints_the_first_1024_bytes_of_a_longer_datagram_and_says_so(void **state) {
    (void)state;
    const char *message = letters(2000);
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
    const char *reply = letters(3000);
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
    const char *message = letters(DATAGRAM_BUFFER);
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
                  "Client connected!\nreply sent!\nReceived from server: Hello!\n" HOSTILE_SHOWN
                  "\n");
    struct process *into_pipe = echo_client_receiving(payload, false);
    assert_stdout_around(into_pipe,
                         "Client connected!\nreply sent!\nReceived from server: Hello!\n", HOSTILE,
                         HOSTILE_LENGTH, "\n");
}

static void
select_client_shows_hostile_bytes_as_hex_on_a_terminal_and_raw_into_a_pipe(void **state) {
    (void)state;
    const char *payload = file_with("hostile", HOSTILE, HOSTILE_LENGTH);

    struct process *on_terminal = select_client_receiving(payload, true);
    assert_stdout(on_terminal, "Hello!\n" HOSTILE_SHOWN);
    struct process *into_pipe = select_client_receiving(payload, false);
    assert_stdout_around(into_pipe, "Hello!\n", HOSTILE, HOSTILE_LENGTH, "");
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

/* Every byte value 0..255, and how a program must show them on a terminal: printable ASCII,
 * newline and tab as they are, everything else as \xNN in lowercase hex. */
static const char *every_byte_file(void) {
    char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (char)i;
    return file_with("every-byte", bytes, sizeof bytes);
}

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
    const char *payload = every_byte_file();
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
    assert_stdout(select_client_receiving(payload, true), formatted("Hello!\n%s", bytes_shown));
}

#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    /* A raw peer of ours may write to a connection the server has closed: report EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        TEST(select_server_serves_others_while_a_client_sends_without_reading),
        TEST(select_server_refuses_clients_beyond_fd_setsize_and_serves_the_others),
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
