//! Collections: PocketBase's collection definition, parsed once.

use super::field::{Field, FieldKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    Base,
    Auth,
    View,
}

impl CollectionType {
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Base => "base",
            CollectionType::Auth => "auth",
            CollectionType::View => "view",
        }
    }
}

/// The option keys that belong to auth collections (stored in `options`).
pub const AUTH_OPTION_KEYS: &[&str] = &[
    "authRule",
    "manageRule",
    "authAlert",
    "oauth2",
    "passwordAuth",
    "mfa",
    "otp",
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
    "verificationTemplate",
    "resetPasswordTemplate",
    "confirmEmailChangeTemplate",
];

/// The token option keys, each `{duration, secret}`; the secret is never
/// shown through the API.
pub const TOKEN_KEYS: &[&str] = &[
    "authToken",
    "passwordResetToken",
    "emailChangeToken",
    "verificationToken",
    "fileToken",
];

/// What is derived from a collection's definition, computed on first use
/// and kept with the schema snapshot: the SELECT list of its columns
/// (`store::records`), its API rules parsed with their compiled
/// templates (`rules`, which alone knows the type), and which list
/// statements the store sorts itself (`store::records::list_counted`). A clone starts empty:
/// clones are made to be changed.
#[derive(Default)]
pub struct Derived(
    pub(crate) std::sync::OnceLock<String>,
    pub(crate) std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    /// The store's answers about its list and count statements' plans
    /// (by text): which lists it sorts itself, which counts search an
    /// index by a range (`store::records`).
    pub(crate) std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, bool>>>,
    /// The table's name quoted as an SQL identifier (`store::records`).
    pub(crate) std::sync::OnceLock<String>,
);

impl Clone for Derived {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

#[derive(Debug, Clone)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub kind: CollectionType,
    pub system: bool,
    pub fields: Vec<Field>,
    pub indexes: Vec<String>,
    pub list_rule: Option<String>,
    pub view_rule: Option<String>,
    pub create_rule: Option<String>,
    pub update_rule: Option<String>,
    pub delete_rule: Option<String>,
    /// Type-specific options (auth: authRule, passwordAuth, tokens…; view: viewQuery).
    pub options: Map<String, Value>,
    pub created: String,
    pub updated: String,
    /// Cached SQL text of this definition (see `store::records`).
    pub derived: Derived,
}

impl Collection {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Field lookup as PocketBase resolves identifiers in filters: exact name.
    pub fn has_field(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// Whether any field holds stored files.
    pub fn has_file_fields(&self) -> bool {
        self.fields
            .iter()
            .any(|f| matches!(f.kind, super::FieldKind::File(_)))
    }

    pub fn is_auth(&self) -> bool {
        self.kind == CollectionType::Auth
    }

    /// The SQL table name (the collection name; validated at creation to be
    /// a plain identifier, so it is safe to quote).
    pub fn table(&self) -> &str {
        &self.name
    }

    pub fn auth_rule(&self) -> Option<&str> {
        self.options.get("authRule").and_then(Value::as_str)
    }

    pub fn manage_rule(&self) -> Option<&str> {
        self.options.get("manageRule").and_then(Value::as_str)
    }

    pub fn identity_fields(&self) -> Vec<String> {
        self.options
            .get("passwordAuth")
            .and_then(|p| p.get("identityFields"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn password_auth_enabled(&self) -> bool {
        self.options
            .get("passwordAuth")
            .and_then(|p| p.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Token settings `(duration seconds, secret)` for one token kind.
    pub fn token_settings(&self, key: &str) -> (i64, String) {
        let o = self.options.get(key);
        let duration = o
            .and_then(|o| o.get("duration"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let secret = o
            .and_then(|o| o.get("secret"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (duration, secret)
    }

    /// Fields whose values never leave the server (password, tokenKey, hidden).
    pub fn is_hidden(&self, name: &str) -> bool {
        self.field(name).is_some_and(|f| f.hidden)
    }

    /// The collection as PocketBase's API shows it (secrets removed).
    pub fn to_api_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("name".into(), Value::String(self.name.clone()));
        m.insert("type".into(), Value::String(self.kind.as_str().into()));
        m.insert("system".into(), Value::Bool(self.system));
        m.insert(
            "fields".into(),
            serde_json::to_value(&self.fields).unwrap_or(Value::Null),
        );
        m.insert(
            "indexes".into(),
            Value::Array(self.indexes.iter().cloned().map(Value::String).collect()),
        );
        for (k, r) in [
            ("listRule", &self.list_rule),
            ("viewRule", &self.view_rule),
            ("createRule", &self.create_rule),
            ("updateRule", &self.update_rule),
            ("deleteRule", &self.delete_rule),
        ] {
            m.insert(
                k.into(),
                r.clone().map(Value::String).unwrap_or(Value::Null),
            );
        }
        m.insert("created".into(), Value::String(self.created.clone()));
        m.insert("updated".into(), Value::String(self.updated.clone()));
        for (k, v) in &self.options {
            let mut v = v.clone();
            if TOKEN_KEYS.contains(&k.as_str()) {
                if let Some(o) = v.as_object_mut() {
                    o.remove("secret");
                }
            }
            if k == "oauth2" {
                let list = v.get_mut("providers").and_then(Value::as_array_mut);
                for p in list.into_iter().flatten() {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("clientSecret");
                    }
                }
            }
            m.insert(k.clone(), v);
        }
        Value::Object(m)
    }

    /// Names of relation fields pointing at `target_id`, for back-relations.
    pub fn relations_to<'a>(&'a self, target_id: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(
            move |f| matches!(&f.kind, FieldKind::Relation(o) if o.collection_id == target_id),
        )
    }
}
