//! The HTTP layer against the real daemon: form bodies on the JSON
//! endpoints (bound as PocketBase binds them), a panicking request
//! answered with a 500 while the daemon goes on, PocketBase's
//! `superuserIPs`, the redirect of unclean paths, and the shape of the
//! code (`http/` imports nothing of the application it serves).
//!
//! The form, `superuserIPs` and redirect tests are PocketBase's contract:
//! they pass against the reference binary too (`KEEPD_TEST_BIN`).

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};

const PASSWORD: &str = "Zebra-Quartz-7731";

fn multipart(parts: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let boundary = "keepdhttptestboundary51c";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!("form-data; name=\"{name}\"; filename=\"{f}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
        body.extend_from_slice(data.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn urlencoded(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url_form::Serializer::new();
    for (k, v) in pairs {
        s.append(k, v);
    }
    s.finish().into_bytes()
}

/// Minimal `application/x-www-form-urlencoded` serializer (the test crate
/// has no form dependency).
mod url_form {
    pub struct Serializer(String);
    impl Serializer {
        pub fn new() -> Self {
            Serializer(String::new())
        }
        pub fn append(&mut self, k: &str, v: &str) {
            if !self.0.is_empty() {
                self.0.push('&');
            }
            self.0.push_str(&enc(k));
            self.0.push('=');
            self.0.push_str(&enc(v));
        }
        pub fn finish(self) -> String {
            self.0
        }
    }
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
}

/// POSTs (or PATCHes) a form: multipart `parts` or urlencoded `pairs`.
fn send_multipart(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    parts: &[(&str, Option<&str>, &str)],
) -> (u16, Value) {
    let (ct, body) = multipart(parts);
    let mut headers = vec![("Content-Type", ct.as_str())];
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    let r = srv.raw(method, path, &headers, Some(&body));
    (r.status, r.json())
}

fn send_urlencoded(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    pairs: &[(&str, &str)],
) -> (u16, Value) {
    let body = urlencoded(pairs);
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    let r = srv.raw(method, path, &headers, Some(&body));
    (r.status, r.json())
}

const SU_LOGIN: &str = "/api/collections/_superusers/auth-with-password";
const USER_LOGIN: &str = "/api/collections/users/auth-with-password";

fn logged_in(st: u16, v: &Value) -> bool {
    st == 200 && v["token"].as_str().is_some_and(|t| !t.is_empty())
}

#[test]
fn form_logins_work_like_json_logins() {
    let srv = TestServer::start();
    // The superuser login of an integration that posts forms.
    let (st, v) = send_multipart(
        &srv,
        "POST",
        SU_LOGIN,
        None,
        &[
            ("identity", None, SU_EMAIL),
            ("password", None, SU_PASSWORD),
        ],
    );
    assert!(logged_in(st, &v), "multipart login: {st} {v}");
    assert_eq!(v["record"]["email"], SU_EMAIL);
    let (st, v) = send_urlencoded(
        &srv,
        "POST",
        SU_LOGIN,
        None,
        &[("identity", SU_EMAIL), ("password", SU_PASSWORD)],
    );
    assert!(logged_in(st, &v), "urlencoded login: {st} {v}");
    // The token works.
    let tok = v["token"].as_str().expect("token").to_string();
    assert_eq!(srv.with_token(&tok).get("/api/collections").0, 200);
    // A wrong password is the same 400 as with JSON.
    let (st, v) = send_multipart(
        &srv,
        "POST",
        SU_LOGIN,
        None,
        &[
            ("identity", None, SU_EMAIL),
            ("password", None, "wrong-one-123"),
        ],
    );
    assert_eq!(
        (st, v["message"].as_str()),
        (400, Some("Failed to authenticate."))
    );

    // A user: the whole JSON body as `@jsonPayload`, with a file part
    // (ignored), and over form values (the payload wins).
    srv.sign_up("form@example.com", PASSWORD);
    let payload = json!({"identity": "form@example.com", "password": PASSWORD}).to_string();
    let (st, v) = send_multipart(
        &srv,
        "POST",
        USER_LOGIN,
        None,
        &[
            ("identity", None, "someone-else@example.com"),
            ("note", Some("a.txt"), "file content"),
            ("@jsonPayload", None, &payload),
        ],
    );
    assert!(logged_in(st, &v), "@jsonPayload login: {st} {v}");
    // Repeated keys: a text field takes the first value.
    let (st, v) = send_urlencoded(
        &srv,
        "POST",
        USER_LOGIN,
        None,
        &[
            ("identity", "form@example.com"),
            ("identity", "other@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert!(logged_in(st, &v), "first value: {st} {v}");
    let (st, _) = send_urlencoded(
        &srv,
        "POST",
        USER_LOGIN,
        None,
        &[
            ("identity", "other@example.com"),
            ("identity", "form@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(st, 400, "the second value is not used");
    // Go's form: query values come after a urlencoded body's, before a
    // multipart body's.
    let q = format!("{USER_LOGIN}?identity=form%40example.com");
    let (st, v) = send_urlencoded(&srv, "POST", &q, None, &[("password", PASSWORD)]);
    assert!(logged_in(st, &v), "identity from the query: {st} {v}");
    let wrong_q = format!("{USER_LOGIN}?identity=other%40example.com");
    let (st, v) = send_urlencoded(
        &srv,
        "POST",
        &wrong_q,
        None,
        &[("identity", "form@example.com"), ("password", PASSWORD)],
    );
    assert!(
        logged_in(st, &v),
        "a urlencoded body's value first: {st} {v}"
    );
    let (st, _) = send_multipart(
        &srv,
        "POST",
        &wrong_q,
        None,
        &[
            ("identity", None, "form@example.com"),
            ("password", None, PASSWORD),
        ],
    );
    assert_eq!(st, 400, "a multipart body's value after the query's");

    // A bad payload, a payload that isn't an object, a broken multipart
    // body: PocketBase's loading error.
    let loading = "An error occurred while loading the submitted data.";
    for parts in [
        vec![("@jsonPayload", None, "{\"identity\":")],
        vec![("@jsonPayload", None, "[1]")],
        vec![("@jsonPayload", None, "{} trailing")],
    ] {
        let (st, v) = send_multipart(&srv, "POST", USER_LOGIN, None, &parts);
        assert_eq!(
            (st, v["message"].as_str()),
            (400, Some(loading)),
            "{parts:?}"
        );
    }
    let r = srv.raw(
        "POST",
        USER_LOGIN,
        &[("Content-Type", "multipart/form-data; boundary=xyz")],
        Some(b"garbage"),
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (400, Some(loading))
    );
    // `null` empties what the form set.
    let (st, v) = send_multipart(
        &srv,
        "POST",
        USER_LOGIN,
        None,
        &[
            ("identity", None, "form@example.com"),
            ("password", None, PASSWORD),
            ("@jsonPayload", None, "null"),
        ],
    );
    assert_eq!(st, 400);
    assert_eq!(v["data"]["identity"]["code"], "validation_required", "{v}");
}

#[test]
fn form_values_are_typed_as_pocketbase_types_them() {
    let srv = TestServer::start();
    let (uid, _) = srv.sign_up("typed@example.com", PASSWORD);
    let su = srv.superuser_token();
    let path = format!("/api/collections/users/impersonate/{uid}");
    // `duration` is a Go int64: ParseInt with base prefixes; "" is 0.
    let lifetime = |v: &Value| -> i64 {
        let t = v["token"].as_str().expect("token");
        let p = t.split('.').nth(1).expect("payload");
        use base64::Engine;
        let c: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .expect("b64"),
        )
        .expect("claims");
        c["exp"].as_i64().expect("exp") - chrono_now()
    };
    for (given, want) in [("3600", 3600), ("0x10", 16), ("1_000", 1000), ("+9", 9)] {
        let (st, v) = send_multipart(&srv, "POST", &path, Some(&su), &[("duration", None, given)]);
        assert_eq!(st, 200, "{given}: {v}");
        let got = lifetime(&v);
        assert!((want - 2..=want).contains(&got), "{given}: {got}");
    }
    for bad in ["abc", "1.5", "08"] {
        let (st, v) = send_urlencoded(&srv, "POST", &path, Some(&su), &[("duration", bad)]);
        assert_eq!(
            (st, v["message"].as_str()),
            (
                400,
                Some("An error occurred while loading the submitted data.")
            ),
            "{bad}"
        );
    }
    // The JSON payload keeps its JSON types: a string is not an int64.
    let (st, _) = send_multipart(
        &srv,
        "POST",
        &path,
        Some(&su),
        &[("@jsonPayload", None, "{\"duration\":\"300\"}")],
    );
    assert_eq!(st, 400);

    // Settings bind into the settings: dotted keys, typed by the field;
    // a list takes every value.
    let (st, v) = send_multipart(
        &srv,
        "PATCH",
        "/api/settings",
        Some(&su),
        &[
            ("meta.appName", None, "Form App"),
            ("smtp.port", None, "2526"),
            ("batch.enabled", None, "1"),
            ("trustedProxy.headers", None, "X-Real-IP"),
            ("trustedProxy.headers", None, "X-Forwarded-For"),
        ],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["meta"]["appName"], "Form App");
    assert_eq!(v["smtp"]["port"], 2526);
    assert_eq!(v["batch"]["enabled"], true);
    assert_eq!(
        v["trustedProxy"]["headers"],
        json!(["X-Real-IP", "X-Forwarded-For"])
    );
    let (st, _) = send_urlencoded(
        &srv,
        "PATCH",
        "/api/settings",
        Some(&su),
        &[("smtp.port", "abc")],
    );
    assert_eq!(st, 400);

    // The JSON depth limit holds inside a form too.
    let deep = format!("{{\"identity\": {}{}}}", "[".repeat(80), "]".repeat(80));
    let (st, _) = send_multipart(
        &srv,
        "POST",
        USER_LOGIN,
        None,
        &[("@jsonPayload", None, &deep)],
    );
    assert_eq!(st, 400);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn a_realtime_subscription_can_be_a_form() {
    if is_reference() {
        // The harness reads the event stream of keepd's tests only.
        return;
    }
    let srv = TestServer::start();
    let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    // The first event carries the client id.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let client = loop {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "stream closed");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(i) = text.find("\"clientId\":\"") {
            let rest = &text[i + 12..];
            if let Some(j) = rest.find('"') {
                break rest[..j].to_string();
            }
        }
    };
    let (st, v) = send_multipart(
        &srv,
        "POST",
        "/api/realtime",
        None,
        &[
            ("clientId", None, &client),
            ("subscriptions", None, "users/*"),
            ("subscriptions", None, "users/abc"),
        ],
    );
    assert_eq!(st, 204, "{v}");
    // Every value of a repeated key is a topic: the third one, too long,
    // is refused by its index.
    let long = "x".repeat(600);
    let (st, v) = send_urlencoded(
        &srv,
        "POST",
        "/api/realtime",
        None,
        &[
            ("clientId", &client),
            ("subscriptions", "users/*"),
            ("subscriptions", "users/abc"),
            ("subscriptions", &long),
        ],
    );
    assert_eq!(st, 400, "{v}");
    assert!(v["data"]["subscriptions"]["2"].is_object(), "{v}");
}

/// A panicking handler: the request gets PocketBase's 500 and the same
/// daemon — the same connection, even — serves the next request.
#[test]
#[cfg_attr(
    not(feature = "panic-test"),
    ignore = "needs the panic-test route: cargo test --features panic-test"
)]
fn a_panic_in_a_request_is_a_500_and_the_daemon_goes_on() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::start();
    let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /api/__panic HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let r = read_response(&mut s).expect("an answer to the panicking request");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"status": 500, "message": "Something went wrong while processing your request.", "data": {}})
    );
    // The same keep-alive connection, then a new one.
    s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let r = read_response(&mut s).expect("the next request on the connection");
    assert_eq!(r.status, 200);
    assert_eq!(srv.guest().get("/api/health").0, 200);
    assert!(srv.is_running());
    assert!(
        srv.output().contains("panicked"),
        "the panic is logged:\n{}",
        srv.output()
    );
}

/// A panic inside a read (reader pool) or a write (the writer thread) is
/// that request's 500 too; the pool keeps its connections and the writer
/// its thread: reads and writes go on (more panics than the pool has
/// readers).
#[test]
#[cfg_attr(
    not(feature = "panic-test"),
    ignore = "needs the panic-test route: cargo test --features panic-test"
)]
fn a_panic_in_a_read_or_a_write_leaves_the_store_working() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::builder().env("KEEPD_READERS", "2").start();
    srv.create_collection(&json!({"name": "notes", "type": "base",
        "listRule": "", "createRule": "", "fields": [{"name": "t", "type": "text"}]}));
    for round in 0..5 {
        for place in ["read", "write"] {
            let r = srv.raw("GET", &format!("/api/__panic?in={place}"), &[], None);
            assert_eq!(r.status, 500, "{place} {round}");
            assert_eq!(
                r.json()["message"],
                "Something went wrong while processing your request."
            );
        }
        let (st, v) = srv.guest().post(
            "/api/collections/notes/records",
            &json!({"t": format!("n{round}")}),
        );
        assert_eq!(st, 200, "a write after panics: {v}");
        let (st, v) = srv.guest().list("notes", &[("perPage", "1")]);
        assert_eq!(st, 200, "a read after panics: {v}");
        assert_eq!(v["totalItems"], round + 1);
    }
    assert!(srv.is_running());
}

/// The panic route exists only in test builds.
#[test]
#[cfg_attr(feature = "panic-test", ignore = "this build has the panic-test route")]
fn the_shipped_binary_has_no_panic_route() {
    let srv = TestServer::start();
    assert_eq!(srv.guest().get("/api/__panic").0, 404);
}

#[test]
fn superuser_ips_limit_where_superusers_are_served_from() {
    let srv = TestServer::start();
    let su_tok = srv.superuser_token();
    let su = srv.with_token(&su_tok);
    let (_, user_tok) = srv.sign_up("ips@example.com", PASSWORD);
    // Entries are IPs or CIDR subnets.
    let (st, v) = su.patch(
        "/api/settings",
        &json!({"superuserIPs": ["nope", "10.0.0.0/8", ""]}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["superuserIPs"],
        json!({
            "0": {"code": "validation_invlaid_ip_or_subnet", "message": "Invalid IP or CIDR subnet."},
            "2": {"code": "validation_required", "message": "Cannot be blank."},
        })
    );
    // A file token, before the list shuts this address out.
    let (st, v) = su.post("/api/files/token", &json!({}));
    assert_eq!(st, 200, "{v}");
    let file_tok = v["token"].as_str().expect("file token").to_string();
    let (st, v) = su.patch("/api/settings", &json!({"superuserIPs": ["10.0.0.1"]}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["superuserIPs"], json!(["10.0.0.1"]));

    let refused = json!({"status": 403, "message": "You are not allowed to perform this request.", "data": {}});
    // Every route, a route or not, refuses a superuser from here.
    for path in [
        "/api/health",
        "/api/collections",
        "/api/settings",
        "/api/collections/users/records",
        "/api/no-such-route",
    ] {
        assert_eq!(su.get(path), (403, refused.clone()), "{path}");
    }
    let (st, v) = su.post("/api/collections/_superusers/auth-refresh", &json!({}));
    assert_eq!((st, &v), (403, &refused));
    // The login itself: a right password is refused, a wrong one is the
    // usual failure (nothing said about the list).
    let (st, v) = srv.guest().post(
        SU_LOGIN,
        &json!({"identity": SU_EMAIL, "password": SU_PASSWORD}),
    );
    assert_eq!((st, &v), (403, &refused));
    let (st, v) = srv.guest().post(
        SU_LOGIN,
        &json!({"identity": SU_EMAIL, "password": "wrong-password-1"}),
    );
    assert_eq!(
        (st, v["message"].as_str()),
        (400, Some("Failed to authenticate."))
    );
    // A superuser file token doesn't open a backup download.
    let (st, v) = srv
        .guest()
        .get(&format!("/api/backups/any.zip?token={file_tok}"));
    assert_eq!(
        (st, v["message"].as_str()),
        (
            403,
            Some("Insufficient permissions to access the resource.")
        )
    );
    // Guests and users are served as before.
    let (st, _) = srv.guest().get("/api/health");
    assert_eq!(st, 200);
    assert_eq!(srv.with_token(&user_tok).get("/api/health").0, 200);
    let (st, v) = srv.guest().post(
        USER_LOGIN,
        &json!({"identity": "ips@example.com", "password": PASSWORD}),
    );
    assert!(logged_in(st, &v), "{st} {v}");
    // An invalid token is no token.
    let r = srv.raw("GET", "/api/health", &[("Authorization", "nope")], None);
    assert_eq!(r.status, 200);
}

#[test]
fn superuser_ips_judge_the_address_a_trusted_proxy_forwarded() {
    if is_reference() {
        // PocketBase believes the proxy headers of any peer; keepd only
        // those of `trusted_proxies` (COMPATIBILITY.md).
        return;
    }
    let allowed = "203.0.113.5";
    for trusted in [true, false] {
        let mut b = TestServer::builder();
        if trusted {
            b = b.env("KEEPD_TRUSTED_PROXIES", "127.0.0.1");
        }
        let srv = b.start();
        let tok = srv.superuser_token();
        let su = srv.with_token(&tok);
        let (st, v) = su.patch(
            "/api/settings",
            &json!({"superuserIPs": [format!("{allowed}/32"), "198.51.100.0/24"]}),
        );
        assert_eq!(st, 200, "{v}");
        let get = |xff: Option<&str>| {
            let mut h = vec![("Authorization", tok.as_str())];
            if let Some(x) = xff {
                h.push(("X-Forwarded-For", x));
            }
            srv.raw("GET", "/api/collections", &h, None).status
        };
        assert_eq!(get(None), 403, "the proxy's own address is not listed");
        let want = if trusted { 200 } else { 403 };
        assert_eq!(get(Some(allowed)), want, "trusted proxy: {trusted}");
        assert_eq!(get(Some("198.51.100.77")), want, "a listed subnet");
        assert_eq!(get(Some("192.0.2.1")), 403);
    }
}

#[test]
fn unclean_paths_never_redirect_to_another_host() {
    let srv = TestServer::start();
    let cases = [
        ("/\\/evil.example//api", "/%5C/evil.example/api"),
        ("/\\\\/evil.example//api", "/%5C%5C/evil.example/api"),
        ("//evil.example/api", "/evil.example/api"),
        ("/api//health?x=1", "/api/health?x=1"),
        ("/api/x/..//health", "/api/health"),
    ];
    for (path, want) in cases {
        let r = srv.raw("GET", path, &[], None);
        assert_eq!(r.status, 307, "{path}");
        let loc = r.header("location").expect("location");
        assert_eq!(loc, want, "{path}");
        assert!(
            !loc.starts_with("//") && !loc.starts_with("/\\"),
            "{path} → {loc}"
        );
    }
}

/// `http/` is a generic server: none of its modules names the
/// application's (the routes and per-request decisions are handed to it
/// by `lib::run`), and no module outside it names hyper.
#[test]
fn http_imports_nothing_of_the_application() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "crate::api",
        "crate::app",
        "crate::records",
        "crate::schema",
        "crate::store",
        "crate::rules",
        "crate::realtime",
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(src.join("http")).expect("src/http") {
        let p = entry.expect("entry").path();
        let text = std::fs::read_to_string(&p).expect("read");
        for f in forbidden {
            assert!(!text.contains(f), "{} names {f}", p.display());
        }
        seen += 1;
    }
    assert!(seen >= 5, "read {seen} files of src/http");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                if p != src.join("http") {
                    stack.push(p);
                }
                continue;
            }
            if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).expect("read");
                assert!(
                    !text.contains("hyper::"),
                    "{} names hyper (only http/ knows it)",
                    p.display()
                );
            }
        }
    }
}
