//! API rules and request filters on top of the filter language: one place
//! that turns a collection rule, or a `filter`/`sort` parameter, into a
//! `Cond` / ORDER BY for the store, with PocketBase's semantics.

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::filter;
use crate::schema::{Collection, Schema};
use crate::store::records::Cond;
use serde_json::{Map, Value};
use std::sync::Arc;

/// What a rule may read about the request (`@request.*`).
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    pub identity: Identity,
    pub method: String,
    pub context: String,
    pub query: Map<String, Value>,
    pub headers: Map<String, Value>,
    pub body: Map<String, Value>,
}

impl RequestCtx {
    fn to_filter(&self) -> filter::RequestInfo {
        filter::RequestInfo {
            auth: self.identity.auth().map(|a| filter::AuthInfo {
                collection: a.collection.clone(),
                record: a.record.clone(),
            }),
            body: self.body.clone(),
            query: self.query.clone(),
            headers: self.headers.clone(),
            method: self.method.clone(),
            context: self.context.clone(),
        }
    }
}

fn filter_err(e: filter::FilterError) -> ApiError {
    match e {
        filter::FilterError::Forbidden(m) => ApiError::Forbidden(m),
        other => {
            tracing::debug!(error = %other, "invalid filter");
            ApiError::bad(format!("Invalid filter parameters. {other}"))
        }
    }
}

fn compile(schema: &Schema, coll: &Arc<Collection>, src: &str, req: &RequestCtx, privileged: bool) -> Result<Cond, filter::FilterError> {
    let info = req.to_filter();
    let ctx = filter::Ctx::new(schema, coll, &info, privileged);
    let expr = filter::parse(src)?;
    let c = filter::compile(&expr, &ctx)?;
    Ok(Cond {
        joins: c.joins,
        sql: c.where_sql,
        params: c.params,
        distinct: c.distinct,
    })
}

/// A collection rule as a condition. `Ok(None)`: the rule is null (superusers only).
pub fn rule_cond(schema: &Schema, coll: &Arc<Collection>, rule: Option<&str>, req: &RequestCtx) -> ApiResult<Option<Cond>> {
    match rule {
        None => Ok(None),
        Some(r) if r.trim().is_empty() => Ok(Some(Cond::default())),
        Some(r) => compile(schema, coll, r, req, true)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("rule of {}: {e}", coll.name))),
    }
}

/// The `filter` query parameter of the caller.
pub fn user_filter(schema: &Schema, coll: &Arc<Collection>, src: &str, req: &RequestCtx, max_len: usize) -> ApiResult<Cond> {
    if src.trim().is_empty() {
        return Ok(Cond::default());
    }
    if src.len() > max_len {
        return Err(ApiError::bad("Invalid filter parameters. The filter is too long."));
    }
    compile(schema, coll, src, req, req.identity.is_superuser()).map_err(filter_err)
}

/// The `sort` parameter: ORDER BY terms with their joins.
pub fn user_sort(schema: &Schema, coll: &Arc<Collection>, src: &str, req: &RequestCtx) -> ApiResult<(Vec<String>, Vec<String>, Vec<rusqlite::types::Value>)> {
    if src.trim().is_empty() {
        return Ok((vec![], vec![], vec![]));
    }
    let info = req.to_filter();
    let ctx = filter::Ctx::new(schema, coll, &info, req.identity.is_superuser());
    let s = filter::compile_sort(src, &ctx).map_err(|e| match e {
        filter::FilterError::Forbidden(m) => ApiError::Forbidden(m),
        other => ApiError::bad(format!("Invalid sort parameters. {other}")),
    })?;
    Ok((s.terms, s.joins, s.params))
}

/// Checks that a rule string parses and names only known fields (used when
/// a collection is saved). Returns the user-facing reason on failure.
pub fn validate_rule(schema: &Schema, coll: &Arc<Collection>, rule: &str) -> Result<(), String> {
    if rule.trim().is_empty() {
        return Ok(());
    }
    let req = RequestCtx::default();
    compile(schema, coll, rule, &req, true).map(|_| ()).map_err(|e| e.to_string())
}
