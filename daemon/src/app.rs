//! The application state shared by every request.

use crate::auth::limiter::{Limiter, Rules};
use crate::auth::lockout::{Lockout, Policy};
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::realtime;
use crate::schema::{Collection, Schema};
use crate::settings::{Current, Settings};
use crate::store::changes::{Action, Change, ChangeSink, Prepared};
use crate::store::{params, Store};
use serde_json::Value;
use std::sync::{Arc, RwLock};

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub hasher: Hasher,
    /// Realtime clients and their subscriptions.
    pub realtime: Arc<realtime::Broker>,
    settings: Arc<RwLock<Arc<Current>>>,
    /// File fields' storage (local, or S3 from the settings).
    pub files: Arc<crate::files::Files>,
    /// Uploads being received (spilled to `<data>/.uploads/`) and their
    /// budget (`max_upload_bytes_in_flight`).
    pub uploads: Arc<crate::files::Uploads>,
    /// Per-address rate limits (PocketBase's `rateLimits` rules).
    pub limiter: Limiter,
    rate_rules: RwLock<Arc<Rules>>,
    /// Per-account lockout after failed logins.
    pub lockout: Lockout,
    /// `trusted_proxies`, parsed.
    pub trusted: Vec<(std::net::IpAddr, u8)>,
    started: std::time::Instant,
    /// Outgoing mail (SMTP from the settings).
    pub mailer: crate::auth::mail::Mailer,
    /// Thumbnail makers (`?thumb=` on file downloads).
    pub thumbs: crate::files::thumb::Thumbs,
    /// Cloud sync's state, once started (`[sync] role`).
    pub sync: std::sync::OnceLock<Arc<crate::sync::Sync>>,
    /// The recent requests (`request_log_entries`), in memory only.
    pub request_log: crate::api::logs::RequestLog,
    /// Record-list answers kept until the data next changes
    /// (`list_cache_bytes`).
    pub list_cache: crate::records::cache::ListCache,
    /// Record-list totals kept until the data next changes, shared by
    /// every page of one list (an eighth of `list_cache_bytes`; the
    /// answers get the rest).
    pub count_cache: crate::records::cache::ListCache,
}

fn read_lock(l: &RwLock<Arc<Current>>) -> Arc<Current> {
    match l.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// Committed record changes go to the realtime fan-out (while anyone
/// listens) and, for deletes of collections with file fields, to the
/// file janitor.
struct Sinks {
    realtime: Arc<realtime::Publisher>,
    files: crate::files::Janitor,
}

impl ChangeSink for Sinks {
    fn wants(&self, coll: &Collection, action: Action) -> bool {
        // The janitor only needs deletes: creates and updates of file
        // collections are not copied while no realtime client listens.
        self.realtime.wants(coll, action) || (action == Action::Delete && coll.has_file_fields())
    }

    fn prepare_delete(
        &self,
        conn: &crate::store::Conn,
        schema: &Schema,
        coll: &Arc<Collection>,
        record: &serde_json::Map<String, Value>,
    ) -> Option<Prepared> {
        if self.realtime.wants(coll, Action::Delete) {
            self.realtime.prepare_delete(conn, schema, coll, record)
        } else {
            None
        }
    }

    fn lost(&self) {
        self.realtime.lost();
    }

    fn committed(&self, changes: Vec<Change>) {
        for ch in &changes {
            if ch.action == Action::Delete && ch.collection.has_file_fields() {
                if let Some(id) = ch.record.get("id").and_then(Value::as_str) {
                    self.files.record_deleted(&ch.collection.id, id);
                }
            }
        }
        if changes
            .iter()
            .any(|c| self.realtime.wants(&c.collection, c.action))
        {
            self.realtime.committed(changes);
        }
    }
}

impl App {
    pub async fn new(config: Config, store: Arc<Store>) -> anyhow::Result<Arc<App>> {
        let hasher = Hasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            config.max_concurrent_hashes,
        )?;
        // Read on the writer's connection, whose schema SQLite has parsed
        // already (migrations): through the readers it would open a
        // connection and parse the schema again, at every start, for one
        // row (nothing is written; the empty transaction commits without
        // touching the disk).
        let stored = store
            .write(|c| params::get(c, params::Key::Settings))
            .await
            .map_err(|e| anyhow::anyhow!("loading settings: {e}"))?;
        // The lockout policy lives in the settings (`lockout`), defaulting
        // to the configuration's.
        let config_policy = Policy {
            max_failures: config.lockout_max_failures,
            window: config.lockout_window_secs,
            base: config.lockout_base_secs,
            max: config.lockout_max_secs,
        };
        let settings = Settings::load(stored.as_ref(), config_policy.into());
        let broker = realtime::Broker::new(realtime::Limits {
            max_clients: config.realtime_max_clients,
            max_clients_per_ip: config.realtime_max_clients_per_ip,
            max_subscriptions: config.realtime_max_subscriptions,
            queue: config.realtime_queue,
            queue_bytes: config.realtime_queue_bytes,
            total_queue_bytes: config.realtime_max_queued_bytes,
        });
        // Committed record changes flow from the writer to the broker.
        let publisher = realtime::Publisher::start(
            broker.clone(),
            Arc::downgrade(&store),
            crate::api::realtime::RENDERER,
            config.max_filter_len,
        );
        let rules = Rules::from_settings(&settings.rate_limits);
        let lockout = Lockout::new(settings.lockout.into());
        let trusted = config.trusted_proxy_nets().unwrap_or_default();
        let settings = Arc::new(RwLock::new(Arc::new(Current::new(settings))));
        let files = Arc::new(crate::files::Files::new(store.dir()));
        let uploads = crate::files::Uploads::new(store.dir(), config.max_upload_bytes_in_flight)
            .map_err(|e| anyhow::anyhow!("preparing {}/.uploads: {e}", store.dir().display()))?;
        // Deleted records' files go after the commit (cascades and batches
        // included).
        let janitor = {
            let (files, settings) = (files.clone(), settings.clone());
            crate::files::Janitor::start(Box::new(move || files.storage(&read_lock(&settings).s3)))
        };
        store.set_change_sink(Arc::new(Sinks {
            realtime: publisher,
            files: janitor,
        }));
        let thumbs = crate::files::thumb::Thumbs::new(
            config.max_thumb_workers,
            config.max_thumb_pixels,
            config.max_thumb_bytes,
        );
        Ok(Arc::new(App {
            store,
            hasher,
            realtime: broker,
            settings,
            files,
            uploads,
            limiter: Limiter::new(),
            rate_rules: RwLock::new(Arc::new(rules)),
            lockout,
            trusted,
            started: std::time::Instant::now(),
            mailer: crate::auth::mail::Mailer::start(),
            thumbs,
            sync: std::sync::OnceLock::new(),
            request_log: crate::api::logs::RequestLog::new(config.request_log_entries),
            list_cache: crate::records::cache::ListCache::new(
                config.list_cache_bytes - config.list_cache_bytes / 8,
            ),
            count_cache: crate::records::cache::ListCache::new(config.list_cache_bytes / 8),
            config,
        }))
    }

    /// The settings in force (read their fields; `settings["group"]` is
    /// their JSON, for readers not moved to fields yet).
    pub fn settings(&self) -> Arc<Current> {
        read_lock(&self.settings)
    }

    /// The storage file fields use now.
    pub fn storage(&self) -> ApiResult<crate::files::Storage> {
        self.files
            .storage(&self.settings().s3)
            .map_err(|e| ApiError::internal(format!("file storage: {e}")))
    }

    /// Seconds since start (the clock of the limiter and the lockout).
    pub fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// The rate-limit rules in force.
    pub fn rate_rules(&self) -> Arc<Rules> {
        match self.rate_rules.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Appends an audit entry (its own write).
    pub async fn audit(&self, e: crate::store::audit::Entry) {
        let r = self
            .store
            .write(move |c| crate::store::audit::append(c, &e))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "audit log append failed");
        }
    }

    /// Replaces the settings (already validated: `Settings::patched`)
    /// and stores them durably; the lockout policy and the rate-limit
    /// rules change with them. The other processes serving the database
    /// (PostgreSQL) load them again: the write marks the change.
    pub async fn save_settings(&self, next: Settings) -> ApiResult<Arc<Current>> {
        let json = next.to_json();
        self.store
            .write(move |c| {
                params::put(c, params::Key::Settings, &json)?;
                crate::store::mark(c, crate::store::Mark::Settings)
            })
            .await?;
        self.install_settings(next)
    }

    /// Puts `next` in force here: the lockout policy, the rate-limit rules
    /// and their windows, and nothing cached from before.
    fn install_settings(&self, next: Settings) -> ApiResult<Arc<Current>> {
        self.lockout.set_policy(next.lockout.into());
        let rules = Rules::from_settings(&next.rate_limits);
        let next = Arc::new(Current::new(next));
        match self.settings.write() {
            Ok(mut g) => *g = next.clone(),
            Err(_) => return Err(ApiError::internal("settings lock poisoned")),
        }
        if let Ok(mut g) = self.rate_rules.write() {
            *g = Arc::new(rules);
        }
        // New rules, new windows (as PocketBase resets its limiters).
        self.limiter.clear();
        // Nothing cached before the new settings is served after them.
        self.store.changed();
        Ok(next)
    }

    /// Loads the settings again from the database (another process
    /// changed them); nothing happens when they are the ones in force.
    pub async fn reload_settings(&self) -> ApiResult<()> {
        let stored = self
            .store
            .read(|c| params::get(c, params::Key::Settings))
            .await?;
        let next = Settings::load(stored.as_ref(), self.config_lockout().into());
        if next.to_json() == self.settings().to_json() {
            return Ok(());
        }
        self.install_settings(next)?;
        tracing::info!("settings changed by another process: loaded again");
        Ok(())
    }

    /// The lockout policy the configuration gives (the settings' default).
    fn config_lockout(&self) -> Policy {
        Policy {
            max_failures: self.config.lockout_max_failures,
            window: self.config.lockout_window_secs,
            base: self.config.lockout_base_secs,
            max: self.config.lockout_max_secs,
        }
    }

    /// Follows the marks of what other processes on the database changed
    /// (PostgreSQL; on SQLite none come): the settings, sync's collections.
    pub fn follow_marks(self: &Arc<App>) {
        let mut rx = self.store.marks();
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let marks = match rx.recv().await {
                    Ok(m) => vec![m],
                    // Missed some: load everything again.
                    Err(RecvError::Lagged(_)) => {
                        vec![
                            crate::store::Mark::Settings,
                            crate::store::Mark::SyncCollections,
                        ]
                    }
                    Err(RecvError::Closed) => return,
                };
                let Some(app) = app.upgrade() else { return };
                for m in marks {
                    let r = match m {
                        crate::store::Mark::Settings => app.reload_settings().await,
                        crate::store::Mark::SyncCollections => match app.sync.get() {
                            Some(s) => s.reload_collections(&app.store).await,
                            None => Ok(()),
                        },
                    };
                    if let Err(e) = r {
                        tracing::warn!(error = %e, mark = m.as_str(), "loading what another process changed failed");
                    }
                }
            }
        });
    }
}
