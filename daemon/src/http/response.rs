//! Responses: JSON bodies and PocketBase's headers.

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;

pub struct Resp {
    pub status: u16,
    pub body: Bytes,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    pub fn json(status: u16, v: &Value) -> Resp {
        Resp {
            status,
            body: Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
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
            content_type: "text/html; charset=utf-8",
            headers: vec![("location", href)],
        }
    }

    pub fn error(e: &ApiError) -> Resp {
        let mut r = Resp::json(e.status(), &e.to_body());
        if let ApiError::TooManyRequests { retry_after, .. } = e {
            r.headers.push(("retry-after", retry_after.to_string()));
        }
        r
    }

    pub fn into_hyper(self) -> hyper::Response<Full<Bytes>> {
        let mut b = hyper::Response::builder()
            .status(self.status)
            .header("access-control-allow-origin", "*")
            .header(
                "access-control-allow-methods",
                "GET, HEAD, PUT, PATCH, POST, DELETE",
            )
            .header("access-control-allow-headers", "*")
            .header("x-content-type-options", "nosniff")
            .header("x-frame-options", "SAMEORIGIN")
            .header("x-xss-protection", "1; mode=block")
            .header("cross-origin-opener-policy", "same-origin")
            .header("vary", "Origin");
        if !self.content_type.is_empty() {
            b = b.header("content-type", self.content_type);
        }
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body)).unwrap_or_else(|_| {
            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}
