#!/usr/bin/env bash
# Sync figures for BENCHMARKS.md: a hub and devices as real keepd processes
# on loopback, TLS from a test CA (openssl), devices behind a byte-counting
# TCP proxy. The daemons are the release build; the harness (and the 100
# simulated devices' client side) is built with the cross-test profile
# (optimized, no fat LTO).
#
#   tests/bench/sync.sh                  10,000-change backlogs; 100 devices x 10 pushes of 100
#   KEEPD_SYNC_BENCH_N=2000 tests/bench/sync.sh     smaller backlog
#   KEEPD_SYNC_BENCH_DEVICES / _BATCHES / _BATCH    the simulated fleet
#
# Prints Markdown table rows (copied into BENCHMARKS.md by hand) and writes
# them to tests/bench/results/sync-latest.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
command -v openssl >/dev/null || { echo "sync bench: openssl is needed (apt-get install openssl)" >&2; exit 1; }
echo "[sync bench] building keepd (release)" >&2
cargo build --locked --release -p keepd >&2
bin="$ROOT/target/release/keepd"
out="$ROOT/tests/bench/results/sync-latest.md"
mkdir -p "$(dirname "$out")"
{
    echo "Command: \`tests/bench/sync.sh\`  "
    echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)  "
    echo "Binary: $bin ($($bin --version))"
    echo
    KEEPD_TEST_BIN="$bin" cargo test --locked --profile cross-test -p keepd --test integration \
        sync_bench:: -- --ignored --nocapture --test-threads 1 2>/dev/null | grep -o '| .*|$'
} | tee "$out"
