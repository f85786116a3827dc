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
    let addr = admin_of(&srv);
    (srv, addr)
}

/// The admin listener's address, from the line keepd prints.
fn admin_of(srv: &TestServer) -> SocketAddr {
    let out = srv.output();
    let marker = "keepd admin listening on http://";
    let addr = out
        .lines()
        .find_map(|l| {
            l.find(marker)
                .map(|i| l[i + marker.len()..].trim().to_string())
        })
        .unwrap_or_else(|| panic!("no admin listener line:\n{out}"));
    addr.parse().expect("admin address")
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
fn both_listeners_share_the_connection_budgets() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_MAX_CONNECTIONS_PER_IP", "2")
        .arg("--admin-http")
        .arg("127.0.0.1:0")
        .start();
    let admin = admin_of(&srv);
    // Two idle connections to one listener take this address's slots, so
    // the other listener turns the next connection away (a slot freed by
    // an earlier round may still be in use for a moment: tried again).
    let refused = |hold: SocketAddr, ask: SocketAddr| {
        (0..20).any(|_| {
            let held: Vec<std::net::TcpStream> = (0..2)
                .map(|_| std::net::TcpStream::connect(hold).expect("connect"))
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(100));
            let status = call(ask, "GET", "/api/health", None, None).status;
            drop(held);
            std::thread::sleep(std::time::Duration::from_millis(100));
            status == 429
        })
    };
    assert!(
        refused(admin, srv.addr),
        "admin connections don't count on the public listener"
    );
    assert!(
        refused(srv.addr, admin),
        "public connections don't count on the admin listener"
    );
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

/// `notes` (owner, title) with the list rule under test, and two users:
/// (user 1 id, user 1 token, user 2 id, note ids: two of user 1, one of user 2).
fn notes(srv: &TestServer) -> (String, String, String, Vec<String>) {
    srv.create_collection(&json!({
        "name": "notes",
        "type": "base",
        "listRule": "@request.auth.id != \"\" && owner = @request.auth.id",
        "fields": [
            {"name": "owner", "type": "text"},
            {"name": "title", "type": "text"},
        ],
    }));
    let (u1, t1) = srv.sign_up("one@example.com", "user-password-123");
    let (u2, _) = srv.sign_up("two@example.com", "user-password-123");
    let mut ids = Vec::new();
    for (owner, title) in [(&u1, "apple"), (&u1, "banana"), (&u2, "cherry")] {
        let (st, v) = srv.su().post(
            "/api/collections/notes/records",
            &json!({"owner": owner, "title": title}),
        );
        assert_eq!(st, 200, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    (u1, t1, u2, ids)
}

#[test]
fn a_rule_is_checked_with_the_compiler_a_save_uses() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (_, user, _, _) = notes(&srv);
    let su = srv.su();
    let ok = json!({"collection": "notes", "rule": "owner = @request.auth.id && title ~ 'a'"});
    assert_eq!(su.post("/api/rules/check", &ok).0, 204);
    assert_eq!(
        su.post(
            "/api/rules/check",
            &json!({"collection": "notes", "rule": ""})
        )
        .0,
        204
    );
    // By id too.
    let (_, c) = su.get("/api/collections/notes");
    let by_id = json!({"collection": c["id"], "rule": "title = 'x'"});
    assert_eq!(su.post("/api/rules/check", &by_id).0, 204);

    // A syntax error: where the parser stopped.
    let (st, v) = su.post(
        "/api/rules/check",
        &json!({"collection": "notes", "rule": "title = 'x' &&"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_error_shape(&v, 400, "rules/check");
    assert_eq!(v["data"]["rule"]["code"], "validation_invalid_rule", "{v}");
    let m = v["data"]["rule"]["message"].as_str().expect("message");
    assert!(m.contains("at character"), "{m}");
    // An unknown field: the message a collection save gives, and the name.
    let bad = "nope = 1";
    let (st, v) = su.post(
        "/api/rules/check",
        &json!({"collection": "notes", "rule": bad}),
    );
    assert_eq!(st, 400, "{v}");
    let m = v["data"]["rule"]["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(m.contains("nope"), "{m}");
    let (st, saved) = su.patch("/api/collections/notes", &json!({"listRule": bad}));
    assert_eq!(st, 400, "{saved}");
    assert_eq!(saved["data"]["listRule"]["message"], json!(m), "{saved}");

    // Refused: no such collection, no rule, not a superuser.
    let (st, _) = su.post(
        "/api/rules/check",
        &json!({"collection": "nope", "rule": ""}),
    );
    assert_eq!(st, 404);
    let (st, v) = su.post("/api/rules/check", &json!({"collection": "notes"}));
    assert_eq!(
        (st, &v["data"]["rule"]["code"]),
        (400, &json!("validation_required"))
    );
    assert_eq!(srv.with_token(&user).post("/api/rules/check", &ok).0, 403);
    assert_eq!(srv.guest().post("/api/rules/check", &ok).0, 401);
}

#[test]
fn the_rule_tester_answers_as_the_chosen_principal() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (u1, t1, _u2, ids) = notes(&srv);
    let su = srv.su();
    let test = |body: Value| {
        let (st, v) = su.post("/api/rules/test", &body);
        assert_eq!(st, 200, "{body}: {v}");
        v
    };
    let saved = "@request.auth.id != \"\" && owner = @request.auth.id";
    let as_user = json!({"collection": "users", "id": u1});

    // A guest gets nothing; the clauses say why.
    let v = test(json!({"collection": "notes", "kind": "list", "recordId": ids[0]}));
    assert_eq!(v["rule"], saved);
    assert_eq!(
        (v["locked"].clone(), v["request"].clone()),
        (json!(false), json!("empty"))
    );
    assert_eq!(v["totalItems"], 0, "{v}");
    assert_eq!(
        v["record"],
        json!({"id": ids[0], "allowed": false, "clauses": [
            {"expr": "@request.auth.id != ''", "result": false},
            {"expr": "owner = @request.auth.id", "result": false},
        ]})
    );

    // User 1 gets their two notes, rendered as the list API renders them
    // for that user.
    let v =
        test(json!({"collection": "notes", "kind": "list", "auth": as_user, "recordId": ids[2]}));
    assert_eq!(v["totalItems"], 2, "{v}");
    let (st, api) = srv.with_token(&t1).list("notes", &[]);
    assert_eq!(st, 200, "{api}");
    assert_eq!(v["items"], api["items"]);
    // Their own note passes; another's fails on the second clause.
    assert_eq!(
        v["record"],
        json!({"id": ids[2], "allowed": false, "clauses": [
            {"expr": "@request.auth.id != ''", "result": true},
            {"expr": "owner = @request.auth.id", "result": false},
        ]})
    );
    let v =
        test(json!({"collection": "notes", "kind": "list", "auth": as_user, "recordId": ids[0]}));
    assert_eq!(v["record"]["allowed"], true, "{v}");
    // A filter narrows what the rule gives, as on the list API.
    let v = test(
        json!({"collection": "notes", "kind": "list", "auth": as_user,
        "filter": "title = 'banana'"}),
    );
    assert_eq!(ids_of(&v), vec![ids[1].clone()]);

    // An unsaved candidate rule: answered, and nothing saved.
    let v = test(
        json!({"collection": "notes", "kind": "list", "rule": "title ~ 'an'",
        "recordId": ids[2]}),
    );
    assert_eq!(v["totalItems"], 1, "{v}");
    assert_eq!(ids_of(&v), vec![ids[1].clone()]);
    assert_eq!(v["record"]["allowed"], false);
    assert_eq!(
        v["record"]["clauses"],
        json!([{"expr": "title ~ 'an'", "result": false}])
    );
    let (_, c) = su.get("/api/collections/notes");
    assert_eq!(c["listRule"], saved);
    // perPage is capped at 100 and pages as the list API does.
    let v =
        test(json!({"collection": "notes", "kind": "list", "rule": "", "perPage": 2, "page": 2}));
    assert_eq!((v["totalItems"].clone(), ids_of(&v).len()), (json!(3), 1));

    // A locked rule (null: superusers only): nobody else gets anything. The
    // saved view rule of `notes` is null.
    let v =
        test(json!({"collection": "notes", "kind": "view", "auth": as_user, "recordId": ids[0]}));
    assert_eq!(
        (v["rule"].clone(), v["locked"].clone()),
        (Value::Null, json!(true))
    );
    assert_eq!(v["totalItems"], 0);
    assert_eq!(
        v["record"],
        json!({"id": ids[0], "allowed": false, "clauses": []})
    );
    let v = test(json!({"collection": "notes", "kind": "list", "rule": null}));
    assert_eq!(
        (v["locked"].clone(), v["totalItems"].clone()),
        (json!(true), json!(0))
    );
    // A view rule: the records the principal may open.
    let v = test(
        json!({"collection": "notes", "kind": "view", "auth": as_user,
        "rule": "owner = @request.auth.id", "recordId": ids[0]}),
    );
    assert_eq!(v["totalItems"], 2, "{v}");
    assert_eq!(v["record"]["allowed"], true);

    // Refused: a bad rule, a bad kind, an unknown record or principal.
    let (st, v) = su.post(
        "/api/rules/test",
        &json!({"collection": "notes", "kind": "list",
        "rule": "owner = "}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["rule"]["code"], "validation_invalid_rule");
    let (st, _) = su.post(
        "/api/rules/test",
        &json!({"collection": "notes", "kind": "create"}),
    );
    assert_eq!(st, 400);
    let (st, _) = su.post(
        "/api/rules/test",
        &json!({"collection": "notes", "kind": "list",
        "recordId": "nosuchrecord123"}),
    );
    assert_eq!(st, 404);
    let (st, _) = su.post(
        "/api/rules/test",
        &json!({"collection": "notes", "kind": "list",
        "auth": {"collection": "users", "id": "nosuchrecord123"}}),
    );
    assert_eq!(st, 404);
    let (st, _) = srv.with_token(&t1).post(
        "/api/rules/test",
        &json!({"collection": "notes", "kind": "list"}),
    );
    assert_eq!(st, 403);

    // Audited.
    let (_, a) = su.get("/api/audit?action=rules.test&perPage=100");
    assert!(a["items"].as_array().map_or(0, Vec::len) >= 8, "{a}");
    assert_eq!(a["items"][0]["target"], "notes/view", "{a}");
}

fn ids_of(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}
