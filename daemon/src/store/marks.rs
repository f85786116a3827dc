//! Marks of what every process serving one database holds in memory and
//! another process may change: the settings, sync's list of synced
//! collections. On PostgreSQL, where several keepd processes may serve one
//! schema, the transaction that changes such a thing also appends its mark
//! to the change log (`postgres::changelog`); each process's follower hands
//! the mark on, in commit order, to [`Store::marks`]'s listeners, which
//! load the thing again. On SQLite one process serves the file and a mark
//! is nothing.

use super::{Conn, Store};
use crate::error::ApiResult;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The settings (`_params`).
    Settings,
    /// Sync's synced collections (`_keepd_sync_collections`).
    SyncCollections,
}

impl Mark {
    /// Its action in the change log.
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Settings => "mark:settings",
            Mark::SyncCollections => "mark:sync_collections",
        }
    }

    pub fn parse(s: &str) -> Option<Mark> {
        Some(match s {
            "mark:settings" => Mark::Settings,
            "mark:sync_collections" => Mark::SyncCollections,
            _ => return None,
        })
    }
}

/// Notes, inside the write that changed it, that `what` changed: the other
/// processes on the database load it again (nothing on SQLite).
pub fn mark(c: &Conn, what: Mark) -> ApiResult<()> {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return super::postgres::changelog::mark(c, what);
    }
    let _ = (c, what);
    Ok(())
}

impl Store {
    /// The marks this process's change log follower hands on, in commit
    /// order, its own writes' included (nothing on SQLite).
    pub fn marks(&self) -> tokio::sync::broadcast::Receiver<Mark> {
        self.marks.subscribe()
    }

    /// How far this process has followed the change log, changing as other
    /// processes' commits (and its own) are handed on: None on SQLite,
    /// where no other process writes while it serves.
    pub fn followed(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        #[cfg(feature = "postgres")]
        if self.log_changes {
            return Some(self.handed_on.subscribe());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        for m in [Mark::Settings, Mark::SyncCollections] {
            assert_eq!(Mark::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mark::parse("schema"), None);
        assert_eq!(Mark::parse("create"), None);
    }
}
