//! Whether writes reach the disk: the writer records each storage failure
//! (disk full, I/O error, read-only filesystem) and each commit that went
//! through; `ops::notify::monitor` reads this with the filesystem's state
//! (`statvfs`) and says it in `STATUS=` and the journal.

use std::sync::Mutex;
use std::time::SystemTime;

/// A storage failure class (what the operator must fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No space left (SQLITE_FULL, ENOSPC).
    Full,
    /// The filesystem or the database is read-only.
    ReadOnly,
    /// The device reported an error (SQLITE_IOERR, EIO).
    Io,
}

impl Fault {
    pub fn describe(self) -> &'static str {
        match self {
            Fault::Full => "disk full",
            Fault::ReadOnly => "read-only filesystem",
            Fault::Io => "I/O errors",
        }
    }
}

/// The last write failure not followed by a successful commit.
#[derive(Debug, Clone)]
pub struct WriteFailure {
    pub fault: Fault,
    pub detail: String,
    pub since: SystemTime,
}

#[derive(Debug, Default)]
pub struct Health {
    failing: Mutex<Option<WriteFailure>>,
}

impl Health {
    pub fn failure(&self) -> Option<WriteFailure> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A write failed: recorded when it is a storage failure.
    pub(crate) fn failed(&self, fault: Fault, detail: &str) {
        let mut g = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(f) if f.fault == fault => f.detail = detail.to_string(),
            _ => {
                *g = Some(WriteFailure {
                    fault,
                    detail: detail.to_string(),
                    since: SystemTime::now(),
                })
            }
        }
    }

    /// A transaction with writes committed: the disk takes writes again.
    pub(crate) fn committed(&self) {
        let mut g = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        *g = None;
    }
}

/// The storage fault an error message names (errors that reached the
/// writer already turned into text).
pub fn classify_text(s: &str) -> Option<Fault> {
    let s = s.to_ascii_lowercase();
    if s.contains("database or disk is full") || s.contains("no space left") {
        Some(Fault::Full)
    } else if s.contains("readonly database") || s.contains("read-only file system") {
        Some(Fault::ReadOnly)
    } else if s.contains("disk i/o error") || s.contains("input/output error") {
        Some(Fault::Io)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_clears_a_failure() {
        let h = Health::default();
        assert!(h.failure().is_none());
        h.failed(Fault::Full, "database or disk is full");
        let first = h.failure().unwrap();
        h.failed(Fault::Full, "again");
        assert_eq!(h.failure().unwrap().since, first.since);
        assert_eq!(h.failure().unwrap().detail, "again");
        h.committed();
        assert!(h.failure().is_none());
    }

    #[test]
    fn texts() {
        assert_eq!(
            classify_text("sqlite: database or disk is full"),
            Some(Fault::Full)
        );
        assert_eq!(
            classify_text("attempt to write a readonly database"),
            Some(Fault::ReadOnly)
        );
        assert_eq!(classify_text("disk I/O error"), Some(Fault::Io));
        assert_eq!(classify_text("UNIQUE constraint failed"), None);
    }
}
