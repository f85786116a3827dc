//! Record values: PocketBase's coercion of input values per field type,
//! the `field+` / `+field` / `field-` modifiers, validation, and conversion
//! between JSON values and SQLite values. Pure: relation existence and
//! uniqueness are checked by the caller against the store.

use super::field::{Field, FieldKind};
use crate::store::{SqlRef, SqlValue as Sql};
use crate::util::{format_time, parse_datetime};
use serde_json::{json, Value};

/// A body key's modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setter {
    Set,
    /// `field+`: add to a number / append to a list.
    Append,
    /// `+field`: prepend to a list.
    Prepend,
    /// `field-`: subtract from a number / remove from a list.
    Remove,
}

/// Splits `count+` → ("count", Append), `+tags` → ("tags", Prepend).
pub fn split_key(key: &str) -> (&str, Setter) {
    if let Some(n) = key.strip_suffix('+') {
        (n, Setter::Append)
    } else if let Some(n) = key.strip_prefix('+') {
        (n, Setter::Prepend)
    } else if let Some(n) = key.strip_suffix('-') {
        (n, Setter::Remove)
    } else {
        (key, Setter::Set)
    }
}

/// A float as Go's JSON prints it: integral values without a fraction.
pub fn number_value(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        json!(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(json!(0))
    }
}

/// Go's `cast.ToString` for the JSON values a request can carry.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            _ => n.to_string(),
        },
        // cast.ToString can't convert maps or slices: "".
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

/// Go's `cast.ToFloat64`: unparsable → 0.
pub fn to_number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::Bool(true) => 1.0,
        Value::String(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's `cast.ToBool`.
pub fn to_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"),
        _ => false,
    }
}

/// PocketBase's `list.ToUniqueStringSlice`.
pub fn to_string_list(v: &Value) -> Vec<String> {
    let mut items: Vec<String> = match v {
        Value::Null => vec![],
        Value::Array(a) => a.iter().map(to_text).collect(),
        Value::String(s) if s.is_empty() => vec![],
        Value::String(s) => {
            if s.starts_with('[') {
                if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(s) {
                    a.iter().map(to_text).collect()
                } else {
                    vec![s.clone()]
                }
            } else {
                vec![s.clone()]
            }
        }
        other => vec![to_text(other)],
    };
    let mut seen = std::collections::HashSet::new();
    items.retain(|s| seen.insert(s.clone()));
    items
}

/// Normalizes a raw input value for `field` (PocketBase's PrepareValue).
pub fn prepare(field: &Field, raw: &Value) -> Value {
    match &field.kind {
        FieldKind::Text(_)
        | FieldKind::Editor(_)
        | FieldKind::Email(_)
        | FieldKind::Url(_)
        | FieldKind::Password(_) => Value::String(to_text(raw)),
        FieldKind::Number(_) => number_value(to_number(raw)),
        FieldKind::Bool(_) => Value::Bool(to_bool(raw)),
        FieldKind::Date(_) | FieldKind::Autodate(_) => match raw {
            Value::String(s) => {
                Value::String(parse_datetime(s).map(format_time).unwrap_or_default())
            }
            _ => Value::String(String::new()),
        },
        FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_) => {
            let list = to_string_list(raw);
            if field.is_multiple() {
                json!(list)
            } else {
                Value::String(list.last().cloned().unwrap_or_default())
            }
        }
        FieldKind::Json(_) => match raw {
            Value::String(s) => {
                if s.is_empty() {
                    Value::String(String::new())
                } else if s == "null" || s == "true" || s == "false" {
                    serde_json::from_str(s).unwrap_or(Value::Null)
                } else if s.starts_with(|c: char| {
                    c.is_ascii_digit() || c == '-' || c == '"' || c == '[' || c == '{'
                }) {
                    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                } else {
                    Value::String(s.clone())
                }
            }
            other => other.clone(),
        },
        FieldKind::GeoPoint(_) => {
            let (lon, lat) = match raw {
                Value::Object(o) => (
                    o.get("lon").map(to_number).unwrap_or(0.0),
                    o.get("lat").map(to_number).unwrap_or(0.0),
                ),
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(o)) => (
                        o.get("lon").map(to_number).unwrap_or(0.0),
                        o.get("lat").map(to_number).unwrap_or(0.0),
                    ),
                    _ => (0.0, 0.0),
                },
                _ => (0.0, 0.0),
            };
            json!({"lon": number_value(lon), "lat": number_value(lat)})
        }
    }
}

/// Applies a modifier to the current value. Returns the new raw value
/// (prepare it afterwards).
pub fn apply_setter(field: &Field, current: &Value, setter: Setter, raw: &Value) -> Value {
    match (setter, &field.kind) {
        (Setter::Set, _) => raw.clone(),
        (Setter::Append, FieldKind::Number(_)) => number_value(to_number(current) + to_number(raw)),
        (Setter::Remove, FieldKind::Number(_)) => number_value(to_number(current) - to_number(raw)),
        (_, FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_)) => {
            let cur = to_string_list(current);
            let add = to_string_list(raw);
            let out: Vec<String> = match setter {
                Setter::Append => cur.into_iter().chain(add).collect(),
                Setter::Prepend => add.into_iter().chain(cur).collect(),
                Setter::Remove => cur.into_iter().filter(|v| !add.contains(v)).collect(),
                Setter::Set => cur,
            };
            json!(out)
        }
        // Modifiers on other types are ignored, as PocketBase does.
        _ => current.clone(),
    }
}

/// A validation failure: (code, message).
pub type Invalid = (&'static str, String, Value);

fn required() -> Invalid {
    (
        "validation_required",
        "Cannot be blank.".into(),
        Value::Null,
    )
}

fn fmt_num(f: f64) -> String {
    to_text(&number_value(f))
}

fn domain_of(s: &str) -> &str {
    s.rsplit('@').next().unwrap_or_default()
}

fn domain_ok(domain: &str, only: &[String], except: &[String]) -> bool {
    let d = domain.to_ascii_lowercase();
    if !only.is_empty() && !only.iter().any(|o| o.eq_ignore_ascii_case(&d)) {
        return false;
    }
    !except.iter().any(|e| e.eq_ignore_ascii_case(&d))
}

pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && domain.len() <= 255
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// The host of a URL as govalidator's IsURL accepts it (the scheme is optional).
fn url_host(s: &str) -> Option<String> {
    if s.len() > 2083
        || s.chars().any(|c| c.is_whitespace() || c.is_control())
        || s.starts_with('.')
    {
        return None;
    }
    let rest = match s.split_once("://") {
        Some((scheme, r)) => {
            let ok = !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.');
            if !ok {
                return None;
            }
            r
        }
        None => s,
    };
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    let host = host.split(':').next()?;
    let valid = !host.is_empty()
        && (host.contains('.') || host.eq_ignore_ascii_case("localhost") || s.contains("://"))
        && host.chars().all(|c| {
            c.is_alphanumeric() || c == '.' || c == '-' || c == '_' || c == '[' || c == ']'
        })
        && !host.starts_with('-')
        && !host.ends_with('.');
    valid.then(|| host.to_ascii_lowercase())
}

/// Validates a prepared value (PocketBase's ValidateValue), except relation
/// existence and uniqueness.
pub fn validate(field: &Field, v: &Value) -> Result<(), Invalid> {
    let is_blank = match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Object(o) => o.is_empty(),
    };
    match &field.kind {
        FieldKind::Text(o) => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let n = s.chars().count() as i64;
            if o.min > 0 && n < o.min {
                return Err((
                    "validation_min_text_constraint",
                    format!("Must be at least {} character(s).", o.min),
                    json!({"min": o.min}),
                ));
            }
            let max = if o.max > 0 { o.max } else { 5000 };
            if n > max {
                return Err((
                    "validation_max_text_constraint",
                    format!("Must be no more than {max} character(s)."),
                    json!({"max": max}),
                ));
            }
            if !o.pattern.is_empty() && !o.pattern_matches(s) {
                return Err((
                    "validation_invalid_format",
                    "Invalid value format.".into(),
                    Value::Null,
                ));
            }
            Ok(())
        }
        FieldKind::Editor(o) => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let max = if o.max_size > 0 { o.max_size } else { 5 << 20 };
            if s.len() as i64 > max {
                return Err((
                    "validation_max_text_constraint",
                    format!("Must be less than {max} bytes."),
                    json!({"max": max}),
                ));
            }
            Ok(())
        }
        FieldKind::Password(o) => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let n = s.chars().count() as i64;
            if o.min > 0 && n < o.min {
                return Err((
                    "validation_min_text_constraint",
                    format!("Must be at least {} character(s).", o.min),
                    Value::Null,
                ));
            }
            let max = if o.max > 0 { o.max } else { 71 };
            if n > max {
                return Err((
                    "validation_max_text_constraint",
                    format!("Must be no more than {max} character(s)."),
                    Value::Null,
                ));
            }
            Ok(())
        }
        FieldKind::Number(o) => {
            let f = v.as_f64().unwrap_or(0.0);
            if !f.is_finite() {
                return Err((
                    "validation_not_a_number",
                    "The submitted number is not properly formatted".into(),
                    Value::Null,
                ));
            }
            if f == 0.0 {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            // Whole numbers an int64 holds (PocketBase converts to one).
            if o.only_int && (f.fract() != 0.0 || f.abs() >= 9.223_372_036_854_775e18) {
                return Err((
                    "validation_only_int_constraint",
                    "Decimal numbers are not allowed".into(),
                    Value::Null,
                ));
            }
            if let Some(min) = o.min {
                if f < min {
                    return Err((
                        "validation_min_number_constraint",
                        format!("Must be greater or equal than {}.", fmt_num(min)),
                        json!({"min": number_value(min)}),
                    ));
                }
            }
            if let Some(max) = o.max {
                if f > max {
                    return Err((
                        "validation_max_number_constraint",
                        format!("Must be less or equal than {}.", fmt_num(max)),
                        json!({"max": number_value(max)}),
                    ));
                }
            }
            Ok(())
        }
        FieldKind::Bool(o) => {
            if o.required && is_blank {
                Err(required())
            } else {
                Ok(())
            }
        }
        FieldKind::Email(o) => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            if !is_email(s) {
                return Err((
                    "validation_is_email",
                    "Must be a valid email address.".into(),
                    Value::Null,
                ));
            }
            if !domain_ok(domain_of(s), &o.only_domains, &o.except_domains) {
                return Err((
                    "validation_email_domain_not_allowed",
                    "Email domain is not allowed".into(),
                    Value::Null,
                ));
            }
            Ok(())
        }
        FieldKind::Url(o) => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let Some(host) = url_host(s) else {
                return Err((
                    "validation_invalid_url",
                    "Must be a valid url".into(),
                    Value::Null,
                ));
            };
            if !domain_ok(&host, &o.only_domains, &o.except_domains) {
                return Err((
                    "validation_url_domain_not_allowed",
                    "Url domain is not allowed".into(),
                    Value::Null,
                ));
            }
            Ok(())
        }
        FieldKind::Date(o) => {
            let s = v.as_str().unwrap_or_default();
            if s.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let t = parse_datetime(s);
            let go = |d: chrono::DateTime<chrono::Utc>| {
                d.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()
            };
            let rfc = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            if let (Some(t), Some(min)) = (t, parse_datetime(&o.min)) {
                if t < min {
                    return Err((
                        "validation_min_greater_equal_than_required",
                        format!("Must be no less than {}.", go(min)),
                        json!({"threshold": rfc(min)}),
                    ));
                }
            }
            if let (Some(t), Some(max)) = (t, parse_datetime(&o.max)) {
                if t > max {
                    return Err((
                        "validation_max_less_equal_than_required",
                        format!("Must be no greater than {}.", go(max)),
                        json!({"threshold": rfc(max)}),
                    ));
                }
            }
            Ok(())
        }
        FieldKind::Autodate(_) => Ok(()),
        FieldKind::Select(o) => {
            let list = to_string_list(v);
            if list.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            for item in &list {
                if !o.values.contains(item) {
                    return Err((
                        "validation_invalid_value",
                        format!("Invalid value {item}"),
                        json!({"value": item}),
                    ));
                }
            }
            let max = o.max_select.max(1) as usize;
            if list.len() > max {
                return Err((
                    "validation_too_many_values",
                    format!("Select no more than {max}"),
                    json!({"maxSelect": max}),
                ));
            }
            Ok(())
        }
        FieldKind::Relation(o) => {
            let list = to_string_list(v);
            if list.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            if o.min_select > 0 && (list.len() as i64) < o.min_select {
                return Err((
                    "validation_not_enough_values",
                    format!("Select at least {}", o.min_select),
                    json!({"minSelect": o.min_select}),
                ));
            }
            if o.max_select > 0 && (list.len() as i64) > o.max_select {
                return Err((
                    "validation_too_many_values",
                    format!("Select no more than {}", o.max_select),
                    json!({"maxSelect": o.max_select}),
                ));
            }
            Ok(())
        }
        FieldKind::File(o) => {
            let list = to_string_list(v);
            if list.is_empty() {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let max = o.max_select.max(1) as usize;
            if list.len() > max {
                return Err((
                    "validation_too_many_files",
                    format!("The maximum allowed files is {max}"),
                    json!({"maxSelect": max}),
                ));
            }
            Ok(())
        }
        FieldKind::Json(o) => {
            let is_empty = match v {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(m) => m.is_empty(),
                _ => false,
            };
            if is_empty {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            let max = if o.max_size > 0 { o.max_size } else { 1 << 20 };
            let size = v.to_string().len() as i64;
            if size > max {
                return Err((
                    "validation_json_size_limit",
                    format!("The maximum allowed JSON size is {max} bytes"),
                    json!({"maxSize": max}),
                ));
            }
            Ok(())
        }
        FieldKind::GeoPoint(o) => {
            let lon = v.get("lon").and_then(Value::as_f64).unwrap_or(0.0);
            let lat = v.get("lat").and_then(Value::as_f64).unwrap_or(0.0);
            if lon == 0.0 && lat == 0.0 {
                return if o.required { Err(required()) } else { Ok(()) };
            }
            if !(-90.0..=90.0).contains(&lat) {
                return Err((
                    "validation_invalid_latitude",
                    "Latitude must be between -90 and 90 degrees.".into(),
                    Value::Null,
                ));
            }
            if !(-180.0..=180.0).contains(&lon) {
                return Err((
                    "validation_invalid_longitude",
                    "Longitude must be between -180 and 180 degrees.".into(),
                    Value::Null,
                ));
            }
            Ok(())
        }
    }
}

/// The value stored for a prepared JSON value.
pub fn to_sql(field: &Field, v: &Value) -> Sql {
    match &field.kind {
        FieldKind::Number(_) => {
            let f = v.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Sql::Integer(f as i64)
            } else {
                Sql::Real(f)
            }
        }
        FieldKind::Bool(_) => Sql::Integer(i64::from(v.as_bool().unwrap_or(false))),
        FieldKind::Json(_) => match v {
            Value::Null => Sql::Null,
            // PocketBase keeps an empty value as it is (answered `""`).
            Value::String(s) if s.is_empty() => Sql::Text(String::new()),
            other => Sql::Text(other.to_string()),
        },
        FieldKind::GeoPoint(_) => Sql::Text(v.to_string()),
        _ if field.is_multiple() => Sql::Text(v.to_string()),
        _ => Sql::Text(to_text(v)),
    }
}

/// The JSON value of a stored column.
pub fn from_sql(field: &Field, v: SqlRef<'_>) -> Value {
    use SqlRef as R;
    let text = |v: R<'_>| -> String {
        match v {
            // Valid UTF-8 (always, for what keepd stored) is copied as it
            // is; `from_utf8_lossy` walks it in slower chunks.
            R::Text(t) | R::Blob(t) => match std::str::from_utf8(t) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            },
            R::Integer(i) => i.to_string(),
            R::Real(f) => to_text(&number_value(f)),
            R::Null => String::new(),
        }
    };
    match &field.kind {
        FieldKind::Number(_) => match v {
            R::Integer(i) => json!(i),
            R::Real(f) => number_value(f),
            R::Text(t) => number_value(
                std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0.0),
            ),
            _ => json!(0),
        },
        FieldKind::Bool(_) => match v {
            R::Integer(i) => Value::Bool(i != 0),
            R::Real(f) => Value::Bool(f != 0.0),
            R::Text(t) => Value::Bool(matches!(t, b"1" | b"true" | b"TRUE")),
            _ => Value::Bool(false),
        },
        FieldKind::Json(_) => match v {
            R::Null => Value::Null,
            R::Text(b"") => Value::String(String::new()),
            // A view's JSON column may hold plain text: shown as a string
            // (as PocketBase shows it).
            other => {
                let t = text(other);
                serde_json::from_str(&t).unwrap_or(Value::String(t))
            }
        },
        FieldKind::GeoPoint(_) => {
            serde_json::from_str(&text(v)).unwrap_or(json!({"lon": 0, "lat": 0}))
        }
        _ if field.is_multiple() => match serde_json::from_str::<Value>(&text(v)) {
            Ok(Value::Array(a)) => Value::Array(a),
            _ => json!([]),
        },
        _ => Value::String(text(v)),
    }
}

/// The zero value of a field (a new record's default).
pub fn zero(field: &Field) -> Value {
    match &field.kind {
        FieldKind::Number(_) => json!(0),
        FieldKind::Bool(_) => json!(false),
        FieldKind::Json(_) => Value::Null,
        FieldKind::GeoPoint(_) => json!({"lon": 0, "lat": 0}),
        _ if field.is_multiple() => json!([]),
        _ => json!(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: Value) -> Field {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn coercion_table() {
        let num = field(json!({"name":"n","type":"number"}));
        let b = field(json!({"name":"b","type":"bool"}));
        let txt = field(json!({"name":"t","type":"text"}));
        let multi = field(json!({"name":"s","type":"select","values":["a","b"],"maxSelect":2}));
        let single = field(json!({"name":"s","type":"select","values":["a","b"],"maxSelect":1}));
        let cases: Vec<(&Field, Value, Value)> = vec![
            (&num, json!("12"), json!(12)),
            (&num, json!("1.5"), json!(1.5)),
            (&num, json!("abc"), json!(0)),
            (&num, json!(true), json!(1)),
            (&b, json!("true"), json!(true)),
            (&b, json!("1"), json!(true)),
            (&b, json!("yes"), json!(false)),
            (&txt, json!(12), json!("12")),
            (&txt, json!(null), json!("")),
            (&multi, json!("a"), json!(["a"])),
            (&multi, json!(["a", "a", "b"]), json!(["a", "b"])),
            (&single, json!(["a", "b"]), json!("b")),
        ];
        for (f, input, want) in cases {
            assert_eq!(prepare(f, &input), want, "{input}");
        }
    }

    #[test]
    fn setters() {
        let num = field(json!({"name":"n","type":"number"}));
        let multi = field(json!({"name":"s","type":"select","values":["a","b","c"],"maxSelect":3}));
        assert_eq!(split_key("n+"), ("n", Setter::Append));
        assert_eq!(split_key("+s"), ("s", Setter::Prepend));
        assert_eq!(split_key("s-"), ("s", Setter::Remove));
        assert_eq!(
            apply_setter(&num, &json!(5), Setter::Append, &json!(2)),
            json!(7)
        );
        assert_eq!(
            apply_setter(&num, &json!(5), Setter::Remove, &json!("2")),
            json!(3)
        );
        assert_eq!(
            apply_setter(&multi, &json!(["a"]), Setter::Append, &json!("b")),
            json!(["a", "b"])
        );
        assert_eq!(
            apply_setter(&multi, &json!(["a"]), Setter::Prepend, &json!(["c"])),
            json!(["c", "a"])
        );
        assert_eq!(
            apply_setter(&multi, &json!(["a", "b"]), Setter::Remove, &json!("a")),
            json!(["b"])
        );
    }

    #[test]
    fn validation_codes() {
        let num = field(json!({"name":"n","type":"number","min":1,"max":10,"onlyInt":true}));
        assert_eq!(
            validate(&num, &json!(11)).unwrap_err().0,
            "validation_max_number_constraint"
        );
        assert_eq!(
            validate(&num, &json!(0.5)).unwrap_err().0,
            "validation_only_int_constraint"
        );
        let email = field(json!({"name":"e","type":"email","required":true}));
        assert_eq!(
            validate(&email, &json!("")).unwrap_err().0,
            "validation_required"
        );
        assert_eq!(
            validate(&email, &json!("nope")).unwrap_err().0,
            "validation_is_email"
        );
        assert!(validate(&email, &json!("a@b.io")).is_ok());
        let url = field(json!({"name":"u","type":"url"}));
        assert!(validate(&url, &json!("https://example.com/x")).is_ok());
        assert!(validate(&url, &json!("not a url")).is_err());
    }
}
