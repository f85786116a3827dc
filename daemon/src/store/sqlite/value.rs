//! The store's values to and from rusqlite's: binding lends the value's
//! text or bytes to SQLite without a copy, reading lends the row's.

use crate::store::value::{SqlRef, SqlValue};
use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

impl ToSql for SqlValue {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            SqlValue::Null => ValueRef::Null,
            SqlValue::Integer(i) => ValueRef::Integer(*i),
            SqlValue::Real(f) => ValueRef::Real(*f),
            SqlValue::Text(s) => ValueRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl FromSql for SqlValue {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match v {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(i) => SqlValue::Integer(i),
            ValueRef::Real(f) => SqlValue::Real(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        })
    }
}

impl ToSql for SqlRef<'_> {
    #[inline]
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            SqlRef::Null => ValueRef::Null,
            SqlRef::Integer(i) => ValueRef::Integer(i),
            SqlRef::Real(f) => ValueRef::Real(f),
            SqlRef::Text(t) => ValueRef::Text(t),
            SqlRef::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl<'a> From<ValueRef<'a>> for SqlRef<'a> {
    #[inline]
    fn from(v: ValueRef<'a>) -> Self {
        match v {
            ValueRef::Null => SqlRef::Null,
            ValueRef::Integer(i) => SqlRef::Integer(i),
            ValueRef::Real(f) => SqlRef::Real(f),
            ValueRef::Text(t) => SqlRef::Text(t),
            ValueRef::Blob(b) => SqlRef::Blob(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binding lends the value's own bytes to SQLite (no copy on the hot
    /// path), and reading lends the row's.
    #[test]
    fn values_are_lent_both_ways() {
        let v = SqlValue::Text("abc".into());
        match v.to_sql().unwrap() {
            ToSqlOutput::Borrowed(ValueRef::Text(t)) => {
                let SqlValue::Text(s) = &v else {
                    unreachable!()
                };
                assert_eq!(t.as_ptr(), s.as_ptr());
            }
            other => panic!("not borrowed: {other:?}"),
        }
        let row = b"xyz".as_slice();
        let SqlRef::Blob(b) = SqlRef::from(ValueRef::Blob(row)) else {
            panic!("not a blob")
        };
        assert_eq!(b.as_ptr(), row.as_ptr());
        let c = crate::store::Conn::open_in_memory().unwrap();
        let back: SqlValue = c
            .one("SELECT ?1", [SqlValue::Real(1.5)], |r| r.get(0))
            .unwrap()
            .unwrap();
        assert_eq!(back, SqlValue::Real(1.5));
    }
}
