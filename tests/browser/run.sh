#!/usr/bin/env bash
# The console in headless Chromium: node --test over tests/browser/*.test.mjs.
# Builds nothing: uses target/debug/keepd (or KEEPD_BIN) and /usr/bin/chromium
# (or CHROMIUM). Each test file boots its own keepd on an ephemeral loopback
# port in a temp dir with a superuser (lib.mjs). Screenshots go to
# tests/browser/artifacts/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export KEEPD_BIN="$(realpath "${KEEPD_BIN:-$HERE/../../target/debug/keepd}")"
[ -x "$KEEPD_BIN" ] || { echo "no keepd at $KEEPD_BIN (cargo build -p keepd)" >&2; exit 1; }
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || { echo "no Chromium (apt-get install chromium)" >&2; exit 1; }
cd "$HERE"
# Installed again when the lock file changed since the last install.
[ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
rm -rf artifacts
# Arguments: test files to run (default: all of them).
[ $# -gt 0 ] || set -- ./*.test.mjs
exec node --test --test-concurrency=1 --test-timeout=180000 "$@"
