//! A backup's snapshot of the store, one arm per engine: SQLite's file
//! copied by `VACUUM INTO` on a read-only connection of its own; on
//! PostgreSQL the schema's export (`store::export`) in one repeatable-read
//! transaction on a reader's session. Both while the writer goes on.

use super::Store;
use std::path::{Path, PathBuf};

impl Store {
    /// Whether the store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        #[cfg(feature = "postgres")]
        return self.schema().engine() == super::engine::Engine::Postgres;
        #[cfg(not(feature = "postgres"))]
        false
    }

    /// Writes the store's snapshot into the directory `work`: the name of
    /// its member in a backup's zip (`data.db`, or `export::MEMBER`) and
    /// its path. Blocking.
    pub fn backup_snapshot(&self, work: &Path) -> Result<(&'static str, PathBuf), String> {
        #[cfg(feature = "postgres")]
        if self.is_postgres() {
            let dest = work.join(super::export::MEMBER);
            self.read_now(|c| super::postgres::backup::export(c, &dest))
                .map_err(|e| format!("snapshot: {e}"))?;
            return Ok((super::export::MEMBER, dest));
        }
        file_snapshot(self.dir(), self.key(), work)
    }
}

/// SQLite's snapshot of the data dir `data` (`VACUUM INTO` on a read-only
/// connection of its own, with the database key) as `work/data.db`: the
/// store's, and the command-line `keepd backup`'s beside a running daemon.
pub fn file_snapshot(
    data: &Path,
    key: Option<&super::DbKey>,
    work: &Path,
) -> Result<(&'static str, PathBuf), String> {
    let dest = work.join("data.db");
    let conn = super::open_read_only(&data.join("data.db"), key)
        .map_err(|e| format!("opening the database: {e}"))?;
    super::snapshot(&conn, &dest).map_err(|e| format!("snapshot: {e}"))?;
    Ok(("data.db", dest))
}

/// Why a staged export can't be restored into this keepd (its engine or
/// its migration), None when it can.
pub fn export_refusal(m: &super::export::Manifest) -> Result<(), String> {
    #[cfg(feature = "postgres")]
    return super::postgres::backup::refuse_other(m);
    #[cfg(not(feature = "postgres"))]
    {
        let _ = m;
        Err("this keepd was built without PostgreSQL support".into())
    }
}

/// Loads a staged export into the database `cfg` names, in one transaction
/// (`ops::backup::apply_pending`, at start).
pub fn load_export(cfg: &crate::config::Config, export: &Path) -> anyhow::Result<()> {
    #[cfg(feature = "postgres")]
    if let Some(url) = cfg.database_url().map_err(anyhow::Error::msg)? {
        return super::postgres::restore_export(cfg, url, export);
    }
    let _ = (cfg, export);
    anyhow::bail!("a backup exported from PostgreSQL is restored only into a keepd on PostgreSQL")
}

/// Whether the database `cfg` names holds nothing yet (PostgreSQL: no
/// table in its schema; SQLite: no `data.db`).
pub fn database_is_empty(cfg: &crate::config::Config) -> anyhow::Result<bool> {
    #[cfg(feature = "postgres")]
    if let Some(url) = cfg.database_url().map_err(anyhow::Error::msg)? {
        return super::postgres::with_session(cfg, url, super::postgres::backup::is_empty);
    }
    Ok(!cfg.dir.join("data.db").exists())
}

/// Drops everything in the PostgreSQL schema `cfg` names (a failed import
/// leaves it as empty as it found it). SQLite: nothing to do here (the
/// data dir's files are removed by the caller).
pub fn empty_database(cfg: &crate::config::Config) -> anyhow::Result<()> {
    #[cfg(feature = "postgres")]
    if let Some(url) = cfg.database_url().map_err(anyhow::Error::msg)? {
        return super::postgres::with_session(cfg, url, super::postgres::backup::drop_all);
    }
    let _ = cfg;
    Ok(())
}
