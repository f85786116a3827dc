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

/// A random string shaped by a simple pattern: literal characters, character
/// classes `[a-z0-9_]` and `{n}` repetition (what autogenerate patterns use).
/// `None` for anything it doesn't understand.
pub fn random_from_pattern(pattern: &str) -> Option<String> {
    let mut rng = rand::thread_rng();
    let chars: Vec<char> = pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .chars()
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        // One atom: a class or a literal.
        let set: Vec<char> = if chars[i] == '[' {
            let end = chars[i..].iter().position(|&c| c == ']')? + i;
            let body = &chars[i + 1..end];
            let mut set = Vec::new();
            let mut k = 0;
            while k < body.len() {
                if k + 2 < body.len() && body[k + 1] == '-' {
                    let (a, b) = (body[k] as u32, body[k + 2] as u32);
                    if a > b {
                        return None;
                    }
                    set.extend((a..=b).filter_map(char::from_u32));
                    k += 3;
                } else {
                    set.push(body[k]);
                    k += 1;
                }
            }
            i = end + 1;
            set
        } else if chars[i] == '\\' {
            let c = *chars.get(i + 1)?;
            i += 2;
            match c {
                'd' => ('0'..='9').collect(),
                'w' => ('a'..='z')
                    .chain('A'..='Z')
                    .chain('0'..='9')
                    .chain(['_'])
                    .collect(),
                other => vec![other],
            }
        } else if "()|*+?.".contains(chars[i]) {
            return None;
        } else {
            i += 1;
            vec![chars[i - 1]]
        };
        if set.is_empty() {
            return None;
        }
        // Its repetition.
        let mut n = 1usize;
        if chars.get(i) == Some(&'{') {
            let end = chars[i..].iter().position(|&c| c == '}')? + i;
            let spec: String = chars[i + 1..end].iter().collect();
            n = spec.split(',').next()?.trim().parse().ok()?;
            i = end + 1;
        }
        if n > 10_000 {
            return None;
        }
        for _ in 0..n {
            out.push(set[rng.gen_range(0..set.len())]);
        }
    }
    Some(out)
}

/// Why a secret file's mode and owner are too loose (None: fine): keys
/// of the database, TLS, sync credentials.
pub fn loose_mode(mode: u32, uid: u32) -> Option<&'static str> {
    if mode & 0o007 != 0 {
        return Some(
            "others may access it (fix: chmod 600, or 640 with owner root and group keepd)",
        );
    }
    if mode & 0o020 != 0 {
        return Some("its group may write it (fix: chmod 600)");
    }
    if mode & 0o040 != 0 && uid != 0 {
        return Some(
            "its group may read it, which is allowed only for a root-owned file (fix: chmod 600)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_generation() {
        let s = random_from_pattern("[a-z0-9]{15}").unwrap();
        assert_eq!(s.len(), 15);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let s = random_from_pattern("inv-[A-Z]{3}\\d{2}").unwrap();
        assert!(s.starts_with("inv-") && s.len() == 9, "{s}");
        assert!(random_from_pattern("(a|b)").is_none());
    }
}
