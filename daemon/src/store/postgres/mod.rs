//! PostgreSQL as keepd's database (issue 16): the connection done the way
//! the security review asks, the start-up checks of the role, and the
//! storage engine under the store's `Conn`.
//!
//! - `url`: the redacting `database_url` type (always built).
//! - `connect` (feature `postgres`): the URL's policy (TLS with verify-full
//!   semantics against `database_ca`; plaintext only when the URL says
//!   `sslmode=disable` for a loopback host or a Unix socket), SCRAM with
//!   channel binding over TLS, the pinned session (search_path, timeouts).
//! - `pool` (feature `postgres`): the bounded set of connections.
//! - `checks` (feature `postgres`): what the role may not be or own, and
//!   the server facts `keepd db check` prints.
//! - `conn` (feature `postgres`): the store's statement API on a session
//!   (placeholders, values bound by the inferred type, rows read, UNIQUE
//!   violations and storage faults).
//! - `ddl` (feature `postgres`): PostgreSQL's spellings of the store's
//!   tables, the audit log's trigger, the catalogue questions.
//! - `store` (feature `postgres`): the store's sessions from the pool.
//! - `backup` (feature `postgres`): a backup's export of the schema in one
//!   repeatable-read snapshot, and its restore in one transaction.
//! - `changelog` (feature `postgres`): the change log every process on the
//!   schema shares — realtime events of every process's commits, in commit
//!   order, to the clients of each.
//!
//! Every query here has bound parameters; the one identifier spelled into
//! SQL text (the schema) is checked by [`is_schema_name`] first.

#[cfg(feature = "postgres")]
pub mod backup;
#[cfg(feature = "postgres")]
pub mod changelog;
#[cfg(feature = "postgres")]
pub mod checks;
#[cfg(feature = "postgres")]
pub mod conn;
#[cfg(feature = "postgres")]
pub mod connect;
#[cfg(feature = "postgres")]
pub mod ddl;
#[cfg(feature = "postgres")]
pub mod dialect;
#[cfg(feature = "postgres")]
pub mod pool;
#[cfg(feature = "postgres")]
pub mod store;
pub mod url;
#[cfg(feature = "postgres")]
pub mod view;

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

/// The store on PostgreSQL for `cfg`'s `database_url` (its files stay in
/// the data dir).
#[cfg(feature = "postgres")]
pub fn open_store(
    cfg: &crate::config::Config,
    url: DatabaseUrl,
    opts: &crate::store::StoreOptions,
) -> anyhow::Result<std::sync::Arc<crate::store::Store>> {
    let settings = connect::Settings::from_config(cfg, url);
    let target = connect::prepare(&settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = std::sync::Arc::new(pool::Pool::new(target, settings.pool));
    // The role's checks at every start, for every command that opens the
    // store (the superuser CLI too).
    let report = store::off_runtime(|| -> Result<checks::Report, connect::PgError> {
        let mut s = pool.get()?;
        checks::run(&mut s, pool.target())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let refused: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| !f.ok)
        .map(|f| f.text.as_str())
        .collect();
    if !refused.is_empty() {
        anyhow::bail!("refused to start: {}", refused.join("; "));
    }
    // The writer, the session that notices other processes' commits and
    // the one that follows the change log take three; the readers share
    // what is left.
    let mut opts = opts.clone();
    opts.readers = opts.readers.min(settings.pool.saturating_sub(3)).max(1);
    crate::store::Store::open_postgres(&cfg.dir, &opts, pool)
}

/// Loads the backup export at `export` into the schema `cfg` names, in
/// one transaction, on a session of its own (at start, before the store
/// opens: `ops::backup::apply_pending`).
#[cfg(feature = "postgres")]
pub fn restore_export(
    cfg: &crate::config::Config,
    url: DatabaseUrl,
    export: &std::path::Path,
) -> anyhow::Result<()> {
    with_session(cfg, url, |c| backup::restore(c, export))
}

/// Runs `f` on a session of its own to the schema `cfg` names.
#[cfg(feature = "postgres")]
pub fn with_session<T>(
    cfg: &crate::config::Config,
    url: DatabaseUrl,
    f: impl FnOnce(&crate::store::Conn) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let settings = connect::Settings::from_config(cfg, url);
    let target = connect::prepare(&settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = std::sync::Arc::new(pool::Pool::new(target, 1));
    let conn = store::session(&pool, false)?;
    store::off_runtime(|| f(&conn))
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

/// `keepd serve` with a PostgreSQL URL: the checks run before anything
/// else; a refusal is the exit status to stop with (None: serve — from
/// PostgreSQL when a URL is set, else from SQLite). The messages go to
/// stderr.
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
        None
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
