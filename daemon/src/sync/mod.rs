//! Cloud sync: a fleet of devices, each running keepd, and one keepd in the
//! cloud as their hub. Read ARCHITECTURE.md ("Sync") first: the tables, the
//! frames, the merge rules and the device's state machine are described
//! there.
//!
//! - [`hlc`], [`merge`], [`frame`]: pure (clock, conflict resolution, wire).
//! - [`capture`]: the store's in-transaction consumer of record changes
//!   (device outbox, hub log, field clocks).
//! - [`hub`]: what the hub does for devices (enrolment, push, pull,
//!   snapshot, schema, blobs) and for its superusers (devices).
//! - [`device`]: the device's push and pull loops, enrolment, status.
//! - [`client`]: the device's HTTPS client (pinned CA).

pub mod capture;
pub mod client;
pub mod device;
pub mod files;
pub mod frame;
pub mod hlc;
pub mod hub;
pub mod merge;

use crate::app::App;
use crate::config::{SyncConfig, SyncRole};
use crate::error::{ApiError, ApiResult};
use crate::schema::Collection;
use crate::store::sync as ss;
use crate::store::Conn as Connection;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Which way a synced collection's changes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Device → hub only.
    Up,
    /// Hub → device only.
    Down,
    Both,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
        }
    }
    /// Changes flow from devices to the hub.
    pub fn up(self) -> bool {
        matches!(self, Direction::Up | Direction::Both)
    }
    /// Changes flow from the hub to devices.
    pub fn down(self) -> bool {
        matches!(self, Direction::Down | Direction::Both)
    }
}

/// State keys (`_keepd_sync_state`).
pub mod key {
    /// This node's id (the hub: "hub"; a device: its device record id).
    pub const NODE: &str = "node";
    /// The clock's last value.
    pub const HLC: &str = "hlc";
    /// Device: milliseconds to add to the wall clock to get the hub's.
    pub const OFFSET: &str = "offset_ms";
    /// Device: the last outbox seq given.
    pub const SEQ: &str = "seq";
    /// Device: changes queued (kept with each append and acknowledgement,
    /// so it is exact: a rolled-back write takes its count with it).
    pub const QUEUED: &str = "queued";
    /// Device: the hub log seq pulled to.
    pub const CURSOR: &str = "cursor";
    /// Device: the hub's log head at the last pull.
    pub const HUB_HEAD: &str = "hub_head";
    /// Device: the version of the hub's collection definitions applied.
    pub const SCHEMA: &str = "schema";
    /// Device: collections still to snapshot (JSON array of ids).
    pub const RESNAPSHOT: &str = "resnapshot";
    /// Device: the state machine's state.
    pub const STATE: &str = "state";
    pub const LAST_PUSH: &str = "last_push";
    pub const LAST_PULL: &str = "last_pull";
    pub const LAST_ERROR: &str = "last_error";
}

/// The origin written by the hub's own (local) writes.
pub const HUB_ORIGIN: &str = "hub";

/// What a sync write tells the capture (a `store::Tag`).
#[derive(Debug, Clone)]
pub struct Applying {
    /// The change's clock and writer.
    pub hlc: u64,
    pub origin: String,
    /// Hub: the result goes back to its writer too.
    pub echo: bool,
}

/// Sync's shared state: role, configuration, clock, synced collections,
/// and the wake-ups between capture and the loops.
pub struct Sync {
    pub role: SyncRole,
    pub cfg: SyncConfig,
    /// This node's id (written into clocks as the origin of local writes).
    node: RwLock<String>,
    clock: Mutex<hlc::Clock>,
    /// Device: the offset to the hub's clock, in ms.
    offset_ms: AtomicI64,
    /// Device: the last outbox seq given (persisted with each change).
    seq: AtomicU64,
    /// Device: changes queued as last committed (for the status; the cap
    /// is checked on the count in the database).
    pub depth: AtomicU64,
    warned: std::sync::atomic::AtomicBool,
    collections: RwLock<Arc<HashMap<String, Direction>>>,
    /// Device: a change was queued (wakes the push loop).
    pub queued: tokio::sync::Notify,
    /// Hub: the newest log seq committed (wakes long polls).
    pub head: tokio::sync::watch::Sender<u64>,
    /// Hub: the log seq the last capture wrote (published after COMMIT).
    pending_head: AtomicU64,
    /// Hub: per-device request budget.
    pub limiter: hub::DeviceLimiter,
}

impl Sync {
    /// Loads the sync state from the store.
    pub async fn load(store: &Store, cfg: &SyncConfig) -> anyhow::Result<Arc<Sync>> {
        let role = cfg.role();
        let (state, colls, depth, head) = store
            .read(|c| {
                let st = ss::state_all(c)?;
                let colls = ss::collections(c)?;
                let (depth, _) = ss::outbox_depth(c)?;
                let (_, head) = ss::log_bounds(c)?;
                Ok((st, colls, depth, head))
            })
            .await
            .map_err(|e| anyhow::anyhow!("loading the sync state: {e}"))?;
        let num = |k: &str| -> u64 {
            state
                .get(k)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        let node = match role {
            SyncRole::Hub => HUB_ORIGIN.to_string(),
            _ => state
                .get(key::NODE)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        };
        let offset = state
            .get(key::OFFSET)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        let (head_tx, _) = tokio::sync::watch::channel(head);
        let sync = Arc::new(Sync {
            role,
            cfg: cfg.clone(),
            node: RwLock::new(node),
            clock: Mutex::new(hlc::Clock::new(num(key::HLC))),
            offset_ms: AtomicI64::new(offset),
            seq: AtomicU64::new(num(key::SEQ)),
            depth: AtomicU64::new(depth),
            warned: Default::default(),
            collections: RwLock::new(Arc::new(HashMap::new())),
            queued: tokio::sync::Notify::new(),
            head: head_tx,
            pending_head: AtomicU64::new(head),
            limiter: hub::DeviceLimiter::new(cfg.device_rate_per_sec),
        });
        sync.set_collections(&colls);
        Ok(sync)
    }

    /// This node's id.
    pub fn node(&self) -> String {
        match self.node.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn set_node(&self, id: &str) {
        match self.node.write() {
            Ok(mut g) => *g = id.to_string(),
            Err(p) => *p.into_inner() = id.to_string(),
        }
    }

    /// Loads the synced collections again (another process on the
    /// database changed them).
    pub async fn reload_collections(&self, store: &Store) -> ApiResult<()> {
        let list = store.read(ss::collections).await?;
        self.set_collections(&list);
        Ok(())
    }

    /// Hub: the log's head moved to at least `seq` (wakes long polls).
    pub(crate) fn publish_head(&self, seq: u64) {
        self.head.send_if_modified(|h| {
            if seq > *h {
                *h = seq;
                true
            } else {
                false
            }
        });
    }

    /// The synced collections by id.
    pub fn collections(&self) -> Arc<HashMap<String, Direction>> {
        match self.collections.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn set_collections(&self, list: &[ss::SyncedCollection]) {
        let map = directions(list);
        match self.collections.write() {
            Ok(mut g) => *g = Arc::new(map),
            Err(p) => *p.into_inner() = Arc::new(map),
        }
    }

    /// The direction of a collection, if it is synced.
    pub fn direction(&self, coll: &Collection) -> Option<Direction> {
        self.collections().get(&coll.id).copied()
    }

    /// Physical time as this node counts it (a device: the hub's).
    pub fn now_ms(&self) -> u64 {
        let off = self.offset_ms.load(Ordering::Relaxed);
        (hlc::wall_ms() as i64).saturating_add(off).max(0) as u64
    }

    /// A new clock value for a local event.
    pub fn tick(&self) -> u64 {
        let now = self.now_ms();
        match self.clock.lock() {
            Ok(mut c) => c.tick(now),
            Err(p) => p.into_inner().tick(now),
        }
    }

    /// Raises the clock to a value received.
    pub fn observe(&self, remote: u64) {
        match self.clock.lock() {
            Ok(mut c) => c.observe(remote),
            Err(p) => p.into_inner().observe(remote),
        }
    }

    /// The clock's current value.
    pub fn clock_now(&self) -> u64 {
        match self.clock.lock() {
            Ok(c) => c.last,
            Err(p) => p.into_inner().last,
        }
    }

    /// Stores the clock (inside a write).
    pub(crate) fn save_clock(&self, c: &Connection) -> ApiResult<()> {
        ss::state_put(c, key::HLC, &self.clock_now().to_string())
    }

    /// Device: learns the offset to the hub's clock from an exchange
    /// (`sent`/`received`: local wall times around it; `held`: how long the
    /// hub held it before answering, which is not network time). The hub
    /// read its clock as it answered: half a network round trip before the
    /// answer arrived.
    pub(crate) fn learn_offset(
        &self,
        hub_ms: u64,
        sent: u64,
        received: u64,
        held: u64,
    ) -> Option<i64> {
        let rtt = received.checked_sub(sent)?.checked_sub(held)?;
        if rtt > 5000 || hub_ms == 0 {
            return None;
        }
        let mid = received - rtt / 2;
        let off = hub_ms as i64 - mid as i64;
        let old = self.offset_ms.swap(off, Ordering::Relaxed);
        ((old - off).abs() > 1000).then_some(off)
    }

    /// Device: the next outbox seq.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Hub: the log seq a capture just wrote (published after COMMIT).
    pub(crate) fn logged(&self, seq: u64) {
        self.pending_head.fetch_max(seq, Ordering::SeqCst);
    }

    /// Device: warns once the queue (`depth` changes) passes the warning
    /// mark; refuses a write at the cap.
    pub(crate) fn check_depth(&self, depth: u64) -> ApiResult<()> {
        let max = self.cfg.outbox_max;
        if depth >= max {
            return Err(ApiError::Unavailable(format!(
                "The sync queue is full ({depth} changes wait for the hub, the limit is sync.outbox_max = {max}): this write is refused until the device reaches its hub."
            )));
        }
        let mark = max.saturating_mul(self.cfg.outbox_warn_percent) / 100;
        if depth >= mark && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                depth,
                max,
                "SYNC QUEUE {}% FULL: {depth} local changes wait for the hub; at {max} local writes to synced collections will be refused",
                depth * 100 / max.max(1)
            );
        } else if depth < mark {
            self.warned.store(false, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Starts sync for the daemon: loads its state, registers the capture,
/// and starts the loops of the role. Returns the shared state (None: off).
pub async fn start(app: &Arc<App>) -> anyhow::Result<Option<Arc<Sync>>> {
    let cfg = &app.config.sync;
    if cfg.role() == SyncRole::Off {
        return Ok(None);
    }
    let sync = Sync::load(&app.store, cfg).await?;
    app.store.set_capture(Arc::new(capture::SyncCapture::new(
        sync.clone(),
        Arc::downgrade(app),
    )));
    match sync.role {
        SyncRole::Hub => hub::start(app, &sync).await?,
        SyncRole::Device => device::start(app, &sync).await?,
        SyncRole::Off => {}
    }
    Ok(Some(sync))
}

/// The sync state of a running daemon (the API's superuser routes).
pub fn of(app: &App) -> ApiResult<&Arc<Sync>> {
    app.sync
        .get()
        .ok_or_else(|| ApiError::NotFound("Sync is not on for this keepd ([sync] role).".into()))
}

/// Refuses local schema edits to collections a hub owns (on a device).
pub fn guard_schema_edit(app: &App, coll: &Collection) -> ApiResult<()> {
    let Some(sync) = app.sync.get() else {
        return Ok(());
    };
    if sync.role == SyncRole::Device && sync.direction(coll).is_some() {
        return Err(ApiError::bad(format!(
            "The collection \"{}\" is synced from the hub, which owns its definition: change it on the hub.",
            coll.name
        )));
    }
    Ok(())
}

/// Refuses an import that would change or delete collections a hub owns
/// (on a device).
pub fn guard_import(app: &App, list: &[serde_json::Value], delete_missing: bool) -> ApiResult<()> {
    let Some(sync) = app.sync.get() else {
        return Ok(());
    };
    if sync.role != SyncRole::Device {
        return Ok(());
    }
    let schema = app.store.schema();
    for (id, _) in sync.collections().iter() {
        let Some(c) = schema.by_id(id) else { continue };
        let named = list.iter().any(|it| {
            it.get("id").and_then(serde_json::Value::as_str) == Some(c.id.as_str())
                || it
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(&c.name))
        });
        if named || delete_missing {
            return guard_schema_edit(app, c);
        }
    }
    Ok(())
}

/// SHA-256 in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The synced collections by id, with the way their changes flow.
pub(crate) fn directions(list: &[ss::SyncedCollection]) -> HashMap<String, Direction> {
    list.iter()
        .filter_map(|s| Some((s.collection_id.clone(), Direction::parse(&s.direction)?)))
        .collect()
}
