//! The request as handlers see it: method, path params, query, headers,
//! the whole (size-capped) body, the caller's identity and address. Routes
//! that take large uploads (`Route::streams_body`) get the body as a
//! stream instead (`Req::streamed_form`), never held whole in memory.

use super::form;
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use hyper::http::request::Parts;
use serde_json::{Map, Value};
use std::net::SocketAddr;

pub struct Req {
    pub method: hyper::Method,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// The shape a form body binds to (`Route::form`; set for form bodies).
    pub form_shape: Option<Value>,
    pub identity: Identity,
    pub peer: SocketAddr,
    /// The client's address: the peer, or what a trusted proxy forwarded.
    pub client_ip: std::net::IpAddr,
    /// Flipping it to `true` closes this request's connection (used by the
    /// realtime broker to drop a client that stopped reading).
    pub closer: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// The request came over the HTTPS listener.
    pub tls: bool,
    /// The request came through the admin listener.
    pub admin: bool,
    /// The connection's upgrade handle (a WebSocket handshake takes it).
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    permit: Option<super::ConnPermit>,
    /// The unread body of a streamed route, with its byte cap; shared with
    /// the dispatcher, which discards what the handler left untouched.
    stream: UnreadBody,
    /// The budget a body read whole is charged to, and its charge (given
    /// back with the request).
    budget: Option<std::sync::Arc<super::budget::ByteBudget>>,
    charge: Option<super::budget::Charge>,
}

/// Marks a request that came over the HTTPS listener (a request extension).
#[derive(Clone, Copy)]
pub(crate) struct OverTls;

/// Marks a request that came through the admin listener (a request extension).
#[derive(Clone, Copy)]
pub(crate) struct OverAdmin;

/// A streamed route's body until someone takes it (the mutex keeps `Req`
/// `Sync`; it is never held across an await).
pub(crate) type UnreadBody = std::sync::Arc<std::sync::Mutex<Option<(BodyStream, u64)>>>;

/// A request body read as it arrives: chunks, or the error that ended it.
pub(crate) type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A multipart body read part by part as it arrives (`Req::streamed_form`).
pub struct StreamedForm {
    mp: multer::Multipart<'static>,
}

/// One part of a `StreamedForm`; its content is read chunk by chunk.
pub struct StreamedPart {
    field: multer::Field<'static>,
}

/// A streamed body's errors in PocketBase's shapes: over the cap 413, a
/// stalled client 400, anything malformed the generic 400.
fn stream_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::TooLarge("Request entity too large.".into())
        }
        multer::Error::StreamReadFailed(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) =>
        {
            ApiError::bad("Timed out reading the request body.")
        }
        _ => ApiError::bad("Something went wrong while processing your request."),
    }
}

impl StreamedForm {
    /// The next part, once its headers have arrived (the previous part's
    /// unread content is skipped).
    pub async fn next_part(&mut self) -> ApiResult<Option<StreamedPart>> {
        match self.mp.next_field().await {
            Ok(f) => Ok(f.map(|field| StreamedPart { field })),
            Err(e) => Err(stream_error(e)),
        }
    }
}

impl StreamedPart {
    /// The form key.
    pub fn name(&self) -> &str {
        self.field.name().unwrap_or_default()
    }
    /// The client's file name (None: a plain form value).
    pub fn file_name(&self) -> Option<&str> {
        self.field.file_name()
    }
    /// The next piece of the content (None at its end).
    pub async fn chunk(&mut self) -> ApiResult<Option<Bytes>> {
        self.field.chunk().await.map_err(stream_error)
    }
}

/// An accepted WebSocket handshake: the 101 answer to send and the
/// connection it turns into once sent.
pub struct WsUpgrade {
    pub accept_key: String,
    on: hyper::upgrade::OnUpgrade,
    /// The connection's slot under the cap, held while the socket lives.
    permit: Option<super::Slot>,
}

impl WsUpgrade {
    /// The upgraded connection (after the 101 went out).
    /// Returns it with the connection's permit, to be dropped with it.
    pub async fn io(
        self,
    ) -> Result<
        (
            impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
            impl Send,
        ),
        hyper::Error,
    > {
        Ok((hyper_util::rt::TokioIo::new(self.on.await?), self.permit))
    }
}

impl Req {
    pub fn new(
        mut parts: Parts,
        params: Vec<(String, String)>,
        body: Bytes,
        identity: Identity,
        peer: SocketAddr,
        closer: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    ) -> Req {
        let query = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let permit = parts.extensions.remove::<super::ConnPermit>();
        let tls = parts.extensions.get::<OverTls>().is_some();
        let admin = parts.extensions.get::<OverAdmin>().is_some();
        Req {
            method: parts.method,
            params,
            query,
            headers: parts.headers,
            body,
            form_shape: None,
            identity,
            peer,
            client_ip: peer.ip(),
            closer,
            tls,
            admin,
            upgrade,
            permit,
            stream: UnreadBody::default(),
            budget: None,
            charge: None,
        }
    }

    /// The budget `read_body` charges a body to.
    pub(crate) fn set_budget(&mut self, budget: std::sync::Arc<super::budget::ByteBudget>) {
        self.budget = Some(budget);
    }

    /// Hands a streamed route its unread body, capped at `limit` bytes.
    pub(crate) fn set_stream(&mut self, body: UnreadBody) {
        self.stream = body;
    }

    /// A streamed route's multipart body, read as it arrives (None: the
    /// body is not multipart, or was already taken). Whatever a handler
    /// leaves unread is dropped with the connection.
    pub fn streamed_form(&mut self) -> ApiResult<Option<StreamedForm>> {
        let ct = self.content_type().to_string();
        if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
            return Ok(None);
        }
        let taken = match self.stream.lock() {
            Ok(mut s) => s.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some((body, limit)) = taken else {
            return Ok(None);
        };
        let boundary = multer::parse_boundary(&ct)
            .map_err(|_| ApiError::bad("Something went wrong while processing your request."))?;
        let mp = multer::Multipart::with_constraints(
            body,
            boundary,
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit)),
        );
        Ok(Some(StreamedForm { mp }))
    }

    /// Whether the request asks for a WebSocket (`Upgrade: websocket`).
    pub fn wants_websocket(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    }

    /// Accepts a WebSocket handshake (RFC 6455 4.2.1): GET, `Connection:
    /// upgrade`, `Upgrade: websocket`, version 13 and a 16-byte key.
    pub fn websocket(&mut self) -> ApiResult<WsUpgrade> {
        let bad = |m: &str| ApiError::bad(m);
        if self.method != hyper::Method::GET || !self.wants_websocket() {
            return Err(bad("Not a WebSocket handshake."));
        }
        let conn_upgrade = self.header("connection").is_some_and(|c| {
            c.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
        if !conn_upgrade {
            return Err(bad("Not a WebSocket handshake."));
        }
        if self.header("sec-websocket-version") != Some("13") {
            return Err(bad("Unsupported WebSocket version (13 only)."));
        }
        let key = self.header("sec-websocket-key").unwrap_or_default().trim();
        use base64::Engine;
        let key_ok = base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16);
        if !key_ok {
            return Err(bad("Invalid Sec-WebSocket-Key."));
        }
        let accept_key =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let on = self
            .upgrade
            .take()
            .ok_or_else(|| bad("The connection cannot be upgraded."))?;
        let permit = self
            .permit
            .as_ref()
            .and_then(|p| p.lock().ok().and_then(|mut g| g.take()));
        Ok(WsUpgrade {
            accept_key,
            on,
            permit,
        })
    }

    /// The connection's permit (a WebSocket upgrade takes it along).
    pub(crate) fn set_permit(&mut self, permit: super::ConnPermit) {
        self.permit = Some(permit);
    }

    /// A path parameter (always present when the route matched).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    /// The first value of a query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_map(&self) -> Map<String, Value> {
        self.query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Headers as PocketBase exposes them to rules: lower case, `-` → `_`.
    pub fn headers_map(&self) -> Map<String, Value> {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str().ok().map(|v| {
                    (
                        k.as_str()
                            .chars()
                            .map(|c| {
                                if c == '-' {
                                    '_'
                                } else {
                                    c.to_ascii_lowercase()
                                }
                            })
                            .collect::<String>(),
                        Value::String(v.to_string()),
                    )
                })
            })
            .collect()
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    /// The body as a JSON object. Empty bodies are `{}`. Form bodies
    /// (urlencoded or multipart) are bound as PocketBase binds them (see
    /// `http::form`): to the route's form shape, `@jsonPayload` merged.
    pub fn json_body(&self) -> ApiResult<Map<String, Value>> {
        self.json_body_or("An error occurred while loading the submitted data.")
    }

    /// Like `json_body`, with the message to answer malformed input with
    /// (PocketBase words it differently per endpoint).
    pub fn json_body_or(&self, malformed: &str) -> ApiResult<Map<String, Value>> {
        if self.body.is_empty() {
            return Ok(Map::new());
        }
        let ct = self.content_type();
        if let Some(kind) = form::kind(ct) {
            let f = form::read(kind, ct, &self.body, &self.query, malformed)?;
            return form::bind(&f.values, self.form_shape.as_ref(), malformed);
        }
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err(ApiError::bad("Unsupported Content-Type."));
        }
        form::check_json_depth(&self.body, form::MAX_JSON_DEPTH)
            .map_err(|_| ApiError::bad(malformed))?;
        // Like Go's decoder, trailing bytes after the first value are ignored.
        let mut de = serde_json::Deserializer::from_slice(&self.body).into_iter::<Value>();
        match de.next().unwrap_or(Ok(Value::Null)) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(Value::Null) => Ok(Map::new()),
            Ok(_) | Err(_) => Err(ApiError::bad(malformed)),
        }
    }

    /// A streamed route's body read whole after all (it is not a multipart
    /// upload), under the same cap: afterwards `body`, `json_body` and the
    /// rest work as on any route.
    pub async fn read_body(&mut self) -> ApiResult<()> {
        let taken = match self.stream.lock() {
            Ok(mut s) => s.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some((body, limit)) = taken else {
            return Ok(());
        };
        let budget = self
            .budget
            .get_or_insert_with(|| super::budget::ByteBudget::new(u64::MAX))
            .clone();
        let declared = self
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        let (body, charge) = super::budget::read_charged(body, limit, declared, &budget).await?;
        self.body = body;
        self.charge = Some(charge);
        Ok(())
    }

    /// Charges `total` bytes of this request's body held in memory (a
    /// streamed form's text, read as it arrives) to the budget of bodies in
    /// flight, until the request is done: 429 over it.
    pub fn hold_body_bytes(&mut self, total: u64) -> ApiResult<()> {
        let Some(budget) = self.budget.clone() else {
            return Ok(());
        };
        if total > budget.largest() {
            return Err(ApiError::TooLarge("Request entity too large.".into()));
        }
        let charge = match &mut self.charge {
            Some(c) => c,
            None => self
                .charge
                .insert(budget.charge(0).ok_or_else(super::budget::busy)?),
        };
        if charge.grow_to(total) {
            Ok(())
        } else {
            Err(super::budget::busy())
        }
    }

    /// Whether the body is multipart form data.
    pub fn is_multipart(&self) -> bool {
        form::kind(self.content_type()) == Some(form::Kind::Multipart)
    }

    /// Whether the body is an urlencoded form.
    pub fn is_urlencoded(&self) -> bool {
        form::kind(self.content_type()) == Some(form::Kind::UrlEncoded)
    }

    /// The body as any JSON value (for endpoints taking arrays).
    pub fn json_value(&self) -> ApiResult<Value> {
        if self.body.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        form::check_json_depth(&self.body, form::MAX_JSON_DEPTH)?;
        serde_json::from_slice(&self.body).map_err(|_| {
            ApiError::bad("Failed to load the submitted data due to invalid formatting.")
        })
    }
}
