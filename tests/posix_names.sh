#!/bin/sh
# posix_names.sh FILE...: fail if a program uses a name that POSIX.1-2008 does not define (or
# that a system we aim at lacks), outside an #if block (where the program chooses per system).
# A learner on FreeBSD or macOS must be able to build every program; epoll_server.c, Linux only,
# is not given to this check. `make portable` runs it. Each name, and why it is listed:
names='
MSG_DONTWAIT    non-blocking for one call: Linux and the BSDs, not POSIX.1-2008 (use O_NONBLOCK)
MSG_NOSIGNAL    POSIX.1-2008 has it, but macOS does not (ignore SIGPIPE instead)
SO_NOSIGPIPE    the BSDs and macOS, not Linux nor POSIX
accept4         Linux and the BSDs; POSIX only since 2024
SOCK_NONBLOCK   a socket type flag of Linux and the BSDs; POSIX only since 2024
SOCK_CLOEXEC    the same
pipe2           the same
IP_RECVERR      Linux: ICMP errors queued on a socket
TCP_KEEPIDLE    POSIX.1-2008 has SO_KEEPALIVE only; the timings are per system
TCP_KEEPINTVL   the same
TCP_KEEPCNT     the same
TCP_KEEPALIVE   macOS spelling of TCP_KEEPIDLE
SO_PEERCRED     Linux: the peer of a UNIX socket
getpeereid      the BSDs and macOS: the peer of a UNIX socket
epoll_create1   Linux (epoll(7))
epoll_ctl       Linux
epoll_wait      Linux
EPOLLIN         Linux
NI_MAXHOST      glibc and the BSDs: a buffer size POSIX does not define (INET6_ADDRSTRLEN)
NI_MAXSERV      the same
'
status=0
for file in "$@"; do
    echo "$names" | while read -r name why; do
        [ -n "$name" ] || continue
        # Strip comments and strings, then report each use outside #if blocks (an include
        # guard, #ifndef NAME_H, does not count as one).
        awk -v name="$name" -v why="$why" -v file="$file" '
            BEGIN { depth = 0; in_comment = 0 }
            {
                line = $0
                if (in_comment) { if (sub(/.*\*\//, "", line)) in_comment = 0; else next }
                gsub(/\/\*([^*]|\*+[^*\/])*\*+\//, "", line)
                if (sub(/\/\*.*/, "", line)) in_comment = 1
                gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
                if (line ~ /^[ \t]*#[ \t]*ifndef[ \t]+[A-Z_]+_H[ \t]*$/) { guard = 1; next }
                if (line ~ /^[ \t]*#[ \t]*if/) { depth++; next }
                if (line ~ /^[ \t]*#[ \t]*endif/) { if (depth > 0) depth--; next }
                if (depth == 0 && match(line, "(^|[^A-Za-z0-9_])" name "([^A-Za-z0-9_]|$)"))
                    printf "%s:%d: %s outside an #if block: %s\n", file, NR, name, why
            }' "$file"
    done
done > "${TMPDIR:-/tmp}/posix_names.$$"
if [ -s "${TMPDIR:-/tmp}/posix_names.$$" ]; then
    cat "${TMPDIR:-/tmp}/posix_names.$$"
    status=1
else
    echo "POSIX names: every program uses only names of POSIX.1-2008 outside #if blocks"
fi
rm -f "${TMPDIR:-/tmp}/posix_names.$$"
exit $status
