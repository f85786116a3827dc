//! `/api/collections/{collection}/records`: list, view, create, update,
//! delete — with API rules, expand, fields and PocketBase's JSON shapes.

use crate::app::App;
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::rules::{self, RequestCtx};
use crate::schema::record::{self as rv, Setter};
use crate::schema::{Collection, FieldKind, Schema};
use crate::store::records::{self as rs, Cond};
use crate::store::Changes;
use crate::util::{new_record_id, now_string, random_string, ALPHANUM};
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub const DEFAULT_PER_PAGE: i64 = 30;
pub const MAX_PER_PAGE: i64 = 1000;
/// How deep `expand` may nest (PocketBase: 6).
pub const MAX_EXPAND_DEPTH: usize = 6;

pub(crate) fn collection(app: &App, name: &str) -> ApiResult<(Arc<Schema>, Arc<Collection>)> {
    let schema = app.store.schema();
    let c = schema
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Missing collection context.".into()))?;
    Ok((schema, c))
}

pub(crate) fn request_ctx(req: &Req, body: Map<String, Value>) -> RequestCtx {
    RequestCtx {
        identity: req.identity.clone(),
        method: req.method.as_str().to_string(),
        context: "default".into(),
        query: req.query_map(),
        headers: req.headers_map(),
        body,
        files: Map::new(),
    }
}

/// A paging parameter: absent → None; not an integer → PocketBase's generic 400.
pub(crate) fn parse_int(v: Option<&str>) -> ApiResult<Option<i64>> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad(crate::filter::GENERIC_MESSAGE)),
    }
}

/// Rejects a `fields` parameter with an unknown or malformed modifier.
pub(crate) fn check_fields(fields: &str) -> ApiResult<()> {
    for spec in split_top_level(fields) {
        if let Some((_, m)) = spec.trim().split_once(':') {
            if parse_excerpt(m).is_none() {
                return Err(ApiError::bad(crate::filter::GENERIC_MESSAGE));
            }
        }
    }
    Ok(())
}

pub async fn list(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (schema, coll) = collection(&app, req.param("collection"))?;
    let superuser = req.identity.is_superuser();
    if coll.list_rule.is_none() && !superuser {
        return Err(ApiError::superusers_only());
    }
    let ctx = request_ctx(&req, Map::new());
    check_fields(req.q("fields").unwrap_or(""))?;
    let mut page = parse_int(req.q("page"))?.unwrap_or(1);
    if page < 1 {
        page = 1;
    }
    let mut per_page = parse_int(req.q("perPage"))?.unwrap_or(DEFAULT_PER_PAGE);
    if per_page <= 0 {
        per_page = DEFAULT_PER_PAGE;
    }
    per_page = per_page.min(MAX_PER_PAGE);
    let skip_total = matches!(req.q("skipTotal"), Some("1" | "true" | "t" | "TRUE"));

    let mut q = rules::list_query(
        &schema,
        &coll,
        &ctx,
        req.q("filter").unwrap_or(""),
        req.q("sort").unwrap_or(""),
        app.config.max_filter_len,
    )?;
    q.limit = per_page;
    q.offset = (page - 1).saturating_mul(per_page);
    let expand = req.q("expand").unwrap_or("").to_string();
    let fields = req.q("fields").unwrap_or("").to_string();
    let coll2 = coll.clone();
    let schema2 = schema.clone();
    let ctx2 = ctx.clone();
    let (items, total) = app
        .store
        .read(move |c| {
            let items = rs::list(c, &coll2, &q)?;
            let total = if skip_total {
                -1
            } else {
                rs::count(c, &coll2, &q.cond)?
            };
            let items = enrich(c, &schema2, &coll2, items, &ctx2, &expand)?;
            Ok((items, total))
        })
        .await?;
    let items: Vec<Value> = items.into_iter().map(|v| pick_fields(v, &fields)).collect();
    let total_pages = if total < 0 {
        -1
    } else {
        (total + per_page - 1) / per_page
    };
    Ok(Resp::ok(&json!({
        "page": page,
        "perPage": per_page,
        "totalItems": total,
        "totalPages": total_pages,
        "items": items,
    })))
}

pub async fn view(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (schema, coll) = collection(&app, req.param("collection"))?;
    let superuser = req.identity.is_superuser();
    if coll.view_rule.is_none() && !superuser {
        return Err(ApiError::superusers_only());
    }
    let ctx = request_ctx(&req, Map::new());
    let cond = if superuser {
        Cond::default()
    } else {
        rules::rule_cond(&schema, &coll, coll.view_rule.as_deref(), &ctx)?.unwrap_or_default()
    };
    let id = req.param("id").to_string();
    let expand = req.q("expand").unwrap_or("").to_string();
    let fields = req.q("fields").unwrap_or("").to_string();
    check_fields(&fields)?;
    let fetch = move |c: &Connection| {
        let Some(rec) = rs::fetch_where(c, &coll, &id, &cond)? else {
            return Ok(None);
        };
        Ok(enrich(c, &schema, &coll, vec![rec], &ctx, &expand)?.pop())
    };
    // One row by id is cheaper to read here than to hand to a reader
    // thread; an expand may read much more, so it goes to the pool.
    let out = if req.q("expand").unwrap_or("").is_empty() {
        app.store.read_now(fetch)?
    } else {
        app.store.read(fetch).await?
    }
    .ok_or_else(ApiError::not_found)?;
    Ok(Resp::ok(&pick_fields(out, &fields)))
}

/// Which callers may manage auth records of `coll` (set verified, skip
/// oldPassword, etc.): superusers, or those passing manageRule.
fn is_manager(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    id: &str,
    ctx: &RequestCtx,
) -> ApiResult<bool> {
    if ctx.identity.is_superuser() {
        return Ok(true);
    }
    if !coll.is_auth() {
        return Ok(false);
    }
    match rules::rule_cond(schema, coll, coll.manage_rule(), ctx)? {
        None => Ok(false),
        Some(cond) => Ok(rs::fetch_where(c, coll, id, &cond)?.is_some()),
    }
}

/// Builds the full row for a create (`existing` None) or update from the
/// body, applying setters, defaults and validation. Password hashing is
/// done beforehand by the caller (hash passed in `password_hash`).
#[allow(clippy::too_many_arguments)]
fn build_record(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    existing: Option<&Map<String, Value>>,
    body: &Map<String, Value>,
    password_hash: Option<&str>,
    manager: bool,
    files: &Map<String, Value>,
    errs: &mut FieldErrors,
) -> ApiResult<Map<String, Value>> {
    let now = now_string();
    let mut rec: Map<String, Value> = match existing {
        Some(e) => e.clone(),
        None => coll
            .fields
            .iter()
            .map(|f| (f.name.clone(), rv::zero(f)))
            .collect(),
    };
    // Apply body values in a stable order: plain sets first, then modifiers.
    let mut keys: Vec<(&String, &Value)> = body.iter().collect();
    keys.sort_by_key(|(k, _)| rv::split_key(k).1 != Setter::Set);
    for (key, raw) in keys {
        let (name, setter) = rv::split_key(key);
        let Some(f) = coll.field(name) else { continue };
        match &f.kind {
            FieldKind::Autodate(_) | FieldKind::Password(_) => continue,
            FieldKind::File(_) => continue,
            _ => {}
        }
        if coll.is_auth() && name == "tokenKey" {
            continue;
        }
        if coll.is_auth() && name == "verified" && !manager {
            if rv::to_bool(raw) != rec.get("verified").map(rv::to_bool).unwrap_or(false) {
                errs.add(
                    "verified",
                    "validation_values_mismatch",
                    "Values don't match.",
                );
            }
            continue;
        }
        if coll.is_auth() && name == "email" && existing.is_some() && !manager {
            if rv::to_text(raw) != rec.get("email").map(rv::to_text).unwrap_or_default() {
                errs.add("email", "validation_values_mismatch", "Values don't match.");
            }
            continue;
        }
        if name == "id" && existing.is_some() {
            if rv::to_text(raw) != rec.get("id").map(rv::to_text).unwrap_or_default() {
                errs.add(
                    "id",
                    "validation_pk_change",
                    "The record primary key cannot be changed.",
                );
            }
            continue;
        }
        let cur = rec.get(name).cloned().unwrap_or(Value::Null);
        let v = rv::apply_setter(f, &cur, setter, raw);
        rec.insert(name.to_string(), rv::prepare(f, &v));
    }
    // Id.
    if existing.is_none() {
        let id = rec.get("id").map(rv::to_text).unwrap_or_default();
        if id.is_empty() {
            rec.insert("id".into(), json!(new_record_id()));
        } else if id.len() != 15
            || !id
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        {
            // Custom ids follow the id field's options (15 chars [a-z0-9] by default).
            if let Some(f) = coll.field("id") {
                if let Err((code, msg, params)) = rv::validate(f, &json!(id)) {
                    errs.add_params("id", code, msg, params);
                }
            }
        }
    }
    // Text fields with an autogenerate pattern get a value when empty.
    if existing.is_none() {
        for f in &coll.fields {
            if let FieldKind::Text(o) = &f.kind {
                if !o.autogenerate_pattern.is_empty()
                    && f.name != "id"
                    && rec
                        .get(&f.name)
                        .map(rv::to_text)
                        .unwrap_or_default()
                        .is_empty()
                {
                    if let Some(v) = crate::util::random_from_pattern(&o.autogenerate_pattern) {
                        rec.insert(f.name.clone(), json!(v));
                    }
                }
            }
        }
    }
    // Autodates.
    for f in &coll.fields {
        if let FieldKind::Autodate(o) = &f.kind {
            if (existing.is_none() && o.on_create) || (existing.is_some() && o.on_update) {
                rec.insert(f.name.clone(), json!(now));
            }
        }
    }
    // File fields: only the values computed from uploads and the record's
    // own files (`api::files::plan`).
    for (k, v) in files {
        if matches!(coll.field(k).map(|f| &f.kind), Some(FieldKind::File(_))) {
            rec.insert(k.clone(), v.clone());
        }
    }
    // Auth system values.
    if coll.is_auth() {
        if let Some(h) = password_hash {
            rec.insert("password".into(), json!(h));
            rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
        }
        // A new email revokes earlier sessions too (as PocketBase).
        if let Some(old) = existing {
            if rec.get("email") != old.get("email") && rec.get("tokenKey") == old.get("tokenKey") {
                rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
            }
        }
        if existing.is_none()
            && rec
                .get("tokenKey")
                .map(rv::to_text)
                .unwrap_or_default()
                .is_empty()
        {
            rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
        }
    }
    // Validate every field.
    for f in &coll.fields {
        if errs.0.contains_key(&f.name) {
            continue;
        }
        let v = rec.get(&f.name).cloned().unwrap_or(Value::Null);
        if matches!(f.kind, FieldKind::Password(_)) {
            continue; // checked on the plain text by the caller
        }
        if f.name == "id" && existing.is_none() {
            continue;
        }
        if let Err((code, msg, params)) = rv::validate(f, &v) {
            errs.add_params(&f.name, code, msg, params);
            continue;
        }
        if let FieldKind::Relation(o) = &f.kind {
            let ids = rv::to_string_list(&v);
            if !ids.is_empty() {
                let target = schema.by_id(&o.collection_id);
                let ok = match target {
                    Some(t) => rs::count_existing(c, t, &ids)? == ids.len(),
                    None => false,
                };
                if !ok {
                    errs.add(
                        &f.name,
                        "validation_missing_rel_records",
                        "Failed to find all relation records with the provided ids",
                    );
                }
            }
        }
    }
    Ok(rec)
}

/// Password handling for auth collections: validates `password` /
/// `passwordConfirm` (and `oldPassword` on update) and hashes.
async fn prepare_password(
    app: &App,
    coll: &Collection,
    body: &Map<String, Value>,
    existing_hash: Option<String>,
    needs_old: bool,
    errs: &mut FieldErrors,
) -> ApiResult<Option<String>> {
    if !coll.is_auth() {
        return Ok(None);
    }
    let pw = body.get("password").map(rv::to_text).unwrap_or_default();
    let is_create = existing_hash.is_none();
    let confirm = body
        .get("passwordConfirm")
        .map(rv::to_text)
        .unwrap_or_default();
    if pw.is_empty() {
        if is_create {
            errs.add("password", "validation_required", "Cannot be blank.");
            if confirm.is_empty() {
                errs.add("passwordConfirm", "validation_required", "Cannot be blank.");
            }
        }
        return Ok(None);
    }
    if let Some(f) = coll.field("password") {
        if let Err((code, msg, params)) = rv::validate(f, &json!(pw)) {
            errs.add_params("password", code, msg, params);
            return Ok(None);
        }
    }
    // keepd's own rule: none of the most common passwords.
    if crate::auth::password::is_common(&pw) {
        errs.add(
            "password",
            "validation_common_password",
            "The password is too common, please choose another one.",
        );
        return Ok(None);
    }
    if confirm != pw {
        if confirm.is_empty() {
            errs.add("passwordConfirm", "validation_required", "Cannot be blank.");
        } else {
            errs.add(
                "passwordConfirm",
                "validation_values_mismatch",
                "Values don't match.",
            );
        }
        return Ok(None);
    }
    if needs_old {
        let old = body.get("oldPassword").map(rv::to_text).unwrap_or_default();
        if old.is_empty() {
            errs.add("oldPassword", "validation_required", "Cannot be blank.");
            return Ok(None);
        }
        let (ok, _) = app.hasher.verify(old, existing_hash).await?;
        if !ok {
            errs.add(
                "oldPassword",
                "validation_invalid_old_password",
                "Missing or invalid old password.",
            );
            return Ok(None);
        }
    }
    if !errs.is_empty() {
        return Ok(None);
    }
    Ok(Some(app.hasher.hash(pw).await?))
}

pub async fn create(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (schema, coll) = collection(&app, req.param("collection"))
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    let superuser = req.identity.is_superuser();
    if coll.create_rule.is_none() && !superuser {
        return Err(ApiError::superusers_only());
    }
    let (mut body, uploads) = req.form_body_with_files().await?;
    let plan = super::files::plan(&coll, None, &mut body, uploads)?;
    if !plan.new.is_empty()
        && body
            .get("id")
            .map(rv::to_text)
            .unwrap_or_default()
            .is_empty()
    {
        // The files' directory is named after the record.
        body.insert("id".into(), json!(crate::util::new_record_id()));
    }
    let mut ctx = request_ctx(&req, body.clone());
    ctx.files = plan.values.clone();
    let id = body.get("id").map(rv::to_text).unwrap_or_default();
    store_files(&app, &coll, &id, &plan, "Failed to create record.").await?;
    match create_record(&app, &schema, &coll, body, &ctx).await {
        Ok(rec) => Ok(Resp::ok(&rec)),
        Err(e) => {
            if !plan.new.is_empty() {
                // The record never existed: its directory goes too.
                if let Ok(storage) = app.storage() {
                    let (cid, rid) = (coll.id.clone(), id.clone());
                    let _ = tokio::task::spawn_blocking(move || storage.remove_record(&cid, &rid))
                        .await;
                }
            }
            Err(e)
        }
    }
}

/// Writes a plan's new files (before the record's commit).
pub(crate) async fn store_files(
    app: &App,
    coll: &Collection,
    id: &str,
    plan: &super::files::Plan,
    failed: &'static str,
) -> ApiResult<()> {
    if plan.new.is_empty() {
        return Ok(());
    }
    // As PocketBase: a storage failure fails the write with a 400.
    let storage = app.storage().map_err(|e| {
        tracing::error!(error = %e, "file storage unavailable");
        ApiError::bad(failed)
    })?;
    let (cid, rid) = (coll.id.clone(), id.to_string());
    let new = plan.new.clone();
    tokio::task::spawn_blocking(move || {
        for (name, data) in &new {
            if let Err(e) = storage.put(&cid, &rid, name, data) {
                storage.remove(
                    &cid,
                    &rid,
                    &new.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                );
                tracing::error!(error = %e, file = %name, "storing an uploaded file failed");
                return Err(ApiError::bad(failed));
            }
        }
        Ok(())
    })
    .await
    .map_err(ApiError::internal)?
}

/// Removes files (after a commit that dropped them, or a failed write).
pub(crate) async fn drop_files(app: &App, coll: &Collection, id: &str, names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let Ok(storage) = app.storage() else {
        tracing::warn!(record = %id, "file storage unavailable; dropped files stay");
        return;
    };
    let (cid, rid) = (coll.id.clone(), id.to_string());
    let _ = tokio::task::spawn_blocking(move || storage.remove(&cid, &rid, &names)).await;
}

/// Creates one record (shared with the batch API). Returns its API JSON.
pub(crate) async fn create_record(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    coll: &Arc<Collection>,
    body: Map<String, Value>,
    ctx: &RequestCtx,
) -> ApiResult<Value> {
    let mut errs = FieldErrors::new();
    let hash = prepare_password(app, coll, &body, None, false, &mut errs).await?;
    // Password errors are reported alone, before the record's fields.
    if !errs.is_empty() {
        return Err(ApiError::validation("Failed to create record.", errs));
    }
    let rule = if ctx.identity.is_superuser() {
        Some(Cond::default())
    } else {
        rules::rule_cond(schema, coll, coll.create_rule.as_deref(), ctx)?
    };
    let Some(rule) = rule else {
        return Err(ApiError::superusers_only());
    };
    let (schema2, coll2, ctx2) = (schema.clone(), coll.clone(), ctx.clone());
    let rec = app
        .store
        .write_changes(move |c, changes| {
            create_in(
                c,
                &schema2,
                &coll2,
                &ctx2,
                hash.as_deref(),
                &rule,
                errs,
                changes,
            )
        })
        .await?;
    render_written(app, schema, coll, ctx, rec).await
}

/// The API JSON of a record just written, as the caller may see it, with
/// the request's `expand` and `fields`.
async fn render_written(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    coll: &Arc<Collection>,
    ctx: &RequestCtx,
    rec: Map<String, Value>,
) -> ApiResult<Value> {
    let param = |k: &str| {
        ctx.query
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (expand, fields) = (param("expand"), param("fields"));
    let (schema, coll, ctx) = (schema.clone(), coll.clone(), ctx.clone());
    let out = app
        .store
        .read(move |c| Ok(enrich(c, &schema, &coll, vec![rec], &ctx, &expand)?.pop()))
        .await?
        .ok_or_else(|| ApiError::internal("written record vanished"))?;
    Ok(pick_fields(out, &fields))
}

pub async fn update(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (schema, coll) = collection(&app, req.param("collection"))
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    let superuser = req.identity.is_superuser();
    if coll.update_rule.is_none() && !superuser {
        return Err(ApiError::superusers_only());
    }
    let (mut body, uploads) = req.form_body_with_files().await?;
    let id = req.param("id").to_string();
    let existing = if coll.has_file_fields() {
        let (coll2, id2) = (coll.clone(), id.clone());
        app.store
            .read(move |c| rs::fetch_by_id(c, &coll2, &id2))
            .await?
    } else {
        None
    };
    let plan = super::files::plan(&coll, existing.as_ref(), &mut body, uploads)?;
    let mut ctx = request_ctx(&req, body.clone());
    ctx.files = plan.values.clone();
    if existing.is_some() {
        store_files(&app, &coll, &id, &plan, "Failed to update record.").await?;
    }
    match update_record(&app, &schema, &coll, &id, body, &ctx).await {
        Ok(rec) => {
            drop_files(&app, &coll, &id, plan.removed).await;
            Ok(Resp::ok(&rec))
        }
        Err(e) => {
            drop_files(
                &app,
                &coll,
                &id,
                plan.new.iter().map(|(n, _)| n.clone()).collect(),
            )
            .await;
            Err(e)
        }
    }
}

/// The write part of a create, on the writer's connection (shared with the
/// batch API): build, validate, insert, then check the create rule against
/// the inserted row (a failing rule rolls the savepoint back).
#[allow(clippy::too_many_arguments)]
pub(crate) fn create_in(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    ctx: &RequestCtx,
    hash: Option<&str>,
    rule: &Cond,
    mut errs: FieldErrors,
    changes: &mut Changes,
) -> ApiResult<Map<String, Value>> {
    let manager = ctx.identity.is_superuser();
    let rec = build_record(
        c, schema, coll, None, &ctx.body, hash, manager, &ctx.files, &mut errs,
    )?;
    let denied = || ApiError::bad("Failed to create record.");
    // A failing rule answers 400 with no field detail, even for invalid
    // data (as PocketBase). Invalid data can't be stored, so its rule check
    // runs on the values bound in place of the table; valid data is
    // inserted and checked against the real table (so rules that follow a
    // relation back into this collection see it), and a failing rule rolls
    // the savepoint back.
    if !errs.is_empty() {
        if !rule.sql.is_empty() && !rs::passes_unsaved(c, coll, &rec, rule)? {
            return Err(denied());
        }
        return Err(ApiError::validation("Failed to create record.", errs));
    }
    rs::insert(c, coll, &rec)?;
    if !rule.sql.is_empty() {
        let id = rec.get("id").map(rv::to_text).unwrap_or_default();
        if rs::fetch_where(c, coll, &id, rule)?.is_none() {
            return Err(denied());
        }
    }
    changes.created(coll, &rec);
    Ok(rec)
}

/// The write part of an update (shared with the batch API).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_in(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    id: &str,
    ctx: &RequestCtx,
    hash: Option<&str>,
    rule: &Cond,
    manager: bool,
    mut errs: FieldErrors,
    changes: &mut Changes,
) -> ApiResult<Map<String, Value>> {
    let Some(current) = rs::fetch_where(c, coll, id, rule)? else {
        return Err(ApiError::not_found());
    };
    let rec = build_record(
        c,
        schema,
        coll,
        Some(&current),
        &ctx.body,
        hash,
        manager,
        &ctx.files,
        &mut errs,
    )?;
    if !errs.is_empty() {
        return Err(ApiError::validation("Failed to update record.", errs));
    }
    rs::update(c, coll, id, &rec).map_err(|e| match e {
        ApiError::BadRequest { data, .. } => ApiError::validation("Failed to update record.", data),
        other => other,
    })?;
    changes.updated(coll, &rec);
    Ok(rec)
}

/// Updates one record (shared with the batch API). Returns its API JSON.
pub(crate) async fn update_record(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    coll: &Arc<Collection>,
    id: &str,
    body: Map<String, Value>,
    ctx: &RequestCtx,
) -> ApiResult<Value> {
    let rule = if ctx.identity.is_superuser() {
        Some(Cond::default())
    } else {
        rules::rule_cond(schema, coll, coll.update_rule.as_deref(), ctx)?
    };
    let Some(rule) = rule else {
        return Err(ApiError::superusers_only());
    };
    // Look the record up through the rule first (failing rule → 404).
    let (schema2, coll2, ctx2, id2, rule2) = (
        schema.clone(),
        coll.clone(),
        ctx.clone(),
        id.to_string(),
        rule.clone(),
    );
    let (existing, manager) = app
        .store
        .read(move |c| {
            let Some(ex) = rs::fetch_where(c, &coll2, &id2, &rule2)? else {
                return Ok(None);
            };
            let m = is_manager(c, &schema2, &coll2, &id2, &ctx2)?;
            Ok(Some((ex, m)))
        })
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut errs = FieldErrors::new();
    let old_hash = existing.get("password").map(rv::to_text);
    let hash = prepare_password(app, coll, &body, old_hash, !manager, &mut errs).await?;
    let (schema2, coll2, ctx2, id2) = (schema.clone(), coll.clone(), ctx.clone(), id.to_string());
    let rec = app
        .store
        .write_changes(move |c, changes| {
            update_in(
                c,
                &schema2,
                &coll2,
                &id2,
                &ctx2,
                hash.as_deref(),
                &rule,
                manager,
                errs,
                changes,
            )
        })
        .await?;
    render_written(app, schema, coll, ctx, rec).await
}

pub async fn delete(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (schema, coll) = collection(&app, req.param("collection"))?;
    let superuser = req.identity.is_superuser();
    if coll.delete_rule.is_none() && !superuser {
        return Err(ApiError::superusers_only());
    }
    let ctx = request_ctx(&req, Map::new());
    // The record's files (and its cascade's) go after the commit
    // (`files::Janitor`).
    delete_record(&app, &schema, &coll, req.param("id"), &ctx).await?;
    Ok(Resp::empty(204))
}

/// Deletes one record with its cascade (shared with the batch API).
pub(crate) async fn delete_record(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    coll: &Arc<Collection>,
    id: &str,
    ctx: &RequestCtx,
) -> ApiResult<()> {
    let rule = if ctx.identity.is_superuser() {
        Some(Cond::default())
    } else {
        rules::rule_cond(schema, coll, coll.delete_rule.as_deref(), ctx)?
    };
    let Some(rule) = rule else {
        return Err(ApiError::superusers_only());
    };
    let (schema2, coll2, id2) = (schema.clone(), coll.clone(), id.to_string());
    app.store
        .write_changes(move |c, changes| delete_in(c, &schema2, &coll2, &id2, &rule, changes))
        .await
}

/// The write part of a delete (shared with the batch API).
pub(crate) fn delete_in(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    id: &str,
    rule: &Cond,
    changes: &mut Changes,
) -> ApiResult<()> {
    if rs::fetch_where(c, coll, id, rule)?.is_none() {
        return Err(ApiError::not_found());
    }
    delete_cascade(c, schema, coll, id, 0, changes)
}

/// Deletes a record and resolves references to it: cascadeDelete relations
/// delete the referencing records, required ones block, others are unset.
/// Every deleted and every unset record is recorded in `changes` (children
/// first, then the record itself, as PocketBase publishes them).
pub(crate) fn delete_cascade(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    id: &str,
    depth: usize,
    changes: &mut Changes,
) -> ApiResult<()> {
    if depth > 32 {
        return Err(ApiError::bad(
            "Failed to delete record. The cascade is too deep.",
        ));
    }
    for other in schema.all() {
        for f in other.relations_to(&coll.id) {
            let FieldKind::Relation(o) = &f.kind else {
                continue;
            };
            let refs = rs::referencing_ids(c, other, f, id)?;
            for rid in refs {
                if other.id == coll.id && rid == id {
                    continue;
                }
                let Some(mut row) = rs::fetch_by_id(c, other, &rid)? else {
                    continue;
                };
                if o.cascade_delete {
                    delete_cascade(c, schema, other, &rid, depth + 1, changes)?;
                    continue;
                }
                let left: Vec<String> =
                    rv::to_string_list(row.get(&f.name).unwrap_or(&Value::Null))
                        .into_iter()
                        .filter(|x| x != id)
                        .collect();
                if o.required && left.is_empty() {
                    return Err(ApiError::bad(
                        "Failed to delete record. Make sure that the record is not part of a required relation reference.",
                    ));
                }
                let v = if f.is_multiple() {
                    json!(left)
                } else {
                    json!("")
                };
                row.insert(f.name.clone(), v);
                rs::update(c, other, &rid, &row)?;
                changes.updated(other, &row);
            }
        }
    }
    if changes.wants(coll, crate::store::changes::Action::Delete) {
        if let Some(row) = rs::fetch_by_id(c, coll, id)? {
            changes.deleting(c, schema, coll, &row);
        }
    }
    rs::delete(c, coll, id)?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Output: visibility, expand, fields.

/// The API JSON of records (visibility applied), with `expand` resolved.
pub(crate) fn enrich(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: Vec<Map<String, Value>>,
    ctx: &RequestCtx,
    expand: &str,
) -> ApiResult<Vec<Value>> {
    let managed = managed_ids(c, schema, coll, &recs, ctx)?;
    let paths: Vec<Vec<&str>> = expand
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.split('.').collect())
        .collect();
    if paths.is_empty() {
        // Nothing to expand: the rows become the answer without a copy.
        return Ok(recs
            .into_iter()
            .map(|r| visible_owned(coll, r, &ctx.identity, &managed))
            .collect());
    }
    let mut out: Vec<Value> = Vec::with_capacity(recs.len());
    for r in &recs {
        out.push(visible(coll, r, &ctx.identity, &managed));
    }
    expand_into(c, schema, coll, &recs, &mut out, &paths, ctx, 1)?;
    Ok(out)
}

fn managed_ids(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: &[Map<String, Value>],
    ctx: &RequestCtx,
) -> ApiResult<Vec<String>> {
    if !coll.is_auth() || ctx.identity.is_superuser() {
        return Ok(vec![]);
    }
    let Some(rule) = coll.manage_rule().filter(|r| !r.trim().is_empty()) else {
        return Ok(vec![]);
    };
    let Some(cond) = rules::rule_cond(schema, coll, Some(rule), ctx)? else {
        return Ok(vec![]);
    };
    let mut ids = Vec::new();
    for r in recs {
        let id = r.get("id").map(rv::to_text).unwrap_or_default();
        if rs::fetch_where(c, coll, &id, &cond)?.is_some() {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Whether the caller may see field `f` of record `r` (whose id is `id`).
fn shown(
    coll: &Collection,
    f: &crate::schema::Field,
    r: &Map<String, Value>,
    id: &str,
    who: &Identity,
    managed: &[String],
) -> bool {
    let superuser = who.is_superuser();
    if coll.is_auth() && (f.name == "password" || f.name == "tokenKey") {
        return false;
    }
    if matches!(f.kind, FieldKind::Password(_)) {
        return false;
    }
    if f.hidden && !superuser {
        return false;
    }
    if coll.is_auth() && f.name == "email" {
        let own = who
            .auth()
            .is_some_and(|a| a.collection.id == coll.id && a.id() == id);
        let public = r.get("emailVisibility").is_some_and(rv::to_bool);
        if !(superuser || own || public || managed.iter().any(|m| m == id)) {
            return false;
        }
    }
    true
}

/// A record's JSON as the caller may see it.
pub(crate) fn visible(
    coll: &Collection,
    r: &Map<String, Value>,
    who: &Identity,
    managed: &[String],
) -> Value {
    let mut m = Map::new();
    m.insert("collectionId".into(), json!(coll.id));
    m.insert("collectionName".into(), json!(coll.name));
    let id = r.get("id").map(rv::to_text).unwrap_or_default();
    for f in &coll.fields {
        if !shown(coll, f, r, &id, who, managed) {
            continue;
        }
        if let Some(v) = r.get(&f.name) {
            m.insert(f.name.clone(), v.clone());
        }
    }
    Value::Object(m)
}

/// `visible` for a row that is not needed afterwards: fields are moved,
/// not copied.
fn visible_owned(
    coll: &Collection,
    mut r: Map<String, Value>,
    who: &Identity,
    managed: &[String],
) -> Value {
    let id = r.get("id").map(rv::to_text).unwrap_or_default();
    let hide: Vec<&str> = coll
        .fields
        .iter()
        .filter(|f| !shown(coll, f, &r, &id, who, managed))
        .map(|f| f.name.as_str())
        .collect();
    r.retain(|k, _| !hide.contains(&k.as_str()) && coll.field(k).is_some());
    r.insert("collectionId".into(), json!(coll.id));
    r.insert("collectionName".into(), json!(coll.name));
    Value::Object(r)
}

/// A relation or back-relation that `expand` can follow from `coll`.
enum Link<'a> {
    Forward(&'a crate::schema::Field, Arc<Collection>),
    /// `other_via_field`: records of `other` whose `field` points here.
    Back(Arc<Collection>, &'a crate::schema::Field),
}

fn resolve_link<'a>(schema: &'a Schema, coll: &'a Collection, name: &str) -> Option<Link<'a>> {
    if let Some(f) = coll.field(name) {
        if let FieldKind::Relation(o) = &f.kind {
            return schema
                .by_id(&o.collection_id)
                .cloned()
                .map(|t| Link::Forward(f, t));
        }
        return None;
    }
    let (other, field) = name.split_once("_via_")?;
    let other = schema.get(other)?;
    let f = other.field(field)?;
    match &f.kind {
        FieldKind::Relation(o) if o.collection_id == coll.id => Some(Link::Back(other.clone(), f)),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn expand_into(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    recs: &[Map<String, Value>],
    out: &mut [Value],
    paths: &[Vec<&str>],
    ctx: &RequestCtx,
    depth: usize,
) -> ApiResult<()> {
    if depth > MAX_EXPAND_DEPTH {
        return Ok(());
    }
    // Group paths by their first segment.
    let mut heads: Vec<&str> = paths.iter().filter_map(|p| p.first().copied()).collect();
    heads.dedup();
    let mut seen = std::collections::HashSet::new();
    heads.retain(|h| seen.insert(*h));
    for head in heads {
        let Some(link) = resolve_link(schema, coll, head) else {
            continue;
        };
        let rest: Vec<Vec<&str>> = paths
            .iter()
            .filter(|p| p.first() == Some(&head) && p.len() > 1)
            .map(|p| p[1..].to_vec())
            .collect();
        let (target, multiple) = match &link {
            Link::Forward(f, t) => (t.clone(), f.is_multiple()),
            Link::Back(o, f) => {
                // A back-relation is a list unless the field is unique.
                let _ = f;
                (o.clone(), true)
            }
        };
        // The target's view rule decides what may be expanded.
        let cond = if ctx.identity.is_superuser() {
            Some(Cond::default())
        } else {
            rules::rule_cond(schema, &target, target.view_rule.as_deref(), ctx)?
        };
        let Some(cond) = cond else { continue };
        for o in out.iter_mut() {
            if let Some(obj) = o.as_object_mut() {
                obj.entry("expand").or_insert_with(|| json!({}));
            }
        }
        for (i, r) in recs.iter().enumerate() {
            let ids: Vec<String> = match &link {
                Link::Forward(f, _) => rv::to_string_list(r.get(&f.name).unwrap_or(&Value::Null)),
                Link::Back(o, f) => {
                    let id = r.get("id").map(rv::to_text).unwrap_or_default();
                    rs::referencing_ids(c, o, f, &id)?
                }
            };
            if ids.is_empty() {
                continue;
            }
            let mut found = rs::fetch_many(c, &target, &ids, &cond)?;
            // Keep the relation's order.
            found.sort_by_key(|m| {
                let id = m.get("id").map(rv::to_text).unwrap_or_default();
                ids.iter().position(|x| *x == id).unwrap_or(usize::MAX)
            });
            if found.is_empty() {
                continue;
            }
            let managed = managed_ids(c, schema, &target, &found, ctx)?;
            let mut vals: Vec<Value> = found
                .iter()
                .map(|m| visible(&target, m, &ctx.identity, &managed))
                .collect();
            if !rest.is_empty() {
                expand_into(c, schema, &target, &found, &mut vals, &rest, ctx, depth + 1)?;
            }
            let v = if multiple {
                Value::Array(vals)
            } else {
                vals.into_iter().next().unwrap_or(Value::Null)
            };
            if let Some(obj) = out[i].as_object_mut() {
                let e = obj.entry("expand").or_insert_with(|| json!({}));
                if let Some(e) = e.as_object_mut() {
                    e.insert(head.to_string(), v);
                }
            }
        }
    }
    Ok(())
}

/// Applies the `fields` parameter: `*`, names, `expand.rel.field`, and the
/// `:excerpt(max, withEllipsis)` modifier.
pub(crate) fn pick_fields(v: Value, fields: &str) -> Value {
    let specs: Vec<&str> = split_top_level(fields)
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.is_empty() {
        return v;
    }
    let parsed: Vec<FieldSpec<'_>> = specs
        .iter()
        .map(|s| {
            let (path, modifier) = match s.split_once(':') {
                Some((p, m)) => (p, parse_excerpt(m)),
                None => (*s, None),
            };
            (path.split('.').collect(), modifier)
        })
        .collect();
    pick(&v, &parsed)
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth <= 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_excerpt(m: &str) -> Option<(usize, bool)> {
    let inner = m.strip_prefix("excerpt(")?.strip_suffix(')')?;
    let mut parts = inner.split(',').map(str::trim);
    let max = parts.next()?.parse().ok()?;
    let ellipsis = matches!(parts.next(), Some("true" | "1" | "t"));
    Some((max, ellipsis))
}

fn excerpt(s: &str, max: usize, ellipsis: bool) -> String {
    // Strip tags, collapse whitespace, cut on a char boundary.
    let mut text = String::with_capacity(s.len());
    let mut in_tag = false;
    for ch in s.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = text.chars().count();
    let mut out: String = text.chars().take(max).collect();
    if ellipsis && n > max {
        out.push_str("...");
    }
    out
}

/// One `fields` entry: a dotted path and an optional `:excerpt(max, ellipsis)`.
type FieldSpec<'a> = (Vec<&'a str>, Option<(usize, bool)>);

fn pick(v: &Value, specs: &[FieldSpec<'_>]) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.iter().map(|x| pick(x, specs)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            for (path, modifier) in specs {
                let Some(head) = path.first() else { continue };
                if *head == "*" {
                    for (k, val) in o {
                        if k != "expand" && !out.contains_key(k) {
                            out.insert(k.clone(), val.clone());
                        }
                    }
                    continue;
                }
                let Some(val) = o.get(*head) else { continue };
                if path.len() == 1 {
                    let val = match (modifier, val) {
                        (Some((max, e)), Value::String(s)) => Value::String(excerpt(s, *max, *e)),
                        _ => val.clone(),
                    };
                    out.insert(head.to_string(), val);
                } else {
                    let sub: Vec<FieldSpec<'_>> = specs
                        .iter()
                        .filter(|(p, _)| p.first() == Some(head) && p.len() > 1)
                        .map(|(p, m)| (p[1..].to_vec(), *m))
                        .collect();
                    out.insert(head.to_string(), pick(val, &sub));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_excerpt() {
        let v = json!({"id": "a", "title": "t", "body": "<p>Hello   <b>world</b></p>", "expand": {"author": {"id": "u", "name": "n"}}});
        assert_eq!(
            pick_fields(v.clone(), "id,title"),
            json!({"id": "a", "title": "t"})
        );
        assert_eq!(
            pick_fields(v.clone(), "id,expand.author.name"),
            json!({"id": "a", "expand": {"author": {"name": "n"}}})
        );
        assert_eq!(
            pick_fields(v.clone(), "body:excerpt(5,true)"),
            json!({"body": "Hello..."})
        );
        assert_eq!(
            pick_fields(v.clone(), "id,body:excerpt(5, true),title"),
            json!({"id": "a", "body": "Hello...", "title": "t"})
        );
        let all = pick_fields(v, "*");
        assert!(all.get("expand").is_none());
        assert_eq!(all["title"], "t");
    }
}
