#!/usr/bin/env bash
# Idle memory of a server with PocketBase's CLI (keepd or PocketBase itself):
# started on a fresh data dir, read 5 s later from /proc/PID/status; rounds
# alternate the binaries given; the median per binary is printed last.
#
#   tests/bench/idle.sh [--rounds N] [--cold] BINARY...
#   e.g. tests/bench/idle.sh target/release/keepd tests/compat/.venv/bin/pocketbase
#
# --cold: each binary's pages are dropped from the page cache before it starts
# (posix_fadvise DONTNEED on the file), so it is read as after a boot. Without
# it, what the kernel maps per fault depends on how the file last came into the
# page cache (a file just copied or linked sits in large folios, mapped whole),
# and the same binary reads 1–2 MiB apart between runs.
set -euo pipefail
rounds=5
cold=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --cold) cold=1; shift ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--rounds N] [--cold] BINARY..." >&2; exit 2; }
work=$(mktemp -d)
pid=
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
for r in $(seq "$rounds"); do
    for bin in "$@"; do
        d=$(mktemp -d "$work/d.XXXX")
        if [ "$cold" = 1 ]; then
            python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$bin"
        fi
        "$bin" serve --http "127.0.0.1:$port" --dir "$d" >/dev/null 2>&1 &
        pid=$!
        sleep 5
        kill -0 "$pid" 2>/dev/null || { echo "$bin exited" >&2; exit 1; }
        awk -v b="$bin" '/^(VmRSS|RssAnon|RssFile):/ {v[$1]=$2} END {print b, v["VmRSS:"], v["RssAnon:"], v["RssFile:"]}' \
            "/proc/$pid/status" | tee -a "$work/all"
        kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
        rm -rf "$d"
    done
done
echo "median of $rounds (KiB): binary VmRSS RssAnon RssFile"
python3 - "$work/all" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    b, *v = line.split()
    rows.setdefault(b, []).append([int(x) for x in v])
for b, vs in rows.items():
    print(b, *(int(statistics.median(col)) for col in zip(*vs)))
PY
