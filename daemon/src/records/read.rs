//! Reading records: a page of a list (list rule + the caller's filter and
//! sort) and one record by id (view rule), shown through [`super::render`].

use super::{render, Principal, Request};
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::rules;
use crate::schema::Collection;
use crate::store::records::{self as rs, Cond};
use crate::store::Conn as Connection;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// A list request, already decoded.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub filter: String,
    pub sort: String,
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
    /// Don't count the matching records (`totalItems` -1).
    pub skip_total: bool,
}

/// One page of records as the JSON bytes of the answer, through the list
/// cache (`records::cache`): a repeated request, while nothing has
/// changed, is answered with the bytes computed the first time.
pub async fn list_json(
    app: &App,
    coll: &Arc<Collection>,
    req: &Request,
    p: ListParams,
) -> ApiResult<Bytes> {
    let cache = &app.list_cache;
    if !cache.enabled() {
        tracing::trace!(collection = %coll.name, "list cache off");
        return encode(&list(app, coll, req, p).await?);
    }
    // The generation before anything else is read: what is computed
    // below is at least as new as it.
    let generation = app.store.generation();
    let schema = app.store.schema();
    let Some(key) = cache_key(&schema, coll, req, &p) else {
        cache.bypass();
        tracing::trace!(collection = %coll.name, "list cache bypassed");
        return encode(&list(app, coll, req, p).await?);
    };
    if let Some(hit) = cache.get(&key, generation) {
        tracing::trace!(collection = %coll.name, "list cache hit");
        return Ok(hit);
    }
    tracing::trace!(collection = %coll.name, "list cache miss");
    // What the pages of this list share under this generation: its total
    // and, for a list whose order the store can read whole, that order —
    // kept once a second page after the first is asked under one
    // generation (a client paging through a list that holds still; making
    // the whole order costs more than one page's window).
    let pages = pages_key(&schema, coll, req, &p);
    let order_key = pages.as_deref().map(|k| tagged(b"order/1", k));
    if let Some(order) = order_key.as_ref().and_then(|k| cache.get(k, generation)) {
        tracing::trace!(collection = %coll.name, "list order cache hit");
        let (v, _) = list_known(app, coll, req, p, Known::Order(order), false).await?;
        let out = encode(&v)?;
        cache.put(&key, out.clone(), generation);
        return Ok(out);
    }
    let counts = &app.count_cache;
    let paged_key = pages
        .as_deref()
        .filter(|_| p.page > 1)
        .map(|k| tagged(b"paged/1", k));
    // The marker: empty once a later page was asked; one byte once the
    // order was asked for and could not be kept (too many rows, or an
    // order only the engine's sort gives), so it isn't asked again.
    let marker = paged_key.as_ref().and_then(|k| counts.get(k, generation));
    let keep_order = marker.as_ref().is_some_and(|m| m.is_empty());
    let count_key = pages
        .as_deref()
        .filter(|_| !p.skip_total && counts.enabled())
        .map(|k| tagged(b"count/1", k));
    let known = count_key
        .as_ref()
        .and_then(|k| counts.get(k, generation))
        .and_then(|b| Some(i64::from_le_bytes(b.as_ref().try_into().ok()?)));
    if known.is_some() {
        tracing::trace!(collection = %coll.name, "list count cache hit");
    }
    let given = known.map_or(Known::Nothing, Known::Total);
    let (v, order) = list_known(app, coll, req, p, given, keep_order).await?;
    if let (Some(k), None, Some(total)) = (&count_key, known, v["totalItems"].as_i64()) {
        counts.put(k, Bytes::copy_from_slice(&total.to_le_bytes()), generation);
    }
    match (&order_key, order, &paged_key) {
        (Some(k), Some(rows), _) => cache.put(k, encode_rows(&rows), generation),
        (_, None, Some(paged)) if keep_order => {
            tracing::trace!(collection = %coll.name, "list order not kept");
            counts.put(paged, Bytes::from_static(b"-"), generation);
        }
        (_, None, Some(paged)) if marker.is_none() => counts.put(paged, Bytes::new(), generation),
        _ => {}
    }
    let out = encode(&v)?;
    cache.put(&key, out.clone(), generation);
    Ok(out)
}

/// Row ids as the bytes the cache keeps (8 each, little-endian).
fn encode_rows(rows: &[i64]) -> Bytes {
    rows.iter().flat_map(|r| r.to_le_bytes()).collect()
}

/// Rows `w` of an order kept by [`encode_rows`].
fn decode_rows(b: &[u8], w: std::ops::Range<usize>) -> Vec<i64> {
    b.get(w.start * 8..w.end * 8)
        .unwrap_or_default()
        .chunks_exact(8)
        .filter_map(|c| Some(i64::from_le_bytes(c.try_into().ok()?)))
        .collect()
}

fn encode(v: &Value) -> ApiResult<Bytes> {
    Ok(Bytes::from(
        serde_json::to_vec(v).map_err(ApiError::internal)?,
    ))
}

/// What the pages of one list share (its total, its order) are keyed by:
/// what [`cache_key`] keys an answer by, but for what only chooses the
/// page — `page`, `perPage`, `skipTotal` — and the query parameters, which
/// the condition reads only through `@request.query`; None when a rule,
/// the filter or the sort reads `@request.query` (the count may then differ
/// from page to page). Untagged: see [`tagged`].
fn pages_key(
    schema: &crate::schema::Schema,
    coll: &Arc<Collection>,
    req: &Request,
    p: &ListParams,
) -> Option<Vec<u8>> {
    if schema.rules_read_query()
        || p.filter.contains("@request.query")
        || p.sort.contains("@request.query")
    {
        return None;
    }
    key_of(schema, coll, req, p, false)
}

/// The key of one kind of value (`tag`) under `body`, one of [`key_of`]'s.
fn tagged(tag: &[u8], body: &[u8]) -> Vec<u8> {
    let mut k = super::cache::KeyBuf::default();
    k.part(tag).part(body);
    k.0
}

/// Everything a list answer depends on besides the stored data, or None
/// when the answer must not be kept (see `records::cache`).
fn cache_key(
    schema: &crate::schema::Schema,
    coll: &Arc<Collection>,
    req: &Request,
    p: &ListParams,
) -> Option<Vec<u8>> {
    Some(tagged(b"list/1", &key_of(schema, coll, req, p, true)?))
}

/// Everything a list depends on besides the stored data, with (`page`)
/// or without what picks its page and the query parameters; None when
/// nothing of it may be kept.
fn key_of(
    schema: &crate::schema::Schema,
    coll: &Arc<Collection>,
    req: &Request,
    p: &ListParams,
    page: bool,
) -> Option<Vec<u8>> {
    let current = |c: &Arc<Collection>| schema.by_id(&c.id).is_some_and(|s| Arc::ptr_eq(s, c));
    // Not the current schema's collection (a clone under test, or the
    // schema changed since the request was read).
    if !current(coll) {
        return None;
    }
    if schema.reads_clock()
        || crate::filter::volatile(&p.filter)
        || crate::filter::volatile(&p.sort)
    {
        return None;
    }
    // Headers not copied for rules that read them: the request was read
    // under an older schema.
    if schema.rules_read_headers() && req.headers.is_empty() && !req.principal.is_superuser() {
        return None;
    }
    let mut k = super::cache::KeyBuf::default();
    k.part(coll.id.as_bytes())
        .part(p.filter.as_bytes())
        .part(p.sort.as_bytes());
    if page {
        k.part(&p.page.to_le_bytes())
            .part(&p.per_page.to_le_bytes())
            .part(&[u8::from(p.skip_total)]);
    }
    k.part(req.method.as_bytes()).part(req.context.as_bytes());
    if page {
        k.part(&serde_json::to_vec(&*req.query).ok()?);
    }
    // Headers and the auth record go in as SHA-256 digests: a cached key
    // keeps no token or password hash in memory.
    k.part(&digest(&serde_json::to_vec(&*req.headers).ok()?));
    let (tag, auth) = match &req.principal {
        Principal::Guest => (b"guest".as_slice(), None),
        Principal::User(a) => (b"user".as_slice(), Some(a)),
        Principal::Superuser(a) => (b"superuser".as_slice(), Some(a)),
        Principal::System => return None,
    };
    k.part(tag);
    if let Some(a) = auth {
        // The auth record as loaded for this request, every column: rules
        // read any of them (`@request.auth.role`).
        if !current(&a.collection) {
            return None;
        }
        k.part(a.collection.id.as_bytes());
        k.part(&digest(&serde_json::to_vec(&*a.record).ok()?));
    }
    Some(k.0)
}

fn digest(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// One page of records, in PocketBase's list shape.
pub async fn list(
    app: &App,
    coll: &Arc<Collection>,
    req: &Request,
    p: ListParams,
) -> ApiResult<Value> {
    Ok(list_known(app, coll, req, p, Known::Nothing, false)
        .await?
        .0)
}

/// What is already known of a list for the current data.
enum Known {
    Nothing,
    /// Its total (the count cache).
    Total(i64),
    /// The row ids of every matching record, in the list's order, as
    /// [`encode_rows`] keeps them.
    Order(Bytes),
}

/// [`list`], with what is already known of it; and with `keep_order`, the
/// list's whole order when the store sorted it and it is small enough
/// (`store::records::list_counted`).
async fn list_known(
    app: &App,
    coll: &Arc<Collection>,
    req: &Request,
    p: ListParams,
    known: Known,
    keep_order: bool,
) -> ApiResult<(Value, Option<Vec<i64>>)> {
    if coll.list_rule.is_none() && !req.principal.is_privileged() {
        return Err(ApiError::superusers_only());
    }
    let schema = app.store.schema();
    let ctx = req.rule_ctx(Map::new(), Map::new());
    let view = req.view();
    render::check_fields(&view.fields)?;
    let mut q = rules::list_query(
        &schema,
        coll,
        &ctx,
        &p.filter,
        &p.sort,
        app.config.max_filter_len,
    )?;
    q.limit = p.per_page;
    q.offset = (p.page - 1).saturating_mul(p.per_page);
    let coll = coll.clone();
    let skip_total = p.skip_total;
    let (items, total, order) = app
        .store
        .read(move |c| {
            let ((items, total), order) = match known {
                Known::Order(order) => {
                    let n = order.len() / 8;
                    let rows = decode_rows(&order, rs::page_window(&q, n));
                    let items = rs::list_rows(c, &coll, &q, &rows)?;
                    ((items, if skip_total { -1 } else { n as i64 }), None)
                }
                Known::Total(t) => {
                    let (page, order) = rs::list_counted(c, &coll, &q, false, keep_order)?;
                    ((page.0, if skip_total { -1 } else { t }), order)
                }
                Known::Nothing => rs::list_counted(c, &coll, &q, !skip_total, keep_order)?,
            };
            let items = render::render(c, &schema, &coll, items, &ctx, &view)?;
            Ok((items, total, order))
        })
        .await?;
    let total_pages = if total < 0 {
        -1
    } else {
        (total + p.per_page - 1) / p.per_page
    };
    Ok((
        json!({
            "page": p.page,
            "perPage": p.per_page,
            "totalItems": total,
            "totalPages": total_pages,
            "items": items,
        }),
        order,
    ))
}

/// Whether record `id` of `coll` passes `rule` for `req`, with `body` as
/// `@request.body` (an auth collection's authRule at login, its MFA rule, a
/// protected file's view rule): `None` when the rule is null (superusers
/// only), `Some(true)` for `""`.
pub async fn check_rule(
    app: &App,
    coll: &Arc<Collection>,
    id: &str,
    rule: Option<&str>,
    req: &Request,
    body: Map<String, Value>,
) -> ApiResult<Option<bool>> {
    let schema = app.store.schema();
    let ctx = req.rule_ctx(body, Map::new());
    let Some(cond) = rules::rule_cond(&schema, coll, rule, &ctx)? else {
        return Ok(None);
    };
    if cond.sql.is_empty() && cond.joins.is_empty() {
        return Ok(Some(true));
    }
    let (coll, id) = (coll.clone(), id.to_string());
    app.store
        .read(move |c| Ok(Some(rs::fetch_where(c, &coll, &id, &cond)?.is_some())))
        .await
}

/// The view rule's condition for `req` (none for the privileged), and what
/// the rules read about the request.
fn view_cond(
    schema: &crate::schema::Schema,
    coll: &Arc<Collection>,
    req: &Request,
) -> ApiResult<(crate::rules::RequestCtx, Cond)> {
    if coll.view_rule.is_none() && !req.principal.is_privileged() {
        return Err(ApiError::superusers_only());
    }
    let ctx = req.rule_ctx(Map::new(), Map::new());
    let cond = if req.principal.is_privileged() {
        Cond::default()
    } else {
        rules::rule_cond(schema, coll, coll.view_rule.as_deref(), &ctx)?.unwrap_or_default()
    };
    Ok((ctx, cond))
}

/// One record by id through the view rule (404 when it fails).
pub async fn view(app: &App, coll: &Arc<Collection>, id: &str, req: &Request) -> ApiResult<Value> {
    let schema = app.store.schema();
    let (ctx, cond) = view_cond(&schema, coll, req)?;
    let view = req.view();
    render::check_fields(&view.fields)?;
    let expands = !view.expand.is_empty();
    let (coll, id) = (coll.clone(), id.to_string());
    let fetch = move |c: &Connection| {
        let Some(rec) = rs::fetch_where(c, &coll, &id, &cond)? else {
            return Ok(None);
        };
        Ok(render::render(c, &schema, &coll, vec![rec], &ctx, &view)?.pop())
    };
    // One row by id is cheaper to read here than to hand to a reader
    // thread; an expand may read much more, so it goes to the pool.
    if expands {
        app.store.read(fetch).await
    } else {
        app.store.read_now(fetch)
    }?
    .ok_or_else(ApiError::not_found)
}

/// `view` as the JSON bytes of the answer. With nothing to expand or pick
/// and no per-record visibility, the answer is written from the row as it
/// is read (`render::record_json`), the same bytes without the record's map.
pub async fn view_json(
    app: &App,
    coll: &Arc<Collection>,
    id: &str,
    req: &Request,
) -> ApiResult<Bytes> {
    let view = req.view();
    if !render::renders_from_row(coll, &view) {
        return encode(&self::view(app, coll, id, req).await?);
    }
    let schema = app.store.schema();
    let (ctx, cond) = view_cond(&schema, coll, req)?;
    app.store
        .read_now(|c| {
            rs::fetch_where_with(c, coll, id, &cond, |row| {
                render::record_json(coll, row, &ctx.identity)
            })
        })?
        .map(Bytes::from)
        .ok_or_else(ApiError::not_found)
}
