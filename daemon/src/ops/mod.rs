//! Operations: service-manager integration (sd_notify readiness, status,
//! watchdog driven by a real probe, stopping), `keepd check`, backups and
//! their schedule (PocketBase's cron grammar), and the tools' switch from
//! root to the data dir's owner.

pub mod backup;
pub mod check;
pub mod cron;
pub mod import;
pub mod notify;
pub mod privilege;
pub mod schedule;
