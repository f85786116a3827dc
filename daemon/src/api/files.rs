//! `/api/files`: file tokens (`POST /api/files/token`) for protected files,
//! downloads of file fields (`?thumb=` thumbs: `files::thumb`), and the
//! plan of a record write's files.

use crate::app::App;
use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use crate::schema::record::to_text;
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

use crate::error::FieldErrors;
use crate::files::{mime_allowed, sniff, stored_name, Upload};
use crate::schema::record::to_string_list;
use crate::schema::{Collection, FieldKind};
use serde_json::Value;

/// PocketBase's default file size limit (5 MiB).
pub const DEFAULT_MAX_SIZE: i64 = 5 << 20;

/// What a record write does to its files.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Final value of each touched file field.
    pub values: Map<String, Value>,
    /// New files to store: (stored name, content).
    pub new: Vec<(String, bytes::Bytes)>,
    /// Files no longer referenced once the write commits.
    pub removed: Vec<String>,
}

/// Works out a write's file fields from the uploads and the body's file
/// keys (`f` keeps listed existing names, `f-` drops names, uploads under
/// `f` replace, under `f+`/`+f` append/prepend). File keys leave the body.
pub(crate) fn plan(
    coll: &Collection,
    existing: Option<&Map<String, Value>>,
    body: &mut Map<String, Value>,
    uploads: Vec<Upload>,
) -> ApiResult<Plan> {
    let mut out = Plan::default();
    let mut errs = FieldErrors::new();
    let mut uploads = uploads;
    for f in &coll.fields {
        let FieldKind::File(o) = &f.kind else {
            continue;
        };
        let name = f.name.as_str();
        let plain = body.remove(name);
        let minus = body.remove(&format!("{name}-"));
        // `f+`/`+f` JSON values can't add files that aren't uploads.
        body.remove(&format!("{name}+"));
        body.remove(&format!("+{name}"));
        let mine: Vec<Upload> = {
            let (m, rest): (Vec<Upload>, Vec<Upload>) = uploads.into_iter().partition(|u| {
                u.key == name || u.key == format!("{name}+") || u.key == format!("+{name}")
            });
            uploads = rest;
            m
        };
        if plain.is_none() && minus.is_none() && mine.is_empty() {
            continue;
        }
        let current: Vec<String> = existing
            .and_then(|e| e.get(name))
            .map(to_string_list)
            .unwrap_or_default();
        let mut list: Vec<String> = match &plain {
            // Only names the record already has can be kept.
            Some(v) => to_string_list(v)
                .into_iter()
                .filter(|n| current.contains(n))
                .collect(),
            None if mine.iter().any(|u| u.key == name) => Vec::new(),
            None => current.clone(),
        };
        if let Some(m) = &minus {
            let drop = to_string_list(m);
            list.retain(|n| !drop.contains(n));
        }
        let max_size = if o.max_size > 0 {
            o.max_size
        } else {
            DEFAULT_MAX_SIZE
        };
        let mut prepend = Vec::new();
        for u in mine {
            if u.data.len() as i64 > max_size {
                errs.add_params(
                    name,
                    "validation_file_size_limit",
                    format!(
                        "Failed to upload \"{}\" - the maximum allowed file size is {} bytes.",
                        u.filename, max_size
                    ),
                    json!({"file": u.filename, "maxSize": max_size}),
                );
                continue;
            }
            let mime = sniff(&u.data);
            if !mime_allowed(&mime, &o.mime_types) {
                errs.add_params(
                    name,
                    "validation_invalid_mime_type",
                    format!(
                        "\"{}\" mime type must be one of: {}.",
                        u.filename,
                        o.mime_types.join(", ")
                    ),
                    json!({"file": u.filename, "types": o.mime_types.join(", ")}),
                );
                continue;
            }
            let stored = stored_name(&u.filename, &u.data);
            if u.key.starts_with('+') {
                prepend.push(stored.clone());
            } else {
                list.push(stored.clone());
            }
            out.new.push((stored, u.data));
        }
        if !prepend.is_empty() {
            prepend.extend(list);
            list = prepend;
        }
        let multiple = o.max_select > 1;
        if !multiple && list.len() > 1 {
            // A single file field keeps the last one given.
            list = list.split_off(list.len() - 1);
        }
        out.removed
            .extend(current.iter().filter(|n| !list.contains(n)).cloned());
        let value = if multiple {
            Value::Array(list.into_iter().map(Value::String).collect())
        } else {
            Value::String(list.pop().unwrap_or_default())
        };
        out.values.insert(name.to_string(), value);
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(
            "Failed to load the submitted data.",
            errs,
        ));
    }
    Ok(out)
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
                            if super::superuser_ip_allowed(&app, req.client_ip) {
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
                let mut ctx = super::records::request_ctx(&req, Map::new());
                ctx.identity = identity;
                let cond =
                    match crate::rules::rule_cond(&schema, &coll, coll.view_rule.as_deref(), &ctx)?
                    {
                        Some(c) => c,
                        None => return Err(nf()),
                    };
                let (coll2, rid2) = (coll.clone(), rid.clone());
                let ok = app
                    .store
                    .read(move |c| {
                        Ok(crate::store::records::fetch_where(c, &coll2, &rid2, &cond)?.is_some())
                    })
                    .await?;
                if !ok {
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
