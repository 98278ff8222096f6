#!/bin/sh
# extract_recipes.sh: save each recipe of the pages as a reader would, to test its code as it
# stands on the page. A recipe is a ```c block whose first line names its file:
# "/* framing.c: ...". tests/test_recipes.c includes the files (see the Makefile).
#   tests/extract_recipes.sh OUTDIR PAGE...
set -eu
out=$1
shift
mkdir -p "$out"
for page in "$@"; do
    awk -v out="$out" '
        /^```c$/ { inside = 1; first = 1; file = ""; next }
        inside && /^```/ { if (file != "") close(file); inside = 0; next }
        inside && first {
            first = 0
            if (match($0, /^\/\* [a-z_]+\.c:/)) file = out "/" substr($0, 4, RLENGTH - 4)
        }
        inside && file != "" { print > file }' "$page"
done
