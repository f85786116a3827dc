//! The single writer: one thread owns the read-write connection and commits
//! queued writes together (group commit). Each write runs in its own
//! savepoint, so one failing write rolls back alone; every caller is
//! answered only after the shared COMMIT returned.

use super::health::{self, Health};
use super::sqlite::wal::Checkpoints;
use super::Conn as Connection;
use crate::error::{ApiError, ApiResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The longest the writer waits for a group to fill (see `writer_loop`).
const MAX_LINGER: Duration = Duration::from_millis(2);
use tokio::sync::oneshot;

/// Upper bounds of the group-size buckets (`WriterStats::sizes`): a group
/// of n writes counts in the first bucket whose bound is ≥ n; the last
/// bucket takes the rest.
pub const GROUP_BUCKETS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// What the writer did since it started, for operators (superusers'
/// `/api/health`) and the benchmarks. Counters only: reading them costs the
/// writer nothing.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed that wrote (each one is an fsync of the WAL,
    /// `synchronous=FULL`).
    commits: AtomicU64,
    /// Writes run in those transactions (a batch request counts once; a
    /// write that failed and rolled back to its savepoint counts too).
    writes: AtomicU64,
    /// Groups by size (`GROUP_BUCKETS`, then one bucket for larger).
    sizes: [AtomicU64; GROUP_BUCKETS.len() + 1],
    /// Nanoseconds the writer spent running writes (inside the
    /// transaction, before COMMIT) and in COMMIT (the fsync).
    run_ns: AtomicU64,
    commit_ns: AtomicU64,
    /// Nanoseconds the writer waited for a group to fill.
    wait_ns: AtomicU64,
}

/// A copy of [`WriterStats`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriterSnapshot {
    pub commits: u64,
    pub writes: u64,
    /// `[upper bound, groups]` per bucket; the last bound is 0 (larger).
    pub group_sizes: Vec<(u64, u64)>,
    pub run_ms: u64,
    pub commit_ms: u64,
    pub wait_ms: u64,
}

impl WriterStats {
    fn group(&self, size: usize, run_ns: u64, commit_ns: u64, wait_ns: u64) {
        let n = size as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(n, Ordering::Relaxed);
        let i = GROUP_BUCKETS
            .iter()
            .position(|b| n <= *b)
            .unwrap_or(GROUP_BUCKETS.len());
        self.sizes[i].fetch_add(1, Ordering::Relaxed);
        self.run_ns.fetch_add(run_ns, Ordering::Relaxed);
        self.commit_ns.fetch_add(commit_ns, Ordering::Relaxed);
        self.wait_ns.fetch_add(wait_ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WriterSnapshot {
        let bounds = GROUP_BUCKETS.iter().copied().chain([0]);
        WriterSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            group_sizes: bounds
                .zip(self.sizes.iter())
                .map(|(b, c)| (b, c.load(Ordering::Relaxed)))
                .collect(),
            run_ms: self.run_ns.load(Ordering::Relaxed) / 1_000_000,
            commit_ms: self.commit_ns.load(Ordering::Relaxed) / 1_000_000,
            wait_ms: self.wait_ns.load(Ordering::Relaxed) / 1_000_000,
        }
    }
}

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
///
/// `Place::First`: the write opens the transaction's work, and runs without
/// a savepoint of its own (a savepoint copies each page the write changes
/// to the sub-journal first): if it fails, the writer rolls the whole
/// transaction back, which holds nothing else.
type Job = Box<dyn FnOnce(Option<&Connection>, Place) -> Ran + Send>;
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Where a write runs in its batch's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The first: no savepoint, the transaction is its own.
    First,
    /// After others: in a savepoint of its own.
    Later,
}

/// What running a write left: its completion, whether it changed rows,
/// and whether it failed.
struct Ran {
    done: Completion,
    wrote: bool,
    failed: bool,
}
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
    stats: Arc<WriterStats>,
}

impl Writer {
    /// `checkpoints`: where the WAL's checkpoints are asked for after a
    /// commit (SQLite; None on PostgreSQL, and in tests of the writer
    /// alone, whose connection keeps SQLite's automatic checkpoint).
    pub(crate) fn start(
        conn: Connection,
        max_batch: usize,
        health: Arc<Health>,
        generation: Arc<AtomicU64>,
        checkpoints: Option<Checkpoints>,
    ) -> anyhow::Result<Writer> {
        // The queue is bounded: when it is full, writers wait (back-pressure)
        // instead of growing memory.
        let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
        // Room for the transaction control statements beside the writes'
        // own (inserts per collection, relation checks, change capture).
        conn.set_statement_cache(64);
        let h = health.clone();
        let stats = Arc::new(WriterStats::default());
        let st = stats.clone();
        std::thread::Builder::new()
            .name("keepd-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, &h, &generation, &st, checkpoints))?;
        Ok(Writer { tx, health, stats })
    }

    pub(crate) fn stats(&self) -> WriterSnapshot {
        self.stats.snapshot()
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
        let job: Job = Box::new(move |conn: Option<&Connection>, place: Place| {
            let Some(conn) = conn else {
                let done: Completion = Box::new(move |commit: Result<(), String>| {
                    let e = commit.err().unwrap_or_else(|| "no transaction".into());
                    let _ = done_tx.send(Err(ApiError::internal(format!("write not run: {e}"))));
                });
                return Ran {
                    done,
                    wrote: false,
                    failed: true,
                };
            };
            let before = conn.total_changes();
            let result = match place {
                Place::First => run_caught(conn, f),
                Place::Later => run_in_savepoint(conn, f),
            };
            let failed = result.is_err();
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
            Ran {
                done,
                wrote,
                failed,
            }
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
    conn.control("SAVEPOINT w")?;
    let r = run_caught(conn, f);
    let end = match &r {
        Ok(_) => conn.control("RELEASE w"),
        Err(_) => conn
            .control("ROLLBACK TO w")
            .and_then(|()| conn.control("RELEASE w")),
    };
    match (r, end) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// Runs `f`; a panic in it is this write's error (rolled back by the
/// caller): the writer thread and the other writes of the batch go on.
fn run_caught<T>(conn: &Connection, f: impl FnOnce(&Connection) -> ApiResult<T>) -> ApiResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))).unwrap_or_else(|p| {
        Err(ApiError::internal(super::readers::panic_text(
            "a write", &*p,
        )))
    })
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    max_batch: usize,
    health: &Health,
    generation: &AtomicU64,
    stats: &WriterStats,
    mut checkpoints: Option<Checkpoints>,
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(max_batch);
    let mut wrote: bool;
    let run = |job: Job, conn: &Connection, wrote: &mut bool| {
        let ran = job(Some(conn), Place::Later);
        *wrote |= ran.wrote;
        ran.done
    };
    let mut close = None;
    // The last group's size and how long its COMMIT took.
    let mut expect = 1;
    let mut linger = Duration::ZERO;
    while let Ok(msg) = rx.recv() {
        let first = match msg {
            Msg::Write(job) => job,
            Msg::Close(done) => {
                close = Some(done);
                break;
            }
        };
        if let Err(e) = conn.control(super::dialect::BEGIN_WRITE) {
            tracing::error!(error = %e, "writer could not begin a transaction");
            if let Some(fault) = e.fault {
                health.failed(fault, &e.to_string());
            }
            completions.push(first(None, Place::First).done);
            for c in completions.drain(..) {
                c(Err(e.to_string()));
            }
            continue;
        }
        let started = Instant::now();
        let changes_before = conn.total_changes();
        let ran = first(Some(&conn), Place::First);
        if ran.failed {
            // It ran without a savepoint: whatever it changed goes with
            // the transaction, which held nothing else. Its caller gets its
            // error whatever the rollback says.
            if let Err(e) = conn.control("ROLLBACK") {
                tracing::error!(error = %e, "rollback of a failed write failed");
                if let Some(fault) = e.fault {
                    health.failed(fault, &e.to_string());
                }
            }
            finish(ran.done, Ok(()));
            continue;
        }
        wrote = ran.wrote;
        completions.push(ran.done);
        // What is queued joins the group; and while the group is smaller
        // than the last one, the writer waits for more — at most as long
        // as the last COMMIT took. The callers answered by the last commit
        // are on their way back: without the wait, callers split into
        // cohorts that take turns, each paying a commit of its own. A lone
        // caller (a group of one after a group of one) never waits.
        let wait_until = started + linger;
        let mut waited = Duration::ZERO;
        while completions.len() < max_batch {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(mpsc::TryRecvError::Empty) => {
                    if completions.len() >= expect {
                        break;
                    }
                    let until = wait_until;
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    let got = rx.recv_timeout(until - now);
                    waited += now.elapsed();
                    match got {
                        Ok(msg) => msg,
                        Err(_) => break,
                    }
                }
                Err(_) => break,
            };
            match msg {
                Msg::Write(job) => completions.push(run(job, &conn, &mut wrote)),
                Msg::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
        }
        let ran = Instant::now();
        let mut finish_checkpoint = false;
        let commit = conn.control("COMMIT");
        let committed = Instant::now();
        expect = completions.len();
        linger = (committed - ran).min(MAX_LINGER);
        if commit.is_ok() && wrote {
            stats.group(
                completions.len(),
                (ran - started).saturating_sub(waited).as_nanos() as u64,
                (committed - ran).as_nanos() as u64,
                waited.as_nanos() as u64,
            );
        }
        match &commit {
            Err(e) => {
                // Once per failing spell: the monitor says the rest.
                if health.failure().is_none() {
                    tracing::error!(error = %e, "commit failed; rolling back the batch");
                } else {
                    tracing::debug!(error = %e, "commit failed; rolling back the batch");
                }
                if let Some(fault) = e.fault {
                    health.failed(fault, &e.to_string());
                }
                let _ = conn.control("ROLLBACK");
            }
            Ok(()) if wrote => {
                health.committed();
                if let Some(c) = &checkpoints {
                    finish_checkpoint = c.after_commit();
                }
            }
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
            finish(c, commit.clone());
        }
        // Answered first: the copy delays the next group, not this one.
        if finish_checkpoint {
            if let Some(c) = &checkpoints {
                c.finish(&conn);
            }
        }
        if close.is_some() {
            break;
        }
    }
    // The checkpoint thread stops (after the checkpoint it is in) before
    // the last one.
    checkpoints.take();
    if let Some(done) = close {
        // PostgreSQL's COMMIT is durable where it is; SQLite's WAL is
        // copied into the database file.
        let _ = done.send(if conn.is_postgres() {
            Ok(())
        } else {
            super::sqlite::wal::truncate(&conn)
        });
    }
    tracing::debug!("writer stopped");
}

/// Calls a write's completion. One that panics (an after-commit hook)
/// leaves its caller unanswered ("writer dropped the write"), not the
/// writer stopped.
fn finish(c: Completion, commit: Result<(), String>) {
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c(commit)));
    if let Err(p) = done {
        tracing::error!(
            "{}",
            super::readers::panic_text("an after-commit hook", &*p)
        );
    }
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
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(v INTEGER)")
            .unwrap();
        raw.busy_timeout(Duration::from_millis(0)).unwrap();
        let conn = Connection::from(raw);
        // Another connection holds the write lock: BEGIN IMMEDIATE fails.
        let holder = rusqlite::Connection::open(&path).unwrap();
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
            None,
        )
        .unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        let r = writer
            .run(move |c| {
                ran2.store(true, Ordering::SeqCst);
                let _ = release_tx.send(());
                std::thread::sleep(Duration::from_millis(50));
                c.exec("INSERT INTO t VALUES (1)", ())?;
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
            .one("SELECT count(*) FROM t", (), |r| r.get(0))
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "a refused write left a row");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn writer_on(tag: &str) -> (Writer, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("keepd-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.script("PRAGMA journal_mode=WAL; CREATE TABLE t(v INTEGER)")
            .unwrap();
        let writer = Writer::start(
            conn,
            16,
            Arc::new(Health::default()),
            Arc::new(AtomicU64::new(0)),
            None,
        )
        .unwrap();
        (writer, path)
    }

    fn values(path: &std::path::Path) -> Vec<i64> {
        let c = Connection::open(path).unwrap();
        c.all("SELECT v FROM t ORDER BY v", (), |r| r.get(0))
            .unwrap()
    }

    /// A write that fails after changing rows leaves none of them, whether
    /// it ran first in its transaction (no savepoint: the transaction is
    /// rolled back) or after others (its savepoint is); the others commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_leaves_nothing_and_the_others_commit() {
        let (writer, path) = writer_on("fail");
        let writer = Arc::new(writer);
        // Alone (first in its transaction).
        let r = writer
            .run(|c| {
                c.exec("INSERT INTO t VALUES (1)", ())?;
                Err::<(), _>(ApiError::bad("no"))
            })
            .await;
        assert!(r.is_err());
        // Many at once: some fail after inserting, some panic.
        let mut tasks = Vec::new();
        for i in 0..64i64 {
            let w = writer.clone();
            tasks.push(tokio::spawn(async move {
                w.run(move |c| {
                    c.exec("INSERT INTO t VALUES (?1)", [i + 10])?;
                    match i % 4 {
                        0 => Err(ApiError::bad("no")),
                        1 => panic!("a write panics"),
                        _ => Ok(()),
                    }
                })
                .await
            }));
        }
        let mut ok = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.is_ok(), i % 4 >= 2, "write {i}: {r:?}");
            if r.is_ok() {
                ok.push(i as i64 + 10);
            }
        }
        writer
            .run(|c| c.exec("INSERT INTO t VALUES (2)", ()))
            .await
            .unwrap();
        ok.insert(0, 2);
        assert_eq!(values(&path), ok);
        let st = writer.stats();
        // Failed writes run in a committed transaction are counted too.
        assert!((33..=66).contains(&st.writes), "{st:?}");
        let groups: u64 = st.group_sizes.iter().map(|(_, n)| n).sum();
        assert_eq!(groups, st.commits);
        assert!(st.commits >= 1 && st.commits <= st.writes, "{st:?}");
    }
}
