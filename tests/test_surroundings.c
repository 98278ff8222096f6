#define _POSIX_C_SOURCE 200809L
/* test_surroundings.c: the hardened programs (examples/hardened/) in careless and hostile
 * surroundings: what the process itself is given, rather than what a peer sends. Started with
 * stdin or stdout closed, with a stdin that fails or does not block, with a stdout that nobody
 * reads, that has gone, that is full, or that another program made non-blocking; the stop
 * signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT: it says so, removes its file, and a connection
 * they cut reaches the peer as a failure), SIGSTOP and SIGCONT while it waits; socket files (a
 * second server on the same path, a stale file, a file that is not a socket, a bind lost). Each
 * test checks exact output and exit status against the program contract. Fake peers are sockets of
 * this process, on loopback ports the kernel picks or in the temporary directory; every wait has a
 * deadline. Run from the repository root: build/test_surroundings (BIN_DIR=dir picks other
 * binaries). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    UNREAD_CLIENTS = 6000,      /* their lines fill a 64 KiB pipe and the 64 KiB log behind it */
    UNREAD_MS = 60 * 1000,      /* for all of them to be served */
    STOP_MS = 2000,             /* for a server to stop on SIGINT */
    GREETING_ROOM = 64,         /* bytes we keep of what a client receives */
    GIVE_UP_S = 2,              /* udp_sender's -t in the test of the deadline */
    SIGNAL_EVERY_MS = 500,      /* SIGSTOP and SIGCONT, then this long in peace */
    INPUT_POLL_MS = 5,          /* between looks at how much of our input a program has read */
    SLOW_STDOUT_SIZE = 8 << 20, /* what a client prints into a non-blocking stdout */
    SLOW_READ = 16 << 10,       /* a slow reader takes this much at a time, */
    SLOW_READ_PAUSE_MS = 2,     /* then pauses this long: the pipe fills meanwhile */
    BIG_TIMEOUT_MS = 60 * 1000, /* for SLOW_STDOUT_SIZE to be read so */
    BURST = 200,                /* clients that wait while a server is stopped: 4 KiB of log */
    SHARED_ROOM = 64 << 10,     /* bytes we keep of what a server writes into its socket */
    AT_ONCE_MS = GIVE_UP_S * 1000 / 2, /* "at once", well before another -t would pass */
    DRAIN_MS = 2000, /* an event server's last wait for room in its stdout, at most */
};

static const char *const EVENT_SERVERS[] = {"select_server", "poll_server", "epoll_server"};
static const char *const SERVERS[] = {"udp_receiver", "tcp_server", "select_server"};
static const char *const EVERY_SERVER[] = {"udp_receiver", "tcp_server", "select_server",
                                           "poll_server", "epoll_server"};
/* The signals that ask a program to stop: Ctrl-C, kill, a closed terminal, Ctrl-\. */
static const int STOP_SIGNALS[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static const char *signal_name(int signal_number) {
    return signal_number == SIGINT    ? "SIGINT"
           : signal_number == SIGTERM ? "SIGTERM"
           : signal_number == SIGHUP  ? "SIGHUP"
                                      : "SIGQUIT";
}
#define NOT_READ_NOTICE "stdout is not read: its lines are dropped, and counted, until it is"

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
    if (server->out.length == 0) { /* the reset came before it ended its side */
        assert_stderr(
            server,
            formatted("%stcp_server: shutdown: Transport endpoint is not connected\n", ready));
    } else { /* a reset while it sends its greeting is said once it has read all there is */
        assert_stdout(server, "Got from client: \n");
        assert_stderr_one_of(server, ready, "tcp_server: recv: Connection reset by peer\n",
                             "tcp_server: send: Connection reset by peer\n",
                             "tcp_server: send: Broken pipe\n");
    }
}

static void select_client_with_stdout_closed_fails_and_never_sends_its_own_output(void **state) {
    (void)state;
    /* An echo server that greets (-m): the client has something to print. */
    struct process *server = start_program(
        ARGV("select_server", "-e", "-m", "Hello!\n", "-n", "1", "-t", "0", "-p", "0"), NULL);
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

static void tcp_server_with_stdout_closed_fails_before_serving_anyone(void **state) {
    (void)state;
    /* It prints what each client sends: were it to serve one, the client would print "reply
     * sent!" and exit 0, and its reply would be lost. So no ready line, no client. */
    struct process *server = start_program(ARGV("tcp_server", "-n", "1", "-p", "0"),
                                           &(struct run_options){.close_stdout = true});
    assert_exit(server, 1);
    assert_stderr(server, "tcp_server: stdout: Bad file descriptor\n");
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
    struct process *server = start_program(
        ARGV("select_server", "-e", "-m", "Hello!\n", "-n", "1", "-t", "0", "-p", "0"), NULL);
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
    assert_stdout(client, "Client connected!\nReceived from server: ");
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
/* ---- a non-blocking stdout is waited for ---- */

/* O_NONBLOCK belongs to the open file, which all who hold it share, not to a descriptor
 * (fcntl(2)): a program that shares our stdout may have set it, as perl does here before it
 * runs the program. A write into a full pipe then fails with EAGAIN instead of waiting. */
static const char *const WITH_NONBLOCKING_STDOUT[] = {
    "perl", "-e",
    "use Fcntl; fcntl(STDOUT, F_SETFL, fcntl(STDOUT, F_GETFL, 0) | O_NONBLOCK) or die \"$!\\n\"; "
    "exec {$ARGV[0]} @ARGV or die \"$ARGV[0]: $!\\n\"",
    NULL};

/* Read the program's stdout, a FIFO (unread_stdout gave its reader), as a slow reader does:
 * SLOW_READ bytes, a pause, again, until the program has gone and the FIFO is empty. Returns a
 * file with all it printed. */
static const char *read_slowly(struct process *program, int reader) {
    const char *path = temp_path(formatted("%s.read", program->name));
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    static char chunk[SLOW_READ];
    long long deadline = now_ms() + slow(BIG_TIMEOUT_MS);
    bool gone = false;
    for (;;) {
        ssize_t got = read(reader, chunk, sizeof chunk);
        if (got > 0) {
            assert_int_equal(fwrite(chunk, 1, (size_t)got, file), got);
            poll(NULL, 0, SLOW_READ_PAUSE_MS);
            continue;
        }
        assert_true(got == -1 && (errno == EAGAIN || errno == EINTR));
        if (gone)
            break; /* empty, and it had gone before we last looked: all is read */
        gone = !is_running(program);
        if (!gone && ms_until(deadline) == 0)
            fail_msg("%s still running after %d ms of slow reading", program->label,
                     slow(BIG_TIMEOUT_MS));
        if (!gone)
            wait_for_socket(reader, POLLIN, now_ms() + INPUT_POLL_MS);
    }
    fclose(file);
    return path;
}

static void tcp_client_and_select_client_wait_for_a_nonblocking_stdout_read_slowly(void **state) {
    (void)state;
    NEED_TOOL("perl", "perl-base");
    const char *payload = temp_path("payload");
    uint64_t fingerprint = write_random_file(payload, SLOW_STDOUT_SIZE);
    for (int i = 0; i < 2; i++) {
        bool tcp = i == 0;
        struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                               &(struct run_options){.input_file = payload});
        const char *port = ready_port(server);
        const char *fifo = temp_path(formatted("stdout-%d", i));
        int reader = unread_stdout(fifo);
        /* We hold a write end too: the FIFO cannot end before the client has opened it. */
        tracked(open(fifo, O_WRONLY | O_NONBLOCK));
        const struct run_options nonblocking = {.output_file = fifo,
                                                .wrapper = WITH_NONBLOCKING_STDOUT};
        struct process *client = start_program(
            tcp ? ARGV("tcp_client", "-p", port) : ARGV("select_client", "-p", port), &nonblocking);
        const char *printed = read_slowly(client, reader);

        assert_exit(client, 0);
        assert_stderr(client, "");
        assert_file_holds(printed, tcp ? "Client connected!\nReceived from server: " : "",
                          SLOW_STDOUT_SIZE, fingerprint, tcp ? "\nreply sent!\n" : "");
        assert_exit(server, 0);
        assert_stdout(server, tcp ? "Got from client: Thanks! Bye.\n" : "Got from client: \n");
    }
}

/* ====================================================================================== */
/* ---- event servers and their stdout ---- */

/* One client of the tutorial's protocol, as many as the test needs, each after the other:
 * connect, read the greeting to its end, close. Returns how many got exactly "Hello!\n". */
static int greet_clients(const char *path, int count, long long deadline) {
    struct sockaddr_un address = unix_address(path);
    for (int i = 0; i < count; i++) {
        int sock = unix_socket(SOCK_STREAM, NULL);
        char received[GREETING_ROOM] = "";
        /* Fewer bytes than room for: the greeting came, and then its end (or a reset). */
        ssize_t length = connect(sock, (struct sockaddr *)&address, sizeof address) == 0
                             ? receive_within(sock, received, sizeof received - 1, deadline)
                             : -1;
        close_tracked(sock);
        if (length != (ssize_t)strlen("Hello!\n") || strcmp(received, "Hello!\n") != 0) {
            print_error("client %d of %d: %s %s\n", i + 1, count,
                        length == -1 ? "never got to the end, after" : "received",
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

/* Fill the FIFO (unread_stdout) to the brim: a write end of ours writes until it takes no more. */
static void fill_fifo(const char *fifo) {
    int filler = tracked(open(fifo, O_WRONLY | O_NONBLOCK));
    static const char block[4096];
    while (write(filler, block, sizeof block) > 0)
        continue;
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    close_tracked(filler);
}

/* Wait until the server no longer listens on its port (the kernel's table): the last of its
 * -n clients has gone, and it is at its last wait. */
static void wait_until_not_listening(struct process *server) {
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);
    while (bound_port(server->pid, SOCK_STREAM) != 0 && ms_until(deadline) > 0)
        poll(NULL, 0, INPUT_POLL_MS);
    if (bound_port(server->pid, SOCK_STREAM) != 0)
        fail_showing_server(server, "it still listens after its last client");
}

static void ends_its_last_wait_for_a_full_stdout_on_a_stop_signal_or_after_2_s(void **state) {
    const char *name = server_of(state);
    /* Its stdout full from the start, the server drops its lines and counts them. Once its
     * one client (-n 1) has gone, it waits for room to say how many: DRAIN_MS (2 s) in all, and
     * SIGINT or SIGTERM meanwhile ends it at once (its exit status tells: 0 after the wait). */
    const int signals[] = {SIGINT, SIGTERM, 0};
    for (size_t i = 0; i < COUNT(signals); i++) {
        const char *fifo = temp_path(formatted("stdout-%zu", i));
        int reader = unread_stdout(fifo);
        fill_fifo(fifo);
        struct process *server = start_program(ARGV(name, "-n", "1", "-t", "0", "-p", "0"),
                                               &(struct run_options){.output_file = fifo});
        const char *port = ready_port(server);
        int client = connect_to_loopback(atoi(port));
        char greeting[GREETING_ROOM];
        assert_int_equal(
            receive_within(client, greeting, sizeof greeting, now_ms() + slow(FINISH_TIMEOUT_MS)),
            strlen("Hello!\n"));
        close_tracked(client);
        wait_until_not_listening(server);
        if (signals[i] != 0)
            assert_int_equal(kill(server->pid, signals[i]), 0);

        const char *said = formatted("%s: " NOT_READ_NOTICE "\n%s: ready on 127.0.0.1 port %s\n",
                                     name, name, port);
        if (signals[i] != 0) {
            assert_exit_within(server, 128 + signals[i], slow(STOP_MS));
            assert_stderr(server,
                          formatted("%s%s: stopped by %s\n", said, name, signal_name(signals[i])));
        } else {
            assert_exit_within(server, 0, DRAIN_MS + slow(STOP_MS));
            assert_stderr(server, formatted("%s%s: 3 lines for stdout dropped: it was not read "
                                            "in time\n",
                                            said, name));
        }
        close_tracked(reader);
    }
}

/* Whether line (its '\n' left out) is a line of the event server, whole: one of its log, one
 * of its own on stderr ("select_server: ..."), or `ours`. A line cut short, and the next one
 * joined to it ("accepting new soaccepting new socket"), is none of them. */
static bool whole_server_line(const char *name, const char *line, const char *ours) {
    static const char *const LOG[] = {"listening", "accepting new socket", "socket sent data",
                                      "socket disconnected", "Select timed out."};
    for (size_t i = 0; i < COUNT(LOG); i++)
        if (strcmp(line, LOG[i]) == 0)
            return true;
    const char *prefix = formatted("%s: ", name), *rest = line + strlen(prefix);
    if (strcmp(line, ours) == 0)
        return true;
    if (strncmp(line, prefix, strlen(prefix)) != 0 || *rest == '\0' ||
        strstr(rest, formatted("%s:", name)) != NULL)
        return false;
    for (size_t i = 0; i < COUNT(LOG); i++)
        if (strstr(rest, LOG[i]) != NULL)
            return false;
    return true;
}

/* Read from sock into got until it holds text (or, text NULL, until the end), by the deadline. */
static void read_into(int sock, struct output *got, const char *text, long long deadline) {
    while (text == NULL || strstr(got->data, text) == NULL) {
        if (got->length == got->capacity - 1)
            fail_msg("more than %zu bytes came", got->capacity - 1);
        if (!wait_for_socket(sock, POLLIN, deadline))
            fail_msg("\"%s\" did not come; came: %s", text ? text : "the end",
                     shown(got->data, got->length));
        ssize_t bytes = read(sock, got->data + got->length, got->capacity - 1 - got->length);
        assert_true(bytes >= 0 || errno == EAGAIN || errno == EINTR);
        if (bytes == 0)
            break;
        got->length += bytes > 0 ? (size_t)bytes : 0;
        got->data[got->length] = '\0';
    }
    if (text != NULL && strstr(got->data, text) == NULL)
        fail_msg("the stream ended before \"%s\"; came: %s", text, shown(got->data, got->length));
}

static void
writes_only_whole_lines_into_a_nonblocking_socket_that_stdout_and_stderr_share(void **state) {
    const char *name = server_of(state);
    NEED_TOOL("perl", "perl-base");
    /* stdout and stderr one stream socket (as systemd gives a service, to its journal), made
     * non-blocking by another holder, with the smallest send buffer: a write of more than
     * some 2 KiB then goes in part, and the rest must follow, for no line to be torn. */
    int ends[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, ends), 0);
    int ours = tracked(ends[0]), theirs = ends[1]; /* theirs: inherited, so not tracked yet */
    int smallest = 1;
    assert_int_equal(setsockopt(theirs, SOL_SOCKET, SO_SNDBUF, &smallest, sizeof smallest), 0);
    set_nonblocking(theirs);
    const char *const onto_the_socket[] = {
        "perl", "-e",
        "open(STDOUT, '>&', $ARGV[0]) && open(STDERR, '>&', $ARGV[0]) or die \"$!\\n\"; shift; "
        "exec {$ARGV[0]} @ARGV or die \"$ARGV[0]: $!\\n\"",
        formatted("%d", theirs), NULL};
    const char *path = temp_path("server.sock");
    struct process *server = start_program(ARGV(name, "-u", path, "-n", "0", "-t", "0"),
                                           &(struct run_options){.wrapper = onto_the_socket});
    tracked(theirs);
    static char room[SHARED_ROOM];
    struct output got = {.data = room, .capacity = sizeof room};
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);
    read_into(ours, &got, formatted("%s: ready on %s\n", name, path), deadline);

    /* Stopped, it lets BURST clients wait; continued, it takes them all in one turn, and
     * writes some 4 KiB of its log at once. A line of ours waits unread before it. */
    assert_int_equal(kill(server->pid, SIGSTOP), 0);
    wait_until_stopped(server);
    struct sockaddr_un address = unix_address(path);
    int clients[BURST];
    for (int i = 0; i < BURST; i++) {
        clients[i] = unix_socket(SOCK_STREAM, NULL);
        assert_int_equal(connect(clients[i], (struct sockaddr *)&address, sizeof address), 0);
    }
    const char *our_line = "a line of the test's own";
    assert_int_equal(write(theirs, formatted("%s\n", our_line), strlen(our_line) + 1),
                     strlen(our_line) + 1);
    close_tracked(theirs);
    assert_int_equal(kill(server->pid, SIGCONT), 0);
    /* We read once its long write has landed, in part or whole: reading before would leave
     * room enough for all of it. */
    int unread = 0;
    while (ioctl(ours, FIONREAD, &unread) == 0 && unread <= (int)strlen(our_line) + PIPE_BUF / 2 &&
           ms_until(deadline) > 0)
        poll(NULL, 0, INPUT_POLL_MS);
    read_into(ours, &got, "accepting new socket\n", deadline);
    for (int i = 0; i < BURST; i++)
        close_tracked(clients[i]);
    assert_int_equal(kill(server->pid, SIGTERM), 0);
    read_into(ours, &got, NULL, deadline);

    assert_exit(server, 128 + SIGTERM);
    assert_true(got.length > 0 && got.data[got.length - 1] == '\n');
    for (char *line = got.data, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        *end = '\0';
        if (!whole_server_line(name, line, our_line))
            fail_msg("%s wrote a torn line: %s", name, shown(line, strlen(line)));
    }
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
/* ---- a full stdout is reported at once ---- */

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

/* ====================================================================================== */
/* ---- the stop signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT ---- */

/* What a server has printed on stdout by the time it waits for its first client. */
static const char *stdout_when_waiting(const char *server) {
    if (strcmp(server, "udp_receiver") == 0)
        return "Waiting for data...\n";
    return strcmp(server, "tcp_server") == 0 ? "" : "listening\n";
}

/* Wait until the server has printed what it prints before it waits (the ready line is on
 * stderr, and for udp_receiver "Waiting for data..." comes after it). */
static void wait_until_waiting(struct process *server) {
    const char *waiting = stdout_when_waiting(server->name);
    assert_true(*waiting == '\0' || wait_for_output(server, waiting, READY_TIMEOUT_MS));
}

static void
every_unix_server_stopped_by_a_stop_signal_says_so_and_removes_its_socket_file(void **state) {
    (void)state;
    const char *path = temp_path("server.sock");
    for (size_t i = 0; i < COUNT(EVERY_SERVER); i++) {
        if (!built(EVERY_SERVER[i]))
            continue;
        for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
            int signal_number = STOP_SIGNALS[j];
            struct process *server = start_program(ARGV(EVERY_SERVER[i], "-u", path), NULL);
            assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
            wait_until_waiting(server);
            assert_true(file_exists(path));
            assert_int_equal(kill(server->pid, signal_number), 0);

            assert_exit(server, 128 + signal_number);
            assert_stdout(server, stdout_when_waiting(EVERY_SERVER[i]));
            assert_stderr(server, formatted("%s: ready on %s\n%s: stopped by %s\n", EVERY_SERVER[i],
                                            path, EVERY_SERVER[i], signal_name(signal_number)));
            assert_false(file_exists(path));
        }
    }
}

static void udp_sender_stopped_by_a_stop_signal_says_so_and_removes_its_socket_file(void **state) {
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
        assert_false(file_exists(own_file));
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
every_ip_server_stopped_by_a_stop_signal_says_so_and_frees_its_port_at_once(void **state) {
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

/* A connection that a stop signal cuts short reaches the peer as a failure (a reset), never as
 * the end of a whole message: each program below is stopped with a piece of its message sent
 * and the rest still to come (its stdin, a pipe we hold open). */

static void tcp_client_stopped_mid_message_aborts_the_connection(void **state) {
    (void)state;
    for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
        int signal_number = STOP_SIGNALS[j];
        struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
        const char *port = ready_port(server);
        struct process *client = start_program(ARGV("tcp_client", "-m", "-", "-p", port),
                                               &(struct run_options){.input_pipe = true});
        assert_true(send_input(client, "first half\n"));
        assert_true(
            wait_for_output(server, "Got from client: first half\n", slow(FINISH_TIMEOUT_MS)));
        assert_int_equal(kill(client->pid, signal_number), 0);

        assert_exit(server, 1);
        assert_stdout(server, "Got from client: first half\n\n");
        assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                        "tcp_server: recv: Connection reset by peer\n",
                                        port));
        assert_exit(client, 128 + signal_number);
        assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
        assert_stderr(client, formatted("tcp_client: stopped by %s\n", signal_name(signal_number)));
    }
}

static void tcp_server_stopped_mid_greeting_aborts_the_connection(void **state) {
    (void)state;
    for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
        int signal_number = STOP_SIGNALS[j];
        struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                               &(struct run_options){.input_pipe = true});
        const char *port = ready_port(server);
        struct process *client = start_program(ARGV("tcp_client", "-p", port), NULL);
        assert_true(send_input(server, "first half, "));
        assert_true(
            wait_for_output(client, "Received from server: first half, ", slow(FINISH_TIMEOUT_MS)));
        assert_int_equal(kill(server->pid, signal_number), 0);

        assert_exit(client, 1);
        assert_stdout(client, "Client connected!\nReceived from server: first half, \n");
        assert_stderr(client, "tcp_client: recv: Connection reset by peer\n");
        assert_exit(server, 128 + signal_number);
        assert_stdout(server, "");
        assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                        "tcp_server: stopped by %s\n",
                                        port, signal_name(signal_number)));
    }
}

static void select_client_stopped_mid_conversation_aborts_the_connection(void **state) {
    (void)state;
    for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
        int signal_number = STOP_SIGNALS[j];
        struct process *server = start_program(ARGV("tcp_server", "-p", "0"), NULL);
        const char *port = ready_port(server);
        struct process *client = start_program(ARGV("select_client", "-p", port),
                                               &(struct run_options){.input_pipe = true});
        assert_true(wait_for_output(client, "Hello!", slow(FINISH_TIMEOUT_MS)));
        assert_true(send_input(client, "first line\n"));
        assert_true(
            wait_for_output(server, "Got from client: first line\n", slow(FINISH_TIMEOUT_MS)));
        assert_int_equal(kill(client->pid, signal_number), 0);

        assert_exit(server, 1);
        assert_stdout(server, "Got from client: first line\n\n");
        assert_stderr(server, formatted("tcp_server: ready on 127.0.0.1 port %s\n"
                                        "tcp_server: recv: Connection reset by peer\n",
                                        port));
        assert_exit(client, 128 + signal_number);
        assert_stdout(client, "Hello!");
        assert_stderr(client,
                      formatted("select_client: stopped by %s\n", signal_name(signal_number)));
    }
}

/* ====================================================================================== */
/* ---- -t is a deadline ---- */

static void udp_sender_gives_up_at_its_deadline_though_stopped_and_continued(void **state) {
    (void)state;
    /* A receiver that never answers, and a job control that stops and continues the sender
     * every SIGNAL_EVERY_MS. Each stop interrupts its wait: a timeout per call (SO_RCVTIMEO)
     * would start again each time, and never run out while the signals go on. */
    int port;
    int silent = bound_on_loopback(SOCK_DGRAM, &port);
    long long started = now_ms();
    struct process *sender = start_program(
        ARGV("udp_sender", "-t", formatted("%d", GIVE_UP_S), "-p", formatted("%d", port)), NULL);
    char datagram[GREETING_ROOM];
    assert_true(wait_for_socket(silent, POLLIN, now_ms() + slow(READY_TIMEOUT_MS)));
    assert_int_equal(recv(silent, datagram, sizeof datagram, 0), strlen("Hello!"));
    long long sent = now_ms(); /* its deadline was set just before it sent */

    /* The signals go on until it says something: it must give up while they still come. */
    int rounds = 0;
    struct pollfd said = {.fd = sender->stderr_fd, .events = POLLIN};
    long long latest = sent + slow(FINISH_TIMEOUT_MS); /* only a sender that never gives up */
    while (ms_until(latest) > 0 && poll(&said, 1, 0) == 0) {
        assert_int_equal(kill(sender->pid, SIGSTOP), 0);
        wait_until_stopped(sender);
        assert_int_equal(kill(sender->pid, SIGCONT), 0);
        rounds++;
        poll(&said, 1, SIGNAL_EVERY_MS < ms_until(latest) ? SIGNAL_EVERY_MS : ms_until(latest));
    }
    long long ended = now_ms();
    if (said.revents == 0)
        fail_msg("udp_sender -t %d did not give up in %lld ms of being stopped and continued "
                 "every %d ms",
                 GIVE_UP_S, ended - sent, SIGNAL_EVERY_MS);

    assert_exit(sender, 1);
    assert_stdout(sender, "Sending data...\n");
    assert_stderr(sender, formatted("udp_sender: no reply within %d s \u2014 is udp_receiver "
                                    "running?\n",
                                    GIVE_UP_S));
    assert_true(rounds >= 2);
    if (ended - started < GIVE_UP_S * 1000)
        fail_msg("udp_sender -t %d gave up %lld ms after it started, before its deadline",
                 GIVE_UP_S, ended - started);
}

static void select_client_gives_up_at_once_when_continued_past_its_deadline(void **state) {
    (void)state;
    /* A server that says one line, then nothing: the client's -t counts from that line. */
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client = start_program(
        ARGV("select_client", "-t", formatted("%d", GIVE_UP_S), "-p", formatted("%d", port)),
        &(struct run_options){.input_pipe = true});
    int server = accept_within(listener, slow(READY_TIMEOUT_MS));
    send_text(server, "one line\n", now_ms() + slow(FINISH_TIMEOUT_MS));
    assert_true(wait_for_output(client, "one line\n", slow(FINISH_TIMEOUT_MS)));
    long long deadline = now_ms() + GIVE_UP_S * 1000;

    /* Stopped (Ctrl-Z) until its deadline has passed, then continued (fg): it must see that
     * its time is up, not wait for what was left of it when it stopped. */
    assert_int_equal(kill(client->pid, SIGSTOP), 0);
    wait_until_stopped(client);
    while (ms_until(deadline + SIGNAL_EVERY_MS) > 0)
        poll(NULL, 0, ms_until(deadline + SIGNAL_EVERY_MS));
    assert_int_equal(kill(client->pid, SIGCONT), 0);

    assert_exit_within(client, 1, slow(AT_ONCE_MS)); /* valgrind is slower to react */
    assert_stdout(client, "one line\n");
    assert_stderr(client, formatted("select_client: nothing happened for %d s\n", GIVE_UP_S));
}

/* ====================================================================================== */
/* ---- socket files: a second server does not take one over, a stale one is replaced, a file
 * that is not a socket is left alone ---- */

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

static void every_server_refuses_to_replace_a_file_that_is_not_a_socket(void **state) {
    (void)state;
    const char *path = temp_path("not-a-socket");
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs("keep me\n", file);
    fclose(file);
    for (size_t i = 0; i < COUNT(SERVERS); i++) {
        struct process *server = start_program(ARGV(SERVERS[i], "-u", path), NULL);
        assert_exit(server, 1);
        assert_stderr(server, formatted("%s: %s: exists and is not a socket\n", SERVERS[i], path));
        struct stat status;
        assert_int_equal(stat(path, &status), 0);
        assert_true(S_ISREG(status.st_mode));
        assert_int_equal(status.st_size, strlen("keep me\n"));
    }
}

/* Leave a socket file at path as a crashed server would: bound, then closed, never removed. */
static void leave_stale_socket(const char *path, int type) {
    close_tracked(unix_socket(type, path));
    assert_true(file_exists(path));
}

static void every_server_replaces_a_stale_socket_file(void **state) {
    (void)state;
    const char *path = temp_path("stale.sock");
    struct {
        const char *const *server;
        const char *const *client;
        int type;
    } pairs[] = {
        {ARGV("udp_receiver", "-u", path), ARGV("udp_sender", "-u", path), SOCK_DGRAM},
        {ARGV("tcp_server", "-u", path), ARGV("tcp_client", "-u", path), SOCK_STREAM},
        {ARGV("select_server", "-e", "-n", "1", "-u", path), ARGV("tcp_client", "-e", "-u", path),
         SOCK_STREAM},
    };
    for (size_t i = 0; i < COUNT(pairs); i++) {
        leave_stale_socket(path, pairs[i].type);
        struct process *server = start_program(pairs[i].server, NULL);
        assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
        struct process *client = start_program(pairs[i].client, NULL);
        assert_exit(client, 0);
        assert_exit(server, 0);
        assert_false(file_exists(path));
    }
}

static void udp_receiver_on_a_live_stream_server_s_path_fails_and_leaves_it_serving(void **state) {
    (void)state;
    /* The receiver looks whether someone has the path bound: a look that a stream server
     * would take for a client. Its first client must be the real one. */
    const char *path = temp_path("server.sock");
    struct {
        const char *const *server;
        const char *client_stdout, *server_stdout;
    } cases[] = {
        {ARGV("tcp_server", "-u", path), TCP_CLIENT_LINES, "Got from client: Thanks! Bye.\n"},
        {ARGV("select_server", "-u", path, "-n", "1", "-t", "0"), EVENT_CLIENT_LINES,
         "listening\n" ONE_EVENT_CLIENT},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        const char *name = cases[i].server[0];
        struct process *server = start_program(cases[i].server, NULL);
        assert_int_equal(wait_for_ready_line(server, slow(READY_TIMEOUT_MS)), 0);
        struct process *receiver = start_program(ARGV("udp_receiver", "-u", path), NULL);
        assert_exit(receiver, 1);
        assert_stdout(receiver, "");
        assert_stderr(receiver, "udp_receiver: bind: Address already in use\n");

        struct process *client = start_program(ARGV("tcp_client", "-u", path), NULL);
        assert_exit(client, 0);
        assert_stdout(client, cases[i].client_stdout);
        assert_exit(server, 0);
        assert_stdout(server, cases[i].server_stdout);
        assert_stderr(server, formatted("%s: ready on %s\n", name, path));
        assert_false(file_exists(path));
    }
}

static void a_server_whose_bind_fails_leaves_the_socket_file_of_the_one_that_bound(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    /* A server of ours listens at path. Each program looks there and finds nothing (strace
     * fails its stat of the path): as if the other bound it just after that look. Its bind
     * fails, and the file it never made is not its to remove. */
    const char *path = temp_path("taken.sock");
    int holder = unix_socket(SOCK_STREAM, path);
    assert_int_equal(listen(holder, 1), 0);
    for (size_t i = 0; i < COUNT(EVERY_SERVER); i++) {
        if (!built(EVERY_SERVER[i]))
            continue;
        struct process *server = start_with_injection_on(ARGV(EVERY_SERVER[i], "-u", path), path,
                                                         "inject=%%stat:error=ENOENT");
        assert_exit(server, 1);
        assert_stdout(server, "");
        assert_stderr(server, formatted("%s: bind: Address already in use\n", EVERY_SERVER[i]));
        assert_true(file_exists(path));
    }
    struct sockaddr_un address = unix_address(path);
    assert_int_equal(
        connect(unix_socket(SOCK_STREAM, NULL), (struct sockaddr *)&address, sizeof address), 0);
}

static void udp_sender_names_its_own_socket_file_when_it_cannot_bind_it(void **state) {
    (void)state;
    /* Its own socket is PATH.<pid>, in the directory of PATH: here one that does not exist. */
    const char *path = temp_path("no-such-directory/receiver.sock");
    struct process *sender = start_program(ARGV("udp_sender", "-u", path), NULL);
    assert_exit(sender, 1);
    assert_stdout(sender, "");
    assert_stderr(sender, formatted("udp_sender: %s.%d: No such file or directory\n", path,
                                    (int)sender->pid));
}

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    const struct CMUnitTest tests[] = {
        TEST(tcp_client_with_stdout_closed_fails_at_once_and_never_sends_its_own_lines),
        TEST(select_client_with_stdout_closed_fails_and_never_sends_its_own_output),
        TEST(event_servers_with_stdin_and_stdout_closed_fail_before_serving_anyone),
        TEST(tcp_server_with_stdout_closed_fails_before_serving_anyone),
        TEST(tcp_client_reading_m_dash_from_a_closed_stdin_fails_before_it_connects),
        TEST(select_client_with_stdin_closed_fails_and_aborts_the_connection),
        TEST(programs_reading_m_dash_from_a_closed_stdin_fail_before_they_start),
        TEST(tcp_client_whose_stdin_fails_aborts_the_connection),
        TEST(tcp_server_whose_stdin_fails_aborts_the_connection),
        TEST(tcp_server_with_m_dash_waits_for_a_nonblocking_stdin),
        TEST(tcp_client_with_m_dash_waits_for_a_nonblocking_stdin),
        TEST(udp_sender_with_m_dash_waits_for_a_nonblocking_stdin),
        TEST(tcp_client_and_select_client_wait_for_a_nonblocking_stdout_read_slowly),
        PER_SERVER(keeps_serving_while_nobody_reads_its_stdout_and_stops_on_sigint),
        PER_SERVER(says_how_many_lines_it_dropped_once_its_stdout_is_read_again),
        PER_SERVER(ends_its_last_wait_for_a_full_stdout_on_a_stop_signal_or_after_2_s),
        PER_SERVER(writes_only_whole_lines_into_a_nonblocking_socket_that_stdout_and_stderr_share),
        PER_SERVER(exits_with_broken_pipe_once_its_stdout_reader_has_gone),
        TEST(tcp_server_says_at_once_that_its_stdout_is_full),
        TEST(every_unix_server_stopped_by_a_stop_signal_says_so_and_removes_its_socket_file),
        TEST(udp_sender_stopped_by_a_stop_signal_says_so_and_removes_its_socket_file),
        TEST(every_ip_server_stopped_by_a_stop_signal_says_so_and_frees_its_port_at_once),
        TEST(tcp_client_stopped_mid_message_aborts_the_connection),
        TEST(tcp_server_stopped_mid_greeting_aborts_the_connection),
        TEST(select_client_stopped_mid_conversation_aborts_the_connection),
        TEST(udp_sender_gives_up_at_its_deadline_though_stopped_and_continued),
        TEST(select_client_gives_up_at_once_when_continued_past_its_deadline),
        TEST(a_second_server_on_the_same_unix_path_fails_and_the_first_keeps_serving),
        TEST(every_server_refuses_to_replace_a_file_that_is_not_a_socket),
        TEST(every_server_replaces_a_stale_socket_file),
        TEST(udp_receiver_on_a_live_stream_server_s_path_fails_and_leaves_it_serving),
        TEST(a_server_whose_bind_fails_leaves_the_socket_file_of_the_one_that_bound),
        TEST(udp_sender_names_its_own_socket_file_when_it_cannot_bind_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
