//! A small pool of read-only connections. A read borrows one connection on a
//! blocking thread and gives it back; nothing holds it across an `.await`.

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

impl Readers {
    pub(crate) fn open(path: &Path, n: usize) -> anyhow::Result<Readers> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(open_reader(path)?);
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
            let r = f(&conn);
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
