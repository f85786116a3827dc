//! Opening connections, pragmas, the database key and the file-mode guard.

use super::key::{DbKey, KeyError};
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Pragmas every connection gets.
const COMMON_PRAGMAS: &str = "PRAGMA busy_timeout = 10000;
PRAGMA foreign_keys = ON;
PRAGMA cache_size = -4000;
PRAGMA temp_store = MEMORY;";

/// Applies the key (first thing after open, before any other statement)
/// and checks that the database reads with it.
pub(crate) fn unlock(conn: &Connection, path: &Path, key: Option<&DbKey>) -> anyhow::Result<()> {
    if let Some(k) = key {
        conn.pragma_update(None, "key", k.sql_value())?;
        quiet(conn)?;
    }
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            let p = path.to_path_buf();
            Err(match key {
                Some(_) => KeyError::Wrong(p),
                None if cfg!(feature = "sqlcipher") => KeyError::NoKey(p),
                None => KeyError::NotADatabase(p),
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// SQLCipher logs a failed page check to stderr itself (its default, set
/// when the first key is applied); keepd's error says it once, plainly.
pub(crate) fn quiet(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cipher_log_level", "NONE")
}

pub(crate) fn open_writer(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    unlock(&conn, path, key)?;
    conn.execute_batch(COMMON_PRAGMAS)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "could not enable WAL (got {mode})"
    );
    // FULL: a commit is on the medium before we answer. Group commit keeps
    // the cost at one fsync per batch.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA journal_size_limit = 16777216;
         PRAGMA wal_autocheckpoint = 1000;",
    )?;
    Ok(conn)
}

pub(crate) fn open_reader(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Connection> {
    let conn = open_read_only(path, key)?;
    conn.execute_batch(COMMON_PRAGMAS)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// A read-only connection to an existing database, key applied and
/// checked: for tools (`keepd check`, backups, restores).
pub fn open_read_only(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    unlock(&conn, path, key)?;
    Ok(conn)
}

/// The database files keepd owns inside the data dir.
fn db_files(dir: &Path) -> Vec<PathBuf> {
    ["data.db", "data.db-wal", "data.db-shm"]
        .iter()
        .map(|n| dir.join(n))
        .collect()
}

/// Sets 0600 on database files that exist (SQLite creates WAL/SHM with the
/// umask, which is 077 already; this covers files made by other tools).
pub(crate) fn tighten_files(dir: &Path) -> anyhow::Result<()> {
    for f in db_files(dir) {
        if f.exists() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// A file-mode problem found at start.
#[derive(Debug, Clone)]
pub struct ModeProblem {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub why: String,
}

impl std::fmt::Display for ModeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} has mode {:04o} and owner uid {}: {}",
            self.path.display(),
            self.mode & 0o7777,
            self.uid,
            self.why
        )
    }
}

fn current_uid() -> u32 {
    // The data dir we just created (or the process's own /proc entry) tells
    // our uid without libc.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// Checks the data dir (0700, ours) and database files (0600, ours).
pub fn check_modes(dir: &Path) -> Vec<ModeProblem> {
    let uid = current_uid();
    let mut out = Vec::new();
    let mut check = |p: &Path, allowed: u32, is_dir: bool| {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return;
        };
        let mode = m.mode();
        if m.file_type().is_symlink() {
            out.push(ModeProblem {
                path: p.to_path_buf(),
                mode,
                uid: m.uid(),
                why: "is a symbolic link; keepd refuses to follow it".into(),
            });
            return;
        }
        if m.uid() != uid {
            out.push(ModeProblem {
                path: p.to_path_buf(),
                mode,
                uid: m.uid(),
                why: format!(
                    "is owned by another user (keepd runs as uid {uid}); fix: chown {uid} {}",
                    p.display()
                ),
            });
        }
        if mode & 0o077 != 0 {
            out.push(ModeProblem {
                path: p.to_path_buf(),
                mode,
                uid: m.uid(),
                why: format!(
                    "is accessible by group or others; fix: chmod {:o} {} (or run `keepd serve --fix-permissions`)",
                    allowed,
                    p.display()
                ),
            });
        }
        let _ = is_dir;
    };
    check(dir, 0o700, true);
    for f in db_files(dir) {
        check(&f, 0o600, false);
    }
    out
}

/// Repairs modes (0700 dir, 0600 files). Ownership is not changed: that
/// needs root and a decision only the operator can make.
pub fn fix_modes(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    for f in db_files(dir) {
        if f.exists() {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
