//! Rate limiting with PocketBase's rules (`rateLimits.rules`: label,
//! audience, duration, maxRequests) and its label matching, on by default
//! in keepd, in a fixed-capacity table: a flood of addresses can't grow
//! memory. Each (rule, client address) pair has a fixed window of
//! `duration` seconds holding `maxRequests` requests; IPv6 addresses are
//! counted per /64 (one host usually owns the whole prefix).
//!
//! When the table is full, expired windows are dropped first, then the
//! oldest window: a flood of fresh addresses can at worst reset some
//! counters early, never exhaust memory or block everyone.
//!
//! Time is passed in (seconds from any fixed origin) so tests set it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

/// Windows tracked at once.
pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub label: String,
    /// "" (everyone), "@guest" or "@auth".
    pub audience: String,
    pub duration: u64,
    pub max_requests: u64,
}

/// The `rateLimits` settings, parsed.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub enabled: bool,
    pub rules: Vec<Rule>,
    pub excluded: Vec<(IpAddr, u8)>,
}

impl Rules {
    /// From the settings (validated when saved; a rule without a label, a
    /// count or a window — possible only in a database written by hand or
    /// by an older keepd — is left out).
    pub fn from_settings(rl: &crate::settings::RateLimits) -> Rules {
        let rules = rl
            .rules
            .iter()
            .filter(|r| !r.label.is_empty() && r.max_requests >= 1 && r.duration >= 1)
            .map(|r| Rule {
                label: r.label.clone(),
                audience: r.audience.clone(),
                duration: r.duration.unsigned_abs(),
                max_requests: r.max_requests.unsigned_abs(),
            })
            .collect();
        let excluded = rl
            .excluded_ips
            .iter()
            .filter_map(|v| parse_net(v))
            .collect();
        Rules {
            enabled: rl.enabled,
            rules,
            excluded,
        }
    }

    /// PocketBase's matching: labels in order; for each, an exact label
    /// match first, then (for the first label only) rules whose label ends
    /// with `/` as path prefixes; the rule's audience must be one of
    /// `audiences`.
    pub fn find(&self, labels: &[Label<'_>], audiences: &[&str]) -> Option<&Rule> {
        let aud_ok = |r: &Rule| audiences.contains(&r.audience.as_str());
        for label in labels {
            if let Some(r) = self.rules.iter().find(|r| label.is(&r.label) && aud_ok(r)) {
                return Some(r);
            }
            if let Some(r) = self
                .rules
                .iter()
                .find(|r| r.label.ends_with('/') && label.slash_starts_with(&r.label) && aud_ok(r))
            {
                return Some(r);
            }
        }
        None
    }
}

/// A request label (`users:create`, `POST /api/batch`, ...) as the pieces
/// it is made of, compared with rule labels without being joined: the
/// check runs on every request.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a>(pub [&'a str; 3]);

impl Label<'_> {
    /// The label is `s`.
    pub fn is(&self, s: &str) -> bool {
        let mut rest = s;
        for p in self.0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }

    /// The label followed by `/` starts with `s` (PocketBase's path-prefix
    /// rules, labels ending in `/`).
    pub fn slash_starts_with(&self, s: &str) -> bool {
        let mut rest = s;
        for p in self.0.iter().copied().chain(std::iter::once("/")) {
            if rest.len() <= p.len() {
                return p.starts_with(rest);
            }
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }
}

/// `a.b.c.d`, `a.b.c.d/n`, IPv6 likewise.
pub fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim();
    match s.split_once('/') {
        Some((ip, bits)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (bits <= max).then_some((ip, bits))
        }
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// Whether `ip` is inside `net`.
pub fn in_net(ip: IpAddr, net: (IpAddr, u8)) -> bool {
    let ip = canonical(ip);
    match (ip, canonical(net.0)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let bits = u32::from(net.1.min(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let bits = u32::from(net.1.min(128));
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The address a window is counted for: IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let masked = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(masked.into())
        }
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    duration: u64,
    used: u64,
}

type Table = heapless::index_map::FnvIndexMap<(u64, IpAddr), Window, CAPACITY>;

pub struct Limiter {
    /// Allocated (about 270 KiB) with the first request counted: a daemon
    /// whose rate limits never apply does not hold it.
    table: Mutex<Option<Box<Table>>>,
    /// Keys the rule ids: which ids collide can't be chosen from outside.
    seed: RandomState,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Limiter {
        Limiter {
            table: Mutex::new(None),
            seed: RandomState::new(),
        }
    }

    /// Counts one request of `ip` against `rule` (identified by `id`):
    /// Ok, or Err(seconds until the window resets).
    pub fn check(&self, id: &str, rule: &Rule, ip: IpAddr, now: u64) -> Result<(), u64> {
        let key = (self.seed.hash_one(id), client_key(ip));
        let mut g = match self.table.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let t = g.get_or_insert_with(Box::default);
        if let Some(w) = t.get_mut(&key) {
            if now >= w.start + w.duration || w.duration != rule.duration {
                *w = Window {
                    start: now,
                    duration: rule.duration,
                    used: 0,
                };
            }
            if w.used >= rule.max_requests {
                return Err((w.start + w.duration).saturating_sub(now).max(1));
            }
            w.used += 1;
            return Ok(());
        }
        if rule.max_requests == 0 {
            return Err(rule.duration);
        }
        if t.len() >= CAPACITY {
            t.retain(|_, w| now < w.start + w.duration);
        }
        if t.len() >= CAPACITY {
            let oldest = t.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| *k);
            if let Some(k) = oldest {
                t.swap_remove(&k);
            }
        }
        let _ = t.insert(
            key,
            Window {
                start: now,
                duration: rule.duration,
                used: 1,
            },
        );
        Ok(())
    }

    /// Whether `ip` is over `rule` now, without counting a request:
    /// Some(seconds until the window resets).
    pub fn exceeded(&self, id: &str, rule: &Rule, ip: IpAddr, now: u64) -> Option<u64> {
        let key = (self.seed.hash_one(id), client_key(ip));
        let t = match self.table.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let w = t.as_ref()?.get(&key)?;
        (now < w.start + w.duration && w.used >= rule.max_requests)
            .then(|| (w.start + w.duration).saturating_sub(now).max(1))
    }

    /// Windows tracked now.
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .map(|t| t.as_ref().map_or(0, |t| t.len()))
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every window (the rules changed).
    pub fn clear(&self) {
        if let Ok(mut t) = self.table.lock() {
            *t = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> Rules {
        let rl = serde_json::from_value(json!({"enabled": true, "rules": [
            {"label": "*:auth", "audience": "", "duration": 3, "maxRequests": 2},
            {"label": "users:create", "audience": "@guest", "duration": 5, "maxRequests": 1},
            {"label": "*:create", "audience": "", "duration": 5, "maxRequests": 20},
            {"label": "/api/batch", "audience": "", "duration": 1, "maxRequests": 3},
            {"label": "/api/", "audience": "", "duration": 10, "maxRequests": 300},
        ]}))
        .expect("rate limits");
        Rules::from_settings(&rl)
    }

    #[test]
    fn rules_without_a_count_or_window_are_left_out() {
        let rl = serde_json::from_value(json!({"enabled": true, "rules": [
            {"label": "x"},
            {"label": "y", "maxRequests": 0, "duration": 5},
            {"label": "", "maxRequests": 1, "duration": 5},
            {"label": "z", "maxRequests": 2, "duration": 5},
        ]}))
        .expect("rate limits");
        let r = Rules::from_settings(&rl);
        let kept: Vec<&str> = r.rules.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(kept, ["z"]);
    }

    fn labels<'a>(v: &[&'a str]) -> Vec<Label<'a>> {
        v.iter().map(|s| Label([s, "", ""])).collect()
    }

    #[test]
    fn labels_in_pieces_compare_as_joined() {
        let l = Label(["POST", " ", "/api/batch"]);
        assert!(l.is("POST /api/batch"));
        assert!(!l.is("POST /api/batc"));
        assert!(!l.is("POST /api/batch/"));
        assert!(!l.is("POST"));
        assert!(l.slash_starts_with("POST /api/"));
        assert!(l.slash_starts_with("POST /api/batch/"));
        assert!(l.slash_starts_with(""));
        assert!(!l.slash_starts_with("POST /api/batch//"));
        assert!(!l.slash_starts_with("GET /"));
        let p = Label(["/api", "", ""]);
        assert!(p.slash_starts_with("/api/"));
        assert!(!p.slash_starts_with("/api/x"));
    }

    #[test]
    fn pocketbase_label_matching() {
        let r = rules();
        let guest = ["", "@guest"];
        let auth = ["", "@auth"];
        let find = |l: &[&str], a: &[&str]| r.find(&labels(l), a).map(|r| r.label.clone());
        assert_eq!(
            find(
                &[
                    "users:authWithPassword",
                    "users:auth",
                    "*:authWithPassword",
                    "*:auth",
                    "POST /api/collections/users/auth-with-password",
                    "/api/collections/users/auth-with-password"
                ],
                &guest
            ),
            Some("*:auth".into())
        );
        assert_eq!(
            find(
                &[
                    "users:create",
                    "*:create",
                    "POST /api/collections/users/records"
                ],
                &guest
            ),
            Some("users:create".into())
        );
        // The @guest rule doesn't apply to an authenticated caller.
        assert_eq!(
            find(&["users:create", "*:create"], &auth),
            Some("*:create".into())
        );
        assert_eq!(
            find(&["POST /api/batch", "/api/batch"], &guest),
            Some("/api/batch".into())
        );
        // Prefix rules only from the first label, matched with a trailing slash.
        assert_eq!(find(&["/api/health"], &guest), Some("/api/".into()));
        assert_eq!(find(&["/api"], &guest), Some("/api/".into()));
        assert_eq!(find(&["/other"], &guest), None);
    }

    #[test]
    fn fixed_window_with_retry_after() {
        let l = Limiter::new();
        let rule = Rule {
            label: "x".into(),
            audience: "".into(),
            duration: 10,
            max_requests: 2,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(l.check("r", &rule, a, 100), Ok(()));
        assert_eq!(l.check("r", &rule, a, 101), Ok(()));
        assert_eq!(l.check("r", &rule, a, 103), Err(7));
        // Another address, another rule id: their own windows.
        assert_eq!(l.check("r", &rule, b, 103), Ok(()));
        assert_eq!(l.check("s", &rule, a, 103), Ok(()));
        // The window resets.
        assert_eq!(l.check("r", &rule, a, 110), Ok(()));
    }

    /// The table is allocated with the first request counted and given
    /// back when the rules change; reads never allocate it.
    #[test]
    fn table_allocated_when_a_request_is_counted() {
        let l = Limiter::new();
        let rule = Rule {
            label: "x".into(),
            audience: "".into(),
            duration: 10,
            max_requests: 2,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(l.exceeded("r", &rule, a, 100), None);
        assert!(l.is_empty());
        assert!(l.table.lock().unwrap().is_none());
        assert_eq!(l.check("r", &rule, a, 100), Ok(()));
        assert_eq!(l.len(), 1);
        l.clear();
        assert!(l.table.lock().unwrap().is_none());
        assert!(l.is_empty());
    }

    #[test]
    fn ipv6_counted_per_64() {
        let l = Limiter::new();
        let rule = Rule {
            label: "x".into(),
            audience: "".into(),
            duration: 10,
            max_requests: 1,
        };
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(l.check("r", &rule, a, 0), Ok(()));
        assert!(l.check("r", &rule, b, 0).is_err(), "same /64");
        assert_eq!(l.check("r", &rule, c, 0), Ok(()));
    }

    #[test]
    fn an_address_flood_stays_within_capacity() {
        let l = Limiter::new();
        let rule = Rule {
            label: "x".into(),
            audience: "".into(),
            duration: 60,
            max_requests: 1,
        };
        let victim: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(l.check("r", &rule, victim, 0), Ok(()));
        for i in 0..(CAPACITY as u32 * 3) {
            let ip = IpAddr::V4((0x0a00_0000 + i).into());
            let _ = l.check("r", &rule, ip, 1);
            assert!(l.len() <= CAPACITY);
        }
        assert_eq!(l.len(), CAPACITY);
        // Expired windows are dropped before live ones.
        for i in 0..10u32 {
            let ip = IpAddr::V4((0x0b00_0000 + i).into());
            assert_eq!(l.check("r", &rule, ip, 1000), Ok(()));
        }
        assert!(
            l.len() <= 20,
            "expired windows were not dropped: {}",
            l.len()
        );
    }

    #[test]
    fn nets() {
        let n = parse_net("10.0.0.0/8").unwrap();
        assert!(in_net("10.1.2.3".parse().unwrap(), n));
        assert!(!in_net("11.1.2.3".parse().unwrap(), n));
        assert!(in_net("::ffff:10.1.2.3".parse().unwrap(), n));
        let n = parse_net("127.0.0.1").unwrap();
        assert!(in_net("127.0.0.1".parse().unwrap(), n));
        assert!(!in_net("127.0.0.2".parse().unwrap(), n));
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("nope").is_none());
        let n = parse_net("fd00::/8").unwrap();
        assert!(in_net("fd12::1".parse().unwrap(), n));
    }
}
