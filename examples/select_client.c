/* select_client.c: "Event-driven programming", its closing remark: waiting on the keyboard
 * and the network at once, which the tutorial says Phobos cannot do. One select() watches
 * standard input and the socket: each line you type goes to the server, and what the server
 * sends is printed as it comes. Ctrl-D ends our side; we exit once the server's side ends too.
 *
 *   Terminal 1: ./bin/select_server         Terminals 2, 3, ...: ./bin/select_client
 *
 * An optional argument picks another port than 2525. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_helpers.h"

#define DEFAULT_PORT "2525"
enum { BUFFER_SIZE = 1024 };

int main(int argc, char *argv[]) {
    const char *port = port_argument(argc, argv, DEFAULT_PORT, 1);
    ignore_sigpipe();

    /* Connect as tcp_client does, a signal during connect included (see there). */
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock == -1)
        die("socket");
    /* FD_SET on a descriptor of FD_SETSIZE or more writes past the end of the fd_set. */
    if (sock >= FD_SETSIZE)
        fail("socket", "descriptor too large for select (FD_SETSIZE)");
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *server;
    int error = getaddrinfo("localhost", port, &hints, &server);
    if (error != 0)
        fail("getaddrinfo", gai_strerror(error));
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

    int input_ended = 0, server_ended = 0;
    while (!input_ended || !server_ended) {
        /* select changes the set to say what is ready: fill it afresh on every turn, with
         * each source that may still have something for us. */
        fd_set ready_to_read;
        FD_ZERO(&ready_to_read);
        if (!input_ended)
            FD_SET(STDIN_FILENO, &ready_to_read);
        if (!server_ended)
            FD_SET(sock, &ready_to_read);

        /* Wait, with no time limit, for whichever comes first: the keyboard or the network. */
        int event_count = select(sock + 1, &ready_to_read, NULL, NULL, NULL);
        if (event_count == -1 && errno == EINTR)
            continue; /* a signal interrupted the wait: wait again */
        if (event_count == -1)
            die("select");

        /* The server sent something: print it now, in whatever pieces it comes. 0: the
         * server has shut down its sending side; we may still send. */
        if (FD_ISSET(sock, &ready_to_read)) {
            char buffer[BUFFER_SIZE];
            ssize_t bytes_received;
            RETRY_ON_EINTR(bytes_received, recv(sock, buffer, sizeof buffer, 0));
            if (bytes_received == -1)
                die("recv");
            if (bytes_received == 0)
                server_ended = 1;
            fwrite(buffer, 1, (size_t)bytes_received, stdout);
            fflush(stdout);
        }

        /* A line typed (or a piece of a pipe or file). We read the descriptor with read, not
         * with stdio: stdio could read ahead more lines into its own buffer, and select, which
         * only sees the descriptor, would not wake us for them. */
        if (FD_ISSET(STDIN_FILENO, &ready_to_read)) {
            char line[BUFFER_SIZE];
            ssize_t bytes_read;
            RETRY_ON_EINTR(bytes_read, read(STDIN_FILENO, line, sizeof line));
            if (bytes_read == -1)
                die("stdin");

            /* End of input (Ctrl-D): shut down our sending side, so that the server's recv
             * returns 0. We still receive until the server ends too. */
            if (bytes_read == 0) {
                input_ended = 1;
                if (shutdown(sock, SHUT_WR) == -1)
                    die("shutdown");
            }

            /* Send all of it, as tcp_client does: send may take only part. */
            const char *unsent = line;
            size_t left = (size_t)bytes_read;
            while (left > 0) {
                ssize_t bytes_sent;
                RETRY_ON_EINTR(bytes_sent, send(sock, unsent, left, 0));
                if (bytes_sent == -1)
                    die("send");
                unsent += bytes_sent;
                left -= (size_t)bytes_sent;
            }
        }
    }

    close(sock);
    return EXIT_SUCCESS;
}
