//! A small pool of read-only connections. A read borrows one connection on a
//! blocking thread and gives it back; nothing holds it across an `.await`.
//! One connection is opened with the store (it proves the database readable);
//! the others only when that many reads first run at once, so an idle
//! daemon does not hold `readers` connections' memory (about 120 KiB each).
//!
//! Point reads (one row by primary key) skip the hand-off to a blocking
//! thread: they run on the calling thread with that thread's own read-only
//! connection (`Local`), opened on first use. The hand-off — two context
//! switches — costs more than such a read.

use super::key::DbKey;
use super::open::open_reader;
use super::Conn as Connection;
use crate::error::{ApiError, ApiResult};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub(crate) struct Readers {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    path: Arc<std::path::PathBuf>,
    key: Option<DbKey>,
}

/// Distinguishes stores in one process (tests open several).
static STORE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's read-only connection: (store id, connection).
    static LOCAL: std::cell::RefCell<Option<(u64, Connection)>> =
        const { std::cell::RefCell::new(None) };
}

/// Per-thread read-only connections to one database.
pub(crate) struct Local {
    id: u64,
    path: std::path::PathBuf,
    key: Option<DbKey>,
}

impl Local {
    pub(crate) fn new(path: &Path, key: Option<DbKey>) -> Local {
        Local {
            id: STORE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            path: path.to_path_buf(),
            key,
        }
    }

    /// Runs `f` now, on this thread, with its connection to this database.
    pub(crate) fn run<T>(&self, f: impl FnOnce(&Connection) -> ApiResult<T>) -> ApiResult<T> {
        LOCAL.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(ApiError::internal)?;
            if slot.as_ref().map(|(id, _)| *id) != Some(self.id) {
                let conn =
                    open_reader(&self.path, self.key.as_ref()).map_err(ApiError::internal)?;
                *slot = Some((self.id, conn));
            }
            match slot.as_ref() {
                Some((_, conn)) => f(conn),
                None => Err(ApiError::internal("no local reader")),
            }
        })
    }
}

impl Readers {
    pub(crate) fn open(path: &Path, n: usize, key: Option<&DbKey>) -> anyhow::Result<Readers> {
        let first = open_reader(path, key)?;
        Ok(Readers {
            conns: Arc::new(Mutex::new(vec![first])),
            permits: Arc::new(Semaphore::new(n)),
            path: Arc::new(path.to_path_buf()),
            key: key.cloned(),
        })
    }

    /// Connections open now (idle in the pool).
    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.conns.lock().map(|g| g.len()).unwrap_or(0)
    }

    pub(crate) async fn run<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> ApiResult<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        let conns = self.conns.clone();
        let (path, key) = (self.path.clone(), self.key.clone());
        tokio::task::spawn_blocking(move || {
            let pooled = conns
                .lock()
                .map_err(|_| ApiError::internal("reader pool poisoned"))?
                .pop();
            // A permit and an empty pool: fewer than `n` are open yet.
            let conn = match pooled {
                Some(c) => c,
                None => open_reader(&path, key.as_ref()).map_err(ApiError::internal)?,
            };
            // A panic in `f` is this read's error: the connection goes
            // back to the pool all the same.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&conn)))
                .unwrap_or_else(|p| Err(ApiError::internal(panic_text("a read", &*p))));
            if let Ok(mut g) = conns.lock() {
                g.push(conn);
            }
            drop(permit);
            r
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// What a caught panic says (its message when it has one).
pub(crate) fn panic_text(what: &str, p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("{what} panicked: {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One connection is open at start; more only when that many reads run
    /// at once, never more than the pool's size, and they are kept for the
    /// next reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_open_as_concurrent_reads_need_them() {
        let dir = std::env::temp_dir().join(format!("keepd-readers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.db");
        Connection::open(&path)
            .unwrap()
            .script("PRAGMA journal_mode=WAL; CREATE TABLE t(v INTEGER)")
            .unwrap();
        let readers = Arc::new(Readers::open(&path, 3, None).unwrap());
        assert_eq!(readers.open_count(), 1);
        for _ in 0..5 {
            readers
                .run(|c| c.one("SELECT count(*) FROM t", (), |r| r.get::<i64>(0)))
                .await
                .unwrap();
        }
        assert_eq!(
            readers.open_count(),
            1,
            "sequential reads share one connection"
        );
        // Four reads at once, each held until all that can run have started:
        // three run (the pool's size), the fourth waits for a permit.
        let barrier = Arc::new(std::sync::Barrier::new(3));
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (readers, barrier) = (readers.clone(), barrier.clone());
                tokio::spawn(async move {
                    readers
                        .run(move |c| {
                            if i < 3 {
                                barrier.wait();
                            }
                            c.one("SELECT 1", (), |r| r.get::<i64>(0))
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            readers.open_count(),
            3,
            "one per concurrent read, at most `readers`"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
