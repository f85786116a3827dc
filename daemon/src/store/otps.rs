//! `_otps`: one-time passwords sent by email (PocketBase's system
//! collection). The password is stored hashed; rows are kept until used or
//! superseded, and their age is judged by the caller.

use super::args;
use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::now_string;

/// One stored OTP.
#[derive(Debug, Clone)]
pub struct Otp {
    pub id: String,
    pub collection_ref: String,
    pub record_ref: String,
    /// The password's hash.
    pub password: String,
    pub sent_to: String,
    pub created: String,
}

/// Stores a new OTP (its `created` is now).
pub fn insert(
    c: &Connection,
    id: &str,
    collection_ref: &str,
    record_ref: &str,
    password_hash: &str,
    sent_to: &str,
) -> ApiResult<()> {
    let now = now_string();
    c.exec(
        "INSERT INTO _otps (id, \"collectionRef\", \"recordRef\", password, \"sentTo\", created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        args![id, collection_ref, record_ref, password_hash, sent_to, now],
    )?;
    Ok(())
}

/// The newest `limit` OTPs of a record as `(id, created)`, newest first.
pub fn recent(
    c: &Connection,
    collection_ref: &str,
    record_ref: &str,
    limit: u32,
) -> ApiResult<Vec<(String, String)>> {
    c.all(
        "SELECT id, created FROM _otps WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2
         ORDER BY created DESC LIMIT ?3",
        args![collection_ref, record_ref, limit],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

pub fn get(c: &Connection, id: &str) -> ApiResult<Option<Otp>> {
    c.one(
        "SELECT id, \"collectionRef\", \"recordRef\", password, \"sentTo\", created FROM _otps WHERE id = ?1",
        [id],
        |r| {
            Ok(Otp {
                id: r.get(0)?,
                collection_ref: r.get(1)?,
                record_ref: r.get(2)?,
                password: r.get(3)?,
                sent_to: r.get(4)?,
                created: r.get(5)?,
            })
        },
    )
}

pub fn delete(c: &Connection, id: &str) -> ApiResult<()> {
    c.exec("DELETE FROM _otps WHERE id = ?1", [id])?;
    Ok(())
}
