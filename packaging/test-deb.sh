#!/usr/bin/env bash
# Installs, upgrades, removes and purges a keepd .deb on this machine (with or
# without systemd as PID 1) and asserts what each step leaves behind.
#   packaging/test-deb.sh [path/to/keepd_*.deb]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deb="${1:-$(ls -t "$ROOT"/target/debian/keepd_*_amd64.deb | head -n 1)}"
[ "$(id -u)" = 0 ] || { echo "test-deb.sh must run as root (dpkg)"; exit 1; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }
mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode() { local got; got=$(mode_owner "$1"); [ "$got" = "$2" ] || fail "$1 is '$got', want '$2'"; ok "$1 $2"; }

# Start clean.
dpkg -P keepd >/dev/null 2>&1 || true

echo "# install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
getent passwd keepd >/dev/null || fail "user keepd missing"; ok "user keepd exists"
[ "$(getent passwd keepd | cut -d: -f7)" = /usr/sbin/nologin ] || fail "keepd has a login shell"; ok "keepd has no login shell"
expect_mode /var/lib/keepd "700 keepd:keepd"
expect_mode /etc/keepd "750 root:keepd"
expect_mode /etc/keepd/keepd.toml "640 root:keepd"
expect_mode /usr/bin/keepd "755 root:root"
unit=$(dpkg -L keepd | grep -E '/systemd/system/keepd.service$') || fail "unit not installed"; ok "unit at $unit"
dpkg -L keepd | grep -q 'sysusers.d/keepd.conf' || fail "sysusers entry missing"; ok "sysusers.d entry"
dpkg -L keepd | grep -q 'tmpfiles.d/keepd.conf' || fail "tmpfiles entry missing"; ok "tmpfiles.d entry"

echo "# run as the keepd user, as the unit does"
port=$((20000 + RANDOM % 20000))
runuser -u keepd -- /usr/bin/keepd superuser upsert admin@example.com 'a long password 1' --config /etc/keepd/keepd.toml >/dev/null
runuser -u keepd -- /usr/bin/keepd serve --config /etc/keepd/keepd.toml --http "127.0.0.1:$port" >/tmp/keepd-deb.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/api/health" | grep -q healthy || { cat /tmp/keepd-deb.log; fail "health"; }
ok "serves /api/health"
kill "$pid"; wait "$pid" 2>/dev/null || true
expect_mode /var/lib/keepd/data.db "600 keepd:keepd"

echo "# encryption at rest (the packaged keepd is built with SQLCipher)"
dpkg-deb -f "$deb" Depends | grep -q 'libssl3' || fail "Depends lacks libssl3: $(dpkg-deb -f "$deb" Depends)"
ok "Depends: $(dpkg-deb -f "$deb" Depends)"
key=/etc/keepd/database.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$key"
chown root:keepd "$key"; chmod 640 "$key"
# Run as root: the rewritten database keeps keepd's owner.
/usr/bin/keepd rekey --config /etc/keepd/keepd.toml --new-key-file "$key" >/dev/null
expect_mode /var/lib/keepd/data.db "600 keepd:keepd"
[ "$(head -c 15 /var/lib/keepd/data.db)" != "SQLite format 3" ] || fail "data.db is still plaintext"
if grep -q admin@example.com /var/lib/keepd/data.db; then fail "the superuser is readable in data.db"; fi
ok "data.db encrypted by keepd rekey"
if runuser -u keepd -- /usr/bin/keepd check --config /etc/keepd/keepd.toml >/dev/null 2>&1; then
    fail "check passed without the key"
fi
runuser -u keepd -- env KEEPD_DATABASE_KEY_FILE="$key" /usr/bin/keepd check --config /etc/keepd/keepd.toml >/dev/null || fail "check with the key"
runuser -u keepd -- env KEEPD_DATABASE_KEY_FILE="$key" /usr/bin/keepd serve --config /etc/keepd/keepd.toml --http "127.0.0.1:$port" >/tmp/keepd-deb.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/api/health" | grep -q healthy || { cat /tmp/keepd-deb.log; fail "health with the key"; }
ok "serves with the key (root:keepd 0640 key file)"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "# the operator's tools with a root-only key (as LoadCredential= reads it)"
chown root:root "$key"; chmod 600 "$key"
if runuser -u keepd -- /usr/bin/keepd check --config /etc/keepd/keepd.toml --database-key-file "$key" >/dev/null 2>&1; then
    fail "the keepd user read a root-only key"
fi
/usr/bin/keepd check --config /etc/keepd/keepd.toml --database-key-file "$key" >/dev/null || fail "sudo keepd check --database-key-file"
ok "sudo keepd check --database-key-file (acts as keepd)"
/usr/bin/keepd superuser upsert admin@example.com 'a long password 2' --config /etc/keepd/keepd.toml --database-key-file "$key" >/dev/null \
    || fail "sudo keepd superuser upsert --database-key-file"
ok "sudo keepd superuser upsert --database-key-file"
KEEPD_BACKUP_ENCRYPTION=none /usr/bin/keepd backup --name by-root.zip --config /etc/keepd/keepd.toml --database-key-file "$key" >/dev/null \
    || fail "sudo keepd backup --database-key-file"
ok "sudo keepd backup --database-key-file"
others=$(find /var/lib/keepd \( ! -user keepd -o ! -group keepd \) -print)
[ -z "$others" ] || fail "files not keepd's after the tools ran as root: $others"
ok "everything in /var/lib/keepd stays keepd's"
chmod 644 "$key"
if /usr/bin/keepd check --config /etc/keepd/keepd.toml --database-key-file "$key" >/dev/null 2>&1; then
    fail "a world-readable key file was used"
fi
ok "a world-readable key file is refused"
chmod 600 "$key"

echo "# upgrade (reinstall over itself) keeps data and modes"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$deb" >/dev/null
[ -f /var/lib/keepd/data.db ] || fail "data lost on upgrade"; ok "data kept on upgrade"
expect_mode /var/lib/keepd "700 keepd:keepd"
expect_mode /etc/keepd/keepd.toml "640 root:keepd"

echo "# remove keeps data and configuration"
dpkg -r keepd >/dev/null
[ ! -e /usr/bin/keepd ] || fail "binary left after remove"; ok "binary removed"
[ -f /var/lib/keepd/data.db ] || fail "data removed by remove"; ok "data kept after remove"
[ -f /etc/keepd/keepd.toml ] || fail "conffile removed by remove"; ok "configuration kept after remove"

echo "# purge removes everything it created, but keeps key files"
printf 'AGE-SECRET-KEY-1TEST\n' > /etc/keepd/backup.key; chmod 600 /etc/keepd/backup.key
dpkg -P keepd >/dev/null
[ ! -e /var/lib/keepd ] || fail "/var/lib/keepd left after purge"; ok "data removed on purge"
[ ! -e /etc/keepd/keepd.toml ] || fail "keepd.toml left after purge"; ok "configuration removed on purge"
expect_mode "$key" "600 root:root"
expect_mode /etc/keepd/backup.key "600 root:root"
expect_mode /etc/keepd "700 root:root"
[ "$(ls -A /etc/keepd | sort | tr '\n' ' ')" = "backup.key database.key " ] || fail "only key files stay: $(ls -A /etc/keepd)"
ok "key files kept on purge, nothing else"
! getent passwd keepd >/dev/null || fail "user left after purge"; ok "user removed on purge"

echo "# reinstall over kept keys, then purge with KEEPD_PURGE_KEYS=1"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
expect_mode "$key" "600 root:root"
expect_mode /etc/keepd "750 root:keepd"
KEEPD_PURGE_KEYS=1 dpkg -P keepd >/dev/null
[ ! -e /etc/keepd ] || fail "/etc/keepd left after a purge with KEEPD_PURGE_KEYS=1: $(ls -A /etc/keepd)"; ok "KEEPD_PURGE_KEYS=1: keys removed too"
echo "deb lifecycle: all checks passed"
