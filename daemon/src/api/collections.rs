//! `/api/collections`: list, view, create, update, delete, truncate, import
//! (superusers only). Collection changes run in the writer's transaction
//! together with their table changes; the schema snapshot is then reloaded.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::schema::parse::{build_checked, merge_update};
use crate::schema::{Collection, CollectionType, Schema};
use crate::store::catalog;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn find(app: &App, name: &str) -> ApiResult<Arc<Collection>> {
    app.store
        .schema()
        .get(name)
        .cloned()
        .ok_or_else(ApiError::not_found)
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let schema = app.store.schema();
    crate::records::render::check_fields(req.q("fields").unwrap_or(""))?;
    let page = super::records::parse_int(req.q("page"))?
        .filter(|p| *p > 0)
        .unwrap_or(1);
    let per_page = super::records::parse_int(req.q("perPage"))?
        .filter(|p| *p > 0)
        .unwrap_or(super::records::DEFAULT_PER_PAGE)
        .min(super::records::MAX_PER_PAGE);
    // Filter and sort run through the filter compiler against the
    // `_collections` table, on the columns PocketBase allows.
    let meta = meta_collection();
    let meta_schema = Schema::new(vec![meta.clone()]).with_engine(schema.engine());
    let meta = Arc::new(meta);
    let info = crate::filter::RequestInfo::default();
    let ctx = crate::filter::Ctx::new(&meta_schema, &meta, &info, true);
    let mut q = crate::filter::Query::new(&ctx).map_err(ApiError::internal)?;
    let bad = |_| ApiError::bad(crate::filter::GENERIC_MESSAGE);
    q.filter_str(req.q("filter").unwrap_or("")).map_err(bad)?;
    q.sort(req.q("sort").unwrap_or("")).map_err(bad)?;
    let c = q.finish().map_err(bad)?;
    let lq = crate::store::records::ListQuery {
        order: c.order_by.clone(),
        order_params: c.order_params.clone(),
        cond: crate::store::records::Cond {
            joins: c.joins,
            join_params: c.join_params,
            sql: c.where_sql,
            params: c.params,
            distinct: c.distinct,
        },
        limit: per_page,
        offset: (page - 1).saturating_mul(per_page),
        ranges: Vec::new(),
    };
    let skip_total = matches!(req.q("skipTotal"), Some("1" | "true" | "t" | "TRUE"));
    let (rows, total) = app
        .store
        .read(move |conn| {
            let rows = crate::store::records::list(conn, &meta, &lq)?;
            let total = if skip_total {
                -1
            } else {
                crate::store::records::count(conn, &meta, &lq.cond)?
            };
            Ok((rows, total))
        })
        .await?;
    let page_items: Vec<Value> = rows
        .iter()
        .filter_map(|r| r.get("id").and_then(Value::as_str))
        .filter_map(|id| schema.by_id(id))
        .map(|c| {
            crate::records::render::pick_fields(c.to_api_json(), req.q("fields").unwrap_or(""))
        })
        .collect();
    Ok(Resp::ok(&json!({
        "page": page,
        "perPage": per_page,
        "totalItems": total,
        "totalPages": if total < 0 { -1 } else { (total + per_page - 1) / per_page },
        "items": page_items,
    })))
}

/// The `_collections` table as a collection, for filtering and sorting the
/// collections list on the columns PocketBase allows.
fn meta_collection() -> Collection {
    let f = |name: &str, ty: &str| -> crate::schema::Field {
        serde_json::from_value(json!({"name": name, "type": ty, "id": name})).expect("static field")
    };
    Collection {
        id: "_collections".into(),
        name: "_collections".into(),
        kind: crate::schema::CollectionType::Base,
        system: true,
        fields: vec![
            f("id", "text"),
            f("name", "text"),
            f("type", "text"),
            f("system", "bool"),
            f("created", "text"),
            f("updated", "text"),
        ],
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
    }
}

pub async fn view(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let c = find(&app, req.param("collection"))?.to_api_json();
    Ok(Resp::ok(&crate::records::render::pick_fields(
        c,
        req.q("fields").unwrap_or(""),
    )))
}

/// Rule syntax and field names, checked against the new schema; the API
/// rules of a system collection may not change.
fn check_rules(
    schema: &Schema,
    c: &Collection,
    existing: Option<&Collection>,
    errs: &mut FieldErrors,
) {
    let mut rules: Vec<(&str, Option<&str>)> = vec![
        ("listRule", c.list_rule.as_deref()),
        ("viewRule", c.view_rule.as_deref()),
        ("createRule", c.create_rule.as_deref()),
        ("updateRule", c.update_rule.as_deref()),
        ("deleteRule", c.delete_rule.as_deref()),
    ];
    if c.is_auth() {
        rules.push(("authRule", c.auth_rule()));
        rules.push(("manageRule", c.manage_rule()));
    }
    let old_rule = |key: &str| -> Option<String> {
        let ex = existing?;
        match key {
            "listRule" => ex.list_rule.clone(),
            "viewRule" => ex.view_rule.clone(),
            "createRule" => ex.create_rule.clone(),
            "updateRule" => ex.update_rule.clone(),
            "deleteRule" => ex.delete_rule.clone(),
            _ => ex
                .options
                .get(key)
                .and_then(Value::as_str)
                .map(String::from),
        }
    };
    // Validate against a schema that contains the new definition (under a
    // stand-in name while its own name is invalid).
    let mut all: Vec<Collection> = schema
        .all()
        .iter()
        .filter(|x| x.id != c.id)
        .map(|x| (**x).clone())
        .collect();
    let mut me = c.clone();
    if !crate::schema::parse::is_name(&me.name) {
        me.name = format!("_{}", me.id);
    }
    all.push(me);
    let next = Schema::new(all);
    let Some(me) = next.by_id(&c.id).cloned() else {
        return;
    };
    for (key, rule) in rules {
        if errs.0.contains_key(key) {
            continue;
        }
        if let Some(r) = rule {
            if let Err(e) = crate::rules::validate_rule(&next, &me, r) {
                errs.add(
                    key,
                    "validation_invalid_rule",
                    format!("Invalid rule. Raw error: {e}"),
                );
                continue;
            }
        }
        if existing.is_some_and(|ex| ex.system) && old_rule(key).as_deref() != rule {
            errs.add(
                key,
                "validation_collection_system_rule_change",
                "System collection API rule cannot be changed.",
            );
        }
    }
    // The MFA rule, when MFA is on and the other options are valid.
    let mfa = c.options.get("mfa");
    let mfa_on = mfa
        .and_then(|m| m.get("enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mfa_rule = mfa
        .and_then(|m| m.get("rule"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if c.is_auth() && mfa_on && !mfa_rule.is_empty() && !errs.0.contains_key("mfa") {
        if let Err(e) = crate::rules::validate_rule(&next, &me, mfa_rule) {
            errs.add_nested(
                "mfa",
                json!({"rule": {"code": "validation_invalid_rule",
                    "message": format!("Invalid rule. Raw error: {e}.")}}),
            );
        }
    }
}

/// Whether a collection body can't be read into PocketBase's collection
/// model at all (a value of the wrong JSON type), which PocketBase answers
/// with its generic formatting error.
fn bad_shape(input: &Value) -> bool {
    // An unknown field type fails the body decoding, as in PocketBase.
    let known = |f: &Value| {
        f.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| crate::schema::field::FIELD_TYPES.contains(&t))
    };
    let not =
        |k: &str, ok: fn(&Value) -> bool| input.get(k).is_some_and(|v| !v.is_null() && !ok(v));
    let objects = [
        "authAlert",
        "oauth2",
        "passwordAuth",
        "mfa",
        "otp",
        "authToken",
        "passwordResetToken",
        "emailChangeToken",
        "verificationToken",
        "fileToken",
        "verificationTemplate",
        "resetPasswordTemplate",
        "confirmEmailChangeTemplate",
    ];
    let strings = [
        "listRule",
        "viewRule",
        "createRule",
        "updateRule",
        "deleteRule",
        "authRule",
        "manageRule",
        "name",
        "type",
        "id",
    ];
    not("fields", Value::is_array)
        || input
            .get("fields")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.iter().all(known))
        || strings.iter().any(|k| not(k, Value::is_string))
        || not("indexes", Value::is_array)
        || input
            .get("indexes")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.iter().all(Value::is_string))
        || not("system", Value::is_boolean)
        || objects.iter().any(|k| not(k, Value::is_object))
}

async fn save(
    app: &Arc<App>,
    input: &Value,
    existing: Option<Arc<Collection>>,
) -> ApiResult<Collection> {
    let schema = app.store.schema();
    let action = if existing.is_some() {
        "update"
    } else {
        "create"
    };
    let fail =
        |errs: FieldErrors| ApiError::validation(format!("Failed to {action} collection."), errs);
    if bad_shape(input) {
        return Err(ApiError::bad(
            "Failed to load the submitted data due to invalid formatting.",
        ));
    }
    // A view's fields come from its query (whatever the body says).
    let is_view = match input.get("type").and_then(Value::as_str) {
        Some("view") => true,
        Some("") | None => existing
            .as_ref()
            .is_some_and(|e| e.kind == CollectionType::View),
        Some(_) => false,
    };
    let mut view_sql = None;
    let mut view_err = None;
    let mut input = input.clone();
    let query = input
        .get("viewQuery")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if is_view && !query.trim().is_empty() {
        let name = input
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let sch = schema.clone();
        match app
            .store
            .read(move |conn| Ok(catalog::prepare_view(conn, &sch, &name, &query)))
            .await?
        {
            Ok(v) => {
                input["fields"] = Value::Array(v.fields.clone());
                view_sql = Some(v.sql);
            }
            Err(reason) => {
                input["fields"] = json!([]);
                view_err = Some(reason);
            }
        }
    } else if is_view {
        input["fields"] = json!([]);
    }
    let input = &input;
    let (mut c, mut errs) =
        build_checked(input, existing.as_deref(), &schema, false).map_err(fail)?;
    if let Some(reason) = view_err {
        let mut reason: String = reason.chars().take(500).collect();
        if !reason.ends_with('.') {
            reason.push('.');
        }
        errs.add(
            "viewQuery",
            "validation_invalid_view_query",
            format!("Invalid query - {reason}"),
        );
        if reason.starts_with("missing required id column") {
            errs.0.insert(
                "fields".into(),
                json!({"code": "validation_missing_primary_key",
                    "message": "Missing or invalid \"id\" PK field."}),
            );
        }
    }
    check_rules(&schema, &c, existing.as_deref(), &mut errs);
    if !errs.is_empty() {
        return Err(fail(errs));
    }
    let now = crate::util::now_string();
    if existing.is_none() {
        c.created = now.clone();
    }
    c.updated = now;
    let c2 = c.clone();
    app.store
        .write(move |conn| match (&existing, view_sql) {
            (None, Some(sql)) => catalog::create_view(conn, &c2, &sql),
            (Some(old), Some(sql)) => catalog::update_view(conn, old, &c2, &sql),
            (None, None) => catalog::create(conn, &c2),
            (Some(old), None) => catalog::update(conn, old, &c2),
        })
        .await?;
    app.store.reload_schema().await?;
    Ok(c)
}

pub async fn create(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = Value::Object(
        req.json_body_or("Failed to load the collection type data due to invalid formatting.")?,
    );
    let c = save(&app, &body, None).await?;
    let after = c.to_api_json();
    audit_change(
        &app,
        &req,
        "collection.create",
        &c.name,
        json!({"after": after}),
    )
    .await;
    Ok(Resp::ok(&after))
}

/// Appends an audit entry for a collection change by this request.
async fn audit_change(app: &App, req: &Req, action: &'static str, name: &str, diff: Value) {
    app.audit(crate::store::audit::Entry {
        action,
        actor: super::auth::actor(req),
        ip: req.client_ip.to_string(),
        target: format!("collections/{name}"),
        diff,
    })
    .await;
}

pub async fn update(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let existing = find(&app, req.param("collection"))?;
    crate::sync::guard_schema_edit(&app, &existing)?;
    let body = Value::Object(
        req.json_body_or("Failed to load the collection type data due to invalid formatting.")?,
    );
    // PocketBase saves the collection under the id in the body: another
    // collection's id, or none, is not found.
    if body
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| id != existing.id)
    {
        return Err(ApiError::not_found());
    }
    let before = existing.to_api_json();
    let merged = merge_update(&before, &body);
    let c = save(&app, &merged, Some(existing)).await?;
    let after = c.to_api_json();
    let d = crate::store::audit::diff(&before, &after);
    audit_change(&app, &req, "collection.update", &c.name, d).await;
    Ok(Resp::ok(&after))
}

pub async fn delete(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let c = find(&app, req.param("collection"))?;
    crate::sync::guard_schema_edit(&app, &c)?;
    if c.system {
        return Err(ApiError::bad("Failed to delete collection."));
    }
    let schema = app.store.schema();
    // A collection a view reads stays (as PocketBase: the views are saved
    // again and fail).
    if views_reading(&schema, &c.name).next().is_some() {
        return Err(ApiError::bad("Failed to delete collection."));
    }
    if let Some(child) = schema
        .all()
        .iter()
        .find(|o| o.id != c.id && o.relations_to(&c.id).next().is_some())
    {
        return Err(ApiError::bad(format!(
            "Failed to delete collection probably due to existing reference in {}.",
            child.name
        )));
    }
    let (name, before) = (c.name.clone(), c.to_api_json());
    app.store
        .write(move |conn| catalog::delete(conn, &c))
        .await?;
    app.store.reload_schema().await?;
    audit_change(
        &app,
        &req,
        "collection.delete",
        &name,
        json!({"before": before}),
    )
    .await;
    Ok(Resp::empty(204))
}

pub async fn truncate(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let c = find(&app, req.param("collection"))?;
    if c.kind == CollectionType::View {
        return Err(ApiError::bad(
            "View collections cannot be truncated since they don't store their own records.",
        ));
    }
    if c.name == "_superusers" {
        return Err(ApiError::bad("Failed to truncate collection (most likely due to required cascade delete record references)."));
    }
    let schema = app.store.schema();
    let name = c.name.clone();
    app.store
        .write_changes(move |conn, changes| {
            // Record by record, so relations cascade as on delete (and each
            // deleted record is a realtime delete event, as in PocketBase).
            for id in crate::store::lookup::all_ids(conn, &c)? {
                if crate::store::records::fetch_by_id(conn, &c, &id)?.is_some() {
                    crate::records::delete_cascade(conn, &schema, &c, &id, 0, changes)?;
                }
            }
            Ok(())
        })
        .await?;
    audit_change(&app, &req, "collection.truncate", &name, json!({})).await;
    Ok(Resp::empty(204))
}

pub async fn import(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let list = match body.get("collections") {
        Some(Value::Array(l)) if !l.is_empty() => l,
        _ => {
            let mut e = FieldErrors::new();
            e.add("collections", "validation_required", "Cannot be blank.");
            return Err(ApiError::validation(
                "An error occurred while validating the submitted data.",
                e,
            ));
        }
    };
    // PocketBase decodes the list into collections first: an entry that is
    // not an object (nor null) fails the whole request.
    if list.iter().any(|c| !c.is_object() && !c.is_null()) {
        return Err(ApiError::bad(
            "An error occurred while loading the submitted data.",
        ));
    }
    let delete_missing = body
        .get("deleteMissing")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    crate::sync::guard_import(&app, list, delete_missing)?;
    // Validate every definition against the schema as it will be after the
    // import, then apply all of them in one transaction.
    let schema = app.store.schema();
    let (planned, errs_all) = plan_import(&schema, list);
    if let Some((_, Value::String(first))) = errs_all.iter().next() {
        let mut e = FieldErrors::new();
        e.add(
            "collections",
            "validation_collections_import_failure",
            first.clone(),
        );
        return Err(ApiError::validation("Failed to import collections.", e));
    }
    let to_delete: Vec<Arc<Collection>> = if delete_missing {
        schema
            .all()
            .iter()
            .filter(|c| !c.system && !planned.iter().any(|(_, p)| p.id == c.id))
            .cloned()
            .collect()
    } else {
        vec![]
    };
    let summary = json!({
        "created": planned.iter().filter(|(o, _)| o.is_none()).map(|(_, n)| n.name.clone()).collect::<Vec<_>>(),
        "updated": planned.iter().filter(|(o, _)| o.is_some()).map(|(_, n)| n.name.clone()).collect::<Vec<_>>(),
        "deleted": to_delete.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
    });
    let conn_schema = schema.clone();
    app.store
        .write(move |conn| {
            for (old, new) in &planned {
                match old {
                    None => catalog::create(conn, new)?,
                    Some(o) => catalog::update(conn, o, new)?,
                }
            }
            for c in &to_delete {
                catalog::delete(conn, c)?;
            }
            let after = staged_schema(&conn_schema, &planned, &to_delete);
            let views: Vec<&Collection> = planned
                .iter()
                .map(|(_, c)| c)
                .filter(|c| c.kind == CollectionType::View)
                .collect();
            catalog::make_views(conn, &after, &views)?;
            Ok(())
        })
        .await?;
    app.store.reload_schema().await?;
    audit_change(&app, &req, "collections.import", "*", summary).await;
    Ok(Resp::empty(204))
}

/// Collections to create (`None`) or update (the current one), built.
pub type Planned = Vec<(Option<Arc<Collection>>, Collection)>;

/// Plans a collections import: every definition of `list` built and
/// validated against `schema` as it will be after the import. Returns what
/// to create or update, and the failures by position in `list`
/// (PocketBase's message for each). `keepd import pocketbase` uses it too.
pub fn plan_import(schema: &Schema, list: &[Value]) -> (Planned, Map<String, Value>) {
    let mut planned: Planned = Vec::new();
    let mut staged: Vec<Collection> = schema.all().iter().map(|c| (**c).clone()).collect();
    // First pass: register names/ids so relations between imported ones resolve.
    for item in list {
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        if !staged
            .iter()
            .any(|c| c.id == id || c.name.eq_ignore_ascii_case(name))
        {
            if let Ok(mut c) = crate::schema::parse::collection_from_json(item) {
                if c.id.is_empty() {
                    c.id = format!(
                        "pbc_{}",
                        crate::util::crc32_checksum(&format!("{}{}", c.kind.as_str(), c.name))
                    );
                }
                c.fields.clear();
                staged.push(c);
            }
        }
    }
    let staged_schema = Schema::new(staged);
    let mut errs_all = Map::new();
    // Second pass: build each collection; its rules wait for the third, as
    // they may read fields of collections built later in the list.
    let mut built_all: Vec<(usize, Option<Arc<Collection>>, Collection)> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
        let existing = schema.by_id(id).or_else(|| schema.get(name)).cloned();
        let mut input = match &existing {
            Some(e) => merge_update(&e.to_api_json(), item),
            None => item.clone(),
        };
        // A view's fields are inferred from its query when its SQLite view
        // is made (`catalog::make_views`); until then, its id.
        if input.get("type").and_then(Value::as_str) == Some("view") {
            input["fields"] = json!([crate::schema::view::id_field()]);
        }
        let mut sch = staged_schema.clone();
        if existing.is_none() {
            // Let the new collection be found under its own id when it is built.
            let others: Vec<Collection> = sch
                .all()
                .iter()
                .filter(|c| !c.name.eq_ignore_ascii_case(name))
                .map(|c| (**c).clone())
                .collect();
            sch = Schema::new(others);
        }
        match crate::schema::parse::build_for_import(&input, existing.as_deref(), &sch) {
            Ok(c) => built_all.push((i, existing, c)),
            Err(e) => import_error(&mut errs_all, i, &input, name, e),
        }
    }
    // Third pass: rules, against the schema as it will be after the import.
    let mut after: Vec<Collection> = schema
        .all()
        .iter()
        .filter(|c| !built_all.iter().any(|(_, _, b)| b.id == c.id))
        .map(|c| (**c).clone())
        .collect();
    after.extend(built_all.iter().map(|(_, _, b)| b.clone()));
    let after = Schema::new(after).with_engine(schema.engine());
    for (i, existing, mut c) in built_all {
        let mut errs = FieldErrors::new();
        check_rules(&after, &c, existing.as_deref(), &mut errs);
        if !errs.is_empty() {
            let name = c.name.clone();
            import_error(&mut errs_all, i, &list[i], &name, errs);
            continue;
        }
        let now = crate::util::now_string();
        if existing.is_none() {
            c.created = now.clone();
        }
        c.updated = now;
        planned.push((existing, c));
    }
    (planned, errs_all)
}

/// One collection's import failure, worded as PocketBase words it.
fn import_error(
    errs_all: &mut Map<String, Value>,
    i: usize,
    input: &Value,
    name: &str,
    e: FieldErrors,
) {
    let id = match input.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => {
            let kind = input.get("type").and_then(Value::as_str).unwrap_or("base");
            format!(
                "pbc_{}",
                crate::util::crc32_checksum(&format!("{kind}{name}"))
            )
        }
    };
    // PocketBase prints the failures as an indented map of field → message.
    let flat: Map<String, Value> = e
        .into_value()
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let m = v
                        .get("message")
                        .and_then(Value::as_str)
                        .map(|m| m.trim_end_matches('.').to_string());
                    (k.clone(), Value::String(m.unwrap_or_else(|| v.to_string())))
                })
                .collect()
        })
        .unwrap_or_default();
    let pretty = serde_json::to_string_pretty(&Value::Object(flat)).unwrap_or_default();
    errs_all.insert(
        i.to_string(),
        Value::String(format!(
            "Data validations failed for collection {name:?} ({id}):\n{pretty}"
        )),
    );
}

/// `GET /api/collections/meta/scaffolds` (superusers).
pub async fn scaffolds(_app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    Ok(Resp::ok(&crate::schema::parse::scaffolds()))
}

/// The view collections whose query reads the collection `name`.
pub fn views_reading<'a>(
    schema: &'a Schema,
    name: &'a str,
) -> impl Iterator<Item = &'a Arc<Collection>> + 'a {
    schema.all().iter().filter(move |v| {
        v.kind == CollectionType::View
            && v.name != name
            && v.options
                .get("viewQuery")
                .and_then(Value::as_str)
                .and_then(|q| crate::schema::view::plan(q, schema, &v.name).ok())
                .is_some_and(|p| p.sources.iter().any(|s| s.eq_ignore_ascii_case(name)))
    })
}

/// `POST /api/collections/meta/dry-run-view`: the fields a view query would
/// get and up to ten of its rows, nothing saved (PocketBase's dashboard
/// builds a view with it).
pub async fn dry_run_view(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let query = body
        .get("query")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let invalid = |e: Value| {
        let mut errs = FieldErrors::new();
        errs.add_nested("query", e);
        ApiError::validation(
            "An error occurred while validating the submitted data.",
            errs,
        )
    };
    if query.is_empty() {
        return Err(invalid(
            json!({"code": "validation_required", "message": "Cannot be blank."}),
        ));
    }
    if query.chars().count() > crate::schema::view::MAX_QUERY_LEN {
        return Err(invalid(json!({"code": "validation_length_out_of_range",
            "message": "The length must be between 0 and 5000.",
            "params": {"max": 5000, "min": 0}})));
    }
    let schema = app.store.schema();
    let temp = format!(
        "temp_view_{}",
        crate::util::random_string(5, crate::util::ALPHANUM)
    );
    let out = app
        .store
        .read(move |conn| {
            let fail = |reason: String| {
                let mut reason: String = reason.chars().take(500).collect();
                if !reason.ends_with('.') {
                    reason.push('.');
                }
                ApiError::bad(format!("Invalid view query. Raw error: \n{reason}"))
            };
            let v = catalog::prepare_view(conn, &schema, &temp, &query).map_err(fail)?;
            let c = crate::schema::parse::collection_from_json(&json!({
                "id": format!("pbc_{}", crate::util::crc32_checksum(&format!("view{temp}"))),
                "name": temp, "type": "view", "fields": v.fields,
            }))
            .map_err(|_| fail("invalid view fields".into()))?;
            let rows = catalog::sample_view(conn, &c, &v.sql, 10).map_err(fail)?;
            let mut seen = std::collections::HashSet::new();
            let mut sample = Vec::with_capacity(rows.len());
            for mut r in rows {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                if id.is_empty() {
                    return Err(fail(
                        "the query could return records with empty or invalid ids".into(),
                    ));
                }
                if !seen.insert(id.to_string()) {
                    return Err(fail(
                        "the query could return records with non-unique ids".into(),
                    ));
                }
                r.retain(|k, _| !c.is_hidden(k));
                r.insert("collectionId".into(), json!(c.id));
                r.insert("collectionName".into(), json!(c.name));
                sample.push(Value::Object(r));
            }
            Ok(json!({"fields": c.fields, "sample": sample}))
        })
        .await?;
    Ok(Resp::ok(&out))
}

/// The schema once `planned` is saved and `deleted` gone.
pub fn staged_schema(schema: &Schema, planned: &Planned, deleted: &[Arc<Collection>]) -> Schema {
    let mut all: Vec<Collection> = schema
        .all()
        .iter()
        .filter(|c| {
            !deleted.iter().any(|d| d.id == c.id) && !planned.iter().any(|(_, p)| p.id == c.id)
        })
        .map(|c| (**c).clone())
        .collect();
    all.extend(planned.iter().map(|(_, c)| c.clone()));
    Schema::new(all).with_engine(schema.engine())
}

/// `GET /api/collections/meta/oauth2-providers` (superusers): every OAuth2
/// provider keepd knows — PocketBase's list, names, display names and order
/// as its 0.40.6 answers them, with keepd's own letter-mark SVG logos —,
/// which its dashboard reads to add and edit a collection's providers.
pub async fn oauth2_providers(_app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let mut r = Resp::empty(200);
    r.body = bytes::Bytes::from_static(crate::auth::oauth2_presets::PROVIDERS_LIST.as_bytes());
    r.content_type = "application/json";
    Ok(r)
}
