//! How a record is shown to a caller, for every way out (the records API,
//! batch answers, auth answers, realtime events): visibility (hidden fields,
//! e-mails), `expand` and `fields`.
//!
//! `expand` follows relations and back-relations (`other_via_field`) up to
//! [`MAX_EXPAND_DEPTH`] levels, each through the target's view rule; each
//! level costs one query per relation followed (not one per record), and a
//! back-relation shows at most [`MAX_BACK_RELATIONS`] records per record
//! (PocketBase's cap).

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::rules::{self, RequestCtx};
use crate::schema::record::{self as rv};
use crate::schema::{Collection, Field, FieldKind, Schema};
use crate::store::records::{self as rs, Cond};
use crate::store::Conn as Connection;
use crate::store::Row;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// How deep `expand` may nest (PocketBase: 6).
pub const MAX_EXPAND_DEPTH: usize = 6;
/// Most records a back-relation expands to, per record (PocketBase: 1000).
pub const MAX_BACK_RELATIONS: usize = 1000;

/// Rejects a `fields` parameter with an unknown or malformed modifier.
pub fn check_fields(fields: &str) -> ApiResult<()> {
    for spec in split_top_level(fields) {
        if let Some((_, m)) = spec.trim().split_once(':') {
            if parse_excerpt(m).is_none() {
                return Err(ApiError::bad(crate::filter::GENERIC_MESSAGE));
            }
        }
    }
    Ok(())
}

/// The API JSON of records (visibility applied), with `expand` resolved.
pub fn enrich(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: Vec<Map<String, Value>>,
    ctx: &RequestCtx,
    expand: &str,
) -> ApiResult<Vec<Value>> {
    let managed = managed_ids(c, schema, coll, &recs, ctx)?;
    let paths: Vec<Vec<&str>> = expand
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.split('.').collect())
        .collect();
    if paths.is_empty() {
        // Nothing to expand: the rows become the answer without a copy.
        return Ok(recs
            .into_iter()
            .map(|r| visible_owned(coll, r, &ctx.identity, &managed))
            .collect());
    }
    let mut out: Vec<Value> = Vec::with_capacity(recs.len());
    for r in &recs {
        out.push(visible(coll, r, &ctx.identity, &managed));
    }
    expand_into(c, schema, coll, &recs, &mut out, &paths, ctx, 1)?;
    Ok(out)
}

/// The records' JSON as `enrich` makes it, then `fields` applied.
pub fn render(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: Vec<Map<String, Value>>,
    ctx: &RequestCtx,
    view: &super::View,
) -> ApiResult<Vec<Value>> {
    Ok(enrich(c, schema, coll, recs, ctx, &view.expand)?
        .into_iter()
        .map(|v| pick_fields(v, &view.fields))
        .collect())
}

/// How a record is shown in a realtime event: exactly as the records API
/// shows it to the same caller (visibility, `expand`, `fields`).
pub fn render_event(
    conn: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    record: Map<String, Value>,
    ctx: &RequestCtx,
    expand: &str,
    fields: &str,
) -> ApiResult<Value> {
    let v = enrich(conn, schema, coll, vec![record], ctx, expand)?
        .pop()
        .unwrap_or(Value::Null);
    Ok(pick_fields(v, fields))
}

/// Ids among `recs` whose e-mail the caller may see because it passes the
/// collection's manage rule (one query for all of them).
fn managed_ids(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: &[Map<String, Value>],
    ctx: &RequestCtx,
) -> ApiResult<Vec<String>> {
    if !coll.is_auth()
        || ctx.identity.is_superuser()
        || ctx.identity.auth().is_none()
        || recs.is_empty()
    {
        return Ok(vec![]);
    }
    let Some(rule) = coll.manage_rule().filter(|r| !r.trim().is_empty()) else {
        return Ok(vec![]);
    };
    let Some(cond) = rules::rule_cond(schema, coll, Some(rule), ctx)? else {
        return Ok(vec![]);
    };
    let ids: Vec<String> = recs
        .iter()
        .map(|r| r.get("id").map(rv::to_text).unwrap_or_default())
        .collect();
    Ok(fetch_many(c, coll, &ids, &cond)?
        .into_iter()
        .map(|m| m.get("id").map(rv::to_text).unwrap_or_default())
        .collect())
}

/// Records of `c` among `ids` passing `cond`, in chunks that stay far below
/// SQLite's limit on bound values.
fn fetch_many(
    conn: &Connection,
    c: &Collection,
    ids: &[String],
    cond: &Cond,
) -> ApiResult<Vec<Map<String, Value>>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(rs::fetch_many(conn, c, chunk, cond)?);
    }
    Ok(out)
}

/// Whether the caller may see field `f` of record `r` (whose id is `id`).
fn shown(
    coll: &Collection,
    f: &Field,
    r: &Map<String, Value>,
    id: &str,
    who: &Identity,
    managed: &[String],
) -> bool {
    let superuser = who.is_superuser();
    if coll.is_auth() && (f.name == "password" || f.name == "tokenKey") {
        return false;
    }
    if matches!(f.kind, FieldKind::Password(_)) {
        return false;
    }
    if f.hidden && !superuser {
        return false;
    }
    if coll.is_auth() && f.name == "email" {
        let own = who
            .auth()
            .is_some_and(|a| a.collection.id == coll.id && a.id() == id);
        let public = r.get("emailVisibility").is_some_and(rv::to_bool);
        if !(superuser || own || public || managed.iter().any(|m| m == id)) {
            return false;
        }
    }
    true
}

/// A record's JSON as the caller may see it.
pub fn visible(
    coll: &Collection,
    r: &Map<String, Value>,
    who: &Identity,
    managed: &[String],
) -> Value {
    let mut m = Map::new();
    m.insert("collectionId".into(), json!(coll.id));
    m.insert("collectionName".into(), json!(coll.name));
    let id = r.get("id").map(rv::to_text).unwrap_or_default();
    for f in &coll.fields {
        if !shown(coll, f, r, &id, who, managed) {
            continue;
        }
        if let Some(v) = r.get(&f.name) {
            m.insert(f.name.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// `visible` for a row that is not needed afterwards: fields are moved,
/// not copied.
fn visible_owned(
    coll: &Collection,
    mut r: Map<String, Value>,
    who: &Identity,
    managed: &[String],
) -> Value {
    let id = r.get("id").map(rv::to_text).unwrap_or_default();
    let hide: Vec<&str> = coll
        .fields
        .iter()
        .filter(|f| !shown(coll, f, &r, &id, who, managed))
        .map(|f| f.name.as_str())
        .collect();
    r.retain(|k, _| !hide.contains(&k.as_str()) && coll.field(k).is_some());
    r.insert("collectionId".into(), json!(coll.id));
    r.insert("collectionName".into(), json!(coll.name));
    Value::Object(r)
}

/// Whether [`record_json`] shows a record of `coll` to this view: nothing
/// to expand, no `fields`, and no per-record visibility (an auth
/// collection's e-mail depends on the record and the manage rule).
pub fn renders_from_row(coll: &Collection, view: &super::View) -> bool {
    view.expand.is_empty() && view.fields.is_empty() && !coll.is_auth()
}

/// One record's answer JSON written straight from its row (every column,
/// in field order, as `store::records` selects them): the same bytes as
/// `render` without expand or fields gives for a collection where
/// [`renders_from_row`] holds — the visible fields and `collectionId` /
/// `collectionName`, keys in a JSON object's order (sorted) — without
/// building the record's map first.
pub fn record_json(coll: &Collection, row: &Row<'_>, who: &Identity) -> ApiResult<Vec<u8>> {
    debug_assert!(!coll.is_auth());
    let superuser = who.is_superuser();
    // None: `collectionId` / `collectionName`, which replace any column of
    // the same name (as in `visible_owned`).
    let mut keys: Vec<(&str, Option<usize>)> = Vec::with_capacity(coll.fields.len() + 2);
    keys.push(("collectionId", None));
    keys.push(("collectionName", None));
    for (i, f) in coll.fields.iter().enumerate() {
        let hidden = matches!(f.kind, FieldKind::Password(_)) || (f.hidden && !superuser);
        if hidden || f.name == "collectionId" || f.name == "collectionName" {
            continue;
        }
        keys.push((f.name.as_str(), Some(i)));
    }
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(64 + 32 * keys.len());
    out.push(b'{');
    for (n, (k, i)) in keys.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).map_err(ApiError::internal)?;
        out.push(b':');
        let written = match i {
            None if *k == "collectionId" => serde_json::to_writer(&mut out, &coll.id),
            None => serde_json::to_writer(&mut out, &coll.name),
            Some(i) => {
                serde_json::to_writer(&mut out, &rv::from_sql(&coll.fields[*i], row.get_ref(*i)?))
            }
        };
        written.map_err(ApiError::internal)?;
    }
    out.push(b'}');
    Ok(out)
}

/// A relation or back-relation that `expand` can follow from `coll`.
enum Link<'a> {
    Forward(&'a Field, Arc<Collection>),
    /// `other_via_field`: records of `other` whose `field` points here.
    Back(Arc<Collection>, &'a Field),
}

fn resolve_link<'a>(schema: &'a Schema, coll: &'a Collection, name: &str) -> Option<Link<'a>> {
    if let Some(f) = coll.field(name) {
        if let FieldKind::Relation(o) = &f.kind {
            return schema
                .by_id(&o.collection_id)
                .cloned()
                .map(|t| Link::Forward(f, t));
        }
        return None;
    }
    let (other, field) = name.split_once("_via_")?;
    let other = schema.get(other)?;
    let f = other.field(field)?;
    match &f.kind {
        FieldKind::Relation(o) if o.collection_id == coll.id => Some(Link::Back(other.clone(), f)),
        _ => None,
    }
}

/// For each of `recs`, the records `link` leads to (through `cond`), in the
/// relation's order; one query for the whole level.
fn follow(
    c: &Connection,
    link: &Link<'_>,
    recs: &[Map<String, Value>],
    cond: &Cond,
) -> ApiResult<Vec<Vec<Map<String, Value>>>> {
    match link {
        Link::Forward(f, target) => {
            let per: Vec<Vec<String>> = recs
                .iter()
                .map(|r| rv::to_string_list(r.get(&f.name).unwrap_or(&Value::Null)))
                .collect();
            let mut all: Vec<String> = per.iter().flatten().cloned().collect();
            all.sort();
            all.dedup();
            let found: HashMap<String, Map<String, Value>> = fetch_many(c, target, &all, cond)?
                .into_iter()
                .map(|m| (m.get("id").map(rv::to_text).unwrap_or_default(), m))
                .collect();
            Ok(per
                .into_iter()
                .map(|ids| ids.iter().filter_map(|id| found.get(id).cloned()).collect())
                .collect())
        }
        Link::Back(other, f) => {
            let ids: Vec<String> = recs
                .iter()
                .map(|r| r.get("id").map(rv::to_text).unwrap_or_default())
                .collect();
            let mut by_parent: HashMap<String, Vec<Map<String, Value>>> = HashMap::new();
            for chunk in ids.chunks(500) {
                for (parent, row) in
                    rs::fetch_referencing(c, other, f, chunk, cond, MAX_BACK_RELATIONS)?
                {
                    by_parent.entry(parent).or_default().push(row);
                }
            }
            Ok(ids
                .iter()
                .map(|id| by_parent.get(id).cloned().unwrap_or_default())
                .collect())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn expand_into(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: &[Map<String, Value>],
    out: &mut [Value],
    paths: &[Vec<&str>],
    ctx: &RequestCtx,
    depth: usize,
) -> ApiResult<()> {
    if depth > MAX_EXPAND_DEPTH {
        return Ok(());
    }
    // Group paths by their first segment.
    let mut heads: Vec<&str> = Vec::new();
    for h in paths.iter().filter_map(|p| p.first().copied()) {
        if !heads.contains(&h) {
            heads.push(h);
        }
    }
    for head in heads {
        let Some(link) = resolve_link(schema, coll, head) else {
            continue;
        };
        let rest: Vec<Vec<&str>> = paths
            .iter()
            .filter(|p| p.first() == Some(&head) && p.len() > 1)
            .map(|p| p[1..].to_vec())
            .collect();
        let (target, multiple) = match &link {
            Link::Forward(f, t) => (t.clone(), f.is_multiple()),
            // A back-relation is always a list.
            Link::Back(o, _) => (o.clone(), true),
        };
        // The target's view rule decides what may be expanded.
        let cond = if ctx.identity.is_superuser() {
            Some(Cond::default())
        } else {
            rules::rule_cond(schema, &target, target.view_rule.as_deref(), ctx)?
        };
        let Some(cond) = cond else { continue };
        for o in out.iter_mut() {
            if let Some(obj) = o.as_object_mut() {
                obj.entry("expand").or_insert_with(|| json!({}));
            }
        }
        let per = follow(c, &link, recs, &cond)?;
        // The next level is expanded once for every record of this one.
        let owners: Vec<usize> = per
            .iter()
            .enumerate()
            .flat_map(|(i, l)| std::iter::repeat_n(i, l.len()))
            .collect();
        let found: Vec<Map<String, Value>> = per.into_iter().flatten().collect();
        if found.is_empty() {
            continue;
        }
        let managed = managed_ids(c, schema, &target, &found, ctx)?;
        let mut vals: Vec<Value> = found
            .iter()
            .map(|m| visible(&target, m, &ctx.identity, &managed))
            .collect();
        if !rest.is_empty() {
            expand_into(c, schema, &target, &found, &mut vals, &rest, ctx, depth + 1)?;
        }
        let mut grouped: Vec<Vec<Value>> = vec![Vec::new(); recs.len()];
        for (owner, v) in owners.into_iter().zip(vals) {
            grouped[owner].push(v);
        }
        for (i, vals) in grouped.into_iter().enumerate() {
            if vals.is_empty() {
                continue;
            }
            let v = if multiple {
                Value::Array(vals)
            } else {
                vals.into_iter().next().unwrap_or(Value::Null)
            };
            if let Some(obj) = out[i].as_object_mut() {
                let e = obj.entry("expand").or_insert_with(|| json!({}));
                if let Some(e) = e.as_object_mut() {
                    e.insert(head.to_string(), v);
                }
            }
        }
    }
    Ok(())
}

/// Applies the `fields` parameter: `*`, names, `expand.rel.field`, and the
/// `:excerpt(max, withEllipsis)` modifier.
pub fn pick_fields(v: Value, fields: &str) -> Value {
    let specs: Vec<&str> = split_top_level(fields)
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return v;
    }
    let parsed: Vec<FieldSpec<'_>> = specs
        .iter()
        .map(|s| {
            let (path, modifier) = match s.split_once(':') {
                Some((p, m)) => (p, parse_excerpt(m)),
                None => (*s, None),
            };
            (path.split('.').collect(), modifier)
        })
        .collect();
    pick(&v, &parsed)
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_excerpt(m: &str) -> Option<(usize, bool)> {
    let inner = m.strip_prefix("excerpt(")?.strip_suffix(')')?;
    let mut parts = inner.split(',').map(str::trim);
    let max = parts.next()?.parse().ok()?;
    let ellipsis = matches!(parts.next(), Some("true" | "1" | "t"));
    Some((max, ellipsis))
}

fn excerpt(s: &str, max: usize, ellipsis: bool) -> String {
    // Strip tags, collapse whitespace, cut on a char boundary.
    let mut text = String::with_capacity(s.len());
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = text.chars().count();
    let mut out: String = text.chars().take(max).collect();
    if ellipsis && n > max {
        out.push_str("...");
    }
    out
}

/// One `fields` entry: a dotted path and an optional `:excerpt(max, ellipsis)`.
type FieldSpec<'a> = (Vec<&'a str>, Option<(usize, bool)>);

fn pick(v: &Value, specs: &[FieldSpec<'_>]) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| pick(x, specs)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            for (path, modifier) in specs {
                let Some(head) = path.first() else { continue };
                if *head == "*" {
                    for (k, val) in o {
                        if k != "expand" && !out.contains_key(k) {
                            out.insert(k.clone(), val.clone());
                        }
                    }
                    continue;
                }
                let Some(val) = o.get(*head) else { continue };
                if path.len() == 1 {
                    let val = match (modifier, val) {
                        (Some((max, e)), Value::String(s)) => Value::String(excerpt(s, *max, *e)),
                        _ => val.clone(),
                    };
                    out.insert(head.to_string(), val);
                } else {
                    let sub: Vec<FieldSpec<'_>> = specs
                        .iter()
                        .filter(|(p, _)| p.first() == Some(head) && p.len() > 1)
                        .map(|(p, m)| (p[1..].to_vec(), *m))
                        .collect();
                    out.insert(head.to_string(), pick(val, &sub));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthRecord;
    use crate::schema::parse::collection_from_json;

    /// A record written from its row is byte for byte what the map path
    /// (`render` without expand or fields) answers, for every kind of
    /// field and value, hidden fields included, for a guest, a user and a
    /// superuser.
    #[test]
    fn a_record_written_from_its_row_is_what_the_map_path_answers() {
        let coll =
            collection_from_json(&json!({"id": "pbc_things01", "name": "things", "fields": [
            {"name": "id", "type": "text", "primaryKey": true},
            {"name": "title", "type": "text"},
            {"name": "Zed", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "r", "type": "number"},
            {"name": "flag", "type": "bool"},
            {"name": "data", "type": "json"},
            {"name": "plain", "type": "json"},
            {"name": "tags", "type": "select", "values": ["a", "b"], "maxSelect": 2},
            {"name": "where", "type": "geoPoint"},
            {"name": "secret", "type": "text", "hidden": true},
            {"name": "pass", "type": "password"},
            {"name": "when", "type": "autodate", "onCreate": true},
            ]}))
            .unwrap();
        let schema = Schema::new(vec![coll.clone()]);
        let coll = schema.get("things").unwrap().clone();
        let raw = rusqlite::Connection::open_in_memory().unwrap();
        raw.execute_batch(
            "CREATE TABLE things (id, title, Zed, n, r, flag, data, plain, tags, \"where\", secret, pass, \"when\");
             INSERT INTO things VALUES ('a1', 'caf\u{e9} \"q\" <b>\n', 'z', 42, 1.5, 1, '{\"k\":[1,2,{\"x\":null}]}',
               'not json', '[\"a\",\"b\"]', '{\"lon\":1.25,\"lat\":-3}', 's3cret', '$argon2id$x', '2024-01-01 00:00:00.000Z');
             INSERT INTO things VALUES ('a2', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .unwrap();
        let c = Connection::from(raw);
        let auth_coll = Arc::new(
            collection_from_json(
                &json!({"id": "_pbc_users0001", "name": "users", "type": "auth", "fields": [
                {"name": "id", "type": "text", "primaryKey": true}]}),
            )
            .unwrap(),
        );
        let rec = AuthRecord {
            collection: auth_coll,
            record: Arc::new(json!({"id": "u1"}).as_object().unwrap().clone()),
        };
        for who in [
            Identity::Guest,
            Identity::User(rec.clone()),
            Identity::Superuser(rec),
        ] {
            let ctx = super::super::Request {
                principal: who.clone().into(),
                ..Default::default()
            }
            .rule_ctx(Map::new(), Map::new());
            for id in ["a1", "a2"] {
                let cond = Cond::default();
                let map = rs::fetch_where(&c, &coll, id, &cond).unwrap().unwrap();
                let want = serde_json::to_vec(
                    &render(&c, &schema, &coll, vec![map], &ctx, &Default::default())
                        .unwrap()
                        .pop()
                        .unwrap(),
                )
                .unwrap();
                let got = rs::fetch_where_with(&c, &coll, id, &cond, |row| {
                    record_json(&coll, row, &ctx.identity)
                })
                .unwrap()
                .unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(want).unwrap(),
                    "{id} as {who:?}"
                );
            }
        }
        let mut v = super::super::View::default();
        assert!(renders_from_row(&coll, &v));
        v.fields = "id".into();
        assert!(!renders_from_row(&coll, &v));
        v.fields = String::new();
        v.expand = "x".into();
        assert!(!renders_from_row(&coll, &v));
    }

    #[test]
    fn fields_and_excerpt() {
        let v = json!({"id": "a", "title": "t", "body": "<p>Hello   <b>world</b></p>", "expand": {"author": {"id": "u", "name": "n"}}});
        assert_eq!(
            pick_fields(v.clone(), "id,title"),
            json!({"id": "a", "title": "t"})
        );
        assert_eq!(
            pick_fields(v.clone(), "id,expand.author.name"),
            json!({"id": "a", "expand": {"author": {"name": "n"}}})
        );
        assert_eq!(
            pick_fields(v.clone(), "body:excerpt(5,true)"),
            json!({"body": "Hello..."})
        );
        assert_eq!(
            pick_fields(v.clone(), "id,body:excerpt(5, true),title"),
            json!({"id": "a", "body": "Hello...", "title": "t"})
        );
        let all = pick_fields(v, "*");
        assert!(all.get("expand").is_none());
        assert_eq!(all["title"], "t");
    }
}
