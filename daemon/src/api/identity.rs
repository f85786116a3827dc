//! Resolving the request identity from the `Authorization` header: a valid
//! auth token of a `_superusers` record → Superuser, of any other auth
//! collection → User, anything else → Guest (as PocketBase does, an invalid
//! token is treated as no token).
//!
//! Every request with a token asks this, so the record is read with the
//! store's point read (`Store::read_now`: one row by id, on the calling
//! worker) rather than a hand-off to the blocking pool; and a token verified
//! lately on the same worker is not verified again while nothing it depends
//! on can have changed (`Verified`).

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
    // Read before anything the answer depends on: a commit after this
    // point makes a newer generation, and what is remembered below under
    // this one is never used again.
    let generation = app.store.generation();
    let now = chrono::Utc::now().timestamp();
    if let Some(rec) = Verified::find(tok, generation, now) {
        return Ok(identity_of(rec));
    }
    Ok(match verify_token_now(app, tok, "auth")? {
        Some((rec, claims)) => {
            if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
                Verified::keep(tok, generation, exp, &rec);
            }
            identity_of(rec)
        }
        None => Identity::Guest,
    })
}

/// Auth tokens verified lately on this thread, with the record each stands
/// for. A verification depends on the token's bytes (its claims and
/// signature), the record's columns (tokenKey above all: a password change
/// renews it), the collection's secret (the schema) and the clock (`exp`).
/// An entry is used only for the very same token (compared in constant
/// time, so the time taken tells nothing about a remembered token), only
/// while the store's generation is the one read before the record was
/// loaded (the store makes a new one after every commit that changed a
/// row, any schema or settings change, and any commit by another process),
/// and only before the token's expiry. Anything else is verified in full.
/// Unverified tokens are never kept.
struct Verified {
    token: Box<[u8]>,
    generation: u64,
    exp: i64,
    record: AuthRecord,
}

/// Tokens remembered per thread (the same few callers come back request
/// after request; a worker thread serves many connections).
const VERIFIED_PER_THREAD: usize = 8;

thread_local! {
    static VERIFIED: std::cell::RefCell<Vec<Verified>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Verified {
    /// The record `tok` was verified for, if that still holds.
    fn find(tok: &str, generation: u64, now: i64) -> Option<AuthRecord> {
        use subtle::ConstantTimeEq;
        let tok = tok.as_bytes();
        VERIFIED.with(|cell| {
            let mut cache = cell.try_borrow_mut().ok()?;
            // Entries of an older generation can never be used again.
            cache.retain(|e| e.generation == generation);
            let mut hit = None;
            for (i, e) in cache.iter().enumerate() {
                if e.token.len() == tok.len() && bool::from(e.token.as_ref().ct_eq(tok)) {
                    hit = Some(i);
                }
            }
            let i = hit?;
            if cache[i].exp <= now {
                cache.remove(i);
                return None;
            }
            Some(cache[i].record.clone())
        })
    }

    /// Remembers a token just verified for `record` under `generation`.
    fn keep(tok: &str, generation: u64, exp: i64, record: &AuthRecord) {
        VERIFIED.with(|cell| {
            let Ok(mut cache) = cell.try_borrow_mut() else {
                return;
            };
            cache.retain(|e| e.generation == generation);
            if cache.len() >= VERIFIED_PER_THREAD {
                cache.remove(0);
            }
            cache.push(Verified {
                token: tok.as_bytes().into(),
                generation,
                exp,
                record: record.clone(),
            });
        })
    }
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
