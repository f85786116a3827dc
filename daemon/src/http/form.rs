//! Form bodies (`application/x-www-form-urlencoded`, `multipart/form-data`)
//! read as PocketBase's Go server reads them, then bound into the JSON
//! object a handler reads.
//!
//! The values are Go's `Request.Form`: for a urlencoded body the body's
//! values of a key come before the query string's; for a multipart body
//! the query string's come first. Parts with a file name are files, not
//! values.
//!
//! Binding follows PocketBase's struct binding: a route gives the shape of
//! its body as a JSON template (`http::Route::form`); each form key is a
//! dotted path into it, and the template's value there says what the
//! field is — text takes the key's first value, a boolean Go's
//! `ParseBool`, a number Go's `ParseInt(s, 0, 64)`, an array every value,
//! an object nothing (its fields are `key.field`), null nothing (only the
//! JSON payload can set it). Keys outside the template are dropped. A
//! route without a template takes every key's first value as text. Then
//! each `@jsonPayload` value, a JSON object, is merged over the result
//! (`null` empties it), as Go's JSON decoder fills the same struct.

use crate::error::{ApiError, ApiResult};
use bytes::Bytes;
use serde_json::{Map, Value};

/// The key whose value is a JSON object merged over the form's values.
pub const JSON_PAYLOAD: &str = "@jsonPayload";

/// The deepest JSON a request may nest.
pub const MAX_JSON_DEPTH: usize = 64;

/// A form body's text values (in Go's order) and its file parts.
#[derive(Default)]
pub struct Form {
    pub values: Vec<(String, String)>,
    pub files: Vec<FilePart>,
}

/// One multipart part with a file name.
pub struct FilePart {
    pub key: String,
    pub filename: String,
    pub data: Bytes,
}

/// What kind of form a content type names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    UrlEncoded,
    Multipart,
}

/// The form kind of a `Content-Type` (None: not a form).
pub fn kind(content_type: &str) -> Option<Kind> {
    let ct = content_type.trim_start().to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        Some(Kind::UrlEncoded)
    } else if ct.starts_with("multipart/form-data") {
        Some(Kind::Multipart)
    } else {
        None
    }
}

/// Reads a whole (in-memory) form body. `malformed` is the answer to a
/// body that can't be read as the form it says it is.
pub fn read(
    kind: Kind,
    content_type: &str,
    body: &Bytes,
    query: &[(String, String)],
    malformed: &str,
) -> ApiResult<Form> {
    match kind {
        Kind::UrlEncoded => {
            let mut values: Vec<(String, String)> = form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            values.extend(query.iter().cloned());
            Ok(Form {
                values,
                files: Vec::new(),
            })
        }
        Kind::Multipart => {
            let mut form = multipart(content_type, body.clone())
                .map_err(|_| ApiError::bad(malformed.to_string()))?;
            let mut values = query.to_vec();
            values.append(&mut form.values);
            form.values = values;
            Ok(form)
        }
    }
}

/// Parses a multipart body that is already whole in memory. The stream
/// multer reads is a single ready chunk, so every step completes at once:
/// it is polled once (`now_or_never`) instead of awaited, and a step that
/// would wait is a malformed body.
fn multipart(content_type: &str, body: Bytes) -> Result<Form, multer::Error> {
    use futures_util::FutureExt;
    let boundary = multer::parse_boundary(content_type)?;
    let len = body.len() as u64;
    let stream = futures_util::stream::iter(std::iter::once(Ok::<_, std::io::Error>(body)));
    let mut mp = multer::Multipart::with_constraints(
        stream,
        boundary,
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(len)),
    );
    let incomplete = || multer::Error::IncompleteStream;
    let mut form = Form::default();
    while let Some(field) = mp.next_field().now_or_never().ok_or_else(incomplete)?? {
        let key = field.name().unwrap_or_default().to_string();
        // As Go: a part is a file when it names one.
        match field
            .file_name()
            .filter(|f| !f.is_empty())
            .map(str::to_string)
        {
            Some(filename) => {
                let data = field.bytes().now_or_never().ok_or_else(incomplete)??;
                form.files.push(FilePart {
                    key,
                    filename,
                    data,
                });
            }
            None => {
                let text = field.text().now_or_never().ok_or_else(incomplete)??;
                form.values.push((key, text));
            }
        }
    }
    Ok(form)
}

/// Binds form values into a JSON object after `shape` (see the module
/// doc); `malformed` answers a value that doesn't parse as its field's
/// type and a bad `@jsonPayload`.
pub fn bind(
    values: &[(String, String)],
    shape: Option<&Value>,
    malformed: &str,
) -> ApiResult<Map<String, Value>> {
    let bad = || ApiError::bad(malformed.to_string());
    // Keys in order of first appearance, each with all its values.
    let mut keys: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut payloads: Vec<&str> = Vec::new();
    for (k, v) in values {
        if k == JSON_PAYLOAD {
            payloads.push(v);
            continue;
        }
        match keys.iter_mut().find(|(key, _)| key == k) {
            Some((_, vs)) => vs.push(v),
            None => keys.push((k, vec![v])),
        }
    }
    let mut out = Map::new();
    for (key, vals) in keys {
        let Some(shape) = shape else {
            out.insert(key.to_string(), Value::String(vals[0].to_string()));
            continue;
        };
        let path: Vec<&str> = key.split('.').collect();
        let Some(field) = lookup(shape, &path) else {
            continue;
        };
        let Some(v) = coerce(field, &vals).ok_or_else(bad)? else {
            continue;
        };
        insert_path(&mut out, &path, v);
    }
    for p in payloads {
        check_json_depth(p.as_bytes(), MAX_JSON_DEPTH).map_err(|_| bad())?;
        match serde_json::from_str::<Value>(p).map_err(|_| bad())? {
            Value::Null => out.clear(),
            Value::Object(m) => merge(&mut out, m),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// The template value at a dotted path (None: not a field).
fn lookup<'a>(shape: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut at = shape;
    for seg in path {
        at = at.as_object()?.get(*seg)?;
    }
    Some(at)
}

/// A field's value from its form values: Some(None) for a field a form
/// can't set, None for a value that doesn't parse.
fn coerce(field: &Value, vals: &[&str]) -> Option<Option<Value>> {
    let first = vals.first().copied().unwrap_or_default();
    Some(Some(match field {
        Value::String(_) => Value::String(first.to_string()),
        Value::Bool(_) => Value::Bool(go_parse_bool(first)?),
        Value::Number(_) => Value::from(go_parse_int(first)?),
        Value::Array(a) => {
            let item = a.first().unwrap_or(&Value::Null);
            let mut list = Vec::with_capacity(vals.len());
            for v in vals {
                list.push(match item {
                    Value::Null | Value::String(_) => Value::String(v.to_string()),
                    Value::Bool(_) => Value::Bool(go_parse_bool(v)?),
                    Value::Number(_) => Value::from(go_parse_int(v)?),
                    // A list of objects isn't settable from a form.
                    Value::Array(_) | Value::Object(_) => return Some(None),
                });
            }
            Value::Array(list)
        }
        Value::Object(_) | Value::Null => return Some(None),
    }))
}

fn insert_path(out: &mut Map<String, Value>, path: &[&str], v: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = out;
    for seg in parents {
        let next = at
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !next.is_object() {
            *next = Value::Object(Map::new());
        }
        let Value::Object(m) = next else {
            return;
        };
        at = m;
    }
    at.insert(last.to_string(), v);
}

/// Objects merge key by key (as JSON decoding into a filled struct);
/// anything else replaces.
fn merge(dst: &mut Map<String, Value>, src: Map<String, Value>) {
    for (k, v) in src {
        match (dst.get_mut(&k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge(d, s),
            (_, v) => {
                dst.insert(k, v);
            }
        }
    }
}

/// Go's `strconv.ParseBool`, with PocketBase's empty value = false.
pub fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, with PocketBase's empty value = 0:
/// an optional sign, a base prefix (`0x`, `0o`, `0b`, or a leading `0`
/// for octal), and `_` only between digits (the prefix counts as one).
pub fn go_parse_int(s: &str) -> Option<i64> {
    if s.is_empty() {
        return Some(0);
    }
    let (neg, unsigned) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let b = unsigned.as_bytes();
    let (radix, digits, prefix) = if b.len() >= 2 && b[0] == b'0' {
        match b[1].to_ascii_lowercase() {
            b'x' => (16, &unsigned[2..], true),
            b'o' => (8, &unsigned[2..], true),
            b'b' => (2, &unsigned[2..], true),
            _ => (8, &unsigned[1..], false),
        }
    } else {
        (10, unsigned, false)
    };
    // Separators: `_` only between digits (a base prefix counts as one).
    // (A legacy octal `0` counts as a digit too.)
    let mut prev_digit = prefix || radix == 8;
    for c in digits.bytes() {
        if c == b'_' {
            if !prev_digit {
                return None;
            }
            prev_digit = false;
        } else {
            prev_digit = true;
        }
    }
    if digits.ends_with('_') {
        return None;
    }
    let mut mag: u64 = 0;
    let mut any = false;
    for c in digits.bytes().filter(|c| *c != b'_') {
        let v = (c as char).to_digit(radix)?;
        mag = mag.checked_mul(radix as u64)?.checked_add(v as u64)?;
        any = true;
    }
    if !any {
        return None;
    }
    if neg {
        if mag <= i64::MAX as u64 {
            Some(-(mag as i64))
        } else if mag == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            None
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// Refuses JSON nested deeper than `max` (before parsing, without
/// recursion).
pub fn check_json_depth(b: &[u8], max: usize) -> ApiResult<()> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    for &c in b {
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(ApiError::bad(
                        "Failed to load the submitted data due to invalid formatting.",
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vals(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_int_as_go() {
        let ok = [
            ("0", 0),
            ("", 0),
            ("42", 42),
            ("+9", 9),
            ("-5", -5),
            ("0x10", 16),
            ("0X1f", 31),
            ("0o17", 15),
            ("017", 15),
            ("0b101", 5),
            ("1_000", 1000),
            ("0x_1", 1),
            ("0_7", 7),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for (s, want) in ok {
            assert_eq!(go_parse_int(s), Some(want), "{s}");
        }
        for s in [
            "abc",
            "1.5",
            "08",
            "0x",
            "_1",
            "1_",
            "1__0",
            "--1",
            "+",
            " 7",
            "9223372036854775808",
            "1e3",
        ] {
            assert_eq!(go_parse_int(s), None, "{s}");
        }
    }

    #[test]
    fn parse_bool_as_go() {
        for s in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(go_parse_bool(s), Some(true));
        }
        for s in ["", "0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(go_parse_bool(s), Some(false));
        }
        for s in ["yes", "tRUE", "on"] {
            assert_eq!(go_parse_bool(s), None);
        }
    }

    #[test]
    fn binds_text_by_default_first_value_wins() {
        let m = bind(
            &vals(&[("identity", "a"), ("identity", "b"), ("password", "123")]),
            None,
            "bad",
        )
        .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"identity": "a", "password": "123"})
        );
    }

    #[test]
    fn binds_after_a_shape() {
        let shape = json!({"duration": 0, "on": false, "subs": [], "meta": {"name": "", "port": 0},
            "rules": [{"x": 1}], "any": null});
        let m = bind(
            &vals(&[
                ("duration", "0x10"),
                ("on", "t"),
                ("subs", "a"),
                ("subs", "b"),
                ("meta.name", "n"),
                ("meta.port", "25"),
                ("rules", "x"),
                ("any", "x"),
                ("meta", "x"),
                ("unknown", "x"),
            ]),
            Some(&shape),
            "bad",
        )
        .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"duration": 16, "on": true, "subs": ["a", "b"], "meta": {"name": "n", "port": 25}})
        );
        let e = bind(&vals(&[("duration", "abc")]), Some(&shape), "bad").unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn json_payload_merges_and_is_checked() {
        let m = bind(
            &vals(&[
                ("a", "form"),
                ("b", "form"),
                (JSON_PAYLOAD, r#"{"a": 1, "c": {"d": true}}"#),
                (JSON_PAYLOAD, r#"{"c": {"e": 2}}"#),
            ]),
            None,
            "bad",
        )
        .unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"a": 1, "b": "form", "c": {"d": true, "e": 2}})
        );
        // null empties; anything but an object is refused, as is trailing text.
        let m = bind(&vals(&[("a", "x"), (JSON_PAYLOAD, "null")]), None, "bad").unwrap();
        assert!(m.is_empty());
        for p in ["[1]", "\"x\"", "{} x", "{", "1"] {
            assert!(
                bind(&vals(&[(JSON_PAYLOAD, p)]), None, "bad").is_err(),
                "{p}"
            );
        }
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let deep = format!("{{\"a\": {deep}}}");
        assert!(bind(&vals(&[(JSON_PAYLOAD, &deep)]), None, "bad").is_err());
        let ok = format!("{{\"a\": {}{}}}", "[".repeat(63), "]".repeat(63));
        assert!(bind(&vals(&[(JSON_PAYLOAD, &ok)]), None, "bad").is_ok());
    }

    #[test]
    fn reads_forms_in_gos_order() {
        let q = vals(&[("k", "query")]);
        let f = read(
            Kind::UrlEncoded,
            "application/x-www-form-urlencoded",
            &Bytes::from_static(b"k=body&x=%20y"),
            &q,
            "bad",
        )
        .unwrap();
        assert_eq!(
            f.values,
            vals(&[("k", "body"), ("x", " y"), ("k", "query")])
        );
        let body = "--B\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nbody\r\n\
                    --B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nfile\r\n\
                    --B--\r\n";
        let f = read(
            Kind::Multipart,
            "multipart/form-data; boundary=B",
            &Bytes::from(body),
            &q,
            "bad",
        )
        .unwrap();
        assert_eq!(f.values, vals(&[("k", "query"), ("k", "body")]));
        assert_eq!(f.files.len(), 1);
        assert_eq!(f.files[0].filename, "a.txt");
        assert_eq!(&f.files[0].data[..], b"file");
        for (ct, body) in [
            ("multipart/form-data; boundary=B", "garbage"),
            ("multipart/form-data", "garbage"),
            (
                "multipart/form-data; boundary=B",
                "--B\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nunterminated",
            ),
        ] {
            let e = read(Kind::Multipart, ct, &Bytes::from(body), &[], "bad");
            assert!(e.is_err(), "{body}");
        }
    }
}
