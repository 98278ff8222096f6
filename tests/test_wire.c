#define _POSIX_C_SOURCE 200809L
/* test_wire.c: `make wire` (tests/wire.c, built as build/wire beside this test). Each
 * scenario's packets, in order, by who sent them, their flags or datagram, their data and the
 * call behind them: never their timing, nor the kernel's plain ACKs, whose number and place
 * may vary (the ACK that completes a handshake, and the one Nagle waits for, do not). Then
 * that docs/wire.md shows each timeline as make wire prints it, and that bad surroundings get
 * a clear word: no tcpdump, no permission to capture, a capture that sees nothing.
 * Needs tcpdump and the right to capture on lo (root, or CAP_NET_RAW): without them the
 * tests are skipped with one line that says what is missing (failed under REQUIRE_TOOLS=1).
 * Run from the repository root: build/test_wire (BIN_DIR=dir picks other binaries). */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

enum {
    WIRE_TIMEOUT_MS = 120 * 1000, /* every scenario, one after another (udp-nobody waits 5 s) */
    TIME_COLUMN = 11,             /* "   41.563  ": the milliseconds, which vary */
    CAUSE_COLUMN = 76,            /* where "caused by" starts on a packet's line */
};

static char wire_path[4096]; /* build/wire, beside this test */
static const char PAGE[] = "docs/wire.md";

/* ---- running build/wire ---- */

/* Run build/wire with args (NULL-terminated), with PATH set to path unless it is NULL. */
static struct process *run_wire(const char *const argv[], const char *path) {
    char *saved_path = strdup(getenv("PATH") ? getenv("PATH") : "");
    assert_non_null(saved_path);
    if (path != NULL)
        setenv("PATH", path, 1);
    struct process *wire = start_command(argv, NULL);
    setenv("PATH", saved_path, 1);
    free(saved_path);
    finish(wire, slow(WIRE_TIMEOUT_MS));
    return wire;
}

/* What build/wire prints for every scenario: run once, kept for all the tests. */
static char *all_timelines;
static int wire_status;

/* Skip the test (fail it under REQUIRE_TOOLS=1) unless tcpdump is there and may capture; the
 * first time, run build/wire to get every timeline. */
static void need_capture(void) {
    NEED_TOOL("tcpdump", "tcpdump");
    static bool permitted, tried;
    if (!tried) {
        tried = true;
        struct process *wire = run_wire(ARGV(wire_path), NULL);
        permitted = !(wire->status == 2 && wire->err.data != NULL &&
                      strstr(wire->err.data, "needs permission to capture") != NULL);
        wire_status = wire->status;
        all_timelines = strdup(wire->out.data ? wire->out.data : "");
        if (permitted && wire->err.length > 0)
            fprintf(stderr, "build/wire said on stderr: %s\n", wire->err.data);
    }
    if (permitted)
        return;
    fprintf(stderr, "this test needs permission to capture on lo: run it as root, or setcap "
                    "cap_net_raw+ep $(command -v tcpdump)\n");
    if (tools_required())
        fail_msg("no permission to capture, and REQUIRE_TOOLS=1");
    skip();
}

/* The part of text that a scenario printed: from its heading "\n== name: " to the next. */
static const char *block_of(const char *text, const char *name) {
    const char *heading = formatted("\n== %s: ", name);
    const char *start = strstr(text, heading);
    if (start == NULL)
        return NULL;
    start++;
    const char *next = strstr(start + 1, "\n== ");
    return formatted("%.*s", (int)(next ? (size_t)(next - start) : strlen(start)), start);
}

/* Whether the line is a packet's: it starts with the milliseconds ("    0.000  "). */
static bool is_packet_line(const char *line, size_t length) {
    double ms;
    return length > CAUSE_COLUMN && line[TIME_COLUMN - 2] == ' ' && sscanf(line, "%lf", &ms) == 1 &&
           line[TIME_COLUMN - 1] == ' ';
}

/* The block as the tests compare it: each packet line without its milliseconds and with its
 * runs of spaces made one; a plain ACK of the kernel ("kernel: ack") left out, unless
 * keep_acks; every other line as it is. */
static const char *compared(const char *block, bool keep_acks) {
    if (block == NULL) {
        fail_msg("build/wire printed no such scenario; it printed:\n%s", all_timelines);
        return "";
    }
    size_t size = strlen(block) + 1;
    char *result = malloc(size);
    assert_non_null(result);
    size_t used = 0;
    for (const char *line = block; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        bool packet = is_packet_line(line, length);
        bool plain_ack = packet && strncmp(line + CAUSE_COLUMN, "kernel: ack", 11) == 0;
        if (!plain_ack || keep_acks) {
            const char *from = packet ? line + TIME_COLUMN : line;
            bool space = false;
            for (const char *c = from; c < line + length; c++) {
                if (packet && *c == ' ' && (space || c == from))
                    continue;
                space = *c == ' ';
                result[used++] = *c;
            }
            while (packet && used > 0 && result[used - 1] == ' ')
                used--;
            result[used++] = '\n';
        }
        line = end ? end + 1 : line + length;
    }
    result[used] = '\0';
    const char *kept = formatted("%s", result);
    free(result);
    return kept;
}

/* The packets (and only those) of a scenario, as compared(), that involve `who` (NULL: all). */
static const char *packets_of(const char *name, const char *who) {
    const char *block = block_of(all_timelines, name);
    if (block == NULL) {
        fail_msg("build/wire printed no scenario %s; it printed:\n%s", name, all_timelines);
        return "";
    }
    char *result = calloc(strlen(block) + 1, 1);
    assert_non_null(result);
    for (const char *line = block; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        if (is_packet_line(line, length) &&
            (who == NULL || strstr(formatted("%.*s", (int)length, line), who)))
            strncat(result, line, length + 1);
        line = end ? end + 1 : line + length;
    }
    const char *kept = compared(result, false);
    free(result);
    return kept;
}

/* The lines of a scenario that are not packets: what its programs said, ss, bind. */
static const char *notes_of(const char *name) {
    const char *block = block_of(all_timelines, name);
    assert_non_null(block);
    const char *table = strstr(block, "caused by\n");
    const char *start = strchr(block, '\n') + 1; /* after the heading */
    if (table != NULL)
        start = table + strlen("caused by\n");
    while (*start == ' ' && is_packet_line(start, strcspn(start, "\n")))
        start += strcspn(start, "\n") + 1;
    return start;
}

/* The first line where what we expect and what make wire printed differ, for a failure
 * message that fits. */
static const char *first_difference(const char *expected, const char *printed) {
    int line = 1;
    while (*expected != '\0' && *printed != '\0') {
        size_t expected_length = strcspn(expected, "\n"), printed_length = strcspn(printed, "\n");
        if (expected_length != printed_length || strncmp(expected, printed, expected_length) != 0)
            break;
        expected += expected_length + (expected[expected_length] == '\n');
        printed += printed_length + (printed[printed_length] == '\n');
        line++;
    }
    return formatted("line %d (times and plain ACKs left out): expected \"%.*s\", make wire "
                     "prints \"%.*s\"",
                     line, (int)strcspn(expected, "\n"), expected, (int)strcspn(printed, "\n"),
                     printed);
}

/* Fail unless the scenario's packets (those that involve `who`, or all) are `expected`. */
static void check_packets(const char *name, const char *who, const char *expected) {
    const char *printed = packets_of(name, who);
    if (strcmp(printed, expected) != 0)
        fail_msg("scenario %s%s%s, %s", name, who ? ", packets of " : "", who ? who : "",
                 first_difference(expected, printed));
}
#define assert_packets(name, who, expected) check_packets(name, who, expected)

/* ---- each scenario's packets ---- */

static void udp_pair_is_two_datagrams_and_no_handshake(void **state) {
    (void)state;
    need_capture();
    assert_packets("udp-pair", NULL,
                   "udp_sender > udp_receiver UDP 6 \"Hello!\" sendto()\n"
                   "udp_receiver > udp_sender UDP 7 \"got it!\" sendto()\n");
}

static void
datagram_to_nobody_gets_port_unreachable_which_the_unconnected_sender_never_hears(void **state) {
    (void)state;
    need_capture();
    assert_packets("udp-nobody", NULL,
                   "udp_sender > nobody UDP 6 \"Hello!\" sendto()\n"
                   "kernel > udp_sender ICMP port unreachable kernel: no socket takes it\n");
    assert_string_equal(notes_of("udp-nobody"),
                        "  udp_sender says: udp_sender: recvfrom: no reply within 5 seconds (is "
                        "udp_receiver running?)\n  udp_sender exits 1\n");
}

static void connected_udp_sender_reads_the_port_unreachable_as_connection_refused(void **state) {
    (void)state;
    need_capture();
    assert_packets("udp-refused", NULL,
                   "udp_sender > nobody UDP 6 \"Hello!\" send()\n"
                   "kernel > udp_sender ICMP port unreachable kernel: no socket takes it\n");
    assert_string_equal(notes_of("udp-refused"),
                        "  udp_sender says: udp_sender: recvmsg: Connection refused\n"
                        "  udp_sender exits 1\n");
}

static void tcp_pair_shakes_hands_talks_and_each_side_ends_with_a_fin(void **state) {
    (void)state;
    need_capture();
    assert_packets("tcp-pair", NULL,
                   "tcp_client > tcp_server SYN connect()\n"
                   "tcp_server > tcp_client SYN-ACK kernel, for the listening socket\n"
                   "tcp_client > tcp_server ACK kernel: handshake done; accept() can return\n"
                   "tcp_server > tcp_client PSH 6 \"Hello!\" send()\n"
                   "tcp_server > tcp_client FIN shutdown(SHUT_WR): tcp_client's recv() returns 0\n"
                   "tcp_client > tcp_server PSH 12 \"Thanks! Bye.\" send()\n"
                   "tcp_client > tcp_server FIN close(): tcp_server's recv() returns 0\n");
}

static void close_with_data_unread_sends_a_reset_and_the_peer_reads_econnreset(void **state) {
    (void)state;
    need_capture();
    assert_packets("close-unread", NULL,
                   "client > server SYN connect()\n"
                   "server > client SYN-ACK kernel, for the listening socket\n"
                   "client > server ACK kernel: handshake done; accept() can return\n"
                   "client > server PSH 6 \"Hello?\" send()\n"
                   "server > client RST close() with data unread\n");
    assert_string_equal(notes_of("close-unread"),
                        "  client's recv() returns -1, Connection reset by peer\n");
}

static void hardened_client_stopped_by_sigint_aborts_its_connection_with_a_reset(void **state) {
    (void)state;
    need_capture();
    assert_packets("abort", NULL,
                   "tcp_client > server SYN connect()\n"
                   "server > tcp_client SYN-ACK kernel, for the listening socket\n"
                   "tcp_client > server ACK kernel: handshake done; accept() can return\n"
                   "server > tcp_client PSH 7 \"Hello!\\n\" send()\n"
                   "tcp_client > server RST SIGINT: close() with SO_LINGER 0\n");
    const char *notes = notes_of("abort");
    assert_non_null(strstr(notes, "  tcp_client says: tcp_client: stopped by SIGINT\n"));
    assert_non_null(strstr(notes, "  server's recv() returns -1, Connection reset by peer\n"));
}

static void
server_that_sent_the_first_fin_keeps_time_wait_and_only_so_reuseaddr_binds_again(void **state) {
    (void)state;
    need_capture();
    NEED_TOOL("ss", "iproute2"); /* the time-wait scenario reads the table of sockets */
    assert_string_equal(notes_of("time-wait"),
                        "  after the TCP pair (as in tcp-pair), both programs have exited:\n"
                        "  ss -tan: TIME-WAIT  on tcp_server's side\n"
                        "  bind() to the same port without SO_REUSEADDR: Address already in use\n"
                        "  tcp_server on the same port (it sets SO_REUSEADDR): ready at once\n");
}

static void select_server_talks_with_two_clients_each_connection_in_its_order(void **state) {
    (void)state;
    need_capture();
    const char *const clients[] = {"select_client 1", "select_client 2"};
    const char *const lines[] = {"one", "two"};
    for (int i = 0; i < 2; i++) {
        const char *c = clients[i];
        assert_packets(
            "select-two", c,
            formatted("%s > select_server SYN connect()\n"
                      "select_server > %s SYN-ACK kernel, for the listening socket\n"
                      "%s > select_server ACK kernel: handshake done; accept() can return\n"
                      "select_server > %s PSH 7 \"Hello!\\n\" send()\n"
                      "select_server > %s FIN shutdown(SHUT_WR): the client's recv() returns 0\n"
                      "%s > select_server PSH 4 \"%s\\n\" send() of a line read\n"
                      "%s > select_server FIN shutdown(SHUT_WR) at end of input: "
                      "select_server's recv() returns 0\n",
                      c, c, c, c, c, c, lines[i], c));
    }
}

static void nagle_holds_small_writes_until_the_ack_and_sends_them_in_one_segment(void **state) {
    (void)state;
    need_capture();
    assert_packets("nagle", NULL,
                   "writer > reader SYN connect()\n"
                   "reader > writer SYN-ACK kernel, for the listening socket\n"
                   "writer > reader ACK kernel: handshake done; accept() can return\n"
                   "writer > reader PSH 1 \"H\" send()\n"
                   "writer > reader PSH 4 \"ello\" kernel: the bytes Nagle held, once acked\n"
                   "writer > reader FIN close()\n"
                   "reader > writer FIN close()\n");
    /* The ACK that Nagle waits for, which the comparison above leaves out with the others:
     * "ello" goes right after it, and the reader sends nothing else in between. */
    const char *with_acks = compared(block_of(all_timelines, "nagle"), true);
    assert_non_null(strstr(with_acks, "writer > reader PSH 1 \"H\" send()\n"
                                      "reader > writer ACK kernel: ack\n"
                                      "writer > reader PSH 4 \"ello\""));
}

static void tcp_nodelay_sends_each_small_write_in_a_segment_of_its_own(void **state) {
    (void)state;
    need_capture();
    assert_packets("nodelay", NULL,
                   "writer > reader SYN connect()\n"
                   "reader > writer SYN-ACK kernel, for the listening socket\n"
                   "writer > reader ACK kernel: handshake done; accept() can return\n"
                   "writer > reader PSH 1 \"H\" send()\n"
                   "writer > reader PSH 1 \"e\" send()\n"
                   "writer > reader PSH 1 \"l\" send()\n"
                   "writer > reader PSH 1 \"l\" send()\n"
                   "writer > reader PSH 1 \"o\" send()\n"
                   "writer > reader FIN close()\n"
                   "reader > writer FIN close()\n");
}

static void wire_exits_0_when_every_scenario_went_as_it_should(void **state) {
    (void)state;
    need_capture();
    NEED_TOOL("ss", "iproute2"); /* the time-wait scenario reads the table of sockets */
    if (wire_status != 0)
        fail_msg("build/wire exited %d; it printed:\n%s", wire_status, all_timelines);
}

/* ---- the page ---- */

static void wire_md_shows_each_timeline_as_wire_prints_it(void **state) {
    (void)state;
    need_capture();
    NEED_TOOL("ss", "iproute2"); /* the time-wait scenario reads the table of sockets */
    FILE *page = fopen(PAGE, "r");
    assert_non_null(page);
    char *text = NULL;
    size_t size = 0;
    ssize_t length = getdelim(&text, &size, '\0', page);
    fclose(page);
    assert_true(length > 0);
    int blocks = 0;
    for (const char *fence = strstr(text, "```text\n== "); fence != NULL;
         fence = strstr(fence + 1, "```text\n== ")) {
        const char *start = fence + strlen("```text\n");
        const char *end = strstr(start, "```");
        assert_non_null(end);
        const char *block = formatted("%.*s", (int)(end - start), start);
        char name[64];
        assert_int_equal(sscanf(block, "== %63[^:]:", name), 1);
        const char *printed = block_of(all_timelines, name);
        if (printed == NULL)
            fail_msg("%s shows scenario %s, which build/wire does not print", PAGE, name);
        const char *expected = compared(printed, false);
        const char *on_page = compared(block, false);
        if (strcmp(on_page, expected) != 0)
            fail_msg("%s, scenario %s: %s", PAGE, name, first_difference(on_page, expected));
        blocks++;
    }
    free(text);
    /* Every scenario has its section. */
    struct process *help = run_wire(ARGV(wire_path, "-h"), NULL);
    assert_int_equal(help->status, 0);
    assert_int_equal(blocks, count_lines(&help->out, NULL) - 1);
}

/* ---- bad surroundings ---- */

/* A directory of our own for PATH, holding a fake tcpdump with this shell script (or none). */
static const char *path_with_tcpdump(const char *script) {
    const char *dir = temp_path("bin");
    assert_int_equal(mkdir(dir, 0700), 0);
    if (script != NULL) {
        const char *fake = formatted("%s/tcpdump", dir);
        FILE *file = fopen(fake, "w");
        assert_non_null(file);
        fprintf(file, "#!/bin/sh\n%s", script);
        fclose(file);
        assert_int_equal(chmod(fake, 0700), 0);
        return formatted("%s:/usr/bin:/bin", dir);
    }
    return dir;
}

static void wire_without_tcpdump_names_its_package_and_exits_2(void **state) {
    (void)state;
    struct process *wire = run_wire(ARGV(wire_path), path_with_tcpdump(NULL));
    assert_int_equal(wire->status, 2);
    assert_string_equal(wire->err.data, "make wire needs tcpdump: apt-get install tcpdump\n");
    assert_int_equal(wire->out.length, 0);
}

static void wire_without_permission_to_capture_says_what_is_needed_and_exits_2(void **state) {
    (void)state;
    /* What tcpdump says when it may not open a packet socket. */
    const char *path = path_with_tcpdump(
        "echo \"tcpdump: lo: You don't have permission to capture on that device\" >&2\n"
        "echo '(socket: Operation not permitted)' >&2\nexit 1\n");
    struct process *wire = run_wire(ARGV(wire_path, "tcp-pair"), path);
    assert_int_equal(wire->status, 2);
    assert_string_equal(wire->err.data,
                        "make wire needs permission to capture on lo: run it as root, or give "
                        "tcpdump CAP_NET_RAW: setcap cap_net_raw+ep $(command -v tcpdump)\n");
}

static void capture_that_sees_no_packet_says_so_instead_of_an_empty_timeline(void **state) {
    (void)state;
    /* A tcpdump that starts, says it listens, and never sees a packet until stopped. */
    const char *path = path_with_tcpdump("echo 'listening on lo, link-type EN10MB' >&2\n"
                                         "exec sleep 60\n");
    /* Not under valgrind: its deadline for the packets that never come would be ten times as
     * long, and this is about the capture, not the programs. */
    char *valgrind = getenv("VALGRIND") ? strdup(getenv("VALGRIND")) : NULL;
    unsetenv("VALGRIND");
    struct process *wire = run_wire(ARGV(wire_path, "udp-pair"), path);
    if (valgrind != NULL)
        setenv("VALGRIND", valgrind, 1);
    free(valgrind);
    assert_int_equal(wire->status, 1);
    assert_non_null(wire->out.data);
    assert_non_null(strstr(wire->out.data, "  the capture saw no packet on lo: nothing to show\n"));
    assert_null(strstr(wire->out.data, "caused by"));
}

static void wire_lists_its_scenarios_and_refuses_an_unknown_one(void **state) {
    (void)state;
    struct process *wire = run_wire(ARGV(wire_path, "no-such-scenario"), NULL);
    assert_int_equal(wire->status, 2);
    assert_non_null(strstr(wire->err.data, "wire: no scenario no-such-scenario\nusage: wire"));
}

int main(int argc, char *argv[]) {
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    /* Not formatted(): its strings last one test only. */
    snprintf(wire_path, sizeof wire_path, "%.*s/wire", slash ? (int)(slash - argv[0]) : 1,
             slash ? argv[0] : ".");
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        TEST(wire_without_tcpdump_names_its_package_and_exits_2),
        TEST(wire_without_permission_to_capture_says_what_is_needed_and_exits_2),
        TEST(capture_that_sees_no_packet_says_so_instead_of_an_empty_timeline),
        TEST(wire_lists_its_scenarios_and_refuses_an_unknown_one),
        TEST(udp_pair_is_two_datagrams_and_no_handshake),
        TEST(datagram_to_nobody_gets_port_unreachable_which_the_unconnected_sender_never_hears),
        TEST(connected_udp_sender_reads_the_port_unreachable_as_connection_refused),
        TEST(tcp_pair_shakes_hands_talks_and_each_side_ends_with_a_fin),
        TEST(close_with_data_unread_sends_a_reset_and_the_peer_reads_econnreset),
        TEST(hardened_client_stopped_by_sigint_aborts_its_connection_with_a_reset),
        TEST(server_that_sent_the_first_fin_keeps_time_wait_and_only_so_reuseaddr_binds_again),
        TEST(select_server_talks_with_two_clients_each_connection_in_its_order),
        TEST(nagle_holds_small_writes_until_the_ack_and_sends_them_in_one_segment),
        TEST(tcp_nodelay_sends_each_small_write_in_a_segment_of_its_own),
        TEST(wire_exits_0_when_every_scenario_went_as_it_should),
        TEST(wire_md_shows_each_timeline_as_wire_prints_it),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    free(all_timelines);
    return failed;
}
