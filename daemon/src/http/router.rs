//! The route table: every route keepd serves, in one list, top to bottom.

use super::{Req, Resp};
use crate::api;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use hyper::Method;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFut = Pin<Box<dyn Future<Output = ApiResult<Resp>> + Send>>;
pub type Handler = fn(Arc<App>, Req) -> BoxFut;

macro_rules! h {
    ($f:path) => {{
        fn wrap(app: Arc<App>, req: Req) -> BoxFut {
            Box::pin($f(app, req))
        }
        wrap as Handler
    }};
}

/// (method, path, handler) — PocketBase's v0.23+ Web API.
fn routes() -> Vec<(Method, &'static str, Handler)> {
    use Method as M;
    vec![
        (M::GET, "/api/health", h!(api::health::health)),
        (M::HEAD, "/api/health", h!(api::health::health)),
        // Collections (superusers only).
        (M::GET, "/api/collections", h!(api::collections::list)),
        (M::POST, "/api/collections", h!(api::collections::create)),
        (
            M::PUT,
            "/api/collections/import",
            h!(api::collections::import),
        ),
        (
            M::GET,
            "/api/collections/meta/scaffolds",
            h!(api::collections::scaffolds),
        ),
        (
            M::GET,
            "/api/collections/{collection}",
            h!(api::collections::view),
        ),
        (
            M::PATCH,
            "/api/collections/{collection}",
            h!(api::collections::update),
        ),
        (
            M::DELETE,
            "/api/collections/{collection}",
            h!(api::collections::delete),
        ),
        (
            M::DELETE,
            "/api/collections/{collection}/truncate",
            h!(api::collections::truncate),
        ),
        // Records.
        (
            M::GET,
            "/api/collections/{collection}/records",
            h!(api::records::list),
        ),
        (
            M::POST,
            "/api/collections/{collection}/records",
            h!(api::records::create),
        ),
        (
            M::GET,
            "/api/collections/{collection}/records/{id}",
            h!(api::records::view),
        ),
        (
            M::PATCH,
            "/api/collections/{collection}/records/{id}",
            h!(api::records::update),
        ),
        (
            M::DELETE,
            "/api/collections/{collection}/records/{id}",
            h!(api::records::delete),
        ),
        // Auth.
        (
            M::GET,
            "/api/collections/{collection}/auth-methods",
            h!(api::auth::methods),
        ),
        (
            M::POST,
            "/api/collections/{collection}/auth-with-password",
            h!(api::auth::with_password),
        ),
        (
            M::POST,
            "/api/collections/{collection}/auth-refresh",
            h!(api::auth::refresh),
        ),
        (
            M::POST,
            "/api/collections/{collection}/impersonate/{id}",
            h!(api::auth::impersonate),
        ),
        (
            M::POST,
            "/api/collections/{collection}/request-otp",
            h!(api::auth_otp::request_otp),
        ),
        (
            M::POST,
            "/api/collections/{collection}/auth-with-otp",
            h!(api::auth_otp::auth_with_otp),
        ),
        (
            M::POST,
            "/api/collections/{collection}/auth-with-oauth2",
            h!(api::auth_oauth2::auth_with_oauth2),
        ),
        (
            M::GET,
            "/api/oauth2-redirect",
            h!(api::auth_oauth2::redirect),
        ),
        (
            M::POST,
            "/api/oauth2-redirect",
            h!(api::auth_oauth2::redirect),
        ),
        (
            M::GET,
            "/api/collections/{collection}/totp",
            h!(api::auth_totp::status),
        ),
        (
            M::POST,
            "/api/collections/{collection}/totp/enroll",
            h!(api::auth_totp::enroll),
        ),
        (
            M::POST,
            "/api/collections/{collection}/totp/confirm",
            h!(api::auth_totp::confirm),
        ),
        (
            M::POST,
            "/api/collections/{collection}/totp/disable",
            h!(api::auth_totp::disable),
        ),
        (
            M::POST,
            "/api/collections/{collection}/auth-with-totp",
            h!(api::auth_totp::auth_with_totp),
        ),
        (
            M::POST,
            "/api/collections/{collection}/request-verification",
            h!(api::auth_email::request_verification),
        ),
        (
            M::POST,
            "/api/collections/{collection}/confirm-verification",
            h!(api::auth_email::confirm_verification),
        ),
        (
            M::POST,
            "/api/collections/{collection}/request-password-reset",
            h!(api::auth_email::request_password_reset),
        ),
        (
            M::POST,
            "/api/collections/{collection}/confirm-password-reset",
            h!(api::auth_email::confirm_password_reset),
        ),
        (
            M::POST,
            "/api/collections/{collection}/request-email-change",
            h!(api::auth_email::request_email_change),
        ),
        (
            M::POST,
            "/api/collections/{collection}/confirm-email-change",
            h!(api::auth_email::confirm_email_change),
        ),
        // Backups (superusers; downloads by superuser file token).
        (M::GET, "/api/backups", h!(api::backups::list)),
        (M::POST, "/api/backups", h!(api::backups::create)),
        (M::POST, "/api/backups/upload", h!(api::backups::upload)),
        (M::GET, "/api/backups/{key}", h!(api::backups::download)),
        (M::DELETE, "/api/backups/{key}", h!(api::backups::delete)),
        (
            M::POST,
            "/api/backups/{key}/restore",
            h!(api::backups::restore),
        ),
        // Files.
        (M::POST, "/api/files/token", h!(api::files::token)),
        (
            M::GET,
            "/api/files/{collection}/{recordId}/{filename}",
            h!(api::files::download),
        ),
        // Realtime (SSE).
        (M::GET, "/api/realtime", h!(api::realtime::connect)),
        (M::POST, "/api/realtime", h!(api::realtime::subscribe)),
        // Batch and settings.
        (M::POST, "/api/batch", h!(api::batch::batch)),
        (M::GET, "/api/settings", h!(api::settings::get)),
        // keepd's security operations (superusers): audit log, lockouts.
        (M::GET, "/api/audit", h!(api::audit::list)),
        (M::GET, "/api/lockouts", h!(api::audit::lockouts)),
        (
            M::DELETE,
            "/api/lockouts/{collection}/{recordId}",
            h!(api::audit::unlock),
        ),
        (M::PATCH, "/api/settings", h!(api::settings::update)),
        (M::POST, "/api/settings/test/s3", h!(api::settings::test_s3)),
    ]
}

/// Routes whose body is handed to the handler as a stream (capped by
/// `max_backup_upload_bytes`) instead of being read whole first.
pub fn streams_body(method: &Method, pattern: &str) -> bool {
    method == Method::POST && pattern == "/api/backups/upload"
}

/// PocketBase's rate-limit tags of a collection route (labels
/// `<collection>:<tag>` and `*:<tag>`); empty for other routes.
pub fn rate_limit_tags(method: &Method, pattern: &str) -> &'static [&'static str] {
    use Method as M;
    let Some(rest) = pattern.strip_prefix("/api/collections/{collection}/") else {
        return match (method, pattern) {
            (&M::GET, "/api/files/{collection}/{recordId}/{filename}") => &["file"],
            _ => &[],
        };
    };
    match (method, rest) {
        (&M::GET, "records") => &["list"],
        (&M::GET, "records/{id}") => &["view"],
        (&M::POST, "records") => &["create"],
        (&M::PATCH, "records/{id}") => &["update"],
        (&M::DELETE, "records/{id}") => &["delete"],
        (&M::GET, "auth-methods") => &["listAuthMethods"],
        (&M::POST, "auth-refresh") => &["authRefresh"],
        (&M::POST, "auth-with-password") => &["authWithPassword", "auth"],
        (&M::POST, "auth-with-oauth2") => &["authWithOAuth2", "auth"],
        (&M::POST, "request-otp") => &["requestOTP"],
        (&M::POST, "auth-with-otp") => &["authWithOTP", "auth"],
        (&M::POST, "auth-with-totp") => &["authWithTOTP", "auth"],
        (&M::POST, "request-password-reset") => &["requestPasswordReset"],
        (&M::POST, "confirm-password-reset") => &["confirmPasswordReset"],
        (&M::POST, "request-verification") => &["requestVerification"],
        (&M::POST, "confirm-verification") => &["confirmVerification"],
        (&M::POST, "request-email-change") => &["requestEmailChange"],
        (&M::POST, "confirm-email-change") => &["confirmEmailChange"],
        _ => &[],
    }
}

/// The routes of one path: (method, handler, pattern).
type Methods = Vec<(Method, Handler, &'static str)>;

/// A matched route: its handler, path parameters and pattern.
pub type Found = (Handler, Vec<(String, String)>, &'static str);

pub struct Router {
    inner: matchit::Router<Methods>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    pub fn new() -> Router {
        let mut by_path: Vec<(&'static str, Methods)> = Vec::new();
        for (m, p, h) in routes() {
            match by_path.iter_mut().find(|(path, _)| *path == p) {
                Some((_, v)) => v.push((m, h, p)),
                None => by_path.push((p, vec![(m, h, p)])),
            }
        }
        let mut inner = matchit::Router::new();
        for (p, v) in by_path {
            inner.insert(p, v).expect("route table is valid");
        }
        Router { inner }
    }

    /// The handler, the path parameters and the route's pattern.
    pub fn find(&self, method: &Method, path: &str) -> ApiResult<Found> {
        let m = self
            .inner
            .at(path)
            .map_err(|_| ApiError::NotFound("File not found.".into()))?;
        // PocketBase answers a wrong method on a known path with 404 too.
        let (h, pattern) = m
            .value
            .iter()
            .find(|(mm, _, _)| mm == method)
            .map(|(_, h, p)| (*h, *p))
            .ok_or_else(ApiError::not_found)?;
        let params = m
            .params
            .iter()
            .map(|(k, v)| {
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned();
                (k.to_string(), v)
            })
            .collect();
        Ok((h, params, pattern))
    }
}
