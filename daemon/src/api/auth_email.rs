//! PocketBase's email flows of auth collections: request/confirm
//! verification, password reset and email change. Tokens are
//! PocketBase's (HS256 with the record's tokenKey + the collection's secret
//! for that token type); mail goes out through `auth::mail` off the request
//! path. The request routes answer 204 whether or not the address belongs
//! to an account, so they can't be used to find accounts.

use super::records::collection;
use crate::app::App;
use crate::auth::mail::{render, Mail};
use crate::auth::{token, AuthRecord};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::records::{Input, Principal};
use crate::schema::record::to_text;
use crate::schema::Collection;
use crate::store::lookup::{self, Case};
use crate::store::{auth_origins, records as rs};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const VALIDATING: &str = "An error occurred while validating the submitted data.";

fn auth_coll(app: &App, name: &str) -> ApiResult<(Arc<crate::schema::Schema>, Arc<Collection>)> {
    let (s, c) = collection(app, name)
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    if !c.is_auth() {
        return Err(ApiError::NotFound(
            "Missing or invalid auth collection context.".into(),
        ));
    }
    Ok((s, c))
}

/// A required, well-formed email field of the body.
fn email_field(body: &Map<String, Value>, name: &str, errs: &mut FieldErrors) -> String {
    let v = body.get(name).map(to_text).unwrap_or_default();
    if v.is_empty() {
        errs.add(name, "validation_required", "Cannot be blank.");
    } else if v.len() > 255 {
        errs.add_params(
            name,
            "validation_length_out_of_range",
            "The length must be between 1 and 255.",
            json!({"max": 255, "min": 1}),
        );
    } else if !crate::schema::record::is_email(&v) {
        errs.add(
            name,
            "validation_is_email",
            "Must be a valid email address.",
        );
    }
    v
}

async fn find_by_email(
    app: &Arc<App>,
    coll: &Arc<Collection>,
    email: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    let coll = coll.clone();
    let email = email.to_string();
    app.store
        .read(
            move |c| match lookup::id_by(c, &coll, "email", &email, Case::Ignore)? {
                Some(id) => rs::fetch_by_id(c, &coll, &id),
                None => Ok(None),
            },
        )
        .await
}

/// Signs a token of `kind` for `rec` with extra claims.
fn sign(
    coll: &Collection,
    rec: &Map<String, Value>,
    kind: &str,
    secret_key: &str,
    extra: &[(&str, Value)],
) -> String {
    let (duration, secret) = coll.token_settings(secret_key);
    let key = format!(
        "{}{}",
        rec.get("tokenKey").map(to_text).unwrap_or_default(),
        secret
    );
    let mut claims = Map::new();
    claims.insert("id".into(), rec.get("id").cloned().unwrap_or(Value::Null));
    claims.insert("type".into(), json!(kind));
    claims.insert("collectionId".into(), json!(coll.id));
    for (k, v) in extra {
        claims.insert(k.to_string(), v.clone());
    }
    claims.insert(
        "exp".into(),
        json!(chrono::Utc::now().timestamp() + duration.max(1)),
    );
    token::sign(&claims, &key)
}

/// Queues a templated mail for `rec` of `coll`.
fn send(
    app: &App,
    coll: &Collection,
    rec: &Map<String, Value>,
    template: &str,
    to: &str,
    extra: &[(&str, &str)],
) {
    let settings = app.settings();
    let tpl = coll.options.get(template).cloned().unwrap_or(Value::Null);
    let hidden = |f: &str| coll.is_hidden(f);
    let (subject, html) = render(&tpl, &settings.meta, rec, &hidden, extra);
    app.mailer.queue(
        &settings,
        Mail {
            to: to.to_string(),
            subject,
            html,
        },
    );
}

/// Checks a token from the body: field errors as PocketBase's.
async fn check_token(
    app: &Arc<App>,
    coll: &Collection,
    raw: &str,
    kind: &str,
    errs: &mut FieldErrors,
) -> ApiResult<Option<(AuthRecord, Map<String, Value>)>> {
    if raw.is_empty() {
        errs.add("token", "validation_required", "Cannot be blank.");
        return Ok(None);
    }
    match super::identity::verify_auth_token(app, raw, kind).await? {
        None => {
            errs.add(
                "token",
                "validation_invalid_token",
                "Invalid or expired token.",
            );
            Ok(None)
        }
        Some((a, _)) if a.collection.id != coll.id => {
            errs.add(
                "token",
                "validation_token_collection_mismatch",
                "The provided token is for different auth collection.",
            );
            Ok(None)
        }
        Some(x) => Ok(Some(x)),
    }
}

/// Saves `body` on the record as the system (the flow is its authority).
async fn save_as_system(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: &Map<String, Value>,
    body: Map<String, Value>,
) -> ApiResult<Value> {
    let id = rec.get("id").map(to_text).unwrap_or_default();
    // The flow's own authority: the token (or password) was checked above.
    let system = super::records::request(app, req).with_principal(Principal::System);
    crate::records::update(app, coll, &id, &system, Input::json(body)).await
}

pub async fn request_verification(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    if coll.name == "_superusers" {
        return Err(ApiError::bad("All superusers are verified by default."));
    }
    let body = req.json_body()?;
    let mut errs = FieldErrors::new();
    let email = email_field(&body, "email", &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::validation(VALIDATING, errs));
    }
    if let Some(rec) = find_by_email(&app, &coll, &email).await? {
        let verified = rec
            .get("verified")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if !verified {
            let to = rec.get("email").map(to_text).unwrap_or_default();
            let tok = sign(
                &coll,
                &rec,
                "verification",
                "verificationToken",
                &[("email", json!(to))],
            );
            send(
                &app,
                &coll,
                &rec,
                "verificationTemplate",
                &to,
                &[("{TOKEN}", &tok)],
            );
        }
    }
    Ok(Resp::empty(204))
}

pub async fn confirm_verification(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    if coll.name == "_superusers" {
        return Err(ApiError::bad("All superusers are verified by default."));
    }
    let body = req.json_body()?;
    let raw = body.get("token").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    let found = check_token(&app, &coll, &raw, "verification", &mut errs).await?;
    if let Some((a, claims)) = &found {
        let email = a.record.get("email").map(to_text).unwrap_or_default();
        if claims.get("email").map(to_text).unwrap_or_default() != email {
            errs.add(
                "token",
                "validation_token_email_mismatch",
                "The record email doesn't match with the requested token claims.",
            );
        }
    }
    let Some((a, _)) = found.filter(|_| errs.is_empty()) else {
        return Err(ApiError::validation(VALIDATING, errs));
    };
    if !a
        .record
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let mut b = Map::new();
        b.insert("verified".into(), json!(true));
        save_as_system(&app, &req, &coll, &a.record, b).await?;
    }
    Ok(Resp::empty(204))
}

pub async fn request_password_reset(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let body = req.json_body()?;
    let mut errs = FieldErrors::new();
    let email = email_field(&body, "email", &mut errs);
    if !errs.is_empty() {
        return Err(ApiError::validation(VALIDATING, errs));
    }
    if let Some(rec) = find_by_email(&app, &coll, &email).await? {
        let to = rec.get("email").map(to_text).unwrap_or_default();
        let tok = sign(
            &coll,
            &rec,
            "passwordReset",
            "passwordResetToken",
            &[("email", json!(to))],
        );
        send(
            &app,
            &coll,
            &rec,
            "resetPasswordTemplate",
            &to,
            &[("{TOKEN}", &tok)],
        );
    }
    Ok(Resp::empty(204))
}

pub async fn confirm_password_reset(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    let body = req.json_body()?;
    let raw = body.get("token").map(to_text).unwrap_or_default();
    let password = body.get("password").map(to_text).unwrap_or_default();
    let confirm = body.get("passwordConfirm").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    let found = check_token(&app, &coll, &raw, "passwordReset", &mut errs).await?;
    if password.is_empty() {
        errs.add("password", "validation_required", "Cannot be blank.");
    }
    if confirm.is_empty() {
        errs.add("passwordConfirm", "validation_required", "Cannot be blank.");
    } else if confirm != password {
        errs.add(
            "passwordConfirm",
            "validation_values_mismatch",
            "Values don't match.",
        );
    }
    let Some((a, claims)) = found.filter(|_| errs.is_empty()) else {
        return Err(ApiError::validation(VALIDATING, errs));
    };
    let mut b = Map::new();
    b.insert("password".into(), json!(password));
    b.insert("passwordConfirm".into(), json!(confirm));
    let email = a.record.get("email").map(to_text).unwrap_or_default();
    if claims.get("email").map(to_text).unwrap_or_default() == email {
        // The reset mail reached the address: it is verified.
        b.insert("verified".into(), json!(true));
    }
    save_as_system(&app, &req, &coll, &a.record, b).await?;
    let id = a.record.get("id").map(to_text).unwrap_or_default();
    // A reset ends a lockout.
    app.lockout.clear(&coll.id, &id, app.now_secs());
    Ok(Resp::empty(204))
}

pub async fn request_email_change(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    if coll.name == "_superusers" {
        return Err(ApiError::bad(
            "All superusers can change their emails directly.",
        ));
    }
    let Some(auth) = req
        .identity
        .auth()
        .filter(|a| a.collection.id == coll.id)
        .cloned()
    else {
        return Err(ApiError::Unauthorized(
            "The request requires valid auth record.".into(),
        ));
    };
    let body = req.json_body()?;
    let mut errs = FieldErrors::new();
    let new_email = email_field(&body, "newEmail", &mut errs);
    let current = auth.record.get("email").map(to_text).unwrap_or_default();
    if errs.is_empty() {
        if new_email.eq_ignore_ascii_case(&current) {
            errs.add(
                "newEmail",
                "validation_not_in_invalid",
                "Must be a valid value.",
            );
        } else if find_by_email(&app, &coll, &new_email).await?.is_some() {
            errs.add(
                "newEmail",
                "validation_invalid_new_email",
                "Invalid new email address.",
            );
        }
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(VALIDATING, errs));
    }
    let tok = sign(
        &coll,
        &auth.record,
        "emailChange",
        "emailChangeToken",
        &[("email", json!(current)), ("newEmail", json!(new_email))],
    );
    send(
        &app,
        &coll,
        &auth.record,
        "confirmEmailChangeTemplate",
        &new_email,
        &[("{TOKEN}", &tok)],
    );
    Ok(Resp::empty(204))
}

pub async fn confirm_email_change(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    if coll.name == "_superusers" {
        return Err(ApiError::bad(
            "All superusers can change their emails directly.",
        ));
    }
    let body = req.json_body()?;
    let raw = body.get("token").map(to_text).unwrap_or_default();
    let password = body.get("password").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    let found = check_token(&app, &coll, &raw, "emailChange", &mut errs).await?;
    let mut new_email = String::new();
    if let Some((_, claims)) = &found {
        new_email = claims.get("newEmail").map(to_text).unwrap_or_default();
        if new_email.is_empty() {
            errs.add(
                "token",
                "validation_invalid_token_payload",
                "Invalid token payload - newEmail must be set.",
            );
        } else if find_by_email(&app, &coll, &new_email).await?.is_some() {
            errs.add(
                "token",
                "validation_invalid_token_email",
                "The new email address is invalid.",
            );
        }
    }
    if password.is_empty() {
        errs.add("password", "validation_required", "Cannot be blank.");
    } else if let Some((a, _)) = &found {
        let hash = a.record.get("password").map(to_text);
        let (ok, _) = app.hasher.verify(password.clone(), hash).await?;
        if !ok {
            errs.add(
                "password",
                "validation_invalid_password",
                "Missing or invalid auth record password.",
            );
        }
    }
    let Some((a, _)) = found.filter(|_| errs.is_empty()) else {
        return Err(ApiError::validation(VALIDATING, errs));
    };
    let mut b = Map::new();
    b.insert("email".into(), json!(new_email));
    b.insert("verified".into(), json!(true));
    save_as_system(&app, &req, &coll, &a.record, b)
        .await
        .map_err(|_| ApiError::bad("Failed to confirm email change."))?;
    Ok(Resp::empty(204))
}

/// Origins remembered per account (as PocketBase).
const MAX_AUTH_ORIGINS: usize = 5;

/// PocketBase's login alert (`authAlert`): a login from a new origin (client
/// address + user agent) mails the owner, unless it is their first login;
/// the last few origins are remembered in `_authOrigins`. Never fails the
/// login.
pub(crate) async fn auth_alert(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: &Map<String, Value>,
) {
    let alert = coll
        .options
        .get("authAlert")
        .cloned()
        .unwrap_or(Value::Null);
    if !alert["enabled"].as_bool().unwrap_or(false) {
        return;
    }
    let ip = req.client_ip.to_string();
    let mut ua = req.header("user-agent").unwrap_or_default().to_string();
    if ua.len() > 200 {
        let mut cut = 200;
        while !ua.is_char_boundary(cut) {
            cut -= 1;
        }
        ua.truncate(cut);
        ua.push_str("...");
    }
    let fingerprint: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(format!("{ip}{ua}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let (cid, rid) = (
        coll.id.clone(),
        rec.get("id").map(to_text).unwrap_or_default(),
    );
    let fp = fingerprint.clone();
    let seen = app
        .store
        .write(move |c| {
            let origins = auth_origins::list(c, &cid, &rid)?;
            let known = origins.iter().find(|o| o.fingerprint == fp);
            match known {
                Some(o) => auth_origins::touch(c, &o.id)?,
                None => {
                    for o in origins.iter().skip(MAX_AUTH_ORIGINS - 1) {
                        auth_origins::delete(c, &o.id)?;
                    }
                    auth_origins::insert(c, &cid, &rid, &fp)?;
                }
            }
            Ok((origins.is_empty(), known.is_some()))
        })
        .await;
    let (first_login, known) = match seen {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "login alert: origins not updated");
            return;
        }
    };
    let to = rec.get("email").map(to_text).unwrap_or_default();
    if first_login || known || to.is_empty() {
        return;
    }
    let info = format!("{} - {ip} {ua}", crate::util::now_string());
    let esc = info
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let settings = app.settings();
    let hidden = |f: &str| coll.is_hidden(f);
    let (subject, html) = render(
        &alert["emailTemplate"],
        &settings.meta,
        rec,
        &hidden,
        &[("{ALERT_INFO}", &esc)],
    );
    app.mailer.queue(&settings, Mail { to, subject, html });
}
