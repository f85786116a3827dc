//! PostgreSQL as keepd's database (issue 16, first phase): the connection
//! done the way the security review asks, and the start-up checks of the
//! role. Storing data there is not built yet: `keepd serve` with a
//! `database_url` runs the checks and then stops, saying so.
//!
//! - `url`: the redacting `database_url` type (always built).
//! - `connect` (feature `postgres`): the URL's policy (TLS with verify-full
//!   semantics against `database_ca`; plaintext only when the URL says
//!   `sslmode=disable` for a loopback host or a Unix socket), SCRAM with
//!   channel binding over TLS, the pinned session (search_path, timeouts).
//! - `pool` (feature `postgres`): the bounded set of connections.
//! - `checks` (feature `postgres`): what the role may not be or own, and
//!   the server facts `keepd db check` prints.
//!
//! Every query here has bound parameters; the one identifier spelled into
//! SQL text (the schema) is checked by [`is_schema_name`] first.

#[cfg(feature = "postgres")]
pub mod checks;
#[cfg(feature = "postgres")]
pub mod connect;
#[cfg(feature = "postgres")]
pub mod dialect;
#[cfg(feature = "postgres")]
pub mod pool;
pub mod url;

use url::DatabaseUrl;

/// A schema name keepd accepts: lower-case letters, digits and `_`, not
/// starting with a digit, at most 63 bytes, none of PostgreSQL's own.
pub fn is_schema_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !s.starts_with("pg_")
        && s != "public"
        && s != "information_schema"
}

/// What can be said of a URL without connecting (and without showing it).
pub fn check_url_form(url: &DatabaseUrl) -> Result<(), String> {
    let s = url.expose();
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err(
            "must be a postgres:// (or postgresql://) URL; key=value connection strings are not taken"
                .into(),
        );
    }
    if !cfg!(feature = "postgres") {
        return Err("this keepd was built without PostgreSQL support (cargo feature `postgres`); use a build with it, or remove database_url to use SQLite".into());
    }
    Ok(())
}

/// `keepd serve` with a PostgreSQL URL: the checks run, then — storage on
/// PostgreSQL not being built yet — a refusal. Returns the exit status to
/// stop with (None: no URL, serve from SQLite). The messages go to stderr.
pub fn serve_refusal(cfg: &crate::config::Config) -> Option<i32> {
    let url = match cfg.database_url() {
        Ok(None) => return None,
        Ok(Some(u)) => u,
        Err(e) => {
            eprintln!("keepd: {e}");
            return Some(1);
        }
    };
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        eprintln!("keepd: a PostgreSQL database_url is set, but this keepd was built without PostgreSQL support (cargo feature `postgres`); remove it to serve from SQLite");
        Some(1)
    }
    #[cfg(feature = "postgres")]
    {
        let report = match checks::run_configured(cfg, url) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("keepd: refused to start: {e}");
                return Some(1);
            }
        };
        let refused: Vec<_> = report.findings.iter().filter(|f| !f.ok).collect();
        if !refused.is_empty() {
            for f in refused {
                eprintln!("keepd: refused to start: {}", f.text);
            }
            return Some(1);
        }
        eprintln!("keepd: the PostgreSQL connection and role pass every check, but storing data on PostgreSQL is not built yet; remove database_url to serve from SQLite");
        Some(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for ok in ["keepd", "_k", "hub_2"] {
            assert!(is_schema_name(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Keepd",
            "1k",
            "pg_catalog",
            "public",
            "information_schema",
            "a-b",
            "a\"b",
            "a;b",
            &long,
        ] {
            assert!(!is_schema_name(bad), "{bad}");
        }
    }

    #[test]
    fn url_forms() {
        assert!(check_url_form(&DatabaseUrl::new("host=db user=keepd")).is_err());
        let r = check_url_form(&DatabaseUrl::new("postgres://k:pw@db/app"));
        assert_eq!(r.is_ok(), cfg!(feature = "postgres"), "{r:?}");
        if let Err(e) = r {
            assert!(e.contains("`postgres`") && !e.contains("pw"), "{e}");
        }
    }
}
