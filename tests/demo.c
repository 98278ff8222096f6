#define _POSIX_C_SOURCE 200809L
/* demo.c: `make demo` runs the tutorial's three conversations one after another, then the echo
 * server with select_client, each server on a free port, and shows every line each program prints
 * (stdout and stderr) as it comes, after the program's name: "udp_receiver  | Waiting for data...".
 * Exits 0 only if every program exited 0. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

enum { CLIENT_COUNT = 5 }; /* select_server's default -n */

static const struct run_options SHOW_LINES = {.echo = true};
static int failures;

/* Wait for the server's ready line and return its port as text for the clients, or NULL. */
static const char *port_of(struct process *server) {
    int port = wait_for_ready_line(server, READY_TIMEOUT_MS);
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
    struct process *receiver = start_program(ARGV("udp_receiver", "-p", "0"), &SHOW_LINES);
    const char *port = port_of(receiver);
    if (port == NULL) {
        finish_conversation(&receiver, 1);
        return;
    }
    struct process *sender = start_program(ARGV("udp_sender", "-p", port), &SHOW_LINES);
    finish_conversation((struct process *[]){receiver, sender}, 2);
}

static void stream(void) {
    printf("\n== A stream: tcp_server greets tcp_client, which answers and hangs up ==\n");
    struct process *server = start_program(ARGV("tcp_server", "-p", "0"), &SHOW_LINES);
    const char *port = port_of(server);
    if (port == NULL) {
        finish_conversation(&server, 1);
        return;
    }
    struct process *client = start_program(ARGV("tcp_client", "-p", port), &SHOW_LINES);
    finish_conversation((struct process *[]){server, client}, 2);
}

/* The tutorial's pairing: five tcp_clients connected at the same time. Each one reads its
 * reply from a pipe (-m -), which we fill only once all five have the greeting: so the
 * server shows five "accepting new socket" before the first "socket disconnected". */
static void events(void) {
    printf("\n== Events: select_server serves %d tcp_clients connected at the same time ==\n",
           CLIENT_COUNT);
    struct process *everyone[1 + CLIENT_COUNT];
    everyone[0] = start_program(ARGV("select_server", "-p", "0"), &SHOW_LINES);
    const char *port = port_of(everyone[0]);
    if (port == NULL) {
        finish_conversation(everyone, 1);
        return;
    }
    for (int i = 1; i <= CLIENT_COUNT; i++) {
        struct run_options options = {
            .echo = true, .input_pipe = true, .label = formatted("tcp_client %d", i)};
        everyone[i] = start_program(ARGV("tcp_client", "-m", "-", "-p", port), &options);
    }
    /* All five accepted (their lines come in a row: no client can leave yet), and greeted. */
    char accepted[CLIENT_COUNT * sizeof "accepting new socket\n"] = "";
    for (int i = 1; i <= CLIENT_COUNT; i++)
        strcat(accepted, "accepting new socket\n");
    bool all_in = wait_for_output(everyone[0], accepted, FINISH_TIMEOUT_MS);
    for (int i = 1; all_in && i <= CLIENT_COUNT; i++)
        all_in = wait_for_output(everyone[i], "Received from server", FINISH_TIMEOUT_MS);
    for (int i = 1; i <= CLIENT_COUNT; i++) {
        send_input(everyone[i], formatted("Thanks from client %d!", i));
        close_input(everyone[i]);
    }
    finish_conversation(everyone, 1 + CLIENT_COUNT);
}

/* The echo server (-e) and select_client, which sends its input and prints what comes back. */
static void echo(void) {
    printf("\n== Echo: select_server -e sends back what select_client sends ==\n");
    struct process *server =
        start_program(ARGV("select_server", "-e", "-n", "1", "-p", "0"), &SHOW_LINES);
    const char *port = port_of(server);
    if (port == NULL) {
        finish_conversation(&server, 1);
        return;
    }
    struct run_options options = {.echo = true, .input = "a line typed\nand another\n"};
    struct process *client = start_program(ARGV("select_client", "-p", port), &options);
    finish_conversation((struct process *[]){server, client}, 2);
}

int main(void) {
    datagrams();
    stream();
    events();
    echo();
    clean_up();
    if (failures > 0) {
        printf("\ndemo: %d program%s failed (see above)\n", failures, failures == 1 ? "" : "s");
        return 1;
    }
    printf("\ndemo: every program exited 0\n");
    return 0;
}
