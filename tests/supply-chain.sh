#!/usr/bin/env bash
# Supply-chain checks, offline: cargo-deny (advisories against the RustSec
# snapshot in ../shared/advisory-db, licenses, bans, sources) and a CycloneDX
# SBOM of the daemon.
#   tests/supply-chain.sh [ADVISORY_DB_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
src="${1:-$ROOT/../shared/advisory-db}"
[ -d "$src/crates" ] || { echo "supply-chain: no advisory database at $src" >&2; exit 1; }

if ! cargo deny --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-deny" >&2
    cargo install cargo-deny --locked --quiet
fi

# cargo-deny reads its database as a git checkout under db-path, in a folder
# named after the database URL. Lay the snapshot out that way (a local
# commit of the snapshot's files; no network).
# Every platform's crates in the lock file (cargo deny reads them all; a
# build fetches only the host's).
cargo fetch --locked --quiet

dbroot="$ROOT/target/advisory-dbs"
rm -rf "$dbroot"
mkdir -p "$dbroot"
name=$(cargo deny --offline fetch 2>&1 | grep -o 'advisory-db-[0-9a-f]\{8,\}' | head -n 1 || true)
dest="$dbroot/${name:-advisory-db-3157b0e258782691}"
mkdir -p "$dest"
cp -r "$src"/. "$dest"/
chmod -R u+w "$dest"
(
    cd "$dest"
    git init -q
    git -c user.name=keepd -c user.email=keepd@localhost add -A
    git -c user.name=keepd -c user.email=keepd@localhost commit -qm "$(head -n 1 SNAPSHOT 2>/dev/null || echo snapshot)"
)
echo "==> cargo deny --offline check (advisory snapshot: $(cat "$src/SNAPSHOT" 2>/dev/null))"
cargo deny --offline check advisories licenses bans sources
