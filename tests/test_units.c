#define _POSIX_C_SOURCE 200809L

/* test_stream_loops.c: unit tests for the stream code of examples/tcp_client.c, which the
 * shared header used to hold: the send loop and the receive loop written out in its main,
 * next_piece (-m -: stdin a piece at a time) and connect_retry. The program's source is
 * compiled into this file, its main renamed tcp_client_main, and runs in a child process
 * against a peer socket this process holds on loopback: with signals that interrupt its
 * calls, a send that takes only part of what it is given, a peer that has gone. Nothing waits
 * without a time limit, so a bug fails a test rather than hanging it.
 * Run: make build/test_stream_loops && ./build/test_stream_loops */

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
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h> /* needs setjmp.h, stdarg.h, stddef.h and stdint.h first */
#undef fail /* cmocka's fail() macro would hide the header's fail(); we use its asserts only */

/* tcp_client's send loops call send. In this file they call fake_send instead, which passes
 * each call on to the real send (the #undef below brings it back) and counts what came back.
 * Its main becomes tcp_client_main, for a child process to call. */
static ssize_t fake_send(int sock, const void *data, size_t size, int flags);
#define send fake_send
#define main tcp_client_main
#include "../examples/hardened/tcp_client.c"
#include "../examples/hardened/plumbing.c"
#undef main
#undef send

#include "children.h"
#include "ticks.h"

enum {
    TIME_LIMIT_S = 5,      /* the longest a test waits for anything */
    CPU_LIMIT_S = 10,      /* ends a run stuck in a loop that never waits */
    TICK_US = 20000,       /* a SIGALRM every 20 ms */
    ROOM_TICK = 5,         /* the tick that makes room in a full accept queue */
    STINGY_SEND_BYTES = 3, /* the most the fake send takes at once, when told to */
    MESSAGE_SIZE = 101,
    PIPE_TRANSFER_SIZE = 1 << 20,
    LARGE_TRANSFER_SIZE = 4 << 20,
    READ_SIZE = 65536, /* the most receive_all asks for at once */
    OUTPUT_SIZE = 512,
    PORT_SIZE = sizeof "65535",
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

/* Bytes that differ from their neighbours and never line up with a buffer size (251 is
 * prime), so a lost, repeated or reordered chunk shows. Never 0, and a '\0' follows them
 * (buffer holds size + 1), so that they can be a -m TEXT as well. */
static void fill_pattern(char *buffer, size_t size) {
    for (size_t offset = 0; offset < size; offset++)
        buffer[offset] = (char)(1 + offset % 251);
    buffer[size] = '\0';
}

static void make_pipe(int ends[2]) { assert_int_equal(pipe(ends), 0); }

/* Read from `fd` until end of stream, until `buffer` is full or until TIME_LIMIT_S passes.
 * Returns the bytes read: pass room for one byte more than expected, to catch any extra. */
static size_t receive_all(int fd, char *buffer, size_t capacity) {
    struct timespec deadline = time_limit_from_now(TIME_LIMIT_S);
    size_t filled = 0;
    while (filled < capacity && readable_before(fd, deadline)) {
        size_t room = capacity - filled;
        ssize_t bytes_read = read(fd, buffer + filled, room < READ_SIZE ? room : READ_SIZE);
        if (bytes_read <= 0)
            break;
        filled += (size_t)bytes_read;
    }
    return filled;
}

/* A TCP socket bound to 127.0.0.1 on a port the kernel picks; `address` gets that port. */
static int bind_loopback(struct sockaddr_in *address) {
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(sock, -1);
    *address = (struct sockaddr_in){.sin_family = AF_INET};
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof *address;
    assert_int_equal(bind(sock, (struct sockaddr *)address, length), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)address, &length), 0);
    return sock;
}

static int listen_on_loopback(struct sockaddr_in *address, int backlog) {
    int listener = bind_loopback(address);
    assert_int_equal(listen(listener, backlog), 0);
    return listener;
}

/* The port of `address` as text, for tcp_client's -p. */
static void port_text(const struct sockaddr_in *address, char port[PORT_SIZE]) {
    snprintf(port, PORT_SIZE, "%d", ntohs(address->sin_port));
}

/* accept, waiting at most TIME_LIMIT_S for a connection; -1 if none came. Blocking sends and
 * receives on the new socket give up after TIME_LIMIT_S too (EAGAIN), so a client that stops
 * reading or writing fails the test instead of hanging it. */
static int accept_in_time(int listener) {
    if (!readable_before(listener, time_limit_from_now(TIME_LIMIT_S)))
        return -1;
    int peer = accept(listener, NULL, NULL);
    struct timeval limit = {TIME_LIMIT_S, 0};
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(peer, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    return peer;
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
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    char port[PORT_SIZE];
    port_text(&address, port);

    /* Every other send fails with EINTR, and the others take at most 3 bytes. */
    struct child client;
    if (start_child(&client, true) == 0) {
        configure_fake_send(STINGY_SEND_BYTES, true, -1);
        int result = run_tcp_client(TCP_CLIENT("-p", port, "-m", message));
        fprintf(stderr, "tcp_client returned %d after %d sends\n", result, fake.calls);
        exit(0);
    }
    /* The server says nothing (the client's receive loop ends at once), then reads. */
    int peer = accept_in_time(listener);
    shutdown(peer, SHUT_WR);
    char received[MESSAGE_SIZE + 1];
    size_t received_size = receive_all(peer, received, sizeof received);
    close(peer);
    close(listener);
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
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    char port[PORT_SIZE];
    port_text(&address, port);
    int go[2];
    make_pipe(go);

    /* The client's one big send fills the buffers and waits, as nobody reads yet. A tick
     * cuts that send short; the next ones interrupt sends that moved nothing. Once it has
     * seen both, fake_send tells this process to start reading. */
    struct child client;
    if (start_child(&client, true) == 0) {
        close(go[0]);
        configure_fake_send(SIZE_MAX, false, go[1]);
        start_ticking(TICK_US, NO_WAKE, NULL, -1);
        int result = run_tcp_client(TCP_CLIENT("-p", port, "-m", sent_bytes));
        stop_ticking();
        fprintf(stderr, "tcp_client returned %d; sends cut short: %s; sends interrupted: %s\n",
                result, fake.cut_short > 0 ? "some" : "none",
                fake.interrupted > 0 ? "some" : "none");
        exit(0);
    }
    close(go[1]);
    int peer = accept_in_time(listener);
    shutdown(peer, SHUT_WR);
    readable_before(go[0], time_limit_from_now(TIME_LIMIT_S));
    size_t received_size = receive_all(peer, received_bytes, LARGE_TRANSFER_SIZE + 1);
    close(peer);
    close(listener);
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
    char directory[] = "/tmp/test_stream_loops.XXXXXX";
    assert_non_null(mkdtemp(directory));
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "%s/peer", directory);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_not_equal(listener, -1);
    assert_int_equal(bind(listener, (struct sockaddr *)&address, sizeof address), 0);
    assert_int_equal(listen(listener, 1), 0);

    struct child client;
    if (start_child(&client, true) == 0)
        exit(run_tcp_client(TCP_CLIENT("-u", address.sun_path)));
    /* The server goes before it says a word: the client receives nothing, then replies. */
    int peer = accept_in_time(listener);
    close(peer);
    finish_child(&client);
    close(listener);
    unlink(address.sun_path);
    rmdir(directory);

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
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    char port[PORT_SIZE];
    port_text(&address, port);

    struct child client;
    if (start_child(&client, true) == 0)
        exit(run_tcp_client(TCP_CLIENT("-p", port)));
    /* One send per chunk; recv returns whatever has arrived, in pieces of its own. */
    int peer = accept_in_time(listener);
    size_t offset = 0;
    bool each_sent_whole = true;
    for (size_t chunk = 0; chunk < sizeof chunk_sizes / sizeof chunk_sizes[0]; chunk++) {
        ssize_t bytes_sent = send(peer, sent_bytes + offset, chunk_sizes[chunk], 0);
        each_sent_whole = each_sent_whole && bytes_sent == (ssize_t)chunk_sizes[chunk];
        offset += chunk_sizes[chunk];
    }
    shutdown(peer, SHUT_WR);
    char reply[sizeof REPLY + 1];
    size_t reply_size = receive_all(peer, reply, sizeof reply);
    close(peer);
    close(listener);
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
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    char port[PORT_SIZE];
    port_text(&address, port);

    struct child client;
    if (start_child(&client, true) == 0)
        exit(run_tcp_client(TCP_CLIENT("-p", port, "-t", RECEIVE_TIMEOUT_S)));
    /* Some bytes, but no end of stream: the peer stays open until the client has gone. */
    int peer = accept_in_time(listener);
    ssize_t bytes_sent = send(peer, "partial", 7, 0);
    finish_child(&client);
    close(peer);
    close(listener);

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
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    char port[PORT_SIZE];
    port_text(&address, port);

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
    int peer = accept_in_time(listener);
    shutdown(peer, SHUT_WR);
    size_t received_size = receive_all(peer, received_bytes, PIPE_TRANSFER_SIZE + 1);
    close(peer);
    close(listener);
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
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 1);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(client, -1);

    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int accepted = accept_in_time(listener);
    close(accepted);
    close(client);
    close(listener);

    assert_int_equal(result, 0);
    assert_int_not_equal(accepted, -1);
}

static void tcp_client_connect_retry_fails_with_econnrefused_when_nothing_listens(void **state) {
    (void)state;
    /* A bound socket that does not listen holds the port, so no one else can take it. */
    struct sockaddr_in address;
    int not_listening = bind_loopback(&address);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(client, -1);

    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int connect_errno = errno;
    close(client);
    close(not_listening);

    assert_int_equal(result, -1);
    assert_errno_equal(connect_errno, ECONNREFUSED);
}

static void tcp_client_connect_retry_survives_signals_while_the_handshake_waits(void **state) {
    (void)state;
    struct sockaddr_in address;
    int listener = listen_on_loopback(&address, 0);

    /* One connection fills the queue of a listener with backlog 0. The kernel then drops a
     * new client's SYN, and the client sends it again only a second later: until then its
     * connect waits, and each tick interrupts it. Tick 5 accepts the first connection, so
     * the SYN sent again finds room. */
    int first = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(first, (struct sockaddr *)&address, sizeof address), 0);
    assert_true(readable_before(listener, time_limit_from_now(TIME_LIMIT_S)));
    int client = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(client, -1);

    start_ticking(TICK_US, ROOM_TICK, accept_one, listener);
    int result = connect_retry(client, (struct sockaddr *)&address, sizeof address);
    int ticks_seen = ticks;
    stop_ticking();
    int accepted = accept_in_time(listener);
    close(accepted);
    close(accepted_by_handler);
    close(client);
    close(first);
    close(listener);

    assert_int_equal(result, 0);
    assert_in_range(ticks_seen, ROOM_TICK, INT_MAX);
    assert_int_not_equal(accepted, -1);
}

int main(int argc, char **argv) {
    (void)argv;
    (void)argc;
    program_name = "test";

    /* Every wait above has a time limit. A bug that loops without waiting meets this one:
     * after CPU_LIMIT_S seconds of CPU time the kernel ends the run with SIGXCPU. */
    struct rlimit cpu_limit = {CPU_LIMIT_S, CPU_LIMIT_S + 1};
    if (setrlimit(RLIMIT_CPU, &cpu_limit) == -1)
        die("setrlimit");

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tcp_client_send_loop_survives_partial_writes_and_interruptions),
        cmocka_unit_test(tcp_client_send_loop_delivers_megabytes_through_signals_and_a_full_buffer),
        cmocka_unit_test(
            tcp_client_send_loop_to_a_closed_peer_fails_with_epipe_once_sigpipe_is_ignored),
        cmocka_unit_test(
            tcp_client_receive_loop_prints_exactly_what_arrived_across_chunk_boundaries),
        cmocka_unit_test(tcp_client_receive_loop_fails_when_the_receive_timeout_passes),
        cmocka_unit_test(tcp_client_next_piece_copies_a_whole_pipe_to_the_socket),
        cmocka_unit_test(tcp_client_connect_retry_connects_to_a_loopback_listener),
        cmocka_unit_test(tcp_client_connect_retry_fails_with_econnrefused_when_nothing_listens),
        cmocka_unit_test(tcp_client_connect_retry_survives_signals_while_the_handshake_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
