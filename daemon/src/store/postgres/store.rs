//! The store's sessions on PostgreSQL: the writer's, the readers' (made
//! read-only), and the one that notices commits of other processes, all
//! taken from the bounded pool for the store's life.
//!
//! The `postgres` client blocks on a runtime of its own, which tokio does
//! not allow on a thread that drives async tasks: a call made there runs
//! through [`off_runtime`] (`block_in_place`, the multi-threaded runtime's
//! way to block). Reads on blocking threads and the writer's thread need
//! nothing.

use super::conn::PgConn;
use super::pool::Pool;
use crate::store::Conn;
use std::sync::Arc;

/// Runs `f`, which blocks on PostgreSQL, where blocking is allowed.
pub fn off_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A session of the pool as the store's connection.
pub fn session(pool: &Pool) -> anyhow::Result<Conn> {
    let client = off_runtime(|| pool.take()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Conn::from(PgConn::new(client)))
}

/// A session that only reads (`default_transaction_read_only`, as SQLite's
/// readers are `query_only`).
pub fn reader(pool: &Arc<Pool>) -> anyhow::Result<Conn> {
    let c = session(pool)?;
    off_runtime(|| c.script("SET default_transaction_read_only = on"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(c)
}
