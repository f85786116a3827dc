//! `GET/PATCH /api/settings` (superusers). Secrets are never shown. A
//! change is validated as PocketBase validates it (`backups.cron` with its
//! cron grammar, the S3 configurations, `batch` limits), all errors in one
//! answer in its shape; a new
//! `backups.cron` takes effect at the scheduler's next tick.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use serde_json::{json, Value};
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

/// PocketBase's answer to settings that don't parse into its types.
fn not_loaded() -> ApiError {
    ApiError::bad("An error occurred while loading the submitted data.")
}

/// ozzo-validation's `Min(n)` failure (zero values pass `Min`).
fn below_min(e: &mut FieldErrors, field: &str, n: i64) {
    e.add_params(
        field,
        "validation_min_greater_equal_than_required",
        format!("Must be no less than {n}."),
        json!({"threshold": n}),
    );
}

/// `batch`, as PocketBase validates it: whole numbers, none negative;
/// `maxRequests` and `timeout` required while enabled.
fn check_batch(patch: &Value, merged: &Value) -> ApiResult<FieldErrors> {
    let keys = ["maxRequests", "timeout", "maxBodySize"];
    if keys
        .iter()
        .any(|k| patch.get(*k).is_some_and(|v| v.as_i64().is_none()))
    {
        return Err(not_loaded());
    }
    let mut e = FieldErrors::new();
    let enabled = merged["enabled"].as_bool().unwrap_or(false);
    for k in keys {
        let n = merged[k].as_i64().unwrap_or(0);
        if enabled && n == 0 && k != "maxBodySize" {
            e.add(k, "validation_required", "Cannot be blank.");
        } else if n < 0 {
            below_min(&mut e, k, 0);
        }
    }
    Ok(e)
}

/// An S3 configuration (`s3`, `backups.s3`), as `files::s3` validates it.
fn check_s3(_patch: &Value, merged: &Value) -> ApiResult<FieldErrors> {
    let mut e = FieldErrors::new();
    for (k, code, msg) in crate::files::s3::validate(merged) {
        e.add(k, code, msg);
    }
    Ok(e)
}

/// `backups`, as PocketBase validates it: `cron` empty or a valid
/// expression (`ops::cron`), `cronMaxKeep` at least 1 while `cron` is set,
/// and its `s3`.
fn check_backups(patch: &Value, merged: &Value) -> ApiResult<FieldErrors> {
    if patch.get("cron").is_some_and(|v| !v.is_string())
        || patch
            .get("cronMaxKeep")
            .is_some_and(|v| v.as_i64().is_none())
    {
        return Err(not_loaded());
    }
    let mut e = FieldErrors::new();
    let cron = merged["cron"].as_str().unwrap_or_default();
    if !cron.is_empty() {
        if let Err(m) = crate::ops::cron::Schedule::parse(cron) {
            e.add("cron", "validation_invalid_cron", m);
        }
    }
    let keep = merged["cronMaxKeep"].as_i64().unwrap_or(0);
    if !cron.is_empty() && keep == 0 {
        e.add("cronMaxKeep", "validation_required", "Cannot be blank.");
    } else if keep < 0 {
        below_min(&mut e, "cronMaxKeep", 1);
    }
    if patch.get("s3").is_some() {
        let s3 = check_s3(&patch["s3"], &merged["s3"])?;
        if !s3.is_empty() {
            e.add_nested("s3", s3.into_value());
        }
    }
    Ok(e)
}

/// A list of addresses or CIDR subnets (`superuserIPs`), as PocketBase
/// validates it: each entry required and an IP or a subnet, as written
/// (no spaces).
fn check_ip_list(v: &Value) -> ApiResult<FieldErrors> {
    let list = v.as_array().ok_or_else(not_loaded)?;
    let mut e = FieldErrors::new();
    for (i, item) in list.iter().enumerate() {
        let s = item.as_str().ok_or_else(not_loaded)?;
        if s.is_empty() {
            e.add(&i.to_string(), "validation_required", "Cannot be blank.");
        } else if s.trim() != s || crate::auth::limiter::parse_net(s).is_none() {
            // PocketBase's code, spelling included.
            e.add(
                &i.to_string(),
                "validation_invlaid_ip_or_subnet",
                "Invalid IP or CIDR subnet.",
            );
        }
    }
    Ok(e)
}

pub async fn update(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let mut body = Value::Object(req.json_body()?);
    let current = app.settings();
    let mut errors = FieldErrors::new();
    if let Some(ips) = body.get_mut("superuserIPs") {
        if ips.is_null() {
            *ips = json!([]);
        }
        let e = check_ip_list(ips)?;
        if !e.is_empty() {
            errors.add_nested("superuserIPs", e.into_value());
        }
    }
    type Check = fn(&Value, &Value) -> ApiResult<FieldErrors>;
    for (group, check) in [
        ("s3", check_s3 as Check),
        ("backups", check_backups),
        ("batch", check_batch),
    ] {
        let Some(patch) = body.get(group) else {
            continue;
        };
        if !patch.is_object() {
            return Err(not_loaded());
        }
        let mut merged = current.get(group).cloned().unwrap_or_else(|| json!({}));
        crate::app::merge(&mut merged, patch);
        let e = check(patch, &merged)?;
        if !e.is_empty() {
            errors.add_nested(group, e.into_value());
        }
    }
    if let Some(l) = body.get("lockout") {
        let mut merged = current.get("lockout").cloned().unwrap_or_default();
        crate::app::merge(&mut merged, l);
        if crate::auth::lockout::Policy::from_json(&merged).is_none() {
            errors.add(
                "lockout",
                "validation_invalid_lockout",
                "maxFailures, windowSeconds, baseSeconds and maxSeconds must be whole numbers; windows and delays between 1 and 86400 seconds, maxSeconds at least baseSeconds.",
            );
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "An error occurred while saving the new settings.",
            errors,
        ));
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
