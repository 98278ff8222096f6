#define _GNU_SOURCE /* prlimit (Linux): lower and raise a running server's descriptor limit */
/* test_load.c: the hardened servers (examples/hardened/) under the load that real clients
 * bring. A burst: a thousand clients that connect all at once (a restart, a reconnect storm),
 * not politely one after another; each must get its greeting, none may be left waiting. A
 * server that runs out of descriptors (EMFILE) with no client connected must not stay deaf
 * once it has some again; select_server refuses the clients beyond FD_SETSIZE and serves the
 * others. A client that sends and never reads stalls nobody, and costs the server no more
 * memory than its buffers (backpressure). And echo_load, the load generator of `make bench`,
 * runs clean against each event server. Servers start on -p 0 and tell us their port in the
 * ready line: no fixed port, no sleep. Run from the repository root: build/test_load
 * (BIN_DIR=dir picks other binaries; echo_load is taken from the directory of this test). */
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
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    BURST = 1000,                   /* clients that connect at once */
    SPARE_FDS = 64,                 /* ours besides the burst: pipes, the harness, cmocka */
    BURST_MS = 30 * 1000,           /* for the whole burst to be served */
    GREETING_ROOM = 64,             /* bytes we keep of what a client receives */
    RECOVERY_MS = 10 * 1000,        /* for a server to accept again once it has descriptors */
    EXTRA_CLIENTS = 20,             /* connections beyond FD_SETSIZE */
    FILES_LIMIT = 2048,             /* RLIMIT_NOFILE for FD_SETSIZE + EXTRA_CLIENTS connections */
    SELECT_SERVER_OWN_FDS = 4,      /* stdin, stdout, stderr and the listener, all below 1024 */
    CONVERSATION_MS = 5 * 1000,     /* a small conversation, even next to a hostile client */
    HOG_DEADLINE_MS = 30 * 1000,    /* to get the hog stuck, or to read its echo back */
    MEANWHILE_BYTES = 1 << 20,      /* pushed before a client comes in while the hog pushes */
    HOG_LIMIT = 256 << 20,          /* the most the hog pushes: far more than the kernel holds */
    VALGRIND_HOG_LIMIT = 32 << 20,  /* under valgrind (memory is not checked there) */
    PEAK_MEMORY_LIMIT_KB = 8 << 10, /* a server's peak resident memory (VmHWM) meanwhile */
    CHUNK_SIZE = 1 << 16,
    HOG_CLIENTS = 4,  /* the hog, the probe, a client while the hog pushes and one after */
    LOAD_CLIENTS = 3, /* echo_load's smoke run: a few clients, one second */
};

#define EVENT_GREETING "Hello!\n"
#define TCP_GREETING "Hello!"
#define REFUSAL "select_server: refusing a client: select handles descriptors below 1024"

static char echo_load[4096]; /* the load generator's path: next to this test's binary */

/* One client of the burst: its socket, what it has received, and whether it is done. */
struct burst_client {
    int sock;
    bool connected, done;
    size_t length;
    char received[GREETING_ROOM];
};

static struct burst_client clients[BURST];

/* Read what a client has been sent; at the end of the stream it closes, which ends it for the
 * server too (no byte of ours is left unread, so the close is a clean FIN). */
static void read_client(struct burst_client *client) {
    char chunk[GREETING_ROOM];
    ssize_t length = recv(client->sock, chunk, sizeof chunk, 0);
    if (length == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (length > 0) {
        size_t room = sizeof client->received - client->length;
        size_t kept = (size_t)length < room ? (size_t)length : room;
        memcpy(client->received + client->length, chunk, kept);
        client->length += kept;
        return;
    }
    close_tracked(client->sock);
    client->done = true;
}

/* Connect `count` clients at once to the port and serve them all in one poll loop until each
 * has read the server's whole message and its end, or the deadline passes. Returns how many
 * are done. */
static int run_burst(int port, int count, int timeout_ms) {
    for (int i = 0; i < count; i++)
        clients[i] = (struct burst_client){.sock = start_connecting(port)};
    static struct pollfd poll_set[BURST];
    static int owner[BURST];
    long long deadline = now_ms() + timeout_ms;
    int done = 0;
    while (done < count && ms_until(deadline) > 0) {
        nfds_t used = 0;
        for (int i = 0; i < count; i++) {
            if (clients[i].done)
                continue;
            poll_set[used] = (struct pollfd){.fd = clients[i].sock,
                                             .events = clients[i].connected ? POLLIN : POLLOUT};
            owner[used++] = i;
        }
        int ready = poll(poll_set, used, ms_until(deadline));
        if (ready == -1 && errno == EINTR)
            continue;
        assert_int_not_equal(ready, -1);
        for (nfds_t j = 0; j < used; j++) {
            struct burst_client *client = &clients[owner[j]];
            if (poll_set[j].revents == 0)
                continue;
            if (!client->connected) {
                int error = 0;
                socklen_t length = sizeof error;
                assert_int_equal(getsockopt(client->sock, SOL_SOCKET, SO_ERROR, &error, &length),
                                 0);
                if (error != 0)
                    fail_msg("client %d could not connect: %s", owner[j], strerror(error));
                client->connected = true;
                continue;
            }
            read_client(client);
            done += client->done;
        }
    }
    return done;
}

/* Every client of the burst got exactly `greeting`; say which did not. */
static void check_greetings(int count, const char *greeting) {
    int wrong = 0;
    for (int i = 0; i < count; i++) {
        if (clients[i].done && clients[i].length == strlen(greeting) &&
            memcmp(clients[i].received, greeting, clients[i].length) == 0)
            continue;
        if (wrong++ < 5)
            print_error("client %d %s: received %s\n", i,
                        clients[i].done ? "finished" : "never finished",
                        shown(clients[i].received, clients[i].length));
    }
    if (wrong > 0)
        fail_msg("%d of %d clients did not get exactly %s and the end of the stream", wrong, count,
                 shown(greeting, strlen(greeting)));
}

static void close_unfinished(int count) {
    for (int i = 0; i < count; i++)
        if (!clients[i].done && clients[i].sock > 0)
            close_tracked(clients[i].sock);
    memset(clients, 0, sizeof clients);
}

/* Let us (and so the servers we start) open BURST connections and more. */
static void allow_the_burst(void) {
    if (!allow_open_files(BURST + SPARE_FDS))
        fail_msg("the descriptor limit is too low: this test needs %d (ulimit -Hn)",
                 BURST + SPARE_FDS);
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

/* ---- a burst of clients ---- */

static void greets_every_client_of_a_burst_of_1000_connecting_at_once(void **state) {
    const char *name = server_of(state);
    allow_the_burst();
    struct process *server =
        start_program(ARGV(name, "-p", "0", "-n", formatted("%d", BURST), "-t", "0"), NULL);
    int port = atoi(ready_port(server));

    int done = run_burst(port, BURST, slow(BURST_MS));
    check_greetings(BURST, EVENT_GREETING);
    assert_int_equal(done, BURST);

    assert_exit(server, 0);
    assert_int_equal(count_lines(&server->out, "accepting new socket"), BURST);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), BURST);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %d\n", name, port));
}

static void tcp_server_greets_every_client_of_a_burst_of_1000_in_turn(void **state) {
    (void)state;
    allow_the_burst();
    struct process *server = start_program(ARGV("tcp_server", "-p", "0", "-n", "0"), NULL);
    int port = atoi(ready_port(server));

    /* tcp_server serves one client at a time: the others wait in the listen queue, and none
     * may be lost there. Each says nothing and closes after the greeting. */
    int done = run_burst(port, BURST, slow(BURST_MS));
    check_greetings(BURST, TCP_GREETING);
    assert_int_equal(done, BURST);

    /* -n 0 serves for ever: it has said the reply (nothing) of every client, then waits. */
    static char lines[BURST * sizeof "Got from client: \n"];
    lines[0] = '\0';
    for (int i = 0; i < BURST; i++)
        strcat(lines, "Got from client: \n");
    assert_true(wait_for_output(server, lines, slow(FINISH_TIMEOUT_MS)));
    assert_true(is_running(server));
    stop(server);
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %d\n", port));
}

/* ---- out of descriptors with no client connected ---- */

#ifdef __linux__
/* The number the process's next descriptor would get: the lowest one not open (Linux:
 * /proc/PID/fd). A descriptor limit (RLIMIT_NOFILE) of that number leaves it none. */
static int next_descriptor(pid_t pid) {
    for (int fd = 0;; fd++)
        if (access(formatted("/proc/%d/fd/%d", (int)pid, fd), F_OK) == -1)
            return fd;
}

/* One client that connects, reads all the server sends until its end, and closes. */
static const char *one_client(int port) {
    run_burst(port, 1, slow(FINISH_TIMEOUT_MS));
    const char *received = formatted("%.*s%s", (int)clients[0].length, clients[0].received,
                                     clients[0].done ? "" : " (still waiting)");
    close_unfinished(1);
    return received;
}
#endif

static void accepts_again_when_descriptors_free_up_with_no_client_connected(void **state) {
    const char *name = server_of(state);
#ifndef __linux__
    print_message("prlimit and /proc are Linux only; test skipped\n");
    skip();
#else
    struct process *server = start_program(ARGV(name, "-p", "0", "-n", "2", "-t", "0"), NULL);
    int port = atoi(ready_port(server));
    assert_string_equal(one_client(port), EVENT_GREETING); /* client 1 comes and goes */
    assert_true(wait_for_output(server, "socket disconnected\n", slow(FINISH_TIMEOUT_MS)));

    /* No client now, and no descriptor to spare: the next accept fails with EMFILE. The
     * server turns that client away (it sees the end of the stream at once), and must not
     * stop watching for the next one. Under valgrind, which keeps descriptors of its own,
     * the limit is on valgrind's count: skip it there. */
    if (under_valgrind()) {
        print_message("under valgrind: descriptor limits not tested\n");
        stop(server);
        return;
    }
    struct rlimit limit = {.rlim_cur = (rlim_t)next_descriptor(server->pid), .rlim_max = 0};
    struct rlimit old;
    assert_int_equal(prlimit(server->pid, RLIMIT_NOFILE, NULL, &old), 0);
    limit.rlim_max = old.rlim_max;
    assert_int_equal(prlimit(server->pid, RLIMIT_NOFILE, &limit, NULL), 0);
    assert_string_equal(one_client(port), ""); /* client 2, turned away */

    /* Descriptors free again: the next client is served as if nothing had happened. */
    assert_int_equal(prlimit(server->pid, RLIMIT_NOFILE, &old, NULL), 0);
    assert_string_equal(one_client(port), EVENT_GREETING); /* client 3 */

    assert_exit(server, 0);
    assert_stdout(server, "listening\n"
                          "accepting new socket\nsocket disconnected\n"
                          "accepting new socket\nsocket disconnected\n");
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %d\n"
                                    "%s: accept: Too many open files\n"
                                    "%s: turned a client away: out of descriptors\n",
                                    name, port, name, name));
#endif
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

/* ---- a client that sends and never reads ---- */

/* The hog: a client of the echo server that sends and never reads, and how much it has sent.
 * Byte n of its stream is pattern[n % PATTERN_PERIOD]; any CHUNK_SIZE bytes from offset n are
 * at pattern + n % PATTERN_PERIOD. */
struct hog {
    int sock, port; /* its socket, and the port of its end of the connection */
    size_t sent;
};
static char pattern[CHUNK_SIZE + PATTERN_PERIOD + 1];

/* Push the hog's bytes on, without reading anything, until the kernel takes no more: a send
 * fails with EAGAIN (true), or `limit` bytes are sent in all (false). */
static bool push_until_full(struct hog *hog, size_t limit) {
    while (hog->sent < limit) {
        size_t left = limit - hog->sent;
        ssize_t bytes_sent = send(hog->sock, pattern + hog->sent % PATTERN_PERIOD,
                                  left < CHUNK_SIZE ? left : CHUNK_SIZE, MSG_NOSIGNAL);
        if (bytes_sent == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (bytes_sent == -1 && errno != EINTR)
            fail_msg("the hog's send after %zu bytes: %s", hog->sent, strerror(errno));
        hog->sent += bytes_sent > 0 ? (size_t)bytes_sent : 0;
    }
    return false;
}

/* What the kernel holds of the hog's connection, at both ends (the kernel's table of
 * sockets): the hog's bytes not acknowledged yet, the server's not read yet, and the echo on
 * its way back. Any byte the server reads or sends on that connection changes it. */
static const char *hog_queues(const struct hog *hog, int server_port, long *unread_by_server) {
    struct socket_row ours, theirs;
    assert_true(connection_row(hog->port, server_port, &ours));
    assert_true(connection_row(server_port, hog->port, &theirs));
    *unread_by_server = theirs.unread;
    return formatted("hog: %ld to send, %ld unread; server: %ld to send, %ld unread", ours.sending,
                     ours.unread, theirs.sending, theirs.unread);
}

/* One byte there and back on the probe, a client of the server's own that waits for each echo.
 * After two of them the server's loop has gone round whole at least once since the first was
 * sent, and dealt with every descriptor that was ready then. */
static void echo_twice(struct process *server, int probe, long long deadline) {
    for (int i = 0; i < 2; i++) {
        char byte;
        send_text(probe, "?", deadline);
        if (receive_within(probe, &byte, 1, deadline) != 1 || byte != '?')
            fail_showing_server(server, "the probe got no echo of its byte while the hog pushed");
    }
}

/* Whether the server stops reading from the hog: the kernel takes no more of its bytes, the
 * server holds some it has not read, and while the server then deals with another client (the
 * probe) not one byte moves on the hog's connection. False if the hog sent `limit` bytes:
 * the server read them all. */
static bool hog_gets_stuck(struct hog *hog, struct process *server, int server_port, int probe,
                           size_t limit, long long deadline) {
    while (push_until_full(hog, limit)) {
        long unread, unread_after;
        const char *before = hog_queues(hog, server_port, &unread);
        echo_twice(server, probe, deadline);
        const char *after = hog_queues(hog, server_port, &unread_after);
        if (unread > 0 && strcmp(before, after) == 0)
            return true;
        if (ms_until(deadline) == 0)
            fail_msg("the hog sent %zu bytes and was neither stuck nor done at the deadline (%s)",
                     hog->sent, after);
    }
    return false;
}

/* Read the hog's stream to its end: the greeting, then exactly the bytes it sent. */
static void expect_greeting_and_echo(const struct hog *hog, long long deadline) {
    static char chunk[CHUNK_SIZE];
    size_t received = 0; /* the greeting's bytes, then the echo's */
    for (;;) {
        if (!wait_for_socket(hog->sock, POLLIN, deadline))
            fail_msg("the hog got %zu of %zu bytes back by the deadline", received,
                     strlen(EVENT_GREETING) + hog->sent);
        ssize_t length = recv(hog->sock, chunk, sizeof chunk, 0);
        if (length == -1 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (length <= 0)
            break;
        for (size_t i = 0; i < (size_t)length; i++, received++) {
            size_t echoed = received - strlen(EVENT_GREETING);
            char expected = received < strlen(EVENT_GREETING) ? EVENT_GREETING[received]
                                                              : pattern[echoed % PATTERN_PERIOD];
            if (chunk[i] != expected || (received >= strlen(EVENT_GREETING) && echoed >= hog->sent))
                fail_msg("the hog's stream differs at byte %zu (greeting and echo of %zu bytes)",
                         received, hog->sent);
        }
    }
    if (received != strlen(EVENT_GREETING) + hog->sent)
        fail_msg("the hog sent %zu bytes and got %zu back, greeting included, then the end",
                 hog->sent, received);
}

/* The port of our end of a connected socket. */
static int local_port(int sock) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    assert_int_equal(getsockname(sock, (struct sockaddr *)&address, &length), 0);
    return ntohs(address.sin_port);
}

#define STILL_SERVED "Client connected!\nreply sent!\nReceived from server: Hello!\nstill served\n"

static void serves_others_while_a_client_sends_without_reading(void **state) {
    const char *name = server_of(state);
    fill_pattern(pattern, sizeof pattern - 1);
    const char *server_lines = temp_path("server.out"); /* one line per chunk echoed */
    struct process *server =
        start_program(ARGV(name, "-e", "-n", formatted("%d", HOG_CLIENTS), "-p", "0"),
                      &(struct run_options){.output_file = server_lines});
    const char *port = ready_port(server);
    long long deadline = now_ms() + slow(HOG_DEADLINE_MS);
    struct hog hog = {.sock = open_connection(port, deadline)};
    int probe = open_connection(port, deadline);
    assert_int_not_equal(hog.sock, -1);
    assert_int_not_equal(probe, -1);
    hog.port = local_port(hog.sock);
    char greeting[sizeof EVENT_GREETING - 1];
    assert_int_equal(receive_within(probe, greeting, sizeof greeting, deadline), sizeof greeting);

    /* A client comes while the hog is pushing, and another once the hog is stuck. Under
     * valgrind the hog pushes less (the server reads slowly); memory goes unchecked there. */
    size_t limit = under_valgrind() ? VALGRIND_HOG_LIMIT : HOG_LIMIT;
    push_until_full(&hog, MEANWHILE_BYTES);
    const char *const client_argv[] = {"tcp_client", "-e", "-m", "still served", "-p", port, NULL};
    struct process *meanwhile = start_program(client_argv, NULL);
    bool stuck = hog_gets_stuck(&hog, server, atoi(port), probe, limit, deadline);
    assert_exit_within(meanwhile, 0, slow(CONVERSATION_MS));
    assert_stdout(meanwhile, STILL_SERVED);
    if (!stuck)
        fail_msg("the hog sent all its %zu bytes and never got stuck: %s reads from a client "
                 "that does not read its echo",
                 hog.sent, name);
    struct process *afterwards = start_program(client_argv, NULL);
    assert_exit_within(afterwards, 0, slow(CONVERSATION_MS));
    assert_stdout(afterwards, STILL_SERVED);

    /* Had the server read all the hog sent, its memory would show it. */
    long peak_kb = peak_memory_kb(server->pid);
    if (under_valgrind())
        print_message("under valgrind: memory not checked (valgrind's own is in VmHWM)\n");
    else if (peak_kb == -1)
        print_message("no /proc/PID/status here: %s's memory not checked\n", name);
    else if (peak_kb >= PEAK_MEMORY_LIMIT_KB)
        fail_msg("%s's peak memory is %ld KiB (limit %d KiB) after the hog sent %zu bytes", name,
                 peak_kb, PEAK_MEMORY_LIMIT_KB, hog.sent);

    /* Now the hog reads: it gets the greeting and every byte it sent, then the end. */
    close_tracked(probe);
    assert_int_equal(shutdown(hog.sock, SHUT_WR), 0);
    expect_greeting_and_echo(&hog, now_ms() + slow(HOG_DEADLINE_MS));
    assert_exit(server, 0);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
    struct output lines = file_contents(server_lines);
    int accepted = count_lines(&lines, "accepting new socket");
    int disconnected = count_lines(&lines, "socket disconnected");
    free(lines.data);
    assert_int_equal(accepted, HOG_CLIENTS);
    assert_int_equal(disconnected, HOG_CLIENTS);
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

int main(int argc, char **argv) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    /* The programs must start with SIGPIPE's default action (death), as from a learner's
     * shell. Our own sends use MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_DFL);
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    snprintf(echo_load, sizeof echo_load, "%.*s/echo_load", slash ? (int)(slash - argv[0]) : 1,
             slash ? argv[0] : ".");
    const struct CMUnitTest tests[] = {
        PER_SERVER(greets_every_client_of_a_burst_of_1000_connecting_at_once),
        TEST(tcp_server_greets_every_client_of_a_burst_of_1000_in_turn),
        PER_SERVER(accepts_again_when_descriptors_free_up_with_no_client_connected),
        TEST(select_server_refuses_clients_beyond_fd_setsize_and_serves_the_others),
        PER_SERVER(serves_others_while_a_client_sends_without_reading),
        PER_SERVER(survives_a_second_of_echo_load_without_a_mismatch),
        TEST(echo_load_counts_bytes_that_differ_and_exits_1),
        TEST(echo_load_refuses_an_address_that_is_not_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
