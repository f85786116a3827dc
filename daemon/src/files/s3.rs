//! S3-compatible storage for file fields, configured by PocketBase's `s3`
//! settings (`enabled`, `bucket`, `region`, `endpoint`, `accessKey`,
//! `secret`, `forcePathStyle`). Objects are keyed as on disk:
//! `<collectionId>/<recordId>/<name>`.
//!
//! Requests are signed with AWS SigV4 (rusty-s3 without its XML feature,
//! presigned for a short time) and sent with ureq over rustls, with timeouts and a size cap on
//! what is read back. Every call blocks: run it on a blocking thread.

use crate::settings::S3 as Config;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io;
use std::time::Duration;

/// How long a signature is valid: only as long as one request takes.
const SIGN_FOR: Duration = Duration::from_secs(300);
const TIMEOUT: Duration = Duration::from_secs(60);
/// The most a download reads into memory.
const MAX_OBJECT: u64 = 1 << 30;

/// One configured bucket.
pub struct S3 {
    bucket: Bucket,
    creds: Credentials,
    agent: ureq::Agent,
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
            Ok(S3 {
                bucket,
                creds: Credentials::new(c.access_key.clone(), c.secret.clone()),
                agent,
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

    /// Every key under `prefix` (all pages).
    pub fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
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
            keys.extend(elements(&body, "Key"));
            match elements(&body, "NextContinuationToken").pop() {
                Some(t) if !t.is_empty() && Some(&t) != token.as_ref() => token = Some(t),
                _ => break,
            }
        }
        Ok(keys)
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

/// The text of every `<tag>…</tag>` element in a ListObjectsV2 answer
/// (flat text elements only, which is all it has under these names), with
/// XML's escapes undone.
fn elements(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(unescape(&rest[..j]));
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
