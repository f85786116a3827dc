//! Opening connections, pragmas, the database key and the file-mode guard.

use super::Conn;
use crate::store::key::{DbKey, KeyError};
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
///
/// The check reads the schema cookie from the database header: page 1 is
/// read (and, encrypted, decrypted and authenticated) as by any query, so
/// a wrong key, a missing key or a file that is not a database fails here,
/// but SQLite does not yet parse every CREATE statement of the schema —
/// a connection that only ever asks `data_version` never pays for that.
pub(crate) fn unlock(conn: &Connection, path: &Path, key: Option<&DbKey>) -> anyhow::Result<()> {
    if let Some(k) = key {
        conn.pragma_update(None, "key", k.sql_value())?;
        quiet(conn)?;
    }
    match conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
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

pub(crate) fn open_writer(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Conn> {
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
    Ok(conn.into())
}

/// The connection `wal` checkpoints with: read-write, no page cache to
/// speak of (a checkpoint copies WAL frames into the database file without
/// it), and `synchronous = FULL` (the WAL synced before pages are copied,
/// the database file before the WAL may restart). It reads no schema.
pub(crate) fn open_checkpointer(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Conn> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    unlock(&conn, path, key)?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 10000;
         PRAGMA synchronous = FULL;",
    )?;
    Ok(conn.into())
}

pub(crate) fn open_reader(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Conn> {
    let conn = open_read_only(path, key)?;
    conn.engine()?.execute_batch(COMMON_PRAGMAS)?;
    // A reader's page cache is at most 2 MB (the writer's 4): there are
    // `readers` of them, each filling to its bound under a list load, and
    // the OS page cache holds the file once for all of them (mmap stays
    // off, SQLite's default).
    conn.engine()?
        .execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -2000;")?;
    Ok(conn)
}

/// The connection that watches for commits by other processes: it asks
/// only `PRAGMA data_version` (a header value), so it gets neither the
/// page cache size nor the schema — `cache_size` would make SQLite parse
/// the whole schema, a cost paid at every start for nothing.
pub(crate) fn open_watch(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Conn> {
    let conn = open_read_only(path, key)?;
    conn.engine()?
        .execute_batch("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// A read-only connection to an existing database, key applied and
/// checked: for tools (`keepd check`, backups, restores).
pub fn open_read_only(path: &Path, key: Option<&DbKey>) -> anyhow::Result<Conn> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    unlock(&conn, path, key)?;
    Ok(conn.into())
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

/// What is wrong with a path under the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeFault {
    /// Group or others may access it (or a special bit is set):
    /// `--fix-permissions` repairs it.
    Loose,
    /// Owned by another user: `chown`, by hand.
    Owner,
    /// A symbolic link, or not a file or directory: removed or replaced by
    /// hand, never followed or repaired.
    Kind,
    /// Could not be read.
    Unreadable,
}

/// A file-mode problem found at start.
#[derive(Debug, Clone)]
pub struct ModeProblem {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub fault: ModeFault,
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
    rustix::process::geteuid().as_raw()
}

/// Checks everything in the data dir, the dir included: directories 0700
/// and files 0600 (nothing for group or others, no special bits), owned by
/// the user keepd runs as, no symbolic links (a link could point keepd's
/// writes, or its backups' contents, anywhere) and nothing that is neither
/// a file nor a directory. Links are reported, never followed. One `lstat`
/// per entry (about 40 ms for 20,000 stored files, release build, files in
/// the page cache).
pub fn check_modes(dir: &Path) -> Vec<ModeProblem> {
    let uid = current_uid();
    let mut out = Vec::new();
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return out;
    };
    let mut stack = Vec::new();
    if inspect(dir, &m, uid, &mut out) {
        stack.push(dir.to_path_buf());
    }
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) => {
                out.push(unreadable(&d, &e));
                continue;
            }
        };
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.push(unreadable(&d, &e));
                    break;
                }
            };
            let p = entry.path();
            // `DirEntry::metadata` does not follow a link.
            match entry.metadata() {
                Ok(m) => {
                    if inspect(&p, &m, uid, &mut out) {
                        stack.push(p);
                    }
                }
                Err(e) => out.push(unreadable(&p, &e)),
            }
        }
    }
    out
}

fn unreadable(p: &Path, e: &std::io::Error) -> ModeProblem {
    ModeProblem {
        path: p.to_path_buf(),
        mode: 0,
        uid: 0,
        fault: ModeFault::Unreadable,
        why: format!("can't be read ({e}); fix: make it keepd's own (chown, chmod)"),
    }
}

/// Checks one entry (not followed); true when it is a directory to walk.
fn inspect(p: &Path, m: &std::fs::Metadata, uid: u32, out: &mut Vec<ModeProblem>) -> bool {
    let mode = m.mode();
    let problem = |fault, why: String| ModeProblem {
        path: p.to_path_buf(),
        mode,
        uid: m.uid(),
        fault,
        why,
    };
    let ft = m.file_type();
    if ft.is_symlink() {
        out.push(problem(
            ModeFault::Kind,
            format!(
                "is a symbolic link; keepd follows no links in its data directory (`--fix-permissions` doesn't either); fix: replace it with what it points to, or remove it (rm {})",
                p.display()
            ),
        ));
        return false;
    }
    let is_dir = ft.is_dir();
    if !is_dir && !ft.is_file() {
        out.push(problem(
            ModeFault::Kind,
            format!(
                "is neither a file nor a directory; fix: remove it (rm {})",
                p.display()
            ),
        ));
        return false;
    }
    if m.uid() != uid {
        out.push(problem(
            ModeFault::Owner,
            format!(
                "is owned by another user (keepd runs as uid {uid}); fix: chown {uid} {}",
                p.display()
            ),
        ));
    }
    if mode & 0o7077 != 0 {
        let want = if is_dir { "700" } else { "600" };
        out.push(problem(
            ModeFault::Loose,
            format!(
                "is accessible by group or others (or has a special bit); fix: chmod {want} {} (or run `keepd serve --fix-permissions`)",
                p.display()
            ),
        ));
    }
    is_dir
}

/// Repairs modes throughout the data dir: 0700 directories, 0600 files.
/// Links are neither followed nor changed, other users' files are left
/// alone: the check that follows reports them (their fix is the
/// operator's decision).
pub fn fix_modes(dir: &Path) -> std::io::Result<()> {
    let uid = current_uid();
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return Ok(());
    };
    if !m.is_dir() {
        return Ok(());
    }
    let mut stack = vec![(dir.to_path_buf(), m)];
    while let Some((p, m)) = stack.pop() {
        let is_dir = m.is_dir();
        let want = if is_dir { 0o700 } else { 0o600 };
        if m.uid() == uid && m.mode() & 0o7777 != want {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(want))?;
        }
        if is_dir && m.uid() == uid {
            for entry in std::fs::read_dir(&p)?.flatten() {
                if let Ok(em) = entry.metadata() {
                    let ft = em.file_type();
                    if ft.is_dir() || ft.is_file() {
                        stack.push((entry.path(), em));
                    }
                }
            }
        }
    }
    Ok(())
}

/// SQLite's `integrity_check`: `["ok"]`, or a line per problem.
pub fn integrity_check(conn: &Conn) -> rusqlite::Result<Vec<String>> {
    let conn = conn.engine()?;
    conn.prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect()
}

/// SQLite's `foreign_key_check`, each problem in words.
pub fn foreign_key_problems(conn: &Conn) -> rusqlite::Result<Vec<String>> {
    let conn = conn.engine()?;
    conn.prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| {
            Ok(format!(
                "row {} of {} refers to a missing row of {}",
                r.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                r.get::<_, String>(0)?,
                r.get::<_, String>(2)?
            ))
        })?
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// Opening the watch connection and asking it `data_version` reads the
    /// header only: SQLite never parses the schema on it (shown with a
    /// schema entry SQLite cannot parse, which fails any connection that
    /// does — as a reader's does, whose `cache_size` needs the schema).
    /// A file that is not a database is still refused when it is opened.
    #[test]
    fn the_watch_never_parses_the_schema() {
        let dir = std::env::temp_dir().join(format!("keepd-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t(v INTEGER);
             PRAGMA writable_schema = ON;
             INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql)
                 VALUES ('table', 'x', 'x', 0, 'CREATE TABLE x(');
             PRAGMA writable_schema = OFF;",
        )
        .unwrap();
        drop(c);
        let watch = super::open_watch(&path, None).unwrap();
        let before = crate::store::sqlite::data_version(&watch).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("PRAGMA writable_schema = ON").unwrap();
        other
            .execute("INSERT INTO t (v) VALUES (1)", [])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(
            crate::store::sqlite::data_version(&watch).unwrap(),
            before,
            "the watch sees another connection's commit"
        );
        let e = super::open_reader(&path, None)
            .err()
            .expect("a reader parses the schema");
        assert!(e.to_string().contains("malformed database schema"), "{e}");
        let junk = dir.join("junk.db");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = super::open_watch(&junk, None)
            .err()
            .expect("not a database");
        assert!(
            e.downcast_ref::<crate::store::key::KeyError>().is_some(),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn cache_size(c: &super::Conn) -> i64 {
        c.engine()
            .unwrap()
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap()
    }

    /// Each reader's page cache is bounded at 2 MB (there are `readers`
    /// of them), the writer's at 4 MB; neither maps the file.
    #[test]
    fn readers_page_cache_is_bounded_below_the_writers() {
        let dir = std::env::temp_dir().join(format!("keepd-cache-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.db");
        let w = super::open_writer(&path, None).unwrap();
        let r = super::open_reader(&path, None).unwrap();
        assert_eq!(cache_size(&w), -4000);
        assert_eq!(cache_size(&r), -2000);
        let mmap: i64 = r
            .engine()
            .unwrap()
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mmap, 0);
        drop((r, w));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The bundled SQLite is built as `.cargo/config.toml` says: math
    /// functions in (geoDistance), and none of full-text search, R*Tree,
    /// dbstat, soundex or extension loading (unused; binary size and attack
    /// surface); nor memory management and unlock notification, which put
    /// every connection's page cache behind one mutex taken at each page
    /// fetch (contended by all readers), nor memory statistics (a global
    /// mutex per allocation). A build without the workspace's flags fails.
    #[test]
    fn bundled_sqlite_has_only_the_modules_keepd_uses() {
        let c = Connection::open_in_memory().unwrap();
        let opts: Vec<String> = c
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            opts.iter().any(|o| o == "ENABLE_MATH_FUNCTIONS"),
            "{opts:?}"
        );
        assert!(opts.iter().any(|o| o == "OMIT_LOAD_EXTENSION"), "{opts:?}");
        assert!(opts.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{opts:?}");
        for absent in [
            "ENABLE_FTS3",
            "ENABLE_FTS5",
            "ENABLE_RTREE",
            "ENABLE_DBSTAT_VTAB",
            "SOUNDEX",
            "ENABLE_MEMORY_MANAGEMENT",
            "ENABLE_UNLOCK_NOTIFY",
        ] {
            assert!(!opts.iter().any(|o| o == absent), "{absent} in {opts:?}");
        }
        for module in ["fts5", "fts4", "rtree"] {
            let e = c
                .execute_batch(&format!(
                    "CREATE VIRTUAL TABLE t_{module} USING {module}(a, b, c)"
                ))
                .unwrap_err();
            assert!(e.to_string().contains("no such module"), "{module}: {e}");
        }
        assert_eq!(
            c.query_row("SELECT round(acos(1.0), 3)", [], |r| r.get::<_, f64>(0))
                .unwrap(),
            0.0
        );
    }
}
