//! A timing loop for rule evaluation (not run by default):
//!
//! ```sh
//! cargo test -p keepd --profile cross-test --lib rules::bench -- --ignored --nocapture
//! ```
//!
//! It prints the time per call of `rule_cond` and `list_query` for a few
//! typical rules, as a user, as the API calls them on every request.

use super::*;
use crate::auth::identity::{AuthRecord, Identity};
use crate::schema::parse::collection_from_json;
use serde_json::json;
use std::time::Instant;

pub(super) fn schema() -> Schema {
    let id = json!({"name": "id", "type": "text", "primaryKey": true, "system": true});
    let defs = [
        json!({"id": "_pb_users_auth_", "name": "users", "type": "auth", "listRule": "", "fields": [id,
            {"name": "password", "type": "password", "hidden": true, "system": true},
            {"name": "tokenKey", "type": "text", "hidden": true, "system": true},
            {"name": "email", "type": "email", "system": true},
            {"name": "emailVisibility", "type": "bool", "system": true},
            {"name": "verified", "type": "bool", "system": true},
            {"name": "name", "type": "text"}, {"name": "role", "type": "text"}]}),
        json!({"id": "pbc_docs", "name": "docs", "type": "base",
            "listRule": "owner = @request.auth.id",
            "viewRule": "@request.auth.id != '' && (public = true || owner = @request.auth.id || editors.id ?= @request.auth.id) && @request.auth.verified = true",
            "createRule": "@request.auth.id != '' && @request.body.owner = @request.auth.id && @request.body.title != ''",
            "updateRule": "owner.role = 'admin' || @request.auth.role = 'editor' && created > @yesterday",
            "fields": [id, {"name": "title", "type": "text"}, {"name": "public", "type": "bool"},
                {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "editors", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 9},
                {"name": "created", "type": "autodate", "onCreate": true}]}),
    ];
    Schema::new(
        defs.iter()
            .map(|d| collection_from_json(d).expect("collection"))
            .collect(),
    )
}

fn time(label: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let per = t.elapsed().as_nanos() / u128::from(n);
    println!("{label:<40} {per:>8} ns/call");
}

#[test]
#[ignore = "a timing loop; run by hand"]
fn rule_evaluation_timing() {
    let schema = schema();
    let users = schema.get("users").expect("users").clone();
    let docs = schema.get("docs").expect("docs").clone();
    let mut record = Map::new();
    for (k, v) in [
        ("id", json!("u1aaaaaaaaaaaaa")),
        ("email", json!("a@x.io")),
        ("emailVisibility", json!(false)),
        ("verified", json!(true)),
        ("name", json!("A")),
        ("role", json!("editor")),
        ("tokenKey", json!("k")),
        ("password", json!("$argon2id$...")),
    ] {
        record.insert(k.into(), v);
    }
    let mut body = Map::new();
    body.insert("owner".into(), json!("u1aaaaaaaaaaaaa"));
    body.insert("title".into(), json!("hello"));
    let req = RequestCtx {
        identity: Identity::User(AuthRecord {
            collection: users,
            record: record.into(),
        }),
        method: "GET".into(),
        context: "default".into(),
        body,
        ..Default::default()
    };
    let n = 20_000;
    for (label, rule) in [
        (
            "rule_cond list (owner = auth.id)",
            docs.list_rule.as_deref(),
        ),
        (
            "rule_cond view (relation, 4 terms)",
            docs.view_rule.as_deref(),
        ),
        ("rule_cond create (body)", docs.create_rule.as_deref()),
        (
            "rule_cond update (join, @yesterday)",
            docs.update_rule.as_deref(),
        ),
    ] {
        time(label, n, || {
            let c = rule_cond(&schema, &docs, rule, &req).expect("rule");
            assert!(c.is_some_and(|c| !c.sql.is_empty()));
        });
    }
    time("list_query, no filter/sort", n, || {
        let q = list_query(&schema, &docs, &req, "", "", 3500).expect("list");
        assert!(!q.cond.sql.is_empty());
    });
    time("list_query, filter + sort", n, || {
        let q = list_query(&schema, &docs, &req, "title ~ 'x'", "-created", 3500).expect("list");
        assert!(!q.cond.sql.is_empty());
    });
}
