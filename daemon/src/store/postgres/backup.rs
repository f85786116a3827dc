//! Backups of a store on PostgreSQL: the schema's tables exported
//! (`store::export`'s typed JSON lines) inside one `REPEATABLE READ`, read
//! only transaction on a reader's session — one snapshot of every table,
//! while the writers go on — and an export loaded back into the schema in
//! one transaction: every table and view of the schema dropped (the change
//! log excepted: other processes on the schema follow it), keepd's
//! migrations run, the collections' tables made from the restored
//! definitions, the rows loaded, identity sequences set past the largest
//! value. Either all of it is committed or nothing changes.
//!
//! Table and column names come from the server's catalogue (export) or are
//! checked against it (restore) before they are quoted into SQL; values
//! are bound.

use crate::error::{ApiError, ApiResult};
use crate::store::dialect::quote_ident;
use crate::store::export::{self, Item, Manifest, Table};
use crate::store::{migrate, uncached, Conn, SqlRef};
use std::collections::HashSet;
use std::path::Path;

/// The change log: shared with the other processes on the schema, neither
/// exported nor dropped.
const CHANGE_LOG: &str = "_keepd_changes";

/// Rows read per FETCH of the export's cursor.
const PAGE: usize = 500;

fn err(m: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("postgres export: {m}"))
}

/// The schema's tables (not views), by name.
fn tables(c: &Conn) -> ApiResult<Vec<String>> {
    c.all(
        uncached(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
             ORDER BY table_name",
        ),
        (),
        |r| r.get::<String>(0),
    )
}

/// A table's columns in their order.
fn columns(c: &Conn, table: &str) -> ApiResult<Vec<String>> {
    c.all(
        uncached(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = ?1
             ORDER BY ordinal_position",
        ),
        [table],
        |r| r.get::<String>(0),
    )
}

fn backend(c: &Conn) -> ApiResult<i64> {
    c.one(uncached("SELECT pg_backend_pid()::bigint"), (), |r| {
        r.get::<i64>(0)
    })?
    .ok_or_else(|| err("no backend"))
}

/// Writes the export of the schema `c` reads (a reader's session) to
/// `dest`: every table but the change log, in one snapshot.
pub(crate) fn export(c: &Conn, dest: &Path) -> ApiResult<()> {
    c.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    let r = export_in(c, dest);
    let end = c.script(if r.is_ok() { "COMMIT" } else { "ROLLBACK" });
    r.and(end)
}

fn export_in(c: &Conn, dest: &Path) -> ApiResult<()> {
    // A reader's session lost mid-way is replaced and its query run again
    // outside this transaction: the session is the same one to the end, or
    // the export fails.
    let pid = backend(c)?;
    let migration: i64 = c
        .one(
            uncached("SELECT COALESCE(MAX(version), 0) FROM _keepd_migrations"),
            (),
            |r| r.get(0),
        )?
        .unwrap_or(0);
    let collections: HashSet<String> = c
        .all(uncached("SELECT name FROM _collections"), (), |r| {
            r.get::<String>(0)
        })?
        .into_iter()
        .collect();
    let mut names: Vec<String> = tables(c)?.into_iter().filter(|t| t != CHANGE_LOG).collect();
    // The system tables first, then the collections' (a restore makes
    // those from the definitions it loaded).
    names.sort_by_key(|t| (collections.contains(t), t.clone()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(err)?;
    let mut w = export::Writer::new(
        std::io::BufWriter::new(file),
        &Manifest {
            engine: "postgres".into(),
            migration,
        },
    )
    .map_err(err)?;
    for t in names {
        let cols = columns(c, &t)?;
        w.table(&Table {
            name: t.clone(),
            columns: cols.clone(),
            collection: collections.contains(&t),
        })
        .map_err(err)?;
        let list: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
        c.script(&format!(
            "DECLARE keepd_export NO SCROLL CURSOR FOR SELECT {} FROM {}",
            list.join(", "),
            quote_ident(&t)
        ))?;
        loop {
            let mut n = 0;
            let mut failed = None;
            c.each(
                uncached(&format!("FETCH FORWARD {PAGE} FROM keepd_export")),
                (),
                |r| {
                    n += 1;
                    let vals = (0..cols.len())
                        .map(|i| r.get_ref(i))
                        .collect::<ApiResult<Vec<SqlRef<'_>>>>()?;
                    if let Err(e) = w.row(&vals) {
                        failed = Some(e);
                    }
                    Ok(())
                },
            )?;
            if let Some(e) = failed {
                return Err(err(e));
            }
            if n < PAGE {
                break;
            }
        }
        c.script("CLOSE keepd_export")?;
    }
    if backend(c)? != pid {
        return Err(err("the session was lost during the export"));
    }
    let mut out = w.finish().map_err(err)?;
    use std::io::Write;
    out.flush().map_err(err)?;
    out.get_ref().sync_all().map_err(err)?;
    Ok(())
}

/// Loads the export at `src` into the schema of `c` (a writing session),
/// in one transaction, in place of everything there. The export must come
/// from a store at this keepd's migration.
pub(crate) fn restore(c: &Conn, src: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(src)?;
    let mut reader =
        export::Reader::new(std::io::BufReader::new(file)).map_err(anyhow::Error::msg)?;
    refuse_other(&reader.manifest).map_err(anyhow::Error::msg)?;
    c.script("BEGIN")?;
    match restore_in(c, &mut reader) {
        Ok(()) => {
            c.script("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            let _ = c.script("ROLLBACK");
            Err(e)
        }
    }
}

/// Why an export can't be restored into this keepd (None: it can).
pub(crate) fn refuse_other(m: &Manifest) -> Result<(), String> {
    if m.engine != "postgres" {
        return Err(format!(
            "The backup was exported from {:?}, not PostgreSQL.",
            m.engine
        ));
    }
    if m.migration != migrate::latest() {
        return Err(format!(
            "The backup was taken by a keepd at migration {}, this one is at {}: restore it with the same version of keepd.",
            m.migration,
            migrate::latest()
        ));
    }
    Ok(())
}

fn restore_in<R: std::io::BufRead>(c: &Conn, reader: &mut export::Reader<R>) -> anyhow::Result<()> {
    // Writers of other processes on the schema wait (their BEGIN takes
    // this lock), when the change log is there.
    let followed = crate::store::table_exists(c, CHANGE_LOG)?;
    if followed {
        c.script("SELECT pg_advisory_xact_lock('_keepd_changes'::regclass::oid::bigint)")?;
    }
    // Everything in the schema goes: views first, then tables.
    drop_views(c)?;
    for t in tables(c)? {
        if t != CHANGE_LOG {
            c.script(&format!("DROP TABLE IF EXISTS {} CASCADE", quote_ident(&t)))?;
        }
    }
    // keepd's own tables, made by its migrations, emptied of what they
    // seed; the default collections' tables dropped (the restored
    // definitions make them again).
    migrate::run_nested(c)?;
    let seeded = migrate::load_schema(c)?;
    for coll in seeded.all() {
        if coll.kind == crate::schema::CollectionType::View {
            crate::store::ddl::drop_view(c, &coll.name)?;
        } else {
            crate::store::ddl::drop_table(c, coll)?;
        }
    }
    let left: Vec<String> = tables(c)?.into_iter().filter(|t| t != CHANGE_LOG).collect();
    if !left.is_empty() {
        let list: Vec<String> = left.iter().map(|t| quote_ident(t)).collect();
        c.script(&format!("TRUNCATE {}", list.join(", ")))?;
    }
    let mut made_collections = false;
    let mut loaded: Vec<String> = Vec::new();
    let mut insert: Option<(String, usize)> = None;
    while let Some(item) = reader.next_item().map_err(anyhow::Error::msg)? {
        match item {
            Item::Table(t) => {
                if t.name == CHANGE_LOG {
                    anyhow::bail!("the export holds the change log");
                }
                if t.collection && !made_collections {
                    make_collection_tables(c)?;
                    made_collections = true;
                }
                let have: HashSet<String> = columns(c, &t.name)?.into_iter().collect();
                if have.is_empty() {
                    anyhow::bail!("the backup's table {:?} is not one this keepd has", t.name);
                }
                if let Some(col) = t.columns.iter().find(|col| !have.contains(*col)) {
                    anyhow::bail!(
                        "the backup's table {:?} has a column {col:?} the restored one lacks",
                        t.name
                    );
                }
                let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                insert = Some((
                    format!(
                        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})",
                        quote_ident(&t.name),
                        cols.join(", "),
                        marks.join(", ")
                    ),
                    cols.len(),
                ));
                loaded.push(t.name);
            }
            Item::Row(values) => {
                let Some((sql, n)) = &insert else {
                    anyhow::bail!("a row before its table");
                };
                debug_assert_eq!(values.len(), *n);
                c.exec(sql, &values)?;
            }
        }
    }
    if !made_collections {
        make_collection_tables(c)?;
    }
    // Identity columns (the tables' insertion order, the audit log's ids)
    // go on past the largest value loaded.
    for t in &loaded {
        let ids: Vec<String> = c.all(
            uncached(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = ?1 AND is_identity = 'YES'",
            ),
            [t.as_str()],
            |r| r.get::<String>(0),
        )?;
        for col in ids {
            c.one(
                uncached(&format!(
                    "SELECT setval(pg_get_serial_sequence(?1, ?2), COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
                    quote_ident(&col),
                    quote_ident(t)
                )),
                [quote_ident(t), col.clone()],
                |_| Ok(()),
            )?;
        }
    }
    // Other processes on the schema load the collections again.
    if followed {
        super::changelog::schema_changed(c)?;
    }
    Ok(())
}

/// The tables (and views) of the collections the restore loaded into
/// `_collections`.
fn make_collection_tables(c: &Conn) -> anyhow::Result<()> {
    let schema = migrate::load_schema(c)?;
    let mut views = Vec::new();
    for coll in schema.all() {
        if coll.kind == crate::schema::CollectionType::View {
            views.push(coll.as_ref());
        } else {
            crate::store::ddl::create_table(c, coll)?;
        }
    }
    if !views.is_empty() {
        crate::store::catalog::make_views(c, &schema, &views)?;
    }
    Ok(())
}

/// Whether the schema holds no table.
pub(crate) fn is_empty(c: &Conn) -> anyhow::Result<bool> {
    Ok(tables(c)?.is_empty())
}

/// Drops every view and table of the schema, in one transaction.
pub(crate) fn drop_all(c: &Conn) -> anyhow::Result<()> {
    c.script("BEGIN")?;
    let r = (|| -> anyhow::Result<()> {
        drop_views(c)?;
        for t in tables(c)? {
            c.script(&format!("DROP TABLE IF EXISTS {} CASCADE", quote_ident(&t)))?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => Ok(c.script("COMMIT")?),
        Err(e) => {
            let _ = c.script("ROLLBACK");
            Err(e)
        }
    }
}

fn drop_views(c: &Conn) -> ApiResult<()> {
    let views: Vec<String> = c.all(
        uncached(
            "SELECT table_name::text FROM information_schema.views
             WHERE table_schema = current_schema()",
        ),
        (),
        |r| r.get::<String>(0),
    )?;
    for v in views {
        c.script(&format!("DROP VIEW IF EXISTS {} CASCADE", quote_ident(&v)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_of_another_engine_or_migration_are_refused() {
        let ok = Manifest {
            engine: "postgres".into(),
            migration: migrate::latest(),
        };
        assert!(refuse_other(&ok).is_ok());
        let other = Manifest {
            engine: "sqlite".into(),
            ..ok.clone()
        };
        assert!(refuse_other(&other)
            .expect_err("engine")
            .contains("not PostgreSQL"));
        let older = Manifest {
            migration: ok.migration - 1,
            ..ok
        };
        assert!(refuse_other(&older)
            .expect_err("migration")
            .contains("same version of keepd"));
    }
}
