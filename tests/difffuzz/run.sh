#!/usr/bin/env bash
# Differential fuzzer: PocketBase (PB_BIN) vs keepd (KEEPD_BIN). See README.md.
#
#   tests/difffuzz/run.sh                  CI run: self-tests, saved regressions, fixed seeds
#   tests/difffuzz/run.sh --seconds 3600   long run with new random seeds
#   tests/difffuzz/run.sh --seed 123       one case (shrinks and prints a difference)
#   tests/difffuzz/run.sh --help           every option
#
# Env: PB_BIN, KEEPD_BIN (default: target/debug/keepd, then release),
#      COMPAT_VENV (the venv shared with tests/compat; created from its requirements.txt)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
COMPAT="$ROOT/tests/compat"
VENV="${COMPAT_VENV:-$COMPAT/.venv}"
PY="${PYTHON:-python3}"

stamp="$VENV/.requirements.sha"
want="$(sha256sum "$COMPAT/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$COMPAT/requirements.txt"
    echo "$want" > "$stamp"
fi
export PB_BIN="${PB_BIN:-$VENV/bin/pocketbase}"

if [ $# -eq 0 ]; then
    # the allowlist's matchers and the masking, without servers
    (cd "$HERE" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider test_known.py)
fi
exec "$VENV/bin/python" "$HERE/fuzz.py" "$@"
