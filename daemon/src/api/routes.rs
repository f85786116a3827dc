//! The route table — every route keepd serves, top to bottom — and what
//! the HTTP server asks of keepd before a handler runs (`http::Site`):
//! the caller's identity, the client's address, admission (PocketBase's
//! rate limits and `superuserIPs`) and the body cap of a route.
//!
//! `lib::run` hands both to `http::serve`; the server itself knows no
//! route and no PocketBase rule.

use super::{
    audit, auth, auth_email, auth_oauth2, auth_otp, auth_totp, backups, batch, collections,
    console, crons, files, health, logs, realtime, records, rules, settings, sync,
};
use crate::app::App;
use crate::auth::limiter::Label;
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::http::{Answered, BoxFut, Handler, Head, HeaderMap, Method, Req, Route, Site};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

macro_rules! h {
    ($f:path) => {{
        fn wrap(app: Arc<App>, req: Req) -> BoxFut {
            Box::pin($f(app, req))
        }
        wrap as Handler<App>
    }};
}

fn get(p: &'static str, h: Handler<App>) -> Route<App> {
    Route::new(Method::GET, p, h)
}
fn post(p: &'static str, h: Handler<App>) -> Route<App> {
    Route::new(Method::POST, p, h)
}
fn patch(p: &'static str, h: Handler<App>) -> Route<App> {
    Route::new(Method::PATCH, p, h)
}
fn put(p: &'static str, h: Handler<App>) -> Route<App> {
    Route::new(Method::PUT, p, h)
}
fn delete(p: &'static str, h: Handler<App>) -> Route<App> {
    Route::new(Method::DELETE, p, h)
}
fn head(p: &'static str, h: Handler<App>) -> Route<App> {
    Route::new(Method::HEAD, p, h)
}

/// PocketBase's v0.23+ Web API, with the rate-limit tags of each
/// collection route and the shape form bodies bind to where a field is
/// not text (see `http::form`).
pub fn table() -> Vec<Route<App>> {
    #[allow(unused_mut)]
    let mut routes = vec![
        get("/api/health", h!(health::health)),
        head("/api/health", h!(health::health)),
        // Collections (superusers only).
        get("/api/collections", h!(collections::list)),
        post("/api/collections", h!(collections::create)).form(collection_form),
        put("/api/collections/import", h!(collections::import))
            .form(|_| json!({"collections": null, "deleteMissing": false})),
        get(
            "/api/collections/meta/scaffolds",
            h!(collections::scaffolds),
        ),
        post(
            "/api/collections/meta/dry-run-view",
            h!(collections::dry_run_view),
        ),
        get(
            "/api/collections/meta/oauth2-providers",
            h!(collections::oauth2_providers),
        ),
        get("/api/collections/{collection}", h!(collections::view)),
        patch("/api/collections/{collection}", h!(collections::update)).form(collection_form),
        delete("/api/collections/{collection}", h!(collections::delete)),
        delete(
            "/api/collections/{collection}/truncate",
            h!(collections::truncate),
        ),
        // Records.
        get("/api/collections/{collection}/records", h!(records::list)).tags(&["list"]),
        // Record writes and batches stream: their files spill to disk as
        // they arrive (`api::bodies`).
        post("/api/collections/{collection}/records", h!(records::create))
            .tags(&["create"])
            .streams_body(),
        get(
            "/api/collections/{collection}/records/{id}",
            h!(records::view),
        )
        .tags(&["view"]),
        patch(
            "/api/collections/{collection}/records/{id}",
            h!(records::update),
        )
        .tags(&["update"])
        .streams_body(),
        delete(
            "/api/collections/{collection}/records/{id}",
            h!(records::delete),
        )
        .tags(&["delete"]),
        // Auth.
        get(
            "/api/collections/{collection}/auth-methods",
            h!(auth::methods),
        )
        .tags(&["listAuthMethods"]),
        post(
            "/api/collections/{collection}/auth-with-password",
            h!(auth::with_password),
        )
        .tags(&["authWithPassword", "auth"]),
        post(
            "/api/collections/{collection}/auth-refresh",
            h!(auth::refresh),
        )
        .tags(&["authRefresh"]),
        post(
            "/api/collections/{collection}/impersonate/{id}",
            h!(auth::impersonate),
        )
        .form(|_| json!({"duration": 0})),
        post(
            "/api/collections/{collection}/request-otp",
            h!(auth_otp::request_otp),
        )
        .tags(&["requestOTP"]),
        post(
            "/api/collections/{collection}/auth-with-otp",
            h!(auth_otp::auth_with_otp),
        )
        .tags(&["authWithOTP", "auth"]),
        post(
            "/api/collections/{collection}/auth-with-oauth2",
            h!(auth_oauth2::auth_with_oauth2),
        )
        .tags(&["authWithOAuth2", "auth"])
        .form(|_| {
            json!({"provider": "", "code": "", "codeVerifier": "", "redirectURL": "",
                "redirectUrl": "", "createData": null})
        }),
        get("/api/oauth2-redirect", h!(auth_oauth2::redirect)),
        post("/api/oauth2-redirect", h!(auth_oauth2::redirect)),
        get("/api/collections/{collection}/totp", h!(auth_totp::status)),
        post(
            "/api/collections/{collection}/totp/enroll",
            h!(auth_totp::enroll),
        ),
        post(
            "/api/collections/{collection}/totp/confirm",
            h!(auth_totp::confirm),
        ),
        post(
            "/api/collections/{collection}/totp/disable",
            h!(auth_totp::disable),
        ),
        post(
            "/api/collections/{collection}/auth-with-totp",
            h!(auth_totp::auth_with_totp),
        )
        .tags(&["authWithTOTP", "auth"]),
        post(
            "/api/collections/{collection}/request-verification",
            h!(auth_email::request_verification),
        )
        .tags(&["requestVerification"]),
        post(
            "/api/collections/{collection}/confirm-verification",
            h!(auth_email::confirm_verification),
        )
        .tags(&["confirmVerification"]),
        post(
            "/api/collections/{collection}/request-password-reset",
            h!(auth_email::request_password_reset),
        )
        .tags(&["requestPasswordReset"]),
        post(
            "/api/collections/{collection}/confirm-password-reset",
            h!(auth_email::confirm_password_reset),
        )
        .tags(&["confirmPasswordReset"]),
        post(
            "/api/collections/{collection}/request-email-change",
            h!(auth_email::request_email_change),
        )
        .tags(&["requestEmailChange"]),
        post(
            "/api/collections/{collection}/confirm-email-change",
            h!(auth_email::confirm_email_change),
        )
        .tags(&["confirmEmailChange"]),
        // Backups (superusers; downloads by superuser file token).
        get("/api/backups", h!(backups::list)),
        post("/api/backups", h!(backups::create)),
        post("/api/backups/upload", h!(backups::upload)).streams_body(),
        get("/api/backups/{key}", h!(backups::download)),
        delete("/api/backups/{key}", h!(backups::delete)),
        post("/api/backups/{key}/restore", h!(backups::restore)),
        // Files.
        post("/api/files/token", h!(files::token)),
        get(
            "/api/files/{collection}/{recordId}/{filename}",
            h!(files::download),
        )
        .tags(&["file"]),
        // Realtime (SSE; WebSocket on the same path).
        get("/api/realtime", h!(realtime::connect)).event_stream(),
        post("/api/realtime", h!(realtime::subscribe))
            .form(|_| json!({"clientId": "", "subscriptions": []})),
        // Batch and settings.
        post("/api/batch", h!(batch::batch)).streams_body(),
        get("/api/settings", h!(settings::get)),
        // keepd's security operations (superusers): audit log, lockouts.
        get("/api/audit", h!(audit::list)),
        get("/api/lockouts", h!(audit::lockouts)),
        get("/api/writer", h!(health::writer)),
        delete("/api/lockouts/{collection}/{recordId}", h!(audit::unlock)),
        get(
            "/api/totp/{collection}/{recordId}",
            h!(auth_totp::status_for),
        ),
        // The console's rule tools (superusers).
        post("/api/rules/check", h!(rules::check_rule)),
        post("/api/rules/test", h!(rules::test_rule)),
        // A form binds into the settings as they are (PocketBase binds
        // into a copy of its settings).
        patch("/api/settings", h!(settings::update)).form(|app: &App| app.settings().to_json()),
        post("/api/settings/test/s3", h!(settings::test_s3)),
        post("/api/settings/test/email", h!(settings::test_email)),
        post(
            "/api/settings/apple/generate-client-secret",
            h!(settings::apple_client_secret),
        )
        .form(|_| json!({"duration": 0})),
        // Logs (the in-memory request log) and crons (superusers).
        get("/api/logs", h!(logs::list)),
        get("/api/logs/stats", h!(logs::stats)),
        get("/api/logs/{id}", h!(logs::view)),
        delete("/api/logs", h!(logs::clear)),
        get("/api/crons", h!(crons::list)),
        post("/api/crons/{id}", h!(crons::run)),
        // keepd's cloud sync (api::sync): device routes, then superusers'.
        post("/api/sync/enrol", h!(sync::enrol)),
        post("/api/sync/push", h!(sync::push)),
        get("/api/sync/pull", h!(sync::pull)),
        get("/api/sync/snapshot", h!(sync::snapshot)),
        get("/api/sync/schema", h!(sync::schema)),
        head("/api/sync/blobs/{sha256}", h!(sync::blob)),
        get("/api/sync/blobs/{sha256}", h!(sync::blob)),
        put("/api/sync/blobs/{sha256}", h!(sync::blob)),
        get("/api/sync/devices", h!(sync::devices)),
        post("/api/sync/devices", h!(sync::create_device)),
        post("/api/sync/devices/{id}/token", h!(sync::device_token)),
        delete("/api/sync/devices/{id}", h!(sync::revoke_device)),
        get("/api/sync/collections", h!(sync::collections)),
        put("/api/sync/collections", h!(sync::set_collections)),
        get("/api/sync/status", h!(sync::status)),
        get("/api/sync/conflicts", h!(sync::conflicts)),
        get("/api/sync/rejected", h!(sync::rejected)),
        // The console (ui/dist, embedded; api::console).
        get("/_", h!(console::redirect)),
        head("/_", h!(console::redirect)),
        get("/_/", h!(console::index)),
        head("/_/", h!(console::index)),
        get("/_/{file}", h!(console::file)),
        head("/_/{file}", h!(console::file)),
    ];
    #[cfg(feature = "panic-test")]
    routes.push(get("/api/__panic", h!(panic_test)));
    routes
}

/// The fields of a collection a form can set (PocketBase's `form` tags):
/// text, booleans, numbers and lists of text; `fields` and the OAuth2
/// providers only through `@jsonPayload`.
fn collection_form(_: &App) -> Value {
    let template = json!({"subject": "", "body": ""});
    let token = json!({"secret": "", "duration": 0});
    json!({
        "name": "", "type": "", "system": false, "fields": null, "indexes": [],
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "viewQuery": "", "authRule": "", "manageRule": "",
        "authAlert": {"enabled": false, "emailTemplate": template},
        "oauth2": {"enabled": false, "providers": null,
            "mappedFields": {"id": "", "name": "", "username": "", "avatarURL": ""}},
        "passwordAuth": {"enabled": false, "identityFields": []},
        "mfa": {"enabled": false, "duration": 0, "rule": ""},
        "otp": {"enabled": false, "duration": 0, "length": 0, "emailTemplate": template},
        "authToken": token, "passwordResetToken": token, "emailChangeToken": token,
        "verificationToken": token, "fileToken": token,
        "verificationTemplate": template, "resetPasswordTemplate": template,
        "confirmEmailChangeTemplate": template,
    })
}

/// A route that panics, compiled only with the `panic-test` feature: the
/// integration tests prove with it that a panicking request is answered
/// with a 500 and the daemon serves the next one. `?in=read` panics inside
/// a read on the reader pool, `?in=write` inside a write on the writer
/// thread, anything else in the handler itself.
#[cfg(feature = "panic-test")]
async fn panic_test(app: Arc<App>, req: Req) -> ApiResult<crate::http::Resp> {
    match req.q("in") {
        Some("read") => {
            app.store
                .read(|_| -> ApiResult<()> { panic!("panic-test read") })
                .await?
        }
        Some("write") => {
            app.store
                .write(|_| -> ApiResult<()> { panic!("panic-test write") })
                .await?
        }
        _ => panic!("panic-test route"),
    }
    Ok(crate::http::Resp::empty(204))
}

impl Site for App {
    fn identity(&self, headers: &HeaderMap) -> ApiResult<Identity> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        super::identity::resolve(self, auth)
    }

    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        crate::http::client_ip::client_ip(
            peer,
            headers,
            &self.trusted,
            &self.settings().trusted_proxy,
        )
    }

    /// With an admin listener (`admin_http`), requests off it see no
    /// console (`/_/…` is 404) and no route of the `_superusers`
    /// collection (sign-in, OTP, records: 403). Then PocketBase's order:
    /// the rate limit, then (the token having been read) where a superuser
    /// may be served from (the admin listener, `superuserIPs`).
    fn admit(&self, head: &Head<'_>, identity: &Identity, ip: IpAddr) -> ApiResult<()> {
        if !head.admin && self.config.admin_addr().is_some() {
            if is_console(head.path) {
                return Err(ApiError::not_found());
            }
            if names_superusers(self, head) {
                return Err(ApiError::Forbidden(
                    "You are not allowed to perform this request.".into(),
                ));
            }
        }
        rate_limit(self, head, identity, ip)?;
        if identity.is_superuser() && !super::superuser_allowed(self, ip, head.admin) {
            return Err(ApiError::Forbidden(
                "You are not allowed to perform this request.".into(),
            ));
        }
        Ok(())
    }

    /// The configured maximum; the realtime subscription form its own;
    /// backup uploads (streamed) theirs; record writes room for the
    /// collection's large fields (PocketBase's rule: editor `maxSize` or
    /// 5 MiB, json `maxSize` or 1 MiB, file `maxSize` (or the default) ×
    /// `maxSelect`, each).
    fn body_limit(&self, head: &Head<'_>) -> u64 {
        let cfg = &self.config;
        let Some(route) = &head.route else {
            return cfg.max_body_bytes as u64;
        };
        if route.pattern == "/api/backups/upload" {
            return cfg.max_backup_upload_bytes;
        }
        if route.pattern == "/api/realtime" {
            return cfg.realtime_max_body_bytes as u64;
        }
        let base = cfg.max_body_bytes as u64;
        let is_record_write = matches!(*head.method, Method::POST | Method::PATCH)
            && route
                .pattern
                .starts_with("/api/collections/{collection}/records");
        if !is_record_write {
            return base;
        }
        let schema = self.store.schema();
        let Some(c) = route.param("collection").and_then(|n| schema.get(n)) else {
            return base;
        };
        use crate::schema::FieldKind;
        let extra: i64 = c
            .fields
            .iter()
            .map(|f| match &f.kind {
                FieldKind::Editor(o) if o.max_size > 0 => o.max_size,
                FieldKind::Editor(_) => 5 << 20,
                FieldKind::Json(o) if o.max_size > 0 => o.max_size,
                FieldKind::Json(_) => 1 << 20,
                FieldKind::File(o) => {
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
        base.saturating_add(extra.max(0) as u64)
    }

    fn stopping(&self) {
        self.realtime.close_all();
    }

    /// Into the request log (`api::logs`, memory only).
    fn answered(&self, done: &Answered<'_>) {
        self.request_log.record(done);
    }
}

/// The console: `/_` and every path under `/_/` (its routes are
/// registered with patterns starting `/_/`).
fn is_console(path: &str) -> bool {
    path == "/_" || path.starts_with("/_/")
}

/// Whether a matched route's `{collection}` is `_superusers` (by name or id).
fn names_superusers(app: &App, head: &Head<'_>) -> bool {
    let Some(name) = head.route.as_ref().and_then(|r| r.param("collection")) else {
        return false;
    };
    if name == "_superusers" {
        return true;
    }
    app.store
        .schema()
        .get(name)
        .is_some_and(|c| c.name == "_superusers")
}

/// PocketBase's rate limiting (on by default in keepd): the first rule
/// matching the request's labels and the caller's audience counts the
/// request for the client's address; over it, 429 with Retry-After.
/// Superusers and `excludedIPs` are not limited. Labels: for a collection
/// route with tags, `<collection>:<tag>` and `*:<tag>`; then `METHOD
/// /path` and `/path` (every request, a route or not).
fn rate_limit(app: &App, head: &Head<'_>, identity: &Identity, ip: IpAddr) -> ApiResult<()> {
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
    let (pattern, tags) = match &head.route {
        Some(r) => (r.pattern, r.tags),
        None => ("", &[][..]),
    };
    let coll = head
        .route
        .as_ref()
        .and_then(|r| r.param("collection"))
        .and_then(|name| app.store.schema().get(name).cloned());
    let mut labels: Vec<Label<'_>> = Vec::with_capacity(tags.len() * 2 + 2);
    let mut id = String::new();
    if let (Some(c), false) = (&coll, tags.is_empty()) {
        id.push_str(&c.id);
        id.push_str(pattern);
        for t in tags {
            id.push_str(t);
            labels.push(Label([&c.name, ":", t]));
        }
        for t in tags {
            labels.push(Label(["*:", t, ""]));
        }
    }
    labels.push(Label([head.method.as_str(), " ", head.path]));
    labels.push(Label([head.path, "", ""]));
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_console_is_every_path_under_its_prefix() {
        for p in ["/_", "/_/", "/_/index.html", "/_/assets/app.js"] {
            assert!(super::is_console(p), "{p}");
        }
        for p in ["/", "/_x", "/__/", "/api/_/", "/api/health"] {
            assert!(!super::is_console(p), "{p}");
        }
    }
}
