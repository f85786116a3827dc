//! Scheduled backups, as PocketBase's: at each tick of the wall clock (every
//! `backup_cron_tick_secs`, 60 by default, aligned to the minute), when
//! the tick's minute matches `backups.cron` from the settings (UTC,
//! `ops::cron`), a backup named `@auto_pb_backup_<app>_<time>.zip` is made
//! with the same code as `keepd backup` (`backup::create`), then the
//! oldest scheduled backups beyond `backups.cronMaxKeep` are deleted
//! (0: keep all; other backups are never touched). The settings are read at
//! every tick, so a change applies at once. With `backups.s3` enabled the
//! backup goes to the S3 bucket and the retention runs there
//! (`backup::remote`).
//!
//! A run never overlaps the previous one (a tick during a run is skipped)
//! and never takes the daemon down: every failure is logged at error level
//! and the next tick tries again. Runs are audited (`backup.create`,
//! `backup.delete`, actor `cron`).

use super::backup;
use super::cron::Schedule;
use crate::app::App;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Set while a scheduled backup runs (by the clock or `POST /api/crons`).
static BUSY: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// Starts a scheduled backup now (`POST /api/crons/__pbAutoBackup__`),
/// unless one is running already.
pub(crate) fn start_now(app: Arc<App>) {
    if BUSY.swap(true, Ordering::AcqRel) {
        tracing::warn!("scheduled backup not started: one is running already");
        return;
    }
    let done = Done(BUSY.clone());
    tokio::spawn(async move {
        run_once(&app).await;
        drop(done);
    });
}

/// The scheduler; runs for the life of the daemon (spawn it).
pub async fn run(app: Arc<App>) {
    let period_ms = (app.config.backup_cron_tick_secs.max(1) * 1000) as i64;
    let busy = BUSY.clone();
    let mut reported_bad = String::new();
    let mut last_expr: Option<String> = None;
    loop {
        {
            let settings = app.settings();
            let expr = settings.backups.cron.as_str();
            if last_expr.as_deref() != Some(expr) {
                announce(&app, expr, settings.backups.cron_max_keep);
                last_expr = Some(expr.to_string());
            }
        }
        // Sleep to the next multiple of the period on the wall clock (read
        // afresh each time: a device without a clock battery jumps when
        // NTP sets the time).
        let now = chrono::Utc::now().timestamp_millis();
        let next = (now.div_euclid(period_ms) + 1) * period_ms;
        tokio::time::sleep(Duration::from_millis((next - now) as u64)).await;
        let Some(tick) = chrono::DateTime::from_timestamp_millis(next) else {
            continue;
        };
        let settings = app.settings();
        let expr = settings.backups.cron.as_str();
        if expr.is_empty() {
            continue;
        }
        let schedule = match Schedule::parse(expr) {
            Ok(s) => s,
            Err(e) => {
                // Saved settings are validated; this is a hand-edited value.
                if reported_bad != expr {
                    tracing::error!(cron = %expr, error = %e, "backups.cron is not a valid cron expression: no scheduled backups");
                    reported_bad = expr.to_string();
                }
                continue;
            }
        };
        if !schedule.is_due(tick) {
            continue;
        }
        if busy.swap(true, Ordering::AcqRel) {
            tracing::warn!("scheduled backup skipped: the previous one is still running");
            continue;
        }
        let (app, done) = (app.clone(), Done(busy.clone()));
        tokio::spawn(async move {
            run_once(&app).await;
            drop(done);
        });
    }
}

/// Clears the busy flag when a run ends, however it ends.
struct Done(Arc<AtomicBool>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Says in the journal what the schedule now is (at start and on change),
/// and, loudly, when its backups can't be made.
fn announce(app: &App, expr: &str, keep: i64) {
    if expr.is_empty() {
        tracing::info!("scheduled backups: off (backups.cron is empty)");
        return;
    }
    tracing::info!(cron = %expr, keep = %keep, "scheduled backups: on (UTC)");
    if app.config.backup_encryption().is_none() {
        tracing::error!("scheduled backups can't be made: backups are encrypted with age and backup_recipients is empty (set it, or backup_encryption = \"none\" for plaintext)");
    }
}

/// One scheduled run: a backup, then the retention.
async fn run_once(app: &Arc<App>) {
    let settings = app.settings();
    let name = backup::auto_name(&settings.meta.app_name, chrono::Utc::now());
    let dir = app.store.dir().to_path_buf();
    let s3 = match crate::files::s3::S3::from_settings(&settings.backups.s3) {
        None => None,
        Some(Ok(s3)) => Some(Arc::new(s3)),
        Some(Err(e)) => {
            tracing::error!(backup = %name, error = %e, "SCHEDULED BACKUP NOT MADE: backups.s3 can't be used");
            return;
        }
    };
    match app.config.backup_encryption() {
        None => tracing::error!(
            backup = %name,
            "SCHEDULED BACKUP NOT MADE: backups are encrypted with age and backup_recipients is empty (set it, or backup_encryption = \"none\" for plaintext)"
        ),
        Some(enc) => {
            let (d, n, s3) = (dir.clone(), name.clone(), s3.clone());
            let src = backup::Source::Store(app.store.clone());
            match tokio::task::spawn_blocking(move || match s3 {
                Some(s3) => backup::remote::create(&d, &s3, &n, &enc, &src).map(|(size, _)| size),
                None => backup::create(&d, &n, &enc, &src)
                    .map(|path| std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)),
            })
            .await
            {
                Ok(Ok(size)) => {
                    tracing::info!(backup = %name, size, "scheduled backup created");
                    audit(app, "backup.create", &name).await;
                }
                Ok(Err(e)) => {
                    tracing::error!(backup = %name, error = %e, "SCHEDULED BACKUP FAILED")
                }
                Err(e) => tracing::error!(backup = %name, error = %e, "SCHEDULED BACKUP FAILED"),
            }
        }
    }
    // As PocketBase: the retention runs even when this backup failed.
    let keep = settings.backups.cron_max_keep;
    if keep <= 0 {
        return;
    }
    let pruned = tokio::task::spawn_blocking(move || match s3 {
        Some(s3) => backup::remote::prune_auto(&s3, keep as usize),
        None => backup::prune_auto(&dir, keep as usize),
    })
    .await;
    match pruned {
        Ok(Ok(removed)) => {
            for key in removed {
                tracing::info!(backup = %key, keep, "old scheduled backup deleted");
                audit(app, "backup.delete", &key).await;
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "deleting old scheduled backups failed"),
        Err(e) => tracing::error!(error = %e, "deleting old scheduled backups failed"),
    }
}

async fn audit(app: &App, action: &'static str, key: &str) {
    app.audit(crate::store::audit::Entry {
        action,
        actor: "cron".into(),
        ip: String::new(),
        target: format!("backups/{key}"),
        diff: serde_json::json!({}),
    })
    .await;
}
