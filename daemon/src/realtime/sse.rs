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
use std::time::Duration;
use tokio::time::{Instant, Interval};

#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Between keep-alive comments; None: never.
    pub keepalive: Option<Duration>,
    pub idle: Duration,
    pub max_life: Duration,
}

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

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
    idle_until: Instant,
    end: Instant,
}

/// The client's event stream. Dropping it (the connection closed)
/// unregisters the client.
pub fn stream(reg: Registration, opts: StreamOptions) -> impl Stream<Item = Bytes> + Send {
    let now = Instant::now();
    let st = State {
        reg,
        connected: false,
        keepalive: opts.keepalive.filter(|d| !d.is_zero()).map(|every| {
            let mut i = tokio::time::interval_at(now + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        }),
        idle: opts.idle,
        idle_until: now + opts.idle,
        end: now + opts.max_life,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        if !st.connected {
            st.connected = true;
            let data = format!("{{\"clientId\":\"{}\"}}", st.reg.id);
            let f = frame(&st.reg.id, "PB_CONNECT", data.as_bytes());
            return Some((f, st));
        }
        let next = {
            let State {
                reg,
                keepalive,
                idle_until,
                end,
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
                m = reg.rx.recv() => m.map(Next::Msg).unwrap_or(Next::End),
                _ = tick => Next::KeepAlive,
                _ = tokio::time::sleep_until(*idle_until) => Next::End,
                _ = tokio::time::sleep_until(*end) => Next::End,
                _ = until_closed(&mut reg.closed) => Next::End,
            }
        };
        match next {
            Next::Msg(m) => {
                st.idle_until = Instant::now() + st.idle;
                let f = frame(&st.reg.id, &m.name, &m.data);
                Some((f, st))
            }
            Next::KeepAlive => Some((Bytes::from_static(KEEPALIVE), st)),
            Next::End => None,
        }
    })
}

async fn until_closed(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|closed| *closed).await;
}

enum Next {
    Msg(Msg),
    KeepAlive,
    End,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_format() {
        assert_eq!(
            &frame("abc", "posts/*", br#"{"a":1}"#)[..],
            b"id:abc\nevent:posts/*\ndata:{\"a\":1}\n\n"
        );
    }
}
