//! `keepd check` on real data directories: healthy → exit 0; a loosened
//! mode, a corrupted page, a bad config → a plain message and exit 1.

use crate::common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn check(dir: &Path) -> (bool, String) {
    let out = keepd_cmd()
        .args(["check", "--dir"])
        .arg(dir)
        .output()
        .expect("run keepd check");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn check_finds_loose_modes_and_corruption() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "createRule": "",
        "fields": [{"name": "t", "type": "text"}]
    }));
    for i in 0..300 {
        let (st, _) = srv.su().post(
            "/api/collections/notes/records",
            &json!({"t": format!("note {i} {}", "x".repeat(200))}),
        );
        assert_eq!(st, 200);
    }
    let dir = srv.db_path().parent().expect("dir").to_path_buf();
    // Healthy, even while serving.
    let (ok, out) = check(&dir);
    assert!(ok, "{out}");
    assert!(out.contains("healthy"), "{out}");

    // A loosened mode.
    let db = dir.join("data.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, out) = check(&dir);
    assert!(!ok, "a 0644 database passed: {out}");
    assert!(
        out.contains("data.db") && out.contains("chmod 600"),
        "{out}"
    );
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A corrupted copy (the live one is left alone).
    srv.kill9();
    let copy = TempRoot::new("check-copy");
    let cdir = copy.path.join("data");
    std::fs::create_dir(&cdir).expect("mkdir");
    std::fs::set_permissions(&cdir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute(
        "VACUUM INTO ?1",
        [cdir.join("data.db").to_string_lossy().as_ref()],
    )
    .expect("vacuum into");
    drop(conn);
    std::fs::set_permissions(cdir.join("data.db"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let (ok, out) = check(&cdir);
    assert!(ok, "a clean copy: {out}");
    let mut bytes = std::fs::read(cdir.join("data.db")).expect("read");
    let page = 4096;
    for p in 2..(bytes.len() / page).min(40) {
        for b in &mut bytes[p * page + 8..p * page + 64] {
            *b = 0xa5;
        }
    }
    std::fs::write(cdir.join("data.db"), &bytes).expect("write");
    let (ok, out) = check(&cdir);
    assert!(!ok, "a corrupted database passed: {out}");
    assert!(out.contains("problem:") && out.contains("data.db"), "{out}");

    // A bad config is reported too.
    let out = keepd_cmd()
        .args(["check", "--dir"])
        .arg(&dir)
        .env("KEEPD_READERS", "0")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("readers"));
}
