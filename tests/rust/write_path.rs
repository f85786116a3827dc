//! The record write path against an attacker: every way in (direct JSON,
//! multipart, batch) goes through the same checks. Each test here guards a
//! hole an outside review found: modifier keys dodging `@request.body`
//! guards, hidden fields written by guests, a failed create deleting
//! another record's files, batch skipping the password policy, unique
//! values leaking to callers the create rule refuses, tokenKey rotation,
//! and unbounded back-relation expands.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn enable_batch(srv: &TestServer) {
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"batch": {"enabled": true, "maxRequests": 50}}),
    );
    assert_eq!(st, 200, "enable batch: {v}");
}

/// One request through `/api/batch`: (outer status, inner status or the
/// batch error's inner response).
fn batch_one(c: &Client<'_>, method: &str, url: &str, body: &Value) -> (u16, Value) {
    c.post(
        "/api/batch",
        &json!({"requests": [{"method": method, "url": url, "body": body}]}),
    )
}

/// A multipart request of plain form values.
fn form(
    srv: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    fields: &[(&str, &str)],
) -> Resp {
    let parts: Vec<(&str, Option<&str>, &[u8])> = fields
        .iter()
        .map(|(k, v)| (*k, None, v.as_bytes()))
        .collect();
    let (ct, body) = multipart(&parts);
    let mut headers = vec![("Content-Type", ct.as_str())];
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    srv.raw(method, path, &headers, Some(&body))
}

#[test]
fn modifier_keys_cannot_dodge_body_guards() {
    let srv = TestServer::start();
    enable_batch(&srv);
    srv.create_collection(&json!({
        "name": "wallets", "type": "base", "listRule": "", "viewRule": "",
        "updateRule": "owner = @request.auth.id && @request.body.credits:isset = false && @request.body.owner:isset = false && @request.body.tags:isset = false",
        "fields": [
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
            {"name": "credits", "type": "number"},
            {"name": "tags", "type": "select", "values": ["user", "admin"], "maxSelect": 2},
            {"name": "note", "type": "text"}
        ]
    }));
    let (uid, tok) = srv.sign_up("owner@example.com", "a-Long-pass-123");
    let (other, _) = srv.sign_up("other@example.com", "a-Long-pass-456");
    let (st, w) = srv.su().post(
        "/api/collections/wallets/records",
        &json!({"owner": uid, "credits": 5, "tags": ["user"]}),
    );
    assert_eq!(st, 200, "{w}");
    let wid = w["id"].as_str().expect("id").to_string();
    let url = format!("/api/collections/wallets/records/{wid}");
    let user = srv.with_token(&tok);
    let attacks = [
        json!({"credits": 1}),
        json!({"credits+": 1000000}),
        json!({"credits-": 3}),
        json!({"+tags": ["admin"]}),
        json!({"tags+": "admin"}),
        json!({"owner+": other}),
        json!({"owner-": uid}),
        json!({"note": "x", "credits+": 1}),
    ];
    for body in &attacks {
        let (st, v) = user.patch(&url, body);
        assert_eq!(st, 404, "direct {body}: {v}");
        let fields: Vec<(String, String)> = body
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a[0].as_str().unwrap_or_default().to_string(),
                    other => other.to_string(),
                };
                (k.clone(), s)
            })
            .collect();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = form(&srv, "PATCH", &url, Some(&tok), &pairs);
        assert_eq!(r.status, 404, "multipart {body}: {}", r.text());
        let (st, v) = batch_one(&user, "PATCH", &url, body);
        assert_eq!(st, 400, "batch {body}: {v}");
        assert_eq!(
            v["data"]["requests"]["0"]["response"]["status"], 404,
            "batch {body}: {v}"
        );
    }
    // What the rule allows still works (the rule is not simply failing).
    let (st, v) = user.patch(&url, &json!({"note": "mine"}));
    assert_eq!(st, 200, "{v}");
    let (_, now) = srv.su().get(&url);
    assert_eq!(now["credits"], 5, "{now}");
    assert_eq!(now["tags"], json!(["user"]), "{now}");
    assert_eq!(now["owner"], uid, "{now}");
    assert_eq!(now["note"], "mine", "{now}");
}

#[test]
fn hidden_fields_are_not_writable_by_non_superusers() {
    let srv = TestServer::start();
    enable_batch(&srv);
    let (_, users) = srv.su().get("/api/collections/users");
    let mut fields = users["fields"].as_array().expect("fields").clone();
    fields.push(json!({"name": "isAdmin", "type": "bool", "hidden": true}));
    fields.push(json!({"name": "quota", "type": "number", "hidden": true}));
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"fields": fields, "createRule": "", "updateRule": "id = @request.auth.id"}),
    );
    assert_eq!(st, 200, "{v}");
    srv.create_collection(&json!({
        "name": "vault", "type": "base", "listRule": "@request.auth.isAdmin = true",
        "fields": [{"name": "secret", "type": "text"}]
    }));
    srv.su().post(
        "/api/collections/vault/records",
        &json!({"secret": "s3cret"}),
    );
    let pw = "a-Long-pass-123";
    let signup = |email: &str| json!({"email": email, "password": pw, "passwordConfirm": pw, "isAdmin": true, "quota+": 100});
    // Direct JSON, multipart and batch sign-ups.
    let (st, a) = srv
        .guest()
        .post("/api/collections/users/records", &signup("a@example.com"));
    assert_eq!(st, 200, "{a}");
    let r = form(
        &srv,
        "POST",
        "/api/collections/users/records",
        None,
        &[
            ("email", "b@example.com"),
            ("password", pw),
            ("passwordConfirm", pw),
            ("isAdmin", "true"),
            ("quota+", "100"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (st, v) = batch_one(
        &srv.guest(),
        "POST",
        "/api/collections/users/records",
        &signup("c@example.com"),
    );
    assert_eq!(st, 200, "{v}");
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        let (st, l) = srv
            .su()
            .list("users", &[("filter", &format!("email = '{email}'"))]);
        assert_eq!(st, 200);
        let u = &l["items"][0];
        assert_eq!(u["isAdmin"], false, "{email} became admin: {u}");
        assert_eq!(u["quota"], 0, "{email}: {u}");
        let (st, t) = srv.guest().post(
            "/api/collections/users/auth-with-password",
            &json!({"identity": email, "password": pw}),
        );
        assert_eq!(st, 200, "{t}");
        let tok = t["token"].as_str().expect("token");
        let (_, l) = srv.with_token(tok).list("vault", &[]);
        assert_eq!(l["totalItems"], 0, "{email} passed the admin rule: {l}");
        // Nor by updating itself.
        let url = format!(
            "/api/collections/users/records/{}",
            u["id"].as_str().unwrap_or_default()
        );
        let (st, v) = srv.with_token(tok).patch(&url, &json!({"isAdmin": true}));
        assert_eq!(st, 200, "{v}");
        let (st, v) = batch_one(
            &srv.with_token(tok),
            "PATCH",
            &url,
            &json!({"isAdmin": true}),
        );
        assert_eq!(st, 200, "{v}");
        let (_, l) = srv.with_token(tok).list("vault", &[]);
        assert_eq!(l["totalItems"], 0, "{email} became admin by update: {l}");
    }
    // A superuser may set it.
    let aid = a["id"].as_str().expect("id");
    let (st, v) = srv.su().patch(
        &format!("/api/collections/users/records/{aid}"),
        &json!({"isAdmin": true}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["isAdmin"], true, "{v}");
}

#[test]
fn a_failed_create_never_touches_another_records_files() {
    let srv = TestServer::start();
    let coll = srv.create_collection(&json!({
        "name": "docs", "type": "base", "listRule": "", "viewRule": "",
        "createRule": "title != 'deny'",
        "fields": [{"name": "title", "type": "text"}, {"name": "f", "type": "file", "maxSelect": 2, "maxSize": 100000}]
    }));
    let cid = coll["id"].as_str().expect("id").to_string();
    let tok = srv.superuser_token();
    let (ct, body) = multipart(&[
        ("title", None, b"victim"),
        ("f", Some("report.txt"), b"the victim's file"),
    ]);
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[("Authorization", &tok), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let victim: Value = r.json();
    let vid = victim["id"].as_str().expect("id").to_string();
    let vfile = victim["f"][0].as_str().expect("file").to_string();
    let vdir = srv.dir.join("storage").join(&cid).join(&vid);
    assert!(vdir.join(&vfile).is_file());
    // A guest reuses the victim's id, with and without the rule passing.
    for title in ["ok", "deny"] {
        let (ct, body) = multipart(&[
            ("id", None, vid.as_bytes()),
            ("title", None, title.as_bytes()),
            ("f", Some("x.txt"), b"attacker"),
        ]);
        let r = srv.raw(
            "POST",
            "/api/collections/docs/records",
            &[("Content-Type", &ct)],
            Some(&body),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        let entries: Vec<String> = std::fs::read_dir(&vdir)
            .expect("victim dir still there")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            entries,
            vec![vfile.clone()],
            "title {title}: the victim's directory changed"
        );
    }
    let r = srv.raw("GET", &format!("/api/files/{cid}/{vid}/{vfile}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"the victim's file");
    // A create the rule refuses stores nothing at all.
    let (ct, body) = multipart(&[("title", None, b"deny"), ("f", Some("y.txt"), b"nope")]);
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["data"], json!({}), "{}", r.text());
    let dirs: Vec<String> = std::fs::read_dir(srv.dir.join("storage").join(&cid))
        .expect("collection dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, vec![vid.clone()], "a refused create left files");
}

#[test]
fn batch_and_direct_writes_apply_the_password_policy() {
    let srv = TestServer::start();
    enable_batch(&srv);
    let url = "/api/collections/users/records";
    let cases = [
        (
            json!({"email": "p1@example.com", "password": "1", "passwordConfirm": "1"}),
            "validation_min_text_constraint",
        ),
        (
            json!({"email": "p2@example.com", "password": "password123", "passwordConfirm": "password123"}),
            "validation_common_password",
        ),
        (json!({"email": "p3@example.com"}), "validation_required"),
    ];
    for (body, code) in &cases {
        let (st, v) = srv.guest().post(url, body);
        assert_eq!(st, 400, "direct {body}: {v}");
        assert_eq!(v["data"]["password"]["code"], *code, "direct {body}: {v}");
        let (st, v) = batch_one(&srv.guest(), "POST", url, body);
        assert_eq!(st, 400, "batch {body}: {v}");
        let inner = &v["data"]["requests"]["0"]["response"];
        assert_eq!(
            inner["data"]["password"]["code"], *code,
            "batch {body}: {v}"
        );
    }
    let (_, l) = srv.su().list("users", &[]);
    assert_eq!(l["totalItems"], 0, "a refused sign-up was stored: {l}");
    // A user changing its own password must give the old one, everywhere.
    let (uid, tok) = srv.sign_up("me@example.com", "a-Long-pass-123");
    let me = format!("{url}/{uid}");
    let user = srv.with_token(&tok);
    for body in [
        json!({"password": "a", "passwordConfirm": "a"}),
        json!({"password": "Another-pass-987", "passwordConfirm": "Another-pass-987"}),
        json!({"password": "Another-pass-987", "passwordConfirm": "Another-pass-987", "oldPassword": "wrong-password-1"}),
    ] {
        let (st, v) = user.patch(&me, &body);
        assert_eq!(st, 400, "direct {body}: {v}");
        let (st, v) = batch_one(&user, "PATCH", &me, &body);
        assert_eq!(st, 400, "batch {body}: {v}");
    }
    // A confirmation alone asks for a change too (as PocketBase): the new
    // password is missing, the confirmation doesn't match, the old one is owed.
    let lone = json!({"passwordConfirm": "Another-pass-987"});
    let (st, v) = user.patch(&me, &lone);
    assert_eq!(st, 400, "direct {lone}: {v}");
    let (st2, b) = batch_one(&user, "PATCH", &me, &lone);
    assert_eq!(st2, 400, "batch {lone}: {b}");
    for data in [&v["data"], &b["data"]["requests"]["0"]["response"]["data"]] {
        assert_eq!(data["password"]["code"], "validation_required", "{v} {b}");
        assert_eq!(
            data["passwordConfirm"]["code"], "validation_values_mismatch",
            "{v} {b}"
        );
        assert_eq!(
            data["oldPassword"]["code"], "validation_required",
            "{v} {b}"
        );
    }
    let login = |pw: &str| {
        srv.guest()
            .post(
                "/api/collections/users/auth-with-password",
                &json!({"identity": "me@example.com", "password": pw}),
            )
            .0
    };
    assert_eq!(login("a-Long-pass-123"), 200, "the password changed");
    let (st, v) = batch_one(
        &user,
        "PATCH",
        &me,
        &json!({"password": "Another-pass-987", "passwordConfirm": "Another-pass-987", "oldPassword": "a-Long-pass-123"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(login("Another-pass-987"), 200);
}

#[test]
fn passwords_are_hashed_only_for_authorized_writes() {
    // Slow hashing (each hash well over 100 ms) makes the difference plain:
    // a batch of sign-ups the create rule refuses must not pay for them.
    let srv = TestServer::builder()
        .env("KEEPD_ARGON2_ITERATIONS", "80")
        .env("KEEPD_MAX_CONCURRENT_HASHES", "1")
        .start();
    enable_batch(&srv);
    srv.create_collection(&json!({
        "name": "members", "type": "auth", "createRule": "@request.body.name = 'ok'",
        "fields": [{"name": "name", "type": "text"}],
        "passwordAuth": {"enabled": true, "identityFields": ["email"]}
    }));
    let url = "/api/collections/members/records";
    let signup = |i: usize, name: &str| json!({"email": format!("m{i}@example.com"), "password": "a-Long-pass-123", "passwordConfirm": "a-Long-pass-123", "name": name});
    let t = Instant::now();
    let (st, v) = srv.guest().post(url, &signup(0, "ok"));
    let one = t.elapsed();
    assert_eq!(st, 200, "{v}");
    assert!(
        one > Duration::from_millis(100),
        "hashing is too fast to tell: {one:?}"
    );
    let reqs: Vec<Value> = (1..=20)
        .map(|i| json!({"method": "POST", "url": url, "body": signup(i, "no")}))
        .collect();
    let t = Instant::now();
    let (st, v) = srv.guest().post("/api/batch", &json!({"requests": reqs}));
    let refused = t.elapsed();
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["requests"]["0"]["response"]["data"],
        json!({}),
        "{v}"
    );
    assert!(
        refused < one * 3,
        "a refused batch of 20 sign-ups took {refused:?} (one hash: {one:?})"
    );
}

#[test]
fn superuser_cli_applies_the_password_policy() {
    let srv = TestServer::start();
    let dir = srv.dir.to_string_lossy().into_owned();
    for bad in ["test1234", "short", "password123"] {
        let out = keepd_cmd()
            .args(["superuser", "upsert", "ops@example.com", bad, "--dir", &dir])
            .output()
            .expect("run keepd");
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("password"), "{bad}: {err}");
    }
    let out = keepd_cmd()
        .args([
            "superuser",
            "upsert",
            "ops@example.com",
            "a-Good-ops-pass-42",
            "--dir",
            &dir,
        ])
        .output()
        .expect("run keepd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, v) = srv.guest().post(
        "/api/collections/_superusers/auth-with-password",
        &json!({"identity": "ops@example.com", "password": "a-Good-ops-pass-42"}),
    );
    assert_eq!(st, 200, "{v}");
    // Deleting goes through the same domain (its sessions end with it).
    let tok = v["token"].as_str().expect("token").to_string();
    let out = keepd_cmd()
        .args(["superuser", "delete", "OPS@example.com", "--dir", &dir])
        .output()
        .expect("run keepd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, _) = srv.with_token(&tok).get("/api/collections");
    assert_eq!(st, 401, "the deleted superuser's token still works");
    let out = keepd_cmd()
        .args(["superuser", "delete", "ops@example.com", "--dir", &dir])
        .output()
        .expect("run keepd");
    assert!(
        !out.status.success(),
        "deleting a missing superuser succeeded"
    );
}

#[test]
fn the_create_rule_is_checked_before_uniqueness() {
    let srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "codes", "type": "base", "listRule": "", "viewRule": "", "createRule": "title != 'deny'",
        "indexes": ["CREATE UNIQUE INDEX idx_codes_code ON codes (code)"],
        "fields": [{"name": "title", "type": "text"}, {"name": "code", "type": "text"}]
    }));
    let url = "/api/collections/codes/records";
    let (st, v) = srv
        .su()
        .post(url, &json!({"title": "x", "code": "SECRET-1"}));
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    for (body, data) in [
        (json!({"title": "deny", "code": "SECRET-1"}), json!({})),
        (json!({"title": "deny", "id": id}), json!({})),
        (
            json!({"title": "ok", "code": "SECRET-1"}),
            json!({"code": {"code": "validation_not_unique", "message": "Value must be unique."}}),
        ),
        (
            json!({"title": "ok", "id": id}),
            json!({"id": {"code": "validation_not_unique", "message": "Value must be unique."}}),
        ),
    ] {
        let (st, v) = srv.guest().post(url, &body);
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["message"], "Failed to create record.", "{body}: {v}");
        assert_eq!(v["data"], data, "{body}: {v}");
    }
}

#[test]
fn token_keys_rotate_as_pocketbase() {
    let srv = TestServer::start();
    let (uid, tok) = srv.sign_up("rot@example.com", "a-Long-pass-123");
    let url = format!("/api/collections/users/records/{uid}");
    let refresh = |t: &str| {
        srv.with_token(t)
            .post("/api/collections/users/auth-refresh", &json!({}))
            .0
    };
    let login = || {
        let (_, v) = srv.guest().post(
            "/api/collections/users/auth-with-password",
            &json!({"identity": "rot@example.com", "password": "a-Long-pass-123"}),
        );
        v["token"].as_str().expect("token").to_string()
    };
    // The record itself can't touch its tokenKey (a hidden field).
    let (st, _) = srv
        .with_token(&tok)
        .patch(&url, &json!({"tokenKey:autogenerate": ""}));
    assert_eq!(st, 200);
    let (st, _) = srv
        .with_token(&tok)
        .patch(&url, &json!({"tokenKey": "x".repeat(40)}));
    assert_eq!(st, 200);
    assert_eq!(refresh(&tok), 200, "the record rotated its own key");
    // A superuser's "reset issued tokens" ends every session.
    let (st, v) = srv.su().patch(&url, &json!({"tokenKey:autogenerate": ""}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(refresh(&tok), 401, "the old token still works");
    let tok = login();
    assert_eq!(refresh(&tok), 200);
    let (st, v) = srv.su().patch(&url, &json!({"tokenKey": "k".repeat(40)}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(refresh(&tok), 401, "an explicit tokenKey was ignored");
    let (st, v) = srv.su().patch(&url, &json!({"tokenKey": "short"}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["tokenKey"]["code"], "validation_min_text_constraint",
        "{v}"
    );
}

#[test]
fn back_relation_expand_is_capped() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let parents = srv.create_collection(&json!({
        "name": "parents", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "t", "type": "text"}]
    }));
    srv.create_collection(&json!({
        "name": "kids", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "par", "type": "relation", "collectionId": parents["id"], "maxSelect": 1}]
    }));
    let (_, p) = srv
        .su()
        .post("/api/collections/parents/records", &json!({"t": "a"}));
    let pid = p["id"].as_str().expect("id").to_string();
    let (_, q) = srv
        .su()
        .post("/api/collections/parents/records", &json!({"t": "b"}));
    let qid = q["id"].as_str().expect("id").to_string();
    // 40,000 children of `a` and 3 of `b`, written straight into the table.
    {
        let mut db = rusqlite::Connection::open(srv.db_path()).expect("open db");
        db.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        let tx = db.transaction().expect("tx");
        {
            let mut st = tx
                .prepare("INSERT INTO kids (id, par) VALUES (?1, ?2)")
                .expect("prepare");
            for i in 0..40_000 {
                st.execute(rusqlite::params![format!("k{i:014}"), pid])
                    .expect("insert");
            }
            for i in 0..3 {
                st.execute(rusqlite::params![format!("j{i:014}"), qid])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    let (st, v) = srv.guest().get(&format!(
        "/api/collections/parents/records/{pid}?expand=kids_via_par"
    ));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["expand"]["kids_via_par"].as_array().map(Vec::len),
        Some(1000)
    );
    let (st, v) = srv
        .guest()
        .list("parents", &[("expand", "kids_via_par"), ("sort", "t")]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["items"][0]["expand"]["kids_via_par"]
            .as_array()
            .map(Vec::len),
        Some(1000)
    );
    assert_eq!(
        v["items"][1]["expand"]["kids_via_par"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn guests_never_manage_auth_records() {
    let srv = TestServer::start();
    // A manageRule a guest would pass, and an update rule open to anyone:
    // PocketBase still never treats a guest as a manager.
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"updateRule": "", "manageRule": "@request.auth.id = ''"}),
    );
    assert_eq!(st, 200, "{v}");
    let (uid, _) = srv.sign_up("victim@example.com", "a-Long-pass-123");
    let url = format!("/api/collections/users/records/{uid}");
    let (st, v) = srv.guest().patch(
        &url,
        &json!({"password": "Guest-owned-987", "passwordConfirm": "Guest-owned-987"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["oldPassword"]["code"], "validation_required",
        "{v}"
    );
    let (st, v) = srv.guest().patch(&url, &json!({"verified": true}));
    assert_eq!(st, 400, "{v}");
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "victim@example.com", "password": "a-Long-pass-123"}),
    );
    assert_eq!(st, 200, "the victim's password changed");
}

#[test]
fn the_auth_rule_guards_every_token_handed_out() {
    let srv = TestServer::start();
    let (uid, tok) = srv.sign_up("ruled@example.com", "a-Long-pass-123");
    let refresh = |t: &str| {
        srv.with_token(t)
            .post("/api/collections/users/auth-refresh", &json!({}))
    };
    let login = || {
        srv.guest().post(
            "/api/collections/users/auth-with-password",
            &json!({"identity": "ruled@example.com", "password": "a-Long-pass-123"}),
        )
    };
    // A new authRule ends the sessions issued under the old one.
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"authRule": "name != 'blocked'"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        refresh(&tok).0,
        401,
        "a token from before the authRule changed"
    );
    let (st, v) = login();
    assert_eq!(st, 200, "{v}");
    let tok = v["token"].as_str().expect("token").to_string();
    assert_eq!(refresh(&tok).0, 200);
    // A record the rule no longer admits gets no token, by any route.
    let (st, _) = srv.su().patch(
        &format!("/api/collections/users/records/{uid}"),
        &json!({"name": "blocked"}),
    );
    assert_eq!(st, 200);
    let refused = "The request doesn't satisfy the collection requirements to authenticate.";
    let (st, v) = refresh(&tok);
    assert_eq!((st, v["message"].as_str()), (403, Some(refused)), "{v}");
    let (st, v) = login();
    assert_eq!((st, v["message"].as_str()), (403, Some(refused)), "{v}");
}

#[test]
fn form_values_and_field_edges_as_pocketbase() {
    let srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "vals", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "num", "type": "number"}, {"name": "flag", "type": "bool"},
                   {"name": "js", "type": "json"}, {"name": "whole", "type": "number", "onlyInt": true},
                   {"name": "t", "type": "text"}]
    }));
    let url = "/api/collections/vals/records";
    // Form values are read as PocketBase reads them, then converted.
    let r = form(
        &srv,
        "POST",
        url,
        None,
        &[
            ("num", "true"),
            ("flag", "2"),
            ("t", "007"),
            ("js", "1"),
            ("js", "2"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (&v["num"], &v["flag"], &v["t"], &v["js"]),
        (&json!(1), &json!(true), &json!("007"), &json!([1, 2])),
        "{v}"
    );
    // An empty JSON value stays empty (not null) once stored.
    let (st, v) = srv.guest().post(url, &json!({"js": ""}));
    assert_eq!(st, 200, "{v}");
    let (_, back) = srv
        .guest()
        .get(&format!("{url}/{}", v["id"].as_str().unwrap_or_default()));
    assert_eq!(back["js"], json!(""), "{back}");
    // A whole number too large for an int64 is not an integer.
    let (st, v) = srv.guest().post(url, &json!({"whole": 1e20}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["whole"]["code"], "validation_only_int_constraint",
        "{v}"
    );
    // oldPassword alone asks for a new password.
    let (uid, tok) = srv.sign_up("old@example.com", "a-Long-pass-123");
    let (st, v) = srv.with_token(&tok).patch(
        &format!("/api/collections/users/records/{uid}"),
        &json!({"oldPassword": "a-Long-pass-123"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["password"]["code"], "validation_required", "{v}");
    assert_eq!(
        v["data"]["passwordConfirm"]["code"], "validation_required",
        "{v}"
    );
}

#[test]
fn file_errors_come_with_the_other_field_errors() {
    let srv = TestServer::start();
    enable_batch(&srv);
    srv.create_collection(&json!({
        "name": "docs", "type": "base", "listRule": "", "viewRule": "",
        "createRule": "t != 'deny'", "updateRule": "t != 'deny'",
        "fields": [
            {"name": "n", "type": "number", "required": true},
            {"name": "t", "type": "text", "max": 5},
            {"name": "doc", "type": "file", "maxSelect": 2, "maxSize": 1000, "mimeTypes": ["image/png"]}
        ]
    }));
    let url = "/api/collections/docs/records";
    let invalid_file = json!({
        "code": "validation_invalid_file",
        "message": "Invalid new files: [nonexistent.txt].",
        "params": {"invalidFiles": ["nonexistent.txt"]}
    });
    // A file name the record doesn't have, with other field errors: one
    // answer lists them all (direct and in a batch).
    let body = json!({"doc": ["nonexistent.txt"], "t": "too long"});
    let (st, v) = srv.guest().post(url, &body);
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["doc"], invalid_file, "{v}");
    assert_eq!(v["data"]["n"]["code"], "validation_required", "{v}");
    assert_eq!(
        v["data"]["t"]["code"], "validation_max_text_constraint",
        "{v}"
    );
    let (st, v) = batch_one(&srv.guest(), "POST", url, &body);
    assert_eq!(st, 400, "{v}");
    let data = &v["data"]["requests"]["0"]["response"]["data"];
    assert_eq!(data["doc"], invalid_file, "{v}");
    assert_eq!(data["n"]["code"], "validation_required", "{v}");
    // An upload of the wrong type with other field errors.
    let (ct, mp) = multipart(&[
        ("t", None, b"too long"),
        ("doc", Some("a.txt"), b"plain text, not an image"),
    ]);
    let r = srv.raw("POST", url, &[("Content-Type", ct.as_str())], Some(&mp));
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["data"]["doc"]["code"], "validation_invalid_mime_type",
        "{v}"
    );
    assert_eq!(v["data"]["n"]["code"], "validation_required", "{v}");
    assert_eq!(
        v["data"]["t"]["code"], "validation_max_text_constraint",
        "{v}"
    );
    // A caller the rule refuses learns nothing about the files.
    let (st, v) = srv
        .guest()
        .post(url, &json!({"doc": ["nonexistent.txt"], "t": "deny"}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"], json!({}), "{v}");
    // An update: the same, after the rule.
    let (st, rec) = srv.guest().post(url, &json!({"n": 1}));
    assert_eq!(st, 200, "{rec}");
    let rurl = format!("{url}/{}", rec["id"].as_str().expect("id"));
    let (st, v) = srv
        .guest()
        .patch(&rurl, &json!({"doc": ["nonexistent.txt"], "n": ""}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["doc"], invalid_file, "{v}");
    assert_eq!(v["data"]["n"]["code"], "validation_required", "{v}");
}

#[test]
fn a_batch_reports_its_first_failing_request() {
    let srv = TestServer::start();
    enable_batch(&srv);
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "t", "type": "text", "max": 3}]
    }));
    // The second request carries a password (checked before the batch
    // runs, so nothing is hashed for a write that fails); the first fails
    // when it runs, and is the one reported, as PocketBase runs them in
    // order.
    let (st, v) = srv.guest().post(
        "/api/batch",
        &json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"t": "too long"}},
            {"method": "POST", "url": "/api/collections/users/records",
             "body": {"password": "a-Long-pass-123", "passwordConfirm": "a-Long-pass-123"}}
        ]}),
    );
    assert_eq!(st, 400, "{v}");
    let reqs = v["data"]["requests"].as_object().expect("requests");
    assert_eq!(reqs.keys().collect::<Vec<_>>(), ["0"], "{v}");
    assert_eq!(
        reqs["0"]["response"]["data"]["t"]["code"], "validation_max_text_constraint",
        "{v}"
    );
    // Nothing of the batch was written.
    let (_, list) = srv.su().get("/api/collections/notes/records");
    assert_eq!(list["totalItems"], 0, "{list}");
    // The second alone fails on its own.
    let (st, v) = srv.guest().post(
        "/api/batch",
        &json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"t": "ok"}},
            {"method": "POST", "url": "/api/collections/users/records",
             "body": {"password": "a-Long-pass-123", "passwordConfirm": "a-Long-pass-123"}}
        ]}),
    );
    assert_eq!(st, 400, "{v}");
    let reqs = v["data"]["requests"].as_object().expect("requests");
    assert_eq!(reqs.keys().collect::<Vec<_>>(), ["1"], "{v}");
    assert_eq!(
        reqs["1"]["response"]["data"]["email"]["code"], "validation_required",
        "{v}"
    );
    let (_, list) = srv.su().get("/api/collections/notes/records");
    assert_eq!(list["totalItems"], 0, "{list}");
}

#[test]
fn hidden_file_fields_are_not_writable_by_non_superusers() {
    let srv = TestServer::start();
    enable_batch(&srv);
    srv.create_collection(&json!({
        "name": "stash", "type": "base", "listRule": "", "viewRule": "",
        "createRule": "", "updateRule": "",
        "fields": [
            {"name": "t", "type": "text"},
            {"name": "secret", "type": "file", "maxSelect": 2, "hidden": true}
        ]
    }));
    let url = "/api/collections/stash/records";
    let check = |id: &str, what: &str| {
        let (st, v) = srv.su().get(&format!("{url}/{id}"));
        assert_eq!(st, 200, "{what}: {v}");
        assert_eq!(v["secret"], json!([]), "{what}: {v}");
    };
    // Direct: plain, appended and prepended uploads are ignored.
    for key in ["secret", "secret+", "+secret"] {
        let (ct, mp) = multipart(&[("t", None, b"x"), (key, Some("a.txt"), b"hello")]);
        let r = srv.raw("POST", url, &[("Content-Type", ct.as_str())], Some(&mp));
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        check(r.json()["id"].as_str().expect("id"), key);
    }
    // In a multipart batch.
    let payload = json!({"requests": [
        {"method": "POST", "url": url, "body": {"t": "x"}}
    ]});
    let payload = payload.to_string();
    let (ct, mp) = multipart(&[
        ("@jsonPayload", None, payload.as_bytes()),
        ("requests.0.+secret", Some("a.txt"), b"hello"),
    ]);
    let r = srv.raw(
        "POST",
        "/api/batch",
        &[("Content-Type", ct.as_str())],
        Some(&mp),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    check(v[0]["body"]["id"].as_str().expect("id"), "batch");
    // A superuser writes it.
    let (ct, mp) = multipart(&[("t", None, b"x"), ("secret", Some("a.txt"), b"hello")]);
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        url,
        &[
            ("Content-Type", ct.as_str()),
            ("Authorization", tok.as_str()),
        ],
        Some(&mp),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["secret"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text()
    );
}

/// A rule reading `@request.body.<file field>` sees the files a write
/// touches — an upload, kept names, a removal, `[]` — as PocketBase's rules
/// do: `@request.body.doc:isset = false` can't be dodged by sending the
/// file field.
#[test]
fn body_guards_on_file_fields_see_uploads_and_removals() {
    let srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "guarded", "type": "base",
        "listRule": "", "viewRule": "",
        "createRule": "@request.body.doc:isset = false",
        "updateRule": "@request.body.doc:isset = false",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "doc", "type": "file", "maxSelect": 2, "maxSize": 1024}
        ]
    }));
    let url = "/api/collections/guarded/records";
    // Without the file field: allowed.
    let (st, v) = srv.guest().post(url, &json!({"title": "plain"}));
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    // An upload: the guard sees it.
    let (ct, body) = multipart(&[
        ("title", None, b"with file"),
        ("doc", Some("a.txt"), b"hello"),
    ]);
    let r = srv.raw("POST", url, &[("Content-Type", ct.as_str())], Some(&body));
    assert_eq!(r.status, 400, "an upload passed the guard: {}", r.text());
    let (st, v) = srv
        .guest()
        .post(url, &json!({"title": "empty list", "doc": []}));
    assert_eq!(st, 400, "[] passed the guard: {v}");
    // Updates: an upload or a removal is refused as a denial (404).
    let one = format!("{url}/{id}");
    let (ct, body) = multipart(&[("doc+", Some("b.txt"), b"hello")]);
    let r = srv.raw("PATCH", &one, &[("Content-Type", ct.as_str())], Some(&body));
    assert_eq!(
        r.status,
        404,
        "an appended upload passed the guard: {}",
        r.text()
    );
    let (st, v) = srv.guest().patch(&one, &json!({"doc": []}));
    assert_eq!(st, 404, "a removal passed the guard: {v}");
    let (st, v) = srv.guest().patch(&one, &json!({"title": "renamed"}));
    assert_eq!(st, 200, "{v}");
    let (_, l) = srv.su().list("guarded", &[]);
    assert_eq!(l["totalItems"], 1, "{l}");
    assert!(
        l["items"][0]["doc"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "{l}"
    );
}
