//! Reads that need one view of the database across several statements
//! (sync's pull reads a log entry's row and then its field clocks: a write
//! committed in between must not pair the old values with the new clocks).
//! Outside a transaction each statement reads the database as it is when
//! it runs, on SQLite and on PostgreSQL alike.

use super::Conn;
use crate::error::ApiResult;

/// Runs `f`'s reads on one snapshot: one read transaction (SQLite's
/// deferred BEGIN; PostgreSQL's repeatable read), ended when `f` returns.
pub fn read_consistent<T>(c: &Conn, f: impl FnOnce(&Conn) -> ApiResult<T>) -> ApiResult<T> {
    let begin = begin(c);
    c.script(begin)?;
    let r = f(c);
    let end = c.script(if r.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let v = r?;
    end?;
    Ok(v)
}

fn begin(c: &Conn) -> &'static str {
    #[cfg(feature = "postgres")]
    if c.is_postgres() {
        return super::postgres::changelog::BEGIN_READ;
    }
    let _ = c;
    super::dialect::BEGIN_READ
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_snapshot_for_all_the_reads() {
        let path = std::env::temp_dir().join(format!("keepd-consistent-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let w = Conn::open(&path).unwrap();
        w.script("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        let r = Conn::open(&path).unwrap();
        let read = |c: &Conn| c.one("SELECT v FROM t", (), |row| row.get::<i64>(0));
        let (first, second) = read_consistent(&r, |c| {
            let first = read(c)?;
            w.script("UPDATE t SET v = 2").unwrap();
            Ok((first, read(c)?))
        })
        .unwrap();
        assert_eq!((first, second), (Some(1), Some(1)));
        assert_eq!(read(&r).unwrap(), Some(2));
        drop((r, w));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }
}
