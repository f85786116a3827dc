//! Responses: JSON bodies and PocketBase's headers; a streamed body for
//! the realtime event stream.

use crate::error::ApiError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use std::convert::Infallible;
use std::pin::Pin;

/// The body type of every response: a whole buffer (most) or a stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A streamed response body: chunks sent as they come.
pub type ByteStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// Headers on every response.
pub(crate) const COMMON_HEADERS: [(&str, &str); 8] = [
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-methods",
        "GET, HEAD, PUT, PATCH, POST, DELETE",
    ),
    ("access-control-allow-headers", "*"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-xss-protection", "1; mode=block"),
    ("cross-origin-opener-policy", "same-origin"),
    ("vary", "Origin"),
];

/// A file's bytes as a stream: `first` (already read), then the rest in
/// 256 KiB reads on the blocking pool, so a download holds one chunk at a
/// time whatever the file's size. A read error ends the stream early (the
/// client sees fewer bytes than the content-length said) and is logged.
pub fn file_stream(file: std::fs::File, first: Bytes) -> ByteStream {
    reader_stream(file, first)
}

/// `file_stream` of any blocking reader (an S3 object's body).
pub fn reader_stream<R: std::io::Read + Send + 'static>(file: R, first: Bytes) -> ByteStream {
    let head = futures_util::stream::iter((!first.is_empty()).then_some(first));
    let rest = futures_util::stream::unfold(Some(file), |file| async move {
        let mut f = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 << 10];
            let n = f.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((f, buf))
        })
        .await;
        match read {
            Ok(Ok((f, buf))) if !buf.is_empty() => Some((Bytes::from(buf), Some(f))),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "reading a file for download");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a file for download");
                None
            }
        }
    });
    Box::pin(head.chain(rest))
}

pub struct Resp {
    pub status: u16,
    pub body: Bytes,
    /// When set, the body is streamed from here instead of `body`.
    pub stream: Option<ByteStream>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    pub fn json(status: u16, v: &Value) -> Resp {
        Resp {
            status,
            body: Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            stream: None,
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    /// 200 with a JSON text already encoded.
    pub fn ok_json_bytes(body: Bytes) -> Resp {
        Resp {
            status: 200,
            body,
            stream: None,
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    pub fn ok(v: &Value) -> Resp {
        Resp::json(200, v)
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            body: Bytes::new(),
            stream: None,
            content_type: "",
            headers: Vec::new(),
        }
    }

    /// 307 to `location`, as PocketBase answers paths with `//`.
    pub fn redirect(location: &str) -> Resp {
        let href: String = location
            .chars()
            .filter(|c| !matches!(c, '"' | '<' | '>'))
            .collect();
        Resp {
            status: 307,
            body: Bytes::from(format!("<a href=\"{href}\">Temporary Redirect</a>.\n\n")),
            stream: None,
            content_type: "text/html; charset=utf-8",
            headers: vec![("location", href)],
        }
    }

    /// A `text/event-stream` response streaming `events` (as PocketBase
    /// answers `GET /api/realtime`).
    pub fn event_stream(events: impl Stream<Item = Bytes> + Send + 'static) -> Resp {
        Resp {
            status: 200,
            body: Bytes::new(),
            stream: Some(Box::pin(events)),
            content_type: "text/event-stream",
            headers: vec![
                ("cache-control", "no-store".into()),
                ("x-accel-buffering", "no".into()),
            ],
        }
    }

    /// `101 Switching Protocols` completing a WebSocket handshake.
    pub fn switching_to_websocket(accept_key: String) -> Resp {
        Resp {
            status: 101,
            body: Bytes::new(),
            stream: None,
            content_type: "",
            headers: vec![
                ("upgrade", "websocket".into()),
                ("connection", "Upgrade".into()),
                ("sec-websocket-accept", accept_key),
            ],
        }
    }

    pub fn error(e: &ApiError) -> Resp {
        let mut r = Resp::json(e.status(), &e.to_body());
        if let ApiError::TooManyRequests { retry_after, .. } = e {
            r.headers.push(("retry-after", retry_after.to_string()));
        }
        r
    }

    pub fn into_hyper(self) -> hyper::Response<Body> {
        use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
        // The fixed headers, parsed once; copying a static value is cheap.
        static COMMON: std::sync::OnceLock<Vec<(HeaderName, HeaderValue)>> =
            std::sync::OnceLock::new();
        let common = COMMON.get_or_init(|| {
            COMMON_HEADERS
                .iter()
                .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
                .collect()
        });
        let mut headers = HeaderMap::with_capacity(common.len() + 2 + self.headers.len());
        for (k, v) in common {
            // A response may set its own value of a common header (the
            // console's `x-frame-options: DENY`, its `vary`).
            if !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(k.as_str()))
            {
                headers.append(k.clone(), v.clone());
            }
        }
        if !self.content_type.is_empty() {
            headers.append(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        }
        for (k, v) in self.headers {
            // A name or value that is not valid in a header is dropped
            // rather than sent.
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                headers.append(k, v);
            }
        }
        let body = match self.stream {
            Some(s) => {
                StreamBody::new(s.map(|b| Ok::<_, Infallible>(Frame::data(b)))).boxed_unsync()
            }
            None => Full::new(self.body).boxed_unsync(),
        };
        let mut r = hyper::Response::new(body);
        *r.status_mut() = hyper::StatusCode::from_u16(self.status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        *r.headers_mut() = headers;
        r
    }
}
