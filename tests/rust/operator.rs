//! What an operator relies on when keepd runs as a service: a clean stop
//! leaves `data.db` complete by itself; the data dir is checked whole at
//! start; the tools run with the service's database key; a plaintext
//! socket on a public address is called out.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

fn sigterm(pid: u32) {
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(st.success(), "kill -TERM {pid}");
}

/// After SIGTERM the WAL is checkpointed into `data.db`: a copy of
/// `data.db` alone, opened by plain SQLite, has every table and row.
#[test]
fn a_clean_stop_leaves_data_db_complete_without_its_wal() {
    if is_reference() {
        return;
    }
    let mut srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "createRule": "",
        "fields": [{"name": "t", "type": "text"}]
    }));
    for i in 0..20 {
        let (st, v) = srv.guest().post(
            "/api/collections/notes/records",
            &json!({ "t": format!("note {i}") }),
        );
        assert_eq!(st, 200, "{v}");
    }
    sigterm(srv.pid());
    assert!(
        wait_until(Duration::from_secs(30), || !srv.is_running()),
        "keepd did not stop on SIGTERM:\n{}",
        srv.output()
    );
    // Only data.db: no -wal, no -shm beside it.
    let copy = TempRoot::new("stopcopy");
    let db = copy.path.join("data.db");
    std::fs::copy(srv.db_path(), &db).expect("copy data.db");
    let c = rusqlite::Connection::open(&db).expect("open the copy");
    let n: i64 = c
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap_or_else(|e| {
            panic!(
                "data.db alone lacks the data ({e}); server output:\n{}",
                srv.output()
            )
        });
    assert_eq!(n, 20);
    let su: i64 = c
        .query_row("SELECT count(*) FROM _superusers", [], |r| r.get(0))
        .expect("superusers");
    assert_eq!(su, 1);
    let wal = srv.dir.join("data.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL is truncated at a clean stop");
}

/// A stopped data dir with a database, a stored file and a backup.
fn populated() -> std::sync::Arc<TempRoot> {
    let mut srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "createRule": "", "listRule": "",
        "fields": [{"name": "t", "type": "text"}]
    }));
    let (st, v) = srv
        .guest()
        .post("/api/collections/notes/records", &json!({"t": "kept"}));
    assert_eq!(st, 200, "{v}");
    let dir = srv.dir.clone();
    for d in ["storage/c1/r1", "backups"] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        chmod(&dir.join(d), 0o700);
    }
    chmod(&dir.join("storage"), 0o700);
    chmod(&dir.join("storage/c1"), 0o700);
    for f in ["storage/c1/r1/a.txt", "backups/b.zip"] {
        std::fs::write(dir.join(f), b"x").expect("write");
        chmod(&dir.join(f), 0o600);
    }
    let root = srv.root.clone();
    sigterm(srv.pid());
    assert!(wait_until(Duration::from_secs(30), || !srv.is_running()));
    root
}

fn refused(out: &Outcome) -> bool {
    out.failed() && !out.stdout.contains("keepd listening")
}

/// Loose modes and links anywhere under the data dir stop the start, each
/// named with its mode and its fix; `--fix-permissions` repairs the modes
/// but not the links.
#[test]
fn every_path_under_the_data_dir_is_checked_at_start() {
    if is_reference() {
        return;
    }
    let root = populated();
    let dir = root.path.join("data");
    let mut failures = Vec::new();
    // (path, loose mode)
    for (rel, mode) in [
        ("backups", 0o755),
        ("backups/b.zip", 0o644),
        ("storage", 0o750),
        ("storage/c1/r1", 0o755),
        ("storage/c1/r1/a.txt", 0o604),
        ("storage/c1/r1/a.txt", 0o4600),
    ] {
        let p = dir.join(rel);
        chmod(&p, mode);
        let out = serve_once(&dir, &[], &[], Duration::from_secs(20));
        let shown = format!("{mode:04o}");
        if !refused(&out) {
            failures.push(format!("{rel} at {shown}: started anyway: {out:?}"));
        } else if !(out.stderr.contains(&p.display().to_string())
            && out.stderr.contains(&shown)
            && out.stderr.contains("--fix-permissions"))
        {
            failures.push(format!(
                "{rel} at {shown}: name the path, the mode and the fix:\n{}",
                out.stderr
            ));
        }
        chmod(&p, if p.is_dir() { 0o700 } else { 0o600 });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // Links: refused, with or without --fix-permissions, and left alone.
    let outside = root.path.join("outside.txt");
    std::fs::write(&outside, b"not keepd's").expect("write");
    chmod(&outside, 0o644);
    for rel in ["storage/c1/r1/link.txt", "backups/link.zip", "storage/c2"] {
        let link = dir.join(rel);
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        for args in [&[][..], &["--fix-permissions"][..]] {
            let out = serve_once(&dir, args, &[], Duration::from_secs(20));
            assert!(refused(&out), "{rel} {args:?}: started: {out:?}");
            assert!(
                out.stderr.contains(&link.display().to_string())
                    && out.stderr.contains("symbolic link")
                    && out.stderr.contains("rm "),
                "{rel} {args:?}: name the link and the fix:\n{}",
                out.stderr
            );
        }
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("still there")
                .file_type()
                .is_symlink(),
            "the link is left alone"
        );
        std::fs::remove_file(&link).expect("rm link");
    }
    assert_eq!(mode_of(&outside), 0o644, "nothing changed through a link");

    // Loose everywhere at once: --fix-permissions repairs them all and starts.
    for (rel, mode) in [
        ("backups", 0o755),
        ("backups/b.zip", 0o644),
        ("storage/c1", 0o777),
        ("storage/c1/r1/a.txt", 0o666),
    ] {
        chmod(&dir.join(rel), mode);
    }
    let srv = TestServer::builder()
        .root(root.clone())
        .no_superuser()
        .arg("--fix-permissions")
        .start();
    for (rel, want) in [
        ("backups", 0o700),
        ("backups/b.zip", 0o600),
        ("storage/c1", 0o700),
        ("storage/c1/r1/a.txt", 0o600),
    ] {
        assert_eq!(mode_of(&dir.join(rel)), want, "{rel}");
    }
    let (st, v) = srv.guest().list("notes", &[]);
    assert_eq!(
        (st, column(&v, "t")),
        (200, vec!["kept".to_string()]),
        "{v}"
    );
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
}

/// A stored file owned by another user stops the start with the chown fix.
#[test]
fn another_users_file_under_the_data_dir_is_refused() {
    if is_reference() || !running_as_root() {
        eprintln!("needs root (chown): skipped");
        return;
    }
    let root = populated();
    let dir = root.path.join("data");
    let p = dir.join("storage/c1/r1/a.txt");
    std::os::unix::fs::chown(&p, Some(65534), None).expect("chown");
    let out = serve_once(&dir, &["--fix-permissions"], &[], Duration::from_secs(20));
    assert!(refused(&out), "{out:?}");
    assert!(
        out.stderr.contains(&p.display().to_string()) && out.stderr.contains("chown"),
        "{}",
        out.stderr
    );
}

/// The check stays cheap for a data dir with many stored files: 20,000
/// files in 200 record dirs. The figure is printed; the bound is loose
/// (a debug build on a shared machine) but catches a walk gone quadratic.
#[test]
fn the_start_check_is_fast_with_twenty_thousand_files() {
    if is_reference() {
        return;
    }
    let root = populated();
    let dir = root.path.join("data");
    for r in 0..200 {
        let d = dir.join(format!("storage/c1/rec{r:03}"));
        std::fs::create_dir(&d).expect("mkdir");
        chmod(&d, 0o700);
        for f in 0..100 {
            let p = d.join(format!("f{f}.bin"));
            std::fs::write(&p, b"x").expect("write");
            chmod(&p, 0o600);
        }
    }
    let srv = TestServer::builder()
        .root(root.clone())
        .no_superuser()
        .env("KEEPD_LOG", "warn,keepd=debug")
        .start();
    let out = strip_ansi(&srv.output());
    let line = out
        .lines()
        .find(|l| l.contains("data directory checked"))
        .unwrap_or_else(|| panic!("no timing line:\n{out}"));
    let took = line
        .split("took=")
        .nth(1)
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    eprintln!("start-up check of 20,000 stored files: {took}");
    let ms = if let Some(v) = took.strip_suffix("ms") {
        v.parse::<f64>().unwrap_or(f64::MAX)
    } else if let Some(v) = took.strip_suffix("µs") {
        v.parse::<f64>().unwrap_or(f64::MAX) / 1000.0
    } else if let Some(v) = took.strip_suffix('s') {
        v.parse::<f64>().unwrap_or(f64::MAX) * 1000.0
    } else {
        f64::MAX
    };
    assert!(ms < 5000.0, "the start-up check took {took}");
}

/// The text without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for c in it.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs `keepd serve` under `systemd-socket-activate -l LISTEN`, makes one
/// request to trigger the start, and returns (status, stderr).
fn activated(listen: &str, connect: std::net::SocketAddr) -> Option<(u16, String)> {
    let tool = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("systemd-socket-activate"))
            .find(|c| c.is_file())
    })?;
    let root = TempRoot::new("sockwarn");
    let mut cmd = std::process::Command::new(tool);
    cmd.arg("-l").arg(listen);
    for (k, v) in base_env() {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    cmd.arg(bin())
        .args(["serve", "--dir"])
        .arg(root.path.join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    while std::time::Instant::now() < until {
        if let Ok(mut s) = std::net::TcpStream::connect(connect) {
            use std::io::Write;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let _ = write!(
                s,
                "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            if let Ok(r) = read_response(&mut s) {
                status = r.status;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    Some((status, String::from_utf8_lossy(&out.stderr).to_string()))
}

/// A plaintext socket beyond loopback (`ListenStream=80` listens on every
/// interface) is served, with a loud warning; a loopback one is quiet.
#[test]
fn a_socket_beyond_loopback_is_served_with_a_loud_warning() {
    if is_reference() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let loopback: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let Some((st, log)) = activated(&format!("0.0.0.0:{port}"), loopback) else {
        eprintln!("systemd-socket-activate not installed: skipped");
        return;
    };
    assert_eq!(st, 200, "{log}");
    assert!(
        log.contains("PLAINTEXT HTTP BEYOND LOOPBACK") && log.contains(&format!("0.0.0.0:{port}")),
        "{log}"
    );
    assert!(
        log.contains("ListenStream="),
        "names where it came from: {log}"
    );
    let (st, log) = activated(&format!("127.0.0.1:{port}"), loopback).expect("tool");
    assert_eq!(st, 200, "{log}");
    assert!(!log.contains("PLAINTEXT"), "{log}");
}

/// Every path under `dir` (the dir included), not following links.
fn all_paths(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            for e in std::fs::read_dir(&p).expect("read_dir").flatten() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}

const NOBODY: u32 = 65534;

/// Hands a stopped data dir to uid/gid 65534, as the package hands
/// /var/lib/keepd to `keepd`; its parent stays root's but traversable.
fn give_to_nobody(root: &TempRoot) -> std::path::PathBuf {
    let dir = root.path.join("data");
    for p in all_paths(&dir) {
        std::os::unix::fs::lchown(&p, Some(NOBODY), Some(NOBODY)).expect("chown");
    }
    chmod(&root.path, 0o711);
    dir
}

fn owned_by_nobody(dir: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    all_paths(dir)
        .into_iter()
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            (m.uid() != NOBODY || m.gid() != NOBODY)
                .then(|| format!("{} is {}:{}", p.display(), m.uid(), m.gid()))
        })
        .collect()
}

fn tool(args: &[&str], dir: &std::path::Path, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = keepd_cmd();
    cmd.args(args).arg("--dir").arg(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// `sudo keepd check|superuser|backup` on the service's data dir: the tool
/// acts as the dir's owner, so the check passes and what it writes stays
/// the owner's (as root it used to report every file as "owned by another
/// user", and files it created were root's).
#[test]
fn tools_run_as_root_act_as_the_data_dirs_owner() {
    if under_qemu("qemu-user's helper thread makes every process look threaded, so the switch to the owner is refused") {
        return;
    }
    if is_reference() || !running_as_root() {
        eprintln!("needs root: skipped");
        return;
    }
    let root = populated();
    let dir = give_to_nobody(&root);
    let out = tool(&["check"], &dir, &[]);
    assert!(out.succeeded(), "{out:?}");
    assert!(out.stderr.contains("acting as uid 65534"), "{out:?}");
    let out = tool(
        &[
            "superuser",
            "upsert",
            "second@example.com",
            "a long password 2",
        ],
        &dir,
        &[],
    );
    assert!(out.succeeded(), "{out:?}");
    let out = tool(
        &["backup", "--name", "by_root.zip"],
        &dir,
        &[("KEEPD_BACKUP_ENCRYPTION", "none")],
    );
    assert!(out.succeeded(), "{out:?}");
    assert!(dir.join("backups/by_root.zip").is_file());
    let wrong = owned_by_nobody(&dir);
    assert!(wrong.is_empty(), "files not the owner's: {wrong:?}");
    let out = tool(&["check"], &dir, &[]);
    assert!(out.succeeded(), "{out:?}");
}

/// Encryption at rest with the key where the unit's LoadCredential= reads
/// it (root-only): the tools take it with `--database-key-file`, refuse it
/// when others may read it, and, run as root, read it before acting as the
/// data dir's owner (who can't read it).
#[cfg(feature = "sqlcipher")]
#[test]
fn tools_take_the_key_file_the_operator_names() {
    if under_qemu(
        "run as root, the tools switch to the owner, which qemu-user's helper thread prevents",
    ) {
        return;
    }
    if is_reference() {
        return;
    }
    let key_root = TempRoot::new("keyfile");
    let key = key_root.path.join("database.key");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    )
    .expect("key");
    chmod(&key, 0o600);
    let k = key.to_str().expect("utf8");
    let mut srv = TestServer::builder()
        .env("KEEPD_DATABASE_KEY_FILE", k)
        .start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "fields": [{"name": "t", "type": "text"}]
    }));
    let root = srv.root.clone();
    sigterm(srv.pid());
    assert!(wait_until(Duration::from_secs(30), || !srv.is_running()));
    let dir = root.path.join("data");

    let out = tool(&["check"], &dir, &[]);
    assert!(out.failed() && out.stdout.contains("encrypted"), "{out:?}");
    let out = tool(&["check", "--database-key-file", k], &dir, &[]);
    assert!(out.succeeded(), "{out:?}");
    let out = tool(
        &[
            "superuser",
            "upsert",
            "reset@example.com",
            "a long password 3",
            "--database-key-file",
            k,
        ],
        &dir,
        &[],
    );
    assert!(out.succeeded(), "{out:?}");
    let out = tool(
        &["backup", "--database-key-file", k],
        &dir,
        &[("KEEPD_BACKUP_ENCRYPTION", "none")],
    );
    assert!(out.succeeded(), "{out:?}");
    // A key file others may read is refused, naming it and its mode.
    chmod(&key, 0o644);
    let out = tool(&["check", "--database-key-file", k], &dir, &[]);
    assert!(
        out.failed() && out.stdout.contains(k) && out.stdout.contains("0644"),
        "{out:?}"
    );
    let out = tool(
        &[
            "superuser",
            "upsert",
            "reset@example.com",
            "a long password 4",
            "--database-key-file",
            k,
        ],
        &dir,
        &[],
    );
    assert!(out.failed() && out.stderr.contains("0644"), "{out:?}");
    chmod(&key, 0o600);

    // As root on the service's data dir, with the key root's alone.
    if !running_as_root() {
        return;
    }
    let dir = give_to_nobody(&root);
    let out = tool(&["check", "--database-key-file", k], &dir, &[]);
    assert!(out.succeeded(), "{out:?}");
    let out = tool(
        &[
            "superuser",
            "upsert",
            "reset@example.com",
            "a long password 5",
            "--database-key-file",
            k,
        ],
        &dir,
        &[],
    );
    assert!(out.succeeded(), "{out:?}");
    let wrong = owned_by_nobody(&dir);
    assert!(wrong.is_empty(), "files not the owner's: {wrong:?}");
}
