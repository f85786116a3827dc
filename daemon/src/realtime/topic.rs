//! Subscription topics, parsed once when a client subscribes.
//!
//! A topic is `COLLECTION/*` (every record, checked with the list rule),
//! `COLLECTION/RECORD_ID` (one record, view rule) or the legacy bare
//! `COLLECTION` (same as `/*`); `COLLECTION` is a name or an id. Any topic may
//! carry `?options={"query":{...},"headers":{...}}` (URL-encoded JSON): the
//! query (`filter`, `fields`, `expand`, and whatever `@request.query.*`
//! reads) and headers (`@request.headers.*`) of a request made on the
//! client's behalf. Events are sent under the topic string exactly as
//! subscribed. Pure: no I/O.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which records a topic covers (and so which rule guards it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every record of the collection: the list rule.
    All,
    /// One record: the view rule.
    Record(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The topic as subscribed: the event name of its messages.
    pub raw: Arc<str>,
    /// The collection name or id, as written.
    pub collection: String,
    pub target: Target,
    /// `options.query`, values as strings (PocketBase casts them).
    pub query: BTreeMap<String, String>,
    /// `options.headers`, keys normalised as request headers are.
    pub headers: BTreeMap<String, String>,
}

impl Topic {
    /// Parses a subscription string. Never fails: a topic that names no
    /// collection simply never matches (as in PocketBase); malformed
    /// options are ignored.
    pub fn parse(raw: &str) -> Topic {
        let (base, query) = match raw.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (raw, None),
        };
        let (collection, target) = match base.split_once('/') {
            Some((c, "*")) => (c.to_string(), Target::All),
            Some((c, id)) => (c.to_string(), Target::Record(id.to_string())),
            None => (base.to_string(), Target::All),
        };
        let mut t = Topic {
            raw: Arc::from(raw),
            collection,
            target,
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
        };
        let Some(q) = query else { return t };
        let Some(options) = form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "options")
            .map(|(_, v)| v.into_owned())
        else {
            return t;
        };
        let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&options) else {
            return t;
        };
        if let Some(Value::Object(q)) = o.get("query") {
            for (k, v) in q {
                t.query.insert(k.clone(), cast_string(v));
            }
        }
        if let Some(Value::Object(h)) = o.get("headers") {
            for (k, v) in h {
                t.headers
                    .insert(crate::filter::header_key(k), cast_string(v));
            }
        }
        t
    }

    /// Whether an event for record `id` of the collection (`name`, `cid`)
    /// goes to this topic.
    pub fn matches(&self, name: &str, cid: &str, id: &str) -> bool {
        if self.collection != name && self.collection != cid {
            return false;
        }
        match &self.target {
            Target::All => true,
            Target::Record(r) => r == id,
        }
    }

    /// A query option (`filter`, `fields`, `expand`, …); "" when absent.
    pub fn option(&self, key: &str) -> &str {
        self.query.get(key).map(String::as_str).unwrap_or("")
    }

    /// The options as `@request.query` sees them.
    pub fn query_map(&self) -> Map<String, Value> {
        self.query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }

    /// The options as `@request.headers` sees them.
    pub fn headers_map(&self) -> Map<String, Value> {
        self.headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }

    /// The options in one comparable string (part of a grouping key when a
    /// rule reads `@request.query` or `@request.headers`).
    pub fn options_key(&self) -> String {
        format!("{:?}{:?}", self.query, self.headers)
    }
}

/// Go's `cast.ToString` on a decoded JSON value: strings as is, numbers and
/// booleans printed, anything else empty.
fn cast_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topics() {
        let t = Topic::parse("posts/*");
        assert_eq!((t.collection.as_str(), &t.target), ("posts", &Target::All));
        let t = Topic::parse("posts");
        assert_eq!(t.target, Target::All);
        let t = Topic::parse("posts/abc123");
        assert_eq!(t.target, Target::Record("abc123".into()));
        assert!(t.matches("posts", "pbc_1", "abc123"));
        assert!(!t.matches("posts", "pbc_1", "other"));
        assert!(!t.matches("users", "pbc_2", "abc123"));
        let t = Topic::parse("pbc_1/*");
        assert!(t.matches("posts", "pbc_1", "x"));
    }

    #[test]
    fn parses_options() {
        let opts = r#"{"query":{"filter":"n > 5","fields":"id,title","n":3,"b":true,"o":{}},"headers":{"X-Token":"abc"}}"#;
        let raw = format!(
            "posts/*?options={}",
            percent_encoding::utf8_percent_encode(opts, percent_encoding::NON_ALPHANUMERIC)
        );
        let t = Topic::parse(&raw);
        assert_eq!(&*t.raw, raw);
        assert_eq!(t.target, Target::All);
        assert_eq!(t.option("filter"), "n > 5");
        assert_eq!(t.option("fields"), "id,title");
        assert_eq!(t.option("n"), "3");
        assert_eq!(t.option("b"), "true");
        assert_eq!(t.option("o"), "");
        assert_eq!(t.option("expand"), "");
        assert_eq!(t.headers.get("x_token").map(String::as_str), Some("abc"));
        // Malformed options are ignored, the topic still matches.
        let t = Topic::parse("posts/*?options=%7Bnot-json");
        assert!(t.query.is_empty());
        assert!(t.matches("posts", "x", "y"));
    }
}
