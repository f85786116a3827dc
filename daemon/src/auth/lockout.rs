//! Account lockout (PocketBase has none): after `max_failures` failed
//! logins for one account within `window`, further attempts for it are
//! refused (429 with Retry-After) for a delay that doubles with each
//! lockout, from `base` up to `max` — so a guesser is slowed to a crawl,
//! but the owner is never locked out for longer than `max`. A successful
//! login (after the delay), a password reset or a superuser clears it.
//!
//! Only existing accounts are tracked (unknown identities are left to the
//! per-address rate limits), in a fixed-capacity table. The table can't be
//! flushed: whoever fills it (say with self-registered accounts, each
//! locked on purpose) neither turns off the counting of another account's
//! failures nor wipes what was counted. When it is full, stale entries go
//! first, then the least recent unlocked one, then — only when every entry
//! is locked — the least escalated lock; what an entry pushed out knew is
//! folded into a fixed-size sketch (two rows of cells indexed by a keyed
//! hash, each cell the maximum of what was folded into it), and an
//! account's next failure brings it back into the table from there: its
//! count, its lock and its escalation, never less than they were. A
//! collision can only make an account's estimate higher (locked sooner),
//! never lower. `locked` reads the table: an account pushed out while
//! locked (which takes a table of locks more escalated than its own) gets
//! one more attempt checked, and its failure restores the lock.
//!
//! Time is passed in (seconds from any fixed origin) so tests set it.

use std::hash::BuildHasher;
use std::sync::Mutex;

pub const CAPACITY: usize = 1024;
/// Cells per row of the sketch (two rows).
const CELLS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_failures: u32,
    pub window: u64,
    pub base: u64,
    pub max: u64,
}

#[derive(Debug, Clone, Copy, Default)]
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

impl Entry {
    fn locked(&self, now: u64) -> bool {
        self.until > now
    }
    /// Failures that still count at `now`.
    fn live_failures(&self, now: u64, p: &Policy) -> u32 {
        if now < self.window_start.saturating_add(p.window) {
            self.failures
        } else {
            0
        }
    }
    /// Neither locked nor counting: nothing worth keeping.
    fn stale(&self, now: u64, p: &Policy) -> bool {
        !self.locked(now) && self.live_failures(now, p) == 0
    }
}

type Key = (heapless::String<32>, heapless::String<32>);
type Table = heapless::index_map::FnvIndexMap<Key, Entry, CAPACITY>;

/// What entries pushed out of the table knew, per cell: the maximum of
/// the failures counting, the lock's end and the lockouts folded into it.
struct Sketch {
    seed: std::hash::RandomState,
    cells: [[Entry; CELLS]; 2],
}

impl Sketch {
    fn new() -> Sketch {
        Sketch {
            seed: std::hash::RandomState::new(),
            cells: [[Entry::default(); CELLS]; 2],
        }
    }

    fn slots(&self, k: &Key) -> [usize; 2] {
        let h = self.seed.hash_one(k);
        [(h as usize) % CELLS, ((h >> 32) as usize) % CELLS]
    }

    fn fold(&mut self, k: &Key, e: &Entry, now: u64, p: &Policy) {
        let slots = self.slots(k);
        for (row, i) in slots.into_iter().enumerate() {
            let c = &mut self.cells[row][i];
            if c.stale(now, p) {
                *c = Entry::default();
            }
            c.until = c.until.max(e.until);
            c.lockouts = c.lockouts.max(e.lockouts);
            let f = e.live_failures(now, p);
            if f > 0 {
                if c.live_failures(now, p) > 0 {
                    c.failures = c.failures.max(f);
                    c.window_start = c.window_start.max(e.window_start);
                } else {
                    c.failures = f;
                    c.window_start = e.window_start;
                }
            }
        }
    }

    /// The least of the two cells: at least what was folded for `k`.
    fn estimate(&self, k: &Key, now: u64, p: &Policy) -> Entry {
        let [a, b] = self.slots(k);
        let live = |c: &Entry| {
            if c.stale(now, p) {
                Entry::default()
            } else {
                *c
            }
        };
        let (a, b) = (live(&self.cells[0][a]), live(&self.cells[1][b]));
        let (fa, fb) = (a.live_failures(now, p), b.live_failures(now, p));
        let (failures, window_start) = match (fa, fb) {
            (0, _) | (_, 0) => (0, now),
            _ if fa <= fb => (fa, a.window_start),
            _ => (fb, b.window_start),
        };
        Entry {
            failures,
            window_start,
            until: a.until.min(b.until),
            lockouts: a.lockouts.min(b.lockouts),
            last: now,
        }
    }
}

struct State {
    table: Table,
    sketch: Sketch,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Counted,
    /// The account is now locked for this many seconds.
    Locked(u64),
}

pub struct Lockout {
    policy: Mutex<Policy>,
    /// Allocated (about 190 KiB) with the first failed login.
    state: Mutex<Option<Box<State>>>,
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
            state: Mutex::new(None),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Box<State>>> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Seconds the account stays locked (None: not locked).
    pub fn locked(&self, collection_id: &str, record_id: &str, now: u64) -> Option<u64> {
        let k = key(collection_id, record_id)?;
        let st = self.lock();
        let e = st.as_ref()?.table.get(&k)?;
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
        let mut st = self.lock();
        let State { table, sketch } = &mut **st.get_or_insert_with(|| {
            Box::new(State {
                table: Table::new(),
                sketch: Sketch::new(),
            })
        });
        if !table.contains_key(&k) {
            if table.len() >= CAPACITY {
                // Make room: entries neither locked nor counting go.
                table.retain(|_, e| !e.stale(now, &p));
            }
            if table.len() >= CAPACITY {
                // Still full: the least recent unlocked entry goes, else the
                // least escalated lock; what it knew is kept in the sketch.
                let victim = table
                    .iter()
                    .min_by_key(|(_, e)| {
                        if e.locked(now) {
                            (1, u64::from(e.lockouts), e.until)
                        } else {
                            (0, e.last, 0)
                        }
                    })
                    .map(|(k, e)| (k.clone(), *e));
                if let Some((vk, ve)) = victim {
                    sketch.fold(&vk, &ve, now, &p);
                    table.swap_remove(&vk);
                }
            }
            // Back from the sketch: never less than what was counted.
            let e = sketch.estimate(&k, now, &p);
            if table.insert(k.clone(), e).is_err() {
                return Failure::Counted;
            }
            if e.locked(now) {
                // A lock the account had when it was pushed out.
                return Failure::Locked(e.until - now);
            }
        }
        let Some(e) = table.get_mut(&k) else {
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
        self.lock()
            .as_mut()
            .and_then(|st| st.table.swap_remove(&k))
            .is_some_and(|e| e.until > now)
    }

    /// Accounts locked now: (collection id, record id, seconds left).
    pub fn list(&self, now: u64) -> Vec<(String, String, u64)> {
        let st = self.lock();
        let Some(st) = st.as_ref() else {
            return Vec::new();
        };
        st.table
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|((c, r), e)| (c.to_string(), r.to_string(), e.until - now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table and sketch are allocated with the first failure, not
    /// before: reads of an untouched lockout keep nothing resident.
    #[test]
    fn state_allocated_with_the_first_failure() {
        let l = Lockout::new(policy());
        assert_eq!(l.locked("c", "r", 100), None);
        assert!(!l.clear("c", "r", 100));
        assert!(l.list(100).is_empty());
        assert!(l.lock().is_none());
        assert_eq!(l.fail("c", "r", 100), Failure::Counted);
        assert!(l.lock().is_some());
    }

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
            assert!(l.lock().as_ref().map_or(0, |s| s.table.len()) <= CAPACITY);
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

    /// Fills the table with `CAPACITY` locked accounts ("f0"…), as an
    /// attacker with self-registered accounts would, at time `at`.
    fn filled_with_locks(at: u64) -> Lockout {
        let l = Lockout::new(policy());
        for i in 0..CAPACITY {
            for _ in 0..3 {
                l.fail("c", &format!("f{i}"), at);
            }
        }
        assert_eq!(l.lock().as_ref().map_or(0, |s| s.table.len()), CAPACITY);
        assert_eq!(l.list(at).len(), CAPACITY, "every entry is locked");
        l
    }

    #[test]
    fn a_table_full_of_locked_accounts_still_counts_a_new_one() {
        let l = filled_with_locks(0);
        assert_eq!(l.fail("c", "victim", 10), Failure::Counted);
        assert_eq!(l.fail("c", "victim", 11), Failure::Counted);
        assert_eq!(
            l.fail("c", "victim", 12),
            Failure::Locked(60),
            "lockout still works for an account outside the full table"
        );
        assert_eq!(l.locked("c", "victim", 13), Some(59));
        assert!(l.lock().as_ref().map_or(0, |s| s.table.len()) <= CAPACITY);
    }

    #[test]
    fn churn_through_a_full_table_does_not_reset_a_count() {
        // Each failure for the victim is followed by one for a fresh
        // account, which pushes the victim's entry out of the table.
        let l = filled_with_locks(0);
        let mut last = Failure::Counted;
        for i in 0..3 {
            last = l.fail("c", "victim", 10 + i);
            l.fail("c", &format!("fresh{i}"), 10 + i);
        }
        assert_eq!(last, Failure::Locked(60));
        assert!(l.locked("c", "victim", 13).is_some());
    }

    #[test]
    fn a_lock_pushed_out_of_the_table_comes_back_at_the_next_failure() {
        let l = Lockout::new(policy());
        for _ in 0..3 {
            l.fail("c", "victim", 0);
        }
        // Locks everywhere else, as escalated and ending later: the
        // victim's is the one to go.
        for i in 0..CAPACITY {
            for _ in 0..3 {
                l.fail("c", &format!("f{i}"), 1);
            }
        }
        let victim = key("c", "victim").unwrap();
        assert!(
            !l.lock()
                .as_ref()
                .is_some_and(|s| s.table.contains_key(&victim)),
            "pushed out"
        );
        // Its next failure restores the lock it had (until 60).
        assert_eq!(l.fail("c", "victim", 5), Failure::Locked(55));
        assert_eq!(l.locked("c", "victim", 6), Some(54));
    }
}
