//! `_params`: PocketBase's key/value table of application parameters
//! (the settings, as JSON text under `settings`).

use super::args;
use super::dialect;
use super::Conn as Connection;
use crate::error::ApiResult;
use crate::util::now_string;
use serde_json::Value;

/// The keys keepd stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Settings,
}

impl Key {
    fn as_str(self) -> &'static str {
        match self {
            Key::Settings => "settings",
        }
    }
}

/// The stored value; None when absent or not JSON (the caller's defaults
/// apply).
pub fn get(c: &Connection, key: Key) -> ApiResult<Option<Value>> {
    let text: Option<Option<String>> = c.one(
        "SELECT value FROM _params WHERE id = ?1",
        [key.as_str()],
        |r| r.get(0),
    )?;
    Ok(text.flatten().and_then(|t| match serde_json::from_str(&t) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = key.as_str(), error = %e, "stored parameter is not JSON: ignored");
            None
        }
    }))
}

/// Stores `value` under `key` (inserted or replaced).
pub fn put(c: &Connection, key: Key, value: &Value) -> ApiResult<()> {
    let sql = dialect::upsert("_params", &["id", "value", "created", "updated"], &["id"]);
    let now = now_string();
    c.exec(&sql, args![key.as_str(), value.to_string(), now, now])?;
    Ok(())
}
