//! `GET /api/health`, and keepd's `GET /api/writer`.

use crate::app::App;
use crate::error::ApiResult;
use crate::http::{Req, Resp};
use serde_json::json;
use std::sync::Arc;

pub async fn health(_app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let mut data = json!({});
    if req.identity.is_superuser() {
        data["canBackup"] = json!(true);
        data["realIP"] = json!(req.client_ip.to_string());
        data["possibleProxyHeader"] = json!("");
    }
    Ok(Resp::ok(
        &json!({"message": "API is healthy.", "code": 200, "data": data}),
    ))
}

/// `GET /api/writer` (keepd's own, superusers only): the group commit's
/// figures since start. Kept out of `/api/health`, whose answer is
/// PocketBase's shape exactly.
pub async fn writer(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    super::require_superuser(&req)?;
    Ok(Resp::ok(&json!(app.store.writer_stats())))
}
