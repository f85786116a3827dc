//! PocketBase's application settings as a typed value: the groups, key
//! names and JSON shape of PocketBase's settings (defaults from
//! `default_settings.json`), plus keepd's `lockout` policy.
//!
//! A change (`PATCH /api/settings`) is merged into the current settings,
//! parsed into these types (a value of the wrong type anywhere is
//! PocketBase's "loading" error; unknown keys are dropped, as PocketBase
//! drops them; `null` is the type's zero value, as Go decodes it) and
//! validated as PocketBase validates it, once, before it is stored. Readers
//! then read fields. Pure: storing is `store::params`.

use crate::error::{ApiError, ApiResult, FieldErrors};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The settings. Every group defaults to its zero value when a stored or
/// submitted object leaves it out (PocketBase's defaults come from
/// [`Settings::defaults`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(rename = "superuserIPs")]
    pub superuser_ips: Vec<String>,
    pub smtp: Smtp,
    pub backups: Backups,
    pub s3: S3,
    pub meta: Meta,
    #[serde(rename = "rateLimits")]
    pub rate_limits: RateLimits,
    #[serde(rename = "trustedProxy")]
    pub trusted_proxy: TrustedProxy,
    pub batch: Batch,
    pub logs: Logs,
    /// keepd's account lockout policy (PocketBase has none).
    pub lockout: Lockout,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Smtp {
    pub enabled: bool,
    pub port: i64,
    pub host: String,
    pub username: String,
    /// Never shown in answers.
    pub password: String,
    /// `PLAIN` (also when empty) or `LOGIN`.
    #[serde(rename = "authMethod")]
    pub auth_method: String,
    /// Implicit TLS; otherwise STARTTLS when the server offers it.
    pub tls: bool,
    #[serde(rename = "localName")]
    pub local_name: String,
}

/// An S3 bucket (`s3` for file fields, `backups.s3` for backups).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct S3 {
    pub enabled: bool,
    pub bucket: String,
    pub region: String,
    pub endpoint: String,
    #[serde(rename = "accessKey")]
    pub access_key: String,
    /// Never shown in answers.
    pub secret: String,
    #[serde(rename = "forcePathStyle")]
    pub force_path_style: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backups {
    /// A cron expression (`ops::cron`, UTC); empty: no scheduled backups.
    pub cron: String,
    /// Scheduled backups kept (0: all).
    #[serde(rename = "cronMaxKeep")]
    pub cron_max_keep: i64,
    pub s3: S3,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    #[serde(rename = "accentColor")]
    pub accent_color: String,
    #[serde(rename = "appName")]
    pub app_name: String,
    #[serde(rename = "appURL")]
    pub app_url: String,
    #[serde(rename = "senderName")]
    pub sender_name: String,
    #[serde(rename = "senderAddress")]
    pub sender_address: String,
    #[serde(rename = "hideControls")]
    pub hide_controls: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    pub rules: Vec<RateLimitRule>,
    #[serde(rename = "excludedIPs")]
    pub excluded_ips: Vec<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitRule {
    /// A tag (`users:auth`, `*:create`), a path or a path prefix (ending
    /// with `/`), optionally after a method (`POST /api/`).
    pub label: String,
    /// "" (everyone), `@guest` or `@auth`.
    pub audience: String,
    /// Seconds per window.
    pub duration: i64,
    #[serde(rename = "maxRequests")]
    pub max_requests: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustedProxy {
    /// Headers naming the client (none: `X-Forwarded-For`), believed only
    /// from `trusted_proxies` of the configuration.
    pub headers: Vec<String>,
    #[serde(rename = "useLeftmostIP")]
    pub use_leftmost_ip: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Batch {
    pub enabled: bool,
    #[serde(rename = "maxRequests")]
    pub max_requests: i64,
    /// Seconds.
    pub timeout: i64,
    #[serde(rename = "maxBodySize")]
    pub max_body_size: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Logs {
    #[serde(rename = "maxDataSize")]
    pub max_data_size: i64,
    #[serde(rename = "maxDays")]
    pub max_days: i64,
    #[serde(rename = "minLevel")]
    pub min_level: i64,
    #[serde(rename = "logIP")]
    pub log_ip: bool,
    #[serde(rename = "logAuthId")]
    pub log_auth_id: bool,
}

/// keepd's lockout policy, in the shape of `auth::lockout::Policy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Lockout {
    #[serde(rename = "maxFailures")]
    pub max_failures: u64,
    #[serde(rename = "windowSeconds")]
    pub window_seconds: u64,
    #[serde(rename = "baseSeconds")]
    pub base_seconds: u64,
    #[serde(rename = "maxSeconds")]
    pub max_seconds: u64,
}

/// PocketBase's answer to settings that don't parse into its types.
fn not_loaded() -> ApiError {
    ApiError::bad("An error occurred while loading the submitted data.")
}

impl Settings {
    /// PocketBase's defaults (keepd's: rate limits on, with its rules), as
    /// JSON; the lockout policy is not among them (it defaults to the
    /// configuration's).
    fn defaults_json() -> Map<String, Value> {
        match serde_json::from_str(include_str!("default_settings.json")) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// PocketBase's defaults with `lockout` as given.
    pub fn defaults(lockout: Lockout) -> Settings {
        let mut s = serde_json::from_value::<Settings>(Value::Object(Self::defaults_json()))
            .unwrap_or_default();
        s.lockout = lockout;
        s
    }

    /// The settings from what is stored (None: nothing yet) over the
    /// defaults. A stored value that doesn't parse (written by hand or by an
    /// older keepd) is replaced by its default, loudly, and only that value;
    /// so is a lockout policy out of range (by `lockout`, the
    /// configuration's).
    pub fn load(stored: Option<&Value>, lockout: Lockout) -> Settings {
        let mut merged = Value::Object(Self::defaults_json());
        if let Some(s) = stored.filter(|s| s.is_object()) {
            merge(&mut merged, s);
        }
        strip_nulls(&mut merged);
        let lock = merged
            .get("lockout")
            .and_then(crate::auth::lockout::Policy::from_json);
        if let Some(m) = merged.as_object_mut() {
            m.remove("lockout");
            repair(m, &Self::defaults_json(), &mut Vec::new());
        }
        let mut s = serde_json::from_value::<Settings>(merged).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "stored settings are not valid: the defaults apply");
            Settings::defaults(lockout)
        });
        s.lockout = lock.map(Lockout::from).unwrap_or(lockout);
        s
    }

    /// The whole settings as JSON, secrets included (what is stored).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }

    /// The settings as answers show them: keys sorted, the SMTP password
    /// and the S3 secrets left out.
    pub fn to_api_json(&self) -> Value {
        let mut v = self.to_json();
        for path in [&["smtp"][..], &["s3"], &["backups", "s3"]] {
            let mut cur = Some(&mut v);
            for p in path {
                cur = cur.and_then(|c| c.get_mut(*p));
            }
            if let Some(o) = cur.and_then(Value::as_object_mut) {
                o.remove("password");
                o.remove("secret");
            }
        }
        v
    }

    /// These settings with `patch` (a `PATCH /api/settings` body) applied,
    /// parsed and validated as PocketBase does: groups that don't parse are
    /// its "loading" error; field errors of the changed groups (`s3`,
    /// `backups`, `batch`, `rateLimits`, keepd's `lockout`) come in one
    /// answer in its shape.
    pub fn patched(&self, patch: &Map<String, Value>) -> ApiResult<Settings> {
        let mut merged = self.to_json();
        merge(&mut merged, &Value::Object(patch.clone()));
        // keepd's lockout is checked as a whole (its own error).
        let lockout_json = match merged.as_object_mut() {
            Some(m) => m.remove("lockout").unwrap_or(Value::Null),
            None => return Err(not_loaded()),
        };
        strip_nulls(&mut merged);
        let mut next: Settings = serde_json::from_value(merged).map_err(|_| not_loaded())?;
        let mut errors = FieldErrors::new();
        let mut nested = |group: &str, e: FieldErrors| {
            if !e.is_empty() {
                errors.add_nested(group, e.into_value());
            }
        };
        if patch.contains_key("s3") {
            nested("s3", check_s3(&next.s3));
        }
        if let Some(b) = patch.get("backups") {
            nested(
                "backups",
                check_backups(&next.backups, b.get("s3").is_some()),
            );
        }
        if patch.contains_key("batch") {
            nested("batch", check_batch(&next.batch));
        }
        if patch.contains_key("rateLimits") {
            nested("rateLimits", check_rate_limits(&next.rate_limits));
        }
        if patch.contains_key("superuserIPs") {
            nested("superuserIPs", check_ip_list(&next.superuser_ips));
        }
        match crate::auth::lockout::Policy::from_json(&lockout_json) {
            Some(p) => next.lockout = Lockout::from(p),
            None => errors.add(
                "lockout",
                "validation_invalid_lockout",
                "maxFailures, windowSeconds, baseSeconds and maxSeconds must be whole numbers; windows and delays between 1 and 86400 seconds, maxSeconds at least baseSeconds.",
            ),
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(
                "An error occurred while saving the new settings.",
                errors,
            ));
        }
        Ok(next)
    }
}

/// `superuserIPs` as PocketBase validates it: each entry required and an
/// IP or a CIDR subnet, as written (no spaces).
fn check_ip_list(list: &[String]) -> FieldErrors {
    let mut e = FieldErrors::new();
    for (i, s) in list.iter().enumerate() {
        if s.is_empty() {
            e.add(&i.to_string(), "validation_required", "Cannot be blank.");
        } else if s.trim() != s || crate::auth::limiter::parse_net(s).is_none() {
            // PocketBase's code, spelling included.
            e.add(
                &i.to_string(),
                "validation_invlaid_ip_or_subnet",
                "Invalid IP or CIDR subnet.",
            );
        }
    }
    e
}

/// Replaces each member of `m` (at `path` in the settings) that doesn't
/// parse with its default (or drops it): objects are repaired member by
/// member, so one bad value costs only itself.
fn repair(m: &mut Map<String, Value>, defaults: &Map<String, Value>, path: &mut Vec<String>) {
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        path.push(k.clone());
        let parses = |v: &Value| {
            let probe = path.iter().rev().fold(v.clone(), |inner, key| {
                let mut o = Map::new();
                o.insert(key.clone(), inner);
                Value::Object(o)
            });
            serde_json::from_value::<Settings>(probe)
        };
        if let Some(v) = m.get_mut(&k) {
            if let Err(e) = parses(v) {
                match (
                    v.as_object_mut(),
                    defaults.get(&k).and_then(Value::as_object),
                ) {
                    (Some(inner), Some(d)) => repair(inner, d, path),
                    _ => {
                        tracing::warn!(setting = %path.join("."), error = %e, "stored setting is not valid: its default applies");
                        match defaults.get(&k) {
                            Some(d) => *v = d.clone(),
                            None => {
                                m.remove(&k);
                            }
                        }
                    }
                }
            }
        }
        path.pop();
    }
}

/// Deep-merges objects; anything else (arrays included) replaces.
fn merge(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && v.is_object() => merge(dv, v),
                    _ => {
                        d.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (d, s) => *d = s.clone(),
    }
}

/// Drops `null` members of objects (at any depth): the member then takes
/// its type's zero value, as Go decodes `null`.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// ozzo-validation's `Min(n)` failure (zero values pass `Min`).
fn below_min(e: &mut FieldErrors, field: &str, n: i64) {
    e.add_params(
        field,
        "validation_min_greater_equal_than_required",
        format!("Must be no less than {n}."),
        json!({"threshold": n}),
    );
}

fn required(e: &mut FieldErrors, field: &str) {
    e.add(field, "validation_required", "Cannot be blank.");
}

/// An S3 bucket: every connection value required while enabled, the
/// endpoint a URL (`files::s3::validate`).
fn check_s3(s3: &S3) -> FieldErrors {
    let mut e = FieldErrors::new();
    for (k, code, msg) in crate::files::s3::validate(s3) {
        e.add(k, code, msg);
    }
    e
}

/// `backups`: `cron` empty or a valid expression (`ops::cron`),
/// `cronMaxKeep` at least 1 while `cron` is set, and its `s3` when changed.
fn check_backups(b: &Backups, s3_changed: bool) -> FieldErrors {
    let mut e = FieldErrors::new();
    if !b.cron.is_empty() {
        if let Err(m) = crate::ops::cron::Schedule::parse(&b.cron) {
            e.add("cron", "validation_invalid_cron", m);
        }
    }
    if !b.cron.is_empty() && b.cron_max_keep == 0 {
        required(&mut e, "cronMaxKeep");
    } else if b.cron_max_keep < 0 {
        below_min(&mut e, "cronMaxKeep", 1);
    }
    if s3_changed {
        let s3 = check_s3(&b.s3);
        if !s3.is_empty() {
            e.add_nested("s3", s3.into_value());
        }
    }
    e
}

/// `batch`: none negative; `maxRequests` and `timeout` required while
/// enabled.
fn check_batch(b: &Batch) -> FieldErrors {
    let mut e = FieldErrors::new();
    for (k, n, needed) in [
        ("maxRequests", b.max_requests, true),
        ("timeout", b.timeout, true),
        ("maxBodySize", b.max_body_size, false),
    ] {
        if b.enabled && needed && n == 0 {
            required(&mut e, k);
        } else if n < 0 {
            below_min(&mut e, k, 0);
        }
    }
    e
}

/// PocketBase's rule labels: a tag, `collection:action`, `*:action`, a path
/// (prefix), or a method and a path.
fn label_ok(label: &str) -> bool {
    static RE: std::sync::OnceLock<Option<regex_lite::Regex>> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex_lite::Regex::new(r"^(\w+ /[\w/-]*|/[\w/-]*|\w+:\w+|\*:\w+|\w+)$").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(label))
}

/// `rateLimits`, as PocketBase validates it: every excluded address an IP
/// or a CIDR subnet; rules required while enabled; each rule's label,
/// audience, window and count; then no two rules for the same label and
/// audience (one key a prefix of the other).
fn check_rate_limits(r: &RateLimits) -> FieldErrors {
    let mut e = FieldErrors::new();
    let mut ips = FieldErrors::new();
    for (i, ip) in r.excluded_ips.iter().enumerate() {
        if ip.is_empty() {
            required(&mut ips, &i.to_string());
        } else if crate::auth::limiter::parse_net(ip).is_none() || ip.trim() != ip {
            ips.add(
                &i.to_string(),
                "validation_invlaid_ip_or_subnet",
                "Invalid IP or CIDR subnet.",
            );
        }
    }
    if !ips.is_empty() {
        e.add_nested("excludedIPs", ips.into_value());
    }
    if r.enabled && r.rules.is_empty() {
        required(&mut e, "rules");
        return e;
    }
    let mut rules = FieldErrors::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let mut re = FieldErrors::new();
        if rule.label.is_empty() {
            required(&mut re, "label");
        } else if !label_ok(&rule.label) {
            re.add(
                "label",
                "validation_match_invalid",
                "Must be in a valid format.",
            );
        }
        for (k, n) in [
            ("maxRequests", rule.max_requests),
            ("duration", rule.duration),
        ] {
            if n == 0 {
                required(&mut re, k);
            } else if n < 1 {
                below_min(&mut re, k, 1);
            }
        }
        if !matches!(rule.audience.as_str(), "" | "@guest" | "@auth") {
            re.add(
                "audience",
                "validation_in_invalid",
                "Must be a valid value.",
            );
        }
        if !re.is_empty() {
            rules.add_nested(&i.to_string(), re.into_value());
        }
    }
    if rules.is_empty() {
        let mut seen: Vec<String> = Vec::with_capacity(r.rules.len());
        for (i, rule) in r.rules.iter().enumerate() {
            let key = format!("{}@@{}", rule.label, rule.audience);
            if seen
                .iter()
                .any(|k| k.starts_with(&key) || key.starts_with(k.as_str()))
            {
                let mut re = FieldErrors::new();
                re.add_params(
                    "label",
                    "validation_conflicting_rate_limit_rule",
                    format!(
                        "Rate limit rule configuration with label {} already exists or conflicts with another rule.",
                        rule.label
                    ),
                    json!({"label": rule.label}),
                );
                rules.add_nested(&i.to_string(), re.into_value());
                break;
            }
            seen.push(key);
        }
    }
    if !rules.is_empty() {
        e.add_nested("rules", rules.into_value());
    }
    e
}

/// Compatibility for readers not yet moved to fields (`api::batch` reads
/// `settings["batch"]`): the settings as JSON, secrets included.
#[derive(Debug)]
pub struct Current {
    settings: Settings,
    json: Value,
}

impl Current {
    pub fn new(settings: Settings) -> Current {
        let json = settings.to_json();
        Current { settings, json }
    }
}

impl std::ops::Deref for Current {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl std::ops::Index<&str> for Current {
    type Output = Value;
    fn index(&self, group: &str) -> &Value {
        &self.json[group]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout() -> Lockout {
        Lockout {
            max_failures: 10,
            window_seconds: 900,
            base_seconds: 60,
            max_seconds: 900,
        }
    }

    fn patch(s: &Settings, p: Value) -> ApiResult<Settings> {
        s.patched(p.as_object().expect("object"))
    }

    fn data(e: ApiError) -> Value {
        match e {
            ApiError::BadRequest { message, data } => {
                json!({"message": message, "data": data.into_value()})
            }
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_pocketbase_shape_and_answers_hide_secrets() {
        let s = Settings::defaults(lockout());
        let mut want: Value =
            serde_json::from_str(include_str!("default_settings.json")).expect("json");
        want["lockout"] =
            json!({"maxFailures": 10, "windowSeconds": 900, "baseSeconds": 60, "maxSeconds": 900});
        assert_eq!(s.to_api_json(), want, "every default key, no secret keys");
        let s = patch(&s, json!({"smtp": {"password": "pw"}, "s3": {"secret": "sec"}, "backups": {"s3": {"secret": "b"}}}))
            .expect("patch");
        assert_eq!(s.smtp.password, "pw");
        assert_eq!(s.backups.s3.secret, "b");
        let shown = s.to_api_json().to_string();
        assert!(
            !shown.contains("pw") && !shown.contains("sec") && !shown.contains("\"b\""),
            "{shown}"
        );
        assert!(
            s.to_json().to_string().contains("\"sec\""),
            "stored with the secret"
        );
    }

    #[test]
    fn patches_parse_as_pocketbase_binds_them() {
        let s = Settings::defaults(lockout());
        // Unknown keys are dropped; null is the zero value.
        let n = patch(
            &s,
            json!({"foo": 1, "smtp": {"bar": 2, "port": null}, "batch": {"timeout": null}}),
        )
        .expect("patch");
        assert!(n.to_json().get("foo").is_none());
        assert!(n.to_json()["smtp"].get("bar").is_none());
        assert_eq!(
            (n.smtp.port, n.smtp.host.as_str(), n.batch.timeout),
            (0, "smtp.example.com", 0)
        );
        let n = patch(&s, json!({"smtp": null})).expect("patch");
        assert_eq!(n.smtp, Smtp::default());
        // Arrays are replaced, their items start from zero values.
        let n = patch(
            &s,
            json!({"rateLimits": {"rules": [{"label": "a", "maxRequests": 1, "duration": 2}]}}),
        )
        .expect("patch");
        assert_eq!(
            n.rate_limits.rules,
            vec![RateLimitRule {
                label: "a".into(),
                audience: String::new(),
                duration: 2,
                max_requests: 1
            }]
        );
        assert!(n.rate_limits.enabled, "untouched keys stay");
        // Wrong types anywhere: the loading error.
        for bad in [
            json!({"smtp": {"port": "x"}}),
            json!({"smtp": {"port": 1.5}}),
            json!({"meta": "x"}),
            json!({"meta": {"appName": 5}}),
            json!({"superuserIPs": "x"}),
            json!({"batch": {"maxRequests": true}}),
            json!({"backups": {"cron": 5}}),
        ] {
            let e = data(patch(&s, bad.clone()).expect_err("refused"));
            assert_eq!(
                e,
                json!({"message": "An error occurred while loading the submitted data.", "data": {}}),
                "{bad}"
            );
        }
    }

    #[test]
    fn validation_errors_in_pocketbase_shape() {
        let s = Settings::defaults(lockout());
        let e = data(
            patch(
                &s,
                json!({
                    "batch": {"enabled": true, "maxRequests": 0, "timeout": -1},
                    "backups": {"cron": "* * *", "cronMaxKeep": 0},
                    "lockout": {"maxSeconds": 1},
                }),
            )
            .expect_err("invalid"),
        );
        assert_eq!(
            e["message"],
            "An error occurred while saving the new settings."
        );
        assert_eq!(
            e["data"]["batch"]["maxRequests"]["code"],
            "validation_required"
        );
        assert_eq!(
            e["data"]["batch"]["timeout"]["params"],
            json!({"threshold": 0})
        );
        assert_eq!(
            e["data"]["backups"]["cron"]["code"],
            "validation_invalid_cron"
        );
        assert_eq!(
            e["data"]["backups"]["cronMaxKeep"]["code"],
            "validation_required"
        );
        assert_eq!(e["data"]["lockout"]["code"], "validation_invalid_lockout");
        // Rate limits (answers taken from PocketBase 0.40).
        let e = data(
            patch(
                &s,
                json!({"rateLimits": {"excludedIPs": ["", "10.0.0.0/8", "1.2.3.4", "x"], "rules": [
                    {"label": "", "maxRequests": -1, "duration": 0, "audience": "x"},
                    {"label": "a b c", "maxRequests": 1, "duration": 1},
                    {"label": "a b c", "maxRequests": 1, "duration": 1},
                ]}}),
            )
            .expect_err("invalid"),
        );
        assert_eq!(
            e["data"]["rateLimits"],
            json!({
                "excludedIPs": {
                    "0": {"code": "validation_required", "message": "Cannot be blank."},
                    "3": {"code": "validation_invlaid_ip_or_subnet", "message": "Invalid IP or CIDR subnet."},
                },
                "rules": {
                    "0": {
                        "audience": {"code": "validation_in_invalid", "message": "Must be a valid value."},
                        "duration": {"code": "validation_required", "message": "Cannot be blank."},
                        "label": {"code": "validation_required", "message": "Cannot be blank."},
                        "maxRequests": {"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 1.", "params": {"threshold": 1}},
                    },
                    "1": {"label": {"code": "validation_match_invalid", "message": "Must be in a valid format."}},
                    "2": {"label": {"code": "validation_match_invalid", "message": "Must be in a valid format."}},
                },
            })
        );
        let e = data(
            patch(
                &s,
                json!({"rateLimits": {"rules": [
                    {"label": "users:auth", "maxRequests": 1, "duration": 1},
                    {"label": "users:auth", "audience": "@guest", "maxRequests": 1, "duration": 1},
                    {"label": "POST /api/x", "maxRequests": 1, "duration": 1},
                ]}}),
            )
            .expect_err("conflict"),
        );
        assert_eq!(
            e["data"]["rateLimits"]["rules"],
            json!({"1": {"label": {
                "code": "validation_conflicting_rate_limit_rule",
                "message": "Rate limit rule configuration with label users:auth already exists or conflicts with another rule.",
                "params": {"label": "users:auth"},
            }}})
        );
        let e = data(
            patch(&s, json!({"rateLimits": {"enabled": true, "rules": []}})).expect_err("required"),
        );
        assert_eq!(
            e["data"]["rateLimits"]["rules"]["code"],
            "validation_required"
        );
        for ok in [
            "abc",
            "ab",
            "/a",
            "/api/",
            "*:create",
            "POST /api/collections/",
            "users:create",
        ] {
            assert!(label_ok(ok), "{ok}");
        }
    }

    #[test]
    fn loading_keeps_good_groups_and_replaces_bad_ones() {
        let stored = json!({
            "meta": {"appName": "Mine", "extra": 1},
            "smtp": "garbage",
            "batch": {"enabled": true},
            "unknown": {"x": 1},
            "lockout": {"maxFailures": 3, "windowSeconds": 60, "baseSeconds": 10, "maxSeconds": 20},
        });
        let s = Settings::load(Some(&stored), lockout());
        assert_eq!(s.meta.app_name, "Mine");
        assert_eq!(
            s.meta.sender_name, "Support",
            "defaults under the stored values"
        );
        assert_eq!(s.smtp, Settings::defaults(lockout()).smtp);
        assert!(s.batch.enabled);
        assert_eq!(s.batch.max_requests, 50);
        assert_eq!(s.lockout.max_failures, 3);
        // One bad value costs only itself.
        let stored = json!({"smtp": {"port": "x", "password": "pw"}, "backups": {"s3": {"enabled": 1, "secret": "b"}}});
        let s = Settings::load(Some(&stored), lockout());
        assert_eq!((s.smtp.port, s.smtp.password.as_str()), (587, "pw"));
        assert_eq!(
            (s.backups.s3.enabled, s.backups.s3.secret.as_str()),
            (false, "b")
        );
        let s = Settings::load(Some(&json!({"lockout": {"maxFailures": "x"}})), lockout());
        assert_eq!(s.lockout, lockout(), "the configuration's policy");
        assert_eq!(
            Settings::load(None, lockout()),
            Settings::defaults(lockout())
        );
    }

    #[test]
    fn compatible_json_view() {
        let c = Current::new(Settings::defaults(lockout()));
        assert_eq!(c["batch"]["maxRequests"], 50);
        assert!(!c.batch.enabled);
    }
}
