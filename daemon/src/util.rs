//! Small shared helpers: time strings, random ids, checksums.

use rand::Rng;

pub const ALPHANUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const LOWER_ALPHANUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// PocketBase's datetime format: `2006-01-02 15:04:05.000Z` (UTC).
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3fZ";

pub fn now_string() -> String {
    format_time(chrono::Utc::now())
}

pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format(DATETIME_FORMAT).to_string()
}

/// A random string from `alphabet` using the OS-seeded CSPRNG.
pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A new record id: 15 characters of `[a-z0-9]`.
pub fn new_record_id() -> String {
    random_string(15, LOWER_ALPHANUM)
}

/// PocketBase's short checksum used in generated collection and field ids.
pub fn crc32_checksum(s: &str) -> String {
    crc32fast::hash(s.as_bytes()).to_string()
}

/// Parses the datetime forms PocketBase accepts into UTC.
pub fn parse_datetime(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let t = s.trim_end_matches('Z');
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| Utc.from_utc_datetime(&n));
    }
    None
}

/// Sets the process umask to 077: every file keepd creates is private.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}
