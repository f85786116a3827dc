//! Realtime over WebSocket (keepd's transport beside PocketBase's SSE): the
//! same registration, topics, rules and limits. A plain `tungstenite`
//! client over a `TcpStream` talks to the real daemon.
//!
//! PocketBase has no WebSocket transport: every test here is skipped when
//! `KEEPD_TEST_BIN` points at PocketBase.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn open(srv: &TestServer) -> Result<Ws, tungstenite::Error> {
    let s = TcpStream::connect(srv.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let url = format!("ws://{}/api/realtime", srv.addr);
    tungstenite::client(url.as_str(), s)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => {
                panic!("handshake interrupted")
            }
        })
}

/// The next JSON text frame (pings are answered by tungstenite itself).
fn next(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).expect("json")),
            Ok(Message::Close(_)) => return None,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return None,
        }
    }
    None
}

/// Opens a socket and reads PB_CONNECT: (socket, client id).
fn connect(srv: &TestServer) -> (Ws, String) {
    let mut ws = open(srv).expect("handshake");
    let hello = next(&mut ws, Duration::from_secs(5)).expect("PB_CONNECT");
    assert_eq!(hello["event"], "PB_CONNECT", "{hello}");
    let id = hello["data"]["clientId"]
        .as_str()
        .expect("clientId")
        .to_string();
    assert_eq!(hello["id"], json!(id));
    assert_eq!(id.len(), 40);
    (ws, id)
}

fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).expect("send");
}

fn collection(srv: &TestServer) {
    srv.create_collection(&json!({
        "name": "notes", "type": "base",
        "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }));
    // Readable only by its owner.
    srv.create_collection(&json!({
        "name": "secrets", "type": "base",
        "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
        "fields": [{"name": "title", "type": "text"}, {"name": "owner", "type": "text"}]
    }));
}

#[test]
fn subscribe_in_band_and_receive_events() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    collection(&srv);
    let (mut ws, id) = connect(&srv);
    send(&mut ws, &json!({"subscriptions": ["notes/*"]}));
    let ack = next(&mut ws, Duration::from_secs(5)).expect("ack");
    assert_eq!(
        ack,
        json!({"id": id, "event": "PB_SUBSCRIBED", "data": {"subscriptions": ["notes/*"]}})
    );
    let su = srv.su();
    let (st, rec) = su.post("/api/collections/notes/records", &json!({"title": "one"}));
    assert_eq!(st, 200, "{rec}");
    let ev = next(&mut ws, Duration::from_secs(5)).expect("create event");
    assert_eq!(ev["id"], json!(id));
    assert_eq!(ev["event"], "notes/*");
    assert_eq!(ev["data"]["action"], "create");
    assert_eq!(ev["data"]["record"]["id"], rec["id"]);
    assert_eq!(ev["data"]["record"]["title"], "one");
    let rid = rec["id"].as_str().expect("id");
    let (st, _) = su.patch(
        &format!("/api/collections/notes/records/{rid}"),
        &json!({"title": "two"}),
    );
    assert_eq!(st, 200);
    let ev = next(&mut ws, Duration::from_secs(5)).expect("update event");
    assert_eq!(ev["data"]["action"], "update");
    assert_eq!(ev["data"]["record"]["title"], "two");
    let (st, _) = su.delete(&format!("/api/collections/notes/records/{rid}"));
    assert_eq!(st, 204);
    let ev = next(&mut ws, Duration::from_secs(5)).expect("delete event");
    assert_eq!(ev["data"]["action"], "delete");
    assert_eq!(ev["data"]["record"]["id"], rec["id"]);

    // PocketBase's POST /api/realtime works for a WebSocket client too.
    let (st, v) = srv.guest().post(
        "/api/realtime",
        &json!({"clientId": id, "subscriptions": ["notes/*?options={\"query\":{\"fields\":\"title\"}}"]}),
    );
    assert_eq!(st, 204, "{v}");
    su.post("/api/collections/notes/records", &json!({"title": "three"}));
    let ev = next(&mut ws, Duration::from_secs(5)).expect("event after POST");
    assert_eq!(
        ev["event"],
        "notes/*?options={\"query\":{\"fields\":\"title\"}}"
    );
    assert_eq!(ev["data"]["record"], json!({"title": "three"}));
}

#[test]
fn events_follow_the_rules_of_the_socket_auth() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    collection(&srv);
    let (a_id, a_token) = srv.sign_up("a@example.com", "password-a-123");
    let (_, b_token) = srv.sign_up("b@example.com", "password-b-123");
    let (mut wa, _) = connect(&srv);
    // Each also listens to the public `notes`: the sentinel.
    send(
        &mut wa,
        &json!({"subscriptions": ["secrets/*", "notes/*"], "authorization": a_token}),
    );
    assert_eq!(
        next(&mut wa, Duration::from_secs(5)).expect("ack")["event"],
        "PB_SUBSCRIBED"
    );
    let (mut wb, _) = connect(&srv);
    send(
        &mut wb,
        &json!({"subscriptions": ["secrets/*", "notes/*"], "authorization": b_token}),
    );
    assert_eq!(
        next(&mut wb, Duration::from_secs(5)).expect("ack")["event"],
        "PB_SUBSCRIBED"
    );
    let su = srv.su();
    let (st, _) = su.post(
        "/api/collections/secrets/records",
        &json!({"title": "for a", "owner": a_id}),
    );
    assert_eq!(st, 200);
    // A secret nobody owns: neither may list it.
    let (st, _) = su.post(
        "/api/collections/secrets/records",
        &json!({"title": "nobody's", "owner": ""}),
    );
    assert_eq!(st, 200);
    // The sentinel, committed last: each client gets its events in commit
    // order, so whatever came before it has arrived by then.
    let (st, _) = su.post("/api/collections/notes/records", &json!({"title": "end"}));
    assert_eq!(st, 200);
    let ev = next(&mut wa, Duration::from_secs(5)).expect("A's event");
    assert_eq!(ev["event"], "secrets/*", "{ev}");
    assert_eq!(ev["data"]["record"]["title"], "for a");
    let ev = next(&mut wa, Duration::from_secs(5)).expect("A's sentinel");
    assert_eq!(
        ev["event"], "notes/*",
        "A received a secret it cannot list: {ev}"
    );
    // B's auth fails the list rule for both secrets: its first event is the
    // sentinel.
    let ev = next(&mut wb, Duration::from_secs(5)).expect("B's sentinel");
    assert_eq!(
        ev["event"], "notes/*",
        "B received a secret it cannot list: {ev}"
    );
    assert_eq!(ev["data"]["record"]["title"], "end");
    // Switching the socket to another user's auth is refused.
    send(
        &mut wb,
        &json!({"subscriptions": ["secrets/*"], "authorization": a_token}),
    );
    let err = next(&mut wb, Duration::from_secs(5)).expect("error");
    assert_eq!(err["event"], "PB_ERROR");
    assert_eq!(err["data"]["status"], 403);
    assert_eq!(
        err["data"]["message"],
        "The current and the previous request authorization don't match."
    );
}

#[test]
fn limits_and_bad_messages_get_clear_errors() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_MAX_SUBSCRIPTIONS", "2")
        .env("KEEPD_REALTIME_MAX_TOPIC_LEN", "32")
        .env("KEEPD_REALTIME_MAX_CLIENTS_PER_IP", "2")
        .env("KEEPD_REALTIME_MAX_BODY_BYTES", "4096")
        .start();
    collection(&srv);
    let (mut ws, _) = connect(&srv);
    // Too many subscriptions.
    send(&mut ws, &json!({"subscriptions": ["a/*", "b/*", "c/*"]}));
    let err = next(&mut ws, Duration::from_secs(5)).expect("error");
    assert_eq!(err["event"], "PB_ERROR");
    assert_eq!(err["data"]["status"], 400);
    assert_eq!(
        err["data"]["data"]["subscriptions"]["code"],
        "validation_length_too_long"
    );
    // A topic over the length limit.
    let long = format!("notes/{}", "x".repeat(40));
    send(&mut ws, &json!({"subscriptions": [long]}));
    let err = next(&mut ws, Duration::from_secs(5)).expect("error");
    assert_eq!(
        err["data"]["data"]["subscriptions"]["0"]["code"],
        "validation_length_too_long"
    );
    // Not JSON, or not an object.
    for bad in ["nope", "[1,2]", "{\"subscriptions\": 5}"] {
        ws.send(Message::text(bad)).expect("send");
        let err = next(&mut ws, Duration::from_secs(5)).expect("error");
        assert_eq!(err["event"], "PB_ERROR", "{bad}");
        assert_eq!(err["data"]["status"], 400, "{bad}");
        assert_eq!(
            err["data"]["message"],
            "Something went wrong while processing your request."
        );
    }
    // The socket still works after errors.
    send(&mut ws, &json!({"subscriptions": ["notes/*"]}));
    assert_eq!(
        next(&mut ws, Duration::from_secs(5)).expect("ack")["event"],
        "PB_SUBSCRIBED"
    );

    // Per-IP cap shared with SSE: the third connection is refused with 429.
    let (_second, _) = connect(&srv);
    match open(&srv) {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429);
            assert!(resp.headers().get("retry-after").is_some());
            let body: Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).expect("json");
            assert_eq!(
                body["message"],
                "Too many realtime connections from your address, please try again later."
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a third connection from one IP was accepted"),
    }

    // A message over the size limit closes the socket with 1009.
    ws.send(Message::text("x".repeat(8192))).expect("send");
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(f)) => break f.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    assert_eq!(closed, Some(CloseCode::Size));
}

#[test]
fn bad_handshakes_are_refused_in_pocketbase_shape() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    for (name, headers) in [
        (
            "wrong version",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ),
        (
            "bad key",
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n",
        ),
        (
            "no connection upgrade",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ),
    ] {
        let mut s = TcpStream::connect(srv.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        write!(
            s,
            "GET /api/realtime HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\n\r\n"
        )
        .expect("write");
        let r = read_response(&mut s).expect("response");
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert_error_shape(&r.json(), 400, name);
    }
    // A refused handshake registered no client: the cap is untouched.
    let mut buf = [0u8; 1];
    let _ = TcpStream::connect(srv.addr).map(|mut s| s.read(&mut buf));
    let (_ws, _) = connect(&srv);
}

#[test]
fn shutdown_closes_sockets() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (mut ws, _) = connect(&srv);
    let pid = srv.pid();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -TERM {pid}: {st}");
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(f)) => break f.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    assert_eq!(closed, Some(CloseCode::Away));
}

#[test]
fn slow_consumer_is_dropped_others_keep_receiving() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_REALTIME_QUEUE", "4")
        .start();
    srv.create_collection(&json!({
        "name": "blobs", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "body", "type": "editor"}]
    }));
    // The slow one subscribes and then never reads.
    let (mut slow, slow_id) = connect(&srv);
    send(&mut slow, &json!({"subscriptions": ["blobs/*"]}));
    assert_eq!(
        next(&mut slow, Duration::from_secs(5)).expect("ack")["event"],
        "PB_SUBSCRIBED"
    );
    let (mut fast, _) = connect(&srv);
    send(&mut fast, &json!({"subscriptions": ["blobs/*"]}));
    assert_eq!(
        next(&mut fast, Duration::from_secs(5)).expect("ack")["event"],
        "PB_SUBSCRIBED"
    );
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
    for i in 0..total {
        let ev = next(&mut fast, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the fast client stopped after {i} events"));
        assert_eq!(ev["data"]["record"]["title"], json!(format!("b{i}")));
    }
    writer.join().expect("writer");
    // The slow client was dropped: its id is unknown to the broker...
    let (st, v) = srv.guest().post(
        "/api/realtime",
        &json!({"clientId": slow_id, "subscriptions": ["blobs/*"]}),
    );
    assert_eq!(st, 404, "the slow client is still registered: {v}");
    // ...and its socket ends once what was in flight is read.
    let until = Instant::now() + Duration::from_secs(30);
    let mut ended = false;
    while Instant::now() < until {
        match slow.read() {
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {
                ended = true;
                break;
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the slow client's socket stays open");
}
