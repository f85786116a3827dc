//! The admin listener (`admin_http`): when set, the console (`/_/…`) and
//! every superuser surface answer only there; the public listener serves
//! users as before. Also the superuser-only operations the console calls
//! (`DELETE /api/logs`, `/api/rules/check`, `/api/rules/test`,
//! `/api/totp/{collection}/{recordId}`).

use crate::common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// A server with an admin listener on an ephemeral loopback port, and
/// that listener's address.
fn with_admin() -> (TestServer, SocketAddr) {
    let srv = TestServer::builder()
        .arg("--admin-http")
        .arg("127.0.0.1:0")
        .start();
    let out = srv.output();
    let marker = "keepd admin listening on http://";
    let addr = out
        .lines()
        .find_map(|l| {
            l.find(marker)
                .map(|i| l[i + marker.len()..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no admin listener line:\n{out}"));
    (srv, addr.parse().expect("admin address"))
}

fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Resp {
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    let b = body.map(|b| b.to_string().into_bytes());
    raw_at(addr, method, path, &headers, b.as_deref()).expect("request")
}

fn su_sign_in(addr: SocketAddr) -> Resp {
    call(
        addr,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        None,
        Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD})),
    )
}

#[test]
fn superusers_and_the_console_answer_only_on_the_admin_listener() {
    if is_reference() {
        return;
    }
    let (srv, admin) = with_admin();
    let public = srv.addr;

    // Superuser sign-in: refused on the public port, as a superuser
    // outside `superuserIPs` is; served on the admin port.
    let r = su_sign_in(public);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_error_shape(&r.json(), 403, "public superuser sign-in");
    let r = su_sign_in(admin);
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();

    // Every other route of `_superusers` too (by name and by id), before
    // anything is looked up.
    let r = call(
        public,
        "POST",
        "/api/collections/_superusers/request-otp",
        None,
        Some(&json!({"email": SU_EMAIL})),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(
        admin,
        "GET",
        "/api/collections/_superusers",
        Some(&token),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let su_id = r.json()["id"].as_str().expect("id").to_string();
    let r = call(
        public,
        "POST",
        &format!("/api/collections/{su_id}/auth-with-password"),
        None,
        Some(&json!({"identity": SU_EMAIL, "password": SU_PASSWORD})),
    );
    assert_eq!(r.status, 403, "{}", r.text());

    // A superuser token is refused on the public port, served on the admin one.
    for path in ["/api/collections", "/api/settings", "/api/logs"] {
        let r = call(public, "GET", path, Some(&token), None);
        assert_eq!(r.status, 403, "public {path}: {}", r.text());
        let r = call(admin, "GET", path, Some(&token), None);
        assert_eq!(r.status, 200, "admin {path}: {}", r.text());
    }
    // Refreshing a superuser token there is refused too.
    let r = call(
        public,
        "POST",
        "/api/collections/_superusers/auth-refresh",
        Some(&token),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text());

    // The console: 404 on the public port, whatever the path under `/_/`.
    for path in ["/_/", "/_/index.html", "/_/assets/x.js", "/_"] {
        let r = call(public, "GET", path, None, None);
        assert_eq!(r.status, 404, "public {path}: {}", r.text());
        let r = call(public, "GET", path, Some(&token), None);
        assert_eq!(r.status, 404, "public {path} with a token: {}", r.text());
    }
    // On the admin port the console is what it is without an admin
    // listener (its routes are the same).
    let plain = TestServer::start();
    for path in ["/_/", "/_"] {
        let want = call(plain.addr, "GET", path, None, None).status;
        let r = call(admin, "GET", path, None, None);
        assert_eq!(r.status, want, "admin {path}: {}", r.text());
    }

    // Users: sign-up, sign-in and records on the public port as ever.
    let (uid, utoken) = srv.sign_up("user@example.com", "user-password-123");
    let r = call(
        public,
        "GET",
        &format!("/api/collections/users/records/{uid}"),
        Some(&utoken),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        public,
        "POST",
        "/api/collections/users/auth-refresh",
        Some(&utoken),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // And on the admin port (the console's API is its own origin).
    let r = call(admin, "GET", "/api/health", None, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        admin,
        "GET",
        &format!("/api/collections/users/records/{uid}"),
        Some(&utoken),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn without_an_admin_listener_nothing_changes() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    assert!(!srv.output().contains("keepd admin listening"));
    let r = su_sign_in(srv.addr);
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["token"].as_str().expect("token").to_string();
    let r = call(srv.addr, "GET", "/api/collections", Some(&token), None);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn admin_http_is_checked() {
    if is_reference() {
        return;
    }
    let root = TempRoot::new("admincfg");
    let out = serve_once(
        &root.path.join("data"),
        &["--http", "127.0.0.1:0", "--admin-http", "nowhere"],
        &[],
        std::time::Duration::from_secs(20),
    );
    assert!(out.failed(), "{}", out.stderr);
    assert!(out.stderr.contains("admin_http"), "{}", out.stderr);
}
