//! The application state shared by every request.

use crate::auth::limiter::{Limiter, Rules};
use crate::auth::lockout::{Lockout, Policy};
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::realtime;
use crate::schema::{Collection, Schema};
use crate::store::changes::{Action, Change, ChangeSink, Prepared};
use crate::store::Store;
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};

pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub hasher: Hasher,
    /// Realtime clients and their subscriptions.
    pub realtime: Arc<realtime::Broker>,
    settings: Arc<RwLock<Arc<Value>>>,
    /// File fields' storage (local, or S3 from the settings).
    pub files: Arc<crate::files::Files>,
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
}

/// PocketBase's default settings (the parts keepd acts on, plus the shape
/// the SDK and dashboard expect).
pub fn default_settings() -> Value {
    serde_json::from_str(include_str!("default_settings.json")).unwrap_or_else(|_| json!({}))
}

fn read_lock(l: &RwLock<Arc<Value>>) -> Arc<Value> {
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
        conn: &rusqlite::Connection,
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
        let stored: Option<String> = store
            .read(|c| {
                use rusqlite::OptionalExtension;
                Ok(
                    c.query_row("SELECT value FROM _params WHERE id = 'settings'", [], |r| {
                        r.get(0)
                    })
                    .optional()?,
                )
            })
            .await
            .map_err(|e| anyhow::anyhow!("loading settings: {e}"))?;
        let mut settings = default_settings();
        if let Some(s) = stored.and_then(|s| serde_json::from_str::<Value>(&s).ok()) {
            merge(&mut settings, &s);
        }
        let broker = realtime::Broker::new(realtime::Limits {
            max_clients: config.realtime_max_clients,
            max_clients_per_ip: config.realtime_max_clients_per_ip,
            max_subscriptions: config.realtime_max_subscriptions,
            queue: config.realtime_queue,
        });
        // Committed record changes flow from the writer to the broker.
        let publisher = realtime::Publisher::start(
            broker.clone(),
            Arc::downgrade(&store),
            crate::api::realtime::RENDERER,
            config.max_filter_len,
        );
        let rules = Rules::from_settings(&settings);
        let lockout = Lockout::new(Policy {
            max_failures: config.lockout_max_failures,
            window: config.lockout_window_secs,
            base: config.lockout_base_secs,
            max: config.lockout_max_secs,
        });
        // The lockout policy lives in the settings (`lockout`), defaulting
        // to the configuration's.
        match settings.get("lockout").and_then(Policy::from_json) {
            Some(p) => lockout.set_policy(p),
            None => {
                if let Some(o) = settings.as_object_mut() {
                    o.insert("lockout".into(), lockout.policy().to_json());
                }
            }
        }
        let trusted = config.trusted_proxy_nets().unwrap_or_default();
        let settings = Arc::new(RwLock::new(Arc::new(settings)));
        let files = Arc::new(crate::files::Files::new(store.dir()));
        // Deleted records' files go after the commit (cascades and batches
        // included).
        let janitor = {
            let (files, settings) = (files.clone(), settings.clone());
            crate::files::Janitor::start(Box::new(move || {
                let s = read_lock(&settings);
                files.storage(&s["s3"])
            }))
        };
        store.set_change_sink(Arc::new(Sinks {
            realtime: publisher,
            files: janitor,
        }));
        let thumbs =
            crate::files::thumb::Thumbs::new(config.max_thumb_workers, config.max_thumb_pixels);
        Ok(Arc::new(App {
            config,
            store,
            hasher,
            realtime: broker,
            settings,
            files,
            limiter: Limiter::new(),
            rate_rules: RwLock::new(Arc::new(rules)),
            lockout,
            trusted,
            started: std::time::Instant::now(),
            mailer: crate::auth::mail::Mailer::start(),
            thumbs,
        }))
    }

    pub fn settings(&self) -> Arc<Value> {
        read_lock(&self.settings)
    }

    /// The storage file fields use now.
    pub fn storage(&self) -> ApiResult<crate::files::Storage> {
        self.files
            .storage(&self.settings()["s3"])
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
            .write(move |c| Ok(crate::store::audit::append(c, &e)?))
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "audit log append failed");
        }
    }

    /// Merges `patch` into the settings and stores them durably.
    pub async fn update_settings(&self, patch: &Value) -> ApiResult<Arc<Value>> {
        let mut next = self.settings().as_ref().clone();
        merge(&mut next, patch);
        let text = next.to_string();
        let now = crate::util::now_string();
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO _params (id, value, created, updated) VALUES ('settings', ?1, ?2, ?2)
                     ON CONFLICT(id) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                    rusqlite::params![text, now],
                )?;
                Ok(())
            })
            .await?;
        let next = Arc::new(next);
        match self.settings.write() {
            Ok(mut g) => *g = next.clone(),
            Err(_) => return Err(ApiError::internal("settings lock poisoned")),
        }
        if let Some(p) = next.get("lockout").and_then(Policy::from_json) {
            self.lockout.set_policy(p);
        }
        let rules = Rules::from_settings(&next);
        if let Ok(mut g) = self.rate_rules.write() {
            *g = Arc::new(rules);
        }
        // New rules, new windows (as PocketBase resets its limiters).
        self.limiter.clear();
        Ok(next)
    }
}

/// Deep-merges objects; other values replace.
pub fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && v.is_object() => merge(dv, v),
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}
