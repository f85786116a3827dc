//! The integration tests: one test binary, one module per area. Each test
//! boots the real daemon through `common::TestServer` on a loopback port.

mod common;

mod admin;
mod backups;
mod backups_s3;
mod bad_input;
mod budgets;
mod check;
mod collection_names;
mod config;
mod console;
mod durability;
mod encryption;
mod files;
mod filter;
mod guard;
mod http;
mod import;
mod list_cache;
mod list_count;
mod list_sort;
mod logs;
mod modes;
mod notify;
mod oauth2;
mod openapi;
mod operator;
mod otp_enumeration;
mod passwords;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_dialect;
#[cfg(feature = "postgres")]
mod postgres_sync;
mod realtime;
mod records;
mod rules;
mod settings;
mod socket;
mod sync;
mod sync_bench;
mod sync_chaos;
mod sync_harness;
mod tokens;
mod totp;
mod uploads;
mod views;
mod websocket;
mod write_path;
