//! One-time passwords by email (`request-otp`, `auth-with-otp`) and
//! PocketBase's multi-factor flow: when a collection's `mfa` is on (and its
//! `mfa.rule` passes for the record), the first successful method answers
//! 401 `{"mfaId": …}` and stores an `_mfas` row; the same request made with
//! a second, different method and that `mfaId` completes the login.
//!
//! A record with keepd's TOTP on needs the second step whatever the
//! collection's `mfa` says (`api::auth_totp`).
//!
//! OTP passwords are stored hashed (argon2id, like account passwords);
//! wrong guesses for one account are limited to 5 in 3 minutes (as
//! PocketBase), on top of the route's rate limits.

use super::auth::auth_response;
use super::records::collection;
use crate::app::App;
use crate::auth::limiter::Rule;
use crate::auth::mail::{render, Mail};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::records::{Input, Principal};
use crate::schema::record::to_text;
use crate::schema::{Collection, Schema};
use crate::store::lookup::{self, Case};
use crate::store::{mfas, otps, records as rs};
use crate::util::{new_record_id, parse_datetime, random_string, ALPHANUM};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const VALIDATING: &str = "An error occurred while validating the submitted data.";
const INVALID_OTP: &str = "Invalid or expired OTP.";

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

fn option<'a>(coll: &'a Collection, key: &str) -> &'a Value {
    coll.options.get(key).unwrap_or(&Value::Null)
}

fn otp_enabled(coll: &Collection) -> ApiResult<()> {
    if option(coll, "otp")["enabled"].as_bool().unwrap_or(false) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "The collection is not configured to allow OTP authentication.".into(),
        ))
    }
}

/// Whether a row created at `created` is older than `secs`.
fn expired(created: &str, secs: i64) -> bool {
    match parse_datetime(created) {
        Some(t) => chrono::Utc::now().signed_duration_since(t).num_seconds() > secs,
        None => true,
    }
}

/// `request-otp`. The answer is PocketBase's `{"otpId": <15 of [a-z0-9]>}`
/// whether the address belongs to an account or not, and it takes the
/// same work either way, so neither its shape nor its time tells which:
/// both paths read the account's recent OTPs, hash a fresh password
/// (argon2id, the costly part), and write one `_otps` row through the
/// writer — for an unknown address a decoy row removed in the same
/// savepoint, so the commit is the same and nothing is left. Only the mail
/// (queued, sent in the background) differs.
///
/// PocketBase answers an account's 11th live request with the id of its
/// newest OTP again, which an unknown address (a new random id each time)
/// never does: a tell. keepd answers a new id here too, stored with the
/// newest OTP's password, and sends no mail — the code from the last mail
/// works with the new id as with the old.
pub async fn request_otp(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    otp_enabled(&coll)?;
    let body = req.json_body()?;
    let email = body.get("email").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    if email.is_empty() {
        errs.add("email", "validation_required", "Cannot be blank.");
    } else if email.len() > 255 || !crate::schema::record::is_email(&email) {
        errs.add(
            "email",
            "validation_is_email",
            "Must be a valid email address.",
        );
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(VALIDATING, errs));
    }
    let otp = option(&coll, "otp");
    let duration = otp["duration"].as_i64().unwrap_or(180);
    let length = otp["length"].as_u64().unwrap_or(8).clamp(4, 32) as usize;
    // The account and its newest OTPs, in one read; an unknown address
    // reads the OTPs of an id that matches nothing.
    let (coll2, cid) = (coll.clone(), coll.id.clone());
    let (rec, recent) = app
        .store
        .read(move |c| {
            let rec = match lookup::id_by(c, &coll2, "email", &email, Case::Ignore)? {
                Some(id) => rs::fetch_by_id(c, &coll2, &id)?,
                None => None,
            };
            let rid = match &rec {
                Some(r) => r.get("id").map(to_text).unwrap_or_default(),
                None => new_record_id(),
            };
            let recent: Vec<(String, String)> = otps::recent(c, &cid, &rid, 20)?;
            Ok((rec, recent))
        })
        .await?;
    let password = random_string(length, b"1234567890");
    let hash = app.hasher.hash(password.clone()).await?;
    let id = new_record_id();
    let Some(rec) = rec else {
        // Unknown address: the same write, undone in its savepoint.
        let (id2, cid) = (id.clone(), coll.id.clone());
        let decoy = new_record_id();
        app.store
            .write(move |c| {
                otps::insert(c, &id2, &cid, &decoy, &hash, "")?;
                otps::delete(c, &id2)
            })
            .await?;
        return Ok(Resp::ok(&json!({ "otpId": id })));
    };
    let rid = rec.get("id").map(to_text).unwrap_or_default();
    let newest_live = recent
        .iter()
        .filter(|(_, c)| !expired(c, duration))
        .nth(9)
        .and(recent.first())
        .map(|(id, _)| id.clone());
    let sent_to = rec.get("email").map(to_text).unwrap_or_default();
    let (id2, cid, rid2, to2) = (id.clone(), coll.id.clone(), rid.clone(), sent_to.clone());
    let repeat = newest_live.is_some();
    app.store
        .write(move |c| match newest_live {
            // Ten live OTPs already: a new id for the newest one's password.
            Some(newest) => match otps::get(c, &newest)? {
                Some(o) => otps::insert(c, &id2, &cid, &rid2, &o.password, &o.sent_to),
                None => otps::insert(c, &id2, &cid, &rid2, &hash, &to2),
            },
            None => otps::insert(c, &id2, &cid, &rid2, &hash, &to2),
        })
        .await?;
    if repeat {
        tracing::warn!(record = %rid, "too many OTP requests: no new mail (a new id for the last code)");
        return Ok(Resp::ok(&json!({ "otpId": id })));
    }
    let settings = app.settings();
    let hidden = |f: &str| coll.is_hidden(f);
    let (subject, html) = render(
        &otp["emailTemplate"],
        &settings.meta,
        &rec,
        &hidden,
        &[("{OTP}", &password), ("{OTP_ID}", &id)],
    );
    app.mailer.queue(
        &settings,
        Mail {
            to: sent_to,
            subject,
            html,
        },
    );
    Ok(Resp::ok(&json!({ "otpId": id })))
}

pub async fn auth_with_otp(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_coll(&app, req.param("collection"))?;
    otp_enabled(&coll)?;
    let body = req.json_body()?;
    let otp_id = body.get("otpId").map(to_text).unwrap_or_default();
    let password = body.get("password").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    if otp_id.is_empty() {
        errs.add("otpId", "validation_required", "Cannot be blank.");
    } else if otp_id.len() > 255 {
        errs.add_params(
            "otpId",
            "validation_length_out_of_range",
            "The length must be between 1 and 255.",
            json!({"max": 255, "min": 1}),
        );
    }
    if password.is_empty() {
        errs.add("password", "validation_required", "Cannot be blank.");
    } else if password.len() > 71 {
        errs.add_params(
            "password",
            "validation_length_out_of_range",
            "The length must be between 1 and 71.",
            json!({"max": 71, "min": 1}),
        );
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(VALIDATING, errs));
    }
    let duration = option(&coll, "otp")["duration"].as_i64().unwrap_or(180);
    let id2 = otp_id.clone();
    let row = app.store.read(move |c| otps::get(c, &id2)).await?;
    let Some(otps::Otp {
        collection_ref: cref,
        record_ref: rref,
        password: hash,
        sent_to,
        created,
        ..
    }) = row
    else {
        return Err(ApiError::bad(INVALID_OTP));
    };
    if cref != coll.id || expired(&created, duration) {
        return Err(ApiError::bad(INVALID_OTP));
    }
    let coll2 = coll.clone();
    let rref2 = rref.clone();
    let Some(rec) = app
        .store
        .read(move |c| rs::fetch_by_id(c, &coll2, &rref2))
        .await?
    else {
        return Err(ApiError::bad(INVALID_OTP));
    };
    let attempts = Rule {
        label: "@otp".into(),
        audience: String::new(),
        duration: 180,
        max_requests: 5,
    };
    if app
        .limiter
        .check(
            &format!("@otp_{rref}"),
            &attempts,
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            app.now_secs(),
        )
        .is_err()
    {
        return Err(ApiError::TooManyRequests {
            message: "Too many attempts, please try again later with a new OTP.".into(),
            retry_after: 180,
        });
    }
    let (ok, _) = app.hasher.verify(password, Some(hash)).await?;
    if !ok {
        return Err(ApiError::bad(INVALID_OTP));
    }
    let id3 = otp_id.clone();
    app.store.write(move |c| otps::delete(c, &id3)).await?;
    let mut rec = rec;
    let email = rec.get("email").map(to_text).unwrap_or_default();
    let verified = rec
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !verified && !sent_to.is_empty() && sent_to == email {
        // The code reached the address: it is verified.
        let mut b = Map::new();
        b.insert("verified".into(), json!(true));
        let system = super::records::request(&app, &req).with_principal(Principal::System);
        let id = rec.get("id").map(to_text).unwrap_or_default();
        if let Value::Object(m) =
            crate::records::update(&app, &coll, &id, &system, Input::json(b)).await?
        {
            let coll2 = coll.clone();
            let id2 = m.get("id").map(to_text).unwrap_or_default();
            if let Some(fresh) = app
                .store
                .read(move |c| rs::fetch_by_id(c, &coll2, &id2))
                .await?
            {
                rec = fresh;
            }
        }
    }
    let id = rec.get("id").map(to_text).unwrap_or_default();
    super::auth::check_auth_rule(&app, &req, &coll, &id, req.json_body().unwrap_or_default())
        .await?;
    if let Some(resp) = check_mfa(&app, &req, &coll, &rec, "otp").await? {
        return Ok(resp);
    }
    super::auth_email::auth_alert(&app, &req, &coll, &rec).await;
    auth_response(&app, &req, &coll, rec).await
}

/// PocketBase's MFA step after a successful `method`: None to go on and
/// issue the token; Some(401 `{"mfaId"}`) when a second method is needed.
pub(crate) async fn check_mfa(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: &Map<String, Value>,
    method: &'static str,
) -> ApiResult<Option<Resp>> {
    // `superuserIPs` is checked before any second step is asked for.
    super::check_superuser_ip(app, req, coll)?;
    let mfa = option(coll, "mfa");
    let rid = rec.get("id").map(to_text).unwrap_or_default();
    let collection_mfa = mfa["enabled"].as_bool().unwrap_or(false);
    // A record with TOTP on always needs a second step (keepd's TOTP).
    let totp_on = super::auth_totp::enabled(app, &coll.id, &rid).await?;
    if coll.name == "_superusers" && app.config.superuser_totp_required && !totp_on {
        return Err(ApiError::Forbidden(
            "Superusers must use TOTP here: turn it on with `keepd superuser totp <email>`.".into(),
        ));
    }
    if !collection_mfa && !totp_on {
        return Ok(None);
    }
    let body = req.json_body().unwrap_or_default();
    // The rule: "" → everyone; otherwise only records that pass it.
    let rule = mfa["rule"].as_str().unwrap_or("");
    if !totp_on && !rule.is_empty() {
        let caller = super::records::request(app, req);
        let wants =
            match crate::records::check_rule(app, coll, &rid, Some(rule), &caller, body.clone())
                .await
            {
                Ok(passes) => passes == Some(true),
                Err(_) => return Err(ApiError::bad("Failed to authenticate.")),
            };
        if !wants {
            return Ok(None);
        }
    }
    let mfa_id = req
        .q("mfaId")
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .or_else(|| body.get("mfaId").map(to_text).filter(|s| !s.is_empty()));
    let Some(mfa_id) = mfa_id else {
        let id = random_string(15, ALPHANUM);
        let (id2, cid, rid2) = (id.clone(), coll.id.clone(), rid.clone());
        app.store
            .write(move |c| mfas::insert(c, &id2, &cid, &rid2, method))
            .await?;
        return Ok(Some(Resp::json(401, &json!({"mfaId": id}))));
    };
    let duration = mfa["duration"].as_i64().unwrap_or(600);
    let id2 = mfa_id.clone();
    let row = app.store.read(move |c| mfas::get(c, &id2)).await?;
    let delete = |id: String| async move { app.store.write(move |c| mfas::delete(c, &id)).await };
    let Some(mfas::Mfa {
        collection_ref: cref,
        record_ref: rref,
        method: first,
        created,
        ..
    }) = row
    else {
        return Err(ApiError::bad("Invalid or expired MFA session."));
    };
    if expired(&created, duration) {
        delete(mfa_id).await?;
        return Err(ApiError::bad("Invalid or expired MFA session."));
    }
    if rref != rid || cref != coll.id {
        return Err(ApiError::bad("Invalid MFA session."));
    }
    if first == method {
        return Err(ApiError::bad(
            "A different authentication method is required.",
        ));
    }
    delete(mfa_id).await?;
    Ok(None)
}
