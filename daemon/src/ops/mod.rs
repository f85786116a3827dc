//! Operations: service-manager integration (sd_notify readiness, status,
//! watchdog driven by a real probe, stopping).

pub mod backup;
pub mod check;
pub mod notify;
