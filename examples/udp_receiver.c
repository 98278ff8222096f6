/* udp_receiver.c: "Communication by datagram", the receiving side (start it first).
 * Waits for one datagram, prints it, and answers the sender with "got it!".
 *
 *   Terminal 1: ./bin/udp_receiver          Terminal 2: ./bin/udp_sender
 *
 * An optional argument picks another port than 8765: 0 lets the system choose a free one. */
#define _POSIX_C_SOURCE 200809L

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_helpers.h"

#define DEFAULT_PORT "8765"
#define REPLY "got it!"
enum { BUFFER_SIZE = 1024 };

int main(int argc, char *argv[]) {
    const char *port = port_argument(argc, argv, DEFAULT_PORT, 0);
    ignore_sigpipe();
    setvbuf(stdout, NULL, _IOLBF, 0); /* each line shows when it is printed, even into a pipe */

    /* An IPv4 datagram socket. For a UNIX address, the family would be AF_UNIX and the
     * address a struct sockaddr_un holding a file name. */
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock == -1)
        die("socket");

    /* "localhost" and the port, as an address the socket calls take: getaddrinfo does what
     * D's `new InternetAddress("localhost", 8765)` does. */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
    struct addrinfo *address;
    int error = getaddrinfo("localhost", port, &hints, &address);
    if (error != 0)
        fail("getaddrinfo", gai_strerror(error));

    /* Bind to that fixed, known address, so that the sender can find us. A datagram socket
     * needs no connection: once bound, it can receive. */
    if (bind(sock, address->ai_addr, address->ai_addrlen) == -1)
        die("bind");
    freeaddrinfo(address);
    say_ready(sock);

    /* The buffer must have room: recvfrom fills at most its size, and a buffer of size 0
     * receives nothing. */
    char buffer[BUFFER_SIZE];

    /* recvfrom fills this in with the sender's address. sockaddr_storage has room for an
     * address of any family; the calls take it as a pointer to the generic struct sockaddr. */
    struct sockaddr_storage from;
    socklen_t from_length = sizeof from;

    printf("Waiting for data...\n");

    /* Wait for one datagram. A signal may interrupt the wait (-1 with EINTR): try again, as
     * the tutorial's `goto try_again` does. Any other -1 is a real error. */
    ssize_t bytes_received;
    RETRY_ON_EINTR(bytes_received, recvfrom(sock, buffer, sizeof buffer, 0,
                                            (struct sockaddr *)&from, &from_length));
    if (bytes_received == -1)
        die("recvfrom");

    /* The length of the datagram, which may be 0: an empty datagram, not a closed connection
     * (there is none). A longer datagram than the buffer is cut, and the rest is lost.
     * fwrite prints the bytes as they came, even a '\0', which would end a %s. */
    printf("Received: ");
    fwrite(buffer, 1, (size_t)bytes_received, stdout);
    printf("\n");

    /* Reply to the address the datagram came from. A datagram goes whole or not at all, so
     * there is no partial send to loop over; a short count would mean a bug. */
    ssize_t bytes_sent;
    RETRY_ON_EINTR(bytes_sent,
                   sendto(sock, REPLY, strlen(REPLY), 0, (struct sockaddr *)&from, from_length));
    if (bytes_sent == -1)
        die("sendto");
    if ((size_t)bytes_sent != strlen(REPLY))
        fail("sendto", "the reply was cut");

    close(sock);
    return EXIT_SUCCESS;
}
