//! Collections and field types: definitions, validation of definitions and
//! of record values. Pure: no I/O.

pub mod collection;
pub mod field;
pub mod index;
pub(crate) mod oauth2;
pub mod parse;
pub mod record;
pub mod view;

pub use collection::{Collection, CollectionType};
pub use field::{Field, FieldKind, ValueShape};

use std::collections::HashMap;
use std::sync::Arc;

/// An immutable snapshot of every collection. Replaced whole (copy on write)
/// after a collection change; readers hold an `Arc` for one request.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    collections: Vec<Arc<Collection>>,
    by_name: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// Some collection's rule reads `@request.headers`.
    rules_read_headers: bool,
    /// Some collection's rule reads `@request.query`.
    rules_read_query: bool,
    /// Some rule or view query may read the clock or chance.
    reads_clock: bool,
    /// The engine the store holding these collections runs on: what their
    /// rules, filters and sorts are compiled for.
    engine: crate::store::engine::Engine,
}

impl Schema {
    pub fn new(collections: Vec<Collection>) -> Self {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let mut by_name = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, c) in collections.iter().enumerate() {
            by_name.insert(c.name.to_lowercase(), i);
            by_id.insert(c.id.clone(), i);
        }
        let rules = |c: &Collection| {
            [
                c.list_rule.as_deref(),
                c.view_rule.as_deref(),
                c.create_rule.as_deref(),
                c.update_rule.as_deref(),
                c.delete_rule.as_deref(),
                c.auth_rule(),
                c.manage_rule(),
            ]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect::<Vec<_>>()
        };
        let rules_read_headers = collections
            .iter()
            .any(|c| rules(c).iter().any(|r| r.contains("@request.headers")));
        let rules_read_query = collections
            .iter()
            .any(|c| rules(c).iter().any(|r| r.contains("@request.query")));
        let reads_clock = collections.iter().any(|c| {
            rules(c).iter().any(|r| crate::filter::volatile(r))
                || c.options
                    .get("viewQuery")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(view::volatile)
        });
        Schema {
            collections,
            by_name,
            by_id,
            rules_read_headers,
            rules_read_query,
            reads_clock,
            engine: Default::default(),
        }
    }

    /// The same snapshot, stored on `engine`.
    pub fn with_engine(mut self, engine: crate::store::engine::Engine) -> Self {
        self.engine = engine;
        self
    }

    /// The engine the store holding this snapshot runs on.
    pub fn engine(&self) -> crate::store::engine::Engine {
        self.engine
    }

    /// Finds a collection by id, or by name case-insensitively (PocketBase's
    /// `FindCollectionByNameOrId`).
    pub fn get(&self, name_or_id: &str) -> Option<&Arc<Collection>> {
        self.by_id
            .get(name_or_id)
            .or_else(|| {
                if name_or_id.bytes().any(|b| b.is_ascii_uppercase()) || !name_or_id.is_ascii() {
                    self.by_name.get(&name_or_id.to_lowercase())
                } else {
                    self.by_name.get(name_or_id)
                }
            })
            .map(|&i| &self.collections[i])
    }

    /// Whether any collection's rule reads `@request.headers`: a request's
    /// headers are copied for rules only then (and for superusers, whose
    /// filters may read them).
    pub fn rules_read_headers(&self) -> bool {
        self.rules_read_headers
    }

    /// Whether some collection's rule reads `@request.query` (a list's
    /// count then depends on every query parameter, its page too).
    pub fn rules_read_query(&self) -> bool {
        self.rules_read_query
    }

    /// Whether some collection's rule or view query may read the clock or
    /// chance (`@now`, `strftime`, `random()`, …): list answers are then
    /// not cached.
    pub fn reads_clock(&self) -> bool {
        self.reads_clock
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Collection>> {
        self.by_id.get(id).map(|&i| &self.collections[i])
    }

    pub fn all(&self) -> &[Arc<Collection>] {
        &self.collections
    }
}
