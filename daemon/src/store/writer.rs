//! The single writer: one thread owns the read-write connection and commits
//! queued writes together (group commit). Each write runs in its own
//! savepoint, so one failing write rolls back alone; every caller is
//! answered only after the shared COMMIT returned.

use super::health::{self, Health};
use super::Conn as Connection;
use crate::error::{ApiError, ApiResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// What happened to a write (used by the batch statistics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Committed,
    RolledBack,
}

/// A queued write: runs on the writer thread, returns the completion to call
/// once the batch's fate (commit or not) is known, and whether it changed
/// rows (a commit of changes proves the disk takes writes).
/// A queued write: run on the writer's connection inside the batch's
/// transaction, or — `None`: the transaction could not begin — only told
/// so, so that it never runs outside one (its savepoint would commit it
/// on its own while its caller is told it failed).
type Job = Box<dyn FnOnce(Option<&Connection>) -> (Completion, bool) + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the writer thread is sent.
enum Msg {
    Write(Job),
    /// Commit what is queued before it, checkpoint the WAL into the
    /// database (TRUNCATE), answer, and stop.
    Close(oneshot::Sender<Result<(), String>>),
}

pub(crate) struct Writer {
    tx: mpsc::SyncSender<Msg>,
    health: Arc<Health>,
}

impl Writer {
    pub(crate) fn start(
        conn: Connection,
        max_batch: usize,
        health: Arc<Health>,
        generation: Arc<AtomicU64>,
    ) -> anyhow::Result<Writer> {
        // The queue is bounded: when it is full, writers wait (back-pressure)
        // instead of growing memory.
        let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
        let h = health.clone();
        std::thread::Builder::new()
            .name("keepd-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, &h, &generation))?;
        Ok(Writer { tx, health })
    }

    pub(crate) async fn run<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<T> + Send + 'static,
    {
        self.run_then(f, |_| {}).await
    }

    /// Like `run`, and calls `on_commit` with the write's value on the
    /// writer thread once the batch has committed, before the caller is
    /// answered — in commit order. Not called for a write that failed or a
    /// batch whose COMMIT failed.
    pub(crate) async fn run_then<T, F, H>(&self, f: F, on_commit: H) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<T> + Send + 'static,
        H: FnOnce(&mut T) + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<ApiResult<T>>();
        let health = self.health.clone();
        let job: Job = Box::new(move |conn: Option<&Connection>| {
            let Some(conn) = conn else {
                let done: Completion = Box::new(move |commit: Result<(), String>| {
                    let e = commit.err().unwrap_or_else(|| "no transaction".into());
                    let _ = done_tx.send(Err(ApiError::internal(format!("write not run: {e}"))));
                });
                return (done, false);
            };
            let before = conn.total_changes();
            let result = run_in_savepoint(conn, f);
            let wrote = result.is_ok() && conn.total_changes() > before;
            if let Err(ApiError::Internal(detail)) = &result {
                // A statement that had to write pages (a cache spill, a
                // large value) fails before the COMMIT does.
                if let Some(fault) = health::classify_text(detail) {
                    health.failed(fault, detail);
                }
            }
            let done: Completion = Box::new(move |commit: Result<(), String>| {
                let answer = match (commit, result) {
                    (Ok(()), Ok(mut v)) => {
                        on_commit(&mut v);
                        Ok(v)
                    }
                    (Ok(()), Err(e)) => Err(e),
                    (Err(e), Ok(_)) => Err(ApiError::internal(format!("commit failed: {e}"))),
                    (Err(_), Err(e)) => Err(e),
                };
                let _ = done_tx.send(answer);
            });
            (done, wrote)
        });
        self.send(Msg::Write(job)).await?;
        done_rx
            .await
            .map_err(|_| ApiError::internal("writer dropped the write"))?
    }

    async fn send(&self, msg: Msg) -> ApiResult<()> {
        let tx = self.tx.clone();
        // A full queue blocks the sender: do that off the async workers.
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::TrySendError::Full(msg)) => tokio::task::spawn_blocking(move || tx.send(msg))
                .await
                .map_err(ApiError::internal)?
                .map_err(|_| ApiError::internal("writer stopped")),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(ApiError::internal("writer stopped")),
        }
    }

    /// At a clean stop: the writes queued so far are committed, then the
    /// WAL is checkpointed into the database file and truncated, so that
    /// `data.db` alone holds everything; the writer then stops (later
    /// writes fail with "writer stopped").
    pub(crate) async fn close(&self) -> ApiResult<()> {
        let (done_tx, done_rx) = oneshot::channel();
        self.send(Msg::Close(done_tx)).await?;
        done_rx
            .await
            .map_err(|_| ApiError::internal("writer stopped before the checkpoint"))?
            .map_err(ApiError::internal)
    }
}

fn run_in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> ApiResult<T>,
) -> ApiResult<T> {
    conn.execute_batch("SAVEPOINT w")?;
    // A panic in `f` is this write's error (rolled back below): the
    // writer thread and the other writes of the batch go on.
    let r =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))).unwrap_or_else(|p| {
            Err(ApiError::internal(super::readers::panic_text(
                "a write", &*p,
            )))
        });
    let end = match &r {
        Ok(_) => conn.execute_batch("RELEASE w"),
        Err(_) => conn.execute_batch("ROLLBACK TO w; RELEASE w"),
    };
    match (r, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    health: &Health,
    generation: &AtomicU64,
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(max_batch);
    let mut wrote: bool;
    let run = |job: Job, conn: &Connection, wrote: &mut bool| {
        let (c, w) = job(Some(conn));
        *wrote |= w;
        c
    };
    let mut close = None;
    while let Ok(msg) = rx.recv() {
        let first = match msg {
            Msg::Write(job) => job,
            Msg::Close(done) => {
                close = Some(done);
                break;
            }
        };
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "writer could not begin a transaction");
            if let Some(fault) = health::classify(&e) {
                health.failed(fault, &e.to_string());
            }
            completions.push(first(None).0);
            for c in completions.drain(..) {
                c(Err(e.to_string()));
            }
            continue;
        }
        wrote = false;
        let changes_before = conn.total_changes();
        completions.push(run(first, &conn, &mut wrote));
        while completions.len() < max_batch {
            match rx.try_recv() {
                Ok(Msg::Write(job)) => completions.push(run(job, &conn, &mut wrote)),
                Ok(Msg::Close(done)) => {
                    close = Some(done);
                    break;
                }
                Err(_) => break,
            }
        }
        let commit = conn.execute_batch("COMMIT");
        match &commit {
            Err(e) => {
                // Once per failing spell: the monitor says the rest.
                if health.failure().is_none() {
                    tracing::error!(error = %e, "commit failed; rolling back the batch");
                } else {
                    tracing::debug!(error = %e, "commit failed; rolling back the batch");
                }
                if let Some(fault) = health::classify(e) {
                    health.failed(fault, &e.to_string());
                }
                let _ = conn.execute_batch("ROLLBACK");
            }
            Ok(()) if wrote => health.committed(),
            Ok(()) => {}
        }
        // The data changed (rows of any table, a write rolled back to its
        // savepoint counted too — one bump too many is harmless): answers
        // cached under the old generation are not served any more. Before
        // any caller of the batch is answered, so nobody who saw the write
        // acknowledged can get an answer from before it.
        if commit.is_ok() && conn.total_changes() != changes_before {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        let commit = commit.map_err(|e| e.to_string());
        for c in completions.drain(..) {
            // A completion that panics (an after-commit hook) leaves its
            // caller unanswered ("writer dropped the write"), not the
            // writer stopped.
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c(commit.clone())));
            if let Err(p) = done {
                tracing::error!(
                    "{}",
                    super::readers::panic_text("an after-commit hook", &*p)
                );
            }
        }
        if close.is_some() {
            break;
        }
    }
    if let Some(done) = close {
        let _ = done.send(super::sqlite::checkpoint(&conn));
    }
    tracing::debug!("writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A write whose batch could not begin a transaction is never run:
    /// run outside one, its own savepoint would commit it while its caller
    /// is told it failed.
    #[tokio::test]
    async fn a_write_is_not_run_when_its_transaction_cannot_begin() {
        let dir = std::env::temp_dir().join(format!("keepd-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(v INTEGER)")
            .unwrap();
        conn.busy_timeout(Duration::from_millis(0)).unwrap();
        // Another connection holds the write lock: BEGIN IMMEDIATE fails.
        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder_thread = std::thread::spawn(move || {
            // The write, if it runs, lets the lock go before it inserts:
            // its insert would then succeed.
            if release_rx.recv().is_ok() {
                holder.execute_batch("COMMIT").unwrap();
            }
            drop(holder);
        });
        let writer = Writer::start(
            conn,
            16,
            Arc::new(Health::default()),
            Arc::new(AtomicU64::new(0)),
        )
        .unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        let r = writer
            .run(move |c| {
                ran2.store(true, Ordering::SeqCst);
                let _ = release_tx.send(());
                std::thread::sleep(Duration::from_millis(50));
                c.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(())
            })
            .await;
        assert!(r.is_err(), "the write must be refused: {r:?}");
        assert!(
            !ran.load(Ordering::SeqCst),
            "the write ran outside a transaction"
        );
        holder_thread.join().unwrap();
        let check = Connection::open(&path).unwrap();
        let n: i64 = check
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "a refused write left a row");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
