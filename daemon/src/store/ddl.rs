//! Table definitions for collections: create, alter (sync) and drop. SQL
//! identifiers come only from validated collection and field names.

use crate::schema::index::parse_index;
use crate::schema::{Collection, CollectionType};
use rusqlite::Connection;

use super::dialect::quote_ident;

pub(crate) fn create_table(conn: &Connection, c: &Collection) -> rusqlite::Result<()> {
    if c.kind == CollectionType::View {
        return Ok(());
    }
    let cols: Vec<String> = c
        .fields
        .iter()
        .map(|f| format!("{} {}", quote_ident(&f.name), f.column_def()))
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE {} ({})",
        quote_ident(&c.name),
        cols.join(", ")
    ))?;
    create_indexes(conn, c)
}

pub(crate) fn create_indexes(conn: &Connection, c: &Collection) -> rusqlite::Result<()> {
    for ix in &c.indexes {
        // Validated at collection save; an unparsable one is skipped loudly.
        match parse_index(ix) {
            Ok(mut def) => {
                def.table = c.name.clone();
                conn.execute_batch(&def.to_sql())?;
            }
            Err(e) => tracing::warn!(collection = %c.name, error = %e, "skipping index"),
        }
    }
    Ok(())
}

fn drop_indexes(conn: &Connection, c: &Collection) -> rusqlite::Result<()> {
    for ix in &c.indexes {
        if let Ok(def) = parse_index(ix) {
            conn.execute_batch(&format!("DROP INDEX IF EXISTS {}", quote_ident(&def.name)))?;
        }
    }
    Ok(())
}

pub(crate) fn drop_table(conn: &Connection, c: &Collection) -> rusqlite::Result<()> {
    if c.kind == CollectionType::View {
        return Ok(());
    }
    drop_indexes(conn, c)?;
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", quote_ident(&c.name)))
}

/// Brings the table of `old` to the shape of `new`: rename table, rename
/// columns (matched by field id), drop removed ones, add new ones, and
/// recreate the indexes.
pub(crate) fn sync_table(
    conn: &Connection,
    old: &Collection,
    new: &Collection,
) -> rusqlite::Result<()> {
    if new.kind == CollectionType::View {
        return Ok(());
    }
    drop_indexes(conn, old)?;
    if old.name != new.name {
        conn.execute_batch(&format!(
            "ALTER TABLE {} RENAME TO {}",
            quote_ident(&old.name),
            quote_ident(&new.name)
        ))?;
    }
    let t = quote_ident(&new.name);
    // Drop removed fields and fields whose storage shape changed.
    for of in &old.fields {
        let keep = new
            .fields
            .iter()
            .find(|nf| nf.id == of.id)
            .filter(|nf| nf.column_def() == of.column_def());
        if keep.is_none() {
            conn.execute_batch(&format!(
                "ALTER TABLE {t} DROP COLUMN {}",
                quote_ident(&of.name)
            ))?;
        }
    }
    for nf in &new.fields {
        match old
            .fields
            .iter()
            .find(|of| of.id == nf.id && of.column_def() == nf.column_def())
        {
            Some(of) if of.name != nf.name => {
                conn.execute_batch(&format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    quote_ident(&of.name),
                    quote_ident(&nf.name)
                ))?;
            }
            Some(_) => {}
            None => {
                let def = nf.column_def();
                // SQLite can't ADD a PRIMARY KEY column; ids exist from the start.
                if !nf.is_primary_key() {
                    conn.execute_batch(&format!(
                        "ALTER TABLE {t} ADD COLUMN {} {def}",
                        quote_ident(&nf.name)
                    ))?;
                }
            }
        }
    }
    create_indexes(conn, new)
}

/// A view collection's query made ready to run: its fields (PocketBase's
/// field JSON, inferred) and the SQL of its SQLite view (the checked,
/// rendered SELECT; its `id` cast to text when SQLite doesn't type it so).
pub struct ViewSql {
    pub fields: Vec<serde_json::Value>,
    pub sql: String,
    /// The collections the view reads.
    pub sources: Vec<String>,
}

/// Plans `query` for the view `name` against `schema` and asks SQLite (on
/// `conn`, without running it) for the columns the rendered SELECT gives.
/// `Err` is the reason, worded for the client.
pub fn prepare_view(
    conn: &Connection,
    schema: &crate::schema::Schema,
    name: &str,
    query: &str,
) -> Result<ViewSql, String> {
    use crate::schema::view;
    let plan = view::plan(query, schema, name)?;
    let (names, id_text) = {
        let st = conn.prepare(&plan.sql).map_err(sqlite_reason)?;
        let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
        let id_text = st.columns().iter().any(|c| {
            c.name() == "id"
                && c.decl_type()
                    .is_some_and(|t| t.eq_ignore_ascii_case("text"))
        });
        (names, id_text)
    };
    let fields = view::infer_fields(&plan, &names, schema)?;
    let sql = if id_text {
        plan.sql.clone()
    } else {
        let cols: Vec<String> = names
            .iter()
            .map(|n| {
                if n == "id" {
                    "CAST(\"id\" AS TEXT) AS \"id\"".to_string()
                } else {
                    view::quote(n)
                }
            })
            .collect();
        format!("SELECT {} FROM ({})", cols.join(", "), plan.sql)
    };
    Ok(ViewSql {
        fields,
        sql,
        sources: plan.sources,
    })
}

fn sqlite_reason(e: rusqlite::Error) -> String {
    match e {
        // Worded as PocketBase's SQLite driver words it.
        rusqlite::Error::SqliteFailure(e, Some(m)) => {
            format!("SQL logic error: {m} ({})", e.extended_code & 0xff)
        }
        other => other.to_string(),
    }
}

/// Up to `limit` rows of a prepared view's SELECT, as PocketBase's
/// dry run samples them.
pub fn sample_view(
    conn: &Connection,
    c: &Collection,
    sql: &str,
    limit: i64,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let cols: Vec<String> = c.fields.iter().map(|f| view_col(&f.name)).collect();
    let q = format!(
        "SELECT {} FROM ({sql}) LIMIT {}",
        cols.join(", "),
        limit.max(0)
    );
    let mut st = conn.prepare(&q).map_err(sqlite_reason)?;
    let rows = st
        .query_map([], |r| super::records::row_to_map(c, r))
        .map_err(sqlite_reason)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_reason)
}

fn view_col(name: &str) -> String {
    crate::schema::view::quote(name)
}

/// Creates the SQLite view of a view collection from its prepared SQL.
pub(crate) fn create_view(conn: &Connection, name: &str, sql: &str) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "CREATE VIEW {} AS SELECT * FROM ({sql})",
        quote_ident(name)
    ))
}

pub(crate) fn drop_view(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    conn.execute_batch(&format!("DROP VIEW IF EXISTS {}", quote_ident(name)))
}
