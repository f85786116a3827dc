#!/usr/bin/env bash
# PocketBase's own dashboard (0.40.6), fetched from the reference binary at
# test time, driven in headless Chromium against PocketBase and then keepd
# (tests/pbdash/pbdash.mjs). Needs: node, tests/pbdash/node_modules
# (`./dev.sh deps`), Debian's chromium, tests/compat/.venv/bin/pocketbase,
# and keepd in KEEPD_BIN (default target/debug/keepd).
# Screenshots and server logs: tests/pbdash/artifacts/<backend>/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export KEEPD_BIN="${KEEPD_BIN:-$ROOT/target/debug/keepd}"
export PB_BIN="${PB_BIN:-$ROOT/tests/compat/.venv/bin/pocketbase}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
for f in "$KEEPD_BIN" "$PB_BIN" "$CHROMIUM"; do
    [ -x "$f" ] || { echo "tests/pbdash: $f is missing (./dev.sh deps; cargo build)" >&2; exit 1; }
done
[ -d "$HERE/node_modules/playwright-core" ] || { echo "tests/pbdash: run ./dev.sh deps (npm ci)" >&2; exit 1; }
# Bounded: both passes take about 2 minutes; a hang must fail the step.
exec timeout 240 node "$HERE/pbdash.mjs"
