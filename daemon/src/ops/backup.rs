//! Backups: a consistent snapshot of the database (`VACUUM INTO` on its own
//! read-only connection, so the writer is never stopped) and the stored
//! files, in a zip as PocketBase's (`data.db`, `storage/…`), encrypted with
//! age to the configured recipients — plaintext only when
//! `backup_encryption = "none"` is chosen. Backup files live in
//! `<data dir>/backups/` (0700; files 0600). An encrypted database
//! (`database_key_file`) stays encrypted in the snapshot, with the same
//! key: a backup restores only with the key it was taken with.
//!
//! Restore decrypts and unzips into `<data dir>/.restore/`, checks the
//! staged database with `PRAGMA integrity_check`, and only then marks it
//! ready; a wrong key or a damaged archive is a clear error and changes
//! nothing. The swap itself happens at the next start, before the database
//! is opened (`apply_pending`): the daemon exits after a restore request so
//! its service manager restarts it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const STAGE: &str = ".restore";
const READY: &str = "READY";
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Invalid(String),
    #[error("backup I/O: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, BackupError>;

fn invalid(m: impl Into<String>) -> BackupError {
    BackupError::Invalid(m.into())
}

/// How backups are written.
#[derive(Clone)]
pub enum Encryption {
    /// age, to these recipients.
    Age(Vec<age::x25519::Recipient>),
    /// Explicitly chosen plaintext.
    None,
}

pub fn backups_dir(data: &Path) -> PathBuf {
    data.join("backups")
}

/// PocketBase's rule for backup names.
pub fn valid_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".zip") else {
        return false;
    };
    !stem.is_empty()
        && name.len() <= 150
        && stem
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn private_dir(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
}

fn private_file(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
}

/// Writes backup `name` of the data dir (`key`: the database key). Blocking.
pub fn create(
    data: &Path,
    name: &str,
    enc: &Encryption,
    key: Option<&crate::store::DbKey>,
) -> Result<PathBuf> {
    if !valid_name(name) {
        return Err(invalid("Invalid backup name."));
    }
    let dir = backups_dir(data);
    private_dir(&dir)?;
    let dest = dir.join(name);
    if dest.exists() {
        return Err(invalid("Backup with the specified name already exists."));
    }
    let work = dir.join(format!(
        ".tmp-{}",
        crate::util::random_string(10, crate::util::ALPHANUM)
    ));
    private_dir(&work)?;
    let result = (|| -> Result<()> {
        // A consistent snapshot while the writer goes on.
        let snap = work.join("data.db");
        let conn = crate::store::open_read_only(&data.join("data.db"), key)
            .map_err(|e| invalid(format!("opening the database: {e}")))?;
        conn.execute("VACUUM INTO ?1", [snap.to_string_lossy().as_ref()])
            .map_err(|e| invalid(format!("snapshot: {e}")))?;
        drop(conn);
        let zip_path = work.join("backup.zip");
        {
            let f = private_file(&zip_path)?;
            let mut z = zip::ZipWriter::new(f);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(0o600);
            z.start_file("data.db", opts)
                .map_err(|e| invalid(e.to_string()))?;
            std::io::copy(&mut std::fs::File::open(&snap)?, &mut z)?;
            let storage = data.join("storage");
            if storage.is_dir() {
                add_tree(&mut z, &storage, "storage", opts)?;
            }
            z.finish().map_err(|e| invalid(e.to_string()))?;
        }
        let tmp_dest = work.join("final");
        {
            let mut out = private_file(&tmp_dest)?;
            let mut src = std::fs::File::open(&zip_path)?;
            match enc {
                Encryption::None => {
                    std::io::copy(&mut src, &mut out)?;
                }
                Encryption::Age(recipients) => {
                    let rs: Vec<&dyn age::Recipient> = recipients
                        .iter()
                        .map(|r| r as &dyn age::Recipient)
                        .collect();
                    let e = age::Encryptor::with_recipients(rs.into_iter())
                        .map_err(|e| invalid(format!("encryption: {e}")))?;
                    let mut w = e
                        .wrap_output(&mut out)
                        .map_err(|e| invalid(format!("encryption: {e}")))?;
                    std::io::copy(&mut src, &mut w)?;
                    w.finish()?;
                }
            }
            out.sync_all()?;
        }
        std::fs::rename(&tmp_dest, &dest)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| dest)
}

fn add_tree<W: Write + std::io::Seek>(
    z: &mut zip::ZipWriter<W>,
    dir: &Path,
    prefix: &str,
    opts: zip::write::SimpleFileOptions,
) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue; // temporary files
        }
        let path = entry.path();
        let inner = format!("{prefix}/{name}");
        if entry.file_type()?.is_dir() {
            add_tree(z, &path, &inner, opts)?;
        } else {
            z.start_file(inner, opts)
                .map_err(|e| invalid(e.to_string()))?;
            std::io::copy(&mut std::fs::File::open(&path)?, z)?;
        }
    }
    Ok(())
}

/// The backups: (key, size, modified) newest first.
pub fn list(data: &Path) -> Result<Vec<(String, u64, std::time::SystemTime)>> {
    let dir = backups_dir(data);
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !valid_name(&name) {
            continue;
        }
        let m = e.metadata()?;
        if m.is_file() {
            out.push((name, m.len(), m.modified()?));
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.2));
    Ok(out)
}

/// The path of an existing backup.
pub fn path(data: &Path, name: &str) -> Option<PathBuf> {
    let p = backups_dir(data).join(name);
    (valid_name(name) && p.is_file()).then_some(p)
}

/// Decrypts, unzips and checks backup `name` into the staging dir, then
/// marks it ready for the next start. Blocking.
/// `note` is kept with the staged data and handed back by `apply_pending`
/// (who asked, for the audit log of the restored database).
pub fn stage_restore(
    data: &Path,
    name: &str,
    identity: Option<&age::x25519::Identity>,
    note: &str,
    key: Option<&crate::store::DbKey>,
) -> Result<()> {
    let src = path(data, name).ok_or_else(|| invalid("Missing or invalid backup file."))?;
    let raw = std::fs::read(&src)?;
    let zip_bytes = if raw.starts_with(AGE_MAGIC) {
        let id = identity.ok_or_else(|| {
            invalid("The backup is encrypted and no backup_identity_file is configured.")
        })?;
        let d = age::Decryptor::new(&raw[..])
            .map_err(|e| invalid(format!("The backup can't be read: {e}.")))?;
        let mut r = d
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .map_err(|_| invalid("The backup can't be decrypted with the configured key."))?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| invalid(format!("The backup is damaged: {e}.")))?;
        out
    } else {
        raw
    };
    let stage = data.join(STAGE);
    let _ = std::fs::remove_dir_all(&stage);
    private_dir(&stage)?;
    let result = (|| -> Result<()> {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
            .map_err(|e| invalid(format!("The backup is not a valid archive: {e}.")))?;
        let mut has_db = false;
        for i in 0..z.len() {
            let mut f = z
                .by_index(i)
                .map_err(|e| invalid(format!("The backup is damaged: {e}.")))?;
            let name = f
                .name()
                .map_err(|e| invalid(format!("The backup is damaged: {e}.")))?
                .to_string();
            // Only data.db and storage/<safe>/<safe>/<safe>.
            let parts: Vec<&str> = name.split('/').collect();
            let ok = name == "data.db"
                || (parts.len() == 4
                    && parts[0] == "storage"
                    && parts[1..].iter().all(|p| crate::files::safe_name(p)));
            if f.is_dir() {
                continue;
            }
            if !ok {
                return Err(invalid(format!(
                    "The backup holds an unexpected entry: {name:?}."
                )));
            }
            has_db |= name == "data.db";
            let dest = stage.join(&name);
            if let Some(parent) = dest.parent() {
                private_dir(parent)?;
            }
            let mut out = private_file(&dest)?;
            std::io::copy(&mut f, &mut out)
                .map_err(|e| invalid(format!("The backup is damaged: {e}.")))?;
            out.sync_all()?;
        }
        if !has_db {
            return Err(invalid("The backup has no data.db."));
        }
        // With the current database key: a backup taken under another key
        // (or none) is refused here, not at the next start.
        let conn = crate::store::open_read_only(&stage.join("data.db"), key)
            .map_err(|e| invalid(format!("The backup's database can't be opened: {e}.")))?;
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| invalid(format!("The backup's database is damaged: {e}.")))?;
        if check != "ok" {
            return Err(invalid(format!(
                "The backup's database is damaged: {check}."
            )));
        }
        drop(conn);
        let mut ready = private_file(&stage.join(READY))?;
        ready.write_all(note.as_bytes())?;
        ready.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    result
}

/// At start, before the database opens: swaps a staged, checked restore
/// into place (the replaced files are kept in `.pre-restore/`). Returns
/// the restore's note when one was applied.
pub fn apply_pending(data: &Path) -> Result<Option<String>> {
    let stage = data.join(STAGE);
    if !stage.join(READY).exists() {
        if stage.exists() {
            let _ = std::fs::remove_dir_all(&stage);
        }
        return Ok(None);
    }
    let note = std::fs::read_to_string(stage.join(READY)).unwrap_or_default();
    let old = data.join(".pre-restore");
    let _ = std::fs::remove_dir_all(&old);
    private_dir(&old)?;
    for f in ["data.db", "data.db-wal", "data.db-shm"] {
        let p = data.join(f);
        if p.exists() {
            std::fs::rename(&p, old.join(f))?;
        }
    }
    if data.join("storage").exists() {
        std::fs::rename(data.join("storage"), old.join("storage"))?;
    }
    std::fs::rename(stage.join("data.db"), data.join("data.db"))?;
    if stage.join("storage").exists() {
        std::fs::rename(stage.join("storage"), data.join("storage"))?;
    }
    std::fs::remove_dir_all(&stage)?;
    std::fs::File::open(data)?.sync_all()?;
    Ok(Some(note))
}

/// Reads an age identity (`AGE-SECRET-KEY-1…`) from a file.
pub fn read_identity(path: &Path) -> Result<age::x25519::Identity> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| invalid(format!("{}: no age identity in the file", path.display())))
}

/// Parses recipients (`age1…`, comma-separated).
pub fn parse_recipients(s: &str) -> std::result::Result<Vec<age::x25519::Recipient>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.parse::<age::x25519::Recipient>()
                .map_err(|e| format!("{r}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("pb_backup_20261124.zip"));
        assert!(valid_name("a-b_c1.zip"));
        for bad in [
            "", ".zip", "A.zip", "../x.zip", "x.tar", "x y.zip", "x/y.zip",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
