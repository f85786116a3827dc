#!/usr/bin/env bash
# keepd's .deb under a real systemd: a minimal Debian 12 root booted with
# systemd-nspawn (its own network namespace: nothing collides with the host's
# ports), the package installed in it with dpkg, and the unit driven with
# systemctl as an operator would, following the README:
#   - install: keepd.service enabled, started, active through sd_notify
#     (Type=notify: READY=1 and a STATUS= line), /api/health answers,
#     `keepd superuser upsert` by root works and the password logs in;
#   - watchdog: `kill -STOP` of the main PID; after the unit's WatchdogSec
#     systemd aborts it and restarts it (NRestarts grows, active again);
#   - `systemctl stop` drains and exits cleanly (status 0, no SIGKILL);
#   - encryption at rest: the README's steps (a root-only key, `keepd rekey`,
#     LoadCredential= in a drop-in), the database encrypted on disk, the
#     service serving; `keepd check/superuser upsert/backup` by root with
#     --database-key-file, and `systemd-run … LoadCredential=… keepd check`;
#   - socket activation: the example keepd.socket on 127.0.0.1:80 (a port
#     below 1024 for a service without capabilities), keepd started by the
#     first connection; then back to keepd binding `http` itself;
#   - remove (stopped, data and config kept), purge (all gone but the key
#     files, root-only).
#
#   tests/systemd/run.sh [--arch amd64|arm64] [--deb PATH] [--keep]
#
# Root only. Without --deb the package is built (amd64: packaging/build-deb.sh;
# arm64: cross/setup.sh, cross/build.sh, packaging/build-deb.sh
# aarch64-unknown-linux-gnu), unsigned. arm64 boots the arm64 root under
# qemu-user (qemu-user-static through binfmt_misc).
# The Debian root is made with debootstrap once (about 1.5 min for amd64) and
# kept as $KEEPD_E2E_CACHE/bookworm-<arch>.tar (default /var/cache/keepd-e2e);
# each run boots a fresh copy under a temporary directory, removed at the end
# (--keep leaves it and prints where). KEEPD_E2E_TIMEOUT (seconds) bounds the
# whole run: default 600 for amd64, 1800 for arm64.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

arch=amd64
deb=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch="$2"; shift 2 ;;
        --arch=*) arch="${1#--arch=}"; shift ;;
        --deb) deb="$2"; shift 2 ;;
        --deb=*) deb="${1#--deb=}"; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$arch" in
    amd64) triple=x86_64-unknown-linux-gnu; slow=1 ;;
    arm64) triple=aarch64-unknown-linux-gnu; slow=4 ;;
    *) echo "--arch $arch: want amd64 or arm64" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "tests/systemd/run.sh must run as root (debootstrap, systemd-nspawn)" >&2; exit 1; }

# The whole run is bounded: re-run this script under timeout(1).
if [ -z "${KEEPD_E2E_BOUNDED:-}" ]; then
    limit="${KEEPD_E2E_TIMEOUT:-$([ "$arch" = amd64 ] && echo 600 || echo 1800)}"
    set +e
    KEEPD_E2E_BOUNDED=1 timeout -k 20 "$limit" "$0" --arch "$arch" ${deb:+--deb "$deb"} $([ "$keep" = 1 ] && echo --keep)
    rc=$?
    set -e
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        echo "FAIL: tests/systemd/run.sh --arch $arch took longer than ${limit}s (KEEPD_E2E_TIMEOUT)" >&2
    fi
    exit "$rc"
fi

started=$SECONDS
say() { printf '==> [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
ok() { printf 'ok - %s\n' "$*"; }

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "apt-get install ${missing[*]}"
    apt-get update -qq || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_install systemd-container debootstrap curl
if [ "$arch" = arm64 ]; then
    apt_install qemu-user-static binfmt-support
    # Foreign binaries (the container's systemd included) run through
    # binfmt_misc; the F flag opens qemu at registration, so it works inside
    # the container's mount namespace too.
    [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf \
        || update-binfmts --enable qemu-aarch64
    grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
        || { echo "FAIL: binfmt_misc qemu-aarch64 is not registered with the F flag: $(cat /proc/sys/fs/binfmt_misc/qemu-aarch64 2>&1)" >&2; exit 1; }
fi

# --- the package ----------------------------------------------------------
if [ -z "$deb" ]; then
    cd "$ROOT"
    if [ "$arch" = amd64 ]; then
        say "building the amd64 .deb (packaging/build-deb.sh)"
        KEEPD_SIGN=0 bash packaging/build-deb.sh >&2
    else
        say "building the arm64 .deb (cross/setup.sh, cross/build.sh, packaging/build-deb.sh)"
        CROSS_ARCHES=arm64 bash cross/setup.sh >&2
        bash cross/build.sh "$triple" >&2
        KEEPD_SIGN=0 bash packaging/build-deb.sh "$triple" >&2
    fi
    target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
    deb="$(ls -t "$target_dir"/debian/keepd_*_"$arch".deb | head -n 1)"
fi
[ -f "$deb" ] || { echo "FAIL: no .deb at '$deb'" >&2; exit 1; }
got_arch="$(dpkg-deb -f "$deb" Architecture)"
[ "$got_arch" = "$arch" ] || { echo "FAIL: $deb is for $got_arch, not $arch" >&2; exit 1; }
say "package: $deb ($(dpkg-deb -f "$deb" Version), Depends: $(dpkg-deb -f "$deb" Depends))"

# --- the Debian root ------------------------------------------------------
cache="${KEEPD_E2E_CACHE:-/var/cache/keepd-e2e}"
mkdir -p "$cache"
tarball="$cache/bookworm-$arch.tar"
# What the package depends on is in the root: dpkg -i needs no network.
include=systemd,systemd-sysv,dbus,ca-certificates,procps,libssl3,adduser
if [ ! -s "$tarball" ] || [ "$(cat "$tarball.include" 2>/dev/null)" != "$include" ]; then
    say "debootstrap bookworm $arch (once; cached in $tarball)"
    mkroot="$(mktemp -d /var/tmp/keepd-e2e-mkroot.XXXXXX)"
    if ! debootstrap --variant=minbase --arch="$arch" --include="$include" bookworm "$mkroot/root" \
        "${KEEPD_E2E_MIRROR:-http://deb.debian.org/debian}" >"$mkroot/debootstrap.log" 2>&1; then
        tail -n 30 "$mkroot/debootstrap.log" >&2
        [ -f "$mkroot/root/debootstrap/debootstrap.log" ] && tail -n 30 "$mkroot/root/debootstrap/debootstrap.log" >&2
        rm -rf --one-file-system "$mkroot"
        echo "FAIL: debootstrap bookworm $arch" >&2
        exit 1
    fi
    # Small and quiet boots: no getty on the console; a machine id (not a
    # first boot).
    ln -sf /dev/null "$mkroot/root/etc/systemd/system/console-getty.service"
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$mkroot/root/etc/machine-id"
    echo >> "$mkroot/root/etc/machine-id"
    tar -C "$mkroot/root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    echo "$include" > "$tarball.include"
    rm -rf --one-file-system "$mkroot"
fi

work="$(mktemp -d /var/tmp/keepd-e2e.XXXXXX)"
croot="$work/root"
mkdir "$croot"
tar -C "$croot" -xf "$tarball"
# The container's /tmp is a tmpfs: the package goes elsewhere.
cp "$deb" "$croot/root/keepd.deb"
machine="keepd-e2e-$arch-$$"

nspawn_pid=""
cpid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # SIGTERM: nspawn asks the container's systemd to power off.
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        for _ in $(seq 1 $((20 * slow))); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
        kill -KILL "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ] || [ "$rc" != 0 ]; then
        [ "$keep" = 1 ] && echo "kept: $work (root, nspawn.log)" >&2
        [ "$keep" = 1 ] || { echo "container log: $work/nspawn.log (last lines):" >&2; tail -n 15 "$work/nspawn.log" >&2 || true; }
    fi
    if [ "$keep" != 1 ]; then
        if findmnt -rno TARGET | grep -q "^$work"; then
            echo "mounts left under $work; not removing it" >&2
        else
            rm -rf --one-file-system "$work"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

say "booting the $arch root with systemd-nspawn"
# --keep-unit: no systemd as PID 1 on the host to register with.
# CAP_IPC_LOCK: SQLCipher locks its key memory (a booted host has it).
systemd-nspawn -D "$croot" --boot --register=no --keep-unit --console=pipe \
    --private-network --capability=CAP_IPC_LOCK -M "$machine" \
    </dev/null >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 is nspawn's child that is PID 1 in its own PID
# namespace (before that, nspawn's intermediate child is there).
for _ in $(seq 1 $((100 * slow))); do
    for p in $(pgrep -P "$nspawn_pid" || true); do
        if [ "$(awk '/^NSpid:/ {print $NF}' "/proc/$p/status" 2>/dev/null)" = 1 ]; then cpid=$p; fi
    done
    [ -n "$cpid" ] && break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.2
done
[ -n "$cpid" ] || { cat "$work/nspawn.log" >&2; echo "FAIL: systemd-nspawn did not start the container" >&2; exit 1; }

# In the container: every namespace, its binaries, a clean environment.
c() {
    timeout $((60 * slow)) nsenter -t "$cpid" -a -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root "$@"
}
# Host's curl in the container's network namespace.
hcurl() { timeout $((10 * slow)) nsenter -t "$cpid" -n -- curl -sS --max-time $((5 * slow)) "$@"; }
show() { c systemctl show -P "$2" "$1"; }
diag() {
    echo "--- systemctl status keepd" >&2
    c systemctl --no-pager -l status keepd.service keepd.socket >&2 2>&1 || true
    echo "--- journalctl -u keepd (last 40)" >&2
    c journalctl --no-pager -u keepd -n 40 >&2 2>&1 || true
}
fail() { echo "FAIL: $*" >&2; diag; exit 1; }
health() { # health PORT: the answer of GET /api/health
    hcurl -f "http://127.0.0.1:$1/api/health" 2>&1 || true
}
wait_health() { # wait_health PORT
    local out=""
    for _ in $(seq 1 $((30 * slow))); do
        out="$(health "$1")"
        echo "$out" | grep -q healthy && return 0
        sleep 0.5
    done
    fail "GET /api/health on 127.0.0.1:$1: '$out'"
}
login() { # login PORT EMAIL PASSWORD: succeeds when the password is accepted
    hcurl -f -H 'Content-Type: application/json' \
        -d "{\"identity\":\"$2\",\"password\":\"$3\"}" \
        "http://127.0.0.1:$1/api/collections/_superusers/auth-with-password" | grep -q '"token"'
}
expect() { # expect UNIT PROPERTY VALUE
    local got
    got="$(show "$1" "$2")"
    [ "$got" = "$3" ] || fail "$1 $2=$got, want $3"
}
journal_has() { # journal_has UNIT SINCE TEXT
    c journalctl --no-pager -u "$1" --since "$2" -o cat | grep -qF -- "$3"
}
now() { c date '+%Y-%m-%d %H:%M:%S'; }

# Until PID 1 has exec'd systemd and opened its socket, systemctl says
# "offline": ask again.
state=""
t0=$SECONDS
while [ $((SECONDS - t0)) -lt $((120 * slow)) ]; do
    state="$(timeout $((120 * slow)) nsenter -t "$cpid" -a -- systemctl is-system-running --wait 2>/dev/null || true)"
    case "$state" in
        running|degraded) break ;;
    esac
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.5
done
case "$state" in
    running) ;;
    degraded) echo "note: the container's system is degraded: $(c systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')" >&2 ;;
    *) tail -n 30 "$work/nspawn.log" >&2; fail "the container's systemd did not finish booting: '$state'" ;;
esac
say "booted: $(c systemctl --version | head -n 1) as PID 1 in $arch ($(c uname -m)), state ${state:-?}"

# The operator's tools: run by root, keepd switches to the data directory's
# owner itself. Under qemu-user it refuses to (the emulator's own thread makes
# the process look multi-threaded before main), so there the README's other
# form runs them: `sudo -u keepd keepd …`.
if [ "$arch" = amd64 ]; then
    tool() { c keepd "$@"; }
    who="sudo keepd"
else
    tool() { c runuser -u keepd -- keepd "$@"; }
    who="sudo -u keepd keepd"
fi

# --- install --------------------------------------------------------------
if [ "$arch" = arm64 ]; then
    # An emulated systemd can't build the unit's sandbox: qemu-user runs every
    # process with a thread of its own, so unshare(CLONE_NEWUSER) fails with
    # EINVAL, and it rejects the mount propagation change a new mount
    # namespace needs (EINVAL), and PR_SET_SECCOMP. Every namespace, seccomp
    # and credential directive fails there at exec (226/NAMESPACE,
    # 243/CREDENTIALS: the root's own systemd-tmpfiles-setup and
    # systemd-sysusers fail the same way). This drop-in, for this run only,
    # turns those directives off; everything else is the package's unit.
    c mkdir -p /etc/systemd/system/keepd.service.d
    c sh -c 'cat > /etc/systemd/system/keepd.service.d/qemu-user.conf' <<'DROPIN'
[Service]
ProtectSystem=no
ProtectHome=no
PrivateTmp=no
PrivateDevices=no
PrivateMounts=no
PrivateUsers=no
ProtectProc=default
ProcSubset=all
ProtectKernelTunables=no
ProtectKernelModules=no
ProtectKernelLogs=no
ProtectControlGroups=no
ProtectHostname=no
ProtectClock=no
RestrictNamespaces=no
RestrictRealtime=no
RestrictSUIDSGID=no
LockPersonality=no
MemoryDenyWriteExecute=no
RestrictAddressFamilies=
SystemCallArchitectures=
SystemCallFilter=
DevicePolicy=auto
DROPIN
    say "arm64 under qemu-user: the unit's namespace/seccomp/credential sandbox is off (drop-in qemu-user.conf)"
fi
say "dpkg -i keepd.deb"
c env DEBIAN_FRONTEND=noninteractive dpkg -i /root/keepd.deb >"$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log" >&2; fail "dpkg -i keepd.deb"; }
[ "$(c systemctl is-enabled keepd.service)" = enabled ] || fail "keepd.service is not enabled after install"
ok "keepd.service enabled by the package"
# Type=notify: the start job dpkg ran ends only with READY=1.
expect keepd.service Type notify
expect keepd.service NotifyAccess main
expect keepd.service ActiveState active
expect keepd.service SubState running
status_text="$(show keepd.service StatusText)"
echo "$status_text" | grep -q '^serving on 127.0.0.1:8090' || fail "STATUS= from sd_notify is '$status_text', want 'serving on 127.0.0.1:8090…'"
ok "active (running) through sd_notify: READY=1, STATUS=$status_text"
pid1="$(show keepd.service MainPID)"
[ "$(c ps -o user= -p "$pid1" | tr -d ' ')" = keepd ] || fail "main PID $pid1 doesn't run as keepd"
ok "main PID $pid1 runs as keepd"
wait_health 8090
ok "GET /api/health: $(health 8090)"
tool superuser upsert admin@example.com 'a long password 1' >/dev/null || fail "$who superuser upsert"
login 8090 admin@example.com 'a long password 1' || fail "the superuser made by 'keepd superuser upsert' can't log in"
ok "$who superuser upsert; the password logs in"
others="$(c find /var/lib/keepd \( ! -user keepd -o ! -group keepd \) -print)"
[ -z "$others" ] || fail "files not keepd's in /var/lib/keepd: $others"

# --- watchdog -------------------------------------------------------------
wd_usec="$(c cat "/proc/$pid1/environ" | tr '\0' '\n' | sed -n 's/^WATCHDOG_USEC=//p')"
[ -n "$wd_usec" ] || fail "keepd got no WATCHDOG_USEC (WatchdogSec= in the unit?)"
wd=$(( (wd_usec + 999999) / 1000000 ))
restarts0="$(show keepd.service NRestarts)"
since="$(now)"
say "watchdog: kill -STOP $pid1 (WatchdogSec=${wd}s, NRestarts=$restarts0)"
c kill -STOP "$pid1"
t0=$SECONDS
restarted=0
for _ in $(seq 1 $((wd + 40 * slow))); do
    sleep 1
    r="$(show keepd.service NRestarts)"
    p="$(show keepd.service MainPID)"
    a="$(show keepd.service ActiveState)"
    if [ "$r" -gt "$restarts0" ] && [ "$a" = active ] && [ "$p" != 0 ] && [ "$p" != "$pid1" ]; then
        restarted=1
        break
    fi
done
[ "$restarted" = 1 ] || fail "no watchdog restart within $((SECONDS - t0))s of kill -STOP (WatchdogSec=${wd}s; NRestarts=$(show keepd.service NRestarts), $(show keepd.service ActiveState))"
[ $((SECONDS - t0)) -ge $((wd - 2)) ] || fail "restarted after $((SECONDS - t0))s, before WatchdogSec=${wd}s: not the watchdog"
journal_has keepd.service "$since" "Watchdog timeout" || fail "no 'Watchdog timeout' in the journal"
ok "watchdog timeout after $((SECONDS - t0))s: aborted and restarted (NRestarts $restarts0 -> $(show keepd.service NRestarts), main PID $(show keepd.service MainPID))"
wait_health 8090
login 8090 admin@example.com 'a long password 1' || fail "login after the watchdog restart"
ok "serving again after the restart, data kept"

# --- stop drains ----------------------------------------------------------
since="$(now)"
t0=$SECONDS
c systemctl stop keepd.service || fail "systemctl stop keepd"
took=$((SECONDS - t0))
expect keepd.service ActiveState inactive
expect keepd.service Result success
expect keepd.service ExecMainCode 1 # CLD_EXITED: exited by itself, not killed
expect keepd.service ExecMainStatus 0
journal_has keepd.service "$since" "shutting down: draining connections" || fail "no drain line in the journal after stop"
[ "$took" -lt 20 ] || fail "stop took ${took}s (TimeoutStopSec=20s)"
ok "systemctl stop: drained and exited with status 0 in ${took}s"

# --- encryption at rest through LoadCredential= ----------------------------
say "encryption at rest (README: key file, keepd rekey, LoadCredential=)"
c install -m 0600 /dev/null /etc/keepd/database.key
c sh -c 'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > /etc/keepd/database.key'
keyhex="$(c cat /etc/keepd/database.key)"
[ "${#keyhex}" = 64 ] || fail "the key file has ${#keyhex} characters, want 64"
# Under qemu-user the tools run as keepd (above), which reads the key
# through its group: root:keepd 0640, as the README allows.
[ "$arch" = amd64 ] || { c chown root:keepd /etc/keepd/database.key; c chmod 0640 /etc/keepd/database.key; }
tool rekey --config /etc/keepd/keepd.toml --new-key-file /etc/keepd/database.key >"$work/rekey.log" 2>&1 \
    || { cat "$work/rekey.log" >&2; fail "keepd rekey"; }
if [ "$arch" = amd64 ]; then
    c mkdir -p /etc/systemd/system/keepd.service.d
    c sh -c 'printf "[Service]\nLoadCredential=database-key:/etc/keepd/database.key\n" > /etc/systemd/system/keepd.service.d/override.conf'
    how="the key from LoadCredential="
else
    # No credentials under qemu-user (they need a mount namespace): the
    # README's other way, database_key_file with the key root:keepd 0640.
    c sh -c 'echo "database_key_file = \"/etc/keepd/database.key\"" >> /etc/keepd/keepd.toml'
    how="database_key_file (root:keepd 0640; no LoadCredential= under qemu-user)"
fi
c systemctl daemon-reload
since="$(now)"
c systemctl start keepd.service || fail "systemctl start keepd with $how"
expect keepd.service ActiveState active
wait_health 8090
[ "$(c head -c 15 /var/lib/keepd/data.db)" != "SQLite format 3" ] || fail "data.db is plaintext after keepd rekey"
if c grep -q admin@example.com /var/lib/keepd/data.db; then fail "the superuser's email is readable in data.db"; fi
[ "$(c stat -c '%a %U:%G' /var/lib/keepd/data.db)" = "600 keepd:keepd" ] || fail "data.db is $(c stat -c '%a %U:%G' /var/lib/keepd/data.db)"
login 8090 admin@example.com 'a long password 1' || fail "login against the encrypted database"
ok "serving the encrypted database with $how (data.db 600 keepd:keepd, not plaintext)"
if c journalctl --no-pager -o cat | grep -qF "$keyhex"; then fail "the database key is in the journal"; fi
ok "the key is not in the journal"
if [ "$arch" = amd64 ] && c keepd check >/dev/null 2>&1; then fail "keepd check passed on the encrypted database without a key"; fi
tool check --database-key-file /etc/keepd/database.key >"$work/check.log" 2>&1 \
    || { cat "$work/check.log" >&2; fail "$who check --database-key-file"; }
ok "$who check --database-key-file$([ "$arch" = amd64 ] && echo " (and it fails without the key)")"
tool superuser upsert admin@example.com 'a new long password' --database-key-file /etc/keepd/database.key >/dev/null \
    || fail "$who superuser upsert --database-key-file"
login 8090 admin@example.com 'a new long password' || fail "the password set by 'keepd superuser upsert --database-key-file' doesn't log in"
ok "$who superuser upsert --database-key-file: the running service takes the new password"
# No backup_recipients here: a plaintext zip by explicit choice (the database inside stays encrypted).
c env KEEPD_BACKUP_ENCRYPTION=none $([ "$arch" = amd64 ] || echo runuser -u keepd --) keepd backup --name e2e.zip --database-key-file /etc/keepd/database.key >/dev/null \
    || fail "$who backup --database-key-file"
[ "$(c stat -c '%U:%G' /var/lib/keepd/backups/e2e.zip)" = keepd:keepd ] || fail "the backup isn't keepd's"
ok "$who backup --database-key-file (while serving)"
others="$(c find /var/lib/keepd \( ! -user keepd -o ! -group keepd \) -print)"
[ -z "$others" ] || fail "files not keepd's after the tools ran as root: $others"
ok "everything in /var/lib/keepd stays keepd's"
if [ "$arch" = amd64 ]; then
    c systemd-run --quiet --pipe --wait --collect -p User=keepd -p Group=keepd \
        -p LoadCredential=database-key:/etc/keepd/database.key keepd check >"$work/check2.log" 2>&1 \
        || { cat "$work/check2.log" >&2; fail "systemd-run … -p LoadCredential=database-key:… keepd check"; }
    ok "systemd-run -p User=keepd -p LoadCredential=database-key:… keepd check"
fi

# --- socket activation ----------------------------------------------------
say "socket activation (README: the example keepd.socket, here on 127.0.0.1:80)"
c cp /usr/share/doc/keepd/examples/keepd.socket /etc/systemd/system/
c sed -i 's/^ListenStream=.*/ListenStream=127.0.0.1:80/' /etc/systemd/system/keepd.socket
c systemctl daemon-reload
c systemctl stop keepd.service
since="$(now)"
c systemctl enable --now keepd.socket >/dev/null 2>&1 || fail "systemctl enable --now keepd.socket"
expect keepd.socket ActiveState active
expect keepd.service ActiveState inactive
ok "keepd.socket listening, keepd.service not started yet"
wait_health 80
expect keepd.service ActiveState active
journal_has keepd.service "$since" "using the socket passed by the service manager" || fail "keepd didn't take the socket (no 'using the socket passed by the service manager')"
ok "the first connection on port 80 started keepd (no capabilities), which took the socket"
if health 8090 | grep -q healthy; then fail "keepd bound 8090 as well under socket activation"; fi
login 80 admin@example.com 'a new long password' || fail "login through the activated socket"
c systemctl disable --now keepd.socket >/dev/null 2>&1 || fail "systemctl disable --now keepd.socket"
c systemctl restart keepd.service || fail "systemctl restart keepd after the socket"
wait_health 8090
if health 80 | grep -q healthy; then fail "port 80 still answers after disabling the socket"; fi
ok "back: socket disabled, keepd binds 127.0.0.1:8090 itself"

# --- remove and purge -----------------------------------------------------
say "dpkg -r keepd"
c dpkg -r keepd >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r keepd"; }
a="$(c systemctl is-active keepd.service || true)"
[ "$a" != active ] || fail "keepd.service still active after remove"
if c pgrep -x keepd >/dev/null; then fail "a keepd process is left after remove"; fi
if health 8090 | grep -q healthy; then fail "something still serves 8090 after remove"; fi
c test ! -e /usr/bin/keepd || fail "/usr/bin/keepd left after remove"
c test -f /var/lib/keepd/data.db || fail "remove deleted the data"
c test -f /etc/keepd/keepd.toml || fail "remove deleted the configuration"
ok "remove: stopped ($a), binary gone, data and configuration kept"
say "dpkg -P keepd"
c dpkg -P keepd >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P keepd"; }
grep -q 'kept the key files /etc/keepd/database.key' "$work/dpkg.log" || fail "purge didn't say it kept the key: $(cat "$work/dpkg.log")"
c test ! -e /var/lib/keepd || fail "/var/lib/keepd left after purge"
left="$(c ls -A /etc/keepd | tr '\n' ' ')"
[ "$left" = "database.key " ] || fail "/etc/keepd after purge holds '$left', want the key file only"
[ "$(c stat -c '%a %U:%G' /etc/keepd/database.key)" = "600 root:root" ] || fail "the kept key is $(c stat -c '%a %U:%G' /etc/keepd/database.key)"
[ "$(c stat -c '%a %U:%G' /etc/keepd)" = "700 root:root" ] || fail "/etc/keepd is $(c stat -c '%a %U:%G' /etc/keepd) after purge"
if c getent passwd keepd >/dev/null; then fail "user keepd left after purge"; fi
c test ! -e /etc/systemd/system/multi-user.target.wants/keepd.service || fail "the enablement link is left after purge"
ok "purge: data, configuration, user and enablement gone; /etc/keepd/database.key kept (600 root:root)"

say "all checks passed ($arch, $(c systemctl --version | head -n 1 | cut -d' ' -f1-2) as PID 1)"
