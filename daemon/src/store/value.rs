//! Values as the store binds and reads them, whatever the engine: the five
//! storage classes SQL engines share. The engine's module converts them to
//! and from its driver's types (`store/sqlite/value.rs`), borrowing where
//! the driver lends.

/// A value bound to a statement's placeholder (or read whole from a row).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A column's value borrowed from the row it was read from (no copy of text
/// or bytes until the caller makes one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 as the engine stores it (not checked here).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Integer(i)
    }
}

impl From<f64> for SqlValue {
    fn from(f: f64) -> Self {
        SqlValue::Real(f)
    }
}

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        SqlValue::Integer(i64::from(b))
    }
}
