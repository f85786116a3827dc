//! Lists the store sorts itself (`store::records::list_counted`): when no
//! index gives a list's order, the engine reads every matching row to sort
//! it anyway, so keepd counts them and keeps the page's window in the same
//! pass, then reads the page's rows by row id. Every answer here is checked
//! against SQLite's own `ORDER BY … LIMIT … OFFSET` and `COUNT(*)` on the
//! same database file (ties included: rows with equal keys come in the
//! order the engine gives them), and the tests prove which path answered.

use crate::common::*;
use serde_json::{json, Value};

/// A server logging which path sorted a list, with no answer cache (every
/// request computed).
fn server() -> TestServer {
    TestServer::builder()
        .env("KEEPD_LOG", "warn,keepd::store::records=trace")
        .env("KEEPD_LIST_CACHE_BYTES", "0")
        .start()
}

const SORTED_HERE: &str = "list sorted by the store";

fn sorted_here(srv: &TestServer) -> usize {
    srv.output().matches(SORTED_HERE).count()
}

/// `things`: 150 records with many ties (`n`: 0–6, `tag`: 5 values,
/// `created`: inserted fast), integers and reals in one column (`r`), and
/// a list rule (`n != 5`) that every list carries in its condition.
fn seed(srv: &TestServer, index_n: bool) {
    srv.create_collection(&json!({
        "name": "things", "type": "base", "listRule": "n != 5",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "r", "type": "number"},
            {"name": "tag", "type": "text"},
            {"name": "flag", "type": "bool"},
            {"name": "created", "type": "autodate", "onCreate": true}
        ],
        "indexes": if index_n { json!(["CREATE INDEX idx_things_n ON things (n)"]) } else { json!([]) },
    }));
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"batch": {"enabled": true, "maxRequests": 200}}),
    );
    assert_eq!(st, 200, "{v}");
    let tags = ["b", "a", "", "B", "ä"];
    let reqs: Vec<Value> = (0..150)
        .map(|i| {
            json!({"method": "POST", "url": "/api/collections/things/records", "body": {
                "title": format!("t{i:03}"), "n": i % 7, "r": f64::from(i) / 4.0,
                "tag": tags[i as usize % 5], "flag": i % 3 == 0,
            }})
        })
        .collect();
    let (st, v) = srv.su().post("/api/batch", &json!({ "requests": reqs }));
    assert_eq!(st, 200, "{v}");
}

/// SQLite's own answer: the ids of the page and the count.
fn oracle(
    srv: &TestServer,
    sql_where: &str,
    order: &str,
    per_page: i64,
    page: i64,
) -> (Vec<String>, i64) {
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    let w = format!(
        "WHERE (n != 5){}",
        if sql_where.is_empty() {
            String::new()
        } else {
            format!(" AND ({sql_where})")
        }
    );
    let mut st = db
        .prepare(&format!(
            "SELECT id FROM things {w} ORDER BY {order} LIMIT ?1 OFFSET ?2"
        ))
        .expect("oracle page");
    let ids = st
        .query_map([per_page, (page - 1) * per_page], |r| r.get::<_, String>(0))
        .expect("oracle rows")
        .map(|r| r.expect("row"))
        .collect();
    let total = db
        .query_row(&format!("SELECT COUNT(*) FROM things {w}"), [], |r| {
            r.get(0)
        })
        .expect("oracle count");
    (ids, total)
}

/// Every page of one list (and the one after the last) against the oracle.
fn check_pages(
    srv: &TestServer,
    filter: &str,
    sort: &str,
    sql_where: &str,
    order: &str,
    per_page: i64,
    skip_total: bool,
) {
    let guest = srv.guest();
    let mut page = 1;
    loop {
        let (pp, pg) = (per_page.to_string(), page.to_string());
        let mut q = vec![
            ("filter", filter),
            ("sort", sort),
            ("perPage", pp.as_str()),
            ("page", pg.as_str()),
        ];
        if skip_total {
            q.push(("skipTotal", "1"));
        }
        let (st, v) = guest.list("things", &q);
        assert_eq!(st, 200, "{filter} / {sort}: {v}");
        let (ids, total) = oracle(srv, sql_where, order, per_page, page);
        assert_eq!(
            column(&v, "id"),
            ids,
            "page {page} of {filter:?} sorted {sort:?}, {per_page} per page"
        );
        if skip_total {
            assert_eq!(v["totalItems"], -1, "{v}");
        } else {
            assert_eq!(v["totalItems"], total, "{filter:?}: {v}");
            assert_eq!(v["totalPages"], (total + per_page - 1) / per_page, "{v}");
        }
        if ids.is_empty() {
            break;
        }
        page += 1;
    }
}

#[test]
fn a_list_sorted_by_the_store_is_the_engines_page_ties_and_count_included() {
    if is_reference() {
        return;
    }
    let srv = server();
    seed(&srv, false);
    let before = sorted_here(&srv);
    // Ties on n (kept in the engine's order), then several terms, both
    // directions, text (byte order: "B" < "a" < "b" < "ä"), integers and
    // reals in one column, the creation time (equal for many rows).
    check_pages(&srv, "flag = true", "n", "flag = 1", "n ASC", 7, false);
    check_pages(&srv, "", "-n,title", "", "n DESC, title ASC", 20, false);
    check_pages(
        &srv,
        "n > 2",
        "tag,-r",
        "n > 2",
        "tag ASC, r DESC",
        9,
        false,
    );
    check_pages(&srv, "", "-r", "", "r DESC", 33, false);
    check_pages(
        &srv,
        "flag = false",
        "-tag",
        "flag = 0",
        "tag DESC",
        11,
        true,
    );
    check_pages(&srv, "", "-created", "", "created DESC", 25, false);
    check_pages(
        &srv,
        "title ~ '1'",
        "tag,n,-title",
        "title LIKE '%1%'",
        "tag ASC, n ASC, title DESC",
        4,
        false,
    );
    // Nothing matches.
    check_pages(&srv, "n = 5", "title", "n = 5", "title ASC", 10, false);
    assert!(
        sorted_here(&srv) > before,
        "no list was sorted by the store: the comparison above proved nothing"
    );
}

#[test]
fn an_index_that_gives_the_order_leaves_the_list_to_the_engine() {
    if is_reference() {
        return;
    }
    let srv = server();
    seed(&srv, true);
    let before = sorted_here(&srv);
    check_pages(&srv, "", "n", "", "n ASC", 30, false);
    assert_eq!(
        sorted_here(&srv),
        before,
        "an index-ordered list was sorted by the store"
    );
    // An unindexed term after it: the engine sorts, so the store does.
    check_pages(&srv, "", "r", "", "r ASC", 30, false);
    assert!(
        sorted_here(&srv) > before,
        "an unindexed sort was left to the engine"
    );
}

#[test]
fn a_superusers_list_and_a_deep_page_are_the_engines_too() {
    if is_reference() {
        return;
    }
    let srv = server();
    seed(&srv, false);
    // A superuser's list carries no rule.
    let (st, v) = srv.su().list(
        "things",
        &[("sort", "-tag,title"), ("perPage", "40"), ("page", "2")],
    );
    assert_eq!(st, 200, "{v}");
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    let want: Vec<String> = db
        .prepare("SELECT id FROM things ORDER BY tag DESC, title ASC LIMIT 40 OFFSET 40")
        .expect("prepare")
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(column(&v, "id"), want);
    assert_eq!(v["totalItems"], 150, "{v}");
    // Every item is a whole record.
    assert_eq!(v["items"][0]["collectionName"], "things", "{v}");
    assert!(
        v["items"][0]["title"].is_string() && v["items"][0]["r"].is_number(),
        "{v}"
    );
}

/// With the list cache on, a list paged through keeps its whole order from
/// its third page on and slices the later pages from it (`records::read`):
/// every page, ties included, is still the engine's. The lists, with
/// `idx_things_n` or without, and how each order was read (`what`).
fn sliced_pages_are_the_engines(
    index_n: bool,
    what: &str,
    lists: &[(&str, &str, &str, &str, i64, bool)],
) {
    let srv = TestServer::builder()
        .env(
            "KEEPD_LOG",
            "warn,keepd::records::read=trace,keepd::store::records=trace",
        )
        .start();
    seed(&srv, index_n);
    let seen = |srv: &TestServer, s: &str| srv.output().matches(s).count();
    let before = (seen(&srv, what), seen(&srv, "list order cache hit"));
    for &(filter, sort, sql_where, order, per_page, skip) in lists {
        check_pages(&srv, filter, sort, sql_where, order, per_page, skip);
    }
    assert!(
        wait_until(std::time::Duration::from_secs(5), || seen(&srv, what)
            >= before.0 + lists.len()
            && seen(&srv, "list order cache hit") > before.1 + 10),
        "no page was sliced from a kept order: the comparison above proved nothing"
    );
}

#[test]
fn pages_sliced_from_a_kept_order_are_the_engines() {
    if is_reference() {
        return;
    }
    sliced_pages_are_the_engines(
        false,
        SORTED_HERE,
        &[
            ("", "n", "", "n ASC", 7, false),
            ("flag = false", "-tag", "flag = 0", "tag DESC", 11, true),
            ("n > 2", "tag,-r", "n > 2", "tag ASC, r DESC", 9, false),
        ],
    );
}

/// The same for a list an index orders: its whole order is read by the
/// engine's own statement without LIMIT and OFFSET (when its plan is the
/// page query's), ties in the index's order (equal `n`).
#[test]
fn pages_sliced_from_an_index_order_are_the_engines() {
    if is_reference() {
        return;
    }
    sliced_pages_are_the_engines(
        true,
        "list order read from the engine",
        &[
            ("", "n", "", "n ASC", 7, false),
            ("n > 1", "-n", "n > 1", "n DESC", 9, true),
            ("flag = true", "n", "flag = 1", "n ASC", 5, false),
        ],
    );
}
