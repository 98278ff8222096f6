#define _POSIX_C_SOURCE 200809L
/* test_faults.c: the programs on a hostile network. strace interrupts every blocking call
 * (EINTR), a proxy cuts the stream into one-byte or coalesced pieces, a fake peer resets or
 * closes in the middle of a transfer, and SIGINT or SIGTERM arrives while a server waits.
 * Each test checks exact output and exit status against the program contract; fake peers
 * live in this process or in a forked child, on loopback ports the kernel picks, and every
 * wait has a deadline. Run from the repository root: build/test_faults (BIN_DIR=dir picks
 * other binaries). The strace tests are skipped without strace (failed under REQUIRE_TOOLS=1).
 * Also the recipes that docs/ offers for such a network: framing, a connect with a time limit,
 * addresses by hand, keepalive, dual stack. Each is saved from its page as a reader would
 * (tests/extract_recipes.sh, into build/recipes) and included here as it stands. */

/* Before cmocka.h, whose fail() macro would rename the fail() of socket_helpers.h. */
#include "address_by_hand.c"
#include "connect_within.c"
#include "dual_stack.c"
#include "framing.c"
#include "keepalive.c"

#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    ECHO_CLIENTS = 3,              /* select_server's clients in a test */
    TALK_SIZE = 3000,              /* -m text through a proxy: more than one recv buffer */
    BIG_PAYLOAD_SIZE = 64 << 20,   /* 64 MiB */
    BYTE_PAYLOAD_SIZE = 256 << 10, /* one byte per send is slow: 256 KiB is enough there */
    BIG_TIMEOUT_MS = 60 * 1000,
    A_LITTLE = 64 << 10, /* what a fake peer reads before it goes */
    PROXY_BUFFER_SIZE = 1 << 20,
    COALESCE_SIZE = 256 << 10, /* the coalescing proxy forwards once this much waits, */
    QUIET_MS = 20,             /* or once nothing more came for this long */
    MAX_LINKS = 8,             /* connections through one proxy */
    MAX_HELPERS = 4,           /* forked children of one test */
    MAX_SOCKETS = 16,          /* sockets of one test */
    HELPER_LIFETIME_S = 120,   /* alarm: a forked child never outlives a stuck test */
};

static const char *const SERVERS[] = {"udp_receiver", "tcp_server", "select_server"};
static const int STOP_SIGNALS[] = {SIGINT, SIGTERM};
#define COUNT(array) (sizeof(array) / sizeof(array)[0])

#define TCP_CLIENT_LINES "Client connected!\nReceived from server: Hello!\nreply sent!\n"
#define ECHO_CLIENT_LINES \
    "Client connected!\nreply sent!\nReceived from server: Hello!\nThanks! Bye.\n"
#define ONE_SELECT_CLIENT "accepting new socket\nsocket sent data\nsocket disconnected\n"

static bool file_exists(const char *path) {
    struct stat status;
    return lstat(path, &status) == 0;
}

/* ---- assertions, as in test_programs.c: each failure says what was expected and what came */

/* Finish all the processes; fail, showing each one that did not exit 0, unless all did. */
static void check_all_exit_0(struct process *const list[], size_t count, const char *file,
                             int line) {
    finish_all(list, count, FINISH_TIMEOUT_MS);
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

static void check_gone(const char *path, const char *file, int line) {
    if (!file_exists(path))
        return;
    print_error("%s: expected no such file, but it is still there\n", path);
    _fail(file, line);
}

/* Fail unless stderr is exactly one of two texts (when either errno may come). */
static void check_stderr_either(const struct process *process, const char *one, const char *other,
                                const char *file, int line) {
    const char *got = process->err.data ? process->err.data : "";
    if (strcmp(got, one) == 0 || strcmp(got, other) == 0)
        return;
    print_error("%s stderr:\n    expected %s\n    or       %s\n    got      %s\n", process->label,
                shown(one, strlen(one)), shown(other, strlen(other)),
                shown(got, process->err.length));
    _fail(file, line);
}

#define assert_stderr_either(process, one, other) \
    check_stderr_either(process, one, other, __FILE__, __LINE__)
#define assert_all_exit_0(list, count) check_all_exit_0(list, count, __FILE__, __LINE__)
/* Fail unless nothing is at path (a socket file that should have been removed). */
#define assert_gone(path) check_gone(path, __FILE__, __LINE__)

/* ---- sockets of the test itself (fake peers), closed by tear_down if a test fails ---- */

static int sockets[MAX_SOCKETS];
static size_t socket_count;

static int tracked(int sock) {
    assert_int_not_equal(sock, -1);
    assert_true(socket_count < MAX_SOCKETS);
    sockets[socket_count++] = sock;
    return sock;
}

static void close_socket(int sock) {
    for (size_t i = 0; i < socket_count; i++)
        if (sockets[i] == sock)
            sockets[i] = -1;
    close(sock);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

/* A TCP socket listening on a free loopback port; *port gets the port. */
static int listen_on_loopback(int *port) {
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    int listener = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(bind(listener, (struct sockaddr *)&address, length), 0);
    assert_int_equal(listen(listener, MAX_LINKS), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length), 0);
    *port = ntohs(address.sin_port);
    return listener;
}

static int connect_to_loopback(int port) {
    struct sockaddr_in address = loopback(port);
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect(sock, (struct sockaddr *)&address, sizeof address), 0);
    return sock;
}

/* Wait until sock is ready for `events`; false once the timeout has passed. */
static bool wait_for(int sock, short events, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    struct pollfd ready = {.fd = sock, .events = events};
    int result;
    do
        result = poll(&ready, 1, (int)(deadline > now_ms() ? deadline - now_ms() : 0));
    while (result == -1 && errno == EINTR);
    return result == 1;
}

static int accept_within(int listener, int timeout_ms) {
    assert_true(wait_for(listener, POLLIN, timeout_ms));
    return tracked(accept(listener, NULL, NULL));
}

/* Read up to `wanted` bytes, less at end of stream; stop at the deadline. Returns the count. */
static size_t receive(int sock, char *buffer, size_t wanted, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    size_t got = 0;
    while (got < wanted && wait_for(sock, POLLIN, (int)(deadline - now_ms()))) {
        ssize_t bytes_read = recv(sock, buffer + got, wanted - got, 0);
        if (bytes_read <= 0)
            break;
        got += (size_t)bytes_read;
    }
    return got;
}

/* Read A_LITTLE bytes and drop them, as a peer that is about to go; the count read. */
static size_t read_a_little(int sock) {
    static char sink[A_LITTLE];
    return receive(sock, sink, sizeof sink, FINISH_TIMEOUT_MS);
}

static void send_text(int sock, const char *text) {
    assert_int_equal(send(sock, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* Close so that the peer gets a reset (RST), not an end of stream: linger on, for 0 s. */
static void reset_connection(int sock) {
    struct linger abort_at_once = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_LINGER, &abort_at_once, sizeof abort_at_once),
                     0);
    close_socket(sock);
}

/* ---- forked helpers (the proxy): bounded by an alarm, killed by tear_down if still there */

struct helper {
    pid_t pid;
    int exited; /* read end of a pipe whose write end only the child holds: EOF once it exits */
};
static struct helper helpers[MAX_HELPERS];
static size_t helper_count;

/* fork: in the child return NULL, in the test the new helper. */
static struct helper *fork_helper(void) {
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

/* Wait for the helper to exit and return its status (as the harness reports one), or kill it
 * at the deadline and return TIMED_OUT. */
static int finish_helper(struct helper *helper, int timeout_ms) {
    char byte;
    bool exited =
        wait_for(helper->exited, POLLIN, timeout_ms) && read(helper->exited, &byte, 1) == 0;
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

static int tear_down(void **state) {
    (void)state;
    for (size_t i = 0; i < helper_count; i++)
        if (helpers[i].pid != 0)
            finish_helper(&helpers[i], 0);
    helper_count = 0;
    for (size_t i = 0; i < socket_count; i++)
        if (sockets[i] != -1)
            close(sockets[i]);
    socket_count = 0;
    clean_up();
    return 0;
}

/* ---- payloads ---- */

/* FNV-1a, a 64-bit word at a time (length a multiple of 8): a fingerprint to compare 64 MiB
 * by, quick even under valgrind. Feed it piece by piece, starting from FNV_START. */
#define FNV_START 0xcbf29ce484222325u
static uint64_t fingerprint(uint64_t hash, const unsigned char *data, size_t length) {
    for (size_t i = 0; i + sizeof(uint64_t) <= length; i += sizeof(uint64_t)) {
        uint64_t word;
        memcpy(&word, data + i, sizeof word);
        hash = (hash ^ word) * 0x100000001b3u;
    }
    return hash;
}

/* Write size pseudo-random bytes (every byte value) to path; return their fingerprint. */
static uint64_t write_random_file(const char *path, size_t size) {
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

/* A file of size zero bytes, written by nobody (sparse): for payloads whose bytes no one checks. */
static const char *zero_file(const char *name, off_t size) {
    const char *path = temp_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_not_equal(fd, -1);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
    return path;
}

/* Fail unless the file holds exactly: before, `size` bytes with this fingerprint, after. */
static void check_received(const char *path, const char *before, size_t size, uint64_t expected,
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
#define assert_file_holds(path, before, size, fingerprint, after) \
    check_received(path, before, size, fingerprint, after, __FILE__, __LINE__)

/* Lines "<what>, line 0001\n"... cut at size bytes: a -m text longer than any one buffer. */
static const char *long_text(const char *what, size_t size) {
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

/* ====================================================================================== */
/* ---- EINTR: strace makes every blocking socket call fail once, then every other time ---- */

/* The calls that can block or be interrupted, by their Linux names (glibc's recv and send are
 * recvfrom and sendto, select is pselect6), with the other names an architecture may use.
 * write is left alone: only stdout and stderr use it. */
static const char *const SOCKET_CALLS[] = {"accept",   "accept4", "connect", "recvfrom", "recvmsg",
                                           "recv",     "sendto",  "sendmsg", "send",     "select",
                                           "pselect6", "poll",    "ppoll"};

/* strace -e inject=...: the first call of each kind fails with EINTR, then every second one
 * (when=1+2), so each retry succeeds and the call after it fails again. A '?' before a name
 * lets strace skip it where this architecture has no such call. */
static const char *socket_call_injection(void) {
    const char *names = "";
    for (size_t i = 0; i < COUNT(SOCKET_CALLS); i++)
        names = formatted("%s%s?%s", names, i > 0 ? "," : "", SOCKET_CALLS[i]);
    return formatted("inject=%s:error=EINTR:when=1+2", names);
}

/* What strace does to the programs of a run. Reads of stdin are interrupted in a run of their
 * own: strace -P counts and injects only the calls on the stdin file, so that the dynamic
 * loader's reads of the libraries (which it does not retry) stay whole. */
enum injection { NO_INJECTION, EINTR_IN_SOCKET_CALLS, EINTR_IN_STDIN_READS };

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

/* In a client's argument list, stands for the server's port. */
static const char PORT[] = "PORT";

/* A server on a free port, and its clients one after another (so the output is the same on
 * every run). Inputs are files for stdin ("-m -"), or NULL. */
struct conversation {
    const char *const *server;
    const char *const *client;
    int client_count;
    const char *server_input, *client_input;
};

struct run {
    const char *port;
    struct process *server, *clients[ECHO_CLIENTS];
    const char *server_log, *client_logs[ECHO_CLIENTS];
};

static void converse(const struct conversation *talk, enum injection injection, const char *name,
                     struct run *run) {
    run->server_log = temp_path(formatted("%s-%s.log", name, talk->server[0]));
    run->server = start_traced(talk->server, talk->server_input, injection, run->server_log,
                               formatted("%s (%s run)", talk->server[0], name));
    run->port = ready_port(run->server);
    for (int i = 0; i < talk->client_count; i++) {
        const char *argv[16];
        size_t count = 0;
        for (; talk->client[count] != NULL; count++)
            argv[count] = talk->client[count] == PORT ? run->port : talk->client[count];
        argv[count] = NULL;
        run->client_logs[i] = temp_path(formatted("%s-%s-%d.log", name, talk->client[0], i));
        run->clients[i] = start_traced(argv, talk->client_input, injection, run->client_logs[i],
                                       formatted("%s %d (%s run)", argv[0], i + 1, name));
        finish(run->clients[i], FINISH_TIMEOUT_MS);
    }
    finish(run->server, FINISH_TIMEOUT_MS);
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

/* Run the conversation plainly, then with the faults: every program must still exit 0 and
 * print the very same bytes, and each must really have been interrupted. */
static void expect_same_conversation(const struct conversation *talk, enum injection injection) {
    struct run plain, faulty;
    converse(talk, NO_INJECTION, "plain", &plain);
    converse(talk, injection, "faulty", &faulty);

    struct process *everyone[2 * (1 + ECHO_CLIENTS)] = {plain.server, faulty.server};
    for (int i = 0; i < talk->client_count; i++) {
        everyone[2 + 2 * i] = plain.clients[i];
        everyone[3 + 2 * i] = faulty.clients[i];
    }
    assert_all_exit_0(everyone, 2 + 2 * (size_t)talk->client_count);
    for (int i = 0; i < talk->client_count; i++) {
        assert_stdout(faulty.clients[i],
                      plain.clients[i]->out.data ? plain.clients[i]->out.data : "");
        assert_stderr(faulty.clients[i], "");
        if (injection != EINTR_IN_STDIN_READS || talk->client_input != NULL)
            assert_interrupted(faulty.clients[i], plain.client_logs[i], faulty.client_logs[i],
                               injection);
    }
    assert_stdout(faulty.server, plain.server->out.data ? plain.server->out.data : "");
    assert_stderr(faulty.server,
                  formatted("%s: ready on 127.0.0.1 port %s\n", talk->server[0], faulty.port));
    if (injection != EINTR_IN_STDIN_READS || talk->server_input != NULL)
        assert_interrupted(faulty.server, plain.server_log, faulty.server_log, injection);
}

static void udp_pair_survives_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {ARGV("udp_receiver", "-p", "0"),
                                      ARGV("udp_sender", "-p", PORT), 1, NULL, NULL};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void tcp_pair_survives_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {ARGV("tcp_server", "-p", "0"), ARGV("tcp_client", "-p", PORT),
                                      1, NULL, NULL};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void select_server_and_echo_clients_survive_eintr_in_every_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const struct conversation talk = {ARGV("select_server", "-e", "-n", "3", "-p", "0"),
                                      ARGV("tcp_client", "-e", "-p", PORT), ECHO_CLIENTS, NULL,
                                      NULL};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
}

static void
select_client_and_echo_server_survive_eintr_in_every_read_and_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const char *input = temp_path("input");
    FILE *file = fopen(input, "w");
    assert_non_null(file);
    fputs("typed line\n", file);
    assert_int_equal(fclose(file), 0);
    const struct conversation talk = {ARGV("select_server", "-e", "-n", "3", "-p", "0"),
                                      ARGV("select_client", "-p", PORT), ECHO_CLIENTS, NULL, input};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
    expect_same_conversation(&talk, EINTR_IN_STDIN_READS);
}

static void tcp_pair_reading_stdin_survives_eintr_in_every_read_and_socket_call(void **state) {
    (void)state;
    NEED_TOOL("strace", "strace");
    const char *greeting = temp_path("greeting"), *reply = temp_path("reply");
    FILE *file = fopen(greeting, "w");
    assert_non_null(file);
    fputs(long_text("greeting from stdin", TALK_SIZE), file);
    assert_int_equal(fclose(file), 0);
    file = fopen(reply, "w");
    assert_non_null(file);
    fputs(long_text("reply from stdin", TALK_SIZE), file);
    assert_int_equal(fclose(file), 0);
    const struct conversation talk = {ARGV("tcp_server", "-m", "-", "-p", "0"),
                                      ARGV("tcp_client", "-m", "-", "-p", PORT), 1, greeting,
                                      reply};
    expect_same_conversation(&talk, EINTR_IN_SOCKET_CALLS);
    expect_same_conversation(&talk, EINTR_IN_STDIN_READS);
}

/* ====================================================================================== */
/* ---- chunking: a proxy between client and server cuts the stream into other pieces ---- */

/* The proxy's exit status when it did not forward everything and see both ways end. */
enum { PROXY_SOCKET_FAILED = 1, PROXY_BROKEN = 2 /* the proxy itself could not work */ };

enum proxy_mode {
    ONE_BYTE_PER_SEND, /* every byte its own send, TCP_NODELAY: one segment each */
    COALESCING,        /* hold bytes until COALESCE_SIZE wait or QUIET_MS pass, then one send */
};

/* One direction of a proxied connection: bytes read from `from`, waiting to go to `to`. */
struct direction {
    int from, to;
    char *buffer;
    size_t start, end; /* the waiting bytes: buffer[start..end) */
    bool at_end;       /* `from` has shut down its side: forward the rest, then shut down `to` */
    bool done;         /* ...and that is done */
    long long last_arrival;
};

struct link {
    struct direction way[2]; /* client to server, server to client */
    bool open;
};

static bool forward_due(const struct direction *way, enum proxy_mode mode, long long now) {
    size_t waiting = way->end - way->start;
    return waiting > 0 &&
           (mode == ONE_BYTE_PER_SEND || waiting >= COALESCE_SIZE ||
            way->end == PROXY_BUFFER_SIZE || way->at_end || now - way->last_arrival >= QUIET_MS);
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
        size_t length = mode == ONE_BYTE_PER_SEND ? 1 : way->end - way->start;
        ssize_t sent = send(way->to, way->buffer + way->start, length, MSG_NOSIGNAL);
        if (sent == -1)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        way->start += (size_t)sent;
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
        if (mode == ONE_BYTE_PER_SEND)
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
    struct link links[MAX_LINKS] = {0};
    int accepted = 0, open = 0;
    bool failed = false;
    while (accepted < connections || open > 0) {
        struct pollfd fds[1 + 4 * MAX_LINKS];
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
                if (forward_due(way, mode, now))
                    fds[used++] = (struct pollfd){.fd = way->to, .events = POLLOUT};
                else if (way->end > way->start) { /* coalescing: wake when the quiet ends */
                    int quiet_left = (int)(way->last_arrival + QUIET_MS - now);
                    timeout = timeout == -1 || quiet_left < timeout ? quiet_left : timeout;
                }
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

/* Fail unless the proxy forwarded everything, saw both ways of each connection end and exited. */
static void check_proxy_finished(struct helper *proxy, const char *file, int line) {
    int status = finish_helper(proxy, FINISH_TIMEOUT_MS);
    if (status == 0)
        return;
    print_error("proxy: expected exit status 0, got %s\n",
                status == TIMED_OUT             ? "none (killed at the deadline)"
                : status == PROXY_SOCKET_FAILED ? "1 (a socket failed)"
                                                : formatted("%d", status));
    _fail(file, line);
}
#define assert_proxy_finished(proxy) check_proxy_finished(proxy, __FILE__, __LINE__)

/* Start a proxy to the server at server_port for `connections` clients; returns its port. */
static int start_proxy(int server_port, enum proxy_mode mode, int connections,
                       struct helper **proxy) {
    int port;
    int listener = listen_on_loopback(&port);
    *proxy = fork_helper();
    if (*proxy == NULL)
        run_proxy(listener, server_port, mode, connections);
    close_socket(listener);
    return port;
}

static void tcp_pair_talks_through_a_proxy(enum proxy_mode mode) {
    const char *greeting = long_text("greeting", TALK_SIZE);
    const char *reply = long_text("reply", TALK_SIZE);
    struct process *server = start_program(ARGV("tcp_server", "-m", greeting, "-p", "0"), NULL);
    struct helper *proxy;
    int port = start_proxy(atoi(ready_port(server)), mode, 1, &proxy);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", reply, "-p", formatted("%d", port)), NULL);

    assert_exit(client, 0);
    assert_stdout(
        client, formatted("Client connected!\nReceived from server: %s\nreply sent!\n", greeting));
    assert_stderr(client, "");
    assert_exit(server, 0);
    assert_stdout(server, formatted("Got from client: %s\n", reply));
    assert_proxy_finished(proxy);
}

static void select_server_echoes_through_a_proxy(enum proxy_mode mode) {
    struct process *server = start_program(
        ARGV("select_server", "-e", "-n", formatted("%d", ECHO_CLIENTS), "-p", "0"), NULL);
    struct helper *proxy;
    const char *port =
        formatted("%d", start_proxy(atoi(ready_port(server)), mode, ECHO_CLIENTS, &proxy));
    struct process *everyone[1 + ECHO_CLIENTS] = {server};
    const char *messages[1 + ECHO_CLIENTS];
    for (int i = 1; i <= ECHO_CLIENTS; i++) {
        messages[i] = long_text(formatted("client %d", i), TALK_SIZE);
        everyone[i] = start_program(ARGV("tcp_client", "-e", "-m", messages[i], "-p", port), NULL);
    }
    finish_all(everyone, COUNT(everyone), FINISH_TIMEOUT_MS);

    for (int i = 1; i <= ECHO_CLIENTS; i++) {
        assert_exit(everyone[i], 0);
        assert_stdout(
            everyone[i],
            formatted("Client connected!\nreply sent!\nReceived from server: Hello!\n%s\n",
                      messages[i]));
        assert_stderr(everyone[i], "");
    }
    assert_exit(server, 0);
    assert_stdout_starts_with(server, "listening\n");
    assert_int_equal(count_lines(&server->out, "accepting new socket"), ECHO_CLIENTS);
    assert_int_equal(count_lines(&server->out, "socket disconnected"), ECHO_CLIENTS);
    assert_true(count_lines(&server->out, "socket sent data") >= ECHO_CLIENTS);
    assert_proxy_finished(proxy);
}

/* tcp_client -m - sends size random bytes through the proxy; tcp_server must print them all. */
static void big_payload_goes_through_a_proxy(enum proxy_mode mode, size_t size) {
    const char *payload = temp_path("payload");
    const char *received = temp_path("received");
    uint64_t sent = write_random_file(payload, size);
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"),
                                           &(struct run_options){.output_file = received});
    struct helper *proxy;
    int port = start_proxy(atoi(ready_port(server)), mode, 1, &proxy);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", "-", "-p", formatted("%d", port)),
                      &(struct run_options){.input_file = payload});

    assert_exit_within(client, 0, BIG_TIMEOUT_MS);
    assert_stdout(client, TCP_CLIENT_LINES);
    assert_exit_within(server, 0, BIG_TIMEOUT_MS); /* the proxy may still hold bytes for it */
    assert_file_holds(received, "Got from client: ", size, sent, "\n");
    assert_proxy_finished(proxy);
}

static void tcp_pair_talks_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    tcp_pair_talks_through_a_proxy(ONE_BYTE_PER_SEND);
}

static void tcp_pair_talks_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    tcp_pair_talks_through_a_proxy(COALESCING);
}

static void
select_server_echoes_clients_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    select_server_echoes_through_a_proxy(ONE_BYTE_PER_SEND);
}

static void select_server_echoes_clients_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    select_server_echoes_through_a_proxy(COALESCING);
}

static void tcp_client_sends_256_kib_through_a_proxy_that_sends_one_byte_at_a_time(void **state) {
    (void)state;
    big_payload_goes_through_a_proxy(ONE_BYTE_PER_SEND, BYTE_PAYLOAD_SIZE);
}

static void tcp_client_sends_64_mib_through_a_proxy_that_coalesces_bytes(void **state) {
    (void)state;
    big_payload_goes_through_a_proxy(COALESCING, BIG_PAYLOAD_SIZE);
}

/* ====================================================================================== */
/* ---- the peer dies in the middle of a transfer ---- */

#define SEND_BROKEN_PIPE(prog) prog ": send: Broken pipe\n"
#define SEND_RESET(prog) prog ": send: Connection reset by peer\n"

/* tcp_client -m - sends 64 MiB to a fake tutorial server (greets, shuts down its side), which
 * reads a little and then goes: with a reset, or with a plain close of a socket that still
 * holds unread bytes (which the kernel answers with a reset too). tcp_client must report the
 * failed send and exit 1: not die of SIGPIPE, not hang. */
static void tcp_client_sending_to_a_server_that_goes(bool reset) {
    const char *payload = zero_file("payload", BIG_PAYLOAD_SIZE);
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client =
        start_program(ARGV("tcp_client", "-m", "-", "-p", formatted("%d", port)),
                      &(struct run_options){.input_file = payload});
    int server = accept_within(listener, READY_TIMEOUT_MS);
    close_socket(listener);
    send_text(server, "Hello!");
    assert_int_equal(shutdown(server, SHUT_WR), 0);
    assert_int_equal(read_a_little(server), A_LITTLE);
    if (reset)
        reset_connection(server);
    else
        close_socket(server);

    assert_exit(client, 1);
    assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
    assert_stderr_either(client, SEND_BROKEN_PIPE("tcp_client"), SEND_RESET("tcp_client"));
}

static void tcp_client_reports_a_server_that_resets_while_it_sends_64_mib(void **state) {
    (void)state;
    tcp_client_sending_to_a_server_that_goes(true);
}

static void tcp_client_reports_a_server_that_closes_while_it_sends_64_mib(void **state) {
    (void)state;
    tcp_client_sending_to_a_server_that_goes(false);
}

/* tcp_server -m - sends a 64 MiB greeting to a fake client that reads a little, then resets;
 * with hung_up, the client has first shut down its own side (so the reset finds the server's
 * socket half closed: the errno is then EPIPE on Linux, which raises SIGPIPE if not ignored). */
static void tcp_server_sending_to_a_client_that_resets(bool hung_up) {
    const char *payload = zero_file("payload", BIG_PAYLOAD_SIZE);
    struct process *server = start_program(ARGV("tcp_server", "-m", "-", "-p", "0"),
                                           &(struct run_options){.input_file = payload});
    const char *port = ready_port(server);
    int client = connect_to_loopback(atoi(port));
    if (hung_up)
        assert_int_equal(shutdown(client, SHUT_WR), 0);
    assert_int_equal(read_a_little(client), A_LITTLE);
    reset_connection(client);

    assert_exit(server, 1);
    assert_stdout(server, "");
    const char *ready = formatted("tcp_server: ready on 127.0.0.1 port %s\n", port);
    assert_stderr_either(server, formatted("%s%s", ready, SEND_BROKEN_PIPE("tcp_server")),
                         formatted("%s%s", ready, SEND_RESET("tcp_server")));
}

static void tcp_server_reports_a_client_that_resets_while_it_sends_a_64_mib_greeting(void **state) {
    (void)state;
    tcp_server_sending_to_a_client_that_resets(false);
}

static void
tcp_server_reports_a_client_that_hangs_up_and_resets_during_a_64_mib_greeting(void **state) {
    (void)state;
    tcp_server_sending_to_a_client_that_resets(true);
}

static void tcp_client_reports_a_server_that_resets_in_the_middle_of_its_greeting(void **state) {
    (void)state;
    enum { PART = 1000 }; /* of a greeting that never ends */
    char part[PART + 1];
    memset(part, 'x', PART);
    part[PART] = '\0';
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client = start_program(ARGV("tcp_client", "-p", formatted("%d", port)), NULL);
    int server = accept_within(listener, READY_TIMEOUT_MS);
    close_socket(listener);
    /* A reset that comes before connect has returned fails connect instead of recv. */
    assert_true(wait_for_output(client, "Client connected!\n", FINISH_TIMEOUT_MS));
    send_text(server, part);
    reset_connection(server);

    assert_exit(client, 1);
    assert_stderr(client, "tcp_client: recv: Connection reset by peer\n");
    /* The bytes that came before the reset, if any (the reset may overtake them), then at
     * most the end of the line. */
    const char *start = "Client connected!\nReceived from server: ";
    assert_stdout_starts_with(client, start);
    size_t rest = client->out.length - strlen(start);
    const char *received = client->out.data + strlen(start);
    size_t xs = strspn(received, "x");
    if (!(xs <= PART && (rest == xs || (rest == xs + 1 && received[xs] == '\n')))) {
        print_error("tcp_client stdout: expected %s, up to %d 'x' and maybe \"\\n\"; got %s\n",
                    shown(start, strlen(start)), PART, shown(client->out.data, client->out.length));
        fail();
    }
}

static void tcp_client_takes_a_plain_close_as_the_end_of_the_greeting(void **state) {
    (void)state;
    int port;
    int listener = listen_on_loopback(&port);
    struct process *client = start_program(ARGV("tcp_client", "-p", formatted("%d", port)), NULL);
    int server = accept_within(listener, READY_TIMEOUT_MS);
    close_socket(listener);
    send_text(server, "Hello!");
    close_socket(server); /* no shutdown first, and never reads the reply */

    /* The reply then goes to a closed socket: the send may still succeed (the peer's kernel
     * answers it with a reset later), or fail. Either is fine; a signal or a hang is not. */
    int status = finish(client, FINISH_TIMEOUT_MS);
    assert_true(status == 0 || status == 1);
    if (status == 0) {
        assert_stdout(client, TCP_CLIENT_LINES);
        assert_stderr(client, "");
    } else {
        assert_stdout(client, "Client connected!\nReceived from server: Hello!\n");
        assert_stderr_either(client, SEND_BROKEN_PIPE("tcp_client"), SEND_RESET("tcp_client"));
    }
}

static void select_server_reports_a_client_that_resets_and_keeps_serving_others(void **state) {
    (void)state;
    struct process *server = start_program(ARGV("select_server", "-e", "-n", "2", "-p", "0"), NULL);
    const char *port = ready_port(server);
    int rude = connect_to_loopback(atoi(port));
    char greeting[sizeof "Hello!\n"] = "";
    assert_int_equal(receive(rude, greeting, strlen("Hello!\n"), FINISH_TIMEOUT_MS),
                     strlen("Hello!\n"));
    assert_string_equal(greeting, "Hello!\n");
    reset_connection(rude);
    assert_true(wait_for_output(server, "socket disconnected\n", FINISH_TIMEOUT_MS));
    struct process *client = start_program(ARGV("tcp_client", "-e", "-p", port), NULL);

    assert_exit(client, 0);
    assert_stdout(client, ECHO_CLIENT_LINES);
    assert_exit(server, 0);
    assert_stdout(server,
                  "listening\naccepting new socket\nsocket disconnected\n" ONE_SELECT_CLIENT);
    assert_stderr(server, formatted("select_server: ready on 127.0.0.1 port %s\n"
                                    "select_server: recv: Connection reset by peer\n",
                                    port));
}

/* ====================================================================================== */
/* ---- SIGINT and SIGTERM ---- */

static const char *signal_name(int signal_number) {
    return signal_number == SIGINT ? "SIGINT" : "SIGTERM";
}

/* What a server has printed on stdout by the time it waits for its first client. */
static const char *stdout_when_waiting(const char *server) {
    if (strcmp(server, "udp_receiver") == 0)
        return "Waiting for data...\n";
    return strcmp(server, "select_server") == 0 ? "listening\n" : "";
}

/* Wait until the server has printed what it prints before it waits (the ready line is on
 * stderr, and for udp_receiver "Waiting for data..." comes after it). */
static void wait_until_waiting(struct process *server) {
    const char *waiting = stdout_when_waiting(server->name);
    assert_true(*waiting == '\0' || wait_for_output(server, waiting, READY_TIMEOUT_MS));
}

static void
every_unix_server_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file(void **state) {
    (void)state;
    const char *path = temp_path("server.sock");
    for (size_t i = 0; i < COUNT(SERVERS); i++) {
        for (size_t j = 0; j < COUNT(STOP_SIGNALS); j++) {
            int signal_number = STOP_SIGNALS[j];
            struct process *server = start_program(ARGV(SERVERS[i], "-u", path), NULL);
            assert_int_equal(wait_for_ready_line(server, READY_TIMEOUT_MS), 0);
            wait_until_waiting(server);
            assert_true(file_exists(path));
            assert_int_equal(kill(server->pid, signal_number), 0);

            assert_exit(server, 128 + signal_number);
            assert_stdout(server, stdout_when_waiting(SERVERS[i]));
            assert_stderr(server, formatted("%s: ready on %s\n%s: stopped by %s\n", SERVERS[i],
                                            path, SERVERS[i], signal_name(signal_number)));
            assert_gone(path);
        }
    }
}

static void
udp_sender_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file(void **state) {
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
        assert_true(wait_for(receiver, POLLIN, READY_TIMEOUT_MS));
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
        assert_gone(own_file);
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
every_ip_server_stopped_by_sigint_or_sigterm_says_so_and_frees_its_port_at_once(void **state) {
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
                assert_int_equal(receive(client, greeting, strlen("Hello!"), FINISH_TIMEOUT_MS),
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
                close_socket(client);
        }
    }
}

#define TEST(name) cmocka_unit_test_teardown(name, tear_down)

/* ---- the recipes of docs/, as they stand on the pages ---- */

/* docs/framing.md: messages of every size and lines, sent through a proxy that forwards one
 * byte per send: each recv of the reader gets a byte or a few, yet every message comes out
 * whole, and the stream's end after the last one reads as "no more". */
static const uint32_t MESSAGE_SIZES[] = {0, 1, 5, 1000, 3000, MAX_MESSAGE};
static const char *const LINES[] = {"first", "", "a third line, longer than the others"};

static void framing_messages_and_lines_come_whole_through_one_byte_pieces(void **state) {
    (void)state;
    static char sent[MAX_MESSAGE], received[MAX_MESSAGE];
    for (size_t i = 0; i < sizeof sent; i++)
        sent[i] = (char)('a' + i % 26);
    for (int framing = 0; framing < 2; framing++) { /* 0: length first; 1: lines */
        int port, proxy_port;
        int listener = listen_on_loopback(&port);
        struct helper *proxy;
        proxy_port = start_proxy(port, ONE_BYTE_PER_SEND, 1, &proxy);
        struct helper *sender = fork_helper();
        if (sender == NULL) { /* the child: send them all, then end the stream */
            signal(SIGPIPE, SIG_IGN);
            struct sockaddr_in address = loopback(proxy_port);
            int sock = socket(AF_INET, SOCK_STREAM, 0);
            bool good =
                sock != -1 && connect(sock, (struct sockaddr *)&address, sizeof address) == 0;
            for (size_t i = 0; framing == 0 && good && i < COUNT(MESSAGE_SIZES); i++)
                good = send_message(sock, sent, MESSAGE_SIZES[i]) == 0;
            for (size_t i = 0; framing == 1 && good && i < COUNT(LINES); i++)
                good = send_line(sock, LINES[i]) == 0;
            _exit(good && shutdown(sock, SHUT_WR) == 0 ? 0 : 1);
        }
        int reader = accept_within(listener, FINISH_TIMEOUT_MS);
        struct timeval limit = {.tv_sec = FINISH_TIMEOUT_MS / 1000}; /* no recv waits longer */
        assert_int_equal(setsockopt(reader, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
        if (framing == 0) {
            for (size_t i = 0; i < COUNT(MESSAGE_SIZES); i++) {
                uint32_t length = UINT32_MAX;
                assert_int_equal(receive_message(reader, received, &length), 1);
                assert_int_equal(length, MESSAGE_SIZES[i]);
                assert_memory_equal(received, sent, length);
            }
            uint32_t length;
            assert_int_equal(receive_message(reader, received, &length), 0); /* the end */
        } else {
            static struct line_reader lines;
            lines = (struct line_reader){.sock = reader};
            char *line;
            for (size_t i = 0; i < COUNT(LINES); i++) {
                assert_int_equal(read_line(&lines, &line), 1);
                assert_string_equal(line, LINES[i]);
            }
            assert_int_equal(read_line(&lines, &line), 0); /* the end */
        }
        assert_int_equal(finish_helper(sender, FINISH_TIMEOUT_MS), 0);
        close_socket(reader);
        assert_proxy_finished(proxy);
        close_socket(listener);
    }
}

/* docs/framing.md: a length above the limit is refused, and a stream that ends inside a
 * message is an error, not an end. */
static void framing_refuses_a_huge_length_and_a_message_cut_short(void **state) {
    (void)state;
    static char buffer[MAX_MESSAGE];
    int port;
    int listener = listen_on_loopback(&port);
    int sender = connect_to_loopback(port);
    int reader = accept_within(listener, FINISH_TIMEOUT_MS);
    uint32_t huge = htonl(UINT32_MAX), length;
    assert_int_equal(send(sender, &huge, sizeof huge, MSG_NOSIGNAL), (ssize_t)sizeof huge);
    assert_int_equal(receive_message(reader, buffer, &length), -1);
    assert_int_equal(errno, EMSGSIZE);

    uint32_t ten = htonl(10);
    assert_int_equal(send(sender, &ten, sizeof ten, MSG_NOSIGNAL), (ssize_t)sizeof ten);
    assert_int_equal(send(sender, "only 7!", 7, MSG_NOSIGNAL), 7);
    assert_int_equal(shutdown(sender, SHUT_WR), 0);
    assert_int_equal(receive_message(reader, buffer, &length), -1);
    assert_int_equal(errno, EPROTO);
    close_socket(reader);
    close_socket(sender);
    close_socket(listener);
}

/* docs/connect-timeout.md: connects at once to a listener, fails at once where nobody
 * listens, and gives up at its limit against a listener whose queue is full. */
static void connect_within_connects_is_refused_or_times_out_on_a_full_queue(void **state) {
    (void)state;
    enum { LIMIT_MS = 300, BACKLOG = 1, QUEUED = BACKLOG + 1 /* what Linux lets wait */ };
    int port;
    int listener = tracked(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in address = loopback(0);
    socklen_t length = sizeof address;
    assert_int_equal(bind(listener, (struct sockaddr *)&address, length), 0);
    assert_int_equal(listen(listener, BACKLOG), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length), 0);
    port = ntohs(address.sin_port);

    /* Connected: the kernel completes the handshake; nobody needs to accept. */
    int first = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect_within(first, (struct sockaddr *)&address, length, LIMIT_MS), 0);

    /* Refused: a port where nothing listens answers with a reset, at once. */
    struct sockaddr_in nowhere = loopback(unused_port(SOCK_STREAM));
    int refused = tracked(socket(AF_INET, SOCK_STREAM, 0));
    long long start = now_ms();
    assert_int_equal(connect_within(refused, (struct sockaddr *)&nowhere, sizeof nowhere, LIMIT_MS),
                     -1);
    assert_int_equal(errno, ECONNREFUSED);
    assert_true(now_ms() - start < LIMIT_MS);

    /* A full queue: Linux drops the SYN, and only our limit ends the wait. */
    for (int i = 1; i < QUEUED; i++)
        assert_int_equal(connect_within(tracked(socket(AF_INET, SOCK_STREAM, 0)),
                                        (struct sockaddr *)&address, length, LIMIT_MS),
                         0);
    int late = tracked(socket(AF_INET, SOCK_STREAM, 0));
    start = now_ms();
    int result = connect_within(late, (struct sockaddr *)&address, length, LIMIT_MS);
    int late_errno = errno;
    long long waited = now_ms() - start;
#if defined(__linux__)
    assert_int_equal(result, -1);
    assert_int_equal(late_errno, ETIMEDOUT);
    assert_in_range(waited, LIMIT_MS, 10 * LIMIT_MS);
#else
    (void)result, (void)late_errno, (void)waited; /* BSD lets more wait: no full queue yet */
#endif
    (void)port;
    close_socket(listener);
}

/* docs/byte-order.md: the port goes in most significant byte first, the address made by hand
 * connects, and it prints back as it was written. */
static void address_by_hand_is_in_network_byte_order_and_connects(void **state) {
    (void)state;
    struct sockaddr_in example = ipv4_address("127.0.0.1", 2525);
    const unsigned char *port_bytes = (const unsigned char *)&example.sin_port;
    assert_int_equal(port_bytes[0], 0x09);
    assert_int_equal(port_bytes[1], 0xdd);
    char text[ADDRESS_TEXT];
    describe_ipv4(&example, text);
    assert_string_equal(text, "127.0.0.1 port 2525");

    int port;
    int listener = listen_on_loopback(&port);
    struct sockaddr_in address = ipv4_address("127.0.0.1", (uint16_t)port);
    int client = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect(client, (struct sockaddr *)&address, sizeof address), 0);
    close_socket(accept_within(listener, FINISH_TIMEOUT_MS));
    close_socket(client);
    close_socket(listener);
}

/* docs/dead-peers.md: the three numbers are set on the socket (where the system has them). */
static void keep_alive_sets_idle_interval_and_count(void **state) {
    (void)state;
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(keep_alive(sock, 60, 10, 3), 0);
    int on = 0;
    socklen_t size = sizeof on;
    assert_int_equal(getsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &on, &size), 0);
    assert_int_not_equal(on, 0);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
    const int options[] = {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT}, expected[] = {60, 10, 3};
    for (size_t i = 0; i < COUNT(options); i++) {
        int value = 0;
        size = sizeof value;
        assert_int_equal(getsockopt(sock, IPPROTO_TCP, options[i], &value, &size), 0);
        assert_int_equal(value, expected[i]);
    }
#endif
    close_socket(sock);
}

/* docs/dual-stack.md: bound to ::ffff:127.0.0.1 with IPV6_V6ONLY off, the IPv6 listener takes
 * a client of 127.0.0.1 and sees it as ::ffff:127.0.0.1; with the option on, no bind. */
static void dual_stack_listener_takes_an_ipv4_client_as_a_mapped_address(void **state) {
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe == -1) {
        print_error("no IPv6 here: nothing to test\n");
        skip();
    }
    close(probe);
    uint16_t port = (uint16_t)unused_port(SOCK_STREAM);
    int listener = tracked(listen_dual_stack("::ffff:127.0.0.1", port));
    int client = connect_to_loopback(port);
    struct sockaddr_in6 peer;
    socklen_t length = sizeof peer;
    assert_true(wait_for(listener, POLLIN, FINISH_TIMEOUT_MS));
    int server = tracked(accept(listener, (struct sockaddr *)&peer, &length));
    char text[INET6_ADDRSTRLEN];
    assert_int_equal(peer.sin6_family, AF_INET6);
    assert_true(IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr));
    assert_non_null(inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text));
    assert_string_equal(text, "::ffff:127.0.0.1");
    close_socket(server);
    close_socket(client);
    close_socket(listener);

    /* IPV6_V6ONLY on: a mapped IPv4 address is not this socket's to bind. */
    int only6 = tracked(socket(AF_INET6, SOCK_STREAM, 0)), on = 1;
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr), 1);
    assert_int_equal(setsockopt(only6, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on), 0);
    assert_int_equal(bind(only6, (struct sockaddr *)&mapped, sizeof mapped), -1);
    close_socket(only6);
}

int main(void) {
    program_tier = "hardened"; /* these tests are for examples/hardened/ */
    /* The programs must start with SIGPIPE's default action (death), as from a learner's
     * shell: an "ignore" inherited from whoever started us would hide a missing
     * ignore_sigpipe(). Our own sends use MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        TEST(udp_pair_survives_eintr_in_every_socket_call),
        TEST(tcp_pair_survives_eintr_in_every_socket_call),
        TEST(select_server_and_echo_clients_survive_eintr_in_every_socket_call),
        TEST(select_client_and_echo_server_survive_eintr_in_every_read_and_socket_call),
        TEST(tcp_pair_reading_stdin_survives_eintr_in_every_read_and_socket_call),
        TEST(tcp_pair_talks_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(tcp_pair_talks_through_a_proxy_that_coalesces_bytes),
        TEST(select_server_echoes_clients_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(select_server_echoes_clients_through_a_proxy_that_coalesces_bytes),
        TEST(tcp_client_sends_256_kib_through_a_proxy_that_sends_one_byte_at_a_time),
        TEST(tcp_client_sends_64_mib_through_a_proxy_that_coalesces_bytes),
        TEST(tcp_client_reports_a_server_that_resets_while_it_sends_64_mib),
        TEST(tcp_client_reports_a_server_that_closes_while_it_sends_64_mib),
        TEST(tcp_server_reports_a_client_that_resets_while_it_sends_a_64_mib_greeting),
        TEST(tcp_server_reports_a_client_that_hangs_up_and_resets_during_a_64_mib_greeting),
        TEST(tcp_client_reports_a_server_that_resets_in_the_middle_of_its_greeting),
        TEST(tcp_client_takes_a_plain_close_as_the_end_of_the_greeting),
        TEST(select_server_reports_a_client_that_resets_and_keeps_serving_others),
        TEST(every_unix_server_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file),
        TEST(udp_sender_stopped_by_sigint_or_sigterm_says_so_and_removes_its_socket_file),
        TEST(every_ip_server_stopped_by_sigint_or_sigterm_says_so_and_frees_its_port_at_once),
        TEST(framing_messages_and_lines_come_whole_through_one_byte_pieces),
        TEST(framing_refuses_a_huge_length_and_a_message_cut_short),
        TEST(connect_within_connects_is_refused_or_times_out_on_a_full_queue),
        TEST(address_by_hand_is_in_network_byte_order_and_connects),
        TEST(keep_alive_sets_idle_interval_and_count),
        TEST(dual_stack_listener_takes_an_ipv4_client_as_a_mapped_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
