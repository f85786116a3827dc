//! `/api/files`: file tokens (`POST /api/files/token`) for protected files
//! and backup downloads. (File fields and downloads: not yet.)

use crate::app::App;
use crate::auth::token;
use crate::error::{ApiError, ApiResult};
use crate::http::{Req, Resp};
use crate::schema::record::to_text;
use serde_json::{json, Map};
use std::sync::Arc;

/// A short-lived "file" token for the caller (PocketBase's shape).
pub async fn token(_app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let Some(a) = req.identity.auth() else {
        return Err(ApiError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        ));
    };
    let (duration, secret) = a.collection.token_settings("fileToken");
    let key = format!(
        "{}{}",
        a.record.get("tokenKey").map(to_text).unwrap_or_default(),
        secret
    );
    let mut claims = Map::new();
    claims.insert("id".into(), json!(a.id()));
    claims.insert("type".into(), json!("file"));
    claims.insert("collectionId".into(), json!(a.collection.id));
    claims.insert(
        "exp".into(),
        json!(chrono::Utc::now().timestamp() + duration.max(1)),
    );
    Ok(Resp::ok(&json!({"token": token::sign(&claims, &key)})))
}
