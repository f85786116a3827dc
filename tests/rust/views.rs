//! View collections: a `viewQuery` is checked and rendered before SQLite
//! sees it; the view's fields are inferred as PocketBase infers them; the
//! records are read through the records API (rules, filter, sort, expand,
//! fields) and never written; the sources a view reads stay.

use crate::common::*;
use serde_json::{json, Value};

/// Every schema object of the database (type, name, SQL) and every table's
/// row count: what a refused query must leave as it was.
fn snapshot(srv: &TestServer) -> String {
    let db = srv.open_db();
    let mut st = db
        .prepare("SELECT type, name, IFNULL(sql, '') FROM sqlite_master ORDER BY type, name")
        .expect("schema");
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .filter_map(Result::ok)
        .collect();
    rows.iter()
        .map(|(t, n, sql)| {
            let count = if t == "table" {
                let c: i64 = db
                    .query_row(&format!("SELECT count(*) FROM \"{n}\""), [], |r| r.get(0))
                    .expect("count");
                c.to_string()
            } else {
                String::new()
            };
            format!("{t}:{n}:{count}:{sql}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `tags` and `posts` (a relation, a select, a hidden field) with records.
fn fixture(srv: &TestServer) -> (String, String, String) {
    let tags = srv.create_collection(&json!({"name": "tags", "type": "base", "listRule": "",
        "viewRule": "", "fields": [{"name": "title", "type": "text"}]}));
    srv.create_collection(&json!({"name": "posts", "type": "base", "listRule": "",
        "viewRule": "", "fields": [{"name": "title", "type": "text"},
        {"name": "n", "type": "number"},
        {"name": "status", "type": "select", "values": ["draft", "live"], "maxSelect": 1},
        {"name": "tag", "type": "relation", "collectionId": tags["id"], "maxSelect": 1},
        {"name": "secret", "type": "text", "hidden": true}]}));
    let su = srv.su();
    let (_, red) = su.post("/api/collections/tags/records", &json!({"title": "red"}));
    let red = red["id"].as_str().expect("id").to_string();
    let mut ids = Vec::new();
    for (t, n) in [("Alpha", 7), ("Beta", 2)] {
        let (st, v) = su.post(
            "/api/collections/posts/records",
            &json!({"title": t, "n": n, "status": "live", "tag": red, "secret": "s"}),
        );
        assert_eq!(st, 200, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    (red, ids[0].clone(), ids[1].clone())
}

fn field<'a>(c: &'a Value, name: &str) -> &'a Value {
    c["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {c}"))
}

#[test]
fn fields_inferred_as_pocketbase() {
    let srv = TestServer::start();
    let (_, _, _) = fixture(&srv);
    let v = srv.create_collection(&json!({"name": "pv", "type": "view",
        "fields": [{"name": "ignored", "type": "bool"}],
        "viewQuery": "select p.id, p.title, p.status, p.tag, t.id as tagId, count(*) as c, \
                      total(p.n) as s, cast(p.n as integer) as i, cast(p.n as text) as tx, \
                      (p.n * 2) as twice from posts p left join tags t on t.id = p.tag group by p.id"}));
    let id = field(&v, "id");
    assert_eq!(id["type"], "text");
    assert_eq!(id["primaryKey"], true);
    assert_eq!(id["required"], true);
    assert_eq!(field(&v, "title")["type"], "text");
    assert_eq!(field(&v, "status")["values"], json!(["draft", "live"]));
    assert_eq!(field(&v, "tag")["type"], "relation");
    assert_eq!(field(&v, "tagId")["type"], "relation");
    assert_eq!(field(&v, "tagId")["maxSelect"], 1);
    assert_eq!(field(&v, "c")["type"], "number");
    assert_eq!(field(&v, "c")["onlyInt"], true);
    assert_eq!(field(&v, "s")["onlyInt"], false);
    assert_eq!(field(&v, "i")["onlyInt"], true);
    assert_eq!(field(&v, "tx")["type"], "text");
    assert_eq!(field(&v, "twice")["type"], "json");
    assert!(v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .all(|f| f["name"] != "ignored"));
    // A view without an id column is refused as PocketBase refuses it.
    let (st, e) = srv.su().post(
        "/api/collections",
        &json!({"name": "noid", "type": "view", "viewQuery": "select title from posts"}),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(
        e["data"]["fields"]["code"],
        "validation_missing_primary_key"
    );
    assert_eq!(
        e["data"]["viewQuery"]["code"],
        "validation_invalid_view_query"
    );
}

#[test]
fn records_of_a_view_read_with_rules_and_never_written() {
    let srv = TestServer::start();
    let (red, alpha, beta) = fixture(&srv);
    srv.create_collection(&json!({"name": "pv", "type": "view", "listRule": "",
        "viewRule": "n > 3",
        "viewQuery": "select p.id, p.title, p.n, p.tag, t.title as tagTitle, p.secret \
                      from posts p left join tags t on t.id = p.tag"}));
    let g = srv.guest();
    let (st, v) = g.get("/api/collections/pv/records?sort=-n&filter=tagTitle%3D'red'");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["totalItems"], 2);
    assert_eq!(v["items"][0]["title"], "Alpha");
    assert_eq!(v["items"][0]["collectionName"], "pv");
    assert!(
        v["items"][0].get("secret").is_none(),
        "a hidden source field stays hidden: {v}"
    );
    let (_, v) = g.get("/api/collections/pv/records?sort=title&fields=id,title");
    assert_eq!(v["items"][0], json!({"id": alpha, "title": "Alpha"}));
    let (_, v) = g.get("/api/collections/pv/records?sort=title&expand=tag");
    assert_eq!(v["items"][0]["expand"]["tag"]["id"], json!(red));
    let (st, _) = g.get(&format!("/api/collections/pv/records/{alpha}"));
    assert_eq!(st, 200);
    let (st, _) = g.get(&format!("/api/collections/pv/records/{beta}"));
    assert_eq!(st, 404, "the view rule applies");
    let before = snapshot(&srv);
    let su = srv.su();
    for (method, path) in [
        ("POST", "/api/collections/pv/records".to_string()),
        ("PATCH", format!("/api/collections/pv/records/{alpha}")),
        ("DELETE", format!("/api/collections/pv/records/{alpha}")),
        ("DELETE", "/api/collections/pv/truncate".to_string()),
    ] {
        for c in [&su, &g] {
            let (st, v) = c.send(method, &path, Some(&json!({"title": "x"})));
            let want = if path.ends_with("truncate") && std::ptr::eq(c, &g) {
                401 // a superuser route
            } else {
                400
            };
            assert_eq!(st, want, "{method} {path}: {v}");
        }
    }
    let (st, v) = su.post(
        "/api/batch",
        &json!({"requests": [{"method": "POST", "url": "/api/collections/pv/records", "body": {}}]}),
    );
    assert_ne!(st, 200, "{v}");
    // Not a relation target; its sources stay while it reads them.
    let (st, v) = su.post(
        "/api/collections",
        &json!({"name": "refs", "type": "base",
            "fields": [{"name": "r", "type": "relation", "collectionId": "pv"}]}),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = su.delete("/api/collections/posts");
    assert_eq!(st, 400, "{v}");
    assert_eq!(snapshot(&srv), before, "nothing changed");
    let (st, _) = su.delete("/api/collections/pv");
    assert_eq!(st, 204);
    let (st, _) = su.delete("/api/collections/posts");
    assert_eq!(st, 204, "a source without views can go");
}

#[test]
fn the_sqlite_view_holds_only_the_rendered_query() {
    let srv = TestServer::start();
    fixture(&srv);
    srv.create_collection(&json!({"name": "pv", "type": "view",
        "viewQuery": "SELECT id /* a note */, title AS T FROM posts WHERE n > 1"}));
    let db = srv.open_db();
    let sql: String = db
        .query_row("SELECT sql FROM sqlite_master WHERE name = 'pv'", [], |r| {
            r.get(0)
        })
        .expect("view");
    assert!(
        sql.contains(r#"SELECT "id", "title" AS "T" FROM "posts" WHERE ("n" > 1)"#),
        "{sql}"
    );
    assert!(!sql.contains("note"), "comments are not kept: {sql}");
    // A changed query makes the view again.
    let (st, v) = srv.su().patch(
        "/api/collections/pv",
        &json!({"viewQuery": "select id, n from posts"}),
    );
    assert_eq!(st, 200, "{v}");
    assert!(v["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .any(|f| f["name"] == "n"));
    let (_, list) = srv.su().get("/api/collections/pv/records");
    assert_eq!(list["totalItems"], 2);
    assert!(list["items"][0].get("n").is_some(), "{list}");
}

#[test]
fn refused_queries_change_nothing() {
    let srv = TestServer::start();
    fixture(&srv);
    let before = snapshot(&srv);
    let su = srv.su();
    for q in [
        "delete from posts",
        "select id from posts; delete from posts",
        "select id from posts /* ; drop table posts */",
        "drop table posts",
        "attach database 'x.db' as x",
        "pragma writable_schema = 1",
        "select name as id from sqlite_master",
        "select id, value from _params",
        "select id from _keepd_migrations",
        "select id from posts where 0 < (select count(*) from pragma_table_info('posts'))",
        "select id, load_extension('x') as e from posts",
        "select id, readfile('/etc/passwd') as f from posts",
        "select id, password from _superusers",
        "select id, tokenKey from users",
        "select * from posts",
        "select id, nope from posts",
        "select id from nope",
        "with recursive c(x) as (select 1 union all select x + 1 from c) select x as id from c",
        "select id, zeroblob(1000000000) as z from posts",
        "select id from main.posts",
    ] {
        let (st, v) = su.post(
            "/api/collections",
            &json!({"name": "bad", "type": "view", "viewQuery": q}),
        );
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(
            v["data"]["viewQuery"]["code"], "validation_invalid_view_query",
            "{q}: {v}"
        );
        let (st, v) = su.post("/api/collections/meta/dry-run-view", &json!({"query": q}));
        assert_eq!(st, 400, "{q}: {v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Invalid view query. Raw error: \n"),
            "{q}: {v}"
        );
    }
    assert_eq!(snapshot(&srv), before);
}

#[test]
fn dry_run_view_as_pocketbase() {
    let srv = TestServer::start();
    let (_, alpha, _) = fixture(&srv);
    let (st, v) = srv.guest().post(
        "/api/collections/meta/dry-run-view",
        &json!({"query": "select id from posts"}),
    );
    assert_eq!(st, 401, "{v}");
    let su = srv.su();
    let (st, v) = su.post("/api/collections/meta/dry-run-view", &json!({}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["query"]["code"], "validation_required");
    let (st, v) = su.post(
        "/api/collections/meta/dry-run-view",
        &json!({"query": "select id, title, secret from posts order by title"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["fields"][1]["name"], "title");
    let sample = v["sample"].as_array().expect("sample");
    assert_eq!(sample.len(), 2);
    assert_eq!(sample[0]["id"], json!(alpha));
    assert_eq!(sample[0]["title"], "Alpha");
    assert!(sample[0].get("secret").is_none(), "hidden: {v}");
    assert!(sample[0]["collectionName"]
        .as_str()
        .unwrap_or_default()
        .starts_with("temp_view_"));
    let (st, v) = su.post(
        "/api/collections/meta/dry-run-view",
        &json!({"query": "select p.id from posts p, posts p2"}),
    );
    assert_eq!(st, 400, "{v}");
    // Nothing was saved.
    let (_, list) = su.get("/api/collections?filter=type%3D'view'");
    assert_eq!(list["totalItems"], 0, "{list}");
}

#[test]
fn collections_import_makes_the_views() {
    let srv = TestServer::start();
    fixture(&srv);
    let su = srv.su();
    let (_, list) = su.get("/api/collections?perPage=100");
    let mut all: Vec<Value> = list["items"].as_array().expect("items").clone();
    all.push(json!({"name": "v2", "type": "view", "listRule": "",
        "viewQuery": "select id, t from v1"}));
    all.push(json!({"name": "v1", "type": "view", "listRule": "",
        "viewQuery": "select id, upper(title) as t from posts"}));
    let (st, v) = su.send(
        "PUT",
        "/api/collections/import",
        Some(&json!({"collections": all})),
    );
    assert_eq!(st, 204, "{v}");
    let (st, v) = srv.guest().get("/api/collections/v2/records?sort=t");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"][0]["t"], "ALPHA");
    // A refused query fails the import, which changes nothing.
    let before = snapshot(&srv);
    let mut bad: Vec<Value> = list["items"].as_array().expect("items").clone();
    bad.push(
        json!({"name": "v3", "type": "view", "viewQuery": "select name as id from sqlite_master"}),
    );
    let (st, v) = su.send(
        "PUT",
        "/api/collections/import",
        Some(&json!({"collections": bad})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(snapshot(&srv), before);
}
