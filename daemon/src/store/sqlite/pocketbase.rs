//! Reading a PocketBase 0.23+ database for `keepd import pocketbase` (a
//! private copy of its `data.db` and WAL, never the original). PocketBase's
//! database is SQLite whatever engine keepd stores in, so the reader is
//! SQLite's; the import's write side is `store::import`.

use super::dialect::quote_ident;
use super::Conn;
use crate::schema::record::from_sql;
use crate::schema::Collection;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};
use std::path::Path;

/// What the source database is.
#[derive(Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// PocketBase 0.23 or later (`_collections.fields`).
    PocketBase,
    /// PocketBase before 0.23 (`_collections.schema`).
    OldPocketBase,
    /// A keepd database (`_keepd_migrations`).
    Keepd,
    /// No `_collections` table.
    Other,
}

/// Opens the copy of the source database (read-write: SQLite replays the
/// copied WAL into it).
pub fn open_source(path: &Path) -> rusqlite::Result<super::Conn> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(c.into())
}

use super::{table_columns as columns, table_exists as has_table};

/// Which kind of database the source is.
pub fn source_format(c: &Conn) -> rusqlite::Result<SourceFormat> {
    if has_table(c, "_keepd_migrations")? {
        return Ok(SourceFormat::Keepd);
    }
    if !has_table(c, "_collections")? {
        return Ok(SourceFormat::Other);
    }
    let cols = columns(c, "_collections")?;
    Ok(if cols.iter().any(|c| c == "fields") {
        SourceFormat::PocketBase
    } else if cols.iter().any(|c| c == "schema") {
        SourceFormat::OldPocketBase
    } else {
        SourceFormat::Other
    })
}

/// A collection of the source as PocketBase's API shows it (options at the
/// top level), with its `created` and `updated`.
pub struct SourceCollection {
    pub json: Value,
    pub created: String,
    pub updated: String,
}

/// Every collection of the source, in the order they were stored.
pub fn source_collections(c: &Conn) -> rusqlite::Result<Vec<SourceCollection>> {
    let c = c.engine()?;
    let mut st = c.prepare(&format!(
        "SELECT id, system, type, name, fields, indexes, listRule, viewRule, createRule, \
         updateRule, deleteRule, options, created, updated FROM _collections ORDER BY {}",
        super::dialect::INSERTION_ORDER
    ))?;
    let rows = st.query_map([], |r| {
        let json_col = |i: usize| -> rusqlite::Result<Value> {
            let t: Option<String> = r.get(i)?;
            Ok(t.and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null))
        };
        let mut m = Map::new();
        if let Value::Object(o) = json_col(11)? {
            m.extend(o);
        }
        m.insert("id".into(), Value::String(r.get(0)?));
        m.insert("system".into(), Value::Bool(r.get::<_, i64>(1)? != 0));
        m.insert("type".into(), Value::String(r.get(2)?));
        m.insert("name".into(), Value::String(r.get(3)?));
        m.insert("fields".into(), json_col(4)?);
        m.insert("indexes".into(), json_col(5)?);
        for (i, k) in [
            (6, "listRule"),
            (7, "viewRule"),
            (8, "createRule"),
            (9, "updateRule"),
            (10, "deleteRule"),
        ] {
            let v: Option<String> = r.get(i)?;
            m.insert(k.into(), v.map(Value::String).unwrap_or(Value::Null));
        }
        Ok(SourceCollection {
            json: Value::Object(m),
            created: r.get::<_, Option<String>>(12)?.unwrap_or_default(),
            updated: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// The source's settings: `Ok(None)` when absent, `Err(text)` when stored
/// but not JSON (PocketBase encrypts them under `PB_ENCRYPTION`).
pub fn source_settings(c: &Conn) -> rusqlite::Result<Result<Option<Value>, String>> {
    if !has_table(c, "_params")? {
        return Ok(Ok(None));
    }
    // PocketBase stores the JSON as a blob.
    let bytes: Option<Option<Vec<u8>>> = c
        .engine()?
        .query_row("SELECT value FROM _params WHERE id = 'settings'", [], |r| {
            Ok(match r.get_ref(0)? {
                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                    Some(t.to_vec())
                }
                _ => None,
            })
        })
        .optional()?;
    Ok(match bytes.flatten() {
        None => Ok(None),
        Some(t) => match serde_json::from_slice::<Value>(&t) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            _ => Err("the stored settings are not JSON (encrypted with PB_ENCRYPTION?)".into()),
        },
    })
}

/// The number of rows of a source table (the collection's name).
pub fn source_count(c: &Conn, table: &str) -> rusqlite::Result<i64> {
    let c = c.engine()?;
    c.query_row(
        &format!("SELECT count(*) FROM {}", quote_ident(table)),
        [],
        |r| r.get(0),
    )
}

/// Reads the records of `coll` (keepd's definition, built from the source's)
/// from the source table of the same name in rowid order, `batch` at a time:
/// `each` gets each batch. A column the source table lacks reads as null.
pub fn source_records(
    c: &Conn,
    coll: &Collection,
    batch: usize,
    mut each: impl FnMut(Vec<Map<String, Value>>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let have = columns(c, &coll.name)?;
    let cols: Vec<String> = coll
        .fields
        .iter()
        .map(|f| {
            if have.contains(&f.name) {
                quote_ident(&f.name)
            } else {
                "NULL".to_string()
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        quote_ident(&coll.name),
        super::dialect::INSERTION_ORDER
    );
    let mut st = c.engine()?.prepare(&sql)?;
    let mut rows = st.query([])?;
    let mut out = Vec::with_capacity(batch);
    while let Some(r) = rows.next()? {
        let mut m = Map::new();
        for (i, f) in coll.fields.iter().enumerate() {
            m.insert(f.name.clone(), from_sql(f, r.get_ref(i)?.into()));
        }
        out.push(m);
        if out.len() >= batch {
            each(std::mem::take(&mut out))?;
        }
    }
    if !out.is_empty() {
        each(out)?;
    }
    Ok(())
}
