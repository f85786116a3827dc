//! API rules and request filters on top of the filter language: one place
//! that turns a collection rule, or a `filter`/`sort` parameter, into a
//! `Cond` / ORDER BY for the store, with PocketBase's semantics.
//!
//! A collection's rules are parsed once per schema snapshot (kept in the
//! collection's `derived` cache) and compiled once per request shape: a
//! [`filter::Template`] holds the SQL with the request values (`@request.*`,
//! `@now`...) left as late-bound parameters, so a request only checks
//! which template fits it and binds its values. A client's `filter` and
//! `sort` are compiled per request (with the list rule parsed once).

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::filter::{self, Access, FilterError, Query};
use crate::schema::{Collection, Schema};
use crate::store::records::{Cond, ListQuery};
use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};

/// What a rule may read about the request (`@request.*`).
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    pub identity: Identity,
    pub method: String,
    pub context: String,
    pub query: Arc<Map<String, Value>>,
    pub headers: Arc<Map<String, Value>>,
    pub body: Map<String, Value>,
    /// Final values of `file` fields for a write, computed from the uploads
    /// and the record's own files (never taken from the body as such).
    pub files: Map<String, Value>,
}

impl RequestCtx {
    /// The request as the filter compiler reads it (borrowed, not copied).
    fn view(&self) -> filter::RequestView<'_> {
        filter::RequestView {
            auth: self.identity.auth().map(|a| filter::AuthView {
                collection: &a.collection,
                record: &a.record,
            }),
            body: &self.body,
            query: &self.query,
            headers: &self.headers,
            method: &self.method,
            context: &self.context,
        }
    }
}

/// Request shapes one rule keeps a template for (guest or authenticated,
/// which auth collection, which request values are missing, null or
/// empty...); past that, a request's rule is compiled for it alone.
const MAX_TEMPLATES: usize = 16;

/// One rule of a collection: parsed once, compiled once per request shape.
struct CachedRule {
    text: String,
    parsed: Result<filter::Expr, FilterError>,
    templates: RwLock<Vec<Arc<filter::Template>>>,
}

/// The rules of one collection in one schema snapshot.
struct RuleSet(Vec<CachedRule>);

impl RuleSet {
    fn new(c: &Collection) -> RuleSet {
        let rules = [
            &c.list_rule,
            &c.view_rule,
            &c.create_rule,
            &c.update_rule,
            &c.delete_rule,
        ];
        let texts = rules
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(c.auth_rule())
            .chain(c.manage_rule());
        let mut out: Vec<CachedRule> = Vec::new();
        for text in texts {
            if text.trim().is_empty() || out.iter().any(|r| r.text == text) {
                continue;
            }
            out.push(CachedRule {
                text: text.to_string(),
                parsed: filter::parse(text),
                templates: RwLock::default(),
            });
        }
        RuleSet(out)
    }
}

impl CachedRule {
    /// The rule compiled for `ctx`'s request: the template that fits the
    /// request (made and kept if none does yet), bound to it.
    fn compile(&self, ctx: &filter::Ctx<'_>) -> Result<filter::Compiled, FilterError> {
        let expr = self.parsed.as_ref().map_err(Clone::clone)?;
        let req = ctx.request.as_ref();
        let fits = self
            .templates
            .read()
            .ok()
            .and_then(|ts| ts.iter().find(|t| t.matches(req)).cloned());
        if let Some(t) = fits {
            return Ok(t.bind(req, ctx.now));
        }
        let mut q = Query::new(ctx)?.unique_aliases();
        q.rule_expr(expr)?;
        let t = q.finish_template()?;
        let out = t.bind(req, ctx.now);
        if let Ok(mut ts) = self.templates.write() {
            if ts.len() < MAX_TEMPLATES && !ts.iter().any(|x| x.matches(req)) {
                ts.push(Arc::new(t));
            }
        }
        Ok(out)
    }
}

/// The cached form of `rule` when it is one of `coll`'s rules and `coll`
/// belongs to `schema` (the snapshot its joins were resolved in).
fn cached<'c>(schema: &Schema, coll: &'c Arc<Collection>, rule: &str) -> Option<&'c CachedRule> {
    if !schema.get(&coll.id).is_some_and(|c| Arc::ptr_eq(c, coll)) {
        return None;
    }
    let set = coll
        .derived
        .1
        .get_or_init(|| Box::new(RuleSet::new(coll)))
        .downcast_ref::<RuleSet>()?;
    set.0.iter().find(|r| r.text == rule)
}

/// A non-empty rule compiled (privileged) for `ctx`'s request.
fn compile_rule(
    schema: &Schema,
    coll: &Arc<Collection>,
    rule: &str,
    ctx: &filter::Ctx<'_>,
) -> Result<filter::Compiled, FilterError> {
    match cached(schema, coll, rule) {
        Some(c) => c.compile(ctx),
        None => filter::compile_rule(rule, ctx),
    }
}

/// A client's filter/sort error: 403 for superuser-only fields, else
/// PocketBase's generic 400 (no parser detail leaks to the client).
fn client_err(e: FilterError) -> ApiError {
    match e {
        FilterError::Forbidden(m) => ApiError::Forbidden(m),
        other => {
            tracing::debug!(error = %other, "invalid filter or sort");
            ApiError::bad(filter::GENERIC_MESSAGE)
        }
    }
}

fn to_cond(c: filter::Compiled) -> Cond {
    Cond {
        joins: c.joins,
        join_params: c.join_params,
        sql: c.where_sql,
        params: c.params,
        distinct: c.distinct,
    }
}

/// A collection rule as a condition. `Ok(None)`: the rule is null
/// (superusers only). A stored rule that no longer compiles (e.g. it names a
/// field that was removed) denies access and is logged.
pub fn rule_cond(
    schema: &Schema,
    coll: &Arc<Collection>,
    rule: Option<&str>,
    req: &RequestCtx,
) -> ApiResult<Option<Cond>> {
    match rule {
        None => Ok(None),
        Some(r) if r.trim().is_empty() => Ok(Some(Cond::default())),
        Some(r) => {
            let ctx = filter::Ctx::for_request(schema, coll, req.view(), true);
            match compile_rule(schema, coll, r, &ctx) {
                Ok(c) => Ok(Some(to_cond(c))),
                Err(e) => {
                    tracing::warn!(collection = %coll.name, error = %e, "rule does not compile; denying");
                    Ok(Some(Cond::deny()))
                }
            }
        }
    }
}

/// The list query: the list rule (unless superuser), the client's filter
/// and sort, compiled together so that they share their joins.
pub fn list_query(
    schema: &Schema,
    coll: &Arc<Collection>,
    req: &RequestCtx,
    filter_src: &str,
    sort_src: &str,
    max_filter_len: usize,
) -> ApiResult<ListQuery> {
    let superuser = req.identity.is_superuser();
    if filter_src.len() > max_filter_len {
        return Err(ApiError::bad(filter::GENERIC_MESSAGE));
    }
    let ctx = filter::Ctx::for_request(schema, coll, req.view(), superuser);
    let denied = |e: FilterError| {
        tracing::warn!(collection = %coll.name, error = %e, "list rule does not compile; denying");
        ListQuery {
            cond: Cond::deny(),
            ..Default::default()
        }
    };
    let rule = match coll.list_rule.as_deref() {
        _ if superuser => None,
        None => return Err(ApiError::superusers_only()),
        Some(r) => Some(r),
    };
    if let Some(r) = rule {
        if filter_src.is_empty() && sort_src.is_empty() {
            // The list rule alone: its template.
            if r.trim().is_empty() {
                return Ok(ListQuery::default());
            }
            let rule_ctx = ctx.clone().with_access(Access::Privileged);
            return Ok(match compile_rule(schema, coll, r, &rule_ctx) {
                Ok(c) => ListQuery {
                    cond: to_cond(c),
                    ..Default::default()
                },
                Err(e) => denied(e),
            });
        }
    }
    let mut q = Query::new(&ctx).map_err(ApiError::internal)?;
    if let Some(r) = rule {
        let added = match cached(schema, coll, r) {
            Some(c) => c
                .parsed
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|e| q.rule_expr(e).map(|_| ())),
            None => q.rule(r).map(|_| ()),
        };
        if let Err(e) = added {
            return Ok(denied(e));
        }
    }
    q.filter_str(filter_src).map_err(client_err)?;
    q.sort(sort_src).map_err(client_err)?;
    let ranges = q.take_ranges();
    let c = q.finish().map_err(client_err)?;
    Ok(ListQuery {
        order: c.order_by.clone(),
        order_params: c.order_params.clone(),
        cond: to_cond(c),
        limit: 0,
        offset: 0,
        ranges,
    })
}

/// A client's `filter` (and `sort`, only checked) on its own, compiled with
/// the caller's access (privileged for superusers), as PocketBase checks a
/// realtime subscription's `filter` option.
pub fn filter_cond(
    schema: &Schema,
    coll: &Arc<Collection>,
    req: &RequestCtx,
    filter_src: &str,
    sort_src: &str,
    max_filter_len: usize,
) -> ApiResult<Cond> {
    let superuser = req.identity.is_superuser();
    if filter_src.len() > max_filter_len {
        return Err(ApiError::bad(filter::GENERIC_MESSAGE));
    }
    if !superuser {
        filter::check_superuser_only_fields(filter_src, sort_src).map_err(client_err)?;
    }
    let ctx = filter::Ctx::for_request(schema, coll, req.view(), superuser);
    let mut q = Query::new(&ctx).map_err(ApiError::internal)?;
    q.filter_str(filter_src).map_err(client_err)?;
    Ok(to_cond(q.finish().map_err(client_err)?))
}

/// Why a rule does not compile for a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleProblem {
    /// PocketBase's raw error text (what a collection save answers).
    pub message: String,
    /// Where the parser stopped (byte offset into the rule) and what it
    /// expected there, when the rule doesn't parse.
    pub at: Option<(usize, String)>,
}

/// Checks that a rule string parses and names only known fields (used when
/// a collection is saved, and by the rule check before one is).
pub fn rule_problem(
    schema: &Schema,
    coll: &Arc<Collection>,
    rule: &str,
) -> Result<(), RuleProblem> {
    if rule.trim().is_empty() {
        return Ok(());
    }
    let ctx = filter::Ctx::system(schema, coll);
    filter::compile_rule(rule, &ctx).map(|_| ()).map_err(|e| {
        let at = match &e {
            FilterError::Parse { pos, message } => Some((*pos, message.clone())),
            _ => None,
        };
        let message = match e {
            FilterError::Parse { .. } => "invalid or incomplete filter expression".to_string(),
            FilterError::UnknownField { field, .. } if field.starts_with('@') => {
                format!("invalid left operand {field:?} - failed to resolve field {field:?}")
            }
            FilterError::UnknownField { field, .. } => {
                format!("invalid left operand {field:?} - unknown field {field:?}")
            }
            other => other.to_string(),
        };
        RuleProblem { message, at }
    })
}

/// `rule_problem` as PocketBase's raw error text.
pub fn validate_rule(schema: &Schema, coll: &Arc<Collection>, rule: &str) -> Result<(), String> {
    rule_problem(schema, coll, rule).map_err(|p| p.message)
}

#[cfg(test)]
mod bench;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::identity::AuthRecord;
    use serde_json::json;

    fn user(schema: &Schema, id: &str) -> RequestCtx {
        let mut record = Map::new();
        record.insert("id".into(), json!(id));
        RequestCtx {
            identity: Identity::User(AuthRecord {
                collection: schema.get("users").expect("users").clone(),
                record: record.into(),
            }),
            ..Default::default()
        }
    }

    fn templates(schema: &Schema, coll: &Arc<Collection>, rule: &str) -> usize {
        cached(schema, coll, rule)
            .and_then(|c| c.templates.read().ok().map(|t| t.len()))
            .unwrap_or(0)
    }

    /// A rule is compiled once per request shape and snapshot; each request
    /// binds its own values into the same SQL.
    #[test]
    fn rules_compile_once_per_request_shape() {
        let schema = bench::schema();
        let docs = schema.get("docs").expect("docs").clone();
        let rule = docs.list_rule.clone().expect("list rule");
        let cond = |req: &RequestCtx| {
            rule_cond(&schema, &docs, Some(&rule), req)
                .expect("rule")
                .expect("cond")
        };
        let a = cond(&user(&schema, "u1aaaaaaaaaaaaa"));
        let b = cond(&user(&schema, "u2aaaaaaaaaaaaa"));
        assert_eq!(a.sql, b.sql);
        assert_ne!(a.params, b.params);
        assert_eq!(templates(&schema, &docs, &rule), 1);
        let g = cond(&RequestCtx::default());
        assert_ne!(g.sql, a.sql);
        assert_eq!(templates(&schema, &docs, &rule), 2);
        // The list API with no filter or sort uses the same template.
        let q = list_query(&schema, &docs, &user(&schema, "u3"), "", "", 100).expect("list");
        assert_eq!(q.cond.sql, a.sql);
        assert_eq!(templates(&schema, &docs, &rule), 2);
        // A text that is not one of the collection's rules, or a collection
        // that is not the snapshot's, is compiled on its own.
        let other = rule_cond(&schema, &docs, Some("title = 'x'"), &RequestCtx::default())
            .expect("rule")
            .expect("cond");
        assert!(other.sql.contains("title"));
        let detached = Arc::new((*docs).clone());
        let d = rule_cond(&schema, &detached, Some(&rule), &RequestCtx::default())
            .expect("rule")
            .expect("cond");
        assert_eq!(d.params, g.params);
        assert_eq!(templates(&schema, &detached, &rule), 0);
    }

    /// A rule with two request values, one compared with `~`, bound from
    /// its kept template as a compile for that request alone binds it,
    /// with each request's own values.
    #[test]
    fn a_like_of_a_request_value_binds_from_its_template() {
        let schema = bench::schema();
        let mut docs = (**schema.get("docs").expect("docs")).clone();
        let rule = "owner = @request.auth.id && title ~ @request.query.q";
        docs.view_rule = Some(rule.into());
        let schema = Schema::new(vec![(**schema.get("users").expect("users")).clone(), docs]);
        let docs = schema.get("docs").expect("docs").clone();
        // A value with `%` is its own pattern, one without is escaped and
        // wrapped in `%`: `part` is what the pattern keeps of it.
        for (id, q, part) in [
            ("u1aaaaaaaaaaaaa", "ab%c", "ab%c"),
            ("u2aaaaaaaaaaaaa", "x_y", "%x"),
            ("u3aaaaaaaaaaaaa", "zz", "%zz%"),
        ] {
            let mut req = user(&schema, id);
            let mut query = Map::new();
            query.insert("q".into(), json!(q));
            req.query = Arc::new(query);
            let got = rule_cond(&schema, &docs, Some(rule), &req)
                .expect("rule")
                .expect("cond");
            let ctx = filter::Ctx::for_request(&schema, &docs, req.view(), true);
            let alone = filter::compile_rule(rule, &ctx).expect("compile");
            assert_eq!(got.sql, alone.where_sql);
            assert_eq!(got.params, alone.params);
            // Bound from this request's values.
            let params = format!("{:?}", got.params);
            assert!(params.contains(id), "{params}");
            assert!(params.contains(part), "{q}: {params}");
        }
        assert_eq!(templates(&schema, &docs, rule), 1);
    }

    /// A rule that no longer compiles denies, as before.
    #[test]
    fn a_broken_rule_denies() {
        let schema = bench::schema();
        let mut docs = (**schema.get("docs").expect("docs")).clone();
        docs.view_rule = Some("nosuchfield = 1".into());
        docs.list_rule = Some("(broken".into());
        let schema = Schema::new(vec![(**schema.get("users").expect("users")).clone(), docs]);
        let docs = schema.get("docs").expect("docs").clone();
        for rule in [docs.view_rule.as_deref(), docs.list_rule.as_deref()] {
            for _ in 0..2 {
                let c = rule_cond(&schema, &docs, rule, &RequestCtx::default())
                    .expect("rule")
                    .expect("cond");
                assert_eq!(c.sql, "0");
            }
        }
        let q = list_query(&schema, &docs, &RequestCtx::default(), "", "", 100).expect("list");
        assert_eq!(q.cond.sql, "0");
        let q = list_query(
            &schema,
            &docs,
            &RequestCtx::default(),
            "title = 'x'",
            "",
            100,
        )
        .expect("list");
        assert_eq!(q.cond.sql, "0");
    }
}
