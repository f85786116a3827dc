//! The store's export: every table of a database as typed JSON lines, the
//! form a backup of a store that is not one SQLite file takes (PostgreSQL:
//! `data.pgexport` in the backup's zip, beside the stored files). The
//! engine's module reads and writes its tables (`postgres::backup`); the
//! form is the engine's neither:
//!
//! ```text
//! {"format":"keepd-export","version":1,"engine":"postgres","migration":7}
//! {"table":"_params","columns":["id","value","created","updated"],"collection":false}
//! ["settings","{…}","2026-…","2026-…"]
//! …
//! {"end":{"tables":12,"rows":3456}}
//! ```
//!
//! A value is `null`, an integer (a JSON integer), a real (a JSON number
//! with a fraction or exponent; `{"real":"NaN"}`, `"inf"`, `"-inf"` for
//! those), text (a JSON string), or bytes (`{"bytes":"<base64>"}`). Booleans
//! are the integers 0 and 1, as the store reads them. Tables the store
//! keeps for collections come after the others (`"collection": true`), so
//! a restore has the collections' definitions before their tables. The
//! last line counts what came before it: an export cut short is refused.

use crate::store::SqlRef;
use crate::store::SqlValue;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::Path;

/// The export's member name in a backup's zip.
pub const MEMBER: &str = "data.pgexport";

/// The form's name and version (the first line).
const FORMAT: &str = "keepd-export";
const VERSION: i64 = 1;

/// What the first line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The engine the export was taken from (`"postgres"`).
    pub engine: String,
    /// The newest migration the exported store had.
    pub migration: i64,
}

/// A table's header line.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    /// A collection's table (made from its definition on restore).
    pub collection: bool,
}

/// Writes an export line by line.
pub struct Writer<W: Write> {
    out: W,
    tables: u64,
    rows: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, m: &Manifest) -> std::io::Result<Self> {
        line(
            &mut out,
            &json!({"format": FORMAT, "version": VERSION, "engine": m.engine, "migration": m.migration}),
        )?;
        Ok(Writer {
            out,
            tables: 0,
            rows: 0,
        })
    }

    pub fn table(&mut self, t: &Table) -> std::io::Result<()> {
        self.tables += 1;
        line(
            &mut self.out,
            &json!({"table": t.name, "columns": t.columns, "collection": t.collection}),
        )
    }

    pub fn row(&mut self, values: &[SqlRef<'_>]) -> std::io::Result<()> {
        self.rows += 1;
        let mut a = Vec::with_capacity(values.len());
        for v in values {
            a.push(encode(*v)?);
        }
        line(&mut self.out, &Value::Array(a))
    }

    /// The closing line; the writer back.
    pub fn finish(mut self) -> std::io::Result<W> {
        line(
            &mut self.out,
            &json!({"end": {"tables": self.tables, "rows": self.rows}}),
        )?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn line<W: Write>(out: &mut W, v: &Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")
}

fn encode(v: SqlRef<'_>) -> std::io::Result<Value> {
    Ok(match v {
        SqlRef::Null => Value::Null,
        SqlRef::Integer(i) => Value::from(i),
        SqlRef::Real(f) => match serde_json::Number::from_f64(f) {
            // A whole real is written with its fraction ("3.0"): it reads
            // back as a real.
            Some(n) => Value::Number(n),
            None => json!({ "real": f.to_string() }),
        },
        SqlRef::Text(b) => Value::String(
            std::str::from_utf8(b)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
                .to_string(),
        ),
        SqlRef::Blob(b) => {
            json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(b) })
        }
    })
}

fn decode(v: Value) -> Result<SqlValue, String> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().ok_or("a number out of range")?),
        },
        Value::String(s) => SqlValue::Text(s),
        Value::Object(o) => match (o.get("bytes"), o.get("real")) {
            (Some(Value::String(b)), None) => SqlValue::Blob(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("bytes: {e}"))?,
            ),
            (None, Some(Value::String(r))) => {
                SqlValue::Real(r.parse().map_err(|_| format!("a real {r:?}"))?)
            }
            _ => return Err("an unknown value".into()),
        },
        _ => return Err("an unknown value".into()),
    })
}

/// One thing read from an export, in order.
pub enum Item {
    Table(Table),
    Row(Vec<SqlValue>),
}

/// Reads an export: the manifest first, then tables and rows; the closing
/// line checked against what was read.
pub struct Reader<R: BufRead> {
    lines: std::io::Lines<R>,
    pub manifest: Manifest,
    tables: u64,
    rows: u64,
    columns: usize,
    ended: bool,
    n: u64,
}

fn bad(n: u64, why: impl std::fmt::Display) -> String {
    format!("the export is damaged at line {n}: {why}")
}

impl<R: BufRead> Reader<R> {
    pub fn new(r: R) -> Result<Self, String> {
        let mut lines = r.lines();
        let first = lines
            .next()
            .ok_or("the export is empty")?
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&first).map_err(|e| bad(1, e))?;
        if v["format"] != FORMAT {
            return Err("not a keepd export".into());
        }
        if v["version"].as_i64() != Some(VERSION) {
            return Err(format!(
                "the export's form (version {}) is not one this keepd reads",
                v["version"]
            ));
        }
        let manifest = Manifest {
            engine: v["engine"].as_str().unwrap_or_default().to_string(),
            migration: v["migration"]
                .as_i64()
                .ok_or_else(|| bad(1, "no migration"))?,
        };
        Ok(Reader {
            lines,
            manifest,
            tables: 0,
            rows: 0,
            columns: 0,
            ended: false,
            n: 1,
        })
    }

    /// The next table or row; None after the closing line.
    pub fn next_item(&mut self) -> Result<Option<Item>, String> {
        if self.ended {
            return Ok(None);
        }
        let Some(l) = self.lines.next() else {
            return Err("the export is cut short (no closing line)".into());
        };
        self.n += 1;
        let n = self.n;
        let l = l.map_err(|e| bad(n, e))?;
        let v: Value = serde_json::from_str(&l).map_err(|e| bad(n, e))?;
        match v {
            Value::Array(a) => {
                if self.tables == 0 || a.len() != self.columns {
                    return Err(bad(n, "a row that fits no table"));
                }
                self.rows += 1;
                let row = a
                    .into_iter()
                    .map(decode)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(n, e))?;
                Ok(Some(Item::Row(row)))
            }
            Value::Object(mut o) => {
                if let Some(end) = o.get("end") {
                    if end["tables"].as_u64() != Some(self.tables)
                        || end["rows"].as_u64() != Some(self.rows)
                    {
                        return Err(bad(n, "the closing line does not count what came before"));
                    }
                    self.ended = true;
                    return Ok(None);
                }
                let name = match o.remove("table") {
                    Some(Value::String(s)) => s,
                    _ => return Err(bad(n, "neither a table nor a row")),
                };
                let columns: Vec<String> =
                    serde_json::from_value(o.remove("columns").unwrap_or_default())
                        .map_err(|e| bad(n, e))?;
                self.tables += 1;
                self.columns = columns.len();
                Ok(Some(Item::Table(Table {
                    name,
                    columns,
                    collection: o.get("collection").and_then(Value::as_bool) == Some(true),
                })))
            }
            _ => Err(bad(n, "neither a table nor a row")),
        }
    }
}

/// Reads the export at `p` through (it is whole and well formed), without
/// a database; its manifest.
pub fn check(p: &Path) -> Result<Manifest, String> {
    let f = std::fs::File::open(p).map_err(|e| e.to_string())?;
    let mut r = Reader::new(std::io::BufReader::new(f))?;
    while r.next_item()?.is_some() {}
    Ok(r.manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_typed() {
        let mut out = Vec::new();
        let m = Manifest {
            engine: "postgres".into(),
            migration: 7,
        };
        let mut w = Writer::new(&mut out, &m).expect("writer");
        w.table(&Table {
            name: "t".into(),
            columns: vec!["a".into(), "b".into(), "c".into(), "d".into(), "e".into()],
            collection: true,
        })
        .expect("table");
        let rows = [
            [
                SqlRef::Null,
                SqlRef::Integer(i64::MIN),
                SqlRef::Real(3.0),
                SqlRef::Text("é\n\"x\"".as_bytes()),
                SqlRef::Blob(&[0, 255, 10]),
            ],
            [
                SqlRef::Integer(1),
                SqlRef::Real(f64::NAN),
                SqlRef::Real(f64::NEG_INFINITY),
                SqlRef::Real(0.1),
                SqlRef::Text(b""),
            ],
        ];
        for r in &rows {
            w.row(r).expect("row");
        }
        w.finish().expect("finish");
        let mut r = Reader::new(std::io::Cursor::new(&out)).expect("reader");
        assert_eq!(r.manifest, m);
        let Some(Item::Table(t)) = r.next_item().expect("item") else {
            panic!("a table first");
        };
        assert!(t.collection && t.columns.len() == 5);
        let Some(Item::Row(a)) = r.next_item().expect("row") else {
            panic!("a row");
        };
        assert_eq!(
            a,
            vec![
                SqlValue::Null,
                SqlValue::Integer(i64::MIN),
                SqlValue::Real(3.0),
                SqlValue::Text("é\n\"x\"".into()),
                SqlValue::Blob(vec![0, 255, 10]),
            ]
        );
        let Some(Item::Row(b)) = r.next_item().expect("row") else {
            panic!("a row");
        };
        assert!(matches!(b[1], SqlValue::Real(f) if f.is_nan()));
        assert_eq!(b[2], SqlValue::Real(f64::NEG_INFINITY));
        assert_eq!(b[3], SqlValue::Real(0.1));
        assert!(r.next_item().expect("end").is_none());

        // Cut short, or a row lost: refused.
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        let cut = lines[..lines.len() - 1].join("\n");
        let dir = std::env::temp_dir().join(format!(
            "keepd-export-{}-{}",
            std::process::id(),
            crate::util::random_string(6, crate::util::LOWER_ALPHANUM)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("x");
        std::fs::write(&p, &cut).expect("write");
        assert!(check(&p).expect_err("cut").contains("cut short"));
        let mut lost = lines.clone();
        lost.remove(2);
        std::fs::write(&p, lost.join("\n")).expect("write");
        assert!(check(&p).expect_err("lost").contains("closing line"));
        std::fs::write(&p, text).expect("write");
        assert_eq!(check(&p).expect("whole").migration, 7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
