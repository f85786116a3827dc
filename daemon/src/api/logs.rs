//! PocketBase's logs API (superusers), served from memory: the recent
//! requests are kept in a bounded ring (`request_log_entries`, the oldest
//! overwritten), never written to storage, so a request costs no disk
//! write and a read of the logs none either. Lost at restart.
//!
//! - `GET /api/logs` — PocketBase's list (`page`, `perPage`, `filter`,
//!   `sort`, `skipTotal`; oldest first unless sorted, as PocketBase; `@rowid`
//!   sorts in the order logged); each entry as PocketBase's request log
//!   `{id, created, data: {type, method, url, status, execTime, remoteIP,
//!   userIP, auth, userAgent, referer}, message, level}`.
//! - `GET /api/logs/stats` — requests per hour `[{date, total}]`
//!   (`filter` too).
//! - `GET /api/logs/{id}`.
//! - `DELETE /api/logs` — empties the ring (204; audited as `logs.clear`).
//!
//! The filter is PocketBase's language evaluated on the entries: fields
//! `id`, `created`, `message`, `level` and `data.*`, the comparison
//! operators (`?`-forms as their plain ones), `&&`, `||` and parentheses;
//! no functions or macros (COMPATIBILITY.md).
//!
//! The URL is kept without secrets: the values of query parameters whose
//! name looks like a credential (`token`, `secret`, `password`, `key`,
//! `code`, `signature`, `auth`) are replaced by `***`; no header but the
//! user agent and referer is kept. An entry keeps at most 512 bytes of the
//! URL and 256 of the user agent and of the referer.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult};
use crate::filter::{Expr, Op, Term};
use crate::http::{Answered, Req, Resp};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

const MAX_PER_PAGE: usize = 1000;
/// Bytes kept of a URL, and of a user agent or referer: an entry's size is
/// bounded whatever a client sends (the ring holds a bounded number).
const MAX_URL: usize = 512;
const MAX_HEADER: usize = 256;

/// `s` cut to at most `max` bytes (on a character boundary).
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

/// One answered request.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    /// Unix milliseconds.
    pub created: i64,
    pub method: crate::http::Method,
    pub url: String,
    pub status: u16,
    /// Milliseconds.
    pub exec_ms: f64,
    pub remote_ip: IpAddr,
    pub user_ip: IpAddr,
    /// The caller's collection name ("" for a guest).
    pub auth: String,
    pub user_agent: String,
    pub referer: String,
}

impl Entry {
    fn created_text(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.created)
            .map(crate::util::format_time)
            .unwrap_or_default()
    }

    /// PocketBase's log record.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "created": self.created_text(),
            "data": {
                "type": "request",
                "method": self.method.as_str(),
                "url": self.url,
                "status": self.status,
                "execTime": self.exec_ms,
                "remoteIP": self.remote_ip.to_string(),
                "userIP": self.user_ip.to_string(),
                "auth": self.auth,
                "userAgent": self.user_agent,
                "referer": self.referer,
            },
            "message": format!("{} {}", self.method.as_str(), self.url),
            "level": if self.status >= 400 { 8 } else { 0 },
        })
    }
}

/// The ring of recent requests: at most `cap` entries, the oldest
/// dropped; 0 keeps none.
pub struct RequestLog {
    cap: usize,
    ring: Mutex<VecDeque<Entry>>,
    /// Entry ids: a random 64-bit start, then one more per entry — unique
    /// within the ring, and no random draw per request.
    next_id: std::sync::atomic::AtomicU64,
}

/// 15 characters of `[a-z0-9]` (PocketBase's id shape) from a number.
fn id_from(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 15];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RequestLog {
    pub fn new(cap: usize) -> RequestLog {
        RequestLog {
            cap,
            ring: Mutex::new(VecDeque::with_capacity(cap.min(1024))),
            next_id: std::sync::atomic::AtomicU64::new(rand::random::<u64>() >> 1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        match self.ring.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn push(&self, e: Entry) {
        if self.cap == 0 {
            return;
        }
        let mut ring = self.lock();
        while ring.len() >= self.cap {
            ring.pop_front();
        }
        ring.push_back(e);
    }

    /// Drops every entry; the number dropped.
    pub fn clear(&self) -> usize {
        let mut ring = self.lock();
        let n = ring.len();
        ring.clear();
        n
    }

    /// The entries, oldest first.
    pub fn snapshot(&self) -> Vec<Entry> {
        self.lock().iter().cloned().collect()
    }

    pub fn record(&self, done: &Answered<'_>) {
        if self.cap == 0 {
            return;
        }
        let text = |v: Option<&crate::http::HeaderValue>| {
            v.map(|v| {
                cut(
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    MAX_HEADER,
                )
            })
            .unwrap_or_default()
        };
        let auth = done
            .identity
            .auth()
            .map(|a| a.collection.name.clone())
            .unwrap_or_default();
        self.push(Entry {
            id: id_from(
                self.next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
            created: chrono::Utc::now().timestamp_millis(),
            method: done.method.clone(),
            url: cut(redact(done.uri), MAX_URL),
            status: done.status,
            exec_ms: done.elapsed.as_secs_f64() * 1000.0,
            remote_ip: done.peer,
            user_ip: done.client_ip,
            auth,
            user_agent: text(done.user_agent),
            referer: redact_text(&text(done.referer)),
        });
    }
}

/// Whether a query parameter's name looks like it carries a credential.
fn secret_name(name: &str) -> bool {
    let n = name.as_bytes();
    let has = |s: &str| {
        n.windows(s.len())
            .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
    };
    [
        "token",
        "secret",
        "password",
        "key",
        "code",
        "signature",
        "sig",
        "auth",
        "state",
    ]
    .iter()
    .any(|s| has(s))
}

/// The path and query of a request, credential-like query values replaced.
pub fn redact(uri: &crate::http::Uri) -> String {
    let path = uri.path();
    match uri.query() {
        None => path.to_string(),
        // Most queries name no credential: copied as they are.
        Some(q) if !q.split('&').any(secret_pair) => format!("{path}?{q}"),
        Some(q) => format!("{path}?{}", redact_query(q)),
    }
}

/// A `name=value` pair whose value is to be hidden.
fn secret_pair(pair: &str) -> bool {
    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
    !v.is_empty() && secret_name(&percent_encoding::percent_decode_str(k).decode_utf8_lossy())
}

fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
            if !v.is_empty() && secret_name(&name) {
                format!("{k}=***")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A referer (a whole URL) with its query redacted.
fn redact_text(url: &str) -> String {
    match url.split_once('?') {
        None => url.to_string(),
        Some((base, q)) => format!("{base}?{}", redact_query(q)),
    }
}

fn bad_filter() -> ApiError {
    ApiError::bad("Something went wrong while processing your request.")
}

/// The value at `path` (`data.status`) in a log record.
fn lookup<'a>(rec: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = rec;
    for seg in path.split('.') {
        v = v.get(seg)?;
    }
    Some(v)
}

fn operand(rec: &Value, t: &Term) -> Result<Value, ApiError> {
    Ok(match t {
        Term::Text(s) => Value::String(s.clone()),
        Term::Number(n) => n
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(bad_filter)?,
        Term::Ident { name, .. } => match name.as_str() {
            "null" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            n if n.starts_with('@') => return Err(bad_filter()),
            n => {
                let root = n.split('.').next().unwrap_or("");
                if !matches!(root, "id" | "created" | "message" | "level" | "data") {
                    return Err(bad_filter());
                }
                lookup(rec, n).cloned().unwrap_or(Value::Null)
            }
        },
        Term::Func { .. } => return Err(bad_filter()),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// SQL LIKE with `%` and `_`, case-insensitive (ASCII); without a
/// wildcard the pattern matches anywhere, as PocketBase's `~`.
fn like(hay: &str, pat: &str) -> bool {
    let pat = if pat.contains('%') {
        pat.to_string()
    } else {
        format!("%{pat}%")
    };
    fn m(h: &[u8], p: &[u8]) -> bool {
        match p.split_first() {
            None => h.is_empty(),
            Some((b'%', rest)) => (0..=h.len()).any(|i| m(&h[i..], rest)),
            Some((b'_', rest)) => !h.is_empty() && m(&h[1..], rest),
            Some((c, rest)) => !h.is_empty() && h[0].eq_ignore_ascii_case(c) && m(&h[1..], rest),
        }
    }
    m(
        hay.to_ascii_lowercase().as_bytes(),
        pat.to_ascii_lowercase().as_bytes(),
    )
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => text(a).cmp(&text(b)),
    }
}

fn eval(rec: &Value, e: &Expr) -> Result<bool, ApiError> {
    match e {
        Expr::And(xs) => {
            for x in xs {
                if !eval(rec, x)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Expr::Or(xs) => {
            for x in xs {
                if eval(rec, x)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Expr::Cmp(c) => {
            let (l, r) = (operand(rec, &c.left)?, operand(rec, &c.right)?);
            use std::cmp::Ordering::*;
            Ok(match c.op.base() {
                Op::Eq => compare(&l, &r) == Equal,
                Op::Neq => compare(&l, &r) != Equal,
                Op::Like => like(&text(&l), &text(&r)),
                Op::NotLike => !like(&text(&l), &text(&r)),
                Op::Lt => compare(&l, &r) == Less,
                Op::Lte => compare(&l, &r) != Greater,
                Op::Gt => compare(&l, &r) == Greater,
                Op::Gte => compare(&l, &r) != Less,
                _ => false,
            })
        }
    }
}

/// The log records matching the request's `filter`, oldest first (as
/// PocketBase lists them without a sort), each with its place in the ring
/// (PocketBase's `@rowid`).
fn matching(app: &App, req: &Req) -> ApiResult<Vec<(usize, Value)>> {
    let expr = match req.q("filter").map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => Some(crate::filter::parse(f).map_err(|_| bad_filter())?),
    };
    let mut out = Vec::new();
    for (i, e) in app.request_log.snapshot().into_iter().enumerate() {
        let rec = e.to_json();
        if let Some(x) = &expr {
            if !eval(&rec, x)? {
                continue;
            }
        }
        out.push((i, rec));
    }
    Ok(out)
}

/// PocketBase's `sort`: comma-separated fields, `-` for descending;
/// `@rowid` is the order the requests were logged in.
fn sort(items: &mut [(usize, Value)], spec: &str) -> ApiResult<()> {
    let mut keys: Vec<(String, bool)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (desc, name) = match part.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let root = name.split('.').next().unwrap_or("");
        let known = matches!(
            root,
            "id" | "created" | "message" | "level" | "data" | "@rowid"
        );
        if !known || keys.len() >= 8 {
            return Err(bad_filter());
        }
        keys.push((name.to_string(), desc));
    }
    items.sort_by(|(ra, a), (rb, b)| {
        for (k, desc) in &keys {
            let null = Value::Null;
            let o = if k == "@rowid" {
                ra.cmp(rb)
            } else {
                compare(lookup(a, k).unwrap_or(&null), lookup(b, k).unwrap_or(&null))
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

fn num(req: &Req, k: &str, default: usize) -> ApiResult<usize> {
    match req.q(k) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .map(|n| n.max(0) as usize)
            .map_err(|_| bad_filter()),
    }
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let page = num(&req, "page", 1)?.max(1);
    let per_page = match num(&req, "perPage", 30)? {
        0 => 30,
        n => n.min(MAX_PER_PAGE),
    };
    let mut items = matching(&app, &req)?;
    if let Some(s) = req.q("sort").filter(|s| !s.trim().is_empty()) {
        sort(&mut items, s)?;
    }
    let skip_total = matches!(
        req.q("skipTotal"),
        Some("1" | "true" | "t" | "T" | "TRUE" | "True")
    );
    let total = items.len();
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|(_, v)| v)
        .collect();
    Ok(Resp::ok(&json!({
        "items": page_items,
        "page": page,
        "perPage": per_page,
        "totalItems": if skip_total { -1 } else { total as i64 },
        "totalPages": if skip_total { -1 } else { total.div_ceil(per_page) as i64 },
    })))
}

pub async fn stats(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let mut hours: Map<String, Value> = Map::new();
    for (_, rec) in matching(&app, &req)? {
        let created = rec["created"].as_str().unwrap_or_default();
        // "2026-12-06 15:22:03.109Z" → "2026-12-06 15:00:00.000Z"
        let Some(hour) = created.get(..13) else {
            continue;
        };
        let key = format!("{hour}:00:00.000Z");
        let n = hours.get(&key).and_then(Value::as_u64).unwrap_or(0);
        hours.insert(key, json!(n + 1));
    }
    let mut out: Vec<(String, Value)> = hours.into_iter().collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let out: Vec<Value> = out
        .into_iter()
        .map(|(date, total)| json!({"date": date, "total": total}))
        .collect();
    Ok(Resp::ok(&Value::Array(out)))
}

/// `DELETE /api/logs`: empties the request log (the request itself is
/// logged after its answer, so it is the next entry).
pub async fn clear(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let dropped = app.request_log.clear();
    app.audit(crate::store::audit::Entry {
        action: "logs.clear",
        actor: super::auth::actor(&req),
        ip: req.client_ip.to_string(),
        target: "logs".into(),
        diff: json!({"entries": dropped}),
    })
    .await;
    Ok(Resp::empty(204))
}

pub async fn view(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let id = req.param("id");
    app.request_log
        .snapshot()
        .iter()
        .find(|e| e.id == id)
        .map(|e| Resp::ok(&e.to_json()))
        .ok_or_else(ApiError::not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let u: crate::http::Uri =
            "/api/files/c/r/f.png?token=abc.def&thumb=10x10&X-Api-Key=k&code=1"
                .parse()
                .unwrap();
        assert_eq!(
            redact(&u),
            "/api/files/c/r/f.png?token=***&thumb=10x10&X-Api-Key=***&code=***"
        );
        let u: crate::http::Uri = "/api/health".parse().unwrap();
        assert_eq!(redact(&u), "/api/health");
    }

    #[test]
    fn like_as_sql() {
        assert!(like("/api/health", "health"));
        assert!(like("/API/health", "/api/%"));
        assert!(!like("/api/health", "/x%"));
    }

    #[test]
    fn ring_keeps_the_newest() {
        let log = RequestLog::new(2);
        for i in 0..5u16 {
            log.push(Entry {
                id: format!("{i}"),
                created: 0,
                method: crate::http::Method::GET,
                url: String::new(),
                status: i,
                exec_ms: 0.0,
                remote_ip: IpAddr::from([127, 0, 0, 1]),
                user_ip: IpAddr::from([127, 0, 0, 1]),
                auth: String::new(),
                user_agent: String::new(),
                referer: String::new(),
            });
        }
        let ids: Vec<String> = log.snapshot().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["3", "4"]);
        assert_eq!(log.clear(), 2);
        assert!(log.snapshot().is_empty());
    }
}
