#define _POSIX_C_SOURCE 200809L

/* test_units.c: unit tests of the hardened tier's code, compiled in and called directly:
 * examples/hardened/plumbing.c (RETRY_ON_EINTR, SIGPIPE, die, fail and usage_error, read_whole,
 * the connection aborted at exit unless closed) and the stream loops of
 * examples/hardened/tcp_client.c (the send loop and the receive loop written out in its main,
 * -m - a piece at a time, connect_retry). tcp_client's main is renamed tcp_client_main and runs
 * in a child process against a peer socket this process holds on loopback: with signals that
 * interrupt its calls, a send that takes only part of what it is given, a peer that has gone.
 * Each test builds the situation a helper exists for with real sockets, pipes, signals and
 * processes. Nothing waits without a time limit, so a bug fails a test rather than hanging it.
 * Run: build/test_units */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h> /* needs setjmp.h, stdarg.h, stddef.h and stdint.h first */
#undef fail /* cmocka's fail() macro would hide the plumbing's fail(); we use its asserts only */

/* tcp_client's send loops call send. In this file they call fake_send instead, which passes
 * each call on to the real send (the #undef below brings it back) and counts what came back.
 * Its main becomes tcp_client_main, for a child process to call. */
static ssize_t fake_send(int sock, const void *data, size_t size, int flags);
#define send fake_send
#define main tcp_client_main
#include "../examples/hardened/plumbing.c"
#include "../examples/hardened/tcp_client.c"
#undef main
#undef send

#include "checks.h"
#include "harness.h"

enum {
    TIME_LIMIT_MS = 5000,  /* the longest a test waits for anything */
    CPU_LIMIT_S = 10,      /* ends a run stuck in a loop that never waits */
    TICK_US = 20000,       /* a SIGALRM every 20 ms */
    WAKE_TICK = 3,         /* the tick that brings what the interrupted call waits for */
    ROOM_TICK = 5,         /* the tick that makes room in a full accept queue */
    STINGY_SEND_BYTES = 3, /* the most the fake send takes at once, when told to */
    MESSAGE_SIZE = 101,
    PIPE_TRANSFER_SIZE = 1 << 20,
    LARGE_TRANSFER_SIZE = 4 << 20,
    OUTPUT_SIZE = 512,
    PORT_SIZE = sizeof "65535",
    RETURNED = 99, /* the exit code of a child whose die, fail or usage_error came back */
};

#define RECEIVE_TIMEOUT_S "1" /* tcp_client -t: the shortest it takes */

/* What tcp_client prints around the bytes it receives. */
#define CONNECTED "Client connected!\nReceived from server: "
#define REPLY_SENT "\nreply sent!\n"

/* tcp_client's arguments after its name, for run_tcp_client: TCP_CLIENT("-p", port). */
#define TCP_CLIENT(...) ((char *[]){"tcp_client", __VA_ARGS__, NULL})

/* Room for the largest transfer (and the '\0' that makes it a -m TEXT), shared by the tests
 * that move megabytes. */
static char sent_bytes[LARGE_TRANSFER_SIZE + 1];
static char received_bytes[LARGE_TRANSFER_SIZE + 1];

/* fake_send: what tcp_client's send loops call here (see the #define above). It passes each
 * call on to the real send and counts the results. A test can make it take at most
 * `max_bytes` at a time and fail every other call with EINTR, as a busy kernel and a signal
 * may. Once one send has been cut short and another interrupted, it writes a byte to
 * `tell_fd` (if not -1), once: the test may start reading. */
struct fake_send_state {
    size_t max_bytes;
    bool interrupt_every_other;
    int tell_fd;
    int calls, cut_short, interrupted;
};
static struct fake_send_state fake = {SIZE_MAX, false, -1, 0, 0, 0};

static void configure_fake_send(size_t max_bytes, bool interrupt_every_other, int tell_fd) {
    fake = (struct fake_send_state){max_bytes, interrupt_every_other, tell_fd, 0, 0, 0};
}

static ssize_t fake_send(int sock, const void *data, size_t size, int flags) {
    fake.calls++;
    ssize_t bytes_sent;
    if (fake.interrupt_every_other && fake.calls % 2 == 1) {
        errno = EINTR;
        bytes_sent = -1;
    } else {
        bytes_sent = send(sock, data, size < fake.max_bytes ? size : fake.max_bytes, flags);
    }
    int saved_errno = errno;
    if (bytes_sent == -1 && errno == EINTR)
        fake.interrupted++;
    else if (bytes_sent >= 0 && (size_t)bytes_sent < size)
        fake.cut_short++;
    if (fake.tell_fd != -1 && fake.cut_short > 0 && fake.interrupted > 0) {
        ssize_t written = write(fake.tell_fd, "!", 1);
        (void)written;
        fake.tell_fd = -1;
    }
    errno = saved_errno;
    return bytes_sent;
}

static void make_pipe(int ends[2]) { assert_int_equal(pipe(ends), 0); }

/* A loopback listener for tcp_client to connect to; port gets its port as text, for -p. */
static int listener_for_client(char port[PORT_SIZE]) {
    int number;
    int listener = listen_on_loopback(&number);
    snprintf(port, PORT_SIZE, "%d", number);
    return listener;
}

/* The next connection to the listener, tracked. Blocking sends and receives on it give up
 * after TIME_LIMIT_MS too (EAGAIN), so a client that stops reading or writing fails the test
 * instead of hanging it. */
static int accept_peer(int listener) {
    int peer = accept_within(listener, TIME_LIMIT_MS);
    struct timeval limit = {TIME_LIMIT_MS / 1000, 0};
    assert_int_equal(setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
    assert_int_equal(setsockopt(peer, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit), 0);
    return peer;
}

/* What the peer receives until the end of the stream, at most `room` bytes: pass room for
 * one byte more than expected, to catch any extra. -1 if the time limit passes first. */
static ssize_t receive_all(int peer, char *buffer, size_t room) {
    return receive_within(peer, buffer, room, now_ms() + TIME_LIMIT_MS);
}

static volatile sig_atomic_t accepted_by_handler = -1;
static void accept_one(int listener) { accepted_by_handler = accept(listener, NULL, NULL); }

/* Fail unless the child printed exactly `before`, the `size` bytes of `data`, then `after`. */
static void assert_printed(const struct child *child, const char *before, const char *data,
                           size_t size, const char *after) {
    size_t before_length = strlen(before), after_length = strlen(after);
    assert_int_equal(child->printed_length, before_length + size + after_length);
    assert_memory_equal(child->printed, before, before_length);
    if (size > 0)
        assert_memory_equal(child->printed + before_length, data, size);
    assert_string_equal(child->printed + before_length + size, after);
}

/* In a child: tcp_client's main with these arguments (a NULL-terminated list that starts
 * with its name), and what it returns. */
static int run_tcp_client(char *argv[]) {
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    return tcp_client_main(argc, argv);
}

/* 1. The send loop in tcp_client's main, and partial writes. */

static void tcp_client_send_loop_survives_partial_writes_and_interruptions(void **state) {
    (void)state;
    char message[MESSAGE_SIZE + 1];
    fill_pattern(message, MESSAGE_SIZE);
    char port[PORT_SIZE];
    int listener = listener_for_client(port);

    /* Every other send fails with EINTR, and the others take at most 3 bytes. */
    struct child client;
    if (start_child(&client, true) == 0) {
        configure_fake_send(STINGY_SEND_BYTES, true, -1);
        int result = run_tcp_client(TCP_CLIENT("-p", port, "-m", message));
        fprintf(stderr, "tcp_client returned %d after %d sends\n", result, fake.calls);
        exit(0);
    }
    /* The server says nothing (the client's receive loop ends at once), then reads. */
    int peer = accept_peer(listener);
    shutdown(peer, SHUT_WR);
    char received[MESSAGE_SIZE + 1];
    ssize_t received_size = receive_all(peer, received, sizeof received);
    close_tracked(peer);
    close_tracked(listener);
    finish_child(&client);

    /* One interrupted call and one short one for every 3 bytes. */
    char expected[OUTPUT_SIZE];
    snprintf(expected, sizeof expected, "tcp_client returned 0 after %d sends\n",
             2 * ((MESSAGE_SIZE + STINGY_SEND_BYTES - 1) / STINGY_SEND_BYTES));
    assert_string_equal(client.output, expected);
    assert_string_equal(client.ending, "exit 0");
    assert_printed(&client, CONNECTED, NULL, 0, REPLY_SENT);
    assert_int_equal(received_size, MESSAGE_SIZE);
    assert_memory_equal(received, message, MESSAGE_SIZE);
    free(client.printed);
}

static void
tcp_client_send_loop_delivers_megabytes_through_signals_and_a_full_buffer(void **state) {
    (void)state;
    fill_pattern(sent_bytes, LARGE_TRANSFER_SIZE);
    char port[PORT_SIZE];
    int listener = listener_for_client(port);
    int go[2];
    make_pipe(go);

    /* The client's one big send fills the buffers and waits, as nobody reads yet. A tick
     * cuts that send short; the next ones interrupt sends that moved nothing. Once it has
     * seen both, fake_send tells this process to start reading. */
    struct child client;
    if (start_child(&client, true) == 0) {
        close(go[0]);
        configure_fake_send(SIZE_MAX, false, go[1]);
        start_ticking((struct ticking){.interval_us = TICK_US});
        int result = run_tcp_client(TCP_CLIENT("-p", port, "-m", sent_bytes));
        stop_ticking();
        fprintf(stderr, "tcp_client returned %d; sends cut short: %s; sends interrupted: %s\n",
                result, fake.cut_short > 0 ? "some" : "none",
                fake.interrupted > 0 ? "some" : "none");
        exit(0);
    }
    close(go[1]);
    int peer = accept_peer(listener);
    shutdown(peer, SHUT_WR);
    wait_for_socket(go[0], POLLIN, now_ms() + TIME_LIMIT_MS);
    ssize_t received_size = receive_all(peer, received_bytes, LARGE_TRANSFER_SIZE + 1);
    close_tracked(peer);
    close_tracked(listener);
    close(go[0]);
    finish_child(&client);

    assert_string_equal(client.output,
                        "tcp_client returned 0; sends cut short: some; sends interrupted: some\n");
    assert_string_equal(client.ending, "exit 0");
    assert_printed(&client, CONNECTED, NULL, 0, REPLY_SENT);
    assert_int_equal(received_size, LARGE_TRANSFER_SIZE);
    assert_memory_equal(received_bytes, sent_bytes, LARGE_TRANSFER_SIZE);
    free(client.printed);
}

/* 2. SIGPIPE and EPIPE: main ignores SIGPIPE, so its send loop reports a peer that has gone. */

static void
tcp_client_send_loop_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored(void **state) {
    (void)state;
    /* A UNIX stream socket (tcp_client -u): there a send to a closed peer fails at once, as
     * over a socket pair. Over TCP the first send would still go out, and only the peer's
     * answer (a reset) would make a later one fail. */
    char path[sizeof((struct sockaddr_un *)0)->sun_path];
    snprintf(path, sizeof path, "%s", temp_path("peer"));
    int listener = unix_socket(SOCK_STREAM, path);
    assert_int_equal(listen(listener, 1), 0);

    struct child client;
    if (start_child(&client, true) == 0)
        exit(run_tcp_client(TCP_CLIENT("-u", path)));
    /* The server goes before it says a word: the client receives nothing, then replies. */
    close_tracked(accept_peer(listener));
    finish_child(&client);
    close_tracked(listener);

    assert_string_equal(client.output, "tcp_client: send: Broken pipe\n");
    assert_string_equal(client.ending, "exit 1");
    assert_printed(&client, CONNECTED, NULL, 0, "\n");
    free(client.printed);
}

/* 3. The receive loop in tcp_client's main. */

static void
tcp_client_receive_loop_prints_exactly_what_arrived_across_chunk_boundaries(void **state) {
    (void)state;
    const size_t chunk_sizes[] = {1, 2, 3, 7, 4096 + 1, BUFFER_SIZE + 1, 2 * BUFFER_SIZE - 1};
    size_t sent_size = 0;
    for (size_t chunk = 0; chunk < sizeof chunk_sizes / sizeof chunk_sizes[0]; chunk++)
        sent_size += chunk_sizes[chunk];
    fill_pattern(sent_bytes, sent_size);
    char port[PORT_SIZE];
    int listener = listener_for_client(port);

    struct child client;
    if (start_child(&client, true) == 0)
        exit(run_tcp_client(TCP_CLIENT("-p", port)));
    /* One send per chunk; recv returns whatever has arrived, in pieces of its own. */
    int peer = accept_peer(listener);
    size_t offset = 0;
    bool each_sent_whole = true;
    for (size_t chunk = 0; chunk < sizeof chunk_sizes / sizeof chunk_sizes[0]; chunk++) {
        ssize_t bytes_sent = send(peer, sent_bytes + offset, chunk_sizes[chunk], 0);
        each_sent_whole = each_sent_whole && bytes_sent == (ssize_t)chunk_sizes[chunk];
        offset += chunk_sizes[chunk];
    }
    shutdown(peer, SHUT_WR);
    char reply[sizeof REPLY + 1];
    ssize_t reply_size = receive_all(peer, reply, sizeof reply);
    close_tracked(peer);
    close_tracked(listener);
    finish_child(&client);

    assert_true(each_sent_whole);
    assert_string_equal(client.output, "");
    assert_string_equal(client.ending, "exit 0");
    assert_printed(&client, CONNECTED, sent_bytes, sent_size, REPLY_SENT);
    assert_int_equal(reply_size, strlen(REPLY));
    assert_memory_equal(reply, REPLY, strlen(REPLY));
    free(client.printed);
}

static void tcp_client_receive_loop_fails_when_the_receive_timeout_passes(void **state) {
    (void)state;
    char port[PORT_SIZE];
    int listener = listener_for_client(port);

    struct child client;
    if (start_child(&client, true) == 0)
        exit(run_tcp_client(TCP_CLIENT("-p", port, "-t", RECEIVE_TIMEOUT_S)));
    /* Some bytes, but no end of stream: the peer stays open until the client has gone. */
    int peer = accept_peer(listener);
    ssize_t bytes_sent = send(peer, "partial", 7, 0);
    finish_child(&client);
    close_tracked(peer);
    close_tracked(listener);

    assert_int_equal(bytes_sent, 7);
    assert_string_equal(client.output, "tcp_client: no data within " RECEIVE_TIMEOUT_S " s\n");
    assert_string_equal(client.ending, "exit 1");
    /* What came before the timeout is printed all the same. */
    assert_printed(&client, CONNECTED, "partial", 7, "\n");
    free(client.printed);
}

/* 4. next_piece: -m - sends all of stdin. */

static void tcp_client_next_piece_copies_a_whole_pipe_to_the_socket(void **state) {
    (void)state;
    fill_pattern(sent_bytes, PIPE_TRANSFER_SIZE);
    int data_pipe[2];
    make_pipe(data_pipe);
    char port[PORT_SIZE];
    int listener = listener_for_client(port);

    /* writer | tcp_client -m - -> socket -> this process, each in its own process. */
    struct child writer, client;
    if (start_child(&writer, true) == 0) {
        close(data_pipe[0]);
        /* A blocking write to a pipe returns only once all is written (no signals here). */
        ssize_t written = write(data_pipe[1], sent_bytes, PIPE_TRANSFER_SIZE);
        _exit(written == PIPE_TRANSFER_SIZE ? 0 : 1);
    }
    close(data_pipe[1]);
    if (start_child(&client, true) == 0) {
        dup2(data_pipe[0], STDIN_FILENO);
        close(data_pipe[0]);
        exit(run_tcp_client(TCP_CLIENT("-p", port, "-m", "-")));
    }
    close(data_pipe[0]);
    int peer = accept_peer(listener);
    shutdown(peer, SHUT_WR);
    ssize_t received_size = receive_all(peer, received_bytes, PIPE_TRANSFER_SIZE + 1);
    close_tracked(peer);
    close_tracked(listener);
    finish_child(&writer);
    finish_child(&client);

    assert_string_equal(writer.ending, "exit 0");
    assert_string_equal(client.output, "");
    assert_string_equal(client.ending, "exit 0");
    assert_printed(&client, CONNECTED, NULL, 0, REPLY_SENT);
    assert_int_equal(received_size, PIPE_TRANSFER_SIZE);
    assert_memory_equal(received_bytes, sent_bytes, PIPE_TRANSFER_SIZE);
    free(writer.printed);
    free(client.printed);
}

/* 5. connect_retry. */

static void tcp_client_connect_retry_connects_to_a_loopback_listener(void **state) {
    (void)state;
    int port;
    int listener = listen_on_loopback(&port);
    struct sockaddr_in address = loopback(port);
    int client = tracked(socket(AF_INET, SOCK_STREAM, 0));

    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    assert_int_equal(result, 0);
    close_tracked(accept_peer(listener)); /* fails the test unless the connection is there */
    close_tracked(client);
    close_tracked(listener);
}

static void tcp_client_connect_retry_fails_with_econnrefused_when_nothing_listens(void **state) {
    (void)state;
    /* A bound socket that does not listen holds the port, so no one else can take it. */
    struct sockaddr_in address = loopback(refusing_port(SOCK_STREAM));
    int client = tracked(socket(AF_INET, SOCK_STREAM, 0));

    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int connect_errno = errno;
    close_tracked(client);

    assert_int_equal(result, -1);
    assert_errno_equal(connect_errno, ECONNREFUSED);
}

static void tcp_client_connect_retry_survives_signals_while_the_handshake_waits(void **state) {
    (void)state;
    int port;
    int listener = bound_on_loopback(SOCK_STREAM, &port);
    assert_int_equal(listen(listener, 0), 0);
    struct sockaddr_in address = loopback(port);

    /* One connection fills the queue of a listener with backlog 0. The kernel then drops a
     * new client's SYN, and the client sends it again only a second later: until then its
     * connect waits, and each tick interrupts it. Tick 5 accepts the first connection, so
     * the SYN sent again finds room. */
    int first = connect_to_loopback(port);
    assert_true(wait_for_socket(listener, POLLIN, now_ms() + TIME_LIMIT_MS));
    int client = tracked(socket(AF_INET, SOCK_STREAM, 0));

    start_ticking((struct ticking){
        .interval_us = TICK_US, .wake_on = ROOM_TICK, .action = accept_one, .fd = listener});
    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int ticks_seen = ticks;
    stop_ticking();
    assert_int_equal(result, 0);
    assert_in_range(ticks_seen, ROOM_TICK, INT_MAX);
    close_tracked(accept_peer(listener)); /* fails the test unless the connection is there */
    close(accepted_by_handler);
    close_tracked(client);
    close_tracked(first);
    close_tracked(listener);
}

/* 6. RETRY_ON_EINTR: real signals interrupt real calls. */

static void make_socket_pair(int pair[2]) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
}

/* In a child: send one byte to a peer that has closed its end, report, and exit. */
static void send_to_a_closed_peer_and_report(void) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == -1)
        die("socketpair");
    close(pair[1]);
    ssize_t result = send(pair[0], "x", 1, 0);
    fprintf(stderr, "send returned %d: %s\n", (int)result, strerror(errno));
    _exit(0);
}

static void retry_on_eintr_keeps_a_recv_going_through_signals(void **state) {
    (void)state;
    int pair[2];
    make_socket_pair(pair);
    char byte;

    /* The control: with nothing to read, the first signal makes a plain recv fail. */
    start_ticking((struct ticking){.interval_us = TICK_US});
    ssize_t plain_result = recv(pair[0], &byte, 1, 0);
    int plain_errno = errno;
    stop_ticking();

    /* RETRY_ON_EINTR receives again after each signal; the third one writes the byte. */
    start_ticking((struct ticking){
        .interval_us = TICK_US, .wake_on = WAKE_TICK, .action = write_one_byte, .fd = pair[1]});
    ssize_t retry_result;
    RETRY_ON_EINTR(retry_result, recv(pair[0], &byte, 1, 0));
    int ticks_seen = ticks;
    stop_ticking();
    close(pair[0]);
    close(pair[1]);

    assert_int_equal(plain_result, -1);
    assert_errno_equal(plain_errno, EINTR);
    assert_int_equal(retry_result, 1);
    assert_int_equal(byte, '!');
    assert_in_range(ticks_seen, WAKE_TICK, INT_MAX);
}

static void retry_on_eintr_keeps_a_read_going_through_signals(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    char byte;

    /* The control: a plain read of an empty pipe fails at the first signal. */
    start_ticking((struct ticking){.interval_us = TICK_US});
    ssize_t plain_result = read(ends[0], &byte, 1);
    int plain_errno = errno;
    stop_ticking();

    /* RETRY_ON_EINTR reads again after each signal; the third one writes the byte. */
    start_ticking((struct ticking){
        .interval_us = TICK_US, .wake_on = WAKE_TICK, .action = write_one_byte, .fd = ends[1]});
    ssize_t retry_result;
    RETRY_ON_EINTR(retry_result, read(ends[0], &byte, 1));
    int ticks_seen = ticks;
    stop_ticking();
    close(ends[0]);
    close(ends[1]);

    assert_int_equal(plain_result, -1);
    assert_errno_equal(plain_errno, EINTR);
    assert_int_equal(retry_result, 1);
    assert_int_equal(byte, '!');
    assert_in_range(ticks_seen, WAKE_TICK, INT_MAX);
}

/* 7. SIGPIPE and EPIPE: set_up_program ignores SIGPIPE. */

static void send_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        set_up_program("/some/dir/prog"); /* which ignores SIGPIPE */
        send_to_a_closed_peer_and_report();
    }
    finish_child(&child);

    assert_string_equal(child.output, "send returned -1: Broken pipe\n");
    assert_string_equal(child.ending, "exit 0");
}

static void send_to_a_closed_peer_kills_a_process_that_keeps_sigpipe(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        signal(SIGPIPE, SIG_DFL); /* as a program starts, whatever ran these tests */
        send_to_a_closed_peer_and_report();
    }
    finish_child(&child);

    assert_string_equal(child.output, "");
    assert_string_equal(child.ending, killed_by(SIGPIPE));
}

/* 8. Error messages and exit codes. */

static void die_prints_the_program_what_and_strerror_then_exits_1(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        program_name = "prog";
        errno = ECONNREFUSED;
        die("connect");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: connect: Connection refused\n");
    assert_string_equal(child.ending, "exit 1");
}

static void fail_prints_the_program_what_and_why_then_exits_1(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        program_name = "prog";
        fail("what", "why");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: what: why\n");
    assert_string_equal(child.ending, "exit 1");
}

static void usage_error_prints_the_program_and_message_then_exits_2(void **state) {
    (void)state;
    struct child child;
    if (start_child(&child, false) == 0) {
        program_name = "prog";
        usage_error("bad port");
        _exit(RETURNED);
    }
    finish_child(&child);

    assert_string_equal(child.output, "prog: bad port\n");
    assert_string_equal(child.ending, "exit 2");
}

/* 9. read_whole: all of stdin for -m -, through a real pipe, written and closed before it is read.
 */

static void read_whole_returns_the_size_of_input_shorter_than_the_buffer(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    assert_int_equal(write(ends[1], "hello", 5), 5);
    close(ends[1]);

    char buffer[16];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    close(ends[0]);

    assert_int_equal(result, 5);
    assert_memory_equal(buffer, "hello", 5);
}

static void read_whole_fails_with_emsgsize_when_input_fills_the_buffer(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    assert_int_equal(write(ends[1], "12345678", 8), 8);
    close(ends[1]);

    char buffer[8];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    int read_errno = errno;
    close(ends[0]);

    assert_int_equal(result, -1);
    assert_errno_equal(read_errno, EMSGSIZE);
}

static void read_whole_returns_zero_for_empty_input(void **state) {
    (void)state;
    int ends[2];
    make_pipe(ends);
    close(ends[1]);

    char buffer[16];
    ssize_t result = read_whole(ends[0], buffer, sizeof buffer);
    close(ends[0]);

    assert_int_equal(result, 0);
}

/* 10. track_connection: a connection still open at exit is aborted, a closed one is not, even
 * when a new socket has taken its number. */

/* How the peer sees the end of its connection: "the end of the stream" (FIN), or the error
 * (a reset: "Connection reset by peer"). */
static const char *how_it_ended(int peer) {
    if (!wait_for_socket(peer, POLLIN, now_ms() + TIME_LIMIT_MS))
        return "nothing within the time limit";
    char byte;
    ssize_t result = recv(peer, &byte, 1, 0);
    return result == 0 ? "the end of the stream" : result == -1 ? strerror(errno) : "a byte";
}

/* In a child: a new TCP connection to 127.0.0.1:port, or exit 1. */
static int connect_or_exit(int port) {
    struct sockaddr_in address = loopback(port);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1 || connect(sock, (struct sockaddr *)&address, sizeof address) == -1)
        die("connect");
    return sock;
}

static void a_watched_connection_still_open_at_exit_is_aborted(void **state) {
    (void)state;
    int port;
    int listener = listen_on_loopback(&port);
    struct child child;
    if (start_child(&child, false) == 0) {
        track_connection(connect_or_exit(port));
        exit(1); /* as die does, in the middle of a message */
    }
    int peer = accept_peer(listener);
    finish_child(&child);

    assert_string_equal(child.ending, "exit 1");
    assert_string_equal(how_it_ended(peer), strerror(ECONNRESET));
}

static void a_closed_connection_is_not_aborted_at_exit_when_its_number_is_reused(void **state) {
    (void)state;
    int port;
    int listener = listen_on_loopback(&port);
    struct child child;
    if (start_child(&child, false) == 0) {
        int first = connect_or_exit(port);
        track_connection(first);
        close_connection(first);
        /* The lowest free number is the one just closed: a new socket gets it. */
        int second = connect_or_exit(port);
        fprintf(stderr, "%s\n",
                second == first ? "the second connection has the first's number"
                                : "the second connection has a number of its own");
        exit(0); /* the second is still open: exit closes it, the normal way */
    }
    int first_peer = accept_peer(listener);
    int second_peer = accept_peer(listener);
    finish_child(&child);

    assert_string_equal(child.output, "the second connection has the first's number\n");
    assert_string_equal(child.ending, "exit 0");
    assert_string_equal(how_it_ended(first_peer), "the end of the stream");
    assert_string_equal(how_it_ended(second_peer), "the end of the stream");
}

int main(void) {
    program_name = "test";

    /* Every wait above has a time limit. A bug that loops without waiting meets this one:
     * after CPU_LIMIT_S seconds of CPU time the kernel ends the run with SIGXCPU. */
    struct rlimit cpu_limit = {CPU_LIMIT_S, CPU_LIMIT_S + 1};
    if (setrlimit(RLIMIT_CPU, &cpu_limit) == -1)
        die("setrlimit");

    const struct CMUnitTest tests[] = {
        TEST(tcp_client_send_loop_survives_partial_writes_and_interruptions),
        TEST(tcp_client_send_loop_delivers_megabytes_through_signals_and_a_full_buffer),
        TEST(tcp_client_send_loop_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored),
        TEST(tcp_client_receive_loop_prints_exactly_what_arrived_across_chunk_boundaries),
        TEST(tcp_client_receive_loop_fails_when_the_receive_timeout_passes),
        TEST(tcp_client_next_piece_copies_a_whole_pipe_to_the_socket),
        TEST(tcp_client_connect_retry_connects_to_a_loopback_listener),
        TEST(tcp_client_connect_retry_fails_with_econnrefused_when_nothing_listens),
        TEST(tcp_client_connect_retry_survives_signals_while_the_handshake_waits),
        TEST(retry_on_eintr_keeps_a_recv_going_through_signals),
        TEST(retry_on_eintr_keeps_a_read_going_through_signals),
        TEST(send_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored),
        TEST(send_to_a_closed_peer_kills_a_process_that_keeps_sigpipe),
        TEST(die_prints_the_program_what_and_strerror_then_exits_1),
        TEST(fail_prints_the_program_what_and_why_then_exits_1),
        TEST(usage_error_prints_the_program_and_message_then_exits_2),
        TEST(read_whole_returns_the_size_of_input_shorter_than_the_buffer),
        TEST(read_whole_fails_with_emsgsize_when_input_fills_the_buffer),
        TEST(read_whole_returns_zero_for_empty_input),
        TEST(a_watched_connection_still_open_at_exit_is_aborted),
        TEST(a_closed_connection_is_not_aborted_at_exit_when_its_number_is_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
