//! sd_notify: READY=1 once the listener is bound and migrations ran;
//! WATCHDOG=1 only while a round trip through the SQLite writer succeeds;
//! STATUS= lines with what the daemon is doing; STOPPING=1 on shutdown.
//! Without NOTIFY_SOCKET (not under systemd) every call is a no-op.

use crate::store::Store;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining connections"),
    ]);
}

/// The watchdog interval systemd asked for (WATCHDOG_USEC), if any.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog every half interval, but only after a successful
/// probe through the writer: a stuck writer stops the pings, and systemd
/// restarts the service.
pub async fn watchdog(store: Arc<Store>, interval: Duration) {
    let every = interval / 2;
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(every, store.probe()).await {
            Ok(Ok(())) => send(&[NotifyState::Watchdog]),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "health probe failed; withholding the watchdog ping")
            }
            Err(_) => tracing::error!("health probe timed out; withholding the watchdog ping"),
        }
    }
}
