//! Stored files of `file` fields: local storage under the data dir
//! (`storage/<collectionId>/<recordId>/<name>`, directories 0700, files
//! 0600, written to a temporary name, synced, then linked under a name no file
//! has yet), the names
//! PocketBase gives uploads (`<snake_case name>_<10 random>.<ext>`), and
//! MIME types sniffed from the content (never the name or the declared
//! type).
//!
//! Where the files live is a [`Storage`]: the local one, or an S3 bucket
//! ([`s3`]) while the `s3` settings enable one, chosen per operation by
//! [`Files::storage`]. Files of deleted records (cascades and batches
//! included) are removed after the commit by [`Janitor`].
//!
//! Names reaching the disk are checked to be one plain path component:
//! no separators, no `..`, no NUL or control characters — whatever a
//! client sends, it can't leave its record's directory.

pub mod s3;
pub mod sweep;
pub mod thumb;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file sent with a record write.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The form key: the field name with its modifier (`docs`, `docs+`, `+docs`).
    pub key: String,
    /// The client's file name (only its shape is kept).
    pub filename: String,
    pub data: Blob,
}

/// An upload's content: in memory (small bodies read whole), or spilled to
/// a private temporary file as it arrived (streamed multipart bodies).
#[derive(Debug, Clone)]
pub enum Blob {
    Memory(bytes::Bytes),
    Spilled(Arc<Spill>),
}

impl Blob {
    pub fn len(&self) -> u64 {
        match self {
            Blob::Memory(b) => b.len() as u64,
            Blob::Spilled(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first bytes (up to [`SNIFF_LEN`]): what the type is sniffed from.
    pub fn head(&self) -> &[u8] {
        match self {
            Blob::Memory(b) => &b[..b.len().min(SNIFF_LEN)],
            Blob::Spilled(s) => &s.head,
        }
    }

    /// The whole content in memory (S3 uploads).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Blob::Memory(b) => Ok(b.to_vec()),
            Blob::Spilled(s) => std::fs::read(&s.path),
        }
    }
}

impl From<bytes::Bytes> for Blob {
    fn from(b: bytes::Bytes) -> Blob {
        Blob::Memory(b)
    }
}

/// A spilled upload: a 0600 file under `<data dir>/.uploads/`, written and
/// synced as the body arrived, removed when the last handle is dropped (it
/// is linked into `storage/` if the write commits). Its bytes count
/// against the [`Uploads`] budget until then.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    len: u64,
    head: bytes::Bytes,
    budget: Arc<Uploads>,
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.budget.release(self.len);
    }
}

/// Where streamed uploads spill, and the bound on the bytes of uploads in
/// flight (received, not yet stored or dropped) across all requests.
#[derive(Debug)]
pub struct Uploads {
    dir: PathBuf,
    max: u64,
    used: std::sync::atomic::AtomicU64,
}

impl Uploads {
    /// `<data dir>/.uploads` (created 0700 when missing).
    pub fn new(data_dir: &Path, max: u64) -> std::io::Result<Arc<Uploads>> {
        let dir = data_dir.join(".uploads");
        if !dir.exists() {
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        }
        Ok(Arc::new(Uploads {
            dir,
            max,
            used: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Removes what a crash left in `<data dir>/.uploads` (at `serve`'s
    /// start, before any request).
    pub fn clear_leftovers(data_dir: &Path) -> std::io::Result<()> {
        let dir = data_dir.join(".uploads");
        if dir.exists() {
            for e in std::fs::read_dir(&dir)? {
                let _ = std::fs::remove_file(e?.path());
            }
        }
        Ok(())
    }

    /// Reserves `n` bytes of the budget; false when it would go over.
    pub fn reserve(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.max)
            })
            .is_ok()
    }

    pub fn release(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// Bytes in flight now.
    pub fn in_flight(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A new spill file to write an upload into.
    pub fn writer(self: &Arc<Uploads>) -> std::io::Result<SpillWriter> {
        let path = self
            .dir
            .join(format!("up_{}", crate::util::random_string(20, RANDOM)));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(SpillWriter {
            file: Some(file),
            spill: Some(Spill {
                path,
                len: 0,
                head: bytes::Bytes::new(),
                budget: self.clone(),
            }),
            head: Vec::new(),
        })
    }
}

/// An upload being spilled: chunks are reserved against the budget and
/// written (blocking: call from a blocking thread or with small chunks);
/// `finish` syncs and hands the [`Spill`] over. Dropped unfinished, the
/// file goes and its bytes are released.
pub struct SpillWriter {
    file: Option<std::fs::File>,
    spill: Option<Spill>,
    head: Vec<u8>,
}

impl SpillWriter {
    /// Appends a chunk; `Ok(false)` when the budget has no room for it.
    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<bool> {
        let (Some(f), Some(s)) = (self.file.as_mut(), self.spill.as_mut()) else {
            return Err(std::io::Error::other("spill already finished"));
        };
        if !s.budget.reserve(chunk.len() as u64) {
            return Ok(false);
        }
        s.len += chunk.len() as u64;
        if self.head.len() < SNIFF_LEN {
            let n = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
        }
        f.write_all(chunk)?;
        Ok(true)
    }

    /// Syncs the file; the upload is ready to be stored.
    pub fn finish(mut self) -> std::io::Result<Spill> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
        }
        let mut s = self
            .spill
            .take()
            .ok_or_else(|| std::io::Error::other("spill already finished"))?;
        s.head = bytes::Bytes::from(std::mem::take(&mut self.head));
        Ok(s)
    }
}

const RANDOM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// PocketBase's stored name for an upload named `original`.
pub fn stored_name(original: &str, data: &[u8]) -> String {
    let original = original.rsplit(['/', '\\']).next().unwrap_or_default();
    let (base, ext) = match original.rfind('.') {
        Some(i) if i > 0 => (&original[..i], &original[i + 1..]),
        _ => (original, ""),
    };
    let mut ext: String = ext
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '='))
        .collect();
    if ext.is_empty() {
        ext = infer::get(data)
            .map(|k| k.extension().to_string())
            .unwrap_or_default();
    }
    if ext.len() > 20 {
        ext = ext[ext.len() - 20..].to_string();
    }
    let mut snake = String::new();
    for c in base.trim_matches('.').chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && !snake.is_empty() && !snake.ends_with('_') {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else if !snake.ends_with('_') && !snake.is_empty() {
            snake.push('_');
        }
    }
    let mut snake = snake.trim_matches('_').to_string();
    if snake.len() < 3 {
        snake.push_str(&crate::util::random_string(10, RANDOM));
    } else if snake.len() > 100 {
        snake.truncate(100);
    }
    let rand = crate::util::random_string(10, RANDOM);
    if ext.is_empty() {
        format!("{snake}_{rand}")
    } else {
        format!("{snake}_{rand}.{ext}")
    }
}

/// Whether `name` is one safe path component we could have stored.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '='))
}

/// The MIME type of the content: sniffed, then plain text for valid UTF-8,
/// else binary.
pub fn sniff(data: &[u8]) -> String {
    if let Some(k) = infer::get(data) {
        return k.mime_type().to_string();
    }
    if std::str::from_utf8(data).is_ok() {
        return "text/plain; charset=utf-8".into();
    }
    "application/octet-stream".into()
}

/// The MIME type of a file from its first bytes (what a download is
/// answered with; `head` may end inside a UTF-8 sequence).
pub fn sniff_head(head: &[u8]) -> String {
    if let Some(k) = infer::get(head) {
        return k.mime_type().to_string();
    }
    match std::str::from_utf8(head) {
        Ok(_) => "text/plain; charset=utf-8".into(),
        // Cut inside a character at the end: still text.
        Err(e) if e.error_len().is_none() => "text/plain; charset=utf-8".into(),
        Err(_) => "application/octet-stream".into(),
    }
}

/// How much of a file `sniff_head` looks at.
pub const SNIFF_LEN: usize = 8 << 10;

/// Whether a sniffed type matches one of a field's `mimeTypes`
/// (parameters ignored).
pub fn mime_allowed(sniffed: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let base = sniffed.split(';').next().unwrap_or_default().trim();
    allowed.iter().any(|a| {
        a.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case(base)
    })
}

/// Creates `dir` and its missing parents (0700) durably: after each
/// `mkdir` the parent that gained the entry is synced. A new directory's
/// name is on the medium only once its parent is synced; without that, a
/// power cut can take the directory away with every file stored in it,
/// synced or not. Serialized, so that a writer finding a directory another
/// writer just made also finds it synced.
pub fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    static MAKING: Mutex<()> = Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let mut missing = Vec::new();
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} is not a directory", p.display()),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(p);
                match p.parent() {
                    Some(up) if !up.as_os_str().is_empty() => p = up,
                    _ => break,
                }
            }
            Err(e) => return Err(e),
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Some(up) = d.parent().filter(|u| !u.as_os_str().is_empty()) {
            std::fs::File::open(up)?.sync_all()?;
        }
    }
    Ok(())
}

/// Local storage rooted at `<data dir>/storage`.
#[derive(Debug, Clone)]
pub struct Local {
    root: PathBuf,
}

impl Local {
    pub fn new(data_dir: &Path) -> Local {
        Local {
            root: data_dir.join("storage"),
        }
    }

    /// The directory of one record's files (ids are checked like names).
    fn dir(&self, collection_id: &str, record_id: &str) -> Option<PathBuf> {
        (safe_name(collection_id) && safe_name(record_id))
            .then(|| self.root.join(collection_id).join(record_id))
    }

    pub fn path(&self, collection_id: &str, record_id: &str, name: &str) -> Option<PathBuf> {
        if !safe_name(name) {
            return None;
        }
        Some(self.dir(collection_id, record_id)?.join(name))
    }

    /// Writes a file durably (temp name, fsync, linked under its name —
    /// never over an existing file —, fsync the dir).
    pub fn put(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
        data: &[u8],
    ) -> std::io::Result<()> {
        let dir = self.dir(collection_id, record_id).ok_or_else(unsafe_name)?;
        let path = self
            .path(collection_id, record_id, name)
            .ok_or_else(unsafe_name)?;
        create_dir_durable(&dir)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        // Published under its name only if that name is free: a write never
        // replaces a file it didn't make.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        linked?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    }

    /// Stores an upload durably: content in memory as `put`; a spilled
    /// upload is linked into place (same filesystem: no copy; already
    /// synced), copied and synced otherwise — never over an existing file.
    pub fn put_blob(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
        blob: &Blob,
    ) -> std::io::Result<()> {
        let spill = match blob {
            Blob::Memory(b) => return self.put(collection_id, record_id, name, b),
            Blob::Spilled(s) => s,
        };
        let dir = self.dir(collection_id, record_id).ok_or_else(unsafe_name)?;
        let path = self
            .path(collection_id, record_id, name)
            .ok_or_else(unsafe_name)?;
        create_dir_durable(&dir)?;
        if std::fs::hard_link(&spill.path, &path).is_err() {
            let tmp = dir.join(format!(".{name}.tmp"));
            {
                let mut from = std::fs::File::open(&spill.path)?;
                let mut to = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                std::io::copy(&mut from, &mut to)?;
                to.sync_all()?;
            }
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            linked?;
        }
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    }

    /// The file opened for reading, with its length.
    pub fn open(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
    ) -> Option<(std::fs::File, u64)> {
        let f = std::fs::File::open(self.path(collection_id, record_id, name)?).ok()?;
        let len = f.metadata().ok()?.len();
        Some((f, len))
    }

    pub fn get(&self, collection_id: &str, record_id: &str, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(collection_id, record_id, name)?).ok()
    }

    /// Removes files and their thumbs (missing ones are fine), and the
    /// record's directory once it is empty.
    pub fn remove(&self, collection_id: &str, record_id: &str, names: &[String]) {
        for n in names {
            if let Some(p) = self.path(collection_id, record_id, n) {
                let _ = std::fs::remove_file(p);
            }
            thumb::remove(self, collection_id, record_id, n);
        }
        if let Some(d) = self.dir(collection_id, record_id) {
            // Fails while other files are left, as it should.
            let _ = std::fs::remove_dir(d);
        }
    }

    /// Removes a record's whole directory.
    pub fn remove_record(&self, collection_id: &str, record_id: &str) {
        if let Some(d) = self.dir(collection_id, record_id) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

/// Chooses the storage from the settings, keeping one S3 client per
/// configuration.
#[derive(Debug)]
pub struct Files {
    local: Local,
    s3: Mutex<Option<(crate::settings::S3, Arc<s3::S3>)>>,
}

impl Files {
    pub fn new(data_dir: &Path) -> Files {
        Files {
            local: Local::new(data_dir),
            s3: Mutex::new(None),
        }
    }

    /// The storage the `s3` settings object selects.
    pub fn storage(&self, s3_settings: &crate::settings::S3) -> std::io::Result<Storage> {
        let mut cached = self.s3.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, c)) = cached.as_ref() {
            if v == s3_settings {
                return Ok(Storage::S3(c.clone()));
            }
        }
        match s3::S3::from_settings(s3_settings) {
            None => Ok(Storage::Local(self.local.clone())),
            Some(c) => {
                let c = Arc::new(c?);
                *cached = Some((s3_settings.clone(), c.clone()));
                Ok(Storage::S3(c))
            }
        }
    }
}

/// Where one operation's files are.
#[derive(Debug, Clone)]
pub enum Storage {
    Local(Local),
    S3(Arc<s3::S3>),
}

fn key(collection_id: &str, record_id: &str, name: &str) -> std::io::Result<String> {
    if safe_name(collection_id) && safe_name(record_id) && safe_name(name) {
        Ok(format!("{collection_id}/{record_id}/{name}"))
    } else {
        Err(unsafe_name())
    }
}

fn unsafe_name() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "unsafe file name")
}

impl Storage {
    /// Stores a file durably (blocking).
    pub fn put(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
        data: &[u8],
    ) -> std::io::Result<()> {
        match self {
            Storage::Local(l) => l.put(collection_id, record_id, name, data),
            Storage::S3(c) => c.put(&key(collection_id, record_id, name)?, data, &sniff(data)),
        }
    }

    /// Stores an upload durably (blocking): linked from its spill file on
    /// local storage; read into memory for S3.
    pub fn put_blob(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
        blob: &Blob,
    ) -> std::io::Result<()> {
        match self {
            Storage::Local(l) => l.put_blob(collection_id, record_id, name, blob),
            Storage::S3(c) => {
                let data = blob.to_vec()?;
                c.put(&key(collection_id, record_id, name)?, &data, &sniff(&data))
            }
        }
    }

    /// A file's bytes; `None` when there is none (blocking).
    pub fn get(
        &self,
        collection_id: &str,
        record_id: &str,
        name: &str,
    ) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            Storage::Local(l) => Ok(l.get(collection_id, record_id, name)),
            Storage::S3(c) => match key(collection_id, record_id, name) {
                Ok(k) => c.get(&k),
                Err(_) => Ok(None),
            },
        }
    }

    /// Removes files (missing ones are fine; failures are logged).
    pub fn remove(&self, collection_id: &str, record_id: &str, names: &[String]) {
        match self {
            Storage::Local(l) => l.remove(collection_id, record_id, names),
            Storage::S3(c) => {
                for n in names {
                    if let Err(e) = key(collection_id, record_id, n).and_then(|k| c.delete(&k)) {
                        tracing::warn!(error = %e, file = %n, "removing a stored file failed");
                    }
                    thumb::remove_s3(c, collection_id, record_id, n);
                }
            }
        }
    }

    /// Removes all of a record's files (failures are logged).
    pub fn remove_record(&self, collection_id: &str, record_id: &str) {
        match self {
            Storage::Local(l) => l.remove_record(collection_id, record_id),
            Storage::S3(c) => {
                if !(safe_name(collection_id) && safe_name(record_id)) {
                    return;
                }
                if let Err(e) = c.delete_prefix(&format!("{collection_id}/{record_id}/")) {
                    tracing::warn!(error = %e, record = %record_id, "removing a record's files failed");
                }
            }
        }
    }
}

/// Removes the files of deleted records after their commit: at once for
/// local storage (a few unlinks on the writer thread), on its own thread
/// for S3 (network calls never hold the writer). The queue is bounded;
/// when it is full the removal runs where it was asked. The thread and its
/// queue (4096 slots, about 320 KiB once allocated) start with the first
/// S3 removal: a daemon on local storage never holds them.
pub struct Janitor {
    storage: Box<dyn Fn() -> std::io::Result<Storage> + Send + Sync>,
    tx: std::sync::OnceLock<Option<std::sync::mpsc::SyncSender<(Storage, String, String)>>>,
}

/// The removals queued for the S3 thread at most.
const JANITOR_QUEUE: usize = 4096;

impl Janitor {
    pub fn start(storage: Box<dyn Fn() -> std::io::Result<Storage> + Send + Sync>) -> Janitor {
        Janitor {
            storage,
            tx: std::sync::OnceLock::new(),
        }
    }

    /// The S3 removal queue, its thread started on first use (None: the
    /// thread could not start; removals then run where they are asked).
    fn queue(&self) -> Option<&std::sync::mpsc::SyncSender<(Storage, String, String)>> {
        self.tx
            .get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(Storage, String, String)>(JANITOR_QUEUE);
                let started = std::thread::Builder::new()
                    .name("keepd-files".into())
                    .spawn(move || {
                        while let Ok((s, cid, rid)) = rx.recv() {
                            s.remove_record(&cid, &rid);
                        }
                    });
                match started {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        tracing::warn!(error = %e, "the file removal thread did not start; removals run inline");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Removes (or queues the removal of) a deleted record's files.
    pub fn record_deleted(&self, collection_id: &str, record_id: &str) {
        let storage = match (self.storage)() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, record = %record_id, "file storage unavailable; the deleted record's files stay");
                return;
            }
        };
        match storage {
            Storage::Local(l) => l.remove_record(collection_id, record_id),
            s => {
                let Some(tx) = self.queue() else {
                    return s.remove_record(collection_id, record_id);
                };
                match tx.try_send((s, collection_id.to_string(), record_id.to_string())) {
                    Ok(()) => {}
                    Err(
                        std::sync::mpsc::TrySendError::Full((s, c, r))
                        | std::sync::mpsc::TrySendError::Disconnected((s, c, r)),
                    ) => s.remove_record(&c, &r),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52,
    ];

    /// Local removals run inline; the S3 thread and its queue are not
    /// started for them (nothing of theirs resident on local storage).
    #[test]
    fn local_removals_start_no_thread() {
        let root = std::env::temp_dir().join(format!("keepd-janitor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("storage/c1/r1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), b"x").unwrap();
        let data = root.clone();
        let j = Janitor::start(Box::new(move || Ok(Storage::Local(Local::new(&data)))));
        j.record_deleted("c1", "r1");
        assert!(!dir.exists(), "the record's files are removed at once");
        assert!(j.tx.get().is_none(), "no removal thread for local storage");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn directories_made_durably_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("keepd-mkdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir(&root).unwrap();
        let deep = root.join("a/b/c");
        create_dir_durable(&deep).unwrap();
        create_dir_durable(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            let m = std::fs::metadata(root.join(d)).unwrap();
            assert!(m.is_dir());
            assert_eq!(m.permissions().mode() & 0o777, 0o700, "{d}");
        }
        std::fs::write(root.join("f"), b"x").unwrap();
        assert!(create_dir_durable(&root.join("f/g")).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn names_as_pocketbase() {
        let n = stored_name("My Holiday Photo.PNG", PNG);
        assert!(n.starts_with("my_holiday_photo_"), "{n}");
        assert!(n.ends_with(".PNG"), "{n}");
        assert_eq!(n.len(), "my_holiday_photo_".len() + 10 + 4);
        let n = stored_name("../../etc/passwd", b"x");
        assert!(n.starts_with("passwd_"), "{n}");
        assert!(safe_name(&n));
        let n = stored_name("a", PNG);
        assert!(n.ends_with(".png"), "extension from the content: {n}");
        assert!(safe_name(&stored_name("..\0/.x", b"")));
    }

    #[test]
    fn traversal_corpus_is_unsafe() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "x\0y",
            ".hidden",
            "a\nb",
            "..%2fx",
            "\u{2215}x",
            "x\u{ff0f}y",
            "%2e%2e",
            "a b",
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_name("photo_abc123defg.png"));
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(PNG), "image/png");
        assert_eq!(sniff(b"hello"), "text/plain; charset=utf-8");
        assert_eq!(sniff(&[0xff, 0xfe, 0x00, 0x81]), "application/octet-stream");
        assert!(mime_allowed(
            "text/plain; charset=utf-8",
            &["text/plain".into()]
        ));
        assert!(!mime_allowed("image/png", &["text/plain".into()]));
        assert!(mime_allowed("image/png", &[]));
    }
}
