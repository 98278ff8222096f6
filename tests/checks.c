#define _POSIX_C_SOURCE 200809L
/* checks.c: what the tests share (checks.h): assertions, fake peers, the proxy, strace. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"

enum {
    MAX_HELPERS = 4,             /* forked children of one test */
    HELPER_LIFETIME_S = 120,     /* alarm: a forked child never outlives a stuck test */
    PROXY_BUFFER_SIZE = 1 << 20, /* of each direction of a proxied connection */
    PROXY_SOCKET_FAILED = 1,     /* the proxy's exit status when a socket failed, */
    PROXY_BROKEN = 2,            /* or when the proxy itself could not work */
};

#define GREETING "Hello!\n" /* of the tutorial's select server */

const char *shown(const char *data, size_t length) {
    char text[4 * SHOWN_BYTES + 32];
    size_t used = 0;
    for (size_t i = 0; data != NULL && i < length && i < SHOWN_BYTES; i++) {
        unsigned char byte = (unsigned char)data[i];
        if (byte == '\n')
            used += (size_t)sprintf(text + used, "\\n");
        else if (byte == '"' || byte == '\\')
            used += (size_t)sprintf(text + used, "\\%c", byte);
        else if (byte < ' ' || byte == 0x7f)
            used += (size_t)sprintf(text + used, "\\x%02x", byte);
        else
            text[used++] = (char)byte; /* UTF-8 stays readable: the em dash */
    }
    text[used] = '\0';
    return formatted("\"%s\"%s", text, length > SHOWN_BYTES ? "..." : "");
}

int slow(int ms) { return under_valgrind() ? ms * VALGRIND_SLOWDOWN : ms; }

bool wait_for_socket(int sock, short events, long long deadline) {
    struct pollfd ready = {.fd = sock, .events = events};
    int result;
    do
        result = poll(&ready, 1, ms_until(deadline));
    while (result == -1 && errno == EINTR);
    assert_int_not_equal(result, -1);
    return result == 1;
}

const char *killed_by(int signal_number) {
    return formatted("killed by signal %d (%s)", signal_number, strsignal(signal_number));
}

void check_exit(struct process *process, int expected, int timeout_ms, const char *file, int line) {
    int status = finish(process, timeout_ms);
    if (status == expected)
        return;
    print_error("%s: expected exit status %d, got %s\n    its stdout: %s\n    its stderr: %s\n",
                process->label, expected,
                status == TIMED_OUT ? "none (killed at the deadline)"
                : status > 128      ? formatted("%d (killed by signal %d)", status, status - 128)
                                    : formatted("%d", status),
                shown(process->out.data, process->out.length),
                shown(process->err.data, process->err.length));
    _fail(file, line);
}

void check_output(const struct process *process, const char *stream, const struct output *got,
                  const char *expected, size_t length, bool prefix_only, const char *file,
                  int line) {
    const char *got_data = got->data ? got->data : "";
    size_t same = 0; /* how many bytes match from the start */
    while (same < length && same < got->length && got_data[same] == expected[same])
        same++;
    if (same == length && (prefix_only || got->length == length))
        return;
    /* Show both from a little before the first difference: outputs can be long. */
    size_t from = same > SHOWN_BYTES / 2 ? same - SHOWN_BYTES / 4 : 0;
    print_error("%s %s%s:\n    expected %s%s (%zu bytes)\n    got      %s (%zu bytes)\n",
                process->label, stream, from > 0 ? formatted(", from byte %zu on", from) : "",
                prefix_only ? "a start of " : "", shown(expected + from, length - from), length,
                shown(got_data + from, got->length - from), got->length);
    _fail(file, line);
}

const char *ready_port(struct process *server) {
    int port = wait_for_ready_line(server, slow(READY_TIMEOUT_MS));
    assert_true(port > 0);
    return formatted("%d", port);
}

const char *ready_line(const char *name, const char *port) {
    const char *slash = strrchr(name, '/');
    bool tutorial_sized = slash == NULL && program_tier[0] == '\0';
    const char *program = slash ? slash + 1 : name;
    bool every_interface = tutorial_sized && strcmp(program, "tcp_server") == 0;
    return formatted("%s: ready on %s port %s\n", program,
                     every_interface ? "0.0.0.0" : "127.0.0.1", port);
}

int count_lines(const struct output *output, const char *line) {
    int count = 0;
    for (const char *start = output->data; start != NULL && *start != '\0';) {
        const char *end = strchr(start, '\n');
        size_t length = end ? (size_t)(end - start) : strlen(start);
        count += line == NULL || (length == strlen(line) && memcmp(start, line, length) == 0);
        start = end ? end + 1 : NULL;
    }
    return count;
}

void check_five_clients_served(const struct process *server, const char *also, const char *file,
                               int line) {
    check_output(server, "stdout", &server->out, "listening\n", strlen("listening\n"), true, file,
                 line);
    int listening = count_lines(&server->out, "listening");
    int accepted = count_lines(&server->out, "accepting new socket");
    int sent = count_lines(&server->out, "socket sent data");
    int disconnected = count_lines(&server->out, "socket disconnected");
    int extra = also ? count_lines(&server->out, also) : 0;
    if (listening == 1 && accepted == TUTORIAL_CLIENTS && sent == TUTORIAL_CLIENTS &&
        disconnected == TUTORIAL_CLIENTS &&
        server->out.length == strlen("listening\n") + TUTORIAL_CLIENTS * strlen(ONE_EVENT_CLIENT) +
                                  (size_t)extra * (also ? strlen(also) + 1 : 0))
        return;
    print_error("%s: expected \"listening\" once, then %d times each line of %s in any order%s; "
                "got: %s\n",
                server->label, TUTORIAL_CLIENTS, shown(ONE_EVENT_CLIENT, strlen(ONE_EVENT_CLIENT)),
                also ? formatted(" (and any number of \"%s\")", also) : "",
                shown(server->out.data, server->out.length));
    _fail(file, line);
}

const char *file_with(const char *name, const char *data, size_t length) {
    const char *path = temp_path(name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(data, 1, length, file), length);
    assert_int_equal(fclose(file), 0);
    return path;
}

void check_all_exit_0(struct process *const list[], size_t count, const char *file, int line) {
    finish_all(list, count, slow(FINISH_TIMEOUT_MS));
    bool all_0 = true;
    for (size_t i = 0; i < count; i++) {
        if (list[i]->status == 0)
            continue;
        all_0 = false;
        print_error("%s: expected exit status 0, got %s\n    its stdout: %s\n    its stderr: %s\n",
                    list[i]->label,
                    list[i]->status == TIMED_OUT ? "none (killed at the deadline)"
                                                 : formatted("%d", list[i]->status),
                    shown(list[i]->out.data, list[i]->out.length),
                    shown(list[i]->err.data, list[i]->err.length));
    }
    if (!all_0)
        _fail(file, line);
}

const char *server_of(void **state) {
    const char *server = *state;
#ifndef __linux__
    if (strcmp(server, "epoll_server") == 0) {
        print_message("epoll_server: epoll is Linux only; test skipped\n");
        skip();
    }
#endif
    return server;
}

/* ====================================================================================== */
/* ---- the test's own sockets, as fake peers ---- */

static int *tracked_fds;
static size_t tracked_count, tracked_room;
static struct rlimit saved_files_limit;
static bool files_limit_changed;

int tracked(int fd) {
    assert_int_not_equal(fd, -1);
    assert_int_not_equal(fcntl(fd, F_SETFD, FD_CLOEXEC), -1);
    if (tracked_count == tracked_room) {
        tracked_room = 2 * tracked_room + 16;
        tracked_fds = realloc(tracked_fds, tracked_room * sizeof *tracked_fds);
        assert_non_null(tracked_fds);
    }
    tracked_fds[tracked_count++] = fd;
    return fd;
}

void close_tracked(int fd) {
    for (size_t i = 0; i < tracked_count; i++)
        if (tracked_fds[i] == fd)
            tracked_fds[i--] = tracked_fds[--tracked_count];
    close(fd);
}

struct sockaddr_in loopback(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

int listen_on_loopback(int *port) {
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    int listener = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(bind(listener, (struct sockaddr *)&address, length), 0);
    assert_int_equal(listen(listener, PROXY_MAX_LINKS), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length), 0);
    *port = ntohs(address.sin_port);
    return listener;
}

int connect_to_loopback(int port) {
    struct sockaddr_in address = loopback(port);
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

int open_connection(const char *port, long long deadline) {
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK), 0);
    struct sockaddr_in address = loopback(atoi(port));
    if (connect(sock, (struct sockaddr *)&address, sizeof address) == 0)
        return sock;
    if (errno != EINPROGRESS)
        return -1;
    int error = ETIMEDOUT;
    socklen_t length = sizeof error;
    if (wait_for_socket(sock, POLLOUT, deadline))
        assert_int_equal(getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    errno = error;
    return error == 0 ? sock : -1;
}

ssize_t receive_within(int sock, char *buffer, size_t length, long long deadline) {
    size_t received = 0;
    while (received < length) {
        if (!wait_for_socket(sock, POLLIN, deadline))
            return -1;
        ssize_t bytes_read = recv(sock, buffer + received, length - received, 0);
        if (bytes_read == -1 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (bytes_read == -1 && errno != ECONNRESET)
            fail_msg("recv: %s", strerror(errno));
        if (bytes_read <= 0)
            break;
        received += (size_t)bytes_read;
    }
    return (ssize_t)received;
}

void reset_connection(int sock) {
    struct linger abort_at_once = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_LINGER, &abort_at_once, sizeof abort_at_once),
                     0);
    close_tracked(sock);
}

void fail_showing_server(struct process *server, const char *what) {
    int status = finish(server, slow(FINISH_TIMEOUT_MS));
    size_t length = server->err.length, from = length > SHOWN_BYTES ? length - SHOWN_BYTES : 0;
    print_error("%s\n    %s's exit status: %s\n    the end of its stderr: %s\n", what,
                server->label,
                status == TIMED_OUT ? "none (killed at the deadline)" : formatted("%d", status),
                shown(server->err.data ? server->err.data + from : NULL, length - from));
    _fail(__FILE__, __LINE__);
}

bool connect_and_get_greeted(struct process *server, const char *port, int number, int *sock) {
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);
    *sock = open_connection(port, deadline);
    if (*sock == -1)
        fail_showing_server(server, formatted("connection %d: %s", number, strerror(errno)));
    char greeting[sizeof GREETING - 1];
    ssize_t length = receive_within(*sock, greeting, sizeof greeting, deadline);
    if (length == 0)
        return false; /* end of stream, or reset */
    if (length != (ssize_t)sizeof greeting || memcmp(greeting, GREETING, sizeof greeting) != 0)
        fail_showing_server(
            server, formatted("connection %d: expected the greeting \"Hello!\\n\" or the end of "
                              "the stream, got %s",
                              number,
                              length == -1 ? "neither within the deadline"
                                           : shown(greeting, (size_t)length)));
    return true;
}

bool allow_open_files(rlim_t needed) {
    struct rlimit limit;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= needed)
        return true;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed)
        return false;
    struct rlimit saved = limit;
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) == -1)
        return false;
    if (!files_limit_changed)
        saved_files_limit = saved;
    files_limit_changed = true;
    return true;
}

/* ---- forked helpers ---- */

static struct helper helpers[MAX_HELPERS];
static size_t helper_count;

struct helper *fork_helper(void) {
    int ends[2];
    assert_true(helper_count < MAX_HELPERS);
    assert_int_equal(pipe(ends), 0);
    fcntl(ends[0], F_SETFD, FD_CLOEXEC); /* the programs we start must not hold them */
    fcntl(ends[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL); /* or the child would write our buffered output again */
    pid_t pid = fork();
    assert_int_not_equal(pid, -1);
    if (pid == 0) {
        close(ends[0]);
        alarm(HELPER_LIFETIME_S);
        return NULL;
    }
    close(ends[1]);
    helpers[helper_count] = (struct helper){.pid = pid, .exited = ends[0]};
    return &helpers[helper_count++];
}

int finish_helper(struct helper *helper, int timeout_ms) {
    char byte;
    bool exited = wait_for_socket(helper->exited, POLLIN, now_ms() + timeout_ms) &&
                  read(helper->exited, &byte, 1) == 0;
    if (!exited)
        kill(helper->pid, SIGKILL);
    int status;
    while (waitpid(helper->pid, &status, 0) == -1 && errno == EINTR)
        continue;
    close(helper->exited);
    helper->pid = 0;
    if (!exited)
        return TIMED_OUT;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void clean_up_peers(void) {
    for (size_t i = 0; i < helper_count; i++)
        if (helpers[i].pid != 0)
            finish_helper(&helpers[i], 0);
    helper_count = 0;
    for (size_t i = 0; i < tracked_count; i++)
        close(tracked_fds[i]);
    tracked_count = 0;
    if (files_limit_changed)
        setrlimit(RLIMIT_NOFILE, &saved_files_limit);
    files_limit_changed = false;
}

/* ====================================================================================== */
/* ---- the proxy ---- */

/* One direction of a proxied connection: bytes read from `from`, waiting to go to `to`. */
struct direction {
    int from, to;
    char *buffer;
    size_t start, end; /* the waiting bytes: buffer[start..end) */
    bool at_end;       /* `from` has shut down its side: forward the rest, then shut down `to` */
    bool done;         /* ...and that is done */
    long long last_arrival;
    long long last_forward; /* paced: when the last byte went */
};

struct link {
    struct direction way[2]; /* client to server, server to client */
    bool open;
};

/* How long until the bytes waiting in this direction are due to go: 0 now, -1 never (none). */
static int ms_until_due(const struct direction *way, enum proxy_mode mode, long long now) {
    size_t waiting = way->end - way->start;
    long long due = now; /* ONE_BYTE_PER_SEND, or a coalescing proxy with enough, or the end */
    if (waiting == 0)
        return -1;
    if (mode == ONE_BYTE_PER_PAUSE)
        due = way->last_forward + PROXY_PACE_MS;
    else if (mode == COALESCING && waiting < PROXY_COALESCE_SIZE && way->end < PROXY_BUFFER_SIZE &&
             !way->at_end)
        due = way->last_arrival + PROXY_QUIET_MS;
    return due > now ? (int)(due - now) : 0;
}

static bool forward_due(const struct direction *way, enum proxy_mode mode, long long now) {
    return ms_until_due(way, mode, now) == 0;
}

/* Move what can move now without waiting (the sockets are non-blocking): read what came,
 * forward what is due. False when a socket failed. */
static bool pump(struct direction *way, enum proxy_mode mode) {
    if (!way->at_end && way->end < PROXY_BUFFER_SIZE) {
        ssize_t got = recv(way->from, way->buffer + way->end, PROXY_BUFFER_SIZE - way->end, 0);
        if (got > 0) {
            way->end += (size_t)got;
            way->last_arrival = now_ms();
        } else if (got == 0) {
            way->at_end = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return false;
        }
    }
    while (forward_due(way, mode, now_ms())) {
        size_t length = mode == COALESCING ? way->end - way->start : 1;
        ssize_t sent = send(way->to, way->buffer + way->start, length, MSG_NOSIGNAL);
        if (sent == -1)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        way->start += (size_t)sent;
        way->last_forward = now_ms();
    }
    if (way->start == way->end)
        way->start = way->end = 0;
    if (way->at_end && way->end == 0 && !way->done) {
        shutdown(way->to, SHUT_WR);
        way->done = true;
    }
    return true;
}

static void open_link(struct link *link, int client, int server_port, enum proxy_mode mode) {
    struct sockaddr_in address = loopback(server_port);
    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server == -1 || connect(server, (struct sockaddr *)&address, sizeof address) == -1)
        _exit(PROXY_BROKEN);
    int sockets_of_link[2] = {client, server}, on = 1;
    for (int i = 0; i < 2; i++) {
        fcntl(sockets_of_link[i], F_SETFL, fcntl(sockets_of_link[i], F_GETFL) | O_NONBLOCK);
        if (mode != COALESCING)
            setsockopt(sockets_of_link[i], IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        link->way[i] = (struct direction){.from = sockets_of_link[i],
                                          .to = sockets_of_link[1 - i],
                                          .buffer = malloc(PROXY_BUFFER_SIZE)};
        if (link->way[i].buffer == NULL)
            _exit(PROXY_BROKEN);
    }
    link->open = true;
}

/* Close both ends; after a failure with a reset, so that neither peer waits for more. */
static void close_link(struct link *link, bool failed) {
    struct linger abort_at_once = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < 2; i++) {
        if (failed)
            setsockopt(link->way[i].from, SOL_SOCKET, SO_LINGER, &abort_at_once,
                       sizeof abort_at_once);
        close(link->way[i].from);
        free(link->way[i].buffer);
    }
    link->open = false;
}

/* The proxy child: accept `connections` clients, connect each to the server, forward both
 * ways until both have ended, then exit (1 if a socket failed). One poll loop for all. */
static _Noreturn void run_proxy(int listener, int server_port, enum proxy_mode mode,
                                int connections) {
    struct link links[PROXY_MAX_LINKS] = {0};
    int accepted = 0, open = 0;
    bool failed = false;
    while (accepted < connections || open > 0) {
        struct pollfd fds[1 + 4 * PROXY_MAX_LINKS];
        nfds_t used = 0;
        int timeout = -1; /* the alarm bounds the whole child */
        long long now = now_ms();
        if (accepted < connections)
            fds[used++] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < accepted; i++) {
            for (int j = 0; links[i].open && j < 2; j++) {
                struct direction *way = &links[i].way[j];
                if (!way->at_end && way->end < PROXY_BUFFER_SIZE)
                    fds[used++] = (struct pollfd){.fd = way->from, .events = POLLIN};
                int due = ms_until_due(way, mode, now);
                if (due == 0)
                    fds[used++] = (struct pollfd){.fd = way->to, .events = POLLOUT};
                else if (due > 0) /* wake when the quiet or the pause ends */
                    timeout = timeout == -1 || due < timeout ? due : timeout;
            }
        }
        if (poll(fds, used, timeout) == -1 && errno != EINTR)
            _exit(PROXY_BROKEN);
        if (accepted < connections && (fds[0].revents & POLLIN)) {
            int client = accept(listener, NULL, NULL);
            if (client != -1) {
                open_link(&links[accepted++], client, server_port, mode);
                open++;
            }
        }
        for (int i = 0; i < accepted; i++) {
            if (!links[i].open)
                continue;
            bool working = pump(&links[i].way[0], mode) && pump(&links[i].way[1], mode);
            if (!working || (links[i].way[0].done && links[i].way[1].done)) {
                failed |= !working;
                close_link(&links[i], !working);
                open--;
            }
        }
    }
    _exit(failed ? PROXY_SOCKET_FAILED : 0);
}

void check_proxy_finished(struct helper *proxy, const char *file, int line) {
    int status = finish_helper(proxy, slow(FINISH_TIMEOUT_MS));
    if (status == 0)
        return;
    print_error("proxy: expected exit status 0, got %s\n",
                status == TIMED_OUT             ? "none (killed at the deadline)"
                : status == PROXY_SOCKET_FAILED ? "1 (a socket failed)"
                                                : formatted("%d", status));
    _fail(file, line);
}

int start_proxy(int server_port, enum proxy_mode mode, int connections, struct helper **proxy) {
    int port;
    assert_true(connections <= PROXY_MAX_LINKS);
    int listener = listen_on_loopback(&port);
    *proxy = fork_helper();
    if (*proxy == NULL)
        run_proxy(listener, server_port, mode, connections);
    close_tracked(listener);
    return port;
}

/* ====================================================================================== */
/* ---- EINTR from strace ---- */

/* The calls that can block or be interrupted, by their Linux names (glibc's recv and send are
 * recvfrom and sendto, select is pselect6), with the other names an architecture may use.
 * write is left alone: only stdout and stderr use it. */
static const char *const SOCKET_CALLS[] = {"accept",   "accept4", "connect", "recvfrom", "recvmsg",
                                           "recv",     "sendto",  "sendmsg", "send",     "select",
                                           "pselect6", "poll",    "ppoll"};

const char PORT[] = "PORT";

/* strace -e inject=...: the first call of each kind fails with EINTR, then every second one
 * (when=1+2), so each retry succeeds and the call after it fails again. A '?' before a name
 * lets strace skip it where this architecture has no such call. */
static const char *socket_call_injection(void) {
    const char *names = "";
    for (size_t i = 0; i < COUNT(SOCKET_CALLS); i++)
        names = formatted("%s%s?%s", names, i > 0 ? "," : "", SOCKET_CALLS[i]);
    return formatted("inject=%s:error=EINTR:when=1+2", names);
}

/* LeakSanitizer cannot work under ptrace: in the ASan build it would fail every traced
 * program at exit, so leaks are checked by the runs without strace. */
static const char *without_leak_checks(void) {
    const char *options = getenv("ASAN_OPTIONS");
    return formatted("ASAN_OPTIONS=%s%sdetect_leaks=0", options ? options : "",
                     options && *options ? ":" : "");
}

/* Start a program under strace, logging its calls to log. -D runs strace beside the program
 * instead of above it, so the program is our child: we see its own exit status, and a kill at
 * the deadline reaches it. */
static struct process *start_traced(const char *const argv[], const char *input,
                                    enum injection injection, const char *log, const char *label) {
    const char *inject = "trace=all"; /* strace's default: only log */
    const char *path_option = NULL, *path = NULL;
    if (injection == EINTR_IN_SOCKET_CALLS)
        inject = socket_call_injection();
    if (injection == EINTR_IN_STDIN_READS && input != NULL) {
        inject = "inject=read:error=EINTR:when=1+2";
        path_option = "-P"; /* only the calls on this file count and fail */
        path = input;
    }
    const char *no_leak_checks = without_leak_checks();
    const char *const wrapper[] = {"strace",       "-D", "-f",   "-o",        log,  "-E",
                                   no_leak_checks, "-e", inject, path_option, path, NULL};
    const struct run_options options = {.input_file = input, .label = label, .wrapper = wrapper};
    return start_program(argv, &options);
}

struct run {
    const char *port;
    struct process *server, *clients[CONVERSATION_CLIENTS];
    const char *server_log, *client_logs[CONVERSATION_CLIENTS];
};

/* "select_server" for "hardened/select_server": a name for files and messages. */
static const char *base_name(const char *name) {
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

/* What the server prints up to the end of its client_done line for client `count`. */
static const char *up_to_client_done(const struct conversation *talk, int count) {
    const char *end = talk->server_stdout;
    for (int i = 0; i < count && end != NULL; i++) {
        end = strstr(end, talk->client_done);
        end = end ? end + strlen(talk->client_done) : NULL;
    }
    return end ? formatted("%.*s", (int)(end - talk->server_stdout), talk->server_stdout)
               : talk->server_stdout;
}

static void converse(const struct conversation *talk, enum injection injection, const char *name,
                     struct run *run) {
    assert_true(talk->client_count <= CONVERSATION_CLIENTS);
    const char *server = base_name(talk->server[0]);
    run->server_log = temp_path(formatted("%s-%s.log", name, server));
    run->server = start_traced(talk->server, talk->server_input, injection, run->server_log,
                               formatted("%s (%s run)", server, name));
    run->port = ready_port(run->server);
    for (int i = 0; i < talk->client_count; i++) {
        const char *argv[16];
        size_t count = 0;
        for (; talk->client[count] != NULL; count++)
            argv[count] = talk->client[count] == PORT ? run->port : talk->client[count];
        argv[count] = NULL;
        const char *client = base_name(argv[0]);
        run->client_logs[i] = temp_path(formatted("%s-%s-%d.log", name, client, i));
        run->clients[i] = start_traced(argv, talk->client_input, injection, run->client_logs[i],
                                       formatted("%s %d (%s run)", client, i + 1, name));
        finish(run->clients[i], slow(FINISH_TIMEOUT_MS));
        if (talk->client_done != NULL && talk->server_stdout != NULL)
            wait_for_output(run->server, up_to_client_done(talk, i + 1), slow(FINISH_TIMEOUT_MS));
    }
    finish(run->server, slow(FINISH_TIMEOUT_MS));
}

/* How many calls starting with `call` ("recvfrom(") a strace -f log shows; with
 * injected_only, how many of them strace failed on purpose. */
static int count_calls(const char *log, const char *call, bool injected_only) {
    FILE *file = fopen(log, "r");
    if (file == NULL)
        return 0;
    int count = 0;
    char *line = NULL;
    size_t size = 0;
    while (getline(&line, &size, file) != -1) {
        const char *text = line + strspn(line, "0123456789 "); /* -f puts the pid first */
        if (strncmp(text, call, strlen(call)) == 0 &&
            (!injected_only || strstr(text, "(INJECTED)") != NULL))
            count++;
    }
    free(line);
    fclose(file);
    return count;
}

/* Fail unless each kind of call the program made in the plain run was interrupted at least
 * once in the faulty one: the test cannot pass because strace injected nothing. */
static void check_interrupted(const struct process *program, const char *plain_log,
                              const char *faulty_log, enum injection injection, const char *file,
                              int line) {
    bool stdin_reads = injection == EINTR_IN_STDIN_READS;
    int interrupted = 0;
    for (size_t i = 0; i < (stdin_reads ? 1 : COUNT(SOCKET_CALLS)); i++) {
        const char *call = stdin_reads ? "read(0," : formatted("%s(", SOCKET_CALLS[i]);
        if (count_calls(plain_log, call, false) == 0)
            continue; /* a call this program does not make */
        int injected = count_calls(faulty_log, call, true);
        if (injected == 0) {
            print_error("%s: none of its %s...) calls was interrupted\n", program->label, call);
            _fail(file, line);
        }
        interrupted += injected;
    }
    if (interrupted == 0) {
        print_error("%s: made none of the calls strace interrupts\n", program->label);
        _fail(file, line);
    }
}
#define assert_interrupted(program, plain_log, faulty_log, injection) \
    check_interrupted(program, plain_log, faulty_log, injection, __FILE__, __LINE__)

void expect_same_conversation(const struct conversation *talk, enum injection injection) {
    struct run plain, faulty;
    converse(talk, NO_INJECTION, "plain", &plain);
    converse(talk, injection, "faulty", &faulty);

    struct process *everyone[2 * (1 + CONVERSATION_CLIENTS)] = {plain.server, faulty.server};
    for (int i = 0; i < talk->client_count; i++) {
        everyone[2 + 2 * i] = plain.clients[i];
        everyone[3 + 2 * i] = faulty.clients[i];
    }
    assert_all_exit_0(everyone, 2 + 2 * (size_t)talk->client_count);
    for (int i = 0; i < talk->client_count; i++) {
        if (talk->client_stdout != NULL)
            assert_stdout(plain.clients[i], talk->client_stdout);
        assert_stdout(faulty.clients[i],
                      plain.clients[i]->out.data ? plain.clients[i]->out.data : "");
        assert_stderr(faulty.clients[i], "");
        if (injection != EINTR_IN_STDIN_READS || talk->client_input != NULL)
            assert_interrupted(faulty.clients[i], plain.client_logs[i], faulty.client_logs[i],
                               injection);
    }
    if (talk->server_stdout != NULL)
        assert_stdout(plain.server, talk->server_stdout);
    assert_stdout(faulty.server, plain.server->out.data ? plain.server->out.data : "");
    assert_stderr(faulty.server, ready_line(talk->server[0], faulty.port));
    if (injection != EINTR_IN_STDIN_READS || talk->server_input != NULL)
        assert_interrupted(faulty.server, plain.server_log, faulty.server_log, injection);
}
