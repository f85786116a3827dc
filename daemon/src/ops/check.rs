//! `keepd check`: the operator's health check of a data directory, safe to
//! run while the daemon serves (read-only). Each problem is one plain line;
//! any problem makes the exit status non-zero.
//!
//! - the configuration is valid (it was loaded to get here);
//! - modes and owners of everything in the data dir, no links (the check
//!   `keepd serve` makes at start);
//! - the database opens (with its key, when encrypted);
//! - `PRAGMA integrity_check` and `PRAGMA foreign_key_check`;
//! - free disk space under the data dir.

use std::path::Path;

/// Free space below which `check` complains (bytes).
pub const MIN_FREE: u64 = 64 << 20;

/// The problems found (empty: healthy). `key`: the database key (None:
/// plaintext).
pub fn run(dir: &Path, key: Option<&crate::store::DbKey>) -> Vec<String> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        out.push(format!("{}: no such data directory", dir.display()));
        return out;
    }
    for p in crate::store::check_modes(dir) {
        out.push(p.to_string());
    }
    let db = dir.join("data.db");
    if !db.exists() {
        out.push(format!(
            "{}: missing (the daemon creates it on first start)",
            db.display()
        ));
    } else {
        match crate::store::open_read_only(&db, key) {
            Err(e) if e.is::<crate::store::KeyError>() => out.push(e.to_string()),
            Err(e) => out.push(format!("{}: can't be opened: {e}", db.display())),
            Ok(c) => {
                match crate::store::integrity_check(&c) {
                    Ok(lines) if lines == ["ok"] => {}
                    Ok(lines) => {
                        for l in lines.into_iter().take(20) {
                            out.push(format!("{}: integrity_check: {l}", db.display()));
                        }
                    }
                    Err(e) => out.push(format!("{}: integrity_check failed: {e}", db.display())),
                }
                match crate::store::foreign_key_problems(&c) {
                    Ok(v) => {
                        for l in v.into_iter().take(20) {
                            out.push(format!("{}: foreign_key_check: {l}", db.display()));
                        }
                    }
                    Err(e) => out.push(format!("{}: foreign_key_check failed: {e}", db.display())),
                }
            }
        }
    }
    match rustix::fs::statvfs(dir) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            if free < MIN_FREE {
                out.push(format!(
                    "{}: only {} MiB free on its filesystem (keep at least {} MiB)",
                    dir.display(),
                    free >> 20,
                    MIN_FREE >> 20
                ));
            }
        }
        Err(e) => out.push(format!("{}: free space unknown: {e}", dir.display())),
    }
    out
}
