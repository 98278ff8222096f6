#!/bin/sh
# Make sure cmocka (the unit test library) can be compiled against; install it if we can.
cc=${1:-cc}
have_cmocka() {
    printf '#include <stdarg.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <setjmp.h>\n#include <cmocka.h>\nint main(void) { return 0; }\n' \
        | "$cc" -x c - -lcmocka -o /dev/null 2>/dev/null
}
have_cmocka && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "cmocka is missing: installing libcmocka-dev" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcmocka-dev; } >&2
    have_cmocka && exit 0
fi
echo "cmocka is missing: run 'sudo apt-get install libcmocka-dev' (Debian/Ubuntu)" >&2
exit 1
