//! The answer cache of record lists: a page of a list, as the JSON bytes
//! sent, reused until the database next changes.
//!
//! Safe by construction rather than by care:
//! - **Key = everything the answer can depend on besides the stored data**:
//!   the collection, the list parameters, and the whole of what rules read
//!   about the request — the principal (its kind, auth collection and every
//!   column of its auth record as loaded for this request), the method, the
//!   context, every query parameter (`filter`, `sort`, `expand`, `fields`,
//!   `@request.query.*`) and the headers rules were given. The key is kept
//!   whole and compared byte for byte (the hash only finds the slot).
//! - **Stored data = one generation**: the store bumps its generation after
//!   every COMMIT that changed a row (any table: rules read other
//!   collections), after a schema reload and after a settings change, and
//!   when reading it finds that another process committed
//!   (`Store::generation`, SQLite's `data_version`). A
//!   caller reads the generation *before* it reads anything else; an entry
//!   made under an older generation is never served, and the cache drops
//!   them all when it sees a newer one.
//! - **Bypassed when unsure**: clock macros, `strftime` or `random` in the
//!   filter or sort, or in any rule or view query of the schema (see
//!   `filter::volatile` and `Schema::reads_clock`); a collection that is not
//!   the current schema's (the rule tester's clone); the system principal.
//! - **Bounded**: keys and values are counted in bytes against
//!   `list_cache_bytes`; least recently used entries go first; an entry over
//!   an eighth of the cap is not kept.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bookkeeping charged per entry on top of its key and value.
const ENTRY_OVERHEAD: usize = 128;

pub struct ListCache {
    cap: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// The generation every entry was made under.
    generation: u64,
    map: HashMap<Arc<[u8]>, Entry>,
    /// Use order: tick → key (the smallest is the least recently used).
    order: BTreeMap<u64, Arc<[u8]>>,
    tick: u64,
    bytes: usize,
}

struct Entry {
    value: Bytes,
    tick: u64,
}

/// Counters (for tests and the benchmark notes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
    pub entries: usize,
    pub bytes: usize,
}

fn charge(key: &[u8], value: &Bytes) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl ListCache {
    /// A cache of at most `cap` bytes (0: off).
    pub fn new(cap: usize) -> ListCache {
        ListCache {
            cap,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cap > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The answer stored for `key` under `generation` (the store's current
    /// one, read before anything else of the request).
    pub fn get(&self, key: &[u8], generation: u64) -> Option<Bytes> {
        let mut g = self.lock();
        if g.generation != generation {
            if generation > g.generation {
                g.clear(generation);
            }
            drop(g);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let Inner {
            map, order, tick, ..
        } = &mut *g;
        let Some((k, e)) = map.get_key_value(key) else {
            drop(g);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let k = k.clone();
        let old = e.tick;
        *tick += 1;
        let now = *tick;
        order.remove(&old);
        order.insert(now, k);
        let e = map.get_mut(key).expect("entry just found");
        e.tick = now;
        let v = e.value.clone();
        drop(g);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(v)
    }

    /// Keeps `value` for `key`, made under `generation` (read before the
    /// answer was computed). Dropped when a newer generation was seen or
    /// the entry is over an eighth of the cap.
    pub fn put(&self, key: &[u8], value: Bytes, generation: u64) {
        let need = charge(key, &value);
        if need > self.cap / 8 {
            return;
        }
        let mut g = self.lock();
        if generation < g.generation {
            return;
        }
        if generation > g.generation {
            g.clear(generation);
        }
        if let Some(old) = g.map.remove(key) {
            g.order.remove(&old.tick);
            g.bytes -= charge(key, &old.value);
        }
        while g.bytes + need > self.cap {
            let Some((_, k)) = g.order.pop_first() else {
                break;
            };
            if let Some(e) = g.map.remove(&k) {
                g.bytes -= charge(&k, &e.value);
            }
        }
        g.tick += 1;
        let tick = g.tick;
        let k: Arc<[u8]> = Arc::from(key);
        g.order.insert(tick, k.clone());
        g.map.insert(k, Entry { value, tick });
        g.bytes += need;
    }

    /// Counts a request the cache stood aside for.
    pub fn bypass(&self) {
        self.bypassed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Stats {
        let g = self.lock();
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            entries: g.map.len(),
            bytes: g.bytes,
        }
    }
}

impl Inner {
    fn clear(&mut self, generation: u64) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
        self.generation = generation;
    }
}

/// A key built from length-prefixed parts (no part can run into the next).
#[derive(Default)]
pub struct KeyBuf(pub Vec<u8>);

impl KeyBuf {
    pub fn part(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u64).to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn hits_only_the_same_key_and_generation() {
        let c = ListCache::new(1 << 20);
        c.put(b"a", v(10), 1);
        assert_eq!(c.get(b"a", 1).as_deref(), Some(&v(10)[..]));
        assert!(c.get(b"b", 1).is_none());
        // A newer generation: every entry is gone.
        assert!(c.get(b"a", 2).is_none());
        assert_eq!(c.stats().entries, 0);
        // An answer computed under an older generation is not kept.
        c.put(b"a", v(10), 1);
        assert!(c.get(b"a", 2).is_none());
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn the_byte_cap_holds_under_many_distinct_keys() {
        let cap = 64 * 1024;
        let c = ListCache::new(cap);
        for i in 0..10_000u32 {
            let key = format!("key-{i}-{}", "k".repeat((i % 200) as usize));
            c.put(key.as_bytes(), v(100 + (i as usize % 3000)), 7);
            let s = c.stats();
            assert!(s.bytes <= cap, "{} bytes over the cap {cap}", s.bytes);
        }
        let s = c.stats();
        assert!(s.entries > 10, "the cache keeps entries: {s:?}");
        // The most recent is there, the first long gone.
        let last = format!("key-9999-{}", "k".repeat(9999 % 200));
        assert!(c.get(last.as_bytes(), 7).is_some());
        assert!(c.get(b"key-0-", 7).is_none());
    }

    #[test]
    fn least_recently_used_goes_first_and_big_entries_are_not_kept() {
        let c = ListCache::new(8 * (1000 + ENTRY_OVERHEAD + 1));
        for k in [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"h"] {
            c.put(k, v(1000), 1);
        }
        assert!(c.get(b"a", 1).is_some()); // a is used again
        c.put(b"i", v(1000), 1); // someone must go: b, not a
        assert!(c.get(b"a", 1).is_some());
        assert!(c.get(b"b", 1).is_none());
        // Over an eighth of the cap: not kept.
        c.put(b"big", v(2000), 1);
        assert!(c.get(b"big", 1).is_none());
        assert!(c.stats().bytes <= 8 * (1000 + ENTRY_OVERHEAD + 1));
    }

    #[test]
    fn off_at_zero() {
        let c = ListCache::new(0);
        c.put(b"a", v(1), 1);
        assert!(c.get(b"a", 1).is_none());
        assert!(!c.enabled());
    }

    #[test]
    fn key_parts_do_not_run_together() {
        let mut a = KeyBuf::default();
        a.part(b"ab").part(b"c");
        let mut b = KeyBuf::default();
        b.part(b"a").part(b"bc");
        assert_ne!(a.0, b.0);
    }
}
