#define _POSIX_C_SOURCE 200809L
/* test_sources.c: the shape of examples/ that a reader relies on. Each program stands alone,
 * so helpers are copied between programs; a copy that drifts from the others (a fix made in
 * one file only) fails here. Also: main comes within the first screen of each program, and
 * the shared header stays small enough to read in two minutes.
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

enum {
    MAIN_BY_LINE = 60,    /* main starts at this line of a program or before */
    HEADER_LINES = 100,   /* the most lines examples/socket_helpers.h may have */
    MAX_FUNCTIONS = 1024, /* in all programs together */
    NAME_SIZE = 64,
};

#define HEADER "examples/socket_helpers.h"

/* Helpers each program has its own way, by design: not compared. */
static const char *const OWN_TO_EACH[] = {"main", "parse_options"};

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
    assert_int_equal(glob("examples/*.c", 0, NULL, &found), 0);
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

static bool own_to_each(const char *name) {
    for (size_t i = 0; i < sizeof OWN_TO_EACH / sizeof OWN_TO_EACH[0]; i++)
        if (strcmp(name, OWN_TO_EACH[i]) == 0)
            return true;
    return false;
}

/* Whether a and b are the same text; if not, say where they part, quiet or not. */
static bool same_copy(const struct function *a, const struct function *b, bool quiet) {
    if (strcmp(a->text, b->text) == 0)
        return true;
    int line = 0;
    size_t i = 0;
    while (a->text[i] == b->text[i]) /* they differ, so this stops */
        line += a->text[i++] == '\n';
    if (!quiet)
        print_error("%s differs between %s:%d and %s:%d, from its line %d on:\n"
                    "    %s: \"%.60s\"\n    %s: \"%.60s\"\n",
                    a->name, a->file, a->line, b->file, b->line, line + 1, a->file, a->text + i,
                    b->file, b->text + i);
    return false;
}

/* How many helpers differ from their first copy in another program. */
static int count_drifted(bool quiet) {
    int drifted = 0;
    for (size_t i = 0; i < function_count; i++) {
        if (own_to_each(functions[i].name))
            continue;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(functions[j].name, functions[i].name) != 0 ||
                strcmp(functions[j].file, functions[i].file) == 0)
                continue;
            drifted += !same_copy(&functions[j], &functions[i], quiet);
            break; /* compared with the first copy: one message per drifted copy */
        }
    }
    return drifted;
}

static void helpers_copied_between_programs_are_identical(void **state) {
    (void)state;
    collect_all();
    int drifted = count_drifted(false);
    free_all();
    if (drifted > 0)
        fail_msg("%d copied helper(s) differ from another program's copy (see above)", drifted);
}

/* The comparison above must notice one changed character in one copy. */
static void a_helper_changed_in_one_program_fails(void **state) {
    (void)state;
    collect_all();
    size_t copied = function_count; /* find a helper that has a copy elsewhere */
    for (size_t i = 0; i < function_count && copied == function_count; i++)
        for (size_t j = 0; j < i; j++)
            if (!own_to_each(functions[i].name) &&
                strcmp(functions[i].name, functions[j].name) == 0 &&
                strcmp(functions[i].file, functions[j].file) != 0) {
                copied = i;
                break;
            }
    assert_true(copied < function_count);
    char *brace = strchr(functions[copied].text, '{');
    assert_non_null(brace);
    brace[1] = brace[1] == 'x' ? 'y' : 'x';
    int drifted = count_drifted(true);
    free_all();
    assert_int_equal(drifted, 1);
}

static void main_starts_within_the_first_screen_of_every_program(void **state) {
    (void)state;
    glob_t found;
    assert_int_equal(glob("examples/*.c", 0, NULL, &found), 0);
    int late = 0;
    for (size_t i = 0; i < found.gl_pathc; i++) {
        char *text = read_file(found.gl_pathv[i]);
        const char *main_line = strstr(text, "\nint main(");
        int line = 1;
        for (const char *at = text; main_line != NULL && at <= main_line; at++)
            line += *at == '\n';
        if (main_line == NULL || line > MAIN_BY_LINE) {
            print_error("%s: main starts at line %d (at most %d)\n", found.gl_pathv[i], line,
                        MAIN_BY_LINE);
            late++;
        }
        free(text);
    }
    globfree(&found);
    assert_int_equal(late, 0);
}

static void the_shared_header_stays_small(void **state) {
    (void)state;
    char *text = read_file(HEADER);
    int lines = 0;
    for (const char *at = text; *at != '\0'; at++)
        lines += *at == '\n';
    free(text);
    if (lines > HEADER_LINES)
        fail_msg("%s has %d lines (at most %d)", HEADER, lines, HEADER_LINES);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(helpers_copied_between_programs_are_identical),
        cmocka_unit_test(a_helper_changed_in_one_program_fails),
        cmocka_unit_test(main_starts_within_the_first_screen_of_every_program),
        cmocka_unit_test(the_shared_header_stays_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
