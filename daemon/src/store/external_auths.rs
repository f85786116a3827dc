//! `_externalAuths`: PocketBase's links between an auth record and an
//! OAuth2 provider's account.

use super::args;
use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::{now_string, random_string, ALPHANUM};

/// One link.
#[derive(Debug, Clone)]
pub struct ExternalAuth {
    pub id: String,
    pub record_ref: String,
}

/// The link of a provider's account in a collection.
pub fn find(
    c: &Connection,
    collection_ref: &str,
    provider: &str,
    provider_id: &str,
) -> ApiResult<Option<ExternalAuth>> {
    c.one(
        "SELECT id, \"recordRef\" FROM \"_externalAuths\"
         WHERE \"collectionRef\" = ?1 AND provider = ?2 AND \"providerId\" = ?3",
        [collection_ref, provider, provider_id],
        |r| {
            Ok(ExternalAuth {
                id: r.get(0)?,
                record_ref: r.get(1)?,
            })
        },
    )
}

/// Links a record to a provider's account; answers the new link's id.
pub fn insert(
    c: &Connection,
    collection_ref: &str,
    record_ref: &str,
    provider: &str,
    provider_id: &str,
) -> ApiResult<String> {
    let id = random_string(15, ALPHANUM);
    let now = now_string();
    c.exec(
        "INSERT INTO \"_externalAuths\" (id, \"collectionRef\", \"recordRef\", provider, \"providerId\", created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        args![id, collection_ref, record_ref, provider, provider_id, now],
    )?;
    Ok(id)
}

/// Removes every link of a record.
pub fn delete_for_record(c: &Connection, collection_ref: &str, record_ref: &str) -> ApiResult<()> {
    c.exec(
        "DELETE FROM \"_externalAuths\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2",
        [collection_ref, record_ref],
    )?;
    Ok(())
}
