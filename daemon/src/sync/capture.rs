//! The store's in-transaction consumer of record changes (`store::Capture`):
//! every committed write to a synced collection leaves its change in the
//! same transaction — on a device in the outbox, on the hub in the log —
//! and the field clocks are kept. Writes sync makes itself carry an
//! [`Applying`] tag: on a device they are not queued again.

use super::{key, Applying, Direction, Sync};
use crate::config::SyncRole;
use crate::error::{ApiError, ApiResult};
use crate::schema::{Collection, FieldKind};
use crate::store::sync::{self as ss, ClockRow};
use crate::store::Conn as Connection;
use crate::store::{Action, Capture, Captured};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub struct SyncCapture {
    sync: Arc<Sync>,
    /// For the files of local writes (weak: the app owns the store, which
    /// owns this).
    app: std::sync::Weak<crate::app::App>,
}

impl SyncCapture {
    pub fn new(sync: Arc<Sync>, app: std::sync::Weak<crate::app::App>) -> SyncCapture {
        SyncCapture { sync, app }
    }

    /// Notes the content of a local write's files (their hashes; on the
    /// hub, blobs devices can fetch).
    fn note_files(&self, c: &Connection, ch: &Captured<'_>, id: &str, hub: bool) -> ApiResult<()> {
        if !ch.collection.has_file_fields() {
            return Ok(());
        }
        let Some(app) = self.app.upgrade() else {
            return Ok(());
        };
        let storage = app.storage()?;
        super::files::note_local(
            c,
            app.store.dir(),
            &storage,
            ch.collection,
            id,
            ch.before,
            ch.after,
            hub,
        )
    }
}

/// Fields whose values sync carries: not the id, not autodates (each node
/// keeps its own), not passwords.
pub fn synced_field(coll: &Collection, name: &str) -> bool {
    if name == "id" {
        return false;
    }
    match coll.field(name).map(|f| &f.kind) {
        Some(FieldKind::Autodate(_)) | Some(FieldKind::Password(_)) | None => false,
        Some(_) => true,
    }
}

/// The fields a change sets, with their new values.
pub fn changed_fields(
    coll: &Collection,
    before: Option<&Map<String, Value>>,
    after: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for f in &coll.fields {
        if !synced_field(coll, &f.name) {
            continue;
        }
        let new = after.get(&f.name).cloned().unwrap_or(Value::Null);
        let old = before.and_then(|b| b.get(&f.name));
        if old != Some(&new) {
            out.insert(f.name.clone(), new);
        }
    }
    out
}

fn record_id(row: Option<&Map<String, Value>>) -> String {
    row.and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Capture for SyncCapture {
    fn wants(&self, coll: &Collection) -> bool {
        self.sync.direction(coll).is_some()
    }

    fn capture(&self, c: &Connection, ch: Captured<'_>) -> ApiResult<()> {
        let Some(dir) = self.sync.direction(ch.collection) else {
            return Ok(());
        };
        let applying = ch.tag.and_then(|t| t.downcast_ref::<Applying>());
        match self.sync.role {
            SyncRole::Device => self.on_device(c, &ch, dir, applying),
            SyncRole::Hub => self.on_hub(c, &ch, dir, applying),
            SyncRole::Off => Ok(()),
        }
    }

    fn committed(&self) {
        match self.sync.role {
            SyncRole::Device => self.sync.queued.notify_one(),
            SyncRole::Hub => {
                let seq = self
                    .sync
                    .pending_head
                    .load(std::sync::atomic::Ordering::SeqCst);
                self.sync.publish_head(seq);
            }
            SyncRole::Off => {}
        }
    }
}

impl SyncCapture {
    /// The stamp of a write: the change's own when sync applies it, else a
    /// new local clock value.
    fn stamp(&self, applying: Option<&Applying>) -> (u64, String, bool) {
        match applying {
            Some(a) => (a.hlc, a.origin.clone(), a.echo),
            None => (self.sync.tick(), self.sync.node(), false),
        }
    }

    fn on_device(
        &self,
        c: &Connection,
        ch: &Captured<'_>,
        dir: Direction,
        applying: Option<&Applying>,
    ) -> ApiResult<()> {
        let coll = ch.collection;
        if applying.is_none() && !dir.up() {
            return Err(ApiError::Forbidden(format!(
                "The collection \"{}\" is synced down from the hub: it is read-only on this device.",
                coll.name
            )));
        }
        let id = record_id(ch.after.or(ch.before));
        if applying.is_none() {
            self.note_files(c, ch, &id, false)?;
        }
        let (hlc, origin, _) = self.stamp(applying);
        let mut clocks = ss::clock_get(c, &coll.id, &id)?.unwrap_or_default();
        let (op, fields, base) = match ch.action {
            Action::Delete => {
                let base: Map<String, Value> = clocks
                    .fields
                    .iter()
                    .map(|(k, (h, o))| (k.clone(), json!([h, o])))
                    .collect();
                clocks.deleted = Some((hlc, origin.clone()));
                ("d", Map::new(), base)
            }
            action => {
                let Some(after) = ch.after else {
                    return Ok(());
                };
                let fields = changed_fields(coll, ch.before, after);
                if fields.is_empty() && action == Action::Update {
                    return Ok(());
                }
                let mut base = Map::new();
                for k in fields.keys() {
                    if let Some((h, o)) = clocks.fields.get(k) {
                        base.insert(k.clone(), json!([h, o]));
                    }
                    clocks.fields.insert(k.clone(), (hlc, origin.clone()));
                }
                let op = if action == Action::Create { "c" } else { "u" };
                if action == Action::Create {
                    clocks.deleted = None;
                }
                (op, fields, base)
            }
        };
        ss::clock_put(c, &coll.id, &id, &clocks)?;
        if applying.is_some() {
            // A change from the hub: the clocks move, nothing is queued.
            return Ok(());
        }
        let queued: u64 = ss::state_get(c, key::QUEUED)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.sync.check_depth(queued)?;
        let seq = self.sync.next_seq();
        let bytes = (Value::Object(fields.clone()).to_string().len() + 64) as u64;
        ss::outbox_append_at(
            c,
            &ss::OutChange {
                seq,
                hlc,
                collection: coll.id.clone(),
                record: id,
                op: op.into(),
                fields,
                base,
                bytes,
                created: crate::util::now_string(),
            },
        )?;
        ss::state_put(c, key::SEQ, &seq.to_string())?;
        ss::state_put(c, key::QUEUED, &(queued + 1).to_string())?;
        self.sync.save_clock(c)?;
        self.sync
            .depth
            .store(queued + 1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn on_hub(
        &self,
        c: &Connection,
        ch: &Captured<'_>,
        dir: Direction,
        applying: Option<&Applying>,
    ) -> ApiResult<()> {
        let coll = ch.collection;
        let id = record_id(ch.after.or(ch.before));
        if applying.is_none() {
            self.note_files(c, ch, &id, true)?;
        }
        let mut clocks: ClockRow = ss::clock_get(c, &coll.id, &id)?.unwrap_or_default();
        if applying.is_none() {
            // A local write is newer than every clock the record has, also
            // those another hub process serving the same database gave it
            // (its clock may run ahead of this one's).
            let newest = clocks
                .fields
                .values()
                .map(|(h, _)| *h)
                .chain(clocks.deleted.as_ref().map(|(h, _)| *h))
                .max();
            if let Some(h) = newest {
                self.sync.observe(h);
            }
        }
        let (hlc, origin, echo) = self.stamp(applying);
        let (op, names, snapshot) = match ch.action {
            Action::Delete => {
                if clocks.deleted.is_none() {
                    clocks.deleted = Some((hlc, origin.clone()));
                }
                ("d", Map::new(), ch.before.cloned())
            }
            action => {
                let Some(after) = ch.after else {
                    return Ok(());
                };
                let fields = changed_fields(coll, ch.before, after);
                if fields.is_empty() && action == Action::Update {
                    return Ok(());
                }
                let names: Map<String, Value> = fields
                    .keys()
                    .map(|k| (k.clone(), Value::Bool(true)))
                    .collect();
                for k in fields.keys() {
                    clocks.fields.insert(k.clone(), (hlc, origin.clone()));
                }
                if action == Action::Create {
                    clocks.deleted = None;
                }
                // An update of a collection whose list rule can hide
                // records keeps the row as it was: a device that could
                // list it then, and can't now, is told to drop its copy.
                let hides = coll
                    .list_rule
                    .as_deref()
                    .is_some_and(|r| !r.trim().is_empty());
                let before = if action == Action::Update && hides {
                    ch.before.cloned()
                } else {
                    None
                };
                (
                    if action == Action::Create { "c" } else { "u" },
                    names,
                    before,
                )
            }
        };
        ss::clock_put(c, &coll.id, &id, &clocks)?;
        if applying.is_none() {
            self.sync.save_clock(c)?;
        }
        if !dir.down() {
            return Ok(());
        }
        let seq = ss::log_append(
            c,
            &ss::LogEntry {
                seq: 0,
                hlc,
                origin,
                echo,
                collection: coll.id.clone(),
                record: id,
                op: op.into(),
                fields: names,
                snapshot,
                created: crate::util::now_string(),
            },
        )?;
        self.sync.logged(seq);
        Ok(())
    }
}
