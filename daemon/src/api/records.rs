//! `/api/collections/{collection}/records`: list, view, create, update,
//! delete. HTTP only: the request is decoded into the record domain's
//! types (`records::Request`, `records::Input`), the domain does the work,
//! the answer is encoded.

use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use crate::records::{self, Input, ListParams, Request};
use crate::schema::{Collection, Schema};
use std::sync::Arc;

pub const DEFAULT_PER_PAGE: i64 = 30;
pub const MAX_PER_PAGE: i64 = 1000;

pub(crate) fn collection(app: &App, name: &str) -> ApiResult<(Arc<Schema>, Arc<Collection>)> {
    let schema = app.store.schema();
    let c = schema
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Missing collection context.".into()))?;
    Ok((schema, c))
}

/// The record domain's view of an HTTP request: who asks, the method, the
/// query and the headers (what rules read as `@request.*`).
pub(crate) fn request(app: &App, req: &Req) -> Request {
    // Copied only when something may read them: a rule of the schema, or
    // a superuser's filter.
    let headers = if req.identity.is_superuser() || app.store.schema().rules_read_headers() {
        std::sync::Arc::new(req.headers_map())
    } else {
        Default::default()
    };
    Request {
        principal: req.identity.clone().into(),
        method: req.method.as_str().to_string(),
        context: "default",
        query: std::sync::Arc::new(req.query_map()),
        headers,
    }
}

/// What rules read about an HTTP request, with `body` as `@request.body`
/// (auth flows checking authRule / MFA rules).
pub(crate) fn request_ctx(
    app: &App,
    req: &Req,
    body: serde_json::Map<String, serde_json::Value>,
) -> crate::rules::RequestCtx {
    request(app, req).rule_ctx(body, serde_json::Map::new())
}

/// A paging parameter: absent → None; not an integer → PocketBase's generic 400.
pub(crate) fn parse_int(v: Option<&str>) -> ApiResult<Option<i64>> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad(crate::filter::GENERIC_MESSAGE)),
    }
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = collection(&app, req.param("collection"))?;
    if coll.list_rule.is_none() && !req.identity.is_superuser() {
        return Err(ApiError::superusers_only());
    }
    let page = parse_int(req.q("page"))?.unwrap_or(1).max(1);
    let mut per_page = parse_int(req.q("perPage"))?.unwrap_or(DEFAULT_PER_PAGE);
    if per_page <= 0 {
        per_page = DEFAULT_PER_PAGE;
    }
    let params = ListParams {
        filter: req.q("filter").unwrap_or("").to_string(),
        sort: req.q("sort").unwrap_or("").to_string(),
        page,
        per_page: per_page.min(MAX_PER_PAGE),
        skip_total: matches!(req.q("skipTotal"), Some("1" | "true" | "t" | "TRUE")),
    };
    Ok(Resp::ok_json_bytes(
        records::list_json(&app, &coll, &request(&app, &req), params).await?,
    ))
}

pub async fn view(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = collection(&app, req.param("collection"))?;
    let out = records::view_json(&app, &coll, req.param("id"), &request(&app, &req)).await?;
    Ok(Resp::ok_json_bytes(out))
}

pub async fn create(app: Arc<App>, mut req: Req) -> ApiResult<Resp> {
    let (_, coll) = collection(&app, req.param("collection"))
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    records::refuse_view(&coll)?;
    // Refused before the body is read (as PocketBase).
    if coll.create_rule.is_none() && !req.identity.is_superuser() {
        return Err(ApiError::superusers_only());
    }
    let (body, uploads) = super::bodies::record_body(&app, &mut req).await?;
    let out = records::create(&app, &coll, &request(&app, &req), Input { body, uploads }).await?;
    Ok(Resp::ok(&out))
}

pub async fn update(app: Arc<App>, mut req: Req) -> ApiResult<Resp> {
    let (_, coll) = collection(&app, req.param("collection"))
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    records::refuse_view(&coll)?;
    if coll.update_rule.is_none() && !req.identity.is_superuser() {
        return Err(ApiError::superusers_only());
    }
    let (body, uploads) = super::bodies::record_body(&app, &mut req).await?;
    let input = Input { body, uploads };
    let out = records::update(&app, &coll, req.param("id"), &request(&app, &req), input).await?;
    Ok(Resp::ok(&out))
}

pub async fn delete(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = collection(&app, req.param("collection"))?;
    records::refuse_view(&coll)?;
    records::delete(&app, &coll, req.param("id"), &request(&app, &req)).await?;
    Ok(Resp::empty(204))
}
