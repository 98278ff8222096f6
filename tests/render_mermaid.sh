#!/bin/sh
# render_mermaid.sh: `make lint` draws every Mermaid block of the pages with Mermaid's own
# renderer, mmdc (npm package @mermaid-js/mermaid-cli), in Debian's chromium, as GitHub would
# draw them, and fails on any block that does not draw. The pictures land in OUTDIR, to look at.
#   tests/render_mermaid.sh OUTDIR PAGE...
set -u
out=$1
shift
mkdir -p "$out"
browser=$(command -v chromium || command -v chromium-browser)
# Puppeteer drives the browser; as root, chromium needs --no-sandbox. No network is used.
cat >"$out/puppeteer.json" <<EOF
{"executablePath": "$browser",
 "args": ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
          "--disable-component-update", "--disable-sync"]}
EOF
status=0
for page in "$@"; do
    grep -q '^```mermaid' "$page" || continue
    name=$(printf '%s' "$page" | tr '/' '_')
    # Each block alone, named by the line where it starts, so that a failure names its line.
    awk -v out="$out/$name" '
        /^```mermaid/ { file = out "-" NR ".mmd"; printf "" > file; next }
        /^```/ && file != "" { close(file); file = ""; next }
        file != "" { print > file }' "$page"
    for block in "$out/$name"-*.mmd; do
        line=${block##*-}
        line=${line%.mmd}
        if ! mmdc -q -p "$out/puppeteer.json" -i "$block" -o "${block%.mmd}.png" \
            >"${block%.mmd}.log" 2>&1; then
            reason=$(grep -m 1 -i 'error' "${block%.mmd}.log")
            echo "$page:$line: this Mermaid block does not render: $reason"
            status=1
        fi
    done
done
[ "$status" = 0 ] && echo "every Mermaid block rendered: pictures in $out"
exit "$status"
