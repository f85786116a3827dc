//! A small pool of read-only connections. A read borrows one connection on a
//! blocking thread and gives it back; nothing holds it across an `.await`.
//! On SQLite no connection is opened with the store (the writer has proven
//! the file and its key already, and a new connection's first statement
//! makes SQLite parse the whole schema: a cost start-up need not pay); one
//! is opened with the first read, the others only when that many reads
//! first run at once, so an idle daemon does not hold `readers`
//! connections' memory (about 120 KiB each). On PostgreSQL one session is
//! taken with the store (it proves the role may read).
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

/// Where read-only connections come from.
pub(crate) enum Source {
    /// The SQLite file, opened read-only with its key.
    Sqlite {
        path: std::path::PathBuf,
        key: Option<DbKey>,
    },
    /// Sessions of the bounded PostgreSQL pool, made read-only.
    #[cfg(feature = "postgres")]
    Postgres(Arc<super::postgres::pool::Pool>),
}

impl Source {
    pub(crate) fn reader(&self) -> anyhow::Result<Connection> {
        match self {
            Source::Sqlite { path, key } => open_reader(path, key.as_ref()),
            #[cfg(feature = "postgres")]
            Source::Postgres(pool) => super::postgres::store::reader(pool),
        }
    }
}

pub(crate) struct Readers {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    source: Arc<Source>,
}

static STORE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    static LOCAL: std::cell::RefCell<Option<(u64, Connection)>> =
        const { std::cell::RefCell::new(None) };
}

/// Each thread's own read-only connection (SQLite). On PostgreSQL, whose
/// sessions are few and bounded, a point read borrows one of the readers'
/// connections on the calling thread instead.
pub(crate) struct Local {
    id: u64,
    source: Arc<Source>,
    shared: Option<Arc<Mutex<Vec<Connection>>>>,
}

impl Local {
    pub(crate) fn new(readers: &Readers) -> Local {
        let shared = match &*readers.source {
            Source::Sqlite { .. } => None,
            #[cfg(feature = "postgres")]
            Source::Postgres(_) => Some(readers.conns.clone()),
        };
        Local {
            id: STORE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            source: readers.source.clone(),
            shared,
        }
    }

    pub(crate) fn run<T>(&self, f: impl FnOnce(&Connection) -> ApiResult<T>) -> ApiResult<T> {
        if let Some(shared) = &self.shared {
            let pooled = shared
                .lock()
                .map_err(|_| ApiError::internal("reader pool poisoned"))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => self.source.reader().map_err(ApiError::internal)?,
            };
            let r = blocking(|| f(&conn));
            if let Ok(mut g) = shared.lock() {
                g.push(conn);
            }
            return r;
        }
        LOCAL.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(ApiError::internal)?;
            if slot.as_ref().map(|(id, _)| *id) != Some(self.id) {
                let conn = self.source.reader().map_err(ApiError::internal)?;
                *slot = Some((self.id, conn));
            }
            match slot.as_ref() {
                Some((_, conn)) => f(conn),
                None => Err(ApiError::internal("no local reader")),
            }
        })
    }
}

/// Runs `f`, which may block on PostgreSQL's client, where that is allowed.
#[inline]
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(feature = "postgres")]
    return super::postgres::store::off_runtime(f);
    #[cfg(not(feature = "postgres"))]
    f()
}

impl Readers {
    /// The SQLite file's readers: none opened yet.
    pub(crate) fn open(path: &Path, n: usize, key: Option<&DbKey>) -> Readers {
        Readers::with(
            Source::Sqlite {
                path: path.to_path_buf(),
                key: key.cloned(),
            },
            n,
            Vec::new(),
        )
    }

    /// Readers from `source`, one connection opened now.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn from_source(source: Source, n: usize) -> anyhow::Result<Readers> {
        let first = source.reader()?;
        Ok(Readers::with(source, n, vec![first]))
    }

    fn with(source: Source, n: usize, conns: Vec<Connection>) -> Readers {
        Readers {
            conns: Arc::new(Mutex::new(conns)),
            permits: Arc::new(Semaphore::new(n)),
            source: Arc::new(source),
        }
    }

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
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = conns
                .lock()
                .map_err(|_| ApiError::internal("reader pool poisoned"))?
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => source.reader().map_err(ApiError::internal)?,
            };
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

    /// No connection is open at start; one with the first read, more only
    /// when that many reads run at once, never more than the pool's size,
    /// and they are kept for the next reads.
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
        let readers = Arc::new(Readers::open(&path, 3, None));
        assert_eq!(readers.open_count(), 0, "nothing opened before a read");
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
