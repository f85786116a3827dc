//! Reserved collection names: SQLite's tables, PocketBase's internal tables
//! and keepd's own must be refused on create and rename with PocketBase's
//! validation error (`data.name`), never a 500, and nothing may change.

use crate::common::*;
use serde_json::{json, Value};

/// Every table name in the database with its row count.
fn tables(srv: &TestServer) -> String {
    let db = srv.open_db();
    let mut st = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables");
    let names: Vec<String> = st
        .query_map([], |r| r.get(0))
        .expect("query")
        .filter_map(Result::ok)
        .collect();
    names
        .iter()
        .map(|t| {
            let n: i64 = db
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .expect("count");
            format!("{t}={n}")
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn assert_name_invalid(st: u16, v: &Value, action: &str, name: &str) {
    assert_eq!(st, 400, "{name}: {v}");
    assert_eq!(
        v["message"],
        format!("Failed to {action} collection."),
        "{name}: {v}"
    );
    assert_eq!(
        v["data"]["name"]["code"], "validation_collection_name_invalid",
        "{name}: {v}"
    );
    assert_eq!(
        v["data"]["name"]["message"], "The name shouldn't match with an existing internal table.",
        "{name}: {v}"
    );
}

const RESERVED: &[&str] = &[
    "_collections",
    "_params",
    "_migrations",
    "_COLLECTIONS",
    "_keepd_audit",
    "_keepd_migrations",
    "_keepd_totp",
    "_KEEPD_AUDIT",
    "sqlite_master",
    "sqlite_sequence",
    "sqlite_stat1",
    "SQLITE_MASTER",
    "sqlite_anything",
];

#[test]
fn reserved_names_are_refused_on_create() {
    let srv = TestServer::start();
    let su = srv.su();
    let before = tables(&srv);
    for name in RESERVED {
        for kind in ["base", "auth"] {
            let (st, v) = su.post("/api/collections", &json!({"name": name, "type": kind}));
            assert_name_invalid(st, &v, "create", name);
        }
    }
    assert_eq!(tables(&srv), before, "nothing was created");
    // The ordinary neighbours of those names are fine.
    for name in ["collections", "params_", "keepd_audit", "sqlitemaster"] {
        let (st, v) = su.post("/api/collections", &json!({"name": name}));
        assert_eq!(st, 200, "{name}: {v}");
    }
}

#[test]
fn reserved_names_are_refused_on_rename() {
    let srv = TestServer::start();
    let su = srv.su();
    let (st, v) = su.post("/api/collections", &json!({"name": "notes"}));
    assert_eq!(st, 200, "{v}");
    let before = tables(&srv);
    for name in RESERVED {
        let (st, v) = su.patch("/api/collections/notes", &json!({"name": name}));
        assert_name_invalid(st, &v, "update", name);
    }
    assert_eq!(tables(&srv), before, "nothing was renamed");
    let (st, v) = su.get("/api/collections/notes");
    assert_eq!(st, 200, "{v}");
}
