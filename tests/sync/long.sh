#!/usr/bin/env bash
# The longer randomized sync run: the seeded chaos test (a hub, three
# devices behind fault-injecting proxies, kill -9, offline rounds) with more
# rounds, over and over with fresh seeds, until a failure (its seed is
# printed; replay it with KEEPD_SYNC_SEED=N) or the run count is reached.
#
#   tests/sync/long.sh [RUNS] [ROUNDS]      # defaults: 10 runs x 12 rounds
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
runs="${1:-10}"
rounds="${2:-12}"
cargo build --locked -p keepd --tests >/dev/null
for i in $(seq 1 "$runs"); do
    seed="${KEEPD_SYNC_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
    echo "==> run $i/$runs: seed $seed, $rounds rounds" >&2
    if ! KEEPD_SYNC_SEED="$seed" KEEPD_SYNC_ROUNDS="$rounds" \
        cargo test --locked -q -p keepd --test integration sync_chaos:: -- --nocapture >"target/sync-long-$seed.log" 2>&1; then
        echo "FAILED: seed $seed (log: target/sync-long-$seed.log)" >&2
        grep -E "panicked|seed" "target/sync-long-$seed.log" | head -20 >&2
        exit 1
    fi
    rm -f "target/sync-long-$seed.log"
done
echo "ok: $runs runs of $rounds rounds" >&2
