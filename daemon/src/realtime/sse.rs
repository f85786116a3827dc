//! The Server-Sent Events transport: a client's queue as a stream of SSE
//! frames, as PocketBase writes them:
//!
//! ```text
//! id:<clientId>
//! event:<topic as subscribed, or PB_CONNECT>
//! data:<json>
//!
//! ```
//!
//! The first frame is `PB_CONNECT` with `{"clientId":"..."}` (the SDK reads
//! the client id from the `id:` line). Keep-alive comments (`: keep-alive`)
//! go out on a quiet stream so that proxies keep it open; the stream ends
//! after `idle` without an event and after `max_life` in any case (the SDK
//! reconnects and resubscribes, as with PocketBase's 5/30-minute timeouts),
//! and when the client is disconnected.

use super::broker::{Msg, Registration};
use bytes::Bytes;
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Interval, Sleep};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Between keep-alive comments; None: never.
    pub keepalive: Option<Duration>,
    pub idle: Duration,
    pub max_life: Duration,
}

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Where the data lies in a frame tail of `event` of `len` bytes.
pub fn tail_data_range(event: &str, len: usize) -> (usize, usize) {
    let start = (b"\nevent:".len() + event.len() + b"\ndata:".len()).min(len);
    (start, len.saturating_sub(2).max(start))
}

/// An SSE frame after its `id:` line: the same for every client.
pub fn frame_tail(event: &str, data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(event.len() + data.len() + 15);
    b.extend_from_slice(b"\nevent:");
    b.extend_from_slice(event.as_bytes());
    b.extend_from_slice(b"\ndata:");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

/// One SSE frame.
pub fn frame(id: &str, event: &str, data: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(id.len() + event.len() + data.len() + 20);
    b.extend_from_slice(b"id:");
    b.extend_from_slice(id.as_bytes());
    b.extend_from_slice(b"\nevent:");
    b.extend_from_slice(event.as_bytes());
    b.extend_from_slice(b"\ndata:");
    b.extend_from_slice(data);
    b.extend_from_slice(b"\n\n");
    Bytes::from(b)
}

struct State {
    reg: Registration,
    connected: bool,
    keepalive: Option<Interval>,
    idle: Duration,
    /// When the last event went out (the idle limit counts from it).
    last: Instant,
    /// Fires at the idle limit as last armed; when it fires early (events
    /// went out since), it is re-armed from `last`. An event itself touches
    /// no timer.
    idle_timer: Pin<Box<Sleep>>,
    end_timer: Pin<Box<Sleep>>,
    /// Resolves when the client is disconnected (made once: its waker
    /// stays registered across events).
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// `id:<client id>`, the first part of every event's frame.
    id_line: Bytes,
    /// The rest of an event's frame, due next (an event goes out as its
    /// `id:` line, then its shared tail: nothing copied per client).
    tail: Option<Bytes>,
}

/// The client's event stream. Dropping it (the connection closed)
/// unregisters the client.
pub fn stream(reg: Registration, opts: StreamOptions) -> impl Stream<Item = Bytes> + Send {
    let now = Instant::now();
    let mut closed_rx = reg.closed.clone();
    let id_line = Bytes::from(format!("id:{}", reg.id));
    let st = State {
        id_line,
        tail: None,
        closed: Box::pin(async move {
            let _ = closed_rx.wait_for(|closed| *closed).await;
        }),
        reg,
        connected: false,
        keepalive: opts.keepalive.filter(|d| !d.is_zero()).map(|every| {
            let mut i = tokio::time::interval_at(now + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        }),
        idle: opts.idle,
        last: now,
        idle_timer: Box::pin(tokio::time::sleep_until(now + opts.idle)),
        end_timer: Box::pin(tokio::time::sleep_until(now + opts.max_life)),
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if let Some(tail) = st.tail.take() {
            return Some((tail, st));
        }
        if !st.connected {
            st.connected = true;
            let data = format!("{{\"clientId\":\"{}\"}}", st.reg.id);
            let f = frame(&st.reg.id, "PB_CONNECT", data.as_bytes());
            return Some((f, st));
        }
        loop {
            let next = {
                let State {
                    reg,
                    keepalive,
                    idle_timer,
                    end_timer,
                    closed,
                    ..
                } = &mut st;
                let tick = async {
                    match keepalive {
                        Some(i) => {
                            i.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    // Closing and the lifetime first: a client that always
                    // has an event waiting still ends.
                    biased;
                    _ = closed.as_mut() => Next::End,
                    _ = end_timer.as_mut() => Next::End,
                    m = reg.rx.recv() => m.map(Next::Msg).unwrap_or(Next::End),
                    _ = idle_timer.as_mut() => Next::Idle,
                    _ = tick => Next::KeepAlive,
                }
            };
            match next {
                Next::Msg(m) => {
                    st.last = Instant::now();
                    st.tail = Some(m.tail.clone());
                    return Some((st.id_line.clone(), st));
                }
                Next::KeepAlive => return Some((Bytes::from_static(KEEPALIVE), st)),
                Next::Idle => {
                    let due = st.last + st.idle;
                    if Instant::now() >= due {
                        return None;
                    }
                    st.idle_timer.as_mut().reset(due);
                }
                Next::End => return None,
            }
        }
    })
}

enum Next {
    Msg(Msg),
    KeepAlive,
    /// The idle timer fired (the stream may have been active since).
    Idle,
    End,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event goes out as the client's `id:` line and the shared tail,
    /// which together are the frame.
    #[tokio::test]
    async fn event_is_id_line_then_shared_tail() {
        use super::super::broker::{Broker, Limits};
        use futures_util::StreamExt;
        let b = Broker::new(Limits {
            max_clients: 4,
            max_clients_per_ip: 4,
            max_subscriptions: 4,
            queue: 4,
            queue_bytes: 1 << 16,
            total_queue_bytes: 1 << 20,
        });
        let ip: std::net::IpAddr = [127, 0, 0, 1].into();
        let reg = b
            .register(
                ip,
                std::sync::Arc::new(tokio::sync::watch::channel(false).0),
            )
            .expect("register");
        let id = reg.id.to_string();
        b.set_subscriptions(&id, ip, crate::auth::Identity::Guest, &["t".to_string()])
            .expect("subscribe");
        let opts = StreamOptions {
            keepalive: None,
            idle: Duration::from_secs(60),
            max_life: Duration::from_secs(60),
        };
        let mut s = Box::pin(stream(reg, opts));
        let connect = s.next().await.expect("PB_CONNECT");
        assert!(connect.starts_with(format!("id:{id}\nevent:PB_CONNECT\ndata:").as_bytes()));
        assert!(b.send_direct(&id, ip, "t", Bytes::from_static(b"{\"a\":1}")));
        let head = s.next().await.expect("id line");
        let tail = s.next().await.expect("tail");
        let mut whole = head.to_vec();
        whole.extend_from_slice(&tail);
        assert_eq!(&whole[..], &frame(&id, "t", br#"{"a":1}"#)[..]);
    }

    #[test]
    fn frame_format() {
        assert_eq!(
            &frame("abc", "posts/*", br#"{"a":1}"#)[..],
            b"id:abc\nevent:posts/*\ndata:{\"a\":1}\n\n"
        );
    }
}
