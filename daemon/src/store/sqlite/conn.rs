//! The store's connection handle over an SQLite connection, and how
//! SQLite's errors become the API's.

use crate::error::{ApiError, ApiResult};
use crate::store::health::Fault;
use crate::store::value::{Column, Params, SqlRef};
use rusqlite::params_from_iter;

/// A connection to the database, as the store lends it to what runs in a
/// read or a write (the record domain, sync, realtime): outside `store`
/// it is only passed on to the store's functions, which know its engine.
/// SQLite, or (feature `postgres`) a PostgreSQL session.
pub struct Conn(Engine);

enum Engine {
    Sqlite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    // Boxed: the SQLite arm, the hot one, stays its own size.
    Pg(Box<crate::store::postgres::conn::PgConn>),
}

impl From<rusqlite::Connection> for Conn {
    fn from(c: rusqlite::Connection) -> Self {
        Conn(Engine::Sqlite(c))
    }
}

#[cfg(feature = "postgres")]
impl From<crate::store::postgres::conn::PgConn> for Conn {
    fn from(c: crate::store::postgres::conn::PgConn) -> Self {
        Conn(Engine::Pg(Box::new(c)))
    }
}

/// A statement's text, run from the connection's statement cache.
/// `uncached(&sql)` runs one prepared for this call only (text made for one
/// use, that would only push the statements that repeat out of the cache).
pub trait Sql {
    fn text(&self) -> &str;
    fn cached(&self) -> bool;
}

impl Sql for &str {
    #[inline]
    fn text(&self) -> &str {
        self
    }
    #[inline]
    fn cached(&self) -> bool {
        true
    }
}

impl Sql for &String {
    #[inline]
    fn text(&self) -> &str {
        self
    }
    #[inline]
    fn cached(&self) -> bool {
        true
    }
}

/// A statement prepared for one call only (see [`Sql`]).
pub struct Uncached<'a>(&'a str);

/// `sql` prepared for one call, not kept in the statement cache.
#[inline]
pub fn uncached(sql: &str) -> Uncached<'_> {
    Uncached(sql)
}

impl Sql for Uncached<'_> {
    #[inline]
    fn text(&self) -> &str {
        self.0
    }
    #[inline]
    fn cached(&self) -> bool {
        false
    }
}

/// An engine failure as the writer tells it apart: the storage fault
/// behind it, if it is one (disk full, read-only, I/O), and its text.
#[derive(Debug, Clone)]
pub struct DbError {
    pub fault: Option<Fault>,
    pub text: String,
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::Internal(format!("sqlite: {e}"))
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError {
            fault: classify(&e),
            text: e.to_string(),
        }
    }
}

/// One row of a query's answer, lent to the caller's closure.
pub struct Row<'a>(RowOf<'a>);

enum RowOf<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    #[cfg(feature = "postgres")]
    Pg(&'a postgres::Row),
}

impl<'a> Row<'a> {
    /// A row the engine's own API read (`sqlite::sample`).
    #[inline]
    pub(super) fn engine(r: &'a rusqlite::Row<'a>) -> Self {
        Row(RowOf::Sqlite(r))
    }

    /// A row of a PostgreSQL answer.
    #[cfg(feature = "postgres")]
    #[inline]
    pub(in crate::store) fn pg(r: &'a postgres::Row) -> Self {
        Row(RowOf::Pg(r))
    }

    /// Column `i` (from 0) as `T`; an error when it holds another type.
    #[inline]
    pub fn get<T: Column>(&self, i: usize) -> ApiResult<T> {
        let v = self.get_ref(i)?;
        match T::from_ref(v) {
            Some(Ok(t)) => Ok(t),
            Some(Err(e)) => Err(ApiError::Internal(format!("storage: column {i}: {e}"))),
            None => Err(ApiError::Internal(format!(
                "storage: column {i}: unexpected {}",
                match v {
                    SqlRef::Null => "NULL",
                    SqlRef::Integer(_) => "integer",
                    SqlRef::Real(_) => "real",
                    SqlRef::Text(_) => "text",
                    SqlRef::Blob(_) => "blob",
                }
            ))),
        }
    }

    /// Column `i` (from 0) as the row holds it, borrowed.
    #[inline]
    pub fn get_ref(&self, i: usize) -> ApiResult<SqlRef<'_>> {
        match &self.0 {
            RowOf::Sqlite(r) => Ok(r.get_ref(i)?.into()),
            #[cfg(feature = "postgres")]
            RowOf::Pg(r) => crate::store::postgres::conn::get_ref(r, i),
        }
    }
}

// The statement API is the store's own: outside `store/` a `Conn` is only
// passed on to the store's functions. Each method runs on the engine the
// connection holds (one match, then the engine's own path).
impl Conn {
    /// The SQLite connection, or the error a PostgreSQL one gives.
    #[inline]
    fn lite(&self) -> Option<&rusqlite::Connection> {
        match &self.0 {
            Engine::Sqlite(c) => Some(c),
            #[cfg(feature = "postgres")]
            Engine::Pg(_) => None,
        }
    }

    /// The PostgreSQL session, when this connection is one.
    #[cfg(feature = "postgres")]
    pub(in crate::store) fn pg(&self) -> Option<&crate::store::postgres::conn::PgConn> {
        match &self.0 {
            Engine::Pg(c) => Some(c),
            Engine::Sqlite(_) => None,
        }
    }

    /// Whether this connection is to PostgreSQL.
    #[inline]
    pub fn is_postgres(&self) -> bool {
        self.lite().is_none()
    }

    /// The engine this connection runs on (what SQL for it is compiled
    /// for).
    #[inline]
    pub fn sql_engine(&self) -> crate::store::engine::Engine {
        match &self.0 {
            Engine::Sqlite(_) => crate::store::engine::Engine::Sqlite,
            #[cfg(feature = "postgres")]
            Engine::Pg(_) => crate::store::engine::Engine::Postgres,
        }
    }

    /// Runs `f` on the statement for `sql`, prepared or from the cache.
    #[inline]
    fn with<S: Sql, T>(
        c: &rusqlite::Connection,
        sql: S,
        f: impl FnOnce(&mut rusqlite::Statement<'_>) -> ApiResult<T>,
    ) -> ApiResult<T> {
        if sql.cached() {
            let mut st = c.prepare_cached(sql.text())?;
            f(&mut st)
        } else {
            let mut st = c.prepare(sql.text())?;
            f(&mut st)
        }
    }

    /// Runs a statement that answers no rows; the number of rows it
    /// changed.
    #[inline]
    pub(in crate::store) fn exec<S: Sql, P: Params>(&self, sql: S, p: P) -> ApiResult<usize> {
        match &self.0 {
            Engine::Sqlite(c) => Self::with(c, sql, |st| {
                Ok(st.execute(params_from_iter((0..p.count()).map(|i| p.at(i))))?)
            }),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.exec(sql.text(), sql.cached(), &p),
        }
    }

    /// Like `exec`, for a write that may break a UNIQUE constraint:
    /// `Ok(Err(columns))` then, the columns the engine names (without
    /// their table).
    #[inline]
    pub(in crate::store) fn exec_unique<S: Sql, P: Params>(
        &self,
        sql: S,
        p: P,
    ) -> ApiResult<Result<usize, Vec<String>>> {
        match &self.0 {
            Engine::Sqlite(c) => Self::with(c, sql, |st| {
                match st.execute(params_from_iter((0..p.count()).map(|i| p.at(i)))) {
                    Ok(n) => Ok(Ok(n)),
                    Err(e) => match unique_columns(&e) {
                        Some(cols) => Ok(Err(cols)),
                        None => Err(e.into()),
                    },
                }
            }),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.exec_unique(sql.text(), sql.cached(), &p),
        }
    }

    /// The first row of a query's answer through `f`, None if it has none.
    #[inline]
    pub(in crate::store) fn one<S: Sql, P: Params, T>(
        &self,
        sql: S,
        p: P,
        f: impl FnOnce(&Row<'_>) -> ApiResult<T>,
    ) -> ApiResult<Option<T>> {
        match &self.0 {
            Engine::Sqlite(c) => Self::with(c, sql, |st| {
                let mut rows = st.query(params_from_iter((0..p.count()).map(|i| p.at(i))))?;
                match rows.next()? {
                    Some(r) => f(&Row::engine(r)).map(Some),
                    None => Ok(None),
                }
            }),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => {
                let mut f = Some(f);
                let mut out = None;
                c.each(sql.text(), sql.cached(), &p, Some(1), &mut |r| {
                    if let Some(f) = f.take() {
                        out = Some(f(&Row::pg(r))?);
                    }
                    Ok(())
                })?;
                Ok(out)
            }
        }
    }

    /// Every row of a query's answer through `f`, in order.
    #[inline]
    pub(in crate::store) fn all<S: Sql, P: Params, T>(
        &self,
        sql: S,
        p: P,
        mut f: impl FnMut(&Row<'_>) -> ApiResult<T>,
    ) -> ApiResult<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, p, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Each row of a query's answer to `f`, in order.
    #[inline]
    pub(in crate::store) fn each<S: Sql, P: Params>(
        &self,
        sql: S,
        p: P,
        mut f: impl FnMut(&Row<'_>) -> ApiResult<()>,
    ) -> ApiResult<()> {
        match &self.0 {
            Engine::Sqlite(c) => Self::with(c, sql, |st| {
                let mut rows = st.query(params_from_iter((0..p.count()).map(|i| p.at(i))))?;
                while let Some(r) = rows.next()? {
                    f(&Row::engine(r))?;
                }
                Ok(())
            }),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.each(sql.text(), sql.cached(), &p, None, &mut |r| f(&Row::pg(r))),
        }
    }

    /// Whether a query answers any row.
    #[inline]
    pub(in crate::store) fn exists<S: Sql, P: Params>(&self, sql: S, p: P) -> ApiResult<bool> {
        match &self.0 {
            Engine::Sqlite(c) => Self::with(c, sql, |st| {
                Ok(st.exists(params_from_iter((0..p.count()).map(|i| p.at(i))))?)
            }),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => {
                let mut any = false;
                c.each(sql.text(), sql.cached(), &p, Some(1), &mut |_| {
                    any = true;
                    Ok(())
                })?;
                Ok(any)
            }
        }
    }

    /// A statement with no values and no answer that the caller must see
    /// fail as the engine failed (the writer's transaction control), from
    /// the statement cache: parsed once, not once per use.
    pub(in crate::store) fn control(&self, sql: &str) -> Result<(), DbError> {
        match &self.0 {
            Engine::Sqlite(c) => {
                c.prepare_cached(sql)?.execute([])?;
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.control(sql),
        }
    }

    /// Rows changed by every statement on this connection since it was
    /// opened (a write that changed none leaves it as it was).
    #[inline]
    pub(in crate::store) fn total_changes(&self) -> u64 {
        match &self.0 {
            Engine::Sqlite(c) => c.total_changes(),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.total_changes(),
        }
    }

    /// How many prepared statements the connection keeps.
    pub(in crate::store) fn set_statement_cache(&self, n: usize) {
        match &self.0 {
            Engine::Sqlite(c) => c.set_prepared_statement_cache_capacity(n),
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.set_statement_cache(n),
        }
    }

    /// Statements separated by `;`, with no values and no answer (DDL,
    /// savepoints).
    pub(in crate::store) fn script(&self, sql: &str) -> ApiResult<()> {
        match &self.0 {
            Engine::Sqlite(c) => {
                c.execute_batch(sql)?;
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Engine::Pg(c) => c.script(sql),
        }
    }
}

#[cfg(test)]
impl Conn {
    /// A private in-memory database.
    pub fn open_in_memory() -> rusqlite::Result<Conn> {
        rusqlite::Connection::open_in_memory().map(Conn::from)
    }

    /// A database file opened read-write (created if missing), as it is.
    pub fn open(path: &std::path::Path) -> rusqlite::Result<Conn> {
        rusqlite::Connection::open(path).map(Conn::from)
    }
}

impl Conn {
    /// The SQLite connection, for the engine's own statements (catalogue,
    /// pragmas, maintenance) in `store/sqlite/`; on a PostgreSQL
    /// connection, the error saying the statement is SQLite's.
    #[inline]
    pub(super) fn engine(&self) -> rusqlite::Result<&rusqlite::Connection> {
        self.lite().ok_or_else(|| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
                Some("an SQLite statement on a PostgreSQL connection".into()),
            )
        })
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        // A collection's table is named from the schema snapshot a request
        // read; when the collection is deleted between that read and the
        // request's write, the table is gone: the request came after the
        // delete (404), not a server error.
        if let rusqlite::Error::SqliteFailure(_, Some(m)) = &e {
            if m.starts_with("no such table: ") {
                return ApiError::NotFound("The requested resource wasn't found.".into());
            }
        }
        ApiError::Internal(format!("sqlite: {e}"))
    }
}

/// The columns of a UNIQUE constraint a write broke, if that is the error
/// ("UNIQUE constraint failed: users.email, users.x").
fn unique_columns(e: &rusqlite::Error) -> Option<Vec<String>> {
    if let rusqlite::Error::SqliteFailure(f, Some(msg)) = e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("UNIQUE") {
            return Some(
                msg.rsplit(':')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(|part| {
                        part.trim()
                            .rsplit('.')
                            .next()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect(),
            );
        }
    }
    None
}

/// The storage fault behind a SQLite error, if it is one.
pub fn classify(e: &rusqlite::Error) -> Option<Fault> {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DiskFull => Some(Fault::Full),
            C::ReadOnly => Some(Fault::ReadOnly),
            C::SystemIoFailure | C::CannotOpen => {
                // SQLITE_IOERR's extended codes don't say ENOSPC; the OS
                // error of the failed call does (rusqlite doesn't carry it,
                // the message often does).
                Some(crate::store::health::classify_text(&e.to_string()).unwrap_or(Fault::Io))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{args, SqlValue};

    fn db() -> Conn {
        let c = Conn::open_in_memory().unwrap();
        c.script("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, b BLOB, x TEXT)")
            .unwrap();
        c
    }

    /// Values of several lists bind one after the other, in order, and
    /// every kind of value keeps its storage class.
    #[test]
    fn params_bind_in_order() {
        let c = db();
        let first = vec![SqlValue::Text("a".into())];
        let rest: Vec<SqlValue> = vec![SqlValue::Real(1.5), SqlValue::Blob(vec![1, 2])];
        assert_eq!(
            c.exec(
                "INSERT INTO t (id, n, f, b, x) VALUES (?, ?, ?, ?, ?)",
                (&first, [7_i64], &rest, [None::<&str>]),
            )
            .unwrap(),
            1
        );
        let got = c
            .one("SELECT id, n, f, b, x FROM t WHERE id = ?1", ["a"], |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<i64>(1)?,
                    r.get::<f64>(2)?,
                    r.get::<Vec<u8>>(3)?,
                    r.get::<Option<String>>(4)?,
                ))
            })
            .unwrap();
        assert_eq!(got, Some(("a".into(), 7, 1.5, vec![1, 2], None)));
        // Too few values is an error, as the engine's own API says.
        assert!(c
            .exec("INSERT INTO t (id, n) VALUES (?, ?)", ["b"])
            .is_err());
        // No row: None; many: all of them, in order.
        assert_eq!(
            c.one("SELECT n FROM t WHERE id = 'none'", (), |r| r.get::<i64>(0))
                .unwrap(),
            None
        );
        c.exec(
            uncached("INSERT INTO t (id, n) VALUES (?1, ?2)"),
            args!["b", 8_u32],
        )
        .unwrap();
        assert_eq!(
            c.all("SELECT n FROM t ORDER BY id", (), |r| r.get::<i64>(0))
                .unwrap(),
            vec![7, 8]
        );
        assert!(c.exists("SELECT 1 FROM t WHERE n = ?1", [8_i64]).unwrap());
        assert!(!c.exists("SELECT 1 FROM t WHERE n = ?1", [9_i64]).unwrap());
    }

    /// A column read as another type is an error, not a made-up value.
    #[test]
    fn columns_are_read_as_their_type_only() {
        let c = db();
        c.exec(
            "INSERT INTO t (id, n) VALUES (?1, ?2)",
            args!["a", 70_000_i64],
        )
        .unwrap();
        let read = |sql: &str| c.one(uncached(sql), (), |r| r.get::<String>(0));
        assert!(read("SELECT n FROM t").is_err());
        assert!(c.one("SELECT n FROM t", (), |r| r.get::<u16>(0)).is_err());
        assert_eq!(
            c.one("SELECT n FROM t", (), |r| r.get::<u32>(0)).unwrap(),
            Some(70_000)
        );
        assert_eq!(
            c.one("SELECT n FROM t", (), |r| r.get::<f64>(0)).unwrap(),
            Some(70_000.0)
        );
        assert!(c.one("SELECT f FROM t", (), |r| r.get::<i64>(0)).is_err());
    }

    /// A write that breaks a UNIQUE constraint names its columns; any other
    /// failure stays an error.
    #[test]
    fn unique_violations_name_their_columns() {
        let c = db();
        c.script("CREATE UNIQUE INDEX t_nx ON t (n, x)").unwrap();
        let ins = "INSERT INTO t (id, n, x) VALUES (?1, ?2, ?3)";
        assert_eq!(c.exec_unique(ins, args!["a", 1_i64, "q"]).unwrap(), Ok(1));
        assert_eq!(
            c.exec_unique(ins, args!["b", 1_i64, "q"]).unwrap(),
            Err(vec!["n".to_string(), "x".to_string()])
        );
        assert_eq!(
            c.exec_unique(ins, args!["a", 2_i64, "q"]).unwrap(),
            Err(vec!["id".to_string()])
        );
        assert!(c
            .exec_unique("INSERT INTO nowhere VALUES (?1)", ["a"])
            .is_err());
    }

    /// The writer's transaction control reports the engine's failure.
    #[test]
    fn control_statements_report_failures() {
        let c = db();
        c.control(crate::store::dialect::BEGIN_WRITE).unwrap();
        let e = c.control(crate::store::dialect::BEGIN_WRITE).unwrap_err();
        assert!(e.text.contains("within a transaction"), "{e}");
        assert_eq!(e.fault, None);
        c.control("COMMIT").unwrap();
    }
}
