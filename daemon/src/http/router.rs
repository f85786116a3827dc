//! Routes and their lookup. The server knows no route of its own: the
//! application hands it a table of `Route`s (keepd's is `api::routes`).

use super::{Req, Resp};
use crate::error::{ApiError, ApiResult};
use hyper::Method;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFut = Pin<Box<dyn Future<Output = ApiResult<Resp>> + Send>>;

/// A handler: the application's state and the request, to the answer.
pub type Handler<S> = fn(Arc<S>, Req) -> BoxFut;

/// One route: method, path pattern (matchit's `{param}` syntax), handler,
/// and what the server needs to know of it before the handler runs.
pub struct Route<S> {
    pub method: Method,
    pub pattern: &'static str,
    pub handler: Handler<S>,
    /// Rate-limit tags (PocketBase's `<collection>:<tag>` labels).
    pub tags: &'static [&'static str],
    /// The body is handed to the handler as a stream
    /// (`Req::streamed_form`) instead of being read whole first.
    pub streams_body: bool,
    /// A long-lived event stream: when it is the first request of a fresh
    /// connection it is served on the raw socket (`http::stream`).
    pub event_stream: bool,
    /// The shape form bodies bind to (see `http::form`); None: every key's
    /// first value as text.
    pub form: Option<fn(&S) -> Value>,
}

impl<S> Route<S> {
    pub fn new(method: Method, pattern: &'static str, handler: Handler<S>) -> Route<S> {
        Route {
            method,
            pattern,
            handler,
            tags: &[],
            streams_body: false,
            event_stream: false,
            form: None,
        }
    }
    pub fn tags(mut self, tags: &'static [&'static str]) -> Route<S> {
        self.tags = tags;
        self
    }
    pub fn streams_body(mut self) -> Route<S> {
        self.streams_body = true;
        self
    }
    pub fn event_stream(mut self) -> Route<S> {
        self.event_stream = true;
        self
    }
    pub fn form(mut self, shape: fn(&S) -> Value) -> Route<S> {
        self.form = Some(shape);
        self
    }
}

/// A matched route with its path parameters (percent-decoded).
pub struct Found<'a, S> {
    pub route: &'a Route<S>,
    pub params: Vec<(String, String)>,
}

pub struct Router<S> {
    inner: matchit::Router<Vec<usize>>,
    routes: Vec<Route<S>>,
}

impl<S> Router<S> {
    /// Builds the lookup; an invalid or conflicting pattern is a bug in the
    /// table and stops the start.
    pub fn new(routes: Vec<Route<S>>) -> anyhow::Result<Router<S>> {
        let mut by_path: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match by_path.iter_mut().find(|(p, _)| *p == r.pattern) {
                Some((_, v)) => v.push(i),
                None => by_path.push((r.pattern, vec![i])),
            }
        }
        let mut inner = matchit::Router::new();
        for (p, v) in by_path {
            inner
                .insert(p, v)
                .map_err(|e| anyhow::anyhow!("route {p}: {e}"))?;
        }
        Ok(Router { inner, routes })
    }

    /// The route of a request.
    pub fn find(&self, method: &Method, path: &str) -> ApiResult<Found<'_, S>> {
        let m = self
            .inner
            .at(path)
            .map_err(|_| ApiError::NotFound("File not found.".into()))?;
        // PocketBase answers a wrong method on a known path with 404 too.
        let route = m
            .value
            .iter()
            .map(|i| &self.routes[*i])
            .find(|r| r.method == *method)
            .ok_or_else(ApiError::not_found)?;
        let params = m
            .params
            .iter()
            .map(|(k, v)| {
                // Nothing to decode in most (ids, names): copied as is.
                let v = if v.contains('%') {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                } else {
                    v.to_owned()
                };
                (k.to_string(), v)
            })
            .collect();
        Ok(Found { route, params })
    }

    /// The path of the GET route marked as an event stream, if any.
    pub fn event_stream_path(&self) -> Option<&'static str> {
        self.routes
            .iter()
            .find(|r| r.event_stream && r.method == Method::GET)
            .map(|r| r.pattern)
    }
}
