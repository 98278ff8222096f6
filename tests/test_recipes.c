/* test_recipes.c: the recipes that docs/ offers for a hostile network, each saved from its
 * page as a reader would save it (tests/extract_recipes.sh, into build/recipes; see the
 * Makefile) and included here as it stands: framing through a proxy that forwards one byte at
 * a time, a connect with a time limit against a full listen queue, addresses by hand,
 * keepalive, dual stack. Real sockets on loopback, ports the kernel picks, every wait with a
 * deadline. Run from the repository root: build/test_recipes. */

/* Before cmocka.h, whose fail() macro would rename the fail() of socket_helpers.h. */
#include "address_by_hand.c"
#include "connect_within.c"
#include "dual_stack.c"
#include "framing.c"
#include "keepalive.c"

#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

/* docs/framing.md: messages of every size and lines, sent through a proxy that forwards one
 * byte per send: each recv of the reader gets a byte or a few, yet every message comes out
 * whole, and the stream's end after the last one reads as "no more". */
static const uint32_t MESSAGE_SIZES[] = {0, 1, 5, 1000, 3000, MAX_MESSAGE};
static const char *const LINES[] = {"first", "", "a third line, longer than the others"};

static void framing_messages_and_lines_come_whole_through_one_byte_pieces(void **state) {
    (void)state;
    static char sent[MAX_MESSAGE], received[MAX_MESSAGE];
    for (size_t i = 0; i < sizeof sent; i++)
        sent[i] = (char)('a' + i % 26);
    for (int framing = 0; framing < 2; framing++) { /* 0: length first; 1: lines */
        int port, proxy_port;
        int listener = listen_on_loopback(&port);
        struct child proxy, sender;
        proxy_port = start_proxy(port, ONE_BYTE_PER_SEND, 1, &proxy);
        if (start_child(&sender, false) == 0) { /* the child: send them all, then end the stream */
            signal(SIGPIPE, SIG_IGN);
            struct sockaddr_in address = loopback(proxy_port);
            int sock = socket(AF_INET, SOCK_STREAM, 0);
            bool good =
                sock != -1 && connect(sock, (struct sockaddr *)&address, sizeof address) == 0;
            for (size_t i = 0; framing == 0 && good && i < COUNT(MESSAGE_SIZES); i++)
                good = send_message(sock, sent, MESSAGE_SIZES[i]) == 0;
            for (size_t i = 0; framing == 1 && good && i < COUNT(LINES); i++)
                good = send_line(sock, LINES[i]) == 0;
            _exit(good && shutdown(sock, SHUT_WR) == 0 ? 0 : 1);
        }
        int reader = accept_within(listener, FINISH_TIMEOUT_MS);
        struct timeval limit = {.tv_sec = FINISH_TIMEOUT_MS / 1000}; /* no recv waits longer */
        assert_int_equal(setsockopt(reader, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
        if (framing == 0) {
            for (size_t i = 0; i < COUNT(MESSAGE_SIZES); i++) {
                uint32_t length = UINT32_MAX;
                assert_int_equal(receive_message(reader, received, &length), 1);
                assert_int_equal(length, MESSAGE_SIZES[i]);
                assert_memory_equal(received, sent, length);
            }
            uint32_t length;
            assert_int_equal(receive_message(reader, received, &length), 0); /* the end */
        } else {
            static struct line_reader lines;
            lines = (struct line_reader){.sock = reader};
            char *line;
            for (size_t i = 0; i < COUNT(LINES); i++) {
                assert_int_equal(read_line(&lines, &line), 1);
                assert_string_equal(line, LINES[i]);
            }
            assert_int_equal(read_line(&lines, &line), 0); /* the end */
        }
        finish_child(&sender);
        assert_string_equal(sender.ending, "exit 0");
        close_tracked(reader);
        assert_proxy_finished(&proxy);
        close_tracked(listener);
    }
}

/* docs/framing.md: a length above the limit is refused, and a stream that ends inside a
 * message is an error, not an end. */
static void framing_refuses_a_huge_length_and_a_message_cut_short(void **state) {
    (void)state;
    static char buffer[MAX_MESSAGE];
    int port;
    int listener = listen_on_loopback(&port);
    int sender = connect_to_loopback(port);
    int reader = accept_within(listener, FINISH_TIMEOUT_MS);
    uint32_t huge = htonl(UINT32_MAX), length;
    assert_int_equal(send(sender, &huge, sizeof huge, MSG_NOSIGNAL), (ssize_t)sizeof huge);
    assert_int_equal(receive_message(reader, buffer, &length), -1);
    assert_int_equal(errno, EMSGSIZE);

    uint32_t ten = htonl(10);
    assert_int_equal(send(sender, &ten, sizeof ten, MSG_NOSIGNAL), (ssize_t)sizeof ten);
    assert_int_equal(send(sender, "only 7!", 7, MSG_NOSIGNAL), 7);
    assert_int_equal(shutdown(sender, SHUT_WR), 0);
    assert_int_equal(receive_message(reader, buffer, &length), -1);
    assert_int_equal(errno, EPROTO);
    close_tracked(reader);
    close_tracked(sender);
    close_tracked(listener);
}

/* docs/connect-timeout.md: connects at once to a listener, fails at once where nobody
 * listens, and gives up at its limit against a listener whose queue is full. */
static void connect_within_connects_is_refused_or_times_out_on_a_full_queue(void **state) {
    (void)state;
    enum { LIMIT_MS = 300, BACKLOG = 1, QUEUED = BACKLOG + 1 /* what Linux lets wait */ };
    int port;
    int listener = bound_on_loopback(SOCK_STREAM, &port);
    assert_int_equal(listen(listener, BACKLOG), 0);
    struct sockaddr_in address = loopback(port);
    socklen_t length = sizeof address;

    /* Connected: the kernel completes the handshake; nobody needs to accept. */
    int first = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect_within(first, (struct sockaddr *)&address, length, LIMIT_MS), 0);

    /* Refused: a port where nothing listens answers with a reset, at once: ECONNREFUSED, not
     * the ETIMEDOUT of the limit. */
    struct sockaddr_in nowhere = loopback(refusing_port(SOCK_STREAM));
    int refused = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect_within(refused, (struct sockaddr *)&nowhere, sizeof nowhere, LIMIT_MS),
                     -1);
    assert_int_equal(errno, ECONNREFUSED);

    /* A full queue: Linux drops the SYN, and only our limit ends the wait. */
    for (int i = 1; i < QUEUED; i++)
        assert_int_equal(connect_within(tracked(socket(AF_INET, SOCK_STREAM, 0)),
                                        (struct sockaddr *)&address, length, LIMIT_MS),
                         0);
    int late = tracked(socket(AF_INET, SOCK_STREAM, 0));
    long long start = now_ms();
    int result = connect_within(late, (struct sockaddr *)&address, length, LIMIT_MS);
    int late_errno = errno;
    long long waited = now_ms() - start;
#if defined(__linux__)
    assert_int_equal(result, -1);
    assert_int_equal(late_errno, ETIMEDOUT);
    assert_in_range(waited, LIMIT_MS, slow(FINISH_TIMEOUT_MS)); /* its limit, and no hang */
#else
    (void)result, (void)late_errno, (void)waited; /* BSD lets more wait: no full queue yet */
#endif
    close_tracked(listener);
}

/* docs/connect-timeout.md: a UNIX listener whose queue is full has no handshake to wait for:
 * connect_within fails at once with EAGAIN, long before its limit. */
static void connect_within_fails_at_once_with_eagain_on_a_full_unix_queue(void **state) {
    (void)state;
    enum { LIMIT_MS = 60 * 1000, BACKLOG = 1, QUEUED = BACKLOG + 1 /* what Linux lets wait */ };
    struct sockaddr_un address = unix_address(temp_path("full.sock"));
    int listener = tracked(socket(AF_UNIX, SOCK_STREAM, 0));
    assert_int_equal(bind(listener, (struct sockaddr *)&address, sizeof address), 0);
    assert_int_equal(listen(listener, BACKLOG), 0);
    for (int i = 0; i < QUEUED; i++)
        assert_int_equal(connect_within(tracked(socket(AF_UNIX, SOCK_STREAM, 0)),
                                        (struct sockaddr *)&address, sizeof address, LIMIT_MS),
                         0);
    int late = tracked(socket(AF_UNIX, SOCK_STREAM, 0));
    long long start = now_ms();
    int result = connect_within(late, (struct sockaddr *)&address, sizeof address, LIMIT_MS);
    int late_errno = errno;
    long long waited = now_ms() - start;
    close_tracked(listener);
#if defined(__linux__)
    assert_int_equal(result, -1);
    assert_int_equal(late_errno, EAGAIN);
    assert_true(waited < LIMIT_MS / 2); /* at once: not the limit */
#else
    (void)result, (void)late_errno, (void)waited; /* other systems may queue more */
#endif
}

/* docs/byte-order.md: the port goes in most significant byte first, the address made by hand
 * connects, and it prints back as it was written. */
static void address_by_hand_is_in_network_byte_order_and_connects(void **state) {
    (void)state;
    struct sockaddr_in example = ipv4_address("127.0.0.1", 2525);
    const unsigned char *port_bytes = (const unsigned char *)&example.sin_port;
    assert_int_equal(port_bytes[0], 0x09);
    assert_int_equal(port_bytes[1], 0xdd);
    char text[ADDRESS_TEXT];
    describe_ipv4(&example, text);
    assert_string_equal(text, "127.0.0.1 port 2525");
    /* The old inet_addr() answers the broadcast address and a mistake alike (inet(3)). */
    assert_int_equal(inet_addr("255.255.255.255"), INADDR_NONE);
    assert_int_equal(inet_addr("no address"), INADDR_NONE);

    int port;
    int listener = listen_on_loopback(&port);
    struct sockaddr_in address = ipv4_address("127.0.0.1", (uint16_t)port);
    int client = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(connect(client, (struct sockaddr *)&address, sizeof address), 0);
    close_tracked(accept_within(listener, FINISH_TIMEOUT_MS));
    close_tracked(client);
    close_tracked(listener);
}

/* docs/dead-peers.md: the three numbers are set on the socket (where the system has them). */
static void keep_alive_sets_idle_interval_and_count(void **state) {
    (void)state;
    int sock = tracked(socket(AF_INET, SOCK_STREAM, 0));
    assert_int_equal(keep_alive(sock, 60, 10, 3), 0);
    int on = 0;
    socklen_t size = sizeof on;
    assert_int_equal(getsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &on, &size), 0);
    assert_int_not_equal(on, 0);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
    const int options[] = {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT}, expected[] = {60, 10, 3};
    for (size_t i = 0; i < COUNT(options); i++) {
        int value = 0;
        size = sizeof value;
        assert_int_equal(getsockopt(sock, IPPROTO_TCP, options[i], &value, &size), 0);
        assert_int_equal(value, expected[i]);
    }
#endif
    close_tracked(sock);
}

/* docs/dual-stack.md: bound to ::ffff:127.0.0.1 with IPV6_V6ONLY off, the IPv6 listener takes
 * a client of 127.0.0.1 and sees it as ::ffff:127.0.0.1; with the option on, no bind. */
static void dual_stack_listener_takes_an_ipv4_client_as_a_mapped_address(void **state) {
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe == -1) {
        print_error("no IPv6 here: nothing to test\n");
        skip();
    }
    close(probe);
    /* Port 0: the kernel picks one, and getsockname tells which. */
    int listener = tracked(listen_dual_stack("::ffff:127.0.0.1", 0));
    struct sockaddr_in6 peer;
    socklen_t length = sizeof peer;
    assert_int_equal(getsockname(listener, (struct sockaddr *)&peer, &length), 0);
    int client = connect_to_loopback(ntohs(peer.sin6_port));
    assert_true(wait_for_socket(listener, POLLIN, now_ms() + FINISH_TIMEOUT_MS));
    length = sizeof peer;
    int server = tracked(accept(listener, (struct sockaddr *)&peer, &length));
    char text[INET6_ADDRSTRLEN];
    assert_int_equal(peer.sin6_family, AF_INET6);
    assert_true(IN6_IS_ADDR_V4MAPPED(&peer.sin6_addr));
    assert_non_null(inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text));
    assert_string_equal(text, "::ffff:127.0.0.1");
    close_tracked(server);
    close_tracked(client);
    close_tracked(listener);

    /* IPV6_V6ONLY on: a mapped IPv4 address is not this socket's to bind. */
    int only6 = tracked(socket(AF_INET6, SOCK_STREAM, 0)), on = 1;
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr), 1);
    assert_int_equal(setsockopt(only6, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on), 0);
    assert_int_equal(bind(only6, (struct sockaddr *)&mapped, sizeof mapped), -1);
    close_tracked(only6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(framing_messages_and_lines_come_whole_through_one_byte_pieces),
        TEST(framing_refuses_a_huge_length_and_a_message_cut_short),
        TEST(connect_within_connects_is_refused_or_times_out_on_a_full_queue),
        TEST(connect_within_fails_at_once_with_eagain_on_a_full_unix_queue),
        TEST(address_by_hand_is_in_network_byte_order_and_connects),
        TEST(keep_alive_sets_idle_interval_and_count),
        TEST(dual_stack_listener_takes_an_ipv4_client_as_a_mapped_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
