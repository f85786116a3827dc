//! sd_notify as systemd sees it: the test owns the NOTIFY_SOCKET datagram
//! socket. READY=1 comes once the listener is bound; WATCHDOG=1 keeps coming
//! while the writer answers, stops while the writer is stuck behind another
//! process's exclusive lock, and resumes when it is free; SIGTERM sends
//! STOPPING=1.

use crate::common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn messages_for(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

fn count(msgs: &[String], what: &str) -> usize {
    msgs.iter().filter(|m| m.lines().any(|l| l == what)).count()
}

#[test]
fn ready_watchdog_follows_the_writer_and_stopping() {
    if is_reference() {
        return; // keepd's own service-manager integration
    }
    let root = TempRoot::new("notify");
    let path = root.path.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    // 400 ms watchdog: keepd pings every 200 ms while its probe passes.
    let mut srv = TestServer::builder()
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .start();

    let first = messages_for(&sock, Duration::from_millis(2500));
    assert!(count(&first, "READY=1") == 1, "READY=1 once: {first:?}");
    assert!(
        first.iter().any(|m| m.contains("STATUS=")),
        "a STATUS line: {first:?}"
    );
    let healthy = count(&first, "WATCHDOG=1");
    assert!(healthy >= 3, "pings while healthy: {first:?}");

    // Another process takes the database's write lock: the writer's probe
    // can't get through, so the pings must stop.
    let db = rusqlite::Connection::open(srv.db_path()).expect("open db");
    db.execute_batch("PRAGMA busy_timeout = 0; BEGIN EXCLUSIVE;")
        .expect("exclusive lock");
    let _ = messages_for(&sock, Duration::from_millis(500)); // a ping may be in flight
    let stuck = messages_for(&sock, Duration::from_millis(1500));
    assert_eq!(
        count(&stuck, "WATCHDOG=1"),
        0,
        "no pings while the writer is stuck: {stuck:?}"
    );

    db.execute_batch("ROLLBACK;").expect("release lock");
    drop(db);
    // busy_timeout in the writer is 10 s; the probe retries and succeeds
    // once the lock is gone.
    let back = messages_for(&sock, Duration::from_secs(4));
    assert!(
        count(&back, "WATCHDOG=1") >= 2,
        "pings resume after the lock is released: {back:?}"
    );

    let status = std::process::Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let last = messages_for(&sock, Duration::from_secs(3));
    assert!(
        count(&last, "STOPPING=1") == 1,
        "STOPPING=1 on SIGTERM: {last:?}"
    );
    srv.kill9();
}
