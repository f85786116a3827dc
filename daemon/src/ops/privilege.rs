//! The operator's tools (`check`, `backup`, `superuser …`, `rekey`) run as
//! root on the service's data dir: after the root-only files are read (the
//! configuration, the database key, a new key), keepd becomes the data
//! dir's owner — its uid, its gid, no supplementary groups — for the rest
//! of the command, so that it reads and writes the data as the service
//! does (every file it creates stays the service's, and the start-up check
//! of modes and owners passes). `sudo keepd check --database-key-file
//! /etc/keepd/database.key` then works with a root-only key, the same key
//! the unit hands the service with `LoadCredential=`.
//!
//! Only root switches, only to a non-root owner, and only while the process
//! has one thread (Linux credentials are per thread; threads started later
//! inherit them). `keepd serve` never switches: the unit starts it as its
//! user.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Whom the command runs as after `become_owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// Unchanged: not root, no data dir yet, or a root-owned one.
    Unchanged,
    /// Switched from root to this uid and gid (the data dir's owner).
    Owner { uid: u32, gid: u32 },
}

/// When running as root on a data dir owned by another user, becomes that
/// user. Call it after reading what only root may read and before opening
/// anything in the data dir.
pub fn become_owner(dir: &Path) -> anyhow::Result<RunAs> {
    use rustix::process::{geteuid, getuid, Gid, Uid};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    if !geteuid().is_root() {
        return Ok(RunAs::Unchanged);
    }
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return Ok(RunAs::Unchanged);
    };
    if !m.is_dir() || m.uid() == 0 {
        return Ok(RunAs::Unchanged);
    }
    let threads = threads();
    anyhow::ensure!(
        threads == Some(1),
        "internal: the switch to the data directory's owner must happen before any thread starts ({threads:?} threads)"
    );
    let (uid, gid) = (m.uid(), m.gid());
    let fail = |what: &str, e: rustix::io::Errno| {
        anyhow::anyhow!(
            "becoming the owner of {} (uid {uid}, gid {gid}): {what}: {e}",
            dir.display()
        )
    };
    let (u, g) = (Uid::from_raw(uid), Gid::from_raw(gid));
    set_thread_groups(&[g]).map_err(|e| fail("setgroups", e))?;
    set_thread_res_gid(g, g, g).map_err(|e| fail("setresgid", e))?;
    set_thread_res_uid(u, u, u).map_err(|e| fail("setresuid", e))?;
    anyhow::ensure!(
        getuid() == u
            && geteuid() == u
            && set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_err(),
        "becoming the owner of {}: root could be regained",
        dir.display()
    );
    Ok(RunAs::Owner { uid, gid })
}

/// Threads in this process (`/proc/self/status`).
fn threads() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_changes_for_a_missing_dir() {
        let r = become_owner(Path::new("/nonexistent/keepd-data")).unwrap();
        assert_eq!(r, RunAs::Unchanged);
    }
}
