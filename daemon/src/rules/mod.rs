//! API rules and request filters on top of the filter language: one place
//! that turns a collection rule, or a `filter`/`sort` parameter, into a
//! `Cond` / ORDER BY for the store, with PocketBase's semantics.

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::filter::{self, FilterError, Query};
use crate::schema::{Collection, Schema};
use crate::store::records::{Cond, ListQuery};
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
    /// Final values of `file` fields for a write, computed from the uploads
    /// and the record's own files (never taken from the body as such).
    pub files: Map<String, Value>,
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
            let info = req.to_filter();
            let ctx = filter::Ctx::new(schema, coll, &info, true);
            match filter::compile_rule(r, &ctx) {
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
    let info = req.to_filter();
    let ctx = filter::Ctx::new(schema, coll, &info, superuser);
    let mut q = Query::new(&ctx).map_err(ApiError::internal)?;
    if !superuser {
        match coll.list_rule.as_deref() {
            None => return Err(ApiError::superusers_only()),
            Some(r) => {
                if let Err(e) = q.rule(r) {
                    tracing::warn!(collection = %coll.name, error = %e, "list rule does not compile; denying");
                    return Ok(ListQuery {
                        cond: Cond::deny(),
                        ..Default::default()
                    });
                }
            }
        }
    }
    q.filter_str(filter_src).map_err(client_err)?;
    q.sort(sort_src).map_err(client_err)?;
    let c = q.finish().map_err(client_err)?;
    Ok(ListQuery {
        order: c.order_by.clone(),
        order_params: c.order_params.clone(),
        cond: to_cond(c),
        limit: 0,
        offset: 0,
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
    let info = req.to_filter();
    let ctx = filter::Ctx::new(schema, coll, &info, superuser);
    let mut q = Query::new(&ctx).map_err(ApiError::internal)?;
    q.filter_str(filter_src).map_err(client_err)?;
    Ok(to_cond(q.finish().map_err(client_err)?))
}

/// Checks that a rule string parses and names only known fields (used when
/// a collection is saved). Returns PocketBase's raw error text on failure.
pub fn validate_rule(schema: &Schema, coll: &Arc<Collection>, rule: &str) -> Result<(), String> {
    if rule.trim().is_empty() {
        return Ok(());
    }
    let ctx = filter::Ctx::system(schema, coll);
    filter::compile_rule(rule, &ctx)
        .map(|_| ())
        .map_err(|e| match e {
            FilterError::Parse { .. } => "invalid or incomplete filter expression".to_string(),
            FilterError::UnknownField { field, .. } if field.starts_with('@') => {
                format!("invalid left operand {field:?} - failed to resolve field {field:?}")
            }
            FilterError::UnknownField { field, .. } => {
                format!("invalid left operand {field:?} - unknown field {field:?}")
            }
            other => other.to_string(),
        })
}
