//! The store's sessions on PostgreSQL: the writer's, the readers' (made
//! read-only), and the one that notices commits of other processes, all
//! taken from the bounded pool for the store's life.
//!
//! The `postgres` client blocks on a runtime of its own, which tokio does
//! not allow on a thread that drives async tasks: a call made there runs
//! through [`off_runtime`] (`block_in_place`, the multi-threaded runtime's
//! way to block). Reads on blocking threads and the writer's thread need
//! nothing.

use super::conn::{PgConn, Renew};
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

/// A session of the pool as the store's connection, replaced when lost
/// (`reads_only`: its queries may be run again on the new one).
pub fn session(pool: &Arc<Pool>, reads_only: bool) -> anyhow::Result<Conn> {
    let client = off_runtime(|| pool.take()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Conn::from(PgConn::new(client).renewable(Renew {
        pool: pool.clone(),
        setup: if reads_only { READ_ONLY } else { "" },
        reads_only,
    })))
}

/// Readers only read, as SQLite's are `query_only`.
const READ_ONLY: &str = "SET default_transaction_read_only = on";

/// A session that only reads.
pub fn reader(pool: &Arc<Pool>) -> anyhow::Result<Conn> {
    let c = session(pool, true)?;
    off_runtime(|| c.script(READ_ONLY)).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(c)
}
