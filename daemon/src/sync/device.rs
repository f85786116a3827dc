//! The device: enrolment (the CLI), the credential file, and the engine —
//! a push loop and a pull loop talking to the hub, each an ordinary loop
//! that works while there is work, waits otherwise, and backs off (jittered,
//! exponential) on network errors, 5xx and 429. A 401/403 means the
//! device was revoked: both loops stop until a new credential appears.
//!
//! Every change of local state is one transaction: the outbox rows the hub
//! acknowledged go with the copy of the refused ones into the rejected
//! list; pulled records go with the new cursor.

use super::client::{Answer, Client, NetError};
use super::frame::{self, Msg, Op, Val};
use super::{hlc, key, merge, Applying, Sync};
use crate::app::App;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::records::{self, Request};
use crate::schema::Schema;
use crate::store::records as rs;
use crate::store::sync as ss;
use crate::store::Conn as Connection;
use crate::util::now_string;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The device credential, as kept in its file (0600).
#[derive(Clone, Serialize, Deserialize)]
pub struct Credential {
    pub hub: String,
    pub device: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential({} at {}, secret redacted)",
            self.device, self.hub
        )
    }
}

impl Credential {
    fn auth(&self) -> String {
        format!("{}.{}", self.device, self.secret)
    }
}

/// Reads the credential (None: there is none); a file others may read is
/// refused.
pub fn read_credential(path: &Path) -> anyhow::Result<Option<Credential>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("the sync credential {}: {e}", path.display()),
    };
    if let Some(why) = crate::util::loose_mode(meta.mode(), meta.uid()) {
        anyhow::bail!(
            "the sync credential {} has mode {:04o}: {why}; refusing to use it",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("the sync credential {}: {e}", path.display()))?;
    let c: Credential = serde_json::from_str(&text)
        .map_err(|_| anyhow::anyhow!("the sync credential {} is not one", path.display()))?;
    Ok(Some(c))
}

/// Writes the credential durably (0600, temporary file, fsync, rename).
pub fn write_credential(path: &Path, c: &Credential) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("sync-credential")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    f.write_all(serde_json::to_string(c)?.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

/// `keepd sync enrol`: trades an enrolment token for a device credential.
/// The credential file is written before the hub is asked, so a lost answer
/// is retried by running the same command again. Returns the device id and
/// where the credential is.
pub fn enrol(
    cfg: &Config,
    hub: &str,
    token: &str,
    ca_file: Option<&Path>,
) -> anyhow::Result<(String, PathBuf)> {
    let ca = match ca_file {
        Some(p) => p.to_path_buf(),
        None if !cfg.sync.ca_file.is_empty() => PathBuf::from(&cfg.sync.ca_file),
        None => {
            anyhow::bail!("the hub's CA certificate is needed: --ca-file FILE (or sync.ca_file)")
        }
    };
    let (device, _) = token
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("that is not an enrolment token"))?;
    let path = cfg.sync.credential_path(&cfg.dir);
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
    }
    let hub = hub.trim_end_matches('/').to_string();
    let existing = read_credential(&path)?;
    let fresh = existing.is_none();
    let cred = match existing {
        Some(c) if c.device == device && c.hub == hub => c,
        Some(c) => anyhow::bail!(
            "this device is already enrolled as {} at {} ({}); remove that file to enrol it again",
            c.device,
            c.hub,
            path.display()
        ),
        None => Credential {
            hub: hub.clone(),
            device: device.to_string(),
            secret: crate::util::random_string(64, crate::util::ALPHANUM),
        },
    };
    write_credential(&path, &cred)?;
    let client = Client::new(&hub, &ca, None, Duration::from_secs(10))?;
    let body = json!({"token": token, "secret": cred.secret}).to_string();
    match client.send(
        "POST",
        "/api/sync/enrol",
        "application/json",
        body.as_bytes(),
        Duration::from_secs(30),
    ) {
        Ok(a) if a.status == 200 => Ok((cred.device, path)),
        Ok(a) => {
            if fresh {
                let _ = std::fs::remove_file(&path);
            }
            anyhow::bail!(
                "the hub refused the enrolment ({}): {}",
                a.status,
                error_message(&a.body)
            )
        }
        Err(e) => anyhow::bail!(
            "could not reach the hub ({e}); the credential is kept in {}: run the same command again",
            path.display()
        ),
    }
}

/// Starts the device side: checks the CA file, then runs the engine in
/// the background (it waits for a credential if there is none).
pub async fn start(app: &Arc<App>, sync: &Arc<Sync>) -> anyhow::Result<()> {
    super::client::read_ca(Path::new(&sync.cfg.ca_file))?;
    tokio::spawn(supervise(app.clone(), sync.clone()));
    Ok(())
}

async fn set_state(app: &App, state: &'static str, error: Option<String>) {
    let r = app
        .store
        .write(move |c| {
            ss::state_put(c, key::STATE, state)?;
            if let Some(e) = &error {
                ss::state_put(c, key::LAST_ERROR, e)?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "storing the sync state failed");
    }
}

/// Waits for a credential, runs the engine until the device is revoked,
/// then waits for a new credential.
async fn supervise(app: Arc<App>, sync: Arc<Sync>) {
    let path = sync.cfg.credential_path(&app.config.dir);
    let mut last_secret = String::new();
    let mut said = false;
    tokio::spawn(report(app.clone(), sync.clone()));
    loop {
        let cred = match read_credential(&path) {
            Ok(Some(c)) if c.secret != last_secret => c,
            Ok(found) => {
                if !said {
                    if found.is_none() {
                        tracing::info!(credential = %path.display(), "sync: this device is not enrolled (keepd sync enrol --hub URL --token TOKEN)");
                        set_state(&app, "unenrolled", None).await;
                    }
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => {
                if !said {
                    tracing::error!(error = %e, "sync: the credential can't be used");
                    set_state(&app, "unenrolled", Some(e.to_string())).await;
                    said = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        said = false;
        last_secret = cred.secret.clone();
        if cred.hub != sync.cfg.hub.trim_end_matches('/') {
            tracing::warn!(credential_hub = %cred.hub, hub = %sync.cfg.hub, "sync: the credential was issued by another hub URL than sync.hub; using sync.hub");
        }
        if sync.node() != cred.device {
            sync.set_node(&cred.device);
            let id = cred.device.clone();
            let _ = app
                .store
                .write(move |c| ss::state_put(c, key::NODE, &id))
                .await;
        }
        let client = match Client::new(
            &sync.cfg.hub,
            Path::new(&sync.cfg.ca_file),
            Some(cred.auth()),
            Duration::from_secs(sync.cfg.connect_timeout_secs),
        ) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::error!(error = %e, "sync: no client");
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            }
        };
        let eng = Arc::new(Engine {
            app: app.clone(),
            sync: sync.clone(),
            client,
            stopped: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
            max_bytes: AtomicUsize::new(sync.cfg.max_batch_bytes),
        });
        tracing::info!(device = %cred.device, hub = %sync.cfg.hub, "sync: connecting to the hub");
        set_state(&app, "connecting", None).await;
        let push = tokio::spawn(eng.clone().push_loop());
        let pull = tokio::spawn(eng.clone().pull_loop());
        let _ = push.await;
        let _ = pull.await;
        // Revoked: wait for a new credential.
    }
}

/// Sends the sync summary to the service manager every 10 s.
pub(super) async fn report(app: Arc<App>, sync: Arc<Sync>) {
    let addr = app.config.http;
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let role = sync.role;
        let s = app
            .store
            .read(move |c| status_json(c, role))
            .await
            .unwrap_or_default();
        crate::ops::notify::status(&format!("serving on {addr}; {}", status_line(&s)));
    }
}

/// Why a request failed.
pub(super) enum Failure {
    /// Network error, 5xx, 429: retry later (after at least this).
    Retry(String, Option<Duration>),
    /// 401/403: the credential is revoked.
    Revoked(String),
    /// 413: the batch was too large.
    TooLarge,
}

pub(super) fn classify_answer(a: &Answer) -> Failure {
    classify(a)
}

fn classify(a: &Answer) -> Failure {
    let msg = format!("{}: {}", a.status, error_message(&a.body));
    match a.status {
        401 | 403 => Failure::Revoked(msg),
        413 => Failure::TooLarge,
        429 => Failure::Retry(msg, a.retry_after.map(Duration::from_secs)),
        _ => Failure::Retry(msg, None),
    }
}

/// The pause before retry `n` (1-based): 0.5 s doubling, capped, with
/// jitter (half to all of it).
fn backoff(n: u32, max_secs: u64) -> Duration {
    use rand::Rng;
    let base = 500u64.saturating_mul(1u64 << n.min(20).saturating_sub(1));
    let cap = base.min(max_secs.saturating_mul(1000)).max(100);
    let ms = rand::thread_rng().gen_range(cap / 2..=cap);
    Duration::from_millis(ms)
}

pub(super) struct Engine {
    pub(super) app: Arc<App>,
    sync: Arc<Sync>,
    client: Arc<Client>,
    stopped: AtomicBool,
    stop: tokio::sync::Notify,
    /// The push body cap in force (halved on 413).
    max_bytes: AtomicUsize,
}

impl Engine {
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_secs(self.sync.cfg.request_timeout_secs)
    }

    async fn revoked(&self, why: String) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            tracing::error!(reason = %why, "SYNC STOPPED: the hub refused this device's credential (revoked?); enrol again with keepd sync enrol");
            set_state(&self.app, "revoked", Some(why)).await;
        }
        self.stop.notify_waiters();
    }

    /// Sleeps, or returns early when the engine stops. False: stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop.notified() => {}
        }
        !self.stopped.load(Ordering::SeqCst)
    }

    pub(super) async fn head(&self, path: String) -> Result<u16, NetError> {
        let (client, timeout) = (self.client.clone(), self.timeout());
        tokio::task::spawn_blocking(move || client.head(&path, timeout))
            .await
            .map_err(|e| NetError(e.to_string()))?
    }

    pub(super) async fn get(&self, path: String, timeout: Duration) -> Result<Answer, NetError> {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || client.get(&path, timeout))
            .await
            .map_err(|e| NetError(e.to_string()))?
    }

    pub(super) async fn send(
        &self,
        method: &'static str,
        path: String,
        ct: &'static str,
        body: Vec<u8>,
    ) -> Result<Answer, NetError> {
        let (client, timeout) = (self.client.clone(), self.timeout());
        tokio::task::spawn_blocking(move || client.send(method, &path, ct, &body, timeout))
            .await
            .map_err(|e| NetError(e.to_string()))?
    }

    /// Fetches and applies the hub's collection definitions.
    async fn fetch_schema(&self) -> Result<(), Failure> {
        let a = self
            .get("/api/sync/schema".into(), self.timeout())
            .await
            .map_err(|e| Failure::Retry(e.0, None))?;
        if a.status != 200 {
            return Err(classify(&a));
        }
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| Failure::Retry(format!("schema answer: {e}"), None))?;
        apply_schema(&self.app, &self.sync, &v)
            .await
            .map_err(|e| Failure::Retry(format!("applying the hub's schema: {e}"), None))
    }

    // -- push ------------------------------------------------------------

    async fn push_loop(self: Arc<Self>) {
        let mut fails: u32 = 0;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let notified = self.sync.queued.notified();
            match self.push_once().await {
                Ok(0) => {
                    fails = 0;
                    // Nothing queued: wait for a change (or look again
                    // in a while).
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                        _ = self.stop.notified() => {}
                    }
                }
                Ok(_) => fails = 0,
                Err(Failure::Revoked(why)) => {
                    self.revoked(why).await;
                    return;
                }
                Err(Failure::TooLarge) => {
                    let m = self.max_bytes.load(Ordering::Relaxed);
                    self.max_bytes.store((m / 2).max(4096), Ordering::Relaxed);
                    tracing::warn!(
                        max_bytes = m / 2,
                        "sync: the hub found a push too large; halving the batch"
                    );
                }
                Err(Failure::Retry(why, at_least)) => {
                    fails += 1;
                    let d = backoff(fails, self.sync.cfg.retry_max_secs)
                        .max(at_least.unwrap_or_default());
                    if fails == 1 || fails.is_multiple_of(10) {
                        tracing::warn!(error = %why, retry_in_ms = d.as_millis() as u64, "sync push failed; retrying");
                    }
                    set_state(&self.app, "backoff", Some(why)).await;
                    if !self.pause(d).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sends one batch. Returns how many changes the hub acknowledged.
    async fn push_once(&self) -> Result<usize, Failure> {
        let max_changes = self.sync.cfg.batch_changes as i64;
        let rows = self
            .app
            .store
            .read(move |c| ss::outbox_first(c, max_changes))
            .await
            .map_err(|e| Failure::Retry(e.to_string(), None))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let max_bytes = self.max_bytes.load(Ordering::Relaxed);
        let mut take = 0usize;
        let mut bytes = 0u64;
        for r in &rows {
            if take > 0 && bytes + r.bytes > max_bytes as u64 {
                break;
            }
            bytes += r.bytes;
            take += 1;
        }
        let mut batch: Vec<ss::OutChange> = rows.into_iter().take(take).collect();
        let files = super::files::upload_for(self, &batch).await?;
        let body = loop {
            let msg = Msg::Push(frame::Push {
                hlc: self.sync.clock_now(),
                changes: batch.iter().map(|r| to_frame(r, &files)).collect(),
            });
            let body = frame::encode(&msg, self.sync.cfg.compress);
            if body.len() <= max_bytes || batch.len() == 1 {
                break body;
            }
            let keep = batch.len() / 2;
            batch.truncate(keep);
        };
        let sent = hlc::wall_ms();
        let a = self
            .send("POST", "/api/sync/push".into(), frame::CONTENT_TYPE, body)
            .await
            .map_err(|e| Failure::Retry(e.0, None))?;
        let received = hlc::wall_ms();
        if a.status == 413 && batch.len() == 1 {
            // One change larger than the hub takes: it can never go, so it
            // is listed as refused here and the queue goes on.
            let row = batch.remove(0);
            let reason = serde_json::from_slice::<Value>(&a.body).unwrap_or(Value::Null);
            tracing::error!(seq = row.seq, record = %row.record, "sync: a change is larger than the hub takes; listed as rejected");
            self.app
                .store
                .write(move |c| {
                    ss::rejected_add(
                        c,
                        &ss::Rejected {
                            id: 0,
                            device: String::new(),
                            seq: row.seq,
                            hlc: row.hlc,
                            collection: row.collection.clone(),
                            record: row.record.clone(),
                            op: row.op.clone(),
                            fields: row.fields.clone(),
                            status: 413,
                            reason,
                            created: now_string(),
                        },
                    )?;
                    ss::outbox_ack(c, row.seq)?;
                    let depth = ss::outbox_depth(c)?.0;
                    ss::state_put(c, key::QUEUED, &depth.to_string())
                })
                .await
                .map_err(|e| Failure::Retry(e.to_string(), None))?;
            return Ok(1);
        }
        if a.status != 200 {
            return Err(classify(&a));
        }
        let ack = match frame::decode(&a.body, 64 << 20) {
            Ok(Msg::PushAck(ack)) => ack,
            Ok(_) => return Err(Failure::Retry("unexpected answer to a push".into(), None)),
            Err(e) => return Err(Failure::Retry(format!("push answer: {e}"), None)),
        };
        let offset = self.sync.learn_offset(ack.hub_ms, sent, received, 0);
        self.sync.observe(ack.hub_hlc);
        let sync = self.sync.clone();
        let acked = batch.iter().filter(|r| r.seq <= ack.through).count();
        let through = ack.through;
        let refused = ack.refused;
        let depth = self
            .app
            .store
            .write(move |c| {
                for r in &refused {
                    let Some(row) = batch.iter().find(|x| x.seq == r.seq) else {
                        continue;
                    };
                    ss::rejected_add(
                        c,
                        &ss::Rejected {
                            id: 0,
                            device: String::new(),
                            seq: row.seq,
                            hlc: row.hlc,
                            collection: row.collection.clone(),
                            record: row.record.clone(),
                            op: row.op.clone(),
                            fields: row.fields.clone(),
                            status: r.status,
                            reason: serde_json::from_str(&r.reason).unwrap_or(Value::Null),
                            created: now_string(),
                        },
                    )?;
                }
                ss::outbox_ack(c, through)?;
                ss::state_put(c, key::LAST_PUSH, &now_string())?;
                ss::state_put(c, key::STATE, "syncing")?;
                if let Some(off) = offset {
                    ss::state_put(c, key::OFFSET, &off.to_string())?;
                }
                sync.save_clock(c)?;
                let depth = ss::outbox_depth(c)?.0;
                ss::state_put(c, key::QUEUED, &depth.to_string())?;
                Ok(depth)
            })
            .await
            .map_err(|e| Failure::Retry(e.to_string(), None))?;
        self.sync.depth.store(depth, Ordering::Relaxed);
        let _ = self.sync.check_depth(depth);
        if acked == 0 {
            return Err(Failure::Retry(
                "the hub acknowledged nothing of the batch".into(),
                None,
            ));
        }
        Ok(acked)
    }

    // -- pull ------------------------------------------------------------

    async fn pull_loop(self: Arc<Self>) {
        let mut fails: u32 = 0;
        // The hub's definitions first: the collections to sync.
        loop {
            match self.fetch_schema().await {
                Ok(()) => break,
                Err(Failure::Revoked(why)) => {
                    self.revoked(why).await;
                    return;
                }
                Err(Failure::Retry(why, at_least)) => {
                    fails += 1;
                    let d = backoff(fails, self.sync.cfg.retry_max_secs)
                        .max(at_least.unwrap_or_default());
                    if fails == 1 || fails.is_multiple_of(10) {
                        tracing::warn!(error = %why, "sync: fetching the hub's schema failed; retrying");
                    }
                    set_state(&self.app, "backoff", Some(why)).await;
                    if !self.pause(d).await {
                        return;
                    }
                }
                Err(Failure::TooLarge) => {}
            }
        }
        fails = 0;
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            match self.pull_once().await {
                Ok(()) => fails = 0,
                Err(Failure::Revoked(why)) => {
                    self.revoked(why).await;
                    return;
                }
                Err(Failure::TooLarge) => {}
                Err(Failure::Retry(why, at_least)) => {
                    fails += 1;
                    let d = backoff(fails, self.sync.cfg.retry_max_secs)
                        .max(at_least.unwrap_or_default());
                    if fails == 1 || fails.is_multiple_of(10) {
                        tracing::warn!(error = %why, retry_in_ms = d.as_millis() as u64, "sync pull failed; retrying");
                    }
                    set_state(&self.app, "backoff", Some(why)).await;
                    if !self.pause(d).await {
                        return;
                    }
                }
            }
        }
    }

    async fn pull_once(&self) -> Result<(), Failure> {
        let (cursor, todo) = self
            .app
            .store
            .read(|c| {
                let cursor = ss::state_get(c, key::CURSOR)?;
                let todo = ss::state_get(c, key::RESNAPSHOT)?;
                Ok((cursor, todo))
            })
            .await
            .map_err(|e| Failure::Retry(e.to_string(), None))?;
        let todo: Vec<String> = todo
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let Some(cursor) = cursor
            .and_then(|c| c.parse::<u64>().ok())
            .filter(|_| todo.is_empty())
        else {
            // First contact, or a cursor the hub no longer keeps: take the
            // synced collections whole.
            return self.resnapshot(todo).await;
        };
        let wait = self.sync.cfg.poll_secs;
        let path = format!(
            "/api/sync/pull?cursor={cursor}&max={}&wait={wait}",
            self.sync.cfg.max_batch_bytes
        );
        let sent = hlc::wall_ms();
        let a = self
            .get(path, self.timeout() + Duration::from_secs(wait))
            .await
            .map_err(|e| Failure::Retry(e.0, None))?;
        let received = hlc::wall_ms();
        if a.status == 410 {
            tracing::warn!(cursor, "sync: the hub no longer keeps changes this old; taking the synced collections whole");
            let all = self.down_collections();
            let list = serde_json::to_string(&all).unwrap_or_default();
            self.app
                .store
                .write(move |c| ss::state_put(c, key::RESNAPSHOT, &list))
                .await
                .map_err(|e| Failure::Retry(e.to_string(), None))?;
            return self.resnapshot(all).await;
        }
        if a.status != 200 {
            return Err(classify(&a));
        }
        let pull = match frame::decode(&a.body, 256 << 20) {
            Ok(Msg::Pull(p)) => p,
            Ok(_) => return Err(Failure::Retry("unexpected answer to a pull".into(), None)),
            Err(e) => return Err(Failure::Retry(format!("pull answer: {e}"), None)),
        };
        let offset = self
            .sync
            .learn_offset(pull.hub_ms, sent, received, pull.waited_ms);
        self.sync.observe(pull.hub_hlc);
        let schema_changed = {
            let v = pull.schema.clone();
            self.app
                .store
                .read(move |c| Ok(ss::state_get(c, key::SCHEMA)?.as_deref() != Some(v.as_str())))
                .await
                .unwrap_or(false)
        };
        if schema_changed {
            self.fetch_schema().await?;
        }
        super::files::fetch_for(self, &pull.records).await?;
        let (next, head) = (pull.next, pull.head);
        self.apply(pull.records, move |c| {
            ss::state_put(c, key::CURSOR, &next.to_string())?;
            ss::state_put(c, key::HUB_HEAD, &head.to_string())?;
            ss::state_put(c, key::LAST_PULL, &now_string())?;
            ss::state_put(c, key::STATE, "syncing")?;
            if let Some(off) = offset {
                ss::state_put(c, key::OFFSET, &off.to_string())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Failure::Retry(e.to_string(), None))?;
        Ok(())
    }

    fn down_collections(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sync
            .collections()
            .iter()
            .filter(|(_, d)| d.down())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// Takes collections whole from the hub, page by page (each page one
    /// transaction), removes local records the hub no longer lists (unless
    /// a local change of them is queued), then resumes pulling from the
    /// log head the first page named.
    async fn resnapshot(&self, todo: Vec<String>) -> Result<(), Failure> {
        let todo = if todo.is_empty() {
            self.down_collections()
        } else {
            todo
        };
        let mut start_head: Option<u64> = None;
        // Records with local changes queued now stay, even if the hub's
        // pages were read before those changes reached it.
        let queued: std::collections::HashSet<(String, String)> = self
            .app
            .store
            .read(ss::outbox_records)
            .await
            .map_err(|e| Failure::Retry(e.to_string(), None))?
            .into_iter()
            .collect();
        for (i, coll_id) in todo.iter().enumerate() {
            let mut after = String::new();
            let mut seen: std::collections::HashSet<String> = Default::default();
            loop {
                let path =
                    format!("/api/sync/snapshot?collection={coll_id}&after={after}&limit=500");
                let sent = hlc::wall_ms();
                let a = self
                    .get(path, self.timeout())
                    .await
                    .map_err(|e| Failure::Retry(e.0, None))?;
                let received = hlc::wall_ms();
                if a.status == 403 && !self.sync.collections().contains_key(coll_id) {
                    break;
                }
                if a.status != 200 {
                    return Err(classify(&a));
                }
                let snap = match frame::decode(&a.body, 256 << 20) {
                    Ok(Msg::Snapshot(s)) => s,
                    Ok(_) => {
                        return Err(Failure::Retry(
                            "unexpected answer to a snapshot".into(),
                            None,
                        ))
                    }
                    Err(e) => return Err(Failure::Retry(format!("snapshot answer: {e}"), None)),
                };
                self.sync.observe(snap.hub_hlc);
                if let Some(off) = self.sync.learn_offset(snap.hub_ms, sent, received, 0) {
                    let _ = self
                        .app
                        .store
                        .write(move |c| ss::state_put(c, key::OFFSET, &off.to_string()))
                        .await;
                }
                if start_head.is_none() {
                    start_head = Some(snap.head);
                }
                seen.extend(snap.records.iter().map(|r| r.id.clone()));
                super::files::fetch_for(self, &snap.records).await?;
                let next_after = snap.next_after.clone();
                self.apply(snap.records, |_| Ok(()))
                    .await
                    .map_err(|e| Failure::Retry(e.to_string(), None))?;
                match next_after {
                    Some(n) => after = n,
                    None => break,
                }
            }
            // What the hub no longer lists goes (queued local changes stay).
            let last = i + 1 == todo.len();
            let rest: Vec<String> = todo[i + 1..].to_vec();
            let head = start_head.unwrap_or(0);
            let (app, sync, coll_id2) = (self.app.clone(), self.sync.clone(), coll_id.clone());
            let queued = queued.clone();
            let schema = app.store.schema();
            app.store
                .write_changes(move |c, changes| {
                    if let Some(coll) = schema.by_id(&coll_id2).cloned() {
                        for id in crate::store::lookup::all_ids(c, &coll)? {
                            if seen.contains(&id) || queued.contains(&(coll.id.clone(), id.clone())) {
                                continue;
                            }
                            let (queued, _) = ss::outbox_pending_fields(c, &coll.id, &id)?;
                            if queued {
                                continue;
                            }
                            changes.set_tag(Some(Arc::new(Applying {
                                hlc: sync.clock_now(),
                                origin: super::HUB_ORIGIN.into(),
                                echo: false,
                            })));
                            crate::store::savepoint(c, "sync_gone")?;
                            let r = records::apply_synced(
                                c,
                                &schema,
                                records::Synced {
                                    op: records::Op::Delete(id.clone()),
                                    coll: coll.clone(),
                                    req: Request::system(),
                                    body: Map::new(),
                                    files: Map::new(),
                                },
                                changes,
                            );
                            changes.set_tag(None);
                            match r {
                                Ok(_) => {
                                    crate::store::release(c, "sync_gone")?;
                                    ss::clock_delete(c, &coll.id, &id)?;
                                }
                                Err(e) => {
                                    crate::store::roll_back_to(c, "sync_gone")?;
                                    tracing::warn!(record = %id, error = %e, "sync: a record the hub no longer lists could not be removed");
                                }
                            }
                        }
                    }
                    let left = serde_json::to_string(&rest).unwrap_or_default();
                    ss::state_put(c, key::RESNAPSHOT, &left)?;
                    if last {
                        ss::state_put(c, key::RESNAPSHOT, "[]")?;
                        ss::state_put(c, key::CURSOR, &head.to_string())?;
                        ss::state_put(c, key::LAST_PULL, &now_string())?;
                        ss::state_put(c, key::STATE, "syncing")?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| Failure::Retry(e.to_string(), None))?;
        }
        if todo.is_empty() {
            let head = start_head.unwrap_or(0);
            self.app
                .store
                .write(move |c| {
                    ss::state_put(c, key::RESNAPSHOT, "[]")?;
                    if ss::state_get(c, key::CURSOR)?.is_none() {
                        ss::state_put(c, key::CURSOR, &head.to_string())?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| Failure::Retry(e.to_string(), None))?;
            // Nothing to take yet: ask the log from the start.
        }
        Ok(())
    }

    /// Applies records from the hub in one transaction (each in its own
    /// savepoint; one that can't be applied here is listed as rejected and
    /// the rest go on), then `then` in the same transaction.
    async fn apply(
        &self,
        recs: Vec<frame::Record>,
        then: impl FnOnce(&Connection) -> ApiResult<()> + Send + 'static,
    ) -> ApiResult<()> {
        let schema = self.app.store.schema();
        let sync = self.sync.clone();
        let place = super::hub::Placing {
            dir: self.app.store.dir().to_path_buf(),
            storage: self.app.storage()?,
        };
        let storage = place.storage.clone();
        // Fetched blobs are placed under the records' names by this write;
        // their copies in the spool go once it committed.
        let spool: Vec<std::path::PathBuf> = recs
            .iter()
            .flat_map(|r| r.files.iter())
            .filter_map(|f| super::files::blob_path(self.app.store.dir(), &f.sha256))
            .collect();
        let dropped = self
            .app
            .store
            .write_changes(move |c, changes| {
                let mut dropped: Vec<(String, String, Vec<String>)> = Vec::new();
                for rec in &recs {
                    crate::store::savepoint(c, "sync_rec")?;
                    let r = apply_record(c, &schema, &sync, rec, changes, &place);
                    changes.set_tag(None);
                    match r {
                        Ok(d) => {
                            crate::store::release(c, "sync_rec")?;
                            if !d.is_empty() {
                                dropped.push((rec.collection.clone(), rec.id.clone(), d));
                            }
                        }
                        Err(e) => {
                            crate::store::roll_back_to(c, "sync_rec")?;
                            tracing::warn!(collection = %rec.collection, record = %rec.id, error = %e, "sync: a record from the hub could not be applied here");
                            ss::rejected_add(
                                c,
                                &ss::Rejected {
                                    id: 0,
                                    device: "hub".into(),
                                    seq: sync.tick(),
                                    hlc: rec.fields.iter().map(|f| f.hlc).max().unwrap_or(0),
                                    collection: rec.collection.clone(),
                                    record: rec.id.clone(),
                                    op: if rec.deleted.is_some() { "d" } else { "u" }.into(),
                                    fields: rec
                                        .fields
                                        .iter()
                                        .map(|f| (f.name.clone(), f.value.to_json()))
                                        .collect(),
                                    status: e.status(),
                                    reason: e.to_body(),
                                    created: now_string(),
                                },
                            )?;
                        }
                    }
                }
                then(c)?;
                sync.save_clock(c)?;
                Ok(dropped)
            })
            .await?;
        if !dropped.is_empty() || !spool.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for (coll, rec, names) in dropped {
                    storage.remove(&coll, &rec, &names);
                }
                for p in spool {
                    let _ = std::fs::remove_file(p);
                }
            })
            .await;
        }
        Ok(())
    }
}

/// An outbox row as a frame change.
fn to_frame(r: &ss::OutChange, files: &[frame::FileRef]) -> frame::Change {
    let op = Op::from_code(&r.op).unwrap_or(Op::Update);
    let mut refs = Vec::new();
    for v in r.fields.values() {
        for name in crate::schema::record::to_string_list(v) {
            if let Some(f) = files.iter().find(|f| f.name == name) {
                refs.push(f.clone());
            }
        }
    }
    frame::Change {
        seq: r.seq,
        hlc: r.hlc,
        collection: r.collection.clone(),
        record: r.record.clone(),
        op,
        fields: r
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), Val::from_json(v)))
            .collect(),
        base: r
            .base
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.clone(),
                    v.get(0)?.as_u64()?,
                    v.get(1)?.as_str()?.to_string(),
                ))
            })
            .collect(),
        files: refs,
    }
}

/// Applies one record from the hub (field by field, newest clock wins).
/// Returns the files the write drops (removed after the commit).
fn apply_record(
    c: &Connection,
    schema: &Schema,
    sync: &Sync,
    rec: &frame::Record,
    changes: &mut crate::store::Changes,
    place: &super::hub::Placing,
) -> ApiResult<Vec<String>> {
    let Some(coll) = schema.by_id(&rec.collection).cloned() else {
        return Err(ApiError::NotFound(
            "The collection is not on this device (yet).".into(),
        ));
    };
    let row = rs::fetch_by_id(c, &coll, &rec.id)?;
    let clocks = ss::clock_get(c, &coll.id, &rec.id)?;
    let (_, pending) = ss::outbox_pending_fields(c, &coll.id, &rec.id)?;
    if rec.hidden {
        // No longer listed for this device: its copy goes (local changes
        // of it still queued go to the hub all the same).
        if row.is_some() {
            changes.set_tag(Some(Arc::new(Applying {
                hlc: sync.clock_now(),
                origin: super::HUB_ORIGIN.into(),
                echo: false,
            })));
            records::apply_synced(
                c,
                schema,
                records::Synced {
                    op: records::Op::Delete(rec.id.clone()),
                    coll: coll.clone(),
                    req: Request::system(),
                    body: Map::new(),
                    files: Map::new(),
                },
                changes,
            )?;
            ss::clock_delete(c, &coll.id, &rec.id)?;
        }
        return Ok(Vec::new());
    }
    let remote = merge::Remote {
        deleted: rec.deleted.clone(),
        fields: rec
            .fields
            .iter()
            .filter(|f| super::capture::synced_field(&coll, &f.name))
            .map(|f| (f.name.clone(), f.value.to_json(), (f.hlc, f.origin.clone())))
            .collect(),
    };
    let out = merge::on_device(&remote, row.as_ref(), clocks.as_ref(), &pending);
    let now = now_string();
    for mut x in out.conflicts {
        x.collection = coll.id.clone();
        x.record = rec.id.clone();
        x.created = now.clone();
        ss::conflict_add(c, &x)?;
    }
    let newest = rec
        .deleted
        .as_ref()
        .map(|d| d.0)
        .into_iter()
        .chain(rec.fields.iter().map(|f| f.hlc))
        .max()
        .unwrap_or(0);
    sync.observe(newest);
    changes.set_tag(Some(Arc::new(Applying {
        hlc: newest,
        origin: rec
            .deleted
            .as_ref()
            .map(|d| d.1.clone())
            .unwrap_or_else(|| super::HUB_ORIGIN.into()),
        echo: false,
    })));
    let mut files = super::hub::files_of(&coll, &out.plan);
    let mut dropped = Vec::new();
    if !files.is_empty() {
        (files, dropped) = super::files::place(
            c,
            &place.dir,
            &place.storage,
            &coll,
            &rec.id,
            row.as_ref(),
            &files,
            &rec.files,
            false,
        )?;
    }
    match out.plan {
        merge::Plan::Write { create, mut fields } => {
            super::hub::strip_files(&coll, &mut fields);
            let op = if create {
                fields.insert("id".into(), Value::String(rec.id.clone()));
                records::Op::Create
            } else {
                records::Op::Update(rec.id.clone())
            };
            records::apply_synced(
                c,
                schema,
                records::Synced {
                    op,
                    coll: coll.clone(),
                    req: Request::system(),
                    body: fields,
                    files,
                },
                changes,
            )?;
        }
        merge::Plan::Delete => {
            records::apply_synced(
                c,
                schema,
                records::Synced {
                    op: records::Op::Delete(rec.id.clone()),
                    coll: coll.clone(),
                    req: Request::system(),
                    body: Map::new(),
                    files: Map::new(),
                },
                changes,
            )?;
        }
        merge::Plan::Nothing => {}
    }
    if let Some(clk) = out.clocks {
        ss::clock_put(c, &coll.id, &rec.id, &clk)?;
    }
    Ok(dropped)
}

/// Creates or updates the local collections the hub syncs, and stores the
/// list (a local collection that stops being synced stays, as a local one).
pub async fn apply_schema(app: &Arc<App>, sync: &Arc<Sync>, v: &Value) -> ApiResult<()> {
    let version = v
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let items = v
        .get("collections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let schema = app.store.schema();
    let mut defs = Vec::new();
    let mut list = Vec::new();
    for it in &items {
        let dir = it
            .get("direction")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(def) = it.get("collection") else {
            continue;
        };
        let mut c = crate::schema::parse::collection_from_json(def)
            .map_err(|e| ApiError::internal(format!("a collection from the hub: {e:?}")))?;
        if let Some(other) = schema.get(&c.name) {
            if other.id != c.id {
                return Err(ApiError::internal(format!(
                    "the local collection \"{}\" has another id than the hub's; rename or remove it",
                    c.name
                )));
            }
        }
        let now = now_string();
        if c.created.is_empty() {
            c.created = now.clone();
        }
        c.updated = def
            .get("updated")
            .and_then(Value::as_str)
            .unwrap_or(&now)
            .to_string();
        list.push(ss::SyncedCollection {
            name: c.name.clone(),
            collection_id: c.id.clone(),
            direction: dir.to_string(),
        });
        defs.push(c);
    }
    let list2 = list.clone();
    let schema2 = schema.clone();
    app.store
        .write(move |conn| {
            for c in &defs {
                match schema2.by_id(&c.id) {
                    None => crate::store::catalog::create(conn, c)?,
                    Some(old) => {
                        let same = old.to_api_json() == c.to_api_json();
                        if !same {
                            crate::store::catalog::update(conn, old, c)?;
                        }
                    }
                }
            }
            ss::set_collections(conn, &list2, &now_string())?;
            ss::state_put(conn, key::SCHEMA, &version)?;
            Ok(())
        })
        .await?;
    app.store.reload_schema().await?;
    sync.set_collections(&list);
    Ok(())
}

/// The sync summary (`keepd sync status --json`, `GET /api/sync/status`).
pub fn status_json(c: &Connection, role: crate::config::SyncRole) -> ApiResult<Value> {
    let st = ss::state_all(c)?;
    let s = |k: &str| {
        st.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let n = |k: &str| s(k).parse::<u64>().unwrap_or(0);
    let (depth, oldest) = ss::outbox_depth(c)?;
    let oldest_age = oldest
        .as_deref()
        .and_then(crate::util::parse_datetime)
        .map(|t| (chrono::Utc::now() - t).num_seconds().max(0));
    let rejected = ss::rejected_count(c)?;
    let conflicts = ss::conflict_count(c)?;
    let mut v = json!({
        "role": match role {
            crate::config::SyncRole::Hub => "hub",
            crate::config::SyncRole::Device => "device",
            crate::config::SyncRole::Off => "off",
        },
        "rejected": rejected,
        "conflicts": conflicts,
    });
    match role {
        crate::config::SyncRole::Hub => {
            let (oldest_seq, head) = ss::log_bounds(c)?;
            let devices = ss::devices(c)?;
            v["log"] = json!({"oldest": oldest_seq, "head": head});
            v["devices"] = json!({
                "total": devices.len(),
                "revoked": devices.iter().filter(|d| !d.revoked.is_empty()).count(),
                "enrolled": devices.iter().filter(|d| !d.enrolled.is_empty() && d.revoked.is_empty()).count(),
            });
        }
        _ => {
            let head = n(key::HUB_HEAD);
            let cursor = n(key::CURSOR);
            v["device"] = json!(s(key::NODE));
            v["state"] = json!(if s(key::STATE).is_empty() {
                "unenrolled".to_string()
            } else {
                s(key::STATE)
            });
            v["queue"] = json!(depth);
            v["oldestQueuedSecs"] = json!(oldest_age);
            v["lastPush"] = json!(s(key::LAST_PUSH));
            v["lastPull"] = json!(s(key::LAST_PULL));
            v["cursor"] = json!(cursor);
            v["lag"] = json!({
                "up": depth,
                "down": head.saturating_sub(cursor),
                "secs": oldest_age.unwrap_or(0),
            });
            v["lastError"] = json!(s(key::LAST_ERROR));
            v["clockOffsetMs"] = json!(s(key::OFFSET).parse::<i64>().unwrap_or(0));
        }
    }
    Ok(v)
}

/// One line of the summary (systemd STATUS=, `keepd sync status`).
pub fn status_line(v: &Value) -> String {
    let n = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    match v.get("role").and_then(Value::as_str) {
        Some("hub") => format!(
            "sync hub: {} devices, log head {}, rejected {}, conflicts {}",
            v["devices"]["enrolled"].as_u64().unwrap_or(0),
            v["log"]["head"].as_u64().unwrap_or(0),
            n("rejected"),
            n("conflicts")
        ),
        Some("device") => format!(
            "sync {}: queue {}, last push {}, last pull {}, behind hub {}, rejected {}, conflicts {}",
            v["state"].as_str().unwrap_or("?"),
            n("queue"),
            v["lastPush"].as_str().filter(|s| !s.is_empty()).unwrap_or("never"),
            v["lastPull"].as_str().filter(|s| !s.is_empty()).unwrap_or("never"),
            v["lag"]["down"].as_u64().unwrap_or(0),
            n("rejected"),
            n("conflicts")
        ),
        _ => "sync off".into(),
    }
}
