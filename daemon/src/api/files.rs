//! `/api/files`: file tokens (`POST /api/files/token`) for protected files,
//! downloads of file fields (`?thumb=` thumbs: `files::thumb`), and the
//! plan of a record write's files.

use crate::app::App;
use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use crate::schema::record::{to_string_list, to_text};
use crate::schema::FieldKind;
use serde_json::{json, Map};
use std::sync::Arc;

/// A short-lived "file" token for the caller (PocketBase's shape).
pub async fn token(_app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let Some(a) = req.identity.auth() else {
        return Err(ApiError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        ));
    };
    let (duration, secret) = a.collection.token_settings("fileToken");
    let key = format!(
        "{}{}",
        a.record.get("tokenKey").map(to_text).unwrap_or_default(),
        secret
    );
    let mut claims = Map::new();
    claims.insert("id".into(), json!(a.id()));
    claims.insert("type".into(), json!("file"));
    claims.insert("collectionId".into(), json!(a.collection.id));
    claims.insert(
        "exp".into(),
        json!(chrono::Utc::now().timestamp() + duration.max(1)),
    );
    Ok(Resp::ok(&json!({"token": token::sign(&claims, &key)})))
}

/// `GET /api/files/{collection}/{recordId}/{filename}`.
pub async fn download(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let nf = || ApiError::NotFound("The requested resource wasn't found.".into());
    let schema = app.store.schema();
    let coll = schema
        .get(req.param("collection"))
        .cloned()
        .ok_or_else(nf)?;
    let rid = req.param("recordId").to_string();
    let filename = req.param("filename").to_string();
    if !crate::files::safe_name(&filename) || !crate::files::safe_name(&rid) {
        return Err(nf());
    }
    let (coll2, rid2) = (coll.clone(), rid.clone());
    let rec = app
        .store
        .read(move |c| crate::store::records::fetch_by_id(c, &coll2, &rid2))
        .await?
        .ok_or_else(nf)?;
    let field = coll
        .fields
        .iter()
        .find(|f| {
            matches!(f.kind, FieldKind::File(_))
                && rec
                    .get(&f.name)
                    .map(to_string_list)
                    .is_some_and(|l| l.contains(&filename))
        })
        .ok_or_else(nf)?;
    if let FieldKind::File(o) = &field.kind {
        if o.protected {
            // A file token stands for its record; the view rule decides.
            let identity = match req.q("token") {
                Some(t) if !t.is_empty() => {
                    match super::identity::verify_auth_token(&app, t, "file").await? {
                        // A superuser's token from outside `superuserIPs`
                        // counts for nothing (as PocketBase).
                        Some((a, _)) if a.collection.name == "_superusers" => {
                            if super::superuser_allowed(&app, req.client_ip, req.admin) {
                                crate::auth::Identity::Superuser(a)
                            } else {
                                crate::auth::Identity::Guest
                            }
                        }
                        Some((a, _)) => crate::auth::Identity::User(a),
                        None => crate::auth::Identity::Guest,
                    }
                }
                _ => crate::auth::Identity::Guest,
            };
            if !identity.is_superuser() {
                let holder = super::records::request(&app, &req).with_principal(identity.into());
                let rule = coll.view_rule.as_deref();
                if crate::records::check_rule(&app, &coll, &rid, rule, &holder, Map::new()).await?
                    != Some(true)
                {
                    return Err(nf());
                }
            }
        }
    }
    // `?thumb=WxH`: a thumb of an image, else (as PocketBase) the original.
    let listed = match &field.kind {
        FieldKind::File(o) => o.thumbs.as_slice(),
        _ => &[],
    };
    let storage = app.storage()?;
    let thumb = req.q("thumb").filter(|t| !t.is_empty());
    // An original on local storage is streamed (one chunk in memory at a
    // time); thumbs and S3 objects come whole.
    let (filename, body, stream) = match (&storage, thumb) {
        (crate::files::Storage::Local(l), None) => {
            let (l, cid, rid2, fname) = (l.clone(), coll.id.clone(), rid.clone(), filename.clone());
            let opened = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let (f, len) = l.open(&cid, &rid2, &fname)?;
                let mut head = vec![0u8; crate::files::SNIFF_LEN.min(len as usize)];
                let mut f = f;
                f.read_exact(&mut head).ok()?;
                Some((f, len, head))
            })
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(nf)?;
            let (f, len, head) = opened;
            (filename, bytes::Bytes::from(head), Some((f, len)))
        }
        _ => {
            let served = app
                .thumbs
                .serve(storage, &coll.id, &rid, &filename, thumb, listed)
                .await
                .map_err(|e| ApiError::internal(format!("reading {filename}: {e}")))?
                .ok_or_else(nf)?;
            (served.name, served.data, None)
        }
    };
    let mime = crate::files::sniff_head(&body[..body.len().min(crate::files::SNIFF_LEN)]);
    let base = mime.split(';').next().unwrap_or_default().to_string();
    let inline = [
        "image/png",
        "image/jpg",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/x-icon",
        "image/bmp",
        "video/webm",
        "video/mp4",
        "video/3gpp",
        "video/quicktime",
        "video/x-ms-wmv",
        "audio/basic",
        "audio/aiff",
        "audio/mpeg",
        "audio/midi",
        "audio/mp3",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-mpeg",
        "audio/x-m4a",
        "audio/aac",
        "application/pdf",
        "application/x-pdf",
    ];
    let download = req
        .q("download")
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
    let disposition = if !download && inline.contains(&base.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let ext = filename.rsplit('.').next().unwrap_or_default();
    let content_type = match ext {
        "svg" => "image/svg+xml".to_string(),
        "css" => "text/css".to_string(),
        "js" | "mjs" => "text/javascript".to_string(),
        _ => mime,
    };
    let mut r = Resp::empty(200);
    match stream {
        Some((f, len)) => {
            r.stream = Some(crate::http::response::file_stream(f, body));
            r.headers.push(("content-length", len.to_string()));
        }
        None => r.body = body,
    }
    r.headers.push(("content-type", content_type));
    r.headers.push((
        "content-disposition",
        format!("{disposition}; filename=\"{filename}\""),
    ));
    r.headers.push((
        "content-security-policy",
        "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox".into(),
    ));
    r.headers.push((
        "cache-control",
        "max-age=2592000, stale-while-revalidate=86400".into(),
    ));
    Ok(r)
}
