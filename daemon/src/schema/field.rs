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
            FieldKind::Text(o) if o.primary_key => {
                "TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL"
            }
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
