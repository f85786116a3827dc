#!/usr/bin/env bash
# Detached OpenPGP signatures for release files (.deb, SBOM), and their check.
#
#   packaging/sign.sh FILE...          sign: FILE.asc beside each file, with the key in
#                                      KEEPD_SIGNING_KEY (an armored secret key file), or,
#                                      with KEEPD_SIGN_THROWAWAY=1, a throwaway key (a check
#                                      of the pipeline, never a release); the public key is
#                                      written beside the first file (keepd-signing-key.asc)
#   packaging/sign.sh --verify KEY.asc FILE...   verify FILE.asc against the public key
#
# Users verify a download with:  gpg --import keepd-signing-key.asc && gpg --verify keepd_<ver>_<arch>.deb.asc
set -euo pipefail
command -v gpg >/dev/null 2>&1 || { echo "gpg is missing (apt-get install gnupg)" >&2; exit 1; }
GNUPGHOME="$(mktemp -d)"
export GNUPGHOME
chmod 700 "$GNUPGHOME"
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT

if [ "${1:-}" = "--verify" ]; then
    key="$2"; shift 2
    gpg --batch --quiet --import "$key"
    for f in "$@"; do
        gpg --batch --verify "$f.asc" "$f"
        echo "==> signature ok: $f"
    done
    exit 0
fi

[ $# -gt 0 ] || { echo "usage: sign.sh FILE... | --verify KEY.asc FILE..." >&2; exit 2; }
out_dir="$(cd "$(dirname "$1")" && pwd)"
if [ -n "${KEEPD_SIGNING_KEY:-}" ]; then
    [ -r "$KEEPD_SIGNING_KEY" ] || { echo "KEEPD_SIGNING_KEY=$KEEPD_SIGNING_KEY: not a readable file" >&2; exit 1; }
    gpg --batch --quiet --import "$KEEPD_SIGNING_KEY"
elif [ "${KEEPD_SIGN_THROWAWAY:-0}" = 1 ]; then
    echo "==> signing with a throwaway key (a check of the pipeline, not a release)" >&2
    gpg --batch --quiet --passphrase '' --quick-gen-key "keepd release (throwaway) <release@keepd.invalid>" ed25519 sign 1d
else
    echo "no signing key: set KEEPD_SIGNING_KEY (an armored secret key file), or KEEPD_SIGN_THROWAWAY=1 for a throwaway key" >&2
    exit 1
fi
gpg --batch --armor --export > "$out_dir/keepd-signing-key.asc"
for f in "$@"; do
    gpg --batch --yes --armor --detach-sign --output "$f.asc" "$f"
    echo "==> signed $f ($f.asc)"
done
