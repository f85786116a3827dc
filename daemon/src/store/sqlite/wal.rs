//! The write-ahead log's checkpoints: on a thread of their own while the
//! daemon serves, and the TRUNCATE one at a clean stop (`truncate`).
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL
//! past its threshold: the writer thread copies a thousand pages into the
//! database file and syncs it while every caller of the group — and every
//! write queued behind it — waits. Here the writer's connection only counts
//! the WAL's frames after each commit (the WAL hook, which also turns
//! SQLite's automatic checkpoint off for that connection), and past the
//! threshold its `wal_autocheckpoint` named wakes a thread with a
//! connection of its own that runs a PASSIVE checkpoint beside the writes:
//! same threshold, same checkpoint, same syncs (`synchronous = FULL` on its
//! connection: the WAL is synced before pages are copied, the database file
//! before the WAL can restart), off the path a write is answered on.
//!
//! The WAL restarts (its next commit written from its start, and the file
//! cut back to `journal_size_limit`) only when a write transaction begins
//! with every frame already copied. SQLite's own checkpoint, inside the
//! commit, guaranteed that moment; a checkpoint beside writes that never
//! pause never reaches it — each pass ends with newer frames behind it — and
//! the WAL grew without end (hundreds of MB in a minute of creates). So at
//! twice the threshold the thread is held and the writer finishes the copy
//! itself, after its callers are answered and before its next transaction
//! (`Checkpoints::finish`): what is left is what arrived since the thread's
//! last pass. The next write then restarts the WAL, unless a reader that
//! began before the copy still reads it; the writer then tries again a
//! quarter threshold later.
//!
//! Every SQLite store works this way, the daemon's and a CLI command's
//! (`superuser upsert`, `import`); `keepd rekey` checkpoints its own
//! connections (`rekey.rs`).

use super::Conn;
use crate::store::key::DbKey;
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

thread_local! {
    /// The WAL's frame count after the last commit on this thread's
    /// connection (the writer's: the hook runs on the committing thread).
    static FRAMES: Cell<u32> = const { Cell::new(0) };
}

fn count_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// Asks for checkpoints of one database's WAL; the thread that runs them
/// stops when this is dropped (after the checkpoint it is in, if any).
pub(crate) struct Checkpoints {
    /// WAL frames after a commit from which a checkpoint is asked for: the
    /// writer connection's `wal_autocheckpoint` (`open::open_writer`).
    threshold: u32,
    /// Frames from which the writer finishes the copy itself (twice the
    /// threshold), and the count at which it next tries.
    restart_at: u32,
    next_try: Cell<u32>,
    /// Set while the writer finishes: the thread starts no pass, so the
    /// checkpoint lock is free when the writer asks for it.
    held: Arc<AtomicBool>,
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpoints {
    /// Counts the WAL's frames after each commit on `writer` (no more
    /// automatic checkpoints in its commits) and starts the thread that
    /// checkpoints `path` when asked. Its connection opens at the first
    /// checkpoint: a daemon that never writes a thousand pages never has
    /// one.
    pub(crate) fn start(
        writer: &Conn,
        path: &Path,
        key: Option<&DbKey>,
    ) -> anyhow::Result<Checkpoints> {
        let threshold: i64 = writer
            .engine()?
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
        let (wake, asked) = mpsc::sync_channel::<()>(1);
        let path = path.to_path_buf();
        let key = key.cloned();
        let held = Arc::new(AtomicBool::new(false));
        let held2 = held.clone();
        let thread = std::thread::Builder::new()
            .name("keepd-wal".into())
            .spawn(move || run(&path, key.as_ref(), &asked, &held2))?;
        writer.engine()?.wal_hook(Some(count_frames));
        // 0 or less: SQLite's automatic checkpoint is off; so is this.
        let threshold = u32::try_from(threshold)
            .ok()
            .filter(|t| *t > 0)
            .unwrap_or(u32::MAX);
        let restart_at = threshold.saturating_mul(2);
        Ok(Checkpoints {
            threshold,
            restart_at,
            next_try: Cell::new(restart_at),
            held,
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Called on the writer's thread after a COMMIT: asks the thread for a
    /// checkpoint when the WAL holds `threshold` frames or more (never
    /// waits: one request pending is enough). True when the writer is to
    /// finish the copy itself (`finish`), once its callers are answered:
    /// the WAL holds twice the threshold.
    pub(crate) fn after_commit(&self) -> bool {
        let frames = FRAMES.with(Cell::get);
        if frames < self.restart_at {
            self.held.store(false, Ordering::Relaxed);
            self.next_try.set(self.restart_at);
            if frames >= self.threshold {
                if let Some(w) = &self.wake {
                    let _ = w.try_send(());
                }
            }
            return false;
        }
        self.held.store(true, Ordering::Relaxed);
        if frames < self.next_try.get() {
            return false;
        }
        self.next_try
            .set(frames.saturating_add((self.threshold / 4).max(1)));
        true
    }

    /// On the writer's thread, between transactions: copies what the
    /// thread has not (a PASSIVE checkpoint: it waits for nobody), so that
    /// the next write transaction begins with every frame copied and
    /// restarts the WAL. Busy (the thread still in its last pass, or a
    /// reader on an older snapshot) is tried again later.
    pub(crate) fn finish(&self, writer: &Conn) {
        match checkpoint(writer, Mode::Passive) {
            Ok((busy, log, done)) => {
                tracing::debug!(busy, log, done, "WAL checkpoint by the writer")
            }
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint by the writer failed"),
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(path: &Path, key: Option<&DbKey>, asked: &mpsc::Receiver<()>, held: &AtomicBool) {
    let mut conn: Option<Conn> = None;
    let mut failing = false;
    while asked.recv().is_ok() {
        if held.load(Ordering::Relaxed) {
            continue;
        }
        let done = match &conn {
            Some(c) => passive(c),
            None => match super::open::open_checkpointer(path, key) {
                Ok(c) => passive(conn.insert(c)),
                Err(e) => Err(format!("{e:#}")),
            },
        };
        match done {
            Ok(()) => failing = false,
            // Once per failing spell. The WAL keeps every commit (it grows
            // until a checkpoint goes through); a disk that refuses writes
            // is reported by the writer's own commits.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed; data.db-wal keeps growing until one succeeds");
            }
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// `wal_checkpoint(PASSIVE)`: copies what no reader still needs, without
/// waiting for anyone. A busy result is not a failure (the rest goes at
/// the next checkpoint).
fn passive(c: &Conn) -> Result<(), String> {
    checkpoint(c, Mode::Passive).map(|_| ())
}

/// `wal_checkpoint(TRUNCATE)`, at a clean stop: every committed page copied
/// into the database file, which is synced, and the WAL emptied. It waits
/// (up to the busy timeout) for readers still in a transaction.
pub fn truncate(c: &Conn) -> Result<(), String> {
    let (busy, log, done) = checkpoint(c, Mode::Truncate)?;
    if busy {
        return Err(format!(
            "checkpoint incomplete: {done} of {log} WAL pages copied (readers busy)"
        ));
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Mode {
    Passive,
    Truncate,
}

/// Runs a checkpoint: whether it was blocked before the end, the WAL's
/// frames, and how many of them are in the database file.
fn checkpoint(c: &Conn, mode: Mode) -> Result<(bool, i64, i64), String> {
    let sql = match mode {
        Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Mode::Truncate => "PRAGMA wal_checkpoint(TRUNCATE)",
    };
    let c = c.engine().map_err(|e| e.to_string())?;
    c.query_row(sql, [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
    })
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits one after another with no pause between them — the writer
    /// finding the next group queued each time a COMMIT returns — still
    /// let the WAL restart: its file stays near twice the threshold
    /// (`restart_at`), where a checkpoint beside such commits alone never
    /// caught up with them and the WAL held every page written (~24 MB
    /// here). The loop is the writer's: BEGIN, a write, COMMIT,
    /// `after_commit`, `finish` when asked.
    #[test]
    fn the_wal_restarts_between_commits_that_never_pause() {
        let dir = std::env::temp_dir().join(format!("keepd-walrestart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.db");
        let writer = super::super::open::open_writer(&path, None).unwrap();
        writer
            .engine()
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        let checkpoints = Checkpoints::start(&writer, &path, None).unwrap();
        assert_eq!(
            (checkpoints.threshold, checkpoints.restart_at),
            (1000, 2000)
        );
        let wal = path.with_extension("db-wal");
        let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        let body = "z".repeat(3_500);
        let mut largest = 0;
        for i in 0..6_000 {
            let c = writer.engine().unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            c.execute("INSERT INTO t (body) VALUES (?1)", [format!("{i}{body}")])
                .unwrap();
            c.execute_batch("COMMIT").unwrap();
            if checkpoints.after_commit() {
                checkpoints.finish(&writer);
            }
            largest = largest.max(size());
        }
        drop(checkpoints);
        // 2,000 frames of 4 KiB and their headers, plus the frames of the
        // commits until the checkpoint lock was free.
        assert!(
            largest < 10 << 20,
            "the WAL reached {largest} bytes (now {})",
            size()
        );
        let rows: i64 = writer
            .engine()
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 6_000);
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
