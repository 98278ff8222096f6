#define _POSIX_C_SOURCE 200809L
/* wire.c: `make wire` shows what the tutorial says in words, packet by packet. It runs each
 * scenario (the tutorial-sized pairs on free ports, and a few sockets of its own where no
 * example does the thing) while tcpdump captures the loopback interface, then prints one line
 * per packet: when (ms since the first), who sent it to whom, its flags or its datagram, the
 * length and first bytes of its data, and the call that caused it. No address, port or
 * sequence number is shown: they change from run to run. docs/wire.md explains each timeline.
 *
 *   build/wire [SCENARIO...]     (all of them by default; -h lists them)
 *
 * A test tool, not a lesson. Exit status: 0 when every scenario went as it should, 1 when one
 * did not (or the capture saw no packet), 2 for a bad command line, no tcpdump, or no
 * permission to capture. Every wait has a deadline; tcpdump is stopped before we exit. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

enum {
    CAPTURE_START_MS = 10 * 1000, /* tcpdump's "listening on lo" */
    SETTLE_MS = 5 * 1000,         /* the last packet of a conversation, once its programs end */
    STEP_MS = 10 * 1000,          /* one step of a scenario: a line printed, a connection */
    SNAP_BYTES = 128,             /* of each packet: the headers and the first bytes of data */
    MAX_PACKETS = 200,
    MAX_ROLES = 4,
    SHOWN_DATA = 12, /* bytes of data shown on a line */
    SMALL_WRITES = 5,
    EXIT_SURROUNDINGS = 2,
};

/* IPv4, TCP, UDP and ICMP header fields, by byte offset (RFC 791, 793, 768, 792). */
enum {
    IP_PROTOCOL = 9,
    PROTOCOL_ICMP = 1,
    PROTOCOL_TCP = 6,
    PROTOCOL_UDP = 17,
    TCP_FLAGS = 13,
    TCP_FIN = 0x01,
    TCP_SYN = 0x02,
    TCP_RST = 0x04,
    TCP_PSH = 0x08,
    TCP_ACK = 0x10,
    UDP_HEADER = 8,
    ICMP_HEADER = 8,
    ICMP_UNREACHABLE = 3,
    ICMP_PORT_UNREACHABLE = 3,
};

/* One of the programs (or sockets) of a scenario: what it is called on the timeline, its port
 * (the server's from its ready line; a client's learnt from its first packet), and the calls
 * of its that put a packet on the wire. */
struct role {
    const char *name;
    int port;
    const char *sends;  /* data or a datagram */
    const char *ends;   /* FIN */
    const char *aborts; /* RST */
    const char *held;   /* data sent right after the peer's ACK (Nagle), or NULL */
};

/* One captured IPv4 packet: when, and its first SNAP_BYTES bytes (IP header on). */
struct packet {
    long long time_us;
    unsigned char bytes[SNAP_BYTES];
    size_t byte_count;
};

/* A packet taken apart. */
struct decoded {
    int protocol;
    int from_port, to_port; /* ICMP: those of the datagram it answers, the other way round */
    int flags;              /* TCP */
    size_t data_length;
    const unsigned char *data; /* its first bytes, up to shown_length */
    size_t shown_length;
    bool port_unreachable;
};

/* tcpdump, what it printed, the packets it saw, and who is who. */
struct capture {
    struct process *tcpdump;
    size_t parsed; /* bytes of tcpdump's output taken apart so far */
    struct packet packets[MAX_PACKETS];
    size_t packet_count;
    struct role roles[MAX_ROLES];
    size_t role_count;
};

static int failures;

/* ---- giving up ---- */

static _Noreturn void give_up(int status) {
    clean_up();
    exit(status);
}

/* ---- reading tcpdump ---- */

/* The role whose port this is, or NULL. */
static struct role *role_of(struct capture *capture, int port) {
    for (size_t i = 0; i < capture->role_count; i++)
        if (capture->roles[i].port == port)
            return &capture->roles[i];
    return NULL;
}

static int port_at(const unsigned char *bytes) { return bytes[0] << 8 | bytes[1]; }

/* Whether all of the packet's bytes that tcpdump shows have come: its IP length, or the snap
 * length if shorter. */
static bool complete(const struct packet *packet) {
    if (packet->byte_count < 20)
        return false;
    size_t total = (size_t)port_at(packet->bytes + 2); /* the IP length, a 16-bit field */
    size_t shown = total < SNAP_BYTES ? total : SNAP_BYTES;
    return packet->byte_count >= shown;
}

/* Take a packet apart (IPv4: the capture filter lets nothing else through). */
static struct decoded decode(const struct packet *packet) {
    const unsigned char *ip = packet->bytes;
    size_t header = (size_t)(ip[0] & 0x0f) * 4;
    size_t total = (size_t)port_at(ip + 2);
    struct decoded d = {.protocol = ip[IP_PROTOCOL]};
    const unsigned char *transport = ip + header;
    size_t data_offset = header;
    if (d.protocol == PROTOCOL_TCP) {
        d.from_port = port_at(transport);
        d.to_port = port_at(transport + 2);
        d.flags = transport[TCP_FLAGS];
        data_offset += (size_t)(transport[12] >> 4) * 4;
    } else if (d.protocol == PROTOCOL_UDP) {
        d.from_port = port_at(transport);
        d.to_port = port_at(transport + 2);
        data_offset += UDP_HEADER;
    } else if (d.protocol == PROTOCOL_ICMP) {
        /* An ICMP error carries the IP header and first 8 bytes of the datagram it answers. */
        const unsigned char *answered = transport + ICMP_HEADER;
        const unsigned char *udp = answered + (size_t)(answered[0] & 0x0f) * 4;
        d.port_unreachable =
            transport[0] == ICMP_UNREACHABLE && transport[1] == ICMP_PORT_UNREACHABLE;
        d.from_port = port_at(udp + 2);
        d.to_port = port_at(udp);
        return d;
    }
    d.data_length = total > data_offset ? total - data_offset : 0;
    d.data = ip + data_offset;
    size_t captured = packet->byte_count > data_offset ? packet->byte_count - data_offset : 0;
    d.shown_length = d.data_length < captured ? d.data_length : captured;
    if (d.shown_length > SHOWN_DATA)
        d.shown_length = SHOWN_DATA;
    return d;
}

/* A client's port is the one that first talks to a known port: give it to the next role
 * whose port is not known yet (roles are listed in the order their first packets come). */
static void learn_ports(struct capture *capture, const struct packet *packet) {
    struct decoded d = decode(packet);
    int ports[2] = {d.from_port, d.to_port};
    for (int i = 0; i < 2; i++) {
        if (role_of(capture, ports[i]) != NULL || role_of(capture, ports[1 - i]) == NULL)
            continue;
        struct role *unknown = role_of(capture, 0);
        if (unknown != NULL)
            unknown->port = ports[i];
    }
}

/* The packets of tcpdump -tt -x: a line "1700000000.123456 IP a.1 > b.2: ..." and then lines
 * "\t0x0010:  4500 003c ..." of the packet in hex, from its IP header on. */
static void take_apart(struct capture *capture) {
    const struct output *out = &capture->tcpdump->out;
    while (out->data != NULL) {
        const char *line = out->data + capture->parsed;
        const char *end = capture->parsed < out->length ? strchr(line, '\n') : NULL;
        if (end == NULL)
            break; /* the rest of the line is still to come */
        capture->parsed += (size_t)(end - line) + 1;
        long long seconds, micros;
        if (sscanf(line, "%lld.%6lld IP ", &seconds, &micros) == 2) {
            if (capture->packet_count == MAX_PACKETS) {
                fprintf(stderr, "wire: more than %d packets in one scenario\n", MAX_PACKETS);
                give_up(EXIT_FAILURE);
            }
            struct packet *packet = &capture->packets[capture->packet_count++];
            packet->time_us = seconds * 1000000 + micros;
            packet->byte_count = 0;
            continue;
        }
        if (capture->packet_count == 0 || line[0] != '\t' || strncmp(line + 1, "0x", 2) != 0)
            continue;
        struct packet *packet = &capture->packets[capture->packet_count - 1];
        const char *hex = strchr(line, ':');
        for (hex = hex ? hex + 1 : end; hex < end && packet->byte_count < SNAP_BYTES;) {
            unsigned int byte;
            if (*hex == ' ') {
                hex++;
            } else if (sscanf(hex, "%2x", &byte) == 1) {
                packet->bytes[packet->byte_count++] = (unsigned char)byte;
                hex += 2;
            } else {
                break;
            }
        }
    }
    for (size_t i = 0; i < capture->packet_count; i++)
        if (complete(&capture->packets[i]))
            learn_ports(capture, &capture->packets[i]);
}

/* ---- when a conversation is over on the wire ---- */

/* How many packets, from the first, have come whole. */
static size_t whole_packets(const struct capture *capture) {
    size_t count = 0;
    while (count < capture->packet_count && complete(&capture->packets[count]))
        count++;
    return count;
}

static bool is_pure_ack(const struct decoded *d) {
    return d->protocol == PROTOCOL_TCP && d->flags == TCP_ACK && d->data_length == 0;
}

/* Whether every one of `connections` TCP connections has ended: reset, or both FINs sent and
 * the second one acknowledged. */
static bool connections_ended(const struct capture *capture, int connections) {
    int ended = 0;
    size_t count = whole_packets(capture);
    for (size_t first = 0; first < count; first++) {
        struct decoded syn = decode(&capture->packets[first]);
        if (syn.protocol != PROTOCOL_TCP || syn.flags != TCP_SYN)
            continue;
        int fins = 0;
        bool over = false;
        for (size_t i = first; i < count && !over; i++) {
            struct decoded d = decode(&capture->packets[i]);
            bool this_connection = (d.from_port == syn.from_port && d.to_port == syn.to_port) ||
                                   (d.from_port == syn.to_port && d.to_port == syn.from_port);
            if (!this_connection)
                continue;
            if (d.flags & TCP_RST)
                over = true;
            else if (fins == 2 && (d.flags & TCP_ACK))
                over = true;
            else if (d.flags & TCP_FIN)
                fins++;
        }
        ended += over;
    }
    return ended >= connections;
}

/* What a scenario waits for on the wire before it stops the capture. */
struct wait_for {
    int connections;  /* this many TCP connections ended */
    int datagrams;    /* or this many UDP datagrams and ICMP messages */
    const char *from; /* or this many bytes of data sent by this role */
    size_t bytes;
    int fins; /* or this many FINs, from anyone */
};

static bool seen(const struct capture *capture, const struct wait_for *what) {
    if (what->connections > 0)
        return connections_ended(capture, what->connections);
    size_t datagrams = 0, bytes = 0, count = whole_packets(capture);
    int fins = 0;
    for (size_t i = 0; i < count; i++) {
        struct decoded d = decode(&capture->packets[i]);
        datagrams += d.protocol != PROTOCOL_TCP;
        fins += d.protocol == PROTOCOL_TCP && (d.flags & TCP_FIN);
        for (size_t r = 0; r < capture->role_count && what->from != NULL; r++)
            if (capture->roles[r].port == d.from_port &&
                strcmp(capture->roles[r].name, what->from) == 0)
                bytes += d.data_length;
    }
    if (what->fins > 0)
        return fins >= what->fins;
    return what->from != NULL ? bytes >= what->bytes : datagrams >= (size_t)what->datagrams;
}

/* Read tcpdump until the packets show what we wait for, or the deadline. */
static bool wait_on_wire(struct capture *capture, struct wait_for what, int timeout_ms) {
    long long deadline = now_ms() + slow(timeout_ms);
    take_apart(capture);
    while (!seen(capture, &what) && capture->tcpdump->stdout_fd != -1 && ms_until(deadline) > 0) {
        read_output(capture->tcpdump, ms_until(deadline));
        take_apart(capture);
    }
    if (seen(capture, &what))
        return true;
    failures++;
    if (capture->packet_count == 0)
        return false; /* print_timeline says so, in one line */
    printf("  (the capture did not show what we waited for within %d ms: the timeline may be "
           "cut short)\n",
           slow(timeout_ms));
    return false;
}

/* ---- starting and stopping tcpdump ---- */

/* Start tcpdump on lo with the filter, and wait for its "listening on lo" line, which says
 * it captures. No permission, or no tcpdump at all: say what is needed, and exit 2. */
static void start_capture(struct capture *capture, const char *filter) {
    /* -n: numbers, not names; -l -U --immediate-mode: each packet printed as it comes;
     * -p: not promiscuous (lo needs none); -tt: seconds since 1970, which we make relative;
     * -x: the packet in hex, which we take apart ourselves; -s: only its first bytes. */
    const char *snap = formatted("%d", SNAP_BYTES);
    capture->tcpdump =
        start_command(ARGV("tcpdump", "-i", "lo", "-n", "-l", "-U", "--immediate-mode", "-p", "-tt",
                           "-x", "-s", snap, filter),
                      NULL);
    capture->parsed = 0;
    capture->packet_count = 0;
    long long deadline = now_ms() + slow(CAPTURE_START_MS);
    struct process *tcpdump = capture->tcpdump;
    while ((tcpdump->err.data == NULL || strstr(tcpdump->err.data, "listening on lo") == NULL) &&
           tcpdump->stderr_fd != -1 && ms_until(deadline) > 0)
        read_output(tcpdump, ms_until(deadline));
    const char *said = tcpdump->err.data ? tcpdump->err.data : "";
    if (strstr(said, "listening on lo") != NULL)
        return;
    if (strstr(said, "ermission") != NULL || strstr(said, "not permitted") != NULL) {
        fprintf(stderr,
                "make wire needs permission to capture on lo: run it as root, or give tcpdump "
                "CAP_NET_RAW: setcap cap_net_raw+ep $(command -v tcpdump)\n");
        give_up(EXIT_SURROUNDINGS);
    }
    fprintf(stderr, "wire: tcpdump did not start capturing on lo; it said: %s\n",
            said[0] ? said : "(nothing)\n");
    give_up(EXIT_SURROUNDINGS);
}

/* Stop tcpdump (SIGINT: it prints what it has, and its counts) and read the rest. */
static void stop_capture(struct capture *capture) {
    struct process *tcpdump = capture->tcpdump;
    kill(tcpdump->pid, SIGINT);
    long long deadline = now_ms() + slow(STEP_MS);
    while ((tcpdump->stdout_fd != -1 || tcpdump->stderr_fd != -1) && ms_until(deadline) > 0)
        read_output(tcpdump, ms_until(deadline));
    finish(tcpdump, slow(STEP_MS));
    take_apart(capture);
}

/* ---- the timeline ---- */

/* The first bytes of data as a C string shows them: "Hello!\n". */
static const char *escaped(const unsigned char *data, size_t length, bool cut) {
    char text[4 * SHOWN_DATA + 8];
    size_t used = 0;
    text[used++] = '"';
    for (size_t i = 0; i < length; i++) {
        unsigned char c = data[i];
        const char *escape = c == '\n' ? "\\n" : c == '"' ? "\\\"" : c == '\\' ? "\\\\" : NULL;
        if (escape != NULL)
            used += (size_t)snprintf(text + used, sizeof text - used, "%s", escape);
        else if (c >= ' ' && c < 0x7f)
            text[used++] = (char)c;
        else
            used += (size_t)snprintf(text + used, sizeof text - used, "\\x%02x", c);
    }
    snprintf(text + used, sizeof text - used, "\"%s", cut ? "..." : "");
    return formatted("%s", text);
}

static const char *name_of(struct capture *capture, int port) {
    const struct role *role = role_of(capture, port);
    return role != NULL ? role->name : "?";
}

/* The flags as words: after the handshake every packet carries ACK, so ACK is shown alone,
 * on a packet that carries nothing else. */
static const char *flag_words(const struct decoded *d) {
    if (d->protocol == PROTOCOL_UDP)
        return "UDP";
    if (d->protocol == PROTOCOL_ICMP)
        return "ICMP";
    if (d->flags & TCP_SYN)
        return d->flags & TCP_ACK ? "SYN-ACK" : "SYN";
    if (d->flags & TCP_RST)
        return "RST";
    if ((d->flags & TCP_FIN) && (d->flags & TCP_PSH))
        return "PSH FIN";
    if (d->flags & TCP_FIN)
        return "FIN";
    if (d->flags & TCP_PSH)
        return "PSH";
    return d->data_length > 0 ? "data" : "ACK";
}

/* The call behind a packet, from what we know of the program that sent it. `handshake` is
 * true for the ACK that completes a connection. */
static const char *cause_of(const struct decoded *d, const struct role *sender, bool handshake,
                            bool after_ack) {
    if (d->protocol == PROTOCOL_ICMP)
        return d->port_unreachable ? "kernel: no socket takes it" : "kernel";
    if (sender == NULL)
        return "?";
    if (d->protocol == PROTOCOL_UDP)
        return sender->sends;
    if (d->flags & TCP_SYN)
        return d->flags & TCP_ACK ? "kernel, for the listening socket" : "connect()";
    if (d->flags & TCP_RST)
        return sender->aborts;
    if ((d->flags & TCP_FIN) && d->data_length > 0)
        return formatted("%s, then %s", sender->sends, sender->ends);
    if (d->flags & TCP_FIN)
        return sender->ends;
    if (d->data_length > 0)
        return after_ack && sender->held != NULL ? sender->held : sender->sends;
    return handshake ? "kernel: handshake done; accept() can return" : "kernel: ack";
}

static void print_heading(const char *name, const char *title) {
    printf("\n== %s: %s ==\n", name, title);
}

/* One line per packet. A capture that saw nothing says so instead (and counts as a failure). */
static void print_timeline(struct capture *capture) {
    if (capture->packet_count == 0) {
        printf("  the capture saw no packet on lo: nothing to show\n");
        failures++;
        return;
    }
    printf("%9s  %-15s   %-15s  %-7s  %-19s  %s\n", "ms", "from", "to", "flags", "data",
           "caused by");
    long long start = capture->packets[0].time_us;
    int last_syn_ack_to = -1;
    struct decoded previous = {0};
    for (size_t i = 0; i < capture->packet_count; i++) {
        struct decoded d = decode(&capture->packets[i]);
        const char *data = "";
        if (d.data_length > 0)
            data = formatted("%zu %s", d.data_length,
                             escaped(d.data, d.shown_length, d.shown_length < d.data_length));
        if (d.port_unreachable)
            data = "port unreachable";
        bool handshake = is_pure_ack(&d) && d.from_port == last_syn_ack_to;
        if (handshake)
            last_syn_ack_to = -1;
        if (d.protocol == PROTOCOL_TCP && d.flags == (TCP_SYN | TCP_ACK))
            last_syn_ack_to = d.to_port;
        const char *from = d.protocol == PROTOCOL_ICMP ? "kernel" : name_of(capture, d.from_port);
        bool after_ack = i > 0 && is_pure_ack(&previous) && previous.to_port == d.from_port;
        printf("%9.3f  %-15s > %-15s  %-7s  %-19s  %s\n",
               (double)(capture->packets[i].time_us - start) / 1000.0, from,
               name_of(capture, d.to_port), flag_words(&d), data,
               cause_of(&d, role_of(capture, d.from_port), handshake, after_ack));
        previous = d;
    }
}

/* A program's own words under the timeline: its stderr, but its ready line, and how it ended. */
static void print_what_it_said(const struct process *program) {
    const char *line = program->err.data;
    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        int length = end ? (int)(end - line) : (int)strlen(line);
        if (strstr(formatted("%.*s", length, line), ": ready on ") == NULL)
            printf("  %s says: %.*s\n", program->label, length, line);
        line = end ? end + 1 : NULL;
    }
    if (program->status == TIMED_OUT)
        printf("  %s did not finish in time\n", program->label);
    else if (program->status > 128)
        printf("  %s is killed by signal %d (%s)\n", program->label, program->status - 128,
               strsignal(program->status - 128));
    else
        printf("  %s exits %d\n", program->label, program->status);
}

static void expect_status(const struct process *program, int status) {
    if (program->status != status) {
        printf("  (expected %s to exit %d)\n", program->label, status);
        failures++;
    }
}

/* ---- our own sockets, for what no example does ---- */

static _Noreturn void die(const char *what) {
    fprintf(stderr, "wire: %s: %s\n", what, strerror(errno));
    give_up(EXIT_FAILURE);
}

/* Our sockets must not pass to the programs we start: a copy held open there would keep a
 * connection from closing as the scenario shows. */
static int ours(int sock) {
    if (sock == -1 || fcntl(sock, F_SETFD, FD_CLOEXEC) == -1)
        die("socket");
    return sock;
}

static struct sockaddr_in loopback_address(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

static int port_of(int sock) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    if (getsockname(sock, (struct sockaddr *)&address, &length) == -1)
        die("getsockname");
    return ntohs(address.sin_port);
}

/* A socket of type bound to 127.0.0.1 and a free port, which *port gets. */
static int bound_socket(int type, int *port) {
    int sock = ours(socket(AF_INET, type, 0));
    struct sockaddr_in address = loopback_address(0);
    if (bind(sock, (struct sockaddr *)&address, sizeof address) == -1)
        die("bind");
    *port = port_of(sock);
    return sock;
}

static int listening_socket(int *port) {
    int listener = bound_socket(SOCK_STREAM, port);
    if (listen(listener, 1) == -1)
        die("listen");
    return listener;
}

static int connected_socket(int port) {
    int sock = ours(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in address = loopback_address(port);
    if (connect(sock, (struct sockaddr *)&address, sizeof address) == -1)
        die("connect");
    return sock;
}

/* Wait until sock is readable (or has an error), up to timeout_ms. */
static bool readable_within(int sock, int timeout_ms) {
    long long deadline = now_ms() + slow(timeout_ms);
    struct pollfd ready = {.fd = sock, .events = POLLIN};
    int result;
    do
        result = poll(&ready, 1, ms_until(deadline));
    while (result == -1 && errno == EINTR);
    return result == 1;
}

static int accepted_within(int listener, int timeout_ms) {
    if (!readable_within(listener, timeout_ms)) {
        fprintf(stderr, "wire: no connection came within %d ms\n", slow(timeout_ms));
        give_up(EXIT_FAILURE);
    }
    int sock = accept(listener, NULL, NULL);
    if (sock == -1)
        die("accept");
    return ours(sock);
}

static void send_all(int sock, const char *text, size_t length) {
    while (length > 0) {
        ssize_t sent = send(sock, text, length, MSG_NOSIGNAL);
        if (sent == -1 && errno != EINTR)
            die("send");
        if (sent > 0) {
            text += sent;
            length -= (size_t)sent;
        }
    }
}

/* What recv() says once data or an error is there: "6 bytes", "0 (end of stream)", or the
 * error. */
static const char *what_recv_returns(int sock) {
    char buffer[64];
    if (!readable_within(sock, STEP_MS))
        return "nothing in time";
    ssize_t received = recv(sock, buffer, sizeof buffer, 0);
    if (received == -1)
        return formatted("-1, %s", strerror(errno));
    return received == 0 ? "0 (end of stream)" : formatted("%zd bytes", received);
}

/* ---- the scenarios ---- */

static void add_role(struct capture *capture, const char *name, int port, const char *sends,
                     const char *ends, const char *aborts) {
    capture->roles[capture->role_count++] =
        (struct role){.name = name, .port = port, .sends = sends, .ends = ends, .aborts = aborts};
}

/* A tutorial-sized server on port 0: its port, from its ready line. */
static int start_server(const char *const argv[], struct process **server) {
    *server = start_program(argv, NULL);
    int port = wait_for_ready_line(*server, slow(READY_TIMEOUT_MS));
    if (port <= 0) {
        fprintf(stderr, "wire: %s did not start\n", argv[0]);
        give_up(EXIT_FAILURE);
    }
    return port;
}

static void udp_pair(struct capture *capture) {
    struct process *receiver;
    int port = start_server(ARGV("udp_receiver", "0"), &receiver);
    add_role(capture, "udp_receiver", port, "sendto()", "", "");
    add_role(capture, "udp_sender", 0, "sendto()", "", "");
    start_capture(capture, formatted("udp port %d", port));
    struct process *sender = start_program(ARGV("udp_sender", formatted("%d", port)), NULL);
    finish_all((struct process *[]){receiver, sender}, 2, slow(FINISH_TIMEOUT_MS));
    wait_on_wire(capture, (struct wait_for){.datagrams = 2}, SETTLE_MS);
    stop_capture(capture);
    print_timeline(capture);
    expect_status(receiver, 0);
    expect_status(sender, 0);
}

/* A UDP port that nothing answers, held by a socket of ours bound to it and connected to
 * itself: it takes datagrams from itself only, so the kernel answers any other with ICMP
 * "port unreachable", and no other program can take the port meanwhile. */
static int refusing_udp_port(int *port) {
    int sock = bound_socket(SOCK_DGRAM, port);
    struct sockaddr_in itself = loopback_address(*port);
    if (connect(sock, (struct sockaddr *)&itself, sizeof itself) == -1)
        die("connect");
    return sock;
}

/* udp_sender to a port where nobody is: the kernel answers with ICMP, and the sender says
 * what, if anything, it heard of it. The tutorial-sized one sends with sendto() on an
 * unconnected socket; the hardened one connects its socket, and sends with send(). */
static void udp_to_nobody(struct capture *capture, bool hardened) {
    int port;
    int holder = refusing_udp_port(&port);
    add_role(capture, "nobody", port, "", "", "");
    add_role(capture, "udp_sender", 0, hardened ? "send()" : "sendto()", "", "");
    start_capture(capture, formatted("udp port %d or icmp", port));
    const char *port_text = formatted("%d", port);
    struct process *sender = start_program(hardened ? ARGV("hardened/udp_sender", "-p", port_text)
                                                    : ARGV("udp_sender", port_text),
                                           NULL);
    wait_on_wire(capture, (struct wait_for){.datagrams = 2}, SETTLE_MS);
    stop_capture(capture);
    finish(sender, slow(FINISH_TIMEOUT_MS));
    print_timeline(capture);
    print_what_it_said(sender);
    expect_status(sender, 1);
    close(holder);
}

static void udp_nobody(struct capture *capture) { udp_to_nobody(capture, false); }

/* The same ICMP becomes ECONNREFUSED on the hardened sender's connected socket. */
static void udp_refused(struct capture *capture) { udp_to_nobody(capture, true); }

static const char TCP_SERVER_ENDS[] = "shutdown(SHUT_WR): tcp_client's recv() returns 0";
static const char TCP_CLIENT_ENDS[] = "close(): tcp_server's recv() returns 0";

/* The tutorial-sized TCP pair under capture, to its end; returns the server's port. */
static int run_tcp_pair(struct capture *capture) {
    struct process *server;
    int port = start_server(ARGV("tcp_server", "0"), &server);
    add_role(capture, "tcp_server", port, "send()", TCP_SERVER_ENDS, "");
    add_role(capture, "tcp_client", 0, "send()", TCP_CLIENT_ENDS, "");
    start_capture(capture, formatted("tcp port %d", port));
    struct process *client = start_program(ARGV("tcp_client", formatted("%d", port)), NULL);
    finish_all((struct process *[]){server, client}, 2, slow(FINISH_TIMEOUT_MS));
    wait_on_wire(capture, (struct wait_for){.connections = 1}, SETTLE_MS);
    stop_capture(capture);
    expect_status(server, 0);
    expect_status(client, 0);
    return port;
}

static void tcp_pair(struct capture *capture) {
    run_tcp_pair(capture);
    print_timeline(capture);
}

/* Our own pair: the client sends, the server closes without reading it. */
static void close_unread(struct capture *capture) {
    int port;
    int listener = listening_socket(&port);
    add_role(capture, "server", port, "send()", "close()", "close() with data unread");
    add_role(capture, "client", 0, "send()", "close()", "close()");
    start_capture(capture, formatted("tcp port %d", port));
    int client = connected_socket(port);
    int server = accepted_within(listener, STEP_MS);
    send_all(client, "Hello?", strlen("Hello?"));
    if (!readable_within(server, STEP_MS))
        printf("  (the server never saw the data)\n");
    close(server); /* "Hello?" still unread: the kernel resets the connection */
    const char *returned = what_recv_returns(client);
    wait_on_wire(capture, (struct wait_for){.connections = 1}, SETTLE_MS);
    stop_capture(capture);
    print_timeline(capture);
    printf("  client's recv() returns %s\n", returned);
    close(client);
    close(listener);
}

/* The hardened tcp_client, stopped by SIGINT while it waits for the rest of the greeting:
 * it aborts its connection (SO_LINGER 0) on the way out. Our server greets it and waits. */
static void abort_on_signal(struct capture *capture) {
    int port;
    int listener = listening_socket(&port);
    add_role(capture, "server", port, "send()", "close()", "close()");
    add_role(capture, "tcp_client", 0, "send()", "close()", "SIGINT: close() with SO_LINGER 0");
    start_capture(capture, formatted("tcp port %d", port));
    struct process *client =
        start_program(ARGV("hardened/tcp_client", "-p", formatted("%d", port)), NULL);
    int server = accepted_within(listener, READY_TIMEOUT_MS);
    send_all(server, "Hello!\n", strlen("Hello!\n"));
    if (wait_for_output(client, "Hello!", slow(STEP_MS)))
        kill(client->pid, SIGINT);
    finish(client, slow(FINISH_TIMEOUT_MS));
    const char *returned = what_recv_returns(server);
    wait_on_wire(capture, (struct wait_for){.connections = 1}, SETTLE_MS);
    stop_capture(capture);
    print_timeline(capture);
    print_what_it_said(client);
    printf("  server's recv() returns %s\n", returned);
    expect_status(client, 128 + SIGINT);
    close(server);
    close(listener);
}

/* The rows of `ss -tan` with this port at either end, each shown as whose side it is. */
static bool show_sockets_on(int port, const char *server, const char *client) {
    struct process *ss = start_command(ARGV("ss", "-tan"), NULL);
    finish(ss, slow(FINISH_TIMEOUT_MS));
    bool in_time_wait = false;
    for (const char *line = ss->out.data; line != NULL && *line != '\0';) {
        char state[32], local[64], peer[64];
        const char *end = strchr(line, '\n');
        if (sscanf(line, "%31s %*s %*s %63s %63s", state, local, peer) == 3) {
            const char *local_port = strrchr(local, ':'), *peer_port = strrchr(peer, ':');
            bool servers_side = local_port && atoi(local_port + 1) == port;
            bool clients_side = peer_port && atoi(peer_port + 1) == port;
            if (servers_side || clients_side)
                printf("  ss -tan: %-10s on %s's side\n", state, servers_side ? server : client);
            in_time_wait |= servers_side && strcmp(state, "TIME-WAIT") == 0;
        }
        line = end ? end + 1 : NULL;
    }
    return in_time_wait;
}

/* After the TCP pair: TIME_WAIT on the side that sent the first FIN, and a new listener on
 * that port. */
static void time_wait(struct capture *capture) {
    if (!on_path("ss")) {
        printf("  wire time-wait needs ss: apt-get install iproute2\n");
        failures++;
        return;
    }
    int port = run_tcp_pair(capture);
    printf("  after the TCP pair (as in tcp-pair), both programs have exited:\n");
    if (!show_sockets_on(port, "tcp_server", "tcp_client")) {
        printf("  (expected TIME-WAIT on tcp_server's side)\n");
        failures++;
    }

    /* The port again, without SO_REUSEADDR: the TIME_WAIT connection holds it. */
    int sock = ours(socket(AF_INET, SOCK_STREAM, 0));
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    int bound = bind(sock, (struct sockaddr *)&any, sizeof any);
    printf("  bind() to the same port without SO_REUSEADDR: %s\n",
           bound == 0 ? "succeeds" : strerror(errno));
    failures += bound == 0 || errno != EADDRINUSE;
    close(sock);

    /* tcp_server sets SO_REUSEADDR: it starts on that port at once. */
    struct process *again = start_program(ARGV("tcp_server", formatted("%d", port)), NULL);
    int ready = wait_for_ready_line(again, slow(READY_TIMEOUT_MS));
    printf("  tcp_server on the same port (it sets SO_REUSEADDR): %s\n",
           ready == port ? "ready at once" : "did not start");
    failures += ready != port;
    stop(again);
}

/* select_server and two select_clients, their steps interleaved. */
static void select_two(struct capture *capture) {
    struct process *server;
    int port = start_server(ARGV("select_server", "0"), &server);
    const char *ends = "shutdown(SHUT_WR) at end of input: select_server's recv() returns 0";
    add_role(capture, "select_server", port, "send()",
             "shutdown(SHUT_WR): the client's recv() returns 0", "");
    add_role(capture, "select_client 1", 0, "send() of a line read", ends, "");
    add_role(capture, "select_client 2", 0, "send() of a line read", ends, "");
    start_capture(capture, formatted("tcp port %d", port));
    const struct run_options typed = {.input_pipe = true};
    const char *port_text = formatted("%d", port);
    /* One step at a time, each seen done before the next starts, so that the packets of the
     * two connections interleave the same way on every run. A greeting is done when the
     * server's FIN that follows it is on the wire; a line, when the server has read it; an
     * end of input, when the server has seen the client go. */
    struct process *first = start_program(ARGV("select_client", port_text), &typed);
    bool steps = wait_for_output(first, "Hello!\n", slow(STEP_MS)) &&
                 wait_on_wire(capture, (struct wait_for){.fins = 1}, STEP_MS);
    struct process *second = start_program(ARGV("select_client", port_text), &typed);
    steps = steps && wait_for_output(second, "Hello!\n", slow(STEP_MS)) &&
            wait_on_wire(capture, (struct wait_for){.fins = 2}, STEP_MS) &&
            send_input(first, "one\n") &&
            wait_for_output(server, "socket sent data\n", slow(STEP_MS)) &&
            send_input(second, "two\n") &&
            wait_for_output(server, "socket sent data\nsocket sent data\n", slow(STEP_MS));
    close_input(first);
    steps = steps && wait_for_output(server, "socket disconnected\n", slow(STEP_MS));
    close_input(second);
    finish_all((struct process *[]){first, second}, 2, slow(FINISH_TIMEOUT_MS));
    wait_on_wire(capture, (struct wait_for){.connections = 2}, SETTLE_MS);
    stop_capture(capture);
    stop(server); /* it waits for five clients: two are enough to show */
    print_timeline(capture);
    if (!steps) {
        printf("  (the conversation did not go step by step as planned)\n");
        failures++;
    }
    expect_status(first, 0);
    expect_status(second, 0);
}

/* Five one-byte send()s in a row, to a reader that acknowledges late (TCP_QUICKACK off: a
 * delayed ACK, as from a peer that has no reply to send yet). */
static void small_writes(struct capture *capture, bool no_delay) {
    int port;
    int listener = listening_socket(&port);
    add_role(capture, "reader", port, "send()", "close()", "");
    add_role(capture, "writer", 0, "send()", "close()", "");
    if (!no_delay)
        capture->roles[1].held = "kernel: the bytes Nagle held, once acked";
    start_capture(capture, formatted("tcp port %d", port));
    int writer = connected_socket(port);
    int reader = accepted_within(listener, STEP_MS);
    int on = 1;
#ifdef TCP_QUICKACK /* Linux's: elsewhere the reader acks as its system does */
    int off = 0;
    if (setsockopt(reader, IPPROTO_TCP, TCP_QUICKACK, &off, sizeof off) == -1)
        die("setsockopt TCP_QUICKACK");
#endif
    if (no_delay && setsockopt(writer, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == -1)
        die("setsockopt TCP_NODELAY");
    for (int i = 0; i < SMALL_WRITES; i++)
        send_all(writer, &"Hello"[i], 1);
    /* All five bytes on the wire before the writer closes, so that its FIN comes alone. */
    wait_on_wire(capture, (struct wait_for){.from = "writer", .bytes = SMALL_WRITES}, STEP_MS);
    close(writer);
    char buffer[SMALL_WRITES + 1];
    ssize_t received; /* read until the end of the stream */
    do
        received = readable_within(reader, STEP_MS) ? recv(reader, buffer, sizeof buffer, 0) : -1;
    while (received > 0);
    close(reader);
    wait_on_wire(capture, (struct wait_for){.connections = 1}, SETTLE_MS);
    stop_capture(capture);
    print_timeline(capture);
    close(listener);
}

static void nagle(struct capture *capture) { small_writes(capture, false); }
static void nodelay(struct capture *capture) { small_writes(capture, true); }

struct scenario {
    const char *name;
    const char *title;
    void (*run)(struct capture *capture);
};

static const struct scenario SCENARIOS[] = {
    {"udp-pair", "udp_receiver 0, then udp_sender PORT", udp_pair},
    {"udp-nobody", "udp_sender PORT, where no one receives", udp_nobody},
    {"udp-refused", "hardened/udp_sender -p PORT (a connected socket), where no one receives",
     udp_refused},
    {"tcp-pair", "tcp_server 0, then tcp_client PORT", tcp_pair},
    {"close-unread", "a client sends; the server closes without reading it", close_unread},
    {"abort", "hardened/tcp_client -p PORT, stopped by SIGINT while it waits", abort_on_signal},
    {"time-wait", "the TCP pair again, then its port, with ss -tan and bind()", time_wait},
    {"select-two", "select_server 0, and two select_clients taking turns", select_two},
    {"nagle", "five one-byte send()s in a row, Nagle's algorithm on (the default)", nagle},
    {"nodelay", "the same five send()s with TCP_NODELAY", nodelay},
};
enum { SCENARIO_COUNT = sizeof SCENARIOS / sizeof SCENARIOS[0] };

static _Noreturn void usage(FILE *to, int status) {
    fprintf(to, "usage: wire [SCENARIO...]   (all of them by default)\n");
    for (size_t i = 0; i < SCENARIO_COUNT; i++)
        fprintf(to, "  %-13s %s\n", SCENARIOS[i].name, SCENARIOS[i].title);
    exit(status);
}

int main(int argc, char *argv[]) {
    const struct scenario *chosen[SCENARIO_COUNT];
    size_t chosen_count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            usage(stdout, EXIT_SUCCESS);
        size_t s = 0;
        while (s < SCENARIO_COUNT && strcmp(argv[i], SCENARIOS[s].name) != 0)
            s++;
        if (s == SCENARIO_COUNT || chosen_count == SCENARIO_COUNT) {
            fprintf(stderr, "wire: no scenario %s\n", argv[i]);
            usage(stderr, EXIT_SURROUNDINGS);
        }
        chosen[chosen_count++] = &SCENARIOS[s];
    }
    if (chosen_count == 0)
        for (size_t s = 0; s < SCENARIO_COUNT; s++)
            chosen[chosen_count++] = &SCENARIOS[s];
    if (!on_path("tcpdump")) {
        fprintf(stderr, "make wire needs tcpdump: apt-get install tcpdump\n");
        return EXIT_SURROUNDINGS;
    }
    /* May tcpdump capture here? Asked before any scenario starts, so that the answer comes
     * alone: a capture on a port nobody uses. */
    static struct capture probe;
    start_capture(&probe, "udp port 0");
    stop_capture(&probe);
    clean_up();
    signal(SIGPIPE, SIG_IGN); /* a reset connection fails a send with EPIPE, not kills us */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < chosen_count; i++) {
        static struct capture capture;
        memset(&capture, 0, sizeof capture);
        print_heading(chosen[i]->name, chosen[i]->title);
        chosen[i]->run(&capture);
        clean_up();
    }
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
