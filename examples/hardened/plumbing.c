/* plumbing.c: what the hardened programs share, written once. Contracts: plumbing.h. */
#define _POSIX_C_SOURCE 200809L

#include "plumbing.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

enum { LINE_SIZE = 512 };  /* the longest line of the log; PIPE_BUF is at least 512 */
enum { BACKOFF_MS = 100 }; /* out of descriptors with none in reserve: the pause between tries */

/* ---- errors ---- */

const char *program_name = "example";

_Noreturn void fail(const char *what, const char *why) {
    fflush(stdout);
    fprintf(stderr, "%s: %s: %s\n", program_name, what, why);
    exit(EXIT_FAILURE);
}

_Noreturn void die(const char *what) { fail(what, strerror(errno)); }

_Noreturn void usage_error(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "%s: ", program_name);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
    exit(EXIT_USAGE);
}

/* ---- surroundings ---- */

/* A send to a peer that has closed raises SIGPIPE, whose default action kills the process
 * without a word. Ignored, the send fails with EPIPE instead, and we report it; the same for
 * a write to a closed pipe on stdout. (MSG_NOSIGNAL does it per call, and POSIX.1-2008 has it,
 * but macOS does not; SO_NOSIGPIPE per socket is the BSDs' and macOS's, not Linux's: SIG_IGN
 * works everywhere.)
 * Descriptors 0, 1 and 2: started with one of them closed (`program >&-`), we would get its
 * number for our next socket, and print into the connection. So /dev/null fills the gap,
 * opened the wrong way round: any read or write there fails (EBADF), and the program says so.
 * Without /dev/null we cannot go on safely, nor tell. */
void set_up_program(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    program_name = slash ? slash + 1 : argv0;
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
        if (fcntl(fd, F_GETFD) == -1 &&
            open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY) != fd)
            exit(EXIT_FAILURE);
    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, NULL) == -1)
        die("sigaction");
    setvbuf(stdout, NULL, _IOLBF, 0);
}

/* ---- options ---- */

/* A whole number from 0 to max given on the command line, or a usage error naming `what`. */
static long parse_number(const char *text, const char *what, long max) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || value > max)
        usage_error("bad %s '%s': not a number from 0 to %ld", what, text, max);
    return value;
}

/* A numeric address says its own family: -H ::1 is IPv6 without -6, -H 127.0.0.1 IPv4.
 * Returns the family to use; a usage error when it contradicts the -4 or -6 given. */
static int family_for(const char *host, int family, int family_given) {
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *found;
    if (getaddrinfo(host, NULL, &hints, &found) != 0)
        return family; /* a name: looked up later, in the family asked for */
    int numeric = found->ai_family == AF_INET6 ? AF_INET6 : AF_INET;
    freeaddrinfo(found);
    if (numeric != family && family_given)
        usage_error("%s is an %s address: use %s", host, numeric == AF_INET6 ? "IPv6" : "IPv4",
                    numeric == AF_INET6 ? "-6" : "-4");
    return numeric;
}

struct options parse_options(int argc, char **argv, const struct command_line *command_line) {
    struct options options = command_line->defaults;
    char letters[sizeof ":h46u:H:p:m:n:t:e"];
    snprintf(letters, sizeof letters, ":h46u:H:p:%s", command_line->letters);
    int host_or_port_given = 0, family_given = 0, option;
    opterr = 0; /* we print our own one-line errors */
    while ((option = getopt(argc, argv, letters)) != -1) {
        switch (option) {
        case 'h': fputs(command_line->usage, stdout); exit(EXIT_SUCCESS);
        case '4':
        case '6':
            options.family = option == '4' ? AF_INET : AF_INET6;
            family_given = 1;
            break;
        case 'u':
            options.family = AF_UNIX;
            options.path = optarg;
            break;
        case 'H':
            options.host = optarg;
            host_or_port_given = 1;
            break;
        case 'p':
            if (parse_number(optarg, "port", 65535) == 0 && command_line->role == CLIENT)
                usage_error("bad port '0': a destination needs a port from 1 to 65535");
            options.port = optarg;
            host_or_port_given = 1;
            break;
        case 'm': options.message = optarg; break;
        case 'n': options.count = parse_number(optarg, "count", MAX_COUNT); break;
        case 't': options.timeout = parse_number(optarg, "timeout", MAX_TIMEOUT); break;
        case 'e': options.echo_mode = 1; break;
        case ':': usage_error("option -%c needs an argument", optopt);
        default:
            /* --help, the long form people type first, reads as the unknown option '-' of an
             * element getopt is still in; as the argument of an option (-m --help) it is text. */
            if (optopt == '-' && optind < argc && strcmp(argv[optind], "--help") == 0) {
                fputs(command_line->usage, stdout);
                exit(EXIT_SUCCESS);
            }
            usage_error("unknown option -%c (try -h)", optopt);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s' (try -h)", argv[optind]);
    if (options.family == AF_UNIX && host_or_port_given)
        usage_error("-u PATH takes no -H or -p");
    if (options.path != NULL && family_given) /* else the last would win, unsaid */
        usage_error("-u PATH takes no -4 or -6");
    if (options.path != NULL && options.path[0] == '\0')
        usage_error("-u needs a path (an empty one is no file)");
    if (options.host != NULL && options.host[0] == '\0')
        usage_error("-H needs a host");
    if (options.message != NULL && strcmp(options.message, "-") == 0 &&
        (fcntl(STDIN_FILENO, F_GETFL) & O_ACCMODE) == O_WRONLY)
        fail("stdin", strerror(EBADF)); /* it was closed: see set_up_program */
    size_t room = MAX_PATH_LENGTH - command_line->path_room_needed;
    const char *path = options.family == AF_UNIX && options.path != NULL ? options.path : "";
    if (strlen(path) > room && command_line->path_room_needed > 0)
        usage_error("socket path too long (at most %zu bytes: we add .PID to it for our own "
                    "socket): %s",
                    room, path);
    if (strlen(path) > room)
        usage_error("socket path too long (at most %zu bytes): %s", room, path);
    if (options.family != AF_UNIX)
        options.family = family_for(options.host, options.family, family_given);
    return options;
}

/* ---- addresses ---- */

/* The address named by the options, for a socket of this type: a UNIX path, or a host and
 * port looked up by getaddrinfo. "localhost" means the loopback of the family: /etc/hosts
 * may lack ::1. */
socklen_t make_address(const struct options *options, int type, struct sockaddr_storage *address) {
    memset(address, 0, sizeof *address);
    if (options->family == AF_UNIX) {
        struct sockaddr_un *local = (struct sockaddr_un *)address;
        local->sun_family = AF_UNIX;
        strcpy(local->sun_path, options->path); /* parse_options checked its length */
        return sizeof *local;
    }
    const char *host = options->host;
    if (strcmp(host, "localhost") == 0)
        host = options->family == AF_INET ? "127.0.0.1" : "::1";
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = type};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    socklen_t length = found->ai_addrlen;
    memcpy(address, found->ai_addr, length);
    freeaddrinfo(found);
    return length;
}

/* One line on stderr once the socket is bound: with -p 0 only we know the port. */
void print_ready_line(int sock, const struct options *options) {
    flush_log(); /* "listening" first */
    struct sockaddr_storage bound;
    socklen_t length = sizeof bound;
    /* NI_NUMERICHOST: a numeric address fits INET6_ADDRSTRLEN, and a link-local one names its
     * interface too, "fe80::1%eth0": IF_NAMESIZE more (NI_MAXHOST is not POSIX). */
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE], port[sizeof "65535"];
    if (options->family == AF_UNIX) {
        fprintf(stderr, "%s: ready on %s\n", program_name, options->path);
        return;
    }
    if (getsockname(sock, (struct sockaddr *)&bound, &length) == -1)
        die("getsockname");
    int error = getnameinfo((struct sockaddr *)&bound, length, host, sizeof host, port, sizeof port,
                            NI_NUMERICHOST | NI_NUMERICSERV);
    if (error != 0)
        fail("getnameinfo", gai_strerror(error));
    fprintf(stderr, "%s: ready on %s port %s\n", program_name, host, port);
}

/* Our UNIX socket file, if we made one: it outlives the socket, so we remove it at exit. */
static const char *socket_file;

void remove_socket_file(void) {
    if (socket_file != NULL)
        unlink(socket_file);
}

void own_socket_file(const char *path) {
    if (socket_file == NULL)
        atexit(remove_socket_file);
    socket_file = path;
}

/* Free PATH for bind if it holds a socket file that an earlier run left behind. Never delete
 * anything else: not a file of another kind, nor the socket of a program that still runs
 * there. A datagram socket's connect tells, without disturbing anyone (unix(7)): it succeeds
 * on a live datagram socket (no data moves), fails with EPROTOTYPE on a live stream
 * listener, and with ECONNREFUSED when nobody has the path bound. (A stream probe would be
 * accepted by a live stream server, as a client.) The file becomes ours only once our bind
 * has succeeded: own_socket_file. */
void claim_socket_file(const char *path) {
    struct stat status;
    if (lstat(path, &status) == 0) {
        if (!S_ISSOCK(status.st_mode))
            fail(path, "exists and is not a socket");
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strcpy(address.sun_path, path); /* parse_options checked its length */
        int probe = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (probe == -1)
            die("socket");
        int answered = connect(probe, (struct sockaddr *)&address, sizeof address) == 0;
        int error = errno;
        close(probe);
        if (answered || error == EPROTOTYPE)
            fail("bind", strerror(EADDRINUSE)); /* a live server: as an IP port in use */
        if (error != ECONNREFUSED)
            fail(path, strerror(error));
        if (unlink(path) == -1)
            die(path);
    }
}

/* connect, surviving EINTR. The handshake goes on after an interruption, so the next call
 * may wait again (Linux), answer EISCONN (done) or EALREADY (still going: wait for it to
 * finish, then read its result from SO_ERROR), depending on the system. */
static int connect_retry(int sock, const struct sockaddr *address, socklen_t length) {
    int result;
    RETRY_ON_EINTR(result, connect(sock, address, length));
    if (result == 0 || errno == EISCONN)
        return 0;
    if (errno != EALREADY)
        return -1;
    struct pollfd writable = {.fd = sock, .events = POLLOUT};
    RETRY_ON_EINTR(result, poll(&writable, 1, -1));
    int error = 0;
    socklen_t error_length = sizeof error;
    if (result == -1 || getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &error_length) == -1)
        return -1;
    errno = error;
    return error == 0 ? 0 : -1;
}

/* The connection, until main has closed it. If we exit before, on an error or a signal, it
 * is aborted on the way out, so that the peer sees a failure, not the clean end of a message
 * that was cut short. (A descriptor number alone would not do: once closed, the number may
 * be another file's.) */
static volatile sig_atomic_t connection = -1;

/* Close a connection with a reset (RST) instead of the end of the stream (FIN): linger 0
 * makes close throw away what is unsent and tell the peer that something went wrong. (If
 * setsockopt fails, the close still ends the connection, only not as a failure.) */
void abort_connection(int sock) {
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(sock, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    if (sock == connection)
        connection = -1;
    close(sock);
}

static void abort_unclosed_connection(void) {
    if (connection != -1)
        abort_connection(connection);
}

void track_connection(int sock) {
    static int registered;
    if (!registered && atexit(abort_unclosed_connection) == 0)
        registered = 1;
    connection = sock;
}

void close_connection(int sock) {
    if (sock == connection)
        connection = -1;
    close(sock);
}

/* Create a socket and connect it to the server. A host name may stand for several
 * addresses: try each in turn until one accepts. Exits with the last error if none does. */
int connect_to_server(const struct options *options) {
    if (options->family == AF_UNIX) {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        strcpy(address.sun_path, options->path); /* parse_options checked its length */
        int sock = socket(AF_UNIX, SOCK_STREAM, 0);
        if (sock == -1)
            die("socket");
        if (connect_retry(sock, (struct sockaddr *)&address, sizeof address) == -1)
            die("connect");
        track_connection(sock);
        return sock;
    }
    /* "localhost" means the loopback of the family: /etc/hosts may lack ::1. */
    const char *host = options->host;
    if (strcmp(host, "localhost") == 0)
        host = options->family == AF_INET ? "127.0.0.1" : "::1";
    struct addrinfo hints = {.ai_family = options->family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found;
    int error = getaddrinfo(host, options->port, &hints, &found);
    if (error != 0)
        fail(options->host, error == EAI_SYSTEM ? strerror(errno) : gai_strerror(error));
    int sock = -1;
    for (struct addrinfo *candidate = found; candidate && sock == -1;
         candidate = candidate->ai_next) {
        sock = socket(candidate->ai_family, candidate->ai_socktype, candidate->ai_protocol);
        if (sock == -1)
            continue;
        if (connect_retry(sock, candidate->ai_addr, candidate->ai_addrlen) == -1) {
            int connect_error = errno;
            close(sock);
            sock = -1;
            errno = connect_error;
        }
    }
    freeaddrinfo(found);
    if (sock == -1)
        die("connect");
    track_connection(sock);
    return sock;
}

void make_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
        die("fcntl O_NONBLOCK");
}

/* ---- messages ---- */

/* Read all of `input` into buffer. Returns its size, or -1 (errno EMSGSIZE when it fills
 * the buffer: pass one byte more than the longest you accept). A non-blocking input (EAGAIN)
 * is waited for, not an error. */
ssize_t read_whole(int input, char *buffer, size_t size) {
    size_t filled = 0;
    for (;;) {
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, read(input, buffer + filled, size - filled));
        if (bytes_read == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd readable = {.fd = input, .events = POLLIN};
            if (poll(&readable, 1, -1) == -1 && errno != EINTR)
                return -1;
            continue;
        }
        if (bytes_read <= 0)
            return bytes_read == 0 ? (ssize_t)filled : -1;
        filled += (size_t)bytes_read;
        if (filled == size) {
            errno = EMSGSIZE;
            return -1;
        }
    }
}

/* The message to send, whole: the -m text, or all of stdin for "-m -". It must fit in
 * size - 1 bytes; if not, fail with `too_long` ("message too long for one datagram"). */
size_t load_message(const char *text, char *message, size_t size, const char *too_long) {
    ssize_t length = -1;
    if (strcmp(text, "-") == 0) {
        length = read_whole(STDIN_FILENO, message, size);
        if (length == -1 && errno != EMSGSIZE)
            die("stdin");
    } else if (strlen(text) < size) {
        length = (ssize_t)strlen(text);
        memcpy(message, text, (size_t)length);
    }
    if (length == -1 && strcmp(text, "-") != 0) /* -m TEXT: a bad command line */
        usage_error("%s: at most %zu bytes", too_long, size - 1);
    if (length == -1) {
        char limit[sizeof "at most 18446744073709551615 bytes"];
        snprintf(limit, sizeof limit, "at most %zu bytes", size - 1);
        fail(too_long, limit);
    }
    return (size_t)length;
}

/* The next piece of the message and its length, or 0 when all of it is sent: the -m text
 * in one piece, or stdin for "-m -" one read at a time, so that any size streams through.
 * A non-blocking stdin (EAGAIN) is waited for. If stdin fails, the message is cut short: the
 * connection `sock` is aborted, so that its peer sees a failure and not a clean end. */
size_t next_piece(struct message *message, int sock, const char **piece) {
    if (message->text == NULL)
        return 0;
    if (strcmp(message->text, "-") != 0) {
        *piece = message->text;
        message->text = NULL;
        return strlen(*piece);
    }
    for (;;) {
        ssize_t bytes_read;
        RETRY_ON_EINTR(bytes_read, read(STDIN_FILENO, message->buffer, sizeof message->buffer));
        if (bytes_read >= 0) {
            *piece = message->buffer;
            return (size_t)bytes_read;
        }
        struct pollfd readable = {.fd = STDIN_FILENO, .events = POLLIN};
        if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
            (poll(&readable, 1, -1) == -1 && errno != EINTR)) {
            int error = errno;
            abort_connection(sock);
            fail("stdin", strerror(error));
        }
    }
}

/* Write all of bytes to stdout, past stdio. A stdout that another program shares with us
 * may be non-blocking (O_NONBLOCK is a property of the open file, not of our descriptor:
 * fcntl(2)): then a full pipe fails the write with EAGAIN, and we wait for room instead of
 * losing data. */
static void write_all_to_stdout(const char *bytes, size_t length) {
    while (length > 0) {
        ssize_t written = write(STDOUT_FILENO, bytes, length);
        if (written == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd room = {.fd = STDOUT_FILENO, .events = POLLOUT};
            if (poll(&room, 1, -1) == -1 && errno != EINTR)
                die("stdout");
            continue;
        }
        if (written == -1 && errno != EINTR)
            die("stdout");
        if (written > 0) {
            bytes += written;
            length -= (size_t)written;
        }
    }
}

void print_text(const char *text) {
    if (fflush(stdout) == EOF) /* anything printf left in stdio's buffer goes first */
        die("stdout");
    write_all_to_stdout(text, strlen(text));
}

/* Bytes from the network, on stdout. On a terminal, each byte that is not printable text
 * shows as \xNN: a peer's escape sequences must not reach the terminal raw. */
void print_received(const char *data, size_t length) {
    if (fflush(stdout) == EOF)
        die("stdout");
    if (!isatty(STDOUT_FILENO)) {
        write_all_to_stdout(data, length);
        return;
    }
    enum { CHUNK = 256 };  /* bytes shown per write */
    char shown[4 * CHUNK]; /* "\xNN" for each of them at most */
    for (size_t start = 0; start < length; start += CHUNK) {
        size_t used = 0;
        for (size_t i = start; i < length && i < start + CHUNK; i++) {
            unsigned char byte = (unsigned char)data[i];
            if (isprint(byte) || byte == '\n' || byte == '\t')
                shown[used++] = (char)byte;
            else
                used += (size_t)snprintf(shown + used, sizeof shown - used, "\\x%02x", byte);
        }
        write_all_to_stdout(shown, used);
    }
}

/* Milliseconds on a clock that only goes forward (the wall clock may be set back). */
long long monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* ---- signals ---- */

/* The signals that ask us to stop (Ctrl-C, kill, a closed terminal, Ctrl-\), and their names. */
static const int STOP_SIGNALS[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static const char *signal_name(int signal_number) {
    return signal_number == SIGINT    ? "SIGINT"
           : signal_number == SIGTERM ? "SIGTERM"
           : signal_number == SIGHUP  ? "SIGHUP"
                                      : "SIGQUIT";
}

/* A stop signal in a one-shot program: abort a connection cut short (its peer must not take
 * half a message for a whole one), remove our file, say why we stop, and die of that same
 * signal so that whoever started us sees it. Only async-signal-safe calls in here (signal-
 * safety(7)), and no write that could wait: stderr may be a pipe that nobody reads, so write
 * only when poll says it has room (a few bytes then go in at once). SA_RESETHAND has put back
 * the default action, so the signal raised again ends us once the handler returns. */
static void stop_at_once(int signal_number) {
    const char *name = signal_name(signal_number);
    if (connection != -1)
        abort_connection(connection);
    remove_socket_file();
    struct pollfd room = {.fd = STDERR_FILENO, .events = POLLOUT};
    int said = poll(&room, 1, 0) == 1 &&
               write(STDERR_FILENO, program_name, strlen(program_name)) != -1 &&
               poll(&room, 1, 0) == 1 && write(STDERR_FILENO, ": stopped by ", 13) != -1 &&
               poll(&room, 1, 0) == 1 && write(STDERR_FILENO, name, strlen(name)) != -1 &&
               poll(&room, 1, 0) == 1 && write(STDERR_FILENO, "\n", 1) != -1;
    (void)said; /* if stderr is full or gone, there is no one to tell */
    raise(signal_number);
}

/* Install handler for the stop signals with sigaction, whose behaviour POSIX fixes (signal's
 * varies: glibc under _POSIX_C_SOURCE resets the handler and does not restart calls). While
 * one runs, the others wait. No SA_RESTART: a wait that a signal interrupts returns EINTR. */
static void handle_stop_signals(void (*handler)(int), int flags) {
    struct sigaction action = {.sa_handler = handler, .sa_flags = flags};
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0]; i++)
        sigaddset(&action.sa_mask, STOP_SIGNALS[i]);
    for (size_t i = 0; i < sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0]; i++)
        if (sigaction(STOP_SIGNALS[i], &action, NULL) == -1)
            die("sigaction");
}

void stop_on_signal(void) { handle_stop_signals(stop_at_once, SA_RESETHAND); }

/* SIGCONT's handler does nothing: its only use is that it exists, without SA_RESTART, so
 * that a wait stopped by Ctrl-Z returns EINTR once continued (signal(7)). */
static void do_nothing(int signal_number) { (void)signal_number; }

void interrupt_on_continue(void) {
    struct sigaction action = {.sa_handler = do_nothing};
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGCONT, &action, NULL) == -1)
        die("sigaction");
}

/* In an event loop the handler only notes the signal and writes a byte into wake_pipe: the
 * loop watches the pipe like a socket, so it wakes at once even when the signal came just
 * before it began to wait, and calls stop_now. (Writing our lines, or anything that may wait,
 * is no job for a handler: it may have interrupted say.) */
static volatile sig_atomic_t stop_signal; /* one of STOP_SIGNALS, once one came */
static int wake_pipe[2];

/* write may set errno, which the code we interrupted may be about to read: so we put it back
 * (errno is thread-local, safe here whatever clang-tidy's list of safe calls says). */
static void note_stop_signal(int signal_number) {
    int saved_errno = errno; /* NOLINT(bugprone-signal-handler) */
    stop_signal = signal_number;
    ssize_t written = write(wake_pipe[1], "", 1);
    (void)written;       /* the pipe was full: a byte waits already */
    errno = saved_errno; /* NOLINT(bugprone-signal-handler) */
}

/* Both ends are non-blocking: a full pipe already holds a wake-up, and a read of an empty one
 * must not wait. */
int catch_stop_signals(void) {
    if (pipe(wake_pipe) == -1)
        die("pipe");
    make_nonblocking(wake_pipe[0]);
    make_nonblocking(wake_pipe[1]);
    handle_stop_signals(note_stop_signal, 0);
    return wake_pipe[0];
}

/* Our last line goes out if stderr takes it now (never waiting for a reader), the socket file
 * goes, and we die of that same signal so that whoever started us sees it. */
_Noreturn void stop_now(void) {
    say(stderr, "stopped by %s", signal_name(stop_signal));
    remove_socket_file();
    struct sigaction default_action = {.sa_handler = SIG_DFL};
    sigemptyset(&default_action.sa_mask);
    sigaction(stop_signal, &default_action, NULL);
    raise(stop_signal);
    /* cppcheck-suppress unreachableCode ; with the default action back, raise ends us: this
     * line only tells the compiler so */
    _Exit(EXIT_FAILURE);
}

/* ---- the log of the event servers ----
 * A server must never wait for whoever reads its log: a pipe that nobody empties would stop
 * it serving every client. So the lines of a turn of the event loop gather in a buffer of at
 * most PIPE_BUF bytes, and flush_log writes them in one go if poll says stdout has room: a
 * write of at most PIPE_BUF bytes then goes into a pipe whole, without waiting and without
 * mixing with anyone else's (write(2), pipe(7)). Lines that find no room are dropped and
 * counted, and the count is said once lines go out again. A line for stderr (rare: errors)
 * goes out at once, after those of stdout. (A terminal may still make a write wait:
 * docs/hardened.md.) */

struct log {
    size_t length;     /* bytes of stdout lines waiting in data */
    long lines;        /* how many lines they are */
    long dropped;      /* stdout lines that found no room since the last report */
    long err_dropped;  /* the same for stderr */
    int said_dropping; /* and we have said so on stderr */
    char data[PIPE_BUF];
};
static struct log log_buffer;

/* Write bytes whole to fd if it takes them now: 1 if written, 0 if there was no room. A write
 * error on stdout ends the server, as `server | head -1` ends a filter; on stderr there is no
 * one left to tell. */
static int write_now(int fd, const char *bytes, size_t length) {
    struct pollfd room = {.fd = fd, .events = POLLOUT};
    int ready;
    RETRY_ON_EINTR(ready, poll(&room, 1, 0));
    if (ready != 1)
        return 0;
    ssize_t written;
    RETRY_ON_EINTR(written, write(fd, bytes, length));
    if (written == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0; /* a non-blocking descriptor that another program shares with us */
    if (written == -1 && fd == STDOUT_FILENO)
        die("stdout");
    /* A pipe takes such a write whole or not at all; a terminal that another program made
     * non-blocking may take part of it. The rest then goes as it is taken, for a second at
     * most, so that no line is cut in two. */
    long long give_up_ms = monotonic_ms() + 1000;
    while (written > 0 && (size_t)written < length && monotonic_ms() < give_up_ms) {
        RETRY_ON_EINTR(ready, poll(&room, 1, 10));
        ssize_t more = ready == 1 ? write(fd, bytes + written, length - (size_t)written) : 0;
        written += more > 0 ? more : 0;
    }
    return 1;
}

/* Format one line into line: "program: " first if with_name, the text cut to fit, '\n'. */
static size_t format_line(char line[LINE_SIZE], int with_name, const char *format,
                          va_list arguments) {
    size_t length = 0, last = LINE_SIZE - 2; /* the last place for text: '\n' comes after */
    if (with_name) {
        int prefix = snprintf(line, LINE_SIZE, "%s: ", program_name);
        length = prefix < 0 ? 0 : (size_t)prefix < last ? (size_t)prefix : last;
    }
    int text = vsnprintf(line + length, LINE_SIZE - 1 - length, format, arguments);
    length += text < 0 ? 0 : (size_t)text < last - length ? (size_t)text : last - length;
    line[length++] = '\n';
    return length;
}

/* One line on stderr, at once if it takes it; else one more dropped. */
static void write_error_line(const char *format, ...) {
    char line[LINE_SIZE];
    va_list arguments;
    va_start(arguments, format);
    size_t length = format_line(line, 1, format, arguments);
    va_end(arguments);
    if (!write_now(STDERR_FILENO, line, length))
        log_buffer.err_dropped++;
}

/* Say how many lines were dropped since the last time, if any: every line was either
 * written or counted. */
static void say_dropped_counts(void) {
    long dropped = log_buffer.dropped, err_dropped = log_buffer.err_dropped;
    log_buffer.dropped = log_buffer.err_dropped = 0;
    log_buffer.said_dropping = 0;
    if (dropped > 0)
        write_error_line("%ld lines for stdout dropped: it was not read in time", dropped);
    if (err_dropped > 0)
        write_error_line("%ld lines for stderr dropped: it was not read in time", err_dropped);
}

void flush_log(void) {
    if (log_buffer.length == 0)
        return;
    size_t length = log_buffer.length;
    long lines = log_buffer.lines;
    log_buffer.length = 0;
    log_buffer.lines = 0;
    if (write_now(STDOUT_FILENO, log_buffer.data, length)) {
        if (log_buffer.dropped > 0 || log_buffer.err_dropped > 0)
            say_dropped_counts();
        return;
    }
    log_buffer.dropped += lines;
    if (!log_buffer.said_dropping) {
        log_buffer.said_dropping = 1;
        write_error_line("stdout is not read: its lines are dropped, and counted, until it is");
    }
}

void say(const FILE *stream, const char *format, ...) {
    char line[LINE_SIZE];
    va_list arguments;
    va_start(arguments, format);
    size_t length = format_line(line, stream == stderr, format, arguments);
    va_end(arguments);
    if (stream == stderr) {
        flush_log(); /* stdout's lines came first */
        if (!write_now(STDERR_FILENO, line, length))
            log_buffer.err_dropped++;
        return;
    }
    if (log_buffer.length + length > sizeof log_buffer.data)
        flush_log();
    memcpy(log_buffer.data + log_buffer.length, line, length);
    log_buffer.length += length;
    log_buffer.lines++;
}

void report_dropped_lines(int wait_ms, int wake_fd) {
    flush_log();
    long long deadline = monotonic_ms() + wait_ms;
    while (log_buffer.dropped > 0) {
        struct pollfd waits[] = {{.fd = STDOUT_FILENO, .events = POLLOUT},
                                 {.fd = wake_fd, .events = POLLIN}};
        long long left_ms = deadline - monotonic_ms();
        int ready = poll(waits, 2, left_ms > 0 ? (int)left_ms : 0);
        if (ready == -1 && errno == EINTR)
            continue;
        if (waits[1].revents & POLLIN)
            stop_now(); /* a signal: stop at once, whatever waits */
        if (ready != 0 || left_ms <= 0)
            break;
    }
    say_dropped_counts();
}

/* ---- the clients of the event servers ---- */

/* A new client: its greeting waits in its pending output until the socket can take it.
 * Returns NULL (and closes the socket) when there is no memory for it. */
struct client *new_client(int sock, const char *greeting, size_t greeting_length) {
    struct client *client = malloc(sizeof *client);
    if (client == NULL) {
        say(stderr, "no memory for another client");
        close(sock);
        return NULL;
    }
    make_nonblocking(sock);
    *client = (struct client){.sock = sock, .pending_length = greeting_length};
    memcpy(client->pending, greeting, greeting_length);
    return client;
}

/* Accept one client that waits, with the tutorial's "accepting new socket". Returns its
 * socket, or -1 once none is left (EAGAIN) or accept failed (said on stderr). Out of
 * descriptors (EMFILE, ENFILE), the waiting connections would wake us at once, forever: so we
 * keep one descriptor in reserve, give it up to accept every waiting client and turn each away
 * at once (it sees the connection close), then take it back. Once descriptors are free again,
 * clients come in as before. With not even one to keep in reserve, we say so once and back
 * off for BACKOFF_MS before each try, instead of spinning. */
int accept_client(int listener) {
    static int reserve = -1, backing_off;
    if (reserve == -1)
        reserve = open("/dev/null", O_RDONLY);
    int sock;
    RETRY_ON_EINTR(sock, accept(listener, NULL, NULL));
    if (sock != -1) {
        backing_off = 0;
        say(stdout, "accepting new socket");
        return sock;
    }
    int error = errno; /* say may change errno */
    if (error == EAGAIN || error == EWOULDBLOCK)
        return -1;
    if ((error == EMFILE || error == ENFILE) && reserve == -1) {
        if (!backing_off)
            say(stderr, "accept: %s: no descriptor to spare, trying again every %d ms",
                strerror(error), BACKOFF_MS);
        backing_off = 1;
        if (poll(NULL, 0, BACKOFF_MS) == -1 && errno != EINTR) /* a signal: the loop sees it */
            die("poll");
        return -1;
    }
    say(stderr, "accept: %s", strerror(error));
    if (error != EMFILE && error != ENFILE)
        return -1;
    close(reserve);
    long turned_away = 0;
    while (turned_away < SOMAXCONN) {
        RETRY_ON_EINTR(sock, accept(listener, NULL, NULL));
        if (sock == -1)
            break;
        close(sock);
        turned_away++;
    }
    if (turned_away == 1)
        say(stderr, "turned a client away: out of descriptors");
    else if (turned_away > 1)
        say(stderr, "turned %ld clients away: out of descriptors", turned_away);
    reserve = open("/dev/null", O_RDONLY);
    return -1;
}

/* What we wait for from this client, as poll's events: POLLIN to read, POLLOUT to send.
 * Read until its end, but for an echo only while its pending output has room, so that one
 * that sends and never reads costs us PENDING_SIZE bytes at most (backpressure); the
 * tutorial's protocol drops what it reads. Send while output is pending, and in the
 * tutorial's protocol until we have shut down our side after the greeting. */
short wanted_events(const struct client *client, int echo_mode) {
    short events = 0;
    if (!client->finished && (!echo_mode || client->pending_length < PENDING_SIZE))
        events |= POLLIN;
    if (client->pending_length > 0 || (!echo_mode && !client->shut_down))
        events |= POLLOUT;
    return events;
}

/* Read what the client sent: the tutorial's protocol notes it ("socket sent data") and
 * drops it, since an echo could not go out after the shutdown; -e puts it in the pending
 * output, to send back. recv returns 0 at the client's end. Returns -1 if the client failed. */
int receive_from(struct client *client, int echo_mode) {
    char dropped[PENDING_SIZE];
    char *into = echo_mode ? client->pending + client->pending_length : dropped;
    size_t room = echo_mode ? PENDING_SIZE - client->pending_length : sizeof dropped;
    ssize_t bytes_read;
    RETRY_ON_EINTR(bytes_read, recv(client->sock, into, room, 0));
    if (bytes_read == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0; /* readiness can be a false alarm: nothing to read after all */
    if (bytes_read == -1) {
        say(stderr, "recv: %s", strerror(errno));
        return -1;
    }
    if (bytes_read == 0)
        client->finished = 1; /* the client has shut down its sending side */
    if (bytes_read > 0 && echo_mode)
        client->pending_length += (size_t)bytes_read;
    if (bytes_read > 0)
        say(stdout, "socket sent data");
    return 0;
}

/* Send as much pending output as the kernel takes now, without waiting; keep the rest. In
 * the tutorial's protocol, once the greeting is all sent, shut down our sending side: the
 * client sees the end of it (its recv returns 0). Returns -1 if the client has gone. */
int send_pending(struct client *client, int echo_mode) {
    if (client->pending_length > 0) {
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, send(client->sock, client->pending, client->pending_length, 0));
        if (bytes_sent == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
            say(stderr, "send: %s", strerror(errno));
            return -1;
        }
        if (bytes_sent > 0) {
            client->pending_length -= (size_t)bytes_sent;
            memmove(client->pending, client->pending + bytes_sent, client->pending_length);
        }
    }
    if (!echo_mode && !client->shut_down && client->pending_length == 0) {
        client->shut_down = 1;
        if (shutdown(client->sock, SHUT_WR) == -1) {
            say(stderr, "shutdown: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}
