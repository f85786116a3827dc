//! `keepd import pocketbase`: a `pb_data` made by the real PocketBase
//! (tests/compat installs it) through its HTTP API, moved into keepd, and
//! served: same records, same ids, old passwords, same files; the source
//! untouched; `--dry-run` writes nothing; refusals.

use crate::common::{
    keepd_cmd, raw_at, reference_pocketbase, uniq, PocketBase, Resp, TempRoot, TestServer,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const SU: &str = "owner@example.com";
const SU_PASS: &str = "owner-secret-123";
const USER: &str = "reader@example.com";
const USER_PASS: &str = "reader-secret-123";

/// A request to the reference PocketBase that must answer 200: its JSON.
fn pb_json(
    pb: &PocketBase,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Value {
    let mut h = vec![];
    if let Some(t) = token {
        h.push(("Authorization", t));
    }
    let b = body.map(|b| b.to_string().into_bytes());
    let r = raw_at(pb.addr, method, path, &h, b.as_deref()).expect("pocketbase request");
    assert_eq!(
        r.status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// Every file under `dir`: contents, mode and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, std::time::SystemTime)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("metadata");
            if md.is_dir() {
                stack.push(p.clone());
            }
            let bytes = if md.is_file() {
                std::fs::read(&p).expect("read")
            } else {
                vec![]
            };
            out.insert(
                p,
                (
                    bytes,
                    md.permissions().mode(),
                    md.modified().expect("mtime"),
                ),
            );
        }
    }
    out
}

/// `keepd import pocketbase ARGS` with its temporary directory under `tmp`.
fn import(tmp: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(tmp).expect("tmp dir");
    keepd_cmd()
        .args(["import", "pocketbase"])
        .args(args)
        .env("TMPDIR", tmp)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn keepd import")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "keepdImportBoundary7";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            file.0, file.1
        )
        .as_bytes(),
    );
    b.extend_from_slice(file.2);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

#[test]
fn pocketbase_data_moves_in() {
    let Some(bin) = reference_pocketbase() else {
        return;
    };
    let root = TempRoot::new("import");
    let pb_dir = root.path.join("pb_data");
    let target = root.path.join("data");
    let target_s = target.to_string_lossy().to_string();
    let pb_s = pb_dir.to_string_lossy().to_string();
    let tmp = root.path.join("tmp");
    let tmp_empty = || std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0;

    // A pb_data made by PocketBase itself.
    let out = Command::new(&bin)
        .args(["superuser", "upsert", SU, SU_PASS, "--dir", &pb_s])
        .output()
        .expect("pocketbase superuser upsert");
    assert!(out.status.success(), "{}", text(&out));
    let pb = PocketBase::start(&bin, &pb_dir);
    let auth = pb_json(
        &pb,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        None,
        Some(&json!({"identity": SU, "password": SU_PASS})),
    );
    let token = auth["token"].as_str().expect("token").to_string();
    let t = Some(token.as_str());
    let posts = pb_json(
        &pb,
        "POST",
        "/api/collections",
        t,
        Some(&json!({
            "name": "posts", "type": "base", "listRule": "", "viewRule": "",
            "fields": [
                {"name": "title", "type": "text", "required": true},
                {"name": "n", "type": "number"},
                {"name": "ok", "type": "bool"},
                {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1000000},
                {"name": "created", "type": "autodate", "onCreate": true},
                {"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true}
            ],
            "indexes": ["CREATE UNIQUE INDEX idx_posts_title ON posts (title)"]
        })),
    );
    let posts_id = posts["id"].as_str().expect("collection id").to_string();
    let user = pb_json(
        &pb,
        "POST",
        "/api/collections/users/records",
        None,
        Some(
            &json!({"email": USER, "password": USER_PASS, "passwordConfirm": USER_PASS, "name": "Reader"}),
        ),
    );
    let user_id = user["id"].as_str().expect("user id").to_string();
    let file_bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (ct, body) = multipart(
        &[
            ("title", "with a file"),
            ("n", "3.5"),
            ("ok", "true"),
            ("author", &user_id),
        ],
        ("doc", "report.bin", &file_bytes),
    );
    let r = raw_at(
        pb.addr,
        "POST",
        "/api/collections/posts/records",
        &[("Authorization", &token), ("Content-Type", &ct)],
        Some(&body),
    )
    .expect("upload");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let with_file = r.json();
    pb_json(
        &pb,
        "POST",
        "/api/collections/posts/records",
        t,
        Some(&json!({"title": "plain", "n": -2, "ok": false})),
    );
    pb_json(
        &pb,
        "PATCH",
        "/api/settings",
        t,
        Some(
            &json!({"meta": {"appName": "Moved In"}, "batch": {"enabled": true, "maxRequests": 7}}),
        ),
    );
    let before_list = pb_json(
        &pb,
        "GET",
        "/api/collections/posts/records?sort=title",
        t,
        None,
    );
    // A record PocketBase keeps though it no longer validates (its field was
    // made required after): refused by keepd's validation, and reported.
    let drafts = pb_json(
        &pb,
        "POST",
        "/api/collections",
        t,
        Some(&json!({"name": "drafts", "type": "base",
            "fields": [{"name": "body", "type": "text"}]})),
    );
    let draft = pb_json(
        &pb,
        "POST",
        "/api/collections/drafts/records",
        t,
        Some(&json!({})),
    );
    let draft_id = draft["id"].as_str().expect("draft id").to_string();
    let mut fields = drafts["fields"].clone();
    for f in fields.as_array_mut().expect("fields") {
        if f["name"] == "body" {
            f["required"] = json!(true);
        }
    }
    pb_json(
        &pb,
        "PATCH",
        "/api/collections/drafts",
        t,
        Some(&json!({"fields": fields})),
    );

    // View collections: one keepd maps, one whose query keepd refuses (it
    // reads password hashes), reported.
    let pv = pb_json(
        &pb,
        "POST",
        "/api/collections",
        t,
        Some(
            &json!({"name": "post_titles", "type": "view", "listRule": "",
            "viewQuery": "select p.id, p.title, (p.n * 2) as twice from posts p"}),
        ),
    );
    assert_eq!(pv["type"], "view", "{pv}");
    let hv = pb_json(
        &pb,
        "POST",
        "/api/collections",
        t,
        Some(&json!({"name": "hashes", "type": "view",
            "viewQuery": "select id, password from users"})),
    );
    assert_eq!(hv["type"], "view", "{hv}");
    let before_view = pb_json(
        &pb,
        "GET",
        "/api/collections/post_titles/records?sort=title",
        t,
        None,
    );

    // While PocketBase runs, the import refuses and writes nothing.
    let o = import(&tmp, &[&pb_s, "--dir", &target_s]);
    assert!(
        !o.status.success(),
        "import of a live pb_data: {}",
        text(&o)
    );
    assert!(text(&o).contains("still running"), "{}", text(&o));
    assert!(!target.exists(), "a refused import left {target_s}");
    // Killed, not stopped: what it wrote is left in the WAL, which the
    // import must read.
    drop(pb);

    // Served in place (a copy), a pb_data is refused with the way in, and
    // left without keepd's tables.
    {
        use std::os::unix::fs::PermissionsExt;
        let served = TempRoot::new("import-served");
        let d = served.path.join("data");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        for f in ["data.db", "data.db-wal"] {
            if pb_dir.join(f).exists() {
                std::fs::copy(pb_dir.join(f), d.join(f)).expect("copy");
                std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o600))
                    .expect("chmod");
            }
        }
        let err = match TestServer::builder()
            .root(served.clone())
            .no_superuser()
            .try_start()
        {
            Ok(_) => panic!("keepd served a PocketBase database in place"),
            Err(e) => e,
        };
        assert!(err.contains("keepd import pocketbase"), "{err}");
        let db = crate::common::open_db_ro(&d.join("data.db"));
        let n: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = '_keepd_migrations'",
                [],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(
            n, 0,
            "keepd's migrations table left in a PocketBase database"
        );
    }

    let before = snapshot(&pb_dir);

    // --dry-run: the report, nothing written.
    let o = import(&tmp, &[&pb_s, "--dir", &target_s, "--dry-run"]);
    assert!(o.status.success(), "dry run: {}", text(&o));
    assert!(text(&o).contains("posts: 2 of 2 record(s)"), "{}", text(&o));
    assert!(!target.exists(), "--dry-run wrote {target_s}");
    assert!(tmp_empty(), "--dry-run left its temporary directory");

    let started = Instant::now();
    let o = import(&tmp, &[&pb_s, "--dir", &target_s]);
    assert!(o.status.success(), "import: {}", text(&o));
    eprintln!("import took {:?}:\n{}", started.elapsed(), text(&o));
    let report = text(&o);
    assert!(report.contains("posts: 2 of 2 record(s)"), "{report}");
    assert!(report.contains("users: 1 of 1 record(s)"), "{report}");
    assert!(report.contains("_superusers: 1 of 1 record(s)"), "{report}");
    assert!(report.contains("drafts: 0 of 1 record(s)"), "{report}");
    assert!(
        report.contains(&format!("record drafts/{draft_id}: body: Cannot be blank.")),
        "{report}"
    );
    assert!(report.contains("not imported (2):"), "{report}");
    assert!(
        report
            .contains("view collection hashes: the hidden field password can't be read by a view"),
        "{report}"
    );
    assert!(tmp_empty(), "the import left its temporary directory");

    // The source is as it was, byte for byte, mode and time.
    let after = snapshot(&pb_dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files added to or removed from pb_data"
    );
    for (p, v) in &before {
        assert!(after[p] == *v, "{} changed", p.display());
    }

    // A second run: refused, the import is not repeated over data.
    let o = import(&tmp, &[&pb_s, "--dir", &target_s]);
    assert!(!o.status.success(), "second import: {}", text(&o));
    assert!(text(&o).contains("already holds data"), "{}", text(&o));

    // keepd serves what PocketBase had.
    let srv = TestServer::builder()
        .root(root.clone())
        .no_superuser()
        .start();
    let (st, su) = srv.guest().post(
        "/api/collections/_superusers/auth-with-password",
        &json!({"identity": SU, "password": SU_PASS}),
    );
    assert_eq!(st, 200, "the superuser's old password: {su}");
    let ktoken = su["token"].as_str().expect("token").to_string();
    let (st, u) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": USER, "password": USER_PASS}),
    );
    assert_eq!(st, 200, "the user's old password: {u}");
    assert_eq!(u["record"]["id"], user_id.as_str());
    assert_eq!(u["record"]["name"], "Reader");
    let (st, u) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": USER, "password": "not-the-password"}),
    );
    assert_eq!(st, 400, "a wrong password: {u}");

    let (st, list) = srv
        .with_token(&ktoken)
        .get("/api/collections/posts/records?sort=title");
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["items"], before_list["items"], "records differ");
    assert_eq!(list["totalItems"], 2);

    let (st, vlist) = srv
        .guest()
        .get("/api/collections/post_titles/records?sort=title");
    assert_eq!(st, 200, "{vlist}");
    assert_eq!(vlist["items"], before_view["items"], "view records differ");
    let (st, _) = srv.with_token(&ktoken).get("/api/collections/hashes");
    assert_eq!(st, 404, "a refused view is not imported");

    let (st, coll) = srv.with_token(&ktoken).get("/api/collections/posts");
    assert_eq!(st, 200, "{coll}");
    assert_eq!(coll["id"], posts_id.as_str());
    assert_eq!(
        coll["indexes"],
        json!(["CREATE UNIQUE INDEX idx_posts_title ON posts (title)"])
    );
    assert_eq!(coll["listRule"], "");
    assert_eq!(coll["createRule"], Value::Null);

    // The index holds on keepd too.
    let (st, v) = srv
        .with_token(&ktoken)
        .post("/api/collections/posts/records", &json!({"title": "plain"}));
    assert_eq!(st, 400, "a duplicate under the unique index: {v}");

    let name = with_file["doc"].as_str().expect("stored name");
    let id = with_file["id"].as_str().expect("id");
    let r: Resp = srv.raw(
        "GET",
        &format!("/api/files/{posts_id}/{id}/{name}"),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.body == file_bytes, "the file differs after the import");

    let (st, s) = srv.with_token(&ktoken).get("/api/settings");
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["meta"]["appName"], "Moved In");
    assert_eq!(s["batch"]["maxRequests"], 7);
    assert_eq!(s["batch"]["enabled"], true);

    // keepd's modes on what it copied.
    use std::os::unix::fs::PermissionsExt;
    let f = target.join("storage").join(&posts_id).join(id).join(name);
    let mode = std::fs::metadata(&f)
        .expect("copied file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    let mode = std::fs::metadata(&target)
        .expect("target")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn refusals_write_nothing() {
    let root = TempRoot::new("import-refuse");
    let target = root.path.join(uniq("target"));
    let target_s = target.to_string_lossy().to_string();
    let tmp = root.path.join("tmp");

    // Not a PocketBase data dir: no data.db.
    let not_pb = root.path.join("not_pb");
    std::fs::create_dir(&not_pb).expect("mkdir");
    std::fs::write(not_pb.join("notes.txt"), b"hello").expect("write");
    let o = import(&tmp, &[&not_pb.to_string_lossy(), "--dir", &target_s]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("not a PocketBase data directory"),
        "{}",
        text(&o)
    );
    assert!(!target.exists());

    // A data.db that is not PocketBase's: a keepd data dir.
    let keepd = TestServer::start();
    let _keepd_root = keepd.root.clone();
    let keepd_dir = keepd.dir.clone();
    drop(keepd);
    let o = import(&tmp, &[&keepd_dir.to_string_lossy(), "--dir", &target_s]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("keepd database"), "{}", text(&o));
    assert!(!target.exists());

    // A file that is not a database at all.
    let junk = root.path.join("junk");
    std::fs::create_dir(&junk).expect("mkdir");
    std::fs::write(junk.join("data.db"), vec![7u8; 4096]).expect("write");
    let before = std::fs::read(junk.join("data.db")).expect("read");
    let o = import(&tmp, &[&junk.to_string_lossy(), "--dir", &target_s]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("can't read"), "{}", text(&o));
    assert!(!target.exists());
    assert_eq!(std::fs::read(junk.join("data.db")).expect("read"), before);
    assert!(!junk.join("data.db-wal").exists() && !junk.join("data.db-shm").exists());

    // A target that holds anything.
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::write(target.join("keep.txt"), b"mine").expect("write");
    let o = import(&tmp, &[&junk.to_string_lossy(), "--dir", &target_s]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("already holds data"), "{}", text(&o));
    let names: Vec<_> = std::fs::read_dir(&target)
        .expect("read")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);
}
