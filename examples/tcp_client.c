/* tcp_client.c: "Communication by stream", the client.
 * Connects to the server, prints all that the server sends, then replies "Thanks! Bye.".
 *
 *   Terminal 1: ./bin/tcp_server            Terminal 2: ./bin/tcp_client
 *
 * An optional argument picks another port than 2525. It also talks to select_server. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_helpers.h"

#define DEFAULT_PORT "2525"
#define REPLY "Thanks! Bye."
enum { BUFFER_SIZE = 1024 };

int main(int argc, char *argv[]) {
    const char *port = port_argument(argc, argv, DEFAULT_PORT, 1);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows when it is printed, even into a pipe */

    /* A client needs only a socket and a connection. */
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1)
        die("socket");

    /* The server's address: "localhost" and its port. */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *server;
    int error = getaddrinfo("localhost", port, &hints, &server);
    if (error != 0)
        fail("getaddrinfo", gai_strerror(error));

    /* Connect. Without a server this fails at once: "Connection refused". A signal may
     * interrupt connect (EINTR) while the connection goes on being made. Calling connect again
     * then waits for it (Linux), says EISCONN if it is made, or EALREADY while it is under way
     * (the BSDs): then wait until the socket is writable, and SO_ERROR tells how it ended. */
    int connected;
    RETRY_ON_EINTR(connected, connect(sock, server->ai_addr, server->ai_addrlen));
    if (connected == -1 && errno == EALREADY) {
        struct pollfd writable = {.fd = sock, .events = POLLOUT};
        int outcome = 0;
        socklen_t outcome_length = sizeof outcome;
        RETRY_ON_EINTR(connected, poll(&writable, 1, -1));
        if (connected == -1 ||
            getsockopt(sock, SOL_SOCKET, SO_ERROR, &outcome, &outcome_length) == -1)
            die("connect");
        errno = outcome;
        connected = outcome == 0 ? 0 : -1;
    }
    if (connected == -1 && errno != EISCONN)
        die("connect");
    freeaddrinfo(server);

    printf("Client connected!\n");

    /* recv returns what has arrived, more or less than the server sent in one go, at most a
     * buffer's worth; 0 once the server has shut down its side, -1 on an error. The buffer
     * must not have size 0, or nothing can be received. We print each piece as it comes. */
    printf("Received from server: ");
    char buffer[BUFFER_SIZE];
    ssize_t bytes_received;
    do {
        RETRY_ON_EINTR(bytes_received, recv(sock, buffer, sizeof buffer, 0));
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

    /* Send the reply the same way as the server sent its greeting: until every byte is gone.
     * Each call is checked: the error may be one to handle, such as EINTR. */
    const char *reply = REPLY;
    size_t left = strlen(reply);
    while (left > 0) {
        ssize_t bytes_sent;
        RETRY_ON_EINTR(bytes_sent, send(sock, reply, left, 0));
        if (bytes_sent == -1)
            die("send");
        reply += bytes_sent;
        left -= (size_t)bytes_sent;
    }

    printf("reply sent!\n");

    /* Done: close the connection and exit. */
    close(sock);
    return EXIT_SUCCESS;
}
