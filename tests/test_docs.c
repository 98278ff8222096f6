#define _POSIX_C_SOURCE 200809L
/* test_docs.c: the pages (README.md and every .md in docs/, found when the test runs) cannot
 * drift from the programs. Each problem is named "page:line:", with what was expected and what
 * came. docs/transcripts.md ("How the transcripts are checked") says the same for page writers.
 *
 * 1. Transcripts: a block fenced as ```transcript is a terminal session, checked by running it.
 *        terminal 1 $ ./bin/tcp_server     a command typed in terminal 1 ("$ cmd": terminal 1)
 *        tcp_server: ready on ...          its output: stdout and stderr as one stream
 *        terminal 2 $ ./bin/tcp_server
 *        tcp_server: bind: Address already in use
 *        [exit 1]                          the command above exits with 1 (default: 0)
 *        terminal 1:                       more output of terminal 1's running command
 *    Commands run with /bin/sh -c from the repository root, in page order; one starts once the
 *    previous command of its terminal has exited and every command running in another terminal
 *    has printed the lines the page shows for it above this one (at least one: a server's
 *    first line comes when it is ready). The words 8765 and 2525 become PORT, and each program
 *    gets PORT as its tier takes it: a tutorial-sized
 *    ./bin/PROG as its one argument, " PORT", unless the page gives it an argument already
 *    ("./bin/tcp_client 2525", "./bin/tcp_client -h"); a ./bin/hardened/PROG as "-p PORT",
 *    unless the command has -p or -u. PORT is 0 for the transcript's first server, so that the
 *    system picks a free port, which its ready line names; from then on PORT is that port.
 *    Before any server it is a port where nothing answers, which the test holds meanwhile, so
 *    that no other program can take it. /tmp/ becomes a fresh directory. In the output, PORT
 *    reads as the page's port (8765 with a udp_ program, else 2525) and the directory as
 *    /tmp/. Every command must exit within the deadline, with exactly the lines shown for it
 *    and the status shown.
 * 2. Line links: [`recvfrom(sock, buffer`, lines 59–60](../examples/udp_receiver.c#L59-L60)
 *    points inside the file, every `backticked` name in the link text occurs in those lines,
 *    and at least one occurs nowhere else in the file (comments count as code), so that it tells
 *    which lines are meant: a string printed once, a call with its arguments, a declaration.
 *    "line 12" or "lines 12–20" in the link text is the anchor's. A link to a heading,
 *    [x](claims.md#6-sending-to-a-closed-peer) or [x](#sigpipe), finds it as GitHub names it.
 * 3. Diagrams: a mermaid sequenceDiagram lists its files, "%% code: examples/a.c examples/b.c",
 *    and every call `name()` in a message label occurs as "name(" in one of them. (That Mermaid
 *    draws them is for make lint: tests/render_mermaid.sh.)
 * 4. Code to copy: every block fenced as ```c is a whole file that compiles as it stands, with
 *    $CC (make test passes it; default cc) -std=c11 -Wall -Wextra -Wpedantic -Werror and
 *    -Iexamples, where the small tier's socket_helpers.h is (not the hardened one).
 * 5. Numbers from the code: "`BUFFER_SIZE` (64 KiB)", a constant's name followed by its value
 *    in parentheses (a number, with "," between thousands and an optional unit: KiB, MiB, or
 *    any word), must be the value the code gives it: an enum constant or a #define in a ```c
 *    block of the page, or else in the example of the next link on that line (or else the
 *    link before it), or else in every example of either tier that defines it (they must
 *    agree: link the file when they do not); a few system constants
 *    (FD_SETSIZE, PIPE_BUF) are checked on Linux against the headers. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    MAX_COMMANDS = 16,    /* in one transcript */
    MAX_TERMINALS = 9,    /* terminal 1 to terminal 9 */
    MAX_SHOWN_LINES = 64, /* of output shown for one command */
    LINE_COPY = 512,      /* a longer line is output, never a command or a marker */
    READ_CHUNK = 4096,
    REAP_POLL_MS = 5, /* between looks at a command that closed its output but has not exited */
    UDP_PORT = 8765,  /* the tutorial's ports, as the pages show them */
    TCP_PORT = 2525,
    COMPILE_TIMEOUT_MS = 60000, /* for one block of code */
    MIN_CODE_BLOCKS = 8,        /* recipes.md alone has more */
};

/* What checking one transcript found. */
enum outcome { AS_SHOWN = 0, MALFORMED = 1, OUTPUT_DIFFERS = 2, STATUS_DIFFERS = 4, TOO_SLOW = 8 };

#define VALGRIND_COMMAND \
    "valgrind -q --error-exitcode=86 --leak-check=full --errors-for-leak-kinds=definite,indirect "

/* ---- text that grows, pages, problems ---- */

struct text {
    char *data; /* '\0' after length bytes, once anything was added */
    size_t length, capacity;
};

static void append(struct text *text, const char *bytes, size_t count) {
    if (text->length + count + 1 > text->capacity) {
        text->capacity = 2 * (text->length + count + 1);
        if ((text->data = realloc(text->data, text->capacity)) == NULL)
            exit(EXIT_FAILURE);
    }
    memcpy(text->data + text->length, bytes, count);
    text->length += count;
    text->data[text->length] = '\0';
}

static const char *string_of(const struct text *text) { return text->data ? text->data : ""; }

static char *read_whole_file(const char *path) {
    FILE *file = fopen(path, "rb");
    struct text text = {0};
    char chunk[READ_CHUNK];
    size_t count;
    if (file == NULL)
        return NULL;
    append(&text, "", 0);
    while ((count = fread(chunk, 1, sizeof chunk, file)) > 0)
        append(&text, chunk, count);
    fclose(file);
    return text.data;
}

struct line {
    const char *text;
    int length; /* without the '\n' */
};

struct page {
    const char *name; /* from the repository root: "docs/02-datagrams.md" */
    char *text;
    struct line *lines;
    int count;
};

/* The page made of text (which it then owns), split into lines. */
static struct page page_of(const char *name, char *text) {
    struct page page = {name, text, NULL, 0};
    for (const char *at = text; *at != '\0'; page.count++) {
        const char *end = strchr(at, '\n');
        if ((page.lines = realloc(page.lines, (page.count + 1u) * sizeof *page.lines)) == NULL)
            exit(EXIT_FAILURE);
        page.lines[page.count] = (struct line){at, end ? (int)(end - at) : (int)strlen(at)};
        at += page.lines[page.count].length + (end != NULL);
    }
    return page;
}

static bool is_fence(const struct line *line) {
    return line->length >= 3 && strncmp(line->text, "```", 3) == 0;
}

/* The index of the fence that closes the block whose fence is at index open (or the end). */
static int block_end(const struct page *page, int open) {
    int end = open + 1;
    while (end < page->count && !is_fence(&page->lines[end]))
        end++;
    return end;
}

/* The next block fenced as ```info at or after line index *open: *open and *end become the
 * indexes of its two fences. False when there is none. */
static bool next_block(const struct page *page, const char *info, int *open, int *end) {
    for (; *open < page->count; ++*open) {
        const struct line *fence = &page->lines[*open];
        if (!is_fence(fence))
            continue;
        *end = block_end(page, *open);
        if (fence->length == 3 + (int)strlen(info) &&
            strncmp(fence->text + 3, info, strlen(info)) == 0)
            return true;
        *open = *end;
    }
    return false;
}

/* The line as a string, or "" when it is too long to be a command or a marker. */
static void copy_line(const struct line *line, char copy[LINE_COPY]) {
    int length = line->length < LINE_COPY ? line->length : 0;
    memcpy(copy, line->text, (size_t)length);
    copy[length] = '\0';
}

static int problems; /* found by the running test */
static bool quiet;   /* while a test provokes problems on purpose: count them, do not print */

static void problem(const char *page, int line, const char *format, ...) {
    char message[2048];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    problems++;
    if (!quiet)
        print_error("%s:%d: %s\n", page, line, message);
}

static bool is_name_character(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Whether name occurs in text[0, length), not inside a longer name ("send" in "sendto"). */
static bool contains_name(const char *text, size_t length, const char *name) {
    size_t size = strlen(name);
    for (size_t i = 0; size > 0 && i + size <= length; i++)
        if (memcmp(text + i, name, size) == 0 &&
            (i == 0 || !is_name_character(name[0]) || !is_name_character(text[i - 1])) &&
            (i + size == length || !is_name_character(name[size - 1]) ||
             !is_name_character(text[i + size])))
            return true;
    return false;
}

/* ---- 1. transcripts: reading one ---- */

struct command {
    int terminal;
    int line; /* on the page, where it is typed */
    char typed[LINE_COPY];
    struct text shown;                /* the output lines the page shows for it */
    int shown_lines[MAX_SHOWN_LINES]; /* the page line of each */
    int shown_count;
    int exit_status; /* [exit N]; 0 when the page shows none */
    int lines_due;   /* while a later command waits: lines this one must have printed first */
    pid_t pid;       /* 0 until started; also its process group */
    int output;      /* read end of its one pipe for stdout and stderr; -1 at end of file */
    struct text printed;
    bool reaped;
    int status; /* once reaped: exit code, 128 + signal, or TIMED_OUT */
};

struct transcript {
    const char *page;
    struct command commands[MAX_COMMANDS];
    int count;
    int port;             /* the port its first server got, once its ready line named it */
    bool port_asked;      /* a server was given port 0, and its ready line will name the port */
    int refusing_port;    /* before any server: a port where nothing answers, held by the test */
    int page_port;        /* UDP_PORT or TCP_PORT: the port the page shows instead */
    const char *temp_dir; /* stands for /tmp/; ends with a '/' */
};

enum line_kind { OUTPUT, COMMAND, SECTION, EXIT_STATUS };

/* "terminal 2 $ cmd" or "$ cmd" (terminal 1): COMMAND, with *number and *command set;
 * "terminal 2:": SECTION; "[exit 1]": EXIT_STATUS, with *number set; anything else: OUTPUT. */
static enum line_kind kind_of(const char *line, int *number, const char **command) {
    static const char terminal[] = "terminal ";
    size_t skip = strlen(terminal);
    int used = 0;
    *number = 1;
    *command = line + 2;
    if (strncmp(line, "$ ", 2) == 0)
        return COMMAND;
    if (sscanf(line, "[exit %d]%n", number, &used) == 1 && used == (int)strlen(line))
        return *number >= 0 ? EXIT_STATUS : OUTPUT;
    if (strncmp(line, terminal, skip) != 0 || !isdigit((unsigned char)line[skip]) ||
        sscanf(line + skip, "%d%n", number, &used) != 1 || *number > MAX_TERMINALS)
        return OUTPUT;
    *command = line + skip + used + 3;
    if (strcmp(line + skip + used, ":") == 0)
        return *number >= 1 ? SECTION : OUTPUT;
    return strncmp(line + skip + used, " $ ", 3) == 0 && *number >= 1 ? COMMAND : OUTPUT;
}

/* Read the block between the fences at open and end into t; false (with a problem) if bad. */
static bool parse_transcript(struct transcript *t, const struct page *page, int open, int end) {
    struct command *latest[MAX_TERMINALS + 1] = {NULL}, *current = NULL;
    for (int i = open + 1; i < end; i++) {
        char copy[LINE_COPY];
        const char *typed, *error = NULL;
        int number;
        copy_line(&page->lines[i], copy);
        enum line_kind kind = kind_of(copy, &number, &typed);
        if (kind == COMMAND && t->count == MAX_COMMANDS)
            error = "too many commands in one transcript";
        else if (kind == COMMAND) {
            current = latest[number] = &t->commands[t->count++];
            *current = (struct command){.terminal = number, .line = i + 1, .output = -1};
            snprintf(current->typed, sizeof current->typed, "%s", typed);
        } else if (kind == SECTION && (current = latest[number]) == NULL)
            error = "\"terminal N:\" before any command in terminal N";
        else if (kind != SECTION && current == NULL)
            error = "output before the first command (\"$ command\")";
        else if (kind == EXIT_STATUS)
            current->exit_status = number;
        else if (kind == OUTPUT && current->shown_count == MAX_SHOWN_LINES)
            error = "too many lines of output for one command";
        else if (kind == OUTPUT) {
            current->shown_lines[current->shown_count++] = i + 1;
            append(&current->shown, page->lines[i].text, (size_t)page->lines[i].length);
            append(&current->shown, "\n", 1);
        }
        if (error != NULL) {
            problem(page->name, i + 1, "%s", error);
            return false;
        }
    }
    if (t->count == 0)
        problem(page->name, open + 1, "a transcript without a command");
    return t->count > 0;
}

/* ---- 1. transcripts: the command that really runs ---- */

/* Whether word occurs in text as a word of its own: "-p" in "x -p 1", not in "-pq". */
static bool has_word(const char *text, const char *word) {
    size_t length = strlen(word);
    for (const char *at = strstr(text, word); at != NULL; at = strstr(at + 1, word))
        if ((at == text || strchr(" |;&(", at[-1])) && strchr(" |;&)", at[length]))
            return true; /* strchr finds the '\0' at the end too */
    return false;
}

/* Replace every `from` in text by `to`; with whole_number, only where `from` is not part of a
 * longer number ("8765", not "18765"). */
static void replace_all(struct text *text, const char *from, const char *to, bool whole_number) {
    struct text result = {0};
    size_t size = strlen(from);
    append(&result, "", 0);
    for (size_t i = 0; i < text->length;) {
        const char *at = text->data + i;
        bool here = i + size <= text->length && memcmp(at, from, size) == 0 &&
                    (!whole_number || ((i == 0 || !isdigit((unsigned char)at[-1])) &&
                                       !isdigit((unsigned char)at[size])));
        append(&result, here ? to : at, here ? strlen(to) : 1);
        i += here ? size : 1;
    }
    free(text->data);
    *text = result;
}

/* Whether the shell word at text is an argument of the program before it, not the end of the
 * command or an operator: "| cat", "; echo", "> file" and "2>/dev/null" are not. */
static bool is_argument(const char *text) {
    text += strspn(text, " ");
    size_t digits = strspn(text, "0123456789");
    return *text != '\0' && strchr("|;&)<>", *text) == NULL &&
           (text[digits] == '\0' || strchr("<>", text[digits]) == NULL);
}

/* Whether the command runs one of our servers, which print a ready line. */
static bool runs_a_server(const struct command *command) {
    static const char *const servers[] = {"udp_receiver", "tcp_server", "select_server",
                                          "poll_server", "epoll_server"};
    for (size_t i = 0; i < COUNT(servers); i++)
        if (strstr(command->typed, servers[i]) != NULL)
            return true;
    return false;
}

static void read_some(struct transcript *t, int timeout_ms);
static void reap_exited(struct transcript *t, int options);

/* The port a ready line of the commands started so far names ("... ready on 127.0.0.1 port
 * 40231"), or 0. */
static int port_named(const struct transcript *t) {
    for (int i = 0; i < t->count; i++) {
        const char *ready = strstr(string_of(&t->commands[i].printed), " ready on ");
        const char *port = ready ? strstr(ready, " port ") : NULL;
        const char *end = ready ? strchr(ready, '\n') : NULL;
        if (port != NULL && end != NULL && port < end)
            return atoi(port + strlen(" port "));
    }
    return 0;
}

/* What PORT stands for in this command: the port the first server got, waiting for its ready
 * line if need be; 0 for the first server; before any server, a port where nothing answers. */
static int port_for(struct transcript *t, const struct command *command) {
    long long deadline = now_ms() + READY_TIMEOUT_MS;
    while (t->port == 0 && t->port_asked && (t->port = port_named(t)) == 0 &&
           ms_until(deadline) > 0) {
        reap_exited(t, WNOHANG);
        read_some(t, ms_until(deadline));
    }
    if (t->port == 0 && t->port_asked)
        problem(t->page, command->line, "`%s` waited in vain for a server's ready line",
                command->typed);
    if (t->port != 0)
        return t->port;
    return runs_a_server(command) ? 0 : t->refusing_port;
}

/* The command as /bin/sh runs it: PORT, temporary directory, $BIN_DIR, maybe valgrind.
 * The port goes to each program as its tier takes it: "./bin/hardened/NAME" gets " -p PORT"
 * unless the command has -p or -u; a tutorial-sized "./bin/NAME" gets " PORT", its one
 * argument, unless the page gives it an argument of its own (a port, or a mistake to show). */
static char *command_to_run(struct transcript *t, const struct command *command) {
    static const char hardened[] = "hardened/";
    struct text text = {0};
    int port_number = port_for(t, command);
    const char *port = formatted("%d", port_number), *bin_dir = getenv("BIN_DIR");
    bool option_given = has_word(command->typed, "-p") || has_word(command->typed, "-u");
    append(&text, command->typed, strlen(command->typed));
    replace_all(&text, formatted("%d", UDP_PORT), port, true);
    replace_all(&text, formatted("%d", TCP_PORT), port, true);
    bool port_used = strcmp(text.data, command->typed) != 0;
    replace_all(&text, "/tmp/", t->temp_dir, false);
    /* Each "./bin/[hardened/]NAME" becomes "[valgrind ...] $BIN_DIR/[hardened/]NAME[ PORT]". */
    struct text result = {0};
    const char *at = text.data, *found;
    while ((found = strstr(at, "./bin/")) != NULL) {
        const char *name = found + strlen("./bin/"), *name_end;
        bool is_hardened = strncmp(name, hardened, strlen(hardened)) == 0;
        for (name_end = name + (is_hardened ? strlen(hardened) : 0); is_name_character(*name_end);)
            name_end++;
        const char *port_argument = "";
        if (is_hardened && !option_given)
            port_argument = formatted(" -p %s", port);
        else if (!is_hardened && !is_argument(name_end))
            port_argument = formatted(" %s", port);
        port_used |= *port_argument != '\0';
        const char *program =
            formatted("%s%s/%.*s%s", under_valgrind() ? VALGRIND_COMMAND : "",
                      bin_dir ? bin_dir : "bin", (int)(name_end - name), name, port_argument);
        append(&result, at, (size_t)(found - at));
        append(&result, program, strlen(program));
        at = name_end;
    }
    append(&result, at, strlen(at));
    free(text.data);
    /* A server given port 0 names the port it got in its ready line: later commands wait. */
    t->port_asked |= port_used && port_number == 0;
    return result.data;
}

/* ---- 1. transcripts: running them ---- */

/* Commands run in process groups of their own, so that a deadline ends a whole pipeline. When
 * we are stopped (Ctrl-C reaches only our group) we end theirs too. */
static pid_t groups[MAX_COMMANDS];

static void stop_commands_and_die(int signal_number) {
    for (int i = 0; i < MAX_COMMANDS; i++)
        if (groups[i] > 0)
            kill(-groups[i], SIGKILL);
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

static void start(struct transcript *t, int index) {
    struct command *command = &t->commands[index];
    char *line = command_to_run(t, command);
    int ends[2];
    if (pipe(ends) == -1 || fcntl(ends[0], F_SETFD, FD_CLOEXEC) == -1 ||
        fcntl(ends[1], F_SETFD, FD_CLOEXEC) == -1) /* no later command may hold them */
        exit(EXIT_FAILURE);
    pid_t pid = fork();
    if (pid == 0) {
        /* One pipe for stdout and stderr, as a terminal shows them: in the program's order. */
        int input = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        if (input != -1 && dup2(input, STDIN_FILENO) != -1 && dup2(ends[1], STDOUT_FILENO) != -1 &&
            dup2(ends[1], STDERR_FILENO) != -1)
            execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    if (pid == -1)
        exit(EXIT_FAILURE);
    setpgid(pid, pid); /* here too, so that the group exists before we may kill it */
    free(line);
    close(ends[1]);
    command->pid = groups[index] = pid;
    command->output = ends[0];
}

static void reap_exited(struct transcript *t, int options) {
    for (int i = 0; i < t->count; i++) {
        struct command *command = &t->commands[i];
        int status;
        if (command->pid != 0 && !command->reaped &&
            waitpid(command->pid, &status, options) == command->pid) {
            command->reaped = true;
            command->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
    }
}

/* Read what the commands print, waiting up to timeout_ms for something to happen. */
static void read_some(struct transcript *t, int timeout_ms) {
    struct pollfd fds[MAX_COMMANDS];
    struct command *owners[MAX_COMMANDS];
    nfds_t used = 0;
    for (int i = 0; i < t->count; i++) {
        struct command *command = &t->commands[i];
        if (command->output != -1) {
            fds[used] = (struct pollfd){.fd = command->output, .events = POLLIN};
            owners[used++] = command;
        } else if (command->pid != 0 && !command->reaped && timeout_ms > REAP_POLL_MS)
            timeout_ms = REAP_POLL_MS; /* output closed, exit due any moment: look again soon */
    }
    if (poll(fds, used, timeout_ms) <= 0)
        return;
    for (nfds_t i = 0; i < used; i++) {
        char chunk[READ_CHUNK];
        ssize_t count = fds[i].revents != 0 ? read(fds[i].fd, chunk, sizeof chunk) : -1;
        if (count > 0)
            append(&owners[i]->printed, chunk, (size_t)count);
        else if (fds[i].revents != 0 && (count == 0 || errno != EINTR)) {
            close(owners[i]->output);
            owners[i]->output = -1;
        }
    }
}

static bool has_finished(const struct command *command) {
    return command->reaped && command->output == -1;
}

/* Whether it has printed the lines it must have printed by now (lines_due), or ended. */
static bool has_printed_its_lines(const struct command *command) {
    int lines = 0;
    for (size_t i = 0; i < command->printed.length; i++)
        lines += command->printed.data[i] == '\n';
    return has_finished(command) || lines >= command->lines_due;
}

/* How many lines the page shows for `earlier` before the line where `later` is typed, at
 * least one: a server's first line comes when it is ready. */
static int lines_shown_before(const struct command *earlier, const struct command *later) {
    int count = 0;
    for (int i = 0; i < earlier->shown_count; i++)
        count += earlier->shown_lines[i] < later->line;
    return count > 0 ? count : 1;
}

/* Whether done(command) came true before the deadline. */
static bool wait_until(struct transcript *t, const struct command *command,
                       bool (*done)(const struct command *), long long deadline) {
    for (;;) {
        long long left = deadline - now_ms();
        reap_exited(t, WNOHANG);
        if (done(command))
            return true;
        if (left <= 0)
            return false;
        read_some(t, (int)left);
    }
}

/* Start the commands in order, each in its turn; then wait for all of them to exit, and kill
 * those still running at the deadline. */
static int run_commands(struct transcript *t) {
    int outcome = AS_SHOWN;
    for (int i = 0; i < t->count; i++) {
        const struct command *command = &t->commands[i];
        for (int j = 0; j < i; j++) {
            struct command *earlier = &t->commands[j];
            bool same = earlier->terminal == command->terminal;
            earlier->lines_due = lines_shown_before(earlier, command);
            if (wait_until(t, earlier, same ? has_finished : has_printed_its_lines,
                           now_ms() + (same ? FINISH_TIMEOUT_MS : READY_TIMEOUT_MS)))
                continue;
            problem(t->page, command->line, "`%s` waited in vain: `%s` (line %d) %s",
                    command->typed, earlier->typed, earlier->line,
                    same ? "is still running in its terminal"
                         : formatted("has not printed the %d line(s) shown before it",
                                     earlier->lines_due));
            outcome |= TOO_SLOW;
        }
        start(t, i);
    }
    long long deadline = now_ms() + FINISH_TIMEOUT_MS;
    for (int i = 0; i < t->count; i++) {
        struct command *command = &t->commands[i];
        if (wait_until(t, command, has_finished, deadline))
            continue;
        problem(t->page, command->line, "`%s` still running after %d ms: killed", command->typed,
                FINISH_TIMEOUT_MS);
        kill(-command->pid, SIGKILL);
        reap_exited(t, 0);
        if (command->output != -1)
            close(command->output);
        command->output = -1;
        command->status = TIMED_OUT;
        outcome |= TOO_SLOW;
    }
    memset(groups, 0, sizeof groups);
    return outcome;
}

/* ---- 1. transcripts: comparing ---- */

/* The line at text as a C string literal shows it ("...\n"), or "(end of output)". */
static const char *quoted_line(const char *text, size_t length) {
    const char *newline = memchr(text, '\n', length);
    size_t size = newline ? (size_t)(newline - text) + 1 : length;
    char shown[4 * SHOWN_BYTES + 1] = "";
    for (size_t i = 0, used = 0; i < size && i < SHOWN_BYTES; i++) {
        unsigned char byte = (unsigned char)text[i];
        used += (size_t)(byte == '\n' ? sprintf(shown + used, "\\n")
                         : byte < ' ' || byte >= 0x7f || byte == '"' || byte == '\\'
                             ? sprintf(shown + used, "\\x%02x", byte)
                             : sprintf(shown + used, "%c", byte));
    }
    return length == 0 ? "(end of output)" : formatted("\"%s\"", shown);
}

/* Name the first output line that differs, at the page line that shows it. */
static void report_difference(const struct transcript *t, const struct command *command) {
    const char *shown = string_of(&command->shown), *printed = string_of(&command->printed);
    size_t same = 0, line_start = 0;
    int index = 0; /* of the first line that differs */
    while (same < command->shown.length && same < command->printed.length &&
           shown[same] == printed[same])
        if (shown[same++] == '\n') {
            line_start = same;
            index++;
        }
    problem(t->page, index < command->shown_count ? command->shown_lines[index] : command->line,
            "output line %d of `%s` (line %d, terminal %d) differs\n    expected %s\n    "
            "but came %s",
            index + 1, command->typed, command->line, command->terminal,
            quoted_line(shown + line_start, command->shown.length - line_start),
            quoted_line(printed + line_start, command->printed.length - line_start));
}

static int compare(struct transcript *t) {
    int outcome = AS_SHOWN;
    for (int i = 0; i < t->count; i++) {
        struct command *command = &t->commands[i];
        for (int k = 0; k < 2; k++) /* the servers' port, and the one where nothing answers */
            if ((k == 0 ? t->port : t->refusing_port) != 0)
                replace_all(&command->printed, formatted("%d", k == 0 ? t->port : t->refusing_port),
                            formatted("%d", t->page_port), true);
        replace_all(&command->printed, t->temp_dir, "/tmp/", false);
        if (command->printed.length != command->shown.length ||
            memcmp(string_of(&command->printed), string_of(&command->shown),
                   command->shown.length) != 0) {
            report_difference(t, command);
            outcome |= OUTPUT_DIFFERS;
        }
        if (command->status != TIMED_OUT && command->status != command->exit_status) {
            problem(t->page, command->line, "`%s` exited with status %d, the page shows %d%s",
                    command->typed, command->status, command->exit_status,
                    command->exit_status == 0 ? " (no \"[exit N]\" line)" : "");
            outcome |= STATUS_DIFFERS;
        }
    }
    return outcome;
}

/* nc or socat, if a command needs it and it is missing; then the transcript is skipped (or,
 * under REQUIRE_TOOLS=1 as make check sets, fails). */
static const char *missing_tool(const struct transcript *t) {
    static const char *const tools[][2] = {{"nc", "netcat-openbsd"}, {"socat", "socat"}};
    for (int i = 0; i < t->count; i++)
        for (size_t k = 0; k < sizeof tools / sizeof tools[0]; k++)
            if (has_word(t->commands[i].typed, tools[k][0]) && !have_tool(tools[k][0], tools[k][1]))
                return tools[k][0];
    return NULL;
}

#if defined(__linux__)
#define ON_LINUX true
#else
#define ON_LINUX false
#endif

/* Whether a command runs epoll_server, which make builds on Linux only. */
static bool runs_epoll_server(const struct transcript *t) {
    for (int i = 0; i < t->count; i++)
        if (strstr(t->commands[i].typed, "epoll_server") != NULL)
            return true;
    return false;
}

/* Check the transcript between the fences at open and end: what it found. */
static int check_transcript(const struct page *page, int open, int end) {
    struct transcript *t = calloc(1, sizeof *t);
    int outcome = MALFORMED;
    const char *tool;
    if (t == NULL)
        exit(EXIT_FAILURE);
    t->page = page->name;
    t->page_port = TCP_PORT;
    bool parsed = parse_transcript(t, page, open, end);
    if (parsed && runs_epoll_server(t) && !ON_LINUX)
        print_message("%s:%d: transcript skipped: epoll_server is Linux only\n", page->name,
                      open + 1);
    else if (parsed && (tool = missing_tool(t)) != NULL) {
        if (tools_required())
            problem(page->name, open + 1, "cannot check this transcript without %s", tool);
        else
            print_message("%s:%d: transcript skipped: no %s\n", page->name, open + 1, tool);
    } else if (parsed) {
        for (int i = 0; i < t->count; i++)
            if (strstr(t->commands[i].typed, "udp_") || has_word(t->commands[i].typed, "8765"))
                t->page_port = UDP_PORT;
        t->refusing_port = refusing_port(t->page_port == UDP_PORT ? SOCK_DGRAM : SOCK_STREAM);
        t->temp_dir = temp_path("");
        outcome = run_commands(t) | compare(t);
    }
    for (int i = 0; i < t->count; i++) {
        free(t->commands[i].shown.data);
        free(t->commands[i].printed.data);
    }
    free(t);
    clean_up_peers(); /* the socket that held refusing_port */
    clean_up();       /* the temporary directory and the strings from formatted() */
    return outcome;
}

static int transcripts_checked;

static void check_transcripts(const struct page *page) {
    for (int open = 0, end; next_block(page, "transcript", &open, &end); open = end + 1) {
        check_transcript(page, open, end);
        transcripts_checked++;
    }
}

/* ---- 2. line links ---- */

/* The backticked names of a link's text, one at a time: *name is the next, or NULL at the end. */
static const char *next_name(const char **at, const char *end) {
    const char *tick = memchr(*at, '`', (size_t)(end - *at)), *close;
    if (tick == NULL || (close = memchr(tick + 1, '`', (size_t)(end - tick - 1))) == NULL)
        return NULL;
    *at = close + 1;
    int length = (int)(close - tick - 1);
    if (length > 2 && strncmp(close - 2, "()", 2) == 0)
        length -= 2; /* `connect()` names connect */
    return formatted("%.*s", length, tick + 1);
}

/* Every `name` in text[0, size) must occur in lines [from, to) of code, and one of them only
 * there: a name found elsewhere in the file too ("printf", "die") does not tell which lines
 * are meant, so a wrong range would pass. Comments count as the rest of the file does. */
static void check_names_in(const struct page *page, int line, const char *text, size_t size,
                           const char *code, const char *from, const char *to, const char *target) {
    const char *name, *at = text, *names = "";
    bool identified = false;
    while ((name = next_name(&at, text + size)) != NULL) {
        if (!contains_name(from, (size_t)(to - from), name))
            problem(page->name, line, "`%s` is not in %s", name, target);
        else if (!contains_name(code, (size_t)(from - code), name) &&
                 !contains_name(to, strlen(to), name))
            identified = true;
        names = formatted("%s%s`%s`", names, *names ? ", " : "", name);
    }
    if (!identified)
        problem(page->name, line,
                "%s: %s%s: add a `name` found only in these lines, such as the call with its "
                "arguments or the string it prints",
                target, *names ? names : "the link text has no `name`",
                *names == '\0'       ? ""
                : strchr(names, ',') ? " occur elsewhere too"
                                     : " occurs elsewhere too");
}

/* A link text that gives line numbers, "line 12" or "lines 12–20", must give its anchor's. */
static void check_numbers_said(const struct page *page, int line, const char *text, size_t size,
                               const char *target, int first, int last) {
    const char *said = formatted("%.*s", (int)size, text), *numbers = said;
    while ((numbers = strstr(numbers, "line")) != NULL &&
           !isdigit((unsigned char)numbers[strspn(numbers, "lines ")]))
        numbers++;
    if (numbers == NULL)
        return;
    const char *expected =
        first == last ? formatted("line %d", first) : formatted("lines %d–%d", first, last);
    size_t length = strlen(expected);
    if (strncmp(numbers, expected, length) != 0 || isdigit((unsigned char)numbers[length]) ||
        strncmp(numbers + length, "–", strlen("–")) == 0)
        problem(page->name, line, "%s: the link text must say \"%s\"", target, expected);
}

/* Check the link [text](target) whose target ends in #L12 or #L12-L20. */
static void check_line_link(const struct page *page, int line, const char *text, size_t size,
                            const char *target) {
    const char *slash = strrchr(page->name, '/'), *anchor = strchr(target, '#');
    int first = 0, last = 0, used = 0;
    if (sscanf(anchor, "#L%d-L%d%n", &first, &last, &used) < 2 &&
        sscanf(anchor, "#L%d%n", &first, &used) == 1)
        last = first;
    /* The target is relative to the page's directory. */
    const char *path = formatted("%.*s%.*s", slash ? (int)(slash - page->name) + 1 : 0, page->name,
                                 (int)(anchor - target), target);
    char *code = read_whole_file(path);
    if (anchor[used] != '\0' || code == NULL) {
        problem(page->name, line, code ? "%s: write #L12 or #L12-L20" : "%s: no such file", target);
        free(code);
        return;
    }
    struct page file = page_of(path, code);
    if (first < 1 || last < first || last > file.count)
        problem(page->name, line, "%s: the file has %d lines", target, file.count);
    else {
        const char *from = file.lines[first - 1].text;
        const char *to = file.lines[last - 1].text + file.lines[last - 1].length;
        check_names_in(page, line, text, size, code, from, to, target);
        check_numbers_said(page, line, text, size, target, first, last);
    }
    free(file.text);
    free(file.lines);
}

/* Every [text](target#L...) outside fenced blocks; the text may begin on an earlier line. */
static void check_line_links(const struct page *page) {
    for (int i = 0; i < page->count; i++) {
        if (is_fence(&page->lines[i])) {
            i = block_end(page, i);
            continue;
        }
        const char *line = formatted("%.*s", page->lines[i].length, page->lines[i].text);
        for (const char *at = strstr(line, "]("), *target_end; at != NULL;
             at = strstr(at + 1, "](")) {
            if ((target_end = strchr(at, ')')) == NULL)
                break;
            const char *target = formatted("%.*s", (int)(target_end - at - 2), at + 2);
            /* Back from "](" to its "[", in the page: the text may have begun a line earlier. */
            const char *close = page->lines[i].text + (at - line), *open = close;
            for (int depth = 0; open > page->text && (open[-1] != '[' || depth-- > 0);)
                depth += *--open == ']';
            if (open > page->text && strstr(target, "#L") != NULL &&
                strncmp(target, "http", 4) != 0)
                check_line_link(page, i + 1, open, (size_t)(close - open), target);
        }
    }
}

/* The anchor GitHub gives a heading: lower case, spaces as '-', other punctuation dropped. */
static const char *anchor_of(const char *heading, int length) {
    char anchor[LINE_COPY];
    int size = 0;
    for (int i = 0; i < length && size < LINE_COPY - 1; i++) {
        unsigned char c = (unsigned char)heading[i];
        if (isalnum(c) || c == '-' || c == '_')
            anchor[size++] = (char)tolower(c);
        else if (c == ' ')
            anchor[size++] = '-';
    }
    return formatted("%.*s", size, anchor);
}

/* Every [text](page.md#anchor) must name a heading of that page (of this one: (#anchor)). */
static void check_anchor_links(const struct page *page) {
    for (int i = 0; i < page->count; i++) {
        if (is_fence(&page->lines[i])) {
            i = block_end(page, i);
            continue;
        }
        const char *line = formatted("%.*s", page->lines[i].length, page->lines[i].text);
        for (const char *at = strstr(line, "]("); at != NULL; at = strstr(at + 1, "](")) {
            const char *target = at + 2, *hash = strchr(target, '#'), *end = strchr(target, ')');
            if (hash == NULL || end == NULL || hash > end || strncmp(target, "http", 4) == 0 ||
                (hash - target >= 3 && strncmp(hash - 3, ".md", 3) != 0) ||
                (hash > target && hash - target < 3))
                continue;
            const char *slash = strrchr(page->name, '/');
            const char *path =
                hash == target ? page->name
                               : formatted("%.*s%.*s", slash ? (int)(slash - page->name) + 1 : 0,
                                           page->name, (int)(hash - target), target);
            const char *anchor = formatted("%.*s", (int)(end - hash - 1), hash + 1);
            char *text = read_whole_file(path);
            struct page linked = page_of(path, text ? text : calloc(1, 1));
            bool found = false;
            for (int k = 0; k < linked.count && !found; k++) {
                if (is_fence(&linked.lines[k])) {
                    k = block_end(&linked, k);
                    continue;
                }
                const struct line *heading = &linked.lines[k];
                int level = (int)strspn(heading->text, "#");
                found = level > 0 && level < heading->length && heading->text[level] == ' ' &&
                        strcmp(anchor_of(heading->text + level + 1, heading->length - level - 1),
                               anchor) == 0;
            }
            if (!found)
                problem(page->name, i + 1, "%s has no heading for #%s", path, anchor);
            free(linked.text);
            free(linked.lines);
        }
    }
}

/* ---- 3. diagrams ---- */

/* The label of a message line "A->>B: label", or NULL for other lines. */
static const char *message_label(const char *line) {
    const char *colon = strchr(line, ':');
    for (const char *at = line; colon != NULL && strncmp(line, "%%", 2) != 0 && at + 1 < colon;
         at++)
        if (at[0] == '-' && strchr(">x)", at[1]) != NULL)
            return colon + 1;
    return NULL;
}

/* The text of the files a diagram lists in "%% code: a.c b.c", or NULL (with a problem). */
static char *drawn_code(const struct page *page, int open, int end, const char **files) {
    struct text code = {0};
    for (int i = open + 1; i < end; i++) {
        char copy[LINE_COPY], *next, *name, *list = copy;
        copy_line(&page->lines[i], copy);
        list += strspn(list, " \t");
        if (strncmp(list, "%% code:", 8) != 0)
            continue;
        list += 8 + strspn(list + 8, " ");
        *files = formatted("%s", list);
        append(&code, "", 0);
        for (name = strtok_r(list, " ", &next); name; name = strtok_r(NULL, " ", &next)) {
            char *text = read_whole_file(name);
            if (text == NULL)
                problem(page->name, i + 1, "%s: no such file", name);
            append(&code, text ? text : "", text ? strlen(text) : 0);
            free(text);
        }
        return code.data;
    }
    problem(page->name, open + 1, "a sequenceDiagram needs \"%%%% code: examples/FILE.c ...\"");
    return NULL;
}

/* Every name() in a message label must occur as "name(" in code. */
static void check_calls_drawn(const struct page *page, int line, const char *code,
                              const char *files) {
    char copy[LINE_COPY];
    copy_line(&page->lines[line - 1], copy);
    const char *label = message_label(copy + strspn(copy, " \t"));
    for (const char *call = label; call != NULL && (call = strstr(call, "()")) != NULL; call += 2) {
        const char *name = call;
        while (name > label && is_name_character(name[-1]))
            name--;
        const char *written = formatted("%.*s(", (int)(call - name), name);
        if (call > name && !contains_name(code, strlen(code), written))
            problem(page->name, line, "the diagram draws %s), which %s never writes", written,
                    files);
    }
}

static void check_diagrams(const struct page *page) {
    for (int open = 0, end; next_block(page, "mermaid", &open, &end); open = end + 1) {
        bool sequence = false;
        for (int i = open + 1; i < end; i++)
            sequence |= contains_name(page->lines[i].text, (size_t)page->lines[i].length,
                                      "sequenceDiagram");
        const char *files = "";
        char *code = sequence ? drawn_code(page, open, end, &files) : NULL;
        for (int i = open + 1; i < end && code != NULL; i++)
            check_calls_drawn(page, i + 1, code, files);
        free(code);
    }
}

/* ---- 4. code to copy ---- */

static int blocks_compiled;

/* Compile the lines between the fences at open and end as one file, as a reader pastes it.
 * Returns whether it compiled; if not, a problem shows the compiler's messages. */
static bool block_compiles(const struct page *page, int open, int end) {
    const char *source = temp_path(formatted("block%d.c", ++blocks_compiled));
    FILE *file = fopen(source, "w");
    assert_non_null(file);
    for (int i = open + 1; i < end; i++)
        fprintf(file, "%.*s\n", page->lines[i].length, page->lines[i].text);
    assert_int_equal(fclose(file), 0);
    const char *cc = c_compiler();
    const char *command =
        formatted("%s -std=c11 -Wall -Wextra -Wpedantic -Werror -Iexamples -c -o %s.o %s 2>&1", cc,
                  source, source);
    struct process *compiler = start_command(ARGV("sh", "-c", command), NULL);
    int status = finish(compiler, COMPILE_TIMEOUT_MS);
    if (status != 0)
        problem(page->name, open + 1, "this block does not compile with %s (status %d):\n%s", cc,
                status, compiler->out.data ? compiler->out.data : "");
    return status == 0;
}

static void check_code_blocks(const struct page *page) {
    for (int open = 0, end; next_block(page, "c", &open, &end); open = end + 1)
        block_compiles(page, open, end);
}

/* ---- 5. numbers from the code ---- */

/* The value of the integer expression at *at (numbers, + - *, parentheses), moving *at past
 * it; false when it is something else. */
static bool evaluate(const char **at, long long *value, int depth);

static bool evaluate_factor(const char **at, long long *value, int depth) {
    *at += strspn(*at, " ");
    if (**at == '(') {
        ++*at;
        if (depth > 8 || !evaluate(at, value, depth + 1))
            return false;
        *at += strspn(*at, " ");
        return *(*at)++ == ')';
    }
    if (!isdigit((unsigned char)**at))
        return false;
    char *after;
    *value = strtoll(*at, &after, 10);
    *at = after;
    return true;
}

static bool evaluate(const char **at, long long *value, int depth) {
    long long term, factor;
    if (!evaluate_factor(at, &term, depth))
        return false;
    *value = 0;
    for (char operation = '+';;) {
        *at += strspn(*at, " ");
        if (**at == '*') {
            ++*at;
            if (!evaluate_factor(at, &factor, depth))
                return false;
            term *= factor;
            continue;
        }
        *value += operation == '+' ? term : -term;
        if (**at != '+' && **at != '-')
            return true;
        operation = *(*at)++;
        if (!evaluate_factor(at, &term, depth))
            return false;
    }
}

/* How code defines name: "NAME = 42" (enum) or "#define NAME 42" or "#define NAME "42"".
 * Returns whether it does, with the value. */
static bool defined_value(const char *code, const char *name, long long *value) {
    size_t size = strlen(name);
    for (const char *at = strstr(code, name); at != NULL; at = strstr(at + 1, name)) {
        if ((at > code && is_name_character(at[-1])) || is_name_character(at[size]))
            continue;
        const char *after = at + size + strspn(at + size, " ");
        bool is_define = at - code >= 8 && strncmp(at - 8, "#define ", 8) == 0;
        if (!is_define && (after[0] != '=' || after[1] == '='))
            continue;
        after += !is_define;
        after += strspn(after, " \"");
        if (evaluate(&after, value, 0))
            return true;
    }
    return false;
}

/* Constants of the system that the pages quote, as this system's headers define them. */
static bool system_value(const char *name, long long *value) {
#if defined(__linux__)
    static const struct {
        const char *name;
        long long value;
    } known[] = {{"FD_SETSIZE", FD_SETSIZE}, {"PIPE_BUF", PIPE_BUF}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(known[i].name, name) == 0) {
            *value = known[i].value;
            return true;
        }
#endif
    (void)name;
    (void)value;
    return false;
}

/* The number at text: digits with "," between thousands, then " KiB" or " MiB" or nothing
 * that scales it. False when text does not start with a digit. */
static bool quoted_value(const char *text, long long *value) {
    if (!isdigit((unsigned char)*text))
        return false;
    for (*value = 0;
         isdigit((unsigned char)*text) || (*text == ',' && isdigit((unsigned char)text[1])); text++)
        if (*text != ',')
            *value = *value * 10 + (*text - '0');
    if (strncmp(text, " KiB", 4) == 0)
        *value *= 1024;
    else if (strncmp(text, " MiB", 4) == 0)
        *value *= 1024 * 1024;
    return true;
}

/* Whether the file at path defines name; if so, a problem when its value is not quoted. */
static bool check_definition(const struct page *page, int line, const char *name, long long quoted,
                             const char *path) {
    char *code = read_whole_file(path);
    long long value;
    bool defines = code != NULL && defined_value(code, name, &value);
    if (defines && value != quoted)
        problem(page->name, line, "`%s` (%lld) but %s says %lld", name, quoted, path, value);
    free(code);
    return defines;
}

/* Check "`NAME` (value)" against the page's own code, when it defines NAME; else the example
 * the line links to, when that one does; else every example of both tiers that does; else
 * this system's headers. */
/* The page's ```c blocks as one text: a link's `BUFFER_SIZE = 65536` in prose defines nothing. */
static const char *page_code(const struct page *page) {
    const char *code = "";
    for (int open = 0, end; next_block(page, "c", &open, &end); open = end + 1) {
        const char *first = page->lines[open + 1 < end ? open + 1 : end].text;
        code = formatted("%s%.*s\n", code, (int)(page->lines[end].text - first), first);
    }
    return code;
}

static void check_quoted_number(const struct page *page, int line, const char *name,
                                long long quoted, const char *linked) {
    glob_t found;
    long long value;
    int definitions = 0;
    if (defined_value(page_code(page), name, &value) && ++definitions && value != quoted)
        problem(page->name, line, "`%s` (%lld) but the page's own code says %lld", name, quoted,
                value);
    if (definitions == 0 && linked != NULL)
        definitions = check_definition(page, line, name, quoted, linked);
    if (definitions == 0 && glob("examples/*.[ch]", 0, NULL, &found) == 0) {
        glob("examples/hardened/*.[ch]", GLOB_APPEND, NULL, &found);
        for (size_t i = 0; i < found.gl_pathc; i++)
            definitions += check_definition(page, line, name, quoted, found.gl_pathv[i]);
        globfree(&found);
    }
    if (definitions == 0 && system_value(name, &value) && ++definitions && value != quoted)
        problem(page->name, line, "`%s` (%lld) but this system's headers say %lld", name, quoted,
                value);
    if (definitions == 0)
        problem(page->name, line, "`%s` (%lld): no example defines it", name, quoted);
}

/* The example file of the first link to examples/ in text ("[x](../examples/a.c#L1)" gives
 * "examples/a.c"), or NULL. */
static const char *linked_example(const char *text) {
    for (const char *at = strstr(text, "]("); at != NULL; at = strstr(at + 1, "](")) {
        const char *target = at + 2 + (strncmp(at + 2, "../", 3) == 0 ? 3 : 0);
        if (strncmp(target, "examples/", 9) == 0)
            return formatted("%.*s", (int)strcspn(target, "#)"), target);
    }
    return NULL;
}

static void check_numbers(const struct page *page) {
    for (int i = 0; i < page->count; i++) {
        if (is_fence(&page->lines[i])) {
            i = block_end(page, i);
            continue;
        }
        const char *line = formatted("%.*s", page->lines[i].length, page->lines[i].text);
        for (const char *tick = strchr(line, '`'); tick != NULL; tick = strchr(tick + 1, '`')) {
            const char *close = strchr(tick + 1, '`');
            long long quoted;
            if (close == NULL)
                break;
            const char *name = formatted("%.*s", (int)(close - tick - 1), tick + 1);
            bool constant = isupper((unsigned char)name[0]) &&
                            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(name);
            if (constant && strncmp(close + 1, " (", 2) == 0 && quoted_value(close + 3, &quoted)) {
                /* The link after the quote names its file; or else one before it. */
                const char *linked = linked_example(close);
                check_quoted_number(page, i + 1, name, quoted,
                                    linked ? linked : linked_example(line));
            }
            tick = close;
        }
    }
}

/* ---- the tests ---- */

/* Run check on README.md and every .md in docs/; fail the test if it found any problem. */
static void check_every_page(void (*check)(const struct page *page)) {
    glob_t found;
    problems = 0;
    if (glob("README.md", 0, NULL, &found) != 0)
        fail_msg("no README.md here: run the test from the repository root");
    glob("docs/*.md", GLOB_APPEND, NULL, &found);
    for (size_t i = 0; i < found.gl_pathc; i++) {
        char *text = read_whole_file(found.gl_pathv[i]);
        struct page page = page_of(found.gl_pathv[i], text ? text : calloc(1, 1));
        if (text == NULL)
            problem(page.name, 0, "cannot read it");
        check(&page);
        free(page.text);
        free(page.lines);
        clean_up();
    }
    globfree(&found);
    if (problems > 0)
        fail_msg("%d problem%s in the pages, each named above", problems, problems > 1 ? "s" : "");
}

static void every_transcript_shows_exactly_what_its_commands_print(void **state) {
    (void)state;
    transcripts_checked = 0;
    check_every_page(check_transcripts);
    if (transcripts_checked == 0)
        fail_msg("README.md and docs/ hold no ```transcript block");
}

/* In README.md's first transcript, change one character of each command's output in turn:
 * the checker must report that the output differs, and nothing else. */
static void a_transcript_changed_by_one_character_fails(void **state) {
    (void)state;
    struct page page = page_of("README.md", read_whole_file("README.md"));
    struct transcript *t = calloc(1, sizeof *t);
    int open = 0, end = 0, outcome;
    assert_true(t != NULL && next_block(&page, "transcript", &open, &end));
    assert_true(parse_transcript(t, &page, open, end));
    quiet = true;
    if ((outcome = check_transcript(&page, open, end)) != AS_SHOWN)
        fail_msg("README.md:%d: this transcript must pass unchanged first (%d)", open + 1, outcome);
    for (int i = 0; i < t->count; i++) {
        if (t->commands[i].shown_count == 0)
            continue;
        const struct line *line = &page.lines[t->commands[i].shown_lines[0] - 1];
        char *changed = page.text + (line->text - page.text) + line->length / 2,
             original = *changed;
        *changed = original == '~' ? '!' : (char)(original + 1);
        outcome = check_transcript(&page, open, end);
        *changed = original;
        if (outcome != OUTPUT_DIFFERS)
            fail_msg("README.md:%d with '%c' for '%c': the checker found %d, not a different "
                     "output (%d)",
                     t->commands[i].shown_lines[0], original + 1, original, outcome,
                     OUTPUT_DIFFERS);
    }
    for (int i = 0; i < t->count; i++)
        free(t->commands[i].shown.data);
    free(t);
    free(page.text);
    free(page.lines);
}

static void every_line_link_names_what_only_its_lines_hold(void **state) {
    (void)state;
    check_every_page(check_line_links);
}

static void every_link_to_a_heading_finds_it(void **state) {
    (void)state;
    check_every_page(check_anchor_links);
}

static void every_sequence_diagram_draws_only_calls_its_code_makes(void **state) {
    (void)state;
    check_every_page(check_diagrams);
}

static void every_c_block_compiles_as_a_whole_file(void **state) {
    (void)state;
    blocks_compiled = 0;
    check_every_page(check_code_blocks);
    if (blocks_compiled < MIN_CODE_BLOCKS)
        fail_msg("only %d ```c blocks found in README.md and docs/ (at least %d)", blocks_compiled,
                 MIN_CODE_BLOCKS);
}

/* In each block of recipes.md, drop the first ';' that ends a line of code: it must no longer
 * compile. */
static void a_recipe_with_one_character_removed_fails_to_compile(void **state) {
    (void)state;
    struct page page = page_of("docs/recipes.md", read_whole_file("docs/recipes.md"));
    int tried = 0;
    quiet = true;
    for (int open = 0, end; next_block(&page, "c", &open, &end); open = end + 1) {
        char *semicolon = NULL;
        for (int i = open + 1; i < end && semicolon == NULL; i++) {
            const struct line *line = &page.lines[i];
            const char *code = line->text + strspn(line->text, " ");
            if (line->length > 0 && line->text[line->length - 1] == ';' && *code != '*' &&
                *code != '/')
                semicolon = page.text + (line->text - page.text) + line->length - 1;
        }
        if (semicolon == NULL)
            continue;
        *semicolon = ' ';
        problems = 0;
        bool compiled = block_compiles(&page, open, end);
        *semicolon = ';';
        tried++;
        if (compiled || problems != 1)
            fail_msg("docs/recipes.md:%d: still compiles without its ';'", open + 1);
    }
    quiet = false;
    assert_true(tried > 0);
    free(page.text);
    free(page.lines);
}

static void every_constant_quoted_with_its_value_has_that_value_in_the_code(void **state) {
    (void)state;
    check_every_page(check_numbers);
}

/* A made-up page that quotes two values wrongly and one rightly: two problems. PENDING_SIZE
 * is found in the hardened servers, which the line does not link. */
static void a_wrong_quoted_value_is_found(void **state) {
    (void)state;
    char text[] =
        "Streams move `BUFFER_SIZE` (16 KiB) at a time "
        "([x](../examples/hardened/tcp_server.c#L1)).\n"
        "Clients wait in `PENDING_SIZE` (4 KiB), a datagram holds `MAX_DATAGRAM` (65,506) "
        "([y](../examples/hardened/udp_sender.c#L26)).\n";
    struct page page = page_of("docs/made-up.md", text);
    quiet = true;
    problems = 0;
    check_numbers(&page);
    quiet = false;
    free(page.lines);
    assert_int_equal(problems, 2);
}

/* A made-up page: a link that names only what the rest of the file has too ("printf") is
 * found, as is one whose numbers are not its anchor's; a link whose string is printed only in
 * its lines passes. */
static void a_line_link_with_only_common_names_is_found(void **state) {
    (void)state;
    char text[] = "It prints [`printf`, line 92](../examples/tcp_client.c#L92).\n"
                  "It prints [`\"reply sent!\\n\"`, line 91](../examples/tcp_client.c#L92).\n"
                  "It prints [`\"reply sent!\\n\"`, line 92](../examples/tcp_client.c#L92).\n";
    struct page page = page_of("docs/made-up.md", text);
    quiet = true;
    problems = 0;
    check_line_links(&page);
    quiet = false;
    free(page.lines);
    assert_int_equal(problems, 2);
}

/* A test of the pages may leave `quiet` on when it fails: put it back, then tear down. */
static int tear_down_quiet(void **state) {
    quiet = false;
    return tear_down(state);
}

#define PAGE_TEST(name) cmocka_unit_test_teardown(name, tear_down_quiet)

int main(void) {
    signal(SIGINT, stop_commands_and_die);
    signal(SIGTERM, stop_commands_and_die);
    const struct CMUnitTest tests[] = {
        PAGE_TEST(every_transcript_shows_exactly_what_its_commands_print),
        PAGE_TEST(a_transcript_changed_by_one_character_fails),
        PAGE_TEST(every_line_link_names_what_only_its_lines_hold),
        PAGE_TEST(a_line_link_with_only_common_names_is_found),
        PAGE_TEST(every_link_to_a_heading_finds_it),
        PAGE_TEST(every_sequence_diagram_draws_only_calls_its_code_makes),
        PAGE_TEST(every_c_block_compiles_as_a_whole_file),
        PAGE_TEST(a_recipe_with_one_character_removed_fails_to_compile),
        PAGE_TEST(every_constant_quoted_with_its_value_has_that_value_in_the_code),
        PAGE_TEST(a_wrong_quoted_value_is_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
