//! The filter grammar and sort, table-driven: ten seeded posts, then
//! (filter expression → the exact set of post titles). Titles are t01…t10,
//! so each expected set reads at a glance against the seed table below.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// people, posts (→ people), comments (→ posts). Returns title → id of posts.
fn seed(srv: &TestServer) -> BTreeMap<String, String> {
    let su = srv.su();
    let people = srv.create_collection(&json!({
        "name": "people", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "name", "type": "text"}, {"name": "age", "type": "number"}]
    }));
    let pid = people["id"].as_str().expect("id").to_string();
    let posts = srv.create_collection(&json!({
        "name": "posts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "active", "type": "bool"},
            {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "author", "type": "relation", "collectionId": pid, "maxSelect": 1},
            {"name": "editors", "type": "relation", "collectionId": pid, "maxSelect": 5},
            {"name": "published", "type": "date"},
            {"name": "meta", "type": "json"},
            {"name": "note", "type": "text"}
        ]
    }));
    let postid = posts["id"].as_str().expect("id").to_string();
    srv.create_collection(&json!({
        "name": "comments", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "post", "type": "relation", "collectionId": postid, "maxSelect": 1},
            {"name": "text", "type": "text"}
        ]
    }));
    let mut p = BTreeMap::new();
    for (name, age) in [("alice", 30), ("bob", 40), ("carol", 25)] {
        let (st, v) = su.post(
            "/api/collections/people/records",
            &json!({"name": name, "age": age}),
        );
        assert_eq!(st, 200, "{v}");
        p.insert(name, v["id"].as_str().expect("id").to_string());
    }
    let (al, bo, ca) = (p["alice"].clone(), p["bob"].clone(), p["carol"].clone());
    #[rustfmt::skip]
    let rows: Vec<Value> = vec![
        json!({"title": "t01", "n": 1,   "active": true,  "tags": ["a"],           "author": al, "editors": [bo],         "published": "2024-01-01 10:00:00.000Z", "meta": {"k": 1},   "note": "hello world"}),
        json!({"title": "t02", "n": 2,   "active": false, "tags": ["b"],           "author": bo, "editors": [],           "published": "2024-02-01 00:00:00.000Z", "meta": {"k": 2},   "note": ""}),
        json!({"title": "t03", "n": 3,   "active": true,  "tags": ["a", "b"],      "author": ca, "editors": [al, bo],     "published": "2024-03-01 00:00:00.000Z", "meta": null,       "note": "Hello Again"}),
        json!({"title": "t04", "n": 4,   "active": false, "tags": [],              "author": al, "editors": [ca],         "published": "",                         "meta": {"k": "x"}, "note": "100% sure"}),
        json!({"title": "t05", "n": 5,   "active": true,  "tags": ["c"],           "author": "", "editors": [],           "published": "2023-12-31 23:59:59.000Z", "meta": [1, 2],     "note": "under_score"}),
        json!({"title": "t06", "n": -1,  "active": false, "tags": ["a", "c"],      "author": bo, "editors": [al],         "published": "2025-06-15 12:00:00.000Z", "meta": {},         "note": "it's"}),
        json!({"title": "t07", "n": 0,   "active": true,  "tags": ["b", "c"],      "author": ca, "editors": [bo, ca],     "published": "2024-01-01 10:00:00.000Z", "meta": null,       "note": "quote\"d"}),
        json!({"title": "t08", "n": 2.5, "active": false, "tags": ["a", "b", "c"], "author": al, "editors": [],           "published": "2024-07-04 00:00:00.000Z", "meta": {"k": 1},   "note": "back\\slash"}),
        json!({"title": "t09", "n": 10,  "active": true,  "tags": ["b"],           "author": bo, "editors": [al, bo, ca], "published": "2024-12-31 00:00:00.000Z", "meta": null,       "note": "ümlaut"}),
        json!({"title": "t10", "n": 100, "active": false, "tags": [],              "author": ca, "editors": [],           "published": "2020-01-01 00:00:00.000Z", "meta": null,       "note": "last"}),
    ];
    let mut ids = BTreeMap::new();
    for r in rows {
        let (st, v) = su.post("/api/collections/posts/records", &r);
        assert_eq!(st, 200, "{r}: {v}");
        ids.insert(
            v["title"].as_str().expect("title").to_string(),
            v["id"].as_str().expect("id").to_string(),
        );
    }
    for (post, text) in [
        ("t01", "nice"),
        ("t01", "meh"),
        ("t03", "nice"),
        ("t09", "bad"),
    ] {
        let (st, v) = su.post(
            "/api/collections/comments/records",
            &json!({"post": ids[post], "text": text}),
        );
        assert_eq!(st, 200, "{v}");
    }
    ids
}

const ALL: &[&str] = &[
    "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10",
];

fn all_but(skip: &[&str]) -> Vec<&'static str> {
    ALL.iter().copied().filter(|t| !skip.contains(t)).collect()
}

/// (filter → expected titles, any order).
fn filter_cases(ids: &BTreeMap<String, String>) -> Vec<(String, Vec<&'static str>)> {
    let t01 = ids["t01"].clone();
    let c = |f: &str, want: &[&'static str]| (f.to_string(), want.to_vec());
    vec![
        // Comparison operators on numbers.
        c("n = 2", &["t02"]),
        c("n != 2", &all_but(&["t02"])),
        c("n > 4", &["t05", "t09", "t10"]),
        c("n >= 4", &["t04", "t05", "t09", "t10"]),
        c("n < 1", &["t06", "t07"]),
        c("n <= 1", &["t01", "t06", "t07"]),
        c("n = 2.5", &["t08"]),
        c("n > 2 && n < 5", &["t03", "t04", "t08"]),
        c("n=-1", &["t06"]),
        // Booleans.
        c("active = true", &["t01", "t03", "t05", "t07", "t09"]),
        c("active = false && n > 3", &["t04", "t10"]),
        c("active != true", &["t02", "t04", "t06", "t08", "t10"]),
        // Text: equality, quoting, escapes, unicode.
        c("title = 't03'", &["t03"]),
        c("title = \"t03\"", &["t03"]),
        c("note = 'it\\'s'", &["t06"]),
        c("note = \"quote\\\"d\"", &["t07"]),
        c("note = 'ümlaut'", &["t09"]),
        c("note = ''", &["t02"]),
        c("note != ''", &all_but(&["t02"])),
        // Like: case-insensitive contains; `_` is literal; an explicit `%`
        // turns off the automatic wrapping (PocketBase).
        c("note ~ 'hello'", &["t01", "t03"]),
        c("note !~ 'hello'", &all_but(&["t01", "t03"])),
        c("note ~ 'HELLO'", &["t01", "t03"]),
        c("note ~ '100%'", &["t04"]),
        c("note ~ 'o_w'", &[]),
        c("note ~ 'r_s'", &["t05"]),
        c("note ~ 'hello%'", &["t01", "t03"]),
        c("note ~ '%world'", &["t01"]),
        c("note ~ 'ümla'", &["t09"]),
        // null is the zero value.
        c("note = null", &["t02"]),
        c("author = null", &["t05"]),
        c("author != null", &all_but(&["t05"])),
        c("published = null", &["t04"]),
        c("published = ''", &["t04"]),
        // Dates compare as strings in the stored format.
        c("published > '2024-06-01'", &["t06", "t08", "t09"]),
        c(
            "published >= '2024-01-01 10:00:00.000Z'",
            &["t01", "t02", "t03", "t06", "t07", "t08", "t09"],
        ),
        c("published = '2024-01-01 10:00:00.000Z'", &["t01", "t07"]),
        c(
            "published < '2024-01-01' && published != ''",
            &["t05", "t10"],
        ),
        c("published < @now && published != ''", &all_but(&["t04"])),
        // Parentheses and precedence (&& binds tighter than ||).
        c("(n < 2 || n > 9) && active = true", &["t01", "t07", "t09"]),
        c(
            "n < 2 || n > 9 && active = true",
            &["t01", "t06", "t07", "t09"],
        ),
        c("((n = 1) || (n = 2)) || ((n = 3))", &["t01", "t02", "t03"]),
        c("n = 1 || n = 2 || n = 3 && active = false", &["t01", "t02"]),
        // Multiple values: `:each` with ?= (any) and = (all), :length.
        // (A bare `tags ?= 'a'` compares PocketBase's raw JSON text, so the
        // item-wise forms go through `:each`.)
        c("tags:each ?= 'a'", &["t01", "t03", "t06", "t08"]),
        c("tags:each ?= 'c' && n < 3", &["t06", "t07", "t08"]),
        c("tags:each ?!= 'a'", &all_but(&["t01"])),
        c(
            "tags:each != 'a'",
            &["t02", "t04", "t05", "t07", "t09", "t10"],
        ),
        c("tags:each = 'b'", &["t02", "t09"]),
        c("tags:each ?= 'b'", &["t02", "t03", "t07", "t08", "t09"]),
        c("tags:length > 1", &["t03", "t06", "t07", "t08"]),
        c("tags:length = 0", &["t04", "t10"]),
        c("editors:length = 3", &["t09"]),
        // Relation paths.
        c("author.name = 'alice'", &["t01", "t04", "t08"]),
        c(
            "author.age > 28",
            &["t01", "t02", "t04", "t06", "t08", "t09"],
        ),
        c(
            "author.name != 'alice'",
            &["t02", "t03", "t05", "t06", "t07", "t09", "t10"],
        ),
        c(
            "author.name ~ 'O'",
            &["t02", "t03", "t06", "t07", "t09", "t10"],
        ),
        c("editors.name ?= 'bob'", &["t01", "t03", "t07", "t09"]),
        c("editors.name = 'bob'", &["t01"]),
        c("editors.age ?> 35", &["t01", "t03", "t07", "t09"]),
        // Back-relations.
        c("comments_via_post.text ?= 'nice'", &["t01", "t03"]),
        c("comments_via_post.text = 'nice'", &["t03"]),
        c(
            "comments_via_post.text ?= 'bad' || n = 100",
            &["t09", "t10"],
        ),
        // JSON paths.
        c("meta.k = 1", &["t01", "t08"]),
        c("meta.k = 'x'", &["t04"]),
        c("meta.k = 2", &["t02"]),
        c("meta.k != 1", &all_but(&["t01", "t08"])),
        // Ids, and field-to-field comparisons.
        (format!("id = '{t01}'"), vec!["t01"]),
        (format!("id != '{t01}' && n < 1"), vec!["t06", "t07"]),
        c("title != note", ALL),
        c("n < author.age && author.age < 30", &["t03", "t07"]),
        // Comments and whitespace.
        c("  n   =   1  ", &["t01"]),
        c("n = 1 // a trailing comment", &["t01"]),
    ]
}

#[test]
fn filter_table() {
    let srv = TestServer::start();
    let ids = seed(&srv);
    let su = srv.su();
    let guest = srv.guest();
    let mut failures = Vec::new();
    let cases = filter_cases(&ids);
    for (f, want) in &cases {
        let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        // Superuser and guest (listRule "") see the same rows.
        for (who, client) in [("superuser", &su), ("guest", &guest)] {
            let (st, v) = client.list(
                "posts",
                &[("filter", f), ("perPage", "100"), ("sort", "title")],
            );
            if st != 200 {
                failures.push(format!("[{who}] {f:?}: status {st} {v}"));
                continue;
            }
            let got = column(&v, "title");
            if got != want {
                failures.push(format!("[{who}] {f:?}: got {got:?}, want {want:?}"));
            } else if v["totalItems"] != json!(want.len()) {
                failures.push(format!(
                    "[{who}] {f:?}: totalItems {} for {} items",
                    v["totalItems"],
                    want.len()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures of {} cases:\n{}",
        failures.len(),
        cases.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn sort_table() {
    let srv = TestServer::start();
    seed(&srv);
    let su = srv.su();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "n",
            vec![
                "t06", "t07", "t01", "t02", "t08", "t03", "t04", "t05", "t09", "t10",
            ],
        ),
        (
            "-n",
            vec![
                "t10", "t09", "t05", "t04", "t03", "t08", "t02", "t01", "t07", "t06",
            ],
        ),
        (
            "+n",
            vec![
                "t06", "t07", "t01", "t02", "t08", "t03", "t04", "t05", "t09", "t10",
            ],
        ),
        (
            "-active,title",
            vec![
                "t01", "t03", "t05", "t07", "t09", "t02", "t04", "t06", "t08", "t10",
            ],
        ),
        (
            "active,-title",
            vec![
                "t10", "t08", "t06", "t04", "t02", "t09", "t07", "t05", "t03", "t01",
            ],
        ),
        (
            "published,title",
            vec![
                "t04", "t10", "t05", "t01", "t07", "t02", "t03", "t08", "t09", "t06",
            ],
        ),
        (
            "author.name,title",
            vec![
                "t05", "t01", "t04", "t08", "t02", "t06", "t09", "t03", "t07", "t10",
            ],
        ),
        (
            "-author.age,-n",
            vec![
                "t09", "t02", "t06", "t04", "t08", "t01", "t10", "t03", "t07", "t05",
            ],
        ),
        (
            " title , n ",
            vec![
                "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (sort, want) in &cases {
        let (st, v) = su.list("posts", &[("sort", sort), ("perPage", "100")]);
        let got = column(&v, "title");
        if st != 200 || &got != want {
            failures.push(format!(
                "sort={sort:?}: {st} got {got:?}, want {want:?} ({v})"
            ));
        }
    }
    // @random: the same set, in some order.
    let (st, v) = su.list("posts", &[("sort", "@random"), ("perPage", "100")]);
    let mut got = column(&v, "title");
    got.sort();
    if st != 200 || got != ALL {
        failures.push(format!("sort=@random: {st} {got:?}"));
    }
    // Filter and sort together, with paging.
    let (st, v) = su.list(
        "posts",
        &[
            ("filter", "active = true"),
            ("sort", "-n"),
            ("perPage", "2"),
            ("page", "2"),
        ],
    );
    if st != 200
        || column(&v, "title") != ["t03", "t01"]
        || v["totalItems"] != json!(5)
        || v["totalPages"] != json!(3)
    {
        failures.push(format!("filter+sort+page: {st} {v}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_filters_and_sorts_are_400() {
    let srv = TestServer::start();
    seed(&srv);
    let su = srv.su();
    let filters = [
        "nosuchfield = 1",
        "n ==== 1",
        "(n = 1",
        "n = 1)",
        "n = 'unterminated",
        "&& n = 1",
        "n =",
        "n = 1 &&",
        "author.nosuch = 1",
        "n ~~ 1",
        "= 1",
        "n 1",
        "title = 'a' title = 'b'",
        "tags:nosuchmodifier = 1",
        "@unknown.macro = 1",
        "()",
    ];
    let mut failures = Vec::new();
    for f in filters {
        let (st, v) = su.list("posts", &[("filter", f)]);
        if st != 400 {
            failures.push(format!("filter {f:?}: want 400, got {st} {v}"));
        } else {
            assert_error_shape(&v, 400, f);
        }
    }
    for s in ["nosuchfield", "-nosuch", "author.nosuch", "n,,title"] {
        let (st, v) = su.list("posts", &[("sort", s)]);
        if st != 400 {
            failures.push(format!("sort {s:?}: want 400, got {st} {v}"));
        } else {
            assert_error_shape(&v, 400, s);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn expand_follows_relations_and_back_relations() {
    let srv = TestServer::start();
    let ids = seed(&srv);
    let guest = srv.guest();
    // Forward: single and multiple relations.
    let (st, v) = guest.get(&format!(
        "/api/collections/posts/records/{}?expand=author,editors",
        ids["t03"]
    ));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["expand"]["author"]["name"], "carol");
    assert_eq!(
        column(&json!({"items": v["expand"]["editors"]}), "name"),
        ["alice", "bob"]
    );
    // Back-relation: the comments pointing at the post (a list).
    let (st, v) = guest.get(&format!(
        "/api/collections/posts/records/{}?expand=comments_via_post",
        ids["t01"]
    ));
    assert_eq!(st, 200, "{v}");
    let mut texts = column(&json!({"items": v["expand"]["comments_via_post"]}), "text");
    texts.sort();
    assert_eq!(texts, ["meh", "nice"], "{v}");
    // Nested: comment → post → author.
    let (st, v) = guest.list(
        "comments",
        &[("filter", "text = 'bad'"), ("expand", "post.author")],
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"][0]["expand"]["post"]["title"], "t09");
    assert_eq!(
        v["items"][0]["expand"]["post"]["expand"]["author"]["name"],
        "bob"
    );
    // Empty relations have no expand entry; a post without comments neither.
    let (st, v) = guest.get(&format!(
        "/api/collections/posts/records/{}?expand=author,comments_via_post",
        ids["t05"]
    ));
    assert_eq!(st, 200, "{v}");
    assert!(
        v.get("expand")
            .is_none_or(|e| e.get("author").is_none() && e.get("comments_via_post").is_none()),
        "{v}"
    );
    // `fields` picks from the expansion too.
    let (st, v) = guest.get(&format!(
        "/api/collections/posts/records/{}?expand=author&fields=title,expand.author.name",
        ids["t01"]
    ));
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"title": "t01", "expand": {"author": {"name": "alice"}}})
    );
}

/// A client's sort obeys the filter's e-mail guard: an auth record's e-mail
/// orders a non-superuser's list only where `emailVisibility` is on, on the
/// collection itself, through a relation and through a back-relation
/// (elsewhere it sorts as empty). Otherwise a hidden address can be read by
/// binary search over the sort order (PocketBase 0.40.6 leaks it so).
#[test]
fn sorting_never_reveals_hidden_emails() {
    let srv = TestServer::start();
    let su = srv.su();
    let boards = srv.create_collection(&json!({
        "name": "boards", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "name", "type": "text"}]
    }));
    let members = srv.create_collection(&json!({
        "name": "members", "type": "auth", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "name", "type": "text"},
            {"name": "fav", "type": "relation", "collectionId": boards["id"], "maxSelect": 1}
        ]
    }));
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "author", "type": "relation", "collectionId": members["id"], "maxSelect": 1}
        ]
    }));
    let tag = uniq("s");
    // (name, e-mail, visible): the hidden addresses sort first and last.
    let people = [
        ("n1", format!("aaa-{tag}@example.com"), false),
        ("n2", format!("zzz-{tag}@example.com"), false),
        ("n3", format!("mmm-{tag}@example.com"), true),
    ];
    let mut member_ids = Vec::new();
    for (name, email, visible) in &people {
        let (st, b) = su.post(
            "/api/collections/boards/records",
            &json!({"name": format!("b-{name}")}),
        );
        assert_eq!(st, 200, "{b}");
        let (st, m) = su.post(
            "/api/collections/members/records",
            &json!({"email": email, "emailVisibility": visible, "name": name,
                    "password": "password-123456", "passwordConfirm": "password-123456",
                    "fav": b["id"]}),
        );
        assert_eq!(st, 200, "{m}");
        let id = m["id"].as_str().expect("id").to_string();
        let (st, v) = su.post(
            "/api/collections/notes/records",
            &json!({"title": format!("t-{name}"), "author": id}),
        );
        assert_eq!(st, 200, "{v}");
        member_ids.push(id);
    }
    let (_, other) = srv.sign_up(&format!("{}@example.com", uniq("o")), "password-123456");
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("members", "email,name", "name", &["n1", "n2", "n3"]),
        ("members", "-email,name", "name", &["n3", "n1", "n2"]),
        ("members", "email:lower,-name", "name", &["n2", "n1", "n3"]),
        (
            "notes",
            "author.email,title",
            "title",
            &["t-n1", "t-n2", "t-n3"],
        ),
        (
            "notes",
            "-author.email,title",
            "title",
            &["t-n3", "t-n1", "t-n2"],
        ),
        (
            "boards",
            "members_via_fav.email,name",
            "name",
            &["b-n1", "b-n2", "b-n3"],
        ),
        (
            "boards",
            "-members_via_fav.email,-name",
            "name",
            &["b-n3", "b-n2", "b-n1"],
        ),
    ];
    let check = |round: &str| {
        let mut failures = Vec::new();
        for (who, client) in [("guest", srv.guest()), ("user", srv.with_token(&other))] {
            for (coll, sort, col, want) in cases {
                let (st, v) = client.list(coll, &[("sort", sort)]);
                if st != 200 || column(&v, col) != *want {
                    failures.push(format!("[{round} {who}] {coll} sort={sort}: {st} {v}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    };
    check("before");
    // Swapping the hidden addresses changes nothing a client sees.
    for (id, email) in [
        (&member_ids[0], format!("zzzz-{tag}@example.com")),
        (&member_ids[1], format!("a-{tag}@example.com")),
    ] {
        let (st, v) = su.patch(
            &format!("/api/collections/members/records/{id}"),
            &json!({"email": email}),
        );
        assert_eq!(st, 200, "{v}");
    }
    check("after");
    // A superuser sorts by the real addresses.
    let (st, v) = su.list("members", &[("sort", "email")]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(column(&v, "name"), ["n2", "n3", "n1"], "{v}");
}
