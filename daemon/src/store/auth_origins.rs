//! `_authOrigins`: the origins (a fingerprint of client address and user
//! agent) a record has logged in from, for PocketBase's login alert.

use super::args;
use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::{now_string, random_string, ALPHANUM};

/// One remembered origin.
#[derive(Debug, Clone)]
pub struct AuthOrigin {
    pub id: String,
    pub fingerprint: String,
}

/// A record's origins, most recently used first.
pub fn list(c: &Connection, collection_ref: &str, record_ref: &str) -> ApiResult<Vec<AuthOrigin>> {
    c.all(
        "SELECT id, fingerprint FROM \"_authOrigins\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2
         ORDER BY updated DESC",
        [collection_ref, record_ref],
        |r| {
            Ok(AuthOrigin {
                id: r.get(0)?,
                fingerprint: r.get(1)?,
            })
        },
    )
}

/// Marks an origin as used now.
pub fn touch(c: &Connection, id: &str) -> ApiResult<()> {
    c.exec(
        "UPDATE \"_authOrigins\" SET updated = ?2 WHERE id = ?1",
        [id, &now_string()],
    )?;
    Ok(())
}

/// Remembers a new origin of a record.
pub fn insert(
    c: &Connection,
    collection_ref: &str,
    record_ref: &str,
    fingerprint: &str,
) -> ApiResult<()> {
    let now = now_string();
    c.exec(
        "INSERT INTO \"_authOrigins\" (id, \"collectionRef\", \"recordRef\", fingerprint, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        args![
            random_string(15, ALPHANUM),
            collection_ref,
            record_ref,
            fingerprint,
            now
        ],
    )?;
    Ok(())
}

pub fn delete(c: &Connection, id: &str) -> ApiResult<()> {
    c.exec("DELETE FROM \"_authOrigins\" WHERE id = ?1", [id])?;
    Ok(())
}
