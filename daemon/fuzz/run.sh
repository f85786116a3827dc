#!/usr/bin/env bash
# Runs the fuzz targets (filter, view) for a bounded time (default 60 s in all).
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
# Each target gets half the time: the filter language and view queries.
half=$(( (secs + 1) / 2 ))
for target in filter view; do
    mkdir -p "fuzz/corpus/$target"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$half" -print_final_stats=1 2>&1 | tail -n 25
done
