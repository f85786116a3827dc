#!/usr/bin/env bash
# Soak: a compressed long run of mixed load against a real keepd (creates,
# updates, deletes, lists, views, file uploads and downloads, batches,
# logins) with realtime (SSE) clients connecting and leaving. Fails on any
# 5xx or unexpected answer, and when the daemon's RSS or open file
# descriptors (/proc/<pid>/fd) grow after the warm-up (the last samples
# above 1.25x the post-warm-up median plus 8 MiB / 8 FDs), or FDs are not
# released once the load stops.
#
#   tests/soak/run.sh [--minutes N] [soak.py args...]     (default 2)
#
# Env: KEEPD_BIN (default target/debug/keepd, built if missing),
#      SOAK_KEEP=1 keeps the data dir and the daemon's log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-python3}"
MINUTES=2
if [ "${1:-}" = "--minutes" ]; then MINUTES="$2"; shift 2; fi

KEEPD_BIN="${KEEPD_BIN:-$ROOT/target/debug/keepd}"
if [ ! -x "$KEEPD_BIN" ]; then
    (cd "$ROOT" && cargo build --locked -p keepd)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keepd-soak.XXXXXX")"
chmod 700 "$WORK"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "soak: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
EMAIL="soak@example.com"
PASSWORD="Soak-Quartz-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
"$KEEPD_BIN" superuser upsert --dir "$WORK/data" "$EMAIL" "$PASSWORD" >/dev/null
"$KEEPD_BIN" serve --dir "$WORK/data" --http "127.0.0.1:$PORT" >"$WORK/keepd.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
    if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/api/health', timeout=1)" 2>/dev/null; then break; fi
    sleep 0.1
done

echo "soak: keepd $("$KEEPD_BIN" --version | head -1) (pid $PID) on 127.0.0.1:$PORT for $MINUTES min"
rc=0
"$PY" "$HERE/soak.py" --base "http://127.0.0.1:$PORT" --pid "$PID" --email "$EMAIL" \
    --password "$PASSWORD" --seconds "$(( MINUTES * 60 ))" "$@" || rc=$?
if ! kill -0 "$PID" 2>/dev/null; then
    echo "soak: FAIL: keepd died; its log:" >&2
    tail -50 "$WORK/keepd.log" >&2
    rc=1
fi
if grep -q "panicked" "$WORK/keepd.log"; then
    echo "soak: FAIL: keepd logged a panic:" >&2
    grep -A5 "panicked" "$WORK/keepd.log" | head -40 >&2
    rc=1
fi
if [ "$rc" != 0 ]; then SOAK_KEEP=1; echo "soak: FAIL (exit $rc)" >&2; fi
exit "$rc"
