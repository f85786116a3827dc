//! Building a `Collection` from PocketBase's collection JSON (API input,
//! import, defaults), with PocketBase's defaults and validation.

use super::collection::{Collection, CollectionType, TOKEN_KEYS};
use super::field::{Field, FieldKind};
use super::index::parse_index;
use super::Schema;
use crate::error::FieldErrors;
use crate::util::{crc32_checksum, random_string, ALPHANUM};
use serde_json::{json, Map, Value};

/// Names a field may not take (filter literals and record JSON keys).
const RESERVED_FIELD_NAMES: &[&str] = &[
    "null",
    "true",
    "false",
    "_rowid_",
    "collectionId",
    "collectionName",
    "expand",
];

const RULE_KEYS: [&str; 5] = [
    "listRule",
    "viewRule",
    "createRule",
    "updateRule",
    "deleteRule",
];

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses stored JSON without the API's checks (defaults, database rows).
pub fn collection_from_json(v: &Value) -> Result<Collection, FieldErrors> {
    let mut errs = FieldErrors::new();
    let o = v.as_object().cloned().unwrap_or_default();
    let kind = match o.get("type").and_then(Value::as_str).unwrap_or("base") {
        "base" => CollectionType::Base,
        "auth" => CollectionType::Auth,
        "view" => CollectionType::View,
        _ => {
            errs.add("type", "validation_in_invalid", "Must be a valid value.");
            CollectionType::Base
        }
    };
    let fields: Vec<Field> = match o.get("fields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            let mut ferrs = Map::new();
            for (i, f) in a.iter().enumerate() {
                match serde_json::from_value::<Field>(f.clone()) {
                    Ok(f) => out.push(f),
                    Err(e) => {
                        let code = if f.get("type").and_then(Value::as_str).is_none()
                            || e.to_string().contains("unknown variant")
                        {
                            (
                                "type",
                                "validation_invalid_field_type",
                                "Invalid field type.",
                            )
                        } else {
                            ("type", "validation_invalid_value", "Invalid field options.")
                        };
                        ferrs.insert(
                            i.to_string(),
                            json!({code.0: {"code": code.1, "message": code.2}}),
                        );
                    }
                }
            }
            if !ferrs.is_empty() {
                errs.add_nested("fields", Value::Object(ferrs));
            }
            out
        }
        Some(_) => {
            errs.add("fields", "validation_invalid_value", "Must be an array.");
            Vec::new()
        }
    };
    let rule = |k: &str| o.get(k).and_then(Value::as_str).map(String::from);
    let options: Map<String, Value> = match kind {
        CollectionType::Auth => super::collection::AUTH_OPTION_KEYS
            .iter()
            .filter_map(|k| o.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect(),
        CollectionType::View => o
            .get("viewQuery")
            .map(|v| [("viewQuery".to_string(), v.clone())].into_iter().collect())
            .unwrap_or_default(),
        CollectionType::Base => Map::new(),
    };
    let c = Collection {
        id: o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        name: o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        kind,
        system: o.get("system").and_then(Value::as_bool).unwrap_or(false),
        fields,
        indexes: o
            .get("indexes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        list_rule: rule("listRule"),
        view_rule: rule("viewRule"),
        create_rule: rule("createRule"),
        update_rule: rule("updateRule"),
        delete_rule: rule("deleteRule"),
        options,
        created: o
            .get("created")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        updated: o
            .get("updated")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        derived: Default::default(),
    };
    if errs.is_empty() {
        Ok(c)
    } else {
        Err(errs)
    }
}

fn default_id_field() -> Field {
    serde_json::from_value(json!({
        "autogeneratePattern": "[a-z0-9]{15}", "help": "", "hidden": false,
        "id": "text3208210256", "max": 15, "min": 15, "name": "id",
        "pattern": "^[a-z0-9]+$", "presentable": false, "primaryKey": true,
        "required": true, "system": true, "type": "text"
    }))
    .expect("static field")
}

fn auth_system_fields() -> Vec<Field> {
    serde_json::from_str(include_str!("auth_fields.json")).expect("static fields")
}

fn auth_default_options() -> Map<String, Value> {
    serde_json::from_str(include_str!("auth_options.json")).expect("static options")
}

/// Merges `patch` (an update body) onto `base` (the current API JSON of the
/// collection): top-level keys replace; auth option objects merge one level.
pub fn merge_update(base: &Value, patch: &Value) -> Value {
    let mut out = base.as_object().cloned().unwrap_or_default();
    if let Some(p) = patch.as_object() {
        for (k, v) in p {
            match (out.get_mut(k), v) {
                (Some(Value::Object(dst)), Value::Object(src)) if k != "fields" => {
                    for (k2, v2) in src {
                        dst.insert(k2.clone(), v2.clone());
                    }
                }
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// Builds and validates a collection from API input. `existing` is the
/// collection being updated (None on create). Rule syntax is checked by
/// the caller (it needs the filter compiler).
pub fn build(
    input: &Value,
    existing: Option<&Collection>,
    schema: &Schema,
) -> Result<Collection, FieldErrors> {
    build_with(input, existing, schema, false)
}

/// `build` for an import: system fields missing from an imported definition
/// are appended after the imported ones (an update keeps their positions).
pub fn build_for_import(
    input: &Value,
    existing: Option<&Collection>,
    schema: &Schema,
) -> Result<Collection, FieldErrors> {
    build_with(input, existing, schema, true)
}

fn build_with(
    input: &Value,
    existing: Option<&Collection>,
    schema: &Schema,
    append_system: bool,
) -> Result<Collection, FieldErrors> {
    if let (Some(ex), Some(fields)) = (existing, input.get("fields").and_then(Value::as_array)) {
        // A changed type is reported before the options are even read.
        let mut changed = Map::new();
        let offset = usize::from(
            !fields
                .iter()
                .any(|f| f.get("name").and_then(Value::as_str) == Some("id"))
                && ex.kind != CollectionType::View,
        );
        for (i, f) in fields.iter().enumerate() {
            let id = f.get("id").and_then(Value::as_str).unwrap_or_default();
            let ty = f.get("type").and_then(Value::as_str).unwrap_or_default();
            if let Some(of) = ex.fields.iter().find(|of| !id.is_empty() && of.id == id) {
                if of.type_name() != ty {
                    changed.insert((i + offset).to_string(), json!({"code": "validation_field_type_change", "message": "Field type cannot be changed."}));
                }
            }
        }
        if !changed.is_empty() {
            let mut errs = FieldErrors::new();
            errs.add_nested("fields", Value::Object(changed));
            return Err(errs);
        }
    }
    let mut c = collection_from_json(input)?;
    let mut errs = FieldErrors::new();

    // Identity: keep the existing id and type; new ids as PocketBase makes them.
    if let Some(ex) = existing {
        c.id = ex.id.clone();
        if c.kind != ex.kind {
            errs.add(
                "type",
                "validation_collection_type_change",
                "Collection type cannot be changed.",
            );
        }
        c.system = ex.system;
        c.created = ex.created.clone();
        // Keep stored secrets; the API never shows them.
        for key in TOKEN_KEYS {
            let secret = ex.options.get(*key).and_then(|o| o.get("secret")).cloned();
            if let (Some(s), Some(o)) = (
                secret,
                c.options.get_mut(*key).and_then(Value::as_object_mut),
            ) {
                o.entry("secret").or_insert(s);
            }
        }
        if let Some(o) = c.options.get_mut("oauth2") {
            super::oauth2::keep_secrets(o, ex.options.get("oauth2"));
        }
    } else {
        c.system = false;
        if c.id.is_empty() {
            c.id = format!(
                "pbc_{}",
                crc32_checksum(&format!("{}{}", c.kind.as_str(), c.name))
            );
        }
    }

    // Name.
    if c.name.is_empty() {
        errs.add("name", "validation_required", "Cannot be blank.");
    } else if c.name.chars().count() > 255 {
        errs.add_params(
            "name",
            "validation_length_out_of_range",
            "The length must be between 1 and 255.",
            json!({"max": 255, "min": 1}),
        );
    } else if !is_name(&c.name) {
        errs.add(
            "name",
            "validation_match_invalid",
            "Must be in a valid format.",
        );
    } else if let Some(other) = schema.get(&c.name) {
        if other.id != c.id {
            errs.add(
                "name",
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
            );
        }
    }
    if existing.is_none() && schema.by_id(&c.id).is_some() {
        errs.add(
            "id",
            "validation_collection_id_exists",
            "Collection id must be unique.",
        );
    }
    if let Some(ex) = existing {
        if ex.system && ex.name != c.name {
            errs.add(
                "name",
                "validation_collection_system_name_change",
                "System collection name cannot be changed.",
            );
        }
    }

    // The same exact name twice: the later definition wins, in place.
    let mut deduped: Vec<Field> = Vec::with_capacity(c.fields.len());
    for f in std::mem::take(&mut c.fields) {
        match deduped
            .iter_mut()
            .find(|d| !f.name.is_empty() && d.name == f.name)
        {
            Some(d) => *d = f,
            None => deduped.push(f),
        }
    }
    c.fields = deduped;

    // Fields: defaults, system fields, ids.
    if let Some(ex) = existing {
        // System fields left out of an update are kept, after the others.
        for (pos, sf) in ex.fields.iter().enumerate().filter(|(_, f)| f.system) {
            if !c.fields.iter().any(|f| f.id == sf.id || f.name == sf.name) {
                if append_system {
                    c.fields.push(sf.clone());
                } else {
                    c.fields.insert(pos.min(c.fields.len()), sf.clone());
                }
            }
        }
    } else if c.kind != CollectionType::View && !c.fields.iter().any(|f| f.name == "id") {
        c.fields.insert(0, default_id_field());
    }
    if c.kind == CollectionType::Auth {
        for sf in auth_system_fields() {
            if !c.fields.iter().any(|f| f.name == sf.name) {
                c.fields.push(sf);
            }
        }
        let defaults = auth_default_options();
        for (k, v) in defaults {
            match c.options.get_mut(&k) {
                None => {
                    c.options.insert(k, v);
                }
                Some(Value::Object(cur)) => {
                    if let Value::Object(d) = v {
                        for (k2, v2) in d {
                            cur.entry(k2).or_insert(v2);
                        }
                    }
                }
                Some(_) => {}
            }
        }
        if let Some(e) = c
            .options
            .get("oauth2")
            .and_then(super::oauth2::validate_options)
        {
            errs.add_nested("oauth2", e);
        }
        if existing.is_none() {
            let has = |ixs: &[String], col: &str| {
                ixs.iter().any(|ix| {
                    parse_index(ix)
                        .is_ok_and(|d| d.unique && d.columns.len() == 1 && d.columns[0].name == col)
                })
            };
            if !has(&c.indexes, "tokenKey") {
                c.indexes.push(format!(
                    "CREATE UNIQUE INDEX `idx_tokenKey_{}` ON `{}` (`tokenKey`)",
                    c.id, c.name
                ));
            }
            if !has(&c.indexes, "email") {
                c.indexes.push(format!(
                    "CREATE UNIQUE INDEX `idx_email_{}` ON `{}` (`email`) WHERE `email` != ''",
                    c.id, c.name
                ));
            }
        }
        for key in TOKEN_KEYS {
            if let Some(o) = c.options.get_mut(*key).and_then(Value::as_object_mut) {
                let needs = o
                    .get("secret")
                    .and_then(Value::as_str)
                    .is_none_or(|s| s.len() < 30);
                if needs {
                    o.insert("secret".into(), Value::String(random_string(50, ALPHANUM)));
                }
            }
        }
    }
    let mut field_errs = Map::new();
    let mut seen = std::collections::HashSet::new();
    for (i, f) in c.fields.iter_mut().enumerate() {
        let mut fe = Map::new();
        if f.name.is_empty() {
            fe.insert(
                "name".into(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        } else if f.name.len() > 100 {
            fe.insert("name".into(), json!({"code": "validation_length_out_of_range", "message": "The length must be between 1 and 100.", "params": {"min": 1, "max": 100}}));
        } else if !is_name(&f.name) {
            fe.insert("name".into(), json!({"code": "validation_match_invalid", "message": "Must be in a valid format."}));
        } else if RESERVED_FIELD_NAMES.contains(&f.name.as_str()) {
            fe.insert(
                "name".into(),
                json!({"code": "validation_not_in_invalid", "message": "Must not be in list."}),
            );
        } else if f.name.to_lowercase().contains("_via_") {
            fe.insert("name".into(), json!({"code": "validation_found_via", "message": "The value cannot contain \"_via_\"."}));
        } else if !seen.insert(f.name.to_lowercase()) {
            fe.insert("name".into(), json!({"code": "validation_duplicated_field_name", "message": format!("Duplicated or invalid field name {}.", f.name), "params": {"fieldName": f.name}}));
        }
        if f.id.is_empty() {
            f.id = format!("{}{}", f.type_name(), crc32_checksum(&f.name));
        }
        match &f.kind {
            FieldKind::Relation(o) => {
                let target = schema.get(&o.collection_id).map(|t| t.id.clone());
                let self_ref = o.collection_id == c.id || o.collection_id == c.name;
                match (target, self_ref) {
                    (Some(id), _) => {
                        if let FieldKind::Relation(o) = &mut f.kind {
                            o.collection_id = id;
                        }
                    }
                    (None, true) => {
                        if let FieldKind::Relation(o) = &mut f.kind {
                            o.collection_id = c.id.clone();
                        }
                    }
                    (None, false) if o.collection_id.is_empty() => {
                        fe.insert(
                            "collectionId".into(),
                            json!({"code": "validation_required", "message": "Cannot be blank."}),
                        );
                    }
                    (None, false) => {
                        fe.insert("collectionId".into(), json!({"code": "validation_field_relation_missing_collection", "message": "The relation collection doesn't exist."}));
                    }
                }
            }
            FieldKind::Select(o) => {
                if o.values.is_empty() {
                    fe.insert(
                        "values".into(),
                        json!({"code": "validation_required", "message": "Cannot be blank."}),
                    );
                } else if o.max_select > o.values.len() as i64 {
                    let n = o.values.len();
                    fe.insert("maxSelect".into(), json!({"code": "validation_max_less_equal_than_required", "message": format!("Must be no greater than {n}."), "params": {"threshold": n}}));
                }
            }
            FieldKind::Number(o) => {
                if let (Some(min), Some(max)) = (o.min, o.max) {
                    if max < min {
                        let m = crate::schema::record::number_value(min);
                        fe.insert("max".into(), json!({"code": "validation_min_number_constraint", "message": format!("Must be greater or equal than {}.", crate::schema::record::to_text(&m)), "params": {"min": m}}));
                    }
                }
            }
            FieldKind::Text(o)
                if !o.pattern.is_empty() && regex_lite::Regex::new(&o.pattern).is_err() =>
            {
                fe.insert("pattern".into(), json!({"code": "validation_invalid_regex", "message": "Invalid regex pattern."}));
            }
            _ => {}
        }
        let type_changed = existing
            .and_then(|ex| ex.fields.iter().find(|of| of.id == f.id))
            .is_some_and(|of| of.type_name() != f.type_name());
        if type_changed {
            field_errs.insert(i.to_string(), json!({"code": "validation_field_type_change", "message": "Field type cannot be changed."}));
        } else if !fe.is_empty() {
            field_errs.insert(i.to_string(), Value::Object(fe));
        }
    }
    // System fields may not be removed or changed in type.
    if let Some(ex) = existing {
        for of in ex.fields.iter().filter(|f| f.system) {
            match c.fields.iter().find(|f| f.id == of.id) {
                Some(nf) if nf.type_name() == of.type_name() && nf.name == of.name => {}
                _ => {
                    errs.add(
                        "fields",
                        "validation_system_field_change",
                        "System fields cannot be deleted or renamed.",
                    );
                }
            }
        }
    }
    if !field_errs.is_empty() {
        errs.add_nested("fields", Value::Object(field_errs));
    }

    // Indexes: each must parse and name only this collection's fields.
    let mut ix_errs = Map::new();
    let mut names = std::collections::HashSet::new();
    for (i, ix) in c.indexes.iter().enumerate() {
        match parse_index(ix) {
            Ok(def) => {
                let unknown = def
                    .columns
                    .iter()
                    .any(|col| !c.fields.iter().any(|f| f.name == col.name));
                if unknown {
                    ix_errs.insert(i.to_string(), json!({"code": "validation_invalid_index_expression", "message": "Invalid CREATE INDEX expression."}));
                } else if !names.insert(def.name.to_lowercase()) {
                    ix_errs.insert(i.to_string(), json!({"code": "validation_duplicated_index_name", "message": "The index name must be unique."}));
                }
            }
            Err(_) => {
                ix_errs.insert(i.to_string(), json!({"code": "validation_invalid_index_expression", "message": "Invalid CREATE INDEX expression."}));
            }
        }
    }
    if !ix_errs.is_empty() {
        errs.add_nested("indexes", Value::Object(ix_errs));
    }

    if c.kind == CollectionType::View {
        errs.add(
            "type",
            "validation_view_unsupported",
            "View collections are not supported yet.",
        );
    }
    let _ = RULE_KEYS;
    if errs.is_empty() {
        Ok(c)
    } else {
        Err(errs)
    }
}

/// PocketBase's collection scaffolds: empty definitions of each type, as
/// the dashboard's "new collection" form starts from.
pub fn scaffolds() -> Value {
    let empty = |kind: CollectionType| Collection {
        id: String::new(),
        name: String::new(),
        kind,
        system: false,
        fields: vec![],
        indexes: vec![],
        list_rule: None,
        view_rule: None,
        create_rule: None,
        update_rule: None,
        delete_rule: None,
        options: Map::new(),
        created: String::new(),
        updated: String::new(),
        derived: Default::default(),
    };
    let mut base = empty(CollectionType::Base);
    base.fields.push(default_id_field());
    let mut auth = empty(CollectionType::Auth);
    auth.fields.extend(auth_system_fields());
    auth.options = auth_default_options();
    let suffix = random_string(10, crate::util::LOWER_ALPHANUM);
    auth.indexes = vec![
        format!("CREATE UNIQUE INDEX `idx_tokenKey_{suffix}` ON `` (`tokenKey`)"),
        format!("CREATE UNIQUE INDEX `idx_email_{suffix}` ON `` (`email`) WHERE `email` != ''"),
    ];
    let mut view = empty(CollectionType::View);
    view.options.insert("viewQuery".into(), json!(""));
    json!({"auth": auth.to_api_json(), "base": base.to_api_json(), "view": view.to_api_json()})
}
