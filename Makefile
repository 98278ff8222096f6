# The sockets tutorial in C. `make` builds every program into bin/.
# Targets: all demo test check lint bench clean (see README.md).

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wpedantic -Werror
PROGRAMS = udp_receiver udp_sender tcp_server tcp_client select_server
BINARIES = $(PROGRAMS:%=bin/%)
HARNESS  = tests/harness.c tests/harness.h
TESTS    = build/test_helpers build/test_programs

.PHONY: all demo test check lint bench clean cmocka

# Build the five programs.
all: $(BINARIES)

bin/%: examples/%.c examples/socket_helpers.h
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $<

build/demo: tests/demo.c $(HARNESS)
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ tests/demo.c tests/harness.c

build/test_helpers: tests/test_helpers.c examples/socket_helpers.h | cmocka
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ $< -lcmocka

build/test_programs: tests/test_programs.c $(HARNESS) | cmocka
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ tests/test_programs.c tests/harness.c -lcmocka

# Run every pair in this terminal on free ports, each line labelled with its program.
demo: all build/demo
	build/demo

# Run all tests (installs cmocka first if it is missing).
test: all $(TESTS)
	@for t in $(TESTS); do $$t || exit 1; done

# Make sure the cmocka headers and library are there.
cmocka:
	@sh tests/ensure_cmocka.sh "$(CC)"

# Remove everything the build made.
clean:
	rm -rf bin build
