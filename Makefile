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
TESTS     = $(BUILD)/test_helpers $(BUILD)/test_programs

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

# The whole test suite twice more: built with AddressSanitizer and UBSan, then with every
# program (and the header's tests) under valgrind. Any finding fails a test.
check: all $(TESTS)
	$(MAKE) BIN=$(BUILD)/sanitize/bin BUILD=$(BUILD)/sanitize CFLAGS="-O1 -g $(SANITIZE)" test
	@command -v valgrind >/dev/null || { echo "make check needs valgrind: apt-get install valgrind"; exit 1; }
	valgrind -q --error-exitcode=86 --leak-check=full $(BUILD)/test_helpers
	BIN_DIR=$(BIN) VALGRIND=1 $(BUILD)/test_programs

# Remove everything the build made.
clean:
	rm -rf bin build

$(BUILD)/demo: tests/demo.c $(HARNESS)
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ tests/demo.c tests/harness.c

$(BUILD)/test_helpers: tests/test_helpers.c examples/socket_helpers.h | cmocka
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $< -lcmocka

$(BUILD)/test_programs: tests/test_programs.c $(HARNESS) | cmocka
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ tests/test_programs.c tests/harness.c -lcmocka

# cmocka must be there before a test is compiled.
cmocka:
	@sh tests/ensure_cmocka.sh "$(CC)"
