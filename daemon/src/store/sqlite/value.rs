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
