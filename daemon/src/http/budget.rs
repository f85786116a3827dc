//! Budgets the server keeps across connections: bytes of request bodies
//! read whole and held in memory at once (`Limits::max_body_bytes_in_flight`),
//! and open connections per peer address (`Limits::max_connections_per_ip`).
//!
//! A body is charged before it is read: its declared length up front (over
//! the budget: 429 at once, nothing read), a chunked body chunk by chunk as
//! it arrives. The charge is given back when the request is done. The
//! last eighth of the budget is kept for small bodies (up to 64 KiB): a few
//! clients sending the largest bodies can't stop everyone else's requests.

use crate::error::ApiError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bodies up to this size may use the budget's last eighth.
pub const SMALL_BODY: u64 = 64 << 10;

/// Bytes in flight under a cap, shared by every request.
#[derive(Debug)]
pub struct ByteBudget {
    max: u64,
    /// What bodies larger than `SMALL_BODY` may use together.
    max_large: u64,
    used: AtomicU64,
}

impl ByteBudget {
    pub fn new(max: u64) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            max,
            max_large: max - max / 8,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The largest body that can be charged.
    pub fn largest(&self) -> u64 {
        self.max_large
    }

    /// Takes `n` bytes for a body that will hold `total`.
    fn take(&self, n: u64, total: u64) -> bool {
        if n == 0 {
            return true;
        }
        let cap = if total > SMALL_BODY {
            self.max_large
        } else {
            self.max
        };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= cap)
            })
            .is_ok()
    }

    /// A charge of `n` bytes (None: over the budget).
    pub fn charge(self: &Arc<Self>, n: u64) -> Option<Charge> {
        self.take(n, n).then(|| Charge {
            budget: self.clone(),
            n,
        })
    }
}

/// Bytes charged to a `ByteBudget`, given back on drop.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<ByteBudget>,
    n: u64,
}

impl Charge {
    /// Charges until at least `total` bytes are held; false (and nothing
    /// more charged) when the budget is spent.
    pub fn grow_to(&mut self, total: u64) -> bool {
        if total <= self.n {
            return true;
        }
        // Chunked bodies grow in steps of at least 64 KiB: fewer atomic
        // updates, and a small body never costs more than that.
        let want = (total - self.n).max(64 << 10);
        if self.budget.take(want, self.n + want) {
            self.n += want;
            return true;
        }
        let need = total - self.n;
        if self.budget.take(need, total) {
            self.n += need;
            return true;
        }
        false
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// The answer when the body budget is spent: the client may retry.
pub fn busy() -> ApiError {
    ApiError::TooManyRequests {
        message: "The server is busy receiving other requests, please try again later.".into(),
        retry_after: 1,
    }
}

/// Reads a body whole under `limit` bytes, charged to `budget` before it
/// is read: the declared length up front, else chunk by chunk. Over the
/// budget: 429, and the rest is not read.
pub(crate) async fn read_charged<S>(
    mut body: S,
    limit: u64,
    declared: Option<u64>,
    budget: &Arc<ByteBudget>,
) -> Result<(bytes::Bytes, Charge), ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin,
{
    use futures_util::StreamExt;
    // A body larger than the whole budget could never be held: too large.
    let limit = limit.min(budget.largest());
    let up_front = declared.filter(|d| *d <= limit).unwrap_or(0);
    let mut charge = budget.charge(up_front).ok_or_else(busy)?;
    let mut buf = bytes::BytesMut::with_capacity(usize::try_from(up_front).unwrap_or(0));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                ApiError::bad("Timed out reading the request body.")
            } else {
                ApiError::bad("Failed to read the request body.")
            }
        })?;
        let total = (buf.len() + chunk.len()) as u64;
        if total > limit {
            return Err(ApiError::TooLarge("Request entity too large.".into()));
        }
        if !charge.grow_to(total) {
            return Err(busy());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf.freeze(), charge))
}

/// Open connections per peer address under a cap.
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    /// Peers not counted (trusted proxies: many clients behind one address).
    exempt: Vec<(IpAddr, u8)>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection of an address; uncounted on drop.
#[derive(Debug)]
pub struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(max: usize, exempt: Vec<(IpAddr, u8)>) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            exempt,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        match self.open.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A slot for a new connection from `peer`: Ok(None) when the peer is
    /// not counted, Err(()) when it already holds `max` connections.
    #[allow(clippy::result_unit_err)]
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Option<IpSlot>, ()> {
        let ip = canonical(peer);
        if self.max == 0 || self.exempt.iter().any(|n| in_net(ip, *n)) {
            return Ok(None);
        }
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return Err(());
        }
        *n += 1;
        Ok(Some(IpSlot {
            table: self.clone(),
            ip,
        }))
    }

    /// Connections counted for `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.lock().get(&canonical(ip)).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    crate::auth::limiter::canonical(ip)
}

fn in_net(ip: IpAddr, net: (IpAddr, u8)) -> bool {
    crate::auth::limiter::in_net(ip, net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back() {
        let b = ByteBudget::new(800 << 10);
        let mut c = b.charge(10).expect("charge");
        assert!(c.grow_to(600 << 10));
        assert!(b.charge(200 << 10).is_none());
        assert!(!c.grow_to(900 << 10));
        // The last eighth is for small bodies.
        assert!(b.charge(150 << 10).is_none());
        let small = b.charge(60 << 10).expect("a small body");
        drop(small);
        drop(c);
        assert_eq!(b.used(), 0);
        assert!(b.charge(700 << 10).is_some());
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn per_ip_cap() {
        let t = PerIp::new(2, vec![("10.0.0.0".parse().unwrap(), 8)]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let s1 = t.admit(a).unwrap().unwrap();
        let _s2 = t.admit(a).unwrap().unwrap();
        assert!(t.admit(a).is_err());
        assert!(t.admit("192.0.2.2".parse().unwrap()).unwrap().is_some());
        // A trusted proxy is not counted.
        for _ in 0..5 {
            assert!(t.admit("10.1.2.3".parse().unwrap()).unwrap().is_none());
        }
        drop(s1);
        assert_eq!(t.open(a), 1);
        assert!(t.admit(a).unwrap().is_some());
    }
}
