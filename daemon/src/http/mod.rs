//! The HTTP server, generic over the application it serves: accept loop
//! with a connection cap, header-read timeout, body cap and body timeout;
//! dispatch through the route table the application hands over; a panic
//! in a handler answered as a 500 (the next request is served as usual);
//! one place that turns `ApiError` into PocketBase's error JSON.
//!
//! The application (keepd's `api`) supplies the routes (`Route`) and the
//! decisions taken before a handler runs (`Site`: who is asking, from
//! which address, whether to admit the request, how large its body may
//! be). Nothing here names the application's modules.
//!
//! Only this folder knows hyper.

pub mod budget;
pub mod client_ip;
pub mod form;
pub mod request;
pub mod response;
pub mod router;
mod stream;
pub mod tls;

pub use hyper::{header::HeaderValue, HeaderMap, Method, Uri};
pub use request::{Req, WsUpgrade};
pub use response::Resp;
pub use router::{BoxFut, Handler, Route};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// What the server asks of the application for each request, before the
/// handler runs (in this order: identity, address, admission, body cap).
pub trait Site: Send + Sync + Sized + 'static {
    /// The caller, from the request's headers. It runs on the async
    /// worker: a point read at most, never a blocking wait.
    fn identity(&self, headers: &HeaderMap) -> ApiResult<Identity>;
    /// The client's address (the peer, or what a trusted proxy forwarded).
    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr;
    /// Whether to serve the request at all (rate limits, address rules);
    /// asked for requests no route matches too, before their 404.
    fn admit(&self, head: &Head<'_>, identity: &Identity, ip: IpAddr) -> ApiResult<()>;
    /// The largest body a matched route's request may send.
    fn body_limit(&self, head: &Head<'_>) -> u64;
    /// The server stopped accepting: end long-lived streams.
    fn stopping(&self);
    /// A request was answered (the request log). Runs on the async worker
    /// after every answer: it must be cheap and never wait.
    fn answered(&self, _done: &Answered<'_>) {}
}

/// An answered request, as `Site::answered` sees it.
pub struct Answered<'a> {
    pub method: &'a Method,
    /// The request target as sent: path and query.
    pub uri: &'a hyper::Uri,
    pub status: u16,
    pub elapsed: Duration,
    /// The TCP peer.
    pub peer: IpAddr,
    /// The client's address (`Site::client_ip`; the peer when the request
    /// was refused before it was asked).
    pub client_ip: IpAddr,
    /// The caller (Guest when the request was refused before it was known).
    pub identity: &'a Identity,
    pub user_agent: Option<&'a hyper::header::HeaderValue>,
    pub referer: Option<&'a hyper::header::HeaderValue>,
}

/// A request as the `Site` sees it before its body is read.
pub struct Head<'a> {
    pub method: &'a Method,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The request came through the admin listener (`serve`'s `admin`).
    pub admin: bool,
    /// The matched route (None: no route matched; a 404 follows).
    pub route: Option<RouteHead<'a>>,
}

/// The matched route of a `Head`.
pub struct RouteHead<'a> {
    pub pattern: &'static str,
    pub tags: &'static [&'static str],
    pub streams_body: bool,
    /// Path parameters, percent-decoded.
    pub params: &'a [(String, String)],
}

impl RouteHead<'_> {
    /// A path parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The server's own bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// Time for a request head to arrive.
    pub header_timeout: Duration,
    /// Time for a whole body (a streamed body: for each chunk).
    pub body_timeout: Duration,
    /// How long shutdown waits for in-flight connections.
    pub drain: Duration,
    /// Bytes of request bodies read whole and held at once, across all
    /// requests; a body that would go over is answered 429 before more of
    /// it is read.
    pub max_body_bytes_in_flight: u64,
    /// Most open connections from one peer address (0: no cap); more are
    /// answered 429 and closed at accept.
    pub max_connections_per_ip: usize,
    /// Peers the per-address cap does not count (trusted proxies, whose
    /// one address carries many clients).
    pub per_ip_exempt: Vec<(IpAddr, u8)>,
}

/// What every connection shares.
struct Server<S> {
    site: Arc<S>,
    router: router::Router<S>,
    limits: Limits,
    /// The path of the event-stream route (served lean when first).
    event_path: Option<&'static str>,
    /// Bodies read whole, in flight.
    bodies: Arc<budget::ByteBudget>,
}

/// Accepts on the HTTPS listener, if any (pending forever otherwise).
async fn accept_tls(
    https: Option<&(TcpListener, Arc<tls::Tls>)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match https {
        Some((l, _)) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts on a listener, if any (pending forever otherwise).
async fn accept_on(
    l: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Which listener a connection came through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Door {
    Plain,
    Tls,
    Admin,
}

/// Serves `routes` until `shutdown` resolves, then stops accepting and
/// waits (up to `limits.drain`) for in-flight connections to finish.
/// `https`: a second listener served over TLS (the same routes, limits and
/// connection cap; its requests are marked, `Req::tls`). `admin`: a plain
/// listener whose requests are marked `Req::admin`/`Head::admin` (the same
/// routes, limits and caps; what the mark means is the `Site`'s to decide).
pub async fn serve<S: Site>(
    listener: TcpListener,
    https: Option<(TcpListener, Arc<tls::Tls>)>,
    admin: Option<TcpListener>,
    site: Arc<S>,
    routes: Vec<Route<S>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let router = router::Router::new(routes)?;
    let event_path = router.event_stream_path();
    let max = limits.max_connections;
    let per_ip = budget::PerIp::new(limits.max_connections_per_ip, limits.per_ip_exempt.clone());
    let srv = Arc::new(Server {
        site,
        router,
        bodies: budget::ByteBudget::new(limits.max_body_bytes_in_flight),
        limits,
        event_path,
    });
    let conns = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer, door) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, p)) => (s, p, Door::Plain),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            r = accept_tls(https.as_ref()) => match r {
                Ok((s, p)) => (s, p, Door::Tls),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed (https)");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            r = accept_on(admin.as_ref()) => match r {
                Ok((s, p)) => (s, p, Door::Admin),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed (admin)");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // One address may hold only so many connections: a client that
        // opens many and trickles on each can't take every slot.
        let Ok(ip_slot) = per_ip.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many connections from one address");
            tokio::spawn(reject_connection(stream));
            continue;
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            // Over the cap: answer in PocketBase's shape and close.
            tokio::spawn(reject_connection(stream));
            continue;
        };
        let permit = Slot {
            _conn: permit,
            _ip: ip_slot,
        };
        let srv = srv.clone();
        let stop_rx = stop_rx.clone();
        // The connection's permit; an upgraded connection (WebSocket) takes
        // it along, so it counts until the socket closes.
        let permit: ConnPermit = Arc::new(std::sync::Mutex::new(Some(permit)));
        let on_admin = door == Door::Admin;
        if door == Door::Tls {
            let Some((_, tls)) = https.as_ref() else {
                continue;
            };
            let acceptor = tls.acceptor();
            tokio::spawn(async move {
                // The handshake gets the header timeout: a client that
                // stalls it holds a slot no longer than one that stalls
                // its request head.
                let timeout = srv.limits.header_timeout;
                let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let conn = Conn {
                    srv,
                    peer,
                    permit,
                    stop_rx,
                    tls: true,
                    admin: false,
                };
                Box::pin(serve_hyper(conn, stream)).await;
            });
            continue;
        }
        tokio::spawn(async move {
            // A fresh connection asking for an event stream takes the lean
            // path (no hyper buffers for the life of the stream). Each path
            // is boxed so that the task's own state stays small.
            let timeout = srv.limits.header_timeout;
            match stream::classify(&stream, timeout, srv.event_path).await {
                None => {}
                Some(stream::First::EventStream(len, mut parts)) => {
                    if on_admin {
                        parts.extensions.insert(request::OverAdmin);
                    }
                    Box::pin(stream::serve(srv, stream, len, parts, peer, permit)).await;
                }
                Some(stream::First::Other) => {
                    let conn = Conn {
                        srv,
                        peer,
                        permit,
                        stop_rx,
                        tls: false,
                        admin: on_admin,
                    };
                    Box::pin(serve_hyper(conn, stream)).await;
                }
            }
        });
    }
    // Event streams never finish by themselves: end them first.
    srv.site.stopping();
    let _ = stop_tx.send(true);
    let deadline = tokio::time::Instant::now() + srv.limits.drain;
    while conns.available_permits() < max && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// What a connection served by hyper needs.
struct Conn<S> {
    srv: Arc<Server<S>>,
    peer: SocketAddr,
    permit: ConnPermit,
    stop_rx: watch::Receiver<bool>,
    /// The connection came in over TLS.
    tls: bool,
    /// The connection came in through the admin listener.
    admin: bool,
}

/// Serves a connection with hyper until it closes, its close switch flips
/// (a realtime client dropped by the broker), or shutdown (graceful).
async fn serve_hyper<S: Site, T>(c: Conn<S>, stream: T)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Conn {
        srv,
        peer,
        permit,
        mut stop_rx,
        tls,
        admin,
    } = c;
    let header_timeout = srv.limits.header_timeout;
    // Closes this connection when flipped, even while a write to it is
    // blocked.
    let (closer, mut closed) = watch::channel(false);
    let closer = Arc::new(closer);
    let slot = permit.clone();
    let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
        let srv = srv.clone();
        let closer = closer.clone();
        // Handed to the request directly: an extension would build the
        // request's extension map for every request.
        let slot = slot.clone();
        if tls {
            req.extensions_mut().insert(request::OverTls);
        }
        if admin {
            req.extensions_mut().insert(request::OverAdmin);
        }
        async move { Ok::<_, Infallible>(handle(srv, req, peer, closer, slot).await) }
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
pub(crate) type ConnPermit = Arc<std::sync::Mutex<Option<Slot>>>;

/// What an open connection holds: its place under the connection cap and
/// under its address's cap.
pub(crate) struct Slot {
    _conn: tokio::sync::OwnedSemaphorePermit,
    _ip: Option<budget::IpSlot>,
}

/// Resolves once the connection's close switch is flipped.
async fn until_closed(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
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

async fn handle<S: Site>(
    srv: Arc<Server<S>>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    closer: Arc<watch::Sender<bool>>,
    permit: ConnPermit,
) -> hyper::Response<response::Body> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let user_agent = req.headers().get(hyper::header::USER_AGENT).cloned();
    let referer = req.headers().get(hyper::header::REFERER).cloned();
    let started = std::time::Instant::now();
    let mut seen: Option<(Identity, IpAddr)> = None;
    let resp = match dispatch(&srv, req, peer, closer, permit, &mut seen).await {
        Ok(r) => r,
        Err(e) => Resp::error(&e),
    };
    let status = resp.status;
    let elapsed = started.elapsed();
    tracing::debug!(%method, path = uri.path(), status, elapsed_us = elapsed.as_micros() as u64, "request");
    let (identity, client_ip) = seen.unwrap_or((Identity::Guest, peer.ip()));
    srv.site.answered(&Answered {
        method: &method,
        uri: &uri,
        status,
        elapsed,
        peer: peer.ip(),
        client_ip,
        identity: &identity,
        user_agent: user_agent.as_ref(),
        referer: referer.as_ref(),
    });
    resp.into_hyper()
}

/// Who is asking and from where, and whether they are admitted (before
/// the route's 404, as PocketBase's global middlewares run).
fn admit<S: Site>(
    srv: &Server<S>,
    parts: &hyper::http::request::Parts,
    found: Option<&router::Found<'_, S>>,
    peer: SocketAddr,
    seen: &mut Option<(Identity, IpAddr)>,
) -> ApiResult<(Identity, IpAddr)> {
    let site = &srv.site;
    let identity = site.identity(&parts.headers)?;
    let ip = site.client_ip(peer.ip(), &parts.headers);
    *seen = Some((identity.clone(), ip));
    let head = Head {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        admin: parts.extensions.get::<request::OverAdmin>().is_some(),
        route: found.map(route_head),
    };
    site.admit(&head, &identity, ip)?;
    Ok((identity, ip))
}

fn route_head<'a, S>(f: &'a router::Found<'a, S>) -> RouteHead<'a> {
    RouteHead {
        pattern: f.route.pattern,
        tags: f.route.tags,
        streams_body: f.route.streams_body,
        params: &f.params,
    }
}

/// Runs a handler; a panic in it becomes a 500 in PocketBase's shape (the
/// connection and the daemon go on serving).
async fn run<S: Site>(handler: Handler<S>, site: Arc<S>, req: Req) -> ApiResult<Resp> {
    use futures_util::FutureExt;
    let fut = std::panic::AssertUnwindSafe(async move { handler(site, req).await });
    match fut.catch_unwind().await {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ApiError::internal(format!(
                "a request handler panicked: {what}"
            )))
        }
    }
}

async fn dispatch<S: Site>(
    srv: &Server<S>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    closer: Arc<watch::Sender<bool>>,
    permit: ConnPermit,
    seen: &mut Option<(Identity, IpAddr)>,
) -> Result<Resp, ApiError> {
    let (parts, body) = req.into_parts();
    if parts.method == hyper::Method::OPTIONS {
        return Ok(Resp::empty(204));
    }
    if let Some(location) = clean_location(&parts.uri) {
        return Ok(Resp::redirect(&location));
    }
    let found = srv.router.find(&parts.method, parts.uri.path());
    let (identity, ip) = admit(srv, &parts, found.as_ref().ok(), peer, seen)?;
    let found = found?;
    let limit = srv.site.body_limit(&Head {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        admin: parts.extensions.get::<request::OverAdmin>().is_some(),
        route: Some(route_head(&found)),
    });
    let route = found.route;
    let body_timeout = srv.limits.body_timeout;
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::TooLarge("Request entity too large.".into()));
    }
    let form_shape = match (route.form, &parts.headers.get(hyper::header::CONTENT_TYPE)) {
        (Some(shape), Some(ct)) if ct.to_str().ok().and_then(form::kind).is_some() => {
            Some(shape(&srv.site))
        }
        _ => None,
    };
    if route.streams_body {
        // Large uploads: the handler reads the body as it arrives, each
        // chunk within `body_timeout`, the whole within the cap.
        let mut req = Req::new(
            parts,
            found.params,
            bytes::Bytes::new(),
            identity,
            peer,
            closer,
        );
        req.client_ip = ip;
        req.set_permit(permit);
        req.set_budget(srv.bodies.clone());
        let unread: request::UnreadBody = Arc::new(std::sync::Mutex::new(Some((
            body_stream(body, body_timeout),
            limit,
        ))));
        req.set_stream(unread.clone());
        let resp = run(route.handler, srv.site.clone(), req).await;
        discard_unread(&unread).await;
        return resp;
    }
    // Read whole under the route's cap and the budget of bodies in
    // flight, charged until the handler is done with it.
    let read = budget::read_charged(
        body_stream(body, body_timeout),
        limit,
        declared,
        &srv.bodies,
    );
    let (body, charge) = match tokio::time::timeout(body_timeout, read).await {
        Err(_) => return Err(ApiError::bad("Timed out reading the request body.")),
        Ok(r) => r?,
    };
    let mut req = Req::new(parts, found.params, body, identity, peer, closer);
    req.client_ip = ip;
    req.set_permit(permit);
    req.form_shape = form_shape;
    let resp = run(route.handler, srv.site.clone(), req).await;
    drop(charge);
    resp
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

/// Where a request whose path isn't clean is sent (as Go's `ServeMux`
/// answers it: 307 to the cleaned path, the query kept); None when the
/// path is clean.
///
/// Cleaning is Go's `path.Clean` on the path as sent: repeated slashes
/// collapsed, `.` and `..` segments resolved, a trailing slash kept.
/// Characters a browser would read differently in a `Location` are
/// percent-encoded — a backslash above all, since browsers take `/\` at
/// the start of a URL for `//`, the start of another host.
fn clean_location(uri: &hyper::Uri) -> Option<String> {
    let path = uri.path();
    if is_clean(path) {
        return None;
    }
    let cleaned = clean_path(path);
    if cleaned == path {
        return None;
    }
    let mut location = escape_location(&cleaned);
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(&escape_location(q));
    }
    Some(location)
}

/// Whether `clean_path` leaves `p` as it is (checked without building the
/// cleaned path): rooted, no `.` or `..` segment, no empty segment but a
/// trailing slash's.
fn is_clean(p: &str) -> bool {
    let b = p.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    let mut start = 1;
    for i in 1..=b.len() {
        if i < b.len() && b[i] != b'/' {
            continue;
        }
        let seg = &b[start..i];
        if seg == b"." || seg == b".." || (seg.is_empty() && i < b.len()) {
            return false;
        }
        start = i + 1;
    }
    true
}

/// Go's `path.Clean` for a rooted path, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        return "/".into();
    }
    if p.ends_with('/') {
        out.push('/');
    }
    out
}

/// Percent-encodes everything but what a URL path or query may hold as
/// it is (RFC 3986 unreserved, sub-delims, `:@/?`, and `%` of the escapes
/// already there).
fn escape_location(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'?'
                    | b'%'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(p: &str) -> Option<String> {
        clean_location(&p.parse::<hyper::Uri>().expect("uri"))
    }

    #[test]
    fn unclean_paths_redirect_as_go_does() {
        let cases = [
            ("/api//health", Some("/api/health")),
            ("//evil.example/api", Some("/evil.example/api")),
            ("/\\/evil.example//api", Some("/%5C/evil.example/api")),
            ("/\\evil.example//x", Some("/%5Cevil.example/x")),
            ("/%5C/evil.example//api", Some("/%5C/evil.example/api")),
            ("/api//health?x=1", Some("/api/health?x=1")),
            ("/a/..//b", Some("/b")),
            ("///x", Some("/x")),
            ("/a/./b", Some("/a/b")),
            ("/api/health/.", Some("/api/health")),
            ("/api/health/..", Some("/api")),
            ("/a/..", Some("/")),
            ("/..//a", Some("/a")),
            ("/a//b/", Some("/a/b/")),
            ("/a//b|c", Some("/a/b%7Cc")),
            ("/a//b^c", Some("/a/b%5Ec")),
            ("/a//b'c;d", Some("/a/b'c;d")),
            ("/a/%2E%2E//b", Some("/a/%2E%2E/b")),
            ("/api/health", None),
            ("/api/health?a=//b", None),
            ("/", None),
            ("/a/b/", None),
            ("/a/../", Some("/")),
        ];
        for (p, want) in cases {
            let path = p.split('?').next().unwrap_or(p);
            assert_eq!(is_clean(path), clean_path(path) == path, "{p}");
            let got = loc(p);
            assert_eq!(got.as_deref(), want, "{p}");
            // Never a location a browser reads as another host.
            if let Some(l) = got {
                assert!(l.starts_with('/'), "{l}");
                assert!(!l.starts_with("//") && !l.starts_with("/\\"), "{l}");
            }
        }
    }
}
