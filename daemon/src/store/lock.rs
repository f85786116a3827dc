//! A lock on the data directory itself (flock on the directory, so no lock
//! file to own or clean up). Everything that opens the store holds it
//! shared — the daemon, `keepd superuser …`, `keepd backup`, `keepd check` —
//! and `keepd rekey`, which replaces the database file, holds it exclusive:
//! it refuses while anything else has the directory open, and nothing opens
//! it while a rekey runs. The kernel drops the lock when the process ends.

use std::fs::{File, TryLockError};
use std::path::Path;

/// Held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
}

impl DirLock {
    /// A shared lock; fails at once while a `keepd rekey` holds it.
    pub fn shared(dir: &Path) -> anyhow::Result<DirLock> {
        let f = open(dir)?;
        match f.try_lock_shared() {
            Ok(()) => Ok(DirLock { _dir: f }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "{}: a `keepd rekey` is changing the database key; start again when it has finished",
                dir.display()
            ),
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// The exclusive lock; fails at once while anything else holds it.
    pub fn exclusive(dir: &Path) -> anyhow::Result<DirLock> {
        let f = open(dir)?;
        match f.try_lock() {
            Ok(()) => Ok(DirLock { _dir: f }),
            Err(TryLockError::WouldBlock) => anyhow::bail!(
                "{}: keepd is running on this data directory (or another keepd command is); stop it first (systemctl stop keepd)",
                dir.display()
            ),
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

fn open(dir: &Path) -> anyhow::Result<File> {
    File::open(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_excludes_exclusive() {
        let dir = std::env::temp_dir().join(format!("keepd-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = DirLock::shared(&dir).unwrap();
        let b = DirLock::shared(&dir).unwrap();
        let e = DirLock::exclusive(&dir).unwrap_err().to_string();
        assert!(e.contains("running"), "{e}");
        drop((a, b));
        let x = DirLock::exclusive(&dir).unwrap();
        assert!(DirLock::shared(&dir).is_err());
        drop(x);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
