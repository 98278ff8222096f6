#define _GNU_SOURCE /* prlimit (Linux): lower and raise a running server's descriptor limit */
/* test_burst.c: servers under the load that real clients bring. A burst: a thousand clients
 * that connect all at once (a restart, a reconnect storm), not politely one after another;
 * each must get its greeting, none may be left waiting. And a server that runs out of
 * descriptors (EMFILE) with no client connected must not stay deaf once it has some again.
 * Servers start on -p 0 and tell us their port in the ready line: no fixed port, no sleep.
 * Run from the repository root: build/test_burst (BIN_DIR=dir picks other binaries). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    BURST = 1000,            /* clients that connect at once */
    SPARE_FDS = 64,          /* ours besides the burst: pipes, the harness, cmocka */
    BURST_MS = 30 * 1000,    /* for the whole burst to be served */
    GREETING_ROOM = 64,      /* bytes we keep of what a client receives */
    RECOVERY_MS = 10 * 1000, /* for a server to accept again once it has descriptors */
};

#define EVENT_GREETING "Hello!\n"
#define TCP_GREETING "Hello!"

/* One client of the burst: its socket, what it has received, and whether it is done. */
struct burst_client {
    int sock;
    bool connected, done;
    size_t length;
    char received[GREETING_ROOM];
};

static struct burst_client clients[BURST];

/* Let us (and so the servers we start) open BURST connections and more. */
static void allow_descriptors(void) {
    struct rlimit limit;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &limit), 0);
    rlim_t needed = BURST + SPARE_FDS;
    if (limit.rlim_cur >= needed)
        return;
    if (limit.rlim_max < needed)
        fail_msg("the descriptor limit is %lu; this test needs %lu (ulimit -Hn)",
                 (unsigned long)limit.rlim_max, (unsigned long)needed);
    limit.rlim_cur = needed;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &limit), 0);
}

/* A non-blocking TCP socket connecting to 127.0.0.1:port; the connection completes later. */
static int start_connecting(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_not_equal(sock, -1);
    assert_int_not_equal(fcntl(sock, F_SETFL, O_NONBLOCK), -1);
    int result = connect(sock, (struct sockaddr *)&address, sizeof address);
    assert_true(result == 0 || errno == EINPROGRESS);
    return sock;
}

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
    close(client->sock);
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
            close(clients[i].sock);
    memset(clients, 0, sizeof clients);
}

static int tear_down(void **state) {
    (void)state;
    close_unfinished(BURST);
    clean_up();
    return 0;
}

/* ---- a burst of clients ---- */

static void greets_every_client_of_a_burst_of_1000_connecting_at_once(void **state) {
    const char *name = server_of(state);
    allow_descriptors();
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
    allow_descriptors();
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

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    const struct CMUnitTest tests[] = {
        PER_SERVER(greets_every_client_of_a_burst_of_1000_connecting_at_once),
        cmocka_unit_test_teardown(tcp_server_greets_every_client_of_a_burst_of_1000_in_turn,
                                  tear_down),
        PER_SERVER(accepts_again_when_descriptors_free_up_with_no_client_connected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
