//! Sync routes (`/api/sync/*`): HTTP in, `sync::*` call, HTTP out.
//!
//! Device routes (hub only, HTTPS only, `Authorization: KeepdDevice …`):
//! enrol, push, pull, snapshot, schema, blobs. Superuser routes (both
//! sides): devices (hub), synced collections (hub), status, conflicts,
//! rejected changes.

use super::require_superuser;
use crate::app::App;
use crate::config::SyncRole;
use crate::error::{ApiError, ApiResult};
use crate::http::{Method, Req, Resp};
use crate::store::sync as ss;
use crate::sync::frame::{self, Msg};
use crate::sync::{self, hub, Sync};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The hub's sync state; 404 on a keepd that isn't a hub.
fn hub_of(app: &App) -> ApiResult<&Arc<Sync>> {
    let s = sync::of(app)?;
    if s.role != SyncRole::Hub {
        return Err(ApiError::NotFound("This keepd is not a sync hub.".into()));
    }
    Ok(s)
}

/// Device routes are served over TLS only (or from a trusted proxy that
/// terminates it).
fn require_secure(app: &App, req: &Req) -> ApiResult<()> {
    let from_proxy = app
        .trusted
        .iter()
        .any(|n| crate::auth::limiter::in_net(req.peer.ip(), *n));
    if req.tls || from_proxy {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "Sync is served over HTTPS only.".into(),
        ))
    }
}

fn frame_resp(status: u16, msg: &Msg) -> Resp {
    Resp {
        status,
        body: Bytes::from(hub::encode(msg)),
        stream: None,
        content_type: frame::CONTENT_TYPE,
        headers: Vec::new(),
    }
}

async fn device(app: &Arc<App>, req: &Req) -> ApiResult<(Arc<Sync>, hub::DeviceAuth)> {
    let s = hub_of(app)?.clone();
    require_secure(app, req)?;
    let d = hub::authenticate(app, &s, req.header("authorization")).await?;
    Ok((s, d))
}

fn q_u64(req: &Req, k: &str, default: u64) -> u64 {
    req.q(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `POST /api/sync/enrol` `{token, secret}` → `{device, hubMs}`.
pub async fn enrol(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    hub_of(&app)?;
    require_secure(&app, &req)?;
    let body = req.json_body()?;
    let token = body
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = body
        .get("secret")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let e = hub::enrol(&app, token, secret).await?;
    Ok(Resp::ok(&json!({"device": e.device, "hubMs": e.hub_ms})))
}

/// `POST /api/sync/push`: a `Push` frame → a `PushAck` frame.
pub async fn push(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (s, d) = device(&app, &req).await?;
    let cap = s.cfg.max_batch_bytes;
    if req.body.len() > cap {
        return Err(ApiError::TooLarge(format!(
            "A push may be at most {cap} bytes (sync.max_batch_bytes)."
        )));
    }
    let msg = frame::decode(&req.body, cap.saturating_mul(8)).map_err(|e| match e {
        frame::FrameError::TooLarge(_) => ApiError::TooLarge(e.to_string()),
        other => ApiError::bad(other.to_string()),
    })?;
    let Msg::Push(p) = msg else {
        return Err(ApiError::bad("Expected a push frame."));
    };
    let ack = hub::push(&app, &s, &d, p).await?;
    Ok(frame_resp(200, &Msg::PushAck(ack)))
}

/// `GET /api/sync/pull?cursor=N&max=BYTES&wait=SECS`: a `Pull` frame, or
/// 410 with a `Gone` frame when the cursor is older than the log kept.
pub async fn pull(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (s, d) = device(&app, &req).await?;
    let cursor = q_u64(&req, "cursor", 0);
    let max = q_u64(&req, "max", s.cfg.max_batch_bytes as u64) as usize;
    let wait = q_u64(&req, "wait", 0).min(300);
    match hub::pull(&app, &s, &d, cursor, max, Duration::from_secs(wait)).await? {
        hub::Pulled::Changes(p) => Ok(frame_resp(200, &Msg::Pull(p))),
        hub::Pulled::Gone(g) => Ok(frame_resp(410, &Msg::Gone(g))),
    }
}

/// `GET /api/sync/snapshot?collection=ID&after=ID&limit=N`: one page.
pub async fn snapshot(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (s, d) = device(&app, &req).await?;
    let coll = req.q("collection").unwrap_or_default().to_string();
    let after = req.q("after").unwrap_or_default().to_string();
    let limit = q_u64(&req, "limit", 500) as i64;
    let snap = hub::snapshot(&app, &s, &d, &coll, &after, limit).await?;
    Ok(frame_resp(200, &Msg::Snapshot(snap)))
}

/// `GET /api/sync/schema`: the synced collections and their definitions.
pub async fn schema(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (s, _) = device(&app, &req).await?;
    Ok(Resp::ok(&hub::schema_json(&app, &s)))
}

/// `HEAD|GET|PUT /api/sync/blobs/{sha256}`: whether the hub has a file's
/// content, the content, or a device's upload of it (its hash checked).
pub async fn blob(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    device(&app, &req).await?;
    let sha = req.param("sha256").to_string();
    use crate::sync::files;
    match req.method {
        Method::PUT => {
            files::put_blob(&app, &sha, req.body.clone()).await?;
            Ok(Resp::empty(204))
        }
        Method::HEAD => Ok(Resp::empty(if files::has_blob(&app, &sha).await? {
            200
        } else {
            404
        })),
        _ => Ok(Resp {
            status: 200,
            body: Bytes::from(files::get_blob(&app, &sha).await?),
            stream: None,
            content_type: "application/octet-stream",
            headers: Vec::new(),
        }),
    }
}

// ---------------------------------------------------------------------------
// Superusers

/// `GET /api/sync/devices`.
pub async fn devices(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    hub_of(&app)?;
    let list = hub::list_devices(&app).await?;
    Ok(Resp::ok(&json!({"items": list})))
}

/// `POST /api/sync/devices` `{name}` → the device and its enrolment token
/// (shown once).
pub async fn create_device(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    hub_of(&app)?;
    let body = req.json_body().unwrap_or_default();
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let (dev, token) = hub::create_device(&app, name).await?;
    audit(&app, &req, "sync.device.create", &dev["id"]).await;
    Ok(Resp::ok(&json!({"device": dev, "token": token,
        "expires": app.config.sync.enrol_ttl_secs})))
}

/// `POST /api/sync/devices/{id}/token`: a new enrolment token.
pub async fn device_token(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    hub_of(&app)?;
    let id = req.param("id").to_string();
    let token = hub::renew_token(&app, &id).await?;
    audit(&app, &req, "sync.device.token", &json!(id)).await;
    Ok(Resp::ok(
        &json!({"token": token, "expires": app.config.sync.enrol_ttl_secs}),
    ))
}

/// `DELETE /api/sync/devices/{id}`: revokes the device at once.
pub async fn revoke_device(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    hub_of(&app)?;
    let id = req.param("id").to_string();
    hub::revoke(&app, &id).await?;
    audit(&app, &req, "sync.device.revoke", &json!(id)).await;
    Ok(Resp::empty(204))
}

/// `GET /api/sync/collections`.
pub async fn collections(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let s = sync::of(&app)?;
    Ok(Resp::ok(&hub::schema_json(&app, s)))
}

/// `PUT /api/sync/collections` `[{collection, direction}]` (hub).
pub async fn set_collections(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let s = hub_of(&app)?.clone();
    let v = req.json_value()?;
    let out = hub::set_collections(&app, &s, &v).await?;
    audit(&app, &req, "sync.collections", &v).await;
    Ok(Resp::ok(&out))
}

/// `GET /api/sync/status`.
pub async fn status(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let role = sync::of(&app)?.role;
    let v = app
        .store
        .read(move |c| sync::device::status_json(c, role))
        .await?;
    Ok(Resp::ok(&v))
}

fn page(req: &Req) -> (i64, i64) {
    let before = req.q("before").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = req
        .q("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100i64)
        .clamp(1, 1000);
    (before, limit)
}

/// `GET /api/sync/conflicts?before=ID&limit=N`: newest first.
pub async fn conflicts(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    sync::of(&app)?;
    let (before, limit) = page(&req);
    let rows = app
        .store
        .read(move |c| ss::conflicts(c, before, limit))
        .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|x| {
            json!({"id": x.id, "collectionId": x.collection, "recordId": x.record,
                "field": x.field, "kept": x.kept, "keptHlc": x.kept_hlc, "keptBy": x.kept_by,
                "lost": x.lost, "lostHlc": x.lost_hlc, "lostBy": x.lost_by, "why": x.why,
                "created": x.created})
        })
        .collect();
    Ok(Resp::ok(&json!({"items": items})))
}

/// `GET /api/sync/rejected?before=ID&limit=N`: newest first.
pub async fn rejected(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    sync::of(&app)?;
    let (before, limit) = page(&req);
    let rows = app
        .store
        .read(move |c| ss::rejected(c, before, limit))
        .await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|x| {
            json!({"id": x.id, "device": x.device, "seq": x.seq, "hlc": x.hlc,
                "collectionId": x.collection, "recordId": x.record, "op": x.op,
                "fields": x.fields, "status": x.status, "reason": x.reason, "created": x.created})
        })
        .collect();
    Ok(Resp::ok(&json!({"items": items})))
}

async fn audit(app: &App, req: &Req, action: &'static str, target: &Value) {
    app.audit(crate::store::audit::Entry {
        action,
        actor: super::auth::actor(req),
        ip: req.client_ip.to_string(),
        target: format!("sync/{}", target.as_str().unwrap_or("collections")),
        diff: json!({}),
    })
    .await;
}
