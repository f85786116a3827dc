//! Records CRUD over HTTP, and each field type's coercion and validation as
//! a table: input → stored value, or → 400 with `data.FIELD.code`.

use crate::common::*;
use serde_json::{json, Value};

/// `authors` (name) and `items` with one field of every type under test.
/// Returns (items collection JSON, author ids).
fn setup(srv: &TestServer) -> (Value, Vec<String>) {
    let authors = srv.create_collection(&json!({
        "name": "authors", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "name", "type": "text"}]
    }));
    let aid = authors["id"].as_str().expect("authors id").to_string();
    let items = srv.create_collection(&json!({
        "name": "items", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": true, "max": 10},
            {"name": "code", "type": "text", "pattern": "^[a-z]+$"},
            {"name": "qty", "type": "number", "min": -10, "max": 100},
            {"name": "whole", "type": "number", "onlyInt": true},
            {"name": "flag", "type": "bool"},
            {"name": "mail", "type": "email", "exceptDomains": ["spam.io"]},
            {"name": "link", "type": "url"},
            {"name": "when", "type": "date", "min": "2000-01-01 00:00:00.000Z"},
            {"name": "kind", "type": "select", "values": ["a", "b", "c"], "maxSelect": 1},
            {"name": "tags", "type": "select", "values": ["x", "y", "z"], "maxSelect": 2},
            {"name": "meta", "type": "json", "maxSize": 100},
            {"name": "owner", "type": "relation", "collectionId": aid, "maxSelect": 1},
            {"name": "refs", "type": "relation", "collectionId": aid, "maxSelect": 3},
            {"name": "geo", "type": "geoPoint"}
        ]
    }));
    let su = srv.su();
    let mut author_ids = Vec::new();
    for n in ["ann", "bob", "cid", "dee"] {
        let (st, v) = su.post("/api/collections/authors/records", &json!({"name": n}));
        assert_eq!(st, 200, "{v}");
        author_ids.push(v["id"].as_str().expect("id").to_string());
    }
    (items, author_ids)
}

enum Want {
    /// 200 and this stored value.
    Stored(Value),
    /// 400 with this `data.<field>.code`.
    Code(&'static str),
}
use Want::*;

#[test]
fn field_coercion_and_validation_table() {
    let srv = TestServer::start();
    let (_, a) = setup(&srv);
    let long_json = json!({"k": "v".repeat(200)});
    let cases: Vec<(&str, Value, Want)> = vec![
        // text (required, max 10)
        ("title", json!("hello"), Stored(json!("hello"))),
        ("title", json!(123), Stored(json!("123"))),
        ("title", json!(1.5), Stored(json!("1.5"))),
        ("title", json!("ünïcödé🙂"), Stored(json!("ünïcödé🙂"))),
        ("title", json!("0123456789"), Stored(json!("0123456789"))),
        (
            "title",
            json!("01234567890"),
            Code("validation_max_text_constraint"),
        ),
        ("title", json!(""), Code("validation_required")),
        ("title", json!(null), Code("validation_required")),
        // text with a pattern
        ("code", json!("abc"), Stored(json!("abc"))),
        ("code", json!("ABC"), Code("validation_invalid_format")),
        ("code", json!(""), Stored(json!(""))),
        // number (min -10, max 100)
        ("qty", json!(5), Stored(json!(5))),
        ("qty", json!("12"), Stored(json!(12))),
        ("qty", json!("1.5"), Stored(json!(1.5))),
        ("qty", json!(-10), Stored(json!(-10))),
        ("qty", json!(100), Stored(json!(100))),
        ("qty", json!(true), Stored(json!(1))),
        ("qty", json!("abc"), Stored(json!(0))),
        ("qty", json!(null), Stored(json!(0))),
        ("qty", json!(101), Code("validation_max_number_constraint")),
        ("qty", json!(-11), Code("validation_min_number_constraint")),
        // number, integers only
        ("whole", json!(3), Stored(json!(3))),
        ("whole", json!("4"), Stored(json!(4))),
        ("whole", json!(3.5), Code("validation_only_int_constraint")),
        // bool
        ("flag", json!(true), Stored(json!(true))),
        ("flag", json!("true"), Stored(json!(true))),
        ("flag", json!("1"), Stored(json!(true))),
        ("flag", json!(1), Stored(json!(true))),
        ("flag", json!(0), Stored(json!(false))),
        ("flag", json!("false"), Stored(json!(false))),
        ("flag", json!("yes"), Stored(json!(false))),
        ("flag", json!(null), Stored(json!(false))),
        // email (spam.io excluded)
        ("mail", json!("a@b.io"), Stored(json!("a@b.io"))),
        ("mail", json!(""), Stored(json!(""))),
        ("mail", json!("nope"), Code("validation_is_email")),
        ("mail", json!("a b@c.io"), Code("validation_is_email")),
        (
            "mail",
            json!("x@spam.io"),
            Code("validation_email_domain_not_allowed"),
        ),
        // url
        (
            "link",
            json!("https://example.com/x?y=1"),
            Stored(json!("https://example.com/x?y=1")),
        ),
        ("link", json!("not a url"), Code("validation_invalid_url")),
        // PocketBase's is.URL accepts a scheme-less host.
        ("link", json!("example.com"), Stored(json!("example.com"))),
        ("link", json!("http://"), Code("validation_invalid_url")),
        // date (min 2000-01-01)
        (
            "when",
            json!("2024-05-06 07:08:09.123Z"),
            Stored(json!("2024-05-06 07:08:09.123Z")),
        ),
        (
            "when",
            json!("2024-05-06T07:08:09Z"),
            Stored(json!("2024-05-06 07:08:09.000Z")),
        ),
        (
            "when",
            json!("2024-05-06"),
            Stored(json!("2024-05-06 00:00:00.000Z")),
        ),
        ("when", json!(""), Stored(json!(""))),
        ("when", json!("garbage"), Stored(json!(""))),
        (
            "when",
            json!("1999-12-31 23:59:59.000Z"),
            Code("validation_min_greater_equal_than_required"),
        ),
        // select, single
        ("kind", json!("a"), Stored(json!("a"))),
        ("kind", json!(["a", "b"]), Stored(json!("b"))),
        ("kind", json!(""), Stored(json!(""))),
        ("kind", json!("d"), Code("validation_invalid_value")),
        // select, multiple (max 2)
        ("tags", json!("x"), Stored(json!(["x"]))),
        ("tags", json!(["x", "y"]), Stored(json!(["x", "y"]))),
        ("tags", json!(["x", "x"]), Stored(json!(["x"]))),
        ("tags", json!([]), Stored(json!([]))),
        (
            "tags",
            json!(["x", "y", "z"]),
            Code("validation_too_many_values"),
        ),
        ("tags", json!(["q"]), Code("validation_invalid_value")),
        // json (max 100 bytes)
        ("meta", json!({"a": 1}), Stored(json!({"a": 1}))),
        (
            "meta",
            json!([1, "two", null]),
            Stored(json!([1, "two", null])),
        ),
        ("meta", json!(5), Stored(json!(5))),
        ("meta", json!(true), Stored(json!(true))),
        ("meta", json!("{\"a\":2}"), Stored(json!({"a": 2}))),
        ("meta", json!(null), Stored(json!(null))),
        ("meta", long_json, Code("validation_json_size_limit")),
        // relation, single
        ("owner", json!(a[0]), Stored(json!(a[0]))),
        ("owner", json!([a[0], a[1]]), Stored(json!(a[1]))),
        ("owner", json!(""), Stored(json!(""))),
        (
            "owner",
            json!("missing00000001"),
            Code("validation_missing_rel_records"),
        ),
        // relation, multiple (max 3)
        ("refs", json!([a[0], a[1]]), Stored(json!([a[0], a[1]]))),
        ("refs", json!(a[2]), Stored(json!([a[2]]))),
        ("refs", json!([a[0], a[0]]), Stored(json!([a[0]]))),
        (
            "refs",
            json!([a[0], a[1], a[2], a[3]]),
            Code("validation_too_many_values"),
        ),
        (
            "refs",
            json!([a[0], "missing00000001"]),
            Code("validation_missing_rel_records"),
        ),
        // geoPoint
        (
            "geo",
            json!({"lon": 1.5, "lat": -2.25}),
            Stored(json!({"lon": 1.5, "lat": -2.25})),
        ),
        (
            "geo",
            json!({"lon": 180, "lat": 90}),
            Stored(json!({"lon": 180, "lat": 90})),
        ),
        ("geo", json!(null), Stored(json!({"lon": 0, "lat": 0}))),
        (
            "geo",
            json!({"lon": 181, "lat": 0}),
            Code("validation_invalid_longitude"),
        ),
        (
            "geo",
            json!({"lon": 0, "lat": -91}),
            Code("validation_invalid_latitude"),
        ),
    ];
    let su = srv.su();
    let mut failures = Vec::new();
    for (field, input, want) in &cases {
        let mut body = json!({"title": "t"});
        body[*field] = input.clone();
        let (st, v) = su.post("/api/collections/items/records", &body);
        let label = format!("{field} = {input}");
        match want {
            Stored(expected) => {
                if st != 200 {
                    failures.push(format!("{label}: want 200 {expected}, got {st} {v}"));
                    continue;
                }
                if &v[*field] != expected {
                    failures.push(format!(
                        "{label}: create answered {}, want {expected}",
                        v[*field]
                    ));
                    continue;
                }
                // Round trip through the database.
                let id = v["id"].as_str().unwrap_or_default();
                let (st, got) = su.get(&format!("/api/collections/items/records/{id}"));
                if st != 200 || &got[*field] != expected {
                    failures.push(format!(
                        "{label}: view answered {st} {}, want {expected}",
                        got[*field]
                    ));
                }
            }
            Code(code) => {
                if st != 400 || v["data"][*field]["code"] != json!(code) {
                    failures.push(format!("{label}: want 400 {code}, got {st} {v}"));
                    continue;
                }
                assert_error_shape(&v, 400, &label);
                if v["data"][*field]["message"]
                    .as_str()
                    .is_none_or(str::is_empty)
                {
                    failures.push(format!("{label}: error has no message: {v}"));
                }
            }
        }
    }
    // No failed create left a row behind.
    let stored = cases.iter().filter(|c| matches!(c.2, Stored(_))).count() as i64;
    let (_, list) = su.list("items", &[("perPage", "1")]);
    if list["totalItems"] != json!(stored) {
        failures.push(format!(
            "totalItems {} after the table, want {stored}",
            list["totalItems"]
        ));
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
fn crud_roundtrip() {
    let srv = TestServer::start();
    let (items, a) = setup(&srv);
    let su = srv.su();
    let body = json!({
        "title": "first", "code": "abc", "qty": 7, "whole": 2, "flag": true,
        "mail": "me@example.com", "link": "https://example.com", "when": "2024-01-02 03:04:05.678Z",
        "kind": "b", "tags": ["x", "z"], "meta": {"n": [1, 2]}, "owner": a[0], "refs": [a[1], a[2]],
        "geo": {"lon": 10.5, "lat": 20.25}
    });
    // Create.
    let (st, rec) = su.post("/api/collections/items/records", &body);
    assert_eq!(st, 200, "{rec}");
    let id = rec["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 15, "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(rec["collectionName"], "items");
    assert_eq!(rec["collectionId"], items["id"]);
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&rec[k], v, "field {k}");
    }

    // View, and the stored row in SQLite.
    let (st, got) = su.get(&format!("/api/collections/items/records/{id}"));
    assert_eq!(st, 200);
    assert_eq!(got, rec);
    {
        let db = srv.open_db();
        let (title, qty, flag, tags, owner): (String, i64, i64, String, String) = db
            .query_row(
                "SELECT title, qty, flag, tags, owner FROM items WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("row");
        assert_eq!(
            (title.as_str(), qty, flag, owner.as_str()),
            ("first", 7, 1, a[0].as_str())
        );
        assert_eq!(
            serde_json::from_str::<Value>(&tags).expect("tags json"),
            json!(["x", "z"])
        );
    }

    // A custom id.
    let (st, custom) = su.post(
        "/api/collections/items/records",
        &json!({"id": "customid0000001", "title": "second"}),
    );
    assert_eq!(st, 200, "{custom}");
    assert_eq!(custom["id"], "customid0000001");
    let (st, dup) = su.post(
        "/api/collections/items/records",
        &json!({"id": "customid0000001", "title": "dup"}),
    );
    assert_eq!(st, 400, "{dup}");
    assert_error_shape(&dup, 400, "duplicate id");

    // List.
    let (st, list) = su.list("items", &[("sort", "title")]);
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["page"], 1);
    assert_eq!(list["perPage"], 30);
    assert_eq!(list["totalItems"], 2);
    assert_eq!(list["totalPages"], 1);
    assert_eq!(column(&list, "title"), ["first", "second"]);
    let (_, paged) = su.list(
        "items",
        &[("sort", "title"), ("perPage", "1"), ("page", "2")],
    );
    assert_eq!(
        (
            paged["page"].clone(),
            paged["perPage"].clone(),
            paged["totalPages"].clone()
        ),
        (json!(2), json!(1), json!(2))
    );
    assert_eq!(column(&paged, "title"), ["second"]);
    let (_, skip) = su.list("items", &[("skipTotal", "1")]);
    assert_eq!(
        (skip["totalItems"].clone(), skip["totalPages"].clone()),
        (json!(-1), json!(-1))
    );
    let (_, picked) = su.list("items", &[("fields", "id,title"), ("sort", "-title")]);
    assert_eq!(
        picked["items"][0],
        json!({"id": "customid0000001", "title": "second"})
    );

    // Expand a relation.
    let (st, ex) = su.get(&format!(
        "/api/collections/items/records/{id}?expand=owner,refs"
    ));
    assert_eq!(st, 200);
    assert_eq!(ex["expand"]["owner"]["name"], "ann");
    assert_eq!(
        column(&json!({"items": ex["expand"]["refs"]}), "name"),
        ["bob", "cid"]
    );

    // Update with modifiers.
    let (st, up) = su.patch(
        &format!("/api/collections/items/records/{id}"),
        &json!({"title": "renamed", "qty+": 5, "whole-": 3, "tags-": "x", "+refs": a[0]}),
    );
    assert_eq!(st, 200, "{up}");
    assert_eq!(up["title"], "renamed");
    assert_eq!(up["qty"], 12);
    assert_eq!(up["whole"], -1);
    assert_eq!(up["tags"], json!(["z"]));
    assert_eq!(up["refs"], json!([a[0], a[1], a[2]]));
    // Appending a 4th would exceed maxSelect 3.
    let (st, over) = su.patch(
        &format!("/api/collections/items/records/{id}"),
        &json!({"refs+": a[3]}),
    );
    assert_eq!(
        (st, over["data"]["refs"]["code"].clone()),
        (400, json!("validation_too_many_values")),
        "{over}"
    );
    let (st, up) = su.patch(
        &format!("/api/collections/items/records/{id}"),
        &json!({"refs-": [a[1], a[2]], "refs+": a[3]}),
    );
    assert_eq!(st, 200, "{up}");
    assert_eq!(up["refs"], json!([a[0], a[3]]));
    assert_eq!(up["kind"], "b", "untouched fields keep their values");

    // A failed update changes nothing.
    let (st, bad) = su.patch(
        &format!("/api/collections/items/records/{id}"),
        &json!({"title": "way too long title", "qty": 1}),
    );
    assert_eq!(st, 400);
    assert_eq!(
        bad["data"]["title"]["code"],
        "validation_max_text_constraint"
    );
    let (_, after) = su.get(&format!("/api/collections/items/records/{id}"));
    assert_eq!(after["qty"], 12);
    assert_eq!(after["title"], "renamed");

    // The id cannot change.
    let (st, pk) = su.patch(
        &format!("/api/collections/items/records/{id}"),
        &json!({"id": "otherid00000001"}),
    );
    assert_eq!(st, 400, "{pk}");

    // Delete.
    let (st, v) = su.delete(&format!("/api/collections/items/records/{id}"));
    assert_eq!(st, 204, "{v}");
    assert_eq!(v, Value::Null, "204 has no body");
    let (st, gone) = su.get(&format!("/api/collections/items/records/{id}"));
    assert_eq!(st, 404);
    assert_error_shape(&gone, 404, "view deleted");
    let (st, _) = su.delete(&format!("/api/collections/items/records/{id}"));
    assert_eq!(st, 404);
    let n: i64 = srv
        .open_db()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count");
    assert_eq!(n, 1);
}

#[test]
fn relation_delete_rules() {
    let srv = TestServer::start();
    let (_, a) = setup(&srv);
    let su = srv.su();
    // A required relation blocks deleting its target; cascadeDelete removes the referrer.
    let authors_id = {
        let (_, c) = su.get("/api/collections/authors");
        c["id"].as_str().expect("id").to_string()
    };
    srv.create_collection(&json!({
        "name": "books", "type": "base",
        "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "author", "type": "relation", "collectionId": authors_id, "maxSelect": 1, "required": true}
        ]
    }));
    srv.create_collection(&json!({
        "name": "notes", "type": "base",
        "fields": [
            {"name": "author", "type": "relation", "collectionId": authors_id, "maxSelect": 1, "cascadeDelete": true}
        ]
    }));
    let (st, v) = su.post(
        "/api/collections/books/records",
        &json!({"title": "b1", "author": a[0]}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = su.post("/api/collections/books/records", &json!({"title": "b2"}));
    assert_eq!(
        (st, v["data"]["author"]["code"].clone()),
        (400, json!("validation_required")),
        "{v}"
    );
    let (st, n) = su.post("/api/collections/notes/records", &json!({"author": a[1]}));
    assert_eq!(st, 200, "{n}");

    let (st, v) = su.delete(&format!("/api/collections/authors/records/{}", a[0]));
    assert_eq!(st, 400, "a required reference blocks the delete: {v}");
    assert_error_shape(&v, 400, "blocked delete");
    let (st, _) = su.get(&format!("/api/collections/authors/records/{}", a[0]));
    assert_eq!(st, 200, "still there");

    let (st, _) = su.delete(&format!("/api/collections/authors/records/{}", a[1]));
    assert_eq!(st, 204);
    let (st, _) = su.get(&format!(
        "/api/collections/notes/records/{}",
        n["id"].as_str().unwrap_or_default()
    ));
    assert_eq!(st, 404, "cascadeDelete removed the note");

    // A non-required single relation is cleared when its target goes.
    let (st, it) = su.post(
        "/api/collections/items/records",
        &json!({"title": "t", "owner": a[2], "refs": [a[2], a[3]]}),
    );
    assert_eq!(st, 200, "{it}");
    let (st, _) = su.delete(&format!("/api/collections/authors/records/{}", a[2]));
    assert_eq!(st, 204);
    let (_, it) = su.get(&format!(
        "/api/collections/items/records/{}",
        it["id"].as_str().unwrap_or_default()
    ));
    assert_eq!(it["owner"], "");
    assert_eq!(it["refs"], json!([a[3]]));
}
