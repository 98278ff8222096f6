/* harness.h: run the example programs from a test or the demo, and read what they print.
 * Every wait has a deadline: a program that hangs fails its test instead of hanging CI.
 * Programs come from the directory in $BIN_DIR (default "bin"); run from the repository root.
 * Children stay in our process group, so Ctrl-C stops them with us. Plain C11 + POSIX. */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    READY_TIMEOUT_MS = 10 * 1000,  /* how long a server may take to print its ready line */
    FINISH_TIMEOUT_MS = 10 * 1000, /* how long a small conversation may take to end */
    INPUT_TIMEOUT_MS = 10 * 1000,  /* how long a program may take to read what send_input sent */
    NO_PORT = -1,                  /* wait_for_ready_line: no ready line came */
    TIMED_OUT = -1,                /* finish: the process was killed at the deadline */
    VALGRIND_SLOWDOWN = 10,        /* deadlines are this many times longer under valgrind */
};

/* An argument list for start_program: ARGV("tcp_client", "-p", port). */
#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Bytes read from one of a program's streams; data always has a '\0' after length bytes. */
struct output {
    char *data;
    size_t length;
    size_t capacity;
    size_t echoed; /* echo mode: bytes already shown */
};

struct process {
    pid_t pid;
    const char *name;  /* program name: "tcp_client" */
    const char *label; /* name shown in messages and echoed lines */
    int stdout_fd;     /* read ends of the pipes (or the terminal's master side); -1 once at
                          end of file (or when stdout goes to a file) */
    int stderr_fd;
    int stdin_fd;      /* write end of its stdin pipe (run_options.input_pipe), else -1 */
    struct output out; /* everything printed on stdout so far (unless sent to a file) */
    struct output err; /* everything printed on stderr so far */
    bool echo;
    bool discard_output; /* read stdout and throw it away (run_options.discard_output) */
    bool reaped;
    int status; /* once reaped: exit code, 128 + signal, or TIMED_OUT */
};

struct run_options {
    const char *input;          /* text for stdin (stdin is /dev/null when no input is given) */
    const char *input_file;     /* or: stdin read from this file (big payloads) */
    const char *output_file;    /* stdout written to this file instead of memory */
    const char *label;          /* shown instead of the program name */
    bool echo;                  /* print each line as it comes: "label         | line" */
    const char *const *wrapper; /* run the program under this command (NULL-terminated argv):
                                   {"strace", "-f", ..., NULL}; replaces VALGRIND=1 */
    bool terminal;              /* stdout is a pseudo-terminal (isatty is true there), read
                                   like a pipe; "\n" stays "\n" (no output processing).
                                   Not together with output_file. */
    bool discard_output;        /* stdout is a pipe we read as it comes, and throw away: a
                                   reader that keeps up, as `program | cat >/dev/null` */
    bool input_pipe;            /* stdin is a pipe the caller writes to as it goes, with
                                   send_input, until close_input. Not with input or input_file. */
    bool nonblocking_input;     /* with input_pipe: the program's end of it is non-blocking
                                   (O_NONBLOCK), as a shell may leave a stdin that it shares */
    bool close_stdin;           /* start it with stdin closed (`program <&-`): no input at all */
    bool close_stdout;          /* start it with stdout closed (`program >&-`): no output_file,
                                   terminal or discard_output */
};

/* Which programs start_program runs: "" (the default) for the tutorial's, $BIN_DIR/NAME, or
 * "hardened" for $BIN_DIR/hardened/NAME. A name with a '/' in it ("hardened/tcp_server") is
 * taken as it is, whatever the tier. */
extern const char *program_tier;

/* Start $BIN_DIR/[program_tier/]argv[0] with argv; options may be NULL. Exits the caller if fork
 * fails. With VALGRIND=1 in the environment (make check) it runs under valgrind's memcheck. */
struct process *start_program(const char *const argv[], const struct run_options *options);

/* Whether make check runs the programs under valgrind (VALGRIND=1). */
bool under_valgrind(void);

/* A deadline in milliseconds, stretched VALGRIND_SLOWDOWN times when the programs run under
 * valgrind. */
int slow(int ms);

/* Same, but look argv[0] up on PATH (for tools like nc). */
struct process *start_command(const char *const argv[], const struct run_options *options);

/* Read the server's stderr until "<name>: ready on <addr> port <N>" and return N, or 0 for
 * "<name>: ready on <path>" (UNIX socket). NO_PORT (with a message) if it never comes. */
int wait_for_ready_line(struct process *server, int timeout_ms);

/* Wait up to timeout_ms for the process to print something, on stdout or stderr, and read it
 * into out and err. */
void read_output(struct process *process, int timeout_ms);

/* Read the process's stdout until it contains text. False (with a message) if it never does. */
bool wait_for_output(struct process *process, const char *text, int timeout_ms);

/* Read the process's stderr until it contains text. False (with a message) if it never does. */
bool wait_for_stderr(struct process *process, const char *text, int timeout_ms);

/* Write text to the process's stdin pipe (run_options.input_pipe), reading its output
 * meanwhile so that neither side blocks the other. False (with a message) if it takes not all
 * of it within INPUT_TIMEOUT_MS, or has closed its stdin. Like typing a line: send_input(p,
 * "first line\n"). */
bool send_input(struct process *process, const char *text);

/* Close the process's stdin pipe: it reads end of file (Ctrl-D at a terminal). finish leaves
 * it open (a program that waits for the end of its input runs into the deadline); stop and
 * clean_up close it. */
void close_input(struct process *process);

/* Read all the rest of its output, wait for it to exit and return its status (see
 * struct process). At the deadline kill it, say so on stderr and return TIMED_OUT. */
int finish(struct process *process, int timeout_ms);

/* finish() for up to 16 processes at once, reading whatever any of them prints as it comes. */
void finish_all(struct process *const processes[], size_t count, int timeout_ms);

/* Whether the process is still running: it has not exited, nor been killed. It stays
 * unreaped either way, for finish to collect its status. */
bool is_running(struct process *process);

/* Wait until the process has stopped (SIGSTOP) or exited; its status stays for finish. */
void wait_until_stopped(const struct process *process);

/* Kill the process now (SIGKILL) and reap it, when its end is not part of the test. */
void stop(struct process *process);

/* A path in a fresh temporary directory, which clean_up removes with everything in it. */
const char *temp_path(const char *name);

/* printf into a string that lives until clean_up: formatted("%d", port). */
const char *formatted(const char *format, ...);

/* Milliseconds on a clock that only goes forward, and how many are left until deadline. */
long long now_ms(void);
int ms_until(long long deadline);

/* Peak resident memory of a running process in KiB (VmHWM, Linux), or -1 without /proc. */
long peak_memory_kb(pid_t pid);

/* The C compiler a test builds a program with: $CC, as make test passes it, or else cc. */
const char *c_compiler(void);

/* Whether tool is an executable in a directory of PATH. */
bool on_path(const char *tool);

/* Whether a missing tool fails a test rather than skipping it: REQUIRE_TOOLS=1, as make check
 * sets, so that nothing is left unchecked. */
bool tools_required(void);

/* Whether tool is on PATH; if not, say which Debian package brings it. */
bool have_tool(const char *tool, const char *package);

/* In a cmocka test that needs a tool (strace, nc, socat): skip the test when it is missing,
 * but fail it under REQUIRE_TOOLS=1, as make check sets, so that nothing is left unchecked. */
#define NEED_TOOL(tool, package)           \
    do {                                   \
        if (!have_tool(tool, package)) {   \
            if (tools_required())          \
                _fail(__FILE__, __LINE__); \
            skip();                        \
        }                                  \
    } while (0)

/* Kill and reap every process still running, free them all, remove the temporary directory. */
void clean_up(void);

#endif
