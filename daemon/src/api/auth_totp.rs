//! TOTP as a second factor (keepd's own; PocketBase has none), on top of
//! PocketBase's MFA flow:
//!
//! - `GET  /api/collections/{c}/totp` — `{enabled, recoveryCodesLeft}` for the caller.
//! - `GET  /api/totp/{c}/{recordId}` — the same for any auth record (superusers).
//! - `POST /api/collections/{c}/totp/enroll` — a new secret: `{secret, uri, qrSvg}`
//!   (pending until confirmed; the secret is never shown again).
//! - `POST /api/collections/{c}/totp/confirm {code}` — turns it on; answers the
//!   recovery codes, once.
//! - `POST /api/collections/{c}/totp/disable {code}` — a current code or a
//!   recovery code turns it off.
//! - `POST /api/collections/{c}/auth-with-totp {mfaId, code}` — the second step
//!   after a first method answered 401 `{mfaId}`; `code` may be a recovery code
//!   (used up).
//!
//! A record with TOTP on always needs the second step at login, whether or
//! not its collection's `mfa` is on. Enabling and disabling are audited.

use super::auth::{actor, auth_response};
use super::auth_otp::check_mfa;
use super::records::collection;
use crate::app::App;
use crate::auth::limiter::Rule;
use crate::auth::totp;
use crate::auth::AuthRecord;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::schema::record::to_text;
use crate::schema::{Collection, Schema};
use crate::store::totp::{self as repo, Totp};
use crate::store::{mfas, records as rs};
use serde_json::{json, Value};
use std::sync::Arc;

fn auth_coll(app: &App, name: &str) -> ApiResult<(Arc<Schema>, Arc<Collection>)> {
    let (s, c) = collection(app, name)
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    if !c.is_auth() {
        return Err(ApiError::NotFound(
            "Missing or invalid auth collection context.".into(),
        ));
    }
    Ok((s, c))
}

/// The caller, who must be a record of this collection.
fn me(req: &Req, coll: &Collection) -> ApiResult<AuthRecord> {
    req.identity
        .auth()
        .filter(|a| a.collection.id == coll.id)
        .cloned()
        .ok_or_else(|| {
            ApiError::Unauthorized("The request requires valid record authorization token.".into())
        })
}

pub(crate) async fn load(app: &App, cid: &str, rid: &str) -> ApiResult<Option<Totp>> {
    let (cid, rid) = (cid.to_string(), rid.to_string());
    app.store.read(move |c| repo::get(c, &cid, &rid)).await
}

/// Whether the record has TOTP on.
pub(crate) async fn enabled(app: &App, cid: &str, rid: &str) -> ApiResult<bool> {
    Ok(load(app, cid, rid).await?.is_some_and(|r| r.confirmed))
}

fn now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Checks a code (TOTP or recovery) and records its use. Ok(true) if valid.
async fn use_code(app: &App, cid: &str, rid: &str, row: &Totp, code: &str) -> ApiResult<bool> {
    let (cid, rid) = (cid.to_string(), rid.to_string());
    if let Some(step) = totp::verify(&row.secret, code, now(), row.last_step) {
        // Only forward: a concurrent use of the same step loses.
        app.store
            .write(move |c| repo::advance(c, &cid, &rid, step))
            .await
    } else {
        let d = totp::digest(code);
        if !row.recovery.contains(&d) {
            return Ok(false);
        }
        let left: Vec<String> = row.recovery.iter().filter(|x| **x != d).cloned().collect();
        let old = row.recovery.clone();
        app.store
            .write(move |c| repo::replace_recovery(c, &cid, &rid, &old, &left))
            .await
    }
}

fn code_of(req: &Req) -> ApiResult<String> {
    let body = req.json_body()?;
    let code = body.get("code").map(to_text).unwrap_or_default();
    if code.is_empty() {
        let mut e = FieldErrors::new();
        e.add("code", "validation_required", "Cannot be blank.");
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            e,
        ));
    }
    Ok(code)
}

fn invalid_code() -> ApiError {
    let mut e = FieldErrors::new();
    e.add(
        "code",
        "validation_invalid_code",
        "Invalid or expired code.",
    );
    ApiError::validation("An error occurred while validating the submitted data.", e)
}

/// Wrong codes for one account: 5 in 3 minutes. `failed`: count one.
fn attempt(app: &App, rid: &str, failed: bool) -> ApiResult<()> {
    let rule = Rule {
        label: "@totp".into(),
        audience: String::new(),
        duration: 180,
        max_requests: 5,
    };
    let id = format!("@totp_{rid}");
    let key: std::net::IpAddr = std::net::Ipv4Addr::UNSPECIFIED.into();
    let now = app.now_secs();
    let over = if failed {
        app.limiter.check(&id, &rule, key, now).err()
    } else {
        app.limiter.exceeded(&id, &rule, key, now)
    };
    match over {
        Some(retry_after) => Err(ApiError::TooManyRequests {
            message: "Too many attempts, please try again later.".into(),
            retry_after,
        }),
        None => Ok(()),
    }
}

/// A wrong code: counted, then refused.
fn wrong(app: &App, rid: &str) -> ApiError {
    attempt(app, rid, true).err().unwrap_or_else(invalid_code)
}

/// `{enabled, recoveryCodesLeft}` of a record (a pending enrolment is off).
async fn status_of(app: &App, cid: &str, rid: &str) -> ApiResult<Value> {
    let row = load(app, cid, rid).await?;
    Ok(json!({
        "enabled": row.as_ref().is_some_and(|r| r.confirmed),
        "recoveryCodesLeft": row.as_ref().filter(|r| r.confirmed).map(|r| r.recovery.len()).unwrap_or(0),
    }))
}

pub async fn status(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    Ok(Resp::ok(&status_of(&app, &coll.id, a.id()).await?))
}

/// `GET /api/totp/{collection}/{recordId}` (superusers): any auth record's
/// TOTP state; 404 for a record that doesn't exist.
pub async fn status_for(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    super::require_superuser(&req)?;
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let rid = req.param("recordId").to_string();
    let view = super::records::request(&app, &req);
    crate::records::view(&app, &coll, &rid, &view).await?;
    Ok(Resp::ok(&status_of(&app, &coll.id, &rid).await?))
}

pub async fn enroll(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    if enabled(&app, &coll.id, a.id()).await? {
        return Err(ApiError::bad("TOTP is already enabled; disable it first."));
    }
    let secret = totp::new_secret();
    let issuer = app.settings().meta.app_name.clone();
    let account = a
        .record
        .get("email")
        .map(to_text)
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| a.id().to_string());
    let uri = totp::uri(&secret, &issuer, &account);
    let qr = totp::qr_svg(&uri).unwrap_or_default();
    let (cid, rid, s2) = (coll.id.clone(), a.id().to_string(), secret.clone());
    let pending = Totp {
        secret: s2,
        confirmed: false,
        last_step: 0,
        recovery: Vec::new(),
    };
    app.store
        .write(move |c| repo::put(c, &cid, &rid, &pending))
        .await?;
    Ok(Resp::ok(
        &json!({"secret": secret, "uri": uri, "qrSvg": qr}),
    ))
}

pub async fn confirm(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    let code = code_of(&req)?;
    let Some(row) = load(&app, &coll.id, a.id()).await? else {
        return Err(ApiError::bad("Enroll first."));
    };
    if row.confirmed {
        return Err(ApiError::bad("TOTP is already enabled; disable it first."));
    }
    attempt(&app, a.id(), false)?;
    let Some(step) = totp::verify(&row.secret, &code, now(), row.last_step) else {
        return Err(wrong(&app, a.id()));
    };
    let (codes, digests) = totp::recovery_codes();
    let (cid, rid) = (coll.id.clone(), a.id().to_string());
    app.store
        .write(move |c| repo::confirm(c, &cid, &rid, step, &digests))
        .await?;
    audit(&app, &req, "mfa.totp.enable", &coll, a.id()).await;
    Ok(Resp::ok(&json!({"recoveryCodes": codes})))
}

pub async fn disable(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    let code = code_of(&req)?;
    let Some(row) = load(&app, &coll.id, a.id()).await?.filter(|r| r.confirmed) else {
        return Err(ApiError::bad("TOTP is not enabled."));
    };
    attempt(&app, a.id(), false)?;
    if !use_code(&app, &coll.id, a.id(), &row, &code).await? {
        return Err(wrong(&app, a.id()));
    }
    let (cid, rid) = (coll.id.clone(), a.id().to_string());
    app.store
        .write(move |c| repo::delete(c, &cid, &rid))
        .await?;
    audit(&app, &req, "mfa.totp.disable", &coll, a.id()).await;
    Ok(Resp::empty(204))
}

pub async fn auth_with_totp(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let body = req.json_body()?;
    let mfa_id = body.get("mfaId").map(to_text).unwrap_or_default();
    let code = body.get("code").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    if mfa_id.is_empty() {
        errs.add("mfaId", "validation_required", "Cannot be blank.");
    }
    if code.is_empty() {
        errs.add("code", "validation_required", "Cannot be blank.");
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            errs,
        ));
    }
    // The MFA session names the record.
    let id2 = mfa_id.clone();
    let session = app.store.read(move |c| mfas::get(c, &id2)).await?;
    let Some(mfas::Mfa {
        collection_ref: cref,
        record_ref: rid,
        ..
    }) = session.filter(|s| s.collection_ref == coll.id)
    else {
        return Err(ApiError::bad("Invalid or expired MFA session."));
    };
    let Some(row) = load(&app, &coll.id, &rid).await?.filter(|r| r.confirmed) else {
        return Err(ApiError::bad("Failed to authenticate."));
    };
    attempt(&app, &rid, false)?;
    if !use_code(&app, &cref, &rid, &row, &code).await? {
        return Err(wrong(&app, &rid));
    }
    let (coll2, rid2) = (coll.clone(), rid.clone());
    let Some(rec) = app
        .store
        .read(move |c| rs::fetch_by_id(c, &coll2, &rid2))
        .await?
    else {
        return Err(ApiError::bad("Failed to authenticate."));
    };
    let id = rec.get("id").map(to_text).unwrap_or_default();
    super::auth::check_auth_rule(&app, &req, &coll, &id, req.json_body().unwrap_or_default())
        .await?;
    // The MFA step: the session's first method must differ (it does:
    // nothing else answers with method "totp").
    if let Some(resp) = check_mfa(&app, &req, &coll, &rec, "totp").await? {
        return Ok(resp);
    }
    super::auth_email::auth_alert(&app, &req, &coll, &rec).await;
    auth_response(&app, &req, &coll, rec).await
}

async fn audit(app: &App, req: &Req, action: &'static str, coll: &Collection, rid: &str) {
    app.audit(crate::store::audit::Entry {
        action,
        actor: actor(req),
        ip: req.client_ip.to_string(),
        target: format!("{}/{}", coll.name, rid),
        diff: Value::Object(Default::default()),
    })
    .await;
}
