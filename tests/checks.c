#define _POSIX_C_SOURCE 200809L
/* checks.c: what the tests share (checks.h): assertions, what they send, fake peers, the
 * kernel's table of sockets, the proxy, strace. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"

enum {
    MAX_CHILDREN = 8,            /* forked children of one test, unfinished at once */
    CHILD_LIFETIME_S = 120,      /* alarm: a forked child never outlives a stuck test */
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

short wait_for_socket(int fd, short events, long long deadline) {
    struct pollfd ready = {.fd = fd, .events = events};
    int result;
    do
        result = poll(&ready, 1, ms_until(deadline));
    while (result == -1 && errno == EINTR);
    assert_int_not_equal(result, -1);
    return result == 1 ? ready.revents : 0;
}

const char *killed_by(int signal_number) {
    return formatted("killed by signal %d (%s)", signal_number, strsignal(signal_number));
}

bool file_exists(const char *path) {
    struct stat status;
    return lstat(path, &status) == 0;
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

void check_stdout_around(const struct process *process, const char *before, const char *middle,
                         size_t length, const char *after, const char *file, int line) {
    size_t expected_length = strlen(before) + length + strlen(after);
    char *expected = malloc(expected_length + 1);
    assert_non_null(expected);
    memcpy(expected, before, strlen(before));
    memcpy(expected + strlen(before), middle, length);
    strcpy(expected + strlen(before) + length, after);
    check_output(process, "stdout", &process->out, expected, expected_length, false, file, line);
    free(expected);
}

void check_stderr_one_of(const struct process *process, const char *before,
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

void check_usage_error(const char *const argv[], const char *message, const char *file, int line) {
    struct process *program = start_program(argv, NULL);
    check_exit(program, 2, slow(FINISH_TIMEOUT_MS), file, line);
    check_output(program, "stderr", &program->err, message, strlen(message), false, file, line);
    check_output(program, "stdout", &program->out, "", 0, false, file, line);
}

void check_clients_printed(struct process *const list[], size_t count, const char *expected,
                           const char *file, int line) {
    finish_all(list, count, slow(FINISH_TIMEOUT_MS));
    for (size_t i = 1; i < count; i++) {
        check_exit(list[i], 0, 0, file, line);
        check_output(list[i], "stdout", &list[i]->out, expected, strlen(expected), false, file,
                     line);
        check_output(list[i], "stderr", &list[i]->err, "", 0, false, file, line);
    }
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

int tear_down(void **state) {
    (void)state;
    clean_up_peers();
    clean_up();
    return 0;
}

bool built(const char *program) {
#ifdef __linux__
    (void)program;
    return true;
#else
    return strcmp(program, "epoll_server") != 0;
#endif
}

const char *server_of(void **state) {
    const char *server = *state;
    if (!built(server)) {
        print_message("%s: epoll is Linux only; test skipped\n", server);
        skip();
    }
    return server;
}

/* FNV-1a, a 64-bit word at a time (length a multiple of 8): a fingerprint to compare 64 MiB
 * by, quick even under valgrind. Fed piece by piece, starting from FNV_START. */
#define FNV_START 0xcbf29ce484222325u
static uint64_t fingerprint(uint64_t hash, const unsigned char *data, size_t length) {
    for (size_t i = 0; i + sizeof(uint64_t) <= length; i += sizeof(uint64_t)) {
        uint64_t word;
        memcpy(&word, data + i, sizeof word);
        hash = (hash ^ word) * 0x100000001b3u;
    }
    return hash;
}

void check_file_holds(const char *path, const char *before, size_t size, uint64_t expected,
                      const char *after, const char *file, int line) {
    struct stat status;
    assert_int_equal(stat(path, &status), 0);
    size_t want = strlen(before) + size + strlen(after), got = (size_t)status.st_size;
    unsigned char *data = malloc(got + 1);
    FILE *stream = fopen(path, "rb");
    assert_non_null(data);
    assert_non_null(stream);
    bool read_all = fread(data, 1, got, stream) == got;
    fclose(stream);
    uint64_t hash = got == want ? fingerprint(FNV_START, data + strlen(before), size) : 0;
    bool same = read_all && got == want && memcmp(data, before, strlen(before)) == 0 &&
                hash == expected && memcmp(data + got - strlen(after), after, strlen(after)) == 0;
    free(data);
    if (same)
        return;
    print_error("%s: expected %s + %zu bytes of fingerprint %016llx + %s (%zu bytes),\n"
                "    got %zu bytes%s\n",
                path, shown(before, strlen(before)), size, (unsigned long long)expected,
                shown(after, strlen(after)), want, got,
                got == want
                    ? formatted(", the middle of fingerprint %016llx", (unsigned long long)hash)
                    : "");
    _fail(file, line);
}

/* ====================================================================================== */
/* ---- what the tests send ---- */

void fill_pattern(char *buffer, size_t size) {
    for (size_t offset = 0; offset < size; offset++)
        buffer[offset] = (char)(1 + offset % PATTERN_PERIOD);
    buffer[size] = '\0';
}

const char *long_text(const char *what, size_t size) {
    char *text = malloc(size + 64);
    assert_non_null(text);
    size_t used = 0;
    for (int i = 1; used < size; i++)
        used += (size_t)sprintf(text + used, "%s, line %04d\n", what, i);
    text[size] = '\0';
    const char *kept = formatted("%s", text);
    free(text);
    return kept;
}

const char *file_with(const char *name, const char *data, size_t length) {
    const char *path = temp_path(name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(data, 1, length, file), length);
    assert_int_equal(fclose(file), 0);
    return path;
}

const char *every_byte_file(const char *name, int rounds) {
    const char *path = temp_path(name);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    for (int i = 0; i < 256 * rounds; i++)
        assert_int_not_equal(fputc(i % 256, file), EOF);
    assert_int_equal(fclose(file), 0);
    return path;
}

uint64_t write_random_file(const char *path, size_t size) {
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    uint64_t state = 0x9E3779B97F4A7C15u, hash = FNV_START; /* xorshift64 */
    static unsigned char chunk[1 << 16];
    for (size_t written = 0; written < size; written += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i += sizeof state) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            memcpy(chunk + i, &state, sizeof state);
        }
        size_t length = size - written < sizeof chunk ? size - written : sizeof chunk;
        assert_int_equal(fwrite(chunk, 1, length, file), length);
        hash = fingerprint(hash, chunk, length);
    }
    assert_int_equal(fclose(file), 0);
    return hash;
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

void set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    assert_int_not_equal(flags, -1);
    assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

struct sockaddr_in loopback(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

int bound_on_loopback(int type, int *port) {
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    int sock = tracked(socket(AF_INET, type, 0));
    assert_int_equal(bind(sock, (struct sockaddr *)&address, length), 0);
    assert_int_equal(getsockname(sock, (struct sockaddr *)&address, &length), 0);
    *port = ntohs(address.sin_port);
    return sock;
}

int listen_on_loopback(int *port) {
    int listener = bound_on_loopback(SOCK_STREAM, port);
    assert_int_equal(listen(listener, PROXY_MAX_LINKS), 0);
    return listener;
}

int refusing_port(int type) {
    int port;
    int sock = bound_on_loopback(type, &port);
    if (type == SOCK_DGRAM) {
        struct sockaddr_in itself = loopback(port);
        assert_int_equal(connect(sock, (struct sockaddr *)&itself, sizeof itself), 0);
    }
    return port;
}

struct sockaddr_un unix_address(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof address.sun_path);
    strcpy(address.sun_path, path);
    return address;
}

int unix_socket(int type, const char *path) {
    int sock = tracked(socket(AF_UNIX, type, 0));
    struct sockaddr_un address = unix_address(path ? path : "");
    if (path != NULL)
        assert_int_equal(bind(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

int connect_to_loopback(int port) {
    struct sockaddr_in address = loopback(port);
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

int start_connecting(int port) {
    struct sockaddr_in address = loopback(port);
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    set_nonblocking(sock);
    if (connect(sock, (struct sockaddr *)&address, sizeof address) == -1)
        assert_int_equal(errno, EINPROGRESS);
    return sock;
}

int open_connection(const char *port, long long deadline) {
    int sock = start_connecting(atoi(port));
    int error = ETIMEDOUT;
    socklen_t length = sizeof error;
    if (wait_for_socket(sock, POLLOUT, deadline))
        assert_int_equal(getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    errno = error;
    return error == 0 ? sock : -1;
}

int accept_within(int listener, int timeout_ms) {
    assert_true(wait_for_socket(listener, POLLIN, now_ms() + timeout_ms));
    return tracked(accept(listener, NULL, NULL));
}

void send_text(int sock, const char *text, long long deadline) {
    for (size_t sent = 0; sent < strlen(text);) {
        if (!wait_for_socket(sock, POLLOUT, deadline))
            fail_msg("could not send \"%s\" within the deadline", text);
        ssize_t bytes_sent = send(sock, text + sent, strlen(text) - sent, MSG_NOSIGNAL);
        if (bytes_sent == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            fail_msg("send: %s", strerror(errno));
        sent += bytes_sent > 0 ? (size_t)bytes_sent : 0;
    }
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

/* ====================================================================================== */
/* ---- the kernel's table of sockets ---- */

/* The state column of /proc/net/tcp for a connection, and for a listening socket. */
enum { TCP_ESTABLISHED_STATE = 0x01, TCP_LISTEN_STATE = 0x0A };

/* The first row of /proc/net/tcp and tcp6 (SOCK_STREAM) or udp and udp6 (SOCK_DGRAM) that
 * `wanted` takes, into *row: true; false if none does. Skips the test where there is no such
 * table. */
static bool find_socket_row(int type, bool (*wanted)(const struct socket_row *, const void *),
                            const void *context, struct socket_row *row) {
    const char *tables[] = {type == SOCK_STREAM ? "/proc/net/tcp" : "/proc/net/udp",
                            type == SOCK_STREAM ? "/proc/net/tcp6" : "/proc/net/udp6"};
    bool found = false;
    for (size_t i = 0; i < COUNT(tables) && !found; i++) {
        FILE *file = fopen(tables[i], "r");
        if (file == NULL && i == 0) {
            print_message("no %s here (it is Linux's): test skipped\n", tables[i]);
            skip();
        }
        char line[512];
        while (file != NULL && !found && fgets(line, sizeof line, file) != NULL) {
            /* sl local_address rem_address st tx_queue:rx_queue tr:when retrnsmt uid timeout
             * inode, an address in hex and a port; the first line, of column names, does not
             * match. */
            unsigned int local_port, remote_port, state;
            unsigned long sending, unread, inode;
            if (sscanf(line,
                       " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %lx:%lx %*x:%*x %*x %*u %*u %lu",
                       &local_port, &remote_port, &state, &sending, &unread, &inode) != 6)
                continue;
            *row = (struct socket_row){(int)local_port, (int)remote_port, (int)state,
                                       (long)sending,   (long)unread,     inode};
            found = wanted(row, context);
        }
        if (file != NULL)
            fclose(file);
    }
    return found;
}

static bool is_connection(const struct socket_row *row, const void *context) {
    const int *ports = context;
    return row->local_port == ports[0] && row->remote_port == ports[1] &&
           row->state == TCP_ESTABLISHED_STATE;
}

bool connection_row(int local_port, int remote_port, struct socket_row *row) {
    const int ports[] = {local_port, remote_port};
    return find_socket_row(SOCK_STREAM, is_connection, ports, row);
}

/* Whether process pid holds the socket with this inode (a link "socket:[inode]" in its fd/). */
static bool holds_socket(pid_t pid, unsigned long inode) {
    const char *fd_dir = formatted("/proc/%ld/fd", (long)pid);
    const char *wanted = formatted("socket:[%lu]", inode);
    DIR *dir = opendir(fd_dir);
    bool found = false;
    for (struct dirent *entry; !found && dir != NULL && (entry = readdir(dir)) != NULL;) {
        char target[64];
        ssize_t length =
            readlink(formatted("%s/%s", fd_dir, entry->d_name), target, sizeof target - 1);
        target[length > 0 ? length : 0] = '\0';
        found = strcmp(target, wanted) == 0;
    }
    if (dir != NULL)
        closedir(dir);
    return found;
}

struct bound_by {
    pid_t pid;
    int type;
};

static bool is_bound_by(const struct socket_row *row, const void *context) {
    const struct bound_by *owner = context;
    bool bound = owner->type == SOCK_STREAM ? row->state == TCP_LISTEN_STATE
                                            : row->local_port != 0 && row->remote_port == 0;
    return bound && holds_socket(owner->pid, row->inode);
}

int bound_port(pid_t pid, int type) {
    const struct bound_by owner = {pid, type};
    struct socket_row row;
    return find_socket_row(type, is_bound_by, &owner, &row) ? row.local_port : 0;
}

/* ---- forked children ---- */

/* The children not finished yet, for clean_up_peers: their pid and what the test holds of them. */
static struct unfinished {
    pid_t pid;
    int error_output;
    FILE *printed_file;
} unfinished[MAX_CHILDREN];
static size_t unfinished_count;

pid_t start_child(struct child *child, bool capture_stdout) {
    int error_pipe[2];
    assert_true(unfinished_count < MAX_CHILDREN);
    assert_int_equal(pipe(error_pipe), 0);
    fcntl(error_pipe[0], F_SETFD, FD_CLOEXEC); /* the programs we start must not hold them */
    fcntl(error_pipe[1], F_SETFD, FD_CLOEXEC);
    FILE *printed_file = capture_stdout ? tmpfile() : NULL;
    assert_true(printed_file != NULL || !capture_stdout);
    fflush(NULL); /* or the child would print the parent's pending output again at exit */
    pid_t pid = fork();
    assert_int_not_equal(pid, -1);
    if (pid == 0) {
        dup2(error_pipe[1], STDERR_FILENO);
        if (printed_file != NULL)
            dup2(fileno(printed_file), STDOUT_FILENO);
        close(error_pipe[0]);
        close(error_pipe[1]);
        alarm(CHILD_LIFETIME_S); /* in case the parent is no longer there to kill it */
        return 0;
    }
    close(error_pipe[1]);
    *child =
        (struct child){.pid = pid, .error_output = error_pipe[0], .printed_file = printed_file};
    unfinished[unfinished_count++] = (struct unfinished){pid, error_pipe[0], printed_file};
    return pid;
}

/* Take the child off the list of unfinished ones. */
static void forget_child(pid_t pid) {
    for (size_t i = 0; i < unfinished_count; i++)
        if (unfinished[i].pid == pid)
            unfinished[i--] = unfinished[--unfinished_count];
}

void finish_child(struct child *child) {
    long long deadline = now_ms() + slow(FINISH_TIMEOUT_MS);
    size_t filled = 0;
    bool closed = false;
    while (!closed && wait_for_socket(child->error_output, POLLIN, deadline)) {
        char chunk[CHILD_OUTPUT_SIZE];
        ssize_t bytes_read = read(child->error_output, chunk, sizeof chunk);
        if (bytes_read == -1 && errno == EINTR)
            continue;
        closed = bytes_read <= 0;
        size_t room = sizeof child->output - 1 - filled;
        size_t kept = closed ? 0 : (size_t)bytes_read < room ? (size_t)bytes_read : room;
        memcpy(child->output + filled, chunk, kept);
        filled += kept;
    }
    child->output[filled] = '\0';
    close(child->error_output);
    forget_child(child->pid);
    if (!closed)
        kill(child->pid, SIGKILL);
    int status;
    pid_t reaped;
    do
        reaped = waitpid(child->pid, &status, 0);
    while (reaped == -1 && errno == EINTR);
    assert_int_equal(reaped, child->pid);
    child->status = !closed             ? TIMED_OUT
                    : WIFEXITED(status) ? WEXITSTATUS(status)
                                        : 128 + WTERMSIG(status);
    if (!closed)
        snprintf(child->ending, sizeof child->ending, "timed out");
    else if (WIFEXITED(status))
        snprintf(child->ending, sizeof child->ending, "exit %d", WEXITSTATUS(status));
    else
        snprintf(child->ending, sizeof child->ending, "%s", killed_by(WTERMSIG(status)));
    if (child->printed_file == NULL)
        return;

    struct stat printed_status;
    assert_int_equal(fstat(fileno(child->printed_file), &printed_status), 0);
    child->printed_length = (size_t)printed_status.st_size;
    child->printed = malloc(child->printed_length + 1);
    assert_non_null(child->printed);
    rewind(child->printed_file);
    assert_int_equal(fread(child->printed, 1, child->printed_length, child->printed_file),
                     child->printed_length);
    child->printed[child->printed_length] = '\0';
    fclose(child->printed_file);
}

void clean_up_peers(void) {
    for (size_t i = 0; i < unfinished_count; i++) {
        kill(unfinished[i].pid, SIGKILL);
        while (waitpid(unfinished[i].pid, NULL, 0) == -1 && errno == EINTR)
            continue;
        close(unfinished[i].error_output);
        if (unfinished[i].printed_file != NULL)
            fclose(unfinished[i].printed_file);
    }
    unfinished_count = 0;
    for (size_t i = 0; i < tracked_count; i++)
        close(tracked_fds[i]);
    tracked_count = 0;
    if (files_limit_changed)
        setrlimit(RLIMIT_NOFILE, &saved_files_limit);
    files_limit_changed = false;
}

/* ====================================================================================== */
/* ---- ticks ---- */

volatile sig_atomic_t ticks;
static volatile sig_atomic_t wake_tick, last_tick, wake_fd = -1;
static void (*wake_action)(int fd);
static struct sigaction saved_alarm_action;

static void on_tick(int signal_number) {
    int saved_errno = errno; /* the interrupted code may read errno next */
    (void)signal_number;
    ticks++;
    if (ticks == wake_tick)
        wake_action(wake_fd);
    if (ticks == last_tick)
        _exit(TICKED_OUT);
    errno = saved_errno;
}

/* In a child as in the test: say what failed, and end the process. */
static _Noreturn void ticks_failed(const char *what) {
    perror(what);
    _exit(EXIT_FAILURE);
}

void start_ticking(struct ticking how) {
    ticks = 0;
    wake_tick = how.wake_on;
    last_tick = how.last;
    wake_action = how.action;
    wake_fd = how.fd;
    struct sigaction tick_action = {.sa_handler = on_tick, .sa_flags = how.flags};
    sigemptyset(&tick_action.sa_mask);
    if (sigaction(SIGALRM, &tick_action, &saved_alarm_action) == -1)
        ticks_failed("sigaction");
    struct itimerval every = {{0, how.interval_us}, {0, how.interval_us}};
    if (setitimer(ITIMER_REAL, &every, NULL) == -1)
        ticks_failed("setitimer");
}

/* A tick may already be pending: ignoring SIGALRM discards it (POSIX), before the old action
 * (the default: end the process) comes back. */
void stop_ticking(void) {
    struct itimerval never = {{0, 0}, {0, 0}};
    if (setitimer(ITIMER_REAL, &never, NULL) == -1)
        ticks_failed("setitimer");
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGALRM, &ignore, NULL) == -1 ||
        sigaction(SIGALRM, &saved_alarm_action, NULL) == -1)
        ticks_failed("sigaction");
}

void write_one_byte(int fd) {
    ssize_t written = write(fd, "!", 1);
    (void)written;
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

void check_proxy_finished(struct child *proxy, const char *file, int line) {
    finish_child(proxy);
    if (proxy->status == 0)
        return;
    print_error("proxy: expected exit status 0, got %s\n",
                proxy->status == TIMED_OUT             ? "none (killed at the deadline)"
                : proxy->status == PROXY_SOCKET_FAILED ? "1 (a socket failed)"
                                                       : proxy->ending);
    _fail(file, line);
}

int start_proxy(int server_port, enum proxy_mode mode, int connections, struct child *proxy) {
    int port;
    assert_true(connections <= PROXY_MAX_LINKS);
    int listener = listen_on_loopback(&port);
    if (start_child(proxy, false) == 0)
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

/* ====================================================================================== */
/* ---- many descriptors open: what a careless parent leaves to the program it starts ---- */

void need_open_files(rlim_t needed) {
    if (allow_open_files(needed))
        return;
    print_message("cannot raise RLIMIT_NOFILE to %lu here (try ulimit -n %lu first; valgrind "
                  "refuses to raise it): test skipped\n",
                  (unsigned long)needed, (unsigned long)needed);
    skip();
}

struct process *start_with_descriptors_filled(const char *const argv[]) {
    const char *fill = formatted("for ((fd = 3; fd < %d; fd++)); do eval \"exec $fd</dev/null\"; "
                                 "done; exec \"$@\"",
                                 FD_SETSIZE);
    const char *const wrapper[] = {"bash", "-c", fill, "bash", NULL};
    return start_program(argv, &(struct run_options){.wrapper = wrapper});
}

/* ====================================================================================== */
/* ---- strace on one file: what the program finds there ---- */

struct process *start_with_injection_on(const char *const argv[], const char *path,
                                        const char *inject) {
    const char *const wrapper[] = {"strace", "-D", "-o", "/dev/null", "-E", without_leak_checks(),
                                   "-P",     path, "-e", inject,      NULL};
    return start_program(argv, &(struct run_options){.wrapper = wrapper});
}
