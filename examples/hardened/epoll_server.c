/* epoll_server.c: select_server with Linux's epoll ("Event-driven programming": select suits
 * a few connections, not thousands). The kernel keeps the list of the sockets we watch and
 * reports only the ready ones; `diff` with select_server.c shows the rest. -6 for IPv6,
 * -u PATH for a UNIX stream socket, -h for all options.
 *
 *   Terminal 1: ./bin/hardened/epoll_server   Terminals 2 to 6: ./bin/hardened/tcp_client
 *   Terminal 1: ./bin/hardened/epoll_server -e   Terminals 2 and more: ./bin/hardened/select_client
 */
#define _POSIX_C_SOURCE 200809L

#ifdef __linux__ /* epoll is Linux only: elsewhere this file is the few lines at its end */

#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "plumbing.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, DRAIN_MS = 2000 };
enum { MAX_CLIENTS = 100000, MAX_EVENTS = 512 }; /* events: the most one epoll_wait reports */

#define USAGE EVENT_SERVER_USAGE("epoll_server")

static const struct command_line COMMAND_LINE = {.letters = "m:n:t:e",
                                                 .usage = USAGE,
                                                 .role = SERVER,
                                                 .defaults = {.family = AF_INET,
                                                              .host = "localhost",
                                                              .port = DEFAULT_PORT,
                                                              .count = DEFAULT_COUNT,
                                                              .timeout = DEFAULT_TIMEOUT}};

static void update_interest(int epoll, struct client *client, int operation, int echo_mode);

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

    /* An epoll instance: the kernel's list of the sockets we watch, and of those ready.
     * The listener's event carries no client (data.ptr NULL); each client's, the client;
     * wake_fd's, its own address. */
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll == -1)
        die("epoll_create1");
    struct epoll_event listener_event = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &listener_event) == -1 ||
        epoll_ctl(epoll, EPOLL_CTL_ADD, wake_fd,
                  &(struct epoll_event){.events = EPOLLIN, .data.ptr = &wake_fd}) == -1)
        die("epoll_ctl");

    /* The connected clients by descriptor (clients[sock], NULL where none), only to close
     * them all at the end: epoll hands us the client itself when it is ready. Room for as
     * many as we may open descriptors: accept fails with EMFILE beyond. */
    long open_max = sysconf(_SC_OPEN_MAX);
    int client_limit = open_max > 0 && open_max < MAX_CLIENTS ? (int)open_max : MAX_CLIENTS;
    struct client **clients = calloc(client_limit, sizeof(struct client *));
    if (clients == NULL)
        die("calloc");
    long disconnected_count = 0;

    while (options.count == 0 || disconnected_count < options.count) {
        /* Our lines go out first, if stdout takes them now (see say): a server must never
         * wait for its reader. */
        flush_log();

        /* Wait until a socket is ready (a read or write will not block: data, a new
         * connection, room to send, the peer's close, or an error) or the timeout passes.
         * No sets to fill first: epoll remembers what we watch (see update_interest), and
         * returns one event per ready socket, at most MAX_EVENTS at a time. */
        struct epoll_event events[MAX_EVENTS];
        int wait_ms = options.timeout > 0 ? (int)options.timeout * 1000 : -1;
        int event_count = epoll_wait(epoll, events, MAX_EVENTS, wait_ms);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("epoll_wait");
        if (event_count == 0) {
            say(stdout, "Select timed out.");
            continue;
        }

        /* A readable listener means clients are waiting: accept them all, until accept says
         * none is left. A burst of connections must not wait a turn each while the kernel's
         * queue overflows. The listener's event is the one that carries no client. */
        int listener_ready = 0;
        for (int i = 0; i < event_count; i++) {
            if (events[i].data.ptr == &wake_fd)
                stop_now(); /* a signal asks us to stop */
            listener_ready |= events[i].data.ptr == NULL;
        }
        if (listener_ready) {
            int sock;
            while ((sock = accept_client(listener)) != -1) {
                struct client *client = NULL;
                if (sock >= client_limit) { /* clients[sock] would be past the array */
                    say(stderr, "refusing a client: room for descriptors below %d only",
                        client_limit);
                    close(sock);
                } else {
                    client = new_client(sock, greeting, greeting_length);
                }
                if (client != NULL) {
                    clients[sock] = client;
                    update_interest(epoll, client, EPOLL_CTL_ADD, options.echo_mode);
                }
            }
        }

        /* Each client that is ready, and only those: no turn looks at every client. epoll
         * reports the peer's close and errors (EPOLLHUP, EPOLLERR) even unasked: they make a
         * client writable (a send will say what went wrong), and readable when we asked for
         * EPOLLIN (recv says it), as select would. */
        for (int i = 0; i < event_count; i++) {
            struct client *client = events[i].data.ptr;
            if (client == NULL)
                continue; /* the listener, done above */
            uint32_t ready = events[i].events;
            int readable =
                (client->interest & EPOLLIN) && (ready & (EPOLLIN | EPOLLHUP | EPOLLERR));
            int writable = (ready & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
            int failed = readable && receive_from(client, options.echo_mode) == -1;
            if (!failed && (readable || writable))
                failed = send_pending(client, options.echo_mode) == -1;

            /* Done with this client once it has finished and has all its output, or failed:
             * close it (which also takes it out of epoll). Otherwise watch it for what it
             * needs now. */
            if (failed || (client->finished && client->pending_length == 0)) {
                close(client->sock);
                clients[client->sock] = NULL;
                free(client);
                disconnected_count++;
                say(stdout, "socket disconnected");
            } else {
                update_interest(epoll, client, EPOLL_CTL_MOD, options.echo_mode);
            }
        }
    }

    /* The count is reached: close the clients still connected, then the listener, and say
     * how many lines stdout could not take, if any (giving its reader a moment first). */
    for (int sock = 0; sock < client_limit; sock++) {
        if (clients[sock] == NULL)
            continue;
        close(clients[sock]->sock);
        free(clients[sock]);
    }
    free(clients);
    close(epoll);
    close(listener);
    report_dropped_lines(DRAIN_MS, wake_fd);
    return EXIT_SUCCESS;
}

/* Tell epoll what to watch for this client, when that changed (a system call each time). */
static void update_interest(int epoll, struct client *client, int operation, int echo_mode) {
    short wanted = wanted_events(client, echo_mode);
    int interest = (wanted & POLLIN ? EPOLLIN : 0) | (wanted & POLLOUT ? EPOLLOUT : 0);
    if (operation == EPOLL_CTL_MOD && interest == client->interest)
        return;
    struct epoll_event event = {.events = (uint32_t)interest, .data.ptr = client};
    if (epoll_ctl(epoll, operation, client->sock, &event) == -1)
        die("epoll_ctl");
    client->interest = interest;
}

#else /* not Linux */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    fputs("epoll_server: epoll is Linux only; use poll_server\n", stderr);
    return EXIT_FAILURE;
}
#endif
