# The sockets tutorial in C. `make` builds every program into bin/; see README.md.

CC       ?= cc
CFLAGS   ?= -O2 -g
STRICT    = -std=c11 -Wall -Wextra -Wpedantic -Werror
SANITIZE  = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
BIN      ?= bin
BUILD    ?= build

PROGRAMS  = udp_receiver udp_sender tcp_server tcp_client select_server
BINARIES  = $(PROGRAMS:%=$(BIN)/%)
HARNESS   = tests/harness.c tests/harness.h
TESTS     = $(patsubst tests/%.c,$(BUILD)/%,$(wildcard tests/test_*.c))

.PHONY: all demo test check clean cmocka

# Build the five programs.
all: $(BINARIES)

$(BIN)/%: examples/%.c examples/socket_helpers.h
	@mkdir -p $(BIN)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $<

# Run every pair in this terminal on free ports, each line labelled with its program.
demo: all $(BUILD)/demo
	$(BUILD)/demo

# Build and run all tests; installs cmocka first when it is missing.
test: all $(TESTS)
	@for t in $(TESTS); do BIN_DIR=$(BIN) $$t || exit 1; done

# The whole test suite twice more, with no test skipped for a missing tool: built with
# AddressSanitizer and UBSan, then with the tests and every program under valgrind.
check: all $(TESTS)
	REQUIRE_TOOLS=1 $(MAKE) BIN=$(BUILD)/sanitize/bin BUILD=$(BUILD)/sanitize \
	    CFLAGS="-O1 -g $(SANITIZE)" test
	@command -v valgrind >/dev/null || { echo "make check needs valgrind: apt-get install valgrind"; exit 1; }
	@for t in $(TESTS); do \
	    REQUIRE_TOOLS=1 VALGRIND=1 BIN_DIR=$(BIN) valgrind -q --error-exitcode=86 $$t || exit 1; \
	done

# Remove everything the build made.
clean:
	rm -rf bin build

$(BUILD)/demo: tests/demo.c $(HARNESS)
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ tests/demo.c tests/harness.c

$(BUILD)/test_%: tests/test_%.c examples/socket_helpers.h $(HARNESS) | cmocka
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $< tests/harness.c -lcmocka

# cmocka must be there before a test is compiled.
cmocka:
	@sh tests/ensure_cmocka.sh "$(CC)"
