//! A template compiled for one request and bound to another that answers
//! its probes alike is exactly what compiling for that other request gives:
//! the same SQL text, the same parameters, the same errors. Checked for
//! every rule of the oracle tables against requests of every shape the
//! compiler distinguishes (guest, user, superuser; missing, null, empty
//! and other values; arrays of each length; relation ids or none).

use super::tests::{now, request, schema, Who, ORACLE_BODY, ORACLE_FILTERS, ORACLE_RULES};
use super::*;
use chrono::Duration;
use serde_json::{json, Value};

fn requests(schema: &crate::schema::Schema) -> Vec<RequestInfo> {
    let queries = [
        json!({}),
        json!({"filter": "", "perPage": "500", "x": "ABC", "views": "10"}),
        json!({"x": "", "views": "abc", "perPage": null}),
        json!({"x": "%_\\", "views": 7, "a": {"b": "x"}}),
    ];
    let bodies = [
        json!({}),
        json!({"title": "t", "n": 5, "tags": ["a"], "owner": "u1aaaaaaaaaaaaa"}),
        json!({"title": "", "n": "5", "tags": [], "owner": ""}),
        json!({"title": null, "n": null, "tags": null, "owner": null, "refs": null}),
        json!({"title": "T", "n": "x", "tags": ["a", "b"], "refs": ["c1aaaaaaaaaaaaa", "c2aaaaaaaaaaaaa"]}),
        json!({"tags": "a", "refs": "[\"c1aaaaaaaaaaaaa\"]", "flag": true, "owner": ["u2aaaaaaaaaaaaa"]}),
        json!({"tags": ["a", "b", "c"], "refs": ["", "c3aaaaaaaaaaaaa", "c3aaaaaaaaaaaaa"], "flag": "false"}),
        json!({"title": 5, "n": 0, "flag": false, "refs": "", "tags": [""]}),
    ];
    let mut out = Vec::new();
    for (i, who) in [Who::Guest, Who::Alice, Who::Superuser]
        .into_iter()
        .enumerate()
    {
        for (j, q) in queries.iter().enumerate() {
            for (k, b) in bodies.iter().enumerate() {
                // Not every combination: enough to cross shapes both ways.
                if (i + j + k) % 2 == 1 {
                    continue;
                }
                let mut r = request(schema, who, q.clone(), b.clone());
                if k % 3 == 0 {
                    r.method = "PATCH".into();
                }
                out.push(r);
            }
        }
    }
    for b in ORACLE_BODY.iter().map(|(_, b, _)| b) {
        let body: Value = serde_json::from_str(b).expect("body json");
        let mut r = request(schema, Who::Alice, json!({}), body);
        r.method = "PATCH".into();
        out.push(r);
    }
    out
}

#[test]
fn templates_bind_to_what_compiling_gives() {
    let schema = schema();
    let reqs = requests(&schema);
    let rules: Vec<(&str, &str)> = ORACLE_RULES
        .iter()
        .map(|(r, _, _)| ("posts", *r))
        .chain(ORACLE_FILTERS.iter().map(|(f, _, _, _)| ("posts", *f)))
        .chain(ORACLE_BODY.iter().map(|(r, _, _)| ("notes", *r)))
        .chain([
            (
                "notes",
                "@request.body.title:lower = 't' && title ~ @request.body.title",
            ),
            (
                "notes",
                "@request.query.x ~ title || @request.query.x:lower ?~ tags:each",
            ),
            (
                "posts",
                "created > @yesterday && @request.auth.age > 1 && author.age < @request.auth.age",
            ),
            (
                "posts",
                "@request.auth.collectionName = 'users' && @request.auth.name:isset = true",
            ),
        ])
        .collect();
    let mut reused = 0;
    let mut failures = Vec::new();
    for (coll, rule) in &rules {
        let c = schema.get(coll).expect("collection");
        let mut templates: Vec<Template> = Vec::new();
        // Forward, then backward: each template meets requests of both sides.
        for (n, req) in reqs.iter().chain(reqs.iter().rev()).enumerate() {
            // A different clock for the binding than for the first compile.
            let at = now() + Duration::seconds(n as i64 * 3671);
            let ctx = Ctx::new(&schema, c, req, true).with_now(at);
            let fresh = (|| {
                let mut q = Query::new(&ctx)?;
                q.rule(rule)?;
                q.finish()
            })();
            let view = req.view();
            let got = match templates.iter().find(|t| t.matches(Some(&view))) {
                Some(t) => {
                    reused += 1;
                    Ok(t.bind(Some(&view), at))
                }
                None => {
                    let t = (|| {
                        let mut q = Query::new(&ctx)?;
                        q.rule(rule)?;
                        q.finish_template()
                    })();
                    t.map(|t| {
                        let out = t.bind(Some(&view), at);
                        templates.push(t);
                        out
                    })
                }
            };
            if got != fresh {
                failures.push(format!(
                    "{coll} {rule:?} for {:?} {} {}:\n  template: {got:?}\n  compiled: {fresh:?}",
                    req.auth.as_ref().map(|a| &a.collection.name),
                    Value::Object(req.query.clone()),
                    Value::Object(req.body.clone()),
                ));
            }
        }
        assert!(
            templates.len() <= 24,
            "{rule:?}: {} shapes",
            templates.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Most requests are served by a template made for another one.
    assert!(reused > rules.len() * reqs.len(), "reused {reused}");
}

/// Probes see what decides the shape, slots carry the rest: two users get
/// the same SQL text with their own values bound.
#[test]
fn one_template_serves_every_user() {
    let schema = schema();
    let c = schema.get("posts").expect("posts");
    let rule = "author = @request.auth.id && title ~ @request.query.x && created < @now";
    let alice = request(&schema, Who::Alice, json!({"x": "a%"}), json!({}));
    let mut bob = request(&schema, Who::Alice, json!({"x": "b_"}), json!({}));
    if let Some(a) = bob.auth.as_mut() {
        a.record.insert("id".into(), json!("u2aaaaaaaaaaaaa"));
    }
    let ctx = Ctx::new(&schema, c, &alice, true).with_now(now());
    let mut q = Query::new(&ctx).expect("query");
    q.rule(rule).expect("rule");
    let t = q.finish_template().expect("template");
    assert!(t.matches(Some(&bob.view())));
    let a = t.bind(Some(&alice.view()), now());
    let b = t.bind(Some(&bob.view()), now() + Duration::days(1));
    assert_eq!(a.where_sql, b.where_sql);
    use crate::store::SqlValue as Sql;
    let text = |s: &str| Sql::Text(s.into());
    assert_eq!(
        a.params,
        vec![
            text("u1aaaaaaaaaaaaa"),
            text("a%"),
            text("2026-11-23 20:50:00.000Z")
        ]
    );
    assert_eq!(
        b.params,
        vec![
            text("u2aaaaaaaaaaaaa"),
            text("%b\\_%"),
            text("2026-11-24 20:50:00.000Z")
        ]
    );
    // A guest, or an empty value, is another shape.
    let guest = request(&schema, Who::Guest, json!({"x": "a"}), json!({}));
    assert!(!t.matches(Some(&guest.view())));
    let empty = request(&schema, Who::Alice, json!({"x": ""}), json!({}));
    assert!(!t.matches(Some(&empty.view())));
}
