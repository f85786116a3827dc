#!/bin/bash
# Instructions per record-list request, with and without the list cache
# (callgrind, whole process, counted only while the N requests run).
#   tests/bench/list_cache.sh [KEEPD_BIN] [N]
# Shapes: guest|user × same query repeated|every query distinct, cache on
# (default list_cache_bytes) and off (0). Needs valgrind.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$HERE/../../target/release/keepd}
N=${2:-300}
command -v valgrind >/dev/null || { echo "valgrind is missing: ./dev.sh deps" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no keepd at $BIN: cargo build --release -p keepd" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
run() { # label mode cache_bytes
    local D; D=$(mktemp -d -p "$OUT"); chmod 700 "$D"
    "$BIN" superuser upsert a@b.co 'correct horse battery' --dir "$D" >/dev/null 2>&1
    local PORT=$((20000 + RANDOM % 20000))
    KEEPD_LIST_CACHE_BYTES=$3 valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$1" \
        --instr-atstart=no "$BIN" serve --http 127.0.0.1:$PORT --dir "$D" >/dev/null 2>"$OUT/err.$1" &
    local P=$!
    python3 "$HERE/list_cache.py" $PORT "$N" "$2" $P
    kill -TERM $P; wait $P 2>/dev/null || true
    local total; total=$(grep -h "^totals" "$OUT"/cg.$1* | head -1 | awk '{print $2}')
    printf '%-28s %12d instructions/request\n' "$1" $((total / N))
}
run guest-same-on guest 4194304
run guest-same-off guest 0
run guest-distinct-on guest-distinct 4194304
run guest-distinct-off guest-distinct 0
run user-same-on user 4194304
run user-same-off user 0
