//! `_mfas`: PocketBase's multi-factor sessions — the first method that
//! succeeded for a record, waiting for a second, different one.

use super::args;
use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::now_string;

/// One MFA session.
#[derive(Debug, Clone)]
pub struct Mfa {
    pub id: String,
    pub collection_ref: String,
    pub record_ref: String,
    /// The first method (`password`, `otp`, `oauth2`, `totp`).
    pub method: String,
    pub created: String,
}

/// Opens a session (its `created` is now).
pub fn insert(
    c: &Connection,
    id: &str,
    collection_ref: &str,
    record_ref: &str,
    method: &str,
) -> ApiResult<()> {
    let now = now_string();
    c.exec(
        "INSERT INTO _mfas (id, \"collectionRef\", \"recordRef\", method, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        args![id, collection_ref, record_ref, method, now],
    )?;
    Ok(())
}

pub fn get(c: &Connection, id: &str) -> ApiResult<Option<Mfa>> {
    c.one(
        "SELECT id, \"collectionRef\", \"recordRef\", method, created FROM _mfas WHERE id = ?1",
        [id],
        |r| {
            Ok(Mfa {
                id: r.get(0)?,
                collection_ref: r.get(1)?,
                record_ref: r.get(2)?,
                method: r.get(3)?,
                created: r.get(4)?,
            })
        },
    )
}

pub fn delete(c: &Connection, id: &str) -> ApiResult<()> {
    c.exec("DELETE FROM _mfas WHERE id = ?1", [id])?;
    Ok(())
}
