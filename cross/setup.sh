#!/usr/bin/env bash
# Installs Debian's Rust with the ARM standard libraries, the cross linkers
# and qemu-user (Debian 12: rustc-web/cargo-web from bookworm-security).
# Refuses to continue with a std whose version differs from the compiler's.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ARCHES=${CROSS_ARCHES:-"arm64 armhf"}
for a in $ARCHES; do
    dpkg --print-foreign-architectures | grep -qx "$a" || as_root dpkg --add-architecture "$a"
done
# The mirror's foreign-arch security index is sometimes mid-sync: retry.
for i in 1 2 3; do
    if as_root apt-get update -qq; then break; fi
    sleep $((i * 5))
done
want=$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')
ok_arches=""
for a in $ARCHES; do
    got=$(apt-cache policy "libstd-rust-web-dev:$a" | awk '/Candidate:/ {print $2}')
    if [ "$got" = "$want" ]; then
        ok_arches="$ok_arches $a"
    else
        echo "cross/setup.sh: NOTICE: libstd-rust-web-dev:$a is '$got' but rustc-web is '$want' (apt index mid-sync?)." >&2
    fi
done
# A broken armhf index makes apt drop every security index, arm64's too:
# then skip armhf (loudly) and try again with arm64 alone.
if [ "${ok_arches# }" != "${ARCHES}" ] && echo " $ARCHES " | grep -q " armhf " && [ "${CROSS_REQUIRE_ALL:-0}" != 1 ]; then
    echo "cross/setup.sh: NOTICE: SKIPPING armhf for now; retrying with arm64 only." >&2
    dpkg -l | awk '$4 == "armhf" {found=1} END {exit !found}' || as_root dpkg --remove-architecture armhf || true
    ARCHES="arm64"
    as_root apt-get update -qq || true
    got=$(apt-cache policy "libstd-rust-web-dev:arm64" | awk '/Candidate:/ {print $2}')
    want=$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')
    [ "$got" = "$want" ] && ok_arches="arm64"
fi
if [ -z "${ok_arches// /}" ]; then
    echo "cross/setup.sh: no ARM std matches rustc-web $want; refusing to build with a mismatched std." >&2
    exit 1
fi
pkgs=(rustc-web cargo-web qemu-user-static binfmt-support)
for a in $ok_arches; do
    case "$a" in
        # libssl-dev:<arch>: the `sqlcipher` feature links the target's libcrypto.
        # lld-16: links the aarch64 binary with packed relative relocations
        # (DT_RELR; Debian 12's GNU ld ignores -z pack-relative-relocs there).
        arm64) pkgs+=(libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross libssl-dev:arm64 lld-16) ;;
        armhf) pkgs+=(libstd-rust-web-dev:armhf gcc-arm-linux-gnueabihf libc6-dev-armhf-cross libssl-dev:armhf) ;;
    esac
done
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Foreign test binaries (and the daemon they spawn) run through binfmt_misc.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
for conf in /usr/lib/binfmt.d/qemu-aarch64.conf /usr/lib/binfmt.d/qemu-arm.conf; do
    [ -e "$conf" ] && as_root /usr/lib/systemd/systemd-binfmt "$conf" 2>/dev/null || true
done
echo "cross toolchain ready: $(/usr/bin/rustc --version)"
