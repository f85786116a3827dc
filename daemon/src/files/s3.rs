//! S3-compatible storage for file fields, configured by PocketBase's `s3`
//! settings (`enabled`, `bucket`, `region`, `endpoint`, `accessKey`,
//! `secret`, `forcePathStyle`). Objects are keyed as on disk:
//! `<collectionId>/<recordId>/<name>`.
//!
//! Requests are signed with AWS SigV4 (rusty-s3 without its XML feature,
//! presigned for a short time) and sent with ureq over rustls, with timeouts and a size cap on
//! what is read back. Every call blocks: run it on a blocking thread.
//!
//! Backups on S3 (`backups.s3`) use the same client with what large objects
//! need: `put_stream` (one PUT up to `PART_SIZE`, a multipart upload above
//! it, aborted on any failure, one part in memory at a time), `get_stream`
//! (the body as a reader) and `list_objects` (keys with size and time).
//! Their requests are timed per read and write rather than as a whole.

use crate::settings::S3 as Config;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io;
use std::time::Duration;

/// How long a signature is valid: only as long as one request takes.
const SIGN_FOR: Duration = Duration::from_secs(300);
const TIMEOUT: Duration = Duration::from_secs(60);
/// The most a download reads into memory.
const MAX_OBJECT: u64 = 1 << 30;

/// The part size of multipart uploads: the most `put_stream` holds in
/// memory (S3's smallest part is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// `LastModified` as S3 gives it (RFC 3339).
    pub modified: String,
}

/// One configured bucket.
pub struct S3 {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
    /// For streamed bodies: no bound on a whole request, one on each read
    /// and write.
    stream_agent: ureq::Agent,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("bucket", &self.bucket.name())
            .field("endpoint", &self.bucket.base_url().as_str())
            .finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn status_error(op: &str, status: u16) -> io::Error {
    let kind = match status {
        404 => io::ErrorKind::NotFound,
        401 | 403 => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("S3 {op}: status {status}"))
}

/// The field errors of an `s3` settings object, as PocketBase validates
/// it: every connection value is required while `enabled`, and the
/// endpoint must be a URL.
pub fn validate(c: &Config) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut errs = Vec::new();
    if c.enabled {
        for (k, v) in [
            ("endpoint", &c.endpoint),
            ("bucket", &c.bucket),
            ("region", &c.region),
            ("accessKey", &c.access_key),
            ("secret", &c.secret),
        ] {
            if v.trim().is_empty() {
                errs.push((k, "validation_required", "Cannot be blank."));
            }
        }
    }
    let ep = &c.endpoint;
    if !ep.is_empty() && endpoint_url(ep).is_none() {
        errs.push(("endpoint", "validation_is_url", "Must be a valid URL."));
    }
    errs
}

/// `https://` is assumed when the endpoint names no scheme (as PocketBase).
fn endpoint_url(ep: &str) -> Option<url::Url> {
    let ep = ep.trim();
    let full = if ep.contains("://") {
        ep.to_string()
    } else {
        format!("https://{ep}")
    };
    let u = url::Url::parse(&full).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some()).then_some(u)
}

impl S3 {
    /// The bucket an `s3` settings object describes; `None` when it is not
    /// enabled.
    pub fn from_settings(c: &Config) -> Option<io::Result<S3>> {
        if !c.enabled {
            return None;
        }
        Some((|| {
            let endpoint = endpoint_url(&c.endpoint).ok_or_else(|| other("bad S3 endpoint"))?;
            let style = if c.force_path_style {
                UrlStyle::Path
            } else {
                UrlStyle::VirtualHost
            };
            let bucket =
                Bucket::new(endpoint, style, c.bucket.clone(), c.region.clone()).map_err(other)?;
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(TIMEOUT))
                .http_status_as_error(false)
                .build()
                .into();
            let stream_agent = ureq::Agent::config_builder()
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_per_read(Some(TIMEOUT))
                .timeout_per_write(Some(TIMEOUT))
                .http_status_as_error(false)
                .build()
                .into();
            Ok(S3 {
                bucket,
                creds: Credentials::new(c.access_key.clone(), c.secret.clone()),
                agent,
                stream_agent,
            })
        })())
    }

    pub fn put(&self, key: &str, data: &[u8], content_type: &str) -> io::Result<()> {
        let mut action = self.bucket.put_object(Some(&self.creds), key);
        action
            .headers_mut()
            .insert("content-type", content_type.to_string());
        let url = action.sign(SIGN_FOR);
        let resp = self
            .agent
            .put(url.as_str())
            .header("content-type", content_type)
            .send(data)
            .map_err(other)?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            s => Err(status_error("put", s)),
        }
    }

    /// The object's bytes, or `None` when there is no such key.
    pub fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let url = self
            .bucket
            .get_object(Some(&self.creds), key)
            .sign(SIGN_FOR);
        let mut resp = self.agent.get(url.as_str()).call().map_err(other)?;
        match resp.status().as_u16() {
            200..=299 => resp
                .body_mut()
                .with_config()
                .limit(MAX_OBJECT)
                .read_to_vec()
                .map(Some)
                .map_err(other),
            404 => Ok(None),
            s => Err(status_error("get", s)),
        }
    }

    /// Deletes one key (a missing key is fine, as S3 answers).
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let url = self
            .bucket
            .delete_object(Some(&self.creds), key)
            .sign(SIGN_FOR);
        let resp = self.agent.delete(url.as_str()).call().map_err(other)?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(status_error("delete", s)),
        }
    }

    /// The object's body as a reader and its length (when the store said
    /// it), or `None` when there is no such key. Nothing is read ahead: the
    /// caller streams it.
    #[allow(clippy::type_complexity)]
    pub fn get_stream(
        &self,
        key: &str,
    ) -> io::Result<Option<(Box<dyn io::Read + Send>, Option<u64>)>> {
        let url = self
            .bucket
            .get_object(Some(&self.creds), key)
            .sign(SIGN_FOR);
        let resp = self.stream_agent.get(url.as_str()).call().map_err(other)?;
        match resp.status().as_u16() {
            200..=299 => {
                let len = resp.body().content_length();
                let r = resp.into_body().into_with_config().reader();
                Ok(Some((Box::new(r), len)))
            }
            404 => Ok(None),
            s => Err(status_error("get", s)),
        }
    }

    /// Stores what `src` reads under `key`: one PUT when it fits in a part,
    /// else a multipart upload of `PART_SIZE` parts (one in memory at a
    /// time), aborted on any failure so that no partial object is left.
    /// Returns the number of parts sent (1 for a single PUT).
    pub fn put_stream(
        &self,
        key: &str,
        src: &mut dyn io::Read,
        content_type: &str,
    ) -> io::Result<usize> {
        let mut buf = vec![0u8; PART_SIZE];
        let n = read_full(src, &mut buf)?;
        if n < PART_SIZE {
            buf.truncate(n);
            self.put(key, &buf, content_type)?;
            return Ok(1);
        }
        let upload_id = self.create_multipart(key, content_type)?;
        let sent = (|| -> io::Result<usize> {
            let mut etags = Vec::new();
            let mut n = n;
            loop {
                let number = etags.len() as u16 + 1;
                etags.push(self.upload_part(key, &upload_id, number, &buf[..n])?);
                n = read_full(src, &mut buf)?;
                if n == 0 {
                    break;
                }
            }
            self.complete_multipart(key, &upload_id, &etags)?;
            Ok(etags.len())
        })();
        if sent.is_err() {
            if let Err(e) = self.abort_multipart(key, &upload_id) {
                tracing::warn!(key, error = %e, "S3: can't abort a failed multipart upload");
            }
        }
        sent
    }

    /// A presigned URL for a POST on `key` with one query parameter (the
    /// multipart actions rusty-s3 has only with its XML feature), signed
    /// by rusty-s3's SigV4.
    fn sign_post(&self, key: &str, param: (&str, &str)) -> io::Result<url::Url> {
        let url = self.bucket.object_url(key).map_err(other)?;
        Ok(rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Post,
            url,
            self.creds.key(),
            self.creds.secret(),
            self.creds.token(),
            self.bucket.region(),
            SIGN_FOR.as_secs(),
            std::iter::once(param),
            std::iter::empty(),
        ))
    }

    fn create_multipart(&self, key: &str, content_type: &str) -> io::Result<String> {
        let url = self.sign_post(key, ("uploads", ""))?;
        let mut resp = self
            .agent
            .post(url.as_str())
            .header("content-type", content_type)
            .send_empty()
            .map_err(other)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(status_error("create multipart upload", status));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(other)?;
        elements(&body, "UploadId")
            .pop()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| other("S3 create multipart upload: no UploadId in the answer"))
    }

    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        data: &[u8],
    ) -> io::Result<String> {
        let url = rusty_s3::actions::UploadPart::new(
            &self.bucket,
            Some(&self.creds),
            key,
            number,
            upload_id,
        )
        .sign(SIGN_FOR);
        let resp = self
            .stream_agent
            .put(url.as_str())
            .send(data)
            .map_err(other)?;
        match resp.status().as_u16() {
            200..=299 => resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| other("S3 upload part: no ETag in the answer")),
            s => Err(status_error("upload part", s)),
        }
    }

    fn complete_multipart(&self, key: &str, upload_id: &str, etags: &[String]) -> io::Result<()> {
        let url = self.sign_post(key, ("uploadId", upload_id))?;
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let mut resp = self
            .stream_agent
            .post(url.as_str())
            .header("content-type", "application/xml")
            .send(body.as_bytes())
            .map_err(other)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default();
        // S3 may answer 200 with an error in the body.
        if !(200..300).contains(&status) || text.contains("<Error>") {
            return Err(status_error("complete multipart upload", status.max(500)));
        }
        Ok(())
    }

    fn abort_multipart(&self, key: &str, upload_id: &str) -> io::Result<()> {
        let url = rusty_s3::actions::AbortMultipartUpload::new(
            &self.bucket,
            Some(&self.creds),
            key,
            upload_id,
        )
        .sign(SIGN_FOR);
        let resp = self.agent.delete(url.as_str()).call().map_err(other)?;
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            s => Err(status_error("abort multipart upload", s)),
        }
    }

    /// Every key under `prefix` (all pages).
    pub fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        Ok(self
            .list_objects(prefix)?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }

    /// Every object under `prefix` (all pages), with size and time.
    pub fn list_objects(&self, prefix: &str) -> io::Result<Vec<Object>> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            // ListObjectsV2 is a GET of the bucket's root with `list-type=2`:
            // the object action on the empty key signs exactly that (the
            // crate's own list action needs its XML feature, whose parser
            // has open advisories).
            let mut action = self.bucket.get_object(Some(&self.creds), "");
            let q = action.query_mut();
            q.insert("list-type", "2");
            q.insert("prefix", prefix.to_string());
            if let Some(t) = &token {
                q.insert("continuation-token", t.clone());
            }
            let url = action.sign(SIGN_FOR);
            let mut resp = self.agent.get(url.as_str()).call().map_err(other)?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                return Err(status_error("list", status));
            }
            let body = resp
                .body_mut()
                .with_config()
                .limit(16 << 20)
                .read_to_vec()
                .map_err(other)?;
            let body = String::from_utf8(body).map_err(other)?;
            objects.extend(contents(&body));
            match elements(&body, "NextContinuationToken").pop() {
                Some(t) if !t.is_empty() && Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(objects)
    }

    /// Deletes every key under `prefix`; the first failure is returned
    /// after trying the rest.
    pub fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        let mut first = None;
        for k in self.list(prefix)? {
            if let Err(e) = self.delete(&k) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Reads until `buf` is full or the source ends; the bytes read.
fn read_full(src: &mut dyn io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The objects of a ListObjectsV2 answer (each `<Contents>` element).
fn contents(xml: &str) -> Vec<Object> {
    raw_elements(xml, "Contents")
        .into_iter()
        .filter_map(|c| {
            Some(Object {
                key: elements(c, "Key").pop()?,
                size: elements(c, "Size")
                    .pop()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                modified: elements(c, "LastModified").pop().unwrap_or_default(),
            })
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The text of every `<tag>…</tag>` element in a ListObjectsV2 answer
/// (flat text elements only, which is all it has under these names), with
/// XML's escapes undone.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    raw_elements(xml, tag).into_iter().map(unescape).collect()
}

/// The inner text of every `<tag>…</tag>` element, escapes kept.
fn raw_elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(&rest[..j]);
        rest = &rest[j + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: serde_json::Value) -> Config {
        serde_json::from_value(v).expect("s3 settings")
    }

    #[test]
    fn settings_validated_as_pocketbase() {
        assert!(validate(&conf(json!({"enabled": false}))).is_empty());
        let e = validate(&conf(json!({"enabled": true, "bucket": "b"})));
        let keys: Vec<_> = e.iter().map(|e| e.0).collect();
        assert_eq!(keys, ["endpoint", "region", "accessKey", "secret"]);
        let e = validate(&conf(json!({"enabled": false, "endpoint": "ht!tp://"})));
        assert_eq!(e[0].1, "validation_is_url");
        assert!(
            validate(&conf(json!({"enabled": true, "bucket": "b", "region": "r",
            "accessKey": "k", "secret": "s", "endpoint": "s3.example.com"})))
            .is_empty()
        );
    }

    #[test]
    fn list_answers_read() {
        let xml = "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name>\
            <Contents><Key>c/r/a&amp;b.txt</Key><Size>3</Size></Contents>\
            <Contents><Key>c/r/x&#x41;&#66;</Key></Contents>\
            <NextContinuationToken>tok&lt;1&gt;</NextContinuationToken></ListBucketResult>";
        assert_eq!(elements(xml, "Key"), ["c/r/a&b.txt", "c/r/xAB"]);
        assert_eq!(elements(xml, "NextContinuationToken"), ["tok<1>"]);
        let objects = contents(
            "<ListBucketResult><Contents><Key>a&amp;lt;b.zip</Key><Size>12</Size>\
             <LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>\
             <Contents><Key>x.zip</Key></Contents><Contents><Size>1</Size></Contents></ListBucketResult>",
        );
        assert_eq!(
            objects,
            [
                Object {
                    key: "a&lt;b.zip".into(),
                    size: 12,
                    modified: "2026-01-02T03:04:05.000Z".into()
                },
                Object {
                    key: "x.zip".into(),
                    size: 0,
                    modified: String::new()
                }
            ]
        );
        assert!(elements("<Key>unclosed", "Key").is_empty());
        assert_eq!(unescape("a & b &bogus; &#xZZ;"), "a & b &bogus; &#xZZ;");
    }

    #[test]
    fn endpoint_without_scheme_is_https() {
        assert_eq!(
            endpoint_url("s3.example.com").unwrap().as_str(),
            "https://s3.example.com/"
        );
        assert!(endpoint_url("ftp://x").is_none());
        let s3 = S3::from_settings(&conf(json!({"enabled": true, "bucket": "b", "region": "r",
            "accessKey": "k", "secret": "s", "endpoint": "http://127.0.0.1:9000",
            "forcePathStyle": true})))
        .unwrap()
        .unwrap();
        assert_eq!(s3.bucket.base_url().as_str(), "http://127.0.0.1:9000/b/");
        assert!(S3::from_settings(&conf(json!({"enabled": false}))).is_none());
    }
}
