//! Conflict resolution (pure): last writer wins per field by `(hlc,
//! origin)`; a delete wins over concurrent edits; every value overwritten or
//! discarded by a concurrent write is reported as a conflict.
//!
//! A change carries the clock each field had where it was made (`base`). If
//! the receiver's clock for the field is that base, the change saw the
//! value it replaces: a sequential edit, applied (its clock raised above
//! the old one if it isn't already). Otherwise the two writes were
//! concurrent and the greater clock wins.

use crate::store::sync::{ClockRow, Conflict};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A clock value and the node that wrote it.
pub type Stamp = (u64, String);

fn zero() -> Stamp {
    (0, String::new())
}

/// A change as the hub receives it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub delete: bool,
    pub hlc: u64,
    pub origin: String,
    pub fields: Map<String, Value>,
    pub base: BTreeMap<String, Stamp>,
}

/// What to do with a change.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Write these fields: a create when the record isn't there.
    Write {
        create: bool,
        fields: Map<String, Value>,
    },
    Delete,
    /// Nothing to write.
    Nothing,
}

/// A plan, the clocks to store with it (None: unchanged), whether a clock
/// was raised above the change's own (the writer must be sent the result
/// back), and the conflicts to record (without time).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: Plan,
    pub clocks: Option<ClockRow>,
    pub raised: bool,
    pub conflicts: Vec<Conflict>,
}

fn conflict(field: &str, kept: (&Value, &Stamp), lost: (&Value, &Stamp), why: &str) -> Conflict {
    Conflict {
        id: 0,
        collection: String::new(),
        record: String::new(),
        field: field.to_string(),
        kept: kept.0.clone(),
        kept_hlc: kept.1 .0,
        kept_by: kept.1 .1.clone(),
        lost: lost.0.clone(),
        lost_hlc: lost.1 .0,
        lost_by: lost.1 .1.clone(),
        why: why.to_string(),
        created: String::new(),
    }
}

/// The hub's decision on one pushed change, given the record as it is
/// (None: not there) and its clocks.
pub fn on_hub(
    ch: &Incoming,
    row: Option<&Map<String, Value>>,
    clocks: Option<&ClockRow>,
) -> Outcome {
    let mut clk = clocks.cloned().unwrap_or_default();
    let me: Stamp = (ch.hlc, ch.origin.clone());
    let mut conflicts = Vec::new();
    if let Some(del) = clk.deleted.clone() {
        // Delete wins: whatever comes for a deleted record is dropped.
        if !ch.delete {
            for (f, v) in &ch.fields {
                conflicts.push(conflict(f, (&Value::Null, &del), (v, &me), "deleted"));
            }
        }
        return Outcome {
            plan: Plan::Nothing,
            clocks: None,
            raised: false,
            conflicts,
        };
    }
    if ch.delete {
        if let Some(row) = row {
            // Edits the deleting writer hadn't seen are lost to the delete.
            for (f, cur) in &clk.fields {
                let seen = ch.base.get(f).cloned().unwrap_or_else(zero);
                if &seen != cur {
                    let v = row.get(f).cloned().unwrap_or(Value::Null);
                    conflicts.push(conflict(f, (&Value::Null, &me), (&v, cur), "deleted"));
                }
            }
        }
        clk.deleted = Some(me);
        return Outcome {
            plan: if row.is_some() {
                Plan::Delete
            } else {
                Plan::Nothing
            },
            clocks: Some(clk),
            raised: false,
            conflicts,
        };
    }
    let Some(row) = row else {
        for f in ch.fields.keys() {
            clk.fields.insert(f.clone(), me.clone());
        }
        return Outcome {
            plan: Plan::Write {
                create: true,
                fields: ch.fields.clone(),
            },
            clocks: Some(clk),
            raised: false,
            conflicts,
        };
    };
    let mut write = Map::new();
    let mut raised = false;
    for (f, v) in &ch.fields {
        let cur = clk.fields.get(f).cloned().unwrap_or_else(zero);
        let seen = ch.base.get(f).cloned().unwrap_or_else(zero);
        let current = row.get(f).cloned().unwrap_or(Value::Null);
        if seen == cur {
            let stamp = if me > cur {
                me.clone()
            } else {
                raised = true;
                (cur.0 + 1, ch.origin.clone())
            };
            clk.fields.insert(f.clone(), stamp);
            write.insert(f.clone(), v.clone());
        } else if me > cur {
            if &current != v {
                conflicts.push(conflict(f, (v, &me), (&current, &cur), "newer"));
            }
            clk.fields.insert(f.clone(), me.clone());
            write.insert(f.clone(), v.clone());
        } else if &current != v {
            conflicts.push(conflict(f, (&current, &cur), (v, &me), "newer"));
        }
    }
    if write.is_empty() {
        return Outcome {
            plan: Plan::Nothing,
            clocks: None,
            raised: false,
            conflicts,
        };
    }
    Outcome {
        plan: Plan::Write {
            create: false,
            fields: write,
        },
        clocks: Some(clk),
        raised,
        conflicts,
    }
}

/// A record as the hub sends it: each field with its clock.
#[derive(Debug, Clone)]
pub struct Remote {
    pub deleted: Option<Stamp>,
    pub fields: Vec<(String, Value, Stamp)>,
}

/// A device's decision on one pulled record, given its own row and clocks
/// and the fields its queued changes touch (`pending`). Only values the
/// device overwrites are reported (the hub reports the rest when the
/// queued changes reach it).
pub fn on_device(
    r: &Remote,
    row: Option<&Map<String, Value>>,
    clocks: Option<&ClockRow>,
    pending: &BTreeSet<String>,
) -> Outcome {
    let mut clk = clocks.cloned().unwrap_or_default();
    let mut conflicts = Vec::new();
    if let Some(del) = &r.deleted {
        if clk.deleted.is_some() && row.is_none() {
            return Outcome {
                plan: Plan::Nothing,
                clocks: None,
                raised: false,
                conflicts,
            };
        }
        if let Some(row) = row {
            for f in pending {
                let v = row.get(f).cloned().unwrap_or(Value::Null);
                let cur = clk.fields.get(f).cloned().unwrap_or_else(zero);
                conflicts.push(conflict(f, (&Value::Null, del), (&v, &cur), "deleted"));
            }
        }
        clk.deleted = Some(del.clone());
        return Outcome {
            plan: if row.is_some() {
                Plan::Delete
            } else {
                Plan::Nothing
            },
            clocks: Some(clk),
            raised: false,
            conflicts,
        };
    }
    if clk.deleted.is_some() {
        // Deleted here (the delete is on its way to the hub, where it wins).
        return Outcome {
            plan: Plan::Nothing,
            clocks: None,
            raised: false,
            conflicts,
        };
    }
    let mut write = Map::new();
    for (f, v, stamp) in &r.fields {
        let cur = clk.fields.get(f).cloned().unwrap_or_else(zero);
        if row.is_some() && *stamp <= cur {
            continue;
        }
        if let Some(row) = row {
            let current = row.get(f).cloned().unwrap_or(Value::Null);
            if current == *v {
                clk.fields.insert(f.clone(), stamp.clone());
                continue;
            }
            if pending.contains(f) {
                conflicts.push(conflict(f, (v, stamp), (&current, &cur), "newer"));
            }
        }
        clk.fields.insert(f.clone(), stamp.clone());
        write.insert(f.clone(), v.clone());
    }
    let changed_clocks = Some(&clk) != clocks;
    let plan = match (row, write.is_empty()) {
        (None, _) => Plan::Write {
            create: true,
            fields: write,
        },
        (Some(_), true) => Plan::Nothing,
        (Some(_), false) => Plan::Write {
            create: false,
            fields: write,
        },
    };
    Outcome {
        plan,
        clocks: changed_clocks.then_some(clk),
        raised: false,
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn clocks(list: &[(&str, u64, &str)]) -> ClockRow {
        let mut c = ClockRow::default();
        for (f, h, o) in list {
            c.fields.insert(f.to_string(), (*h, o.to_string()));
        }
        c
    }

    fn upd(hlc: u64, origin: &str, fields: Value, base: &[(&str, u64, &str)]) -> Incoming {
        Incoming {
            delete: false,
            hlc,
            origin: origin.into(),
            fields: obj(fields),
            base: base
                .iter()
                .map(|(f, h, o)| (f.to_string(), (*h, o.to_string())))
                .collect(),
        }
    }

    #[test]
    fn sequential_edit_applies_without_conflict() {
        let row = obj(json!({"id": "r", "t": "a"}));
        let c = clocks(&[("t", 10, "d1")]);
        let o = on_hub(
            &upd(20, "d2", json!({"t": "b"}), &[("t", 10, "d1")]),
            Some(&row),
            Some(&c),
        );
        assert_eq!(
            o.plan,
            Plan::Write {
                create: false,
                fields: obj(json!({"t": "b"}))
            }
        );
        assert!(o.conflicts.is_empty());
        assert_eq!(o.clocks.unwrap().fields["t"], (20, "d2".into()));
    }

    #[test]
    fn sequential_edit_with_an_older_clock_is_raised() {
        let row = obj(json!({"id": "r", "t": "a"}));
        let c = clocks(&[("t", 50, "d1")]);
        let o = on_hub(
            &upd(20, "d2", json!({"t": "b"}), &[("t", 50, "d1")]),
            Some(&row),
            Some(&c),
        );
        assert!(o.raised);
        assert_eq!(o.clocks.unwrap().fields["t"], (51, "d2".into()));
    }

    #[test]
    fn concurrent_newer_wins_and_the_old_value_is_kept() {
        let row = obj(json!({"id": "r", "t": "hub"}));
        let c = clocks(&[("t", 10, "d1")]);
        let o = on_hub(
            &upd(20, "d2", json!({"t": "mine"}), &[("t", 5, "x")]),
            Some(&row),
            Some(&c),
        );
        assert!(matches!(o.plan, Plan::Write { .. }));
        assert_eq!(o.conflicts.len(), 1);
        assert_eq!(o.conflicts[0].lost, json!("hub"));
        assert_eq!(o.conflicts[0].kept, json!("mine"));
    }

    #[test]
    fn concurrent_older_loses_and_is_kept() {
        let row = obj(json!({"id": "r", "t": "hub", "n": 1}));
        let c = clocks(&[("t", 30, "d1")]);
        let o = on_hub(
            &upd(20, "d2", json!({"t": "mine", "n": 2}), &[("t", 5, "x")]),
            Some(&row),
            Some(&c),
        );
        // n had no clock and no base: sequential; t lost.
        assert_eq!(
            o.plan,
            Plan::Write {
                create: false,
                fields: obj(json!({"n": 2}))
            }
        );
        assert_eq!(o.conflicts.len(), 1);
        assert_eq!(o.conflicts[0].lost, json!("mine"));
        assert_eq!(o.conflicts[0].lost_by, "d2");
    }

    #[test]
    fn delete_wins_both_ways() {
        let row = obj(json!({"id": "r", "t": "edited"}));
        let c = clocks(&[("t", 40, "d1")]);
        let del = Incoming {
            delete: true,
            hlc: 30,
            origin: "d2".into(),
            fields: Map::new(),
            base: [("t".to_string(), (10, "d0".to_string()))]
                .into_iter()
                .collect(),
        };
        let o = on_hub(&del, Some(&row), Some(&c));
        assert_eq!(o.plan, Plan::Delete);
        assert_eq!(o.conflicts.len(), 1);
        assert_eq!(o.conflicts[0].why, "deleted");
        let tomb = o.clocks.unwrap();
        // A later edit of the deleted record is dropped, and reported.
        let o2 = on_hub(
            &upd(99, "d1", json!({"t": "late"}), &[("t", 40, "d1")]),
            None,
            Some(&tomb),
        );
        assert_eq!(o2.plan, Plan::Nothing);
        assert_eq!(o2.conflicts[0].lost, json!("late"));
    }

    #[test]
    fn replay_is_a_no_op() {
        let row = obj(json!({"id": "r", "t": "b"}));
        let c = clocks(&[("t", 20, "d2")]);
        let o = on_hub(
            &upd(20, "d2", json!({"t": "b"}), &[("t", 10, "d1")]),
            Some(&row),
            Some(&c),
        );
        assert_eq!(o.plan, Plan::Nothing);
        assert!(o.conflicts.is_empty());
    }

    #[test]
    fn device_keeps_its_newer_pending_value_and_logs_an_overwrite() {
        let row = obj(json!({"id": "r", "t": "local", "u": "x"}));
        let c = clocks(&[("t", 50, "me"), ("u", 10, "hub")]);
        let pending: BTreeSet<String> = ["t".to_string(), "u".to_string()].into();
        let r = Remote {
            deleted: None,
            fields: vec![
                ("t".into(), json!("hubval"), (40, "d2".into())),
                ("u".into(), json!("y"), (60, "d2".into())),
            ],
        };
        let o = on_device(&r, Some(&row), Some(&c), &pending);
        assert_eq!(
            o.plan,
            Plan::Write {
                create: false,
                fields: obj(json!({"u": "y"}))
            }
        );
        assert_eq!(o.conflicts.len(), 1);
        assert_eq!(o.conflicts[0].lost, json!("x"));
        // The same record again changes nothing.
        let c2 = o.clocks.unwrap();
        let row2 = obj(json!({"id": "r", "t": "local", "u": "y"}));
        let o2 = on_device(&r, Some(&row2), Some(&c2), &pending);
        assert_eq!(o2.plan, Plan::Nothing);
        assert!(o2.clocks.is_none());
    }

    #[test]
    fn device_creates_unknown_records_and_ignores_its_own_deletes() {
        let r = Remote {
            deleted: None,
            fields: vec![("t".into(), json!("v"), (5, "hub".into()))],
        };
        let o = on_device(&r, None, None, &BTreeSet::new());
        assert!(matches!(o.plan, Plan::Write { create: true, .. }));
        let tomb = ClockRow {
            deleted: Some((9, "me".into())),
            ..Default::default()
        };
        let o = on_device(&r, None, Some(&tomb), &BTreeSet::new());
        assert_eq!(o.plan, Plan::Nothing);
    }
}
