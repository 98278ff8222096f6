#define _POSIX_C_SOURCE 200809L
/* test_sources.c: the shape of the programs that a reader relies on.
 * The tutorial-sized programs (examples/): each within its line ceiling, beside a listing of
 * the tutorial; no options but a port; nothing included but system headers and the one
 * header, which stays within 60 lines; no function but main.
 * The hardened programs (examples/hardened/): what several need is written once, in
 * plumbing.c: no function is defined in two files; each program within 350 lines; the three
 * event servers differ in little more than the event API. In both tiers main comes within
 * the first screen of each program, signal handlers are installed with sigaction (never
 * signal(), whose semantics vary), and no name outside POSIX.1-2008 is used but behind an #if
 * (tests/posix_names.sh, which `make portable` runs).
 * Run from the repository root: build/test_sources. */
#include <setjmp.h> /* cmocka.h needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    MAIN_BY_LINE = 60,    /* main starts at this line of a program or before */
    HEADER_LINES = 60,    /* the most lines examples/socket_helpers.h may have */
    HARDENED_LINES = 350, /* the most lines a program of examples/hardened/ may have */
    SELECT_TO_POLL = 111, /* the most lines diff shows between select_ and poll_server */
    POLL_TO_EPOLL = 169,  /* and between poll_ and epoll_server */
    MAX_FUNCTIONS = 1024, /* in all programs together */
    NAME_SIZE = 64,
};

#define HEADER "examples/socket_helpers.h"

/* The tutorial-sized programs and the most lines each may have, comments included: about
 * the length of its listing in the tutorial, plus what C needs that D does for you. */
static const struct {
    const char *path;
    int ceiling;
} SMALL_PROGRAMS[] = {
    {"examples/udp_sender.c", 90},     {"examples/udp_receiver.c", 110},
    {"examples/tcp_client.c", 130},    {"examples/tcp_server.c", 150},
    {"examples/select_server.c", 220}, {"examples/select_client.c", 160},
};
#define SMALL_COUNT (sizeof SMALL_PROGRAMS / sizeof SMALL_PROGRAMS[0])

/* One function of one program: its name, and its text with the comment just above it. */
struct function {
    const char *file;
    char name[NAME_SIZE];
    int line; /* where its comment (or its first line) starts */
    char *text;
};

static struct function functions[MAX_FUNCTIONS];
static size_t function_count;

static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    char *text = NULL;
    size_t length = 0;
    char chunk[4096];
    size_t count;
    while ((count = fread(chunk, 1, sizeof chunk, file)) > 0) {
        text = realloc(text, length + count + 1);
        assert_non_null(text);
        memcpy(text + length, chunk, count);
        length += count;
    }
    fclose(file);
    if (text == NULL)
        text = calloc(1, 1);
    assert_non_null(text);
    text[length] = '\0';
    return text;
}

/* The name of the function a line defines ("static int send_pending(struct client *client,"
 * -> "send_pending"), or false if it defines none: it must start a top-level definition,
 * not end with ';' (a prototype). */
static bool defined_name(const char *line, size_t length, char name[NAME_SIZE]) {
    if (length == 0 || isspace((unsigned char)line[0]) || line[0] == '#' || line[0] == '/' ||
        line[0] == '*' || line[0] == '}' || memchr(line, '(', length) == NULL ||
        line[length - 1] == ';' || memchr(line, '=', length) != NULL)
        return false;
    const char *paren = memchr(line, '(', length);
    const char *end = paren, *start = paren;
    while (start > line && (isalnum((unsigned char)start[-1]) || start[-1] == '_'))
        start--;
    if (start == end || (size_t)(end - start) >= NAME_SIZE)
        return false;
    memcpy(name, start, (size_t)(end - start));
    name[end - start] = '\0';
    return true;
}

/* Every function defined in the file, each with the comment block right above it. */
static void collect_functions(const char *path) {
    char *text = read_file(path);
    const char *lines[8192];
    size_t lengths[8192], count = 0;
    for (char *at = text; *at != '\0' && count < 8192; count++) {
        char *end = strchr(at, '\n');
        lines[count] = at;
        lengths[count] = end ? (size_t)(end - at) : strlen(at);
        at += lengths[count] + (end != NULL);
    }
    for (size_t i = 0; i < count; i++) {
        char name[NAME_SIZE];
        if (!defined_name(lines[i], lengths[i], name))
            continue;
        size_t head_end = i; /* a prototype ends with ';', a definition's head with '{' */
        while (head_end < count && lengths[head_end] > 0 &&
               !strchr(";{", lines[head_end][lengths[head_end] - 1]))
            head_end++;
        if (head_end == count || lengths[head_end] == 0 ||
            lines[head_end][lengths[head_end] - 1] != '{')
            continue;
        size_t first = i, last = i;
        while (first > 0 && lengths[first - 1] > 0 &&
               (lines[first - 1][0] == '/' || lines[first - 1][0] == ' '))
            first--; /* the comment block just above */
        while (last < count && !(lengths[last] == 1 && lines[last][0] == '}'))
            last++;
        assert_true(last < count);
        assert_true(function_count < MAX_FUNCTIONS);
        struct function *function = &functions[function_count++];
        function->file = strdup(path);
        snprintf(function->name, sizeof function->name, "%s", name);
        function->line = (int)first + 1;
        size_t size = (size_t)(lines[last] + lengths[last] - lines[first]);
        function->text = strndup(lines[first], size);
        i = last;
    }
    free(text);
}

static void collect_all(void) {
    glob_t found;
    assert_int_equal(glob("examples/hardened/*.c", 0, NULL, &found), 0);
    for (size_t i = 0; i < found.gl_pathc; i++)
        collect_functions(found.gl_pathv[i]);
    globfree(&found);
    assert_true(function_count > 0);
}

static void free_all(void) {
    for (size_t i = 0; i < function_count; i++) {
        free((char *)functions[i].file);
        free(functions[i].text);
    }
    function_count = 0;
}

/* How many functions are defined in two files of examples/hardened/ (main aside): what
 * several programs need is written once, in plumbing.c. Each one is named (unless quiet). */
static int count_defined_twice(bool quiet) {
    int twice = 0;
    for (size_t i = 0; i < function_count; i++) {
        if (strcmp(functions[i].name, "main") == 0)
            continue;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(functions[j].name, functions[i].name) != 0 ||
                strcmp(functions[j].file, functions[i].file) == 0)
                continue;
            if (!quiet)
                print_error("%s is defined in %s:%d and in %s:%d\n", functions[i].name,
                            functions[j].file, functions[j].line, functions[i].file,
                            functions[i].line);
            twice++;
            break;
        }
    }
    return twice;
}

static void no_function_is_defined_twice_among_the_hardened_programs(void **state) {
    (void)state;
    collect_all();
    int twice = count_defined_twice(false);
    free_all();
    assert_int_equal(twice, 0);
}

/* The check above must notice a function that another file defines too. */
static void a_function_defined_in_two_files_fails(void **state) {
    (void)state;
    collect_all();
    assert_true(function_count >= 2 && function_count < MAX_FUNCTIONS);
    struct function *copy = &functions[function_count++];
    *copy = functions[0];
    copy->file = strdup(strcmp(functions[0].file, "a.c") == 0 ? "b.c" : "a.c");
    copy->text = strdup(functions[0].text);
    int twice = count_defined_twice(true);
    free_all();
    assert_int_equal(twice, strcmp(functions[0].name, "main") == 0 ? 0 : 1);
}

/* The number of the line where text + offset is (the first line is 1). */
static int line_of(const char *text, size_t offset) {
    int line = 1;
    for (size_t i = 0; i < offset && text[i] != '\0'; i++)
        line += text[i] == '\n';
    return line;
}

static int count_lines_of(const char *path) {
    char *text = read_file(path);
    int lines = line_of(text, strlen(text)) - (strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    free(text);
    return lines;
}

/* Where main starts in each program matching pattern; how many start after MAIN_BY_LINE. */
static int count_late_mains(const char *pattern) {
    glob_t found;
    assert_int_equal(glob(pattern, 0, NULL, &found), 0);
    int late = 0;
    for (size_t i = 0; i < found.gl_pathc; i++) {
        if (strstr(found.gl_pathv[i], "/plumbing.c") != NULL)
            continue; /* no program: what the programs share */
        char *text = read_file(found.gl_pathv[i]);
        const char *main_line = strstr(text, "\nint main(");
        int line = main_line ? line_of(text, (size_t)(main_line - text)) + 1 : 0;
        if (main_line == NULL || line > MAIN_BY_LINE) {
            print_error("%s: main starts at line %d (at most %d)\n", found.gl_pathv[i], line,
                        MAIN_BY_LINE);
            late++;
        }
        free(text);
    }
    globfree(&found);
    return late;
}

static void main_starts_within_the_first_screen_of_every_program(void **state) {
    (void)state;
    assert_int_equal(count_late_mains("examples/*.c") + count_late_mains("examples/hardened/*.c"),
                     0);
}

static void the_shared_header_stays_small(void **state) {
    (void)state;
    int lines = count_lines_of(HEADER);
    if (lines > HEADER_LINES)
        fail_msg("%s has %d lines (at most %d)", HEADER, lines, HEADER_LINES);
}

static void each_tutorial_sized_program_stays_within_its_ceiling(void **state) {
    (void)state;
    int over = 0;
    for (size_t i = 0; i < SMALL_COUNT; i++) {
        int lines = count_lines_of(SMALL_PROGRAMS[i].path);
        if (lines > SMALL_PROGRAMS[i].ceiling) {
            print_error("%s has %d lines (at most %d)\n", SMALL_PROGRAMS[i].path, lines,
                        SMALL_PROGRAMS[i].ceiling);
            over++;
        }
    }
    assert_int_equal(over, 0);
}

/* What a tutorial-sized program may not have: a problem's description, or NULL. Only system
 * headers (<...>) and "socket_helpers.h"; no option parsing (argv goes to port_argument and
 * nowhere else); no function but main: what several need is in the header. */
static const char *small_program_problem(const char *text) {
    static const char header[] = "#include \"socket_helpers.h\"";
    for (const char *at = strstr(text, "#include \""); at; at = strstr(at + 1, "#include \""))
        if (strncmp(at, header, strlen(header)) != 0)
            return "includes a file other than system headers and socket_helpers.h";
    if (strstr(text, "getopt") != NULL)
        return "parses options (getopt)";
    int argv_uses = 0;
    for (const char *at = strstr(text, "argv"); at; at = strstr(at + 1, "argv"))
        argv_uses++;
    if (argv_uses != 2 || strstr(text, "int main(int argc, char *argv[])") == NULL ||
        strstr(text, "port_argument(argc, argv, ") == NULL)
        return "uses argv for more than port_argument (a command line beyond the port)";
    for (const char *at = text; (at = strchr(at, '\n')) != NULL; at++) {
        char name[NAME_SIZE];
        const char *end = strchr(at + 1, '\n');
        size_t length = end ? (size_t)(end - at - 1) : strlen(at + 1);
        if (defined_name(at + 1, length, name) && strcmp(name, "main") != 0)
            return "defines a function other than main";
    }
    return NULL;
}

static void tutorial_sized_programs_have_no_options_and_only_the_one_header(void **state) {
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < SMALL_COUNT; i++) {
        char *text = read_file(SMALL_PROGRAMS[i].path);
        const char *problem = small_program_problem(text);
        if (problem != NULL) {
            print_error("%s: %s\n", SMALL_PROGRAMS[i].path, problem);
            bad++;
        }
        free(text);
    }
    assert_int_equal(bad, 0);
}

/* The check above must notice each thing it forbids. */
static void a_small_program_with_an_option_a_helper_or_another_include_fails(void **state) {
    (void)state;
    const char *good = "#include <stdio.h>\n#include \"socket_helpers.h\"\n"
                       "int main(int argc, char *argv[]) {\n"
                       "    const char *port = port_argument(argc, argv, \"1\", 0);\n}\n";
    assert_null(small_program_problem(good));
    assert_non_null(
        small_program_problem("#include \"other.h\"\nint main(int argc, char "
                              "*argv[]) {\n port_argument(argc, argv, \"1\", 0);\n}\n"));
    assert_non_null(small_program_problem("int main(int argc, char *argv[]) {\n getopt(argc, "
                                          "argv, \"p:\");\n port_argument(argc, argv, \"1\", "
                                          "0);\n}\n"));
    assert_non_null(small_program_problem("int main(int argc, char *argv[]) {\n port_argument("
                                          "argc, argv, \"1\", 0);\n puts(argv[1]);\n}\n"));
    assert_non_null(small_program_problem("#include <stdio.h>\nstatic void helper(void) {\n}\n"
                                          "int main(int argc, char *argv[]) {\n port_argument("
                                          "argc, argv, \"1\", 0);\n}\n"));
}

static void each_hardened_program_stays_within_350_lines(void **state) {
    (void)state;
    glob_t found;
    assert_int_equal(glob("examples/hardened/*.c", 0, NULL, &found), 0);
    int over = 0;
    for (size_t i = 0; i < found.gl_pathc; i++) {
        int lines = count_lines_of(found.gl_pathv[i]);
        bool plumbing = strstr(found.gl_pathv[i], "/plumbing.c") != NULL;
        if (!plumbing && lines > HARDENED_LINES) {
            print_error("%s has %d lines (at most %d)\n", found.gl_pathv[i], lines, HARDENED_LINES);
            over++;
        }
    }
    globfree(&found);
    assert_int_equal(over, 0);
}

/* How many lines `diff a b` shows as changed (its lines that start with '<' or '>'). */
static int changed_lines(const char *a, const char *b) {
    char command[256];
    snprintf(command, sizeof command, "diff %s %s", a, b);
    FILE *diff = popen(command, "r");
    assert_non_null(diff);
    int changed = 0, at_line_start = 1, c;
    while ((c = fgetc(diff)) != EOF) {
        changed += at_line_start && (c == '<' || c == '>');
        at_line_start = c == '\n';
    }
    pclose(diff);
    return changed;
}

static void the_three_event_servers_differ_in_little_more_than_the_event_api(void **state) {
    (void)state;
    int select_to_poll =
        changed_lines("examples/hardened/select_server.c", "examples/hardened/poll_server.c");
    int poll_to_epoll =
        changed_lines("examples/hardened/poll_server.c", "examples/hardened/epoll_server.c");
    if (select_to_poll > SELECT_TO_POLL || poll_to_epoll > POLL_TO_EPOLL)
        fail_msg("diff select_server.c poll_server.c: %d changed lines (at most %d); "
                 "diff poll_server.c epoll_server.c: %d (at most %d)",
                 select_to_poll, SELECT_TO_POLL, poll_to_epoll, POLL_TO_EPOLL);
    assert_true(select_to_poll > 0 && poll_to_epoll > 0); /* diff ran, and saw the event APIs */
}

/* ---- signal handlers: sigaction only ---- */

/* The text with its comments, strings and character constants blanked out: what is code. */
static char *code_only(const char *text) {
    char *code = strdup(text);
    assert_non_null(code);
    for (char *at = code; *at != '\0'; at++) {
        char *end = NULL;
        if (at[0] == '/' && at[1] == '*') {
            end = strstr(at + 2, "*/");
            end = end ? end + 2 : at + strlen(at);
        } else if (at[0] == '/' && at[1] == '/')
            end = at + strcspn(at, "\n");
        else if (*at == '"' || *at == '\'') {
            end = at + 1;
            while (*end != '\0' && *end != *at)
                end += end[0] == '\\' && end[1] != '\0' ? 2 : 1;
            end += *end != '\0';
        }
        if (end == NULL)
            continue;
        for (char *blank = at; blank < end; blank++)
            *blank = *blank == '\n' ? '\n' : ' ';
        at = end - 1;
    }
    return code;
}

/* How many calls of signal() the text makes (named, with their lines, unless quiet): signal's
 * restart and reset behaviour is the implementation's (glibc under _POSIX_C_SOURCE gives the
 * System V one: reset to the default, no restart), sigaction's is what its flags say. */
static int count_signal_calls(const char *file, const char *text, bool quiet) {
    char *code = code_only(text);
    int calls = 0;
    for (const char *at = strstr(code, "signal"); at; at = strstr(at + 1, "signal")) {
        const char *after = at + strlen("signal");
        while (*after == ' ' || *after == '\t')
            after++;
        if (*after != '(' || (at > code && (isalnum((unsigned char)at[-1]) || at[-1] == '_')))
            continue; /* another name (stop_on_signal), or no call */
        if (!quiet)
            print_error("%s:%d: calls signal(): install the handler with sigaction\n", file,
                        line_of(code, (size_t)(at - code)));
        calls++;
    }
    free(code);
    return calls;
}

static void no_program_installs_a_signal_handler_with_signal(void **state) {
    (void)state;
    const char *const patterns[] = {"examples/*.[ch]", "examples/hardened/*.[ch]"};
    int calls = 0;
    size_t files = 0;
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        glob_t found;
        assert_int_equal(glob(patterns[p], 0, NULL, &found), 0);
        for (size_t i = 0; i < found.gl_pathc; i++, files++) {
            char *text = read_file(found.gl_pathv[i]);
            calls += count_signal_calls(found.gl_pathv[i], text, false);
            free(text);
        }
        globfree(&found);
    }
    assert_true(files >= 12); /* the two tiers' programs and headers were read */
    assert_int_equal(calls, 0);
}

/* The check above must notice a call, and only a call: not a name that ends in signal, nor
 * one in a comment or a string. */
static void a_call_of_signal_fails_and_its_name_elsewhere_does_not(void **state) {
    (void)state;
    assert_int_equal(
        count_signal_calls("a.c",
                           "#include <signal.h>\nint main(void) {\n"
                           "    signal(SIGINT, SIG_IGN);\n    signal (SIGTERM, h);\n}\n",
                           true),
        2);
    assert_int_equal(count_signal_calls("b.c",
                                        "void stop_on_signal(void); /* not signal(7) */\n"
                                        "int main(void) {\n    stop_on_signal();\n"
                                        "    puts(\"signal(SIGINT, h)\");\n"
                                        "    return sigaction(SIGINT, &action, NULL);\n}\n",
                                        true),
                     0);
}

/* ---- only POSIX.1-2008 names outside #if blocks: tests/posix_names.sh ---- */

/* Run tests/posix_names.sh on the files (a space-separated list); its exit status, and what
 * it printed in output (size bytes at most). */
static int check_posix_names(const char *files, char *output, size_t size) {
    char command[8192];
    int length = snprintf(command, sizeof command, "sh tests/posix_names.sh %s 2>&1", files);
    assert_true(length > 0 && (size_t)length < sizeof command);
    FILE *check = popen(command, "r");
    assert_non_null(check);
    size_t used = fread(output, 1, size - 1, check);
    output[used] = '\0';
    int status = pclose(check);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A file of C in /tmp for the check, its path in path (PATH_SIZE bytes). */
enum { PATH_SIZE = 64 };
static void write_c_file(char path[PATH_SIZE], const char *text) {
    snprintf(path, PATH_SIZE, "/tmp/posix-names-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd != -1);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void every_program_uses_only_posix_names_outside_if_blocks(void **state) {
    (void)state;
    /* As make portable runs it: every program and header, but epoll_server.c (Linux only). */
    const char *const patterns[] = {"examples/*.c", "examples/hardened/*.c", "examples/*.h",
                                    "examples/hardened/*.h"};
    char files[4096] = "";
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        glob_t found;
        assert_int_equal(glob(patterns[p], 0, NULL, &found), 0);
        for (size_t i = 0; i < found.gl_pathc; i++) {
            if (strstr(found.gl_pathv[i], "epoll_server.c") != NULL)
                continue;
            assert_true(strlen(files) + strlen(found.gl_pathv[i]) + 2 < sizeof files);
            strcat(files, found.gl_pathv[i]);
            strcat(files, " ");
        }
        globfree(&found);
    }
    char output[4096];
    int status = check_posix_names(files, output, sizeof output);
    if (status != 0)
        fail_msg("tests/posix_names.sh failed (exit %d):\n%s", status, output);
    assert_string_equal(output, "POSIX names: every program uses only names of POSIX.1-2008 "
                                "outside #if blocks\n");
}

/* The check must notice MSG_DONTWAIT in code, as udp_receiver.c had it before issue 21, and
 * let it be in a comment, a string, or an #if block that chooses per system. */
static void a_name_outside_posix_fails_the_check_unless_behind_an_if(void **state) {
    (void)state;
    char path[PATH_SIZE];
    write_c_file(path, "/* MSG_DONTWAIT (Linux, the BSDs, macOS) makes it fail at once */\n"
                       "static void reply(void) {\n"
                       "    RETRY_ON_EINTR(bytes_sent, sendto(sock, reply, reply_length, "
                       "MSG_DONTWAIT,\n"
                       "                                      (struct sockaddr *)&sender, "
                       "length));\n}\n");
    char output[4096];
    int status = check_posix_names(path, output, sizeof output);
    char expected[256];
    snprintf(expected, sizeof expected,
             "%s:3: MSG_DONTWAIT outside an #if block: non-blocking for one call: Linux and the "
             "BSDs, not POSIX.1-2008 (use O_NONBLOCK)\n",
             path);
    unlink(path);
    assert_int_equal(status, 1);
    assert_string_equal(output, expected);

    write_c_file(path, "#ifdef MSG_NOSIGNAL\n    flags = MSG_NOSIGNAL;\n#else\n"
                       "    flags = 0; /* MSG_NOSIGNAL is missing on macOS */\n#endif\n"
                       "puts(\"no MSG_DONTWAIT here\");\n");
    status = check_posix_names(path, output, sizeof output);
    unlink(path);
    assert_int_equal(status, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_tutorial_sized_program_stays_within_its_ceiling),
        cmocka_unit_test(tutorial_sized_programs_have_no_options_and_only_the_one_header),
        cmocka_unit_test(a_small_program_with_an_option_a_helper_or_another_include_fails),
        cmocka_unit_test(no_function_is_defined_twice_among_the_hardened_programs),
        cmocka_unit_test(a_function_defined_in_two_files_fails),
        cmocka_unit_test(each_hardened_program_stays_within_350_lines),
        cmocka_unit_test(the_three_event_servers_differ_in_little_more_than_the_event_api),
        cmocka_unit_test(main_starts_within_the_first_screen_of_every_program),
        cmocka_unit_test(the_shared_header_stays_small),
        cmocka_unit_test(no_program_installs_a_signal_handler_with_signal),
        cmocka_unit_test(a_call_of_signal_fails_and_its_name_elsewhere_does_not),
        cmocka_unit_test(every_program_uses_only_posix_names_outside_if_blocks),
        cmocka_unit_test(a_name_outside_posix_fails_the_check_unless_behind_an_if),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
