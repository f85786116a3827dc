//! Files of synced records, content-addressed by SHA-256.
//!
//! Each side keeps which content each stored file of a synced record has
//! (`_keepd_sync_files`: collection, record, name → sha256), noted when the
//! file is written. A device uploads the blobs its queued changes name
//! before the changes, asking first whether the hub has them and
//! remembering what it sent (`_keepd_sync_blobs`), so no blob goes twice.
//! The hub keeps blobs in `<dir>/sync_blobs/` and places a blob under the
//! record's stored name before the write that names it (size and sniffed
//! MIME type checked against the field, as an upload is); a device fetches
//! the blobs pulled records name and places them the same way. Stored
//! names are the same across the fleet.

use super::device::{Engine, Failure};
use super::frame::{FileRef, Record};
use crate::error::{ApiError, ApiResult};
use crate::schema::{Collection, FieldKind};
use crate::store::sync as ss;
use crate::store::Conn as Connection;
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where a blob is kept.
pub fn blob_path(dir: &Path, sha: &str) -> Option<PathBuf> {
    if sha.len() != 64
        || !sha
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    Some(dir.join("sync_blobs").join(&sha[..2]).join(sha))
}

/// Stores a blob durably under its hash (checked).
pub fn store_blob(dir: &Path, sha: &str, data: &[u8]) -> ApiResult<()> {
    let path = blob_path(dir, sha).ok_or_else(|| ApiError::bad("Invalid blob hash."))?;
    if super::sha256_hex(data) != sha {
        return Err(ApiError::bad("The content doesn't match its hash."));
    }
    if path.exists() {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(ApiError::internal)?;
    let tmp = parent.join(format!(".{sha}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(parent)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(ApiError::internal)
}

fn file_fields(coll: &Collection) -> impl Iterator<Item = &crate::schema::Field> {
    coll.fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::File(_)))
}

fn names(v: Option<&Value>) -> Vec<String> {
    v.map(crate::schema::record::to_string_list)
        .unwrap_or_default()
}

/// Notes the content of a local write's new files (capture, inside the
/// write's transaction; the files were stored before it). On the hub the
/// content also becomes a blob devices can fetch.
#[allow(clippy::too_many_arguments)]
pub(super) fn note_local(
    c: &Connection,
    dir: &Path,
    storage: &crate::files::Storage,
    coll: &Collection,
    id: &str,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
    hub: bool,
) -> ApiResult<()> {
    for f in file_fields(coll) {
        let old = names(before.and_then(|b| b.get(&f.name)));
        let new = names(after.and_then(|a| a.get(&f.name)));
        for n in old.iter().filter(|n| !new.contains(n)) {
            ss::file_forget(c, &coll.id, id, n)?;
        }
        for n in new.iter().filter(|n| !old.contains(n)) {
            if ss::file_sha(c, &coll.id, id, n)?.is_some() {
                continue;
            }
            let Some(data) = storage.get(&coll.id, id, n).map_err(ApiError::internal)? else {
                continue;
            };
            let sha = super::sha256_hex(&data);
            if hub {
                store_blob(dir, &sha, &data)?;
                ss::blob_add(c, &sha, data.len() as u64, &crate::util::now_string())?;
            }
            ss::file_note(c, &coll.id, id, n, &sha)?;
        }
    }
    Ok(())
}

/// Places the blobs a synced write names under the record's stored names
/// (before the write, inside its transaction) and returns the file fields'
/// values with what could not be placed left out, and the names the write
/// drops (removed after the commit). `check`: the hub checks each new
/// file as an upload is checked (size, sniffed MIME type).
#[allow(clippy::too_many_arguments)]
pub(super) fn place(
    c: &Connection,
    dir: &Path,
    storage: &crate::files::Storage,
    coll: &Collection,
    id: &str,
    current: Option<&Map<String, Value>>,
    files: &Map<String, Value>,
    refs: &[FileRef],
    check: bool,
) -> ApiResult<(Map<String, Value>, Vec<String>)> {
    let mut out = Map::new();
    let mut dropped = Vec::new();
    for (field, v) in files {
        let Some(f) = coll.field(field) else { continue };
        let FieldKind::File(opts) = &f.kind else {
            continue;
        };
        let old = names(current.and_then(|r| r.get(field)));
        let mut kept = Vec::new();
        for n in names(Some(v)) {
            if old.contains(&n) || ss::file_sha(c, &coll.id, id, &n)?.is_some() {
                kept.push(n);
                continue;
            }
            let Some(r) = refs.iter().find(|r| r.name == n) else {
                continue;
            };
            let Some(path) = blob_path(dir, &r.sha256) else {
                continue;
            };
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            if check {
                let max = if opts.max_size > 0 {
                    opts.max_size
                } else {
                    crate::records::files::DEFAULT_MAX_SIZE
                };
                if data.len() as i64 > max {
                    return Err(ApiError::bad(format!(
                        "The file {n} is larger than the field allows ({max} bytes)."
                    )));
                }
                if !crate::files::mime_allowed(&crate::files::sniff(&data), &opts.mime_types) {
                    return Err(ApiError::bad(format!(
                        "The file {n} has a type the field doesn't allow."
                    )));
                }
            }
            match storage.put(&coll.id, id, &n, &data) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(ApiError::internal(format!("placing a synced file: {e}"))),
            }
            ss::file_note(c, &coll.id, id, &n, &r.sha256)?;
            kept.push(n);
        }
        dropped.extend(old.iter().filter(|n| !kept.contains(n)).cloned());
        let value = if opts.max_select > 1 {
            Value::Array(kept.into_iter().map(Value::String).collect())
        } else {
            Value::String(kept.pop().unwrap_or_default())
        };
        out.insert(field.clone(), value);
    }
    Ok((out, dropped))
}

/// The SHA-256 of a record's stored file, if known.
pub(super) fn stored_sha(
    c: &Connection,
    coll: &str,
    id: &str,
    name: &str,
) -> ApiResult<Option<String>> {
    ss::file_sha(c, coll, id, name)
}

/// Device: uploads the blobs a batch's changes name that the hub lacks
/// (asking first, remembering what was sent); returns the refs.
pub(super) async fn upload_for(
    eng: &Engine,
    batch: &[ss::OutChange],
) -> Result<Vec<FileRef>, Failure> {
    let schema = eng.app.store.schema();
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    for r in batch {
        let Some(coll) = schema.by_id(&r.collection) else {
            continue;
        };
        for f in file_fields(coll) {
            for n in names(r.fields.get(&f.name)) {
                wanted.push((coll.id.clone(), r.record.clone(), n));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let refs = eng
        .app
        .store
        .read(move |c| {
            let mut out = Vec::new();
            for (coll, rec, n) in wanted {
                if let Some(sha) = ss::file_sha(c, &coll, &rec, &n)? {
                    let known = ss::blob_known(c, &sha)?;
                    out.push((coll, rec, n, sha, known));
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Failure::Retry(e.to_string(), None))?;
    let storage = eng
        .app
        .storage()
        .map_err(|e| Failure::Retry(e.to_string(), None))?;
    let mut out = Vec::new();
    for (coll, rec, name, sha, known) in refs {
        if !known {
            let path = format!("/api/sync/blobs/{sha}");
            let a = eng
                .head(path.clone())
                .await
                .map_err(|e| Failure::Retry(e.0, None))?;
            match a {
                200 => {}
                404 => {
                    let (st2, c2, r2, n2) =
                        (storage.clone(), coll.clone(), rec.clone(), name.clone());
                    let data = tokio::task::spawn_blocking(move || st2.get(&c2, &r2, &n2))
                        .await
                        .map_err(|e| Failure::Retry(e.to_string(), None))?
                        .map_err(|e| Failure::Retry(e.to_string(), None))?;
                    // Gone since (a later change drops it): sent without it.
                    let Some(data) = data else { continue };
                    let a = eng
                        .send("PUT", path, "application/octet-stream", data)
                        .await
                        .map_err(|e| Failure::Retry(e.0, None))?;
                    if a.status != 200 && a.status != 204 {
                        return Err(super::device::classify_answer(&a));
                    }
                }
                401 | 403 => return Err(Failure::Revoked(format!("{a}"))),
                s => return Err(Failure::Retry(format!("blob check answered {s}"), None)),
            }
            let sha2 = sha.clone();
            eng.app
                .store
                .write(move |c| ss::blob_add(c, &sha2, 0, &crate::util::now_string()))
                .await
                .map_err(|e| Failure::Retry(e.to_string(), None))?;
        }
        out.push(FileRef { name, sha256: sha });
    }
    Ok(out)
}

/// Device: fetches the blobs pulled records name that aren't here yet.
pub(super) async fn fetch_for(eng: &Engine, records: &[Record]) -> Result<(), Failure> {
    let dir = eng.app.store.dir().to_path_buf();
    for r in records {
        for f in &r.files {
            let Some(path) = blob_path(&dir, &f.sha256) else {
                continue;
            };
            if path.exists() {
                continue;
            }
            let a = eng
                .get(format!("/api/sync/blobs/{}", f.sha256), eng.timeout())
                .await
                .map_err(|e| Failure::Retry(e.0, None))?;
            match a.status {
                200 => {
                    let (d, sha) = (dir.clone(), f.sha256.clone());
                    tokio::task::spawn_blocking(move || store_blob(&d, &sha, &a.body))
                        .await
                        .map_err(|e| Failure::Retry(e.to_string(), None))?
                        .map_err(|e| Failure::Retry(e.to_string(), None))?;
                }
                // Gone on the hub: the record is placed without it.
                404 => {}
                _ => return Err(super::device::classify_answer(&a)),
            }
        }
    }
    Ok(())
}

/// Hub: stores a blob a device uploads (its hash checked).
pub async fn put_blob(app: &crate::app::App, sha: &str, body: bytes::Bytes) -> ApiResult<()> {
    let dir = app.store.dir().to_path_buf();
    let (d, s) = (dir, sha.to_string());
    let len = body.len() as u64;
    tokio::task::spawn_blocking(move || store_blob(&d, &s, &body))
        .await
        .map_err(ApiError::internal)??;
    let s = sha.to_string();
    app.store
        .write(move |c| ss::blob_add(c, &s, len, &crate::util::now_string()))
        .await
}

/// Hub: whether it has a blob.
pub async fn has_blob(app: &crate::app::App, sha: &str) -> ApiResult<bool> {
    let path =
        blob_path(app.store.dir(), sha).ok_or_else(|| ApiError::bad("Invalid blob hash."))?;
    let s = sha.to_string();
    let known = app.store.read(move |c| ss::blob_known(c, &s)).await?;
    Ok(known && path.exists())
}

/// Hub: a blob's content.
pub async fn get_blob(app: &crate::app::App, sha: &str) -> ApiResult<Vec<u8>> {
    let path =
        blob_path(app.store.dir(), sha).ok_or_else(|| ApiError::bad("Invalid blob hash."))?;
    tokio::task::spawn_blocking(move || std::fs::read(&path))
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| ApiError::not_found())
}
