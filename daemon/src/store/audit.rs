//! The audit log (PocketBase has only request logs): every privileged action
//! — superuser login, collection and rule changes, settings changes,
//! impersonation, lockouts and unlocks — appended with who did it, from
//! where, when, and a diff (secrets redacted).
//!
//! The table `_keepd_audit` is append-only: SQLite triggers refuse any
//! UPDATE, and any DELETE of an entry younger than a day; the retention
//! pruning (`audit_retention_days`, at least 1) deletes only older ones.
//! Nothing in the API writes it except through `append`.

use super::{args, uncached, Conn as Connection};
use crate::error::ApiResult;
use serde_json::{json, Map, Value};

/// The table; migration 3 creates it with its append-only triggers (the
/// engine's: `sqlite::AUDIT_TRIGGERS`).
pub(crate) const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS _keepd_audit (
    id      TEXT PRIMARY KEY NOT NULL,
    created TEXT NOT NULL,
    action  TEXT NOT NULL,
    actor   TEXT NOT NULL DEFAULT '',
    ip      TEXT NOT NULL DEFAULT '',
    target  TEXT NOT NULL DEFAULT '',
    diff    JSON NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS idx__keepd_audit_created ON _keepd_audit (created);
CREATE INDEX IF NOT EXISTS idx__keepd_audit_action ON _keepd_audit (action);
"#;

/// One entry to append.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub action: &'static str,
    /// `collection/recordId` of the actor ("" for nobody: a failed or
    /// system action).
    pub actor: String,
    pub ip: String,
    /// What was acted on (`collections/posts`, `settings`, …).
    pub target: String,
    pub diff: Value,
}

/// Appends an entry (inside the caller's write).
pub fn append(c: &Connection, e: &Entry) -> ApiResult<()> {
    let id = crate::util::random_string(15, crate::util::ALPHANUM);
    let diff = redact(&e.diff).to_string();
    c.exec(
        "INSERT INTO _keepd_audit (id, created, action, actor, ip, target, diff)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        args![
            id,
            crate::util::now_string(),
            e.action,
            e.actor,
            e.ip,
            e.target,
            diff
        ],
    )?;
    Ok(())
}

/// Deletes entries older than `days` (at least one day).
pub fn prune(c: &Connection, days: u32) -> ApiResult<usize> {
    let older = super::older_than_days(c, "created");
    let sql = format!("DELETE FROM _keepd_audit WHERE {older}");
    c.exec(uncached(&sql), [f64::from(days.max(1)) + 0.001])
}

/// Which entries to list: exact matches, and a range of `created` text
/// (`since` inclusive, `until` exclusive). None: any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub created: String,
    pub action: String,
    pub actor: String,
    pub ip: String,
    pub target: String,
    pub diff: Value,
}

/// The entries passing `f`, newest first, `limit` from `offset`, and how
/// many pass in all.
pub fn list(c: &Connection, f: &Filter, limit: i64, offset: i64) -> ApiResult<(i64, Vec<Row>)> {
    // Fixed conditions, values bound.
    let mut conds: Vec<&'static str> = Vec::new();
    let mut args: Vec<&str> = Vec::new();
    for (v, cond) in [
        (&f.action, "action = ?"),
        (&f.actor, "actor = ?"),
        (&f.target, "target = ?"),
        (&f.ip, "ip = ?"),
        (&f.since, "created >= ?"),
        (&f.until, "created < ?"),
    ] {
        if let Some(v) = v {
            conds.push(cond);
            args.push(v);
        }
    }
    let where_sql = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let total: i64 = c
        .one(
            uncached(&format!("SELECT COUNT(*) FROM _keepd_audit{where_sql}")),
            &args,
            |r| r.get(0),
        )?
        .unwrap_or(0);
    let sql = format!(
        "SELECT id, created, action, actor, ip, target, diff FROM _keepd_audit{where_sql}
         ORDER BY created DESC, {} DESC LIMIT ? OFFSET ?",
        super::dialect::INSERTION_ORDER
    );
    let mut params: Vec<super::SqlValue> = args
        .iter()
        .map(|a| super::SqlValue::Text(a.to_string()))
        .collect();
    params.push(limit.into());
    params.push(offset.into());
    let rows = c.all(uncached(&sql), &params, |r| {
        let diff: String = r.get(6)?;
        Ok(Row {
            id: r.get(0)?,
            created: r.get(1)?,
            action: r.get(2)?,
            actor: r.get(3)?,
            ip: r.get(4)?,
            target: r.get(5)?,
            diff: serde_json::from_str(&diff).unwrap_or(Value::Null),
        })
    })?;
    Ok((total, rows))
}

/// Keys whose values never go into the log.
const SECRET_KEYS: &[&str] = &[
    "password",
    "secret",
    "clientSecret",
    "accessKey",
    "token",
    "tokenKey",
    "passwordConfirm",
    "oldPassword",
];

/// The value with every secret-looking key's value replaced.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let secret = SECRET_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s))
                        && !matches!(v, Value::Object(_) | Value::Array(_));
                    let v = if secret && !v.is_null() && v != &json!("") {
                        json!("******")
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The changed keys of two objects: `{key: {"before": …, "after": …}}`,
/// recursing into objects.
pub fn diff(before: &Value, after: &Value) -> Value {
    let mut out = Map::new();
    walk("", before, after, &mut out);
    Value::Object(out)
}

fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Map<String, Value>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(
                    &path,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => {
            let leaf = prefix.rsplit('.').next().unwrap_or(prefix);
            if SECRET_KEYS.iter().any(|s| leaf.eq_ignore_ascii_case(s)) {
                // That it changed, never what to.
                out.insert(prefix.to_string(), json!({"changed": true}));
                return;
            }
            out.insert(
                prefix.to_string(),
                json!({"before": redact(a), "after": redact(b)}),
            );
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(c: &Connection) -> ApiResult<()> {
        c.script(DDL)?;
        c.script(super::super::sqlite::AUDIT_TRIGGERS)
    }

    #[test]
    fn diffs_name_changed_paths_and_hide_secrets() {
        let a =
            json!({"name": "posts", "listRule": null, "smtp": {"password": "old", "host": "a"}});
        let b = json!({"name": "posts", "listRule": "", "smtp": {"password": "new", "host": "b"}});
        assert_eq!(
            diff(&a, &b),
            json!({
                "listRule": {"before": null, "after": ""},
                "smtp.host": {"before": "a", "after": "b"},
                "smtp.password": {"changed": true},
            }),
            "secret values are left out of the diff"
        );
        // Secrets in full objects are masked.
        let r = redact(&json!({"smtp": {"password": "p", "host": "h"}, "list": [{"secret": "s"}]}));
        assert_eq!(
            r,
            json!({"smtp": {"password": "******", "host": "h"}, "list": [{"secret": "******"}]})
        );
    }

    #[test]
    fn append_only() {
        let c = Connection::open_in_memory().expect("db");
        create(&c).expect("ddl");
        append(
            &c,
            &Entry {
                action: "settings.update",
                actor: "_superusers/abc".into(),
                ip: "127.0.0.1".into(),
                target: "settings".into(),
                diff: json!({"smtp": {"password": "x"}}),
            },
        )
        .expect("append");
        let diff: String = c
            .one("SELECT diff FROM _keepd_audit", (), |r| r.get(0))
            .expect("row")
            .expect("an entry");
        assert!(!diff.contains("\"x\""), "{diff}");
        assert!(c.exec("UPDATE _keepd_audit SET action = 'x'", ()).is_err());
        assert!(c.exec("DELETE FROM _keepd_audit", ()).is_err());
        assert_eq!(prune(&c, 1).expect("prune"), 0);
        // An old entry can be pruned.
        c.exec(
            "INSERT INTO _keepd_audit (id, created, action) VALUES ('old', '2020-01-01 00:00:00.000Z', 'x')",
            (),
        )
        .expect("insert");
        assert_eq!(prune(&c, 30).expect("prune"), 1);
    }

    #[test]
    fn lists_newest_first_filtered_and_paged() {
        let c = Connection::open_in_memory().expect("db");
        create(&c).expect("ddl");
        for (action, target) in [("a", "x"), ("b", "x"), ("a", "y")] {
            let e = Entry {
                action: if action == "a" { "a" } else { "b" },
                target: target.into(),
                ..Default::default()
            };
            append(&c, &e).expect("append");
        }
        let all = list(&c, &Filter::default(), 10, 0).expect("list");
        assert_eq!(all.0, 3);
        let order: Vec<(&str, &str)> = all
            .1
            .iter()
            .map(|r| (r.action.as_str(), r.target.as_str()))
            .collect();
        // Same-millisecond entries keep their insertion order, reversed.
        assert_eq!(order, vec![("a", "y"), ("b", "x"), ("a", "x")]);
        let f = Filter {
            action: Some("a".into()),
            ..Default::default()
        };
        let (n, page) = list(&c, &f, 1, 1).expect("list");
        assert_eq!((n, page.len(), page[0].target.as_str()), (2, 1, "x"));
        let none = Filter {
            since: Some("2999".into()),
            ..Default::default()
        };
        assert_eq!(list(&c, &none, 10, 0).expect("list").0, 0);
    }
}
