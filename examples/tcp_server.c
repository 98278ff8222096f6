/* tcp_server.c: "Communication by stream", the server (start it first).
 * Accepts one client, sends it "Hello!", then prints what the client sends back.
 *
 *   Terminal 1: ./bin/tcp_server            Terminal 2: ./bin/tcp_client
 *
 * An optional argument picks another port than 2525: 0 lets the system choose a free one. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_helpers.h"

#define DEFAULT_PORT "2525"
#define GREETING "Hello!"
enum { BACKLOG = 10, BUFFER_SIZE = 1024 };

int main(int argc, char *argv[]) {
    const char *port = port_argument(argc, argv, DEFAULT_PORT, 0);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows when it is printed, even into a pipe */

    /* Like always, first the socket: IPv4, a stream (TCP). */
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener == -1)
        die("socket");

    /* After a server exits, its port stays taken for a minute or two while TCP cleans up
     * (TIME_WAIT). For quick restarts and tests, allow binding it again at once. */
    int reuse = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1)
        die("setsockopt");

    /* Bind the address clients connect to. No host, only a port (AI_PASSIVE): every
     * interface of this computer, as the tutorial's `new InternetAddress(2525)`. This fails
     * if another program has the port (EADDRINUSE), or for a port below 1024 without the
     * right to use it (EACCES). */
    struct addrinfo hints = {
        .ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *address;
    int error = getaddrinfo(NULL, port, &hints, &address);
    if (error != 0)
        fail("getaddrinfo", gai_strerror(error));
    if (bind(listener, address->ai_addr, address->ai_addrlen) == -1)
        die("bind");
    freeaddrinfo(address);

    /* Listen. The number is how many connections the system keeps waiting for accept
     * instead of refusing them while we are busy. */
    if (listen(listener, BACKLOG) == -1)
        die("listen");
    say_ready(listener);

    /* Wait until a client connects. accept returns a new socket for this one connection,
     * of the same type; the listener stays open for the next. A signal may interrupt the
     * wait: try again. */
    int client;
    RETRY_ON_EINTR(client, accept(listener, NULL, NULL));
    if (client == -1)
        die("accept");

    /* send may take only part of the message: advance past what went and send the rest,
     * until every byte is gone. (send never returns 0 for a message that is not empty; a
     * peer that has gone makes it fail, with EPIPE or ECONNRESET.) */
    const char *message = GREETING;
    size_t left = strlen(message);
    while (left > 0) {
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, send(client, message, left, 0));
        if (bytes_sent == -1)
            die("send");
        message += bytes_sent;
        left -= (size_t)bytes_sent;
    }

    /* We are done sending: shut down our sending side, so that the client's receive returns
     * 0 once it has all of it. We can still receive its reply. */
    if (shutdown(client, SHUT_WR) == -1)
        die("shutdown");

    /* The reply comes in pieces of any size, however large our buffer: no call promises the
     * whole message. We print each piece as it arrives, the stream "right through this
     * buffer", until recv returns 0: the client has shut down its side too. */
    printf("Got from client: ");
    char buffer[BUFFER_SIZE];
    ssize_t bytes_received;
    do {
        RETRY_ON_EINTR(bytes_received, recv(client, buffer, sizeof buffer, 0));
        if (bytes_received > 0)
            fwrite(buffer, 1, (size_t)bytes_received, stdout);
    } while (bytes_received > 0);
    if (bytes_received == -1) {
        int recv_error = errno; /* printf may change errno */
        printf("\n");
        errno = recv_error;
        die("recv");
    }
    printf("\n");

    /* We greeted a client and got its reply: close the connection. We could go back and
     * accept another (the tutorial's `goto accept_another`); like the tutorial, we stop. */
    close(client);
    close(listener);
    return EXIT_SUCCESS;
}
