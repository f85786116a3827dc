//! Encryption at rest (cargo feature `sqlcipher`) against the real binary:
//! a database written with a key holds none of its records in plaintext
//! and doesn't open without the key; a wrong key, a missing key or a loose
//! key file stop the start with a plain message; `keepd rekey` encrypts a
//! plaintext database, changes the key and decrypts, refuses while the
//! daemon runs, and leaves the database as it was when it fails; backups
//! stay encrypted and restore with the key.
//!
//! Without the feature: a configured key is refused at start.
//!
//! Run with the feature: `cargo test -p keepd --features sqlcipher --test integration encryption::`.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes a key file with `mode`.
fn key_file(root: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
    let p = root.join(name);
    std::fs::write(&p, content).expect("write key");
    chmod(&p, mode);
    p
}

fn hex_key(seed: u8) -> String {
    (0..32u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(37).wrapping_add(seed)))
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

/// `keepd rekey --dir DIR ARGS…` with the current key (if any) configured.
fn rekey(dir: &Path, current: Option<&Path>, args: &[&str]) -> Outcome {
    let mut cmd = keepd_cmd();
    cmd.arg("rekey").arg("--dir").arg(dir).args(args);
    if let Some(k) = current {
        cmd.env("KEEPD_DATABASE_KEY_FILE", k);
    }
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[cfg(feature = "sqlcipher")]
mod with_sqlcipher {
    use super::*;
    use serde_json::json;

    /// Whether any of the database's files holds `needle` in plaintext.
    fn on_disk(dir: &Path, needle: &str) -> bool {
        ["data.db", "data.db-wal"].iter().any(|f| {
            std::fs::read(dir.join(f))
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
    }

    fn notes(srv: &TestServer) {
        srv.create_collection(&json!({
            "name": "notes", "type": "base",
            "listRule": "", "viewRule": "", "createRule": "",
            "fields": [{"name": "t", "type": "text"}]
        }));
    }

    fn add(srv: &TestServer, t: &str) -> String {
        let (st, v) = srv
            .guest()
            .post("/api/collections/notes/records", &json!({ "t": t }));
        assert_eq!(st, 200, "{v}");
        v["id"].as_str().expect("id").to_string()
    }

    fn texts(srv: &TestServer) -> Vec<String> {
        let (st, v) = srv.guest().list("notes", &[("sort", "t")]);
        assert_eq!(st, 200, "{v}");
        column(&v, "t")
    }

    /// A plain SQLite connection (no key) can't read the file.
    fn unreadable_without_key(db: &Path) {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open");
        let r = c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        });
        assert!(r.is_err(), "read without the key: {r:?}");
        let head = std::fs::read(db).expect("read db");
        assert!(
            !head.starts_with(b"SQLite format 3"),
            "a plaintext SQLite header"
        );
    }

    /// The notes' texts, read directly with SQLCipher and `key`.
    fn read_with_key(db: &Path, key: &str) -> Vec<String> {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .expect("open");
        c.pragma_update(None, "key", key).expect("key");
        let mut st = c
            .prepare("SELECT t FROM notes ORDER BY t")
            .expect("prepare");
        let v = st
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<Vec<String>, _>>()
            .expect("rows");
        v
    }

    /// The checkpoint thread opens its connection with the key: pages of
    /// an encrypted database reach `data.db` while the daemon serves, and
    /// stay encrypted there.
    #[test]
    fn checkpoints_of_an_encrypted_database() {
        let root = TempRoot::on_disk("enc-ckpt");
        let key = key_file(&root.path, "database.key", &hex_key(3), 0o600);
        let srv = TestServer::builder()
            .root(root.clone())
            .env("KEEPD_DATABASE_KEY_FILE", s(&key))
            .start();
        crate::durability::checkpointed_beside_the_writer(&srv);
        let db = srv.db_path();
        unreadable_without_key(&db);
        assert!(!on_disk(db.parent().expect("dir"), &"x".repeat(64)));
    }

    #[test]
    fn encrypted_database_unreadable_without_the_key() {
        let root = TempRoot::new("enc");
        let key = key_file(&root.path, "database.key", &hex_key(1), 0o600);
        let mut srv = TestServer::builder()
            .root(root.clone())
            .env("KEEPD_DATABASE_KEY_FILE", s(&key))
            .start();
        notes(&srv);
        let secret = uniq("plaintext-canary-");
        let id = add(&srv, &secret);
        // Read back at once (the point-read path) and through a list.
        let (st, v) = srv
            .guest()
            .get(&format!("/api/collections/notes/records/{id}"));
        assert_eq!((st, v["t"].as_str()), (200, Some(secret.as_str())), "{v}");
        assert_eq!(texts(&srv), vec![secret.clone()]);
        let dir = srv.dir.clone();
        let db = srv.db_path();
        srv.kill9();

        // Nothing readable on disk: not in the database, not in its WAL.
        assert!(
            !on_disk(&dir, &secret),
            "the record is on disk in plaintext"
        );
        assert!(
            !on_disk(&dir, SU_EMAIL),
            "the superuser is on disk in plaintext"
        );
        unreadable_without_key(&db);

        // keepd check needs the key too.
        let check = |k: Option<&Path>| {
            let mut c = keepd_cmd();
            c.arg("check").arg("--dir").arg(&dir);
            if let Some(k) = k {
                c.env("KEEPD_DATABASE_KEY_FILE", k);
            }
            run_with_timeout(c, Duration::from_secs(30))
        };
        let ok = check(Some(&key));
        assert!(ok.succeeded(), "{ok:?}");
        let bad = check(None);
        assert!(bad.failed() && bad.stdout.contains("encrypted"), "{bad:?}");

        // Without the key, or with a wrong one: a plain message, non-zero.
        let none = serve_once(&dir, &[], &[], Duration::from_secs(20));
        assert!(none.failed(), "served without the key: {none:?}");
        assert!(
            none.stderr.contains("not a readable database") && none.stderr.contains("encrypted"),
            "{}",
            none.stderr
        );
        let wrong = key_file(&root.path, "wrong.key", &hex_key(2), 0o600);
        let out = serve_once(
            &dir,
            &[],
            &[("KEEPD_DATABASE_KEY_FILE", s(&wrong))],
            Duration::from_secs(20),
        );
        assert!(out.failed(), "served with a wrong key: {out:?}");
        assert!(
            out.stderr
                .contains("the database key is wrong or the database is not encrypted"),
            "{}",
            out.stderr
        );
        assert!(!out.stdout.contains("keepd listening"));
        assert!(
            !out.stderr.contains("hmac check failed"),
            "SQLCipher's own log leaked: {}",
            out.stderr
        );
        // A key never reaches the output.
        assert!(!out.stderr.contains(&hex_key(2)) && !out.stdout.contains(&hex_key(2)));

        // The right key, through systemd's credentials directory this time.
        let creds = root.path.join("creds");
        std::fs::create_dir(&creds).expect("mkdir");
        std::fs::copy(&key, creds.join("database-key")).expect("copy key");
        chmod(&creds.join("database-key"), 0o400);
        let srv = TestServer::builder()
            .root(root.clone())
            .no_superuser()
            .env("CREDENTIALS_DIRECTORY", s(&creds))
            .start();
        assert_eq!(texts(&srv), vec![secret.clone()]);
        let (st, v) = srv
            .guest()
            .get(&format!("/api/collections/notes/records/{id}"));
        assert_eq!(st, 200, "{v}");
        assert!(!srv.output().contains(&hex_key(1)), "the key was logged");
    }

    #[test]
    fn loose_key_files_are_refused() {
        let root = TempRoot::new("enc-mode");
        let dir = root.path.join("data");
        let uid = std::fs::metadata("/proc/self").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        let mut cases = vec![(0o644, true), (0o604, true), (0o660, true), (0o600, false)];
        // Group read is allowed only for a root-owned file (root:keepd 0640).
        cases.push((0o640, uid.ok() != Some(0)));
        for (mode, refused) in cases {
            let key = key_file(&root.path, &format!("k{mode:o}"), &hex_key(3), mode);
            let out = serve_once(
                &dir,
                &[],
                &[("KEEPD_DATABASE_KEY_FILE", s(&key))],
                Duration::from_secs(if refused { 20 } else { 5 }),
            );
            if refused {
                assert!(out.failed(), "mode {mode:o} accepted: {out:?}");
                assert!(
                    out.stderr.contains(&format!("has mode {mode:04o}"))
                        && out.stderr.contains("refusing"),
                    "mode {mode:o}: {}",
                    out.stderr
                );
            } else {
                assert!(
                    out.stdout.contains("keepd listening"),
                    "mode {mode:o} refused: {out:?}"
                );
            }
        }
        // An empty key file is refused too.
        let empty = key_file(&root.path, "empty", "\n", 0o600);
        let out = serve_once(
            &dir,
            &[],
            &[("KEEPD_DATABASE_KEY_FILE", s(&empty))],
            Duration::from_secs(10),
        );
        assert!(out.failed() && out.stderr.contains("is empty"), "{out:?}");
    }

    #[test]
    fn rekey_round_trip() {
        let root = TempRoot::new("rekey");
        let k1 = key_file(&root.path, "k1", &hex_key(4), 0o600);
        let k2 = key_file(&root.path, "k2", "a passphrase, not hex\n", 0o600);
        // A plaintext database with a record.
        let mut srv = TestServer::builder().root(root.clone()).start();
        notes(&srv);
        let secret = uniq("rekey-canary-");
        add(&srv, &secret);
        let dir = srv.dir.clone();
        let db = srv.db_path();

        // Refused while the daemon runs; the database is left alone.
        let out = rekey(&dir, None, &["--new-key-file", s(&k1)]);
        assert!(out.failed(), "{out:?}");
        assert!(out.stderr.contains("running"), "{}", out.stderr);
        assert_eq!(texts(&srv), vec![secret.clone()]);
        srv.kill9(); // the WAL is left behind: rekey folds it in
        assert!(
            on_disk(&dir, &secret),
            "the plaintext database holds the record"
        );

        // Encrypt.
        let out = rekey(&dir, None, &["--new-key-file", s(&k1)]);
        assert!(out.succeeded(), "{out:?}");
        assert!(out.stdout.contains("Encrypted"), "{}", out.stdout);
        assert!(!on_disk(&dir, &secret), "still plaintext after rekey");
        assert!(!dir.join("data.db.rekey").exists());
        assert_eq!(mode_of(&db), 0o600);
        unreadable_without_key(&db);
        let srv = TestServer::builder()
            .root(root.clone())
            .no_superuser()
            .env("KEEPD_DATABASE_KEY_FILE", s(&k1))
            .start();
        assert_eq!(texts(&srv), vec![secret.clone()]);
        add(&srv, "second");
        drop(srv);

        // A wrong current key: refused, and the database is as it was.
        let out = rekey(&dir, Some(&k2), &["--new-key-file", s(&k1)]);
        assert!(
            out.failed() && out.stderr.contains("the database key is wrong"),
            "{out:?}"
        );
        assert_eq!(
            read_with_key(&db, &format!("x'{}'", hex_key(4))),
            vec![secret.clone(), "second".to_string()]
        );
        assert!(!dir.join("data.db.rekey").exists());
        // The same key again: refused.
        let out = rekey(&dir, Some(&k1), &["--new-key-file", s(&k1)]);
        assert!(out.failed() && out.stderr.contains("same"), "{out:?}");

        // Change the key (to a passphrase): the old one no longer opens it.
        let out = rekey(&dir, Some(&k1), &["--new-key-file", s(&k2)]);
        assert!(out.succeeded(), "{out:?}");
        let old = serve_once(
            &dir,
            &[],
            &[("KEEPD_DATABASE_KEY_FILE", s(&k1))],
            Duration::from_secs(20),
        );
        assert!(
            old.failed() && old.stderr.contains("key is wrong"),
            "{old:?}"
        );
        // One reader: each connection runs the passphrase's PBKDF2 (seconds
        // under qemu).
        let srv = TestServer::builder()
            .root(root.clone())
            .no_superuser()
            .env("KEEPD_DATABASE_KEY_FILE", s(&k2))
            .env("KEEPD_READERS", "1")
            .start();
        assert_eq!(texts(&srv), vec![secret.clone(), "second".to_string()]);
        drop(srv);

        // Decrypt: a plain SQLite file again, served without a key.
        let out = rekey(&dir, Some(&k2), &["--decrypt"]);
        assert!(out.succeeded(), "{out:?}");
        let c = rusqlite::Connection::open(&db).expect("open");
        let n: i64 = c
            .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
            .expect("plain read");
        assert_eq!(n, 2);
        drop(c);
        let srv = TestServer::builder()
            .root(root.clone())
            .no_superuser()
            .start();
        assert_eq!(texts(&srv), vec![secret.clone(), "second".to_string()]);
        drop(srv);
        // Nothing to do without a key on either side.
        let out = rekey(&dir, None, &["--decrypt"]);
        assert!(
            out.failed() && out.stderr.contains("not encrypted"),
            "{out:?}"
        );
    }

    #[test]
    fn backups_stay_encrypted_and_restore_with_the_key() {
        let root = TempRoot::new("enc-backup");
        let key = key_file(&root.path, "database.key", &hex_key(5), 0o600);
        let mut srv = TestServer::builder()
            .root(root.clone())
            .env("KEEPD_DATABASE_KEY_FILE", s(&key))
            .env("KEEPD_BACKUP_ENCRYPTION", "none")
            .start();
        notes(&srv);
        let secret = uniq("backup-canary-");
        add(&srv, &secret);
        let (st, v) = srv.su().post("/api/backups", &json!({"name": "one.zip"}));
        assert_eq!(st, 204, "{v}");
        add(&srv, "later");
        // The snapshot inside the (here plaintext) zip is encrypted.
        let zip_path = srv.dir.join("backups").join("one.zip");
        let mut z =
            zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("zip")).expect("zip");
        let mut snap = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name("data.db").expect("data.db"), &mut snap)
            .expect("read");
        assert!(!snap.is_empty() && !snap.starts_with(b"SQLite format 3"));
        assert!(!snap.windows(secret.len()).any(|w| w == secret.as_bytes()));

        // Restore: staged with the key, swapped in at the restart.
        let (st, v) = srv.su().post("/api/backups/one.zip/restore", &json!({}));
        assert_eq!(st, 204, "{v}");
        assert!(wait_until(Duration::from_secs(10), || !srv.is_running()));
        let srv = srv.restart();
        assert_eq!(texts(&srv), vec![secret]);
    }
}

#[cfg(not(feature = "sqlcipher"))]
#[test]
fn a_key_is_refused_without_encryption_support() {
    if is_reference() {
        return;
    }
    let root = TempRoot::new("nokey");
    let dir = root.path.join("data");
    let key = key_file(&root.path, "database.key", &hex_key(6), 0o600);
    let want = "built without encryption support";
    let out = serve_once(
        &dir,
        &[],
        &[("KEEPD_DATABASE_KEY_FILE", s(&key))],
        Duration::from_secs(10),
    );
    assert!(out.failed(), "{out:?}");
    assert!(
        out.stderr.contains("database_key_file") && out.stderr.contains(want),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("keepd listening"));
    // Through systemd's credentials directory too.
    let creds = root.path.join("creds");
    std::fs::create_dir(&creds).expect("mkdir");
    key_file(&creds, "database-key", &hex_key(6), 0o400);
    let out = serve_once(
        &dir,
        &[],
        &[("CREDENTIALS_DIRECTORY", s(&creds))],
        Duration::from_secs(10),
    );
    assert!(out.failed() && out.stderr.contains(want), "{out:?}");
    // And rekey.
    let out = rekey(&dir, None, &["--new-key-file", s(&key)]);
    assert!(out.failed() && out.stderr.contains(want), "{out:?}");
    // The database itself stays usable without a key.
    let out = serve_once(&dir, &[], &[], Duration::from_secs(5));
    assert!(out.stdout.contains("keepd listening"), "{out:?}");
}
