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
