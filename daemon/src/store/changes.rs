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
//!
//! A second consumer, the [`Capture`], sees every change *inside* the
//! write's transaction, with the row before and after (sync's outbox and
//! log are written there, so they commit or roll back with the write). Its
//! error fails the write. A write may carry a [`Tag`] for it (who the write
//! is made for), opaque to the store.

use super::Conn as Connection;
use crate::error::ApiResult;
use crate::schema::{Collection, Schema};
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
    /// Read back from the database's change log (PostgreSQL, where every
    /// process hears of every commit that way): nothing was prepared, a
    /// delete is shown from the row as it was.
    pub from_log: bool,
}

/// A change as the database's change log keeps it (PostgreSQL): appended
/// inside the write's transaction, read back after COMMIT by every process.
pub struct Logged {
    pub action: Action,
    pub collection_id: String,
    /// The record's columns as JSON text (for a delete: as it was).
    pub record: String,
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
    /// Changes were missed (a process that fell too far behind the
    /// database's change log): whoever relies on seeing all of them starts
    /// over.
    fn lost(&self) {}
}

/// What a write carries for the capture (opaque to the store).
pub type Tag = Arc<dyn Any + Send + Sync>;

/// One record change as the capture sees it, inside the transaction.
pub struct Captured<'a> {
    pub action: Action,
    pub collection: &'a Arc<Collection>,
    /// The row before (updates and deletes).
    pub before: Option<&'a Map<String, Value>>,
    /// The row as written (creates and updates).
    pub after: Option<&'a Map<String, Value>>,
    /// The write's tag, if it has one.
    pub tag: Option<&'a Tag>,
}

/// Sees every record change inside the write's transaction.
pub trait Capture: Send + Sync {
    /// Whether changes of `coll` are captured at all (cheap).
    fn wants(&self, coll: &Collection) -> bool;
    /// Called on the writer thread, inside the transaction, after a create
    /// or update and before a delete. An error fails the write.
    fn capture(&self, conn: &Connection, change: Captured<'_>) -> ApiResult<()>;
    /// Called on the writer thread after COMMIT of a write that captured
    /// something (in commit order). Must not block.
    fn committed(&self) {}
}

/// The changes of one write, collected while it runs.
#[derive(Default)]
pub struct Changes {
    list: Vec<Change>,
    sink: Option<Arc<dyn ChangeSink>>,
    capture: Option<Arc<dyn Capture>>,
    tag: Option<Tag>,
    /// Something was captured (the capture hears of the commit).
    captured: bool,
    /// Some: every change goes to the database's change log inside the
    /// transaction instead of to the sink after COMMIT (PostgreSQL).
    log: Option<Vec<Logged>>,
}

impl Changes {
    pub(crate) fn new(
        sink: Option<Arc<dyn ChangeSink>>,
        capture: Option<Arc<dyn Capture>>,
    ) -> Changes {
        Changes {
            list: Vec::new(),
            sink,
            capture,
            tag: None,
            captured: false,
            log: None,
        }
    }

    /// Changes go to the database's change log (taken with
    /// [`Changes::take_logged`] before COMMIT), whoever listens here.
    pub(crate) fn logging(mut self) -> Changes {
        self.log = Some(Vec::new());
        self
    }

    /// The changes to append to the log, in the order they were made.
    #[cfg(feature = "postgres")]
    pub(crate) fn take_logged(&mut self) -> Vec<Logged> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn log(&mut self, action: Action, coll: &Collection, record: &Map<String, Value>) -> bool {
        let Some(log) = self.log.as_mut() else {
            return false;
        };
        log.push(Logged {
            action,
            collection_id: coll.id.clone(),
            record: Value::Object(record.clone()).to_string(),
        });
        true
    }

    /// A collector that records nothing (writes with no listener).
    pub fn none() -> Changes {
        Changes::default()
    }

    /// Sets the tag the capture sees for the changes that follow.
    pub fn set_tag(&mut self, tag: Option<Tag>) {
        self.tag = tag;
    }

    /// Whether `action` changes of `coll` are recorded or captured.
    pub fn wants(&self, coll: &Collection, action: Action) -> bool {
        self.log.is_some()
            || self.sink_wants(coll, action)
            || self.capture.as_ref().is_some_and(|c| c.wants(coll))
    }

    fn sink_wants(&self, coll: &Collection, action: Action) -> bool {
        self.sink.as_ref().is_some_and(|s| s.wants(coll, action))
    }

    fn capture(
        &mut self,
        conn: &Connection,
        action: Action,
        coll: &Arc<Collection>,
        before: Option<&Map<String, Value>>,
        after: Option<&Map<String, Value>>,
    ) -> ApiResult<()> {
        match &self.capture {
            Some(c) if c.wants(coll) => {
                self.captured = true;
                c.capture(
                    conn,
                    Captured {
                        action,
                        collection: coll,
                        before,
                        after,
                        tag: self.tag.as_ref(),
                    },
                )
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, action: Action, coll: &Arc<Collection>, record: &Map<String, Value>) {
        if self.log(action, coll, record) {
            return;
        }
        if self.sink_wants(coll, action) {
            self.list.push(Change {
                action,
                collection: coll.clone(),
                record: record.clone(),
                prepared: None,
                from_log: false,
            });
        }
    }

    /// A record was inserted.
    pub fn created(
        &mut self,
        conn: &Connection,
        coll: &Arc<Collection>,
        record: &Map<String, Value>,
    ) -> ApiResult<()> {
        self.capture(conn, Action::Create, coll, None, Some(record))?;
        self.push(Action::Create, coll, record);
        Ok(())
    }

    /// A record was rewritten (`before`: as it was).
    pub fn updated(
        &mut self,
        conn: &Connection,
        coll: &Arc<Collection>,
        before: &Map<String, Value>,
        record: &Map<String, Value>,
    ) -> ApiResult<()> {
        self.capture(conn, Action::Update, coll, Some(before), Some(record))?;
        self.push(Action::Update, coll, record);
        Ok(())
    }

    /// A record is about to be deleted (call before the DELETE, inside the
    /// transaction).
    pub fn deleting(
        &mut self,
        conn: &Connection,
        schema: &Schema,
        coll: &Arc<Collection>,
        record: &Map<String, Value>,
    ) -> ApiResult<()> {
        self.capture(conn, Action::Delete, coll, Some(record), None)?;
        if self.log(Action::Delete, coll, record) {
            return Ok(());
        }
        let Some(sink) = self.sink.clone() else {
            return Ok(());
        };
        if !sink.wants(coll, Action::Delete) {
            return Ok(());
        }
        let prepared = sink.prepare_delete(conn, schema, coll, record);
        self.list.push(Change {
            action: Action::Delete,
            collection: coll.clone(),
            record: record.clone(),
            prepared,
            from_log: false,
        });
        Ok(())
    }

    /// Hands the collected changes to the sink (after COMMIT).
    pub(crate) fn publish(&mut self) {
        if self.captured {
            if let Some(c) = &self.capture {
                c.committed();
            }
        }
        let list = std::mem::take(&mut self.list);
        if list.is_empty() {
            return;
        }
        if let Some(sink) = &self.sink {
            sink.committed(list);
        }
    }
}
