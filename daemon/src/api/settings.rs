//! `GET/PATCH /api/settings` (superusers). Secrets are never shown.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use serde_json::Value;
use std::sync::Arc;

fn redact(v: &Value) -> Value {
    let mut v = v.clone();
    for path in [&["smtp"][..], &["s3"], &["backups", "s3"]] {
        let mut cur = &mut v;
        for p in path {
            cur = &mut cur[*p];
        }
        if let Some(o) = cur.as_object_mut() {
            o.remove("password");
            o.remove("secret");
        }
    }
    v
}

pub async fn get(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    Ok(Resp::ok(&redact(&app.settings())))
}

pub async fn update(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = Value::Object(req.json_body()?);
    if let Some(b) = body.get("batch") {
        let bad = ["maxRequests", "timeout", "maxBodySize"]
            .iter()
            .any(|k| b.get(*k).is_some_and(|v| v.as_i64().is_none_or(|n| n < 0)));
        if bad {
            return Err(ApiError::bad(
                "An error occurred while submitting the form.",
            ));
        }
    }
    if let Some(l) = body.get("lockout") {
        let mut merged = app.settings().get("lockout").cloned().unwrap_or_default();
        crate::app::merge(&mut merged, l);
        if crate::auth::lockout::Policy::from_json(&merged).is_none() {
            let mut e = crate::error::FieldErrors::new();
            e.add(
                "lockout",
                "validation_invalid_lockout",
                "maxFailures, windowSeconds, baseSeconds and maxSeconds must be whole numbers; windows and delays between 1 and 86400 seconds, maxSeconds at least baseSeconds.",
            );
            return Err(ApiError::validation(
                "An error occurred while submitting the form.",
                e,
            ));
        }
    }
    let before = app.settings();
    {
        // The S3 configurations as they would be after the merge.
        let mut merged = before.as_ref().clone();
        crate::app::merge(&mut merged, &body);
        let mut e = crate::error::FieldErrors::new();
        let s3_errors = |v: &Value| {
            let errs = crate::files::s3::validate(v);
            (!errs.is_empty()).then(|| {
                let mut f = crate::error::FieldErrors::new();
                for (k, code, msg) in errs {
                    f.add(k, code, msg);
                }
                f.into_value()
            })
        };
        if body.get("s3").is_some() {
            if let Some(v) = s3_errors(&merged["s3"]) {
                e.add_nested("s3", v);
            }
        }
        if body.pointer("/backups/s3").is_some() {
            if let Some(v) = s3_errors(&merged["backups"]["s3"]) {
                e.add_nested("backups", serde_json::json!({ "s3": v }));
            }
        }
        if !e.is_empty() {
            return Err(ApiError::validation(
                "An error occurred while saving the new settings.",
                e,
            ));
        }
    }
    let next = app.update_settings(&body).await?;
    app.audit(crate::store::audit::Entry {
        action: "settings.update",
        actor: super::auth::actor(&req),
        ip: req.client_ip.to_string(),
        target: "settings".into(),
        diff: crate::store::audit::diff(&before, &next),
    })
    .await;
    Ok(Resp::ok(&redact(&next)))
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
        &settings["backups"]["s3"]
    } else {
        &settings["s3"]
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
