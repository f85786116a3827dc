//! File modes: keepd creates its data dir 0700 and its files 0600; it
//! refuses to start on looser modes with a message naming the path, the
//! mode and the fix; `--fix-permissions` repairs and starts.

use crate::common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every path under `dir` (files and directories), depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// A data dir with a database, WAL and SHM left behind by a killed server.
fn populated_root() -> std::sync::Arc<TempRoot> {
    let mut srv = TestServer::start();
    srv.create_collection(
        &json!({"name": "notes", "type": "base", "fields": [{"name": "text", "type": "text"}]}),
    );
    let (st, v) = srv
        .su()
        .post("/api/collections/notes/records", &json!({"text": "kept"}));
    assert_eq!(st, 200, "{v}");
    let root = srv.root.clone();
    srv.kill9();
    root
}

#[test]
fn data_dir_is_created_0700_and_files_0600() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    srv.create_collection(&json!({"name": "notes", "type": "base", "createRule": "", "fields": [{"name": "text", "type": "text"}]}));
    let (st, v) = srv
        .guest()
        .post("/api/collections/notes/records", &json!({"text": "x"}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(mode_of(&srv.dir), 0o700, "data dir {}", srv.dir.display());
    let db = srv.dir.join("data.db");
    assert!(db.exists(), "data.db exists");
    assert_eq!(mode_of(&db), 0o600, "{}", db.display());
    let entries = walk(&srv.dir);
    assert!(
        entries.iter().any(|p| p.ends_with("data.db-wal")),
        "WAL mode: a -wal file exists: {entries:?}"
    );
    for p in entries {
        let m = mode_of(&p);
        if p.is_dir() {
            assert_eq!(m & 0o077, 0, "{} is {m:04o}", p.display());
        } else {
            assert_eq!(m, 0o600, "{} is {m:04o}", p.display());
        }
    }
}

#[test]
fn loose_modes_are_refused_naming_path_mode_and_fix() {
    if is_reference() {
        return;
    }
    let root = populated_root();
    let dir = root.path.join("data");
    for f in ["data.db", "data.db-wal", "data.db-shm"] {
        assert!(dir.join(f).exists(), "{f} left behind by the killed server");
    }
    // (what to loosen, its mode)
    let cases: Vec<(PathBuf, u32)> = vec![
        (dir.clone(), 0o755),
        (dir.clone(), 0o750),
        (dir.clone(), 0o701),
        (dir.join("data.db"), 0o644),
        (dir.join("data.db"), 0o640),
        (dir.join("data.db"), 0o604),
        (dir.join("data.db-wal"), 0o644),
        (dir.join("data.db-shm"), 0o660),
    ];
    let mut failures = Vec::new();
    for (path, mode) in &cases {
        chmod(path, *mode);
        let out = serve_once(&dir, &[], &[], Duration::from_secs(10));
        let label = format!("{} at {mode:04o}", path.display());
        let shown = format!("{mode:04o}");
        if !out.failed() {
            failures.push(format!(
                "{label}: want a non-zero exit, got {:?}\n{}{}",
                out.status, out.stdout, out.stderr
            ));
        } else if !out.stderr.contains(&path.display().to_string()) || !out.stderr.contains(&shown)
        {
            failures.push(format!(
                "{label}: stderr must name the path and {shown}:\n{}",
                out.stderr
            ));
        } else if !(out.stderr.contains("--fix-permissions") && out.stderr.contains("chmod")) {
            failures.push(format!(
                "{label}: stderr must name the fix (chmod / --fix-permissions):\n{}",
                out.stderr
            ));
        }
        if out.stdout.contains("keepd listening") {
            failures.push(format!("{label}: it listened anyway"));
        }
        chmod(path, if path.is_dir() { 0o700 } else { 0o600 });
    }
    // Restored modes start again.
    let srv = TestServer::builder()
        .root(root.clone())
        .no_superuser()
        .start();
    let (st, v) = srv.su().list("notes", &[]);
    assert_eq!(
        (st, column(&v, "text")),
        (200, vec!["kept".to_string()]),
        "{v}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_fresh_dir_made_0755_is_refused() {
    if is_reference() {
        return;
    }
    let root = TempRoot::new("modes");
    let dir = root.path.join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o755);
    let out = serve_once(&dir, &[], &[], Duration::from_secs(10));
    assert!(out.failed(), "want a non-zero exit: {out:?}");
    assert!(
        out.stderr.contains(&dir.display().to_string()),
        "names the path: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("0755"),
        "names the mode: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("--fix-permissions"),
        "names the fix: {}",
        out.stderr
    );
    assert_eq!(mode_of(&dir), 0o755, "a refused start changes nothing");
    assert!(
        !dir.join("data.db").exists(),
        "a refused start creates no database"
    );
}

#[test]
fn fix_permissions_repairs_then_starts() {
    if is_reference() {
        return;
    }
    let root = populated_root();
    let dir = root.path.join("data");
    chmod(&dir, 0o755);
    chmod(&dir.join("data.db"), 0o644);
    chmod(&dir.join("data.db-wal"), 0o666);
    let srv = TestServer::builder()
        .root(root.clone())
        .no_superuser()
        .arg("--fix-permissions")
        .start();
    assert_eq!(mode_of(&dir), 0o700);
    for f in ["data.db", "data.db-wal", "data.db-shm"] {
        let p = dir.join(f);
        if p.exists() {
            assert_eq!(mode_of(&p), 0o600, "{}", p.display());
        }
    }
    let (st, v) = srv.su().list("notes", &[]);
    assert_eq!(
        (st, column(&v, "text")),
        (200, vec!["kept".to_string()]),
        "{v}"
    );
    drop(srv);
    // Repaired for good: a plain start works now.
    let srv = TestServer::builder().root(root).no_superuser().start();
    let (st, _) = srv.guest().get("/api/health");
    assert_eq!(st, 200);
}
