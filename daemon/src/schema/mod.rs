//! Collections and field types: definitions, validation of definitions and
//! of record values. Pure: no I/O.

pub mod collection;
pub mod field;
pub mod index;
pub(crate) mod oauth2;
pub mod parse;
pub mod record;

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
        Schema {
            collections,
            by_name,
            by_id,
        }
    }

    /// Finds a collection by id, or by name case-insensitively (PocketBase's
    /// `FindCollectionByNameOrId`).
    pub fn get(&self, name_or_id: &str) -> Option<&Arc<Collection>> {
        self.by_id
            .get(name_or_id)
            .or_else(|| self.by_name.get(&name_or_id.to_lowercase()))
            .map(|&i| &self.collections[i])
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Collection>> {
        self.by_id.get(id).map(|&i| &self.collections[i])
    }

    pub fn all(&self) -> &[Arc<Collection>] {
        &self.collections
    }
}
