//! `GET /api/health`.

use crate::app::App;
use crate::error::ApiResult;
use crate::http::{Req, Resp};
use serde_json::json;
use std::sync::Arc;

pub async fn health(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let mut data = json!({});
    if req.identity.is_superuser() {
        data["canBackup"] = json!(true);
        data["realIP"] = json!(req.client_ip.to_string());
        data["possibleProxyHeader"] = json!("");
        // keepd's own: the group commit's figures since start (not in
        // PocketBase's answer).
        data["writer"] = json!(app.store.writer_stats());
    }
    Ok(Resp::ok(
        &json!({"message": "API is healthy.", "code": 200, "data": data}),
    ))
}
