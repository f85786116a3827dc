#!/usr/bin/env bash
# Builds keepd_<version>_<arch>.deb with cargo-deb and checks it with lintian.
#   packaging/build-deb.sh                             amd64, built here
#   packaging/build-deb.sh aarch64-unknown-linux-gnu   from cross/build.sh's binary
# Output, in cargo's target directory (CARGO_TARGET_DIR, else target/) under
# debian/: the .deb, its CycloneDX SBOM (*.cdx.json) and, when signed,
# detached signatures (*.asc) and the public key (keepd-signing-key.asc).
# Nothing is written anywhere else.
#
# Signing (KEEPD_SIGN):
#   auto (default)  sign with KEEPD_SIGNING_KEY (an armored secret key file)
#                   when it is set; without it the files are left unsigned,
#                   with a loud notice
#   required        a release: KEEPD_SIGNING_KEY must be set and signing must
#                   work, else the build fails
#   throwaway       sign with a throwaway key (checks the signing pipeline)
#   0               don't sign
# lintian: installed with apt-get when missing (as root), else the build
# fails; KEEPD_LINTIAN=0 skips it knowingly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# A relative CARGO_TARGET_DIR means the caller's directory: resolve it first.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    mkdir -p "$CARGO_TARGET_DIR"
    CARGO_TARGET_DIR="$(cd "$CARGO_TARGET_DIR" && pwd)"
    export CARGO_TARGET_DIR
fi
cd "$ROOT"
target="${1:-}"
sign="${KEEPD_SIGN:-auto}"
case "$sign" in
    auto|required|throwaway|0) ;;
    *) echo "KEEPD_SIGN=$sign: want auto, required, throwaway or 0" >&2; exit 2 ;;
esac
if [ "$sign" = required ] && [ -z "${KEEPD_SIGNING_KEY:-}" ]; then
    echo "KEEPD_SIGN=required but KEEPD_SIGNING_KEY is not set (the armored secret key file)" >&2
    exit 1
fi
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
out="$target_dir/debian"
mkdir -p "$out"

# The copyright file is keepd's licence, then SQLCipher's notice (its BSD
# licence asks binaries to carry it).
if [ "$(head -c "$(wc -c < LICENSE)" packaging/copyright)" != "$(cat LICENSE)" ]; then
    echo "packaging/copyright doesn't start with LICENSE: update it (LICENSE, then SQLCipher's notice)" >&2
    exit 1
fi

if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-deb" >&2
    cargo install cargo-deb --locked --quiet
fi
if [ -z "$target" ]; then
    # Built with the features in [package.metadata.deb] (`sqlcipher`:
    # encryption at rest; Depends gains libssl3 through $auto).
    deb=$(cargo deb -p keepd --locked --output "$out/" | tail -n 1)
else
    # Cross-built by cross/build.sh into target/cross/<triple>/release, with
    # the same feature (KEEPD_FEATURES, default sqlcipher).
    deb=$(CARGO_TARGET_DIR="${KEEPD_CROSS_DIR:-$ROOT/target/cross}" cargo deb -p keepd --target "$target" --no-build --output "$out/" | tail -n 1)
fi
[ -f "$deb" ] || { echo "cargo deb reported no package (got '$deb')" >&2; exit 1; }
# The binary's functions laid out by what runs (daemon/link): checked, not assumed.
if [ -z "$target" ]; then
    bash tests/bench/layout.sh "$target_dir/release"
elif [ "$target" = aarch64-unknown-linux-gnu ] && [ -x /usr/lib/llvm-16/bin/ld.lld ]; then
    bash tests/bench/layout.sh "${KEEPD_CROSS_DIR:-$ROOT/target/cross}/$target/release"
fi
echo "==> built $deb"

if [ "${KEEPD_LINTIAN:-1}" = 0 ]; then
    echo "==> lintian skipped (KEEPD_LINTIAN=0)" >&2
else
    if ! command -v lintian >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            echo "==> apt-get install lintian" >&2
            apt-get update -qq || apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null
        else
            echo "lintian is missing: sudo apt-get install lintian (or KEEPD_LINTIAN=0 to skip the check knowingly)" >&2
            exit 1
        fi
    fi
    # initial-upload-closes-no-bugs: a changelog entry for our own first
    # upload names no Debian bug to close.
    lintian --fail-on error,warning --suppress-tags initial-upload-closes-no-bugs "$deb"
    echo "==> lintian clean"
fi

# The release's SBOM (CycloneDX) and detached signatures beside the .deb.
sbom="${deb%.deb}.cdx.json"
python3 packaging/sbom.py ${target:+--target "$target"} > "$sbom"
echo "==> SBOM $sbom ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$sbom") components)"

notice() {
    printf '\n%s\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    printf '!!! %s\n' "$@" >&2
    printf '%s\n\n' "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}
if [ "$sign" = 0 ]; then
    echo "==> not signed (KEEPD_SIGN=0)" >&2
    exit 0
fi
if [ "$sign" = auto ] && [ -z "${KEEPD_SIGNING_KEY:-}" ]; then
    rm -f "$deb.asc" "$sbom.asc"
    notice "UNSIGNED: KEEPD_SIGNING_KEY is not set, so $(basename "$deb") and its SBOM" \
        "have no signature. Don't publish them: set KEEPD_SIGNING_KEY (and" \
        "KEEPD_SIGN=required for a release build)."
    exit 0
fi
if [ "$sign" = throwaway ]; then
    KEEPD_SIGN_THROWAWAY=1 bash packaging/sign.sh "$deb" "$sbom"
else
    bash packaging/sign.sh "$deb" "$sbom"
fi
bash packaging/sign.sh --verify "$out/keepd-signing-key.asc" "$deb" "$sbom"
# A tampered file must fail the check.
tampered="$(mktemp)"
trap 'rm -f "$tampered" "$tampered.asc"' EXIT
cp "$deb" "$tampered"; printf 'x' >> "$tampered"; cp "$deb.asc" "$tampered.asc"
if bash packaging/sign.sh --verify "$out/keepd-signing-key.asc" "$tampered" >/dev/null 2>&1; then
    echo "a tampered .deb passed the signature check" >&2; exit 1
fi
echo "==> a tampered copy fails the check"
