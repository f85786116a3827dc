//! Backups on S3 (`backups.s3`) against the real daemon and a real
//! S3-compatible server that checks SigV4 signatures (s3rver, run by
//! `tests/s3/server.js`; a wrong secret is refused, which proves it):
//! create → list → download → restore → delete on the bucket, nothing kept
//! locally; a backup larger than a part goes up in parts with bounded
//! memory; a store that fails mid-upload or can't be reached is a clear
//! error that leaves no object and no local file; the schedule's retention
//! deletes the oldest scheduled backups on the bucket.

use crate::backups::{audit_targets, download_resp, note, titles};
use crate::common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "keepd-backups";
/// keepd's multipart part size (`files::s3::PART_SIZE`).
const PART: usize = 8 << 20;

/// One s3rver process with its own directory and request log.
struct S3Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _root: std::sync::Arc<TempRoot>,
}

impl S3Server {
    /// `None` (and a skip, or a failure under CI) when its packages are
    /// not installed. `fail_part`: the part upload answered 500.
    fn start(fail_part: Option<u32>) -> Option<S3Server> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/s3");
        if !dir.join("node_modules/s3rver").is_dir() {
            missing_prerequisite("s3rver is not installed", "run ./dev.sh deps");
            return None;
        }
        let root = TempRoot::new("s3rver");
        let log = root.path.join("requests.log");
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("server.js"))
            .arg(root.path.join("objects"))
            .arg(BUCKET)
            .arg(&log);
        if let Some(n) = fail_part {
            cmd.arg(n.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("READY line");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("s3rver did not start: {line:?}"));
        Some(S3Server {
            child,
            port,
            log,
            _root: root,
        })
    }

    /// The `backups.s3` settings for this server.
    fn settings(&self, secret: &str) -> Value {
        json!({"backups": {"s3": {
            "enabled": true, "bucket": BUCKET, "region": "us-east-1",
            "endpoint": format!("http://127.0.0.1:{}", self.port),
            "accessKey": "S3RVER", "secret": secret, "forcePathStyle": true
        }}})
    }

    /// The bucket's keys, straight from the server (it answers unsigned
    /// listings).
    fn keys(&self) -> Vec<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "GET /{BUCKET}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nx-test-anonymous: 1\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("read");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    /// The logged requests whose line contains every one of `parts`.
    fn requests(&self, parts: &[&str]) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keepd with age-encrypted backups (recipient and identity) and a
/// `notes` collection.
fn keepd(root: &std::sync::Arc<TempRoot>, id: &age::x25519::Identity) -> TestServer {
    let key_file = root.path.join("backup.key");
    use age::secrecy::ExposeSecret;
    std::fs::write(&key_file, id.to_string().expose_secret()).expect("key");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("mode");
    let srv = TestServer::builder()
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
    srv
}

/// Everything under the data dir's `backups/` and a `.restore/` left
/// behind (temporary files included).
fn local_leftovers(srv: &TestServer) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(srv.dir.join("backups"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    if srv.dir.join(".restore").exists() {
        v.push(".restore".into());
    }
    v
}

fn keys_of(list: &Value) -> Vec<String> {
    let mut k: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|b| b["key"].as_str().expect("key").to_string())
        .collect();
    k.sort();
    k
}

/// `POST /api/backups/upload` of one file.
fn upload(srv: &TestServer, name: &str, data: &[u8]) -> (u16, Value) {
    const B: &str = "keepds3boundary7f1";
    let mut body = format!(
        "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{B}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={B}");
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        "/api/backups/upload",
        &[
            ("Content-Type", ct.as_str()),
            ("Authorization", tok.as_str()),
        ],
        Some(&body),
    );
    (r.status, r.json())
}

fn decrypt(id: &age::x25519::Identity, bytes: &[u8]) -> Vec<u8> {
    let d = age::Decryptor::new(bytes).expect("age header");
    let mut r = d
        .decrypt(std::iter::once(id as &dyn age::Identity))
        .expect("decrypt");
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("decrypt all");
    out
}

#[test]
fn s3_backups_create_list_download_restore_delete() {
    if is_reference() {
        return;
    }
    let Some(s3) = S3Server::start(None) else {
        return;
    };
    let root = TempRoot::new("backup-s3");
    let id = age::x25519::Identity::generate();
    let mut srv = keepd(&root, &id);
    let (st, v) = srv.su().patch("/api/settings", &s3.settings("S3RVER"));
    assert_eq!(st, 200, "{v}");
    note(&srv, "before");

    let (st, v) = srv.su().post("/api/backups", &json!({"name": "one.zip"}));
    assert_eq!(st, 204, "{v}\n{}", srv.output());
    assert_eq!(s3.keys(), ["one.zip"], "the backup is on the bucket");
    assert!(
        local_leftovers(&srv).is_empty(),
        "nothing kept locally: {:?}",
        local_leftovers(&srv)
    );
    // The same name again: refused, as locally.
    let (st, v) = srv.su().post("/api/backups", &json!({"name": "one.zip"}));
    assert_eq!(st, 400, "{v}");

    // Listed from the bucket in PocketBase's shape.
    let (st, list) = srv.su().get("/api/backups");
    assert_eq!(st, 200, "{list}");
    assert_eq!(keys_of(&list), ["one.zip"]);
    let item = &list[0];
    assert!(item["size"].as_u64().unwrap_or(0) > 100, "{item}");
    let modified = item["modified"].as_str().expect("modified");
    assert!(
        modified.len() == "2026-01-02 03:04:05.000Z".len() && modified.ends_with('Z'),
        "{modified}"
    );

    // Downloaded: the encrypted archive, as long as listed, which decrypts
    // to a zip with the database (what restore accepts).
    let r = download_resp(&srv, "one.zip");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, item["size"].as_u64().expect("size"));
    assert!(r.body.starts_with(b"age-encryption.org/v1"), "encrypted");
    let plain = decrypt(&id, &r.body);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(plain)).expect("zip");
    assert!(z.by_name("data.db").is_ok());
    assert_eq!(download_resp(&srv, "nope.zip").status, 400);

    // Uploaded: checked on disk, streamed to the bucket, not kept locally;
    // a name the bucket holds already is refused as PocketBase refuses it.
    let (st, v) = upload(&srv, "copy.zip", &r.body);
    assert_eq!(st, 204, "{v}");
    assert_eq!(s3.keys(), ["copy.zip", "one.zip"]);
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );
    assert_eq!(download_resp(&srv, "copy.zip").body, r.body);
    let (st, v) = upload(&srv, "one.zip", &r.body);
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["file"]["code"], "validation_backup_name_exists");
    let (st, _) = srv.su().delete("/api/backups/copy.zip");
    assert_eq!(st, 204);

    // A damaged archive on the bucket: the restore fetches and checks it,
    // refuses it, and stages nothing.
    let mut damaged = r.body.clone();
    let mid = damaged.len() / 2;
    for b in &mut damaged[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let (st, v) = upload(&srv, "bad.zip", &damaged);
    assert_eq!(st, 204, "{v}");
    let (st, v) = srv.su().post("/api/backups/bad.zip/restore", &json!({}));
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or("").contains("damaged"),
        "{v}"
    );
    assert!(srv.is_running());
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );
    let (st, _) = srv.su().delete("/api/backups/bad.zip");
    assert_eq!(st, 204);

    // Restore from the bucket: answered, the daemon exits, and after the
    // restart the data is as it was at the backup.
    note(&srv, "after");
    assert_eq!(titles(&srv), ["after", "before"]);
    let (st, v) = srv.su().post("/api/backups/nope.zip/restore", &json!({}));
    assert_eq!(st, 400, "{v}");
    assert!(srv.is_running());
    let (st, v) = srv.su().post("/api/backups/one.zip/restore", &json!({}));
    assert_eq!(st, 204, "{v}\n{}", srv.output());
    let until = Instant::now() + Duration::from_secs(10);
    while srv.is_running() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !srv.is_running(),
        "the daemon didn't exit after the restore"
    );
    let srv = srv.restart();
    assert_eq!(titles(&srv), ["before"], "the restore didn't roll back");
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );

    // Deleted from the bucket.
    let (st, _) = srv.su().delete("/api/backups/one.zip");
    assert_eq!(st, 204);
    assert!(s3.keys().is_empty());
    let (_, list) = srv.su().get("/api/backups");
    assert_eq!(list, json!([]));
    // Deleted already: 204, as PocketBase answers for a missing object on
    // S3 (tests/sdk/s3.test.mjs runs the same against it).
    let (st, v) = srv.su().delete("/api/backups/one.zip");
    assert_eq!(st, 204, "{v}");
}

/// A wrong secret is refused by the server (so signatures are checked), an
/// unreachable store is a clear error, and a store failing in the middle
/// of a multipart upload gets the upload aborted: no object, no local file.
#[test]
fn s3_backups_failures_leave_nothing() {
    if is_reference() {
        return;
    }
    let Some(s3) = S3Server::start(Some(2)) else {
        return;
    };
    let root = TempRoot::new("backup-s3-fail");
    let id = age::x25519::Identity::generate();
    let mut srv = keepd(&root, &id);
    note(&srv, "x");

    let (st, v) = srv
        .su()
        .patch("/api/settings", &s3.settings("wrong-secret"));
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv.su().post("/api/backups", &json!({"name": "w.zip"}));
    assert_eq!(st, 400, "{v}");
    assert_error_shape(&v, 400, "wrong secret");
    let msg = v["message"].as_str().unwrap_or("");
    assert!(msg.contains("S3") && msg.contains("403"), "{v}");
    let (st, v) = srv.su().get("/api/backups");
    assert_eq!(st, 400, "{v}");
    assert!(s3.keys().is_empty());
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );

    // Nothing listening there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"backups": {"s3": {"endpoint": format!("http://127.0.0.1:{port}"), "secret": "S3RVER"}}}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv.su().post("/api/backups", &json!({"name": "u.zip"}));
    assert_error_shape(&v, 400, "unreachable");
    assert_eq!(st, 400);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("The S3 backups storage can't be used"),
        "{v}"
    );
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );

    // The server fails part 2 of a large backup: the upload is aborted.
    let (st, v) = srv.su().patch("/api/settings", &s3.settings("S3RVER"));
    assert_eq!(st, 200, "{v}");
    big_file(&srv, PART + (2 << 20));
    let (st, v) = create_slowly(&srv, "big.zip");
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("500"), "{v}");
    assert_eq!(
        s3.requests(&["POST", "big.zip?", "uploads="]),
        1,
        "a multipart upload"
    );
    assert_eq!(
        s3.requests(&["DELETE", "big.zip?", "uploadId="]),
        1,
        "aborted"
    );
    assert_eq!(
        s3.requests(&["POST", "big.zip?", "uploadId="]),
        0,
        "never completed"
    );
    assert!(s3.keys().is_empty(), "{:?}", s3.keys());
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );
    assert!(srv.is_running());
}

/// Incompressible bytes of `len` in the stored files (the backup archives
/// `storage/` whole), so that the backup is about as large.
fn big_file(srv: &TestServer, len: usize) {
    let d = srv
        .dir
        .join("storage")
        .join("bigcoll0000000")
        .join("bigrec000000000");
    std::fs::create_dir_all(&d).expect("dir");
    let mut f = std::fs::File::create(d.join("big.bin")).expect("file");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..len >> 20 {
        for b in buf.chunks_mut(8) {
            // xorshift: fast and deflate can't shrink it.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        f.write_all(&buf).expect("write");
    }
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .expect("mode");
}

/// `POST /api/backups` of a large backup: a debug build under load takes
/// longer than the common client waits.
fn create_slowly(srv: &TestServer, name: &str) -> (u16, Value) {
    let mut c = std::net::TcpStream::connect(srv.addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    let body = json!({ "name": name }).to_string();
    write!(
        c,
        "POST /api/backups HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        srv.addr,
        srv.superuser_token(),
        body.len()
    )
    .expect("write");
    let r = read_response(&mut c).expect("answer");
    (r.status, r.json())
}

/// The daemon's peak resident memory so far (KiB).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A backup three parts long goes up as a multipart upload of three parts
/// and comes down streamed, the daemon's peak memory growing by far less
/// than the archive.
#[test]
fn s3_large_backup_goes_in_parts_with_bounded_memory() {
    if is_reference() {
        return;
    }
    let Some(s3) = S3Server::start(None) else {
        return;
    };
    let root = TempRoot::new("backup-s3-big");
    let id = age::x25519::Identity::generate();
    let srv = keepd(&root, &id);
    let (st, v) = srv.su().patch("/api/settings", &s3.settings("S3RVER"));
    assert_eq!(st, 200, "{v}");
    let size = 3 * PART - (4 << 20);
    big_file(&srv, size);
    let before = peak_rss_kib(srv.pid());
    let (st, v) = create_slowly(&srv, "big.zip");
    assert_eq!(st, 204, "{v}\n{}", srv.output());
    assert_eq!(s3.requests(&["POST", "big.zip?", "uploads="]), 1);
    assert_eq!(s3.requests(&["PUT", "big.zip?", "partNumber="]), 3);
    assert_eq!(
        s3.requests(&["POST", "big.zip?", "uploadId="]),
        1,
        "completed"
    );
    assert_eq!(s3.keys(), ["big.zip"]);
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );
    let (_, list) = srv.su().get("/api/backups");
    let listed = list[0]["size"].as_u64().expect("size");
    assert!(listed > size as u64, "{list}");
    let r = download_resp(&srv, "big.zip");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len() as u64, listed);
    let plain = decrypt(&id, &r.body);
    drop(r);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(plain)).expect("zip");
    let mut big = z
        .by_name("storage/bigcoll0000000/bigrec000000000/big.bin")
        .expect("entry");
    let mut n = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = big.read(&mut buf).expect("read");
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    assert_eq!(n, size as u64);
    if !under_qemu("peak RSS includes the emulator's own memory") {
        let grown = peak_rss_kib(srv.pid()).saturating_sub(before);
        eprintln!("peak RSS growth: {grown} KiB for a {listed}-byte backup");
        assert!(
            grown < (listed / 1024) / 2,
            "peak RSS grew by {grown} KiB for a {listed}-byte backup"
        );
    }
}

/// The schedule's backups go to the bucket, and only the newest
/// `cronMaxKeep` of them stay there; other backups are untouched.
#[test]
fn s3_schedule_retention_deletes_the_oldest_on_the_bucket() {
    if is_reference() {
        return;
    }
    let Some(s3) = S3Server::start(None) else {
        return;
    };
    let srv = TestServer::builder()
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .env("KEEPD_BACKUP_CRON_TICK_SECS", "1")
        .start();
    let (st, v) = srv.su().patch("/api/settings", &s3.settings("S3RVER"));
    assert_eq!(st, 200, "{v}");
    let (st, v) = srv
        .su()
        .post("/api/backups", &json!({"name": "manual.zip"}));
    assert_eq!(st, 204, "{v}");
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"backups": {"cron": "* * * * *", "cronMaxKeep": 2}}),
    );
    assert_eq!(st, 200, "{v}");
    assert!(
        wait_until(Duration::from_secs(30), || audit_targets(
            &srv,
            "backup.create"
        )
        .len()
            >= 4),
        "no scheduled backups: {:?}\n{}",
        audit_targets(&srv, "backup.create"),
        srv.output()
    );
    let (st, _) = srv
        .su()
        .patch("/api/settings", &json!({"backups": {"cron": ""}}));
    assert_eq!(st, 200);
    std::thread::sleep(Duration::from_millis(1500)); // a run in flight ends
                                                     // The scheduler's, newest first (the manual one is not among them).
    let created = audit_targets(&srv, "backup.create");
    assert!(
        created.iter().all(|k| k.starts_with("@auto_pb_backup_")),
        "{created:?}"
    );
    assert!(created.len() >= 4, "{created:?}");
    let mut want = created[..2].to_vec();
    want.push("manual.zip".into());
    want.sort();
    assert_eq!(s3.keys(), want, "created {created:?}");
    let (_, list) = srv.su().get("/api/backups");
    assert_eq!(keys_of(&list), want);
    let mut deleted = audit_targets(&srv, "backup.delete");
    deleted.sort();
    let mut older = created[2..].to_vec();
    older.sort();
    assert_eq!(deleted, older);
    assert!(
        local_leftovers(&srv).is_empty(),
        "{:?}",
        local_leftovers(&srv)
    );
}
