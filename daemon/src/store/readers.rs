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
//! switches — costs more than such a read. On PostgreSQL a point read
//! borrows one of the readers' sessions on the calling thread instead; the
//! two paths share one `Shelf`, so at most `readers` sessions are open for
//! reads, and a read that finds none free waits for the next one given
//! back.

use super::key::DbKey;
use super::open::open_reader;
use super::Conn as Connection;
use crate::error::{ApiError, ApiResult};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
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
    conns: Arc<Shelf>,
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
/// connections on the calling thread instead, from the shelf the pooled
/// reads use (waiting for one given back when all are lent).
pub(crate) struct Local {
    id: u64,
    source: Arc<Source>,
    shared: Option<Arc<Shelf>>,
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
            // Waiting for a session blocks too: all of it off the runtime.
            return blocking(|| {
                let lent = shared.take(&self.source)?;
                f(lent.conn())
            });
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
            conns: Arc::new(Shelf::new(n, conns)),
            permits: Arc::new(Semaphore::new(n)),
            source: Arc::new(source),
        }
    }

    #[cfg(test)]
    fn open_count(&self) -> usize {
        self.conns.state.lock().map(|g| g.idle.len()).unwrap_or(0)
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
            let lent = conns.take(&source)?;
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(lent.conn())))
                .unwrap_or_else(|p| Err(ApiError::internal(panic_text("a read", &*p))));
            drop(lent);
            drop(permit);
            r
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// The readers' connections: those not in use, and how many are open —
/// never more than `max`. A read takes an idle one, else opens one while
/// fewer than `max` are open, else queues: a connection given back goes to
/// the read that has waited longest, so reads that wait are served in the
/// order they came and none waits longer than the reads ahead of it take.
struct Shelf {
    state: Mutex<Shelved>,
    max: usize,
}

struct Shelved {
    idle: Vec<Connection>,
    /// Open connections: idle, lent, and being opened.
    open: usize,
    /// Reads waiting for a connection, longest first.
    waiting: std::collections::VecDeque<Arc<Turn>>,
}

/// A waiting read's place in the queue: what it is given when its turn
/// comes.
struct Turn {
    given: Mutex<Option<Given>>,
    ready: Condvar,
}

enum Given {
    /// A connection given back by another read.
    Conn(Connection),
    /// Room to open one (an opening failed and left its place).
    Room,
}

/// A connection lent by the shelf; given back when dropped.
struct Lent<'a> {
    shelf: &'a Shelf,
    conn: Option<Connection>,
}

impl Lent<'_> {
    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            let next = {
                let mut st = self.shelf.lock();
                match st.waiting.pop_front() {
                    Some(turn) => Some((turn, c)),
                    None => {
                        st.idle.push(c);
                        None
                    }
                }
            };
            if let Some((turn, c)) = next {
                turn.give(Given::Conn(c));
            }
        }
    }
}

impl Turn {
    fn give(&self, g: Given) {
        *self.given.lock().unwrap_or_else(|p| p.into_inner()) = Some(g);
        self.ready.notify_one();
    }

    fn wait(&self) -> Given {
        let mut g = self.given.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(given) = g.take() {
                return given;
            }
            g = self.ready.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Shelf {
    fn new(max: usize, idle: Vec<Connection>) -> Shelf {
        Shelf {
            max: max.max(idle.len()).max(1),
            state: Mutex::new(Shelved {
                open: idle.len(),
                idle,
                waiting: std::collections::VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shelved> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks while `max` connections are lent (each for one read).
    fn take(&self, source: &Source) -> ApiResult<Lent<'_>> {
        let turn = {
            let mut st = self.lock();
            if st.waiting.is_empty() {
                if let Some(c) = st.idle.pop() {
                    return Ok(self.lend(c));
                }
            }
            if st.waiting.is_empty() && st.open < self.max {
                st.open += 1;
                None
            } else {
                let turn = Arc::new(Turn {
                    given: Mutex::new(None),
                    ready: Condvar::new(),
                });
                st.waiting.push_back(turn.clone());
                Some(turn)
            }
        };
        if let Some(turn) = turn {
            match turn.wait() {
                Given::Conn(c) => return Ok(self.lend(c)),
                Given::Room => {}
            }
        }
        match source.reader() {
            Ok(c) => Ok(self.lend(c)),
            Err(e) => {
                // Its place goes to the next waiting read, which tries
                // opening one in turn.
                let next = {
                    let mut st = self.lock();
                    let next = st.waiting.pop_front();
                    if next.is_none() {
                        st.open -= 1;
                    }
                    next
                };
                if let Some(turn) = next {
                    turn.give(Given::Room);
                }
                Err(ApiError::internal(e))
            }
        }
    }

    fn lend(&self, c: Connection) -> Lent<'_> {
        Lent {
            shelf: self,
            conn: Some(c),
        }
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
