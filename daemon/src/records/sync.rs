//! What sync reads: the rows of a synced collection a device may see — the
//! collection's list rule, checked for the device as for any client (the
//! device is an auth record; `@request.context` is "sync"), hidden fields
//! left out. Writes from sync go through `write::apply_synced`.

use super::Request;
use crate::error::ApiResult;
use crate::rules;
use crate::schema::{Collection, Schema};
use crate::store::records::{self as rs, Cond};
use crate::store::Conn as Connection;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The list rule of `coll` for `req`, compiled once for many checks (None:
/// the rule lets nothing through for this caller).
pub fn list_cond(
    schema: &Schema,
    coll: &Arc<Collection>,
    req: &Request,
) -> ApiResult<Option<Cond>> {
    if req.principal.is_privileged() {
        return Ok(Some(Cond::default()));
    }
    let ctx = req.rule_ctx(Map::new(), Map::new());
    rules::rule_cond(schema, coll, coll.list_rule.as_deref(), &ctx)
}

/// The row `id` as the caller may see it (None: missing or not listed).
pub fn listed_row(
    c: &Connection,
    coll: &Collection,
    cond: &Cond,
    id: &str,
) -> ApiResult<Option<Map<String, Value>>> {
    Ok(rs::fetch_where(c, coll, id, cond)?.map(|r| without_hidden(coll, r)))
}

/// Whether a row as it was (a deleted record) passed the rule.
pub fn was_listed(
    c: &Connection,
    coll: &Collection,
    cond: &Cond,
    row: &Map<String, Value>,
) -> ApiResult<bool> {
    rs::passes_snapshot(c, coll, row, cond)
}

/// A page of the rows the caller may list, in id order after `after`.
pub fn listed_page(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    req: &Request,
    after: &str,
    limit: i64,
) -> ApiResult<Vec<Map<String, Value>>> {
    if !after
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    {
        return Ok(Vec::new());
    }
    let ctx = req.rule_ctx(Map::new(), Map::new());
    if !req.principal.is_privileged() && coll.list_rule.is_none() {
        return Ok(Vec::new());
    }
    let filter = if after.is_empty() {
        String::new()
    } else {
        format!("id > \"{after}\"")
    };
    let mut q = rules::list_query(schema, coll, &ctx, &filter, "id", usize::MAX)?;
    q.limit = limit;
    Ok(rs::list(c, coll, &q)?
        .into_iter()
        .map(|r| without_hidden(coll, r))
        .collect())
}

fn without_hidden(coll: &Collection, mut row: Map<String, Value>) -> Map<String, Value> {
    for f in &coll.fields {
        if f.hidden {
            row.remove(&f.name);
        }
    }
    row
}
