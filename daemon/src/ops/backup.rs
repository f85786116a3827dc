//! Backups: a consistent snapshot of the database (`VACUUM INTO` on its own
//! read-only connection, so the writer is never stopped; on PostgreSQL the
//! schema's export in one repeatable-read transaction, `data.pgexport` in
//! place of `data.db`: `store::export`) and the stored
//! files, in a zip as PocketBase's (`data.db`, `storage/…`), encrypted with
//! age to the configured recipients — plaintext only when
//! `backup_encryption = "none"` is chosen. Backup files live in
//! `<data dir>/backups/` (0700; files 0600). An encrypted database
//! (`database_key_file`) stays encrypted in the snapshot, with the same
//! key: a backup restores only with the key it was taken with.
//!
//! Uploads (`Upload`) are written to a temporary file, synced, checked to
//! be a backup keepd could restore (age-encrypted, or a zip with `data.db`
//! when plaintext is the chosen mode), and only then published under their
//! name; a failed upload leaves nothing. Scheduled backups are named
//! `@auto_pb_backup_<app>_<time>.zip` as PocketBase's, and `prune_auto`
//! keeps the newest of them.
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

/// What a backup is taken of (and a restore goes into).
#[derive(Clone)]
pub enum Source {
    /// The SQLite file of the data dir, opened with its key (the
    /// command-line `keepd backup`, which runs beside the daemon).
    File(Option<crate::store::DbKey>),
    /// The open store: its own snapshot (`Store::backup_snapshot`) —
    /// SQLite's file or PostgreSQL's export.
    Store(std::sync::Arc<crate::store::Store>),
}

impl Source {
    /// Whether the database is PostgreSQL (its backups hold the export,
    /// `store::export::MEMBER`, instead of `data.db`).
    fn exports(&self) -> bool {
        matches!(self, Source::Store(s) if s.is_postgres())
    }

    fn key(&self) -> Option<&crate::store::DbKey> {
        match self {
            Source::File(k) => k.as_ref(),
            Source::Store(s) => s.key(),
        }
    }
}

pub fn backups_dir(data: &Path) -> PathBuf {
    data.join("backups")
}

/// The prefix of scheduled backups' names (PocketBase's).
pub const AUTO_PREFIX: &str = "@auto_pb_backup_";

/// PocketBase's rule for the names of backups created or uploaded through
/// the API: `[a-z0-9_-]+.zip`, at most 150 bytes.
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

/// A name a backup may be stored under: `valid_name`, or one with a
/// leading `@` (scheduled backups, `@auto_pb_backup_…`).
pub fn valid_key(key: &str) -> bool {
    valid_name(key.strip_prefix('@').unwrap_or(key))
}

/// The name of a scheduled backup made at `now`, as PocketBase's:
/// `@auto_pb_backup_<app name in snake case, ≤ 50>_<yyyymmddhhmmss>.zip`.
pub fn auto_name(app_name: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut app = snakecase(app_name);
    app.truncate(50);
    format!("{AUTO_PREFIX}{app}_{}.zip", now.format("%Y%m%d%H%M%S"))
}

/// PocketBase's `inflector.Snakecase`: words split at anything but ASCII
/// letters and digits, `_` before an upper-case letter that follows a
/// lower-case one, all lower case.
fn snakecase(s: &str) -> String {
    let mut out = String::new();
    for word in s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        let b = word.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            if c.is_ascii_uppercase() && i > 0 && !b[i - 1].is_ascii_uppercase() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase() as char);
        }
    }
    out
}

/// The backups dir, created 0700 and durably (its parent synced: a
/// backup published in a directory whose own name was lost to a power cut
/// would be lost with it).
fn private_dir(p: &Path) -> std::io::Result<()> {
    crate::files::create_dir_durable(p)
}

fn private_file(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
}

/// Writes backup `name` of the data dir (`src`: what the database snapshot
/// is taken of). Blocking.
pub fn create(data: &Path, name: &str, enc: &Encryption, src: &Source) -> Result<PathBuf> {
    if !valid_key(name) {
        return Err(invalid("Invalid backup name."));
    }
    let dir = backups_dir(data);
    private_dir(&dir)?;
    let dest = dir.join(name);
    if dest.exists() {
        return Err(invalid("Backup with the specified name already exists."));
    }
    let built = build(data, enc, src)?;
    publish(&built.file, &dest)?;
    Ok(dest)
}

/// A finished, synced backup archive in a temporary work dir of the
/// backups dir (`.tmp-…`), removed with everything in it when dropped.
pub struct Built {
    work: PathBuf,
    pub file: PathBuf,
}

impl Drop for Built {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Makes a backup archive of the data dir: the snapshot, zipped with the
/// stored files, encrypted as `enc` says. Blocking.
pub fn build(data: &Path, enc: &Encryption, src: &Source) -> Result<Built> {
    let dir = backups_dir(data);
    private_dir(&dir)?;
    let work = dir.join(format!(
        ".tmp-{}",
        crate::util::random_string(10, crate::util::ALPHANUM)
    ));
    private_dir(&work)?;
    let built = Built {
        file: work.join("final"),
        work,
    };
    let work = &built.work;
    // A consistent snapshot while the writer goes on.
    let (member, snap) = match src {
        Source::File(key) => {
            crate::store::file_snapshot(data, key.as_ref(), work).map_err(invalid)?
        }
        Source::Store(store) => store.backup_snapshot(work).map_err(invalid)?,
    };
    let zip_path = work.join("backup.zip");
    {
        let f = private_file(&zip_path)?;
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o600);
        z.start_file(member, opts)
            .map_err(|e| invalid(e.to_string()))?;
        std::io::copy(&mut std::fs::File::open(&snap)?, &mut z)?;
        let storage = data.join("storage");
        if storage.is_dir() {
            add_tree(&mut z, &storage, "storage", opts)?;
        }
        z.finish().map_err(|e| invalid(e.to_string()))?;
    }
    std::fs::remove_file(&snap)?;
    {
        let mut out = private_file(&built.file)?;
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
    std::fs::remove_file(&zip_path)?;
    Ok(built)
}

/// Puts a synced temporary file in place under its final name — never over
/// an existing backup — and syncs the directory.
fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    match std::fs::hard_link(tmp, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(invalid("Backup with the specified name already exists."));
        }
        Err(e) => return Err(e.into()),
    }
    std::fs::remove_file(tmp)?;
    if let Some(dir) = dest.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes what an interrupted backup or upload left in the backups dir
/// (a crash or power loss mid-way). At start, before serving.
pub fn clean_temporary(data: &Path) {
    let Ok(rd) = std::fs::read_dir(backups_dir(data)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(".tmp-") || name.starts_with(".upload-") {
            let p = e.path();
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            match r {
                Ok(()) => tracing::info!(path = %p.display(), "removed an unfinished backup"),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "can't remove an unfinished backup")
                }
            }
        }
    }
}

/// Why an upload was refused: each answered on the `file` field.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadRefusal {
    /// Not a name `valid_name`/`valid_key` allows.
    Name,
    /// A backup with this name exists.
    Exists,
    /// Neither age-encrypted nor a zip (PocketBase's MIME check).
    NotZip,
    /// Not a backup keepd could restore: why.
    Content(String),
}

/// An upload being written: a 0600 temporary file in the backups dir,
/// removed unless `finish` published it.
pub struct Upload {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<std::fs::File>,
    written: u64,
}

impl Upload {
    /// Starts the upload of backup `name` (checked before any content).
    pub fn begin(data: &Path, name: &str) -> Result<std::result::Result<Upload, UploadRefusal>> {
        if !valid_key(name) {
            return Ok(Err(UploadRefusal::Name));
        }
        let dir = backups_dir(data);
        private_dir(&dir)?;
        let dest = dir.join(name);
        if dest.exists() {
            return Ok(Err(UploadRefusal::Exists));
        }
        let tmp = dir.join(format!(
            ".upload-{}",
            crate::util::random_string(10, crate::util::ALPHANUM)
        ));
        let file = private_file(&tmp)?;
        Ok(Ok(Upload {
            tmp,
            dest,
            file: Some(file),
            written: 0,
        }))
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk)?;
            self.written += chunk.len() as u64;
        }
        Ok(())
    }

    /// Syncs, checks the content, and publishes the backup under its name.
    /// `plaintext_ok`: a plain zip is accepted (`backup_encryption = "none"`).
    pub fn finish(
        mut self,
        plaintext_ok: bool,
    ) -> Result<std::result::Result<PathBuf, UploadRefusal>> {
        let Some(f) = self.file.take() else {
            return Err(invalid("upload already finished"));
        };
        f.sync_all()?;
        drop(f);
        if let Err(why) = check_upload(&self.tmp, plaintext_ok)? {
            return Ok(Err(why));
        }
        match publish(&self.tmp, &self.dest) {
            Ok(()) => Ok(Ok(self.dest.clone())),
            Err(BackupError::Invalid(_)) => Ok(Err(UploadRefusal::Exists)),
            Err(e) => Err(e),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Published (then the temporary name is gone) or abandoned.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Whether a written upload is a backup keepd could restore: an age file
/// whose header parses, or (when allowed) a zip archive with `data.db`.
fn check_upload(p: &Path, plaintext_ok: bool) -> Result<std::result::Result<(), UploadRefusal>> {
    let content = |m: String| Err(UploadRefusal::Content(m));
    let mut head = [0u8; 32];
    let n = {
        let mut f = std::fs::File::open(p)?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    let head = &head[..n];
    if head.starts_with(AGE_MAGIC) {
        let f = std::io::BufReader::new(std::fs::File::open(p)?);
        return Ok(match age::Decryptor::new(f) {
            Ok(_) => Ok(()),
            Err(e) => content(format!(
                "The file is not a valid age-encrypted backup: {e}."
            )),
        });
    }
    if !infer::archive::is_zip(head) {
        return Ok(Err(UploadRefusal::NotZip));
    }
    if !plaintext_ok {
        return Ok(content(
            "Backups are kept encrypted: upload an age-encrypted backup (or set backup_encryption = \"none\" for plaintext)."
                .into(),
        ));
    }
    let z = zip::ZipArchive::new(std::fs::File::open(p)?);
    Ok(match z {
        Ok(z)
            if z.index_for_name("data.db").is_some()
                || z.index_for_name(crate::store::export::MEMBER).is_some() =>
        {
            Ok(())
        }
        Ok(_) => content("The archive is not a backup: it has no data.db.".into()),
        Err(e) => content(format!("The archive can't be read: {e}.")),
    })
}

/// Deletes the oldest scheduled backups (`@auto_pb_backup_…`) beyond the
/// newest `keep`; other backups are never touched. Returns the deleted.
pub fn prune_auto(data: &Path, keep: usize) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for key in beyond_keep(list(data)?, keep) {
        std::fs::remove_file(backups_dir(data).join(&key))?;
        removed.push(key);
    }
    if !removed.is_empty() {
        std::fs::File::open(backups_dir(data))?.sync_all()?;
    }
    Ok(removed)
}

/// The scheduled backups of `all` beyond the newest `keep`, oldest last.
fn beyond_keep(all: Vec<(String, u64, std::time::SystemTime)>, keep: usize) -> Vec<String> {
    let mut auto: Vec<_> = all
        .into_iter()
        .filter(|(k, _, _)| k.starts_with(AUTO_PREFIX))
        .collect();
    // Newest first; same time: the later name (its timestamp) first.
    auto.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| b.0.cmp(&a.0)));
    auto.into_iter().skip(keep).map(|b| b.0).collect()
}

/// Backups on S3 (`backups.s3` enabled): the same archives, encrypted the
/// same way, stored as objects named as the files would be, at the root of
/// the bucket (where PocketBase keeps them). Objects whose key is not a
/// backup name are neither listed nor touched. Every call blocks.
pub mod remote {
    use super::*;
    use crate::files::s3::S3;

    fn unreachable(e: std::io::Error) -> BackupError {
        invalid(format!("The S3 backups storage can't be used: {e}."))
    }

    /// The backups on S3: (key, size, modified) newest first.
    pub fn list(s3: &S3) -> Result<Vec<(String, u64, std::time::SystemTime)>> {
        let mut out: Vec<_> = s3
            .list_objects("")
            .map_err(unreachable)?
            .into_iter()
            .filter(|o| valid_key(&o.key))
            .map(|o| {
                let t = chrono::DateTime::parse_from_rfc3339(&o.modified)
                    .map(std::time::SystemTime::from)
                    .unwrap_or(std::time::UNIX_EPOCH);
                (o.key, o.size, t)
            })
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.2));
        Ok(out)
    }

    /// Whether backup `name` is on S3.
    pub fn exists(s3: &S3, name: &str) -> Result<bool> {
        Ok(valid_key(name)
            && s3
                .list_objects(name)
                .map_err(unreachable)?
                .iter()
                .any(|o| o.key == name))
    }

    /// Makes backup `name` and streams it to S3 (multipart above
    /// `PART_SIZE`); the local archive is removed whatever happens.
    /// Returns (size, parts sent).
    pub fn create(
        data: &Path,
        s3: &S3,
        name: &str,
        enc: &Encryption,
        src: &Source,
    ) -> Result<(u64, usize)> {
        if !valid_key(name) {
            return Err(invalid("Invalid backup name."));
        }
        if exists(s3, name)? {
            return Err(invalid("Backup with the specified name already exists."));
        }
        let built = build(data, enc, src)?;
        let (size, parts) = put_file(s3, name, &built.file)?;
        drop(built);
        Ok((size, parts))
    }

    /// Streams the local file `src` to S3 as backup `name`.
    pub fn put_file(s3: &S3, name: &str, src: &Path) -> Result<(u64, usize)> {
        let mut f = std::fs::File::open(src)?;
        let size = f.metadata()?.len();
        let parts = s3
            .put_stream(name, &mut f, "application/zip")
            .map_err(unreachable)?;
        Ok((size, parts))
    }

    /// Deletes backup `name` from S3.
    /// Deletes backup `name`; a valid name the bucket doesn't hold is
    /// deleted already (PocketBase answers 204 for it on S3 too).
    pub fn delete(s3: &S3, name: &str) -> Result<()> {
        if !valid_key(name) {
            return Err(invalid("Missing or invalid backup file."));
        }
        s3.delete(name).map_err(unreachable)
    }

    /// The body of backup `name` as a reader and its length (when known).
    #[allow(clippy::type_complexity)]
    pub fn open(s3: &S3, name: &str) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
        if !valid_key(name) {
            return Err(invalid("Missing or invalid backup file."));
        }
        s3.get_stream(name)
            .map_err(unreachable)?
            .ok_or_else(|| invalid("Missing or invalid backup file."))
    }

    /// Fetches backup `name` as a stream into a temporary file of the
    /// backups dir, then stages it as `stage_restore` does; the fetched
    /// copy is removed whatever happens.
    pub fn stage_restore(
        data: &Path,
        s3: &S3,
        name: &str,
        identity: Option<&age::x25519::Identity>,
        note: &str,
        src: &Source,
    ) -> Result<()> {
        let (mut body, _) = open(s3, name)?;
        let dir = backups_dir(data);
        private_dir(&dir)?;
        let tmp = dir.join(format!(
            ".tmp-{}",
            crate::util::random_string(10, crate::util::ALPHANUM)
        ));
        let result = (|| -> Result<()> {
            let mut out = private_file(&tmp)?;
            std::io::copy(&mut body, &mut out).map_err(unreachable)?;
            out.sync_all()?;
            drop(out);
            stage_restore_file(data, &tmp, identity, note, src)
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// `prune_auto` on S3.
    pub fn prune_auto(s3: &S3, keep: usize) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for key in beyond_keep(list(s3)?, keep) {
            s3.delete(&key).map_err(unreachable)?;
            removed.push(key);
        }
        Ok(removed)
    }
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
        if !valid_key(&name) {
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
    (valid_key(name) && p.is_file()).then_some(p)
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
    src: &Source,
) -> Result<()> {
    let file = path(data, name).ok_or_else(|| invalid("Missing or invalid backup file."))?;
    stage_restore_file(data, &file, identity, note, src)
}

/// `stage_restore` of the backup archive at `file` (any path). The archive
/// is decrypted as a stream into the staging dir, never whole in memory.
pub fn stage_restore_file(
    data: &Path,
    file: &Path,
    identity: Option<&age::x25519::Identity>,
    note: &str,
    src: &Source,
) -> Result<()> {
    let stage = data.join(STAGE);
    let _ = std::fs::remove_dir_all(&stage);
    private_dir(&stage)?;
    let result = (|| -> Result<()> {
        let mut head = [0u8; AGE_MAGIC.len()];
        let mut f = std::fs::File::open(file)?;
        let n = f.read(&mut head)?;
        drop(f);
        let archive = if head[..n].starts_with(AGE_MAGIC) && n == AGE_MAGIC.len() {
            let id = identity.ok_or_else(|| {
                invalid("The backup is encrypted and no backup_identity_file is configured.")
            })?;
            let d =
                age::Decryptor::new_buffered(std::io::BufReader::new(std::fs::File::open(file)?))
                    .map_err(|e| invalid(format!("The backup can't be read: {e}.")))?;
            let mut r = d
                .decrypt(std::iter::once(id as &dyn age::Identity))
                .map_err(|_| invalid("The backup can't be decrypted with the configured key."))?;
            let plain = stage.join(".archive");
            let mut out = private_file(&plain)?;
            std::io::copy(&mut r, &mut out)
                .map_err(|e| invalid(format!("The backup is damaged: {e}.")))?;
            plain
        } else {
            file.to_path_buf()
        };
        let mut z = zip::ZipArchive::new(std::fs::File::open(&archive)?)
            .map_err(|e| invalid(format!("The backup is not a valid archive: {e}.")))?;
        let mut has_db = false;
        let mut has_export = false;
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
                || name == crate::store::export::MEMBER
                || (parts.len() == 4
                    && parts[0] == "storage"
                    && parts[1..].iter().all(|p| crate::files::safe_name(p)));
            if f.is_dir() {
                continue;
            }
            // Thumbnails (storage/<c>/<r>/thumbs_<file>/<size>_<file>, in
            // keepd's backups and PocketBase's alike) are left out: they
            // are made again from the originals on demand.
            let thumb = parts.len() == 5
                && parts[0] == "storage"
                && parts[3].starts_with("thumbs_")
                && parts[1..].iter().all(|p| crate::files::safe_name(p));
            if thumb {
                continue;
            }
            if !ok {
                return Err(invalid(format!(
                    "The backup holds an unexpected entry: {name:?}."
                )));
            }
            has_db |= name == "data.db";
            has_export |= name == crate::store::export::MEMBER;
            let dest = stage.join(&name);
            if let Some(parent) = dest.parent() {
                private_dir(parent)?;
            }
            let mut out = private_file(&dest)?;
            std::io::copy(&mut f, &mut out)
                .map_err(|e| invalid(format!("The backup is damaged: {e}.")))?;
            out.sync_all()?;
        }
        if src.exports() {
            // A keepd on PostgreSQL restores its own exports.
            if !has_export {
                return Err(invalid(if has_db {
                    "The backup holds a SQLite database (data.db): a keepd on PostgreSQL restores only backups taken on PostgreSQL (data.pgexport). Move a SQLite data dir in with `keepd import`, or restore the backup into a keepd on SQLite."
                } else {
                    "The backup has no data.pgexport."
                }));
            }
            let m = crate::store::export::check(&stage.join(crate::store::export::MEMBER))
                .map_err(|e| invalid(format!("The backup's export can't be read: {e}.")))?;
            crate::store::export_refusal(&m).map_err(invalid)?;
        } else {
            if has_export {
                return Err(invalid(
                    "The backup was taken from a keepd on PostgreSQL (data.pgexport): restore it into a keepd on PostgreSQL.",
                ));
            }
            if !has_db {
                return Err(invalid("The backup has no data.db."));
            }
            // With the current database key: a backup taken under another
            // key (or none) is refused here, not at the next start.
            let conn = crate::store::open_read_only(&stage.join("data.db"), src.key())
                .map_err(|e| invalid(format!("The backup's database can't be opened: {e}.")))?;
            let check: String = crate::store::integrity_check(&conn)
                .map_err(|e| invalid(format!("The backup's database is damaged: {e}.")))?
                .join("; ");
            if check != "ok" {
                return Err(invalid(format!(
                    "The backup's database is damaged: {check}."
                )));
            }
            drop(conn);
        }
        drop(z);
        if archive != file {
            std::fs::remove_file(&archive)?;
        }
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
/// A staged export (PostgreSQL) is handed to `load`, which puts it into
/// the database in one transaction, before the files are swapped; a failed
/// load drops the staged restore and changes nothing.
pub fn apply_pending(
    data: &Path,
    load: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> Result<Option<String>> {
    let stage = data.join(STAGE);
    if !stage.join(READY).exists() {
        if stage.exists() {
            let _ = std::fs::remove_dir_all(&stage);
        }
        return Ok(None);
    }
    let note = std::fs::read_to_string(stage.join(READY)).unwrap_or_default();
    let export = stage.join(crate::store::export::MEMBER);
    let exported = export.exists();
    if exported {
        if let Err(e) = load(&export) {
            let _ = std::fs::remove_dir_all(&stage);
            return Err(invalid(format!(
                "the staged restore was not applied (the database is as it was): {e:#}"
            )));
        }
    }
    let old = data.join(".pre-restore");
    let _ = std::fs::remove_dir_all(&old);
    private_dir(&old)?;
    for f in ["data.db", "data.db-wal", "data.db-shm"] {
        let p = data.join(f);
        if !exported && p.exists() {
            std::fs::rename(&p, old.join(f))?;
        }
    }
    if data.join("storage").exists() {
        std::fs::rename(data.join("storage"), old.join("storage"))?;
    }
    if !exported {
        std::fs::rename(stage.join("data.db"), data.join("data.db"))?;
    }
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
        assert!(valid_key("@auto_pb_backup_acme_20260101000000.zip"));
        assert!(!valid_name("@auto_pb_backup_acme_20260101000000.zip"));
        for bad in ["@", "@.zip", "@@a.zip", "@A.zip", "@../a.zip"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn auto_names_as_pocketbase() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
            .single()
            .expect("time");
        assert_eq!(
            auto_name("Acme", t),
            "@auto_pb_backup_acme_20260304050607.zip"
        );
        // PocketBase's inflector.Snakecase cases.
        for (app, snake) in [
            ("", ""),
            ("!@#$%^", ""),
            ("_", ""),
            ("John Doe", "john_doe"),
            ("John_Doe", "john_doe"),
            (".a!b@c#d$e%123. ", "a_b_c_d_e_123"),
            ("HelloWorld1HelloWorld2", "hello_world1_hello_world2"),
            ("TEST", "test"),
            ("testABR", "test_abr"),
            ("Café Olé", "caf_ol"),
        ] {
            assert_eq!(snakecase(app), snake, "{app}");
        }
        let long = auto_name(&"x".repeat(80), t);
        assert_eq!(
            long,
            format!("@auto_pb_backup_{}_20260304050607.zip", "x".repeat(50))
        );
        assert!(valid_key(&long) && valid_key(&auto_name("", t)));
    }

    fn temp_data(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "keepd-backup-{tag}-{}-{}",
            std::process::id(),
            crate::util::random_string(6, crate::util::LOWER_ALPHANUM)
        ));
        std::fs::create_dir_all(backups_dir(&d)).expect("dir");
        d
    }

    #[test]
    fn prune_keeps_the_newest_auto_backups_only() {
        let d = temp_data("prune");
        let dir = backups_dir(&d);
        let names = [
            "@auto_pb_backup_a_20260101000001.zip",
            "@auto_pb_backup_a_20260101000002.zip",
            "@auto_pb_backup_a_20260101000003.zip",
            "@auto_pb_backup_a_20260101000004.zip",
            "manual.zip",
            "@other.zip",
        ];
        let base =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        for (i, n) in names.iter().enumerate() {
            let f = std::fs::File::create(dir.join(n)).expect("file");
            // manual.zip is the oldest of all; mtimes in name order.
            let t = base
                + std::time::Duration::from_secs(if *n == "manual.zip" {
                    0
                } else {
                    10 + i as u64
                });
            f.set_modified(t).expect("mtime");
        }
        let removed = prune_auto(&d, 2).expect("prune");
        assert_eq!(
            removed,
            vec![
                "@auto_pb_backup_a_20260101000002.zip".to_string(),
                "@auto_pb_backup_a_20260101000001.zip".to_string()
            ]
        );
        let mut left: Vec<String> = list(&d).expect("list").into_iter().map(|b| b.0).collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "@auto_pb_backup_a_20260101000003.zip",
                "@auto_pb_backup_a_20260101000004.zip",
                "@other.zip",
                "manual.zip"
            ]
        );
        assert!(prune_auto(&d, 2).expect("again").is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn upload_checks_content_and_leaves_nothing_when_refused() {
        let d = temp_data("upload");
        let dir = backups_dir(&d);
        let leftovers = || -> Vec<String> {
            std::fs::read_dir(&dir)
                .expect("dir")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        };
        // A plain zip with data.db: only in plaintext mode.
        let mut zip_bytes = Vec::new();
        {
            let mut z = zip::ZipWriter::new(std::io::Cursor::new(&mut zip_bytes));
            z.start_file("data.db", zip::write::SimpleFileOptions::default())
                .expect("entry");
            z.write_all(b"not really sqlite").expect("write");
            z.finish().expect("finish");
        }
        let mut u = Upload::begin(&d, "plain.zip").expect("io").expect("ok");
        u.write(&zip_bytes).expect("write");
        assert!(matches!(
            u.finish(false).expect("io"),
            Err(UploadRefusal::Content(m)) if m.contains("encrypted")
        ));
        assert!(leftovers().is_empty(), "{:?}", leftovers());
        let mut u = Upload::begin(&d, "plain.zip").expect("io").expect("ok");
        u.write(&zip_bytes).expect("write");
        let p = u.finish(true).expect("io").expect("published");
        assert_eq!(std::fs::read(&p).expect("read"), zip_bytes);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        // The name is taken now.
        assert_eq!(
            Upload::begin(&d, "plain.zip").expect("io").err(),
            Some(UploadRefusal::Exists)
        );
        assert_eq!(
            Upload::begin(&d, "../x.zip").expect("io").err(),
            Some(UploadRefusal::Name)
        );
        // Not a zip / a zip without data.db / age magic with a broken header.
        let mut u = Upload::begin(&d, "bad.zip").expect("io").expect("ok");
        u.write(b"hello world").expect("write");
        assert_eq!(
            u.finish(true).expect("io").err(),
            Some(UploadRefusal::NotZip)
        );
        for (bytes, plain) in [
            (b"PK\x03\x04garbage".to_vec(), true),
            (b"age-encryption.org/v1\n-> nonsense\n".to_vec(), false),
        ] {
            let mut u = Upload::begin(&d, "bad.zip").expect("io").expect("ok");
            u.write(&bytes).expect("write");
            assert!(matches!(
                u.finish(plain).expect("io"),
                Err(UploadRefusal::Content(_))
            ));
        }
        // Abandoned mid-way (client gone): dropped, nothing left.
        let mut u = Upload::begin(&d, "gone.zip").expect("io").expect("ok");
        u.write(b"age-encryption.org/v1\n").expect("write");
        drop(u);
        assert_eq!(leftovers(), vec!["plain.zip".to_string()]);
        // A real age file is accepted in either mode.
        let id = age::x25519::Identity::generate();
        let mut enc = Vec::new();
        {
            let e = age::Encryptor::with_recipients(std::iter::once(
                &id.to_public() as &dyn age::Recipient
            ))
            .expect("encryptor");
            let mut w = e.wrap_output(&mut enc).expect("wrap");
            w.write_all(&zip_bytes).expect("write");
            w.finish().expect("finish");
        }
        let mut u = Upload::begin(&d, "enc.zip").expect("io").expect("ok");
        u.write(&enc).expect("write");
        u.finish(false).expect("io").expect("published");
        let _ = std::fs::remove_dir_all(&d);
    }
}
