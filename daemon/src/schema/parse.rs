//! Building a `Collection` from PocketBase's collection JSON (API input,
//! import, defaults), with PocketBase's defaults and validation.

use super::collection::{Collection, CollectionType, TOKEN_KEYS};
use super::field::{Field, FieldKind};
use super::index::parse_index;
use super::Schema;
use crate::error::FieldErrors;
use crate::util::{crc32_checksum, random_string, ALPHANUM};
use serde_json::{json, Map, Value};

const RULE_KEYS: [&str; 5] = [
    "listRule",
    "viewRule",
    "createRule",
    "updateRule",
    "deleteRule",
];

/// A collection (or field) name: `[A-Za-z0-9_]{1,255}`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses stored JSON without the API's checks (defaults, database rows).
pub fn collection_from_json(v: &Value) -> Result<Collection, FieldErrors> {
    let mut errs = FieldErrors::new();
    let o = v.as_object().cloned().unwrap_or_default();
    let kind = match o.get("type").and_then(Value::as_str).unwrap_or("base") {
        "base" | "" => CollectionType::Base,
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
    let (c, errs) = build_checked(input, existing, schema, false)?;
    if errs.is_empty() {
        Ok(c)
    } else {
        Err(errs)
    }
}

/// `build` for an import: system fields missing from an imported definition
/// are appended after the imported ones (an update keeps their positions).
pub fn build_for_import(
    input: &Value,
    existing: Option<&Collection>,
    schema: &Schema,
) -> Result<Collection, FieldErrors> {
    let (c, errs) = build_checked(input, existing, schema, true)?;
    if errs.is_empty() {
        Ok(c)
    } else {
        Err(errs)
    }
}

/// Table names a collection may not take: SQLite's own (`sqlite_*`),
/// PocketBase's internal tables and keepd's (`_keepd_*`).
const INTERNAL_TABLES: &[&str] = &["_collections", "_params", "_migrations"];

/// Whether `name` is (case-insensitively) an internal table of the store.
pub fn is_internal_table(name: &str) -> bool {
    let lower = name.to_lowercase();
    INTERNAL_TABLES.contains(&lower.as_str())
        || lower.starts_with("sqlite_")
        || lower.starts_with("_keepd_")
}

fn err(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

fn length_err(min: usize, max: usize) -> Value {
    json!({"code": "validation_length_out_of_range",
        "message": format!("The length must be between {min} and {max}."),
        "params": {"max": max, "min": min}})
}

/// The collection built from `input` and every validation error PocketBase
/// reports for it (empty when valid). `Err` only when a field definition
/// can't be read at all.
pub fn build_checked(
    input: &Value,
    existing: Option<&Collection>,
    schema: &Schema,
    append_system: bool,
) -> Result<(Collection, FieldErrors), FieldErrors> {
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
                if of.type_name() != ty && !of.system {
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
    // The type: empty or null means base; anything else unknown is an error
    // reported with the others.
    let mut errs = FieldErrors::new();
    // A definition that is not an object is read as an empty one (its
    // errors are then those of a blank collection).
    let mut input = match input {
        Value::Object(_) => input.clone(),
        _ => Value::Object(Map::new()),
    };
    let type_given = input.get("type").and_then(Value::as_str).unwrap_or("");
    if !["", "base", "auth", "view"].contains(&type_given) {
        errs.add("type", "validation_in_invalid", "Must be a valid value.");
        let keep = existing.map_or("base", |e| e.kind.as_str());
        input["type"] = json!(keep);
    } else if type_given.is_empty() {
        input["type"] = json!(existing.map_or("base", |e| e.kind.as_str()));
        if existing.is_none() {
            input["type"] = json!("base");
        }
    }
    let mut c = collection_from_json(&input)?;
    let type_changed = existing.is_some_and(|ex| ex.kind != c.kind);
    let explicit_id = !c.id.is_empty() && existing.is_none();

    // Identity: keep the existing id; new ids as PocketBase makes them.
    if let Some(ex) = existing {
        c.id = ex.id.clone();
        if type_changed {
            errs.add(
                "type",
                "validation_collection_type_change",
                "Collection type cannot be changed.",
            );
        }
        if let Some(sys) = input.get("system").and_then(Value::as_bool) {
            if sys != ex.system {
                errs.add(
                    "system",
                    "validation_collection_system_flag_change",
                    "System collection state cannot be changed.",
                );
            }
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
        // A changed authRule ends the sessions it was checked for (as
        // PocketBase): a new auth token secret, unless one was given.
        let given = input["authToken"]["secret"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        if c.auth_rule() != ex.auth_rule() && !given {
            if let Some(o) = c
                .options
                .get_mut("authToken")
                .and_then(Value::as_object_mut)
            {
                o.insert("secret".into(), Value::String(random_string(50, ALPHANUM)));
            }
        }
    } else if c.id.is_empty() {
        // A generated id that is taken gets a number appended.
        let base = format!(
            "pbc_{}",
            crc32_checksum(&format!("{}{}", c.kind.as_str(), c.name))
        );
        c.id = base.clone();
        for i in 2..1000 {
            if schema.by_id(&c.id).is_none() {
                break;
            }
            c.id = format!("{base}{i}");
        }
    }
    if explicit_id {
        let n = c.id.chars().count();
        if n > 100 {
            errs.add_nested("id", length_err(1, 100));
        } else if !is_name(&c.id) {
            errs.add_nested(
                "id",
                err("validation_match_invalid", "Must be in a valid format."),
            );
        } else if schema.by_id(&c.id).is_some() {
            errs.add_nested(
                "id",
                err(
                    "validation_invalid_or_existing_id",
                    "The model id is invalid or already exists.",
                ),
            );
        }
    }

    // Name: the first failing rule, as PocketBase orders them.
    if let Some(e) = name_error(&c, existing, schema) {
        errs.add_nested("name", e);
    }

    // The same exact name (or id) twice: the later definition wins, in place.
    let mut deduped: Vec<Field> = Vec::with_capacity(c.fields.len());
    for f in std::mem::take(&mut c.fields) {
        match deduped.iter_mut().find(|d| {
            (!f.name.is_empty() && d.name == f.name) || (!f.id.is_empty() && d.id == f.id)
        }) {
            Some(d) => *d = f,
            None => deduped.push(f),
        }
    }
    c.fields = deduped;
    // New fields get PocketBase's deterministic ids (before system
    // definitions replace any of them).
    for f in c.fields.iter_mut() {
        if f.id.is_empty() {
            f.id = format!("{}{}", f.type_name(), crc32_checksum(&f.name));
        }
    }

    // Fields: system fields, the id field.
    if let Some(ex) = existing {
        // System fields left out of an update are kept: the id first, the
        // others after the submitted ones.
        // (An auth collection's own system fields come back below, in
        // their default order.)
        let auth_names = [
            "password",
            "tokenKey",
            "email",
            "emailVisibility",
            "verified",
        ];
        for sf in ex.fields.iter().filter(|f| f.system) {
            if c.kind == CollectionType::Auth && auth_names.contains(&sf.name.as_str()) {
                continue;
            }
            if !c.fields.iter().any(|f| f.id == sf.id || f.name == sf.name) {
                if sf.name == "id" && !append_system {
                    c.fields.insert(0, sf.clone());
                } else {
                    c.fields.push(sf.clone());
                }
            }
        }
    }
    if c.kind != CollectionType::View {
        match c.fields.iter_mut().find(|f| f.name == "id") {
            Some(f) if matches!(f.kind, FieldKind::Text(_)) => {
                // The id field is always the system text primary key.
                f.system = true;
                f.hidden = false;
                if let FieldKind::Text(o) = &mut f.kind {
                    o.primary_key = true;
                    o.required = true;
                    if o.pattern.is_empty() {
                        o.pattern = "^[a-z0-9]+$".into();
                    }
                }
            }
            _ => c.fields.insert(0, default_id_field()),
        }
    }
    if c.kind == CollectionType::Auth {
        for sf in auth_system_fields() {
            match c.fields.iter_mut().find(|f| f.name == sf.name) {
                None => c.fields.push(sf),
                Some(f) if f.type_name() != sf.type_name() || !f.system => {
                    let id = std::mem::take(&mut f.id);
                    *f = sf;
                    f.id = id;
                }
                Some(f) => {
                    f.system = true;
                    if sf.hidden {
                        f.hidden = true;
                    }
                    if sf.required() {
                        match &mut f.kind {
                            FieldKind::Password(o) => o.required = true,
                            FieldKind::Text(o) => o.required = true,
                            FieldKind::Email(o) => o.required = true,
                            _ => {}
                        }
                    }
                }
            }
        }
        if !type_changed {
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
            for key in TOKEN_KEYS {
                if let Some(o) = c.options.get_mut(*key).and_then(Value::as_object_mut) {
                    let missing = o
                        .get("secret")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty);
                    if missing {
                        o.insert("secret".into(), Value::String(random_string(50, ALPHANUM)));
                    }
                }
            }
        }
        // The unique indexes of tokenKey and email are always there.
        let has = |ixs: &[String], col: &str| {
            ixs.iter().any(|ix| {
                parse_index(ix).is_ok_and(|d| {
                    d.unique && d.columns.len() == 1 && d.columns[0].name.eq_ignore_ascii_case(col)
                })
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

    // A date bound that isn't a date is dropped, as PocketBase reads it.
    for f in c.fields.iter_mut() {
        if let FieldKind::Date(o) = &mut f.kind {
            for v in [&mut o.min, &mut o.max] {
                if !v.is_empty() && crate::util::parse_datetime(v).is_none() {
                    v.clear();
                }
            }
        }
    }
    // OAuth2 mapped fields naming no field are cleared.
    if c.kind == CollectionType::Auth {
        let names: Vec<String> = c.fields.iter().map(|f| f.name.clone()).collect();
        let mapped = c
            .options
            .get_mut("oauth2")
            .and_then(|o| o.get_mut("mappedFields"))
            .and_then(Value::as_object_mut);
        for (_, v) in mapped.into_iter().flatten() {
            if v.as_str()
                .is_some_and(|n| !n.is_empty() && !names.iter().any(|f| f == n))
            {
                *v = json!("");
            }
        }
    }
    if let Some(e) = fields_error(&c, existing, schema) {
        errs.add_nested("fields", e);
    }

    // Indexes: the first bad one, as PocketBase reports it.
    let index_problem = indexes_error(&c, existing, schema);
    if let Some(IndexProblem::Invalid(e)) = &index_problem {
        errs.add_nested("indexes", e.clone());
    }

    if c.kind == CollectionType::Auth {
        for (k, v) in auth_options_errors(&c, type_changed) {
            errs.add_nested(&k, v);
        }
    }

    if c.kind == CollectionType::View {
        let query = c.options.get("viewQuery").and_then(Value::as_str);
        if type_changed || query.is_none_or(|q| q.trim().is_empty()) {
            errs.add("fields", "validation_required", "Cannot be blank.");
            errs.add("viewQuery", "validation_required", "Cannot be blank.");
        }
        // A view stores no records: it has no write rules.
        for (key, rule) in [
            ("createRule", &c.create_rule),
            ("updateRule", &c.update_rule),
            ("deleteRule", &c.delete_rule),
        ] {
            if rule.is_some() {
                errs.add(key, "validation_nil", "Must be blank.");
            }
        }
    }
    // A column an index names but the collection lacks fails when the
    // index is created, after every other check passed.
    if let (true, Some(IndexProblem::MissingColumn(e))) = (errs.is_empty(), index_problem) {
        errs.add_nested("indexes", e);
    }
    // An index names its collection's table, whatever the definition said.
    if errs.is_empty() {
        for ix in c.indexes.iter_mut() {
            if let Ok(mut def) = parse_index(ix) {
                if def.table != c.name {
                    def.table = c.name.clone();
                    *ix = def.to_sql();
                }
            }
        }
    }
    // OAuth2 providers carry every key of PocketBase's provider config.
    let providers = c
        .options
        .get_mut("oauth2")
        .and_then(|o| o.get_mut("providers"))
        .and_then(Value::as_array_mut);
    for p in providers.into_iter().flatten() {
        if let Some(p) = p.as_object_mut() {
            for (k, v) in [
                ("authURL", json!("")),
                ("clientId", json!("")),
                ("displayName", json!("")),
                ("extra", json!({})),
                ("name", json!("")),
                ("pkce", Value::Null),
                ("tokenURL", json!("")),
                ("userInfoURL", json!("")),
            ] {
                p.entry(k).or_insert(v);
            }
        }
    }
    let _ = RULE_KEYS;
    Ok((c, errs))
}

/// The first failing rule of a collection name, in PocketBase's order.
fn name_error(c: &Collection, existing: Option<&Collection>, schema: &Schema) -> Option<Value> {
    let name = c.name.as_str();
    if name.is_empty() {
        return Some(err("validation_required", "Cannot be blank."));
    }
    if name.chars().count() > 255 {
        return Some(length_err(1, 255));
    }
    if name.to_lowercase().contains("_via_") {
        return Some(err(
            "validation_found_via",
            "The value cannot contain \"_via_\".",
        ));
    }
    if !is_name(name) {
        return Some(err(
            "validation_match_invalid",
            "Must be in a valid format.",
        ));
    }
    if let Some(ex) = existing {
        if ex.system && ex.name != name {
            return Some(err(
                "validation_collection_system_name_change",
                "System collection name cannot be changed.",
            ));
        }
    }
    if let Some(other) = schema.get(name) {
        if other.id != c.id && other.name.eq_ignore_ascii_case(name) {
            return Some(err(
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
            ));
        }
    }
    if schema.by_id(name).is_some() {
        return Some(err(
            "validation_collection_name_id_duplicate",
            "The name must not match an existing collection id.",
        ));
    }
    let renamed = existing.is_none_or(|ex| ex.name != name);
    if renamed && is_internal_table(name) {
        return Some(err(
            "validation_collection_name_invalid",
            "The name shouldn't match with an existing internal table.",
        ));
    }
    None
}

/// The `fields` error: the first failing of PocketBase's list rules
/// (duplicates, system fields, type changes, reserved auth names), else
/// each field's own settings errors by position.
fn fields_error(c: &Collection, existing: Option<&Collection>, schema: &Schema) -> Option<Value> {
    let mut names = std::collections::HashSet::new();
    for (i, f) in c.fields.iter().enumerate() {
        if !names.insert(f.name.to_lowercase()) {
            return Some(json!({i.to_string(): {"name": {
                "code": "validation_duplicated_field_name",
                "message": format!("Duplicated or invalid field name {}.", f.name),
                "params": {"fieldName": f.name}}}}));
        }
    }
    if c.fields.is_empty() {
        return Some(err("validation_required", "Cannot be blank."));
    }
    if let (Some(ex), false) = (existing, c.kind == CollectionType::View) {
        for of in ex.fields.iter().filter(|f| f.system) {
            match c.fields.iter().find(|f| f.id == of.id) {
                Some(nf) if nf.name == of.name => {}
                _ => {
                    return Some(err(
                        "validation_system_field_change",
                        "System fields cannot be deleted or renamed.",
                    ))
                }
            }
        }
        let changed: Map<String, Value> = c
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                ex.fields
                    .iter()
                    .any(|of| of.id == f.id && of.type_name() != f.type_name())
            })
            .map(|(i, _)| {
                (
                    i.to_string(),
                    err(
                        "validation_field_type_change",
                        "Field type cannot be changed.",
                    ),
                )
            })
            .collect();
        if !changed.is_empty() {
            return Some(Value::Object(changed));
        }
    }
    if c.kind == CollectionType::Auth {
        let reserved: Map<String, Value> = c
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| ["passwordConfirm", "oldPassword"].contains(&f.name.as_str()))
            .map(|(i, _)| {
                (
                    i.to_string(),
                    json!({"name": err("validation_reserved_field_name",
                        "The field name is reserved and cannot be used.")}),
                )
            })
            .collect();
        if !reserved.is_empty() {
            return Some(Value::Object(reserved));
        }
    }
    let pk_count = c.fields.iter().filter(|f| f.is_primary_key()).count();
    let mut out = Map::new();
    for (i, f) in c.fields.iter().enumerate() {
        let old = existing.and_then(|ex| ex.fields.iter().find(|of| of.id == f.id));
        let old_autodate = old.and_then(|of| match &of.kind {
            FieldKind::Autodate(o) => Some(super::field::OldAutodate {
                on_create: o.on_create,
                on_update: o.on_update,
            }),
            _ => None,
        });
        let mut fe = f.validate_settings(pk_count, old_autodate);
        if let FieldKind::Relation(o) = &f.kind {
            if let Some(e) = relation_target_error(c, &o.collection_id, old, schema) {
                fe.insert("collectionId".into(), e);
            }
        }
        if !fe.is_empty() {
            out.insert(i.to_string(), Value::Object(fe));
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// A relation's target: required, unchanged on update, an existing
/// collection named by id (or the collection itself), not a view.
fn relation_target_error(
    c: &Collection,
    target: &str,
    old: Option<&Field>,
    schema: &Schema,
) -> Option<Value> {
    if target.is_empty() {
        return Some(err("validation_required", "Cannot be blank."));
    }
    if let Some(FieldKind::Relation(o)) = old.map(|f| &f.kind) {
        if o.collection_id != target {
            return Some(err(
                "validation_field_relation_change",
                "The relation collection cannot be changed.",
            ));
        }
    }
    let kind = match schema.by_id(target) {
        Some(t) => t.kind,
        None if target == c.id => c.kind,
        None => {
            return Some(err(
                "validation_field_relation_missing_collection",
                "The relation collection doesn't exist.",
            ))
        }
    };
    if c.kind != CollectionType::View && kind == CollectionType::View {
        return Some(err(
            "validation_relation_field_non_view_base_collection",
            "Only view collections are allowed to have relations to other views.",
        ));
    }
    None
}

enum IndexProblem {
    /// A validation error (`indexes.N`).
    Invalid(Value),
    /// A column the collection doesn't have: reported as the failure to
    /// create the index, only when everything else is valid.
    MissingColumn(Value),
}

/// The first problem of the collection's indexes, in PocketBase's order.
fn indexes_error(
    c: &Collection,
    existing: Option<&Collection>,
    schema: &Schema,
) -> Option<IndexProblem> {
    let invalid = |i: usize, e: Value| Some(IndexProblem::Invalid(json!({i.to_string(): e})));
    if c.kind == CollectionType::View && !c.indexes.is_empty() {
        return Some(IndexProblem::Invalid(err(
            "validation_indexes_not_supported",
            "View collections don't support indexes.",
        )));
    }
    let mut names = std::collections::HashSet::new();
    let mut defs = std::collections::HashSet::new();
    let mut missing = None;
    for (i, ix) in c.indexes.iter().enumerate() {
        let Ok(def) = parse_index(ix) else {
            return invalid(
                i,
                err(
                    "validation_invalid_index_expression",
                    "Invalid CREATE INDEX expression.",
                ),
            );
        };
        if !names.insert(def.name.to_lowercase()) {
            return invalid(
                i,
                err(
                    "validation_duplicated_index_name",
                    "The index name already exists.",
                ),
            );
        }
        let old_name = existing.map(|e| e.name.as_str()).unwrap_or("");
        let used = schema.all().iter().find(|o| {
            !o.name.eq_ignore_ascii_case(old_name)
                && !o.name.eq_ignore_ascii_case(&c.name)
                && o.id != c.id
                && o.indexes.iter().any(|oi| {
                    parse_index(oi).is_ok_and(|od| od.name.eq_ignore_ascii_case(&def.name))
                })
        });
        if let Some(o) = used {
            return invalid(
                i,
                json!({"code": "validation_existing_index_name",
                    "message": format!("The index name is already used in {} collection.", o.name),
                    "params": {"usedTableName": o.name}}),
            );
        }
        let mut norm = def.clone();
        norm.name = String::new();
        norm.table = String::new();
        if !defs.insert(norm.to_sql()) {
            return invalid(
                i,
                err(
                    "validation_duplicated_index_definition",
                    "The index definition already exists.",
                ),
            );
        }
        if missing.is_none() {
            if let Some(col) = def.columns.iter().find(|col| {
                !c.fields
                    .iter()
                    .any(|f| f.name.eq_ignore_ascii_case(&col.name))
            }) {
                missing = Some(IndexProblem::MissingColumn(json!({i.to_string(): {
                    "code": "validation_invalid_index_expression",
                    "message": format!("Failed to create index {} - SQL logic error: no such column: {} (1).", def.name, col.name)}})));
            }
        }
    }
    missing
}

/// A `{subject, body}` template: both required.
fn template_errors(t: Option<&Value>) -> Option<Value> {
    let mut e = Map::new();
    for k in ["subject", "body"] {
        let blank = t
            .and_then(|t| t.get(k))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if blank {
            e.insert(k.into(), err("validation_required", "Cannot be blank."));
        }
    }
    (!e.is_empty()).then_some(Value::Object(e))
}

/// An integer option: required (non-zero), then within `min..=max`.
fn required_range(v: Option<&Value>, min: i64, max: Option<i64>) -> Option<Value> {
    let n = v.and_then(Value::as_f64).unwrap_or(0.0);
    if n == 0.0 {
        return Some(err("validation_required", "Cannot be blank."));
    }
    if n < min as f64 {
        return Some(json!({"code": "validation_min_greater_equal_than_required",
            "message": format!("Must be no less than {min}."), "params": {"threshold": min}}));
    }
    match max {
        Some(max) if n > max as f64 => {
            Some(json!({"code": "validation_max_less_equal_than_required",
            "message": format!("Must be no greater than {max}."), "params": {"threshold": max}}))
        }
        _ => None,
    }
}

/// PocketBase's checks of an auth collection's options (rules are checked
/// by the caller): option key → its errors.
fn auth_options_errors(c: &Collection, type_changed: bool) -> Map<String, Value> {
    let o = &c.options;
    let get = |k: &str| o.get(k);
    let sub = |k: &str, k2: &str| o.get(k).and_then(|v| v.get(k2));
    let on = |k: &str| sub(k, "enabled").and_then(Value::as_bool).unwrap_or(false);
    let mut out = Map::new();
    if get("manageRule").and_then(Value::as_str) == Some("") {
        out.insert(
            "manageRule".into(),
            err("validation_nil_or_not_empty_required", "Cannot be blank."),
        );
    }
    if let Some(e) = template_errors(sub("authAlert", "emailTemplate")) {
        out.insert("authAlert".into(), json!({"emailTemplate": e}));
    }
    if on("passwordAuth") {
        let empty = sub("passwordAuth", "identityFields")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if empty {
            out.insert(
                "passwordAuth".into(),
                json!({"identityFields": err("validation_required", "Cannot be blank.")}),
            );
        }
    }
    if let Some(e) = get("oauth2").and_then(super::oauth2::validate_options) {
        out.insert("oauth2".into(), e);
    }
    let mut otp = Map::new();
    if on("otp") {
        if let Some(e) = required_range(sub("otp", "duration"), 10, Some(86400)) {
            otp.insert("duration".into(), e);
        }
        if let Some(e) = required_range(sub("otp", "length"), 4, None) {
            otp.insert("length".into(), e);
        }
    }
    if let Some(e) = template_errors(sub("otp", "emailTemplate")) {
        otp.insert("emailTemplate".into(), e);
    }
    if !otp.is_empty() {
        out.insert("otp".into(), Value::Object(otp));
    }
    if on("mfa") {
        if let Some(e) = required_range(sub("mfa", "duration"), 10, Some(86400)) {
            out.insert("mfa".into(), json!({"duration": e}));
        }
    }
    for key in TOKEN_KEYS {
        let mut e = Map::new();
        let secret = sub(key, "secret").and_then(Value::as_str).unwrap_or("");
        if secret.is_empty() {
            e.insert(
                "secret".into(),
                err("validation_required", "Cannot be blank."),
            );
        } else if !(30..=255).contains(&secret.chars().count()) {
            e.insert("secret".into(), length_err(30, 255));
        }
        if let Some(d) = required_range(sub(key, "duration"), 10, Some(94670856)) {
            e.insert("duration".into(), d);
        }
        if !e.is_empty() {
            out.insert(key.to_string(), Value::Object(e));
        }
    }
    for key in [
        "verificationTemplate",
        "resetPasswordTemplate",
        "confirmEmailChangeTemplate",
    ] {
        if let Some(e) = template_errors(get(key)) {
            out.insert(key.into(), e);
        }
    }
    if !out.is_empty() || type_changed {
        return out;
    }
    // Checked only once every option above is valid.
    if on("mfa") {
        let methods = ["passwordAuth", "oauth2", "otp"]
            .iter()
            .filter(|k| on(k))
            .count();
        if methods < 2 {
            out.insert(
                "mfa".into(),
                json!({"enabled": err("validation_mfa_not_enough_auths",
                "MFA requires at least 2 auth methods to be enabled.")}),
            );
            return out;
        }
    }
    if on("passwordAuth") {
        for name in c.identity_fields() {
            let e = if !c.has_field(&name) {
                Some(json!({"code": "validation_missing_field",
                    "message": format!("Invalid or missing field {name}."), "params": {"fieldName": name}}))
            } else if !c.indexes.iter().any(|ix| {
                parse_index(ix).is_ok_and(|d| {
                    d.unique
                        && d.columns.len() == 1
                        && d.columns[0].name.eq_ignore_ascii_case(&name)
                })
            }) {
                Some(json!({"code": "validation_missing_unique_constraint",
                    "message": format!("The field {name} doesn't have a UNIQUE constraint."),
                    "params": {"fieldName": name}}))
            } else {
                None
            };
            if let Some(e) = e {
                out.insert("passwordAuth".into(), json!({"identityFields": e}));
                break;
            }
        }
    }
    out
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
