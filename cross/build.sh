#!/usr/bin/env bash
# Cross-builds keepd for ARM with Debian's Rust (see cross/setup.sh) and,
# with --test, runs the test suite's binaries for each target under qemu;
# with --test-release, the integration suite, built for this machine, boots
# the release binary just built (the one the package ships) under qemu.
#
#   cross/build.sh [--test|--test-release] [TARGET...]
#   TARGETs: aarch64-unknown-linux-gnu (default), armv7-unknown-linux-gnueabihf, x86_64-unknown-linux-gnu
#
# Release binaries land in target/cross/<triple>/release/keepd; --test builds
# the lighter `cross-test` profile (no fat LTO per test binary), unit tests
# and all, about as long again as the release build; --test-release builds
# no ARM test binary (what CI runs: the suite against what ships). Both are built
# with KEEPD_FEATURES (default `sqlcipher`, as the .deb ships: encryption at
# rest, the target's libcrypto from cross/setup.sh), so the suite runs on
# the SQLite the device gets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

run_tests=0
test_release=0
targets=()
for a in "$@"; do
    case "$a" in
        --test) run_tests=1 ;;
        --test-release) test_release=1 ;;
        *) targets+=("$a") ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

# The suite of --test-release is built by the machine's own toolchain.
HOST_PATH="$PATH"
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

# Runs a test command whose keepd runs under qemu. Fast argon2 parameters
# keep emulated hashing quick; KEEPD_TESTS_UNDER_QEMU: the few checks of
# what the emulator itself changes (its helper thread, its memory in the
# RSS) are skipped. A child forked by a multi-threaded process under
# qemu-user can hang before its exec (seen once in CI): the run is bounded,
# and a run that timed out is tried once more.
under_qemu() {
    local rc=0 try
    for try in 1 2; do
        rc=0
        KEEPD_ARGON2_MEMORY_KIB=8192 KEEPD_ARGON2_ITERATIONS=1 KEEPD_TESTS_UNDER_QEMU=1 \
            timeout "${CROSS_TEST_TIMEOUT:-600}" "$@" || rc=$?
        [ "$rc" = 124 ] && [ "$try" = 1 ] || break
        echo "==> the tests under qemu timed out; once more" >&2
    done
    [ "$rc" = 0 ] || exit "$rc"
}

for t in "${targets[@]}"; do
    if [ "$t" != x86_64-unknown-linux-gnu ] && [ ! -d "/usr/lib/rustlib/$t/lib" ]; then
        echo "==> NOTICE: SKIPPING $t: Debian's std for it is not installed (cross/setup.sh skipped it)." >&2
        continue
    fi
    echo "==> building keepd for $t (release)"
    "$CARGO" build --release --locked -p keepd "${features[@]}" --target "$t"
    ls -l "$CARGO_TARGET_DIR/$t/release/keepd"
    file "$CARGO_TARGET_DIR/$t/release/keepd" 2>/dev/null || true
    if [ "$t" = aarch64-unknown-linux-gnu ] && [ -n "${KEEPD_LLD_DIR:-}" ]; then
        # Linked through daemon/link/cc.sh: laid out, checked, not assumed.
        bash "$ROOT/tests/bench/layout.sh" "$CARGO_TARGET_DIR/$t/release"
    fi
    if [ "$test_release" = 1 ] && [ "$t" != x86_64-unknown-linux-gnu ]; then
        echo "==> the integration suite against the $t release binary under qemu"
        # Built for this machine, into the usual target dir (CI built it
        # already, the feature set included: nothing is compiled again, as
        # long as the cross build's environment stays out: KEEPD_LLD_DIR
        # makes daemon/build.rs run again); every keepd it starts is the
        # ARM binary, run through binfmt_misc's qemu.
        under_qemu env -u RUSTC -u CARGO_TARGET_DIR -u KEEPD_LLD_DIR PATH="$HOST_PATH" \
            KEEPD_TEST_BIN="$CARGO_TARGET_DIR/$t/release/keepd" \
            cargo test --locked -p keepd "${features[@]}" --test integration -- --test-threads=2
    fi
    if [ "$run_tests" = 1 ]; then
        echo "==> testing keepd for $t under qemu (release)"
        "$CARGO" test --no-run --profile cross-test --locked -p keepd "${features[@]}" --target "$t"
        under_qemu "$CARGO" test --profile cross-test --locked -p keepd "${features[@]}" --target "$t" -- --test-threads=2
    fi
done
