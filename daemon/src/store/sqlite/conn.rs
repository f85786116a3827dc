//! The store's connection handle over an SQLite connection, and how
//! SQLite's errors become the API's.

use crate::error::ApiError;
use crate::store::health::Fault;

/// A connection to the database, as the store lends it to what runs in a
/// read or a write (the record domain, sync, realtime): outside `store`
/// it is only passed on to the store's functions, which know its engine.
/// One engine now; an enum of engines later.
pub struct Conn(rusqlite::Connection);

impl From<rusqlite::Connection> for Conn {
    fn from(c: rusqlite::Connection) -> Self {
        Conn(c)
    }
}

#[cfg(test)]
impl Conn {
    /// A private in-memory database.
    pub fn open_in_memory() -> rusqlite::Result<Conn> {
        rusqlite::Connection::open_in_memory().map(Conn)
    }

    /// A database file opened read-write (created if missing), as it is.
    pub fn open(path: &std::path::Path) -> rusqlite::Result<Conn> {
        rusqlite::Connection::open(path).map(Conn)
    }
}

// The store's own modules run their statements on the engine's connection;
// outside `store/`, `store::seam` refuses a call of its statement methods.
impl std::ops::Deref for Conn {
    type Target = rusqlite::Connection;
    #[inline]
    fn deref(&self) -> &rusqlite::Connection {
        &self.0
    }
}

impl std::ops::DerefMut for Conn {
    #[inline]
    fn deref_mut(&mut self) -> &mut rusqlite::Connection {
        &mut self.0
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
