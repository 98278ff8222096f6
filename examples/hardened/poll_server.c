/* poll_server.c: "Event-driven programming", and its closing remark: select is best for small
 * numbers of connections, not for thousands; use the operating system's functions. This is
 * select_server with poll(): an array of sockets instead of fd_sets, so no FD_SETSIZE limit,
 * and otherwise the same: `diff select_server.c poll_server.c`, in this folder.
 *
 *   Terminal 1: ./bin/hardened/poll_server   Terminals 2 to 6: ./bin/hardened/tcp_client
 *   Terminal 1: ./bin/hardened/poll_server -e   Terminals 2 and more: ./bin/hardened/select_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>

#include "plumbing.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, DRAIN_MS = 2000 };
enum { MAX_CLIENTS = 100000 }; /* the most poll_set holds */

#define USAGE EVENT_SERVER_USAGE("poll_server")

static const struct command_line COMMAND_LINE = {.letters = "m:n:t:e",
                                                 .usage = USAGE,
                                                 .role = SERVER,
                                                 .defaults = {.family = AF_INET,
                                                              .host = "localhost",
                                                              .port = DEFAULT_PORT,
                                                              .count = DEFAULT_COUNT,
                                                              .timeout = DEFAULT_TIMEOUT}};

int main(int argc, char **argv) {
    set_up_program(argv[0]);
    struct options options = parse_options(argc, argv, &COMMAND_LINE);
    /* The greeting: -m's, else the tutorial's; an echo server (-e) sends back only what it
     * receives, so it has none unless -m gives one. Every client gets it: read it once. */
    const char *greeting_text = options.message     ? options.message
                                : options.echo_mode ? ""
                                                    : GREETING;
    static char greeting[PENDING_SIZE + 1];
    size_t greeting_length =
        load_message(greeting_text, greeting, sizeof greeting, "greeting too long");
    int wake_fd = catch_stop_signals(); /* readable once Ctrl-C or SIGTERM came */

    /* It starts like tcp_server: create the socket, bind an address, and listen. */
    int listener = socket(options.family, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");
    int reuse = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt SO_REUSEADDR");
    struct sockaddr_storage address;
    socklen_t address_length = make_address(&options, SOCK_STREAM, &address);
    if (options.path != NULL) /* a UNIX address: a file */
        claim_socket_file(options.path);
    if (bind(listener, (struct sockaddr *)&address, address_length) == -1)
        die("bind");
    if (options.path != NULL) /* ours now: removed at exit, and on a signal that stops us */
        own_socket_file(options.path);
    /* The tutorial's backlog of 10 is a number for a demo: a burst of clients would overflow it
     * (docs/hardened.md). SOMAXCONN asks for the most the system allows. */
    if (listen(listener, SOMAXCONN) == -1)
        die("listen");
    say(stdout, "listening");
    print_ready_line(listener, &options);

    /* Readiness can be a false alarm (select(2) says so): accept on a blocking listener would
     * then wait, and stall every client. Non-blocking (the tutorial's blocking = false), it
     * fails with EAGAIN instead. */
    make_nonblocking(listener);

    /* The connected clients, and poll's array: one entry for the listener, then one per
     * client, in the same order. Unlike an fd_set it takes descriptors of any size: we make
     * room for as many clients as we may open descriptors (accept fails with EMFILE beyond). */
    long open_max = sysconf(_SC_OPEN_MAX);
    int client_limit = open_max > 0 && open_max < MAX_CLIENTS ? (int)open_max : MAX_CLIENTS;
    struct client **clients = calloc(client_limit, sizeof(struct client *));
    struct pollfd *poll_set = calloc(client_limit + 2, sizeof *poll_set); /* + wake_fd */
    if (clients == NULL || poll_set == NULL)
        die("calloc");
    int client_count = 0;
    long disconnected_count = 0;

    while (options.count == 0 || disconnected_count < options.count) {
        /* Our lines go out first, if stdout takes them now (see say): a server must never
         * wait for its reader. */
        flush_log();

        /* poll() keeps the events we ask for, but they change as clients come, go and fill
         * their pending output, so fill the array afresh on every turn: the listener, and
         * each client we want to read from. Unlike the tutorial we also ask when a client
         * can take more output (POLLOUT): a send to a client that does not read would
         * otherwise block the whole server. */
        poll_set[0] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < client_count; i++)
            poll_set[i + 1] = (struct pollfd){
                .fd = clients[i]->sock, .events = wanted_events(clients[i], options.echo_mode)};
        poll_set[client_count + 1] = (struct pollfd){.fd = wake_fd, .events = POLLIN}; /* stop */

        /* Wait until a socket is ready (a read or write will not block: data, a new
         * connection, room to send, the peer's close, or an error) or the timeout passes.
         * poll counts its timeout in milliseconds; -1 waits for ever. */
        int wait_ms = options.timeout > 0 ? (int)options.timeout * 1000 : -1;
        int event_count = poll(poll_set, client_count + 2, wait_ms);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("poll");
        if (event_count == 0) {
            say(stdout, "Select timed out.");
            continue;
        }
        if (poll_set[client_count + 1].revents & POLLIN)
            stop_now(); /* a signal asks us to stop */

        /* A readable listener means clients are waiting: accept them all, until accept says
         * none is left. A burst of connections must not wait a turn each while the kernel's
         * queue overflows. Our arrays have room for client_limit clients. */
        if (poll_set[0].revents & POLLIN) {
            int sock;
            while ((sock = accept_client(listener)) != -1) {
                struct client *client = NULL;
                if (client_count == client_limit) {
                    say(stderr, "refusing a client: room for %d clients only", client_limit);
                    close(sock);
                } else {
                    client = new_client(sock, greeting, greeting_length);
                }
                if (client != NULL) {
                    poll_set[client_count + 1] = (struct pollfd){.fd = sock}; /* nothing seen yet */
                    clients[client_count++] = client;
                }
            }
        }

        /* Each client that is ready: read what it sent, and send what it can take now. poll
         * reports the peer's close and errors (POLLHUP, POLLERR) even unasked: they make a
         * client writable (a send will say what went wrong), and readable when we asked for
         * POLLIN (recv says it), as select would. (Linux often adds POLLOUT; POSIX does not.) */
        for (int i = 0; i < client_count; i++) {
            struct client *client = clients[i];
            const struct pollfd *entry = &poll_set[i + 1];
            int readable =
                (entry->events & POLLIN) && (entry->revents & (POLLIN | POLLHUP | POLLERR));
            int writable = (entry->revents & (POLLOUT | POLLHUP | POLLERR)) != 0;
            int failed = readable && receive_from(client, options.echo_mode) == -1;
            if (!failed && (readable || writable))
                failed = send_pending(client, options.echo_mode) == -1;

            /* Done with this client once it has finished and has all its output, or failed:
             * close it, and move the last client (and its entry) into its place to look at
             * next. */
            if (failed || (client->finished && client->pending_length == 0)) {
                close(client->sock);
                free(client);
                poll_set[i + 1] = poll_set[client_count];
                clients[i--] = clients[--client_count];
                disconnected_count++;
                say(stdout, "socket disconnected");
            }
        }
    }

    /* The count is reached: close the clients still connected, then the listener, and say
     * how many lines stdout could not take, if any (giving its reader a moment first). */
    for (int i = 0; i < client_count; i++) {
        close(clients[i]->sock);
        free(clients[i]);
    }
    free(clients);
    free(poll_set);
    close(listener);
    report_dropped_lines(DRAIN_MS, wake_fd);
    return EXIT_SUCCESS;
}
