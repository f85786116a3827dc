//! `/api/backups` as PocketBase's (superusers): list, create, download with
//! a superuser file token, delete, restore. Backups are encrypted with age
//! (`ops::backup`); a restore is checked, staged, and swapped in at the
//! next start — the daemon exits right after answering (status 75) so its
//! service manager restarts it, as PocketBase restarts itself.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::ops::backup;
use crate::schema::record::to_text;
use serde_json::{json, Value};
use std::sync::Arc;

fn bad(e: backup::BackupError) -> ApiError {
    match e {
        backup::BackupError::Invalid(m) => ApiError::bad(m),
        backup::BackupError::Io(e) => ApiError::internal(e),
    }
}

async fn audit(app: &App, req: &Req, action: &'static str, key: &str) {
    app.audit(crate::store::audit::Entry {
        action,
        actor: super::auth::actor(req),
        ip: req.client_ip.to_string(),
        target: format!("backups/{key}"),
        diff: json!({}),
    })
    .await;
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let dir = app.store.dir().to_path_buf();
    let items = tokio::task::spawn_blocking(move || backup::list(&dir))
        .await
        .map_err(ApiError::internal)?
        .map_err(bad)?;
    let out: Vec<Value> = items
        .into_iter()
        .map(|(key, size, modified)| {
            let t: chrono::DateTime<chrono::Utc> = modified.into();
            json!({"key": key, "size": size, "modified": crate::util::format_time(t)})
        })
        .collect();
    Ok(Resp::ok(&Value::Array(out)))
}

pub async fn create(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let mut name = body.get("name").map(to_text).unwrap_or_default();
    if name.is_empty() {
        name = format!(
            "pb_backup_{}.zip",
            chrono::Utc::now().format("%Y%m%d%H%M%S")
        );
    }
    if !backup::valid_name(&name) {
        let mut e = FieldErrors::new();
        e.add(
            "name",
            "validation_match_invalid",
            "Must be in a valid format.",
        );
        return Err(ApiError::validation(
            "An error occurred while validating the submitted data.",
            e,
        ));
    }
    let Some(enc) = app.config.backup_encryption() else {
        return Err(ApiError::bad(
            "Backups are encrypted with age: set backup_recipients (or backup_encryption = \"none\" for plaintext).",
        ));
    };
    let dir = app.store.dir().to_path_buf();
    let n2 = name.clone();
    let db_key = app.store.key().cloned();
    tokio::task::spawn_blocking(move || backup::create(&dir, &n2, &enc, db_key.as_ref()))
        .await
        .map_err(ApiError::internal)?
        .map_err(bad)?;
    audit(&app, &req, "backup.create", &name).await;
    Ok(Resp::empty(204))
}

pub async fn download(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    // A superuser file token in `?token=` (links opened by a browser).
    let tok = req.q("token").unwrap_or_default().to_string();
    let ok = match super::identity::verify_auth_token(&app, &tok, "file").await? {
        Some((a, _)) => a.collection.name == "_superusers",
        None => false,
    };
    if !ok {
        return Err(ApiError::Forbidden(
            "Insufficient permissions to access the resource.".into(),
        ));
    }
    let key = req.param("key").to_string();
    let p = backup::path(app.store.dir(), &key)
        .ok_or_else(|| ApiError::bad("Missing or invalid backup file."))?;
    let data = tokio::task::spawn_blocking(move || std::fs::read(&p))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut r = Resp::empty(200);
    r.body = bytes::Bytes::from(data);
    r.headers
        .push(("content-type", "application/octet-stream".into()));
    r.headers.push((
        "content-disposition",
        format!("attachment; filename=\"{key}\""),
    ));
    Ok(r)
}

pub async fn delete(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let key = req.param("key").to_string();
    let p = backup::path(app.store.dir(), &key)
        .ok_or_else(|| ApiError::bad("Missing or invalid backup file."))?;
    tokio::task::spawn_blocking(move || std::fs::remove_file(&p))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    audit(&app, &req, "backup.delete", &key).await;
    Ok(Resp::empty(204))
}

pub async fn restore(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let key = req.param("key").to_string();
    let identity = match app.config.backup_identity_path() {
        Some(p) => Some(
            tokio::task::spawn_blocking(move || backup::read_identity(&p))
                .await
                .map_err(ApiError::internal)?
                .map_err(bad)?,
        ),
        None => None,
    };
    let dir = app.store.dir().to_path_buf();
    let k2 = key.clone();
    // Recorded in the restored database's audit log at the next start.
    let note =
        json!({"key": key, "actor": super::auth::actor(&req), "ip": req.client_ip.to_string()})
            .to_string();
    let db_key = app.store.key().cloned();
    tokio::task::spawn_blocking(move || {
        backup::stage_restore(&dir, &k2, identity.as_ref(), &note, db_key.as_ref())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(bad)?;
    tracing::warn!(backup = %key, "restore staged: exiting so that the service manager restarts keepd with it");
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        crate::ops::notify::stopping();
        std::process::exit(75);
    });
    Ok(Resp::empty(204))
}
