# The sockets tutorial in C. `make` builds every program into bin/; see README.md.

CC       ?= cc
CFLAGS   ?= -O2 -g
STRICT    = -std=c11 -Wall -Wextra -Wpedantic -Werror
SANITIZE  = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
BIN      ?= bin
BUILD    ?= build

# The tutorial's programs (examples/, into bin/) and the same ready for real use, with poll
# and epoll servers (examples/hardened/, into bin/hardened/).
PROGRAMS  = udp_receiver udp_sender tcp_server tcp_client select_server select_client
HARDENED  = $(PROGRAMS) poll_server epoll_server
# epoll is Linux only: elsewhere make leaves epoll_server out, and says so.
ifneq ($(shell uname -s),Linux)
HARDENED := $(filter-out epoll_server,$(HARDENED))
$(info epoll_server skipped: epoll is Linux only; use poll_server)
endif
BINARIES  = $(PROGRAMS:%=$(BIN)/%) $(HARDENED:%=$(BIN)/hardened/%)
PLUMBING  = examples/hardened/plumbing.c examples/hardened/plumbing.h
HARNESS   = tests/harness.c tests/harness.h
CHECKS    = tests/checks.c tests/checks.h
TESTS     = $(patsubst tests/%.c,$(BUILD)/%,$(wildcard tests/test_*.c))
LOAD      = $(BUILD)/echo_load
SOURCES   = $(PROGRAMS:%=examples/%.c) $(HARDENED:%=examples/hardened/%.c) \
            examples/hardened/plumbing.c
# cppcheck 2.10 ignores C11 _Noreturn (its bug 15007), so we spell it the GNU way for it.
CPPCHECK  = cppcheck --error-exitcode=1 --enable=warning,style,performance,portability \
            --inline-suppr --std=c11 -q --library=posix -D'_Noreturn=__attribute__((noreturn))'
PORTABLE  = gcc clang musl-gcc
# In a recipe: name the Debian package of each missing TOOL:PACKAGE in $(1), then fail.
need      = missing=0; for pair in $(1); do command -v $${pair%%:*} >/dev/null || { \
            echo "make $@ needs $${pair%%:*}: apt-get install $${pair\#*:}"; missing=1; }; \
            done; exit $$missing

.PHONY: all demo test check lint portable bench wire clean cmocka

# Build the programs.
all: $(BINARIES)

$(BIN)/%: examples/%.c examples/socket_helpers.h
	@mkdir -p $(BIN)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $<

# Each hardened program is its file and the plumbing they share.
$(BIN)/hardened/%: examples/hardened/%.c $(PLUMBING)
	@mkdir -p $(BIN)/hardened
	$(CC) $(STRICT) $(CFLAGS) -o $@ $< examples/hardened/plumbing.c

# Run every pair in this terminal on free ports, each line labelled with its program.
demo: all $(BUILD)/demo
	$(BUILD)/demo

# Build and run all tests; installs cmocka first when it is missing.
test: all $(TESTS) $(LOAD)
	@for t in $(TESTS); do CC="$(CC)" BIN_DIR=$(BIN) $$t || exit 1; done

# The whole test suite twice more, with no test skipped for a missing tool: built with
# AddressSanitizer and UBSan, then with the tests and every program under valgrind.
# D_PEERS=DIR (test and check) also runs each pair against the tutorial's D programs in DIR.
check: all $(TESTS) $(LOAD)
	REQUIRE_TOOLS=1 $(MAKE) BIN=$(BUILD)/sanitize/bin BUILD=$(BUILD)/sanitize \
	    CFLAGS="-O1 -g $(SANITIZE)" test
	@command -v valgrind >/dev/null || { echo "make check needs valgrind: apt-get install valgrind"; exit 1; }
	@for t in $(TESTS); do \
	    REQUIRE_TOOLS=1 VALGRIND=1 BIN_DIR=$(BIN) valgrind -q --error-exitcode=86 $$t || exit 1; \
	done

# Static analysis of examples/, the format of examples/ and tests/, and every Mermaid diagram
# of the pages drawn by Mermaid itself (pictures in build/mermaid): any finding fails.
lint:
	@$(call need,gcc:gcc cppcheck:cppcheck clang-tidy:clang-tidy clang-format:clang-format \
	    chromium:chromium)
	@command -v mmdc >/dev/null || { echo "make lint needs mmdc: PUPPETEER_SKIP_DOWNLOAD=1 \
	    npm install -g @mermaid-js/mermaid-cli (it drives Debian's chromium)"; exit 1; }
	for source in $(SOURCES); do gcc $(STRICT) -fanalyzer -c -o /dev/null $$source || exit 1; done
	$(CPPCHECK) $(SOURCES)
	@# one file at a time: clang-tidy 14 confuses va_lists across the files of one run
	for source in $(SOURCES); do clang-tidy --quiet $$source -- $(STRICT) || exit 1; done
	clang-format --dry-run --Werror examples/*.[ch] examples/hardened/*.[ch] tests/*.[ch]
	sh tests/render_mermaid.sh $(BUILD)/mermaid README.md docs/*.md

# Build the programs with gcc, clang and musl into build/portable/CC: C11 and POSIX only; and
# no name outside POSIX.1-2008 (or missing on macOS) but behind an #if (tests/posix_names.sh).
portable:
	@$(call need,gcc:gcc clang:clang musl-gcc:musl-tools)
	sh tests/posix_names.sh $(filter-out %/epoll_server.c,$(SOURCES)) examples/*.h examples/hardened/*.h
	for cc in $(PORTABLE); do $(MAKE) --no-print-directory CC=$$cc BIN=$(BUILD)/portable/$$cc \
	    CFLAGS="-O2 -pedantic-errors -D_POSIX_C_SOURCE=200809L" all || exit 1; done

# Measure the echo servers and the TCP pair against nc on loopback: one table (docs/benchmarks.md).
bench: all $(LOAD) $(BUILD)/bench_epoll_baseline $(BUILD)/bench
	@$(call need,/usr/bin/time:time nc:netcat-openbsd)
	BIN_DIR=$(BIN) $(BUILD)/bench $(BUILD)
	@if [ -f tests/bench_nodelay.c ]; then $(MAKE) --no-print-directory $(BUILD)/bench_nodelay \
	    && BIN_DIR=$(BIN) $(BUILD)/bench_nodelay; fi

# Each pair's packets on lo, captured by tcpdump and explained line by line (docs/wire.md);
# SCENARIO=NAME runs one (build/wire -h lists them). Needs tcpdump, and root or CAP_NET_RAW.
wire: all $(BUILD)/wire
	BIN_DIR=$(BIN) $(BUILD)/wire $(SCENARIO)

# Remove everything the build made.
clean:
	rm -rf bin build

$(BUILD)/demo $(BUILD)/wire: $(BUILD)/%: tests/%.c $(HARNESS)
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $< tests/harness.c

# The load generator and the benchmark's programs: tools of the tests, not lessons.
$(LOAD): tests/echo_load.c $(PLUMBING)
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $< examples/hardened/plumbing.c

$(BUILD)/bench_epoll_baseline: tests/bench_epoll_baseline.c
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $<

$(BUILD)/bench $(BUILD)/bench_nodelay: $(BUILD)/%: tests/%.c $(HARNESS)
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -o $@ $< tests/harness.c

# Some tests compile an example in (to reach its static helpers): any example may be one.
$(BUILD)/test_%: tests/test_%.c examples/socket_helpers.h $(PLUMBING) $(SOURCES) $(HARNESS) $(CHECKS) | cmocka
	@mkdir -p $(BUILD)
	$(CC) $(STRICT) $(CFLAGS) -Iexamples -I$(BUILD)/recipes -o $@ $< tests/harness.c \
	    tests/checks.c -lcmocka

# test_wire runs build/wire, the program of make wire, from beside itself.
$(BUILD)/test_wire: $(BUILD)/wire

# test_recipes runs the recipes of docs/, saved from the pages as a reader would save them.
$(BUILD)/test_recipes: $(BUILD)/recipes/saved
$(BUILD)/recipes/saved: tests/extract_recipes.sh $(wildcard docs/*.md)
	sh tests/extract_recipes.sh $(BUILD)/recipes docs/*.md && touch $@

# cmocka must be there before a test is compiled.
cmocka:
	@sh tests/ensure_cmocka.sh "$(CC)"
