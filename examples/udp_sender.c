/* udp_sender.c: "Communication by datagram", the sending side.
 * Sends "Hello!" to the receiver and prints its reply.
 *
 *   Terminal 1: ./bin/udp_receiver          Terminal 2: ./bin/udp_sender
 *
 * An optional argument picks another port than 8765. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "socket_helpers.h"

#define DEFAULT_PORT "8765"
#define MESSAGE "Hello!"
enum { BUFFER_SIZE = 1024, REPLY_TIMEOUT_SECONDS = 5 };

int main(int argc, char *argv[]) {
    const char *port = port_argument(argc, argv, DEFAULT_PORT, 1);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows when it is printed, even into a pipe */

    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* Any address, any port: we only receive replies to what we send, so our address need
     * not be known in advance. (sendto would bind like this by itself; the tutorial says it.) */
    struct sockaddr_in any = {.sin_family = AF_INET};
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    any.sin_port = htons(0);
    if (bind(sock, (struct sockaddr *)&any, sizeof any) == -1)
        die("bind");

    /* The receiver's address: "localhost" and its port. */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *receiver;
    int error = getaddrinfo("localhost", port, &hints, &receiver);
    if (error != 0)
        fail("getaddrinfo", gai_strerror(error));

    printf("Sending data...\n");

    /* No connection: each datagram carries the address it goes to. It goes whole or not at
     * all, so there is no partial send to loop over. */
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent, sendto(sock, MESSAGE, strlen(MESSAGE), 0, receiver->ai_addr,
                                      receiver->ai_addrlen));
    if (bytes_sent == -1)
        die("sendto");
    if ((size_t)bytes_sent != strlen(MESSAGE))
        fail("sendto", "the datagram was cut");
    freeaddrinfo(receiver);

    /* Datagrams get lost, and an unconnected socket hears of no error: without a time limit,
     * a lost message or a missing receiver would keep us waiting for ever. SO_RCVTIMEO is the
     * tutorial's RCVTIMEO ("About timeouts"): recvfrom then fails with EAGAIN. */
    struct timeval timeout = {.tv_sec = REPLY_TIMEOUT_SECONDS};
    if (setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) == -1)
        die("setsockopt");

    /* Now listen for the reply on the same socket: every socket sends and receives. */
    char buffer[BUFFER_SIZE];
    struct sockaddr_storage from;
    socklen_t from_length = sizeof from;
    ssize_t bytes_received;
    RETRY_ON_EINTR(bytes_received, recvfrom(sock, buffer, sizeof buffer, 0,
                                            (struct sockaddr *)&from, &from_length));
    if (bytes_received == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        fail("recvfrom", "no reply within 5 seconds (is udp_receiver running?)");
    if (bytes_received == -1)
        die("recvfrom");

    printf("Got response: ");
    fwrite(buffer, 1, (size_t)bytes_received, stdout);
    printf("\n");

    close(sock);
    return EXIT_SUCCESS;
}
