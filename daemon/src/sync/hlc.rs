//! The hybrid logical clock (pure): a `u64` holding milliseconds since the
//! Unix epoch in its upper 48 bits and a counter in its lower 16. Every
//! local event takes `max(physical, last + 1)`; a value received raises the
//! clock to it. Values order writes across the fleet; ties are broken by
//! the writer's node id (see `merge`).

/// Milliseconds in an HLC value.
pub fn millis(h: u64) -> u64 {
    h >> 16
}

/// The HLC value of a physical time (counter 0).
pub fn at(ms: u64) -> u64 {
    ms << 16
}

/// A clock; callers keep it behind a lock and store `last` durably.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    pub last: u64,
}

impl Clock {
    pub fn new(last: u64) -> Clock {
        Clock { last }
    }

    /// The value of a local event at physical time `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> u64 {
        let next = at(now_ms).max(self.last.saturating_add(1));
        self.last = next;
        next
    }

    /// Raises the clock to a value received from another node.
    pub fn observe(&mut self, remote: u64) {
        self.last = self.last.max(remote);
    }
}

/// Wall-clock milliseconds since the Unix epoch, as sync reads them.
/// `KEEPD_SYNC_TEST_CLOCK_OFFSET_MS` (tests only) sets this clock wrong by
/// that many milliseconds, as a device whose clock is set wrong.
pub fn wall_ms() -> u64 {
    static SKEW: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let skew = *SKEW.get_or_init(|| {
        std::env::var("KEEPD_SYNC_TEST_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    ms.saturating_add(skew).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_when_physical_time_stalls_or_goes_back() {
        let mut c = Clock::default();
        let a = c.tick(1000);
        let b = c.tick(1000);
        let d = c.tick(900);
        assert!(a < b && b < d);
        assert_eq!(millis(a), 1000);
        assert_eq!(millis(d), 1000);
    }

    #[test]
    fn observing_a_later_clock_orders_after_it() {
        let mut c = Clock::default();
        c.tick(1000);
        let remote = at(5000) + 3;
        c.observe(remote);
        assert!(c.tick(1001) > remote);
        // A remote value in the past changes nothing.
        let before = c.last;
        c.observe(at(10));
        assert_eq!(c.last, before);
    }

    #[test]
    fn counter_overflow_moves_into_the_millisecond() {
        let mut c = Clock::new(at(7) + 0xffff);
        let n = c.tick(7);
        assert_eq!(n, at(8));
    }
}
