#define _XOPEN_SOURCE 700 /* POSIX plus posix_openpt, grantpt, unlockpt, ptsname */
/* harness.c: see harness.h. One poll() loop reads every pipe of every running program, so a
 * program never blocks on a full pipe while we wait for another one. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_PROCESSES = 64, /* started by one test, or one run of the demo */
    MAX_AT_ONCE = 16,   /* finished together by one finish_all */
    READ_CHUNK = 65536,
    LABEL_WIDTH = 14, /* echo mode: "select_server | listening" */
    REAP_POLL_MS = 5, /* between checks for the exit of a program that closed its pipes */
};

static struct process *processes[MAX_PROCESSES];
static size_t process_count;
static char **strings; /* from formatted() and temp_path(), freed by clean_up */
static size_t string_count;
static char temp_dir[64];

static void *checked(void *pointer) {
    if (pointer == NULL) {
        perror("harness");
        exit(EXIT_FAILURE);
    }
    return pointer;
}

long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int ms_until(long long deadline) {
    long long left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

static const char *keep_string(char *string) {
    strings = checked(realloc(strings, (string_count + 1) * sizeof *strings));
    strings[string_count++] = string;
    return string;
}

const char *formatted(const char *format, ...) {
    va_list args;
    va_start(args, format);
    int length = vsnprintf(NULL, 0, format, args);
    va_end(args);
    char *string = checked(malloc((size_t)length + 1));
    va_start(args, format);
    vsnprintf(string, (size_t)length + 1, format, args);
    va_end(args);
    return keep_string(string);
}

const char *temp_path(const char *name) {
    if (temp_dir[0] == '\0') {
        strcpy(temp_dir, "/tmp/sockets-tests-XXXXXX");
        checked(mkdtemp(temp_dir));
    }
    return formatted("%s/%s", temp_dir, name);
}

/* ---- starting ---- */

static void make_pipe(int ends[2]) {
    if (pipe(ends) == -1) {
        perror("harness: pipe");
        exit(EXIT_FAILURE);
    }
    /* Other children must not inherit our ends; dup2 in the child clears the flag again. */
    fcntl(ends[0], F_SETFD, FD_CLOEXEC);
    fcntl(ends[1], F_SETFD, FD_CLOEXEC);
}

/* A pseudo-terminal for the child's stdout: ends[0] the master side we read (like a pipe's
 * read end: at end of output, once the child has closed its side, read fails with EIO),
 * ends[1] the terminal the child writes to. */
static void make_terminal(int ends[2]) {
    struct termios settings;
    int master = posix_openpt(O_RDWR | O_NOCTTY); /* NOCTTY: never our controlling terminal */
    const char *name =
        master == -1 || grantpt(master) == -1 || unlockpt(master) == -1 ? NULL : ptsname(master);
    int terminal = name == NULL ? -1 : open(name, O_RDWR | O_NOCTTY);
    /* A terminal turns "\n" into "\r\n" on output: switch output processing off so the
     * bytes come out as the program wrote them. */
    if (terminal == -1 || tcgetattr(terminal, &settings) == -1) {
        perror("harness: pseudo-terminal");
        exit(EXIT_FAILURE);
    }
    settings.c_oflag &= ~(tcflag_t)OPOST;
    if (tcsetattr(terminal, TCSANOW, &settings) == -1) {
        perror("harness: tcsetattr");
        exit(EXIT_FAILURE);
    }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(terminal, F_SETFD, FD_CLOEXEC);
    ends[0] = master;
    ends[1] = terminal;
}

/* Open what the child's stdin should be, before the fork so errors show in the test. With
 * input_pipe, *writer gets the pipe's write end, which only we hold (close-on-exec), so the
 * child sees end of file once close_input closes it; it never blocks us (O_NONBLOCK). */
static int open_input(const struct run_options *options, int *writer) {
    *writer = -1;
    if (options->input_pipe) {
        int ends[2];
        make_pipe(ends);
        fcntl(ends[1], F_SETFL, fcntl(ends[1], F_GETFL) | O_NONBLOCK);
        if (options->nonblocking_input)
            fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK);
        *writer = ends[1];
        return ends[0];
    }
    if (options->input_file != NULL)
        return open(options->input_file, O_RDONLY | O_CLOEXEC);
    if (options->input == NULL)
        return open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* A file, not a pipe: the child reads it at its own pace and then sees end of file. */
    FILE *file = tmpfile();
    if (file == NULL)
        return -1;
    fputs(options->input, file);
    fflush(file);
    int input = dup(fileno(file));
    fclose(file);
    if (input != -1) {
        lseek(input, 0, SEEK_SET);
        fcntl(input, F_SETFD, FD_CLOEXEC);
    }
    return input;
}

/* `make check` sets VALGRIND=1 to run each program under memcheck: any error or leak is
 * printed on stderr, which the tests compare exactly, and makes the exit status 86. */
static const char *const VALGRIND_ARGV[] = {"valgrind",
                                            "-q",
                                            "--error-exitcode=86",
                                            "--leak-check=full",
                                            "--errors-for-leak-kinds=definite,indirect",
                                            NULL};

bool under_valgrind(void) {
    const char *valgrind = getenv("VALGRIND");
    return valgrind != NULL && strcmp(valgrind, "1") == 0;
}

int slow(int ms) { return under_valgrind() ? ms * VALGRIND_SLOWDOWN : ms; }

/* Start path with argv (argv[0] is only its name), after the wrapper's words if any. */
static struct process *start(const char *path, const char *const argv[],
                             const struct run_options *options, const char *const *wrapper) {
    static const struct run_options no_options;
    if (options == NULL)
        options = &no_options;
    if (process_count == MAX_PROCESSES) {
        fprintf(stderr, "harness: more than %d processes in one test\n", MAX_PROCESSES);
        exit(EXIT_FAILURE);
    }
    if (options->terminal && options->output_file != NULL) {
        fprintf(stderr, "harness: stdout is either a terminal or a file, not both\n");
        exit(EXIT_FAILURE);
    }
    int stdin_sources = options->input_pipe + options->close_stdin +
                        (options->input != NULL || options->input_file != NULL);
    if (stdin_sources > 1) {
        fprintf(stderr, "harness: stdin is either a pipe to write to, text, a file or closed\n");
        exit(EXIT_FAILURE);
    }
    if (options->close_stdout &&
        (options->output_file != NULL || options->terminal || options->discard_output)) {
        fprintf(stderr, "harness: a closed stdout goes nowhere: no file, terminal or reader\n");
        exit(EXIT_FAILURE);
    }
    int writer = -1;
    int input = options->close_stdin ? -1 : open_input(options, &writer);
    if (input == -1 && !options->close_stdin) {
        fprintf(stderr, "harness: cannot open stdin for %s: %s\n", argv[0], strerror(errno));
        exit(EXIT_FAILURE);
    }
    int out[2] = {-1, -1}, err[2];
    if (options->terminal)
        make_terminal(out);
    else if (options->output_file == NULL && !options->close_stdout)
        make_pipe(out);
    make_pipe(err);
    /* The child's argv[0] is the path, as when a shell runs ./bin/tcp_client. */
    size_t count = 1, first = 0;
    while (argv[count] != NULL)
        count++;
    while (wrapper != NULL && wrapper[first] != NULL)
        first++;
    char **child_argv = checked(calloc(first + count + 1, sizeof *child_argv));
    for (size_t i = 0; i < first; i++)
        child_argv[i] = (char *)wrapper[i];
    child_argv[first] = (char *)path;
    for (size_t i = 1; i < count; i++)
        child_argv[first + i] = (char *)argv[i];
    fflush(NULL); /* or the child would write our buffered output again */

    pid_t pid = fork();
    if (pid == -1) {
        perror("harness: fork");
        exit(EXIT_FAILURE);
    }
    if (pid == 0) {
        int output = out[1];
        if (options->output_file != NULL)
            output = open(options->output_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        /* A closed stdin or stdout: the program finds no descriptor 0 or 1 open at all. */
        bool input_set = options->close_stdin ? close(STDIN_FILENO) == 0 || errno == EBADF
                                              : dup2(input, STDIN_FILENO) != -1;
        bool output_set = options->close_stdout ? close(STDOUT_FILENO) == 0 || errno == EBADF
                                                : output != -1 && dup2(output, STDOUT_FILENO) != -1;
        if (!input_set || !output_set || dup2(err[1], STDERR_FILENO) == -1) {
            dprintf(err[1], "harness: cannot set up %s: %s\n", argv[0], strerror(errno));
            _exit(127);
        }
        execvp(child_argv[0], child_argv);
        dprintf(STDERR_FILENO, "harness: cannot run %s: %s\n", child_argv[0], strerror(errno));
        _exit(127);
    }

    free(child_argv);
    if (input != -1)
        close(input);
    if (out[1] != -1)
        close(out[1]);
    close(err[1]);
    struct process *process = checked(calloc(1, sizeof *process));
    const char *slash = strrchr(argv[0], '/');
    process->pid = pid;
    process->name = formatted("%s", slash ? slash + 1 : argv[0]);
    process->label = options->label ? formatted("%s", options->label) : process->name;
    process->stdout_fd = out[0];
    process->stderr_fd = err[0];
    process->stdin_fd = writer;
    process->echo = options->echo;
    process->discard_output = options->discard_output;
    processes[process_count++] = process;
    return process;
}

const char *program_tier = "";

struct process *start_program(const char *const argv[], const struct run_options *options) {
    const char *bin_dir = getenv("BIN_DIR");
    const char *const *wrapper = under_valgrind() ? VALGRIND_ARGV : NULL;
    if (options != NULL && options->wrapper != NULL)
        wrapper = options->wrapper;
    bool in_tier = program_tier[0] != '\0' && strchr(argv[0], '/') == NULL;
    return start(formatted("%s/%s%s%s", bin_dir ? bin_dir : "bin", in_tier ? program_tier : "",
                           in_tier ? "/" : "", argv[0]),
                 argv, options, wrapper);
}

struct process *start_command(const char *const argv[], const struct run_options *options) {
    return start(argv[0], argv, options, NULL);
}

/* ---- reading ---- */

/* Echo mode: print the complete lines not shown yet (and at end of file, the rest). */
static void echo_lines(const struct process *process, struct output *output, bool at_end) {
    for (;;) {
        const char *line = output->data + output->echoed;
        size_t left = output->length - output->echoed;
        const char *newline = memchr(line, '\n', left);
        if (newline == NULL && (!at_end || left == 0))
            break;
        int length = (int)(newline ? (size_t)(newline - line) : left);
        printf("%-*s| %.*s\n", LABEL_WIDTH, process->label, length, line);
        output->echoed += (size_t)length + (newline ? 1 : 0);
    }
    fflush(stdout);
}

/* One pipe we read: the process it comes from, its file descriptor, where its bytes go. */
struct pipe_end {
    struct process *process;
    int *fd;
    struct output *output;
};

/* Read what is there from one pipe; close it at end of file. */
static void read_pipe(struct pipe_end pipe) {
    struct output *output = pipe.output;
    int *fd = pipe.fd;
    if (output->capacity - output->length < READ_CHUNK + 1) {
        output->capacity = 2 * output->capacity + READ_CHUNK + 1;
        output->data = checked(realloc(output->data, output->capacity));
    }
    ssize_t bytes_read = read(*fd, output->data + output->length, READ_CHUNK);
    if (bytes_read == -1 && errno == EINTR)
        return;
    if (bytes_read > 0 && !(pipe.process->discard_output && output == &pipe.process->out))
        output->length += (size_t)bytes_read;
    output->data[output->length] = '\0';
    if (bytes_read <= 0) {
        close(*fd);
        *fd = -1;
    }
    if (pipe.process->echo)
        echo_lines(pipe.process, output, *fd == -1);
}

static bool pipes_open(const struct process *process) {
    return process->stdout_fd != -1 || process->stderr_fd != -1;
}

/* Wait up to timeout_ms for output from any of the processes and read it. */
static void read_some(struct process *const list[], size_t count, int timeout_ms) {
    struct pollfd fds[2 * MAX_AT_ONCE];
    struct pipe_end ends[2 * MAX_AT_ONCE];
    nfds_t used = 0;
    for (size_t i = 0; i < count; i++) {
        struct pipe_end both[2] = {{list[i], &list[i]->stdout_fd, &list[i]->out},
                                   {list[i], &list[i]->stderr_fd, &list[i]->err}};
        for (int j = 0; j < 2; j++) {
            if (*both[j].fd == -1)
                continue;
            fds[used] = (struct pollfd){.fd = *both[j].fd, .events = POLLIN};
            ends[used++] = both[j];
        }
    }
    if (poll(fds, used, timeout_ms) <= 0)
        return; /* time is up, or a signal: the caller checks its deadline */
    for (nfds_t i = 0; i < used; i++)
        if (fds[i].revents != 0)
            read_pipe(ends[i]);
}

void read_output(struct process *process, int timeout_ms) { read_some(&process, 1, timeout_ms); }

/* "tcp_server: ready on 127.0.0.1 port 43125" -> 43125; "...ready on /tmp/x" -> 0. */
static int find_ready_line(const struct process *server) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s: ready on ", server->name);
    for (const char *line = server->err.data; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            break; /* not complete yet */
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            const char *port = strstr(line, " port ");
            return port != NULL && port < end ? atoi(port + strlen(" port ")) : 0;
        }
        line = end + 1;
    }
    return NO_PORT;
}

int wait_for_ready_line(struct process *server, int timeout_ms) {
    long long deadline = now_ms() + timeout_ms;
    int port;
    while ((port = find_ready_line(server)) == NO_PORT && server->stderr_fd != -1 &&
           ms_until(deadline) > 0)
        read_some(&server, 1, ms_until(deadline));
    if (port == NO_PORT) {
        size_t length = server->err.length;
        if (length > 0 && server->err.data[length - 1] == '\n')
            length--; /* the message ends the line */
        fprintf(stderr, "harness: no ready line from %s (%s); its stderr: \"%.*s\"\n",
                server->label, server->stderr_fd == -1 ? "it closed stderr" : "timed out",
                (int)length, server->err.data ? server->err.data : "");
    }
    return port;
}

/* Read the process's output until `stream` (its stdout or stderr) contains text. */
static bool wait_for_text(struct process *process, bool on_stderr, const char *text,
                          int timeout_ms) {
    const struct output *output = on_stderr ? &process->err : &process->out;
    const int *fd = on_stderr ? &process->stderr_fd : &process->stdout_fd;
    long long deadline = now_ms() + timeout_ms;
    bool found;
    while (!(found = output->data && strstr(output->data, text)) && *fd != -1 &&
           ms_until(deadline) > 0)
        read_some(&process, 1, ms_until(deadline));
    if (!found)
        fprintf(stderr, "harness: %s did not print \"%s\" on %s within %d ms; its %s: \"%s\"\n",
                process->label, text, on_stderr ? "stderr" : "stdout", timeout_ms,
                on_stderr ? "stderr" : "stdout", output->data ? output->data : "");
    return found;
}

bool wait_for_output(struct process *process, const char *text, int timeout_ms) {
    return wait_for_text(process, false, text, timeout_ms);
}

bool wait_for_stderr(struct process *process, const char *text, int timeout_ms) {
    return wait_for_text(process, true, text, timeout_ms);
}

/* ---- writing to stdin ---- */

/* write() to the stdin pipe with SIGPIPE blocked: a child that has gone (or closed its stdin)
 * makes it fail with EPIPE instead of killing the test. A SIGPIPE raised meanwhile is taken
 * off again before the mask is restored. */
static ssize_t write_without_sigpipe(int fd, const char *data, size_t length) {
    sigset_t pipe_signal, old_mask;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_signal, &old_mask);
    ssize_t written = write(fd, data, length);
    int write_error = errno;
    sigset_t pending;
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) &&
        !sigismember(&old_mask, SIGPIPE)) {
        int taken;
        sigwait(&pipe_signal, &taken);
    }
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    errno = write_error;
    return written;
}

bool send_input(struct process *process, const char *text) {
    if (process->stdin_fd == -1) {
        fprintf(stderr, "harness: %s has no stdin pipe to write to (input_pipe, close_input)\n",
                process->label);
        return false;
    }
    long long deadline = now_ms() + INPUT_TIMEOUT_MS;
    size_t length = strlen(text), sent = 0;
    while (sent < length) {
        ssize_t written = write_without_sigpipe(process->stdin_fd, text + sent, length - sent);
        if (written > 0) {
            sent += (size_t)written;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fprintf(stderr, "harness: writing to the stdin of %s: %s\n", process->label,
                    strerror(errno));
            return false;
        }
        if (ms_until(deadline) == 0) {
            fprintf(stderr, "harness: %s read %zu of %zu bytes of input within %d ms\n",
                    process->label, sent, length, INPUT_TIMEOUT_MS);
            return false;
        }
        /* The pipe is full: wait for room, reading what the program prints meanwhile (it
         * may be blocked on a full stdout of its own). */
        struct pollfd fds[] = {{.fd = process->stdin_fd, .events = POLLOUT},
                               {.fd = process->stdout_fd, .events = POLLIN},
                               {.fd = process->stderr_fd, .events = POLLIN}};
        if (poll(fds, 3, ms_until(deadline)) <= 0)
            continue; /* a signal, or the deadline: checked above */
        if (fds[1].revents != 0)
            read_pipe((struct pipe_end){process, &process->stdout_fd, &process->out});
        if (fds[2].revents != 0)
            read_pipe((struct pipe_end){process, &process->stderr_fd, &process->err});
    }
    return true;
}

void close_input(struct process *process) {
    if (process->stdin_fd != -1)
        close(process->stdin_fd);
    process->stdin_fd = -1;
}

/* ---- ending ---- */

static bool try_reap(struct process *process, int options) {
    int status;
    pid_t result;
    do
        result = waitpid(process->pid, &status, options);
    while (result == -1 && errno == EINTR);
    if (result != process->pid)
        return false;
    process->reaped = true;
    process->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
}

bool is_running(struct process *process) {
    if (process->reaped)
        return false;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int result;
    do /* WNOWAIT: only look; the zombie stays for try_reap */
        result = waitid(P_PID, (id_t)process->pid, &info, WEXITED | WNOHANG | WNOWAIT);
    while (result == -1 && errno == EINTR);
    return result == 0 && info.si_pid == 0;
}

void wait_until_stopped(const struct process *process) {
    siginfo_t info;
    int result;
    do
        result = waitid(P_PID, (id_t)process->pid, &info, WSTOPPED | WEXITED | WNOWAIT);
    while (result == -1 && errno == EINTR);
    if (result == -1) {
        perror("harness: waitid");
        exit(EXIT_FAILURE);
    }
}

static void close_pipes(struct process *process) {
    close_input(process);
    if (process->stdout_fd != -1)
        close(process->stdout_fd);
    if (process->stderr_fd != -1)
        close(process->stderr_fd);
    process->stdout_fd = process->stderr_fd = -1;
}

void stop(struct process *process) {
    if (!process->reaped) {
        kill(process->pid, SIGKILL);
        try_reap(process, 0);
    }
    close_pipes(process);
}

void finish_all(struct process *const list[], size_t count, int timeout_ms) {
    if (count > MAX_AT_ONCE) {
        fprintf(stderr, "harness: finish_all takes at most %d processes\n", MAX_AT_ONCE);
        exit(EXIT_FAILURE);
    }
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        bool reading = false, running = false;
        for (size_t i = 0; i < count; i++) {
            reading |= pipes_open(list[i]);
            running |= !list[i]->reaped && !try_reap(list[i], WNOHANG);
        }
        if (!running && !reading)
            return;
        if (ms_until(deadline) == 0)
            break;
        if (reading)
            read_some(list, count, ms_until(deadline));
        else /* pipes closed but not exited yet: it is about to, check again soon */
            poll(NULL, 0, REAP_POLL_MS);
    }
    for (size_t i = 0; i < count; i++) {
        if (list[i]->reaped && !pipes_open(list[i]))
            continue;
        fprintf(stderr, "harness: %s still running after %d ms: killed\n", list[i]->label,
                timeout_ms);
        stop(list[i]);
        list[i]->status = TIMED_OUT;
    }
}

int finish(struct process *process, int timeout_ms) {
    finish_all(&process, 1, timeout_ms);
    return process->status;
}

/* ---- cleaning up ---- */

static void remove_temp_dir(void) {
    if (temp_dir[0] == '\0')
        return;
    DIR *dir = opendir(temp_dir);
    for (struct dirent *entry; dir != NULL && (entry = readdir(dir)) != NULL;) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
            char path[sizeof temp_dir + 256 + 1];
            snprintf(path, sizeof path, "%s/%s", temp_dir, entry->d_name);
            unlink(path);
        }
    }
    if (dir != NULL)
        closedir(dir);
    rmdir(temp_dir);
    temp_dir[0] = '\0';
}

void clean_up(void) {
    for (size_t i = 0; i < process_count; i++) {
        stop(processes[i]);
        free(processes[i]->out.data);
        free(processes[i]->err.data);
        free(processes[i]);
    }
    process_count = 0;
    remove_temp_dir();
    for (size_t i = 0; i < string_count; i++)
        free(strings[i]);
    free(strings);
    strings = NULL;
    string_count = 0;
}

long peak_memory_kb(pid_t pid) {
    FILE *status = fopen(formatted("/proc/%d/status", (int)pid), "r");
    if (status == NULL)
        return -1;
    char line[256];
    long peak = -1;
    while (peak == -1 && fgets(line, sizeof line, status) != NULL)
        if (sscanf(line, "VmHWM: %ld kB", &peak) != 1)
            peak = -1;
    fclose(status);
    return peak;
}

const char *c_compiler(void) {
    const char *cc = getenv("CC");
    return cc != NULL && cc[0] != '\0' ? cc : "cc";
}

bool on_path(const char *tool) {
    const char *path = getenv("PATH");
    for (const char *dir = path; dir != NULL && *dir != '\0';) {
        const char *end = strchr(dir, ':');
        size_t length = end ? (size_t)(end - dir) : strlen(dir);
        if (access(formatted("%.*s/%s", (int)length, dir, tool), X_OK) == 0)
            return true;
        dir = end ? end + 1 : NULL;
    }
    return false;
}

bool tools_required(void) {
    const char *required = getenv("REQUIRE_TOOLS");
    return required != NULL && strcmp(required, "1") == 0;
}

bool have_tool(const char *tool, const char *package) {
    if (on_path(tool))
        return true;
    fprintf(stderr, "this test needs %s: apt-get install %s\n", tool, package);
    return false;
}
