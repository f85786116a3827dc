//! Record uploads stream: a multipart body is read as it arrives and its
//! files spill to private temporary files, so the daemon's memory does not
//! grow with the size of what is uploaded; the bytes in flight have a
//! global budget (over it: 429 and nothing kept); an upload that fails or
//! is abandoned leaves nothing behind.

use crate::common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// A field of `/proc/PID/status` in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("status field")
}

fn spill_dir_entries(srv: &TestServer) -> usize {
    std::fs::read_dir(srv.dir.join(".uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn docs(srv: &TestServer, max_size: u64) -> String {
    let c = srv.create_collection(&json!({
        "name": "docs", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "title", "type": "text"},
                   {"name": "f", "type": "file", "maxSelect": 1, "maxSize": max_size}]
    }));
    c["id"].as_str().expect("id").to_string()
}

/// Deterministic, incompressible-looking content of `n` bytes.
fn content(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn large_uploads_stream_to_disk() {
    if is_reference() {
        return;
    }
    const SIZE: usize = 40 << 20;
    let srv = TestServer::start();
    let cid = docs(&srv, 64 << 20);
    let pid = srv.pid();
    // Warm up (one small upload), then the high-water mark as the baseline.
    let (ct, body) = multipart(&[("title", None, b"warm"), ("f", Some("w.bin"), b"warm")]);
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let before = status_kib(pid, "VmHWM:");
    let bodies: Vec<(String, Vec<u8>, Vec<u8>)> = (0..4u8)
        .map(|i| {
            let data = content(SIZE, i);
            let (ct, body) = multipart(&[("title", None, b"big"), ("f", Some("big.bin"), &data)]);
            (ct, body, data)
        })
        .collect();
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|(ct, body, _)| {
                let srv = &srv;
                s.spawn(move || {
                    let r = srv.raw(
                        "POST",
                        "/api/collections/docs/records",
                        &[("Content-Type", ct)],
                        Some(body),
                    );
                    (r.status, r.json())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("upload thread"))
            .collect()
    });
    let grown_mib = (status_kib(pid, "VmHWM:").saturating_sub(before)) / 1024;
    for (i, (st, v)) in answers.iter().enumerate() {
        assert_eq!(*st, 200, "upload {i}: {v}");
        let id = v["id"].as_str().expect("id");
        let name = v["f"].as_str().expect("file name");
        let r = srv.raw("GET", &format!("/api/files/{cid}/{id}/{name}"), &[], None);
        assert_eq!(r.status, 200);
        assert!(r.body == bodies[i].2, "upload {i} came back different");
    }
    eprintln!("4 × 40 MiB uploads: peak RSS grew by {grown_mib} MiB");
    // 160 MiB went through; memory grew by a small fraction of that.
    assert!(
        grown_mib < 48,
        "peak RSS grew by {grown_mib} MiB for 4 × 40 MiB uploads"
    );
    assert!(
        wait_until(Duration::from_secs(5), || spill_dir_entries(&srv) == 0),
        "spill files left behind"
    );
}

#[test]
fn uploads_over_the_budget_are_refused_and_leave_nothing() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_MAX_UPLOAD_BYTES_IN_FLIGHT", "1048576")
        .start();
    let cid = docs(&srv, 8 << 20);
    let data = content(3 << 20, 7);
    let (ct, body) = multipart(&[("title", None, b"too much"), ("f", Some("x.bin"), &data)]);
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert_error_shape(&r.json(), 429, "over the upload budget");
    let (_, l) = srv.su().list("docs", &[]);
    assert_eq!(l["totalItems"], 0, "{l}");
    assert!(
        !srv.dir.join("storage").join(&cid).exists(),
        "files were stored"
    );
    assert!(
        wait_until(Duration::from_secs(5), || spill_dir_entries(&srv) == 0),
        "spill files left behind"
    );
    // The budget is back: an upload that fits goes through.
    let (ct, body) = multipart(&[
        ("title", None, b"fits"),
        ("f", Some("y.bin"), &data[..512 << 10]),
    ]);
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn an_abandoned_upload_leaves_nothing() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let cid = docs(&srv, 32 << 20);
    let data = content(4 << 20, 3);
    let (ct, body) = multipart(&[("title", None, b"cut"), ("f", Some("cut.bin"), &data)]);
    {
        let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
        write!(
            s,
            "POST /api/collections/docs/records HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .expect("head");
        // Half of it, then the client goes away.
        s.write_all(&body[..body.len() / 2]).expect("half the body");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        wait_until(Duration::from_secs(10), || spill_dir_entries(&srv) == 0),
        "the abandoned upload's spill file stayed"
    );
    let (_, l) = srv.su().list("docs", &[]);
    assert_eq!(l["totalItems"], 0, "{l}");
    assert!(
        !srv.dir.join("storage").join(&cid).exists(),
        "files were stored"
    );
}
