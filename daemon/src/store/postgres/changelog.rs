//! The change log every keepd process serving one schema shares: how a
//! record change committed by any of them reaches the realtime clients of
//! all of them, in commit order, once.
//!
//! - Every writer transaction begins by taking one transaction-level
//!   advisory lock, keyed by the log table's oid (so one per schema):
//!   keepd's writers on one schema take turns, whole transactions at a
//!   time. Nothing else waits on them, and no row lock is ever waited for
//!   while holding it, so they cannot deadlock among themselves.
//! - A write's record changes are appended to `_keepd_changes` inside its
//!   transaction (with a `NOTIFY keepd_changes`, delivered at COMMIT). The
//!   lock is held from BEGIN to COMMIT and the COMMIT is visible before the
//!   lock is let go, so `seq` order is commit order and what a reader sees
//!   of the log is always a prefix of it.
//! - Each process follows the log on a session of its own: `LISTEN`, then
//!   `seq > last` read in order whenever a notification comes, every
//!   second without one, and after a new session. Each change goes to the
//!   process's change sink (the realtime fan-out, the file janitor) and
//!   bumps the store's generation. A process's own writes come back the
//!   same way — on PostgreSQL the writer hands nothing to the sink after
//!   COMMIT — so there is one path and no event twice.
//! - A change of the collections (made by any process, committed) is
//!   marked in the log after it: each process loads its schema again
//!   there, before the changes that follow.
//! - A process starts from the log's end (its realtime clients are new).
//!   A process that dies loses nothing of the others: the log is the truth.
//! - Bounded: a writer that crosses a multiple of [`PRUNE_EVERY`] deletes
//!   what is more than [`KEEP`] changes old. A follower that finds the log
//!   no longer reaching back to where it was (more than [`KEEP`] changes
//!   behind) tells the sink so (the realtime clients are disconnected and
//!   resubscribe), as the fan-out does when it falls behind.

use super::pool::Pool;
use crate::error::ApiResult;
use crate::store::changes::{Action, Change, Logged};
use crate::store::{args, Conn, Mark, Store};
use postgres::fallible_iterator::FallibleIterator;
use serde_json::{Map, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The log's table (made at start, before the writer's first BEGIN).
const TABLE: &str = "CREATE TABLE IF NOT EXISTS _keepd_changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection TEXT NOT NULL,
    action TEXT NOT NULL,
    record TEXT NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Two processes starting on a new schema at once make the table once.
const MAKE: &str = "BEGIN; SELECT pg_advisory_xact_lock(7021783409218473985); {table}; COMMIT";

/// The writer's BEGIN: the schema's writers take turns.
pub const BEGIN_WRITE: &str =
    "BEGIN; SELECT pg_advisory_xact_lock('_keepd_changes'::regclass::oid::bigint)";

/// A read that sees one snapshot of the database (`store::read_consistent`).
pub const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// The notification channel.
const CHANNEL: &str = "keepd_changes";

/// Changes kept in the log.
pub const KEEP: i64 = 10_000;
/// How often (in changes) a writer prunes the log.
pub const PRUNE_EVERY: i64 = 256;

/// Most changes read in one query.
const PAGE: i64 = 512;
/// How long the follower waits for a notification before reading anyway.
const TICK: Duration = Duration::from_secs(1);

/// Makes the log's table if it is not there; the log's last `seq` (0 when
/// empty): where this process starts following.
pub fn prepare(c: &Conn) -> ApiResult<i64> {
    c.script(&MAKE.replace("{table}", TABLE))?;
    Ok(c.one(
        "SELECT COALESCE(max(seq), 0) FROM _keepd_changes",
        (),
        |r| r.get::<i64>(0),
    )?
    .unwrap_or(0))
}

/// The action of a log row that says the collections changed: every
/// process loads its schema again before the changes after it.
const SCHEMA: &str = "schema";

/// Appends a write's changes, inside its transaction (the writer's BEGIN
/// holds the lock); the last one's `seq` (0: none).
pub fn append(c: &Conn, entries: &[Logged]) -> ApiResult<i64> {
    let rows: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.collection_id.as_str(),
                e.action.as_str(),
                e.record.as_str(),
            )
        })
        .collect();
    append_rows(c, &rows)
}

/// Appends the mark that the collections changed (after the change
/// committed, before its caller is answered).
pub fn schema_changed(c: &Conn) -> ApiResult<()> {
    append_rows(c, &[("", SCHEMA, "{}")]).map(|_| ())
}

/// Appends a mark that something every process holds in memory changed
/// (`Mark`), inside the transaction that changed it: each process hears of
/// it, in commit order, through [`Store::marks`].
pub fn mark(c: &Conn, what: Mark) -> ApiResult<()> {
    append_rows(c, &[("", what.as_str(), "{}")]).map(|_| ())
}

fn append_rows(c: &Conn, rows: &[(&str, &str, &str)]) -> ApiResult<i64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let insert =
        "INSERT INTO _keepd_changes (collection, action, record) VALUES (?1, ?2, ?3) RETURNING seq";
    let mut from = None;
    let mut to = 0;
    for (coll, action, record) in rows {
        let seq = c
            .one(insert, args![coll, action, record], |r| r.get::<i64>(0))?
            .unwrap_or(0);
        from.get_or_insert(seq);
        to = seq;
    }
    let from = from.unwrap_or(to);
    c.script(&format!("NOTIFY {CHANNEL}"))?;
    if crosses_prune_mark(from, to) {
        c.exec("DELETE FROM _keepd_changes WHERE seq <= ?1", [to - KEEP])?;
    }
    Ok(to)
}

/// Whether the seqs `from..=to` hold a multiple of [`PRUNE_EVERY`].
fn crosses_prune_mark(from: i64, to: i64) -> bool {
    to >= KEEP
        && (from.div_euclid(PRUNE_EVERY) != to.div_euclid(PRUNE_EVERY)
            || from.rem_euclid(PRUNE_EVERY) == 0)
}

fn action(s: &str) -> Option<Action> {
    Some(match s {
        "create" => Action::Create,
        "update" => Action::Update,
        "delete" => Action::Delete,
        _ => return None,
    })
}

/// One row of the log.
struct Row {
    seq: i64,
    collection: String,
    action: String,
    record: String,
}

/// Starts following the log from after `last`, for `store`'s life.
pub fn follow(pool: Arc<Pool>, store: Weak<Store>, last: i64) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("keepd-pg-changes".into())
        .spawn(move || Follower { pool, store, last }.run())?;
    Ok(())
}

struct Follower {
    pool: Arc<Pool>,
    store: Weak<Store>,
    last: i64,
}

impl Follower {
    fn run(mut self) {
        let mut session: Option<postgres::Client> = None;
        loop {
            if self.store.strong_count() == 0 {
                return;
            }
            let client = match session.as_mut() {
                Some(c) => c,
                None => match self.listen() {
                    Ok(c) => session.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "change log: no session to follow it on; trying again");
                        std::thread::sleep(TICK);
                        continue;
                    }
                },
            };
            if let Err(e) = self.catch_up(client) {
                tracing::warn!(error = %e, "change log: reading it failed; trying again");
                if client.is_closed() {
                    session = None;
                    self.pool.forget();
                }
                std::thread::sleep(TICK);
                continue;
            }
            // Wait for a commit (or the tick), then take every notification
            // already here: one read answers them all.
            {
                let mut n = client.notifications();
                let woke = n.timeout_iter(TICK).next();
                if let Err(e) = woke {
                    tracing::warn!(error = %e, "change log: the listening session failed");
                }
                while let Ok(Some(_)) = n.iter().next() {}
            }
            if client.is_closed() {
                session = None;
                self.pool.forget();
            }
        }
    }

    /// A session of the pool listening for commits.
    fn listen(&self) -> Result<postgres::Client, String> {
        let mut c = self.pool.take().map_err(|e| e.to_string())?;
        if let Err(e) = c.batch_execute(&format!("LISTEN {CHANNEL}")) {
            self.pool.forget();
            return Err(e.to_string());
        }
        Ok(c)
    }

    /// Reads and hands on every change after `last`, in order.
    fn catch_up(&mut self, c: &mut postgres::Client) -> Result<(), postgres::Error> {
        loop {
            let rows = c.query(
                "SELECT seq, collection, action, record, \
                 (SELECT min(seq) FROM _keepd_changes) \
                 FROM _keepd_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&self.last, &PAGE],
            )?;
            let Some(first) = rows.first() else {
                return Ok(());
            };
            let oldest: i64 = first.get(4);
            let full = rows.len() as i64 == PAGE;
            let rows: Vec<Row> = rows
                .iter()
                .map(|r| Row {
                    seq: r.get(0),
                    collection: r.get(1),
                    action: r.get(2),
                    record: r.get(3),
                })
                .collect();
            // The log pruned past where this process was: what it missed
            // is gone. (A gap in `seq` — a failed COMMIT, the sequence
            // moved on by a server crash — is no loss and does not look
            // like one while the log still holds rows up to `last`, which
            // it does unless this process is more than `KEEP` behind.)
            let lost = self.last > 0 && oldest > self.last + 1;
            self.last = rows.last().map_or(self.last, |r| r.seq);
            let Some(store) = self.store.upgrade() else {
                return Ok(());
            };
            hand_on(&store, rows, lost);
            // The writes waiting for their changes to be handed on are
            // answered.
            store.handed_on.send_replace(self.last);
            if !full {
                return Ok(());
            }
        }
    }
}

/// Gives the changes read to the store's sink and makes a new generation;
/// at a mark that the collections changed, the changes before it are
/// handed on and the schema is loaded again for the ones after.
fn hand_on(store: &Store, rows: Vec<Row>, lost: bool) {
    let sink = store.sink.get();
    if lost {
        tracing::warn!(
            "change log: this process fell more than {KEEP} changes behind; its realtime clients are disconnected"
        );
        if let Some(sink) = sink {
            sink.lost();
        }
    }
    let give = |changes: &mut Vec<Change>| {
        let list = std::mem::take(changes);
        if let (Some(sink), false) = (sink, list.is_empty()) {
            sink.committed(list);
        }
    };
    let mut schema = store.schema();
    let mut changes: Vec<Change> = Vec::new();
    for r in rows {
        if let Some(m) = Mark::parse(&r.action) {
            give(&mut changes);
            // Nobody listening yet (a process starting) is no loss: it
            // read what the mark says at its start.
            let _ = store.marks.send(m);
            continue;
        }
        if r.action == SCHEMA {
            give(&mut changes);
            match store.read_now(|c| {
                crate::store::migrate::load_schema(c).map_err(crate::error::ApiError::internal)
            }) {
                Ok(s) => store.set_schema(s),
                Err(e) => {
                    tracing::warn!(error = %e, "change log: loading the changed collections failed")
                }
            }
            schema = store.schema();
            continue;
        }
        let Some(action) = action(&r.action) else {
            continue;
        };
        // A collection that is gone: nobody here subscribes to it.
        let Some(collection) = schema.by_id(&r.collection).cloned() else {
            continue;
        };
        let Ok(record) = serde_json::from_str::<Map<String, Value>>(&r.record) else {
            continue;
        };
        changes.push(Change {
            action,
            collection,
            record,
            prepared: None,
            from_log: true,
        });
    }
    store.changed();
    give(&mut changes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_marks() {
        assert!(!crosses_prune_mark(1, 1));
        let mark = PRUNE_EVERY * 50;
        assert!(mark > KEEP);
        assert!(!crosses_prune_mark(mark + 1, mark + 200));
        assert!(crosses_prune_mark(mark - 5, mark + 5));
        assert!(crosses_prune_mark(PRUNE_EVERY * 80, PRUNE_EVERY * 80));
        assert!(!crosses_prune_mark(PRUNE_EVERY, PRUNE_EVERY + 1));
        assert_eq!(action("delete"), Some(Action::Delete));
        assert_eq!(action("drop"), None);
    }
}
