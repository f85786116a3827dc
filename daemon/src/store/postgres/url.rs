//! `database_url`: the PostgreSQL connection URL, held so that it is never
//! shown. It carries the role's password; `Debug` and `Display` print it
//! with the password replaced (`postgres://keepd:***@db:5432/app`), the
//! memory is wiped when it is dropped, and it is read only from the
//! configuration file or the systemd credential `database-url` — never
//! from the command line or the environment.
//!
//! This part builds without the `postgres` feature: a configuration that
//! names a database is then refused with a clear message.

use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The credential name systemd's `LoadCredential=database-url:PATH` uses.
pub const CREDENTIAL: &str = "database-url";

/// A PostgreSQL URL whose password never leaves it in text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DatabaseUrl(Zeroizing<String>);

impl DatabaseUrl {
    pub fn new(s: &str) -> DatabaseUrl {
        DatabaseUrl(Zeroizing::new(s.trim().to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The URL itself, for the connection only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it carries a password (in its user part or a `password=`
    /// parameter). Conservative: the user part is all before the last `@`.
    pub fn has_password(&self) -> bool {
        let (userinfo, rest) = split(&self.0);
        userinfo.is_some_and(|u| u.contains(':'))
            || query_of(rest)
                .split('&')
                .any(|kv| kv.split('=').next() == Some("password"))
    }

    /// Reads the URL from a credential file (trimmed).
    pub fn read(path: &Path) -> Result<DatabaseUrl, String> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("the database URL file {}: {e}", path.display()))?,
        );
        let url = DatabaseUrl::new(&text);
        if url.is_empty() {
            return Err(format!("the database URL file {} is empty", path.display()));
        }
        Ok(url)
    }

    /// The URL with its password replaced by `***`. Conservative for a
    /// malformed URL (a raw `/`, `?` or `@` in the password): the user part
    /// is everything before the last `@`, and only what comes before its
    /// first `:` is shown.
    pub fn redacted(&self) -> String {
        let s: &str = &self.0;
        let Some(scheme_end) = s.find("://") else {
            return "(not a postgres:// URL)".into();
        };
        let (userinfo, rest) = split(s);
        let mut out = String::with_capacity(s.len());
        out.push_str(&s[..scheme_end + 3]);
        if let Some(u) = userinfo {
            match u.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(u),
            }
            out.push('@');
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        out.push_str(before_query);
        if let Some(query) = query {
            out.push('?');
            let parts: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => kv.to_string(),
                })
                .collect();
            out.push_str(&parts.join("&"));
        }
        out
    }
}

/// A URL's user part (all between `://` and the last `@`; None without
/// `@`) and the rest (host, path, query).
fn split(s: &str) -> (Option<&str>, &str) {
    let after = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    match after.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, after),
    }
}

/// The query of the part after the user part (empty when none).
fn query_of(rest: &str) -> &str {
    rest.split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .unwrap_or("")
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("DatabaseUrl(none)");
        }
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DatabaseUrl, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        Ok(DatabaseUrl::new(&s))
    }
}

/// Where the URL comes from when the configuration has none: the systemd
/// credential `database-url`, when present.
pub fn credential_path() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let p = Path::new(&dir).join(CREDENTIAL);
    p.exists().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let u = DatabaseUrl::new(
            "postgres://keepd:s3cr%40t-pw@db.example:5432/app?sslmode=verify-full",
        );
        assert!(u.has_password());
        for shown in [format!("{u}"), format!("{u:?}"), u.redacted()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("keepd:***@db.example:5432/app"), "{shown}");
            assert!(shown.contains("sslmode=verify-full"), "{shown}");
        }
        let u = DatabaseUrl::new("postgresql://keepd@db/app?password=hunter2&sslmode=disable");
        assert!(u.has_password());
        let shown = format!("{u:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password=***"), "{shown}");
        let u = DatabaseUrl::new("postgres://keepd@%2Frun%2Fpostgresql/app");
        assert!(!u.has_password());
        assert_eq!(u.redacted(), "postgres://keepd@%2Frun%2Fpostgresql/app");
        // An '@' in the password (not escaped) still hides all of it.
        let u = DatabaseUrl::new("postgres://k:a@b@host/app");
        assert!(!u.redacted().contains("a@b"), "{}", u.redacted());
        assert_eq!(format!("{:?}", DatabaseUrl::default()), "DatabaseUrl(none)");
        assert_eq!(
            DatabaseUrl::new("nonsense:pw").redacted(),
            "(not a postgres:// URL)"
        );
    }
}
