//! `POST /api/batch`: several record writes in one transaction, each checked
//! against its own collection's rules. Off by default (as PocketBase).
//! Multipart batches carry files as `requests.N.field` parts. HTTP only:
//! each request is decoded into a `records::Step`; the record domain runs
//! them (`records::batch`) exactly as it runs single writes.

use super::records::collection;
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::files::Upload;
use crate::http::{Req, Resp};
use crate::records::{self, Input, Op, Step};
use serde_json::{json, Map, Value};
use std::sync::Arc;

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
/// JS SDK sends) and files under `requests.N.field`, spilled to disk as
/// they arrive (`api::bodies`).
async fn payload(app: &App, req: &mut Req) -> ApiResult<(Value, Vec<(usize, Upload)>)> {
    let unreadable = || ApiError::bad("Failed to read the submitted batch data.");
    if !req.is_multipart() {
        req.read_body().await?;
        return req.json_value().map(|v| (v, Vec::new())).map_err(|e| {
            if matches!(e, ApiError::TooLarge(_)) {
                e
            } else {
                unreadable()
            }
        });
    }
    let got = super::bodies::receive(app, req, file_target).await?;
    let mut json = json!({});
    for p in got.payloads() {
        json = serde_json::from_str(p).map_err(|_| unreadable())?;
    }
    let files = got
        .files
        .into_iter()
        .map(|(i, mut u)| {
            // PocketBase names a batch file twice (once when the batch is
            // read, again when the record is saved): `a_<rand>_<rand>.txt`.
            u.filename = crate::files::stored_name(&u.filename, u.data.head());
            (i, u)
        })
        .collect();
    Ok((json, files))
}

fn route(method: &str, url: &str) -> Option<(String, Op)> {
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
    Some((coll, op))
}

pub async fn batch(app: Arc<App>, mut req: Req) -> ApiResult<Resp> {
    let batch = app.settings().batch.clone();
    if !batch.enabled {
        return Err(ApiError::Forbidden(
            "Batch requests are not allowed.".into(),
        ));
    }
    let max = batch.max_requests.max(0) as usize;
    let (body, mut uploads) = payload(&app, &mut req).await?;
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
    if uploads.iter().any(|(i, _)| *i >= list.len()) {
        return Err(ApiError::bad(
            "Failed to read the submitted batch files data.",
        ));
    }
    let mut steps = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let (mine, rest) = uploads.into_iter().partition(|(j, _)| *j == i);
        uploads = rest;
        let mine: Vec<Upload> = mine.into_iter().map(|(_, u)| u).collect();
        steps.push(step(&app, &req, r, mine).map_err(|e| inner_error(i, &e))?);
    }
    let answers = records::batch(&app, steps)
        .await
        .map_err(|e| inner_error(e.index, &e.error))?;
    let bodies: Vec<Value> = answers
        .into_iter()
        .map(|a| match a {
            None => json!({"status": 204, "body": null}),
            Some(body) => json!({"status": 200, "body": body}),
        })
        .collect();
    Ok(Resp::ok(&Value::Array(bodies)))
}

/// One batch request decoded into a record write.
fn step(app: &App, req: &Req, r: &Value, uploads: Vec<Upload>) -> ApiResult<Step> {
    let method = r.get("method").and_then(Value::as_str).unwrap_or_default();
    let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
    let Some((cname, op)) = route(method, url) else {
        return Err(ApiError::bad(
            "Something went wrong while processing your request.",
        ));
    };
    let (_, coll) = collection(app, &cname)?;
    let body = match r.get("body") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if !uploads.is_empty() && (!coll.has_file_fields() || matches!(op, Op::Delete(_))) {
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
    let mut request = super::records::request(app, req);
    request.method = method.to_ascii_uppercase();
    request.query = std::sync::Arc::new(query);
    Ok(Step {
        op,
        coll,
        req: request,
        input: Input { body, uploads },
    })
}
