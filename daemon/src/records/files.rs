//! The files of a record write: which uploads a write keeps (`f`, `f+`,
//! `+f`, `f-`), their checks (size, sniffed MIME type) and stored names,
//! storing them before the write commits, and removing exactly what a
//! failed write stored — never anything else of the record's directory.

use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::files::{mime_allowed, sniff_head, stored_name, Blob, Upload};
use crate::schema::record::to_string_list;
use crate::schema::{Collection, FieldKind};
use serde_json::{json, Map, Value};

/// PocketBase's default file size limit (5 MiB).
pub const DEFAULT_MAX_SIZE: i64 = 5 << 20;

/// What a record write does to its files.
#[derive(Debug, Default)]
pub struct Plan {
    /// Final value of each touched file field.
    pub values: Map<String, Value>,
    /// New files to store: (stored name, content).
    pub new: Vec<(String, Blob)>,
    /// Files no longer referenced once the write commits.
    pub removed: Vec<String>,
    /// The file fields' validation errors: reported with the record's
    /// other field errors (PocketBase validates every field together),
    /// after the write's rule.
    pub errors: FieldErrors,
}

/// Works out a write's file fields from the uploads and the body's file
/// keys (`f` keeps listed existing names, `f-` drops names, uploads under
/// `f` replace, under `f+`/`+f` append/prepend). File keys leave the body.
/// A field whose new value is invalid keeps its current value, stores
/// nothing and has its error in `errors`. A hidden file field is written
/// only by the `privileged` (superusers): for anyone else its keys and
/// uploads are dropped, as PocketBase ignores them.
pub fn plan(
    coll: &Collection,
    existing: Option<&Map<String, Value>>,
    body: &mut Map<String, Value>,
    uploads: Vec<Upload>,
    privileged: bool,
) -> Plan {
    let mut out = Plan::default();
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
        if (plain.is_none() && minus.is_none() && mine.is_empty()) || (f.hidden && !privileged) {
            continue;
        }
        let current: Vec<String> = existing
            .and_then(|e| e.get(name))
            .map(to_string_list)
            .unwrap_or_default();
        let kept: Vec<String> = plain.as_ref().map(to_string_list).unwrap_or_default();
        let mut list: Vec<String> = match &plain {
            // Only names the record already has can be kept.
            Some(_) => kept
                .iter()
                .filter(|n| current.contains(n))
                .cloned()
                .collect(),
            None if mine.iter().any(|u| u.key == name) => Vec::new(),
            None => current.clone(),
        };
        if let Some(m) = &minus {
            let drop = to_string_list(m);
            list.retain(|n| !drop.contains(n));
        }
        let named: Vec<(Upload, String)> = mine
            .into_iter()
            .map(|u| {
                let stored = stored_name(&u.filename, u.data.head());
                (u, stored)
            })
            .collect();
        let unknown: Vec<String> = kept.into_iter().filter(|n| !current.contains(n)).collect();
        if let Some((code, message, params)) =
            validate_upload(o, list.len() + named.len(), &unknown, &named)
        {
            out.errors.add_params(name, code, message, params);
            continue;
        }
        let mut prepend = Vec::new();
        for (u, stored) in named {
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
    out
}

/// Why the file field `field` would refuse `data` as its one new file
/// (size, sniffed MIME type: the checks an upload gets), or None when it
/// takes it. An OAuth2 sign-up checks the provider's avatar with it first,
/// so a refused avatar is left out instead of failing the sign-up.
pub fn refusal(coll: &Collection, field: &str, filename: &str, data: &[u8]) -> Option<String> {
    let Some(FieldKind::File(o)) = coll.field(field).map(|f| &f.kind) else {
        return Some(format!("{field} is not a file field"));
    };
    let up = Upload {
        key: field.to_string(),
        filename: filename.to_string(),
        data: Blob::Memory(bytes::Bytes::copy_from_slice(data)),
    };
    let stored = stored_name(filename, data);
    validate_upload(o, 1, &[], &[(up, stored)]).map(|(_, msg, _)| msg)
}

/// PocketBase's checks of one file field's new value, the first failing
/// one: names kept that the record doesn't have, more files than
/// `maxSelect` (a multiple field; `count` is the final number), then each
/// upload's size (`maxSize`, else 5 MiB) and sniffed MIME type. Uploads
/// come with their stored names. Returns (code, message, params).
fn validate_upload(
    o: &crate::schema::field::FileOpts,
    count: usize,
    unknown: &[String],
    uploads: &[(Upload, String)],
) -> Option<(&'static str, String, Value)> {
    if !unknown.is_empty() {
        return Some((
            "validation_invalid_file",
            format!("Invalid new files: [{}].", unknown.join(" ")),
            json!({"invalidFiles": unknown}),
        ));
    }
    if o.max_select > 1 && count as i64 > o.max_select {
        return Some((
            "validation_too_many_files",
            format!("The maximum allowed files is {}.", o.max_select),
            json!({"maxSelect": o.max_select}),
        ));
    }
    let max_size = if o.max_size > 0 {
        o.max_size
    } else {
        DEFAULT_MAX_SIZE
    };
    for (u, stored) in uploads {
        if u.data.len() > max_size.max(0) as u64 {
            return Some((
                "validation_file_size_limit",
                format!(
                    "Failed to upload {} - the maximum allowed file size is {} bytes.",
                    u.filename, max_size
                ),
                json!({"file": u.filename, "maxSize": max_size}),
            ));
        }
        if !mime_allowed(&sniff_head(u.data.head()), &o.mime_types) {
            return Some((
                "validation_invalid_mime_type",
                format!(
                    "\"{}\" mime type must be one of: {}.",
                    stored,
                    o.mime_types.join(", ")
                ),
                Value::Null,
            ));
        }
    }
    None
}

/// Stores a plan's new files under the record `id` (before the write's
/// commit). A failure removes what was stored and fails the write with a
/// 400 (as PocketBase). Returns the names stored.
pub async fn store_new(
    app: &App,
    coll: &Collection,
    id: &str,
    plan: &Plan,
    failed: &'static str,
) -> ApiResult<Vec<String>> {
    if plan.new.is_empty() {
        return Ok(Vec::new());
    }
    let storage = app.storage().map_err(|e| {
        tracing::error!(error = %e, "file storage unavailable");
        ApiError::bad(failed)
    })?;
    let (cid, rid) = (coll.id.clone(), id.to_string());
    let new = plan.new.clone();
    tokio::task::spawn_blocking(move || {
        let mut stored: Vec<String> = Vec::with_capacity(new.len());
        for (name, data) in &new {
            if let Err(e) = storage.put_blob(&cid, &rid, name, data) {
                storage.remove(&cid, &rid, &stored);
                tracing::error!(error = %e, file = %name, "storing an uploaded file failed");
                return Err(ApiError::bad(failed));
            }
            stored.push(name.clone());
        }
        Ok(stored)
    })
    .await
    .map_err(ApiError::internal)?
}

/// Removes files of a record: those a failed write stored, or those a
/// committed write no longer references. Only the names given go (the
/// record's directory too, once empty).
pub async fn remove(app: &App, coll: &Collection, id: &str, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let Ok(storage) = app.storage() else {
        tracing::warn!(record = %id, "file storage unavailable; dropped files stay");
        return;
    };
    let (cid, rid) = (coll.id.clone(), id.to_string());
    let _ = tokio::task::spawn_blocking(move || storage.remove(&cid, &rid, &names)).await;
}
