//! sd_notify: READY=1 once the listener is bound and migrations ran;
//! WATCHDOG=1 only while the SQLite writer answers a round trip;
//! STATUS= lines with what the daemon is doing — serving, degraded (disk
//! full, read-only filesystem, I/O errors: writes fail, reads are served),
//! stuck — also logged at each change; STOPPING=1 on shutdown.
//! Without NOTIFY_SOCKET (not under systemd) every call is a no-op.

use crate::store::Store;
use sd_notify::NotifyState;
use std::path::{Path, PathBuf};
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

/// Below this much free space the disk counts as full (SQLite needs room
/// to grow the WAL and the database).
pub const FULL_BELOW: u64 = 1 << 20;
/// Below this much free space `STATUS=` warns (as `keepd check` does).
pub const LOW_BELOW: u64 = crate::ops::check::MIN_FREE;
/// How often the monitor looks without a watchdog.
const TICK: Duration = Duration::from_secs(5);

/// The data dir's filesystem: read-only, free bytes (None: unknown).
fn filesystem(dir: &Path) -> (bool, Option<u64>) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => (
            s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
            Some(s.f_bavail.saturating_mul(s.f_frsize)),
        ),
        Err(_) => (false, None),
    }
}

/// The filesystem's own answer to a write: a file created, written,
/// synced and removed in the data dir. Its error names the fault SQLite's
/// "disk I/O error" hides (a filesystem remounted read-only after an
/// error doesn't show in `statvfs`' flags; the write says EROFS).
fn try_write(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let p = dir.join(".keepd-write-probe");
    let _ = std::fs::remove_file(&p);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)?;
        f.write_all(b"probe")?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&p);
    r
}

/// A failed write's fault, from its OS error.
fn fault_of(e: &std::io::Error) -> String {
    use rustix::io::Errno;
    match Errno::from_io_error(e) {
        Some(Errno::ROFS) => format!("read-only filesystem: {e}"),
        Some(Errno::NOSPC) | Some(Errno::DQUOT) => format!("disk full: {e}"),
        _ => format!("I/O errors: {e}"),
    }
}

/// What the monitor found, worst first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The writer did not answer in time.
    Stuck,
    /// Writes can't reach the disk: why.
    Degraded(String),
    /// Serving; a warning, if any.
    Serving(Option<String>),
}

/// The `STATUS=` line for a state.
fn line(state: &State, addr: &str) -> String {
    match state {
        State::Stuck => format!("stuck: the database writer is not answering (serving on {addr})"),
        State::Degraded(why) => format!("degraded: writes failing ({why}); reads served on {addr}"),
        State::Serving(None) => format!("serving on {addr}"),
        State::Serving(Some(w)) => format!("serving on {addr}; warning: {w}"),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
}

/// Watches whether keepd can do its work and says so: `STATUS=` (systemd
/// shows it in `systemctl status`) and the journal, at each change.
///
/// Each tick (half the watchdog interval, or 5 s) it reads the data dir's
/// filesystem (read-only? free space?) and makes a round trip through the
/// writer — a real write while writes are failing, so that it sees them
/// work again. The watchdog is pinged only when the writer answered, with
/// success or a storage error: a full or read-only disk is not fixed by a
/// restart and reads are still served, so it is reported, not restarted;
/// a writer that doesn't answer stops the pings, and systemd restarts the
/// service.
pub async fn monitor(store: Arc<Store>, dir: PathBuf, addr: String, watchdog: Option<Duration>) {
    let tick = watchdog.map(|w| w / 2).unwrap_or(TICK);
    let mut last = State::Serving(None);
    loop {
        tokio::time::sleep(tick).await;
        let (read_only, free) = filesystem(&dir);
        let full = free.is_some_and(|f| f < FULL_BELOW);
        let suspect = read_only || full || store.write_failure().is_some();
        let answered = if suspect {
            tokio::time::timeout(tick, store.probe_write()).await
        } else {
            tokio::time::timeout(tick, store.probe()).await
        };
        let state = match &answered {
            Err(_) => State::Stuck,
            Ok(Err(e)) if store.write_failure().is_none() && !read_only && !full => {
                // Not a storage failure: the probe itself failed.
                State::Degraded(format!("the writer fails: {e}"))
            }
            Ok(_) => {
                if read_only {
                    State::Degraded("read-only filesystem".into())
                } else if let Some(f) = store.write_failure() {
                    // The filesystem names the fault better than SQLite.
                    let d = dir.clone();
                    match tokio::task::spawn_blocking(move || try_write(&d)).await {
                        Ok(Err(e)) => State::Degraded(fault_of(&e)),
                        _ => State::Degraded(format!("{}: {}", f.fault.describe(), f.detail)),
                    }
                } else if full {
                    State::Degraded(format!("disk full: {} free", mib(free.unwrap_or_default())))
                } else {
                    State::Serving(
                        free.filter(|f| *f < LOW_BELOW)
                            .map(|f| format!("low disk space: {} free", mib(f))),
                    )
                }
            }
        };
        if watchdog.is_some() && !matches!(state, State::Stuck) {
            send(&[NotifyState::Watchdog]);
        }
        if state != last {
            let text = line(&state, &addr);
            let was_failing = !matches!(last, State::Serving(_));
            match &state {
                State::Stuck => tracing::error!(
                    "the database writer did not answer within {tick:?}; withholding the watchdog ping"
                ),
                State::Degraded(why) => tracing::error!(
                    reason = %why,
                    "WRITES FAILING: records, files and settings can't be saved until this is fixed; reads are still served"
                ),
                // Warn, as the failure was an error: its end must show too.
                State::Serving(_) if was_failing => tracing::warn!("writes work again"),
                State::Serving(Some(w)) => tracing::warn!(warning = %w, "storage warning"),
                State::Serving(None) => {}
            }
            if let (true, State::Serving(Some(w))) = (was_failing, &state) {
                tracing::warn!(warning = %w, "storage warning");
            }
            status(&text);
            last = state;
        }
    }
}
