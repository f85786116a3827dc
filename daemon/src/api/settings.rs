//! `GET/PATCH /api/settings` (superusers). Secrets are never shown. A
//! change is parsed and validated by `settings::Settings::patched` (as
//! PocketBase validates it: all errors in one answer in its shape), stored,
//! and audited; a new `backups.cron` takes effect at the scheduler's next
//! tick.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use serde_json::Value;
use std::sync::Arc;

pub async fn get(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    Ok(Resp::ok(&app.settings().to_api_json()))
}

pub async fn update(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let before = app.settings();
    let next = before.patched(&body)?;
    let diff = crate::store::audit::diff(&before.to_json(), &next.to_json());
    let next = app.save_settings(next).await?;
    app.audit(crate::store::audit::Entry {
        action: "settings.update",
        actor: super::auth::actor(&req),
        ip: req.client_ip.to_string(),
        target: "settings".into(),
        diff,
    })
    .await;
    Ok(Resp::ok(&next.to_api_json()))
}

/// `POST /api/settings/test/s3` — uploads a test file to the configured
/// bucket (`{"filesystem": "storage" | "backups"}`) and deletes it again,
/// which exercises put, list and delete.
pub async fn test_s3(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let fs = body.get("filesystem").and_then(Value::as_str).unwrap_or("");
    if !matches!(fs, "storage" | "backups") {
        let mut e = crate::error::FieldErrors::new();
        let (code, msg) = if fs.is_empty() {
            ("validation_required", "Cannot be blank.")
        } else {
            ("validation_in_invalid", "Must be a valid value.")
        };
        e.add("filesystem", code, msg);
        return Err(ApiError::validation("Failed to test the S3 filesystem.", e));
    }
    let settings = app.settings();
    let conf = if fs == "backups" {
        &settings.backups.s3
    } else {
        &settings.s3
    };
    let raw = |m: String| {
        ApiError::bad(format!(
            "Failed to test the S3 filesystem. Raw error: \n{m}"
        ))
    };
    let s3 = match crate::files::s3::S3::from_settings(conf) {
        None => return Err(raw("S3 storage filesystem is not enabled.".into())),
        Some(Err(e)) => return Err(raw(format!("failed to initialize the S3 filesystem: {e}"))),
        Some(Ok(s3)) => s3,
    };
    let prefix = format!(
        "pb_settings_test_{}",
        crate::util::random_string(5, b"abcdefghijklmnopqrstuvwxyz0123456789")
    );
    tokio::task::spawn_blocking(move || {
        s3.put(
            &format!("{prefix}/test.txt"),
            b"test",
            "text/plain; charset=utf-8",
        )
        .map_err(|e| format!("failed to upload a test file: {e}"))?;
        s3.delete_prefix(&prefix)
            .map_err(|e| format!("failed to delete a test file: {e}"))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(raw)?;
    Ok(Resp::empty(204))
}

/// PocketBase's test-email templates and the collection option each reads.
const TEST_TEMPLATES: &[(&str, &str)] = &[
    ("verification", "verificationTemplate"),
    ("password-reset", "resetPasswordTemplate"),
    ("email-change", "confirmEmailChangeTemplate"),
    ("otp", "otp.emailTemplate"),
    ("login-alert", "authAlert.emailTemplate"),
];

/// `POST /api/settings/test/email` — `{email, template, collection}`:
/// sends the collection's template (`_superusers` when no collection is
/// named) to `email` with sample values, at once through the SMTP
/// settings (not the queue), and answers with the mail server's error.
pub async fn test_email(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let (email, template, collection) = (field("email"), field("template"), field("collection"));
    let mut e = crate::error::FieldErrors::new();
    if email.is_empty() {
        e.add("email", "validation_required", "Cannot be blank.");
    } else if !crate::schema::record::is_email(&email) {
        e.add(
            "email",
            "validation_is_email",
            "Must be a valid email address.",
        );
    }
    let option = TEST_TEMPLATES
        .iter()
        .find(|(t, _)| *t == template)
        .map(|(_, o)| *o);
    if template.is_empty() {
        e.add("template", "validation_required", "Cannot be blank.");
    } else if option.is_none() {
        e.add(
            "template",
            "validation_in_invalid",
            "Must be a valid value.",
        );
    }
    let failed = "Failed to send the test email.";
    if !e.is_empty() {
        return Err(ApiError::validation(failed, e));
    }
    let schema = app.store.schema();
    let name = if collection.is_empty() {
        "_superusers"
    } else {
        collection.as_str()
    };
    let coll = schema
        .get(name)
        .or_else(|| schema.by_id(name))
        .filter(|c| c.is_auth())
        .cloned();
    let Some(coll) = coll else {
        let mut e = crate::error::FieldErrors::new();
        e.add(
            "collection",
            "validation_invalid_auth_collection",
            "Must be a valid auth collection id or name.",
        );
        return Err(ApiError::validation(failed, e));
    };
    let mut tpl = &Value::Object(coll.options.clone());
    for seg in option.unwrap_or_default().split('.') {
        tpl = tpl.get(seg).unwrap_or(&Value::Null);
    }
    let mut rec = serde_json::Map::new();
    rec.insert("id".into(), Value::String("__pb_test_id__".into()));
    rec.insert("email".into(), Value::String(email.clone()));
    rec.insert("collectionId".into(), Value::String(coll.id.clone()));
    rec.insert("collectionName".into(), Value::String(coll.name.clone()));
    let settings = app.settings();
    let hidden = |f: &str| coll.is_hidden(f);
    let extra = [
        ("{TOKEN}", "__pb_test_token__"),
        ("{OTP}", "123456"),
        ("{OTP_ID}", "__pb_test_otp_id__"),
        ("{ALERT_INFO}", "127.0.0.1 test"),
    ];
    let (subject, html) = crate::auth::mail::render(tpl, &settings.meta, &rec, &hidden, &extra);
    let mail = crate::auth::mail::Mail {
        to: email,
        subject,
        html,
    };
    let raw = |m: String| ApiError::bad(format!("{failed} Raw error: \n{m}"));
    let sending = crate::auth::mail::send(&settings.smtp, &settings.meta, mail);
    match tokio::time::timeout(std::time::Duration::from_secs(30), sending).await {
        Err(_) => Err(raw("timed out".into())),
        Ok(Err(m)) => Err(raw(m)),
        Ok(Ok(false)) => Err(raw("SMTP is disabled in the settings.".into())),
        Ok(Ok(true)) => Ok(Resp::empty(204)),
    }
}

/// `POST /api/settings/apple/generate-client-secret {clientId, teamId,
/// keyId, privateKey, duration}` → `{secret}`: the ES256-signed JWT Apple
/// takes as the OAuth2 client secret, checked and made as PocketBase's.
pub async fn apple_client_secret(_app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    const LOADING: &str = "An error occurred while loading the submitted data.";
    let body = req.json_body()?;
    let text = |k: &str| -> ApiResult<String> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::bad(LOADING)),
        }
    };
    let (client_id, team_id, key_id, private_key) = (
        text("clientId")?,
        text("teamId")?,
        text("keyId")?,
        text("privateKey")?,
    );
    let duration = match body.get("duration") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| ApiError::bad(LOADING))?,
        Some(_) => return Err(ApiError::bad(LOADING)),
    };
    let mut e = crate::error::FieldErrors::new();
    if client_id.is_empty() {
        e.add("clientId", "validation_required", "Cannot be blank.");
    }
    for (k, v) in [("teamId", &team_id), ("keyId", &key_id)] {
        if v.is_empty() {
            e.add(k, "validation_required", "Cannot be blank.");
        } else if v.chars().count() != 10 {
            e.add_params(
                k,
                "validation_length_invalid",
                "The length must be exactly 10.",
                serde_json::json!({"max": 10, "min": 10}),
            );
        }
    }
    let pem_block = private_key
        .find("-----BEGIN PRIVATE KEY----")
        .is_some_and(|i| private_key[i..].contains("-----END PRIVATE KEY-----"));
    if private_key.is_empty() {
        e.add("privateKey", "validation_required", "Cannot be blank.");
    } else if !pem_block {
        e.add(
            "privateKey",
            "validation_match_invalid",
            "Must be in a valid format.",
        );
    }
    const MAX: i64 = 15_777_000;
    if duration == 0 {
        e.add("duration", "validation_required", "Cannot be blank.");
    } else if duration < 1 {
        e.add_params(
            "duration",
            "validation_min_greater_equal_than_required",
            "Must be no less than 1.",
            serde_json::json!({"threshold": 1}),
        );
    } else if duration > MAX {
        e.add_params(
            "duration",
            "validation_max_less_equal_than_required",
            format!("Must be no greater than {MAX}."),
            serde_json::json!({"threshold": MAX}),
        );
    }
    if !e.is_empty() {
        return Err(ApiError::validation("Invalid client secret data.", e));
    }
    let secret = crate::auth::oauth2::apple_client_secret(
        &client_id,
        &team_id,
        &key_id,
        &private_key,
        duration,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|err| {
        ApiError::bad(format!(
            "Failed to generate client secret. Raw error: \n{err}"
        ))
    })?;
    Ok(Resp::ok(&serde_json::json!({ "secret": secret })))
}
