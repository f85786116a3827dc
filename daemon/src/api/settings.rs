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
