//! A bounded set of PostgreSQL sessions (`database_pool`): at most `max`
//! open at once, opened when first needed, kept for reuse when given back
//! healthy and outside a transaction. Blocking, for the store's own
//! threads; a session is never held across an `.await`.

use super::connect::{PgError, Target};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub struct Pool {
    target: Target,
    max: usize,
    /// How long `get` waits for a session when all are in use.
    wait: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<postgres::Client>,
    /// Sessions open: idle ones and those handed out.
    open: usize,
}

/// A session taken from the pool; given back when dropped.
pub struct Session<'a> {
    pool: &'a Pool,
    client: Option<postgres::Client>,
}

impl Pool {
    pub fn new(target: Target, max: usize) -> Pool {
        let wait = target.statement_timeout;
        Pool {
            target,
            max: max.max(1),
            wait,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sessions open now (idle and in use).
    pub fn open(&self) -> usize {
        self.lock().open
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A session: an idle one, a new one while fewer than `max` are open,
    /// else the first given back within the wait.
    pub fn get(&self) -> Result<Session<'_>, PgError> {
        let deadline = Instant::now() + self.wait;
        let mut st = self.lock();
        loop {
            if let Some(client) = st.idle.pop() {
                if !client.is_closed() {
                    return Ok(Session {
                        pool: self,
                        client: Some(client),
                    });
                }
                st.open -= 1;
                continue;
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.target.connect() {
                    Ok(client) => Ok(Session {
                        pool: self,
                        client: Some(client),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PgError(format!(
                    "all {} PostgreSQL sessions (database_pool) stayed in use for {} s",
                    self.max,
                    self.wait.as_secs()
                )));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Pool {
    /// A session kept for good (the store's writer and readers): counted
    /// against `max` like the others, never given back.
    pub fn take(&self) -> Result<postgres::Client, PgError> {
        let mut s = self.get()?;
        let client = s.client.take().expect("held until drop");
        drop(s);
        // The session was counted as open when made; it stays so.
        Ok(client)
    }

    /// A session taken for good was lost (closed): no longer counted.
    pub fn forget(&self) {
        let mut st = self.lock();
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }
}

impl std::ops::Deref for Session<'_> {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        self.client.as_ref().expect("held until drop")
    }
}

impl std::ops::DerefMut for Session<'_> {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("held until drop")
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut st = self.pool.lock();
        // A session that died, or is given back by a panicking thread, is
        // closed rather than handed to the next caller (a `postgres`
        // transaction rolls back when its guard drops, so none is open).
        let reusable = !client.is_closed() && !std::thread::panicking();
        if reusable {
            st.idle.push(client);
        } else {
            st.open -= 1;
        }
        drop(st);
        self.pool.freed.notify_one();
    }
}
