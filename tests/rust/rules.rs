//! API rules as seen by a guest, user A, user B and the superuser: null
//! rule → 403 (superusers only), "" → anyone, a list rule filters rows, a
//! failing view/update/delete rule → 404, a failing create rule → 400.

use crate::common::*;
use serde_json::{json, Value};

const PASS: &str = "password-123456";

struct World {
    a: String,
    b: String,
    ta: String,
    tb: String,
    a_priv: String,
    a_pub: String,
    b_priv: String,
}

fn setup(srv: &TestServer) -> World {
    let (a, ta) = srv.sign_up(&format!("{}@example.com", uniq("a")), PASS);
    let (b, tb) = srv.sign_up(&format!("{}@example.com", uniq("b")), PASS);
    let users = srv.su().get("/api/collections/users").1;
    let users_id = users["id"].as_str().expect("users id").to_string();
    let owner_rule = "owner = @request.auth.id";
    srv.create_collection(&json!({
        "name": "docs", "type": "base",
        "listRule": "public = true || owner = @request.auth.id",
        "viewRule": "public = true || owner = @request.auth.id",
        "createRule": "@request.auth.id != '' && @request.body.owner = @request.auth.id",
        "updateRule": owner_rule,
        "deleteRule": owner_rule,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "public", "type": "bool"},
            {"name": "owner", "type": "relation", "collectionId": users_id, "maxSelect": 1}
        ]
    }));
    srv.create_collection(&json!({
        "name": "locked", "type": "base",
        "fields": [{"name": "title", "type": "text"}]
    }));
    srv.create_collection(&json!({
        "name": "open", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let mk = |token: &str, title: &str, public: bool, owner: &str| {
        let (st, v) = srv.with_token(token).post(
            "/api/collections/docs/records",
            &json!({"title": title, "public": public, "owner": owner}),
        );
        assert_eq!(st, 200, "seed {title}: {v}");
        v["id"].as_str().expect("id").to_string()
    };
    let a_priv = mk(&ta, "a-private", false, &a);
    let a_pub = mk(&ta, "a-public", true, &a);
    let b_priv = mk(&tb, "b-private", false, &b);
    let (st, v) = srv.su().post(
        "/api/collections/locked/records",
        &json!({"title": "secret"}),
    );
    assert_eq!(st, 200, "{v}");
    World {
        a,
        b,
        ta,
        tb,
        a_priv,
        a_pub,
        b_priv,
    }
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Guest,
    A,
    B,
    Su,
}
use Who::*;

/// What a case expects besides the status.
enum Check {
    None,
    /// A list whose item titles are exactly these (any order).
    Titles(&'static [&'static str]),
}

#[test]
fn rules_table() {
    let srv = TestServer::start();
    let w = setup(&srv);
    let locked_id = {
        let (_, v) = srv.su().list("locked", &[]);
        ids(&v).pop().expect("locked record")
    };
    let token = |who: Who| -> Option<String> {
        match who {
            Guest => None,
            A => Some(w.ta.clone()),
            B => Some(w.tb.clone()),
            Su => Some(srv.superuser_token()),
        }
    };
    let docs = "/api/collections/docs/records";
    let rec = |coll: &str, id: &str| format!("/api/collections/{coll}/records/{id}");
    let (a_priv, a_pub, b_priv) = (
        rec("docs", &w.a_priv),
        rec("docs", &w.a_pub),
        rec("docs", &w.b_priv),
    );
    let lk = rec("locked", &locked_id);
    // (label, caller, method, path, body, status, check)
    type Row<'a> = (&'a str, Who, &'a str, String, Option<Value>, u16, Check);
    #[rustfmt::skip]
    let cases: Vec<Row> = vec![
        // A list rule filters rows.
        ("list docs as guest", Guest, "GET", docs.into(), None, 200, Check::Titles(&["a-public"])),
        ("list docs as A", A, "GET", docs.into(), None, 200, Check::Titles(&["a-private", "a-public"])),
        ("list docs as B", B, "GET", docs.into(), None, 200, Check::Titles(&["a-public", "b-private"])),
        ("list docs as superuser", Su, "GET", docs.into(), None, 200, Check::Titles(&["a-private", "a-public", "b-private"])),
        ("list docs filtered as B", B, "GET", format!("{docs}?filter={}", enc("title ~ 'private'")), None, 200, Check::Titles(&["b-private"])),
        // A failing view rule is 404.
        ("view A's private as guest", Guest, "GET", a_priv.clone(), None, 404, Check::None),
        ("view A's private as B", B, "GET", a_priv.clone(), None, 404, Check::None),
        ("view A's private as A", A, "GET", a_priv.clone(), None, 200, Check::None),
        ("view A's private as superuser", Su, "GET", a_priv.clone(), None, 200, Check::None),
        ("view A's public as guest", Guest, "GET", a_pub.clone(), None, 200, Check::None),
        ("view B's private as A", A, "GET", b_priv.clone(), None, 404, Check::None),
        // A failing create rule is 400.
        ("create as guest", Guest, "POST", docs.into(), Some(json!({"title": "g", "owner": ""})), 400, Check::None),
        ("create for B as A", A, "POST", docs.into(), Some(json!({"title": "forged", "owner": w.b})), 400, Check::None),
        ("create for A as A", A, "POST", docs.into(), Some(json!({"title": "a-new", "owner": w.a})), 200, Check::None),
        ("create for B as superuser", Su, "POST", docs.into(), Some(json!({"title": "su-made", "owner": w.b})), 200, Check::None),
        // A failing update/delete rule is 404, even when the record is viewable.
        ("update A's public as B", B, "PATCH", a_pub.clone(), Some(json!({"title": "hijacked"})), 404, Check::None),
        ("update A's private as guest", Guest, "PATCH", a_priv.clone(), Some(json!({"title": "hijacked"})), 404, Check::None),
        ("update A's private as A", A, "PATCH", a_priv.clone(), Some(json!({"title": "a-private2"})), 200, Check::None),
        ("update B's private as superuser", Su, "PATCH", b_priv.clone(), Some(json!({"title": "b-private2"})), 200, Check::None),
        ("delete A's public as B", B, "DELETE", a_pub.clone(), None, 404, Check::None),
        ("delete A's public as guest", Guest, "DELETE", a_pub.clone(), None, 404, Check::None),
        ("delete A's public as A", A, "DELETE", a_pub.clone(), None, 204, Check::None),
        // Null rules: superusers only (403).
        ("list locked as guest", Guest, "GET", "/api/collections/locked/records".into(), None, 403, Check::None),
        ("list locked as A", A, "GET", "/api/collections/locked/records".into(), None, 403, Check::None),
        ("list locked as superuser", Su, "GET", "/api/collections/locked/records".into(), None, 200, Check::Titles(&["secret"])),
        ("view locked as A", A, "GET", lk.clone(), None, 403, Check::None),
        ("create locked as A", A, "POST", "/api/collections/locked/records".into(), Some(json!({"title": "x"})), 403, Check::None),
        ("update locked as A", A, "PATCH", lk.clone(), Some(json!({"title": "x"})), 403, Check::None),
        ("delete locked as guest", Guest, "DELETE", lk.clone(), None, 403, Check::None),
        // Empty rules: anyone.
        ("create open as guest", Guest, "POST", "/api/collections/open/records".into(), Some(json!({"title": "o1"})), 200, Check::None),
        ("list open as B", B, "GET", "/api/collections/open/records".into(), None, 200, Check::Titles(&["o1"])),
        // The users collection: each user sees only itself.
        ("list users as A", A, "GET", "/api/collections/users/records".into(), None, 200, Check::None),
        ("list users as guest", Guest, "GET", "/api/collections/users/records".into(), None, 200, Check::Titles(&[])),
        ("view B as A", A, "GET", rec("users", &w.b), None, 404, Check::None),
        ("update B as A", A, "PATCH", rec("users", &w.b), Some(json!({"name": "pwned"})), 404, Check::None),
        ("delete B as A", A, "DELETE", rec("users", &w.b), None, 404, Check::None),
        ("view A as A", A, "GET", rec("users", &w.a), None, 200, Check::None),
        // @request.* in a client filter is for superusers only.
        ("@request in filter as A", A, "GET", format!("{docs}?filter={}", enc("@request.auth.id != ''")), None, 403, Check::None),
    ];
    let mut failures = Vec::new();
    for (label, who, method, path, body, want, check) in &cases {
        let client = match token(*who) {
            Some(t) => srv.with_token(&t),
            None => srv.guest(),
        };
        let (st, v) = client.send(method, path, body.as_ref());
        if st != *want {
            failures.push(format!(
                "{label}: {method} {path} as {who:?}: want {want}, got {st} {v}"
            ));
            continue;
        }
        if st >= 400 {
            assert_error_shape(&v, st, label);
            // PocketBase's messages (the SDK shows them to people).
            let want_msg = match st {
                400 => "Failed to create record.",
                403 if label.contains("@request") => "Only superusers can filter by @request.",
                403 => "Only superusers can perform this action.",
                _ => "The requested resource wasn't found.",
            };
            if v["message"] != json!(want_msg) {
                failures.push(format!(
                    "{label}: message {}, want {want_msg:?}",
                    v["message"]
                ));
            }
        }
        if let Check::Titles(want) = check {
            let mut got = column(&v, "title");
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            if got != want {
                failures.push(format!("{label}: titles {got:?}, want {want:?}"));
            }
        }
        if *label == "list users as A" && ids(&v) != [w.a.clone()] {
            failures.push(format!("{label}: want only A ({}), got {:?}", w.a, ids(&v)));
        }
    }
    // The failed writes left nothing behind; the allowed ones landed.
    let (_, all) = srv.su().list("docs", &[("perPage", "100")]);
    let mut titles = column(&all, "title");
    titles.sort();
    if titles != ["a-new", "a-private2", "b-private2", "su-made"] {
        failures.push(format!("docs afterwards: {titles:?}"));
    }
    let (_, users) = srv.su().list("users", &[]);
    if column(&users, "name").iter().any(|n| n == "pwned") || users["totalItems"] != json!(2) {
        failures.push(format!("users afterwards: {users}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn rules_apply_to_expand_and_bad_tokens() {
    let srv = TestServer::start();
    let w = setup(&srv);
    // B may see A's public doc, but not A's user record: no expand.owner.
    let (st, v) = srv.with_token(&w.tb).get(&format!(
        "/api/collections/docs/records/{}?expand=owner",
        w.a_pub
    ));
    assert_eq!(st, 200, "{v}");
    assert!(
        v.get("expand").is_none_or(|e| e.get("owner").is_none()),
        "owner must not be expanded for B: {v}"
    );
    // A sees its own user record expanded.
    let (st, v) = srv.with_token(&w.ta).get(&format!(
        "/api/collections/docs/records/{}?expand=owner",
        w.a_pub
    ));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["expand"]["owner"]["id"], json!(w.a), "{v}");

    // An invalid token is a guest for records routes.
    let (st, v) = srv.with_token("not.a.jwt").list("docs", &[]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(column(&v, "title"), ["a-public"]);
    // A token signed for A no longer works once A's password changes (tokenKey rotates).
    let (st, v) = srv.with_token(&w.ta).patch(
        &format!("/api/collections/users/records/{}", w.a),
        &json!({"oldPassword": PASS, "password": "another-pass-123", "passwordConfirm": "another-pass-123"}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv.with_token(&w.ta).list("docs", &[]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        column(&v, "title"),
        ["a-public"],
        "the old token is now a guest's"
    );
    let _ = (&w.b, &w.b_priv, &w.a_priv);
    // Collections are superusers-only: 401 for a guest, 403 for a user.
    let (st, v) = srv.guest().get("/api/collections");
    assert_eq!(st, 401, "{v}");
    assert_error_shape(&v, 401, "collections as guest");
    let (st, v) = srv.with_token(&w.tb).get("/api/collections");
    assert_eq!(st, 403, "{v}");
    assert_error_shape(&v, 403, "collections as user");
}

/// A create rule that follows a relation back into the same collection sees
/// the real table (the new record's parent must exist and be open).
#[test]
fn create_rule_through_a_self_relation() {
    let srv = TestServer::start();
    let (st, coll) = srv.su().post(
        "/api/collections",
        &json!({"name": "nodes", "type": "base", "listRule": "", "viewRule": "",
                "fields": [{"name": "title", "type": "text"}, {"name": "open", "type": "bool"}]}),
    );
    assert_eq!(st, 200, "{coll}");
    let id = coll["id"].as_str().unwrap().to_string();
    let (st, v) = srv.su().patch(
        "/api/collections/nodes",
        &json!({"createRule": "parent = '' || parent.open = true",
                "fields": [{"name": "title", "type": "text"}, {"name": "open", "type": "bool"},
                           {"name": "parent", "type": "relation", "collectionId": id, "maxSelect": 1}]}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, open) = srv.guest().post(
        "/api/collections/nodes/records",
        &json!({"title": "root", "open": true}),
    );
    assert_eq!(st, 200, "{open}");
    let (st, closed) = srv.su().post(
        "/api/collections/nodes/records",
        &json!({"title": "shut", "open": false}),
    );
    assert_eq!(st, 200, "{closed}");
    let (st, v) = srv.guest().post(
        "/api/collections/nodes/records",
        &json!({"title": "child", "parent": open["id"]}),
    );
    assert_eq!(st, 200, "child of an open parent: {v}");
    let (st, v) = srv.guest().post(
        "/api/collections/nodes/records",
        &json!({"title": "child", "parent": closed["id"]}),
    );
    assert_eq!(st, 400, "child of a closed parent: {v}");
    assert_eq!(v["data"], json!({}), "{v}");
    let (_, list) = srv
        .su()
        .get("/api/collections/nodes/records?filter=title%3D'child'");
    assert_eq!(
        list["totalItems"],
        json!(1),
        "the refused create left nothing: {list}"
    );
}

/// Requests per second for rule-checked reads over one keep-alive
/// connection (not run by default; point `KEEPD_TEST_BIN` at an optimized
/// build):
///
/// ```sh
/// cargo build -p keepd --profile cross-test
/// KEEPD_TEST_BIN=$PWD/target/cross-test/keepd \
///   cargo test -p keepd --test integration rules::rule_throughput -- --ignored --nocapture
/// ```
#[test]
#[ignore = "a timing loop; run by hand"]
fn rule_throughput() {
    use std::io::Write;
    use std::time::Instant;
    let srv = TestServer::start();
    let w = setup(&srv);
    srv.rate_limits_off();
    for i in 0..40 {
        let (st, v) = srv.with_token(&w.ta).post(
            "/api/collections/docs/records",
            &json!({"title": format!("d{i}"), "public": i % 3 == 0, "owner": w.a}),
        );
        assert_eq!(st, 200, "{v}");
    }
    let n: u32 = std::env::var("RULE_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let auth = format!("Authorization: {}\r\n", w.ta);
    let cases = [
        (
            "list, rule reads @request.auth.id",
            "/api/collections/docs/records?perPage=5&skipTotal=1".to_string(),
        ),
        (
            "view, rule reads @request.auth.id",
            format!("/api/collections/docs/records/{}", w.a_priv),
        ),
    ];
    for (label, path) in &cases {
        let addr = srv.base.trim_start_matches("http://").to_string();
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n");
        let mut round = |count: u32| {
            for _ in 0..count {
                s.write_all(req.as_bytes()).expect("write");
                let r = read_response(&mut s).expect("response");
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            }
        };
        round(n / 10);
        let t = Instant::now();
        round(n);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{label:<36} {:>8.0} req/s  {:>6.1} µs/req",
            f64::from(n) / secs,
            secs * 1e6 / f64::from(n)
        );
    }
}

/// `@request.headers.*` in rules and in a superuser's filter read the
/// request's headers (keyed lower case, `-` → `_`), also after a rule that
/// reads them is added to a schema whose rules read none.
#[test]
fn rules_and_superuser_filters_read_request_headers() {
    let srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "plain", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let (st, v) = srv
        .su()
        .post("/api/collections/plain/records", &json!({"title": "x"}));
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let count = |path: &str, headers: &[(&str, &str)]| -> u64 {
        let r = srv.raw("GET", path, headers, None);
        assert_eq!(r.status, 200, "{path}: {}", r.json());
        r.json()["totalItems"].as_u64().expect("totalItems")
    };
    // A superuser's filter reads headers while no rule does.
    let su = srv.superuser_token();
    let filter = "/api/collections/plain/records?filter=%40request.headers.x_team%3D%22red%22";
    assert_eq!(
        count(filter, &[("Authorization", &su), ("X-Team", "red")]),
        1
    );
    assert_eq!(
        count(filter, &[("Authorization", &su), ("X-Team", "blue")]),
        0
    );
    // A rule reading headers, added later.
    srv.create_collection(&json!({
        "name": "teams", "type": "base",
        "listRule": "@request.headers.x_team = \"red\"",
        "viewRule": "@request.headers.x_team = \"red\"",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let (st, v) = srv
        .su()
        .post("/api/collections/teams/records", &json!({"title": "t"}));
    assert_eq!(st, 200, "{v}");
    let tid = v["id"].as_str().expect("id").to_string();
    let list = "/api/collections/teams/records";
    assert_eq!(count(list, &[("X-Team", "red")]), 1);
    assert_eq!(count(list, &[("X-Team", "blue")]), 0);
    assert_eq!(count(list, &[]), 0);
    let view = format!("/api/collections/teams/records/{tid}");
    assert_eq!(
        srv.raw("GET", &view, &[("X-Team", "red")], None).status,
        200
    );
    assert_eq!(
        srv.raw("GET", &view, &[("X-Team", "blue")], None).status,
        404
    );
    // Collections without such rules are unchanged.
    let pview = format!("/api/collections/plain/records/{id}");
    assert_eq!(srv.raw("GET", &pview, &[], None).status, 200);
}

/// A collections import whose rule reads, through a relation, a field of a
/// collection created earlier in the same import (as PocketBase's own
/// export orders them): accepted, and the rule works.
#[test]
fn imported_rules_read_fields_of_collections_imported_with_them() {
    let srv = TestServer::start();
    let posts = json!({"id": "pbc_posts00000001", "name": "posts", "type": "base",
        "listRule": "",
        "fields": [{"name": "author", "type": "relation",
            "collectionId": "_pb_users_auth_", "maxSelect": 1}]});
    let comments = json!({"id": "pbc_comms00000001", "name": "comments", "type": "base",
        "listRule": "post.author = @request.auth.id",
        "fields": [{"name": "post", "type": "relation",
            "collectionId": "pbc_posts00000001", "maxSelect": 1}]});
    let (s, b) = srv.su().send(
        "PUT",
        "/api/collections/import",
        Some(&json!({"collections": [posts, comments], "deleteMissing": false})),
    );
    assert_eq!(s, 204, "{b}");
    let (uid, token) = srv.sign_up("author@example.com", "author-password-1");
    let (s, post) = srv.su().send(
        "POST",
        "/api/collections/posts/records",
        Some(&json!({"author": uid})),
    );
    assert_eq!(s, 200, "{post}");
    let (s, c) = srv.su().send(
        "POST",
        "/api/collections/comments/records",
        Some(&json!({"post": post["id"]})),
    );
    assert_eq!(s, 200, "{c}");
    let (s, mine) = srv
        .with_token(&token)
        .send("GET", "/api/collections/comments/records", None);
    assert_eq!((s, mine["totalItems"].as_i64()), (200, Some(1)), "{mine}");
    let (s, none) = srv
        .guest()
        .send("GET", "/api/collections/comments/records", None);
    assert_eq!((s, none["totalItems"].as_i64()), (200, Some(0)), "{none}");
}
