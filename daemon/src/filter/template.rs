//! Compiled once, bound per request.
//!
//! The compiler never reads a request value (or the clock) directly. It
//! asks *probes* — the few facts about a request that decide the shape of
//! the SQL: is there a request, which auth collection, is a value missing,
//! null or empty, how many items a body array holds — and gets the values
//! themselves as *slots*, late-bound parameters ([`Bind::Slot`]). A
//! [`Template`] is the rendered SQL with its slots and the probe outcomes
//! it was compiled under: it serves every request for which the probes
//! answer the same, with the slots bound from that request. The SQL a
//! template gives is therefore, by construction, what compiling the rule
//! for that request gives; `rules` keeps the templates of each collection
//! rule with the schema snapshot.

use super::compile::{macro_value, Compiled};
use super::context::{AuthView, RequestView};
use crate::schema::Collection;
use crate::store::dialect::{self, Bind};
use crate::store::SqlValue as Sql;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::{Arc, Weak};

/// A fact about the request that shaped the SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Probe {
    /// Whether there is a request at all (else every `@request.*` is NULL).
    Request,
    /// The auth collection, if authenticated.
    Auth,
    /// A request value as `@request.<keys>` reads it ([`StaticClass`]);
    /// `numeric`: the base collection has a number field of the last key's name.
    Static { keys: Vec<String>, numeric: bool },
    /// Whether the relation ids in `@request.body.<field>` are none.
    BodyIdsEmpty(String),
    /// How many items `@request.body.<field>` holds.
    BodyLen(String),
    /// Whether `@request.body.<field>` as text is empty.
    BodyTextEmpty(String),
}

/// What a static request value is, as far as the SQL's shape goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaticClass {
    /// Not there (`:isset` is false; the value is NULL).
    Missing,
    /// There, but null.
    Null,
    /// The empty string.
    Empty,
    /// Anything else: bound through a slot.
    Value,
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Bool(bool),
    Count(usize),
    Class(StaticClass),
    /// The auth collection (compared by identity: a `Weak` keeps its
    /// address from being reused while the template lives).
    Auth(Option<Weak<Collection>>),
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Bool(a), Outcome::Bool(b)) => a == b,
            (Outcome::Count(a), Outcome::Count(b)) => a == b,
            (Outcome::Class(a), Outcome::Class(b)) => a == b,
            (Outcome::Auth(None), Outcome::Auth(None)) => true,
            (Outcome::Auth(Some(a)), Outcome::Auth(Some(b))) => Weak::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Probe {
    /// The outcome for `req`.
    pub fn eval(&self, req: Option<&RequestView<'_>>) -> Outcome {
        let Some(req) = req else {
            // Only `Request` is asked without a request: the compiler
            // stops at its `false`.
            return Outcome::Bool(false);
        };
        match self {
            Probe::Request => Outcome::Bool(true),
            Probe::Auth => Outcome::Auth(req.auth.map(|a| Arc::downgrade(a.collection))),
            Probe::Static { keys, numeric } => {
                let found = lookup(req, keys);
                Outcome::Class(match static_bind(found.as_deref(), *numeric) {
                    None if found.is_none() => StaticClass::Missing,
                    None => StaticClass::Null,
                    Some(b) if b.is_empty() => StaticClass::Empty,
                    Some(_) => StaticClass::Value,
                })
            }
            Probe::BodyIdsEmpty(f) => Outcome::Bool(to_unique_strings(req.body.get(f)).is_empty()),
            Probe::BodyLen(f) => Outcome::Count(to_slice(req.body.get(f)).len()),
            Probe::BodyTextEmpty(f) => Outcome::Bool(to_text(req.body.get(f)).is_empty()),
        }
    }
}

/// Where a slot's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// `@request.<keys>` (its class was probed to be a value).
    Static { keys: Vec<String>, numeric: bool },
    /// The auth record's id ('' if it has none).
    AuthId,
    /// `@request.body.<field>` as a JSON array (`:each`).
    BodyArray(String),
    /// The relation ids in `@request.body.<field>`, as a JSON array.
    BodyIds(String),
    /// `@request.body.<field>` as text (`:lower`).
    BodyText(String),
    /// A clock macro (`@now`, `@todayStart`...).
    Macro(&'static str),
    /// An earlier slot's value as a LIKE pattern.
    Like(u32),
}

/// What one compile asked and deferred.
#[derive(Debug, Default)]
pub(crate) struct Binder {
    probes: Vec<(Probe, Outcome)>,
    slots: Vec<Source>,
}

impl Binder {
    /// Asks `p` of `req`, recording the outcome.
    pub fn probe(&mut self, p: Probe, req: Option<&RequestView<'_>>) -> Outcome {
        if let Some((_, o)) = self.probes.iter().find(|(q, _)| *q == p) {
            return o.clone();
        }
        let o = p.eval(req);
        self.probes.push((p, o.clone()));
        o
    }

    /// A late-bound value from `src`.
    pub fn slot(&mut self, src: Source) -> Bind {
        let i = match self.slots.iter().position(|s| *s == src) {
            Some(i) => i,
            None => {
                self.slots.push(src);
                self.slots.len() - 1
            }
        };
        Bind::Slot(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// A compiled query whose request values are bound per request.
#[derive(Debug)]
pub struct Template {
    pub(crate) probes: Vec<(Probe, Outcome)>,
    pub(crate) slots: Vec<Source>,
    pub(crate) joins: Vec<String>,
    pub(crate) join_params: Vec<Bind>,
    pub(crate) where_sql: String,
    pub(crate) params: Vec<Bind>,
    pub(crate) order_by: Vec<String>,
    pub(crate) order_params: Vec<Bind>,
    pub(crate) distinct: bool,
    /// The engine the SQL is written for.
    pub(crate) engine: crate::store::engine::Engine,
}

impl Template {
    pub(crate) fn new(b: Binder) -> Template {
        Template {
            probes: b.probes,
            slots: b.slots,
            joins: Vec::new(),
            join_params: Vec::new(),
            where_sql: String::new(),
            params: Vec::new(),
            order_by: Vec::new(),
            order_params: Vec::new(),
            distinct: false,
            engine: Default::default(),
        }
    }

    /// Whether this template is what compiling gives for `req`.
    pub fn matches(&self, req: Option<&RequestView<'_>>) -> bool {
        self.probes.iter().all(|(p, o)| p.eval(req) == *o)
    }

    /// The SQL with the slots bound from `req` and `now`. Only for a
    /// request the template [`matches`](Self::matches).
    pub fn bind(&self, req: Option<&RequestView<'_>>, now: DateTime<Utc>) -> Compiled {
        let mut values: Vec<Sql> = Vec::with_capacity(self.slots.len());
        // The slots' texts are kept only when a later slot reads one (a
        // LIKE pattern made from an earlier value).
        let keep_texts = self.slots.iter().any(|s| matches!(s, Source::Like(_)));
        let mut texts: Vec<String> = Vec::new();
        for s in &self.slots {
            let b = source_value(s, req, now, &texts);
            if keep_texts {
                texts.push(b.to_text());
            }
            values.push(b.to_value());
        }
        let conv = |v: &[Bind]| -> Vec<Sql> {
            v.iter()
                .map(|b| match b {
                    Bind::Slot(i) => values.get(*i as usize).cloned().unwrap_or(Sql::Null),
                    other => other.to_value(),
                })
                .collect()
        };
        let engine = self.engine;
        let join_params = conv(&self.join_params);
        let params = conv(&self.params);
        let order_params = conv(&self.order_params);
        // The joins bind `join_params` in order, the sort terms
        // `order_params`.
        let each = |parts: &[String], values: &[Sql]| -> Vec<String> {
            let mut next = 0;
            parts
                .iter()
                .map(|p| engine.bound_sql(p, values, &mut next))
                .collect()
        };
        let (joins, order_by) = if engine.typed() {
            (
                each(&self.joins, &join_params),
                each(&self.order_by, &order_params),
            )
        } else {
            (self.joins.clone(), self.order_by.clone())
        };
        Compiled {
            joins,
            join_params,
            where_sql: engine.bound_sql(&self.where_sql, &params, &mut 0),
            params,
            order_by,
            order_params,
            distinct: self.distinct,
        }
    }
}

/// A slot's value; `earlier` holds the text of the slots before it.
fn source_value(
    s: &Source,
    req: Option<&RequestView<'_>>,
    now: DateTime<Utc>,
    earlier: &[String],
) -> Bind {
    let body = |f: &str| req.and_then(|r| r.body.get(f));
    match s {
        Source::Static { keys, numeric } => req
            .and_then(|r| static_bind(lookup(r, keys).as_deref(), *numeric))
            .unwrap_or(Bind::Null),
        Source::AuthId => Bind::Text(
            req.and_then(|r| r.auth)
                .and_then(|a| a.record.get("id"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        Source::BodyArray(f) => Bind::Text(Value::Array(to_slice(body(f))).to_string()),
        Source::BodyIds(f) => Bind::Text(
            Value::Array(
                to_unique_strings(body(f))
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )
            .to_string(),
        ),
        Source::BodyText(f) => Bind::Text(to_text(body(f))),
        Source::Macro(name) => macro_value(name, now).unwrap_or(Bind::Null),
        Source::Like(i) => Bind::Text(dialect::like_pattern(
            earlier.get(*i as usize).map(String::as_str).unwrap_or(""),
        )),
    }
}

// -- reading request values (PocketBase's `resolveStaticRequestField`) -----

/// The value at `keys` (`["body", "a", "b"]`...), as PocketBase walks the
/// request info: `context`/`method` are leaves, `auth` is the record with
/// `collectionId` and `collectionName` set.
pub(crate) fn lookup<'r>(req: &RequestView<'r>, keys: &[String]) -> Option<Cow<'r, Value>> {
    let (first, rest) = keys.split_first()?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match first.as_str() {
        "context" => rest
            .is_empty()
            .then(|| Cow::Owned(Value::String(req.context.to_string()))),
        "method" => rest
            .is_empty()
            .then(|| Cow::Owned(Value::String(req.method.to_string()))),
        "query" => walk_map(req.query, &rest).map(Cow::Borrowed),
        "headers" => walk_map(req.headers, &rest).map(Cow::Borrowed),
        "body" => walk_map(req.body, &rest).map(Cow::Borrowed),
        "auth" => match req.auth {
            None => rest.is_empty().then_some(Cow::Owned(Value::Null)),
            Some(a) => walk_auth(a, &rest),
        },
        _ => None,
    }
}

fn walk_auth<'r>(a: AuthView<'r>, keys: &[&str]) -> Option<Cow<'r, Value>> {
    let Some((first, rest)) = keys.split_first() else {
        let mut m = a.record.clone();
        m.insert(
            "collectionId".into(),
            Value::String(a.collection.id.clone()),
        );
        m.insert(
            "collectionName".into(),
            Value::String(a.collection.name.clone()),
        );
        return Some(Cow::Owned(Value::Object(m)));
    };
    let synthetic = match *first {
        "collectionId" => Some(&a.collection.id),
        "collectionName" => Some(&a.collection.name),
        _ => None,
    };
    match synthetic {
        Some(s) => rest
            .is_empty()
            .then(|| Cow::Owned(Value::String(s.clone()))),
        None => walk(a.record.get(*first)?, rest).map(Cow::Borrowed),
    }
}

/// A found value as a bound parameter: null → none, a string that parses
/// as a number for a number field → that number.
pub(crate) fn static_bind(found: Option<&Value>, numeric: bool) -> Option<Bind> {
    match found {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match (numeric, s.parse::<f64>()) {
            (true, Ok(n)) => Some(Bind::Real(n)),
            _ => Some(Bind::Text(s.clone())),
        },
        Some(Value::Bool(b)) => Some(Bind::Bool(*b)),
        Some(Value::Number(n)) => Some(Bind::Real(n.as_f64().unwrap_or(0.0))),
        Some(other) => Some(Bind::Text(other.to_string())),
    }
}

/// Go's `toSlice`: null → [], an array → its items, anything else → [it].
pub(crate) fn to_slice(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

/// Go's `cast.ToString` of a request value ("" where it cannot).
pub(crate) fn to_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => Bind::Real(n.as_f64().unwrap_or(0.0)).to_text(),
        _ => String::new(),
    }
}

/// PocketBase's `list.ToUniqueStringSlice` for relation ids in a body.
pub(crate) fn to_unique_strings(v: Option<&Value>) -> Vec<String> {
    let raw: Vec<String> = match v {
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) if s.contains('[') => {
            serde_json::from_str::<Vec<String>>(s).unwrap_or_else(|_| vec![s.clone()])
        }
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|x| to_text(Some(x))).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for s in raw {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Walks `keys` into a JSON value (objects by key, arrays by index).
fn walk<'v>(mut cur: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    for k in keys {
        cur = match cur {
            Value::Object(m) => m.get(*k)?,
            Value::Array(a) => a.get(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn walk_map<'v>(m: &'v Map<String, Value>, keys: &[&str]) -> Option<&'v Value> {
    let (first, rest) = keys.split_first()?;
    walk(m.get(*first)?, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_strings() {
        let v = serde_json::json!(["a", "", "b", "a", 5]);
        assert_eq!(to_unique_strings(Some(&v)), vec!["a", "b", "5"]);
        let s = Value::String("[\"x\",\"y\"]".into());
        assert_eq!(to_unique_strings(Some(&s)), vec!["x", "y"]);
        let s = Value::String("[oops".into());
        assert_eq!(to_unique_strings(Some(&s)), vec!["[oops"]);
        assert!(to_unique_strings(Some(&Value::Null)).is_empty());
    }
}
