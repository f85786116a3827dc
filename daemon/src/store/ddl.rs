//! Table definitions for collections: create, alter (sync) and drop. SQL
//! identifiers come only from validated collection and field names.

use super::Conn as Connection;
use crate::error::ApiResult;
use crate::schema::index::parse_index;
use crate::schema::{Collection, CollectionType};

use super::dialect::quote_ident;

pub(crate) fn create_table(conn: &Connection, c: &Collection) -> ApiResult<()> {
    if c.kind == CollectionType::View {
        return Ok(());
    }
    let cols: Vec<String> = c
        .fields
        .iter()
        .map(|f| format!("{} {}", quote_ident(&f.name), f.column_def()))
        .collect();
    conn.script(&format!(
        "CREATE TABLE {} ({})",
        quote_ident(&c.name),
        cols.join(", ")
    ))?;
    super::keep_insertion_order(conn, &c.name)?;
    create_indexes(conn, c)
}

pub(crate) fn create_indexes(conn: &Connection, c: &Collection) -> ApiResult<()> {
    for ix in &c.indexes {
        // Validated at collection save; an unparsable one is skipped loudly.
        match parse_index(ix) {
            Ok(mut def) => {
                def.table = c.name.clone();
                conn.script(&conn.sql_engine().index_sql(&def))?;
            }
            Err(e) => tracing::warn!(collection = %c.name, error = %e, "skipping index"),
        }
    }
    Ok(())
}

fn drop_indexes(conn: &Connection, c: &Collection) -> ApiResult<()> {
    for ix in &c.indexes {
        if let Ok(def) = parse_index(ix) {
            conn.script(&format!("DROP INDEX IF EXISTS {}", quote_ident(&def.name)))?;
        }
    }
    Ok(())
}

pub(crate) fn drop_table(conn: &Connection, c: &Collection) -> ApiResult<()> {
    if c.kind == CollectionType::View {
        return Ok(());
    }
    drop_indexes(conn, c)?;
    conn.script(&format!("DROP TABLE IF EXISTS {}", quote_ident(&c.name)))
}

/// Brings the table of `old` to the shape of `new`: rename table, rename
/// columns (matched by field id), drop removed ones, add new ones, and
/// recreate the indexes.
pub(crate) fn sync_table(conn: &Connection, old: &Collection, new: &Collection) -> ApiResult<()> {
    if new.kind == CollectionType::View {
        return Ok(());
    }
    drop_indexes(conn, old)?;
    if old.name != new.name {
        conn.script(&format!(
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
            conn.script(&format!(
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
                conn.script(&format!(
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
                    conn.script(&format!(
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
    let (names, id_text, _types) = {
        let cols = super::sqlite::result_columns(conn, &plan.sql)?;
        let types: Vec<Option<String>> = cols.iter().map(|(_, t)| t.clone()).collect();
        let id_text = cols.iter().any(|(name, decl)| {
            name == "id"
                && decl
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("text"))
        });
        let names: Vec<String> = cols.into_iter().map(|(name, _)| name).collect();
        (names, id_text, types)
    };
    let fields = view::infer_fields(&plan, &names, schema)?;
    let engine = conn.sql_engine();
    // An engine that types its statements gets each column as the filter
    // compiler assumes the field's column is typed (a number field's as a
    // number, a JSON field's as JSON text); SQLite only needs a non-text
    // `id` cast.
    let column = |(i, n): (usize, &String)| -> String {
        if engine.typed() {
            let kind = fields
                .iter()
                .find(|f| f["name"].as_str() == Some(n.as_str()))
                .and_then(|f| f["type"].as_str());
            let def = match kind {
                Some("number") => "NUMERIC",
                Some("bool") => "BOOLEAN",
                _ => "TEXT",
            };
            let quoted = view::quote(n);
            // A JSON field's value as SQLite gives it (a truth value as 1/0).
            #[cfg(feature = "postgres")]
            if def == "TEXT" && kind == Some("json") {
                let ty = _types.get(i).and_then(|t| t.as_deref());
                return format!(
                    "{} AS {quoted}",
                    super::postgres::view::json_column(&quoted, ty)
                );
            }
            let _ = i;
            format!(
                "{} AS {quoted}",
                engine.bound_as_column(def).replacen('?', &quoted, 1)
            )
        } else if n == "id" {
            "CAST(\"id\" AS TEXT) AS \"id\"".to_string()
        } else {
            view::quote(n)
        }
    };
    let sql = if id_text && !engine.typed() {
        plan.sql.clone()
    } else {
        let cols: Vec<String> = names.iter().enumerate().map(column).collect();
        format!(
            "SELECT {} FROM ({}){}",
            cols.join(", "),
            plan.sql,
            derived_alias(conn)
        )
    };
    Ok(ViewSql {
        fields,
        sql,
        sources: plan.sources,
    })
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
        "SELECT {} FROM ({sql}){} LIMIT {}",
        cols.join(", "),
        derived_alias(conn),
        limit.max(0)
    );
    super::sqlite::sample(conn, &q, |r| super::records::row_to_map(c, r))
}

fn view_col(name: &str) -> String {
    crate::schema::view::quote(name)
}

/// Creates the SQLite view of a view collection from its prepared SQL.
pub(crate) fn create_view(conn: &Connection, name: &str, sql: &str) -> ApiResult<()> {
    conn.script(&format!(
        "CREATE VIEW {} AS SELECT * FROM ({sql}){}",
        quote_ident(name),
        derived_alias(conn)
    ))
}

/// The alias a subquery in FROM needs (PostgreSQL; SQLite's is left out).
fn derived_alias(conn: &Connection) -> &'static str {
    if conn.is_postgres() {
        " AS \"__v\""
    } else {
        ""
    }
}

pub(crate) fn drop_view(conn: &Connection, name: &str) -> ApiResult<()> {
    conn.script(&format!("DROP VIEW IF EXISTS {}", quote_ident(name)))
}
