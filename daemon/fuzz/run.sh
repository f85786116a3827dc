#!/usr/bin/env bash
# Runs the filter fuzz target for a bounded time (default 60 s).
#   daemon/fuzz/run.sh [SECONDS]
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them (no toolchain download).
set -euo pipefail
secs="${1:-60}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi
mkdir -p fuzz/corpus/filter
RUSTC_BOOTSTRAP=1 cargo fuzz run filter fuzz/corpus/filter fuzz/seeds/filter -- \
    -max_total_time="$secs" -print_final_stats=1 2>&1 | tail -n 25
