//! A write's body as it will be applied, which is also what rules read as
//! `@request.body` (PocketBase resolves modifiers before any rule runs):
//! - modifier keys (`f+`, `+f`, `f-`, `f:autogenerate`) become the plain key
//!   `f` holding the value the field will have;
//! - every field's value is normalized as it will be stored (`"5"` for a
//!   number field reads as `5`); keys that are not fields stay as sent;
//! - hidden fields are dropped unless the principal is privileged (the auth
//!   `password` aside, which is hidden but always writable).
//!
//! So a guard like `@request.body.credits:isset = false` can't be dodged
//! with `credits+`, and a hidden `isAdmin` can't be set at sign-up.

use super::Principal;
use crate::schema::record::{self as rv, Setter};
use crate::schema::{Collection, FieldKind};
use serde_json::{Map, Value};

/// A body key: the field it names and what it does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Field(&'a str, Setter),
    /// `f:autogenerate`: a new value from the text field's pattern.
    Autogenerate(&'a str),
}

/// Parses a body key (`count+`, `+tags`, `tags-`, `code:autogenerate`).
pub fn parse_key(key: &str) -> Key<'_> {
    if let Some(name) = key.strip_suffix(":autogenerate") {
        return Key::Autogenerate(name);
    }
    let (name, setter) = rv::split_key(key);
    Key::Field(name, setter)
}

/// The body resolved against the record's current values (`None` for a
/// create: every field at its zero value).
pub fn resolve(
    coll: &Collection,
    current: Option<&Map<String, Value>>,
    raw: &Map<String, Value>,
    principal: &Principal,
) -> Map<String, Value> {
    let mut values: Map<String, Value> = match current {
        Some(c) => c.clone(),
        None => coll
            .fields
            .iter()
            .map(|f| (f.name.clone(), rv::zero(f)))
            .collect(),
    };
    let mut out = Map::new();
    // Plain keys first, then modifiers (on top of the plain value).
    let mut keys: Vec<(&String, &Value)> = raw.iter().collect();
    keys.sort_by_key(|(k, _)| !matches!(parse_key(k), Key::Field(_, Setter::Set)));
    for (key, v) in keys {
        let (name, setter) = match parse_key(key) {
            Key::Field(n, s) => (n, Some(s)),
            Key::Autogenerate(n) => (n, None),
        };
        let Some(f) = coll.field(name) else {
            out.insert(key.clone(), v.clone());
            continue;
        };
        let value = match (&f.kind, setter) {
            // Files come from uploads (`records::files`), never from here.
            (FieldKind::File(_), _) => continue,
            // The plain password is checked and hashed later; modifiers
            // mean nothing to it.
            (FieldKind::Password(_), Some(Setter::Set)) => v.clone(),
            (FieldKind::Password(_), _) => continue,
            (FieldKind::Text(o), None) => {
                match crate::util::random_from_pattern(&o.autogenerate_pattern) {
                    Some(s) if !o.autogenerate_pattern.is_empty() => Value::String(s),
                    _ => continue,
                }
            }
            (_, None) => continue,
            (_, Some(s)) => {
                let cur = values.get(name).cloned().unwrap_or(Value::Null);
                rv::prepare(f, &rv::apply_setter(f, &cur, s, v))
            }
        };
        values.insert(name.to_string(), value.clone());
        out.insert(name.to_string(), value);
    }
    if !principal.is_privileged() {
        for f in &coll.fields {
            if f.hidden && !(coll.is_auth() && f.name == "password") {
                out.remove(&f.name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn coll() -> Collection {
        crate::schema::parse::collection_from_json(&json!({
            "id": "c1", "name": "posts", "type": "base",
            "fields": [
                {"name": "id", "type": "text", "primaryKey": true, "system": true, "autogeneratePattern": "[a-z0-9]{15}", "min": 15, "max": 15, "pattern": "^[a-z0-9]+$", "required": true},
                {"name": "credits", "type": "number"},
                {"name": "tags", "type": "select", "values": ["a", "b", "admin"], "maxSelect": 3},
                {"name": "code", "type": "text", "autogeneratePattern": "[a-z]{5}"},
                {"name": "secret", "type": "text", "hidden": true},
            ]
        }))
        .expect("collection")
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn modifiers_become_plain_keys() {
        let c = coll();
        let cur = obj(json!({"id": "x", "credits": 10, "tags": ["a"], "code": "", "secret": "s"}));
        let guest = Principal::Guest;
        let got = resolve(&c, Some(&cur), &obj(json!({"credits+": 5})), &guest);
        assert_eq!(got, obj(json!({"credits": 15})));
        let got = resolve(&c, Some(&cur), &obj(json!({"+tags": ["admin"]})), &guest);
        assert_eq!(got, obj(json!({"tags": ["admin", "a"]})));
        let got = resolve(
            &c,
            Some(&cur),
            &obj(json!({"credits": "2", "credits-": 1})),
            &guest,
        );
        assert_eq!(got, obj(json!({"credits": 1})));
        // A create starts from zero values.
        let got = resolve(&c, None, &obj(json!({"credits+": 3})), &guest);
        assert_eq!(got, obj(json!({"credits": 3})));
        // Keys that are not fields stay as sent.
        let got = resolve(&c, None, &obj(json!({"other+": 1, "x": "y"})), &guest);
        assert_eq!(got, obj(json!({"other+": 1, "x": "y"})));
    }

    #[test]
    fn hidden_fields_only_for_the_privileged() {
        let c = coll();
        let body = obj(json!({"secret": "x", "secret+": "y", "credits": 1}));
        let got = resolve(&c, None, &body, &Principal::Guest);
        assert_eq!(got, obj(json!({"credits": 1})));
        let got = resolve(&c, None, &body, &Principal::System);
        assert_eq!(got["secret"], json!("x"));
    }

    #[test]
    fn autogenerate() {
        let c = coll();
        let got = resolve(
            &c,
            None,
            &obj(json!({"code:autogenerate": ""})),
            &Principal::Guest,
        );
        let code = got["code"].as_str().unwrap_or_default();
        assert_eq!(code.len(), 5);
        assert!(code.chars().all(|ch| ch.is_ascii_lowercase()));
        // A field without a pattern: nothing.
        let got = resolve(
            &c,
            None,
            &obj(json!({"credits:autogenerate": ""})),
            &Principal::Guest,
        );
        assert!(got.is_empty());
    }
}
