//! Repositories of the sync tables (see ARCHITECTURE.md, "Sync"): typed rows
//! in and out, each function taking the connection. The query text is
//! portable; upserts come from `dialect`. Clocks are hybrid logical clock
//! values (`u64`, stored as INTEGER).

use super::dialect;
use super::{args, uncached, Conn as Connection, Row};
use crate::error::ApiResult;
use serde_json::{Map, Value};

/// The tables (migration 20). JSON is kept in TEXT columns: a column
/// declared JSON has numeric affinity in SQLite, which would turn the text
/// `5` into the integer 5.
pub(crate) const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS _keepd_sync_state (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _keepd_sync_collections (
    name         TEXT PRIMARY KEY NOT NULL,
    collectionId TEXT NOT NULL DEFAULT '',
    direction    TEXT NOT NULL CHECK (direction IN ('up', 'down', 'both')),
    updated      TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS _keepd_sync_clocks (
    collectionRef TEXT NOT NULL,
    recordRef     TEXT NOT NULL,
    fields        TEXT NOT NULL DEFAULT '{}',
    deleted       INTEGER DEFAULT NULL,
    deletedBy     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (collectionRef, recordRef)
);
CREATE TABLE IF NOT EXISTS _keepd_sync_conflicts (
    id            INTEGER PRIMARY KEY,
    collectionRef TEXT NOT NULL,
    recordRef     TEXT NOT NULL,
    field         TEXT NOT NULL,
    kept          TEXT,
    keptHlc       INTEGER NOT NULL,
    keptBy        TEXT NOT NULL,
    lost          TEXT,
    lostHlc       INTEGER NOT NULL,
    lostBy        TEXT NOT NULL,
    why           TEXT NOT NULL,
    created       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx__keepd_sync_conflicts_record
    ON _keepd_sync_conflicts (collectionRef, recordRef);
CREATE TABLE IF NOT EXISTS _keepd_sync_rejected (
    id            INTEGER PRIMARY KEY,
    device        TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    hlc           INTEGER NOT NULL,
    collectionRef TEXT NOT NULL,
    recordRef     TEXT NOT NULL,
    op            TEXT NOT NULL,
    fields        TEXT NOT NULL,
    status        INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    created       TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx__keepd_sync_rejected_seq
    ON _keepd_sync_rejected (device, seq);
CREATE TABLE IF NOT EXISTS _keepd_sync_outbox (
    seq           INTEGER PRIMARY KEY,
    hlc           INTEGER NOT NULL,
    collectionRef TEXT NOT NULL,
    recordRef     TEXT NOT NULL,
    op            TEXT NOT NULL,
    fields        TEXT NOT NULL,
    base          TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    created       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx__keepd_sync_outbox_record
    ON _keepd_sync_outbox (collectionRef, recordRef);
CREATE TABLE IF NOT EXISTS _keepd_sync_devices (
    id            TEXT PRIMARY KEY NOT NULL,
    collectionRef TEXT NOT NULL,
    credential    TEXT NOT NULL DEFAULT '',
    enrolHash     TEXT NOT NULL DEFAULT '',
    enrolExpires  INTEGER NOT NULL DEFAULT 0,
    enrolSecret   TEXT NOT NULL DEFAULT '',
    enrolled      TEXT NOT NULL DEFAULT '',
    revoked       TEXT NOT NULL DEFAULT '',
    lastSeq       INTEGER NOT NULL DEFAULT 0,
    lastPush      TEXT NOT NULL DEFAULT '',
    lastPull      TEXT NOT NULL DEFAULT '',
    cursor        INTEGER NOT NULL DEFAULT 0,
    created       TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS _keepd_sync_log (
    seq           INTEGER PRIMARY KEY,
    hlc           INTEGER NOT NULL,
    origin        TEXT NOT NULL,
    echo          INTEGER NOT NULL DEFAULT 0,
    collectionRef TEXT NOT NULL,
    recordRef     TEXT NOT NULL,
    op            TEXT NOT NULL,
    fields        TEXT NOT NULL,
    snapshot      TEXT DEFAULT NULL,
    created       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _keepd_sync_files (
    collectionRef TEXT NOT NULL,
    recordRef     TEXT NOT NULL,
    name          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    PRIMARY KEY (collectionRef, recordRef, name)
);
CREATE TABLE IF NOT EXISTS _keepd_sync_blobs (
    sha256  TEXT PRIMARY KEY NOT NULL,
    size    INTEGER NOT NULL,
    created TEXT NOT NULL
);
"#;

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse_obj(s: &str) -> Map<String, Value> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn hlc_of(v: i64) -> u64 {
    v.max(0) as u64
}

// ---------------------------------------------------------------------------
// State

pub fn state_get(c: &Connection, key: &str) -> ApiResult<Option<String>> {
    c.one(
        "SELECT value FROM _keepd_sync_state WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
}

pub fn state_put(c: &Connection, key: &str, value: &str) -> ApiResult<()> {
    let sql = dialect::upsert("_keepd_sync_state", &["key", "value"], &["key"]);
    c.exec(&sql, args![key, value])?;
    Ok(())
}

pub fn state_all(c: &Connection) -> ApiResult<Map<String, Value>> {
    let rows = c.all(
        "SELECT key, value FROM _keepd_sync_state ORDER BY key",
        (),
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut out = Map::new();
    for (k, v) in rows {
        out.insert(k, Value::String(v));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Synced collections

/// A synced collection and which way its changes flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedCollection {
    pub name: String,
    pub collection_id: String,
    /// "up" (device → hub), "down" (hub → device) or "both".
    pub direction: String,
}

pub fn collections(c: &Connection) -> ApiResult<Vec<SyncedCollection>> {
    let rows = c.all(
        "SELECT name, collectionId, direction FROM _keepd_sync_collections ORDER BY name",
        (),
        |r| {
            Ok(SyncedCollection {
                name: r.get(0)?,
                collection_id: r.get(1)?,
                direction: r.get(2)?,
            })
        },
    )?;
    Ok(rows)
}

/// Replaces the whole list.
pub fn set_collections(c: &Connection, list: &[SyncedCollection], now: &str) -> ApiResult<()> {
    c.exec(uncached("DELETE FROM _keepd_sync_collections"), ())?;
    for s in list {
        c.exec(
            "INSERT INTO _keepd_sync_collections (name, collectionId, direction, updated) VALUES (?1, ?2, ?3, ?4)",
            args![s.name, s.collection_id, s.direction, now],
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Field clocks and tombstones

/// The last writer of each field of a record, and its tombstone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockRow {
    /// field → (hlc, origin).
    pub fields: std::collections::BTreeMap<String, (u64, String)>,
    /// The delete that won, if the record is deleted: (hlc, origin).
    pub deleted: Option<(u64, String)>,
}

pub fn clock_get(c: &Connection, coll: &str, rec: &str) -> ApiResult<Option<ClockRow>> {
    let sql = "SELECT fields, deleted, deletedBy FROM _keepd_sync_clocks WHERE collectionRef = ?1 AND recordRef = ?2";
    let row = c.one(sql, [coll, rec], |r| {
        Ok((
            r.get::<String>(0)?,
            r.get::<Option<i64>>(1)?,
            r.get::<String>(2)?,
        ))
    })?;
    Ok(row.map(|(fields, deleted, by)| {
        let fields = parse_obj(&fields)
            .into_iter()
            .filter_map(|(k, v)| {
                let h = v.get(0)?.as_u64()?;
                let o = v.get(1)?.as_str()?.to_string();
                Some((k, (h, o)))
            })
            .collect();
        ClockRow {
            fields,
            deleted: deleted.map(|d| (hlc_of(d), by)),
        }
    }))
}

pub fn clock_put(c: &Connection, coll: &str, rec: &str, row: &ClockRow) -> ApiResult<()> {
    let fields: Map<String, Value> = row
        .fields
        .iter()
        .map(|(k, (h, o))| (k.clone(), serde_json::json!([h, o])))
        .collect();
    let sql = dialect::upsert(
        "_keepd_sync_clocks",
        &[
            "collectionRef",
            "recordRef",
            "fields",
            "deleted",
            "deletedBy",
        ],
        &["collectionRef", "recordRef"],
    );
    let (deleted, by) = match &row.deleted {
        Some((h, o)) => (Some(*h as i64), o.as_str()),
        None => (None, ""),
    };
    c.exec(
        &sql,
        args![coll, rec, json_text(&Value::Object(fields)), deleted, by],
    )?;
    Ok(())
}

/// Forgets a record's clocks (a record a snapshot no longer lists).
pub fn clock_delete(c: &Connection, coll: &str, rec: &str) -> ApiResult<()> {
    c.exec(
        "DELETE FROM _keepd_sync_clocks WHERE collectionRef = ?1 AND recordRef = ?2",
        [coll, rec],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Conflicts

/// A value overwritten or discarded by a concurrent one.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub id: i64,
    pub collection: String,
    pub record: String,
    pub field: String,
    pub kept: Value,
    pub kept_hlc: u64,
    pub kept_by: String,
    pub lost: Value,
    pub lost_hlc: u64,
    pub lost_by: String,
    /// "newer" (the other write's clock was greater) or "deleted" (the
    /// record was deleted concurrently).
    pub why: String,
    pub created: String,
}

pub fn conflict_add(c: &Connection, x: &Conflict) -> ApiResult<()> {
    let sql = "INSERT INTO _keepd_sync_conflicts (collectionRef, recordRef, field, kept, keptHlc, keptBy, lost, lostHlc, lostBy, why, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
    c.exec(
        sql,
        args![
            x.collection,
            x.record,
            x.field,
            json_text(&x.kept),
            x.kept_hlc as i64,
            x.kept_by,
            json_text(&x.lost),
            x.lost_hlc as i64,
            x.lost_by,
            x.why,
            x.created
        ],
    )?;
    Ok(())
}

/// The newest conflicts first (`before`: ids below it; 0: from the newest).
pub fn conflicts(c: &Connection, before: i64, limit: i64) -> ApiResult<Vec<Conflict>> {
    let sql = "SELECT id, collectionRef, recordRef, field, kept, keptHlc, keptBy, lost, lostHlc, lostBy, why, created
         FROM _keepd_sync_conflicts WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2";
    let rows = c.all(sql, args![before, limit], |r| {
        Ok(Conflict {
            id: r.get(0)?,
            collection: r.get(1)?,
            record: r.get(2)?,
            field: r.get(3)?,
            kept: serde_json::from_str(&r.get::<String>(4)?).unwrap_or(Value::Null),
            kept_hlc: hlc_of(r.get(5)?),
            kept_by: r.get(6)?,
            lost: serde_json::from_str(&r.get::<String>(7)?).unwrap_or(Value::Null),
            lost_hlc: hlc_of(r.get(8)?),
            lost_by: r.get(9)?,
            why: r.get(10)?,
            created: r.get(11)?,
        })
    })?;
    Ok(rows)
}

pub fn conflict_count(c: &Connection) -> ApiResult<i64> {
    Ok(c.one(
        uncached("SELECT COUNT(*) FROM _keepd_sync_conflicts"),
        (),
        |r| r.get(0),
    )?
    .unwrap_or(0))
}

// ---------------------------------------------------------------------------
// Rejected changes

/// A change the hub refused, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: i64,
    /// The device that sent it (on a device: empty).
    pub device: String,
    pub seq: u64,
    pub hlc: u64,
    pub collection: String,
    pub record: String,
    pub op: String,
    pub fields: Map<String, Value>,
    /// The HTTP status the hub answered the change with.
    pub status: u16,
    /// The error body (`{status, message, data}`).
    pub reason: Value,
    pub created: String,
}

/// Stores a rejected change (a replay of the same device and seq keeps the
/// first).
pub fn rejected_add(c: &Connection, x: &Rejected) -> ApiResult<()> {
    let sql = "INSERT INTO _keepd_sync_rejected (device, seq, hlc, collectionRef, recordRef, op, fields, status, reason, created)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
         WHERE NOT EXISTS (SELECT 1 FROM _keepd_sync_rejected WHERE device = ?1 AND seq = ?2)";
    c.exec(
        sql,
        args![
            x.device,
            x.seq as i64,
            x.hlc as i64,
            x.collection,
            x.record,
            x.op,
            json_text(&Value::Object(x.fields.clone())),
            x.status,
            json_text(&x.reason),
            x.created
        ],
    )?;
    Ok(())
}

fn rejected_row(r: &Row<'_>) -> ApiResult<Rejected> {
    Ok(Rejected {
        id: r.get(0)?,
        device: r.get(1)?,
        seq: hlc_of(r.get(2)?),
        hlc: hlc_of(r.get(3)?),
        collection: r.get(4)?,
        record: r.get(5)?,
        op: r.get(6)?,
        fields: parse_obj(&r.get::<String>(7)?),
        status: r.get(8)?,
        reason: serde_json::from_str(&r.get::<String>(9)?).unwrap_or(Value::Null),
        created: r.get(10)?,
    })
}

const REJECTED_COLS: &str =
    "id, device, seq, hlc, collectionRef, recordRef, op, fields, status, reason, created";

/// The newest first (`before`: ids below it; 0: from the newest).
pub fn rejected(c: &Connection, before: i64, limit: i64) -> ApiResult<Vec<Rejected>> {
    let sql = format!(
        "SELECT {REJECTED_COLS} FROM _keepd_sync_rejected WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2"
    );
    let rows = c.all(&sql, args![before, limit], rejected_row)?;
    Ok(rows)
}

/// A device's rejected changes with seq in `from..=to` (a replayed batch is
/// answered with them again).
pub fn rejected_between(
    c: &Connection,
    device: &str,
    from: u64,
    to: u64,
) -> ApiResult<Vec<Rejected>> {
    let sql = format!(
        "SELECT {REJECTED_COLS} FROM _keepd_sync_rejected WHERE device = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq"
    );
    let rows = c.all(&sql, args![device, from as i64, to as i64], rejected_row)?;
    Ok(rows)
}

pub fn rejected_count(c: &Connection) -> ApiResult<i64> {
    Ok(c.one(
        uncached("SELECT COUNT(*) FROM _keepd_sync_rejected"),
        (),
        |r| r.get(0),
    )?
    .unwrap_or(0))
}

// ---------------------------------------------------------------------------
// Outbox (device)

/// One local change waiting for the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct OutChange {
    pub seq: u64,
    pub hlc: u64,
    pub collection: String,
    pub record: String,
    /// "c", "u" or "d".
    pub op: String,
    /// Changed fields and their new values.
    pub fields: Map<String, Value>,
    /// The clock each changed field had before: field → [hlc, origin].
    pub base: Map<String, Value>,
    pub bytes: u64,
    pub created: String,
}

/// The oldest changes, in seq order.
pub fn outbox_first(c: &Connection, limit: i64) -> ApiResult<Vec<OutChange>> {
    let rows = c.all(
        "SELECT seq, hlc, collectionRef, recordRef, op, fields, base, bytes, created
         FROM _keepd_sync_outbox ORDER BY seq LIMIT ?1",
        [limit],
        |r| {
            Ok(OutChange {
                seq: hlc_of(r.get(0)?),
                hlc: hlc_of(r.get(1)?),
                collection: r.get(2)?,
                record: r.get(3)?,
                op: r.get(4)?,
                fields: parse_obj(&r.get::<String>(5)?),
                base: parse_obj(&r.get::<String>(6)?),
                bytes: hlc_of(r.get(7)?),
                created: r.get(8)?,
            })
        },
    )?;
    Ok(rows)
}

/// Drops the changes the hub acknowledged (seq ≤ `through`).
pub fn outbox_ack(c: &Connection, through: u64) -> ApiResult<usize> {
    c.exec(
        "DELETE FROM _keepd_sync_outbox WHERE seq <= ?1",
        [through as i64],
    )
}

/// (queued changes, oldest queued change's time).
pub fn outbox_depth(c: &Connection) -> ApiResult<(u64, Option<String>)> {
    let n: i64 = c
        .one("SELECT COUNT(*) FROM _keepd_sync_outbox", (), |r| r.get(0))?
        .unwrap_or(0);
    let oldest: Option<String> = c.one(
        "SELECT created FROM _keepd_sync_outbox ORDER BY seq LIMIT 1",
        (),
        |r| r.get(0),
    )?;
    Ok((n.max(0) as u64, oldest))
}

/// The highest seq ever given (0: none), from SQLite's sequence of the
/// table's keys; kept in the state so it survives an empty outbox.
pub fn outbox_last_seq(c: &Connection) -> ApiResult<u64> {
    let v: Option<i64> = c
        .one("SELECT MAX(seq) FROM _keepd_sync_outbox", (), |r| {
            r.get::<Option<i64>>(0)
        })?
        .flatten();
    Ok(v.unwrap_or(0).max(0) as u64)
}

/// Inserts with an explicit seq (seqs never go back, even when the
/// outbox was emptied).
pub fn outbox_append_at(c: &Connection, x: &OutChange) -> ApiResult<()> {
    let sql = "INSERT INTO _keepd_sync_outbox (seq, hlc, collectionRef, recordRef, op, fields, base, bytes, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
    c.exec(
        sql,
        args![
            x.seq as i64,
            x.hlc as i64,
            x.collection,
            x.record,
            x.op,
            json_text(&Value::Object(x.fields.clone())),
            json_text(&Value::Object(x.base.clone())),
            x.bytes as i64,
            x.created
        ],
    )?;
    Ok(())
}

/// The records changes still queued touch: (collection, record).
pub fn outbox_records(c: &Connection) -> ApiResult<Vec<(String, String)>> {
    let rows = c.all(
        "SELECT DISTINCT collectionRef, recordRef FROM _keepd_sync_outbox",
        (),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(rows)
}

/// Fields of a record touched by changes still queued.
pub fn outbox_pending_fields(
    c: &Connection,
    coll: &str,
    rec: &str,
) -> ApiResult<(bool, std::collections::BTreeSet<String>)> {
    let rows = c.all(
        "SELECT op, fields FROM _keepd_sync_outbox WHERE collectionRef = ?1 AND recordRef = ?2",
        [coll, rec],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut any = false;
    let mut out = std::collections::BTreeSet::new();
    for (_, fields) in rows {
        any = true;
        out.extend(parse_obj(&fields).into_iter().map(|(k, _)| k));
    }
    Ok((any, out))
}

// ---------------------------------------------------------------------------
// Devices (hub)

/// A device as the hub knows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Device {
    /// Its record id in the device collection.
    pub id: String,
    pub collection_id: String,
    /// SHA-256 (hex) of its secret; empty until enrolled.
    pub credential: String,
    /// SHA-256 (hex) of the pending enrolment token's secret.
    pub enrol_hash: String,
    /// Unix seconds the enrolment token expires at.
    pub enrol_expires: i64,
    /// The credential hash the token was traded for (a retried trade with
    /// the same secret is answered again).
    pub enrol_secret: String,
    pub enrolled: String,
    pub revoked: String,
    /// The highest device seq applied.
    pub last_seq: u64,
    pub last_push: String,
    pub last_pull: String,
    /// The hub seq the device last pulled to.
    pub cursor: u64,
    pub created: String,
}

const DEVICE_COLS: &str = "id, collectionRef, credential, enrolHash, enrolExpires, enrolSecret, enrolled, revoked, lastSeq, lastPush, lastPull, cursor, created";

fn device_row(r: &Row<'_>) -> ApiResult<Device> {
    Ok(Device {
        id: r.get(0)?,
        collection_id: r.get(1)?,
        credential: r.get(2)?,
        enrol_hash: r.get(3)?,
        enrol_expires: r.get(4)?,
        enrol_secret: r.get(5)?,
        enrolled: r.get(6)?,
        revoked: r.get(7)?,
        last_seq: hlc_of(r.get(8)?),
        last_push: r.get(9)?,
        last_pull: r.get(10)?,
        cursor: hlc_of(r.get(11)?),
        created: r.get(12)?,
    })
}

pub fn device_get(c: &Connection, id: &str) -> ApiResult<Option<Device>> {
    let sql = format!("SELECT {DEVICE_COLS} FROM _keepd_sync_devices WHERE id = ?1");
    c.one(&sql, [id], device_row)
}

pub fn devices(c: &Connection) -> ApiResult<Vec<Device>> {
    let sql = format!("SELECT {DEVICE_COLS} FROM _keepd_sync_devices ORDER BY created, id");
    let rows = c.all(&sql, (), device_row)?;
    Ok(rows)
}

/// Inserts or replaces a device row.
pub fn device_put(c: &Connection, d: &Device) -> ApiResult<()> {
    let cols = [
        "id",
        "collectionRef",
        "credential",
        "enrolHash",
        "enrolExpires",
        "enrolSecret",
        "enrolled",
        "revoked",
        "lastSeq",
        "lastPush",
        "lastPull",
        "cursor",
        "created",
    ];
    let sql = dialect::upsert("_keepd_sync_devices", &cols, &["id"]);
    c.exec(
        &sql,
        args![
            d.id,
            d.collection_id,
            d.credential,
            d.enrol_hash,
            d.enrol_expires,
            d.enrol_secret,
            d.enrolled,
            d.revoked,
            d.last_seq as i64,
            d.last_push,
            d.last_pull,
            d.cursor as i64,
            d.created
        ],
    )?;
    Ok(())
}

pub fn device_delete(c: &Connection, id: &str) -> ApiResult<()> {
    c.exec(
        uncached("DELETE FROM _keepd_sync_devices WHERE id = ?1"),
        [id],
    )?;
    Ok(())
}

/// Records how far a device's pushes got.
pub fn device_pushed(c: &Connection, id: &str, last_seq: u64, now: &str) -> ApiResult<()> {
    let sql = "UPDATE _keepd_sync_devices SET lastSeq = CASE WHEN lastSeq < ?2 THEN ?2 ELSE lastSeq END, lastPush = ?3 WHERE id = ?1";
    c.exec(sql, args![id, last_seq as i64, now])?;
    Ok(())
}

/// Records a device's pull.
pub fn device_pulled(c: &Connection, id: &str, cursor: u64, now: &str) -> ApiResult<()> {
    c.exec(
        "UPDATE _keepd_sync_devices SET cursor = ?2, lastPull = ?3 WHERE id = ?1",
        args![id, cursor as i64, now],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Hub log

/// One committed change on the hub, numbered.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub seq: u64,
    pub hlc: u64,
    /// Who wrote it: a device id, or the hub's node id.
    pub origin: String,
    /// Sent back to its origin too (its clock was changed by the hub).
    pub echo: bool,
    pub collection: String,
    pub record: String,
    pub op: String,
    pub fields: Map<String, Value>,
    /// For a delete: the row as it was (the list rule is checked on it).
    pub snapshot: Option<Map<String, Value>>,
    pub created: String,
}

pub fn log_append(c: &Connection, x: &LogEntry) -> ApiResult<u64> {
    let sql = "INSERT INTO _keepd_sync_log (hlc, origin, echo, collectionRef, recordRef, op, fields, snapshot, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING seq";
    let seq = c.one(
        sql,
        args![
            x.hlc as i64,
            x.origin,
            x.echo,
            x.collection,
            x.record,
            x.op,
            json_text(&Value::Object(x.fields.clone())),
            x.snapshot
                .as_ref()
                .map(|m| json_text(&Value::Object(m.clone()))),
            x.created
        ],
        |r| r.get::<i64>(0),
    )?;
    // The seq the engine gave the row (SQLite's rowid; PostgreSQL's identity).
    Ok(seq.unwrap_or_default().max(0) as u64)
}

/// Entries after `cursor`, in order.
pub fn log_after(c: &Connection, cursor: u64, limit: i64) -> ApiResult<Vec<LogEntry>> {
    let rows = c.all(
        "SELECT seq, hlc, origin, echo, collectionRef, recordRef, op, fields, snapshot, created
         FROM _keepd_sync_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        args![cursor as i64, limit],
        |r| {
            Ok(LogEntry {
                seq: hlc_of(r.get(0)?),
                hlc: hlc_of(r.get(1)?),
                origin: r.get(2)?,
                echo: r.get(3)?,
                collection: r.get(4)?,
                record: r.get(5)?,
                op: r.get(6)?,
                fields: parse_obj(&r.get::<String>(7)?),
                snapshot: r.get::<Option<String>>(8)?.map(|s| parse_obj(&s)),
                created: r.get(9)?,
            })
        },
    )?;
    Ok(rows)
}

/// (oldest seq kept, newest seq) — (0, 0) when the log is empty.
pub fn log_bounds(c: &Connection) -> ApiResult<(u64, u64)> {
    let (lo, hi): (Option<i64>, Option<i64>) = c
        .one("SELECT MIN(seq), MAX(seq) FROM _keepd_sync_log", (), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .unwrap_or((None, None));
    Ok((lo.unwrap_or(0).max(0) as u64, hi.unwrap_or(0).max(0) as u64))
}

/// Keeps the newest `keep` entries. Returns how many went.
pub fn log_prune(c: &Connection, keep: u64) -> ApiResult<usize> {
    let (_, hi) = log_bounds(c)?;
    if hi <= keep {
        return Ok(0);
    }
    c.exec(
        "DELETE FROM _keepd_sync_log WHERE seq <= ?1",
        [(hi - keep) as i64],
    )
}

// ---------------------------------------------------------------------------
// Blobs

pub fn blob_known(c: &Connection, sha256: &str) -> ApiResult<bool> {
    c.exists(
        "SELECT 1 FROM _keepd_sync_blobs WHERE sha256 = ?1",
        [sha256],
    )
}

pub fn blob_add(c: &Connection, sha256: &str, size: u64, now: &str) -> ApiResult<()> {
    c.exec(
        "INSERT INTO _keepd_sync_blobs (sha256, size, created) SELECT ?1, ?2, ?3
         WHERE NOT EXISTS (SELECT 1 FROM _keepd_sync_blobs WHERE sha256 = ?1)",
        args![sha256, size as i64, now],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Which content each stored file of a synced record has

pub fn file_sha(c: &Connection, coll: &str, rec: &str, name: &str) -> ApiResult<Option<String>> {
    let sql = "SELECT sha256 FROM _keepd_sync_files WHERE collectionRef = ?1 AND recordRef = ?2 AND name = ?3";
    c.one(sql, [coll, rec, name], |r| r.get(0))
}

pub fn file_note(c: &Connection, coll: &str, rec: &str, name: &str, sha: &str) -> ApiResult<()> {
    let sql = dialect::upsert(
        "_keepd_sync_files",
        &["collectionRef", "recordRef", "name", "sha256"],
        &["collectionRef", "recordRef", "name"],
    );
    c.exec(&sql, [coll, rec, name, sha])?;
    Ok(())
}

pub fn file_forget(c: &Connection, coll: &str, rec: &str, name: &str) -> ApiResult<()> {
    c.exec(
        "DELETE FROM _keepd_sync_files WHERE collectionRef = ?1 AND recordRef = ?2 AND name = ?3",
        [coll, rec, name],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.script(DDL).unwrap();
        c
    }

    #[test]
    fn clocks_round_trip() {
        let c = db();
        assert_eq!(clock_get(&c, "col", "r1").unwrap(), None);
        let mut row = ClockRow::default();
        row.fields.insert("title".into(), (42, "dev1".into()));
        clock_put(&c, "col", "r1", &row).unwrap();
        assert_eq!(clock_get(&c, "col", "r1").unwrap(), Some(row.clone()));
        row.deleted = Some((50, "hub".into()));
        clock_put(&c, "col", "r1", &row).unwrap();
        assert_eq!(clock_get(&c, "col", "r1").unwrap(), Some(row));
    }

    #[test]
    fn outbox_order_and_ack() {
        let c = db();
        for i in 1..=3u64 {
            let x = OutChange {
                seq: i,
                hlc: i * 10,
                collection: "col".into(),
                record: format!("r{i}"),
                op: "c".into(),
                fields: Map::new(),
                base: Map::new(),
                bytes: 10,
                created: "now".into(),
            };
            outbox_append_at(&c, &x).unwrap();
        }
        assert_eq!(outbox_depth(&c).unwrap().0, 3);
        assert_eq!(outbox_ack(&c, 2).unwrap(), 2);
        let left = outbox_first(&c, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].seq, 3);
        assert_eq!(outbox_last_seq(&c).unwrap(), 3);
    }

    #[test]
    fn rejected_replay_keeps_the_first() {
        let c = db();
        let mut x = Rejected {
            id: 0,
            device: "d".into(),
            seq: 7,
            hlc: 1,
            collection: "col".into(),
            record: "r".into(),
            op: "u".into(),
            fields: Map::new(),
            status: 400,
            reason: serde_json::json!({"message": "first"}),
            created: "t".into(),
        };
        rejected_add(&c, &x).unwrap();
        x.reason = serde_json::json!({"message": "second"});
        rejected_add(&c, &x).unwrap();
        let got = rejected_between(&c, "d", 1, 10).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].reason["message"], "first");
    }

    #[test]
    fn log_prune_keeps_the_newest() {
        let c = db();
        for i in 0..10 {
            log_append(
                &c,
                &LogEntry {
                    seq: 0,
                    hlc: i,
                    origin: "hub".into(),
                    echo: false,
                    collection: "c".into(),
                    record: "r".into(),
                    op: "u".into(),
                    fields: Map::new(),
                    snapshot: None,
                    created: "t".into(),
                },
            )
            .unwrap();
        }
        assert_eq!(log_bounds(&c).unwrap(), (1, 10));
        assert_eq!(log_prune(&c, 4).unwrap(), 6);
        assert_eq!(log_bounds(&c).unwrap(), (7, 10));
        assert_eq!(log_after(&c, 8, 10).unwrap().len(), 2);
    }
}
