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
