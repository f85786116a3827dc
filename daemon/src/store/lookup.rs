//! Record lookups by one field, for the auth flows (a login identity, an
//! email, a username being taken) and collection administration. The
//! collection and field names come from the schema and are quoted; every
//! value is bound.

use super::dialect::{quote_ident, COLLATE_NOCASE};
use super::{uncached, Conn as Connection};
use crate::error::{ApiError, ApiResult};
use crate::schema::Collection;

/// How a lookup compares text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Byte for byte.
    Exact,
    /// Without regard to ASCII case (emails, `COLLATE NOCASE` indexes).
    Ignore,
}

fn checked<'a>(c: &Collection, field: &'a str) -> ApiResult<&'a str> {
    if c.has_field(field) {
        Ok(field)
    } else {
        Err(ApiError::internal(format!(
            "lookup by unknown field {field:?} of {}",
            c.name
        )))
    }
}

/// The id of a record whose `field` equals `value` (the first one found).
pub fn id_by(
    conn: &Connection,
    c: &Collection,
    field: &str,
    value: &str,
    case: Case,
) -> ApiResult<Option<String>> {
    let field = checked(c, field)?;
    let sql = format!(
        "SELECT \"id\" FROM {} WHERE {} = ?1{} LIMIT 1",
        quote_ident(&c.name),
        quote_ident(field),
        if case == Case::Ignore {
            COLLATE_NOCASE
        } else {
            ""
        }
    );
    conn.one(&sql, [value], |r| r.get(0))
}

/// Every record id of a collection.
pub fn all_ids(conn: &Connection, c: &Collection) -> ApiResult<Vec<String>> {
    let sql = format!("SELECT \"id\" FROM {}", quote_ident(&c.name));
    conn.all(uncached(&sql), (), |r| r.get::<String>(0))
}
