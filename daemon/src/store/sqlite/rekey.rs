//! `keepd rekey`: encrypt a plaintext database, change its key, or decrypt
//! it (cargo feature `sqlcipher`).
//!
//! The database is exported with `sqlcipher_export` into `data.db.rekey`
//! beside it (0600, the original's owner), the copy is checked (opens with
//! the new key, `integrity_check`, the same tables with the same row
//! counts), synced, and renamed over `data.db` — one atomic step. Until that
//! rename the original is untouched, so a failure (or a power cut) leaves
//! the database as it was. Runs only under the data directory's exclusive
//! lock: never while the daemon or another keepd command has it open.

use super::open::unlock;
use crate::store::key::DbKey;
use crate::store::lock::DirLock;
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What a rekey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rekeyed {
    /// A plaintext database is now encrypted.
    Encrypted,
    /// An encrypted database has a new key.
    KeyChanged,
    /// An encrypted database is now plaintext.
    Decrypted,
}

const TMP: &str = "data.db.rekey";

/// Rewrites `<dir>/data.db` from the `current` key (None: plaintext) to
/// the `new` one (None: plaintext).
pub fn rekey(dir: &Path, current: Option<&DbKey>, new: Option<&DbKey>) -> anyhow::Result<Rekeyed> {
    anyhow::ensure!(
        cfg!(feature = "sqlcipher"),
        "this keepd was built without encryption support (cargo feature `sqlcipher`)"
    );
    let outcome = match (current, new) {
        (None, None) => anyhow::bail!("the database is not encrypted and no new key was given"),
        (Some(c), Some(n)) if c == n => {
            anyhow::bail!("the new key is the same as the current one")
        }
        (None, Some(_)) => Rekeyed::Encrypted,
        (Some(_), Some(_)) => Rekeyed::KeyChanged,
        (Some(_), None) => Rekeyed::Decrypted,
    };
    let db = dir.join("data.db");
    let meta =
        std::fs::symlink_metadata(&db).map_err(|e| anyhow::anyhow!("{}: {e}", db.display()))?;
    anyhow::ensure!(meta.is_file(), "{}: not a regular file", db.display());
    let _lock = DirLock::exclusive(dir)?;
    let tmp = dir.join(TMP);
    remove_tmp(dir);
    let result = export(&db, &tmp, current, new).and_then(|()| {
        // The copy gets the original's owner (a rekey run as root must not
        // hand keepd a file it can't open) and 0600.
        let f = std::fs::File::open(&tmp)?;
        let m = f.metadata()?;
        if (meta.uid(), meta.gid()) != (m.uid(), m.gid()) {
            std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid()))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.sync_all()?;
        // The source's WAL was folded in and removed when its last
        // connection closed; a WAL left with frames would be replayed
        // into the new file.
        let wal = dir.join("data.db-wal");
        if let Ok(m) = std::fs::metadata(&wal) {
            anyhow::ensure!(
                m.len() == 0,
                "{}: still holds changes (is another program using the database?)",
                wal.display()
            );
            std::fs::remove_file(&wal)?;
        }
        let shm = dir.join("data.db-shm");
        if shm.exists() {
            std::fs::remove_file(&shm)?;
        }
        std::fs::rename(&tmp, &db)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    });
    if result.is_err() {
        remove_tmp(dir);
    }
    result.map(|()| outcome)
}

fn remove_tmp(dir: &Path) {
    for n in [
        TMP,
        "data.db.rekey-journal",
        "data.db.rekey-wal",
        "data.db.rekey-shm",
    ] {
        let _ = std::fs::remove_file(dir.join(n));
    }
}

/// `sqlcipher_export` of `db` into `tmp`, then the copy is checked.
fn export(
    db: &Path,
    tmp: &Path,
    current: Option<&DbKey>,
    new: Option<&DbKey>,
) -> anyhow::Result<()> {
    // CREATE: ATTACH opens with the main database's flags, and must create
    // the copy (data.db itself exists: checked by the caller).
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    unlock(&src, db, current)?;
    src.execute_batch("PRAGMA busy_timeout = 10000;")?;
    // Everything in the WAL goes into data.db first.
    let busy: i64 = src.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    anyhow::ensure!(
        busy == 0,
        "{}: could not checkpoint the write-ahead log (is another program using the database?)",
        db.display()
    );
    let user_version: i64 = src.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    src.execute(
        "ATTACH DATABASE ?1 AS rekeyed KEY ?2",
        rusqlite::params![
            tmp.to_string_lossy(),
            new.map(DbKey::sql_value).unwrap_or("")
        ],
    )?;
    super::open::quiet(&src)?;
    src.query_row("SELECT sqlcipher_export('rekeyed')", [], |_| Ok(()))?;
    src.execute_batch(&format!("PRAGMA rekeyed.user_version = {user_version};"))?;
    src.execute_batch("DETACH DATABASE rekeyed;")?;
    let before = table_counts(&src)?;

    let copy = Connection::open_with_flags(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    unlock(&copy, tmp, new)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    anyhow::ensure!(
        check == "ok",
        "the new copy failed integrity_check: {check}"
    );
    let after = table_counts(&copy)?;
    anyhow::ensure!(
        before == after,
        "the new copy differs from the database (tables or row counts)"
    );
    // The same journal mode as the daemon's, so readers never meet a
    // rollback journal.
    let mode: String = copy.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "could not enable WAL");
    drop(copy);
    drop(src);
    Ok(())
}

/// Every table with its row count, by name.
fn table_counts(c: &Connection) -> anyhow::Result<Vec<(String, i64)>> {
    let mut st = c.prepare(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    names
        .into_iter()
        .map(|n| {
            // A table keepd didn't name (no plain identifier) is compared
            // by name only.
            let count = match super::dialect::try_quote_ident(&n) {
                Some(q) => {
                    c.query_row(&format!("SELECT count(*) FROM main.{q}"), [], |r| r.get(0))?
                }
                None => -1,
            };
            Ok((n, count))
        })
        .collect()
}
