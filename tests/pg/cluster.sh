# Debian's PostgreSQL in a private temporary directory, listening on its
# Unix socket only, with a database `app`. Sourced (bash) by tests/pg/run.sh
# and tests/bench/run.sh:
#
#   . tests/pg/cluster.sh
#   pg_cluster_start DIR [fsync on|off]   initdb in DIR/data, start, CREATE DATABASE app;
#                                         sets PGBIN, PG_DIR, PG_PORT, as_pg (the command
#                                         prefix that runs as the cluster's owner)
#   pg_psql ARGS...                       psql as the cluster's superuser, on its socket
#   pg_role_schema ROLE PASSWORD          a least-privileged role (SCRAM) owning a schema
#                                         of the same name in `app`
#   pg_url ROLE PASSWORD                  that role's database_url (socket, sslmode=disable)
#   pg_cluster_stop                       immediate stop (the caller removes DIR)
#
# Env: KEEPD_PG_BIN   PostgreSQL's bin dir (default: the newest in /usr/lib/postgresql)
#
# fsync on is the durability contract (a write is answered after a durable
# COMMIT: synchronous_commit=on, the server's default, and fsync=on); off
# is for functional suites, where a flushed disk proves nothing.
# The caller makes DIR (0700); as root the cluster belongs to `postgres`.

pg_cluster_start() {
    local dir="$1" fsync="${2:-off}"
    PGBIN="${KEEPD_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
    if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
        echo "pg: no PostgreSQL server in /usr/lib/postgresql (apt-get install postgresql, or ./dev.sh deps)" >&2
        return 1
    fi
    case "$fsync" in on|off) ;; *) echo "pg: fsync must be on or off, not $fsync" >&2; return 1 ;; esac
    PG_DIR="$dir"
    PG_PORT=5432
    as_pg=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$PG_DIR"
        as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust --auth-host=reject \
        -E UTF8 --no-sync >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    printf 'local all postgres trust\nlocal app all scram-sha-256\n' >"$PG_DIR/hba"
    "${as_pg[@]}" cp "$PG_DIR/hba" "$PG_DIR/data/pg_hba.conf"
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -o \
        "-c port=$PG_PORT -c listen_addresses='' -c unix_socket_directories=$PG_DIR -c fsync=$fsync -c synchronous_commit=on -c max_connections=300" \
        start >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
    pg_psql -d postgres -c "CREATE DATABASE app" >/dev/null
}

pg_psql() {
    "${as_pg[@]}" "$PGBIN/psql" -qAt -h "$PG_DIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"
}

pg_role_schema() {
    pg_psql -d app -c "CREATE ROLE $1 LOGIN PASSWORD '$2'" -c "CREATE SCHEMA $1 AUTHORIZATION $1" >/dev/null
}

pg_url() {
    printf 'postgres://%s:%s@%s:%s/app?sslmode=disable' "$1" "$2" "${PG_DIR//\//%2F}" "$PG_PORT"
}

pg_cluster_stop() {
    [ -n "${PG_DIR:-}" ] && [ -n "${PGBIN:-}" ] || return 0
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
}
