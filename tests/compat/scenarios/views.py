"""View collections: a differential table of view queries (dry run: inferred
fields and sample records, or the refusal), then a view collection in use
(rules, filter, sort, expand, fields, writes refused, source protected).

QUERIES rows are (name, query, kind): kind "ok" = both accept with the same
fields and records; "refused" = both refuse with the same answer; "message" =
both refuse with 400 but the raw error text differs (SQLite's error on
PocketBase's side, keepd's checker's on keepd's); "keepd_refuses" =
PocketBase accepts and keepd deliberately refuses (known_differences.py).
"""
from ._common import S, records, TAGS_COLLECTION

DRY = "/api/collections/meta/dry-run-view"

QUERIES = [
    ("plain columns", "select id, title from posts order by title", "ok"),
    ("aliased table", "select p.id, p.title, p.n from posts p order by p.n", "ok"),
    ("select fields kept", "select p.id as id, p.status, p.labels from posts as p order by p.title", "ok"),
    ("relation field kept", "select id, tag, tagsrel from posts order by title", "ok"),
    ("left join", "select p.id, t.title as tagTitle from posts p left join tags t on t.id = p.tag order by p.title", "ok"),
    ("joined id is a relation", "select p.id, t.id as tagId from posts p join tags t on t.id = p.tag order by p.title", "ok"),
    ("count aggregate", "select t.id, count(p.id) as c from tags t left join posts p on p.tag = t.id group by t.id order by t.title", "ok"),
    ("total aggregate", "select t.id, total(p.n) as s from tags t left join posts p on p.tag = t.id group by t.id order by t.title", "ok"),
    ("sum is json", "select t.id, sum(p.n) as s from tags t left join posts p on p.tag = t.id group by t.id order by t.title", "ok"),
    ("cast real", "select id, cast(n as real) as r from posts order by title", "ok"),
    ("cast integer", "select id, cast(f as integer) as i from posts order by title", "ok"),
    ("cast text", "select id, cast(n as text) as s from posts order by title", "ok"),
    ("cast boolean", "select id, cast(flag as boolean) as b from posts order by title", "ok"),
    ("arithmetic is json", "select id, (n * 2) as twice from posts order by title", "ok"),
    ("function is json", "select id, upper(title) as up from posts order by title", "ok"),
    ("row_number id", "select (row_number() over (order by title)) as id, title from posts", "ok"),
    ("cte", "with x as (select id, title from posts) select id, title from x order by title", "ok"),
    ("subquery in from", "select id, title from (select id, title from posts where n > 1) order by title", "ok"),
    ("in subquery", "select id, title from posts where id in (select p.id from posts p where p.flag = true) order by title", "ok"),
    ("union all", "select id, title from (select id, title from posts union all select id, title from tags) order by title", "ok"),
    ("coalesce", "select id, coalesce(mail, 'none') as m from posts order by title", "ok"),
    ("case", "select id, (case when n > 5 then 'big' else 'small' end) as size from posts order by title", "ok"),
    ("json_extract", "select id, json_extract(meta, '$.a') as a from posts order by title", "ok"),
    ("distinct relation as id", "select distinct tag as id from posts where tag != '' order by tag", "ok"),
    ("order and limit", "select id, title from posts order by n desc limit 2", "ok"),
    ("limit offset", "select id, title from posts order by title limit 1 offset 1", "ok"),
    ("auth collection fields", "select id, name, email, verified from users", "ok"),
    ("trailing semicolon", "select id, title from posts order by title;", "ok"),
    ("like", "select id, title from posts where title like 'A%' order by title", "ok"),
    ("scalar subquery is json", "select p.id, (select count(*) from tags t where t.id = p.tag) as tc from posts p order by p.title", "ok"),
    ("between is json", "select id, (n between 1 and 5) as mid from posts order by title", "ok"),
    ("in list", "select id, title from posts where status in ('draft', 'published') order by title", "ok"),
    ("json_array_length", "select id, labels, json_array_length(labels) as nl from posts order by title", "ok"),
    ("block comment hides a statement", "select id from posts /* ; drop table posts */ order by id", "refused"),
    ("line comment hides a statement", "select id from posts order by id -- ; delete from posts", "refused"),
    ("comment without a statement", "select id /* the key */, title from posts order by title", "ok"),
    ("semicolon in a string", "select id, (title || ';') as t from posts order by title", "ok"),
    ("uppercase keywords", "SELECT id, title FROM posts ORDER BY title", "ok"),
    ("having", "select tag as id, count(*) as c from posts where tag != '' group by tag having count(*) > 0 order by tag", "ok"),
    ("empty query", "", "refused"),
    ("missing id", "select title from posts", "refused"),
    ("wildcard", "select * from posts", "refused"),
    ("qualified wildcard", "select p.* from posts p", "refused"),
    ("multiple statements", "select id from posts; delete from posts", "refused"),
    ("non-unique ids", "select p.id, j.value as label from posts p, json_each(p.labels) j", "refused"),
    ("unknown table", "select id from nope", "message"),
    ("unknown column", "select id, nope from posts", "message"),
    ("unknown qualifier", "select x.id from posts p", "message"),
    ("delete", "delete from posts", "message"),
    ("insert", "insert into posts (id) values ('x')", "message"),
    ("update", "update posts set title = 'x'", "message"),
    ("drop table", "drop table posts", "message"),
    ("attach", "attach database 'x.db' as x", "message"),
    ("pragma statement", "pragma table_info(posts)", "message"),
    ("vacuum", "vacuum", "message"),
    ("syntax error", "select id from posts where", "message"),
    ("unknown function", "select id, nofunc(title) as x from posts", "message"),
    ("readfile", "select id, readfile('/etc/passwd') as f from posts", "message"),
    ("load_extension", "select id, load_extension('x') as e from posts", "message"),
    ("sqlite_master", "select name as id from sqlite_master", "keepd_refuses"),
    ("sqlite_version", "select id, sqlite_version() as v from posts", "keepd_refuses"),
    ("pragma function", "select id from posts where 0 < (select count(*) from pragma_table_info('posts'))", "keepd_refuses"),
    ("internal table", "select id, value from _params", "keepd_refuses"),
    ("password hash", "select id, password from users", "keepd_refuses"),
    ("token key", "select id, tokenKey from users", "keepd_refuses"),
    ("recursive cte", "with recursive c(x) as (select 1 union all select x + 1 from c limit 3) select cast(x as text) as id from c", "keepd_refuses"),
    ("randomblob", "select id, length(randomblob(4)) as r from posts", "keepd_refuses"),
    ("rowid", "select id, rowid as r from posts", "keepd_refuses"),
]

TEMP_MASK = [{"regex": r"temp_view_[A-Za-z0-9]{5}",
              "reason": "the dry run's temporary collection has a random name"}]

SETUP = [
    S("setup: tags", "POST", "/api/collections", body=TAGS_COLLECTION, expect=200, save={"tagsId": "$.id"}),
    S("setup: posts", "POST", "/api/collections", body={
        "name": "posts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "f", "type": "number"},
            {"name": "flag", "type": "bool"},
            {"name": "mail", "type": "email"},
            {"name": "status", "type": "select", "values": ["draft", "published"], "maxSelect": 1},
            {"name": "labels", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "meta", "type": "json"},
            {"name": "tag", "type": "relation", "collectionId": "{tagsId}", "maxSelect": 1},
            {"name": "tagsrel", "type": "relation", "collectionId": "{tagsId}", "maxSelect": 5},
            {"name": "secret", "type": "text", "hidden": True},
        ]}, expect=200),
    S("setup: tag red", "POST", records("tags"), body={"title": "red", "rank": 1}, expect=200, save={"red": "$.id"}),
    S("setup: tag blue", "POST", records("tags"), body={"title": "blue", "rank": 2}, expect=200, save={"blue": "$.id"}),
    S("setup: post Alpha", "POST", records("posts"), body={
        "title": "Alpha", "n": 7, "f": 1.5, "flag": True, "mail": "a@example.com", "status": "draft",
        "labels": ["a", "b"], "meta": {"a": 1}, "tag": "{red}", "tagsrel": ["{red}", "{blue}"], "secret": "s1"},
        expect=200, save={"p1": "$.id"}),
    S("setup: post Beta", "POST", records("posts"), body={
        "title": "Beta", "n": 2, "f": 2.25, "flag": False, "status": "published", "labels": ["c"],
        "meta": {"a": "x"}, "tag": "{red}", "secret": "s2"}, expect=200, save={"p2": "$.id"}),
    S("setup: post Gamma", "POST", records("posts"), body={"title": "Gamma", "n": 4, "labels": ["a"]},
      expect=200, save={"p3": "$.id"}),
]

SCENARIOS = [
    {
        "id": "views_dry_run_table",
        "title": "a table of view queries through dry-run-view: inferred fields and sample records, or the refusal",
        "mask": TEMP_MASK,
        "steps": SETUP + [
            S(f"q: {name}", "POST", DRY, body={"query": q},
              expect=200 if kind in ("ok", "keepd_refuses") else 400)
            for name, q, kind in QUERIES
        ],
    },
    {
        "id": "views_collection",
        "title": "a view collection: created from its query, read with rules/filter/sort/expand/fields, never written",
        "steps": SETUP + [
            S("create view", "POST", "/api/collections", body={
                "name": "post_tags", "type": "view", "listRule": "", "viewRule": "n > 3",
                "viewQuery": "select p.id, p.title, p.n, p.tag, t.title as tagTitle, p.secret "
                             "from posts p left join tags t on t.id = p.tag"}, expect=200),
            S("create view with write rule", "POST", "/api/collections", body={
                "name": "v_bad", "type": "view", "createRule": "", "viewQuery": "select id from posts"},
              expect=400),
            S("create view with index", "POST", "/api/collections", body={
                "name": "v_bad", "type": "view", "viewQuery": "select id from posts",
                "indexes": ["create index x on v_bad (id)"]}, expect=400),
            S("create view without query", "POST", "/api/collections", body={"name": "v_bad", "type": "view"},
              expect=400),
            S("create view with bad query", "POST", "/api/collections", body={
                "name": "v_bad", "type": "view", "viewQuery": "select title from posts"}, expect=400),
            S("list as guest sorted", "GET", records("post_tags"), auth="guest", query={"sort": "-n"}, expect=200),
            S("filter", "GET", records("post_tags"), auth="guest", query={"filter": "tagTitle = 'red'", "sort": "title"},
              expect=200),
            S("fields", "GET", records("post_tags"), auth="guest", query={"fields": "id,title", "sort": "title"},
              expect=200),
            S("expand relation", "GET", records("post_tags"), auth="guest", query={"expand": "tag", "sort": "title"},
              expect=200),
            S("view rule passes", "GET", records("post_tags") + "/{p1}", auth="guest", expect=200),
            S("view rule hides", "GET", records("post_tags") + "/{p2}", auth="guest", expect=404),
            S("superuser sees hidden clone", "GET", records("post_tags") + "/{p2}", expect=200),
            S("create record refused", "POST", records("post_tags"), body={"title": "x"}, expect=400),
            S("create record refused as guest", "POST", records("post_tags"), auth="guest", body={}, expect=400),
            S("update record refused", "PATCH", records("post_tags") + "/{p1}", body={"title": "x"}, expect=400),
            S("delete record refused", "DELETE", records("post_tags") + "/{p1}", expect=400),
            S("truncate view refused", "DELETE", "/api/collections/post_tags/truncate", expect=400),
            S("relation to a view refused", "POST", "/api/collections", body={
                "name": "refs", "type": "base",
                "fields": [{"name": "r", "type": "relation", "collectionId": "post_tags"}]}, expect=400),
            S("delete source refused", "DELETE", "/api/collections/posts", expect=400),
            S("update view query", "PATCH", "/api/collections/post_tags", body={
                "viewQuery": "select id, title from posts", "viewRule": "title != ''"}, expect=200),
            S("list after update", "GET", records("post_tags"), auth="guest", query={"sort": "title"}, expect=200),
            S("delete view", "DELETE", "/api/collections/post_tags", expect=204),
            S("delete source after", "DELETE", "/api/collections/posts", expect=204),
        ],
    },
]
