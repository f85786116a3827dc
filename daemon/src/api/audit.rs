//! keepd's own superuser routes for security operations (PocketBase has
//! neither): the audit log, read-only, and account lockouts.
//!
//! - `GET /api/audit?page=&perPage=&action=&actor=&target=&ip=&since=&until=`
//!   — newest first, PocketBase's list shape; the filters are exact matches
//!   (`since`/`until` compare the `created` text, e.g. `2026-11-24`).
//! - `GET /api/lockouts` — accounts locked now.
//! - `DELETE /api/lockouts/{collection}/{recordId}` — unlock (audited).

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use crate::store::audit;
use serde_json::{json, Value};
use std::sync::Arc;

const MAX_PER_PAGE: i64 = 500;

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let num = |k: &str, default: i64| -> ApiResult<i64> {
        match req.q(k) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| ApiError::bad(format!("Invalid {k} value."))),
        }
    };
    let page = num("page", 1)?.max(1);
    let per_page = num("perPage", 30)?.clamp(1, MAX_PER_PAGE);
    let q = |k: &str| req.q(k).filter(|v| !v.is_empty()).map(str::to_string);
    let filter = audit::Filter {
        action: q("action"),
        actor: q("actor"),
        target: q("target"),
        ip: q("ip"),
        since: q("since"),
        until: q("until"),
    };
    let (total, rows) = app
        .store
        .read(move |c| audit::list(c, &filter, per_page, (page - 1).saturating_mul(per_page)))
        .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "created": r.created,
                "action": r.action,
                "actor": r.actor,
                "ip": r.ip,
                "target": r.target,
                "diff": r.diff,
            })
        })
        .collect();
    let total_pages = (total + per_page - 1) / per_page;
    Ok(Resp::ok(&json!({
        "page": page,
        "perPage": per_page,
        "totalItems": total,
        "totalPages": total_pages,
        "items": items,
    })))
}

pub async fn lockouts(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let schema = app.store.schema();
    let items: Vec<Value> = app
        .lockout
        .list(app.now_secs())
        .into_iter()
        .map(|(cid, rid, secs)| {
            let name = schema
                .get(&cid)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            json!({"collectionId": cid, "collectionName": name, "recordId": rid, "secondsLeft": secs})
        })
        .collect();
    Ok(Resp::ok(&Value::Array(items)))
}

pub async fn unlock(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let schema = app.store.schema();
    let coll = schema
        .get(req.param("collection"))
        .filter(|c| c.is_auth())
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Missing or invalid auth collection context.".into()))?;
    let rid = req.param("recordId").to_string();
    let was_locked = app.lockout.clear(&coll.id, &rid, app.now_secs());
    if !was_locked {
        return Err(ApiError::NotFound("The account is not locked.".into()));
    }
    app.audit(audit::Entry {
        action: "unlock",
        actor: super::auth::actor(&req),
        ip: req.client_ip.to_string(),
        target: format!("{}/{}", coll.name, rid),
        diff: json!({}),
    })
    .await;
    Ok(Resp::empty(204))
}
