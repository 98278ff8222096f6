/* select_server.c: "Event-driven programming": one server, many clients at once, select().
 * By default it speaks the tutorial's protocol: greets each client with "Hello!", shuts down
 * its sending side, notes each chunk the client sends, and exits once five clients have come
 * and gone. With -e it is an echo server instead: it sends back every byte it receives.
 *
 *   Terminal 1: ./bin/hardened/select_server   Terminals 2 to 6: ./bin/hardened/tcp_client
 *   Terminal 1: ./bin/hardened/select_server -e   Terminals 2 and more:
 * ./bin/hardened/select_client
 *
 * -6 for IPv6, -u PATH for a UNIX stream socket, -h for all options. Where this port departs
 * from the tutorial, and why: docs/differences.md. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <netdb.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "plumbing.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { DEFAULT_COUNT = 5, DEFAULT_TIMEOUT = 5, DRAIN_MS = 2000 };

#define USAGE                                                                                \
    EVENT_SERVER_USAGE("select_server")                                                      \
    "select watches descriptors below FD_SETSIZE only: with some 1,020 clients connected,\n" \
    "more are turned away until some leave. poll_server and epoll_server have no such limit.\n"

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
    /* FD_SET on a descriptor of FD_SETSIZE or more writes past the fd_set: started with many
     * descriptors open, even ours could be too large. Say so rather than corrupt memory. */
    if (listener >= FD_SETSIZE || wake_fd >= FD_SETSIZE)
        fail("socket", "descriptor too large for select (FD_SETSIZE)");
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

    /* The connected clients. An fd_set only has room for descriptors below FD_SETSIZE, so no
     * client can have a larger one and this array never overflows. */
    struct client *clients[FD_SETSIZE];
    int client_count = 0;
    long disconnected_count = 0;

    while (options.count == 0 || disconnected_count < options.count) {
        /* Our lines go out first, if stdout takes them now (see say): a server must never
         * wait for its reader. */
        flush_log();

        /* select() changes the sets it is given, so fill them afresh on every turn: the
         * listener, and each client we want to read from. Unlike the tutorial we also ask
         * when a client can take more output (write_set): a send to a client that does not
         * read would otherwise block the whole server. */
        fd_set read_set, write_set;
        FD_ZERO(&read_set);
        FD_ZERO(&write_set);
        FD_SET(listener, &read_set);
        FD_SET(wake_fd, &read_set); /* readable once a signal asks us to stop */
        int highest = listener > wake_fd ? listener : wake_fd;
        for (int i = 0; i < client_count; i++) {
            short events = wanted_events(clients[i], options.echo_mode);
            if (events & POLLIN)
                FD_SET(clients[i]->sock, &read_set);
            if (events & POLLOUT)
                FD_SET(clients[i]->sock, &write_set);
            highest = clients[i]->sock > highest ? clients[i]->sock : highest;
        }

        /* Wait until a socket is ready (a read or write will not block: data, a new
         * connection, room to send, the peer's close, or an error) or the timeout passes.
         * select may change the timeout too, so set it on every turn. */
        int wait_ms = options.timeout > 0 ? (int)options.timeout * 1000 : -1;
        struct timeval timeout = {.tv_sec = wait_ms / 1000,
                                  .tv_usec = (suseconds_t)(wait_ms % 1000) * 1000};
        int event_count =
            select(highest + 1, &read_set, &write_set, NULL, wait_ms == -1 ? NULL : &timeout);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, just wait again */
        if (event_count == -1)
            die("select");
        if (event_count == 0) {
            say(stdout, "Select timed out.");
            continue;
        }
        if (FD_ISSET(wake_fd, &read_set))
            stop_now(); /* a signal asks us to stop */

        /* A readable listener means clients are waiting: accept them all, until accept says
         * none is left. A burst of connections must not wait a turn each while the kernel's
         * queue overflows. FD_SET on a descriptor of FD_SETSIZE or more would write past the
         * fd_set: refuse such a client. */
        if (FD_ISSET(listener, &read_set)) {
            int sock;
            while ((sock = accept_client(listener)) != -1) {
                struct client *client = NULL;
                if (sock >= FD_SETSIZE) {
                    say(stderr, "refusing a client: select handles descriptors below %d",
                        FD_SETSIZE);
                    close(sock);
                } else {
                    client = new_client(sock, greeting, greeting_length);
                }
                if (client != NULL)
                    clients[client_count++] = client;
            }
        }

        /* Each client that is ready: read what it sent, and send what it can take now. */
        for (int i = 0; i < client_count; i++) {
            struct client *client = clients[i];
            int readable = FD_ISSET(client->sock, &read_set);
            int writable = FD_ISSET(client->sock, &write_set);
            int failed = readable && receive_from(client, options.echo_mode) == -1;
            if (!failed && (readable || writable))
                failed = send_pending(client, options.echo_mode) == -1;

            /* Done with this client once it has finished and has all its output, or failed:
             * close it, and move the last client into its place to look at next. */
            if (failed || (client->finished && client->pending_length == 0)) {
                close(client->sock);
                free(client);
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
    close(listener);
    report_dropped_lines(DRAIN_MS, wake_fd);
    return EXIT_SUCCESS;
}
