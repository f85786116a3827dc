#!/usr/bin/env bash
# Builds keepd_<version>_<arch>.deb with cargo-deb and checks it with lintian.
#   packaging/build-deb.sh                       amd64, built here
#   packaging/build-deb.sh aarch64-unknown-linux-gnu   from cross/build.sh's binary
# Output: target/debian/*.deb, its CycloneDX SBOM (*.cdx.json) and detached
# signatures (*.asc; KEEPD_SIGNING_KEY=armored secret key, else a throwaway
# key; KEEPD_SIGN=0 skips), and the public key (keepd-signing-key.asc).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
target="${1:-}"
if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-deb" >&2
    cargo install cargo-deb --locked --quiet
fi
mkdir -p target
gzip -9nc packaging/keepd.1 > target/keepd.1.gz
# The copyright file: keepd's licence, then SQLCipher's notice (its BSD
# licence asks binaries to carry it).
cat LICENSE packaging/copyright.sqlcipher > target/copyright
if [ -z "$target" ]; then
    # Built with the features in [package.metadata.deb] (`sqlcipher`:
    # encryption at rest; Depends gains libssl3 through $auto).
    cargo deb -p keepd --locked
else
    # Cross-built by cross/build.sh into target/cross/<triple>/release, with
    # the same feature (KEEPD_FEATURES, default sqlcipher).
    CARGO_TARGET_DIR="$ROOT/target/cross" cargo deb -p keepd --target "$target" --no-build --output target/debian/
fi
deb=$( (ls -t target/debian/*.deb target/cross/debian/*.deb 2>/dev/null || true) | head -n 1)
echo "==> built $deb"
if command -v lintian >/dev/null 2>&1; then
    # initial-upload-closes-no-bugs: a changelog entry for our own first
    # upload names no Debian bug to close.
    lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs "$deb"
    echo "==> lintian clean"
fi

# The release's SBOM (CycloneDX) and detached signatures beside the .deb.
sbom="${deb%.deb}.cdx.json"
python3 packaging/sbom.py ${target:+--target "$target"} > "$sbom"
echo "==> SBOM $sbom ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$sbom") components)"
if [ "${KEEPD_SIGN:-1}" != 0 ]; then
    bash packaging/sign.sh "$deb" "$sbom"
    bash packaging/sign.sh --verify "$(dirname "$deb")/keepd-signing-key.asc" "$deb" "$sbom"
    # A tampered file must fail the check.
    tampered="$(mktemp)"
    cp "$deb" "$tampered"; printf 'x' >> "$tampered"; cp "$deb.asc" "$tampered.asc"
    if bash packaging/sign.sh --verify "$(dirname "$deb")/keepd-signing-key.asc" "$tampered" >/dev/null 2>&1; then
        echo "a tampered .deb passed the signature check" >&2; exit 1
    fi
    rm -f "$tampered" "$tampered.asc"
    echo "==> a tampered copy fails the check"
fi
