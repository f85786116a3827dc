#!/usr/bin/env bash
# Detached OpenPGP signatures for release files (.deb, SBOM), and their check.
#
#   packaging/sign.sh FILE...          sign: FILE.asc beside each file, with the key in
#                                      KEEPD_SIGNING_KEY (an armored secret key file);
#                                      without it, a throwaway key is made (CI), its
#                                      public half written to target/debian/keepd-signing-key.asc
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

out_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/debian"
mkdir -p "$out_dir"
if [ -n "${KEEPD_SIGNING_KEY:-}" ]; then
    gpg --batch --quiet --import "$KEEPD_SIGNING_KEY"
else
    echo "==> no KEEPD_SIGNING_KEY: signing with a throwaway key" >&2
    gpg --batch --quiet --passphrase '' --quick-gen-key "keepd release (throwaway) <release@keepd.invalid>" ed25519 sign 1d
fi
gpg --batch --armor --export > "$out_dir/keepd-signing-key.asc"
for f in "$@"; do
    gpg --batch --yes --armor --detach-sign --output "$f.asc" "$f"
    echo "==> signed $f ($f.asc)"
done
