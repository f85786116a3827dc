#!/usr/bin/env bash
# Cross-builds keepd for ARM with Debian's Rust (see cross/setup.sh) and,
# with --test, runs the test suite's binaries for each target under qemu.
#
#   cross/build.sh [--test] [TARGET...]
#   TARGETs: aarch64-unknown-linux-gnu (default), armv7-unknown-linux-gnueabihf, x86_64-unknown-linux-gnu
#
# Release binaries land in target/cross/<triple>/release/keepd; tests use the
# lighter `cross-test` profile (no fat LTO per test binary). Both are built
# with KEEPD_FEATURES (default `sqlcipher`, as the .deb ships: encryption at
# rest, the target's libcrypto from cross/setup.sh), so the suite runs on
# the SQLite the device gets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

run_tests=0
targets=()
for a in "$@"; do
    case "$a" in
        --test) run_tests=1 ;;
        *) targets+=("$a") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

# Debian's compiler and cargo, not rustup's proxies (rustup's rustc can't
# use Debian's std).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER=qemu-arm-static
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
# LLVM's linker for aarch64 (cross/setup.sh installs lld-16): daemon/build.rs
# then asks for packed relative relocations (DT_RELR), which Debian 12's GNU
# ld supports on x86_64 only.
# Linked through daemon/link/cc.sh, which lays the functions out by
# daemon/link/order.txt when LLD links the release binary.
if [ -x /usr/lib/llvm-16/bin/ld.lld ]; then
    export KEEPD_LLD_DIR=/usr/lib/llvm-16/bin
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$ROOT/daemon/link/cc-aarch64.sh"
fi
KEEPD_FEATURES="${KEEPD_FEATURES-sqlcipher}"
features=()
[ -z "$KEEPD_FEATURES" ] || features=(--features "$KEEPD_FEATURES")
# A separate target dir: Debian's rustc and rustup's must not share artifacts.
export CARGO_TARGET_DIR="$ROOT/target/cross"

for t in "${targets[@]}"; do
    if [ "$t" != x86_64-unknown-linux-gnu ] && [ ! -d "/usr/lib/rustlib/$t/lib" ]; then
        echo "==> NOTICE: SKIPPING $t: Debian's std for it is not installed (cross/setup.sh skipped it)." >&2
        continue
    fi
    echo "==> building keepd for $t (release)"
    "$CARGO" build --release --locked -p keepd "${features[@]}" --target "$t"
    ls -l "$CARGO_TARGET_DIR/$t/release/keepd"
    file "$CARGO_TARGET_DIR/$t/release/keepd" 2>/dev/null || true
    if [ "$run_tests" = 1 ]; then
        echo "==> testing keepd for $t under qemu (release)"
        # Fast argon2 parameters keep emulated hashing quick in tests.
        # KEEPD_TESTS_UNDER_QEMU: the few checks of what the emulator itself
        # changes (its helper thread, its memory in the RSS) are skipped.
        # A child forked by a multi-threaded process under qemu-user can hang
        # before its exec (seen once in CI): the run is bounded, and a run
        # that timed out is tried once more.
        "$CARGO" test --no-run --profile cross-test --locked -p keepd "${features[@]}" --target "$t"
        qemu_tests() {
            KEEPD_ARGON2_MEMORY_KIB=8192 KEEPD_ARGON2_ITERATIONS=1 KEEPD_TESTS_UNDER_QEMU=1 \
                timeout "${CROSS_TEST_TIMEOUT:-900}" \
                "$CARGO" test --profile cross-test --locked -p keepd "${features[@]}" --target "$t" -- --test-threads=2
        }
        rc=0
        qemu_tests || rc=$?
        if [ "$rc" = 124 ]; then
            echo "==> the tests under qemu timed out; once more" >&2
            rc=0
            qemu_tests || rc=$?
        fi
        [ "$rc" = 0 ] || exit "$rc"
    fi
done
