//! One module per PocketBase API surface. Each handler takes the app and the
//! request and returns a response or an `ApiError`. `routes` is the table
//! of every route and what the HTTP server asks of keepd before a handler
//! runs.

pub mod audit;
pub mod auth;
pub mod auth_email;
pub mod auth_oauth2;
pub mod auth_otp;
pub mod auth_totp;
pub mod backups;
pub mod batch;
mod bodies;
pub mod collections;
pub mod console;
pub mod crons;
pub mod files;
pub mod health;
pub mod identity;
pub mod logs;
pub mod realtime;
pub mod records;
pub mod routes;
pub mod rules;
pub mod settings;
pub mod superusers;
pub mod sync;

use crate::error::{ApiError, ApiResult};
use crate::http::Req;

/// Superusers only (PocketBase's `RequireSuperuserAuth`).
pub(crate) fn require_superuser(req: &Req) -> ApiResult<()> {
    match &req.identity {
        crate::auth::Identity::Superuser(_) => Ok(()),
        crate::auth::Identity::Guest => Err(ApiError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        )),
        crate::auth::Identity::User(_) => Err(ApiError::Forbidden(
            "The authorized record is not allowed to perform this action.".into(),
        )),
    }
}

/// Where a superuser may be served from. Two conditions, one check:
/// keepd's admin listener — when `admin_http` is set, a superuser is
/// served only through it (`admin`: the request came that way,
/// `Req::admin`) —, and PocketBase's `superuserIPs` setting — when it
/// lists addresses or subnets, a superuser is served only from one of
/// them (`ip` is the client's address, `Req::client_ip`). Entries that
/// don't parse match nothing (the settings refuse them).
pub(crate) fn superuser_allowed(app: &crate::app::App, ip: std::net::IpAddr, admin: bool) -> bool {
    if app.config.admin_addr().is_some() && !admin {
        return false;
    }
    let settings = app.settings();
    let list = &settings.superuser_ips;
    if list.is_empty() {
        return true;
    }
    list.iter()
        .filter_map(|s| crate::auth::limiter::parse_net(s))
        .any(|net| crate::auth::limiter::in_net(ip, net))
}

/// The answer to a superuser authenticating from outside `superuserIPs`
/// (or off the admin listener, when there is one).
pub(crate) fn check_superuser_ip(
    app: &crate::app::App,
    req: &Req,
    coll: &crate::schema::Collection,
) -> ApiResult<()> {
    if coll.name == "_superusers" && !superuser_allowed(app, req.client_ip, req.admin) {
        return Err(ApiError::Forbidden(
            "You are not allowed to perform this request.".into(),
        ));
    }
    Ok(())
}
