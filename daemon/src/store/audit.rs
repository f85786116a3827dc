//! The audit log (PocketBase has only request logs): every privileged action
//! — superuser login, collection and rule changes, settings changes,
//! impersonation, lockouts and unlocks — appended with who did it, from
//! where, when, and a diff (secrets redacted).
//!
//! The table `_keepd_audit` is append-only: SQLite triggers refuse any
//! UPDATE, and any DELETE of an entry younger than a day; the retention
//! pruning (`audit_retention_days`, at least 1) deletes only older ones.
//! Nothing in the API writes it except through `append`.

use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};

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
CREATE TRIGGER IF NOT EXISTS _keepd_audit_no_update BEFORE UPDATE ON _keepd_audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER IF NOT EXISTS _keepd_audit_no_recent_delete BEFORE DELETE ON _keepd_audit
WHEN julianday(replace(replace(old.created, 'Z', ''), 'T', ' ')) > julianday('now') - 1
BEGIN
    SELECT RAISE(ABORT, 'audit entries younger than a day cannot be deleted');
END;
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
pub fn append(c: &Connection, e: &Entry) -> rusqlite::Result<()> {
    let id = crate::util::random_string(15, crate::util::ALPHANUM);
    let diff = redact(&e.diff).to_string();
    c.execute(
        "INSERT INTO _keepd_audit (id, created, action, actor, ip, target, diff)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
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
pub fn prune(c: &Connection, days: u32) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM _keepd_audit
         WHERE julianday(replace(replace(created, 'Z', ''), 'T', ' ')) < julianday('now') - ?1",
        [f64::from(days.max(1)) + 0.001],
    )
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
        c.execute_batch(DDL).expect("ddl");
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
            .query_row("SELECT diff FROM _keepd_audit", [], |r| r.get(0))
            .expect("row");
        assert!(!diff.contains("\"x\""), "{diff}");
        assert!(c
            .execute("UPDATE _keepd_audit SET action = 'x'", [])
            .is_err());
        assert!(c.execute("DELETE FROM _keepd_audit", []).is_err());
        assert_eq!(prune(&c, 1).expect("prune"), 0);
        // An old entry can be pruned.
        c.execute(
            "INSERT INTO _keepd_audit (id, created, action) VALUES ('old', '2020-01-01 00:00:00.000Z', 'x')",
            [],
        )
        .expect("insert");
        assert_eq!(prune(&c, 30).expect("prune"), 1);
    }
}
