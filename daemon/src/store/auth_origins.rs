//! `_authOrigins`: the origins (a fingerprint of client address and user
//! agent) a record has logged in from, for PocketBase's login alert.

use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::{now_string, random_string, ALPHANUM};
use rusqlite::params;

/// One remembered origin.
#[derive(Debug, Clone)]
pub struct AuthOrigin {
    pub id: String,
    pub fingerprint: String,
}

/// A record's origins, most recently used first.
pub fn list(c: &Connection, collection_ref: &str, record_ref: &str) -> ApiResult<Vec<AuthOrigin>> {
    let mut st = c.prepare_cached(
        "SELECT id, fingerprint FROM _authOrigins WHERE collectionRef = ?1 AND recordRef = ?2
         ORDER BY updated DESC",
    )?;
    let rows = st.query_map([collection_ref, record_ref], |r| {
        Ok(AuthOrigin {
            id: r.get(0)?,
            fingerprint: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks an origin as used now.
pub fn touch(c: &Connection, id: &str) -> ApiResult<()> {
    c.prepare_cached("UPDATE _authOrigins SET updated = ?2 WHERE id = ?1")?
        .execute([id, &now_string()])?;
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
    c.prepare_cached(
        "INSERT INTO _authOrigins (id, collectionRef, recordRef, fingerprint, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        random_string(15, ALPHANUM),
        collection_ref,
        record_ref,
        fingerprint,
        now
    ])?;
    Ok(())
}

pub fn delete(c: &Connection, id: &str) -> ApiResult<()> {
    c.prepare_cached("DELETE FROM _authOrigins WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
