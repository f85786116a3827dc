//! Auth routes of auth collections: auth-methods, auth-with-password,
//! auth-refresh. (Email flows, OTP, MFA, OAuth2 come with the auth issue.)

use super::records::{collection, request_ctx};
use crate::app::App;
use crate::auth::lockout::Failure;
use crate::auth::{token, AuthRecord, Identity};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::records::render::{enrich, pick_fields};
use crate::schema::record::to_text;
use crate::schema::Collection;
use crate::store::audit;
use crate::store::lookup::{self, Case};
use crate::store::records as rs;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn auth_collection(
    app: &App,
    name: &str,
) -> ApiResult<(Arc<crate::schema::Schema>, Arc<Collection>)> {
    let (s, c) = collection(app, name)
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    if !c.is_auth() {
        return Err(ApiError::NotFound(
            "Missing or invalid auth collection context.".into(),
        ));
    }
    Ok((s, c))
}

pub async fn methods(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, c) = auth_collection(&app, req.param("collection"))?;
    let mfa = c.options.get("mfa").cloned().unwrap_or(json!({}));
    let otp = c.options.get("otp").cloned().unwrap_or(json!({}));
    // Durations are reported only for enabled methods; the legacy keys
    // (authProviders, emailPassword, usernamePassword) are kept for older SDKs.
    let enabled = |o: &Value| o.get("enabled").and_then(Value::as_bool).unwrap_or(false);
    let duration = |o: &Value| {
        if enabled(o) {
            o.get("duration").cloned().unwrap_or(json!(0))
        } else {
            json!(0)
        }
    };
    // Identity fields are listed only while password auth is on.
    let fields = if c.password_auth_enabled() {
        c.identity_fields()
    } else {
        Vec::new()
    };
    let mut providers = super::auth_oauth2::providers_info(&c);
    // Each provider also under the legacy `authUrl` key.
    for p in providers.iter_mut() {
        if let Some(o) = p.as_object_mut() {
            if let Some(u) = o.get("authURL").cloned() {
                o.insert("authUrl".into(), u);
            }
        }
    }
    // The legacy list: the same entries without their logos (PocketBase's).
    let legacy: Vec<Value> = providers
        .iter()
        .cloned()
        .map(|mut p| {
            if let Some(o) = p.as_object_mut() {
                o.insert("logo".into(), json!(""));
            }
            p
        })
        .collect();
    let oauth2_on = c
        .options
        .get("oauth2")
        .and_then(|o| o.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = json!({
        "password": {"enabled": c.password_auth_enabled(), "identityFields": fields},
        "oauth2": {"enabled": oauth2_on, "providers": providers},
        "mfa": {"enabled": enabled(&mfa), "duration": duration(&mfa)},
        "otp": {"enabled": enabled(&otp), "duration": duration(&otp)},
        "authProviders": legacy,
        "emailPassword": c.password_auth_enabled() && fields.iter().any(|f| f == "email"),
        "usernamePassword": c.password_auth_enabled() && fields.iter().any(|f| f == "username"),
    });
    Ok(Resp::ok(&pick_fields(body, req.q("fields").unwrap_or(""))))
}

/// Issues an auth token for `rec` and answers `{token, record}`.
pub(crate) async fn auth_response(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: Map<String, Value>,
) -> ApiResult<Resp> {
    auth_response_with(app, req, coll, rec, None).await
}

/// `static_duration`: a non-refreshable token of that many seconds
/// (impersonation); None: a regular refreshable auth token.
pub(crate) async fn auth_response_with(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: Map<String, Value>,
    static_duration: Option<i64>,
) -> ApiResult<Resp> {
    let (duration, secret) = coll.token_settings("authToken");
    let key = format!(
        "{}{}",
        rec.get("tokenKey").map(to_text).unwrap_or_default(),
        secret
    );
    let lifetime = static_duration
        .filter(|d| *d > 0)
        .unwrap_or(duration)
        .max(1);
    let exp = chrono::Utc::now().timestamp() + lifetime;
    let id = rec.get("id").map(to_text).unwrap_or_default();
    let tok = token::sign(
        &token::auth_claims(&id, &coll.id, static_duration.is_none(), exp),
        &key,
    );
    render_auth(app, req, coll, rec, tok).await
}

/// Answers `{token, record}` with the record as its owner sees it.
async fn render_auth(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: Map<String, Value>,
    tok: String,
) -> ApiResult<Resp> {
    super::check_superuser_ip(app, req, coll)?;
    let who = AuthRecord {
        collection: coll.clone(),
        record: Arc::new(rec.clone()),
    };
    let identity = if coll.name == "_superusers" {
        Identity::Superuser(who)
    } else {
        Identity::User(who)
    };
    let mut ctx = request_ctx(app, req, Map::new());
    ctx.identity = identity;
    let expand = req.q("expand").unwrap_or("").to_string();
    let schema = app.store.schema();
    let coll2 = coll.clone();
    let out = app
        .store
        .read(move |c| Ok(enrich(c, &schema, &coll2, vec![rec], &ctx, &expand)?.pop()))
        .await?
        .unwrap_or(Value::Null);
    let body = json!({"token": tok, "record": out});
    Ok(Resp::ok(&pick_fields(body, req.q("fields").unwrap_or(""))))
}

fn failed() -> ApiError {
    ApiError::bad("Failed to authenticate.")
}

pub async fn with_password(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_collection(&app, req.param("collection"))?;
    if !coll.password_auth_enabled() {
        return Err(ApiError::Forbidden(
            "The collection is not configured to allow password authentication.".into(),
        ));
    }
    let body = req.json_body()?;
    let identity = body.get("identity").map(to_text).unwrap_or_default();
    let password = body.get("password").map(to_text).unwrap_or_default();
    let mut errs = FieldErrors::new();
    if identity.is_empty() {
        errs.add("identity", "validation_required", "Cannot be blank.");
    }
    if password.is_empty() {
        errs.add("password", "validation_required", "Cannot be blank.");
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            errs,
        ));
    }
    let mut fields = coll.identity_fields();
    if let Some(f) = body.get("identityField").and_then(Value::as_str) {
        if !fields.iter().any(|x| x == f) {
            let mut e = FieldErrors::new();
            e.add(
                "identityField",
                "validation_in_invalid",
                "Must be a valid value.",
            );
            return Err(ApiError::validation(
                "An error occurred while validating the submitted data.",
                e,
            ));
        }
        fields = vec![f.to_string()];
    }
    let coll2 = coll.clone();
    let ident = identity.clone();
    let rec = app
        .store
        .read(move |c| {
            for f in &fields {
                if !coll2.has_field(f) {
                    continue;
                }
                if let Some(id) = lookup::id_by(c, &coll2, f, &ident, Case::Exact)? {
                    return rs::fetch_by_id(c, &coll2, &id);
                }
            }
            Ok(None)
        })
        .await?;
    // A locked account is refused before any hashing (keepd's lockout).
    let now = app.now_secs();
    let rec_id = rec.as_ref().and_then(|r| r.get("id")).map(to_text);
    if let Some(rid) = &rec_id {
        if let Some(left) = app.lockout.locked(&coll.id, rid, now) {
            return Err(locked(left));
        }
    }
    let hash = rec.as_ref().and_then(|r| r.get("password")).map(to_text);
    // Always verify (against a dummy for unknown identities): same timing.
    let (ok, upgrade) = app.hasher.verify(password.clone(), hash).await?;
    let Some(rec) = rec.filter(|_| ok) else {
        if let Some(rid) = rec_id {
            if let Failure::Locked(secs) = app.lockout.fail(&coll.id, &rid, now) {
                tracing::warn!(collection = %coll.name, record = %rid, secs, "account locked after failed logins");
                app.audit(audit::Entry {
                    action: "lockout",
                    actor: String::new(),
                    ip: req.client_ip.to_string(),
                    target: format!("{}/{}", coll.name, rid),
                    diff: json!({"lockedForSeconds": secs, "maxFailures": app.lockout.policy().max_failures}),
                })
                .await;
            }
        }
        return Err(failed());
    };
    // As PocketBase: a superuser from outside `superuserIPs` is refused once
    // the password is known to be right, before the auth rule and MFA.
    super::check_superuser_ip(&app, &req, &coll)?;
    // authRule: null → nobody may authenticate; otherwise the record must
    // pass it, judged for the request as it came (not yet as the record).
    let id = rec.get("id").map(to_text).unwrap_or_default();
    check_auth_rule(&app, &req, &coll, &id, body.clone()).await?;
    if upgrade {
        // Rehash with the current parameters; the tokenKey stays, so
        // existing sessions are not revoked by a parameter upgrade.
        crate::records::password::rehash(&app, &coll, &id, password).await?;
    }
    app.lockout.clear(&coll.id, &id, now);
    if let Some(resp) = super::auth_otp::check_mfa(&app, &req, &coll, &rec, "password").await? {
        return Ok(resp);
    }
    super::auth_email::auth_alert(&app, &req, &coll, &rec).await;
    if coll.name == "_superusers" {
        app.audit(audit::Entry {
            action: "superuser.login",
            actor: format!("_superusers/{id}"),
            ip: req.client_ip.to_string(),
            target: format!("_superusers/{id}"),
            diff: json!({"method": "password"}),
        })
        .await;
    }
    auth_response(&app, &req, &coll, rec).await
}

fn locked(secs: u64) -> ApiError {
    ApiError::TooManyRequests {
        message: "Too many failed login attempts, please try again later.".into(),
        retry_after: secs.max(1),
    }
}

pub async fn refresh(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = auth_collection(&app, req.param("collection"))?;
    let Some(auth) = req.identity.auth().cloned() else {
        return Err(ApiError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        ));
    };
    if auth.collection.id != coll.id {
        return Err(ApiError::Forbidden(format!(
            "The request requires auth record from {} collection.",
            auth.collection.name
        )));
    }
    // Non-refreshable (impersonation) tokens are not extended.
    let raw = req.header("authorization").unwrap_or_default();
    let raw = raw.strip_prefix("Bearer ").unwrap_or(raw);
    let refreshable = token::unverified_claims(raw)
        .and_then(|c| c.get("refreshable").and_then(Value::as_bool))
        .unwrap_or(false);
    // The authRule again: a record it no longer admits gets no new token.
    check_auth_rule(
        &app,
        &req,
        &coll,
        auth.id(),
        req.json_body().unwrap_or_default(),
    )
    .await?;
    if !refreshable {
        // As PocketBase: the same token back (an impersonation token is
        // never extended), with the current record.
        let same = raw.trim().to_string();
        return render_auth(&app, &req, &coll, Arc::unwrap_or_clone(auth.record), same).await;
    }
    auth_response(&app, &req, &coll, Arc::unwrap_or_clone(auth.record)).await
}

/// PocketBase's authRule check before a token is handed out (login,
/// refresh): the record must pass the rule for the request as it came
/// (`body` as `@request.body`); a null rule admits only superusers.
pub(crate) async fn check_auth_rule(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    id: &str,
    body: Map<String, Value>,
) -> ApiResult<()> {
    let caller = super::records::request(app, req);
    let passes = crate::records::check_rule(app, coll, id, coll.auth_rule(), &caller, body).await?;
    match passes {
        Some(true) => Ok(()),
        None if caller.principal.is_superuser() => Ok(()),
        _ => Err(ApiError::Forbidden(
            "The request doesn't satisfy the collection requirements to authenticate.".into(),
        )),
    }
}

/// `POST /api/collections/{collection}/impersonate/{id}` (superusers): a
/// non-refreshable token for another auth record.
pub async fn impersonate(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    super::require_superuser(&req)?;
    let (_, coll) = auth_collection(&app, req.param("collection"))?;
    let body = req.json_body()?;
    let duration = match body.get("duration") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad("An error occurred while loading the submitted data."))?,
    };
    if duration < 0 {
        let mut e = FieldErrors::new();
        e.add_params(
            "duration",
            "validation_min_greater_equal_than_required",
            "Must be no less than 0.",
            json!({"threshold": 0}),
        );
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            e,
        ));
    }
    let coll2 = coll.clone();
    let id = req.param("id").to_string();
    let rec = app
        .store
        .read(move |c| rs::fetch_by_id(c, &coll2, &id))
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(collection = %coll.name, "superuser impersonation");
    app.audit(audit::Entry {
        action: "impersonate",
        actor: actor(&req),
        ip: req.client_ip.to_string(),
        target: format!(
            "{}/{}",
            coll.name,
            rec.get("id").map(to_text).unwrap_or_default()
        ),
        diff: json!({"duration": duration}),
    })
    .await;
    auth_response_with(
        &app,
        &req,
        &coll,
        rec,
        Some(if duration > 0 {
            duration
        } else {
            coll.token_settings("authToken").0
        }),
    )
    .await
}

/// The audit log's name for the caller: `collection/recordId`, or "".
pub(crate) fn actor(req: &Req) -> String {
    req.identity
        .auth()
        .map(|a| {
            format!(
                "{}/{}",
                a.collection.name,
                a.record.get("id").map(to_text).unwrap_or_default()
            )
        })
        .unwrap_or_default()
}
