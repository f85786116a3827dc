//! The HTTP server: accept loop with a connection cap, header-read timeout,
//! body cap; request identity; dispatch through the route table; one place
//! that turns `ApiError` into PocketBase's error JSON.
//!
//! Only this folder knows hyper.

pub mod client_ip;
pub mod request;
pub mod response;
pub mod router;
mod stream;

pub use request::{Req, WsUpgrade};
pub use response::Resp;

use crate::app::App;
use crate::error::ApiError;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Serves until `shutdown` resolves, then stops accepting and waits (up to
/// `drain`) for in-flight connections to finish.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let max = app.config.max_connections;
    let conns = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let router = Arc::new(router::Router::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            // Over the cap: answer in PocketBase's shape and close.
            tokio::spawn(reject_connection(stream));
            continue;
        };
        let app = app.clone();
        let router = router.clone();
        let stop_rx = stop_rx.clone();
        let header_timeout = Duration::from_secs(app_header_timeout());
        // The connection's permit; an upgraded connection (WebSocket) takes
        // it along, so it counts until the socket closes.
        let permit: ConnPermit = Arc::new(std::sync::Mutex::new(Some(permit)));
        tokio::spawn(async move {
            // A fresh connection asking for an event stream takes the lean
            // path (no hyper buffers for the life of the stream). Each path
            // is boxed so that the task's own state stays small.
            match stream::classify(&stream, header_timeout).await {
                None => {}
                Some(stream::First::Realtime(len, parts)) => {
                    Box::pin(stream::serve(app, stream, len, parts, peer, permit)).await;
                }
                Some(stream::First::Other) => {
                    let conn = Conn {
                        app,
                        router,
                        peer,
                        permit,
                        stop_rx,
                        header_timeout,
                    };
                    Box::pin(serve_hyper(conn, stream)).await;
                }
            }
        });
    }
    // Event streams never finish by themselves: end them first.
    app.realtime.close_all();
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + drain;
    while conns.available_permits() < max && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a connection served by hyper needs.
struct Conn {
    app: Arc<App>,
    router: Arc<router::Router>,
    peer: SocketAddr,
    permit: ConnPermit,
    stop_rx: watch::Receiver<bool>,
    header_timeout: Duration,
}

/// Serves a connection with hyper until it closes, its close switch flips
/// (a realtime client dropped by the broker), or shutdown (graceful).
async fn serve_hyper(c: Conn, stream: tokio::net::TcpStream) {
    let Conn {
        app,
        router,
        peer,
        permit,
        mut stop_rx,
        header_timeout,
    } = c;
    // Closes this connection when flipped, even while a write to it is
    // blocked.
    let (closer, mut closed) = watch::channel(false);
    let closer = Arc::new(closer);
    let slot = permit.clone();
    let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
        let app = app.clone();
        let router = router.clone();
        let closer = closer.clone();
        req.extensions_mut().insert(slot.clone());
        async move { Ok::<_, Infallible>(handle(app, router, req, peer, closer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => { let _ = r; }
        _ = until_closed(&mut closed) => {}
        _ = stop_rx.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => { let _ = r; }
                _ = until_closed(&mut closed) => {}
            }
        }
    }
    drop(permit);
}

/// A connection's slot under the connection cap.
pub(crate) type ConnPermit = Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>;

/// Resolves once the connection's close switch is flipped.
async fn until_closed(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

static HEADER_TIMEOUT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(10);

fn app_header_timeout() -> u64 {
    HEADER_TIMEOUT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets the header-read timeout used by new connections.
pub fn set_header_timeout(secs: u64) {
    HEADER_TIMEOUT.store(secs.max(1), std::sync::atomic::Ordering::Relaxed);
}

async fn reject_connection(mut stream: tokio::net::TcpStream) {
    let body = ApiError::TooManyRequests {
        message: "Too many open connections, please try again later.".into(),
        retry_after: 1,
    }
    .to_body()
    .to_string();
    let resp = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{}",
        body.len(),
        body
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(resp.as_bytes())).await;
    let _ = stream.shutdown().await;
}

async fn handle(
    app: Arc<App>,
    router: Arc<router::Router>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    closer: Arc<watch::Sender<bool>>,
) -> hyper::Response<response::Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match dispatch(&app, &router, req, peer, closer).await {
        Ok(r) => r,
        Err(e) => Resp::error(&e),
    };
    let status = resp.status;
    tracing::debug!(%method, %path, status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    resp.into_hyper()
}

async fn dispatch(
    app: &Arc<App>,
    router: &router::Router,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    closer: Arc<watch::Sender<bool>>,
) -> Result<Resp, ApiError> {
    let (parts, body) = req.into_parts();
    if parts.method == hyper::Method::OPTIONS {
        return Ok(Resp::empty(204));
    }
    let path = parts.uri.path();
    if path.contains("//") {
        return Ok(Resp::redirect(&clean_path(path)));
    }
    let (handler, params, pattern) = router.find(&parts.method, path)?;
    let identity = crate::api::identity::resolve(app, &parts.headers).await?;
    let ip = client_ip::client_ip(
        peer.ip(),
        &parts.headers,
        &app.trusted,
        &app.settings().trusted_proxy,
    );
    rate_limit(app, &parts.method, path, pattern, &params, &identity, ip)?;
    let body_timeout = Duration::from_secs(app.config.body_timeout_secs);
    if router::streams_body(&parts.method, pattern) {
        // Large uploads: the handler reads the body as it arrives, each
        // chunk within `body_timeout_secs`, the whole within the cap.
        let limit = app.config.max_backup_upload_bytes;
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(ApiError::TooLarge("Request entity too large.".into()));
        }
        let mut req = Req::new(parts, params, bytes::Bytes::new(), identity, peer, closer);
        req.client_ip = ip;
        let unread: request::UnreadBody = Arc::new(std::sync::Mutex::new(Some((
            body_stream(body, body_timeout),
            limit,
        ))));
        req.set_stream(unread.clone());
        let resp = handler(app.clone(), req).await;
        discard_unread(&unread).await;
        return resp;
    }
    let limit = body_limit(app, &parts.method, path, &params);
    if let Some(len) = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::TooLarge("Request entity too large.".into()));
        }
    }
    let body = match tokio::time::timeout(body_timeout, Limited::new(body, limit).collect()).await {
        Err(_) => return Err(ApiError::bad("Timed out reading the request body.")),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(ApiError::TooLarge("Request entity too large.".into()));
            }
            return Err(ApiError::bad("Failed to read the request body."));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let mut req = Req::new(parts, params, body, identity, peer, closer);
    req.client_ip = ip;
    handler(app.clone(), req).await
}

/// Reads and drops a body the handler never took (it answered before
/// reading, e.g. 401), up to 256 KiB as Go's server does: clients still
/// sending a small body get the answer instead of a reset connection. A
/// longer one is left unread; the connection then closes.
async fn discard_unread(unread: &request::UnreadBody) {
    use futures_util::StreamExt;
    let taken = match unread.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    };
    let Some((mut body, _)) = taken else {
        return;
    };
    let mut left: usize = 256 << 10;
    while let Some(Ok(chunk)) = body.next().await {
        if chunk.len() >= left {
            return;
        }
        left -= chunk.len();
    }
}

/// A body as a stream of chunks; a chunk that takes longer than `idle` to
/// arrive ends it with a `TimedOut` error.
fn body_stream(body: Incoming, idle: Duration) -> request::BodyStream {
    let s = futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        loop {
            match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "timed out reading the request body",
                    );
                    return Some((Err(e), None));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some((Err(std::io::Error::other(e)), None)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), Some(body)));
                    }
                    // Trailers: nothing to hand on.
                }
            }
        }
    });
    Box::pin(s)
}

/// PocketBase's rate limiting (on by default in keepd): the first rule
/// matching the route's labels and the caller's audience counts the
/// request for the client's address; over it, 429 with Retry-After.
/// Superusers and `excludedIPs` are not limited.
fn rate_limit(
    app: &App,
    method: &hyper::Method,
    path: &str,
    pattern: &'static str,
    params: &[(String, String)],
    identity: &crate::auth::Identity,
    ip: std::net::IpAddr,
) -> Result<(), ApiError> {
    let rules = app.rate_rules();
    if !rules.enabled || rules.rules.is_empty() || identity.is_superuser() {
        return Ok(());
    }
    if rules
        .excluded
        .iter()
        .any(|n| crate::auth::limiter::in_net(ip, *n))
    {
        return Ok(());
    }
    let audiences: [&str; 2] = if identity.auth().is_some() {
        ["", "@auth"]
    } else {
        ["", "@guest"]
    };
    let tags = router::rate_limit_tags(method, pattern);
    let coll = params
        .iter()
        .find(|(k, _)| k == "collection")
        .and_then(|(_, v)| app.store.schema().get(v).cloned());
    let mut labels: Vec<String> = Vec::with_capacity(tags.len() * 2 + 2);
    let mut id = String::new();
    if let (Some(c), false) = (&coll, tags.is_empty()) {
        id.push_str(&c.id);
        id.push_str(pattern);
        for t in tags {
            id.push_str(t);
            labels.push(format!("{}:{t}", c.name));
        }
        for t in tags {
            labels.push(format!("*:{t}"));
        }
    }
    labels.push(format!("{method} {path}"));
    labels.push(path.to_string());
    let Some(rule) = rules.find(&labels, &audiences) else {
        return Ok(());
    };
    if id.is_empty() {
        id.push_str(&rule.label);
    }
    id.push_str(&rule.audience);
    match app.limiter.check(&id, rule, ip, app.now_secs()) {
        Ok(()) => Ok(()),
        Err(retry_after) => Err(ApiError::TooManyRequests {
            message: "Too Many Requests.".into(),
            retry_after,
        }),
    }
}

/// The path with repeated slashes collapsed (answered with a redirect).
fn clean_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for ch in p.chars() {
        if !(ch == '/' && out.ends_with('/')) {
            out.push(ch);
        }
    }
    out
}

/// The body cap of a request: the configured maximum, plus, for record
/// writes, room for the collection's large fields (PocketBase's rule:
/// editor `maxSize` or 5 MiB, json `maxSize` or 1 MiB, each).
fn body_limit(app: &App, method: &hyper::Method, path: &str, params: &[(String, String)]) -> usize {
    let base = app.config.max_body_bytes;
    if path == "/api/realtime" {
        return app.config.realtime_max_body_bytes;
    }
    let is_record_write = (method == hyper::Method::POST || method == hyper::Method::PATCH)
        && path.contains("/records");
    if !is_record_write {
        return base;
    }
    let Some((_, name)) = params.iter().find(|(k, _)| k == "collection") else {
        return base;
    };
    let schema = app.store.schema();
    let Some(c) = schema.get(name) else {
        return base;
    };
    let extra: i64 = c
        .fields
        .iter()
        .map(|f| match &f.kind {
            crate::schema::FieldKind::Editor(o) => {
                if o.max_size > 0 {
                    o.max_size
                } else {
                    5 << 20
                }
            }
            crate::schema::FieldKind::Json(o) => {
                if o.max_size > 0 {
                    o.max_size
                } else {
                    1 << 20
                }
            }
            crate::schema::FieldKind::File(o) => {
                let each = if o.max_size > 0 {
                    o.max_size
                } else {
                    crate::records::files::DEFAULT_MAX_SIZE
                };
                each.saturating_mul(o.max_select.max(1))
            }
            _ => 0,
        })
        .sum();
    base.saturating_add(extra.max(0) as usize)
}
