/* bench_epoll_baseline.c: the barest epoll echo loop, the yardstick for epoll_server in
 * `make bench` (docs/benchmarks.md). It greets each client with "Hello!\n" and echoes what it
 * receives, as epoll_server does, with nothing else: no options but the port, no output but
 * the ready line, no limits, no pending output (one buffer; a send that does not take all of
 * it loses the rest, which the small messages of the benchmark never cause), blocking sends.
 * It takes a burst as well as it can: the longest listen queue (SOMAXCONN), and every waiting
 * connection accepted on each wakeup.
 * Not a lesson, and not a server to copy: it is what "no clarity at all" costs.
 *
 *   build/bench_epoll_baseline PORT     (0 picks a free port; it runs until killed) */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER_SIZE = 4096, MAX_EVENTS = 64 };

int main(int argc, char **argv) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    address.sin_port = htons((uint16_t)(argc > 1 ? strtol(argv[1], NULL, 10) : 0));
    socklen_t length = sizeof address;
    int listener = socket(AF_INET, SOCK_STREAM, 0), reuse = 1;
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    if (listener == -1 || epoll == -1 ||
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse) == -1 ||
        bind(listener, (struct sockaddr *)&address, length) == -1 || listen(listener, SOMAXCONN) ||
        fcntl(listener, F_SETFL, O_NONBLOCK) == -1 ||
        getsockname(listener, (struct sockaddr *)&address, &length) == -1 ||
        epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) == -1) {
        perror("bench_epoll_baseline");
        return EXIT_FAILURE;
    }
    fprintf(stderr, "bench_epoll_baseline: ready on 127.0.0.1 port %d\n", ntohs(address.sin_port));

    static char buffer[BUFFER_SIZE];
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int count = epoll_wait(epoll, events, MAX_EVENTS, -1);
        for (int i = 0; i < count; i++) {
            int sock = events[i].data.fd;
            if (sock == listener) {
                int client;
                while ((client = accept(listener, NULL, NULL)) != -1) {
                    struct epoll_event client_event = {.events = EPOLLIN, .data.fd = client};
                    if (send(client, "Hello!\n", 7, MSG_NOSIGNAL) != 7 ||
                        epoll_ctl(epoll, EPOLL_CTL_ADD, client, &client_event))
                        close(client);
                }
                continue;
            }
            ssize_t received = recv(sock, buffer, sizeof buffer, 0);
            if (received <= 0 || send(sock, buffer, (size_t)received, MSG_NOSIGNAL) == -1)
                close(sock); /* the end of the stream, or an error: also leaves epoll */
        }
    }
}
