//! The hub: devices (creation, enrolment, authentication, revocation), and
//! what it does for them — apply a push, answer a pull, page a snapshot,
//! hand out the synced collections' definitions, keep file blobs.
//!
//! Everything a device writes goes through `records::apply_synced` as
//! `Principal::User(device record)`; everything it reads through
//! `records::sync` with the same principal.

use super::frame::{self, FileRef, Msg, Op, Val};
use super::merge;
use super::{hlc, Applying, Direction, Sync, HUB_ORIGIN};
use crate::app::App;
use crate::auth::AuthRecord;
use crate::error::{ApiError, ApiResult};
use crate::records::{self, Principal, Request};
use crate::schema::{Collection, FieldKind, Schema};
use crate::store::records as rs;
use crate::store::sync::{self as ss, Device};
use crate::store::Conn as Connection;
use crate::util::{now_string, random_string, ALPHANUM};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A per-device token bucket (`device_rate_per_sec`, burst of twice that).
pub struct DeviceLimiter {
    rate: f64,
    buckets: Mutex<HashMap<String, (f64, std::time::Instant)>>,
}

impl DeviceLimiter {
    pub fn new(rate: u32) -> DeviceLimiter {
        DeviceLimiter {
            rate: rate.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the device's budget, or says when to retry.
    pub fn take(&self, device: &str) -> Result<(), u64> {
        let now = std::time::Instant::now();
        let mut g = match self.buckets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() > 100_000 {
            g.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let burst = self.rate * 2.0;
        let (tokens, last) = g.entry(device.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Starts the hub: the device collection exists, the log is pruned.
pub async fn start(app: &Arc<App>, sync: &Arc<Sync>) -> anyhow::Result<()> {
    ensure_device_collection(app)
        .await
        .map_err(|e| anyhow::anyhow!("the sync device collection: {e}"))?;
    let (app2, keep) = (app.clone(), sync.cfg.log_keep);
    tokio::spawn(async move {
        loop {
            let r = app2.store.write(move |c| ss::log_prune(c, keep)).await;
            match r {
                Ok(n) if n > 0 => tracing::info!(entries = n, keep, "sync log pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sync log pruning failed"),
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    });
    tokio::spawn(super::device::report(app.clone(), sync.clone()));
    follow_other_processes(app, sync);
    tracing::info!(
        devices = %sync.cfg.device_collection,
        collections = sync.collections().len(),
        "sync hub ready"
    );
    Ok(())
}

/// Several hub processes serving one database (PostgreSQL): the log's
/// head moves with the commits of every one of them, which this process's
/// change log follower sees (each log entry is written with its record
/// change, in one transaction): a long poll here wakes on them.
fn follow_other_processes(app: &Arc<App>, sync: &Arc<Sync>) {
    let Some(mut followed) = app.store.followed() else {
        return;
    };
    let (store, sync) = (Arc::downgrade(&app.store), Arc::downgrade(sync));
    tokio::spawn(async move {
        while followed.changed().await.is_ok() {
            let (Some(store), Some(sync)) = (store.upgrade(), sync.upgrade()) else {
                return;
            };
            match store.read(ss::log_bounds).await {
                Ok((_, head)) => sync.publish_head(head),
                Err(e) => tracing::warn!(error = %e, "sync: reading the log's head failed"),
            }
        }
    });
}

/// Creates the auth collection devices are records of, if missing: no
/// password login, rules for superusers only.
async fn ensure_device_collection(app: &Arc<App>) -> ApiResult<()> {
    let name = app.config.sync.device_collection.clone();
    if let Some(c) = app.store.schema().get(&name) {
        if !c.is_auth() {
            return Err(ApiError::internal(format!(
                "sync.device_collection \"{name}\" exists and is not an auth collection"
            )));
        }
        return Ok(());
    }
    let def = json!({
        "name": name,
        "type": "auth",
        "fields": [{"name": "name", "type": "text", "max": 200}],
        "passwordAuth": {"enabled": false, "identityFields": ["email"]},
    });
    let mut c = crate::schema::parse::build(&def, None, &app.store.schema())
        .map_err(|e| ApiError::internal(format!("device collection: {e:?}")))?;
    let now = now_string();
    c.created = now.clone();
    c.updated = now;
    for key in crate::schema::collection::TOKEN_KEYS {
        if let Some(o) = c.options.get_mut(*key).and_then(Value::as_object_mut) {
            o.insert("secret".into(), Value::String(random_string(50, ALPHANUM)));
        }
    }
    app.store
        .write(move |conn| crate::store::catalog::create(conn, &c))
        .await?;
    app.store.reload_schema().await?;
    tracing::info!(collection = %name, "created the sync device collection");
    Ok(())
}

fn device_collection(app: &App) -> ApiResult<Arc<Collection>> {
    app.store
        .schema()
        .get(&app.config.sync.device_collection)
        .cloned()
        .ok_or_else(|| ApiError::internal("the sync device collection is missing"))
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A device as the superuser API shows it.
pub fn device_json(d: &Device, record: Option<&Map<String, Value>>) -> Value {
    json!({
        "id": d.id,
        "name": record.and_then(|r| r.get("name")).cloned().unwrap_or(Value::Null),
        "collectionId": d.collection_id,
        "enrolled": d.enrolled,
        "revoked": d.revoked,
        "lastSeq": d.last_seq,
        "cursor": d.cursor,
        "lastPush": d.last_push,
        "lastPull": d.last_pull,
        "created": d.created,
    })
}

/// A new enrolment token for a device row (its hash goes in the row).
fn new_token(d: &mut Device, ttl: u64) -> String {
    let secret = random_string(43, ALPHANUM);
    d.enrol_hash = super::sha256_hex(secret.as_bytes());
    d.enrol_expires = unix_now() + ttl as i64;
    d.enrol_secret.clear();
    d.enrolled.clear();
    format!("{}.{}", d.id, secret)
}

/// Creates a device (a record of the device collection) and its first
/// enrolment token.
pub async fn create_device(app: &Arc<App>, name: &str) -> ApiResult<(Value, String)> {
    let coll = device_collection(app)?;
    let id = crate::util::new_record_id();
    // Devices never log in with a password: theirs is random and unknown.
    let password = random_string(48, ALPHANUM);
    let body = json!({
        "id": id,
        "name": name,
        "email": format!("{id}@devices.invalid"),
        "password": password,
        "passwordConfirm": password,
    });
    let body = body.as_object().cloned().unwrap_or_default();
    let rec = records::create(app, &coll, &Request::system(), records::Input::json(body)).await?;
    let mut d = Device {
        id: id.clone(),
        collection_id: coll.id.clone(),
        created: now_string(),
        ..Default::default()
    };
    let token = new_token(&mut d, app.config.sync.enrol_ttl_secs);
    let d2 = d.clone();
    app.store.write(move |c| ss::device_put(c, &d2)).await?;
    Ok((device_json(&d, rec.as_object()), token))
}

/// A new enrolment token for an existing device (its credential stays
/// until the token is used).
pub async fn renew_token(app: &Arc<App>, id: &str) -> ApiResult<String> {
    let (id2, ttl) = (id.to_string(), app.config.sync.enrol_ttl_secs);
    app.store
        .write(move |c| {
            let mut d = ss::device_get(c, &id2)?.ok_or_else(ApiError::not_found)?;
            if !d.revoked.is_empty() {
                return Err(ApiError::bad("The device is revoked."));
            }
            let t = new_token(&mut d, ttl);
            ss::device_put(c, &d)?;
            Ok(t)
        })
        .await
}

/// Revokes a device: its credential stops working at once.
pub async fn revoke(app: &Arc<App>, id: &str) -> ApiResult<()> {
    let id2 = id.to_string();
    app.store
        .write(move |c| {
            let mut d = ss::device_get(c, &id2)?.ok_or_else(ApiError::not_found)?;
            d.revoked = now_string();
            d.credential.clear();
            d.enrol_hash.clear();
            ss::device_put(c, &d)
        })
        .await
}

pub async fn list_devices(app: &Arc<App>) -> ApiResult<Vec<Value>> {
    let coll = device_collection(app)?;
    app.store
        .read(move |c| {
            let mut out = Vec::new();
            for d in ss::devices(c)? {
                let rec = rs::fetch_by_id(c, &coll, &d.id)?;
                out.push(device_json(&d, rec.as_ref()));
            }
            Ok(out)
        })
        .await
}

/// What a device gets for its enrolment.
pub struct Enrolled {
    pub device: String,
    pub hub_ms: u64,
}

/// Trades an enrolment token for a device credential: the device's own
/// secret, of which only the hash is kept. The same token with the same
/// secret is answered again (a lost answer is retried); any other second
/// use is refused.
pub async fn enrol(app: &Arc<App>, token: &str, secret: &str) -> ApiResult<Enrolled> {
    let refused =
        || ApiError::Unauthorized("The enrolment token is invalid, used or expired.".into());
    let (id, tsecret) = token.split_once('.').ok_or_else(refused)?;
    if secret.len() < 32 || secret.len() > 256 {
        return Err(ApiError::bad(
            "The device secret must be 32 to 256 characters.",
        ));
    }
    let (id, thash, chash) = (
        id.to_string(),
        super::sha256_hex(tsecret.as_bytes()),
        super::sha256_hex(secret.as_bytes()),
    );
    let now = unix_now();
    let device = app
        .store
        .write(move |c| {
            let Some(mut d) = ss::device_get(c, &id)? else {
                return Err(refused());
            };
            if !d.revoked.is_empty() || d.enrol_hash.is_empty() || !ct_eq(&d.enrol_hash, &thash) {
                return Err(refused());
            }
            if d.enrol_expires < now {
                return Err(refused());
            }
            if !d.enrolled.is_empty() {
                // Used: only the same trade again.
                return if ct_eq(&d.enrol_secret, &chash) {
                    Ok(d.id)
                } else {
                    Err(refused())
                };
            }
            d.credential = chash.clone();
            d.enrol_secret = chash;
            d.enrolled = now_string();
            ss::device_put(c, &d)?;
            Ok(d.id)
        })
        .await?;
    tracing::info!(device = %device, "sync device enrolled");
    Ok(Enrolled {
        device,
        hub_ms: hlc::wall_ms(),
    })
}

fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A device that proved its credential.
#[derive(Clone)]
pub struct DeviceAuth {
    pub id: String,
    pub record: AuthRecord,
}

impl DeviceAuth {
    /// The request its reads and writes are made as.
    pub fn request(&self, method: &str) -> Request {
        Request {
            principal: Principal::User(self.record.clone()),
            method: method.into(),
            context: "sync",
            ..Default::default()
        }
    }
}

/// Checks `Authorization: KeepdDevice <id>.<secret>`: enrolled, not
/// revoked, its record still there, within its request budget.
pub async fn authenticate(
    app: &Arc<App>,
    sync: &Sync,
    header: Option<&str>,
) -> ApiResult<DeviceAuth> {
    let denied = || ApiError::Unauthorized("The device credential is invalid or revoked.".into());
    let raw = header
        .and_then(|h| h.strip_prefix("KeepdDevice "))
        .ok_or_else(denied)?;
    let (id, secret) = raw.trim().split_once('.').ok_or_else(denied)?;
    let hash = super::sha256_hex(secret.as_bytes());
    let coll = device_collection(app)?;
    let (id2, coll2) = (id.to_string(), coll.clone());
    let (dev, rec) = app
        .store
        .read(move |c| {
            let d = ss::device_get(c, &id2)?;
            let r = rs::fetch_by_id(c, &coll2, &id2)?;
            Ok((d, r))
        })
        .await?;
    let (Some(dev), Some(rec)) = (dev, rec) else {
        return Err(denied());
    };
    if !dev.revoked.is_empty() || dev.credential.is_empty() || !ct_eq(&dev.credential, &hash) {
        return Err(denied());
    }
    if let Err(retry_after) = sync.limiter.take(&dev.id) {
        return Err(ApiError::TooManyRequests {
            message: "Too many sync requests from this device.".into(),
            retry_after,
        });
    }
    Ok(DeviceAuth {
        id: dev.id,
        record: AuthRecord {
            collection: coll,
            record: Arc::new(rec),
        },
    })
}

/// A 4xx from the record domain refuses one change; anything else stops
/// the batch (the device retries from there).
fn refusal(e: &ApiError) -> bool {
    (400..500).contains(&e.status()) && e.status() != 429
}

/// Applies a push: one transaction for the batch, one savepoint per
/// change; changes at or below the device's recorded seq are skipped.
pub async fn push(
    app: &Arc<App>,
    sync: &Arc<Sync>,
    dev: &DeviceAuth,
    push: frame::Push,
) -> ApiResult<frame::PushAck> {
    let skew_ms = sync.cfg.max_clock_skew_secs.saturating_mul(1000);
    if hlc::millis(push.hlc) <= sync.now_ms() + skew_ms {
        sync.observe(push.hlc);
    }
    let mut catalog = Catalog {
        schema: app.store.schema(),
        synced: sync.collections(),
        behind: app.store.followed().is_some(),
    };
    let (sync2, dev2) = (sync.clone(), dev.clone());
    let mut changes_in = push.changes;
    changes_in.sort_by_key(|c| c.seq);
    let place = Placing {
        dir: app.store.dir().to_path_buf(),
        storage: app.storage()?,
    };
    let storage = place.storage.clone();
    let (through, refused, dropped) = app
        .store
        .write_changes(move |c, changes| {
            let mut dropped: Vec<(String, String, Vec<String>)> = Vec::new();
            let d = ss::device_get(c, &dev2.id)?.ok_or_else(ApiError::not_found)?;
            let first = changes_in.first().map(|x| x.seq).unwrap_or(0);
            let mut through = d.last_seq;
            for ch in &changes_in {
                if ch.seq <= d.last_seq {
                    continue;
                }
                crate::store::savepoint(c, "sync_change")?;
                let r = apply_one(c, &mut catalog, &sync2, &dev2, ch, skew_ms, &place, changes);
                changes.set_tag(None);
                match r {
                    Ok(d) => {
                        crate::store::release(c, "sync_change")?;
                        if !d.is_empty() {
                            dropped.push((ch.collection.clone(), ch.record.clone(), d));
                        }
                    }
                    Err(e) if refusal(&e) => {
                        crate::store::roll_back_to(c, "sync_change")?;
                        tracing::info!(device = %dev2.id, seq = ch.seq, status = e.status(), error = %e, "sync change refused");
                        ss::rejected_add(
                            c,
                            &ss::Rejected {
                                id: 0,
                                device: dev2.id.clone(),
                                seq: ch.seq,
                                hlc: ch.hlc,
                                collection: ch.collection.clone(),
                                record: ch.record.clone(),
                                op: ch.op.code().into(),
                                fields: frame::fields_json(&ch.fields),
                                status: e.status(),
                                reason: e.to_body(),
                                created: now_string(),
                            },
                        )?;
                    }
                    Err(e) => {
                        crate::store::roll_back_to(c, "sync_change")?;
                        tracing::error!(device = %dev2.id, seq = ch.seq, error = %e, "sync change failed; the device will retry it");
                        break;
                    }
                }
                through = ch.seq;
            }
            ss::device_pushed(c, &dev2.id, through, &now_string())?;
            let refused = if first > 0 && through >= first {
                ss::rejected_between(c, &dev2.id, first, through)?
            } else {
                Vec::new()
            };
            sync2.save_clock(c)?;
            Ok((through, refused, dropped))
        })
        .await?;
    // Files the committed writes no longer name.
    if !dropped.is_empty() {
        let _ = tokio::task::spawn_blocking(move || {
            for (coll, rec, names) in dropped {
                storage.remove(&coll, &rec, &names);
            }
        })
        .await;
    }
    Ok(frame::PushAck {
        through,
        refused: refused
            .into_iter()
            .map(|r| frame::Refused {
                seq: r.seq,
                status: r.status,
                reason: r.reason.to_string(),
            })
            .collect(),
        hub_hlc: sync.clock_now(),
        hub_ms: hlc::wall_ms(),
    })
}

/// The fields of a change that exist in the collection and are synced.
fn usable_fields(coll: &Collection, fields: &[(String, Val)]) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(k, _)| super::capture::synced_field(coll, k))
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect()
}

/// Where synced files are placed from.
pub(crate) struct Placing {
    pub dir: std::path::PathBuf,
    pub storage: crate::files::Storage,
}

/// What a push's changes are checked against: the collections and the
/// synced list this process holds. Where several processes serve one
/// database (PostgreSQL), another one may have just changed either and
/// this one not followed it yet; a refusal is for good (the device moves
/// on), and so is a field dropped as unknown, so before refusing a change,
/// or dropping a field, for them both are read again inside the push's
/// transaction, which sees every commit before it.
struct Catalog {
    schema: Arc<Schema>,
    synced: Arc<HashMap<String, Direction>>,
    /// Held in memory and maybe behind the database, not yet read again.
    behind: bool,
}

impl Catalog {
    /// The collection a device may change, or why not.
    fn writable(&mut self, c: &Connection, id: &str) -> ApiResult<Arc<Collection>> {
        loop {
            let coll = self.schema.by_id(id);
            let dir = coll.and_then(|k| self.synced.get(&k.id));
            let refused = match (coll, dir) {
                (Some(coll), Some(dir)) if dir.up() => return Ok(coll.clone()),
                (None, _) => ApiError::NotFound("The collection is not on the hub.".into()),
                (Some(_), None) => ApiError::Forbidden("The collection is not synced.".into()),
                (Some(_), Some(_)) => ApiError::Forbidden(
                    "The collection is synced down only: devices can't change it.".into(),
                ),
            };
            if !self.behind {
                return Err(refused);
            }
            self.read_again(c)?;
        }
    }

    /// `writable`, and the collection read again first (once per push,
    /// where this process may be behind) when the change names a field it
    /// lacks: a field another process has just added is stored, not
    /// dropped from the change.
    fn writable_with(
        &mut self,
        c: &Connection,
        id: &str,
        fields: &[(String, Val)],
    ) -> ApiResult<Arc<Collection>> {
        let coll = self.writable(c, id)?;
        if self.behind && fields.iter().any(|(k, _)| coll.field(k).is_none()) {
            self.read_again(c)?;
            return self.writable(c, id);
        }
        Ok(coll)
    }

    fn read_again(&mut self, c: &Connection) -> ApiResult<()> {
        self.behind = false;
        self.schema = Arc::new(crate::store::load_schema(c).map_err(ApiError::internal)?);
        self.synced = Arc::new(super::directions(&ss::collections(c)?));
        Ok(())
    }
}

/// Applies one device change (merged, through the record domain as the
/// device). Returns the files the write drops.
#[allow(clippy::too_many_arguments)]
fn apply_one(
    c: &Connection,
    catalog: &mut Catalog,
    sync: &Sync,
    dev: &DeviceAuth,
    ch: &frame::Change,
    skew_ms: u64,
    place: &Placing,
    changes: &mut crate::store::Changes,
) -> ApiResult<Vec<String>> {
    let coll = catalog.writable_with(c, &ch.collection, &ch.fields)?;
    let schema = &*catalog.schema;
    if !crate::files::safe_name(&ch.record) || ch.record.is_empty() {
        return Err(ApiError::bad("Invalid record id."));
    }
    // A clock too far ahead of the hub's is not believed: the change is
    // kept, at the hub's time.
    let (hlc, clamped) = if hlc::millis(ch.hlc) > sync.now_ms() + skew_ms {
        (sync.tick(), true)
    } else {
        (ch.hlc, false)
    };
    let row = rs::fetch_by_id(c, &coll, &ch.record)?;
    let clocks = ss::clock_get(c, &coll.id, &ch.record)?;
    let inc = merge::Incoming {
        delete: ch.op == Op::Delete,
        hlc,
        origin: dev.id.clone(),
        fields: usable_fields(&coll, &ch.fields),
        base: ch
            .base
            .iter()
            .map(|(f, h, o)| (f.clone(), (*h, o.clone())))
            .collect(),
    };
    let out = merge::on_hub(&inc, row.as_ref(), clocks.as_ref());
    let now = now_string();
    for mut x in out.conflicts {
        x.collection = coll.id.clone();
        x.record = ch.record.clone();
        x.created = now.clone();
        ss::conflict_add(c, &x)?;
    }
    let mut files = files_of(&coll, &out.plan);
    let mut dropped = Vec::new();
    if !files.is_empty() {
        (files, dropped) = super::files::place(
            c,
            &place.dir,
            &place.storage,
            &coll,
            &ch.record,
            row.as_ref(),
            &files,
            &ch.files,
            true,
        )?;
    }
    changes.set_tag(Some(Arc::new(Applying {
        hlc,
        origin: dev.id.clone(),
        echo: clamped || out.raised,
    })));
    match out.plan {
        merge::Plan::Write { create, mut fields } => {
            strip_files(&coll, &mut fields);
            let (op, method) = if create {
                fields.insert("id".into(), Value::String(ch.record.clone()));
                (records::Op::Create, "POST")
            } else {
                (records::Op::Update(ch.record.clone()), "PATCH")
            };
            records::apply_synced(
                c,
                schema,
                records::Synced {
                    op,
                    coll: coll.clone(),
                    req: dev.request(method),
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
                    op: records::Op::Delete(ch.record.clone()),
                    coll: coll.clone(),
                    req: dev.request("DELETE"),
                    body: Map::new(),
                    files: Map::new(),
                },
                changes,
            )?;
        }
        merge::Plan::Nothing => {}
    }
    if let Some(clk) = out.clocks {
        ss::clock_put(c, &coll.id, &ch.record, &clk)?;
    }
    Ok(dropped)
}

/// The file fields a write sets (their files are placed in storage first).
pub(crate) fn files_of(coll: &Collection, plan: &merge::Plan) -> Map<String, Value> {
    let merge::Plan::Write { fields, .. } = plan else {
        return Map::new();
    };
    fields
        .iter()
        .filter(|(k, _)| matches!(coll.field(k).map(|f| &f.kind), Some(FieldKind::File(_))))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn strip_files(coll: &Collection, fields: &mut Map<String, Value>) {
    fields.retain(|k, _| !matches!(coll.field(k).map(|f| &f.kind), Some(FieldKind::File(_))));
}

/// A pull's answer: changes, or the cursor is too old.
pub enum Pulled {
    Changes(frame::Pull),
    Gone(frame::Gone),
}

/// The version of the synced collections' definitions (changes when a
/// definition or the list changes).
pub fn schema_version(app: &App, sync: &Sync) -> String {
    let schema = app.store.schema();
    let mut ids: Vec<(&String, &Direction)> = Vec::new();
    let colls = sync.collections();
    ids.extend(colls.iter());
    ids.sort();
    let mut text = String::new();
    for (id, dir) in ids {
        text.push_str(id);
        text.push_str(dir.as_str());
        if let Some(c) = schema.by_id(id) {
            text.push_str(&c.updated);
            text.push_str(&c.name);
        }
    }
    super::sha256_hex(text.as_bytes())[..16].to_string()
}

/// Answers a pull: waits (up to `wait`) for log entries after `cursor`,
/// then the records they name, each once, as the device may see them.
pub async fn pull(
    app: &Arc<App>,
    sync: &Arc<Sync>,
    dev: &DeviceAuth,
    cursor: u64,
    max_bytes: usize,
    wait: Duration,
) -> ApiResult<Pulled> {
    let mut rx = sync.head.subscribe();
    let (oldest, head) = app.store.read(ss::log_bounds).await?;
    if head > cursor && oldest > cursor + 1 {
        return Ok(Pulled::Gone(frame::Gone { oldest, head }));
    }
    let started = std::time::Instant::now();
    if head <= cursor {
        let _ = tokio::time::timeout(wait, rx.wait_for(|h| *h > cursor)).await;
    }
    let waited_ms = started.elapsed().as_millis() as u64;
    let schema = app.store.schema();
    let (dev2, sync2) = (dev.clone(), sync.clone());
    let budget = max_bytes.min(sync.cfg.max_batch_bytes).max(4096);
    let (records, next, head) = app
        .store
        .read(move |c| {
            crate::store::read_consistent(c, |c| collect(c, &schema, &sync2, &dev2, cursor, budget))
        })
        .await?;
    let dev_id = dev.id.clone();
    let _ = app
        .store
        .write(move |c| ss::device_pulled(c, &dev_id, next, &now_string()))
        .await;
    Ok(Pulled::Changes(frame::Pull {
        records,
        next,
        head,
        schema: schema_version(app, sync),
        hub_hlc: sync.clock_now(),
        hub_ms: hlc::wall_ms(),
        waited_ms,
    }))
}

/// Rough size of a record on the wire.
fn record_bytes(r: &frame::Record) -> usize {
    64 + r
        .fields
        .iter()
        .map(|f| {
            f.name.len()
                + 16
                + f.origin.len()
                + match &f.value {
                    Val::Text(s) | Val::Json(s) => s.len(),
                    Val::List(l) => l.iter().map(|x| x.len() + 2).sum(),
                    _ => 9,
                }
        })
        .sum::<usize>()
}

/// Reads the records changed after `cursor` (up to `budget` bytes).
fn collect(
    c: &Connection,
    schema: &Schema,
    sync: &Sync,
    dev: &DeviceAuth,
    cursor: u64,
    budget: usize,
) -> ApiResult<(Vec<frame::Record>, u64, u64)> {
    let (_, head) = ss::log_bounds(c)?;
    let entries = ss::log_after(c, cursor, 2000)?;
    let req = dev.request("GET");
    let mut conds: HashMap<String, Option<crate::store::records::Cond>> = HashMap::new();
    let mut seen: std::collections::HashSet<(String, String)> = Default::default();
    let mut out = Vec::new();
    let mut used = 0usize;
    let mut next = cursor;
    let colls = sync.collections();
    for e in entries {
        let key = (e.collection.clone(), e.record.clone());
        let own = e.origin == dev.id && !e.echo;
        if own || seen.contains(&key) {
            next = e.seq;
            continue;
        }
        let Some(coll) = schema.by_id(&e.collection).cloned() else {
            next = e.seq;
            continue;
        };
        if !colls.get(&coll.id).is_some_and(|d| d.down()) {
            next = e.seq;
            continue;
        }
        if !conds.contains_key(&coll.id) {
            conds.insert(
                coll.id.clone(),
                records::sync::list_cond(schema, &coll, &req)?,
            );
        }
        let Some(Some(cond)) = conds.get(&coll.id) else {
            next = e.seq;
            continue;
        };
        let rec = if e.op == "d" {
            let listed = match &e.snapshot {
                Some(s) => records::sync::was_listed(c, &coll, cond, s)?,
                None => false,
            };
            let clocks = ss::clock_get(c, &coll.id, &e.record)?;
            match (listed, clocks.and_then(|k| k.deleted)) {
                (true, Some(d)) => Some(frame::Record {
                    collection: coll.id.clone(),
                    id: e.record.clone(),
                    deleted: Some(d),
                    fields: Vec::new(),
                    files: Vec::new(),
                    hidden: false,
                }),
                _ => None,
            }
        } else {
            match records::sync::listed_row(c, &coll, cond, &e.record)? {
                Some(row) => Some(record_of(c, &coll, &e.record, row)?),
                // Listed before this change, not now, and still there: the
                // device drops it. (A record gone since has its delete
                // further on in the log, which must not be passed over.)
                None => match &e.snapshot {
                    Some(before)
                        if rs::fetch_by_id(c, &coll, &e.record)?.is_some()
                            && records::sync::was_listed(c, &coll, cond, before)? =>
                    {
                        Some(frame::Record {
                            collection: coll.id.clone(),
                            id: e.record.clone(),
                            deleted: None,
                            fields: Vec::new(),
                            files: Vec::new(),
                            hidden: true,
                        })
                    }
                    _ => None,
                },
            }
        };
        if let Some(rec) = rec {
            let size = record_bytes(&rec);
            if !out.is_empty() && used + size > budget {
                break;
            }
            used += size;
            seen.insert(key);
            out.push(rec);
        }
        next = e.seq;
    }
    Ok((out, next, head))
}

/// A row as sent to a device: its synced fields with their clocks.
pub(crate) fn record_of(
    c: &Connection,
    coll: &Collection,
    id: &str,
    row: Map<String, Value>,
) -> ApiResult<frame::Record> {
    let clocks = ss::clock_get(c, &coll.id, id)?.unwrap_or_default();
    let mut fields = Vec::new();
    let mut files = Vec::new();
    for (k, v) in row {
        if !super::capture::synced_field(coll, &k) {
            continue;
        }
        let (h, o) = clocks.fields.get(&k).cloned().unwrap_or((0, String::new()));
        if matches!(coll.field(&k).map(|f| &f.kind), Some(FieldKind::File(_))) {
            for name in crate::schema::record::to_string_list(&v) {
                if let Some(sha) = super::files::stored_sha(c, &coll.id, id, &name)? {
                    files.push(FileRef { name, sha256: sha });
                }
            }
        }
        fields.push(frame::FieldVal {
            name: k,
            value: Val::from_json(&v),
            hlc: h,
            origin: o,
        });
    }
    Ok(frame::Record {
        collection: coll.id.clone(),
        id: id.to_string(),
        deleted: None,
        fields,
        files,
        hidden: false,
    })
}

/// One page of a snapshot of a synced collection, as the device may list it.
pub async fn snapshot(
    app: &Arc<App>,
    sync: &Arc<Sync>,
    dev: &DeviceAuth,
    collection: &str,
    after: &str,
    limit: i64,
) -> ApiResult<frame::Snapshot> {
    let schema = app.store.schema();
    let coll = schema
        .get(collection)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    if !sync.collections().get(&coll.id).is_some_and(|d| d.down()) {
        return Err(ApiError::Forbidden(
            "The collection is not synced down.".into(),
        ));
    }
    let (dev2, after2) = (dev.clone(), after.to_string());
    let limit = limit.clamp(1, 1000);
    let budget = sync.cfg.max_batch_bytes;
    let (records, head, full) = app
        .store
        .read(move |c| {
            crate::store::read_consistent(c, |c| {
                let (_, head) = ss::log_bounds(c)?;
                let req = dev2.request("GET");
                let rows = records::sync::listed_page(c, &schema, &coll, &req, &after2, limit)?;
                let mut full = rows.len() as i64 == limit;
                let mut out = Vec::with_capacity(rows.len());
                let mut used = 0usize;
                for row in rows {
                    let id = row
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let rec = record_of(c, &coll, &id, row)?;
                    // A page holds at most the byte budget (and one record).
                    let size = record_bytes(&rec);
                    if !out.is_empty() && used + size > budget {
                        full = true;
                        break;
                    }
                    used += size;
                    out.push(rec);
                }
                Ok((out, head, full))
            })
        })
        .await?;
    let next_after = full.then(|| records.last().map(|r| r.id.clone())).flatten();
    Ok(frame::Snapshot {
        records,
        next_after,
        head,
        hub_hlc: sync.clock_now(),
        hub_ms: hlc::wall_ms(),
    })
}

/// The synced collections: names, directions and full definitions.
pub fn schema_json(app: &App, sync: &Sync) -> Value {
    let schema = app.store.schema();
    let mut list = Vec::new();
    let mut colls: Vec<(String, Direction)> = sync
        .collections()
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    colls.sort();
    for (id, dir) in colls {
        if let Some(c) = schema.by_id(&id) {
            list.push(json!({"direction": dir.as_str(), "collection": c.to_api_json()}));
        }
    }
    json!({"version": schema_version(app, sync), "collections": list})
}

/// Sets which collections sync and which way (superusers, on the hub):
/// `[{"collection": name or id, "direction": "up"|"down"|"both"}]`.
pub async fn set_collections(app: &Arc<App>, sync: &Arc<Sync>, list: &Value) -> ApiResult<Value> {
    let schema = app.store.schema();
    let items = list
        .as_array()
        .ok_or_else(|| ApiError::bad("Expected a list of {collection, direction}."))?;
    let mut out: Vec<ss::SyncedCollection> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let name = it
            .get("collection")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let dir = it
            .get("direction")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bad = |m: String| ApiError::bad(format!("Entry {i}: {m}"));
        let coll = schema
            .get(name)
            .ok_or_else(|| bad(format!("no collection \"{name}\".")))?;
        if coll.kind != crate::schema::CollectionType::Base {
            return Err(bad(format!(
                "\"{}\" is not a base collection (auth and view collections don't sync).",
                coll.name
            )));
        }
        if coll.name == app.config.sync.device_collection {
            return Err(bad("the device collection doesn't sync.".into()));
        }
        if Direction::parse(dir).is_none() {
            return Err(bad("direction must be \"up\", \"down\" or \"both\".".into()));
        }
        out.push(ss::SyncedCollection {
            name: coll.name.clone(),
            collection_id: coll.id.clone(),
            direction: dir.to_string(),
        });
    }
    let list2 = out.clone();
    app.store
        .write(move |c| {
            ss::set_collections(c, &list2, &now_string())?;
            crate::store::mark(c, crate::store::Mark::SyncCollections)
        })
        .await?;
    sync.set_collections(&out);
    Ok(schema_json(app, sync))
}

/// Answers a message as a frame body.
pub fn encode(msg: &Msg) -> Vec<u8> {
    frame::encode(msg, true)
}

/// The origin the hub's own writes carry.
pub fn origin() -> &'static str {
    HUB_ORIGIN
}
