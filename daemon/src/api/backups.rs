//! `/api/backups` as PocketBase's (superusers): list, create, upload,
//! download with a superuser file token, delete, restore. Backups are
//! encrypted with age (`ops::backup`); an upload is streamed to disk and
//! kept only if it is a backup keepd could restore; a restore is checked,
//! staged, and swapped in at the next start — the daemon exits right after
//! answering (status 75) so its service manager restarts it, as PocketBase
//! restarts itself.
//!
//! With `backups.s3` enabled every route works on the S3 bucket instead
//! (`backup::remote`): made locally, streamed up (multipart when large),
//! the local copy removed; listed from the bucket; downloads streamed from
//! S3 to the client; restores fetched as a stream to a temporary file and
//! checked like a local one.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::ops::backup;
use crate::schema::record::to_text;
use serde_json::{json, Value};
use std::sync::Arc;

/// The bucket backups go to when `backups.s3` is enabled.
fn remote(app: &App) -> ApiResult<Option<crate::files::s3::S3>> {
    match crate::files::s3::S3::from_settings(&app.settings().backups.s3) {
        None => Ok(None),
        Some(Ok(s3)) => Ok(Some(s3)),
        Some(Err(e)) => Err(ApiError::bad(format!(
            "The S3 backups storage can't be used: {e}."
        ))),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, backup::BackupError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(bad)
}

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

/// PocketBase's answer to a refused upload: a validation error on `file`.
fn file_error(code: &str, message: impl Into<String>) -> ApiError {
    let mut e = FieldErrors::new();
    e.add("file", code, message);
    ApiError::validation("An error occurred while validating the submitted data.", e)
}

fn refused(name: &str, r: backup::UploadRefusal) -> ApiError {
    use backup::UploadRefusal as R;
    match r {
        R::Name => file_error(
            "validation_invalid_name",
            format!(
                "The file name must be lowercase letters, digits, _ and -, ending in .zip (got {:?}).",
                name.chars().take(200).collect::<String>()
            ),
        ),
        R::Exists => file_error(
            "validation_backup_name_exists",
            "Backup file with the specified name already exists.",
        ),
        // PocketBase names the file as it would store it.
        R::NotZip => file_error(
            "validation_invalid_mime_type",
            format!(
                "{:?} mime type must be one of: application/zip.",
                crate::files::stored_name(name, &[])
            ),
        ),
        R::Content(m) => file_error("validation_invalid_backup", m),
    }
}

/// `POST /api/backups/upload`: the first file of the multipart key `file`
/// becomes a backup under its own name. The body streams to disk through a
/// blocking writer (never whole in memory, capped by
/// `max_backup_upload_bytes`); the backup appears only once complete,
/// synced and checked.
pub async fn upload(app: Arc<App>, mut req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let plaintext_ok = matches!(
        app.config.backup_encryption(),
        Some(backup::Encryption::None)
    );
    let dir = app.store.dir().to_path_buf();
    let s3 = remote(&app)?.map(Arc::new);
    let mut stored: Option<String> = None;
    let mut refusal: Option<ApiError> = None;
    if let Some(mut form) = req.streamed_form()? {
        while let Some(mut part) = form.next_part().await? {
            let first_file = stored.is_none()
                && refusal.is_none()
                && part.name() == "file"
                && part.file_name().is_some();
            if !first_file {
                // Read to the end, so that the answer reaches the client.
                while part.chunk().await?.is_some() {}
                continue;
            }
            let name = part.file_name().unwrap_or_default().to_string();
            if let Some(s3) = &s3 {
                let (s3, n) = (s3.clone(), name.clone());
                if blocking(move || backup::remote::exists(&s3, &n)).await? {
                    refusal = Some(refused(&name, backup::UploadRefusal::Exists));
                    while part.chunk().await?.is_some() {}
                    continue;
                }
            }
            match receive(&dir, &name, &mut part, plaintext_ok).await? {
                Ok(()) => stored = Some(name),
                Err(r) => refusal = Some(refused(&name, r)),
            }
        }
    }
    if let Some(e) = refusal {
        return Err(e);
    }
    let Some(name) = stored else {
        return Err(file_error("validation_required", "Cannot be blank."));
    };
    if let Some(s3) = s3 {
        // Checked and complete on disk: streamed up, then removed here.
        let n = name.clone();
        blocking(move || {
            let local = backup::backups_dir(&dir).join(&n);
            let r = backup::remote::put_file(&s3, &n, &local);
            let _ = std::fs::remove_file(&local);
            r
        })
        .await?;
    }
    tracing::info!(backup = %name, "backup uploaded");
    audit(&app, &req, "backup.upload", &name).await;
    Ok(Resp::empty(204))
}

/// Streams one part into `backup::Upload` on a blocking thread. A refused
/// name or content is `Ok(Err(_))`; the part is read to its end either way.
/// Whatever fails or is abandoned (the client gone) leaves no file.
async fn receive(
    dir: &std::path::Path,
    name: &str,
    part: &mut crate::http::request::StreamedPart,
    plaintext_ok: bool,
) -> ApiResult<Result<(), backup::UploadRefusal>> {
    // `None` marks the end: a writer that never gets it discards the file.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<bytes::Bytes>>(8);
    let (d, n) = (dir.to_path_buf(), name.to_string());
    let writer = tokio::task::spawn_blocking(move || {
        let mut up = match backup::Upload::begin(&d, &n)? {
            Ok(u) => u,
            Err(r) => return Ok(Err(r)),
        };
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Some(chunk) => up.write(&chunk)?,
                None => return up.finish(plaintext_ok).map(|r| r.map(|_| ())),
            }
        }
        Err(backup::BackupError::Invalid(format!(
            "upload abandoned after {} bytes",
            up.written()
        )))
    });
    let mut failed = None;
    let mut writing = true;
    loop {
        match part.chunk().await {
            Ok(Some(chunk)) => {
                // A writer that stopped (refused name, disk error) answers
                // below; the rest of the part is only read.
                if writing && tx.send(Some(chunk)).await.is_err() {
                    writing = false;
                }
            }
            Ok(None) => {
                let _ = tx.send(None).await;
                break;
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let outcome = writer.await.map_err(ApiError::internal)?;
    if let Some(e) = failed {
        return Err(e);
    }
    match outcome {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::error!(backup = %name, error = %e, "backup upload failed");
            Err(ApiError::bad("Failed to upload backup."))
        }
    }
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let dir = app.store.dir().to_path_buf();
    let items = match remote(&app)? {
        Some(s3) => blocking(move || backup::remote::list(&s3)).await?,
        None => blocking(move || backup::list(&dir)).await?,
    };
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
    let src = backup::Source::Store(app.store.clone());
    match remote(&app)? {
        Some(s3) => {
            blocking(move || backup::remote::create(&dir, &s3, &n2, &enc, &src)).await?;
        }
        None => {
            blocking(move || backup::create(&dir, &n2, &enc, &src)).await?;
        }
    }
    audit(&app, &req, "backup.create", &name).await;
    Ok(Resp::empty(204))
}

pub async fn download(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    // A superuser file token in `?token=` (links opened by a browser).
    let tok = req.q("token").unwrap_or_default().to_string();
    let ok = match super::identity::verify_auth_token(&app, &tok, "file").await? {
        Some((a, _)) => a.collection.name == "_superusers",
        None => false,
    } && super::superuser_allowed(&app, req.client_ip, req.admin);
    if !ok {
        return Err(ApiError::Forbidden(
            "Insufficient permissions to access the resource.".into(),
        ));
    }
    let key = req.param("key").to_string();
    // Streamed in 256 KiB reads: a backup may be larger than the memory.
    let (chunks, len) = if let Some(s3) = remote(&app)? {
        let k = key.clone();
        let (body, len) = blocking(move || backup::remote::open(&s3, &k)).await?;
        (
            crate::http::response::reader_stream(body, bytes::Bytes::new()),
            len,
        )
    } else {
        let p = backup::path(app.store.dir(), &key)
            .ok_or_else(|| ApiError::bad("Missing or invalid backup file."))?;
        let (file, len) = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&p)?;
            let len = f.metadata()?.len();
            Ok::<_, std::io::Error>((f, len))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
        (
            crate::http::response::file_stream(file, bytes::Bytes::new()),
            Some(len),
        )
    };
    let mut r = Resp::empty(200);
    r.stream = Some(chunks);
    r.headers
        .push(("content-type", "application/octet-stream".into()));
    if let Some(len) = len {
        r.headers.push(("content-length", len.to_string()));
    }
    r.headers.push((
        "content-disposition",
        format!("attachment; filename=\"{key}\""),
    ));
    Ok(r)
}

pub async fn delete(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let key = req.param("key").to_string();
    if let Some(s3) = remote(&app)? {
        let k = key.clone();
        blocking(move || backup::remote::delete(&s3, &k)).await?;
        audit(&app, &req, "backup.delete", &key).await;
        return Ok(Resp::empty(204));
    }
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
    let src = backup::Source::Store(app.store.clone());
    let s3 = remote(&app)?;
    blocking(move || match s3 {
        Some(s3) => backup::remote::stage_restore(&dir, &s3, &k2, identity.as_ref(), &note, &src),
        None => backup::stage_restore(&dir, &k2, identity.as_ref(), &note, &src),
    })
    .await?;
    tracing::warn!(backup = %key, "restore staged: exiting so that the service manager restarts keepd with it");
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        crate::ops::notify::stopping();
        std::process::exit(75);
    });
    Ok(Resp::empty(204))
}
