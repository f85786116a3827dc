//! Backups against the real daemon: encrypted with age (the file is not a
//! readable zip), 0600, downloadable only with a superuser file token;
//! restore rolls the data back after a restart; a wrong key or a damaged
//! archive is a clear error that changes nothing; plaintext only when
//! chosen.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn titles(srv: &TestServer) -> Vec<String> {
    let (st, v) = srv.su().list("notes", &[("sort", "title")]);
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["title"].as_str().expect("title").to_string())
        .collect()
}

fn note(srv: &TestServer, title: &str) {
    let (st, v) = srv
        .su()
        .post("/api/collections/notes/records", &json!({"title": title}));
    assert_eq!(st, 200, "{v}");
}

#[test]
fn encrypted_backup_restore_wrong_key_and_damage() {
    if is_reference() {
        return;
    }
    let root = TempRoot::new("backup");
    let id = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    let key_file = root.path.join("backup.key");
    use age::secrecy::ExposeSecret;
    std::fs::write(&key_file, id.to_string().expose_secret()).expect("key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("mode");
    let mut srv = TestServer::builder()
        .root(root.clone())
        .env("KEEPD_BACKUP_RECIPIENTS", &id.to_public().to_string())
        .env(
            "KEEPD_BACKUP_IDENTITY_FILE",
            key_file.to_str().expect("utf8"),
        )
        .start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "fields": [{"name": "title", "type": "text"}]
    }));
    note(&srv, "before");
    let (st, v) = srv.su().post("/api/backups", &json!({"name": "one.zip"}));
    assert_eq!(st, 204, "{v}");
    let (st, v) = srv
        .su()
        .post("/api/backups", &json!({"name": "Bad Name.zip"}));
    assert_eq!(st, 400, "{v}");
    let (_, list) = srv.su().get("/api/backups");
    assert_eq!(list[0]["key"], "one.zip", "{list}");
    assert!(list[0]["size"].as_u64().unwrap_or(0) > 100);
    let data_dir = srv.db_path().parent().expect("dir").to_path_buf();
    let file = data_dir.join("backups").join("one.zip");
    let bytes = std::fs::read(&file).expect("backup");
    assert!(bytes.starts_with(b"age-encryption.org/v1"), "not encrypted");
    assert!(
        !bytes.windows(7).any(|w| w == b"data.db"),
        "plaintext inside"
    );
    assert_eq!(
        std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o600
    );

    // Download: superuser file token only.
    let r = srv.raw("GET", "/api/backups/one.zip", &[], None);
    assert_eq!(r.status, 403);
    let (_, t) = srv.su().post("/api/files/token", &json!({}));
    let tok = t["token"].as_str().expect("token").to_string();
    let r = srv.raw(
        "GET",
        &format!("/api/backups/one.zip?token={tok}"),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);

    note(&srv, "after");

    // A backup for another key: refused, nothing changed.
    let out = keepd_cmd()
        .args(["backup", "--name", "other.zip", "--dir"])
        .arg(&data_dir)
        .env("KEEPD_BACKUP_RECIPIENTS", other.to_public().to_string())
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (st, v) = srv.su().post("/api/backups/other.zip/restore", &json!({}));
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["message"],
        "The backup can't be decrypted with the configured key."
    );
    // A damaged archive: refused, nothing changed.
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    for b in &mut damaged[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(data_dir.join("backups").join("bad.zip"), &damaged).expect("write");
    let (st, v) = srv.su().post("/api/backups/bad.zip/restore", &json!({}));
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("damaged")
            || v["message"].as_str().unwrap_or("").contains("decrypted"),
        "{v}"
    );
    assert!(srv.is_running());
    assert!(!data_dir.join(".restore").exists());
    assert_eq!(titles(&srv), vec!["after", "before"]);

    // Restore: answered, then the daemon exits for its restart.
    let (st, v) = srv.su().post("/api/backups/one.zip/restore", &json!({}));
    assert_eq!(st, 204, "{v}");
    let until = Instant::now() + Duration::from_secs(10);
    while srv.is_running() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !srv.is_running(),
        "the daemon didn't exit after the restore"
    );
    let srv = srv.restart();
    assert_eq!(titles(&srv), vec!["before"], "the restore didn't roll back");
    let (_, a) = srv.su().get("/api/audit?action=backup.restore");
    assert_eq!(a["items"].as_array().map(Vec::len), Some(1));
    let (st, _) = srv.su().delete("/api/backups/one.zip");
    assert_eq!(st, 204);
    let (_, list) = srv.su().get("/api/backups");
    assert!(!list.to_string().contains("one.zip"));
}

#[test]
fn plaintext_only_when_chosen() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (st, v) = srv.su().post("/api/backups", &json!({"name": "x.zip"}));
    assert_eq!(st, 400, "no recipients: {v}");
    assert!(v["message"]
        .as_str()
        .unwrap_or("")
        .contains("backup_recipients"));
    drop(srv);
    let srv = TestServer::builder()
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .start();
    let (st, v) = srv.su().post("/api/backups", &json!({}));
    assert_eq!(st, 204, "{v}");
    let (_, list) = srv.su().get("/api/backups");
    let key = list[0]["key"].as_str().expect("key").to_string();
    assert!(
        key.starts_with("pb_backup_") && key.ends_with(".zip"),
        "{key}"
    );
    let dir = srv.db_path().parent().expect("dir").join("backups");
    let bytes = std::fs::read(dir.join(&key)).expect("file");
    assert!(bytes.starts_with(b"PK"), "a plaintext zip");
    let _: Value = list;
}
