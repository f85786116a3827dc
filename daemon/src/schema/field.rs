//! Field definitions: PocketBase's field types with their options.
//!
//! The JSON shape of a field is PocketBase's (`{"id","name","type",...options}`);
//! `Field` parses it once into a typed `FieldKind` so that validation, the
//! filter compiler and the store never look at option strings again.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Field {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub presentable: bool,
    #[serde(flatten)]
    pub kind: FieldKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FieldKind {
    Text(TextOpts),
    Editor(EditorOpts),
    Number(NumberOpts),
    Bool(BasicOpts),
    Email(DomainOpts),
    Url(DomainOpts),
    Date(DateOpts),
    Autodate(AutodateOpts),
    Select(SelectOpts),
    Json(JsonOpts),
    Relation(RelationOpts),
    File(FileOpts),
    Password(PasswordOpts),
    GeoPoint(BasicOpts),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BasicOpts {
    pub help: String,
    pub required: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TextOpts {
    pub help: String,
    pub required: bool,
    pub min: i64,
    pub max: i64,
    pub pattern: String,
    pub autogenerate_pattern: String,
    pub primary_key: bool,
    /// `pattern`, compiled once per schema snapshot.
    #[serde(skip)]
    pub compiled: CompiledPattern,
}

impl TextOpts {
    /// Whether `s` matches `pattern` (a pattern that doesn't compile
    /// matches nothing).
    pub fn pattern_matches(&self, s: &str) -> bool {
        self.compiled
            .0
            .get_or_init(|| regex_lite::Regex::new(&self.pattern).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(s))
    }
}

/// A text field's compiled `pattern`, made on first use and kept with the
/// schema snapshot (a clone starts empty: clones are made to be changed).
#[derive(Default)]
pub struct CompiledPattern(std::sync::OnceLock<Option<regex_lite::Regex>>);

impl Clone for CompiledPattern {
    fn clone(&self) -> Self {
        CompiledPattern::default()
    }
}

impl std::fmt::Debug for CompiledPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompiledPattern")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EditorOpts {
    pub help: String,
    pub required: bool,
    pub max_size: i64,
    #[serde(rename = "convertURLs")]
    pub convert_urls: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NumberOpts {
    pub help: String,
    pub required: bool,
    #[serde(serialize_with = "go_float")]
    pub min: Option<f64>,
    #[serde(serialize_with = "go_float")]
    pub max: Option<f64>,
    pub only_int: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DomainOpts {
    pub help: String,
    pub required: bool,
    pub except_domains: Vec<String>,
    pub only_domains: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DateOpts {
    pub help: String,
    pub required: bool,
    pub min: String,
    pub max: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AutodateOpts {
    pub on_create: bool,
    pub on_update: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SelectOpts {
    pub help: String,
    pub required: bool,
    pub values: Vec<String>,
    pub max_select: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JsonOpts {
    pub help: String,
    pub required: bool,
    pub max_size: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RelationOpts {
    pub help: String,
    pub required: bool,
    pub collection_id: String,
    pub cascade_delete: bool,
    pub min_select: i64,
    pub max_select: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FileOpts {
    pub help: String,
    pub required: bool,
    pub max_size: i64,
    pub max_select: i64,
    pub mime_types: Vec<String>,
    pub thumbs: Vec<String>,
    pub protected: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordOpts {
    pub help: String,
    pub required: bool,
    pub pattern: String,
    pub min: i64,
    pub max: i64,
    pub cost: i64,
}

/// Writes a float as Go does: integral values without a fraction.
fn go_float<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(f) => crate::schema::record::number_value(*f).serialize(s),
    }
}

/// The field type names PocketBase knows.
pub const FIELD_TYPES: &[&str] = &[
    "text", "editor", "number", "bool", "email", "url", "date", "autodate", "select", "json",
    "relation", "file", "password", "geoPoint",
];

/// How a field's value is stored and compared: drives SQL column types,
/// filter semantics and JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueShape {
    Text,
    Number,
    Bool,
    /// A JSON document stored as text.
    Json,
    /// A JSON array of strings stored as text (multi select/relation/file).
    MultiText,
}

impl Field {
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            FieldKind::Text(_) => "text",
            FieldKind::Editor(_) => "editor",
            FieldKind::Number(_) => "number",
            FieldKind::Bool(_) => "bool",
            FieldKind::Email(_) => "email",
            FieldKind::Url(_) => "url",
            FieldKind::Date(_) => "date",
            FieldKind::Autodate(_) => "autodate",
            FieldKind::Select(_) => "select",
            FieldKind::Json(_) => "json",
            FieldKind::Relation(_) => "relation",
            FieldKind::File(_) => "file",
            FieldKind::Password(_) => "password",
            FieldKind::GeoPoint(_) => "geoPoint",
        }
    }

    pub fn required(&self) -> bool {
        match &self.kind {
            FieldKind::Text(o) => o.required,
            FieldKind::Editor(o) => o.required,
            FieldKind::Number(o) => o.required,
            FieldKind::Bool(o) | FieldKind::GeoPoint(o) => o.required,
            FieldKind::Email(o) | FieldKind::Url(o) => o.required,
            FieldKind::Date(o) => o.required,
            FieldKind::Autodate(_) => false,
            FieldKind::Select(o) => o.required,
            FieldKind::Json(o) => o.required,
            FieldKind::Relation(o) => o.required,
            FieldKind::File(o) => o.required,
            FieldKind::Password(o) => o.required,
        }
    }

    /// Whether the field holds several values (a JSON array column).
    pub fn is_multiple(&self) -> bool {
        match &self.kind {
            FieldKind::Select(o) => o.max_select > 1,
            FieldKind::Relation(o) => o.max_select > 1,
            FieldKind::File(o) => o.max_select > 1,
            _ => false,
        }
    }

    pub fn shape(&self) -> ValueShape {
        match &self.kind {
            FieldKind::Number(_) => ValueShape::Number,
            FieldKind::Bool(_) => ValueShape::Bool,
            FieldKind::Json(_) | FieldKind::GeoPoint(_) => ValueShape::Json,
            FieldKind::Select(_) | FieldKind::Relation(_) | FieldKind::File(_)
                if self.is_multiple() =>
            {
                ValueShape::MultiText
            }
            _ => ValueShape::Text,
        }
    }

    /// The SQL column definition for this field (type and default), as
    /// PocketBase declares it.
    pub fn column_def(&self) -> &'static str {
        match &self.kind {
            FieldKind::Text(o) if o.primary_key => crate::store::dialect::RANDOM_ID_COLUMN,
            FieldKind::Number(_) => "NUMERIC DEFAULT 0 NOT NULL",
            FieldKind::Bool(_) => "BOOLEAN DEFAULT FALSE NOT NULL",
            FieldKind::Json(_) => "JSON DEFAULT NULL",
            FieldKind::GeoPoint(_) => "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL",
            _ if self.is_multiple() => "JSON DEFAULT '[]' NOT NULL",
            _ => "TEXT DEFAULT '' NOT NULL",
        }
    }

    pub fn relation_collection(&self) -> Option<&str> {
        match &self.kind {
            FieldKind::Relation(o) => Some(&o.collection_id),
            _ => None,
        }
    }

    pub fn is_primary_key(&self) -> bool {
        matches!(&self.kind, FieldKind::Text(o) if o.primary_key)
    }
}

/// The largest integer a JSON number holds exactly (PocketBase's upper
/// bound of size and length options).
pub const MAX_SAFE_JSON_INT: i64 = (1 << 53) - 1;

/// The `autodate` flags a field had before an update (system fields may not
/// change them).
#[derive(Debug, Clone, Copy)]
pub struct OldAutodate {
    pub on_create: bool,
    pub on_update: bool,
}

/// One option error in PocketBase's shape.
pub fn opt_err(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"code": code, "message": message})
}

fn min_err(threshold: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"code": "validation_min_greater_equal_than_required",
        "message": format!("Must be no less than {threshold}."), "params": {"threshold": threshold}})
}

fn max_err(threshold: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"code": "validation_max_less_equal_than_required",
        "message": format!("Must be no greater than {threshold}."), "params": {"threshold": threshold}})
}

/// PocketBase's `Min(n)` then `Max(m)` on an integer option: zero is
/// "empty" and passes both.
fn int_range(v: i64, min: Option<i64>, max: Option<i64>) -> Option<serde_json::Value> {
    if v == 0 {
        return None;
    }
    match (min, max) {
        (Some(lo), _) if v < lo => Some(min_err(lo.into())),
        (_, Some(hi)) if v > hi => Some(max_err(hi.into())),
        _ => None,
    }
}

/// Whether `s` is a domain name as PocketBase's `is.Domain` accepts it.
fn is_domain(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return false;
    }
    labels.iter().all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }) && labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// The error PocketBase gives a pattern that doesn't compile (the rest of
/// the message is the regex engine's own words).
fn regex_err(pattern: &str) -> Option<serde_json::Value> {
    if pattern.is_empty() || regex_lite::Regex::new(pattern).is_ok() {
        return None;
    }
    Some(opt_err(
        "validation_invalid_regex",
        &format!("Error parsing regexp: invalid pattern `{pattern}`."),
    ))
}

/// Field names a field may not take (filter literals and record JSON keys).
pub const RESERVED_FIELD_NAMES: &[&str] = &[
    "null",
    "true",
    "false",
    "_rowid_",
    "collectionId",
    "collectionName",
    "expand",
];

impl Field {
    /// PocketBase's checks of one field's settings (`ValidateSettings`):
    /// option key → its first failing rule. `pk_count` is the number of
    /// text primary keys in the collection; `old_autodate` the flags of
    /// this field before an update. Relation targets are checked by the
    /// caller (they need the schema).
    pub fn validate_settings(
        &self,
        pk_count: usize,
        old_autodate: Option<OldAutodate>,
    ) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::{json, Value};
        let mut e = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                e.insert(k.to_string(), v);
            }
        };
        // id, name, help: every type.
        let id_len = self.id.chars().count();
        if !(1..=100).contains(&id_len) && !self.id.is_empty() {
            put(
                "id",
                Some(json!({"code": "validation_length_out_of_range",
                "message": "The length must be between 1 and 100.", "params": {"max": 100, "min": 1}})),
            );
        }
        put("name", name_error(&self.name));
        let help = match &self.kind {
            FieldKind::Text(o) => Some(&o.help),
            FieldKind::Editor(o) => Some(&o.help),
            FieldKind::Number(o) => Some(&o.help),
            FieldKind::Bool(o) | FieldKind::GeoPoint(o) => Some(&o.help),
            FieldKind::Email(o) | FieldKind::Url(o) => Some(&o.help),
            FieldKind::Date(o) => Some(&o.help),
            FieldKind::Select(o) => Some(&o.help),
            FieldKind::Json(o) => Some(&o.help),
            FieldKind::Relation(o) => Some(&o.help),
            FieldKind::File(o) => Some(&o.help),
            FieldKind::Password(o) => Some(&o.help),
            FieldKind::Autodate(_) => None,
        };
        if help.is_some_and(|h| h.chars().count() > 300) {
            put(
                "help",
                Some(json!({"code": "validation_length_out_of_range",
                "message": "The length must be between 1 and 300.", "params": {"max": 300, "min": 1}})),
            );
        }
        match &self.kind {
            FieldKind::Text(o) => {
                if o.primary_key && name_error(&self.name).is_none() && self.name != "id" {
                    put(
                        "name",
                        Some(opt_err(
                            "validation_in_invalid",
                            "The primary key must be named \"id\".",
                        )),
                    );
                }
                if o.primary_key && pk_count > 1 {
                    put("primaryKey", Some(opt_err("validation_unsupported_composite_pk",
                        "Composite PKs are not supported and the collection must have only 1 PK.")));
                }
                put("min", int_range(o.min, Some(0), Some(MAX_SAFE_JSON_INT)));
                put(
                    "max",
                    int_range(o.max, Some(o.min), Some(MAX_SAFE_JSON_INT)),
                );
                if o.primary_key && o.pattern.is_empty() {
                    put(
                        "pattern",
                        Some(opt_err("validation_required", "Cannot be blank.")),
                    );
                } else {
                    put("pattern", regex_err(&o.pattern));
                }
                if o.primary_key && self.hidden {
                    put(
                        "hidden",
                        Some(opt_err("validation_empty", "Must be blank.")),
                    );
                }
                if o.primary_key && !o.required {
                    put(
                        "required",
                        Some(opt_err("validation_required", "Cannot be blank.")),
                    );
                }
                put(
                    "autogeneratePattern",
                    regex_err(&o.autogenerate_pattern).or_else(|| autogenerate_err(o)),
                );
            }
            FieldKind::Number(o) => {
                let only_int = |v: Option<f64>| {
                    (o.only_int && v.is_some_and(|v| v.fract() != 0.0)).then(|| {
                        opt_err(
                            "validation_only_int_constraint",
                            "Decimal numbers are not allowed.",
                        )
                    })
                };
                put("min", only_int(o.min));
                let max = only_int(o.max).or_else(|| match (o.min, o.max) {
                    (Some(min), Some(max)) if max < min => {
                        let m = crate::schema::record::number_value(min);
                        Some(json!({"code": "validation_min_number_constraint",
                            "message": format!("Must be greater or equal than {}.", crate::schema::record::to_text(&m)),
                            "params": {"min": m}}))
                    }
                    _ => None,
                });
                put("max", max);
            }
            FieldKind::Select(o) => {
                if o.values.is_empty() {
                    put(
                        "values",
                        Some(opt_err("validation_required", "Cannot be blank.")),
                    );
                }
                let max = (o.values.len() as i64).max(1);
                put("maxSelect", int_range(o.max_select, Some(0), Some(max)));
            }
            FieldKind::Relation(o) => {
                put("minSelect", int_range(o.min_select, Some(0), None));
                if o.min_select > 0 && o.max_select == 0 {
                    put(
                        "maxSelect",
                        Some(opt_err("validation_required", "Cannot be blank.")),
                    );
                } else {
                    put(
                        "maxSelect",
                        int_range(o.max_select, Some(o.min_select), None),
                    );
                }
            }
            FieldKind::File(o) => {
                put(
                    "maxSelect",
                    int_range(o.max_select, Some(0), Some(MAX_SAFE_JSON_INT)),
                );
                put(
                    "maxSize",
                    int_range(o.max_size, Some(0), Some(MAX_SAFE_JSON_INT)),
                );
                let mut thumbs = serde_json::Map::new();
                for (i, t) in o.thumbs.iter().enumerate() {
                    let err = if ["0x0", "0x0t", "0x0b", "0x0f"].contains(&t.as_str()) {
                        Some(opt_err("validation_not_in_invalid", "Must not be in list."))
                    } else if !is_thumb_size(t) {
                        Some(opt_err(
                            "validation_match_invalid",
                            "Must be in a valid format.",
                        ))
                    } else {
                        None
                    };
                    if let Some(err) = err {
                        thumbs.insert(i.to_string(), err);
                    }
                }
                if !thumbs.is_empty() {
                    put("thumbs", Some(Value::Object(thumbs)));
                }
            }
            FieldKind::Autodate(o) => {
                let neither = || {
                    opt_err(
                        "validation_required",
                        "Either onCreate or onUpdate must be enabled.",
                    )
                };
                let changed = || opt_err("validation_values_mismatch", "Values don't match.");
                let old = old_autodate.filter(|_| self.system);
                let on_create = match old {
                    Some(old) if old.on_create != o.on_create => Some(changed()),
                    _ if !o.on_create && !o.on_update => Some(neither()),
                    _ => None,
                };
                let on_update = match old {
                    Some(old) if old.on_update != o.on_update => Some(changed()),
                    _ if !o.on_create && !o.on_update => Some(neither()),
                    _ => None,
                };
                put("onCreate", on_create);
                put("onUpdate", on_update);
            }
            FieldKind::Password(o) => {
                put("min", int_range(o.min, Some(1), Some(71)));
                put("max", int_range(o.max, Some(o.min), Some(71)));
                put("cost", int_range(o.cost, Some(4), Some(31)));
                put("pattern", regex_err(&o.pattern));
            }
            FieldKind::Json(JsonOpts { max_size, .. })
            | FieldKind::Editor(EditorOpts { max_size, .. }) => {
                put(
                    "maxSize",
                    int_range(*max_size, Some(0), Some(MAX_SAFE_JSON_INT)),
                );
            }
            FieldKind::Email(o) | FieldKind::Url(o) => {
                let domains = |list: &[String], other: &[String]| -> Option<Value> {
                    if !other.is_empty() && !list.is_empty() {
                        return Some(opt_err("validation_empty", "Must be blank."));
                    }
                    let bad: serde_json::Map<String, Value> = list
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| !is_domain(d))
                        .map(|(i, _)| {
                            (
                                i.to_string(),
                                opt_err("validation_is_domain", "Must be a valid domain."),
                            )
                        })
                        .collect();
                    (!bad.is_empty()).then_some(Value::Object(bad))
                };
                put("exceptDomains", domains(&o.except_domains, &o.only_domains));
                put("onlyDomains", domains(&o.only_domains, &o.except_domains));
            }
            FieldKind::Bool(_) | FieldKind::GeoPoint(_) | FieldKind::Date(_) => {}
        }
        e
    }
}

/// PocketBase's rules for a field name, the first failing one.
pub fn name_error(name: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let n = name.chars().count();
    if name.is_empty() {
        Some(opt_err("validation_required", "Cannot be blank."))
    } else if n > 100 {
        Some(json!({"code": "validation_length_out_of_range",
            "message": "The length must be between 1 and 100.", "params": {"max": 100, "min": 1}}))
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Some(opt_err(
            "validation_match_invalid",
            "Must be in a valid format.",
        ))
    } else if RESERVED_FIELD_NAMES.contains(&name) {
        Some(opt_err("validation_not_in_invalid", "Must not be in list."))
    } else if name.to_lowercase().contains("_via_") {
        Some(opt_err(
            "validation_found_via",
            "The value cannot contain \"_via_\".",
        ))
    } else {
        None
    }
}

/// `WxH` with an optional `t`, `b` or `f` (PocketBase's thumb sizes).
fn is_thumb_size(t: &str) -> bool {
    let t = t.strip_suffix(['t', 'b', 'f']).unwrap_or(t);
    let Some((w, h)) = t.split_once('x') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    digits(w) && digits(h)
}

/// Ten values made from a text field's autogenerate pattern must pass the
/// field's own length and pattern rules.
fn autogenerate_err(o: &TextOpts) -> Option<serde_json::Value> {
    if o.autogenerate_pattern.is_empty() {
        return None;
    }
    let pattern = if o.pattern.is_empty() {
        None
    } else {
        Some(regex_lite::Regex::new(&o.pattern).ok()?)
    };
    for _ in 0..10 {
        // Patterns the generator doesn't understand are not checked here.
        let v = crate::util::random_from_pattern(&o.autogenerate_pattern)?;
        let n = v.chars().count() as i64;
        let bad = (o.min > 0 && n < o.min)
            || (o.max > 0 && n > o.max)
            || pattern.as_ref().is_some_and(|p| !p.is_match(&v));
        if bad {
            return Some(opt_err(
                "validation_invalid_autogenerate_pattern_value",
                &format!(
                    "The provided autogenerate pattern could produce invalid field values, ex.: {v:?}."
                ),
            ));
        }
    }
    None
}
