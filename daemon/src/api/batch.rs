//! `POST /api/batch`: several record writes in one transaction, each checked
//! against its own collection's rules. Off by default (as PocketBase).
//! Multipart batches carry files as `requests.N.field` parts.

use super::records::{self, collection, create_in, delete_in, enrich, update_in};
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::files::Upload;
use crate::http::{Req, Resp};
use crate::rules::{self, RequestCtx};
use crate::schema::record::to_text;
use crate::schema::{Collection, Schema};
use crate::store::records::{self as rs, Cond};
use crate::store::Changes;
use serde_json::{json, Map, Value};
use std::sync::Arc;

enum Op {
    Create,
    Update(String),
    Upsert,
    Delete(String),
}

struct Planned {
    op: Op,
    coll: Arc<Collection>,
    ctx: RequestCtx,
    rule: Option<Cond>,
    /// For upsert: the update rule (the create rule is in `rule`).
    update_rule: Option<Cond>,
    hash: Option<String>,
    /// The step's file fields (collections with file fields).
    files: Option<super::files::Plan>,
    /// The record id its files are stored under.
    file_id: String,
}

/// A finished batch step: its collection, request and written row (None for a delete).
type Done = (Arc<Collection>, RequestCtx, Option<Map<String, Value>>);

fn inner_error(i: usize, e: &ApiError) -> ApiError {
    let mut data = FieldErrors::new();
    data.add_nested(
        "requests",
        json!({ i.to_string(): {
            "code": "batch_request_failed",
            "message": "Batch request failed.",
            "response": e.to_body(),
        }}),
    );
    ApiError::validation("Batch transaction failed.", data)
}

/// Which request a batch file part belongs to: `requests.N.key` or
/// `requests[N].key` (PocketBase's two spellings) → (N, key).
fn file_target(name: &str) -> Option<(usize, String)> {
    let rest = name.strip_prefix("requests")?;
    let (n, key) = if let Some(r) = rest.strip_prefix('.') {
        r.split_once('.')?
    } else {
        let r = rest.strip_prefix('[')?;
        let (n, k) = r.split_once(']')?;
        (n, k.strip_prefix('.')?)
    };
    if key.is_empty() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 6 {
        return None;
    }
    Some((n.parse().ok()?, key.to_string()))
}

/// The batch body: JSON, or multipart with a `@jsonPayload` part (what the
/// JS SDK sends) and files under `requests.N.field`.
async fn payload(req: &Req) -> ApiResult<(Value, Vec<(usize, Upload)>)> {
    let ct = req.header("content-type").unwrap_or_default().to_string();
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return req
            .json_value()
            .map(|v| (v, Vec::new()))
            .map_err(|_| ApiError::bad("Failed to read the submitted batch data."));
    }
    let boundary =
        multer::parse_boundary(&ct).map_err(|_| ApiError::bad("Invalid multipart boundary."))?;
    let body = req.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut json = json!({});
    let mut files = Vec::new();
    let unreadable = || ApiError::bad("Failed to read the multipart body.");
    while let Some(field) = mp.next_field().await.map_err(|_| unreadable())? {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(filename) = field.file_name().map(str::to_string) {
            let Some((i, key)) = file_target(&name) else {
                return Err(ApiError::bad(
                    "Failed to read the submitted batch files data.",
                ));
            };
            let data = field.bytes().await.map_err(|_| unreadable())?;
            // PocketBase names a batch file twice (once when the batch is
            // read, again when the record is saved): `a_<rand>_<rand>.txt`.
            let filename = crate::files::stored_name(&filename, &data);
            files.push((
                i,
                Upload {
                    key,
                    filename,
                    data,
                },
            ));
        } else if name == "@jsonPayload" {
            let text = field.text().await.map_err(|_| unreadable())?;
            json = serde_json::from_str(&text)
                .map_err(|_| ApiError::bad("Failed to read the submitted batch data."))?;
        }
    }
    Ok((json, files))
}

fn route(method: &str, url: &str) -> Option<(String, Option<String>, Op)> {
    let path = url.split('?').next().unwrap_or_default();
    let rest = path.strip_prefix("/api/collections/")?;
    let mut parts = rest.split('/');
    let coll = percent_encoding::percent_decode_str(parts.next()?)
        .decode_utf8_lossy()
        .into_owned();
    if parts.next()? != "records" {
        return None;
    }
    let id = parts.next().map(|s| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    });
    if parts.next().is_some() {
        return None;
    }
    let op = match (method.to_ascii_uppercase().as_str(), &id) {
        ("POST", None) => Op::Create,
        ("PUT", None) => Op::Upsert,
        ("PATCH", Some(id)) => Op::Update(id.clone()),
        ("DELETE", Some(id)) => Op::Delete(id.clone()),
        _ => return None,
    };
    Some((coll, id, op))
}

pub async fn batch(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let settings = app.settings();
    let b = &settings["batch"];
    if !b["enabled"].as_bool().unwrap_or(false) {
        return Err(ApiError::Forbidden(
            "Batch requests are not allowed.".into(),
        ));
    }
    let max = b["maxRequests"].as_i64().unwrap_or(50).max(0) as usize;
    let (body, mut uploads) = payload(&req).await?;
    let list = body
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() || list.len() > max {
        let mut e = FieldErrors::new();
        if list.is_empty() {
            e.add("requests", "validation_required", "Cannot be blank.");
        } else {
            e.add_nested(
                "requests",
                json!({"code": "validation_length_too_long", "message": format!("The length must be no more than {max}."), "params": {"max": max, "min": 0}}),
            );
        }
        return Err(ApiError::validation("Invalid batch request data.", e));
    }
    let schema = app.store.schema();
    let mut plan: Vec<Planned> = Vec::with_capacity(list.len());
    if uploads.iter().any(|(i, _)| *i >= list.len()) {
        return Err(ApiError::bad(
            "Failed to read the submitted batch files data.",
        ));
    }
    for (i, r) in list.iter().enumerate() {
        let (mine, rest) = uploads.into_iter().partition(|(j, _)| *j == i);
        uploads = rest;
        let mine = mine.into_iter().map(|(_, u)| u).collect();
        let p = plan_one(&app, &req, &schema, r, mine)
            .await
            .map_err(|e| inner_error(i, &e))?;
        plan.push(p);
    }
    // New files are stored before the transaction and removed again if it
    // fails; files the writes dropped go after the commit.
    let mut stored: Vec<(Arc<Collection>, String, Vec<String>)> = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        let Some(fp) = &p.files else { continue };
        if let Err(e) =
            records::store_files(&app, &p.coll, &p.file_id, fp, "Failed to create record.").await
        {
            remove_new(&app, stored).await;
            return Err(inner_error(i, &e));
        }
        if !fp.new.is_empty() {
            stored.push((
                p.coll.clone(),
                p.file_id.clone(),
                fp.new.iter().map(|(n, _)| n.clone()).collect(),
            ));
        }
    }
    let dropped: Vec<(Arc<Collection>, String, Vec<String>)> = plan
        .iter()
        .filter_map(|p| {
            let fp = p.files.as_ref()?;
            (!fp.removed.is_empty())
                .then(|| (p.coll.clone(), p.file_id.clone(), fp.removed.clone()))
        })
        .collect();
    let schema2 = schema.clone();
    let results = app
        .store
        .write_changes(move |c, changes| {
            let mut out: Vec<Done> = Vec::new();
            for (i, p) in plan.into_iter().enumerate() {
                let r = run_one(c, &schema2, &p, changes).map_err(|e| inner_error(i, &e))?;
                out.push((p.coll, p.ctx, r));
            }
            Ok(out)
        })
        .await;
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            remove_new(&app, stored).await;
            return Err(e);
        }
    };
    for (coll, id, names) in dropped {
        records::drop_files(&app, &coll, &id, names).await;
    }
    let schema3 = schema.clone();
    let bodies = app
        .store
        .read(move |c| {
            let mut v = Vec::new();
            for (coll, ctx, rec) in results {
                match rec {
                    None => v.push(json!({"status": 204, "body": null})),
                    Some(r) => {
                        let expand = ctx
                            .query
                            .get("expand")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        let body = enrich(c, &schema3, &coll, vec![r], &ctx, &expand)?
                            .pop()
                            .unwrap_or(Value::Null);
                        let fields = ctx
                            .query
                            .get("fields")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        v.push(json!({"status": 200, "body": records::pick_fields(body, fields)}));
                    }
                }
            }
            Ok(v)
        })
        .await?;
    Ok(Resp::ok(&Value::Array(bodies)))
}

/// Removes files stored for a batch that did not commit.
async fn remove_new(app: &App, stored: Vec<(Arc<Collection>, String, Vec<String>)>) {
    for (coll, id, names) in stored {
        records::drop_files(app, &coll, &id, names).await;
    }
}

async fn plan_one(
    app: &Arc<App>,
    req: &Req,
    schema: &Arc<Schema>,
    r: &Value,
    uploads: Vec<Upload>,
) -> ApiResult<Planned> {
    let method = r.get("method").and_then(Value::as_str).unwrap_or_default();
    let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
    let Some((cname, _, op)) = route(method, url) else {
        return Err(ApiError::bad(
            "Something went wrong while processing your request.",
        ));
    };
    let (_, coll) = collection(app, &cname)?;
    let mut body = match r.get("body") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    // File fields: the same plan as a single write's (uploads, `f+`, `f-`).
    let mut files = None;
    let mut file_id = String::new();
    if coll.has_file_fields() && !matches!(op, Op::Delete(_)) {
        let id = match &op {
            Op::Update(id) => id.clone(),
            _ => body.get("id").map(to_text).unwrap_or_default(),
        };
        let existing = if id.is_empty() {
            None
        } else {
            let (coll2, id2) = (coll.clone(), id.clone());
            app.store
                .read(move |c| rs::fetch_by_id(c, &coll2, &id2))
                .await?
        };
        let fp = super::files::plan(&coll, existing.as_ref(), &mut body, uploads)?;
        file_id = id;
        if !fp.new.is_empty() && file_id.is_empty() {
            // The files' directory is named after the record.
            file_id = crate::util::new_record_id();
            body.insert("id".into(), json!(file_id));
        }
        files = Some(fp);
    } else if !uploads.is_empty() {
        return Err(ApiError::bad(
            "Failed to read the submitted batch files data.",
        ));
    }
    let query: Map<String, Value> = url
        .split_once('?')
        .map(|(_, q)| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect()
        })
        .unwrap_or_default();
    let mut ctx = records::request_ctx(req, body.clone());
    if let Some(fp) = &files {
        ctx.files = fp.values.clone();
    }
    ctx.method = method.to_ascii_uppercase();
    ctx.query = query;
    let su = ctx.identity.is_superuser();
    let rule_for = |rule: Option<&str>| -> ApiResult<Option<Cond>> {
        if su {
            Ok(Some(Cond::default()))
        } else {
            rules::rule_cond(schema, &coll, rule, &ctx)
        }
    };
    let (rule, update_rule) = match &op {
        Op::Create => (rule_for(coll.create_rule.as_deref())?, None),
        Op::Update(_) => (rule_for(coll.update_rule.as_deref())?, None),
        Op::Delete(_) => (rule_for(coll.delete_rule.as_deref())?, None),
        Op::Upsert => (
            rule_for(coll.create_rule.as_deref())?,
            rule_for(coll.update_rule.as_deref())?,
        ),
    };
    let needs_rule = !matches!(op, Op::Upsert);
    if needs_rule && rule.is_none() {
        return Err(ApiError::superusers_only());
    }
    let mut hash = None;
    if coll.is_auth() {
        let pw = body.get("password").map(to_text).unwrap_or_default();
        if !pw.is_empty() && body.get("passwordConfirm").map(to_text).unwrap_or_default() == pw {
            hash = Some(app.hasher.hash(pw).await?);
        }
    }
    Ok(Planned {
        op,
        coll,
        ctx,
        rule,
        update_rule,
        hash,
        files,
        file_id,
    })
}

fn run_one(
    c: &rusqlite::Connection,
    schema: &Schema,
    p: &Planned,
    changes: &mut Changes,
) -> ApiResult<Option<Map<String, Value>>> {
    let errs = FieldErrors::new();
    let su = p.ctx.identity.is_superuser();
    match &p.op {
        Op::Create => {
            let rule = p.rule.clone().ok_or_else(ApiError::superusers_only)?;
            create_in(
                c,
                schema,
                &p.coll,
                &p.ctx,
                p.hash.as_deref(),
                &rule,
                errs,
                changes,
            )
            .map(Some)
        }
        Op::Update(id) => {
            let rule = p.rule.clone().ok_or_else(ApiError::superusers_only)?;
            update_in(
                c,
                schema,
                &p.coll,
                id,
                &p.ctx,
                p.hash.as_deref(),
                &rule,
                su,
                errs,
                changes,
            )
            .map(Some)
        }
        Op::Delete(id) => {
            let rule = p.rule.clone().ok_or_else(ApiError::superusers_only)?;
            delete_in(c, schema, &p.coll, id, &rule, changes).map(|_| None)
        }
        Op::Upsert => {
            let id = p.ctx.body.get("id").map(to_text).unwrap_or_default();
            let exists = !id.is_empty() && rs::fetch_by_id(c, &p.coll, &id)?.is_some();
            if exists {
                let rule = p
                    .update_rule
                    .clone()
                    .ok_or_else(ApiError::superusers_only)?;
                update_in(
                    c,
                    schema,
                    &p.coll,
                    &id,
                    &p.ctx,
                    p.hash.as_deref(),
                    &rule,
                    su,
                    errs,
                    changes,
                )
                .map(Some)
            } else {
                let rule = p.rule.clone().ok_or_else(ApiError::superusers_only)?;
                create_in(
                    c,
                    schema,
                    &p.coll,
                    &p.ctx,
                    p.hash.as_deref(),
                    &rule,
                    errs,
                    changes,
                )
                .map(Some)
            }
        }
    }
}
