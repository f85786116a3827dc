//! `keepd import pocketbase`: reading a PocketBase 0.23+ database (a
//! private copy of its `data.db` and WAL, never the original), and the one
//! record write outside `records::write` (ARCHITECTURE.md, "One path per
//! record write": an import keeps ids, timestamps and password hashes, which
//! no principal may set through the record domain).

use crate::error::ApiResult;
use crate::schema::field::FieldKind;
use crate::schema::record::validate;
use crate::schema::Collection;
use serde_json::{Map, Value};

/// The source's reader (PocketBase's database is SQLite's, whatever engine
/// keepd stores in).
pub use super::sqlite::pocketbase::{
    open_source, source_collections, source_count, source_format, source_records, source_settings,
    SourceCollection, SourceFormat,
};

/// Why an imported record was refused: the field and the complaint.
pub type Refusal = (String, String);

/// Checks an imported record as a write checks its values (each field's
/// validation; a password is a stored hash here, so it must look like one:
/// PocketBase's bcrypt, or keepd's argon2id).
pub fn check_record(c: &Collection, values: &Map<String, Value>) -> Result<(), Refusal> {
    for f in &c.fields {
        let v = values.get(&f.name).unwrap_or(&Value::Null);
        match &f.kind {
            FieldKind::Password(_) => {
                let h = v.as_str().unwrap_or_default();
                let hashed = ["$2a$", "$2b$", "$2y$", "$argon2id$"]
                    .iter()
                    .any(|p| h.starts_with(p));
                if !h.is_empty() && !hashed {
                    return Err((f.name.clone(), "not a bcrypt or argon2id hash".into()));
                }
            }
            FieldKind::Autodate(_) => {}
            _ => validate(f, v).map_err(|(_, msg, _)| (f.name.clone(), msg))?,
        }
    }
    Ok(())
}

/// Inserts imported records as they are (ids, timestamps, hashes kept),
/// each checked by [`check_record`] and in its own savepoint: a record
/// refused (its values, or a unique index) is returned with the reason and
/// the others go on.
pub fn insert_imported(
    conn: &super::Conn,
    c: &Collection,
    rows: &[Map<String, Value>],
) -> ApiResult<Vec<(String, String)>> {
    let mut refused = Vec::new();
    for row in rows {
        let id = row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Err((field, why)) = check_record(c, row) {
            refused.push((id, format!("{field}: {why}")));
            continue;
        }
        super::savepoint(conn, "keepd_import")?;
        match super::records::insert(conn, c, row) {
            Ok(()) => super::release(conn, "keepd_import")?,
            Err(e) => {
                super::roll_back_to(conn, "keepd_import")?;
                let body = e.to_body();
                let mut why = body["message"].as_str().unwrap_or_default().to_string();
                if let Some(d) = body["data"].as_object() {
                    for (k, v) in d {
                        why.push_str(&format!(" {k}: {}", v["message"].as_str().unwrap_or("")));
                    }
                }
                refused.push((id, why));
            }
        }
    }
    Ok(refused)
}
