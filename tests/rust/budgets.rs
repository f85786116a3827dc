//! Memory and connection budgets under attack: each test runs an attack
//! against the real daemon with its default configuration (or a stated
//! one), asserts the daemon's peak RSS (`VmHWM`) stays under a stated cap,
//! and that a well-behaved client is served meanwhile.
//!
//! - bodies read whole: a global budget of bytes in flight (429 over it,
//!   before more is read);
//! - connections: a cap per peer address at accept;
//! - realtime: queued bytes per client and in total;
//! - thumbnails: the decoder's allocations bounded.

use crate::common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A field of `/proc/PID/status` in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("status field")
}

fn peak_mib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") / 1024
}

fn rss_mib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") / 1024
}

/// A TCP connection to `addr` from the local address `from` (another
/// loopback address: another client as the daemon counts them).
fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// A GET on a fresh connection from `from`; the status (0: no answer).
fn get_from(from: [u8; 4], srv: &TestServer, path: &str) -> u16 {
    let Ok(mut s) = connect_from(from, srv.addr) else {
        return 0;
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        srv.addr
    );
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    read_response(&mut s).map(|r| r.status).unwrap_or(0)
}

fn notes(srv: &TestServer) {
    srv.create_collection(&json!({
        "name": "notes", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "updateRule": "",
        "fields": [{"name": "title", "type": "text", "max": 0},
                   {"name": "body", "type": "text", "max": 40000000}]
    }));
}

/// 40 connections each send most of a 32 MiB JSON body and hold it there.
/// Before the budget every body was read whole at once (RSS grew by the
/// sum: 1.2 GiB); now the bodies in flight share 64 MiB, the others are
/// answered 429 before their body is read, and small requests go on.
#[test]
fn bodies_in_flight_share_a_budget() {
    if is_reference() {
        return;
    }
    hold_large_bodies(false);
}

/// The same with multipart bodies whose text parts (held in memory, unlike
/// file parts) are 31 MiB: charged to the same budget as they arrive.
#[test]
fn form_text_shares_the_body_budget() {
    if under_qemu("the RSS bound can't hold with the emulator's own memory in it") {
        return;
    }
    if is_reference() {
        return;
    }
    hold_large_bodies(true);
}

fn hold_large_bodies(multipart: bool) {
    let srv = TestServer::start();
    notes(&srv);
    let pid = srv.pid();
    let (st, v) = srv
        .guest()
        .post("/api/collections/notes/records", &json!({"title": "warm"}));
    assert_eq!(st, 200, "{v}");
    let before = peak_mib(pid);
    const N: usize = 40;
    const LEN: usize = 32 << 20;
    const SENT: usize = 31 << 20;
    const BOUNDARY: &str = "budgetboundary";
    let ct = if multipart {
        format!("multipart/form-data; boundary={BOUNDARY}")
    } else {
        "application/json".to_string()
    };
    let mut body = Vec::with_capacity(SENT);
    if multipart {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n")
                .as_bytes(),
        );
    } else {
        body.extend_from_slice(br#"{"title":"x","body":""#);
    }
    body.resize(SENT, b'a');
    let body = Arc::new(body);
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let hold = Duration::from_secs(6);
    let attackers: Vec<_> = (0..N)
        .map(|_| {
            let body = body.clone();
            let refused = refused.clone();
            let addr = srv.addr;
            let ct = ct.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return;
                };
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let head = format!(
                    "POST /api/collections/notes/records HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ct}\r\nContent-Length: {LEN}\r\n\r\n"
                );
                if s.write_all(head.as_bytes()).is_err() {
                    refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                for piece in body.chunks(1 << 20) {
                    if s.write_all(piece).is_err() {
                        break;
                    }
                }
                // Hold the body unfinished; note whether it was refused.
                let mut buf = [0u8; 512];
                let mut seen = Vec::new();
                while started.elapsed() < hold {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
                if seen.starts_with(b"HTTP/1.1 429") || seen.starts_with(b"HTTP/1.1 413") {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Meanwhile a well-behaved client is served, reads and small writes.
    std::thread::sleep(Duration::from_secs(2));
    let mut served = 0;
    for i in 0..5 {
        let (st, v) = srv.guest().post(
            "/api/collections/notes/records",
            &json!({"title": format!("small {i}")}),
        );
        assert_eq!(st, 200, "a small write during the attack: {v}");
        let (st, _) = srv.guest().get("/api/health");
        assert_eq!(st, 200);
        served += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    for a in attackers {
        let _ = a.join();
    }
    let peak = peak_mib(pid);
    let refused = refused.load(Ordering::Relaxed);
    eprintln!(
        "{N} × 32 MiB bodies held (multipart: {multipart}): peak RSS {before} → {peak} MiB; {refused} refused, {served} small requests served"
    );
    assert!(
        refused >= N - 2,
        "only {refused} of {N} large bodies were refused"
    );
    // 56 MiB of large bodies at most, plus the daemon's own.
    const CAP_MIB: u64 = 180;
    assert!(
        peak < CAP_MIB,
        "peak RSS {peak} MiB (cap {CAP_MIB} MiB; before the attack {before} MiB)"
    );
    // The budget is given back: a large body goes through afterwards.
    let big = "b".repeat(8 << 20);
    let (st, v) = srv.guest().post(
        "/api/collections/notes/records",
        &json!({"title": "after", "body": big}),
    );
    assert_eq!(
        st,
        200,
        "{}",
        v.to_string().chars().take(300).collect::<String>()
    );
}

/// One address opens more connections than the daemon serves and trickles
/// on each. Before the per-address cap it held every slot and everyone
/// else got 429; now it holds `max_connections_per_ip` and another
/// address is served.
#[test]
fn one_address_cannot_take_every_connection() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_MAX_CONNECTIONS", "200")
        .env("KEEPD_MAX_CONNECTIONS_PER_IP", "64")
        .start();
    let pid = srv.pid();
    assert_eq!(get_from([127, 0, 0, 2], &srv, "/api/health"), 200);
    let before = peak_mib(pid);
    const N: usize = 300;
    let mut held = Vec::new();
    for _ in 0..N {
        let Ok(mut s) = connect_from([127, 0, 0, 1], srv.addr) else {
            continue;
        };
        let head = format!(
            "POST /api/collections/notes/records HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{",
            srv.addr
        );
        let _ = s.write_all(head.as_bytes());
        held.push(s);
    }
    // Let the daemon answer the ones over the cap.
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for s in &mut held {
        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf) {
            if buf[..n].starts_with(b"HTTP/1.1 429") || n == 0 {
                refused += 1;
            }
        } else {
            // Still open, waiting for the rest of the body: a trickle.
            let _ = s.write_all(b" ");
        }
    }
    // Another address is served while the trickling ones hold their slots.
    for _ in 0..5 {
        assert_eq!(
            get_from([127, 0, 0, 2], &srv, "/api/health"),
            200,
            "another address during the attack"
        );
    }
    let peak = peak_mib(pid);
    eprintln!(
        "{N} trickling connections from one address: {refused} refused at accept; peak RSS {before} → {peak} MiB"
    );
    assert!(
        refused >= N - 64,
        "only {refused} of {N} connections from one address were refused"
    );
    drop(held);
    // Its slots are given back when they close.
    assert!(
        wait_until(Duration::from_secs(5), || get_from(
            [127, 0, 0, 1],
            &srv,
            "/api/health"
        ) == 200),
        "the address is served again once its connections closed"
    );
    const CAP_MIB: u64 = 120;
    assert!(peak < CAP_MIB, "peak RSS {peak} MiB (cap {CAP_MIB} MiB)");
}

/// An event stream opened on a fresh connection: the socket and the
/// client id (from PB_CONNECT); what came after it is left unread.
fn open_stream(srv: &TestServer, rcvbuf: Option<usize>, from: [u8; 4]) -> (TcpStream, String) {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((from, 0)).into())
        .expect("bind");
    if let Some(n) = rcvbuf {
        // A client that stops reading with little in its socket buffers.
        sock.set_recv_buffer_size(n).expect("SO_RCVBUF");
    }
    sock.connect(&srv.addr.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "GET /api/realtime HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        srv.addr
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&seen).to_string();
        if let Some(i) = text.find("\"clientId\":\"") {
            let rest = &text[i + 12..];
            if let Some(j) = rest.find('"') {
                return (s, rest[..j].to_string());
            }
        }
        let n = s.read(&mut buf).expect("read the stream");
        assert!(n > 0, "the stream closed before PB_CONNECT: {text}");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// 45 realtime clients that never read, each with its own rendering
/// (`fields`), while a ~900 KB record is updated 12 times (each stalled
/// client is gone after a few). Before the byte caps each queue held up to
/// 256 events (RSS grew by gigabytes and stayed there); now a client more
/// than `realtime_queue_bytes` behind is disconnected, the queues share
/// `realtime_max_queued_bytes`, a client that reads gets every event, and
/// the memory comes back.
#[test]
fn realtime_queues_are_bounded_in_bytes() {
    if is_reference() {
        return;
    }
    // As the packaged unit runs it: glibc's mmap threshold fixed, so that
    // large buffers go back to the system when freed.
    let srv = TestServer::builder()
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .start();
    notes(&srv);
    let pid = srv.pid();
    let big = |i: usize| format!("{i:06}{}", "r".repeat(900_000));
    let (st, v) = srv.su().post(
        "/api/collections/notes/records",
        &json!({"title": "t", "body": big(0)}),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    // The reader: subscribed without options, reads everything.
    let (mut reader, rid) = open_stream(&srv, None, [127, 0, 0, 1]);
    let (st, v) = srv.guest().post(
        "/api/realtime",
        &json!({"clientId": rid, "subscriptions": ["notes/*"]}),
    );
    assert_eq!(st, 204, "{v}");
    let before = peak_mib(pid);
    const N: usize = 45;
    const UPDATES: usize = 12;
    let mut stalled = Vec::new();
    for i in 0..N {
        let (s, cid) = open_stream(&srv, Some(8 << 10), [127, 0, 0, 1]);
        let options = json!({"query": {"fields": format!("id,body,f{i}")}}).to_string();
        let topic = format!("notes/{id}?options={}", enc(&options));
        let (st, v) = srv.guest().post(
            "/api/realtime",
            &json!({"clientId": cid, "subscriptions": [topic]}),
        );
        assert_eq!(st, 204, "{v}");
        stalled.push(s);
    }
    let events = Arc::new(AtomicUsize::new(0));
    let reading = {
        let events = events.clone();
        reader
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut tail = Vec::new();
            let needle = b"event:notes/*";
            while events.load(Ordering::Relaxed) < UPDATES {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                tail.extend_from_slice(&buf[..n]);
                let found = tail.windows(needle.len()).filter(|w| w == needle).count();
                events.fetch_add(found, Ordering::Relaxed);
                let keep = tail.len().min(needle.len() - 1);
                tail.drain(..tail.len() - keep);
            }
        })
    };
    let su = srv.su();
    let mut peak_rss = 0;
    for i in 1..=UPDATES {
        let (st, v) = su.patch(
            &format!("/api/collections/notes/records/{id}"),
            &json!({"body": big(i)}),
        );
        assert_eq!(st, 200, "update {i}: {v}");
        peak_rss = peak_rss.max(rss_mib(pid));
    }
    let got_all = wait_until(Duration::from_secs(30), || {
        events.load(Ordering::Relaxed) >= UPDATES
    });
    let _ = reading.join();
    let peak = peak_mib(pid);
    drop(stalled);
    // They left: the queues' memory is given back.
    let mut after = rss_mib(pid);
    wait_until(Duration::from_secs(5), || {
        after = rss_mib(pid);
        after < before + 48
    });
    eprintln!(
        "{N} stalled realtime clients, {UPDATES} updates of a 900 KB record: peak RSS {before} → {peak} MiB (sampled {peak_rss}); {after} MiB after they left"
    );
    assert!(
        got_all,
        "the reading client got {} of {UPDATES} events",
        events.load(Ordering::Relaxed)
    );
    // 64 MiB of queues, 45 renderings of one event and the frames being
    // written, the daemon's own.
    const CAP_MIB: u64 = 256;
    assert!(peak < CAP_MIB, "peak RSS {peak} MiB (cap {CAP_MIB} MiB)");
    assert!(
        after < before + 48,
        "RSS {after} MiB after the clients left ({before} MiB before)"
    );
}

/// A PNG of `w`×`h` RGBA pixels at 16 bits a channel, all zero, written
/// by hand: one fixed-Huffman deflate block of back-references (a few MB
/// that decode to `h` × (1 + 8`w`) bytes).
fn png16(w: u32, h: u32) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, v: u64, n: u32) {
            self.acc |= v << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code (most significant bit first).
        fn code(&mut self, c: u64, n: u32) {
            let mut r = 0;
            for i in 0..n {
                r |= ((c >> i) & 1) << (n - 1 - i);
            }
            self.put(r, n);
        }
    }
    let total = u64::from(h) * (1 + 8 * u64::from(w));
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    b.put(1, 1); // the last block
    b.put(1, 2); // fixed Huffman codes
    let literal_zero = |b: &mut Bits| b.code(0x30, 8);
    literal_zero(&mut b);
    let mut left = total - 1;
    while left >= 258 {
        b.code(0xC5, 8); // length 258 (symbol 285)
        b.code(0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        literal_zero(&mut b);
    }
    b.code(0, 7); // end of block
    if b.n > 0 {
        b.out.push(b.acc as u8); // to a byte boundary
    }
    let adler = (((total % 65521) as u32) << 16) | 1;
    b.out.extend(adler.to_be_bytes());
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([16, 6, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &b.out[..]),
        (b"IEND", &[]),
    ] {
        v.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        v.extend(&c);
        v.extend(crc32fast::hash(&c).to_be_bytes());
    }
    v
}

/// Two `?thumb=2000x2000` requests for a 16-bit 7000×7000 PNG (under
/// `max_thumb_pixels`): before the byte bound each decoded ~400 MB of
/// pixels and converted them (peak RSS over 1 GiB); now an image whose
/// thumb would take more than `max_thumb_bytes` is served as it is,
/// without decoding, while other requests go on.
#[test]
fn thumbnails_are_bounded_in_bytes() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let c = srv.create_collection(&json!({
        "name": "pics", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "img", "type": "file", "maxSelect": 1, "maxSize": 20000000,
                    "thumbs": ["2000x2000"]}]
    }));
    let cid = c["id"].as_str().expect("id").to_string();
    let png = png16(7000, 7000);
    let (ct, body) = multipart(&[("img", Some("big.png"), &png)]);
    let r = srv.raw(
        "POST",
        "/api/collections/pics/records",
        &[("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let rid = v["id"].as_str().expect("id").to_string();
    let name = v["img"].as_str().expect("file name").to_string();
    let pid = srv.pid();
    let before = peak_mib(pid);
    let path = format!("/api/files/{cid}/{rid}/{name}?thumb=2000x2000");
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (srv, path) = (&srv, &path);
                s.spawn(move || {
                    let r = srv.raw("GET", path, &[], None);
                    (r.status, r.body)
                })
            })
            .collect();
        // Meanwhile another client is served.
        let (st, _) = srv.guest().get("/api/health");
        assert_eq!(st, 200);
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let peak = peak_mib(pid);
    eprintln!(
        "2 × ?thumb=2000x2000 of a {} KB 16-bit 7000×7000 PNG: peak RSS {before} → {peak} MiB",
        png.len() / 1000
    );
    for (st, b) in &answers {
        assert_eq!(*st, 200);
        assert!(*b == png, "the original is served");
    }
    const CAP_MIB: u64 = 150;
    assert!(peak < CAP_MIB, "peak RSS {peak} MiB (cap {CAP_MIB} MiB)");
}

/// Every attack above at once, each from its own address, with the
/// default budgets (and the packaged unit's allocator setting): the
/// daemon's peak RSS stays under the worst case the README states for the
/// defaults (420 MiB), and a well-behaved client is served throughout.
#[test]
fn all_at_once() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("MALLOC_MMAP_THRESHOLD_", "131072")
        .start();
    notes(&srv);
    let pid = srv.pid();
    let addr = srv.addr;
    let c = srv.create_collection(&json!({
        "name": "pics", "type": "base", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "img", "type": "file", "maxSelect": 1, "maxSize": 20000000,
                    "thumbs": ["2000x2000"]}]
    }));
    let cid = c["id"].as_str().expect("id").to_string();
    let png = png16(7000, 7000);
    let (ct, body) = multipart(&[("img", Some("big.png"), &png)]);
    let r = srv.raw(
        "POST",
        "/api/collections/pics/records",
        &[("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let thumb = format!(
        "/api/files/{cid}/{}/{}?thumb=2000x2000",
        v["id"].as_str().expect("id"),
        v["img"].as_str().expect("name")
    );
    let big = |i: usize| format!("{i:06}{}", "r".repeat(900_000));
    let su = srv.su();
    let (st, v) = su.post(
        "/api/collections/notes/records",
        &json!({"title": "t", "body": big(0)}),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let before = peak_mib(pid);

    // Realtime: 45 stalled clients from 127.0.0.4, each its own rendering.
    let mut stalled = Vec::new();
    for i in 0..45 {
        let (s, client) = open_stream(&srv, Some(8 << 10), [127, 0, 0, 4]);
        let options = json!({"query": {"fields": format!("id,body,f{i}")}}).to_string();
        let topic = format!("notes/{id}?options={}", enc(&options));
        let body = json!({"clientId": client, "subscriptions": [topic]}).to_string();
        let mut c = connect_from([127, 0, 0, 4], addr).expect("connect");
        let req = format!(
            "POST /api/realtime HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(req.as_bytes()).expect("subscribe");
        assert_eq!(read_response(&mut c).expect("answer").status, 204);
        stalled.push(s);
    }
    // Trickling connections: 300 from 127.0.0.5.
    let mut trickling = Vec::new();
    for _ in 0..300 {
        if let Ok(mut s) = connect_from([127, 0, 0, 5], addr) {
            let head = format!(
                "POST /api/collections/notes/records HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
            );
            let _ = s.write_all(head.as_bytes());
            trickling.push(s);
        }
    }
    // Large bodies: 40 × 32 MiB from 127.0.0.3, held unfinished.
    let mut body = Vec::with_capacity(31 << 20);
    body.extend_from_slice(br#"{"title":"x","body":""#);
    body.resize(31 << 20, b'a');
    let body = Arc::new(body);
    let started = Instant::now();
    let hold = Duration::from_secs(8);
    let holders: Vec<_> = (0..40)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = connect_from([127, 0, 0, 3], addr) else {
                    return;
                };
                let head = format!(
                    "POST /api/collections/notes/records HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    32 << 20
                );
                if s.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for piece in body.chunks(1 << 20) {
                    if s.write_all(piece).is_err() {
                        break;
                    }
                }
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buf = [0u8; 512];
                while started.elapsed() < hold {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    // Thumbnails: two of the 16-bit 7000×7000 PNG.
    let thumbs: Vec<_> = (0..2)
        .map(|_| {
            let path = thumb.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = connect_from([127, 0, 0, 6], addr) else {
                    return 0;
                };
                let req =
                    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
                let _ = s.write_all(req.as_bytes());
                read_response(&mut s).map(|r| r.status).unwrap_or(0)
            })
        })
        .collect();
    // Record updates feed the stalled realtime clients; between them a
    // well-behaved client reads and writes.
    for i in 1..=12 {
        let (st, v) = su.patch(
            &format!("/api/collections/notes/records/{id}"),
            &json!({"body": big(i)}),
        );
        assert_eq!(st, 200, "update {i}: {v}");
        let (st, v) = srv.guest().post(
            "/api/collections/notes/records",
            &json!({"title": format!("small {i}")}),
        );
        assert_eq!(st, 200, "a small write during the attacks: {v}");
        assert_eq!(get_from([127, 0, 0, 2], &srv, "/api/health"), 200);
    }
    for t in thumbs {
        assert_eq!(t.join().expect("thumb thread"), 200);
    }
    for h in holders {
        let _ = h.join();
    }
    let peak = peak_mib(pid);
    drop((stalled, trickling));
    eprintln!("every attack at once: peak RSS {before} → {peak} MiB");
    const README_WORST_CASE_MIB: u64 = 420;
    assert!(
        peak < README_WORST_CASE_MIB,
        "peak RSS {peak} MiB (the README's worst case: {README_WORST_CASE_MIB} MiB)"
    );
}
