//! Durability: a write is answered only after its commit, so every create
//! acknowledged with 200 survives `kill -9`; the database stays intact.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 8;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let mut srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "events", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "",
        "fields": [
            {"name": "writer", "type": "number"},
            {"name": "seq", "type": "number"},
            {"name": "payload", "type": "text"}
        ]
    }));
    // Guests write as fast as they can here: rate limits off (they are
    // tested in guard.rs).
    srv.rate_limits_off();
    let acked: Arc<Mutex<Vec<(String, usize, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = srv.addr;
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let acked = acked.clone();
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let mut errors = 0usize;
            let mut seq = 0usize;
            while !stop.load(Ordering::Relaxed) && errors < 20 {
                seq += 1;
                let body = json!({"writer": w, "seq": seq, "payload": format!("w{w}-s{seq}-{}", "p".repeat(64))}).to_string();
                match post(addr, "/api/collections/events/records", body.as_bytes()) {
                    Ok(r) if r.status == 200 => {
                        let v = r.json();
                        let id = v["id"].as_str().unwrap_or_default().to_string();
                        assert_eq!(v["seq"], json!(seq), "the answer is this write's");
                        acked.lock().unwrap_or_else(|e| e.into_inner()).push((id, w, seq));
                    }
                    Ok(r) => panic!("writer {w}: create answered {} {}", r.status, r.text()),
                    // The server is gone (killed mid-request): not acknowledged.
                    Err(_) => {
                        errors += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }));
    }
    // Write for ~1.5 s, then pull the plug.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.kill9();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("writer thread");
    }
    let acked = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        acked.len() >= 20,
        "too few acknowledged writes to mean anything: {}",
        acked.len()
    );
    eprintln!(
        "{} creates acknowledged by {WRITERS} writers before kill -9",
        acked.len()
    );
    let unique: HashSet<&str> = acked.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(unique.len(), acked.len(), "ids are unique");

    // Restart on the same directory: it recovers and serves.
    let srv2 = srv.restart();
    let mut stored: HashSet<String> = HashSet::new();
    let mut page = 1;
    loop {
        let (st, v) = srv2.su().list(
            "events",
            &[
                ("perPage", "1000"),
                ("page", &page.to_string()),
                ("fields", "id"),
                ("skipTotal", "1"),
            ],
        );
        assert_eq!(st, 200, "{v}");
        let got = ids(&v);
        let n = got.len();
        stored.extend(got);
        if n < 1000 {
            break;
        }
        page += 1;
    }
    let missing: Vec<&(String, usize, usize)> = acked
        .iter()
        .filter(|(id, _, _)| !stored.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost after kill -9, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // At most the requests in flight at the kill landed without an answer.
    assert!(
        stored.len() <= acked.len() + WRITERS,
        "stored {} > acked {} + in-flight {WRITERS}",
        stored.len(),
        acked.len()
    );

    // The database file is intact, and the rows are what was acknowledged.
    let db = srv2.open_db();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let fk: i64 = db
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .expect("foreign_key_check");
    assert_eq!(fk, 0);
    let mut st = db
        .prepare("SELECT writer, seq FROM events WHERE id = ?1")
        .expect("prepare");
    for (id, w, seq) in acked.iter().step_by((acked.len() / 50).max(1)) {
        let (gw, gs): (i64, i64) = st
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("row");
        assert_eq!((gw as usize, gs as usize), (*w, *seq), "row {id}");
    }
    // And it still takes writes.
    let (st, v) = srv2.guest().post(
        "/api/collections/events/records",
        &json!({"writer": 99, "seq": 1}),
    );
    assert_eq!(st, 200, "{v}");
}

/// One POST on a fresh connection, JSON body.
fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> std::io::Result<Resp> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    read_response(&mut s)
}

/// Bytes this process caused to be written to storage (/proc/PID/io).
fn write_bytes(pid: u32) -> u64 {
    proc_io(
        std::path::Path::new(&format!("/proc/{pid}/io")),
        "write_bytes",
    )
    .expect("write_bytes in /proc/PID/io")
}

#[test]
fn read_requests_write_nothing_to_disk() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder().root(TempRoot::on_disk("io")).start();
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]
    }));
    let mut ids = Vec::new();
    for n in 0..20 {
        let (st, v) = srv.guest().post(
            "/api/collections/notes/records",
            &json!({"title": "t", "n": n}),
        );
        assert_eq!(st, 200, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    let pid = srv.pid();
    // A few reads first: the first read transaction after the writes moves
    // a read mark in SQLite's WAL index (`data.db-shm`, shared memory that
    // the kernel may have written back by then — re-dirtying its page
    // counts here). After that, reads leave the WAL index as it is.
    for id in &ids {
        let (st, _) = srv
            .guest()
            .get(&format!("/api/collections/notes/records/{id}"));
        assert_eq!(st, 200);
    }
    // Let the writes' checkpoints and any start-up work settle: the counter
    // still for a whole second (at most 15 s; a loaded machine delays the
    // page cache's write-back of what the creates wrote).
    let mut before = write_bytes(pid);
    let settle = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let now = write_bytes(pid);
        if now == before || settle.elapsed() > Duration::from_secs(15) {
            break;
        }
        before = now;
    }
    for i in 0..300 {
        let path = match i % 3 {
            0 => format!("/api/collections/notes/records/{}", ids[i % ids.len()]),
            1 => "/api/collections/notes/records?filter=%28n%3E5%29&sort=-n&perPage=5".to_string(),
            _ => "/api/health".to_string(),
        };
        let (st, _) = srv.guest().get(&path);
        assert_eq!(st, 200, "{path}");
    }
    let after_reads = write_bytes(pid);
    // The counter does see this process's writes: one create moves it.
    let (st, _) = srv.guest().post(
        "/api/collections/notes/records",
        &json!({"title": "w", "n": 1}),
    );
    assert_eq!(st, 200);
    let after_write = write_bytes(pid);
    assert!(
        after_write > after_reads,
        "a durable write must show in write_bytes ({after_reads} -> {after_write})"
    );
    assert_eq!(
        after_reads - before,
        0,
        "300 read requests wrote {} bytes to storage",
        after_reads - before
    );
}

/// The group commit's figures are there for operators (superusers'
/// `/api/health`): every acknowledged write is counted in a commit, each
/// commit (one fsync) in one group-size bucket. Guests see none of it.
#[test]
fn group_commit_figures_are_reported() {
    let srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "gc", "type": "base", "createRule": "",
        "fields": [{"name": "t", "type": "text"}]
    }));
    srv.rate_limits_off();
    let writer = |srv: &TestServer| {
        let (st, v) = srv.su().get("/api/writer");
        assert_eq!(st, 200, "{v}");
        v
    };
    let before = writer(&srv);
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    std::thread::scope(|s| {
        for t in 0..8 {
            let srv = &srv;
            s.spawn(move || {
                for i in 0..10 {
                    let (st, v) = srv.guest().post(
                        "/api/collections/gc/records",
                        &json!({"t": format!("{t}-{i}")}),
                    );
                    assert_eq!(st, 200, "{v}");
                }
            });
        }
    });
    let after = writer(&srv);
    let writes = n(&after, "writes") - n(&before, "writes");
    let commits = n(&after, "commits") - n(&before, "commits");
    assert!(writes >= 80, "80 creates, {writes} writes counted: {after}");
    assert!(
        commits >= 1 && commits <= writes,
        "{commits} commits for {writes} writes"
    );
    let groups: u64 = after["groupSizes"]
        .as_array()
        .expect("groupSizes")
        .iter()
        .map(|b| b[1].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        groups,
        n(&after, "commits"),
        "each commit in one bucket: {after}"
    );
    let (st, v) = srv.guest().get("/api/writer");
    assert_eq!(st, 401, "guests see no writer figures: {v}");
    let (_, user) = srv.sign_up("gc-user@example.com", "gc-user-password-1");
    let r = srv.raw("GET", "/api/writer", &[("Authorization", &user)], None);
    assert_eq!(r.status, 403, "users see no writer figures");
    // /api/health keeps PocketBase's shape, superusers included.
    let (st, v) = srv.su().get("/api/health");
    assert_eq!(st, 200);
    assert!(v["data"].get("writer").is_none(), "{v}");
}

/// The WAL's checkpoints run on a thread of their own, beside the writer
/// (not inside the COMMIT that crosses the threshold, where every caller of
/// the group would wait for a thousand pages copied and synced): after a
/// few MB of creates, pages reach `data.db` while the daemon serves, written
/// by the `keepd-wal` thread.
#[test]
fn checkpoints_copy_the_wal_into_the_database_beside_the_writer() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .root(TempRoot::on_disk("ckpt"))
        .start();
    checkpointed_beside_the_writer(&srv);
}

/// Writes ~3 MB of records into a new collection `bulk` of `srv` and checks
/// that the `keepd-wal` thread copies them into `data.db` while it serves
/// (also run on an encrypted database: `encryption::`).
pub fn checkpointed_beside_the_writer(srv: &TestServer) {
    srv.create_collection(&json!({
        "name": "bulk", "type": "base", "createRule": "",
        "fields": [{"name": "body", "type": "text"}]
    }));
    srv.rate_limits_off();
    let db = srv.db_path();
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let start = size(&db);
    // 8 writers × 120 creates of 3 KB: ~3 MB of rows; with at most 8
    // writes per commit, well over a thousand WAL frames.
    std::thread::scope(|s| {
        for t in 0..8 {
            s.spawn(move || {
                for i in 0..120 {
                    let body = format!("{t}-{i}-{}", "x".repeat(3000));
                    let (st, v) = srv
                        .guest()
                        .post("/api/collections/bulk/records", &json!({ "body": body }));
                    assert_eq!(st, 200, "{v}");
                }
            });
        }
    });
    let pid = srv.pid();
    let checkpointer = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .filter_map(|t| t.ok())
        .find(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "keepd-wal")
        })
        .map(|t| t.path())
        .expect("a keepd-wal thread");
    let written = |task: &std::path::Path| proc_io(&task.join("io"), "syscw").unwrap_or(0);
    let grown = wait_until(Duration::from_secs(20), || {
        size(&db) >= start + 1_500_000 && written(&checkpointer) > 0
    });
    assert!(
        grown,
        "data.db {} -> {} bytes, the WAL {} bytes; writes by the checkpoint thread: {}",
        start,
        size(&db),
        size(&db.with_extension("db-wal")),
        written(&checkpointer)
    );
    // Every row reads back (through the WAL and the database file).
    let (st, v) = srv.su().list("bulk", &[("perPage", "1")]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["totalItems"], 960, "{v}");
}
