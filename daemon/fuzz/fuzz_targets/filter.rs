//! Parses and compiles arbitrary UTF-8 as a filter and as a sort, for a
//! superuser and for a client, against a fixed schema. Asserts that
//! whatever compiles contains no input text (every token of the SQL is a
//! placeholder, a schema name, a generated alias or a compiler constant),
//! that placeholders and parameters agree, and that SQLite accepts and runs
//! the statement. For the client it also asserts non-interference: the
//! answer (rows in order, or the error) is the same on a second database
//! whose hidden data differ (hidden fields, e-mails with
//! `emailVisibility` off), so no syntax reaches them unguarded.
#![no_main]

use keepd::filter::{self, audit, AuthInfo, Ctx, Query, RequestInfo};
use keepd::schema::{parse::collection_from_json, Schema};
use libfuzzer_sys::fuzz_target;
use rusqlite::{params_from_iter, Connection};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::OnceLock;

struct Fixture {
    schema: Schema,
    names: HashSet<String>,
    su: RequestInfo,
    guest: RequestInfo,
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let id = json!({"name": "id", "type": "text", "primaryKey": true});
        let defs = [
            json!({"id": "u", "name": "users", "type": "auth", "listRule": "", "fields": [id,
                {"name": "email", "type": "email"}, {"name": "emailVisibility", "type": "bool"},
                {"name": "password", "type": "password", "hidden": true},
                {"name": "name", "type": "text"}, {"name": "age", "type": "number"},
                {"name": "secret", "type": "text", "hidden": true},
                {"name": "fav", "type": "relation", "collectionId": "p", "maxSelect": 1},
                {"name": "friends", "type": "relation", "collectionId": "u", "maxSelect": 9}]}),
            json!({"id": "l", "name": "locked", "type": "base", "listRule": null, "fields": [id,
                {"name": "code", "type": "text"}]}),
            json!({"id": "p", "name": "posts", "type": "base", "listRule": "", "fields": [id,
                {"name": "title", "type": "text"}, {"name": "views", "type": "number"},
                {"name": "ok", "type": "bool"}, {"name": "meta", "type": "json"},
                {"name": "loc", "type": "geoPoint"}, {"name": "pub", "type": "date"},
                {"name": "tags", "type": "select", "values": ["a", "b"], "maxSelect": 2},
                {"name": "author", "type": "relation", "collectionId": "u", "maxSelect": 1},
                {"name": "readers", "type": "relation", "collectionId": "u", "maxSelect": 5},
                {"name": "lock", "type": "relation", "collectionId": "l", "maxSelect": 1}]}),
            json!({"id": "c", "name": "comments", "type": "base", "listRule": "post.title != ''", "fields": [id,
                {"name": "post", "type": "relation", "collectionId": "p", "maxSelect": 1},
                {"name": "text", "type": "text"}]}),
        ];
        let schema = Schema::new(
            defs.iter()
                .map(|d| collection_from_json(d).unwrap_or_else(|_| panic!("bad fixture {d}")))
                .collect(),
        );
        let names = audit::schema_names(&schema);
        let users = schema.get("users").cloned().expect("users");
        let su = RequestInfo {
            auth: Some(AuthInfo {
                collection: users,
                record: map(json!({"id": "u1", "email": "a@b.c", "verified": true})),
            }),
            body: map(json!({"title": "x", "tags": ["a", "b"], "readers": ["u1", "u2"], "author": "u1", "n": {"a": [1]}})),
            query: map(json!({"q": "1"})),
            headers: map(json!({"x_token": "t"})),
            method: "POST".into(),
            context: "default".into(),
        };
        let guest = RequestInfo::default();
        Fixture { schema, names, su, guest }
    })
}

/// The fixture rows; `hidden` fills what a client may not read (u1 and u3
/// hide their e-mails, u2 shows it).
fn conn(schema: &Schema, hidden: [&str; 3]) -> Connection {
    let conn = Connection::open_in_memory().expect("sqlite");
    for c in schema.all() {
        let cols: Vec<String> = c.fields.iter().map(|f| format!("\"{}\" {}", f.name, f.column_def())).collect();
        conn.execute(&format!("CREATE TABLE \"{}\" ({})", c.name, cols.join(", ")), []).expect("create");
    }
    conn.execute_batch(
        r#"INSERT INTO users (id, email, emailVisibility, name, friends, fav) VALUES
             ('u1', 'a@b.c', 0, 'A', '["u2","u3"]', 'p1'), ('u2', 'm@b.c', 1, 'B', '[]', 'p1'),
             ('u3', 'z@b.c', 0, 'C', '["u1"]', 'p2');
           INSERT INTO posts (id, title, meta, tags, author, readers) VALUES
             ('p1', 'x', '{"a":[1,{"b":2}]}', '["a"]', 'u1', '["u1","u2"]'), ('p2', '', NULL, '[]', 'u3', '["u3","u2"]'),
             ('p3', 'y', '5', '["b"]', 'u2', '[]');
           INSERT INTO comments (id, post, text) VALUES ('c1', 'p1', 'hi'), ('c2', 'p2', 'yo');"#,
    )
    .expect("rows");
    if !hidden[0].is_empty() {
        conn.execute("UPDATE users SET email = ?1 || id WHERE emailVisibility = 0", [hidden[0]])
            .expect("hide");
        conn.execute("UPDATE users SET secret = ?1, password = ?2", [hidden[1], hidden[2]])
            .expect("hide");
    }
    conn
}

fn tolerated(e: &rusqlite::Error) -> bool {
    let m = e.to_string();
    // Math functions exist only with SQLITE_ENABLE_MATH_FUNCTIONS; JSON path
    // errors depend on the data (PocketBase shares both).
    m.contains("no such function") || m.contains("JSON path") || m.contains("malformed JSON")
}

/// Audits and runs `out`; the answer is the ids in order, or the SQL error.
fn check(f: &Fixture, conn: &Connection, coll: &str, out: &filter::Compiled, input: &str) -> String {
    let text = [out.joins.join(" "), out.where_sql.clone(), out.order_by.join(", ")];
    for part in &text {
        if let Err(e) = audit::check_sql(part, &f.names) {
            panic!("audit failed for {input:?}: {e}\n{part}");
        }
    }
    let mut sql = format!("SELECT DISTINCT \"{coll}\".id FROM \"{coll}\" {}", text[0]);
    if !out.where_sql.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&out.where_sql);
    }
    if !out.order_by.is_empty() {
        sql.push_str(" ORDER BY ");
        sql.push_str(&text[2]);
    }
    let params = out.params_in_order();
    assert_eq!(sql.matches('?').count(), params.len(), "{input:?}: {sql}");
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(0))?;
        let mut ids = rows.collect::<rusqlite::Result<Vec<String>>>()?;
        // Unordered, or `@random`: compare as a set.
        if out.order_by.is_empty() || out.order_by.iter().any(|o| o.contains("RANDOM()")) {
            ids.sort();
        }
        Ok(ids)
    };
    match run() {
        Ok(ids) => ids.join(" "),
        Err(e) => {
            assert!(tolerated(&e), "{input:?}: {e}\n{sql}");
            format!("error: {e}")
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    thread_local! {
        static CONN: Connection = conn(&fixture().schema, ["", "", ""]);
        // The same rows with other hidden data: dates, numbers, JSON, and
        // e-mails that sort on the other side of the visible one.
        static OTHER: Connection = conn(&fixture().schema, ["2030-01-01 00:00:00.000Z", "[1,{\"b\":2}]", "45.5"]);
    }
    let _ = filter::parse(input);
    for coll in ["posts", "comments", "users"] {
        let Some(c) = f.schema.get(coll) else { continue };
        for (req, privileged) in [(&f.su, true), (&f.guest, false)] {
            let ctx = Ctx::new(&f.schema, c, req, privileged);
            let filtered = (|| -> Result<filter::Compiled, filter::FilterError> {
                let mut q = Query::new(&ctx)?;
                q.filter_str(input)?;
                q.finish()
            })();
            let sorted = (|| -> Result<filter::Compiled, filter::FilterError> {
                let mut q = Query::new(&ctx)?;
                q.sort(input)?;
                q.finish()
            })();
            for out in [filtered, sorted].into_iter().flatten() {
                let answer = CONN.with(|conn| check(f, conn, coll, &out, input));
                if !privileged {
                    let other = OTHER.with(|conn| check(f, conn, coll, &out, input));
                    assert_eq!(answer, other, "{coll}: {input:?} reads hidden data\n{out:?}");
                }
            }
        }
    }
});
