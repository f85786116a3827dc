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
#   tests/bench/sync.sh --postgres       the hub's changes/s on SQLite, on
#       PostgreSQL with one hub process and with two on one schema (Debian's
#       PostgreSQL started in a private temporary directory by the test
#       harness, tests/rust/common/pg.rs, fsync on); 20 devices x 10 pushes
#       of 100 by default, KEEPD_SYNC_BENCH_RUNS (3) runs each, medians.
#       Needs the postgres feature: builds keepd with it.
#
# Prints Markdown table rows (copied into BENCHMARKS.md by hand) and writes
# them to tests/bench/results/sync-latest.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
command -v openssl >/dev/null || { echo "sync bench: openssl is needed (apt-get install openssl)" >&2; exit 1; }
features=()
filter=sync_bench::
out="$ROOT/tests/bench/results/sync-latest.md"
if [ "${1:-}" = --postgres ]; then
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "sync bench: no PostgreSQL server (apt-get install postgresql, or ./dev.sh deps)" >&2; exit 1; }
    features=(--features postgres)
    filter=postgres_sync::figures
    out="$ROOT/tests/bench/results/sync-postgres-latest.md"
fi
echo "[sync bench] building keepd (release${features:+, ${features[*]}})" >&2
cargo build --locked --release -p keepd "${features[@]}" >&2
bin="$ROOT/target/release/keepd"
mkdir -p "$(dirname "$out")"
{
    echo "Command: \`tests/bench/sync.sh $*\`  "
    echo "Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)  "
    echo "Binary: $bin ($($bin --version))"
    echo
    KEEPD_TEST_BIN="$bin" KEEPD_TESTS_STRICT=1 cargo test --locked --profile cross-test -p keepd "${features[@]}" \
        --test integration "$filter" -- --ignored --nocapture --test-threads 1 2>/dev/null | grep -o '| .*|$'
} | tee "$out"
