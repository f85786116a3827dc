//! The store's statement API over a PostgreSQL session (`Conn`'s
//! PostgreSQL arm).
//!
//! - Placeholders: the store writes SQLite's `?` and `?N`; each statement
//!   text is rewritten once to `$N` (outside string literals, quoted
//!   identifiers and comments) and prepared, and the prepared statement is
//!   kept per session under the original text.
//! - Values are bound typed, by the type PostgreSQL inferred for the
//!   placeholder: an integer to a `boolean` is `<> 0`, to `double
//!   precision` a real, to text its decimal digits; text to a number is
//!   parsed; anything to `jsonb` its text. This keeps SQLite's loose typing
//!   where the store relies on it (booleans bound as 0/1, numbers bound as
//!   text by the filter) while every value still travels as a parameter.
//! - Columns are read by their type: `boolean` and the integer types as an
//!   integer (0/1 for booleans, as SQLite stores them), `real`/`double
//!   precision`/`numeric` as a real (an integral `numeric` as an integer),
//!   text/`json`/`jsonb` as text, `bytea` as bytes.
//! - A UNIQUE violation (SQLSTATE 23505) names its columns from the
//!   server's detail (`Key (a, b)=(…)`); a full disk, a read-only server,
//!   an I/O failure or a lost session is a storage fault for the writer.

use crate::error::{ApiError, ApiResult};
use crate::store::health::Fault;
use crate::store::sqlite::DbError;
use crate::store::value::{Params, SqlRef};
use bytes::{BufMut, BytesMut};
use postgres::types::{FromSql, IsNull, ToSql, Type};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// A PostgreSQL session as the store's connection.
pub struct PgConn {
    /// None only while being dropped.
    client: RefCell<Option<postgres::Client>>,
    /// Prepared statements by their text as the store wrote it.
    cache: RefCell<HashMap<String, postgres::Statement>>,
    capacity: Cell<usize>,
    /// Rows changed by statements run through this session.
    changes: Cell<u64>,
    /// How a lost session is replaced, if it may be.
    renew: Option<Renew>,
}

/// A lost session (the server restarted, an administrator ended it, the
/// network broke) replaced by a new one from the pool: a reader's at its
/// next query (retried once: it only reads), the writer's at its next
/// BEGIN (never inside a transaction, whose first part died with the old
/// session).
pub struct Renew {
    pub pool: std::sync::Arc<super::pool::Pool>,
    /// Run first on a new session (a reader's `SET
    /// default_transaction_read_only`).
    pub setup: &'static str,
    /// Whether the session only reads (its queries may be run again).
    pub reads_only: bool,
}

/// Whether `e` says the session is gone.
fn lost(e: &postgres::Error) -> bool {
    e.is_closed()
        || e.code().is_some_and(|c| {
            c == &postgres::error::SqlState::ADMIN_SHUTDOWN
                || c == &postgres::error::SqlState::CRASH_SHUTDOWN
                || c.code().starts_with("08")
        })
}

impl PgConn {
    pub fn new(client: postgres::Client) -> PgConn {
        PgConn {
            client: RefCell::new(Some(client)),
            cache: RefCell::new(HashMap::new()),
            capacity: Cell::new(128),
            changes: Cell::new(0),
            renew: None,
        }
    }

    /// This session replaced by a new one of `renew.pool` when lost.
    pub fn renewable(mut self, renew: Renew) -> PgConn {
        self.renew = Some(renew);
        self
    }

    /// A new session in place of the lost one (its statements forgotten).
    fn renew(&self) -> ApiResult<()> {
        let Some(r) = &self.renew else {
            return Err(ApiError::internal("postgres: session lost"));
        };
        let new = r
            .pool
            .take()
            .map_err(|e| ApiError::Internal(format!("postgres: {e}")))?;
        let old = self
            .client
            .try_borrow_mut()
            .map_err(|_| ApiError::internal("postgres: session already in use by this thread"))?
            .replace(new);
        drop(old);
        r.pool.forget();
        self.cache.borrow_mut().clear();
        if !r.setup.is_empty() {
            self.client()?.batch_execute(r.setup).map_err(api_error)?;
        }
        tracing::warn!("a PostgreSQL session was lost and replaced");
        Ok(())
    }

    /// Whether the session is known to be gone.
    fn closed(&self) -> bool {
        self.client
            .try_borrow()
            .map(|c| c.as_ref().is_none_or(postgres::Client::is_closed))
            .unwrap_or(false)
    }

    fn query<P: Params>(
        &self,
        sql: &str,
        cached: bool,
        p: &P,
    ) -> ApiResult<Result<Vec<postgres::Row>, postgres::Error>> {
        let st = if cached {
            self.cache.borrow().get(sql).cloned()
        } else {
            None
        };
        let st = match st {
            Some(st) => st,
            None => {
                let text = placeholders(sql);
                match self.client()?.prepare(&text) {
                    Ok(st) => {
                        if cached {
                            let mut cache = self.cache.borrow_mut();
                            if cache.len() >= self.capacity.get() {
                                cache.clear();
                            }
                            cache.insert(sql.to_string(), st.clone());
                        }
                        st
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        let binds: Vec<Bind<'_>> = (0..p.count()).map(|i| Bind(p.at(i))).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let r = self.client()?.query(&st, &refs);
        Ok(r)
    }

    fn client(&self) -> ApiResult<std::cell::RefMut<'_, postgres::Client>> {
        let b = self
            .client
            .try_borrow_mut()
            .map_err(|_| ApiError::internal("postgres: session already in use by this thread"))?;
        std::cell::RefMut::filter_map(b, Option::as_mut)
            .map_err(|_| ApiError::internal("postgres: session closed"))
    }

    fn statement(&self, sql: &str, cached: bool) -> ApiResult<postgres::Statement> {
        if cached {
            if let Some(st) = self.cache.borrow().get(sql) {
                return Ok(st.clone());
            }
        }
        let text = placeholders(sql);
        let st = self.client()?.prepare(&text).map_err(api_error)?;
        if cached {
            let mut cache = self.cache.borrow_mut();
            if cache.len() >= self.capacity.get() {
                cache.clear();
            }
            cache.insert(sql.to_string(), st.clone());
        }
        Ok(st)
    }

    fn run<P: Params>(
        &self,
        sql: &str,
        cached: bool,
        p: &P,
    ) -> Result<Result<u64, postgres::Error>, ApiError> {
        let st = self.statement(sql, cached)?;
        let binds: Vec<Bind<'_>> = (0..p.count()).map(|i| Bind(p.at(i))).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            binds.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
        let r = self.client()?.execute(&st, &refs);
        if let Ok(n) = r {
            self.changes.set(self.changes.get() + n);
        }
        Ok(r)
    }

    pub(in crate::store) fn exec<P: Params>(
        &self,
        sql: &str,
        cached: bool,
        p: &P,
    ) -> ApiResult<usize> {
        let n = self.run(sql, cached, p)?.map_err(api_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(in crate::store) fn exec_unique<P: Params>(
        &self,
        sql: &str,
        cached: bool,
        p: &P,
    ) -> ApiResult<Result<usize, Vec<String>>> {
        match self.run(sql, cached, p)? {
            Ok(n) => Ok(Ok(usize::try_from(n).unwrap_or(usize::MAX))),
            Err(e) => match unique_columns(&e) {
                Some(cols) => Ok(Err(cols)),
                None => Err(api_error(e)),
            },
        }
    }

    /// Each row (at most `limit`) to `f`. The rows are read whole before
    /// `f` sees the first, so `f` may run statements on this session.
    pub(in crate::store) fn each<P: Params>(
        &self,
        sql: &str,
        cached: bool,
        p: &P,
        limit: Option<usize>,
        f: &mut dyn FnMut(&postgres::Row) -> ApiResult<()>,
    ) -> ApiResult<()> {
        let reads_only = self.renew.as_ref().is_some_and(|r| r.reads_only);
        if reads_only && self.closed() {
            self.renew()?;
        }
        let rows = match self.query(sql, cached, p)? {
            Err(e) if reads_only && lost(&e) => {
                self.renew()?;
                self.query(sql, cached, p)?.map_err(api_error)?
            }
            r => r.map_err(api_error)?,
        };
        for r in rows.iter().take(limit.unwrap_or(usize::MAX)) {
            f(r)?;
        }
        Ok(())
    }

    /// Transaction control: the engine's failure as it is. SQLite's
    /// `BEGIN IMMEDIATE` (the dialect's `BEGIN_WRITE`) is a `BEGIN` that
    /// takes the schema's writer lock (`changelog`): the writers of every
    /// process on the schema take turns, so the change log's order is
    /// commit order.
    pub(in crate::store) fn control(&self, sql: &str) -> Result<(), DbError> {
        let sql = if sql == crate::store::dialect::BEGIN_WRITE {
            super::changelog::BEGIN_WRITE
        } else {
            sql
        };
        let fail = |e: ApiError| DbError {
            fault: Some(Fault::Io),
            text: e.to_string(),
        };
        let begin = sql == "BEGIN" || sql == super::changelog::BEGIN_WRITE;
        if begin && self.renew.is_some() && self.closed() {
            self.renew().map_err(fail)?;
        }
        let r = self.client().map_err(fail)?.batch_execute(sql);
        match r {
            // Nothing was done in the transaction yet: BEGIN again on a new
            // session.
            Err(e) if begin && self.renew.is_some() && lost(&e) => {
                self.renew().map_err(fail)?;
                self.client()
                    .map_err(fail)?
                    .batch_execute(sql)
                    .map_err(db_error)
            }
            r => r.map_err(db_error),
        }
    }

    /// Statements with no values and no answer; table definitions in the
    /// store's type names are spelled for PostgreSQL first (`ddl::spell`).
    pub(in crate::store) fn script(&self, sql: &str) -> ApiResult<()> {
        self.client()?
            .batch_execute(&super::ddl::spell(sql))
            .map_err(api_error)
    }

    /// The columns a SELECT gives, asked of the server without running it:
    /// each one's name and type name. `Err`: the server's reason.
    pub(in crate::store) fn result_columns(
        &self,
        sql: &str,
    ) -> Result<Vec<(String, Option<String>)>, String> {
        let st = self
            .client()
            .map_err(|e| e.to_string())?
            .prepare(&placeholders(sql))
            .map_err(|e| text(&e))?;
        Ok(st
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), Some(c.type_().name().to_string())))
            .collect())
    }

    pub(in crate::store) fn total_changes(&self) -> u64 {
        self.changes.get()
    }

    pub(in crate::store) fn set_statement_cache(&self, n: usize) {
        self.capacity.set(n.max(1));
    }
}

impl Drop for PgConn {
    /// Closing a session blocks on the client's own runtime, which a thread
    /// of tokio's may not do: there it is closed on a thread of its own.
    fn drop(&mut self) {
        self.cache.get_mut().clear();
        if tokio::runtime::Handle::try_current().is_ok() {
            if let Some(client) = self.client.get_mut().take() {
                let _ = std::thread::Builder::new()
                    .name("keepd-pg-close".into())
                    .spawn(move || drop(client));
            }
        }
    }
}

/// `?` and `?N` as `$N`, outside literals, quoted identifiers and
/// comments. A bare `?` is one more than the largest number so far, as
/// SQLite numbers it.
pub fn placeholders(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut max = 0u32;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                out.push_str(&sql[last..i]);
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                let n = if j > i + 1 {
                    sql[i + 1..j].parse().unwrap_or(0)
                } else {
                    max + 1
                };
                max = max.max(n);
                out.push('$');
                out.push_str(&n.to_string());
                i = j;
                last = j;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[last.min(sql.len())..]);
    out
}

/// A value bound by the type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct Bind<'a>(SqlRef<'a>);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn text_of(v: SqlRef<'_>) -> Result<std::borrow::Cow<'_, str>, BoxError> {
    Ok(match v {
        SqlRef::Integer(i) => i.to_string().into(),
        SqlRef::Real(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{f:.1}").into()
            } else {
                f.to_string().into()
            }
        }
        SqlRef::Text(t) | SqlRef::Blob(t) => std::str::from_utf8(t)?.into(),
        SqlRef::Null => "".into(),
    })
}

fn int_of(v: SqlRef<'_>) -> Result<i64, BoxError> {
    match v {
        SqlRef::Integer(i) => Ok(i),
        SqlRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        other => Ok(text_of(other)?.trim().parse()?),
    }
}

fn real_of(v: SqlRef<'_>) -> Result<f64, BoxError> {
    match v {
        SqlRef::Integer(i) => Ok(i as f64),
        SqlRef::Real(f) => Ok(f),
        other => Ok(text_of(other)?.trim().parse()?),
    }
}

impl ToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let v = self.0;
        if v == SqlRef::Null {
            return Ok(IsNull::Yes);
        }
        match *ty {
            Type::BOOL => out.put_u8(u8::from(match v {
                SqlRef::Text(t) => matches!(t, b"1" | b"true" | b"TRUE" | b"t"),
                other => real_of(other)? != 0.0,
            })),
            Type::INT2 => out.put_i16(i16::try_from(int_of(v)?)?),
            Type::INT4 => out.put_i32(i32::try_from(int_of(v)?)?),
            Type::INT8 => out.put_i64(int_of(v)?),
            Type::FLOAT4 => out.put_f32(real_of(v)? as f32),
            Type::FLOAT8 => out.put_f64(real_of(v)?),
            Type::BYTEA => match v {
                SqlRef::Blob(b) | SqlRef::Text(b) => out.put_slice(b),
                other => out.put_slice(text_of(other)?.as_bytes()),
            },
            Type::JSONB => {
                out.put_u8(1);
                out.put_slice(text_of(v)?.as_bytes());
            }
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
                out.put_slice(text_of(v)?.as_bytes())
            }
            ref other => {
                return Err(format!("a value can't be bound to a {other} parameter").into())
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column's bytes as the server sent them (binary format).
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn bad(i: usize, what: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("postgres: column {i}: {what}"))
}

/// Column `i` of a PostgreSQL row as the store reads values.
pub(in crate::store) fn get_ref(r: &postgres::Row, i: usize) -> ApiResult<SqlRef<'_>> {
    let ty = r
        .columns()
        .get(i)
        .map(|c| c.type_().clone())
        .ok_or_else(|| bad(i, "no such column"))?;
    let Raw(raw) = r.try_get::<_, Raw<'_>>(i).map_err(|e| bad(i, e))?;
    let Some(b) = raw else {
        return Ok(SqlRef::Null);
    };
    let fixed = |n: usize| -> ApiResult<&[u8]> {
        (b.len() == n)
            .then_some(b)
            .ok_or_else(|| bad(i, format!("{ty} of {} bytes", b.len())))
    };
    Ok(match ty {
        Type::BOOL => SqlRef::Integer(i64::from(fixed(1)?[0] != 0)),
        Type::INT2 => SqlRef::Integer(i64::from(i16::from_be_bytes(
            fixed(2)?.try_into().unwrap_or_default(),
        ))),
        Type::INT4 => SqlRef::Integer(i64::from(i32::from_be_bytes(
            fixed(4)?.try_into().unwrap_or_default(),
        ))),
        Type::OID => SqlRef::Integer(i64::from(u32::from_be_bytes(
            fixed(4)?.try_into().unwrap_or_default(),
        ))),
        Type::INT8 => SqlRef::Integer(i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())),
        Type::FLOAT4 => SqlRef::Real(f64::from(f32::from_be_bytes(
            fixed(4)?.try_into().unwrap_or_default(),
        ))),
        Type::FLOAT8 => SqlRef::Real(f64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())),
        Type::NUMERIC => numeric(b).ok_or_else(|| bad(i, "numeric out of range"))?,
        Type::BYTEA => SqlRef::Blob(b),
        Type::JSONB => SqlRef::Text(b.get(1..).unwrap_or_default()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            SqlRef::Text(b)
        }
        other => return Err(bad(i, format!("unexpected {other}"))),
    })
}

/// A binary `numeric`: an integer when it has no fraction and fits,
/// a real otherwise. None: NaN/infinity or malformed.
fn numeric(b: &[u8]) -> Option<SqlRef<'static>> {
    let word = |k: usize| -> Option<i16> { Some(i16::from_be_bytes([*b.get(k)?, *b.get(k + 1)?])) };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i32::from(word(2)?);
    let sign = word(4)? as u16;
    let dscale = word(6)?;
    if sign == 0xC000 || sign >= 0xD000 {
        return None;
    }
    let mut v = 0f64;
    let mut int: Option<i64> = Some(0);
    for k in 0..ndigits {
        let d = i64::from(word(8 + 2 * k)?);
        let power = weight - k as i32;
        v += d as f64 * 10_000f64.powi(power);
        int = match (int, power) {
            (Some(acc), p) if p >= 0 => 10_000i64
                .checked_pow(p as u32)
                .and_then(|m| d.checked_mul(m))
                .and_then(|x| acc.checked_add(x)),
            (acc, _) if d == 0 => acc,
            _ => None,
        };
    }
    let neg = sign == 0x4000;
    Some(match int {
        Some(n) if dscale == 0 => SqlRef::Integer(if neg { -n } else { n }),
        _ => SqlRef::Real(if neg { -v } else { v }),
    })
}

/// The columns of a UNIQUE violation, from `Key (a, b)=(…)`; an expression
/// (`lower(email)`) gives the column inside it.
fn unique_columns(e: &postgres::Error) -> Option<Vec<String>> {
    let db = e.as_db_error()?;
    if db.code() != &postgres::error::SqlState::UNIQUE_VIOLATION {
        return None;
    }
    Some(detail_columns(db.detail().unwrap_or_default()))
}

/// The columns named by a UNIQUE violation's detail, `Key (a, b)=(…)`.
fn detail_columns(detail: &str) -> Vec<String> {
    let inside = detail
        .strip_prefix("Key (")
        .and_then(|d| d.split_once(")=("))
        .map(|(cols, _)| cols)
        .unwrap_or_default();
    inside
        .split(", ")
        .map(|part| {
            let part = part.rsplit('(').next().unwrap_or(part);
            let part = part.split(&[')', ':'][..]).next().unwrap_or(part);
            part.trim_matches('"').to_string()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// The storage fault behind a PostgreSQL error, if it is one.
pub fn classify(e: &postgres::Error) -> Option<Fault> {
    use postgres::error::SqlState as S;
    match e.code() {
        Some(c) if c == &S::DISK_FULL || c == &S::INSUFFICIENT_RESOURCES => Some(Fault::Full),
        Some(c) if c == &S::READ_ONLY_SQL_TRANSACTION => Some(Fault::ReadOnly),
        Some(c) if c == &S::IO_ERROR || c.code().starts_with("58") => Some(Fault::Io),
        Some(_) => None,
        None if e.is_closed() => Some(Fault::Io),
        None => None,
    }
}

fn text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => super::connect::describe(e),
    }
}

fn db_error(e: postgres::Error) -> DbError {
    DbError {
        fault: classify(&e),
        text: text(&e),
    }
}

/// A PostgreSQL error as the API's: a missing table (a collection deleted
/// since the request read the schema) is a 404, as on SQLite.
pub(in crate::store) fn api_error(e: postgres::Error) -> ApiError {
    if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) {
        return ApiError::NotFound("The requested resource wasn't found.".into());
    }
    ApiError::Internal(format!("postgres: {}", text(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered() {
        assert_eq!(placeholders("SELECT ?1, ?2"), "SELECT $1, $2");
        assert_eq!(placeholders("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(placeholders("a = ?3 AND b = ?"), "a = $3 AND b = $4");
        assert_eq!(
            placeholders("x = '?' AND \"q?\" = ? -- ?\n AND y = ?"),
            "x = '?' AND \"q?\" = $1 -- ?\n AND y = $2"
        );
        assert_eq!(placeholders("/* ? */ ?12"), "/* ? */ $12");
    }

    fn bound(v: SqlRef<'_>, ty: &Type) -> Result<Option<Vec<u8>>, String> {
        let mut out = BytesMut::new();
        match Bind(v).to_sql(ty, &mut out) {
            Ok(IsNull::Yes) => Ok(None),
            Ok(IsNull::No) => Ok(Some(out.to_vec())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// SQLite's loose typing, as the store relies on it: each value is
    /// encoded as the type the server asks for, or refused.
    #[test]
    fn values_bind_as_the_placeholder_type() {
        use SqlRef::*;
        assert_eq!(bound(Integer(1), &Type::BOOL), Ok(Some(vec![1])));
        assert_eq!(bound(Integer(0), &Type::BOOL), Ok(Some(vec![0])));
        assert_eq!(bound(Text(b"true"), &Type::BOOL), Ok(Some(vec![1])));
        assert_eq!(
            bound(Integer(7), &Type::INT8),
            Ok(Some(7i64.to_be_bytes().to_vec()))
        );
        assert_eq!(
            bound(Integer(7), &Type::INT4),
            Ok(Some(7i32.to_be_bytes().to_vec()))
        );
        assert!(bound(Integer(1 << 40), &Type::INT4).is_err());
        assert_eq!(
            bound(Integer(2), &Type::FLOAT8),
            Ok(Some(2f64.to_be_bytes().to_vec()))
        );
        assert_eq!(
            bound(Text(b" 12 "), &Type::INT8),
            Ok(Some(12i64.to_be_bytes().to_vec()))
        );
        assert!(bound(Text(b"x"), &Type::INT8).is_err());
        assert!(bound(Real(1.5), &Type::INT8).is_err());
        assert_eq!(bound(Integer(42), &Type::TEXT), Ok(Some(b"42".to_vec())));
        assert_eq!(bound(Real(2.0), &Type::TEXT), Ok(Some(b"2.0".to_vec())));
        assert_eq!(
            bound(Text(b"[1]"), &Type::JSONB),
            Ok(Some(b"\x01[1]".to_vec()))
        );
        assert_eq!(bound(Blob(&[0, 1]), &Type::BYTEA), Ok(Some(vec![0, 1])));
        assert_eq!(bound(Null, &Type::INT8), Ok(None));
        assert!(bound(Integer(1), &Type::TIMESTAMPTZ).is_err());
    }

    #[test]
    fn unique_details_name_columns() {
        let cols = detail_columns;
        assert_eq!(cols("Key (title)=(first) already exists."), vec!["title"]);
        assert_eq!(cols("Key (a, b)=(1, 2) already exists."), vec!["a", "b"]);
        assert_eq!(
            cols("Key (lower(email::text))=(x) already exists."),
            vec!["email"]
        );
    }

    #[test]
    fn numerics_read_as_integers_or_reals() {
        // 12345678 = [1234, 5678], weight 1, scale 0.
        let b = [0, 2, 0, 1, 0, 0, 0, 0, 4, 210, 22, 46];
        assert_eq!(numeric(&b), Some(SqlRef::Integer(12_345_678)));
        // -1.5 = [1, 5000], weight 0, scale 1.
        let b = [0, 2, 0, 0, 0x40, 0, 0, 1, 0, 1, 19, 136];
        assert_eq!(numeric(&b), Some(SqlRef::Real(-1.5)));
        // NaN
        assert_eq!(numeric(&[0, 0, 0, 0, 0xC0, 0, 0, 0]), None);
    }
}
