#!/usr/bin/env bash
# Checks that the newest release (or profiling) link of keepd laid its functions
# out by daemon/link/order.txt: daemon/link/cc.sh writes what it placed beside the
# binary it linked (`deps/keepd-*.layout`). Fails when no link was laid out (the
# wrapper not used, LLD not used) or when fewer than MIN_SHARE percent (default 70)
# of the listed functions were found in the build — the list has gone stale:
# make it again with `python3 daemon/link/profile.py` (README, "Device builds and packages").
#
#   tests/bench/layout.sh [TARGET_DIR/PROFILE]    default: target/release
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:-$ROOT/target/release}"
min="${MIN_SHARE:-70}"
f=$(ls -t "$dir"/deps/keepd-*.layout 2>/dev/null | head -1 || true)
if [ -z "$f" ]; then
    echo "layout: no $dir/deps/keepd-*.layout: the binary was not laid out (daemon/link/cc.sh not the linker, or not LLD)" >&2
    exit 1
fi
read -r _ found _ _ listed _ <"$f"
echo "layout: $(cat "$f") ($f)"
if [ "$listed" -le 0 ] || [ $((found * 100)) -lt $((listed * min)) ]; then
    echo "layout: fewer than $min% of daemon/link/order.txt found in the build: make it again (python3 daemon/link/profile.py)" >&2
    exit 1
fi
