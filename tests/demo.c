#define _POSIX_C_SOURCE 200809L
/* demo.c: `make demo` runs the tutorial's three conversations one after another with the
 * tutorial-sized programs of examples/ (bin/), then select_client, each server on a free port,
 * and shows every line each program prints (stdout and stderr) as it comes, after the program's
 * name: "udp_receiver  | Waiting for data...". A server is given port 0 and says on its ready
 * line which port it got; a client is given that port, its one argument.
 * Exits 0 only if every program exited 0. */
#include <stdio.h>

#include "harness.h"

enum { CLIENT_COUNT = 5 }; /* select_server exits once five clients are done */

static const struct run_options SHOW_LINES = {.echo = true};
static int failures;

/* Start the server on a free port (its argument 0); return the port its ready line names, as
 * text for the clients, or NULL. */
static const char *start_server(const char *name, struct process **server) {
    *server = start_program(ARGV(name, "0"), &SHOW_LINES);
    int port = wait_for_ready_line(*server, READY_TIMEOUT_MS);
    return port > 0 ? formatted("%d", port) : NULL;
}

/* Let everyone finish (or kill them at the deadline); report each one that did not exit 0. */
static void finish_conversation(struct process *const everyone[], size_t count) {
    finish_all(everyone, count, FINISH_TIMEOUT_MS);
    for (size_t i = 0; i < count; i++) {
        if (everyone[i]->status == 0)
            continue;
        failures++;
        if (everyone[i]->status == TIMED_OUT)
            printf("demo: %s did not finish in time\n", everyone[i]->label);
        else
            printf("demo: %s exited with status %d\n", everyone[i]->label, everyone[i]->status);
    }
}

static void datagrams(void) {
    printf("\n== Datagrams: udp_sender sends \"Hello!\" to udp_receiver, which answers ==\n");
    struct process *receiver;
    const char *port = start_server("udp_receiver", &receiver);
    if (port == NULL) {
        finish_conversation(&receiver, 1);
        return;
    }
    struct process *sender = start_program(ARGV("udp_sender", port), &SHOW_LINES);
    finish_conversation((struct process *[]){receiver, sender}, 2);
}

static void stream(void) {
    printf("\n== A stream: tcp_server greets tcp_client, which answers and hangs up ==\n");
    struct process *server;
    const char *port = start_server("tcp_server", &server);
    if (port == NULL) {
        finish_conversation(&server, 1);
        return;
    }
    struct process *client = start_program(ARGV("tcp_client", port), &SHOW_LINES);
    finish_conversation((struct process *[]){server, client}, 2);
}

/* Five clients of one program started at the same time against select_server, each labelled
 * `label` with "%d" for its number (at most 13 characters, to keep the column); input, when
 * not NULL, is each one's stdin, "%d" its number too. How their lines interleave depends on
 * timing: the server serves them all at once. */
static void five_clients(const char *client, const char *label, const char *input) {
    struct process *everyone[1 + CLIENT_COUNT];
    const char *port = start_server("select_server", &everyone[0]);
    if (port == NULL) {
        finish_conversation(everyone, 1);
        return;
    }
    for (int i = 1; i <= CLIENT_COUNT; i++) {
        struct run_options options = {.echo = true,
                                      .input = input ? formatted(input, i) : NULL,
                                      .label = formatted(label, i)};
        everyone[i] = start_program(ARGV(client, port), &options);
    }
    finish_conversation(everyone, 1 + CLIENT_COUNT);
}

/* The tutorial's pairing: "run several copies of the client" to talk to the select server. */
static void events(void) {
    printf("\n== Events: select_server serves %d tcp_clients started at the same time ==\n",
           CLIENT_COUNT);
    five_clients("tcp_client", "tcp_client %d", NULL);
}

/* select_client waits on its input and the network at once: it prints the greeting, and
 * sends the line it reads, which the server notes ("socket sent data"). */
static void keyboard_and_network(void) {
    printf("\n== The keyboard and the network: %d select_clients (client 1 to %d) send a line "
           "each ==\n",
           CLIENT_COUNT, CLIENT_COUNT);
    five_clients("select_client", "client %d", "a line from client %d\n");
}

int main(void) {
    datagrams();
    stream();
    events();
    keyboard_and_network();
    clean_up();
    if (failures > 0) {
        printf("\ndemo: %d program%s failed (see above)\n", failures, failures == 1 ? "" : "s");
        return 1;
    }
    printf("\ndemo: every program exited 0\n");
    return 0;
}
