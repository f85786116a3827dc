//! The `oauth2` option of auth collections, checked as PocketBase does on
//! save: known provider names, required client id and secret, valid URLs,
//! unique names; a secret left out of an update keeps the stored one.
//! Pure: no I/O.

use serde_json::{json, Map, Value};

/// Whether keepd knows a provider of this name (PocketBase's list).
fn known(name: &str) -> bool {
    crate::auth::oauth2_presets::preset(name).is_some()
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// On an update, a provider submitted without `clientSecret` keeps the
/// stored one (the API never shows it), matched by provider name.
pub(crate) fn keep_secrets(new: &mut Value, old: Option<&Value>) {
    let Some(old) = old
        .and_then(|o| o.get("providers"))
        .and_then(Value::as_array)
    else {
        return;
    };
    let Some(list) = new.get_mut("providers").and_then(Value::as_array_mut) else {
        return;
    };
    for p in list {
        let name = s(p, "name");
        if !s(p, "clientSecret").is_empty() {
            continue;
        }
        if let (Some(prev), Some(o)) =
            (old.iter().find(|q| s(q, "name") == name), p.as_object_mut())
        {
            if let Some(sec) = prev.get("clientSecret") {
                o.insert("clientSecret".into(), sec.clone());
            }
        }
    }
}

/// The collection's `oauth2` option checked as PocketBase (only when
/// enabled): each provider needs a known name, clientId and clientSecret,
/// valid URLs, and names are unique. Returns the `oauth2` error object.
pub(crate) fn validate_options(o: &Value) -> Option<Value> {
    if o.get("enabled").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let list = o.get("providers").and_then(Value::as_array)?;
    let err = |code: &str, msg: &str| json!({"code": code, "message": msg});
    let mut provs = Map::new();
    let mut seen = std::collections::HashSet::new();
    let mut dup = None;
    for (i, p) in list.iter().enumerate() {
        let mut e = Map::new();
        let name = s(p, "name");
        if name.is_empty() {
            e.insert(
                "name".into(),
                err("validation_required", "Cannot be blank."),
            );
        } else if !known(&name) {
            e.insert(
                "name".into(),
                json!({"code": "validation_missing_provider",
                       "message": format!("Invalid or missing provider with name {name}."),
                       "params": {"name": name}}),
            );
        } else if !seen.insert(name.clone()) && dup.is_none() {
            dup = Some((i, name.clone()));
        }
        for k in ["clientId", "clientSecret"] {
            if s(p, k).is_empty() {
                e.insert(k.into(), err("validation_required", "Cannot be blank."));
            }
        }
        for k in ["authURL", "tokenURL", "userInfoURL"] {
            let v = s(p, k);
            if !v.is_empty() && !is_url(&v) {
                e.insert(k.into(), err("validation_is_url", "Must be a valid URL."));
            }
        }
        if !e.is_empty() {
            provs.insert(i.to_string(), Value::Object(e));
        }
    }
    // PocketBase reports a duplicate alone (the list rule runs first).
    if let Some((i, name)) = dup {
        let mut m = Map::new();
        m.insert(
            i.to_string(),
            json!({"name": {"code": "validation_duplicated_provider",
                            "message": format!("The provider {name} is already registered."),
                            "params": {"name": name}}}),
        );
        return Some(json!({"providers": m}));
    }
    (!provs.is_empty()).then(|| json!({"providers": provs}))
}

fn is_url(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest.starts_with('/')
        && !v.chars().any(char::is_whitespace)
}
