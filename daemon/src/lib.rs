//! keepd: a PocketBase-compatible backend for the device.
#![forbid(unsafe_code)]

pub mod error;
pub mod schema;
