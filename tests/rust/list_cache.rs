//! The list cache (`records::cache`): a repeated list is answered from
//! memory until the data next changes, and never with another principal's
//! answer or one from before a committed write.
//!
//! Each test proves the cache is in use (a repeated list is logged as a
//! hit at trace level), then checks that what must be seen is seen — a
//! row changed by another process (a connection of the test's own) too.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const PASS: &str = "password-123456";

/// Changes a row from another process's connection (not through the
/// daemon's writer): the daemon notices the commit (`data_version`).
fn sneak(srv: &TestServer, table: &str, id: &str, title: &str) {
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let n = db
        .execute(
            &format!("UPDATE \"{table}\" SET title = ?1 WHERE id = ?2"),
            rusqlite::params![title, id],
        )
        .expect("sneak update");
    assert_eq!(n, 1, "sneak update of {table}/{id}");
}

/// A server logging list cache hits.
fn server() -> TestServer {
    TestServer::builder()
        .env("KEEPD_LOG", "warn,keepd::records::read=trace")
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .start()
}

fn hits(srv: &TestServer) -> usize {
    count(srv, "list cache hit")
}

fn count(srv: &TestServer, what: &str) -> usize {
    srv.output().matches(what).count()
}

/// `f` (a repeated list) is answered from the cache.
fn assert_hit(srv: &TestServer, f: impl FnOnce()) {
    let before = hits(srv);
    f();
    assert!(
        wait_until(Duration::from_secs(5), || hits(srv) > before),
        "the repeated list was not answered from the cache"
    );
}

fn titles(v: &Value) -> Vec<String> {
    let mut t = column(v, "title");
    t.sort();
    t
}

fn list_titles(c: &Client<'_>, coll: &str, q: &[(&str, &str)]) -> Vec<String> {
    let (st, v) = c.list(coll, q);
    assert_eq!(st, 200, "list {coll}: {v}");
    titles(&v)
}

fn users_id(srv: &TestServer) -> String {
    let users = srv.su().get("/api/collections/users").1;
    users["id"].as_str().expect("users id").to_string()
}

fn create(c: &Client<'_>, coll: &str, body: Value) -> String {
    let (st, v) = c.post(&format!("/api/collections/{coll}/records"), &body);
    assert_eq!(st, 200, "create in {coll}: {v}");
    v["id"].as_str().expect("id").to_string()
}

#[test]
fn owners_get_their_own_lists_and_every_write_is_seen_at_once() {
    if is_reference() {
        return;
    }
    let srv = server();
    let (a, ta) = srv.sign_up(&format!("{}@example.com", uniq("a")), PASS);
    let (b, tb) = srv.sign_up(&format!("{}@example.com", uniq("b")), PASS);
    let users = users_id(&srv);
    let owner = "owner = @request.auth.id";
    srv.create_collection(&json!({
        "name": "notes", "type": "base",
        "listRule": owner, "viewRule": owner, "createRule": "@request.auth.id != ''",
        "updateRule": owner, "deleteRule": owner,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "owner", "type": "relation", "collectionId": users, "maxSelect": 1}
        ]
    }));
    let (ca, cb, guest) = (srv.with_token(&ta), srv.with_token(&tb), srv.guest());
    let a1 = create(&ca, "notes", json!({"title": "a1", "owner": a}));
    create(&cb, "notes", json!({"title": "b1", "owner": b}));
    let q: &[(&str, &str)] = &[("sort", "title"), ("perPage", "10")];

    assert_eq!(list_titles(&ca, "notes", q), ["a1"]);
    assert_hit(&srv, || assert_eq!(list_titles(&ca, "notes", q), ["a1"]));
    // The same query: B gets B's, a guest nothing.
    assert_eq!(list_titles(&cb, "notes", q), ["b1"]);
    assert!(list_titles(&guest, "notes", q).is_empty());
    // Again in the other order.
    assert!(list_titles(&guest, "notes", q).is_empty());
    assert_eq!(list_titles(&cb, "notes", q), ["b1"]);

    // Update.
    let (st, v) = ca.patch(
        &format!("/api/collections/notes/records/{a1}"),
        &json!({"title": "a1-edited"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(list_titles(&ca, "notes", q), ["a1-edited"]);
    // Create.
    let a2 = create(&ca, "notes", json!({"title": "a2", "owner": a}));
    assert_eq!(list_titles(&ca, "notes", q), ["a1-edited", "a2"]);
    assert_eq!(list_titles(&cb, "notes", q), ["b1"]);
    // Delete.
    let (st, _) = ca.delete(&format!("/api/collections/notes/records/{a2}"));
    assert_eq!(st, 204);
    assert_eq!(list_titles(&ca, "notes", q), ["a1-edited"]);
    // Batch.
    let (st, v) = srv
        .su()
        .patch("/api/settings", &json!({"batch": {"enabled": true}}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(list_titles(&ca, "notes", q), ["a1-edited"]);
    let (st, v) = ca.post(
        "/api/batch",
        &json!({"requests": [
            {"method": "POST", "url": "/api/collections/notes/records", "body": {"title": "a3", "owner": a}},
            {"method": "PATCH", "url": format!("/api/collections/notes/records/{a1}"), "body": {"title": "a1-batched"}}
        ]}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(list_titles(&ca, "notes", q), ["a1-batched", "a3"]);
    // The total and the page shape come from the same answer.
    let (_, v) = ca.list("notes", q);
    assert_eq!(v["totalItems"], 2, "{v}");
    // Another process's commit.
    assert_hit(&srv, || {
        assert_eq!(list_titles(&ca, "notes", q), ["a1-batched", "a3"]);
    });
    sneak(&srv, "notes", &a1, "a1-elsewhere");
    assert_eq!(list_titles(&ca, "notes", q), ["a1-elsewhere", "a3"]);
}

#[test]
fn a_cascade_and_a_write_to_a_collection_a_rule_reads_are_seen_at_once() {
    if is_reference() {
        return;
    }
    let srv = server();
    let (a, ta) = srv.sign_up(&format!("{}@example.com", uniq("a")), PASS);
    let users = users_id(&srv);
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "grants", "type": "base",
        "fields": [{"name": "user", "type": "relation", "collectionId": users, "maxSelect": 1}]
    }));
    let folders = srv.create_collection(&json!({
        "name": "folders", "type": "base", "listRule": "", "viewRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    srv.create_collection(&json!({
        "name": "files_", "type": "base",
        "listRule": "@collection.grants.user ?= @request.auth.id",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "folder", "type": "relation", "collectionId": folders["id"], "maxSelect": 1, "cascadeDelete": true}
        ]
    }));
    let f1 = create(&su, "folders", json!({"title": "f1"}));
    create(&su, "files_", json!({"title": "x", "folder": f1}));
    create(&su, "files_", json!({"title": "y"}));
    let ca = srv.with_token(&ta);
    let q: &[(&str, &str)] = &[("sort", "title")];

    // Nothing until A is granted; the grant is another collection.
    assert!(list_titles(&ca, "files_", q).is_empty());
    let g = create(&su, "grants", json!({"user": a}));
    assert_eq!(list_titles(&ca, "files_", q), ["x", "y"]);
    assert_hit(&srv, || {
        assert_eq!(list_titles(&ca, "files_", q), ["x", "y"])
    });
    // A cascade (deleting the folder deletes x).
    let (st, _) = su.delete(&format!("/api/collections/folders/records/{f1}"));
    assert_eq!(st, 204);
    assert_eq!(list_titles(&ca, "files_", q), ["y"]);
    // The grant revoked: gone at once.
    let (st, _) = su.delete(&format!("/api/collections/grants/records/{g}"));
    assert_eq!(st, 204);
    assert!(list_titles(&ca, "files_", q).is_empty());
}

#[test]
fn an_auth_record_change_and_a_rule_change_take_effect_at_once() {
    if is_reference() {
        return;
    }
    let srv = server();
    let su = srv.su();
    // A `role` on users.
    let (_, users) = su.get("/api/collections/users");
    let mut fields = users["fields"].as_array().expect("fields").clone();
    fields.push(json!({"name": "role", "type": "text"}));
    let (st, v) = su.patch("/api/collections/users", &json!({"fields": fields}));
    assert_eq!(st, 200, "{v}");
    let (a, ta) = srv.sign_up(&format!("{}@example.com", uniq("a")), PASS);
    let coll = srv.create_collection(&json!({
        "name": "memos", "type": "base",
        "listRule": "@request.auth.role = 'admin'",
        "fields": [{"name": "title", "type": "text"}]
    }));
    create(&su, "memos", json!({"title": "m"}));
    let ca = srv.with_token(&ta);
    let q: &[(&str, &str)] = &[];

    assert!(list_titles(&ca, "memos", q).is_empty());
    // A made admin: the same token sees the memo at once.
    let (st, v) = su.patch(
        &format!("/api/collections/users/records/{a}"),
        &json!({"role": "admin"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(list_titles(&ca, "memos", q), ["m"]);
    assert_hit(&srv, || assert_eq!(list_titles(&ca, "memos", q), ["m"]));
    // And demoted.
    let (st, _) = su.patch(
        &format!("/api/collections/users/records/{a}"),
        &json!({"role": "user"}),
    );
    assert_eq!(st, 200);
    assert!(list_titles(&ca, "memos", q).is_empty());
    // A rule change: everyone may list.
    let (st, v) = su.patch(
        &format!("/api/collections/{}", coll["id"].as_str().expect("id")),
        &json!({"listRule": ""}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(list_titles(&ca, "memos", q), ["m"]);
    assert_eq!(list_titles(&srv.guest(), "memos", q), ["m"]);
    // Locked again: a guest gets the superusers-only answer at once.
    let (st, _) = su.patch(
        &format!("/api/collections/{}", coll["id"].as_str().expect("id")),
        &json!({"listRule": null}),
    );
    assert_eq!(st, 200);
    let (st, _) = srv.guest().list("memos", q);
    assert_eq!(st, 403);
}

#[test]
fn rules_reading_headers_are_keyed_by_them() {
    if is_reference() {
        return;
    }
    let srv = server();
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "teams", "type": "base",
        "listRule": "@request.headers.x_team = team",
        "fields": [{"name": "title", "type": "text"}, {"name": "team", "type": "text"}]
    }));
    let r = create(&su, "teams", json!({"title": "r", "team": "red"}));
    create(&su, "teams", json!({"title": "b", "team": "blue"}));
    let list = |team: &str| {
        let resp = srv.raw(
            "GET",
            "/api/collections/teams/records?sort=title",
            &[("X-Team", team)],
            None,
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        titles(&resp.json())
    };
    assert_eq!(list("red"), ["r"]);
    assert_hit(&srv, || assert_eq!(list("red"), ["r"]));
    assert_eq!(list("blue"), ["b"]);
    assert_hit(&srv, || assert_eq!(list("red"), ["r"]));
    sneak(&srv, "teams", &r, "r2");
    assert_eq!(list("red"), ["r2"]);
}

/// `@now` in a filter or a rule: never cached (a record's date passes
/// `@now` between two identical lists).
#[test]
fn clock_macros_are_never_cached() {
    if is_reference() {
        return;
    }
    let srv = server();
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "due", "type": "base", "listRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "when", "type": "date"}]
    }));
    srv.create_collection(&json!({
        "name": "due_rule", "type": "base", "listRule": "when <= @now",
        "fields": [{"name": "title", "type": "text"}, {"name": "when", "type": "date"}]
    }));
    let soon: String = rusqlite::Connection::open_in_memory()
        .expect("sqlite")
        .query_row(
            "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now', '+2 seconds') || 'Z'",
            [],
            |r| r.get(0),
        )
        .expect("time");
    create(&su, "due", json!({"title": "d", "when": soon}));
    create(&su, "due_rule", json!({"title": "d", "when": soon}));
    let g = srv.guest();
    let by_filter: &[(&str, &str)] = &[("filter", "when <= @now")];
    assert!(list_titles(&g, "due", by_filter).is_empty());
    assert!(list_titles(&g, "due_rule", &[]).is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || count(
            &srv,
            "list cache bypassed"
        ) >= 2),
        "{}",
        srv.output()
    );
    assert!(
        wait_until(Duration::from_secs(15), || list_titles(
            &g, "due", by_filter
        ) == ["d"]),
        "a filter reading @now was answered from the cache"
    );
    assert!(
        wait_until(Duration::from_secs(15), || list_titles(&g, "due_rule", &[])
            == ["d"]),
        "a rule reading @now was answered from the cache"
    );
    assert_eq!(
        hits(&srv),
        0,
        "a list reading @now was answered from the cache"
    );
}

#[test]
fn list_cache_bytes_0_turns_it_off() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_LOG", "warn,keepd::records::read=trace")
        .env("KEEPD_LIST_CACHE_BYTES", "0")
        .start();
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "plain", "type": "base", "listRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let p = create(&su, "plain", json!({"title": "p"}));
    let g = srv.guest();
    for _ in 0..5 {
        assert_eq!(list_titles(&g, "plain", &[]), ["p"]);
    }
    sneak(&srv, "plain", &p, "p-sneaked");
    assert_eq!(list_titles(&g, "plain", &[]), ["p-sneaked"]);
    // Each list logged as not cached (the sentinel: a hit would have been
    // logged instead).
    assert!(
        wait_until(Duration::from_secs(5), || count(&srv, "list cache off")
            >= 6),
        "{}",
        srv.output()
    );
    assert_eq!(hits(&srv), 0, "a hit with list_cache_bytes = 0");
}

/// A restore replaces the database under the daemon: it exits and starts
/// again on the restored data, so no answer cached before is served after.
#[test]
fn a_restore_is_seen_at_once() {
    if is_reference() {
        return;
    }
    let mut srv = server();
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "kept", "type": "base", "listRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    create(&su, "kept", json!({"title": "before"}));
    let (st, v) = su.post("/api/backups", &json!({"name": "lc.zip"}));
    assert_eq!(st, 204, "{v}");
    create(&su, "kept", json!({"title": "after"}));
    let g = srv.guest();
    assert_eq!(list_titles(&g, "kept", &[]), ["after", "before"]);
    assert_hit(&srv, || {
        assert_eq!(list_titles(&g, "kept", &[]), ["after", "before"]);
    });
    let (st, v) = su.post("/api/backups/lc.zip/restore", &json!({}));
    assert_eq!(st, 204, "{v}");
    assert!(
        wait_until(Duration::from_secs(10), || !srv.is_running()),
        "the daemon didn't exit after the restore"
    );
    let srv = srv.restart();
    assert_eq!(list_titles(&srv.guest(), "kept", &[]), ["before"]);
}

/// Two users (id, token) and collection `name` (`title`, `owner`) whose
/// list rule shows each user their own records.
fn owned(srv: &TestServer, name: &str) -> [(String, String); 2] {
    let users = [uniq("a"), uniq("b")].map(|u| srv.sign_up(&format!("{u}@example.com"), PASS));
    let users_coll = users_id(srv);
    srv.create_collection(&json!({
        "name": name, "type": "base",
        "listRule": "owner = @request.auth.id", "createRule": "@request.auth.id != ''",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "owner", "type": "relation", "collectionId": users_coll, "maxSelect": 1}
        ]
    }));
    users
}

fn count_hits(srv: &TestServer) -> usize {
    count(srv, "list count cache hit")
}

fn total(c: &Client<'_>, coll: &str, q: &[(&str, &str)]) -> i64 {
    let (st, v) = c.list(coll, q);
    assert_eq!(st, 200, "list {coll}: {v}");
    v["totalItems"].as_i64().expect("totalItems")
}

/// The total of a list is reused by its other pages while nothing has
/// changed, never by another principal, and never after a write.
#[test]
fn a_total_is_shared_by_the_pages_of_one_list_of_one_principal_only() {
    if is_reference() {
        return;
    }
    let srv = server();
    let [(a, ta), (b, tb)] = owned(&srv, "pages");
    let (ca, cb) = (srv.with_token(&ta), srv.with_token(&tb));
    for i in 0..7 {
        create(&ca, "pages", json!({"title": format!("a{i}"), "owner": a}));
    }
    for i in 0..3 {
        create(&cb, "pages", json!({"title": format!("b{i}"), "owner": b}));
    }
    let page = |p: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![("sort", "title"), ("perPage", "2"), ("page", p)]
    };
    assert_eq!(total(&ca, "pages", &page("1")), 7);
    let before = count_hits(&srv);
    assert_eq!(total(&ca, "pages", &page("2")), 7);
    assert!(
        wait_until(Duration::from_secs(5), || count_hits(&srv) > before),
        "page 2 did not reuse page 1's total"
    );
    // Another principal, the same list: its own total.
    assert_eq!(total(&cb, "pages", &page("2")), 3);
    assert_eq!(total(&srv.guest(), "pages", &page("2")), 0);
    assert_eq!(total(&ca, "pages", &page("3")), 7);
    // A write: the next page counts again.
    create(&ca, "pages", json!({"title": "a7", "owner": a}));
    assert_eq!(total(&ca, "pages", &page("4")), 8);
    assert_eq!(total(&cb, "pages", &page("1")), 3);
    // Another process's commit is seen too.
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    db.execute("DELETE FROM pages WHERE title = 'a0'", [])
        .expect("sneak delete");
    assert_eq!(total(&ca, "pages", &page("2")), 7);
    // A different filter is another list.
    let q = [
        ("sort", "title"),
        ("perPage", "2"),
        ("page", "2"),
        ("filter", "title != 'a1'"),
    ];
    assert_eq!(total(&ca, "pages", &q), 6);
}

/// A rule or a filter reading `@request.query` may count differently from
/// page to page: its total is never shared.
#[test]
fn a_total_that_reads_the_query_is_not_shared() {
    if is_reference() {
        return;
    }
    let srv = server();
    let su = srv.su();
    srv.create_collection(&json!({
        "name": "qrule", "type": "base",
        "listRule": "@request.query.perPage = '5' || flag = true",
        "fields": [{"name": "title", "type": "text"}, {"name": "flag", "type": "bool"}]
    }));
    srv.create_collection(&json!({
        "name": "qfilter", "type": "base", "listRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "flag", "type": "bool"}]
    }));
    for coll in ["qrule", "qfilter"] {
        for i in 0..6 {
            create(&su, coll, json!({"title": format!("t{i}"), "flag": i < 2}));
        }
    }
    let g = srv.guest();
    assert_eq!(total(&g, "qrule", &[("perPage", "5")]), 6);
    assert_eq!(total(&g, "qrule", &[("perPage", "10")]), 2);
    assert_eq!(total(&g, "qrule", &[("perPage", "5"), ("page", "2")]), 6);
    // Only superusers may filter by `@request.*`.
    let f = "@request.query.perPage = '5' || flag = true";
    assert_eq!(total(&su, "qfilter", &[("perPage", "5"), ("filter", f)]), 6);
    assert_eq!(
        total(&su, "qfilter", &[("perPage", "10"), ("filter", f)]),
        2
    );
    // While some rule of the schema reads the query, no total is shared
    // (a rule of another collection may be reached through `@collection`).
    let flagged = |pp: &'static str| [("perPage", pp), ("filter", "flag = true")];
    let before = count_hits(&srv);
    assert_eq!(total(&g, "qfilter", &flagged("5")), 2);
    assert_eq!(total(&g, "qfilter", &flagged("1")), 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count_hits(&srv), before, "a total was shared");
    // That rule gone, totals are shared again.
    let (st, v) = su.patch(
        "/api/collections/qrule",
        &json!({"listRule": "flag = true"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(total(&g, "qfilter", &flagged("5")), 2);
    assert_eq!(total(&g, "qfilter", &flagged("1")), 2);
    assert!(
        wait_until(Duration::from_secs(5), || count_hits(&srv) > before),
        "the total was not shared"
    );
}

fn order_hits(srv: &TestServer) -> usize {
    count(srv, "list order cache hit")
}

/// A list the store sorts itself, paged through: from the second page on,
/// its whole order is kept and the other pages are slices of it — the same
/// pages, in the same order, as computed afresh; never another
/// principal's, never after a write.
#[test]
fn a_lists_order_is_shared_by_its_pages_of_one_principal_only() {
    if is_reference() {
        return;
    }
    let srv = server();
    let [(a, ta), (b, tb)] = owned(&srv, "paged");
    let (ca, cb) = (srv.with_token(&ta), srv.with_token(&tb));
    // Created out of order: `title` (no index) is sorted by the store.
    for i in [3, 0, 6, 1, 5, 2, 4] {
        create(&ca, "paged", json!({"title": format!("a{i}"), "owner": a}));
    }
    for i in [2, 0, 1] {
        create(&cb, "paged", json!({"title": format!("b{i}"), "owner": b}));
    }
    let page = |c: &Client<'_>, p: &str, skip: bool| -> (Vec<String>, i64) {
        let mut q = vec![("sort", "title"), ("perPage", "2"), ("page", p)];
        if skip {
            q.push(("skipTotal", "1"));
        }
        let (st, v) = c.list("paged", &q);
        assert_eq!(st, 200, "page {p}: {v}");
        (
            column(&v, "title"),
            v["totalItems"].as_i64().expect("totalItems"),
        )
    };
    let want = |t: &[&str], n: i64| (t.iter().map(|s| s.to_string()).collect::<Vec<_>>(), n);
    // Page 1, then page 2 (the list is being paged through), then page 3
    // keeps the whole order: pages 4 and 5 are sliced from it.
    assert_eq!(page(&ca, "1", false), want(&["a0", "a1"], 7));
    assert_eq!(page(&ca, "2", false), want(&["a2", "a3"], 7));
    assert_eq!(page(&ca, "3", false), want(&["a4", "a5"], 7));
    let before = order_hits(&srv);
    assert_eq!(page(&ca, "4", true), want(&["a6"], -1));
    assert_eq!(page(&ca, "5", false), want(&[], 7));
    assert!(
        wait_until(Duration::from_secs(5), || order_hits(&srv) >= before + 2),
        "pages 4 and 5 were not sliced from the order page 3 kept"
    );
    assert_eq!(page(&ca, "2", true), want(&["a2", "a3"], -1));
    // Another principal, the same list: its own order.
    assert_eq!(page(&cb, "2", false), want(&["b2"], 3));
    assert_eq!(page(&cb, "1", false), want(&["b0", "b1"], 3));
    assert_eq!(page(&srv.guest(), "2", false), want(&[], 0));
    // A write: the order is made again ("a00" sorts between a0 and a1).
    create(&ca, "paged", json!({"title": "a00", "owner": a}));
    assert_eq!(page(&ca, "2", false), want(&["a1", "a2"], 8));
    assert_eq!(page(&ca, "3", false), want(&["a3", "a4"], 8));
    // Another process's commit is seen too.
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    db.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    db.execute("DELETE FROM paged WHERE title = 'a1'", [])
        .expect("sneak delete");
    assert_eq!(page(&ca, "2", false), want(&["a2", "a3"], 7));
    assert_eq!(page(&ca, "3", false), want(&["a4", "a5"], 7));
    // An order the store can't read whole (a filter through a relation:
    // its rows are made distinct) is asked for once per generation, not
    // again for every later page.
    let before = count(&srv, "list order not kept");
    let through = [
        ("sort", "title"),
        ("perPage", "2"),
        ("filter", "owner.created != ''"),
    ];
    for (p, want) in [
        ("1", ["a0", "a00"]),
        ("2", ["a2", "a3"]),
        ("3", ["a4", "a5"]),
    ]
    .into_iter()
    .chain([("4", ["a6", ""])])
    {
        let mut q = through.to_vec();
        q.push(("page", p));
        let (st, v) = ca.list("paged", &q);
        assert_eq!(st, 200, "{v}");
        let want: Vec<&str> = want.into_iter().filter(|t| !t.is_empty()).collect();
        assert_eq!(column(&v, "title"), want, "page {p}");
    }
    assert!(
        wait_until(Duration::from_secs(5), || count(
            &srv,
            "list order not kept"
        ) == before + 1),
        "the order was not asked for once"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        count(&srv, "list order not kept"),
        before + 1,
        "asked again"
    );
    // A filter is another list.
    let (st, v) = ca.list(
        "paged",
        &[
            ("sort", "title"),
            ("perPage", "2"),
            ("page", "2"),
            ("filter", "title != 'a2'"),
        ],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(column(&v, "title"), ["a3", "a4"]);
}
