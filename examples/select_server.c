/* select_server.c: "Event-driven programming", a server for many clients at once.
 * Greets each client with "Hello!\n", shuts down its sending side, and notes what the client
 * sends and when it leaves. Exits once five clients are done, or on Ctrl-C.
 *
 *   Terminal 1: ./bin/select_server         Terminals 2, 3, ...: ./bin/tcp_client
 *
 * An optional argument picks another port than 2525: 0 lets the system choose a free one. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "socket_helpers.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!\n"
enum { BACKLOG = 10, BUFFER_SIZE = 1024, CLIENTS_TO_SERVE = 5, TIMEOUT_SECONDS = 5 };

int main(int argc, char *argv[]) {
    const char *port = port_argument(argc, argv, DEFAULT_PORT, 0);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows when it is printed, even into a pipe */

    /* It starts as the other server: a socket, bound to localhost, listening. */
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");

    /* An fd_set is a fixed array of FD_SETSIZE bits (1024 on Linux), one per descriptor
     * number: FD_SET on a larger number writes past its end. So every descriptor we watch
     * must stay below FD_SETSIZE, the listener included. */
    if (listener >= FD_SETSIZE)
        fail("socket", "descriptor too large for select (FD_SETSIZE)");

    int reuse = 1; /* bind again at once after a restart (see tcp_server.c) */
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *address;
    int error = getaddrinfo("localhost", port, &hints, &address);
    if (error != 0)
        fail("getaddrinfo", gai_strerror(error));
    if (bind(listener, address->ai_addr, address->ai_addrlen) == -1)
        die("bind");
    freeaddrinfo(address);
    if (listen(listener, BACKLOG) == -1)
        die("listen");

    printf("listening\n");
    say_ready(listener);

    /* The clients we have, as their descriptors. Each is below FD_SETSIZE and none is the
     * listener, so FD_SETSIZE places are enough. */
    int clients[FD_SETSIZE];
    int client_count = 0;
    int clients_done = 0;

    /* The event loop, until five clients are done. */
    while (clients_done < CLIENTS_TO_SERVE) {
        /* select changes the set it is given, to say which descriptors are ready: fill it
         * afresh on every turn, with every client and the listener (new connections). */
        fd_set ready_to_read;
        FD_ZERO(&ready_to_read);
        int highest = listener;
        FD_SET(listener, &ready_to_read);
        for (int i = 0; i < client_count; i++) {
            FD_SET(clients[i], &ready_to_read);
            if (clients[i] > highest)
                highest = clients[i];
        }

        /* Wait until a descriptor is ready to read: a receive (or accept) will then not
         * block. A closed connection is ready too (recv returns 0), and so is an error (recv
         * returns -1): check what the calls return. We watch reads only; our one small send
         * per client always fits in the socket's buffer. select may change the timeout as
         * well (Linux leaves the time left in it): set it every turn. */
        struct timeval timeout = {.tv_sec = TIMEOUT_SECONDS};
        int event_count = select(highest + 1, &ready_to_read, NULL, NULL, &timeout);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: not an error, wait again */
        if (event_count == -1)
            die("select");
        if (event_count == 0) {
            printf("Select timed out.\n");
            continue;
        }

        /* The listener is ready: a client wants to connect. accept will not block. */
        if (FD_ISSET(listener, &ready_to_read)) {
            event_count--;
            printf("accepting new socket\n");
            int client;
            RETRY_ON_EINTR(client, accept(listener, NULL, NULL));
            if (client == -1) {
                /* The client gave up while it waited (ECONNABORTED), or we are out of
                 * descriptors (EMFILE): then it stays queued, select wakes us for it at once,
                 * and this repeats until one is free (hardened/ keeps one in reserve). */
                fprintf(stderr, "%s: accept: %s\n", program_name, strerror(errno));
            } else if (client >= FD_SETSIZE) {
                fprintf(stderr, "%s: too many clients for select: one turned away\n", program_name);
                close(client);
            } else {
                /* Say hello, then shut down our sending side: the client's receive returns
                 * 0 after the greeting. Seven bytes fit in a new socket's buffer, so this
                 * send goes whole at once; a client that has already gone makes it fail. */
                ssize_t bytes_sent;
                RETRY_ON_EINTR(bytes_sent, send(client, GREETING, strlen(GREETING), 0));
                if (bytes_sent == -1 || shutdown(client, SHUT_WR) == -1)
                    fprintf(stderr, "%s: greeting: %s\n", program_name, strerror(errno));
                clients[client_count++] = client;
            }
        }

        /* Then each client that is ready. We look at all of them: select says how many are
         * ready, not which (this is why select is slow with many sockets). Stop early once
         * every event is handled. */
        for (int i = 0; i < client_count && event_count > 0; i++) {
            int client = clients[i];
            if (!FD_ISSET(client, &ready_to_read))
                continue;
            event_count--;

            char buffer[BUFFER_SIZE];
            ssize_t bytes_received;
            RETRY_ON_EINTR(bytes_received, recv(client, buffer, sizeof buffer, 0));
            if (bytes_received > 0) {
                /* The tutorial echoes the data back here, but we have shut down our sending
                 * side: that send could only fail (EPIPE). So we just note it. */
                printf("socket sent data\n");
                continue;
            }
            /* 0: the client has finished and closed. -1: an error, such as a reset; it ends
             * this client only, not the server. Either way the client is done. */
            if (bytes_received == -1)
                fprintf(stderr, "%s: recv: %s\n", program_name, strerror(errno));
            clients_done++;
            close(client);
            printf("socket disconnected\n");

            /* Remove it from our list: the last client takes its place, and we look at this
             * place again, since it now holds a client we have not looked at. */
            clients[i] = clients[--client_count];
            i--;
        }
    }

    /* Five clients are done. Close those still connected, and the listener. */
    for (int i = 0; i < client_count; i++)
        close(clients[i]);
    close(listener);
    return EXIT_SUCCESS;
}
