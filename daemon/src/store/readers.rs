//! A small pool of read-only connections. A read borrows one connection on a
//! blocking thread and gives it back; nothing holds it across an `.await`.
//!
//! Point reads (one row by primary key) skip the hand-off to a blocking
//! thread: they run on the calling thread with that thread's own read-only
//! connection (`Local`), opened on first use. The hand-off — two context
//! switches — costs more than such a read.

use super::key::DbKey;
use super::open::open_reader;
use crate::error::{ApiError, ApiResult};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

pub(crate) struct Readers {
    conns: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
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
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(open_reader(path, key)?);
        }
        Ok(Readers {
            conns: Arc::new(Mutex::new(v)),
            permits: Arc::new(Semaphore::new(n)),
        })
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
        tokio::task::spawn_blocking(move || {
            let conn = {
                let mut g = conns
                    .lock()
                    .map_err(|_| ApiError::internal("reader pool poisoned"))?;
                g.pop()
                    .ok_or_else(|| ApiError::internal("reader pool empty"))?
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
