//! Realtime (SSE) at the wire: the PB_CONNECT frame, keepd's limits (clients
//! in total and per IP, subscriptions, topic length, body size — each a
//! clear error in PocketBase's shape), keep-alive and idle timeout, and a
//! slow consumer that is disconnected while the others keep receiving.
//!
//! The limits are keepd's own (PocketBase has none): those tests are skipped
//! when `KEEPD_TEST_BIN` points at PocketBase.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One SSE event: (event name, data).
pub(crate) type Event = (String, String);

/// A raw event-stream client: `GET /api/realtime`, chunked decoding and SSE
/// parsing done here so that the test sees exactly what the server sent
/// (also used by the PostgreSQL tests, with several servers).
pub(crate) struct Sse {
    stream: TcpStream,
    /// Undecoded bytes after the response head (chunked framing).
    raw: Vec<u8>,
    /// Decoded body bytes not yet parsed into events.
    body: Vec<u8>,
    /// Every decoded byte so far (for keep-alive checks).
    seen: Vec<u8>,
    closed: bool,
    client_id: String,
}

enum Opened {
    Stream(Box<Sse>),
    Refused(Resp),
}

impl Sse {
    fn open(srv: &TestServer) -> Opened {
        let mut s = TcpStream::connect(srv.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            s,
            "GET /api/realtime HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
            srv.addr
        )
        .expect("write");
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut tmp).expect("read head");
            assert!(n > 0, "closed before a response head");
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        if status != 200 {
            // Parse the whole response with the harness reader.
            let r = read_response(&mut (&buf[..]).chain(&s)).expect("error response");
            return Opened::Refused(r);
        }
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/event-stream"), "{head}");
        assert!(lower.contains("cache-control: no-store"), "{head}");
        assert!(lower.contains("transfer-encoding: chunked"), "{head}");
        let mut sse = Sse {
            stream: s,
            raw: buf[head_end + 4..].to_vec(),
            body: Vec::new(),
            seen: Vec::new(),
            closed: false,
            client_id: String::new(),
        };
        sse.decode();
        let (name, data) = sse
            .next(Duration::from_secs(5))
            .expect("the PB_CONNECT event");
        assert_eq!(name, "PB_CONNECT");
        let v: Value = serde_json::from_str(&data).expect("connect data");
        sse.client_id = v["clientId"].as_str().expect("clientId").to_string();
        assert_eq!(sse.client_id.len(), 40);
        // The `id:` line carries the client id (the SDK reads it from there).
        let text = String::from_utf8_lossy(&sse.seen).to_string();
        assert!(
            text.starts_with(&format!("id:{}\nevent:PB_CONNECT\ndata:", sse.client_id)),
            "{text:?}"
        );
        Opened::Stream(Box::new(sse))
    }

    pub(crate) fn connect(srv: &TestServer) -> Sse {
        match Sse::open(srv) {
            Opened::Stream(s) => *s,
            Opened::Refused(r) => panic!("realtime connect refused: {} {}", r.status, r.text()),
        }
    }

    /// Moves complete chunks from `raw` to `body`.
    fn decode(&mut self) {
        loop {
            let Some(i) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&self.raw[..i])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .expect("chunk size");
            if size == 0 {
                self.closed = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < i + 2 + size + 2 {
                return;
            }
            let chunk = self.raw[i + 2..i + 2 + size].to_vec();
            self.body.extend_from_slice(&chunk);
            self.seen.extend_from_slice(&chunk);
            self.raw.drain(..i + 2 + size + 2);
        }
    }

    /// Reads more bytes (up to `until`); false when the connection ended.
    fn fill(&mut self, until: Instant) -> bool {
        if self.closed {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = self
            .stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&tmp[..n]);
                self.decode();
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// The next event (comments skipped), or None by `timeout` / at the end.
    pub(crate) fn next(&mut self, timeout: Duration) -> Option<Event> {
        let until = Instant::now() + timeout;
        loop {
            while let Some(i) = self.body.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.body[..i]).to_string();
                self.body.drain(..i + 2);
                let mut name = String::new();
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        if !self.client_id.is_empty() {
                            assert_eq!(v, self.client_id, "every frame carries the client id");
                        }
                    }
                }
                if let Some(data) = data {
                    return Some((name, data));
                }
            }
            if Instant::now() >= until || self.closed {
                return None;
            }
            self.fill(until);
        }
    }

    /// Reads until the server closes the stream (true) or `timeout` (false).
    fn wait_closed(&mut self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while !self.closed && Instant::now() < until {
            self.fill(until);
            self.body.clear();
        }
        self.closed
    }

    /// Replaces the subscriptions (as `token`, if any): (status, body).
    pub(crate) fn subscribe(
        &self,
        srv: &TestServer,
        token: Option<&str>,
        topics: &[&str],
    ) -> (u16, Value) {
        let c = match token {
            Some(t) => srv.with_token(t),
            None => srv.guest(),
        };
        c.post(
            "/api/realtime",
            &json!({"clientId": self.client_id, "subscriptions": topics}),
        )
    }
}

fn public_collection(srv: &TestServer, name: &str) {
    srv.create_collection(&json!({
        "name": name, "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "editor"}]
    }));
}

#[test]
fn connect_subscribe_and_receive_in_commit_order() {
    let srv = TestServer::start();
    public_collection(&srv, "notes");
    let mut sse = Sse::connect(&srv);
    let (st, v) = sse.subscribe(&srv, None, &["notes/*"]);
    assert_eq!(st, 204, "{v}");
    let su = srv.su();
    let mut ids = Vec::new();
    for i in 0..20 {
        let (st, v) = su.post(
            "/api/collections/notes/records",
            &json!({"title": format!("n{i}")}),
        );
        assert_eq!(st, 200, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    let mut got = Vec::new();
    for _ in &ids {
        let (name, data) = sse.next(Duration::from_secs(5)).expect("an event");
        assert_eq!(name, "notes/*");
        let v: Value = serde_json::from_str(&data).expect("json");
        assert_eq!(v["action"], "create");
        let id = v["record"]["id"].as_str().expect("id").to_string();
        let i = ids.iter().position(|x| *x == id).expect("a created id");
        assert_eq!(v["record"]["title"], json!(format!("n{i}")));
        got.push(id);
    }
    if is_reference() {
        // PocketBase sends each message from its own goroutine: any order.
        got.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want);
    } else {
        assert_eq!(got, ids, "events in commit order");
    }
    // The data is `{"record":…,"action":…}` in that order, as PocketBase's.
    let (st, _) = su.patch(
        &format!("/api/collections/notes/records/{}", ids[0]),
        &json!({"title": "x"}),
    );
    assert_eq!(st, 200);
    let (_, data) = sse.next(Duration::from_secs(5)).expect("the update");
    assert!(data.starts_with("{\"record\":{"), "{data}");
    assert!(data.ends_with(",\"action\":\"update\"}"), "{data}");
}

#[test]
fn connection_limits() {
    if is_reference() {
        return;
    }
    // Per IP: everything here comes from 127.0.0.1.
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_MAX_CLIENTS_PER_IP", "2")
        .start();
    let first = Sse::connect(&srv);
    let _second = Sse::connect(&srv);
    match Sse::open(&srv) {
        Opened::Refused(r) => {
            assert_eq!(r.status, 429);
            let v = r.json();
            assert_error_shape(&v, 429, "per-IP cap");
            assert_eq!(
                v["message"],
                "Too many realtime connections from your address, please try again later."
            );
            assert!(r.header("retry-after").is_some());
        }
        Opened::Stream(_) => panic!("a third stream from one IP was accepted"),
    }
    // Closing one frees its slot.
    drop(first);
    let reopened = wait_until(Duration::from_secs(5), || {
        matches!(Sse::open(&srv), Opened::Stream(_))
    });
    assert!(reopened, "a closed stream's slot was not freed");
    drop(srv);

    // In total.
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_MAX_CLIENTS", "2")
        .start();
    let _a = Sse::connect(&srv);
    let _b = Sse::connect(&srv);
    match Sse::open(&srv) {
        Opened::Refused(r) => {
            assert_eq!(r.status, 429);
            assert_eq!(
                r.json()["message"],
                "Too many realtime connections, please try again later."
            );
        }
        Opened::Stream(_) => panic!("a stream over the global cap was accepted"),
    }
    // Other requests are not affected.
    let (st, _) = srv.guest().get("/api/health");
    assert_eq!(st, 200);
}

#[test]
fn subscription_limits() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_MAX_SUBSCRIPTIONS", "4")
        .start();
    let sse = Sse::connect(&srv);
    // Up to the cap is fine.
    let (st, v) = sse.subscribe(&srv, None, &["a/*", "b/*", "c/*", "d/x"]);
    assert_eq!(st, 204, "{v}");
    // One more: 400 naming the limit.
    let (st, v) = sse.subscribe(&srv, None, &["a/*", "b/*", "c/*", "d/x", "e/*"]);
    assert_eq!(st, 400, "{v}");
    assert_error_shape(&v, 400, "too many subscriptions");
    assert_eq!(
        v["data"]["subscriptions"],
        json!({"code": "validation_length_too_long", "message": "The length must be no more than 4.", "params": {"max": 4, "min": 0}})
    );
    // A topic longer than 512 bytes.
    let long = format!("notes/*?options={}", "x".repeat(600));
    let (st, v) = sse.subscribe(&srv, None, &["a/*", &long]);
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["subscriptions"]["1"],
        json!({"code": "validation_length_too_long", "message": "The length must be no more than 512.", "params": {"max": 512, "min": 0}})
    );
    // A line break would split the SSE `event:` field.
    let (st, v) = sse.subscribe(&srv, None, &["a/*\nevent:PB_CONNECT"]);
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["subscriptions"]["0"]["code"],
        "validation_match_invalid"
    );
    // A body over 64 KiB.
    let big = json!({"clientId": sse.client_id, "subscriptions": ["x".repeat(70 * 1024)]});
    let r = srv.raw(
        "POST",
        "/api/realtime",
        &[],
        Some(big.to_string().as_bytes()),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_error_shape(&r.json(), 413, "realtime body cap");
    // The earlier, valid set is still in place: nothing was half-applied.
    let (st, v) = sse.subscribe(&srv, None, &[]);
    assert_eq!(st, 204, "{v}");
}

#[test]
fn protocol_errors_as_pocketbase() {
    let srv = TestServer::start();
    let (st, v) = srv.guest().post(
        "/api/realtime",
        &json!({"clientId": "nope", "subscriptions": []}),
    );
    assert_eq!(
        (st, v),
        (
            404,
            json!({"status": 404, "message": "Missing or invalid client id.", "data": {}})
        )
    );
    let (st, v) = srv
        .guest()
        .post("/api/realtime", &json!({"clientId": "x".repeat(256)}));
    assert_eq!(st, 400);
    assert_eq!(
        v["data"]["clientId"]["code"],
        "validation_length_out_of_range"
    );
    let (st, v) = srv.guest().post(
        "/api/realtime",
        &json!({"clientId": "x", "subscriptions": [1]}),
    );
    assert_eq!(st, 400);
    assert_eq!(v["data"], json!({}));
}

#[test]
fn keepalive_and_idle_timeout() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_KEEPALIVE_SECS", "1")
        .env("KEEPD_REALTIME_IDLE_TIMEOUT_SECS", "3")
        .start();
    let mut sse = Sse::connect(&srv);
    let started = Instant::now();
    assert!(
        sse.wait_closed(Duration::from_secs(10)),
        "the idle stream was not closed"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "closed too early: {took:?}"
    );
    let text = String::from_utf8_lossy(&sse.seen).to_string();
    assert!(
        text.matches(": keep-alive\n\n").count() >= 2,
        "no keep-alive comments: {text:?}"
    );
    // The closed client is gone from the broker.
    let (st, _) = sse.subscribe(&srv, None, &["a/*"]);
    assert_eq!(st, 404);
}

#[test]
fn slow_consumer_is_disconnected_others_keep_receiving() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_QUEUE", "4")
        .start();
    public_collection(&srv, "blobs");
    // The slow one subscribes and then never reads.
    let slow = Sse::connect(&srv);
    let (st, _) = slow.subscribe(&srv, None, &["blobs/*"]);
    assert_eq!(st, 204);
    let mut fast = Sse::connect(&srv);
    let (st, _) = fast.subscribe(&srv, None, &["blobs/*"]);
    assert_eq!(st, 204);
    // ~100 KiB per event, 150 events: far more than socket buffers hold.
    let total = 150;
    let filler = "y".repeat(100 * 1024);
    let addr = srv.addr;
    let token = srv.superuser_token();
    let writer = std::thread::spawn(move || {
        for i in 0..total {
            let body = json!({"title": format!("b{i}"), "body": filler}).to_string();
            let mut s = TcpStream::connect(addr).expect("connect");
            write!(
                s,
                "POST /api/collections/blobs/records HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("write");
            let r = read_response(&mut s).expect("response");
            assert_eq!(r.status, 200, "{}", r.text());
        }
    });
    let mut got = 0;
    while got < total {
        let (name, data) = fast
            .next(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the fast client stopped after {got} events"));
        assert_eq!(name, "blobs/*");
        let v: Value = serde_json::from_str(&data).expect("json");
        assert_eq!(v["record"]["title"], json!(format!("b{got}")));
        got += 1;
    }
    writer.join().expect("writer");
    // The slow client was dropped: its id is unknown, and its connection
    // ends once the bytes already in flight are read.
    let (st, v) = slow.subscribe(&srv, None, &["blobs/*"]);
    assert_eq!(st, 404, "the slow client is still registered: {v}");
    let mut slow = slow;
    assert!(
        slow.wait_closed(Duration::from_secs(20)),
        "the slow client's connection stays open"
    );
    // And the fast one still gets new events.
    let (st, _) = srv
        .su()
        .post("/api/collections/blobs/records", &json!({"title": "after"}));
    assert_eq!(st, 200);
    let (_, data) = fast.next(Duration::from_secs(5)).expect("event after");
    assert!(data.contains("\"after\""));
}

#[test]
fn cascade_delete_publishes_children_unset_references_then_parent() {
    let srv = TestServer::start();
    let p = srv.create_collection(&json!({
        "name": "parents", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    let pid = p["id"].as_str().expect("id");
    // Children are visible only through their parent: checked before the
    // parent is gone.
    srv.create_collection(&json!({
        "name": "kids", "type": "base", "listRule": "parent.title = 'p'", "viewRule": "",
        "fields": [{"name": "parent", "type": "relation", "collectionId": pid, "maxSelect": 1, "cascadeDelete": true}]
    }));
    srv.create_collection(&json!({
        "name": "refs", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "parent", "type": "relation", "collectionId": pid, "maxSelect": 1}]
    }));
    let su = srv.su();
    let (_, parent) = su.post("/api/collections/parents/records", &json!({"title": "p"}));
    let parent = parent["id"].as_str().expect("id").to_string();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let (st, v) = su.post("/api/collections/kids/records", &json!({"parent": parent}));
        assert_eq!(st, 200, "{v}");
        kids.push(v["id"].as_str().expect("id").to_string());
    }
    let (_, r) = su.post("/api/collections/refs/records", &json!({"parent": parent}));
    let r = r["id"].as_str().expect("id").to_string();
    let mut sse = Sse::connect(&srv);
    let (st, _) = sse.subscribe(&srv, None, &["parents/*", "kids/*", "refs/*"]);
    assert_eq!(st, 204);
    let (st, _) = su.delete(&format!("/api/collections/parents/records/{parent}"));
    assert_eq!(st, 204);
    let mut got = Vec::new();
    for _ in 0..4 {
        let (name, data) = sse.next(Duration::from_secs(5)).expect("an event");
        let v: Value = serde_json::from_str(&data).expect("json");
        got.push((
            name,
            v["action"].as_str().unwrap_or_default().to_string(),
            v["record"]["id"].as_str().unwrap_or_default().to_string(),
        ));
        if v["record"]["id"] == json!(r) {
            assert_eq!(v["record"]["parent"], "", "the reference is unset");
        }
    }
    let mut want = vec![
        ("kids/*".to_string(), "delete".to_string(), kids[0].clone()),
        ("kids/*".to_string(), "delete".to_string(), kids[1].clone()),
        ("refs/*".to_string(), "update".to_string(), r),
        ("parents/*".to_string(), "delete".to_string(), parent),
    ];
    if is_reference() {
        got.sort();
        want.sort();
    } else {
        // keepd: children first, then unset references, then the parent.
        got[..2].sort();
        want[..2].sort();
    }
    assert_eq!(got, want);
}

/// A fresh connection's first `GET /api/realtime` takes keepd's lean path;
/// the same request later on a keep-alive connection goes through the
/// general HTTP stack. Both answer alike.
#[test]
fn stream_on_a_reused_connection() {
    let srv = TestServer::start();
    let mut s = TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let r = read_response(&mut s).expect("health");
    assert_eq!(r.status, 200);
    write!(
        s,
        "GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("write");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&buf).contains("PB_CONNECT") && Instant::now() < until {
        let n = s.read(&mut tmp).expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&tmp[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("event:pb_connect"), "{text}");
    // And on a fresh connection, the lean path sends the same headers.
    let mut f = TcpStream::connect(srv.addr).expect("connect");
    f.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        f,
        "GET /api/realtime HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("write");
    let mut fbuf = Vec::new();
    while !String::from_utf8_lossy(&fbuf).contains("PB_CONNECT") && Instant::now() < until {
        let n = f.read(&mut tmp).expect("read");
        assert!(n > 0);
        fbuf.extend_from_slice(&tmp[..n]);
    }
    let head = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(|l| l.split(':').next().unwrap_or_default().to_ascii_lowercase())
            .filter(|n| n != "date")
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        head(&String::from_utf8_lossy(&fbuf)),
        head(&String::from_utf8_lossy(&buf)),
        "the two paths answer with different headers"
    );
}

/// Reads events until one arrives under `sentinel` (which must come: it was
/// committed after everything the caller wants to see, and each client gets
/// its events in commit order); returns the events before it.
fn events_before(sse: &mut Sse, sentinel: &str) -> Vec<Event> {
    let mut got = Vec::new();
    loop {
        let (name, data) = sse
            .next(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no {sentinel} sentinel; got before it: {got:?}"));
        if name == sentinel {
            return got;
        }
        got.push((name, data));
    }
}

/// The `record.title` of each event.
fn titles(events: &[Event]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .map(|(_, d)| {
            let v: Value = serde_json::from_str(d).expect("json");
            v["record"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// A non-superuser's subscription `filter` that goes through a relation
/// also applies the joined collection's list rule, as that subscriber (the
/// records API does the same for a list `filter`). Here each user may list
/// only the authors they own, and everyone subscribes with the same filter
/// on `author.name`: each receives exactly the posts their own filter
/// passes, whoever else listens.
#[test]
fn subscription_filter_through_a_relation_is_checked_per_subscriber() {
    let srv = TestServer::start();
    let (ua, ta) = srv.sign_up(&format!("{}@example.com", uniq("a")), "password-123");
    let (ub, tb) = srv.sign_up(&format!("{}@example.com", uniq("b")), "password-123");
    let (_, users) = srv.su().get("/api/collections/users");
    let users_id = users["id"].as_str().expect("users id").to_string();
    let authors = srv.create_collection(&json!({
        "name": "authors", "type": "base",
        "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
        "fields": [{"name": "name", "type": "text"},
                   {"name": "owner", "type": "relation", "collectionId": users_id, "maxSelect": 1}]
    }));
    let authors_id = authors["id"].as_str().expect("id");
    srv.create_collection(&json!({
        "name": "posts", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"},
                   {"name": "author", "type": "relation", "collectionId": authors_id, "maxSelect": 1}]
    }));
    public_collection(&srv, "marks");
    let su = srv.su();
    let author = |owner: &str| {
        let (st, v) = su.post(
            "/api/collections/authors/records",
            &json!({"name": "n", "owner": owner}),
        );
        assert_eq!(st, 200, "{v}");
        v["id"].as_str().expect("id").to_string()
    };
    let (aa, ab) = (author(&ua), author(&ub));

    let options = json!({"query": {"filter": "author.name = 'n'"}}).to_string();
    let topic = format!("posts/*?options={}", enc(&options));
    // Guests first, then b, then a: whichever subscriber an evaluation
    // would be shared from, someone else disagrees with it.
    let mut clients = Vec::new();
    for (who, token) in [("guest", None), ("b", Some(&tb)), ("a", Some(&ta))] {
        let sse = Sse::connect(&srv);
        let (st, v) = sse.subscribe(&srv, token.map(String::as_str), &[&topic, "marks/*"]);
        assert_eq!(st, 204, "{v}");
        clients.push((who, sse));
    }
    for (title, author) in [("by-b", ab.as_str()), ("by-a", aa.as_str()), ("none", "")] {
        let (st, v) = su.post(
            "/api/collections/posts/records",
            &json!({"title": title, "author": author}),
        );
        assert_eq!(st, 200, "{v}");
    }
    // The sentinel, committed after the posts.
    let (st, _) = su.post("/api/collections/marks/records", &json!({"title": "end"}));
    assert_eq!(st, 200);
    for (who, mut sse) in clients {
        let got = events_before(&mut sse, "marks/*");
        let want: Vec<String> = match who {
            "a" => vec!["by-a".into()],
            "b" => vec!["by-b".into()],
            _ => vec![],
        };
        assert_eq!(titles(&got), want, "{who} received: {got:?}");
        assert!(got.iter().all(|(name, _)| *name == topic), "{got:?}");
    }
    // The list API agrees, per caller.
    for (token, want) in [(&ta, "by-a"), (&tb, "by-b")] {
        let (st, v) = srv
            .with_token(token)
            .list("posts", &[("filter", "author.name = 'n'")]);
        assert_eq!(st, 200, "{v}");
        assert_eq!(column(&v, "title"), vec![want.to_string()]);
    }
}

/// The same through the subscription's options: the joined collection's
/// list rule reads `@request.headers`, which a subscription sets in its
/// `options.headers`; two guests whose filter is the same but whose headers
/// differ each get the events their own filter passes.
#[test]
fn subscription_filter_through_a_relation_reads_the_subscriptions_headers() {
    let srv = TestServer::start();
    let teams = srv.create_collection(&json!({
        "name": "teams", "type": "base",
        "listRule": "@request.headers.x_team = name", "viewRule": "",
        "fields": [{"name": "name", "type": "text"}]
    }));
    let teams_id = teams["id"].as_str().expect("id");
    srv.create_collection(&json!({
        "name": "tasks", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"},
                   {"name": "team", "type": "relation", "collectionId": teams_id, "maxSelect": 1}]
    }));
    public_collection(&srv, "marks");
    let su = srv.su();
    let mut team = std::collections::HashMap::new();
    for name in ["red", "blue"] {
        let (st, v) = su.post("/api/collections/teams/records", &json!({"name": name}));
        assert_eq!(st, 200, "{v}");
        team.insert(name, v["id"].as_str().expect("id").to_string());
    }
    let mut clients = Vec::new();
    for name in ["blue", "red"] {
        let options = json!({"query": {"filter": "team.name != ''"}, "headers": {"x_team": name}});
        let topic = format!("tasks/*?options={}", enc(&options.to_string()));
        let sse = Sse::connect(&srv);
        let (st, v) = sse.subscribe(&srv, None, &[&topic, "marks/*"]);
        assert_eq!(st, 204, "{v}");
        clients.push((name, sse));
    }
    for name in ["red", "blue"] {
        let (st, v) = su.post(
            "/api/collections/tasks/records",
            &json!({"title": format!("for-{name}"), "team": team[name]}),
        );
        assert_eq!(st, 200, "{v}");
    }
    let (st, _) = su.post("/api/collections/marks/records", &json!({"title": "end"}));
    assert_eq!(st, 200);
    for (name, mut sse) in clients {
        let got = events_before(&mut sse, "marks/*");
        assert_eq!(titles(&got), vec![format!("for-{name}")], "{name}: {got:?}");
    }
}

/// PocketBase sends no events for view collections (their records are
/// never saved); the source collection's events still go out.
#[test]
fn no_events_for_view_collections() {
    let srv = TestServer::start();
    public_collection(&srv, "notes");
    srv.create_collection(
        &json!({"name": "notes_view", "type": "view", "listRule": "",
        "viewRule": "", "viewQuery": "select id, title from notes"}),
    );
    let mut sse = Sse::connect(&srv);
    let (st, v) = sse.subscribe(&srv, None, &["notes_view/*", "notes/*"]);
    assert_eq!(st, 204, "{v}");
    let (st, v) = srv
        .su()
        .post("/api/collections/notes/records", &json!({"title": "a"}));
    assert_eq!(st, 200, "{v}");
    let (name, _) = sse
        .next(Duration::from_secs(5))
        .expect("the source's event");
    assert_eq!(name, "notes/*");
    assert!(
        sse.next(Duration::from_millis(500)).is_none(),
        "no event for the view"
    );
}

/// One event, many subscribers with different identities: each gets the
/// record as *they* may see it, or nothing when the rule refuses them. A
/// rule that reads `@request.auth.id` lets signed-in users through and no
/// guest; hidden fields reach only the superuser; a subscription's own
/// `fields` option applies to that subscription only; on an auth
/// collection, the email (not visible) reaches only its owner.
#[test]
fn one_event_rendered_per_subscriber_identity() {
    let srv = TestServer::start();
    let (ua, ta) = srv.sign_up(&format!("{}@example.com", uniq("a")), "password-123");
    let (_, tb) = srv.sign_up(&format!("{}@example.com", uniq("b")), "password-123");
    let su_token = srv.superuser_token();
    srv.create_collection(&json!({
        "name": "notes", "type": "base",
        "listRule": "@request.auth.id != \"\"", "viewRule": "@request.auth.id != \"\"",
        "fields": [{"name": "title", "type": "text"},
                   {"name": "secret", "type": "text", "hidden": true}]
    }));
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"listRule": "@request.auth.id != \"\"", "viewRule": "@request.auth.id != \"\""}),
    );
    assert_eq!(st, 200, "{v}");
    public_collection(&srv, "marks");
    let only_title = format!(
        "notes/*?options={}",
        enc(&json!({"query": {"fields": "title"}}).to_string())
    );
    let mut clients = Vec::new();
    for (who, token, topics) in [
        ("guest", None, vec!["notes/*", "users/*", "marks/*"]),
        ("a", Some(&ta), vec!["notes/*", "users/*", "marks/*"]),
        ("b", Some(&tb), vec!["notes/*", "users/*", "marks/*"]),
        ("su", Some(&su_token), vec!["notes/*", "users/*", "marks/*"]),
        ("a-title", Some(&ta), vec![only_title.as_str(), "marks/*"]),
    ] {
        let sse = Sse::connect(&srv);
        let (st, v) = sse.subscribe(&srv, token.map(String::as_str), &topics);
        assert_eq!(st, 204, "{who}: {v}");
        clients.push((who, sse));
    }
    let su = srv.su();
    let (st, note) = su.post(
        "/api/collections/notes/records",
        &json!({"title": "t", "secret": "s"}),
    );
    assert_eq!(st, 200, "{note}");
    let (st, v) = su.patch(
        &format!("/api/collections/users/records/{ua}"),
        &json!({"name": "renamed"}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, _) = su.post("/api/collections/marks/records", &json!({"title": "end"}));
    assert_eq!(st, 200);
    for (who, mut sse) in clients {
        let got = events_before(&mut sse, "marks/*");
        let parsed: Vec<(String, Value)> = got
            .iter()
            .map(|(n, d)| (n.clone(), serde_json::from_str(d).expect("json")))
            .collect();
        let notes: Vec<&Value> = parsed
            .iter()
            .filter(|(n, _)| n.starts_with("notes/"))
            .map(|(_, v)| &v["record"])
            .collect();
        let users: Vec<&Value> = parsed
            .iter()
            .filter(|(n, _)| n == "users/*")
            .map(|(_, v)| &v["record"])
            .collect();
        match who {
            "guest" => assert!(got.is_empty(), "a refused guest got {got:?}"),
            "a-title" => {
                assert_eq!(notes.len(), 1, "{got:?}");
                assert_eq!(*notes[0], json!({"title": "t"}), "{got:?}");
            }
            _ => {
                assert_eq!(notes.len(), 1, "{who}: {got:?}");
                assert_eq!(notes[0]["title"], "t");
                assert_eq!(notes[0]["id"], note["id"]);
                let sees_secret = notes[0].get("secret").is_some();
                assert_eq!(sees_secret, who == "su", "{who}: {got:?}");
                assert_eq!(users.len(), 1, "{who}: {got:?}");
                assert_eq!(users[0]["name"], "renamed");
                let sees_email = users[0]
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| !e.is_empty());
                assert_eq!(sees_email, who != "b", "{who}: {got:?}");
                assert!(users[0].get("tokenKey").is_none() && users[0].get("password").is_none());
            }
        }
    }
}
