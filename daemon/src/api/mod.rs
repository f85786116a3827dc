//! One module per PocketBase API surface. Each handler takes the app and the
//! request and returns a response or an `ApiError`.

pub mod audit;
pub mod auth;
pub mod auth_email;
pub mod auth_oauth2;
pub mod auth_otp;
pub mod auth_totp;
pub mod backups;
pub mod batch;
pub mod collections;
pub mod files;
pub mod health;
pub mod identity;
pub mod realtime;
pub mod records;
pub mod settings;
pub mod superusers;

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
