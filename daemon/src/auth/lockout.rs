//! Account lockout (PocketBase has none): after `max_failures` failed
//! logins for one account within `window`, further attempts for it are
//! refused (429 with Retry-After) for a delay that doubles with each
//! lockout, from `base` up to `max` — so a guesser is slowed to a crawl,
//! but the owner is never locked out for longer than `max`. A successful
//! login (after the delay), a password reset or a superuser clears it.
//!
//! Only existing accounts are tracked (unknown identities are left to the
//! per-address rate limits), in a fixed-capacity table; when it is full,
//! entries that are neither locked nor recent make room first.
//!
//! Time is passed in (seconds from any fixed origin) so tests set it.

use std::sync::Mutex;

pub const CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window: u64,
    pub base: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures in the current window.
    failures: u32,
    window_start: u64,
    /// Locked until (0: not locked).
    until: u64,
    /// Lockouts so far (the delay doubles with each).
    lockouts: u32,
    last: u64,
}

type Key = (heapless::String<32>, heapless::String<32>);
type Table = heapless::index_map::FnvIndexMap<Key, Entry, CAPACITY>;

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Counted,
    /// The account is now locked for this many seconds.
    Locked(u64),
}

pub struct Lockout {
    policy: Mutex<Policy>,
    table: Mutex<Box<Table>>,
}

fn key(collection_id: &str, record_id: &str) -> Option<Key> {
    let c = heapless::String::try_from(collection_id).ok()?;
    let r = heapless::String::try_from(record_id).ok()?;
    Some((c, r))
}

impl Policy {
    /// From the settings shape; None when a value is missing or out of range.
    pub fn from_json(v: &serde_json::Value) -> Option<Policy> {
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let p = Policy {
            max_failures: u32::try_from(n("maxFailures")?).ok()?,
            window: n("windowSeconds")?,
            base: n("baseSeconds")?,
            max: n("maxSeconds")?,
        };
        (p.window >= 1 && p.base >= 1 && p.max >= p.base && p.max <= 86_400 && p.window <= 86_400)
            .then_some(p)
    }
}

impl From<crate::settings::Lockout> for Policy {
    fn from(l: crate::settings::Lockout) -> Policy {
        Policy {
            max_failures: u32::try_from(l.max_failures).unwrap_or(u32::MAX),
            window: l.window_seconds,
            base: l.base_seconds,
            max: l.max_seconds,
        }
    }
}

impl From<Policy> for crate::settings::Lockout {
    fn from(p: Policy) -> crate::settings::Lockout {
        crate::settings::Lockout {
            max_failures: u64::from(p.max_failures),
            window_seconds: p.window,
            base_seconds: p.base,
            max_seconds: p.max,
        }
    }
}

impl Lockout {
    pub fn new(policy: Policy) -> Lockout {
        Lockout {
            policy: Mutex::new(policy),
            table: Mutex::new(Box::default()),
        }
    }

    pub fn policy(&self) -> Policy {
        match self.policy.lock() {
            Ok(p) => *p,
            Err(p) => *p.into_inner(),
        }
    }

    /// Replaces the policy (the settings changed); current entries stay.
    pub fn set_policy(&self, p: Policy) {
        match self.policy.lock() {
            Ok(mut g) => *g = p,
            Err(e) => *e.into_inner() = p,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<Table>> {
        match self.table.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Seconds the account stays locked (None: not locked).
    pub fn locked(&self, collection_id: &str, record_id: &str, now: u64) -> Option<u64> {
        let k = key(collection_id, record_id)?;
        let t = self.lock();
        let e = t.get(&k)?;
        (e.until > now).then(|| e.until - now)
    }

    /// Records a failed login.
    pub fn fail(&self, collection_id: &str, record_id: &str, now: u64) -> Failure {
        let p = self.policy();
        if p.max_failures == 0 {
            return Failure::Counted;
        }
        let Some(k) = key(collection_id, record_id) else {
            return Failure::Counted;
        };
        let mut t = self.lock();
        if t.get(&k).is_none() {
            if t.len() >= CAPACITY {
                // Make room: entries neither locked nor within their window.
                t.retain(|_, e| e.until > now || now < e.window_start + p.window);
            }
            if t.len() >= CAPACITY {
                // Still full: the oldest unlocked entry goes; if every entry
                // is locked, this failure isn't tracked (the rate limits
                // still apply to its address).
                let victim = t
                    .iter()
                    .filter(|(_, e)| e.until <= now)
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone());
                match victim {
                    Some(v) => {
                        t.swap_remove(&v);
                    }
                    None => return Failure::Counted,
                }
            }
            let _ = t.insert(
                k.clone(),
                Entry {
                    failures: 0,
                    window_start: now,
                    until: 0,
                    lockouts: 0,
                    last: now,
                },
            );
        }
        let Some(e) = t.get_mut(&k) else {
            return Failure::Counted;
        };
        e.last = now;
        if now >= e.window_start + p.window {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures += 1;
        if e.failures >= p.max_failures {
            let factor = 1u64 << e.lockouts.min(20);
            let delay = p.base.saturating_mul(factor).min(p.max).max(1);
            e.lockouts += 1;
            e.until = now + delay;
            e.failures = 0;
            e.window_start = now;
            return Failure::Locked(delay);
        }
        Failure::Counted
    }

    /// Clears an account (a successful login, a password reset, a superuser
    /// unlock). Returns whether it was locked.
    pub fn clear(&self, collection_id: &str, record_id: &str, now: u64) -> bool {
        let Some(k) = key(collection_id, record_id) else {
            return false;
        };
        self.lock().swap_remove(&k).is_some_and(|e| e.until > now)
    }

    /// Accounts locked now: (collection id, record id, seconds left).
    pub fn list(&self, now: u64) -> Vec<(String, String, u64)> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|((c, r), e)| (c.to_string(), r.to_string(), e.until - now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_failures: 3,
            window: 900,
            base: 60,
            max: 900,
        }
    }

    #[test]
    fn locks_after_n_failures_with_a_growing_bounded_delay() {
        let l = Lockout::new(policy());
        assert_eq!(l.fail("c", "r", 0), Failure::Counted);
        assert_eq!(l.fail("c", "r", 1), Failure::Counted);
        assert_eq!(l.fail("c", "r", 2), Failure::Locked(60));
        assert_eq!(l.locked("c", "r", 3), Some(59));
        assert_eq!(l.locked("c", "other", 3), None);
        // After the delay: free again; the next lockout lasts twice as long.
        assert_eq!(l.locked("c", "r", 62), None);
        l.fail("c", "r", 70);
        l.fail("c", "r", 71);
        assert_eq!(l.fail("c", "r", 72), Failure::Locked(120));
        let mut now = 72;
        let mut last = 0;
        for _ in 0..10 {
            now += 1000;
            l.fail("c", "r", now);
            l.fail("c", "r", now);
            if let Failure::Locked(d) = l.fail("c", "r", now) {
                last = d;
            }
        }
        assert_eq!(last, 900, "the delay is capped");
        // A clear ends it.
        assert!(l.clear("c", "r", now));
        assert_eq!(l.locked("c", "r", now), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let l = Lockout::new(policy());
        l.fail("c", "r", 0);
        l.fail("c", "r", 1);
        assert_eq!(l.fail("c", "r", 1000), Failure::Counted);
        assert_eq!(l.locked("c", "r", 1000), None);
    }

    #[test]
    fn fixed_capacity() {
        let l = Lockout::new(policy());
        for i in 0..(CAPACITY * 2) {
            l.fail("c", &format!("r{i}"), 10);
            assert!(l.lock().len() <= CAPACITY);
        }
        // Locked entries are kept while others make room.
        let l = Lockout::new(policy());
        for _ in 0..3 {
            l.fail("c", "victim", 0);
        }
        for i in 0..(CAPACITY * 2) {
            l.fail("c", &format!("r{i}"), 10);
        }
        assert!(l.locked("c", "victim", 10).is_some());
    }
}
