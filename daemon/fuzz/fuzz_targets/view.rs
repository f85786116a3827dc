//! Plans arbitrary UTF-8 as a view query against a fixed schema. Whatever
//! is accepted must render to SQL that plans again to the same SQL (the
//! renderer is a fixed point), that SQLite prepares as one read-only
//! statement over the fixture's tables, and that carries no comment.
#![no_main]

use keepd::schema::{parse::collection_from_json, view, Schema};
use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;
use serde_json::json;
use std::sync::OnceLock;

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let id = json!({"name": "id", "type": "text", "primaryKey": true});
        Schema::new(vec![
            collection_from_json(&json!({"id": "p", "name": "posts", "fields": [id,
                {"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                {"name": "tag", "type": "relation", "collectionId": "t"}]}))
            .expect("posts"),
            collection_from_json(&json!({"id": "t", "name": "tags", "fields": [id,
                {"name": "title", "type": "text"}]}))
            .expect("tags"),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = view::plan(text, schema(), "v") else {
        return;
    };
    let again = view::plan(&p.sql, schema(), "v").expect("the rendered SQL plans again");
    assert_eq!(p.sql, again.sql, "the renderer is a fixed point");
    assert!(!p.sql.contains("--") && !p.sql.contains("/*"), "{}", p.sql);
    let conn = Connection::open_in_memory().expect("db");
    conn.execute_batch(
        "CREATE TABLE posts (id TEXT PRIMARY KEY, title TEXT, n NUMERIC, tag TEXT);
         CREATE TABLE tags (id TEXT PRIMARY KEY, title TEXT);",
    )
    .expect("tables");
    let readonly = conn.prepare(&p.sql).map(|st| st.readonly());
    assert!(readonly.unwrap_or(true), "a write: {}", p.sql);
});
