#define _POSIX_C_SOURCE 200809L
/* test_surroundings.c: the programs in careless and hostile surroundings. Started with stdin
 * or stdout closed, with a stdin that fails or does not block, with a stdout that nobody reads,
 * that has gone, or that is full; a stranger that answers in the receiver's place, a second
 * server on the same socket file, clients that reset, stall or never read, and a process that
 * is stopped and continued while it waits. Each test checks exact output and exit status
 * against the program contract. Fake peers are sockets of this process, on loopback ports
 * the kernel picks or in the temporary directory; every wait has a deadline.
 * Run from the repository root: build/test_surroundings (BIN_DIR=dir picks other binaries). */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    UNREAD_CLIENTS = 6000,    /* their lines fill a 64 KiB pipe and the 64 KiB log behind it */
    UNREAD_MS = 60 * 1000,    /* for all of them to be served */
    STOP_MS = 2000,           /* for a server to stop on SIGINT */
    GREETING_ROOM = 64,       /* bytes we keep of what a client receives */
    DEAF_COUNT = 300,         /* datagrams from a peer that never reads its replies */
    SENDER_SECONDS = 2,       /* udp_sender's -t behind that peer */
    GIVE_UP_S = 2,            /* udp_sender's -t in the test of the deadline */
    SIGNAL_EVERY_MS = 500,    /* SIGSTOP and SIGCONT, then this long in peace */
    LATE_MS = 1500,           /* how much later than its deadline it may give up */
    INPUT_POLL_MS = 5,        /* between looks at how much of our input a program has read */
    IDLE_S = 1,               /* tcp_server's -t in the test of an idle client */
    DEFAULT_DGRAM_QUEUE = 10, /* datagrams a UNIX socket queues (Linux's max_dgram_qlen) */
};

static const char *const EVENT_SERVERS[] = {"select_server", "poll_server", "epoll_server"};
static const char *const PROGRAMS[] = {"udp_receiver", "udp_sender",    "tcp_server",
                                       "tcp_client",   "select_server", "poll_server",
                                       "epoll_server", "select_client"};
#define NOT_READ_NOTICE "stdout is not read: its lines are dropped, and counted, until it is"

/* ---- assertions: each failure says what was expected and what came ---- */

/* Fail unless stderr is exactly `before` followed by one of the NULL-terminated endings
 * (when the timing decides which error a peer's reset shows up as). */
static void check_stderr_one_of(const struct process *process, const char *before,
                                const char *const endings[], const char *file, int line) {
    const char *got = process->err.data ? process->err.data : "";
    for (size_t i = 0; endings[i] != NULL; i++)
        if (strcmp(got, formatted("%s%s", before, endings[i])) == 0)
            return;
    print_error("%s stderr: expected %s and then one of:\n", process->label,
                shown(before, strlen(before)));
    for (size_t i = 0; endings[i] != NULL; i++)
        print_error("    %s\n", shown(endings[i], strlen(endings[i])));
    print_error("    got %s\n", shown(got, process->err.length));
    _fail(file, line);
}
#define assert_stderr_one_of(process, before, ...)                                           \
    check_stderr_one_of(process, before, (const char *const[]){__VA_ARGS__, NULL}, __FILE__, \
                        __LINE__)

/* select_server (-n 1) had one client, whose connection was aborted: it exits 0, having said
 * so in whichever way the reset reached it. */
#define assert_select_server_lost_its_one_client(server, port)                               \
    do {                                                                                     \
        assert_exit(server, 0);                                                              \
        assert_stdout(server, "listening\naccepting new socket\nsocket disconnected\n");     \
        assert_stderr_one_of(server,                                                         \
                             formatted("select_server: ready on 127.0.0.1 port %s\n", port), \
                             "select_server: recv: Connection reset by peer\n",              \
                             "select_server: send: Connection reset by peer\n",              \
                             "select_server: send: Broken pipe\n");                          \
    } while (0)

static bool file_exists(const char *path) {
    struct stat status;
    return lstat(path, &status) == 0;
}

/* ---- sockets and pipe ends of the test itself: tracked (checks.h), closed by tear_down ---- */

static int tear_down(void **state) {
    (void)state;
    clean_up_peers();
    clean_up();
    return 0;
}

/* A socket of this type bound to a free loopback port; *port gets the port. TCP listens. */
static int bind_loopback(int type, int *port) {
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    int sock = tracked(socket(AF_INET, type, 0));
    assert_int_equal(bind(sock, (struct sockaddr *)&address, length), 0);
    if (type == SOCK_STREAM)
        assert_int_equal(listen(sock, SOMAXCONN), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)&address, &length), 0);
    *port = ntohs(address.sin_port);
    return sock;
}

static struct sockaddr_un unix_address(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof address.sun_path);
    strcpy(address.sun_path, path);
    return address;
}

/* A UNIX datagram socket, bound to path unless path is NULL. */
static int unix_datagram_socket(const char *path) {
    int sock = tracked(socket(AF_UNIX, SOCK_DGRAM, 0));
    struct sockaddr_un address = unix_address(path ? path : "");
    if (path != NULL)
        assert_int_equal(bind(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

static void send_datagram_to(int sock, const char *text, const char *path) {
    struct sockaddr_un address = unix_address(path);
    assert_int_equal(
        sendto(sock, text, strlen(text), 0, (struct sockaddr *)&address, sizeof address),
        (ssize_t)strlen(text));
}

/* Read what the peer sends until its end (or a reset, or the deadline): at most room - 1
 * bytes are kept, with a '\0' after them. Returns whether the end came. */
static bool read_to_the_end(int sock, char *received, size_t room, long long deadline) {
    size_t length = 0;
    received[0] = '\0';
    while (wait_for_socket(sock, POLLIN, deadline)) {
        char chunk[GREETING_ROOM];
        ssize_t bytes_read = recv(sock, chunk, sizeof chunk, 0);
        if (bytes_read == -1 && errno == EINTR)
            continue;
        if (bytes_read <= 0)
            return bytes_read == 0;
        size_t kept =
            (size_t)bytes_read < room - 1 - length ? (size_t)bytes_read : room - 1 - length;
        memcpy(received + length, chunk, kept);
        length += kept;
        received[length] = '\0';
    }
    return false;
}

/* Wait until the process has stopped (SIGSTOP) or exited; its status stays for the harness. */
static void wait_until_stopped(const struct process *process) {
    siginfo_t info;
    int result;
    do
        result = waitid(P_PID, (id_t)process->pid, &info, WSTOPPED | WEXITED | WNOWAIT);
    while (result == -1 && errno == EINTR);
    assert_int_equal(result, 0);
}

/* A FIFO for a program's stdout (run_options.output_file) that we hold open for reading but
 * read only when we choose: as `server | slow_reader`. Opened before the program starts, so
 * that its open for writing does not wait for a reader. */
static int unread_stdout(const char *path) {
    assert_int_equal(mkfifo(path, 0600), 0);
    return tracked(open(path, O_RDONLY | O_NONBLOCK));
}

/* Read all that waits in the pipe now; returns how many lines (newlines) it held. */
static int drain(int reader) {
    char chunk[65536];
    int lines = 0;
    ssize_t bytes_read;
    while ((bytes_read = read(reader, chunk, sizeof chunk)) > 0 ||
           (bytes_read == -1 && errno == EINTR))
        for (ssize_t i = 0; i < bytes_read; i++)
            lines += chunk[i] == '\n';
    assert_true(bytes_read == 0 || errno == EAGAIN || errno == EWOULDBLOCK);
    return lines;
}

/* Whether make builds the program here: epoll_server is Linux only. */
static bool built(const char *program) {
#ifdef __linux__
    (void)program;
    return true;
#else
    return strcmp(program, "epoll_server") != 0;
#endif
}

/* ====================================================================================== */
/* ---- a closed stdin or stdout never becomes a socket ---- */

static void
tcp_client_with_stdout_closed_fails_at_once_and_never_sends_its_own_lines(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("tcp_client", "-p", port), &(struct run_options){.close_stdout = true});

    /* "Client connected!" cannot be printed: it says so and aborts the connection. Had the
     * socket taken descriptor 1, its lines would have gone to the server as its reply. */
    assert_exit(client, 1);
    assert_stderr(client, "tcp_client: stdout: Bad file descriptor\n");
    assert_exit(server, 1);
    const char *ready = formatted("tcp_server: ready on 127.0.0.1 port %s\n", port);
    if (server->out.length == 0) { /* the reset came while it still sent its greeting */
        assert_stderr_one_of(server, ready, "tcp_server: send: Connection reset by peer\n",
                             "tcp_server: send: Broken pipe\n",
                             "tcp_server: shutdown: Transport endpoint is not connected\n");
    } else {
        assert_stdout(server, "Got from client: \n");
        assert_stderr(server, formatted("%stcp_server: recv: Connection reset by peer\n", ready));
    }
}

static void select_client_with_stdout_closed_fails_and_never_sends_its_own_output(void **state) {
    (void)state;
    struct process *server =
        start_program(ARGV("select_server", "-e", "-n", "1", "-t", "0", "-p", "0"), NULL);
    const char *port = ready_port(server);
    /* Its stdin stays open and silent: all it could send is what it prints. */
    struct process *client =
        start_program(ARGV("select_client", "-p", port),
                      &(struct run_options){.input_pipe = true, .close_stdout = true});

    assert_exit(client, 1);
    assert_stderr(client, "select_client: stdout: Bad file descriptor\n");
    assert_exit(server, 0);
    assert_stdout(server, "listening\naccepting new socket\nsocket disconnected\n");
    assert_stderr(server, formatted("select_server: ready on 127.0.0.1 port %s\n"
                                    "select_server: recv: Connection reset by peer\n",
                                    port));
}

static void event_servers_with_stdin_and_stdout_closed_fail_before_serving_anyone(void **state) {
    (void)state;
    /* Else the listener or a client would take descriptor 0 or 1, and its log would go into
     * a client's echo. */
    for (size_t i = 0; i < COUNT(EVENT_SERVERS); i++) {
        if (!built(EVENT_SERVERS[i]))
            continue;
        struct process *server =
            start_program(ARGV(EVENT_SERVERS[i], "-e", "-n", "1", "-p", "0"),
                          &(struct run_options){.close_stdin = true, .close_stdout = true});
        assert_exit(server, 1);
        assert_stderr(server, formatted("%s: stdout: Bad file descriptor\n", EVENT_SERVERS[i]));
    }
}

static void tcp_client_reading_m_dash_from_a_closed_stdin_fails_before_it_connects(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-n", "1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    const struct run_options closed = {.close_stdin = true};
    struct process *plain = start_program(ARGV("tcp_client", "-m", "-", "-p", port), &closed);
    assert_exit(plain, 1);
    assert_stdout(plain, "");
    assert_stderr(plain, "tcp_client: stdin: Bad file descriptor\n");
    struct process *echo = start_program(ARGV("tcp_client", "-e", "-m", "-", "-p", port), &closed);
    assert_exit(echo, 1);
    assert_stdout(echo, "");
    assert_stderr(echo, "tcp_client: stdin: Bad file descriptor\n");

    /* Neither connected: the server, which serves one client, is still there for this one. */
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
}

static void select_client_with_stdin_closed_fails_and_aborts_the_connection(void **state) {
    (void)state;
    struct process *server =
        start_program(ARGV("select_server", "-e", "-n", "1", "-t", "0", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("select_client", "-p", port),
                                           &(struct run_options){.close_stdin = true});

    /* Had the socket taken descriptor 0, it would read the server's greeting as its input,
     * and send it back. It may print the greeting before it finds stdin closed. */
    assert_exit(client, 1);
    assert_stderr(client, "select_client: stdin: Bad file descriptor\n");
    if (client->out.length > 0)
        assert_stdout(client, "Hello!\n");
    assert_select_server_lost_its_one_client(server, port);
}

static void programs_reading_m_dash_from_a_closed_stdin_fail_before_they_start(void **state) {
    (void)state;
    const char *const *const commands[] = {
        ARGV("tcp_server", "-m", "-", "-p", "0"),    ARGV("udp_receiver", "-m", "-", "-p", "0"),
        ARGV("select_server", "-m", "-", "-p", "0"), ARGV("poll_server", "-m", "-", "-p", "0"),
        ARGV("udp_sender", "-m", "-", "-p", "1"),
    };
    for (size_t i = 0; i < COUNT(commands); i++) {
        struct process *program =
            start_program(commands[i], &(struct run_options){.close_stdin = true});
        /* Each fails before it opens a socket: no ready line, no connection, no datagram. */
        assert_exit(program, 1);
        assert_stdout(program, "");
        assert_stderr(program, formatted("%s: stdin: Bad file descriptor\n", commands[i][0]));
    }
}

/* ====================================================================================== */
/* ---- udp_sender takes its reply from the receiver only ---- */

static void udp_sender_ignores_a_datagram_from_anyone_but_the_receiver(void **state) {
    (void)state;
    int port;
    int receiver = bind_loopback(SOCK_DGRAM, &port);
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
/* ---- a second server on the same socket file does not take it over ---- */

static void a_second_server_on_the_same_unix_path_fails_and_the_first_keeps_serving(void **state) {
    (void)state;
    const char *path = temp_path("server.sock");
    struct {
        const char *const *first, *const *second, *const *client;
        const char *client_stdout;
    } cases[] = {
        {ARGV("tcp_server", "-u", path, "-n", "0", "-m", "FIRST"),
         ARGV("tcp_server", "-u", path, "-n", "1", "-m", "SECOND"), ARGV("tcp_client", "-u", path),
         "Client connected!\nReceived from server: FIRST\nreply sent!\n"},
        {ARGV("udp_receiver", "-u", path, "-n", "0", "-m", "FIRST"),
         ARGV("udp_receiver", "-u", path, "-n", "1", "-m", "SECOND"),
         ARGV("udp_sender", "-u", path), "Sending data...\nGot response: FIRST\n"},
        {ARGV("select_server", "-u", path, "-n", "0", "-t", "0", "-m", "FIRST\n"),
         ARGV("select_server", "-u", path, "-n", "1", "-m", "SECOND\n"),
         ARGV("tcp_client", "-u", path),
         "Client connected!\nReceived from server: FIRST\n\nreply sent!\n"},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        const char *name = cases[i].first[0];
        struct process *first = start_program(cases[i].first, NULL);
        assert_int_equal(wait_for_ready_line(first, slow(READY_TIMEOUT_MS)), 0);
        struct process *second = start_program(cases[i].second, NULL);
        assert_exit(second, 1);
        assert_stdout(second, "");
        assert_stderr(second, formatted("%s: bind: Address already in use\n", name));

        struct process *client = start_program(cases[i].client, NULL);
        assert_exit(client, 0);
        assert_stdout(client, cases[i].client_stdout);
        /* The first still owns the file: it removes it when it stops. */
        assert_true(file_exists(path));
        assert_int_equal(kill(first->pid, SIGINT), 0);
        assert_exit(first, 128 + SIGINT);
        assert_false(file_exists(path));
    }
}

/* ====================================================================================== */
/* ---- event servers and their stdout ---- */

/* One client of the tutorial's protocol, as many as the test needs, each after the other:
 * connect, read the greeting to its end, close. Returns how many got exactly "Hello!\n". */
static int greet_clients(const char *path, int count, long long deadline) {
    struct sockaddr_un address = unix_address(path);
    for (int i = 0; i < count; i++) {
        int sock = tracked(socket(AF_UNIX, SOCK_STREAM, 0));
        char received[GREETING_ROOM];
        bool ended = connect(sock, (struct sockaddr *)&address, sizeof address) == 0 &&
                     read_to_the_end(sock, received, sizeof received, deadline);
        close_tracked(sock);
        if (!ended || strcmp(received, "Hello!\n") != 0) {
            print_error("client %d of %d: %s %s\n", i + 1, count,
                        ended ? "received" : "never got to the end, after",
                        shown(received, strlen(received)));
            return i;
        }
    }
    return count;
}

static void keeps_serving_while_nobody_reads_its_stdout_and_stops_on_sigint(void **state) {
    const char *name = server_of(state);
    const char *path = temp_path("server.sock");
    const char *fifo = temp_path("stdout");
    int reader = unread_stdout(fifo);
    struct process *server = start_program(ARGV(name, "-u", path, "-n", "0", "-t", "0"),
                                           &(struct run_options){.output_file = fifo});
    assert_int_equal(wait_for_ready_line(server, slow(READY_TIMEOUT_MS)), 0);

    /* Two lines a client: after some 1,600 clients the pipe is full, after as many more the
     * server's own buffer. Every client must still be served, one after the other. */
    long long deadline = now_ms() + slow(UNREAD_MS);
    assert_int_equal(greet_clients(path, UNREAD_CLIENTS, deadline), UNREAD_CLIENTS);
    const char *notice = formatted("%s: " NOT_READ_NOTICE "\n", name);
    assert_true(wait_for_stderr(server, notice, slow(FINISH_TIMEOUT_MS)));

    /* Still stdout full: SIGINT stops it at once, and its socket file goes. */
    assert_true(is_running(server));
    assert_int_equal(kill(server->pid, SIGINT), 0);
    assert_exit_within(server, 128 + SIGINT, slow(STOP_MS));
    assert_stderr(
        server, formatted("%s: ready on %s\n%s%s: stopped by SIGINT\n", name, path, notice, name));
    assert_false(file_exists(path));
    assert_true(drain(reader) > 0);
}

static void says_how_many_lines_it_dropped_once_its_stdout_is_read_again(void **state) {
    const char *name = server_of(state);
    const char *path = temp_path("server.sock");
    const char *fifo = temp_path("stdout");
    int reader = unread_stdout(fifo);
    const char *count = formatted("%d", UNREAD_CLIENTS);
    struct process *server = start_program(ARGV(name, "-u", path, "-n", count, "-t", "0"),
                                           &(struct run_options){.output_file = fifo});
    assert_int_equal(wait_for_ready_line(server, slow(READY_TIMEOUT_MS)), 0);
    long long deadline = now_ms() + slow(UNREAD_MS);
    assert_int_equal(greet_clients(path, UNREAD_CLIENTS, deadline), UNREAD_CLIENTS);

    /* Now read: the server writes what it kept, says how many lines it dropped, and exits. */
    int lines = 0;
    struct pollfd readable = {.fd = reader, .events = POLLIN};
    while (poll(&readable, 1, ms_until(deadline)) == 1) {
        int more = drain(reader);
        if (more == 0 && !(readable.revents & POLLIN))
            break; /* end of file: the server has gone */
        lines += more;
    }
    assert_exit(server, 0);

    /* It says how many lines it dropped: each line it printed was either read or counted. */
    const char *before =
        formatted("%s: ready on %s\n%s: " NOT_READ_NOTICE "\n%s: ", name, path, name, name);
    const char *text = server->err.data ? server->err.data : "";
    long dropped =
        strncmp(text, before, strlen(before)) == 0 ? strtol(text + strlen(before), NULL, 10) : -1;
    assert_stderr(server, formatted("%s%ld lines for stdout dropped: it was not read in time\n",
                                    before, dropped));
    if (lines + dropped != 1 + 2 * UNREAD_CLIENTS)
        fail_msg("%s: %d lines read + %ld dropped; it printed %d (listening, and 2 a client)", name,
                 lines, dropped, 1 + 2 * UNREAD_CLIENTS);
}

static void exits_with_broken_pipe_once_its_stdout_reader_has_gone(void **state) {
    const char *name = server_of(state);
    const char *path = temp_path("server.sock");
    const char *fifo = temp_path("stdout");
    int reader = unread_stdout(fifo);
    struct process *server = start_program(ARGV(name, "-u", path, "-n", "0", "-t", "0"),
                                           &(struct run_options){.output_file = fifo});
    assert_int_equal(wait_for_ready_line(server, slow(READY_TIMEOUT_MS)), 0);

    /* As `server | head -1`: the reader takes "listening" and goes. The next line fails. */
    char first[sizeof "listening\n"] = "";
    assert_true(wait_for_socket(reader, POLLIN, now_ms() + slow(READY_TIMEOUT_MS)));
    assert_int_equal(read(reader, first, strlen("listening\n")), strlen("listening\n"));
    assert_string_equal(first, "listening\n");
    close_tracked(reader);
    struct sockaddr_un address = unix_address(path);
    int client = tracked(socket(AF_UNIX, SOCK_STREAM, 0));
    assert_int_equal(connect(client, (struct sockaddr *)&address, sizeof address), 0);

    assert_exit(server, 1);
    assert_stderr(server,
                  formatted("%s: ready on %s\n%s: stdout: Broken pipe\n", name, path, name));
    assert_false(file_exists(path));
}

/* ====================================================================================== */
/* ---- tcp_server goes on after a client fails ---- */

/* A client that reads the greeting to its end (the server has shut down its side and waits for
 * the reply), then resets the connection. */
static void greet_and_reset(int port) {
    int rude = connect_to_loopback(port);
    char received[GREETING_ROOM];
    assert_true(
        read_to_the_end(rude, received, sizeof received, now_ms() + slow(FINISH_TIMEOUT_MS)));
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
    char received[GREETING_ROOM];
    assert_true(
        read_to_the_end(idle, received, sizeof received, now_ms() + slow(FINISH_TIMEOUT_MS)));
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

/* ====================================================================================== */
/* ---- udp_receiver goes on when a reply cannot be delivered ---- */

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
    send_datagram_to(unix_datagram_socket(NULL), "from a socket without an address", path);
    int gone = unix_datagram_socket(gone_path);
    send_datagram_to(gone, "from a socket closed and removed", path);
    close_tracked(gone);
    assert_int_equal(unlink(gone_path), 0);
    int closed = unix_datagram_socket(closed_path);
    send_datagram_to(closed, "from a socket closed", path);
    close_tracked(closed);
    assert_int_equal(kill(receiver->pid, SIGCONT), 0);

    /* Then one that sends and never reads. Its sends wait while the receiver's queue is full
     * (SO_SNDTIMEO bounds the wait); the receiver's replies fill the peer's own queue. */
    int deaf = unix_datagram_socket(deaf_path);
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
/* ---- a stdin that fails in the middle is not a clean end of the message ---- */

static void tcp_client_whose_stdin_fails_aborts_the_connection(void **state) {
    (void)state;
    /* read() on a directory fails (EISDIR), as a failing disk or a broken pipe would. */
    const char *directory = temp_path("");
    const struct run_options failing = {.input_file = directory};
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-m", "-", "-p", port), &failing);

    assert_exit(client, 1);
    assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
    assert_stderr(client, "tcp_client: stdin: Is a directory\n");
    assert_exit(server, 1);
    assert_stdout(server, "Got from client: \n");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                    "tcp_server: recv: Connection reset by peer\n",
                                    port));

    /* The same with -e, to an echo server: it must not take the failure for the end. */
    server = start_program(ARGV("select_server", "-e", "-n", "1", "-t", "0", "-p", "0"), NULL);
    port = ready_port(server);
    client = start_program(ARGV("tcp_client", "-e", "-m", "-", "-p", port), &failing);
    assert_exit(client, 1);
    assert_stdout(client, "Client connected!\n");
    assert_stderr(client, "tcp_client: stdin: Is a directory\n");
    assert_select_server_lost_its_one_client(server, port);
}

static void tcp_server_whose_stdin_fails_aborts_the_connection(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                           &(struct run_options){.input_file = temp_path("")});
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);

    assert_exit(client, 1);
    assert_stdout(client, "Client connected!\nReceived from server: \n");
    assert_stderr(client, "tcp_client: recv: Connection reset by peer\n");
    assert_exit(server, 1);
    assert_stdout(server, "");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                    "tcp_server: stdin: Is a directory\n",
                                    port));
}

/* ====================================================================================== */
/* ---- -m - waits for a non-blocking stdin ---- */

/* A program's stdin pipe tells nobody when it has been read: look, every INPUT_POLL_MS, until
 * nothing we sent is left in it (FIONREAD), so that its next read finds the pipe empty. */
static void wait_until_input_is_read(const struct process *program) {
    long long deadline = now_ms() + slow(INPUT_TIMEOUT_MS);
    int unread;
    while (ioctl(program->stdin_fd, FIONREAD, &unread) == 0 && unread > 0 && ms_until(deadline) > 0)
        poll(NULL, 0, INPUT_POLL_MS);
    if (unread > 0)
        fail_msg("%s did not read its input within %d ms", program->label, slow(INPUT_TIMEOUT_MS));
}

static const struct run_options NONBLOCKING_INPUT = {.input_pipe = true, .nonblocking_input = true};

static void tcp_server_with_m_dash_waits_for_a_nonblocking_stdin(void **state) {
    (void)state;
    struct process *server =
        start_program(ARGV("tcp_server", "-m", "-", "-p", "0"), &NONBLOCKING_INPUT);
    const char *port = ready_port(server);
    assert_true(send_input(server, "first part, "));
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);
    /* The client has the first part: the server's stdin is empty now, not at its end. */
    assert_true(
        wait_for_output(client, "Received from server: first part, ", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(server, "second part"));
    close_input(server);

    assert_exit(client, 0);
    assert_stdout(client, "Client connected!\nReceived from server: first part, second part\n"
                          "reply sent!\n");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n", port));
}

static void tcp_client_with_m_dash_waits_for_a_nonblocking_stdin(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
    const char *port = ready_port(server);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", "-", "-p", port), &NONBLOCKING_INPUT);
    /* The server prints a line once it is whole: the first piece is one. */
    assert_true(send_input(client, "first line\n"));
    assert_true(wait_for_output(server, "Got from client: first line\n", slow(FINISH_TIMEOUT_MS)));
    assert_true(send_input(client, "second line"));
    close_input(client);

    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: first line\nsecond line\n");
}

static void udp_sender_with_m_dash_waits_for_a_nonblocking_stdin(void **state) {
    (void)state;
    struct process *receiver = start_program(ARGV("udp_receiver", "-p", "0"), NULL);
    const char *port = ready_port(receiver);
    struct process *sender =
        start_program(ARGV("udp_sender", "-m", "-", "-p", port), &NONBLOCKING_INPUT);
    assert_true(send_input(sender, "first part, "));
    wait_until_input_is_read(sender);
    assert_true(send_input(sender, "second part"));
    close_input(sender);

    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_stderr(sender, "");
    assert_exit(receiver, 0);
    assert_stdout(receiver, "Waiting for data...\nReceived: first part, second part\n");
}

/* ====================================================================================== */
/* ---- -t is a deadline ---- */

static void udp_sender_gives_up_at_its_deadline_though_stopped_and_continued(void **state) {
    (void)state;
    /* A receiver that never answers, and a job control that stops and continues the sender
     * every SIGNAL_EVERY_MS. Each stop interrupts its wait: a timeout per call (SO_RCVTIMEO)
     * would start again each time, and never run out while the signals go on. */
    int port;
    int silent = bind_loopback(SOCK_DGRAM, &port);
    long long started = now_ms();
    struct process *sender = start_program(
        ARGV("udp_sender", "-t", formatted("%d", GIVE_UP_S), "-p", formatted("%d", port)), NULL);
    char datagram[GREETING_ROOM];
    assert_true(wait_for_socket(silent, POLLIN, now_ms() + slow(READY_TIMEOUT_MS)));
    assert_int_equal(recv(silent, datagram, sizeof datagram, 0), strlen("Hello!"));
    long long sent = now_ms(); /* its deadline was set just before it sent */

    int rounds = 0;
    struct pollfd said = {.fd = sender->stderr_fd, .events = POLLIN};
    long long latest = sent + GIVE_UP_S * 1000 + slow(LATE_MS);
    while (ms_until(latest) > 0 && poll(&said, 1, 0) == 0) {
        assert_int_equal(kill(sender->pid, SIGSTOP), 0);
        wait_until_stopped(sender);
        assert_int_equal(kill(sender->pid, SIGCONT), 0);
        rounds++;
        poll(&said, 1, SIGNAL_EVERY_MS < ms_until(latest) ? SIGNAL_EVERY_MS : ms_until(latest));
    }
    long long ended = now_ms();

    assert_exit(sender, 1);
    assert_stdout(sender, "Sending data...\n");
    assert_stderr(sender, formatted("udp_sender: no reply within %d s \u2014 is udp_receiver "
                                    "running?\n",
                                    GIVE_UP_S));
    assert_true(rounds >= 2);
    if (ended - started < GIVE_UP_S * 1000 - 100 || ended - sent > GIVE_UP_S * 1000 + slow(LATE_MS))
        fail_msg("udp_sender -t %d gave up %lld ms after it started and %lld ms after it sent "
                 "(expected about %d)",
                 GIVE_UP_S, ended - started, ended - sent, GIVE_UP_S * 1000);
}

/* ====================================================================================== */
/* ---- honest errors ---- */

static void tcp_server_says_at_once_that_its_stdout_is_full(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-n", "0", "-p", "0"),
                                           &(struct run_options){.output_file = "/dev/full"});
    const char *port = ready_port(server);
    struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);

    /* Serving for ever, it must not keep the error for an end that never comes. */
    assert_exit(server, 1);
    assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                    "tcp_server: stdout: No space left on device\n",
                                    port));

    for (size_t i = 0; i < COUNT(EVENT_SERVERS); i++) {
        if (!built(EVENT_SERVERS[i]))
            continue;
        server = start_program(ARGV(EVENT_SERVERS[i], "-n", "0", "-p", "0"),
                               &(struct run_options){.output_file = "/dev/full"});
        assert_exit(server, 1);
        assert_stderr(server, formatted("%s: stdout: No space left on device\n", EVENT_SERVERS[i]));
    }
}

static void a_numeric_ipv6_address_needs_no_6(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("tcp_server", "-H", "::1", "-p", "0"), NULL);
    const char *port = ready_port(server);
    assert_stderr(server, formatted("tcp_server: ready on ::1 port %s\n", port));
    struct process *client = start_program(ARGV("tcp_client", "-H", "::1", "-p", port), NULL);
    assert_exit(client, 0);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server, "Got from client: Thanks! Bye.\n");

    struct process *receiver = start_program(ARGV("udp_receiver", "-H", "::1", "-p", "0"), NULL);
    port = ready_port(receiver);
    struct process *sender = start_program(ARGV("udp_sender", "-H", "::1", "-p", port), NULL);
    assert_exit(sender, 0);
    assert_stdout(sender, "Sending data...\nGot response: got it!\n");
    assert_exit(receiver, 0);
    assert_stderr(receiver, formatted("udp_receiver: ready on ::1 port %s\n", port));

    server = start_program(ARGV("select_server", "-e", "-n", "1", "-H", "::1", "-p", "0"), NULL);
    port = ready_port(server);
    client = start_program(ARGV("select_client", "-H", "::1", "-p", port),
                           &(struct run_options){.input = "over IPv6\n"});
    assert_exit(client, 0);
    assert_stdout(client, "Hello!\nover IPv6\n");
    assert_exit(server, 0);
    assert_stderr(server, formatted("select_server: ready on ::1 port %s\n", port));
}

static void every_program_refuses_a_numeric_address_of_the_other_family(void **state) {
    (void)state;
    for (size_t i = 0; i < COUNT(PROGRAMS); i++) {
        if (!built(PROGRAMS[i]))
            continue;
        struct process *program = start_program(ARGV(PROGRAMS[i], "-4", "-H", "::1"), NULL);
        assert_exit(program, 2);
        assert_stdout(program, "");
        assert_stderr(program, formatted("%s: ::1 is an IPv6 address: use -6\n", PROGRAMS[i]));
        program = start_program(ARGV(PROGRAMS[i], "-6", "-H", "127.0.0.1"), NULL);
        assert_exit(program, 2);
        assert_stdout(program, "");
        assert_stderr(program,
                      formatted("%s: 127.0.0.1 is an IPv4 address: use -4\n", PROGRAMS[i]));
    }
}

#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    const struct CMUnitTest tests[] = {
        TEST(tcp_client_with_stdout_closed_fails_at_once_and_never_sends_its_own_lines),
        TEST(select_client_with_stdout_closed_fails_and_never_sends_its_own_output),
        TEST(event_servers_with_stdin_and_stdout_closed_fail_before_serving_anyone),
        TEST(tcp_client_reading_m_dash_from_a_closed_stdin_fails_before_it_connects),
        TEST(select_client_with_stdin_closed_fails_and_aborts_the_connection),
        TEST(programs_reading_m_dash_from_a_closed_stdin_fail_before_they_start),
        TEST(udp_sender_ignores_a_datagram_from_anyone_but_the_receiver),
        TEST(a_second_server_on_the_same_unix_path_fails_and_the_first_keeps_serving),
        PER_SERVER(keeps_serving_while_nobody_reads_its_stdout_and_stops_on_sigint),
        PER_SERVER(says_how_many_lines_it_dropped_once_its_stdout_is_read_again),
        PER_SERVER(exits_with_broken_pipe_once_its_stdout_reader_has_gone),
        TEST(tcp_server_serving_forever_goes_on_after_clients_that_reset),
        TEST(tcp_server_serves_count_clients_and_exits_1_when_one_of_them_failed),
        TEST(tcp_server_with_t_drops_a_client_that_sends_nothing_and_serves_the_next),
        TEST(udp_receiver_skips_replies_it_cannot_deliver_and_goes_on),
        TEST(tcp_client_whose_stdin_fails_aborts_the_connection),
        TEST(tcp_server_whose_stdin_fails_aborts_the_connection),
        TEST(tcp_server_with_m_dash_waits_for_a_nonblocking_stdin),
        TEST(tcp_client_with_m_dash_waits_for_a_nonblocking_stdin),
        TEST(udp_sender_with_m_dash_waits_for_a_nonblocking_stdin),
        TEST(udp_sender_gives_up_at_its_deadline_though_stopped_and_continued),
        TEST(tcp_server_says_at_once_that_its_stdout_is_full),
        TEST(a_numeric_ipv6_address_needs_no_6),
        TEST(every_program_refuses_a_numeric_address_of_the_other_family),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
