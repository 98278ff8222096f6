#define _GNU_SOURCE /* prlimit (Linux): lower and raise a running server's descriptor limit */
/* test_load.c: the hardened servers (examples/hardened/) under the load that real clients
 * bring. A burst: a thousand clients that connect all at once (a restart, a reconnect storm),
 * not politely one after another; each must get its greeting, none may be left waiting. A
 * server that runs out of descriptors (EMFILE) must turn clients away and not stay deaf once it
 * has some again: with no client connected, with stderr closed or full and unread for
 * thousands of clients, and with not even one descriptor to keep in reserve (then it backs
 * off instead of spinning). select_server refuses the clients beyond FD_SETSIZE and serves the
 * others, and fails at once when its own descriptors are past it. A client that sends and
 * never reads stalls nobody, and costs the server no more memory than its buffers
 * (backpressure); one that hangs up meanwhile is dropped; tcp_client -e gets 12 MiB back
 * through an echo server that waits for it to read. And echo_load, the load generator of
 * `make bench`, runs clean against each event server. Servers start on -p 0 and tell us their
 * port in the ready line: no fixed port, no sleep. Run from the repository root:
 * build/test_load (BIN_DIR=dir picks other binaries; echo_load is taken from the directory of
 * this test). */
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
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
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
    HOG_CLIENTS = 4,    /* the hog, the probe, a client while the hog pushes and one after */
    LOAD_CLIENTS = 3,   /* echo_load's smoke run: a few clients, one second */
    TURNED_AWAY = 2000, /* clients turned away in a row: ~100 bytes of stderr each */
    FULL_PIPE_BYTES = 56 * 1024,  /* a full 64 KiB pipe holds more (its last page may be empty) */
    NAPS = 3,                     /* back-off pauses a server must take, out of descriptors */
    WAITING_CLIENTS = 3,          /* clients waiting in the queue while it backs off */
    ECHO_MESSAGE_SIZE = 12 << 20, /* tcp_client -e's message: more than both ends buffer */
    ECHO_MESSAGE_MS = 30 * 1000,  /* for all of it to go there and back */
    WAIT_STEP_MS = 10,            /* between two looks at /proc or the socket table */
};

#define EVENT_GREETING "Hello!\n"
#define TCP_GREETING "Hello!"
#define REFUSAL "select_server: refusing a client: select handles descriptors below 1024"
#define TOO_LARGE "select_server: socket: descriptor too large for select (FD_SETSIZE)\n"
#define NONE_TO_SPARE \
    ": accept: Too many open files: no descriptor to spare, trying again every 100 ms\n"
/* An echo server (-e) sends no greeting; the tests that want one ask for it. */
#define WITH_GREETING "-m", EVENT_GREETING

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

/* ---- out of descriptors ---- */

#ifdef __linux__
/* The number the process's next descriptor would get: the lowest one not open (Linux:
 * /proc/PID/fd). A descriptor limit (RLIMIT_NOFILE) of that number leaves it none. */
static int next_descriptor(pid_t pid) {
    for (int fd = 0;; fd++)
        if (access(formatted("/proc/%d/fd/%d", (int)pid, fd), F_OK) == -1)
            return fd;
}

/* Set the running process's descriptor limit to `files` (prlimit, Linux); returns the limit it
 * had, for put_back_limit. */
static struct rlimit limit_descriptors(pid_t pid, rlim_t files) {
    struct rlimit old;
    assert_int_equal(prlimit(pid, RLIMIT_NOFILE, NULL, &old), 0);
    struct rlimit limit = {.rlim_cur = files, .rlim_max = old.rlim_max};
    assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &limit, NULL), 0);
    return old;
}

static void put_back_limit(pid_t pid, struct rlimit old) {
    assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &old, NULL), 0);
}

/* One client that connects, reads all the server sends until its end, and closes. */
static const char *one_client(int port) {
    run_burst(port, 1, slow(FINISH_TIMEOUT_MS));
    const char *received = formatted("%.*s%s", (int)clients[0].length, clients[0].received,
                                     clients[0].done ? "" : " (still waiting)");
    close_unfinished(1);
    return received;
}

/* The number on the line of /proc/PID/status that starts with key. */
static long proc_status_number(pid_t pid, const char *key) {
    FILE *file = fopen(formatted("/proc/%d/status", (int)pid), "r");
    assert_non_null(file);
    char line[256];
    long number = -1;
    while (number == -1 && fgets(line, sizeof line, file) != NULL)
        if (strncmp(line, key, strlen(key)) == 0)
            number = atol(line + strlen(key));
    fclose(file);
    assert_int_not_equal(number, -1);
    return number;
}

/* The fields of /proc/PID/stat after the process's name (which may hold spaces): its state
 * first ("S": asleep, waiting for something), then the others of proc(5). */
static const char *proc_stat_fields(pid_t pid) {
    FILE *file = fopen(formatted("/proc/%d/stat", (int)pid), "r");
    assert_non_null(file);
    char line[1024];
    assert_non_null(fgets(line, sizeof line, file));
    fclose(file);
    const char *after_name = strrchr(line, ')');
    assert_non_null(after_name);
    return formatted("%s", after_name + 2);
}

/* The CPU time the process has used so far, user and system, in milliseconds (utime and stime,
 * the 14th and 15th fields of /proc/PID/stat, in clock ticks). */
static long cpu_ms(pid_t pid) {
    unsigned long user = 0, system = 0;
    assert_int_equal(sscanf(proc_stat_fields(pid),
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &user, &system),
                     2);
    return (long)((user + system) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

/* Wait until the server, started, sleeps: it has opened all it needs (epoll_server makes its
 * epoll instance after its ready line) and waits for its first event. */
static void wait_until_it_waits(struct process *server) {
    long long deadline = now_ms() + slow(READY_TIMEOUT_MS);
    while (proc_stat_fields(server->pid)[0] != 'S') {
        if (ms_until(deadline) == 0)
            fail_showing_server(server, formatted("%s never waited for an event", server->label));
        poll(NULL, 0, WAIT_STEP_MS);
    }
}

/* Wait until the server has gone to sleep NAPS more times of its own accord (voluntary context
 * switches: a wait in poll), and fail if it used the CPU for more than half of that time. A
 * loop that tries again at once, for ever, never sleeps, and burns a CPU meanwhile. */
static void check_it_naps(struct process *server) {
    long long start = now_ms(), deadline = start + slow(FINISH_TIMEOUT_MS);
    long naps = proc_status_number(server->pid, "voluntary_ctxt_switches:");
    long cpu = cpu_ms(server->pid);
    while (proc_status_number(server->pid, "voluntary_ctxt_switches:") < naps + NAPS) {
        if (ms_until(deadline) == 0)
            fail_showing_server(server, formatted("%s did not pause %d times in %d ms",
                                                  server->label, NAPS, slow(FINISH_TIMEOUT_MS)));
        poll(NULL, 0, WAIT_STEP_MS);
    }
    long used = cpu_ms(server->pid) - cpu, elapsed = (long)(now_ms() - start);
    if (used * 2 > elapsed)
        fail_showing_server(server, formatted("%s used %ld ms of CPU in %ld ms while it waited "
                                              "for descriptors: it spins",
                                              server->label, used, elapsed));
}

/* The port a server listens on, from the kernel's table of sockets: for a server whose stderr,
 * where the ready line goes, is closed. */
static int listening_port(struct process *server) {
    long long deadline = now_ms() + slow(READY_TIMEOUT_MS);
    int port;
    while ((port = bound_port(server->pid, SOCK_STREAM)) == 0) {
        if (ms_until(deadline) == 0 || !is_running(server))
            fail_showing_server(server, "it never listened");
        poll(NULL, 0, WAIT_STEP_MS);
    }
    return port;
}

/* The descriptor the server keeps in reserve, open on /dev/null (Linux: /proc/PID/fd), past
 * stdin, stdout and stderr; -1 if it has none. */
static int reserve_descriptor(pid_t pid) {
    for (int fd = 3; fd < next_descriptor(pid); fd++) {
        char target[sizeof "/dev/null"];
        ssize_t length = readlink(formatted("/proc/%d/fd/%d", (int)pid, fd), target, sizeof target);
        if (length == (ssize_t)strlen("/dev/null") && memcmp(target, "/dev/null", length) == 0)
            return fd;
    }
    return -1;
}

/* Wait until the server holds its reserve on descriptor fd again: it gives the reserve up to
 * turn clients away, every one that waits, and takes it back once none is left. */
static void wait_for_reserve(struct process *server, int fd) {
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);
    while (reserve_descriptor(server->pid) != fd) {
        if (ms_until(deadline) == 0)
            fail_showing_server(server, formatted("%s did not take its reserve back (descriptor "
                                                  "%d on /dev/null)",
                                                  server->label, fd));
        poll(NULL, 0, WAIT_STEP_MS);
    }
}

/* Client 1 comes and goes: the server is left with no client connected. */
static void first_client_comes_and_goes(struct process *server, int port) {
    assert_string_equal(one_client(port), EVENT_GREETING);
    assert_true(wait_for_output(server, "socket disconnected\n", slow(FINISH_TIMEOUT_MS)));
}

/* Then the server has no descriptor left but its reserve, and client 2 must be turned away (it
 * sees the end of the stream at once); then descriptors are free again, and client 3 is served
 * as if nothing had happened. The server has -n 2. */
static void turn_away_and_serve_again(struct process *server, int port) {
    int reserve = reserve_descriptor(server->pid);
    assert_int_not_equal(reserve, -1);
    struct rlimit old = limit_descriptors(server->pid, (rlim_t)next_descriptor(server->pid));
    assert_string_equal(one_client(port), "");
    wait_for_reserve(server, reserve); /* else client 3 could be turned away with client 2 */
    put_back_limit(server->pid, old);
    assert_string_equal(one_client(port), EVENT_GREETING);
    assert_exit(server, 0);
    assert_stdout(server, "listening\n"
                          "accepting new socket\nsocket disconnected\n"
                          "accepting new socket\nsocket disconnected\n");
}
#endif

/* prlimit and /proc are Linux only: elsewhere these tests are skipped. Under valgrind, which
 * keeps descriptors of its own, a server's limit is on valgrind's count: skipped there too. */
#ifdef __linux__
#define SKIP_UNLESS_DESCRIPTORS_CAN_BE_LIMITED(state)                        \
    do {                                                                     \
        if (under_valgrind()) {                                              \
            print_message("under valgrind: descriptor limits not tested\n"); \
            skip();                                                          \
        }                                                                    \
    } while (0)
#else
#define SKIP_UNLESS_DESCRIPTORS_CAN_BE_LIMITED(state)                      \
    do {                                                                   \
        (void)(state);                                                     \
        print_message("prlimit and /proc are Linux only; test skipped\n"); \
        skip();                                                            \
    } while (0)
#endif

static void accepts_again_when_descriptors_free_up_with_no_client_connected(void **state) {
    const char *name = server_of(state);
#ifndef __linux__
    print_message("prlimit and /proc are Linux only; test skipped\n");
    skip();
#else
    struct process *server = start_program(ARGV(name, "-p", "0", "-n", "2", "-t", "0"), NULL);
    int port = atoi(ready_port(server));
    first_client_comes_and_goes(server, port);
    if (under_valgrind()) {
        print_message("under valgrind: descriptor limits not tested\n");
        stop(server);
        return;
    }
    turn_away_and_serve_again(server, port);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %d\n"
                                    "%s: accept: Too many open files\n"
                                    "%s: turned a client away: out of descriptors\n",
                                    name, port, name, name));
#endif
}

static void turns_a_client_away_out_of_descriptors_with_its_stderr_closed(void **state) {
    const char *name = server_of(state);
#ifndef __linux__
    print_message("prlimit and /proc are Linux only; test skipped\n");
    skip();
#else
    /* `server 2>&-`: each line it says on stderr fails (EBADF), and so changes errno; the
     * EMFILE of accept must still lead it to its reserve. (The wrapper takes valgrind's place:
     * the server's limit is its own.) */
    const char *const closing_stderr[] = {"sh", "-c", "exec \"$@\" 2>&-", "sh", NULL};
    struct process *server = start_program(ARGV(name, "-p", "0", "-n", "2", "-t", "0"),
                                           &(struct run_options){.wrapper = closing_stderr});
    int port = listening_port(server);
    first_client_comes_and_goes(server, port);
    turn_away_and_serve_again(server, port);
    assert_stderr(server, "");
#endif
}

/* Fail unless the server's stderr is its ready line, then for each time it turned clients
 * away "accept: Too many open files" and "turned a client away" (or "turned N clients away",
 * when more waited), in whole lines, until the pipe was full: nothing else, nothing cut but
 * "stopped by SIGTERM" at the end, if the pipe had room for it. */
static void check_turned_away_lines(const struct process *server, const char *port) {
    const char *name = server->label;
    const char *accept_line = formatted("%s: accept: Too many open files\n", name);
    const char *one_line = formatted("%s: turned a client away: out of descriptors\n", name);
    const char *many_format = formatted("%s: turned %%d clients away: out of descriptors\n", name);
    const char *expected = formatted("%s: ready on 127.0.0.1 port %s\n", name, port);
    const char *at = server->err.data, *end = server->err.data + server->err.length;
    for (int i = 0;; i++) {
        size_t length = strlen(expected);
        if (at == end || length > (size_t)(end - at) || memcmp(at, expected, length) != 0)
            break;
        at += length;
        int many = 0; /* after the ready line and each turned-away line, an accept line */
        expected = i % 2 == 0                                        ? accept_line
                   : sscanf(at, many_format, &many) == 1 && many > 1 ? formatted(many_format, many)
                                                                     : one_line;
    }
    const char *stopped = formatted("%s: stopped by SIGTERM\n", name); /* if it found room */
    if ((size_t)(end - at) == strlen(stopped) && memcmp(at, stopped, strlen(stopped)) == 0)
        at = end;
    if (at < end || server->err.length < FULL_PIPE_BYTES || end[-1] != '\n')
        fail_msg("%s's stderr: expected its ready line, then an accept line and a turned-away "
                 "line for each client turned away, in whole lines, until the pipe was full (%d "
                 "bytes or more); got %zu bytes, with %s where %s was expected, after %s",
                 name, FULL_PIPE_BYTES, server->err.length, shown(at, (size_t)(end - at)),
                 shown(expected, strlen(expected)),
                 shown(at - (at - server->err.data > 200 ? 200 : at - server->err.data),
                       at - server->err.data > 200 ? 200 : (size_t)(at - server->err.data)));
}

static void turns_away_2000_clients_out_of_descriptors_while_nobody_reads_its_stderr(void **state) {
    SKIP_UNLESS_DESCRIPTORS_CAN_BE_LIMITED(state);
#ifdef __linux__
    const char *name = server_of(state);
    /* Each client turned away costs two lines on stderr, which nobody reads until the end: the
     * pipe fills up, and the server must go on turning clients away, never waiting for it. */
    struct process *server = start_program(ARGV(name, "-p", "0", "-n", "0", "-t", "0"), NULL);
    const char *port = ready_port(server);
    int sock;
    assert_true(connect_and_get_greeted(server, port, 1, &sock)); /* it takes its reserve */
    close_tracked(sock);
    assert_true(wait_for_output(server, "socket disconnected\n", slow(FINISH_TIMEOUT_MS)));
    int reserve = reserve_descriptor(server->pid);
    assert_int_not_equal(reserve, -1);
    limit_descriptors(server->pid, (rlim_t)next_descriptor(server->pid));
    for (int i = 2; i <= 1 + TURNED_AWAY; i++) {
        if (connect_and_get_greeted(server, port, i, &sock))
            fail_showing_server(server, formatted("client %d was greeted, out of descriptors", i));
        close_tracked(sock);
    }
    wait_for_reserve(server, reserve); /* it has said all it had to say of the last client */

    /* Stopped, it dies of the signal; its stderr holds whole lines, as many as the pipe took. */
    assert_int_equal(kill(server->pid, SIGTERM), 0);
    assert_exit(server, 128 + SIGTERM);
    check_turned_away_lines(server, port);
#endif
}

static void backs_off_with_no_descriptor_to_spare_then_takes_every_waiting_client(void **state) {
    SKIP_UNLESS_DESCRIPTORS_CAN_BE_LIMITED(state);
#ifdef __linux__
    const char *name = server_of(state);
    /* Not even one descriptor to keep in reserve: a client that comes can be neither served
     * nor turned away. The server says so once, and tries again now and then, napping between. */
    struct process *server = start_program(ARGV(name, "-p", "0", "-n", "1", "-t", "0"), NULL);
    const char *port = ready_port(server);
    wait_until_it_waits(server);
    int files = next_descriptor(server->pid);
    struct rlimit old = limit_descriptors(server->pid, (rlim_t)files);
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);
    int waiting[WAITING_CLIENTS];
    waiting[0] = open_connection(port, deadline);
    assert_int_not_equal(waiting[0], -1);
    assert_true(
        wait_for_stderr(server, formatted("%s" NONE_TO_SPARE, name), slow(FINISH_TIMEOUT_MS)));
    check_it_naps(server);

    /* More clients wait meanwhile. Room for a reserve again: every one of them is turned away
     * at the next try, all at once. */
    for (int i = 1; i < WAITING_CLIENTS; i++) {
        waiting[i] = open_connection(port, deadline);
        assert_int_not_equal(waiting[i], -1);
    }
    limit_descriptors(server->pid, (rlim_t)files + 1);
    for (int i = 0; i < WAITING_CLIENTS; i++) {
        char byte;
        if (receive_within(waiting[i], &byte, 1, deadline) != 0)
            fail_showing_server(server, formatted("waiting client %d was not turned away", i + 1));
        close_tracked(waiting[i]);
    }
    const char *said = formatted("%s: ready on 127.0.0.1 port %s\n"
                                 "%s" NONE_TO_SPARE "%s: accept: Too many open files\n"
                                 "%s: turned %d clients away: out of descriptors\n",
                                 name, port, name, name, name, WAITING_CLIENTS);
    assert_true(wait_for_stderr(server, said, slow(FINISH_TIMEOUT_MS))); /* none waits now */

    /* Descriptors free again: the next client is served. */
    put_back_limit(server->pid, old);
    int sock;
    assert_true(connect_and_get_greeted(server, port, WAITING_CLIENTS + 1, &sock));
    close_tracked(sock);
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket disconnected\n");
    assert_stderr(server, said);
#endif
}

/* ---- more clients than select() can watch ---- */

static void select_server_refuses_clients_beyond_fd_setsize_and_serves_the_others(void **state) {
    (void)state;
    enum { CONNECTIONS = FD_SETSIZE + EXTRA_CLIENTS };
    need_open_files(FILES_LIMIT);
    /* The server inherits our limit, so it can accept descriptors of 1024 and above. It greets
     * each client it serves, so that the others see the end of the stream instead. */
    const char *server_lines = temp_path("select_server.out");
    struct process *server =
        start_program(ARGV("select_server", "-e", WITH_GREETING, "-n", "0", "-p", "0"),
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

static void select_server_whose_own_descriptors_would_pass_fd_setsize_fails_at_once(void **state) {
    (void)state;
    NEED_TOOL("bash", "bash");
    need_open_files(FILES_LIMIT);
    /* Started with descriptors 3 to 1023 open: its wake-up pipe and its listener are past
     * FD_SETSIZE, where select cannot watch them (FD_SET would write past the fd_set). */
    struct process *server = start_with_descriptors_filled(ARGV("select_server", "-p", "0"));

    assert_exit(server, 1);
    assert_stdout(server, "");
    assert_stderr(server, TOO_LARGE);
}

/* ---- a client that sends and never reads ---- */

/* The hog: a client of the echo server that sends and never reads, and how much it has sent.
 * Byte n of its stream is pattern[n % PATTERN_PERIOD]; any CHUNK_SIZE bytes from offset n are
 * at pattern + n % PATTERN_PERIOD. */
struct hog {
    int sock, port; /* its socket, and the port of its end of the connection (0: UNIX) */
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
 * its way back. Any byte the server reads or sends on that connection changes it. Over a UNIX
 * socket the hog's own end says it (Linux ioctls): what it sent that the server has not read
 * (TIOCOUTQ), and the echo it has not read (FIONREAD). */
static const char *hog_queues(const struct hog *hog, int server_port, long *unread_by_server) {
    if (hog->port == 0) {
        int unread = 0, echoed = 0;
        assert_int_equal(ioctl(hog->sock, TIOCOUTQ, &unread), 0);
        assert_int_equal(ioctl(hog->sock, FIONREAD, &echoed), 0);
        *unread_by_server = unread;
        return formatted("hog: %d sent and not read by the server, %d echoed and unread", unread,
                         echoed);
    }
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

/* Read the hog's stream to its end: exactly the bytes it sent (an echo server has no
 * greeting). */
static void expect_echo(const struct hog *hog, long long deadline) {
    static char chunk[CHUNK_SIZE];
    size_t received = 0;
    for (;;) {
        if (!wait_for_socket(hog->sock, POLLIN, deadline))
            fail_msg("the hog got %zu of %zu bytes back by the deadline", received, hog->sent);
        ssize_t length = recv(hog->sock, chunk, sizeof chunk, 0);
        if (length == -1 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (length <= 0)
            break;
        for (size_t i = 0; i < (size_t)length; i++, received++)
            if (chunk[i] != pattern[received % PATTERN_PERIOD] || received >= hog->sent)
                fail_msg("the hog's stream differs at byte %zu (echo of %zu bytes)", received,
                         hog->sent);
    }
    if (received != hog->sent)
        fail_msg("the hog sent %zu bytes and got %zu back, then the end", hog->sent, received);
}

/* The port of our end of a connected socket. */
static int local_port(int sock) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    assert_int_equal(getsockname(sock, (struct sockaddr *)&address, &length), 0);
    return ntohs(address.sin_port);
}

#define STILL_SERVED "Client connected!\nReceived from server: still served\nreply sent!\n"

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

    /* Now the hog reads: it gets every byte it sent, then the end. */
    close_tracked(probe);
    assert_int_equal(shutdown(hog.sock, SHUT_WR), 0);
    expect_echo(&hog, now_ms() + slow(HOG_DEADLINE_MS));
    assert_exit(server, 0);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
    struct output lines = file_contents(server_lines);
    int accepted = count_lines(&lines, "accepting new socket");
    int disconnected = count_lines(&lines, "socket disconnected");
    free(lines.data);
    assert_int_equal(accepted, HOG_CLIENTS);
    assert_int_equal(disconnected, HOG_CLIENTS);
}

/* A UNIX client of the echo server, connected. */
static int unix_client(const char *path) {
    int sock = unix_socket(SOCK_STREAM, NULL);
    struct sockaddr_un address = unix_address(path);
    assert_int_equal(connect(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

static void drops_a_client_that_hangs_up_while_its_echo_waits_to_be_sent(void **state) {
    const char *name = server_of(state);
#ifndef __linux__
    print_message("TIOCOUTQ on a UNIX socket is Linux's; test skipped\n");
    skip();
#else
    /* Over a UNIX socket the hog gets the server stuck (its echo waits, and the server reads
     * no more of it), then hangs up both ways and keeps its socket open. The server's end then
     * polls as hung up (POLLHUP) but not as writable: the echo it sent still fills the hog's
     * queue. A send would fail at once (EPIPE), so the server must take the hang-up as writable,
     * and drop the hog. */
    fill_pattern(pattern, sizeof pattern - 1);
    const char *path = temp_path("echo.sock");
    struct process *server =
        start_program(ARGV(name, "-e", WITH_GREETING, "-u", path, "-n", "2", "-t", "0"),
                      &(struct run_options){.output_file = "/dev/null"});
    assert_int_equal(wait_for_ready_line(server, slow(READY_TIMEOUT_MS)), 0);
    long long deadline = now_ms() + slow(HOG_DEADLINE_MS);
    struct hog hog = {.sock = unix_client(path)}; /* its greeting stays unread */
    int probe = unix_client(path);
    char greeting[sizeof EVENT_GREETING] = "";
    assert_int_equal(receive_within(probe, greeting, strlen(EVENT_GREETING), deadline),
                     strlen(EVENT_GREETING));
    assert_string_equal(greeting, EVENT_GREETING);
    set_nonblocking(hog.sock);
    size_t limit = under_valgrind() ? VALGRIND_HOG_LIMIT : HOG_LIMIT;
    if (!hog_gets_stuck(&hog, server, 0, probe, limit, deadline))
        fail_msg("the hog sent all its %zu bytes and never got stuck", hog.sent);

    assert_int_equal(shutdown(hog.sock, SHUT_RDWR), 0);
    close_tracked(probe);
    assert_exit(server, 0); /* both clients gone, the hog while its socket is still open */
    assert_stderr(server, formatted("%s: ready on %s\n%s: send: Broken pipe\n", name, path, name));
    close_tracked(hog.sock);
#endif
}

/* ---- a message larger than the buffers of both ends ---- */

static void tcp_client_e_gets_all_of_a_12_mib_message_back_while_it_sends(void **state) {
    const char *name = server_of(state);
    /* The echo server stops reading the client while the client does not read its echo: a
     * client that sent all before it read would wait for ever once both ends' buffers are
     * full. tcp_client -e reads while it sends. */
    const char *message = temp_path("message");
    const char *printed = temp_path("printed");
    uint64_t fingerprint = write_random_file(message, ECHO_MESSAGE_SIZE);
    struct process *server = start_program(ARGV(name, "-e", "-n", "1", "-p", "0"),
                                           &(struct run_options){.output_file = "/dev/null"});
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("tcp_client", "-e", "-m", "-", "-p", port),
                      &(struct run_options){.input_file = message, .output_file = printed});

    assert_exit_within(client, 0, slow(ECHO_MESSAGE_MS));
    assert_stderr(client, "");
    assert_file_holds(printed, "Client connected!\nReceived from server: ", ECHO_MESSAGE_SIZE,
                      fingerprint, "\nreply sent!\n");
    assert_exit(server, 0);
    assert_stderr(server, formatted("%s: ready on 127.0.0.1 port %s\n", name, port));
}

/* ---- echo_load against each server ---- */

static void survives_a_second_of_echo_load_without_a_mismatch(void **state) {
    const char *name = server_of(state);
    const char *count = formatted("%d", LOAD_CLIENTS);
    /* echo_load takes a greeting first: the echo server is asked for one. */
    struct process *server = start_program(ARGV(name, "-e", WITH_GREETING, "-n", count, "-p", "0"),
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
        PER_SERVER(turns_a_client_away_out_of_descriptors_with_its_stderr_closed),
        PER_SERVER(turns_away_2000_clients_out_of_descriptors_while_nobody_reads_its_stderr),
        PER_SERVER(backs_off_with_no_descriptor_to_spare_then_takes_every_waiting_client),
        TEST(select_server_refuses_clients_beyond_fd_setsize_and_serves_the_others),
        TEST(select_server_whose_own_descriptors_would_pass_fd_setsize_fails_at_once),
        PER_SERVER(serves_others_while_a_client_sends_without_reading),
        FOR_SERVER("poll_server", drops_a_client_that_hangs_up_while_its_echo_waits_to_be_sent),
        FOR_SERVER("epoll_server", drops_a_client_that_hangs_up_while_its_echo_waits_to_be_sent),
        PER_SERVER(tcp_client_e_gets_all_of_a_12_mib_message_back_while_it_sends),
        PER_SERVER(survives_a_second_of_echo_load_without_a_mismatch),
        TEST(echo_load_counts_bytes_that_differ_and_exits_1),
        TEST(echo_load_refuses_an_address_that_is_not_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
