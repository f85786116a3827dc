//! The database key (encryption at rest, cargo feature `sqlcipher`).
//!
//! The key comes from a file only — `database_key_file`, or the systemd
//! credential `$CREDENTIALS_DIRECTORY/database-key` — never from the command
//! line or inline in the configuration, and it is never logged. The file
//! must be private: no access for others, and group read only on a
//! root-owned file (root:keepd 0640, as /etc/keepd/keepd.toml).
//!
//! Its content, trimmed, is a raw 256-bit key when it is 64 hex digits
//! (`PRAGMA key = "x'…'"`: no key derivation per connection), a passphrase
//! otherwise (SQLCipher derives the key with PBKDF2 on every connection
//! open, which costs time on a small device).
//!
//! Built without the feature, any configured key is refused at start.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The credential name systemd's `LoadCredential=database-key:PATH` uses.
pub const CREDENTIAL: &str = "database-key";

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a database key is configured ({0}), but this keepd was built without encryption support (cargo feature `sqlcipher`); use a build with it, or remove the key")]
    Unsupported(String),
    #[error("the database key file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}: the database key is wrong or the database is not encrypted (a plaintext database is encrypted with `keepd rekey --new-key-file PATH`)")]
    Wrong(PathBuf),
    #[error("{0}: not a readable database: it is encrypted (set database_key_file or the database-key credential) or damaged")]
    NoKey(PathBuf),
    #[error("{0}: not a readable database: it is damaged, or encrypted and this keepd was built without encryption support (cargo feature `sqlcipher`)")]
    NotADatabase(PathBuf),
}

/// A database key. Cloning shares it; `Debug` never shows it.
#[derive(Clone)]
pub struct DbKey {
    /// What `PRAGMA key` / `ATTACH … KEY` take: `x'<64 hex>'` or the passphrase.
    value: Arc<zeroize::Zeroizing<String>>,
    raw: bool,
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.raw {
            "DbKey(raw, redacted)"
        } else {
            "DbKey(passphrase, redacted)"
        })
    }
}

impl PartialEq for DbKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.value.as_bytes().ct_eq(other.value.as_bytes()))
    }
}

impl DbKey {
    /// Reads and checks a key file.
    pub fn read(path: &Path) -> Result<DbKey, KeyError> {
        if !cfg!(feature = "sqlcipher") {
            return Err(KeyError::Unsupported(path.display().to_string()));
        }
        let bad = |message: String| KeyError::File {
            path: path.to_path_buf(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("is not a regular file".into()));
        }
        if let Some(why) = loose_mode(meta.mode(), meta.uid()) {
            return Err(bad(format!(
                "has mode {:04o} (owner uid {}): {why}; refusing to use it",
                meta.mode() & 0o7777,
                meta.uid()
            )));
        }
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?);
        DbKey::parse(&text).map_err(|m| bad(m.into()))
    }

    /// A key from the file's content (trimmed).
    fn parse(text: &str) -> Result<DbKey, &'static str> {
        let t = text.trim();
        if t.is_empty() {
            return Err("is empty");
        }
        if t.contains('\0') {
            return Err("holds a NUL byte");
        }
        let raw = t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit());
        let value = if raw {
            format!("x'{t}'")
        } else {
            t.to_string()
        };
        Ok(DbKey {
            value: Arc::new(zeroize::Zeroizing::new(value)),
            raw,
        })
    }

    /// A raw 256-bit key (64 hex digits) rather than a passphrase.
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// The value for `PRAGMA key` and `ATTACH … KEY`.
    pub(crate) fn sql_value(&self) -> &str {
        self.value.as_str()
    }
}

pub(crate) use crate::util::loose_mode;

/// Where the key is read from: `database_key_file` when set, else the
/// systemd credential when present (None: no key, a plaintext database).
pub fn location(database_key_file: &str) -> Option<PathBuf> {
    if !database_key_file.is_empty() {
        return Some(PathBuf::from(database_key_file));
    }
    let cred = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let p = Path::new(&cred).join(CREDENTIAL);
    p.exists().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_keys_and_passphrases() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let k = DbKey::parse(&format!("  {hex}\n")).unwrap();
        assert!(k.is_raw());
        assert_eq!(k.sql_value(), format!("x'{hex}'"));
        // 63 digits, or a non-hex digit: a passphrase.
        let k = DbKey::parse(&hex[1..]).unwrap();
        assert!(!k.is_raw());
        let k = DbKey::parse("correct horse battery 'staple'\n").unwrap();
        assert!(!k.is_raw());
        assert_eq!(k.sql_value(), "correct horse battery 'staple'");
        assert!(DbKey::parse(" \n\t").is_err());
        assert!(!format!("{k:?}").contains("horse"));
        assert_eq!(k, DbKey::parse("correct horse battery 'staple'").unwrap());
        assert_ne!(k, DbKey::parse("correct horse battery").unwrap());
    }

    #[test]
    fn modes() {
        for (mode, uid, ok) in [
            (0o100600, 1000, true),
            (0o100400, 1000, true),
            (0o100640, 0, true),
            (0o100440, 0, true),
            (0o100640, 1000, false),
            (0o100660, 0, false),
            (0o100604, 1000, false),
            (0o100644, 0, false),
            (0o100601, 1000, false),
        ] {
            assert_eq!(loose_mode(mode, uid).is_none(), ok, "{mode:o} uid {uid}");
        }
    }
}
