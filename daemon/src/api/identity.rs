//! Resolving the request identity from the `Authorization` header: a valid
//! auth token of a `_superusers` record → Superuser, of any other auth
//! collection → User, anything else → Guest (as PocketBase does, an invalid
//! token is treated as no token).
//!
//! Every request with a token asks this, so the record is read with the
//! store's point read (`Store::read_now`: one row by id, on the calling
//! worker) rather than a hand-off to the blocking pool.

use crate::app::App;
use crate::auth::{token, AuthRecord, Identity};
use crate::error::ApiResult;
use crate::schema::Collection;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The caller of a request with this `Authorization` header value.
pub fn resolve(app: &App, authorization: Option<&str>) -> ApiResult<Identity> {
    let Some(raw) = authorization else {
        return Ok(Identity::Guest);
    };
    let tok = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
    Ok(match verify_token_now(app, tok, "auth")? {
        Some((rec, _claims)) => identity_of(rec),
        None => Identity::Guest,
    })
}

/// Who a valid auth token of this record stands for.
pub fn identity_of(rec: AuthRecord) -> Identity {
    if rec.collection.name == "_superusers" {
        Identity::Superuser(rec)
    } else {
        Identity::User(rec)
    }
}

/// An auth record as a token's holder is loaded (every column), without a
/// token: who the rule tester acts as. None: no such record.
pub fn auth_record_now(
    app: &App,
    coll: &Arc<Collection>,
    id: &str,
) -> ApiResult<Option<AuthRecord>> {
    if !coll.is_auth() {
        return Ok(None);
    }
    Ok(
        load_auth_record_now(app, coll, id)?.map(|record| AuthRecord {
            collection: coll.clone(),
            record: Arc::new(record),
        }),
    )
}

/// Verifies a token of `kind` ("auth", "file", …): finds its collection and
/// record, checks the signature with tokenKey + secret, and the expiry.
pub async fn verify_auth_token(
    app: &Arc<App>,
    tok: &str,
    kind: &str,
) -> ApiResult<Option<(AuthRecord, Map<String, Value>)>> {
    verify_token_now(app, tok, kind)
}

/// `verify_auth_token` at once on the calling worker (a point read).
pub fn verify_token_now(
    app: &App,
    tok: &str,
    kind: &str,
) -> ApiResult<Option<(AuthRecord, Map<String, Value>)>> {
    // Decoded and parsed once: `verify` checks the signature over the
    // bytes these claims were read from.
    let Some(parsed) = token::Parsed::new(tok) else {
        return Ok(None);
    };
    let claims = parsed.claims();
    if claims.get("type").and_then(Value::as_str) != Some(kind) {
        return Ok(None);
    }
    let (Some(id), Some(cid)) = (
        claims.get("id").and_then(Value::as_str),
        claims.get("collectionId").and_then(Value::as_str),
    ) else {
        return Ok(None);
    };
    let secret_key = match kind {
        "auth" => "authToken",
        "file" => "fileToken",
        "passwordReset" => "passwordResetToken",
        "verification" => "verificationToken",
        "emailChange" => "emailChangeToken",
        _ => return Ok(None),
    };
    let schema = app.store.schema();
    let Some(coll) = schema.by_id(cid).cloned() else {
        return Ok(None);
    };
    if !coll.is_auth() {
        return Ok(None);
    }
    let Some(record) = load_auth_record_now(app, &coll, id)? else {
        return Ok(None);
    };
    let (_, secret) = coll.token_settings(secret_key);
    let key = format!(
        "{}{}",
        record
            .get("tokenKey")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        secret
    );
    let now = chrono::Utc::now().timestamp();
    Ok(parsed.verify(&key, now).map(|claims| {
        (
            AuthRecord {
                collection: coll,
                record: Arc::new(record),
            },
            claims,
        )
    }))
}

/// One auth record with every column (hidden ones too), as a point read
/// on the calling worker.
fn load_auth_record_now(
    app: &App,
    coll: &Arc<Collection>,
    id: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    app.store
        .read_now(|c| crate::store::records::fetch_by_id(c, coll, id))
}
