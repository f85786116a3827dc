//! A lean path for the commonest long-lived connection: a fresh connection
//! whose first request is a GET of the event-stream route (keepd's `GET
//! /api/realtime`, an SSE stream).
//!
//! hyper keeps two 8 KiB buffers per connection for as long as it lives
//! (the read buffer and the response-head buffer) — most of what an idle
//! realtime client would cost. Here the first request head is peeked from
//! the socket without consuming it; when it is a complete, body-less GET
//! of that route without `Upgrade`, the head is consumed, the same steps
//! as any request run (identity, address, admission, the route's handler
//! under the same panic guard), and the answer is written straight to the
//! socket (the event stream as chunked frames). Anything else — and every
//! later request of a keep-alive connection — goes to hyper untouched.

use super::{ConnPermit, Req, Resp, Server, Site};
use futures_util::{FutureExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The largest head taken on this path (larger ones go to hyper).
const MAX_HEAD: usize = 4096;
const MAX_HEADERS: usize = 32;

/// What the first peek showed.
pub(crate) enum First {
    /// An event-stream request: its head length and parsed parts.
    EventStream(usize, Box<hyper::http::request::Parts>),
    /// Anything else (or nothing yet): hyper serves the connection.
    Other,
}

/// Peeks at the first bytes of a connection (waiting up to `timeout` for
/// them) and says whether it is a GET of `event_path`.
pub(crate) async fn classify(
    stream: &TcpStream,
    timeout: Duration,
    event_path: Option<&'static str>,
) -> Option<First> {
    // On the heap, freed after the peek: the connection's task keeps no
    // room for it while the stream lives.
    let mut buf = vec![0u8; MAX_HEAD];
    let n = match tokio::time::timeout(timeout, stream.peek(&mut buf)).await {
        Ok(Ok(n)) => n,
        // Nothing within the header timeout, or a broken socket: close.
        Ok(Err(_)) | Err(_) => return None,
    };
    let head = &buf[..n];
    let Some(path) = event_path else {
        return Some(First::Other);
    };
    if n == 0 || !head.starts_with(b"GET ") || !head[4..].starts_with(path.as_bytes()) {
        return Some(First::Other);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return Some(First::Other),
    };
    let target = req.path.unwrap_or_default();
    if req.method != Some("GET") || req.version != Some(1) {
        return Some(First::Other);
    }
    let exact = target
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'));
    if !exact {
        return Some(First::Other);
    }
    let mut b = hyper::Request::builder()
        .method(hyper::Method::GET)
        .uri(target);
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let has_body = (name == "content-length" && h.value != b"0") || name == "transfer-encoding";
        if has_body || name == "upgrade" {
            return Some(First::Other);
        }
        b = b.header(h.name, h.value);
    }
    match b.body(()) {
        Ok(r) => Some(First::EventStream(len, Box::new(r.into_parts().0))),
        Err(_) => Some(First::Other),
    }
}

/// Serves a classified event-stream request on the raw socket.
pub(crate) async fn serve<S: Site>(
    srv: Arc<Server<S>>,
    mut stream: TcpStream,
    head_len: usize,
    parts: Box<hyper::http::request::Parts>,
    peer: SocketAddr,
    permit: ConnPermit,
) {
    // Consume the head that was peeked.
    let mut head = vec![0u8; head_len];
    if stream.read_exact(&mut head).await.is_err() {
        return;
    }
    drop(head);
    let (closer, mut closed) = watch::channel(false);
    let closer = Arc::new(closer);
    let mut parts = *parts;
    parts.extensions.insert(permit.clone());
    let found = srv.router.find(&parts.method, parts.uri.path());
    let resp = match super::admit(&srv, &parts, found.as_ref().ok(), peer, &mut None) {
        Err(e) => Resp::error(&e),
        Ok((identity, ip)) => match found {
            Err(e) => Resp::error(&e),
            Ok(found) => {
                let handler = found.route.handler;
                let mut req = Req::new(
                    parts,
                    found.params,
                    bytes::Bytes::new(),
                    identity,
                    peer,
                    closer,
                );
                req.client_ip = ip;
                match Box::pin(super::run(handler, srv.site.clone(), req)).await {
                    Ok(r) => r,
                    Err(e) => Resp::error(&e),
                }
            }
        },
    };
    let (mut rd, mut wr) = stream.into_split();
    let Some(mut events) = resp.stream else {
        // An error answer (the caps): whole, then close.
        let mut out = response_head(resp.status, resp.content_type, &resp.headers, false);
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", resp.body.len()).as_bytes());
        out.extend_from_slice(&resp.body);
        let _ = tokio::time::timeout(Duration::from_secs(5), wr.write_all(&out)).await;
        let _ = wr.shutdown().await;
        return;
    };
    let mut out = response_head(resp.status, resp.content_type, &resp.headers, true);
    out.extend_from_slice(b"\r\n");
    // The client sends nothing more; a read returning means it went away.
    let mut sink = [0u8; 64];
    let gone = async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    let pump = async {
        if wr.write_all(&out).await.is_err() {
            return;
        }
        drop(out);
        let mut ended = false;
        while !ended {
            let Some(first) = events.next().await else {
                break;
            };
            // A frame may come in two parts (a client's `id:` line, then
            // the tail shared by every client), the second ready at once:
            // one chunk — size line, the parts (not copied), end — in one
            // write. (A stream that ended is not polled again.)
            let second = match events.next().now_or_never() {
                Some(Some(b)) => Some(b),
                Some(None) => {
                    ended = true;
                    None
                }
                None => None,
            };
            let rest = second.as_deref().unwrap_or(&[]);
            let mut size = [0u8; 18];
            let n = chunk_size_line(first.len() + rest.len(), &mut size);
            if write_all_vectored(&mut wr, [&size[..n], &first[..], rest, b"\r\n"])
                .await
                .is_err()
            {
                return;
            }
        }
        // The stream ended (idle, lifetime, shutdown): the last chunk.
        let _ = wr.write_all(b"0\r\n\r\n").await;
        let _ = wr.shutdown().await;
    };
    tokio::select! {
        _ = pump => {}
        _ = gone => {}
        // The broker dropped the client (its queue filled): close even if a
        // write is blocked on a client that does not read.
        _ = async { let _ = closed.wait_for(|c| *c).await; } => {}
    }
    drop(permit);
}

/// Writes `len` in hex and CRLF into `out`; returns the bytes written.
fn chunk_size_line(len: usize, out: &mut [u8; 18]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS as usize / 4 - len.leading_zeros() as usize / 4).max(1);
    for i in 0..digits {
        out[digits - 1 - i] = HEX[(len >> (4 * i)) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

/// Writes every part, with as few system calls as the socket allows (one
/// when it takes them all).
async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    parts: [&[u8]; 4],
) -> std::io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut done = 0;
    while done < total {
        let mut skip = done;
        let mut slices: [std::io::IoSlice<'_>; 4] = [std::io::IoSlice::new(&[]); 4];
        let mut k = 0;
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            slices[k] = std::io::IoSlice::new(&p[skip..]);
            skip = 0;
            k += 1;
        }
        let n = w.write_vectored(&slices[..k]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        done += n;
    }
    Ok(())
}

/// The status line and headers every response carries (as
/// `Resp::into_hyper` writes them), plus the response's own.
fn response_head(
    status: u16,
    content_type: &str,
    headers: &[(&'static str, String)],
    chunked: bool,
) -> Vec<u8> {
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    for (k, v) in super::response::COMMON_HEADERS {
        push_header(&mut out, k, v);
    }
    if !content_type.is_empty() {
        push_header(&mut out, "content-type", content_type);
    }
    for (k, v) in headers {
        push_header(&mut out, k, v);
    }
    let date = httpdate(std::time::SystemTime::now());
    push_header(&mut out, "date", &date);
    if chunked {
        push_header(&mut out, "transfer-encoding", "chunked");
    } else {
        push_header(&mut out, "connection", "close");
    }
    out
}

fn push_header(out: &mut Vec<u8>, k: &str, v: &str) {
    // Values are ours (never request text), but keep the framing safe.
    if v.bytes().any(|b| b == b'\r' || b == b'\n') {
        return;
    }
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(v.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: std::time::SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_common_headers_and_framing() {
        let h = response_head(
            200,
            "text/event-stream",
            &[("cache-control", "no-store".into())],
            true,
        );
        let s = String::from_utf8(h).expect("utf8");
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(s.contains("content-type: text/event-stream\r\n"));
        assert!(s.contains("cache-control: no-store\r\n"));
        assert!(s.contains("access-control-allow-origin: *\r\n"));
        assert!(s.contains("transfer-encoding: chunked\r\n"));
        let h = response_head(429, "application/json", &[("x", "a\r\nb".into())], false);
        let s = String::from_utf8(h).expect("utf8");
        assert!(s.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(
            !s.contains("\r\nx:"),
            "a value with a line break is dropped"
        );
        assert!(s.contains("connection: close\r\n"));
    }

    #[test]
    fn chunk_size_lines() {
        for len in [0usize, 1, 9, 10, 15, 16, 255, 256, 4095, 65536, 1 << 40] {
            let mut b = [0u8; 18];
            let n = chunk_size_line(len, &mut b);
            assert_eq!(&b[..n], format!("{len:x}\r\n").as_bytes(), "{len}");
        }
    }

    /// A writer that takes at most a few bytes per call: the parts still
    /// arrive whole and in order.
    #[tokio::test]
    async fn vectored_writes_survive_short_writes() {
        struct Trickle(Vec<u8>);
        impl tokio::io::AsyncWrite for Trickle {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                std::task::Poll::Ready(Ok(n))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut w = Trickle(Vec::new());
        write_all_vectored(
            &mut w,
            [b"1f\r\n", b"id:x", b"\nevent:a\ndata:{}\n\n", b"\r\n"],
        )
        .await
        .expect("write");
        assert_eq!(&w.0[..], b"1f\r\nid:x\nevent:a\ndata:{}\n\n\r\n");
    }

    #[test]
    fn date_format() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(784111777);
        assert_eq!(httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
