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
//! Every SQLite store works this way, the daemon's and a CLI command's
//! (`superuser upsert`, `import`); `keepd rekey` checkpoints its own
//! connections (`rekey.rs`).

use super::Conn;
use crate::store::key::DbKey;
use std::cell::Cell;
use std::path::Path;
use std::sync::mpsc;

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
        let thread = std::thread::Builder::new()
            .name("keepd-wal".into())
            .spawn(move || run(&path, key.as_ref(), &asked))?;
        writer.engine()?.wal_hook(Some(count_frames));
        Ok(Checkpoints {
            // 0 or less: SQLite's automatic checkpoint is off; so is this.
            threshold: u32::try_from(threshold)
                .ok()
                .filter(|t| *t > 0)
                .unwrap_or(u32::MAX),
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Called on the writer's thread after a COMMIT: asks for a checkpoint
    /// when the WAL holds `threshold` frames or more. Never waits: one
    /// request pending is enough.
    pub(crate) fn after_commit(&self) {
        if FRAMES.with(Cell::get) >= self.threshold {
            if let Some(w) = &self.wake {
                let _ = w.try_send(());
            }
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

fn run(path: &Path, key: Option<&DbKey>, asked: &mpsc::Receiver<()>) {
    let mut conn: Option<Conn> = None;
    let mut failing = false;
    while asked.recv().is_ok() {
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
