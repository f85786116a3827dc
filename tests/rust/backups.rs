//! Backups against the real daemon: encrypted with age (the file is not a
//! readable zip), 0600, downloadable only with a superuser file token;
//! uploaded backups streamed to disk, kept only when complete and
//! restorable, nothing left by a failed one; restore rolls the data back
//! after a restart; a wrong key or a damaged archive is a clear error that
//! changes nothing; plaintext only when chosen; scheduled backups with
//! PocketBase's names and retention.

use crate::common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const BOUNDARY: &str = "keepdbackupboundary51c2";

/// The head of a multipart part carrying a file.
fn part_head(name: &str, filename: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/zip\r\n\r\n"
    )
    .into_bytes()
}

/// A multipart body of file parts: (form key, file name, content).
fn multipart(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(&part_head(name, filename));
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /api/backups/upload` with these parts, as `token` ("" = guest).
fn upload(srv: &TestServer, token: &str, parts: &[(&str, &str, &[u8])]) -> (u16, Value) {
    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let mut headers = vec![("Content-Type", ct.as_str())];
    if !token.is_empty() {
        headers.push(("Authorization", token));
    }
    let r = srv.raw(
        "POST",
        "/api/backups/upload",
        &headers,
        Some(&multipart(parts)),
    );
    (r.status, r.json())
}

/// The upload's validation error code on `file`.
fn file_code(v: &Value) -> &str {
    v["data"]["file"]["code"].as_str().unwrap_or("")
}

/// Everything in the backups dir (temporary files included).
fn backup_dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A backup downloaded with a superuser file token.
/// `GET /api/backups/{key}` with a superuser file token.
pub(crate) fn download_resp(srv: &TestServer, key: &str) -> Resp {
    let (_, t) = srv.su().post("/api/files/token", &json!({}));
    let tok = t["token"].as_str().expect("token").to_string();
    srv.raw("GET", &format!("/api/backups/{key}?token={tok}"), &[], None)
}

fn download(srv: &TestServer, key: &str) -> Vec<u8> {
    let r = download_resp(srv, key);
    assert_eq!(r.status, 200, "download {key}");
    r.body
}

pub(crate) fn titles(srv: &TestServer) -> Vec<String> {
    let (st, v) = srv.su().list("notes", &[("sort", "title")]);
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["title"].as_str().expect("title").to_string())
        .collect()
}

pub(crate) fn note(srv: &TestServer, title: &str) {
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

    // Upload: the downloaded backup comes back under another name,
    // byte for byte, 0600, audited.
    let su = srv.superuser_token();
    let backups = data_dir.join("backups");
    assert_eq!(upload(&srv, &su, &[("file", "copy.zip", &bytes)]).0, 204);
    let copy = backups.join("copy.zip");
    assert_eq!(std::fs::read(&copy).expect("copy"), bytes);
    assert_eq!(
        std::fs::metadata(&copy).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let (_, a) = srv.su().get("/api/audit?action=backup.upload");
    assert_eq!(a["items"][0]["target"], "backups/copy.zip", "{a}");
    // Refused: the name taken, a plaintext zip while backups are encrypted,
    // not a zip, an unsafe name, no file, no superuser — each in
    // PocketBase's shape, and none leaves a file.
    let (st, v) = upload(&srv, &su, &[("file", "copy.zip", &bytes)]);
    assert_eq!(
        (st, file_code(&v)),
        (400, "validation_backup_name_exists"),
        "{v}"
    );
    assert_error_shape(&v, 400, "exists");
    let plain = {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file("data.db", zip::write::SimpleFileOptions::default())
            .expect("entry");
        z.write_all(b"SQLite format 3").expect("write");
        z.finish().expect("zip").into_inner()
    };
    let (st, v) = upload(&srv, &su, &[("file", "plain.zip", &plain)]);
    assert_eq!(
        (st, file_code(&v)),
        (400, "validation_invalid_backup"),
        "{v}"
    );
    assert!(v["data"]["file"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("encrypted"));
    let (st, v) = upload(&srv, &su, &[("file", "text.zip", b"just text")]);
    assert_eq!(
        (st, file_code(&v)),
        (400, "validation_invalid_mime_type"),
        "{v}"
    );
    let (st, v) = upload(&srv, &su, &[("file", "../Bad Name.zip", &bytes)]);
    assert_eq!((st, file_code(&v)), (400, "validation_invalid_name"), "{v}");
    let (st, v) = upload(&srv, &su, &[("other", "x.zip", &bytes)]);
    assert_eq!((st, file_code(&v)), (400, "validation_required"), "{v}");
    let (st, v) = upload(&srv, "", &[("file", "guest.zip", &bytes)]);
    assert_eq!(st, 401, "{v}");
    assert_eq!(backup_dir_entries(&backups), vec!["copy.zip", "one.zip"]);

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
    // Private, as everything in the data dir must be (checked at start).
    chmod(&data_dir.join("backups").join("bad.zip"), 0o600);
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

    // Restore (from the uploaded copy): answered, then the daemon exits
    // for its restart.
    let (st, v) = srv.su().post("/api/backups/copy.zip/restore", &json!({}));
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
    let srv = TestServer::builder()
        .env("KEEPD_BACKUP_CRON_TICK_SECS", "1")
        .start();
    let (st, v) = srv.su().post("/api/backups", &json!({"name": "x.zip"}));
    assert_eq!(st, 400, "no recipients: {v}");
    assert!(v["message"]
        .as_str()
        .unwrap_or("")
        .contains("backup_recipients"));
    // Scheduled without recipients: said loudly at each run, no plaintext
    // written, the daemon goes on.
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"backups": {"cron": "* * * * *", "cronMaxKeep": 1}}),
    );
    assert_eq!(st, 200, "{v}");
    assert!(
        wait_until(Duration::from_secs(10), || srv
            .output()
            .contains("SCHEDULED BACKUP NOT MADE")),
        "{}",
        srv.output()
    );
    let (st, list) = srv.su().get("/api/backups");
    assert_eq!((st, list), (200, json!([])));
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

/// The upload route streams: a body far over `max_body_bytes` is fine, it
/// is on disk (not in memory) while it arrives; over
/// `max_backup_upload_bytes` it is refused with 413 (declared or not); a
/// client that stalls or goes away mid-upload leaves nothing.
#[test]
fn uploads_stream_to_disk_are_capped_and_leave_nothing_when_cut() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .env("KEEPD_MAX_BODY_BYTES", "4096")
        .env("KEEPD_MAX_BACKUP_UPLOAD_BYTES", "1000000")
        .env("KEEPD_BODY_TIMEOUT_SECS", "2")
        .start();
    let su = srv.superuser_token();
    let backups = srv.db_path().parent().expect("dir").join("backups");
    // A real backup padded with a large stored file: 300 KB, far over
    // max_body_bytes.
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("data.db", stored).expect("entry");
    z.write_all(b"SQLite format 3\0").expect("write");
    z.start_file("storage/c/r/big.bin", stored).expect("entry");
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    z.write_all(&noise).expect("write");
    let big = z.finish().expect("zip").into_inner();
    assert!(big.len() > 300_000);
    let (st, v) = upload(&srv, &su, &[("file", "big.zip", &big)]);
    assert_eq!(st, 204, "{v}");
    assert_eq!(std::fs::read(backups.join("big.zip")).expect("big"), big);
    assert_eq!(download(&srv, "big.zip"), big, "downloaded in pieces");

    let ct = format!("multipart/form-data; boundary={BOUNDARY}");
    let head = |extra: &str| {
        format!(
            "POST /api/backups/upload HTTP/1.1\r\nHost: x\r\nAuthorization: {su}\r\nContent-Type: {ct}\r\n{extra}\r\n"
        )
    };
    // Declared over the cap: 413 before a byte of the body.
    let r = srv.raw(
        "POST",
        "/api/backups/upload",
        &[("Authorization", &su), ("Content-Type", &ct)],
        Some(&vec![b'x'; 1_000_001]),
    );
    assert_eq!(r.status, 413);
    assert_error_shape(&r.json(), 413, "declared too large");
    // Chunked, over the cap as it arrives: 413, the partial file gone.
    let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut out = head("Transfer-Encoding: chunked\r\n").into_bytes();
    let mut first = part_head("file", "huge.zip");
    first.extend_from_slice(&big[..4096]);
    out.extend_from_slice(format!("{:x}\r\n", first.len()).as_bytes());
    out.extend_from_slice(&first);
    out.extend_from_slice(b"\r\n");
    s.write_all(&out).expect("head");
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..20 {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).is_err() {
            break; // the server answered and closed
        }
    }
    let r = read_response(&mut s).expect("response");
    assert_eq!(r.status, 413, "{}", r.text());
    assert_error_shape(&r.json(), 413, "streamed too large");
    assert!(
        wait_until(Duration::from_secs(5), || backup_dir_entries(&backups)
            == ["big.zip"]),
        "{:?}",
        backup_dir_entries(&backups)
    );
    // A client that stalls mid-upload: while it sends, the part is on
    // disk under a temporary name; after body_timeout_secs of silence it
    // is answered 400 and the file is gone.
    let body_len = 200_000;
    let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut out = head(&format!("Content-Length: {body_len}\r\n")).into_bytes();
    out.extend_from_slice(&part_head("file", "stalled.zip"));
    out.extend_from_slice(&big[..50_000]);
    s.write_all(&out).expect("partial body");
    assert!(
        wait_until(Duration::from_secs(5), || backup_dir_entries(&backups)
            .iter()
            .any(|n| n.starts_with(".upload-"))),
        "the upload is not being written to disk: {:?}",
        backup_dir_entries(&backups)
    );
    let r = read_response(&mut s).expect("response");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "Timed out reading the request body.");
    assert!(
        wait_until(Duration::from_secs(5), || backup_dir_entries(&backups)
            == ["big.zip"]),
        "{:?}",
        backup_dir_entries(&backups)
    );
    // A client that goes away mid-upload: nothing left either.
    let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
    let mut out = head(&format!("Content-Length: {body_len}\r\n")).into_bytes();
    out.extend_from_slice(&part_head("file", "gone.zip"));
    out.extend_from_slice(&big[..50_000]);
    s.write_all(&out).expect("partial body");
    assert!(wait_until(Duration::from_secs(5), || backup_dir_entries(
        &backups
    )
    .iter()
    .any(|n| n.starts_with(".upload-"))));
    drop(s);
    assert!(
        wait_until(Duration::from_secs(5), || backup_dir_entries(&backups)
            == ["big.zip"]),
        "{:?}",
        backup_dir_entries(&backups)
    );
    let (_, list) = srv.su().get("/api/backups");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
}

/// `backups.cron` and `cronMaxKeep` are validated as PocketBase validates
/// them (runs against both servers).
#[test]
fn backup_schedule_settings_validated_as_pocketbase() {
    let srv = TestServer::start();
    let patch = |b: Value| srv.su().patch("/api/settings", &json!({"backups": b}));
    let (st, v) = patch(json!({"cron": "bad"}));
    assert_error_shape(&v, 400, "bad cron");
    assert_eq!(st, 400);
    assert_eq!(
        v["message"],
        "An error occurred while saving the new settings."
    );
    assert_eq!(
        v["data"]["backups"]["cron"]["code"],
        "validation_invalid_cron"
    );
    assert_eq!(
        v["data"]["backups"]["cron"]["message"],
        "Invalid cron expression - must be a valid macro or to have exactly 5 space separated segments."
    );
    let (_, v) = patch(json!({"cron": "*/0 * * * *", "cronMaxKeep": 1}));
    assert_eq!(
        v["data"]["backups"]["cron"]["message"],
        "Invalid segment step boundary - the step must be between 1 and the 59."
    );
    let (_, v) = patch(json!({"cron": "x * * * *", "cronMaxKeep": 1}));
    assert_eq!(
        v["data"]["backups"]["cron"]["message"],
        "Strconv.Atoi: parsing \"x\": invalid syntax."
    );
    let (st, v) = patch(json!({"cron": "* * * * *", "cronMaxKeep": 0}));
    assert_eq!(st, 400);
    assert_eq!(
        v["data"]["backups"]["cronMaxKeep"],
        json!({"code": "validation_required", "message": "Cannot be blank."})
    );
    let (_, v) = patch(json!({"cron": "", "cronMaxKeep": -1}));
    assert_eq!(
        v["data"]["backups"]["cronMaxKeep"],
        json!({"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 1.", "params": {"threshold": 1}})
    );
    let (st, v) = patch(json!({"cron": 5}));
    assert_eq!(st, 400);
    assert_eq!(
        v["message"],
        "An error occurred while loading the submitted data."
    );
    // Errors of several groups come together (batch's too).
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"backups": {"cron": "bad"}, "batch": {"maxRequests": -1}}),
    );
    assert_eq!(st, 400);
    assert_eq!(
        v["data"]["backups"]["cron"]["code"],
        "validation_invalid_cron"
    );
    assert_eq!(
        v["data"]["batch"]["maxRequests"],
        json!({"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 0.", "params": {"threshold": 0}})
    );
    let (st, v) = patch(json!({"cron": "bad", "s3": {"enabled": true}}));
    assert_eq!(st, 400);
    assert_eq!(
        v["data"]["backups"]["cron"]["code"], "validation_invalid_cron",
        "{v}"
    );
    assert_eq!(
        v["data"]["backups"]["s3"]["bucket"]["code"], "validation_required",
        "{v}"
    );
    // Nothing above was saved.
    let (_, s) = srv.su().get("/api/settings");
    assert_eq!(s["backups"]["cron"], "", "{s}");
    for (cron, keep) in [("@daily", 2), ("5-59/20 */2 1,15 * 1-5", 1), ("", 0)] {
        let (st, v) = patch(json!({"cron": cron, "cronMaxKeep": keep}));
        assert_eq!(st, 200, "{cron}: {v}");
        assert_eq!(v["backups"]["cron"], cron);
        assert_eq!(v["backups"]["cronMaxKeep"], keep);
    }
}

/// The targets of the scheduler's audit entries for `action`, newest first.
pub(crate) fn audit_targets(srv: &TestServer, action: &str) -> Vec<String> {
    let (st, a) = srv.su().get(&format!(
        "/api/audit?action={action}&actor=cron&perPage=500"
    ));
    assert_eq!(st, 200, "{a}");
    a["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            e["target"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches("backups/")
                .to_string()
        })
        .collect()
}

fn is_auto_name(k: &str) -> bool {
    // @auto_pb_backup_<snake app name>_<yyyymmddhhmmss>.zip
    k.strip_prefix("@auto_pb_backup_my_test_app_")
        .and_then(|r| r.strip_suffix(".zip"))
        .is_some_and(|ts| ts.len() == 14 && ts.bytes().all(|b| b.is_ascii_digit()))
}

/// Scheduled backups run on the schedule, not off it; are named as
/// PocketBase names them; only the newest `cronMaxKeep` scheduled backups
/// stay, other backups untouched; an empty `cron` stops them. (The
/// schedule is checked every second here — `backup_cron_tick_secs` — so
/// that `* * * * *` runs at each tick instead of once a minute.)
#[test]
fn scheduled_backups_run_and_keep_the_newest() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::builder()
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .env("KEEPD_BACKUP_CRON_TICK_SECS", "1")
        .start();
    note_collection(&srv);
    let (st, _) = srv
        .su()
        .post("/api/backups", &json!({"name": "manual.zip"}));
    assert_eq!(st, 204);
    // Off the schedule: a minute half an hour away never comes.
    let minute = (chrono_minute_now() + 30) % 60;
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"meta": {"appName": "My Test App"}, "backups": {"cron": format!("{minute} * * * *"), "cronMaxKeep": 2}}),
    );
    assert_eq!(st, 200, "{v}");
    std::thread::sleep(Duration::from_millis(3500));
    assert!(audit_targets(&srv, "backup.create").is_empty());
    // Every minute: a backup at each tick, the oldest beyond 2 deleted.
    let (st, v) = srv
        .su()
        .patch("/api/settings", &json!({"backups": {"cron": "* * * * *"}}));
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
    let created = audit_targets(&srv, "backup.create"); // newest first
    let deleted = audit_targets(&srv, "backup.delete");
    assert!(created.iter().all(|k| is_auto_name(k)), "{created:?}");
    let (_, list) = srv.su().get("/api/backups");
    let mut keys: Vec<String> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["key"].as_str().expect("key").to_string())
        .collect();
    keys.sort();
    let mut want: Vec<String> = created[..2].to_vec();
    want.push("manual.zip".into());
    want.sort();
    assert_eq!(keys, want, "created {created:?}, deleted {deleted:?}");
    let mut gone = deleted.clone();
    gone.sort();
    let mut older = created[2..].to_vec();
    older.sort();
    assert_eq!(gone, older);
    // A scheduled backup is a real one (a zip with the database).
    let body = download(&srv, &created[0]);
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(body)).expect("zip");
    assert!(z.by_name("data.db").is_ok());
    // Off: no more.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(audit_targets(&srv, "backup.create").len(), created.len());
    assert!(srv.is_running());
}

fn note_collection(srv: &TestServer) {
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "fields": [{"name": "title", "type": "text"}]
    }));
    note(srv, "scheduled");
}

fn chrono_minute_now() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 60) % 60
}

/// An 8×8 PNG.
const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x02, 0x00, 0x00, 0x00, 0x4b, 0x6d, 0x29,
    0xdc, 0x00, 0x00, 0x00, 0x12, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x80,
    0x15, 0x61, 0x17, 0x1d, 0xb4, 0x12, 0x00, 0x28, 0xff, 0x3f, 0xc1, 0x6e, 0xec, 0xdf, 0x61, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A backup taken after a thumbnail was made (PocketBase's dashboard asks
/// for one of every image it lists) restores: the thumbnails in it
/// (`storage/<collection>/<record>/thumbs_<file>/<size>_<file>`) are left
/// out and made again on demand, the originals come back.
#[test]
fn restore_of_a_backup_holding_thumbnails() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::builder()
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .start();
    let coll = srv.create_collection(&json!({
        "name": "pics", "type": "base",
        "fields": [{"name": "title", "type": "text"}, {"name": "f", "type": "file", "maxSelect": 1}]
    }));
    let cid = coll["id"].as_str().expect("id").to_string();
    let (ct, body) = crate::common::multipart(&[
        ("title", None, &b"kept"[..]),
        ("f", Some("red.png"), TINY_PNG),
    ]);
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        "/api/collections/pics/records",
        &[("Authorization", &tok), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec: Value = r.json();
    let id = rec["id"].as_str().expect("id").to_string();
    let name = rec["f"].as_str().expect("file name").to_string();
    let file = format!("/api/files/pics/{id}/{name}");
    let r = srv.raw("GET", &format!("{file}?thumb=100x100"), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let rec_dir = srv
        .db_path()
        .parent()
        .expect("dir")
        .join("storage")
        .join(&cid)
        .join(&id);
    assert!(
        rec_dir.join(format!("thumbs_{name}")).is_dir(),
        "no thumbnail stored under {}",
        rec_dir.display()
    );
    let (st, v) = srv
        .su()
        .post("/api/backups", &json!({"name": "thumbs.zip"}));
    assert_eq!(st, 204, "{v}");
    let (st, v) = srv
        .su()
        .delete(&format!("/api/collections/pics/records/{id}"));
    assert_eq!(st, 204, "{v}");

    let (st, v) = srv.su().post("/api/backups/thumbs.zip/restore", &json!({}));
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
    let (st, v) = srv.su().get(&format!("/api/collections/pics/records/{id}"));
    assert_eq!((st, v["title"].as_str()), (200, Some("kept")), "{v}");
    let r = srv.raw("GET", &file, &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, TINY_PNG, "the restored original differs");
    let r = srv.raw("GET", &format!("{file}?thumb=100x100"), &[], None);
    assert_eq!(r.status, 200, "the thumbnail isn't made again");
}
