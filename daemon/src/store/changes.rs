//! Record changes made by a write, handed on after COMMIT.
//!
//! A write that changes records fills a [`Changes`] as it goes (create,
//! update, delete — cascades included). The writer hands the list to the
//! registered [`ChangeSink`] (the realtime broker) only once the batch holding
//! the write has committed, on the writer thread, in commit order. A write
//! that rolled back (its savepoint, or the whole batch) publishes nothing.
//!
//! The store knows nothing about subscribers: deletes give the sink one
//! chance to look at the record inside the transaction, before it is gone
//! ([`ChangeSink::prepare_delete`]); what it prepares travels with the change
//! as an opaque value.

use crate::schema::{Collection, Schema};
use rusqlite::Connection;
use serde_json::{Map, Value};
use std::any::Any;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// Something the sink prepared inside the transaction (opaque to the store).
pub type Prepared = Box<dyn Any + Send>;

/// One committed record change.
pub struct Change {
    pub action: Action,
    pub collection: Arc<Collection>,
    /// Every column as written (for a delete: as it was before), hidden ones
    /// included; never sent as is.
    pub record: Map<String, Value>,
    /// For deletes: what the sink prepared before the row was deleted.
    pub prepared: Option<Prepared>,
}

/// Where committed changes go.
pub trait ChangeSink: Send + Sync {
    /// Whether `action` changes of `coll` are wanted at all (cheap; e.g.
    /// false while nobody listens). Nothing is recorded when this is false.
    fn wants(&self, coll: &Collection, action: Action) -> bool;
    /// Called on the writer thread inside the transaction, just before the
    /// record is deleted.
    fn prepare_delete(
        &self,
        conn: &Connection,
        schema: &Schema,
        coll: &Arc<Collection>,
        record: &Map<String, Value>,
    ) -> Option<Prepared>;
    /// Called on the writer thread after COMMIT, once per write, in commit
    /// order. Must not block.
    fn committed(&self, changes: Vec<Change>);
}

/// The changes of one write, collected while it runs.
#[derive(Default)]
pub struct Changes {
    list: Vec<Change>,
    sink: Option<Arc<dyn ChangeSink>>,
}

impl Changes {
    pub(crate) fn new(sink: Option<Arc<dyn ChangeSink>>) -> Changes {
        Changes {
            list: Vec::new(),
            sink,
        }
    }

    /// A collector that records nothing (writes with no listener).
    pub fn none() -> Changes {
        Changes::default()
    }

    /// Whether `action` changes of `coll` are recorded.
    pub fn wants(&self, coll: &Collection, action: Action) -> bool {
        self.sink.as_ref().is_some_and(|s| s.wants(coll, action))
    }

    fn push(&mut self, action: Action, coll: &Arc<Collection>, record: &Map<String, Value>) {
        if self.wants(coll, action) {
            self.list.push(Change {
                action,
                collection: coll.clone(),
                record: record.clone(),
                prepared: None,
            });
        }
    }

    /// A record was inserted.
    pub fn created(&mut self, coll: &Arc<Collection>, record: &Map<String, Value>) {
        self.push(Action::Create, coll, record);
    }

    /// A record was rewritten.
    pub fn updated(&mut self, coll: &Arc<Collection>, record: &Map<String, Value>) {
        self.push(Action::Update, coll, record);
    }

    /// A record is about to be deleted (call before the DELETE, inside the
    /// transaction).
    pub fn deleting(
        &mut self,
        conn: &Connection,
        schema: &Schema,
        coll: &Arc<Collection>,
        record: &Map<String, Value>,
    ) {
        let Some(sink) = self.sink.clone() else {
            return;
        };
        if !sink.wants(coll, Action::Delete) {
            return;
        }
        let prepared = sink.prepare_delete(conn, schema, coll, record);
        self.list.push(Change {
            action: Action::Delete,
            collection: coll.clone(),
            record: record.clone(),
            prepared,
        });
    }

    /// Hands the collected changes to the sink (after COMMIT).
    pub(crate) fn publish(&mut self) {
        let list = std::mem::take(&mut self.list);
        if list.is_empty() {
            return;
        }
        if let Some(sink) = &self.sink {
            sink.committed(list);
        }
    }
}
