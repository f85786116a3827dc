//! Who is asking: a superuser, an auth record of some collection, or a guest.

use crate::schema::Collection;
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct AuthRecord {
    pub collection: Arc<Collection>,
    /// Every column of the record, hidden ones included (never sent as is).
    pub record: Arc<Map<String, Value>>,
}

impl AuthRecord {
    pub fn id(&self) -> &str {
        self.record
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
pub enum Identity {
    #[default]
    Guest,
    Superuser(AuthRecord),
    User(AuthRecord),
}

impl Identity {
    pub fn is_superuser(&self) -> bool {
        matches!(self, Identity::Superuser(_))
    }
    pub fn auth(&self) -> Option<&AuthRecord> {
        match self {
            Identity::Guest => None,
            Identity::Superuser(a) | Identity::User(a) => Some(a),
        }
    }
}
