//! A list's total where the filter gives an indexed range
//! (`store::records::count_list`): the range's size is asked of the index,
//! and a range holding a quarter of the table or more is counted by
//! reading the table instead of a seek per row. Every total here is
//! checked against SQLite's own `COUNT(*)` on the same file, and the tests
//! prove which plan counted.

use crate::common::*;
use serde_json::{json, Value};

/// A server logging how each list was counted, with no answer cache (every
/// request computed).
fn server() -> TestServer {
    TestServer::builder()
        .env("KEEPD_LOG", "warn,keepd::store::records=trace")
        .env("KEEPD_LIST_CACHE_BYTES", "0")
        .start()
}

const READ_WHOLE: &str = "list counted by reading the table";

fn read_whole(srv: &TestServer) -> usize {
    srv.output().matches(READ_WHOLE).count()
}

/// `readings`: `rows` records, `n` = 0… and `at` one minute apart (both
/// indexed), every tenth titled "hidden", which the list rule leaves out.
fn seed(srv: &TestServer, name: &str, rows: usize) {
    srv.create_collection(&json!({
        "name": name, "type": "base", "listRule": "title != 'hidden'",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "at", "type": "date"}
        ],
        "indexes": [
            format!("CREATE INDEX idx_{name}_n ON {name} (n)"),
            format!("CREATE INDEX idx_{name}_at ON {name} (at)")
        ],
    }));
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"batch": {"enabled": true, "maxRequests": 200}}),
    );
    assert_eq!(st, 200, "{v}");
    let url = format!("/api/collections/{name}/records");
    for chunk in (0..rows).collect::<Vec<_>>().chunks(200) {
        let reqs: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                let title = if i % 10 == 0 {
                    "hidden".to_string()
                } else {
                    format!("t{i}")
                };
                json!({"method": "POST", "url": url, "body": {
                    "title": title, "n": i,
                    "at": format!("2026-01-01 {:02}:{:02}:00.000Z", i / 60, i % 60),
                }})
            })
            .collect();
        let (st, v) = srv.su().post("/api/batch", &json!({ "requests": reqs }));
        assert_eq!(st, 200, "{v}");
    }
}

/// The guest's total for `filter` against SQLite's count of `sql_where`
/// under the list rule; whether it was counted by reading the table.
fn counted(srv: &TestServer, name: &str, filter: &str, sql_where: &str) -> bool {
    let before = read_whole(srv);
    let (st, v) = srv
        .guest()
        .list(name, &[("filter", filter), ("perPage", "5")]);
    assert_eq!(st, 200, "{filter}: {v}");
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    let want: i64 = db
        .query_row(
            &format!("SELECT COUNT(*) FROM {name} WHERE title != 'hidden' AND ({sql_where})"),
            [],
            |r| r.get(0),
        )
        .expect("oracle count");
    assert_eq!(v["totalItems"], want, "{filter}: {v}");
    assert_eq!(
        v["items"].as_array().map(Vec::len),
        Some(want.min(5) as usize),
        "{v}"
    );
    // The log is written as the request is answered; give it a moment.
    for _ in 0..50 {
        if read_whole(srv) > before {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn a_broad_indexed_range_is_counted_by_reading_the_table() {
    if is_reference() {
        return;
    }
    let srv = server();
    seed(&srv, "readings", 1_200);
    // A range of most rows, with a term the index can't answer (the
    // count would otherwise seek each row): read whole.
    assert!(counted(
        &srv,
        "readings",
        "n > 100 && title != 'x'",
        "n > 100 AND title != 'x'"
    ));
    assert!(counted(
        &srv,
        "readings",
        "100 < n && title != 'x'",
        "n > 100 AND title != 'x'"
    ));
    assert!(counted(
        &srv,
        "readings",
        "n >= 100 && n < 1000 && title != 'x'",
        "n >= 100 AND n < 1000 AND title != 'x'"
    ));
    assert!(counted(
        &srv,
        "readings",
        "at > '2026-01-01 02:00:00.000Z' && title != 'x'",
        "at > '2026-01-01 02:00:00.000Z' AND title != 'x'"
    ));
    // Narrow ranges keep the index: both bounds of a range are asked
    // (`n >= 100` alone would hold 1,100 rows).
    assert!(!counted(
        &srv,
        "readings",
        "n > 1100 && title != 'x'",
        "n > 1100 AND title != 'x'"
    ));
    assert!(!counted(
        &srv,
        "readings",
        "n >= 100 && n < 200 && title != 'x'",
        "n >= 100 AND n < 200 AND title != 'x'"
    ));
    // No range at the top level: the engine's plan.
    assert!(!counted(
        &srv,
        "readings",
        "(n > 100 || n < 5) && title != 'x'",
        "(n > 100 OR n < 5) AND title != 'x'"
    ));
    // The rule's own rows left out either way; nothing matching.
    assert!(!counted(
        &srv,
        "readings",
        "n > 5000 && title != 'x'",
        "n > 5000 AND title != 'x'"
    ));
}

#[test]
fn a_small_table_is_counted_as_the_engine_plans() {
    if is_reference() {
        return;
    }
    let srv = server();
    seed(&srv, "few", 400);
    assert!(!counted(
        &srv,
        "few",
        "n > 10 && title != 'x'",
        "n > 10 AND title != 'x'"
    ));
}
