//! The bodies of record writes (`POST`/`PATCH …/records`, `POST
//! /api/batch`): JSON or urlencoded, read whole under the route's cap; or
//! multipart, read part by part as it arrives — text parts into the body
//! (under the cap and charged to the budget of bodies in flight,
//! `max_body_bytes_in_flight`; JSON depth-limited), file parts spilled to private
//! temporary files (`files::Uploads`, 0600 under `<data>/.uploads/`)
//! under a global budget of upload bytes in flight
//! (`max_upload_bytes_in_flight`; over it: 429 and nothing kept). A body
//! held in memory is at most one chunk of a file, whatever its size.

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::files::{Blob, Upload};
use crate::http::form::{check_json_depth, JSON_PAYLOAD, MAX_JSON_DEPTH};
use crate::http::Req;
use serde_json::{Map, Value};
use std::sync::Arc;

const GENERIC: &str = "Something went wrong while processing your request.";

/// A record write's body and its uploads (keyed by their form key).
pub(crate) async fn record_body(
    app: &App,
    req: &mut Req,
) -> ApiResult<(Map<String, Value>, Vec<Upload>)> {
    if !req.is_multipart() {
        req.read_body().await?;
        if req.is_urlencoded() && !req.body.is_empty() {
            let mut m = Map::new();
            for (k, v) in form_urlencoded::parse(&req.body) {
                check_json_depth(v.as_bytes(), MAX_JSON_DEPTH)?;
                m.insert(k.into_owned(), infer(v.into_owned()));
            }
            return Ok((m, Vec::new()));
        }
        return Ok((req.json_body_or(GENERIC)?, Vec::new()));
    }
    let mut form = receive(app, req, |name| Some(name.to_string())).await?;
    let files = std::mem::take(&mut form.files);
    Ok((form.values(GENERIC)?, files))
}

/// A form value as PocketBase reads it into a record body: `true`/`false`
/// are booleans, a number written exactly as its shortest form (`12`,
/// `-0.5`, not `007` or `1.0`) is a number, anything else stays text. The
/// field then converts it (`"2"` for a bool is true, `"true"` for a number
/// is 1), as a JSON body's values are.
fn infer(raw: String) -> Value {
    match raw.as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let numeric = raw
        .as_bytes()
        .first()
        .is_some_and(|b| *b == b'-' || b.is_ascii_digit());
    if numeric {
        if let Ok(f) = raw.parse::<f64>() {
            if f.is_finite() && f.to_string() == raw {
                return crate::schema::record::number_value(f);
            }
        }
    }
    Value::String(raw)
}

/// A multipart body as received: text values in order, `@jsonPayload`
/// parts, and the files filed as `receive`'s `target` said.
pub(crate) struct Received<T> {
    values: Vec<(String, String)>,
    payloads: Vec<String>,
    pub files: Vec<T>,
}

impl Received<Upload> {
    /// The text values as a record body: repeated keys become lists, each
    /// `@jsonPayload` object is merged over them.
    fn values(self, malformed: &str) -> ApiResult<Map<String, Value>> {
        let mut out = Map::new();
        for (name, text) in self.values {
            match out.get_mut(&name) {
                None => {
                    out.insert(name, infer(text));
                }
                Some(Value::Array(a)) => a.push(infer(text)),
                Some(prev) => {
                    let first = prev.take();
                    *prev = Value::Array(vec![first, infer(text)]);
                }
            }
        }
        for p in self.payloads {
            match serde_json::from_str::<Value>(&p) {
                Ok(Value::Object(m)) => {
                    for (k, v) in m {
                        out.insert(k, v);
                    }
                }
                _ => return Err(ApiError::bad(malformed)),
            }
        }
        Ok(out)
    }
}

impl<T> Received<T> {
    /// The `@jsonPayload` parts.
    pub(crate) fn payloads(&self) -> &[String] {
        &self.payloads
    }
}

/// Reads a multipart body part by part. `target` maps a file part's form
/// name to what the upload is filed under (None: the body is refused).
/// Text parts count against the route's cap with the files (multer's
/// whole-stream limit); each is depth-checked as JSON.
pub(crate) async fn receive<K, F>(
    app: &App,
    req: &mut Req,
    target: F,
) -> ApiResult<Received<K::Out>>
where
    F: Fn(&str) -> Option<K>,
    K: Filed,
{
    let mut form = req.streamed_form()?.ok_or_else(|| ApiError::bad(GENERIC))?;
    let mut got = Received {
        values: Vec::new(),
        payloads: Vec::new(),
        files: Vec::new(),
    };
    // Text parts are held in memory: charged to the budget of bodies in
    // flight as they arrive (files go to disk under their own budget).
    let mut held: u64 = 0;
    while let Some(mut part) = form.next_part().await? {
        let name = part.name().to_string();
        let Some(filename) = part.file_name().map(str::to_string) else {
            let mut text = Vec::new();
            while let Some(chunk) = part.chunk().await? {
                held += chunk.len() as u64;
                req.hold_body_bytes(held)?;
                text.extend_from_slice(&chunk);
            }
            check_json_depth(&text, MAX_JSON_DEPTH)?;
            let text = String::from_utf8(text).map_err(|_| ApiError::bad(GENERIC))?;
            if name == JSON_PAYLOAD {
                got.payloads.push(text);
            } else {
                got.values.push((name, text));
            }
            continue;
        };
        let key = target(&name)
            .ok_or_else(|| ApiError::bad("Failed to read the submitted batch files data."))?;
        let blob = spill(&app.uploads, &mut part).await?;
        got.files.push(key.file(filename, blob));
    }
    Ok(got)
}

/// What an upload is filed under: its form key (records), or the batch
/// request it belongs to with the key.
pub(crate) trait Filed {
    type Out;
    fn file(self, filename: String, data: Blob) -> Self::Out;
}

impl Filed for String {
    type Out = Upload;
    fn file(self, filename: String, data: Blob) -> Upload {
        Upload {
            key: self,
            filename,
            data,
        }
    }
}

impl Filed for (usize, String) {
    type Out = (usize, Upload);
    fn file(self, filename: String, data: Blob) -> (usize, Upload) {
        (
            self.0,
            Upload {
                key: self.1,
                filename,
                data,
            },
        )
    }
}

/// Spills one file part to a private temporary file as it arrives.
async fn spill(
    uploads: &Arc<crate::files::Uploads>,
    part: &mut crate::http::request::StreamedPart,
) -> ApiResult<Blob> {
    let busy = || ApiError::TooManyRequests {
        message: "Too many uploads in progress, please try again later.".into(),
        retry_after: 5,
    };
    let io = |e: std::io::Error| ApiError::internal(format!("spilling an upload: {e}"));
    let mut w = uploads.writer().map_err(io)?;
    while let Some(chunk) = part.chunk().await? {
        // A page-cache write of one chunk; the sync waits for `finish`.
        if !tokio::task::block_in_place(|| w.write(&chunk)).map_err(io)? {
            return Err(busy());
        }
    }
    let spill = tokio::task::spawn_blocking(move || w.finish())
        .await
        .map_err(ApiError::internal)?
        .map_err(io)?;
    Ok(Blob::Spilled(Arc::new(spill)))
}

#[cfg(test)]
mod tests {
    use super::infer;
    use serde_json::json;

    #[test]
    fn form_values_as_pocketbase_reads_them() {
        for (raw, want) in [
            ("true", json!(true)),
            ("false", json!(false)),
            ("12", json!(12)),
            ("-0.5", json!(-0.5)),
            ("007", json!("007")),
            ("1.0", json!("1.0")),
            ("1e3", json!("1e3")),
            ("TRUE", json!("TRUE")),
            ("", json!("")),
            ("abc", json!("abc")),
            ("12345678901234567890", json!("12345678901234567890")),
        ] {
            assert_eq!(infer(raw.to_string()), want, "{raw}");
        }
    }
}
