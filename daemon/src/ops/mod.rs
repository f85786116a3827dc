//! Operations: service-manager integration (sd_notify readiness, status,
//! watchdog driven by a real probe, stopping), `keepd check`, backups and
//! their schedule (PocketBase's cron grammar).

pub mod backup;
pub mod check;
pub mod cron;
pub mod notify;
pub mod schedule;
