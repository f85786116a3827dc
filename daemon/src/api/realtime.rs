//! `/api/realtime`: `GET` opens a client's event stream (SSE); `POST
//! {clientId, subscriptions}` replaces its subscriptions, taking the
//! request's auth for its events. The protocol is PocketBase's; the limits
//! (clients in total and per IP, subscriptions, topic length, body size,
//! queued events) are keepd's.

use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::realtime::{self, sse, ws, RegisterError, SubscribeError};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// PocketBase's generic message for a subscription request it cannot use.
const GENERIC: &str = "Something went wrong while processing your request.";

pub async fn connect(app: Arc<App>, mut req: Req) -> ApiResult<Resp> {
    // `Upgrade: websocket` asks for the WebSocket transport instead of SSE.
    let upgrade = if req.wants_websocket() {
        Some(req.websocket()?)
    } else {
        None
    };
    let reg = app
        .realtime
        .register(req.client_ip, req.closer.clone())
        .map_err(|e| {
            let message = match e {
                RegisterError::TooManyClients => {
                    "Too many realtime connections, please try again later."
                }
                RegisterError::TooManyForIp => {
                    "Too many realtime connections from your address, please try again later."
                }
            };
            ApiError::TooManyRequests {
                message: message.into(),
                retry_after: 5,
            }
        })?;
    tracing::debug!(client = %reg.id, "realtime connection established");
    let cfg = &app.config;
    if let Some(up) = upgrade {
        let opts = ws::WsOptions {
            keepalive: Some(Duration::from_secs(cfg.realtime_keepalive_secs)),
            idle: Duration::from_secs(cfg.realtime_idle_timeout_secs),
            max_life: Duration::from_secs(cfg.realtime_max_lifetime_secs),
            max_message: cfg.realtime_max_body_bytes,
        };
        let accept = up.accept_key.clone();
        let ip = req.client_ip;
        let admin = req.admin;
        let client: Arc<str> = reg.id.clone();
        let app = app.clone();
        tokio::spawn(async move {
            match up.io().await {
                Ok((io, _permit)) => {
                    let on_text = |text: String| {
                        let app = app.clone();
                        let client = client.clone();
                        async move { ws_message(&app, &client, ip, admin, &text).await }
                    };
                    ws::run(reg, io, opts, on_text).await;
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        return Ok(Resp::switching_to_websocket(accept));
    }
    let opts = sse::StreamOptions {
        keepalive: Some(Duration::from_secs(cfg.realtime_keepalive_secs)),
        idle: Duration::from_secs(cfg.realtime_idle_timeout_secs),
        max_life: Duration::from_secs(cfg.realtime_max_lifetime_secs),
    };
    Ok(Resp::event_stream(sse::stream(reg, opts)))
}

/// The subscription form: `clientId` a string, `subscriptions` a list of
/// strings (null or absent: none); anything else is PocketBase's generic 400.
fn parse_form(body: &Map<String, Value>) -> ApiResult<(String, Vec<String>)> {
    let generic = || ApiError::bad(GENERIC);
    let client = match body.get("clientId") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(generic()),
    };
    let subs = match body.get("subscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(generic))
            .collect::<ApiResult<Vec<_>>>()?,
        Some(_) => return Err(generic()),
    };
    Ok((client, subs))
}

/// PocketBase's form validation, with keepd's limits on the subscriptions.
fn validate(app: &App, client: &str, subs: &[String]) -> ApiResult<()> {
    let mut errs = FieldErrors::new();
    let n = client.chars().count();
    if n == 0 {
        errs.add("clientId", "validation_required", "Cannot be blank.");
    } else if n > 255 {
        errs.add_params(
            "clientId",
            "validation_length_out_of_range",
            "The length must be between 1 and 255.",
            json!({"max": 255, "min": 1}),
        );
    }
    let max_subs = app.config.realtime_max_subscriptions;
    let max_len = app.config.realtime_max_topic_len;
    if subs.len() > max_subs {
        errs.add_params(
            "subscriptions",
            "validation_length_too_long",
            format!("The length must be no more than {max_subs}."),
            json!({"max": max_subs, "min": 0}),
        );
    } else {
        let mut each = Map::new();
        for (i, s) in subs.iter().enumerate() {
            let e = if s.chars().count() > max_len {
                json!({
                    "code": "validation_length_too_long",
                    "message": format!("The length must be no more than {max_len}."),
                    "params": {"max": max_len, "min": 0},
                })
            } else if s.chars().any(char::is_control) {
                // A line break would end the SSE field the topic is sent in.
                json!({"code": "validation_match_invalid", "message": "Must be in a valid format."})
            } else {
                continue;
            };
            each.insert(i.to_string(), e);
        }
        if !each.is_empty() {
            errs.add_nested("subscriptions", Value::Object(each));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(GENERIC, errs))
    }
}

pub async fn subscribe(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let body = req.json_body_or(GENERIC)?;
    let (client, subs) = parse_form(&body)?;
    validate(&app, &client, &subs)?;
    app.realtime
        .set_subscriptions(&client, req.client_ip, req.identity.clone(), &subs)
        .map_err(|e| subscribe_error(&app, e))?;
    tracing::debug!(client = %client, count = subs.len(), "realtime subscriptions updated");
    Ok(Resp::empty(204))
}

/// A WebSocket client's in-band subscription request
/// `{"subscriptions": [...], "authorization": "<token>"}`: validated and
/// applied as `POST /api/realtime`, answered with `PB_SUBSCRIBED` (the
/// subscriptions) or `PB_ERROR` (PocketBase's error JSON).
async fn ws_message(
    app: &Arc<App>,
    client: &str,
    ip: std::net::IpAddr,
    admin: bool,
    text: &str,
) -> (&'static str, Vec<u8>) {
    let applied = async {
        let body = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => return Err(ApiError::bad(GENERIC)),
        };
        let (_, subs) = parse_form(&body)?;
        validate(app, client, &subs)?;
        let authorization = match body.get("authorization") {
            None | Some(Value::Null) => None,
            // What a header could carry (no control characters).
            Some(Value::String(t)) if t.bytes().all(|b| b == b'\t' || (32..127).contains(&b)) => {
                Some(t.as_str())
            }
            Some(_) => return Err(ApiError::bad(GENERIC)),
        };
        let identity = super::identity::resolve(app, authorization)?;
        if identity.is_superuser() && !super::superuser_allowed(app, ip, admin) {
            return Err(ApiError::Forbidden(
                "You are not allowed to perform this request.".into(),
            ));
        }
        app.realtime
            .set_subscriptions(client, ip, identity, &subs)
            .map_err(|e| subscribe_error(app, e))?;
        Ok(subs)
    };
    match applied.await {
        Ok(subs) => (
            "PB_SUBSCRIBED",
            serde_json::to_vec(&json!({ "subscriptions": subs })).unwrap_or_default(),
        ),
        Err(e) => (
            "PB_ERROR",
            serde_json::to_vec(&e.to_body()).unwrap_or_default(),
        ),
    }
}

fn subscribe_error(app: &App, e: SubscribeError) -> ApiError {
    match e {
        SubscribeError::UnknownClient => ApiError::NotFound("Missing or invalid client id.".into()),
        SubscribeError::OtherIp => ApiError::bad("Invalid realtime client."),
        SubscribeError::AuthMismatch => ApiError::Forbidden(
            "The current and the previous request authorization don't match.".into(),
        ),
        SubscribeError::TooMany => {
            let max = app.config.realtime_max_subscriptions;
            let mut errs = FieldErrors::new();
            errs.add_params(
                "subscriptions",
                "validation_length_too_long",
                format!("The length must be no more than {max}."),
                json!({"max": max, "min": 0}),
            );
            ApiError::validation(GENERIC, errs)
        }
    }
}

/// The renderer the fan-out uses.
pub const RENDERER: realtime::Renderer = crate::records::render::render_event;
