//! TOTP as a second factor (keepd's own; PocketBase has none), on top of
//! PocketBase's MFA flow:
//!
//! - `GET  /api/collections/{c}/totp` — `{enabled, recoveryCodesLeft}` for the caller.
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
use crate::store::records as rs;
use crate::util::now_string;
use rusqlite::OptionalExtension;
use serde_json::{json, Value};
use std::sync::Arc;

/// (secret, confirmed, lastStep, recovery digests)
type Row = (String, bool, u64, Vec<String>);

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

pub(crate) async fn load(app: &App, cid: &str, rid: &str) -> ApiResult<Option<Row>> {
    let (cid, rid) = (cid.to_string(), rid.to_string());
    app.store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT secret, confirmed, lastStep, recovery FROM _keepd_totp WHERE collectionRef = ?1 AND recordRef = ?2",
                [&cid, &rid],
                |r| {
                    let rec: String = r.get(3)?;
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? != 0,
                        r.get::<_, i64>(2)?.max(0) as u64,
                        serde_json::from_str::<Vec<String>>(&rec).unwrap_or_default(),
                    ))
                },
            )
            .optional()?)
        })
        .await
}

/// Whether the record has TOTP on.
pub(crate) async fn enabled(app: &App, cid: &str, rid: &str) -> ApiResult<bool> {
    Ok(load(app, cid, rid).await?.is_some_and(|r| r.1))
}

fn now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Checks a code (TOTP or recovery) and records its use. Ok(true) if valid.
async fn use_code(app: &App, cid: &str, rid: &str, row: &Row, code: &str) -> ApiResult<bool> {
    let (cid, rid) = (cid.to_string(), rid.to_string());
    if let Some(step) = totp::verify(&row.0, code, now(), row.2) {
        app.store
            .write(move |c| {
                // Only forward: a concurrent use of the same step loses.
                let n = c.execute(
                    "UPDATE _keepd_totp SET lastStep = ?3, updated = ?4 WHERE collectionRef = ?1 AND recordRef = ?2 AND lastStep < ?3",
                    rusqlite::params![cid, rid, step as i64, now_string()],
                )?;
                Ok(n)
            })
            .await
            .map(|n| n == 1)
    } else {
        let d = totp::digest(code);
        if !row.3.contains(&d) {
            return Ok(false);
        }
        let left: Vec<String> = row.3.iter().filter(|x| **x != d).cloned().collect();
        let left = serde_json::to_string(&left).unwrap_or_else(|_| "[]".into());
        let old = serde_json::to_string(&row.3).unwrap_or_default();
        app.store
            .write(move |c| {
                let n = c.execute(
                    "UPDATE _keepd_totp SET recovery = ?3, updated = ?5 WHERE collectionRef = ?1 AND recordRef = ?2 AND recovery = ?4",
                    rusqlite::params![cid, rid, left, old, now_string()],
                )?;
                Ok(n)
            })
            .await
            .map(|n| n == 1)
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

pub async fn status(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    let row = load(&app, &coll.id, a.id()).await?;
    Ok(Resp::ok(&json!({
        "enabled": row.as_ref().is_some_and(|r| r.1),
        "recoveryCodesLeft": row.as_ref().filter(|r| r.1).map(|r| r.3.len()).unwrap_or(0),
    })))
}

pub async fn enroll(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    if enabled(&app, &coll.id, a.id()).await? {
        return Err(ApiError::bad("TOTP is already enabled; disable it first."));
    }
    let secret = totp::new_secret();
    let settings = app.settings();
    let issuer = settings["meta"]["appName"]
        .as_str()
        .unwrap_or("keepd")
        .to_string();
    let account = a
        .record
        .get("email")
        .map(to_text)
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| a.id().to_string());
    let uri = totp::uri(&secret, &issuer, &account);
    let qr = totp::qr_svg(&uri).unwrap_or_default();
    let (cid, rid, s2) = (coll.id.clone(), a.id().to_string(), secret.clone());
    app.store
        .write(move |c| {
            let now = now_string();
            c.execute(
                "INSERT INTO _keepd_totp (collectionRef, recordRef, secret, confirmed, lastStep, recovery, created, updated)
                 VALUES (?1, ?2, ?3, 0, 0, '[]', ?4, ?4)
                 ON CONFLICT(collectionRef, recordRef) DO UPDATE SET secret = excluded.secret, confirmed = 0, lastStep = 0, recovery = '[]', updated = excluded.updated",
                rusqlite::params![cid, rid, s2, now],
            )?;
            Ok(())
        })
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
    if row.1 {
        return Err(ApiError::bad("TOTP is already enabled; disable it first."));
    }
    attempt(&app, a.id(), false)?;
    let Some(step) = totp::verify(&row.0, &code, now(), row.2) else {
        return Err(wrong(&app, a.id()));
    };
    let (codes, digests) = totp::recovery_codes();
    let rec = serde_json::to_string(&digests).unwrap_or_else(|_| "[]".into());
    let (cid, rid) = (coll.id.clone(), a.id().to_string());
    app.store
        .write(move |c| {
            c.execute(
                "UPDATE _keepd_totp SET confirmed = 1, lastStep = ?3, recovery = ?4, updated = ?5 WHERE collectionRef = ?1 AND recordRef = ?2",
                rusqlite::params![cid, rid, step as i64, rec, now_string()],
            )?;
            Ok(())
        })
        .await?;
    audit(&app, &req, "mfa.totp.enable", &coll, a.id()).await;
    Ok(Resp::ok(&json!({"recoveryCodes": codes})))
}

pub async fn disable(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let a = me(&req, &coll)?;
    let code = code_of(&req)?;
    let Some(row) = load(&app, &coll.id, a.id()).await?.filter(|r| r.1) else {
        return Err(ApiError::bad("TOTP is not enabled."));
    };
    attempt(&app, a.id(), false)?;
    if !use_code(&app, &coll.id, a.id(), &row, &code).await? {
        return Err(wrong(&app, a.id()));
    }
    let (cid, rid) = (coll.id.clone(), a.id().to_string());
    app.store
        .write(move |c| {
            c.execute(
                "DELETE FROM _keepd_totp WHERE collectionRef = ?1 AND recordRef = ?2",
                [&cid, &rid],
            )?;
            Ok(())
        })
        .await?;
    audit(&app, &req, "mfa.totp.disable", &coll, a.id()).await;
    Ok(Resp::empty(204))
}

pub async fn auth_with_totp(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (schema, coll) = auth_coll(&app, req.param("collection"))?;
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
    let session: Option<(String, String)> = app
        .store
        .read(move |c| {
            Ok(c.query_row(
                "SELECT collectionRef, recordRef FROM _mfas WHERE id = ?1",
                [&id2],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await?;
    let Some((cref, rid)) = session.filter(|(c, _)| *c == coll.id) else {
        return Err(ApiError::bad("Invalid or expired MFA session."));
    };
    let Some(row) = load(&app, &coll.id, &rid).await?.filter(|r| r.1) else {
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
    // The MFA step: the session's first method must differ (it does:
    // nothing else answers with method "totp").
    if let Some(resp) = check_mfa(&app, &req, &schema, &coll, &rec, "totp").await? {
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
