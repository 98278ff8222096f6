/* tcp_client.c: "Communication by stream", the client.
 * Connects to tcp_server, prints everything the server sends until it has finished, then
 * replies "Thanks! Bye.". With -e it sends first and prints the echo (select_server -e).
 *
 *   Terminal 1: ./bin/hardened/tcp_server   Terminal 2: ./bin/hardened/tcp_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options.
 * Where this port departs from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "plumbing.h"

#define DEFAULT_PORT "2525"
#define REPLY "Thanks! Bye."
enum { BUFFER_SIZE = 65536, HINT_MS = 3000 };

#define USAGE                                                                                 \
    "usage: tcp_client [-4 | -6 | -u PATH] [-H HOST] [-p PORT] [-m TEXT] [-t SECONDS] [-e]\n" \
    "  -4, -6      IPv4 (default) or IPv6\n"                                                  \
    "  -u PATH     connect to the UNIX stream socket at PATH instead of IP\n"                 \
    "  -H HOST     the server's host (default localhost)\n"                                   \
    "  -p PORT     the server's port (default " DEFAULT_PORT ")\n"                            \
    "  -m TEXT     reply to send (default \"Thanks! Bye.\"; - sends all of stdin)\n"          \
    "  -t SECONDS  give up when sending or receiving stalls this long (0 = never)\n"          \
    "  -e          echo mode: send first, then print all the server sends back\n"

static const struct command_line COMMAND_LINE = {
    .letters = "m:t:e",
    .usage = USAGE,
    .role = CLIENT,
    .defaults = {.family = AF_INET, .host = "localhost", .port = DEFAULT_PORT, .message = REPLY}};

static void wait_for_data(int sock, const struct options *options, int *hinted);
static _Noreturn void die_sending(const struct options *options);
static int talk_to_an_echo_server(int sock, const struct options *options);

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    struct options options = parse_options(argc, argv, &COMMAND_LINE);
    stop_on_signal(); /* a signal mid-stream aborts the connection: see plumbing.h */

    /* A client needs only a socket connected to the server (try it with no server running:
     * connect fails with "Connection refused"). */
    int sock = connect_to_server(&options);
    print_text("Client connected!\n");

    /* Optionally give up when sending stalls ("About timeouts"): SO_SNDTIMEO, once the server
     * stops taking what we send. (Receiving waits in poll: see wait_for_data.) */
    struct timeval send_timeout = {.tv_sec = options.timeout};
    if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout) == -1)
        die("setsockopt SO_SNDTIMEO");

    /* An echo server waits for us to speak first (-e): we send and receive at once. */
    if (options.echo_mode)
        return talk_to_an_echo_server(sock, &options);

    /* Receive until the server has finished. recv returns what has arrived so far, in
     * whatever pieces the network made, and 0 once the server has shut down its sending side.
     * We print each piece as it comes; the tutorial collects them and prints them at the end. */
    print_text("Received from server: ");
    char buffer[BUFFER_SIZE];
    ssize_t bytes_read;
    int hinted = 0;
    do {
        wait_for_data(sock, &options, &hinted);
        RETRY_ON_EINTR(bytes_read, recv(sock, buffer, sizeof buffer, 0));
        if (bytes_read > 0)
            print_received(buffer, (size_t)bytes_read);
    } while (bytes_read > 0);
    int receive_error = bytes_read == -1 ? errno : 0;
    print_text("\n"); /* ends the line, also before an error line */
    if (receive_error != 0)
        fail("recv", strerror(receive_error));

    /* Send our reply the same way. send may take only part of what we give it: advance past
     * what went and send the rest, until every byte is gone. */
    struct message reply = {.text = options.message};
    const char *piece;
    size_t length;
    while ((length = next_piece(&reply, sock, &piece)) > 0) {
        while (length > 0) {
            ssize_t bytes_sent;
            RETRY_ON_EINTR(bytes_sent, send(sock, piece, length, 0));
            if (bytes_sent == -1)
                die_sending(&options);
            piece += bytes_sent;
            length -= (size_t)bytes_sent;
        }
    }
    print_text("reply sent!\n");

    /* Done: close the connection. The server's recv returns 0. */
    close_connection(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}

/* Wait until the server sends something or ends, for at most -t seconds (0: no limit). After
 * HINT_MS of silence say once, on stderr, what we wait for: against an echo server both
 * sides would wait for the other in silence for ever. */
static void wait_for_data(int sock, const struct options *options, int *hinted) {
    long long start = monotonic_ms(),
              limit_ms = options->timeout > 0 ? options->timeout * 1000 : -1;
    for (;;) {
        long long waited_ms = monotonic_ms() - start;
        if (limit_ms != -1 && waited_ms >= limit_ms) {
            printf("\n"); /* ends the line before the error line */
            fflush(stdout);
            fprintf(stderr, "%s: no data within %ld s\n", program_name, options->timeout);
            exit(EXIT_FAILURE);
        }
        if (!*hinted && waited_ms >= HINT_MS) {
            fflush(stdout);
            fprintf(stderr,
                    "%s: still waiting for the server to end its message (an echo server "
                    "waits for ours first: use tcp_client -e)\n",
                    program_name);
            *hinted = 1;
        }
        /* Sleep in poll until data comes, or until the sooner of the two moments above. */
        long long until_ms = limit_ms;
        if (!*hinted && (until_ms == -1 || HINT_MS < until_ms))
            until_ms = HINT_MS;
        struct pollfd readable = {.fd = sock, .events = POLLIN};
        int ready = poll(&readable, 1, until_ms == -1 ? -1 : (int)(until_ms - waited_ms));
        if (ready == 1)
            return;
        if (ready == -1 && errno != EINTR)
            die("poll");
    }
}

/* A send failed: with -t, SO_SNDTIMEO's EAGAIN means the server took nothing for that long. */
static _Noreturn void die_sending(const struct options *options) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
        die("send");
    fflush(stdout);
    fprintf(stderr, "%s: could not send for %ld s\n", program_name, options->timeout);
    exit(EXIT_FAILURE);
}

/* -e: send the message and print what the server sends back, both at once. An echo server
 * sends back while we send, and stops reading us while we do not read it: sending all first
 * would wait for ever once both sides' buffers are full. So the socket is non-blocking, and
 * one poll waits for either: data to print, or room to send. When all is sent we shut down
 * our sending side, so that the server sees the end, and print until it ends too. -t: give
 * up when nothing moves either way for that long. */
static int talk_to_an_echo_server(int sock, const struct options *options) {
    make_nonblocking(sock);
    struct message reply = {.text = options->message};
    const char *piece = NULL;
    size_t length = 0;
    int sending = 1;
    ssize_t bytes_read = 1;
    print_text("Received from server: ");
    while (bytes_read != 0) {
        if (sending && length == 0 && (length = next_piece(&reply, sock, &piece)) == 0) {
            sending = 0; /* all of it is sent */
            if (shutdown(sock, SHUT_WR) == -1)
                die("shutdown");
        }
        struct pollfd ready = {.fd = sock, .events = sending ? POLLIN | POLLOUT : POLLIN};
        int waited = poll(&ready, 1, options->timeout > 0 ? (int)options->timeout * 1000 : -1);
        if (waited == -1 && errno != EINTR)
            die("poll");
        if (waited == 0) {
            printf("\n"); /* ends the line before the error line */
            fflush(stdout);
            fprintf(stderr, "%s: nothing sent nor received for %ld s\n", program_name,
                    options->timeout);
            exit(EXIT_FAILURE);
        }
        if (ready.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buffer[BUFFER_SIZE];
            bytes_read = recv(sock, buffer, sizeof buffer, 0);
            if (bytes_read == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                int receive_error = errno;
                printf("\n"); /* ends the line before the error line */
                fail("recv", strerror(receive_error));
            }
            if (bytes_read > 0)
                print_received(buffer, (size_t)bytes_read);
        }
        if (sending && length > 0 && (ready.revents & (POLLOUT | POLLHUP | POLLERR))) {
            ssize_t bytes_sent = send(sock, piece, length, 0);
            if (bytes_sent == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
                die_sending(options);
            if (bytes_sent > 0) {
                piece += bytes_sent;
                length -= (size_t)bytes_sent;
            }
        }
    }
    print_text("\nreply sent!\n"); /* all sent, and all of the echo received */
    close_connection(sock);
    if (fflush(stdout) == EOF)
        die("stdout");
    return EXIT_SUCCESS;
}
