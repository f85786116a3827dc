//! The console at `/_/` (api::console): the embedded files served with the
//! strict headers, Subresource Integrity hashes that match the bytes
//! served, gzip only to a client that accepts it, 404 for anything else.
//! keepd-only (PocketBase's dashboard is another program).

use crate::common::*;
use base64::Engine;
use sha2::{Digest, Sha384};
use std::io::Read;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; font-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

fn assert_console_headers(r: &Resp, what: &str) {
    assert_eq!(r.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    let frames: Vec<_> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "x-frame-options")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(frames, ["DENY"], "{what}: one x-frame-options, DENY");
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gzip body");
    out
}

/// `(url, integrity)` of every `src=`/`href=` with an `integrity=` in the page.
fn subresources(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for tag in html
        .split('<')
        .filter(|t| t.starts_with("script") || t.starts_with("link"))
    {
        let url = attr(tag, "src")
            .or_else(|| attr(tag, "href"))
            .expect("a url");
        let sri = attr(tag, "integrity").unwrap_or_else(|| panic!("no integrity on <{tag}"));
        out.push((url, sri));
    }
    out
}

#[test]
fn index_and_assets_with_strict_headers_sri_and_gzip() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let plain = srv.raw("GET", "/_/", &[], None);
    assert_eq!(plain.status, 200);
    assert_console_headers(&plain, "index");
    assert_eq!(
        plain.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(plain.header("cache-control"), Some("no-cache"));
    assert_eq!(plain.header("content-encoding"), None);
    let html = plain.text();
    assert!(!html.contains("style=") && !html.contains(" on"), "{html}");

    let zipped = srv.raw("GET", "/_/", &[("Accept-Encoding", "gzip, br")], None);
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    assert!(zipped
        .header("vary")
        .is_some_and(|v| v.contains("Accept-Encoding")));
    assert_eq!(gunzip(&zipped.body), plain.body, "the .gz is the page");
    let refused = srv.raw("GET", "/_/", &[("Accept-Encoding", "gzip;q=0")], None);
    assert_eq!(refused.header("content-encoding"), None);
    assert_eq!(refused.body, plain.body);

    let subs = subresources(&html);
    assert_eq!(subs.len(), 2, "one script, one stylesheet: {subs:?}");
    for (url, sri) in subs {
        assert!(!url.contains('/') && !url.contains(':'), "relative: {url}");
        let r = srv.raw("GET", &format!("/_/{url}"), &[], None);
        assert_eq!(r.status, 200, "{url}");
        assert_console_headers(&r, &url);
        let want_type = if url.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(r.header("content-type"), Some(want_type), "{url}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let digest = Sha384::digest(&r.body);
        let want = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        assert_eq!(sri, want, "{url}: integrity matches the bytes served");
        let z = srv.raw(
            "GET",
            &format!("/_/{url}"),
            &[("Accept-Encoding", "gzip")],
            None,
        );
        assert_eq!(z.header("content-encoding"), Some("gzip"));
        assert_eq!(gunzip(&z.body), r.body, "{url}.gz");

        let head = srv.raw("HEAD", &format!("/_/{url}"), &[], None);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert_console_headers(&head, "HEAD");
    }
}

#[test]
fn unknown_files_are_404_and_bare_path_redirects() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    for path in [
        "/_/nope.js",
        "/_/index.html.gz",
        "/_/manifest.rs",
        "/_/app.js",
    ] {
        let r = srv.raw("GET", path, &[], None);
        assert_eq!(r.status, 404, "{path}");
        assert_console_headers(&r, path);
    }
    let r = srv.raw("GET", "/_", &[], None);
    assert_eq!(r.status, 307);
    assert_eq!(r.header("location"), Some("/_/"));
    // The API keeps its own headers.
    let api = srv.raw("GET", "/api/health", &[], None);
    assert_eq!(api.header("content-security-policy"), None);
    assert_eq!(api.header("x-frame-options"), Some("SAMEORIGIN"));
}
