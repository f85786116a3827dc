//! PocketBase's crons API (superusers): `GET /api/crons` lists keepd's
//! scheduled jobs as `[{id, expression}]`; `POST /api/crons/{id}` starts
//! one now (204, the job running on after the answer; 404 for an unknown
//! id). keepd's one job is the scheduled backup (`backups.cron`), under
//! PocketBase's id `__pbAutoBackup__`, listed while the setting is set.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use serde_json::{json, Value};
use std::sync::Arc;

/// PocketBase's id of the scheduled backup job.
pub const AUTO_BACKUP: &str = "__pbAutoBackup__";

fn jobs(app: &App) -> Vec<(&'static str, String)> {
    let settings = app.settings();
    let mut out = Vec::new();
    let expr = settings.backups.cron.trim();
    if !expr.is_empty() {
        out.push((AUTO_BACKUP, expr.to_string()));
    }
    out
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let items: Vec<Value> = jobs(&app)
        .into_iter()
        .map(|(id, expression)| json!({"id": id, "expression": expression}))
        .collect();
    Ok(Resp::ok(&Value::Array(items)))
}

pub async fn run(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let id = req.param("id");
    if !jobs(&app).iter().any(|(j, _)| *j == id) {
        return Err(ApiError::NotFound("Missing or invalid cron job.".into()));
    }
    tracing::info!(job = %id, "cron job started by request");
    crate::ops::schedule::start_now(app.clone());
    Ok(Resp::empty(204))
}
