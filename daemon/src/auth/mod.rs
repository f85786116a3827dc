//! Authentication: password hashing, tokens, and the request identity.

pub mod identity;
pub mod limiter;
pub mod lockout;
pub mod mail;
pub mod oauth2;
pub mod oauth2_presets;
pub mod outbound;
pub mod password;
pub mod token;
pub mod totp;

pub use identity::{AuthRecord, Identity};
