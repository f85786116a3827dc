//! SQLite, the engine: everything the store does that only SQLite spells.
//!
//! - `dialect`: the SQL fragments the filter compiler and the store build
//!   queries from (JSON functions, `COLLATE NOCASE`, upserts, `rowid`);
//! - `open`: opening a connection, its pragmas, SQLCipher's key, file modes,
//!   and the integrity checks;
//! - `rekey`: SQLCipher's export into a database under a new key;
//! - `conn`: `Conn`, its statement API and `Row`;
//! - `pocketbase`: reading a PocketBase database for the import;
//! - `wal`: the WAL's checkpoints — on a thread of their own while serving,
//!   TRUNCATE at a clean stop;
//! - the catalogue and maintenance statements below (`sqlite_master`,
//!   `PRAGMA`s, `last_insert_rowid`, `VACUUM INTO`).
//!
//! Nothing outside `store/sqlite/` spells SQLite-specific SQL or names
//! `rusqlite` (the unit test `store::seam` walks the sources). A second
//! engine gets a sibling module with the same functions.

mod conn;
pub mod dialect;
pub(super) mod open;
pub(super) mod pocketbase;
pub(super) mod rekey;
mod value;
pub(crate) mod wal;

#[cfg(feature = "postgres")]
pub use conn::DbError;
pub use conn::{uncached, Conn, Row, Sql};

/// The audit log's triggers: no UPDATE, and no DELETE of an entry younger
/// than a day (`created` is PocketBase's timestamp text).
pub const AUDIT_TRIGGERS: &str = r#"
CREATE TRIGGER IF NOT EXISTS _keepd_audit_no_update BEFORE UPDATE ON _keepd_audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS _keepd_audit_no_recent_delete BEFORE DELETE ON _keepd_audit
WHEN julianday(replace(replace(old.created, 'Z', ''), 'T', ' ')) > julianday('now') - 1
BEGIN
    SELECT RAISE(ABORT, 'audit entries younger than a day cannot be deleted');
END;
"#;

/// An SQLite error worded as PocketBase's SQLite driver words it (the
/// reason a view query is refused, shown to the client).
fn reason(e: rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(e, Some(m)) => {
            format!("SQL logic error: {m} ({})", e.extended_code & 0xff)
        }
        other => other.to_string(),
    }
}

/// The columns a SELECT gives, asked of SQLite without running it: each
/// one's name and declared type (a column of a table; None for an
/// expression). `Err`: why SQLite refuses the query, worded by `reason`.
pub fn result_columns(c: &Conn, sql: &str) -> Result<Vec<(String, Option<String>)>, String> {
    #[cfg(feature = "postgres")]
    if let Some(pg) = c.pg() {
        return pg.result_columns(sql);
    }
    let st = c.engine().and_then(|c| c.prepare(sql)).map_err(reason)?;
    Ok(st
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.decl_type().map(str::to_string)))
        .collect())
}

/// Every row of a query through `f`; `Err` worded by `reason`.
pub fn sample<T>(
    c: &Conn,
    sql: &str,
    mut f: impl FnMut(&Row<'_>) -> crate::error::ApiResult<T>,
) -> Result<Vec<T>, String> {
    if c.is_postgres() {
        return c
            .all(super::uncached(sql), (), f)
            .map_err(|e| e.to_string());
    }
    let mut st = c.engine().and_then(|c| c.prepare(sql)).map_err(reason)?;
    let mut rows = st.query([]).map_err(reason)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(reason)? {
        out.push(f(&Row::engine(r)).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Whether the database has a table called `name`.
pub fn table_exists(c: &Conn, name: &str) -> rusqlite::Result<bool> {
    let c = c.engine()?;
    c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The column names of `table`, in their order.
pub fn table_columns(c: &Conn, table: &str) -> rusqlite::Result<Vec<String>> {
    let c = c.engine()?;
    let mut st = c.prepare(&format!(
        "PRAGMA table_info({})",
        dialect::quote_ident(table)
    ))?;
    let cols = st
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols)
}

/// SQLite's `quick_check`: "ok", or what is damaged.
pub fn quick_check(c: &Conn) -> rusqlite::Result<String> {
    let c = c.engine()?;
    c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0))
}

/// SQLite's `data_version`: it differs from the last value the same
/// connection got when another connection has committed since.
pub fn data_version(c: &Conn) -> rusqlite::Result<i64> {
    let c = c.engine()?;
    c.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// A consistent copy of the database (as of one read transaction) written
/// to `dest`, a new file, while the writer goes on.
pub fn snapshot(c: &Conn, dest: &std::path::Path) -> rusqlite::Result<()> {
    let c = c.engine()?;
    c.execute("VACUUM INTO ?1", [dest.to_string_lossy().as_ref()])?;
    Ok(())
}
