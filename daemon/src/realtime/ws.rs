//! The WebSocket transport: the same client registration, topics, auth and
//! limits as the SSE stream, over one WebSocket (browsers cap SSE
//! connections per host; a WebSocket also carries the subscription
//! requests, so a client needs no second HTTP request).
//!
//! Frames are JSON text messages:
//!
//! ```text
//! server → client  {"id":"<clientId>","event":"PB_CONNECT","data":{"clientId":"…"}}
//! server → client  {"id":"<clientId>","event":"<topic as subscribed>","data":{"action":…,"record":…}}
//! client → server  {"subscriptions":["posts/*", …], "authorization":"<token>"}
//! server → client  {"id":"<clientId>","event":"PB_SUBSCRIBED","data":{"subscriptions":[…]}}
//! server → client  {"id":"<clientId>","event":"PB_ERROR","data":{"status":…,"message":…,"data":{…}}}
//! ```
//!
//! `POST /api/realtime {clientId, subscriptions}` works for a WebSocket
//! client too. Pings go out every keep-alive interval; a client that sends
//! nothing (not even a pong) for the idle time is closed, as is every
//! client after the maximum lifetime or when the broker drops it (its queue
//! filled). Messages larger than the realtime body limit close the socket
//! with 1009 (message too big).

use super::broker::Registration;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Between pings; None: never.
    pub keepalive: Option<Duration>,
    /// Closed when nothing arrives from the client for this long.
    pub idle: Duration,
    pub max_life: Duration,
    /// Largest message a client may send.
    pub max_message: usize,
}

/// The accept key of a handshake (`Sec-WebSocket-Accept` for a
/// `Sec-WebSocket-Key`).
pub fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// One server frame.
pub fn frame(id: &str, event: &str, data: &[u8]) -> String {
    let mut s = String::with_capacity(id.len() + event.len() + data.len() + 32);
    s.push_str("{\"id\":");
    s.push_str(&Value::String(id.to_string()).to_string());
    s.push_str(",\"event\":");
    s.push_str(&Value::String(event.to_string()).to_string());
    s.push_str(",\"data\":");
    s.push_str(std::str::from_utf8(data).unwrap_or("null"));
    s.push('}');
    s
}

/// Runs the client's socket until it closes. `on_text` handles a client
/// message (a subscription request) and answers with the event name and
/// JSON data to send back.
pub async fn run<S, F, Fut>(reg: Registration, io: S, opts: WsOptions, on_text: F)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: Fn(String) -> Fut + Send,
    Fut: Future<Output = (&'static str, Vec<u8>)> + Send,
{
    // Small buffers (the defaults are 128 KiB each, per socket): clients
    // send only small subscription requests, and every message we send is
    // flushed at once (each send is awaited: the write buffer never holds
    // more than one message).
    let mut cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    cfg.max_message_size = Some(opts.max_message);
    cfg.max_frame_size = Some(opts.max_message);
    let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(cfg)).await;
    let mut reg = reg;
    let mut closed = reg.closed.clone();
    // The session races the close switch, so that a client that stopped
    // reading (a send blocked on its full socket) is dropped all the same.
    let ended = tokio::select! {
        e = session(&mut ws, &mut reg, &opts, &on_text) => e,
        _ = until_closed(&mut closed) => End::Close(CloseCode::Away, "disconnected"),
    };
    if let End::Close(code, why) = ended {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: why.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.send(frame)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// How a session ended: with a close frame to send, or the socket gone.
enum End {
    Close(CloseCode, &'static str),
    Gone,
}

async fn session<S, F, Fut>(
    ws: &mut WebSocketStream<S>,
    reg: &mut Registration,
    opts: &WsOptions,
    on_text: &F,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    F: Fn(String) -> Fut + Send,
    Fut: Future<Output = (&'static str, Vec<u8>)> + Send,
{
    let id = reg.id.clone();
    let hello = format!("{{\"clientId\":\"{id}\"}}");
    if ws
        .send(Message::text(frame(&id, "PB_CONNECT", hello.as_bytes())))
        .await
        .is_err()
    {
        return End::Gone;
    }
    let now = Instant::now();
    let end = now + opts.max_life;
    let mut idle_until = now + opts.idle;
    let mut ping = opts.keepalive.filter(|d| !d.is_zero()).map(|every| {
        let mut i = tokio::time::interval_at(now + every, every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    loop {
        let tick = async {
            match ping.as_mut() {
                Some(i) => {
                    i.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            m = reg.rx.recv() => match m {
                Some(m) => {
                    if ws.send(Message::text(frame(&id, &m.name, &m.data))).await.is_err() {
                        return End::Gone;
                    }
                }
                None => return End::Close(CloseCode::Away, "disconnected"),
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    idle_until = Instant::now() + opts.idle;
                    let (event, data) = on_text(t.as_str().to_string()).await;
                    if ws.send(Message::text(frame(&id, event, &data))).await.is_err() {
                        return End::Gone;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    return End::Close(CloseCode::Unsupported, "text frames only");
                }
                Some(Ok(Message::Close(_))) | None => return End::Gone,
                Some(Ok(_)) => idle_until = Instant::now() + opts.idle,
                Some(Err(e)) => {
                    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
                    if matches!(e, Error::Capacity(CapacityError::MessageTooLong { .. })) {
                        return End::Close(CloseCode::Size, "message too big");
                    }
                    return End::Gone;
                }
            },
            _ = tick => {
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    return End::Gone;
                }
            }
            _ = tokio::time::sleep_until(idle_until) => return End::Close(CloseCode::Away, "idle"),
            _ = tokio::time::sleep_until(end) => return End::Close(CloseCode::Away, "lifetime"),
        }
    }
}

async fn until_closed(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|closed| *closed).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_json() {
        let f = frame("abc", "posts/*", br#"{"a":1}"#);
        let v: Value = serde_json::from_str(&f).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"id": "abc", "event": "posts/*", "data": {"a": 1}})
        );
        // A topic with quotes stays one JSON string.
        let f = frame("abc", "a\"b", b"{}");
        let v: Value = serde_json::from_str(&f).expect("json");
        assert_eq!(v["event"], "a\"b");
    }

    #[test]
    fn accept_key_is_rfc6455() {
        // The example from RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
