//! Wire frames between device and hub: `b"KS"`, a version byte, a flags
//! byte (bit 0: the rest is raw DEFLATE), then one postcard-encoded
//! [`Msg`]. Field values travel as [`Val`] (postcard has no self-describing
//! values, so JSON is mapped onto a small enum).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MAGIC: &[u8; 2] = b"KS";
/// The frame version this build writes and reads.
pub const VERSION: u8 = 1;
pub const CONTENT_TYPE: &str = "application/x-keepd-sync";
const DEFLATED: u8 = 1;

/// A record field's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// An array of strings (relations, selects, files).
    List(Vec<String>),
    /// Any other JSON, as text.
    Json(String),
}

impl Val {
    pub fn from_json(v: &Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => match n.as_f64() {
                    Some(f) if n.is_f64() => Val::Float(f),
                    _ => Val::Json(n.to_string()),
                },
            },
            Value::String(s) => Val::Text(s.clone()),
            Value::Array(a) if a.iter().all(Value::is_string) => Val::List(
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
            ),
            other => Val::Json(other.to_string()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Val::Text(s) => Value::String(s.clone()),
            Val::List(l) => Value::Array(l.iter().cloned().map(Value::String).collect()),
            Val::Json(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        }
    }
}

/// A field, its value, and (from the hub) the clock of that value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldVal {
    pub name: String,
    pub value: Val,
    pub hlc: u64,
    pub origin: String,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
    pub fn from_code(s: &str) -> Option<Op> {
        match s {
            "c" => Some(Op::Create),
            "u" => Some(Op::Update),
            "d" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// A file a change refers to, sent before it (content-addressed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// The stored name in the record's file field.
    pub name: String,
    /// SHA-256 of the content (hex).
    pub sha256: String,
}

/// One device change, as pushed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    pub hlc: u64,
    pub collection: String,
    pub record: String,
    pub op: Op,
    /// Changed fields and their values (the clock is the change's).
    pub fields: Vec<(String, Val)>,
    /// The clock each changed field had on the device before the change
    /// (field, hlc, origin); for a delete, every field's.
    pub base: Vec<(String, u64, String)>,
    /// The files the change's file fields name.
    pub files: Vec<FileRef>,
}

/// A device's push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    /// The device's clock when it sent this.
    pub hlc: u64,
    pub changes: Vec<Change>,
}

/// A change the hub refused, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    pub seq: u64,
    pub status: u16,
    /// The error body as JSON text (`{status, message, data}`).
    pub reason: String,
}

/// The hub's answer to a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushAck {
    /// Every change with seq ≤ this is handled (applied, merged away or
    /// refused): the device may drop it.
    pub through: u64,
    pub refused: Vec<Refused>,
    pub hub_hlc: u64,
    pub hub_ms: u64,
}

/// A record's state as the hub has it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub collection: String,
    pub id: String,
    /// The delete that won: (hlc, origin). The record is gone.
    pub deleted: Option<(u64, String)>,
    pub fields: Vec<FieldVal>,
    /// Where the files of its file fields can be fetched (by content).
    pub files: Vec<FileRef>,
    /// The device may no longer list it (its rule): drop the local copy
    /// (no tombstone: it comes back if it becomes visible again).
    pub hidden: bool,
}

/// The hub's answer to a pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pull {
    /// Records changed after the cursor, each once, in the order of their
    /// last change.
    pub records: Vec<Record>,
    /// The cursor to ask from next (store it with the records).
    pub next: u64,
    /// The newest log seq when this was read.
    pub head: u64,
    /// Version of the synced collections' definitions.
    pub schema: String,
    pub hub_hlc: u64,
    pub hub_ms: u64,
    /// How long the hub held the pull before answering (the device's
    /// estimate of the hub's clock leaves it out of the round trip).
    pub waited_ms: u64,
}

/// One page of a snapshot of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub records: Vec<Record>,
    /// Ask for the next page after this id (None: the last page).
    pub next_after: Option<String>,
    /// The log head when the snapshot started (first page) — the cursor to
    /// resume pulling from once every page is in.
    pub head: u64,
    pub hub_hlc: u64,
    pub hub_ms: u64,
}

/// The cursor is older than what the hub keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gone {
    pub oldest: u64,
    pub head: u64,
}

/// Every message on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Push(Push),
    PushAck(PushAck),
    Pull(Pull),
    Snapshot(Snapshot),
    Gone(Gone),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("not a sync frame")]
    NotAFrame,
    #[error("frame version {0} is not spoken here (this keepd speaks {VERSION})")]
    Version(u8),
    #[error("frame larger than {0} bytes")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes a message, DEFLATEd when `compress` and it helps.
pub fn encode(msg: &Msg, compress: bool) -> Vec<u8> {
    let body = postcard::to_allocvec(msg).unwrap_or_default();
    if compress && body.len() > 256 {
        use std::io::Write;
        let mut z = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(body.len() / 2 + 4),
            flate2::Compression::fast(),
        );
        if z.write_all(&body).is_ok() {
            if let Ok(packed) = z.finish() {
                if packed.len() < body.len() {
                    let mut out = Vec::with_capacity(packed.len() + 4);
                    out.extend_from_slice(MAGIC);
                    out.push(VERSION);
                    out.push(DEFLATED);
                    out.extend_from_slice(&packed);
                    return out;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&body);
    out
}

/// Decodes a frame; its decompressed body may be at most `max` bytes.
pub fn decode(bytes: &[u8], max: usize) -> Result<Msg, FrameError> {
    if bytes.len() < 4 || &bytes[..2] != MAGIC {
        return Err(FrameError::NotAFrame);
    }
    if bytes[2] != VERSION {
        return Err(FrameError::Version(bytes[2]));
    }
    let flags = bytes[3];
    let rest = &bytes[4..];
    let owned;
    let body = if flags & DEFLATED != 0 {
        use std::io::Read;
        let mut out = Vec::new();
        let mut z = flate2::read::DeflateDecoder::new(rest).take(max as u64 + 1);
        z.read_to_end(&mut out)
            .map_err(|e| FrameError::Malformed(e.to_string()))?;
        if out.len() > max {
            return Err(FrameError::TooLarge(max));
        }
        owned = out;
        &owned[..]
    } else {
        if rest.len() > max {
            return Err(FrameError::TooLarge(max));
        }
        rest
    };
    postcard::from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// A record's fields as JSON (values only).
pub fn fields_json(fields: &[(String, Val)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(n: usize) -> Msg {
        Msg::Push(Push {
            hlc: 99,
            changes: (0..n)
                .map(|i| Change {
                    seq: i as u64 + 1,
                    hlc: 1000 + i as u64,
                    collection: "notes".into(),
                    record: format!("rec{i:012}"),
                    op: Op::Update,
                    fields: vec![
                        ("title".into(), Val::Text("hello world".into())),
                        ("n".into(), Val::Int(i as i64)),
                    ],
                    base: vec![("title".into(), 5, "hub".into())],
                    files: vec![],
                })
                .collect(),
        })
    }

    #[test]
    fn round_trip_plain_and_deflated() {
        for n in [1, 50] {
            let m = sample(n);
            for compress in [false, true] {
                let bytes = encode(&m, compress);
                assert_eq!(decode(&bytes, 1 << 20).unwrap(), m);
            }
        }
        let big = encode(&sample(50), true);
        let small = encode(&sample(50), false);
        assert!(big.len() < small.len());
    }

    #[test]
    fn caps_and_versions() {
        let bytes = encode(&sample(50), true);
        assert_eq!(decode(&bytes, 100), Err(FrameError::TooLarge(100)));
        let mut v2 = encode(&sample(1), false);
        v2[2] = 2;
        assert_eq!(decode(&v2, 1 << 20), Err(FrameError::Version(2)));
        assert_eq!(decode(b"{}", 10), Err(FrameError::NotAFrame));
        let mut cut = encode(&sample(3), false);
        cut.truncate(cut.len() - 3);
        assert!(matches!(
            decode(&cut, 1 << 20),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn values_round_trip_through_json() {
        for v in [
            json!(null),
            json!(true),
            json!(-5),
            json!(2.5),
            json!("x"),
            json!(["a", "b"]),
            json!({"k": [1, 2]}),
            json!([1, "a"]),
            json!([]),
        ] {
            let back = Val::from_json(&v).to_json();
            assert_eq!(back, v, "{v}");
        }
    }
}
