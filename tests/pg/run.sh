#!/usr/bin/env bash
# The JavaScript SDK suite and the differential suite against keepd on
# PostgreSQL.
#
#   tests/pg/run.sh [sdk|compat|all] [args for the suite...]
#       e.g.  tests/pg/run.sh compat -k records -x
#             tests/pg/run.sh sdk            (all of tests/sdk)
#
# Starts Debian's PostgreSQL (the newest in /usr/lib/postgresql; as root the
# cluster belongs to the `postgres` user) in a private temporary directory,
# listening on its Unix socket only, and hands the suites a keepd that
# stores in it: KEEPD_BIN is a small wrapper, written into that directory,
# that gives every data dir a suite serves its own least-privileged role
# owning one fresh schema (made the first time the data dir is seen, kept
# across the suite's restarts of it) and a config file (0600, beside the
# data dir) with `database_url` (SCRAM, sslmode=disable: the socket is
# local), then runs the real keepd with `--config`.
#
# Env:
#   KEEPD_PG_KEEPD   the keepd to run (default: target/debug/keepd), built
#                    with `cargo build -p keepd --features postgres`
#   KEEPD_PG_BIN     PostgreSQL's bin dir (default: the newest installed)
#   KEEPD_PG_KEEP=1  keep the cluster's directory (its log) after the run
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
suite="${1:-all}"
[ $# -gt 0 ] && shift

KEEPD="${KEEPD_PG_KEEPD:-$ROOT/target/debug/keepd}"
if [ ! -x "$KEEPD" ]; then
    echo "pg: $KEEPD is not built (cargo build -p keepd --features postgres)" >&2
    exit 1
fi
if ! "$KEEPD" db check --help >/dev/null 2>&1; then
    echo "pg: $KEEPD has no PostgreSQL support (build it with --features postgres)" >&2
    exit 1
fi
# The cluster (tests/pg/cluster.sh): fsync off, a functional suite proves nothing by flushing.
. "$HERE/cluster.sh"
TMP="$(mktemp -d /tmp/keepd-pgsuite-XXXXXX)"
chmod 700 "$TMP"
cleanup() {
    pg_cluster_stop
    if [ -z "${KEEPD_PG_KEEP:-}" ]; then rm -rf "$TMP"; else echo "pg: kept $TMP"; fi
}
trap cleanup EXIT
pg_cluster_start "$TMP" off
PORT="$PG_PORT"

# The keepd the suites run.
PASSWORD="pw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
SOCKET="${TMP//\//%2F}"
cat >"$TMP/keepd" <<EOF
#!/usr/bin/env bash
# keepd on this run's PostgreSQL: a role and a schema of its own per data dir.
set -euo pipefail
dir=""
prev=""
for a in "\$@"; do
    if [ "\$prev" = "--dir" ]; then dir="\$a"; fi
    prev="\$a"
done
if [ -z "\$dir" ]; then exec "$KEEPD" "\$@"; fi
(umask 077; mkdir -p "\$dir")
abs="\$(cd "\$dir" && pwd)"
role="k_\$(printf '%s' "\$abs" | sha256sum | cut -c1-16)"
conf="\$(dirname "\$abs")/keepd-pg-\$(basename "\$abs").toml"
if [ ! -f "\$conf" ]; then
    ${as_pg[*]} "$PGBIN/psql" -qAt -h "$TMP" -p "$PORT" -U postgres -d app -v ON_ERROR_STOP=1 \\
        -c "CREATE ROLE \$role LOGIN PASSWORD '$PASSWORD'" \\
        -c "CREATE SCHEMA \$role AUTHORIZATION \$role" >/dev/null
    umask 077
    printf 'database_url = "postgres://%s:%s@%s:%s/app?sslmode=disable"\ndatabase_schema = "%s"\n' \\
        "\$role" "$PASSWORD" "$SOCKET" "$PORT" "\$role" >"\$conf.tmp"
    chmod 600 "\$conf.tmp"
    mv "\$conf.tmp" "\$conf"
fi
exec "$KEEPD" "\$@" --config "\$conf"
EOF
chmod 700 "$TMP/keepd"
export KEEPD_BIN="$TMP/keepd"
echo "pg: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') in $TMP; KEEPD_BIN=$KEEPD_BIN -> $KEEPD"

status=0
if [ "$suite" = sdk ] || [ "$suite" = all ]; then
    (cd "$ROOT/tests/sdk" && if [ $# -gt 0 ]; then node --test --test-concurrency=1 "$@"; else npm test; fi) || status=$?
fi
if [ "$suite" = compat ] || [ "$suite" = all ]; then
    "$ROOT/tests/compat/run.sh" "$@" || status=$?
fi
exit "$status"
