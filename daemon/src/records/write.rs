//! Record writes: create, update, delete (with cascades), and batches of
//! them in one transaction. See the module docs of [`super`] for the steps
//! every write goes through.
//!
//! A write is first made ready off the writer ([`prepare`]): the body is
//! resolved and authorized on a read connection when the write has a cost
//! of its own (a password to hash, files to store), then the password is
//! hashed and the files stored. The writer then checks everything again on
//! the current rows ([`apply`]) — nothing decided on the read connection is
//! trusted there — and writes.

use super::files::Plan;
use super::{body, files, password, render, Input, Request};
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::rules::{self, RequestCtx};
use crate::schema::record::{self as rv, Setter};
use crate::schema::{Collection, FieldKind, Schema};
use crate::store::records::{self as rs, Cond};
use crate::store::Conn as Connection;
use crate::store::{Action, Changes};
use crate::util::{new_record_id, now_string, random_string, ALPHANUM};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const CREATE_FAILED: &str = "Failed to create record.";
const UPDATE_FAILED: &str = "Failed to update record.";

/// What a write does.
#[derive(Debug, Clone)]
pub enum Op {
    Create,
    Update(String),
    /// Update the record named by the body's `id` if it exists, else create
    /// it (batch `PUT`).
    Upsert,
    Delete(String),
}

/// One write of a batch.
pub struct Step {
    pub op: Op,
    pub coll: Arc<Collection>,
    pub req: Request,
    pub input: Input,
}

/// The write of a batch that failed, and why.
#[derive(Debug)]
pub struct BatchError {
    pub index: usize,
    pub error: ApiError,
}

/// A write made ready for the writer.
#[derive(Clone)]
struct Ready {
    op: Op,
    coll: Arc<Collection>,
    req: Request,
    /// The body as sent, without its file keys.
    raw: Map<String, Value>,
    /// The final values of the file fields the write touches.
    files: Map<String, Value>,
    /// The new password's hash (auth collections).
    hash: Option<String>,
    /// The files this write stored (removed if it fails) and the record
    /// directory they are in.
    file_id: String,
    stored: Vec<String>,
    /// Files no longer referenced once the write commits.
    dropped: Vec<String>,
    /// The file fields' validation errors (`files::Plan::errors`).
    file_errs: FieldErrors,
    /// The body resolved and the rule compiled off the writer, when they
    /// don't depend on the record's current values (a create, an update
    /// without modifier keys): the writer's serial work stays small.
    early: Option<Authz>,
    /// A create's row built off the writer from `early` (values, defaults,
    /// id, autodates, auth system values, every check that reads no
    /// database), taken by the writer, which adds what reads the database.
    built: Option<Box<Built>>,
}

/// A create's row built before the writer: the row, the field errors and
/// the password errors found without the database.
#[derive(Clone)]
struct Built {
    rec: Map<String, Value>,
    errs: FieldErrors,
    perrs: FieldErrors,
    /// The create rule compiled (None: none applies).
    rule: Option<Cond>,
    /// The INSERT, when the row has no field errors.
    insert: Option<rs::Insert>,
}

/// A write's body as rules read it, and the rule it must pass (None: none
/// applies).
#[derive(Clone)]
struct Authz {
    ctx: RequestCtx,
    rule: Option<Cond>,
}

/// Resolves a write's body against the record's current values and
/// compiles `rule` with it.
fn authz(
    schema: &Schema,
    r: &Ready,
    current: Option<&Map<String, Value>>,
    rule: Option<&str>,
) -> ApiResult<Authz> {
    let resolved = body::resolve(&r.coll, current, &r.raw, &r.req.principal);
    let ctx = r.req.rule_ctx(resolved, r.files.clone());
    let rule = rule_for(schema, &r.coll, rule, &r.req, &ctx)?;
    Ok(Authz { ctx, rule })
}

/// A view collection stores no records: writes to it are refused (as
/// PocketBase, before its rules are read).
pub fn refuse_view(coll: &Collection) -> ApiResult<()> {
    if coll.kind == crate::schema::CollectionType::View {
        return Err(ApiError::bad("Unsupported collection type."));
    }
    Ok(())
}

/// Creates a record; returns it as the caller may see it.
pub async fn create(
    app: &Arc<App>,
    coll: &Arc<Collection>,
    req: &Request,
    input: Input,
) -> ApiResult<Value> {
    one(app, Op::Create, coll, req, input).await
}

/// Updates a record; returns it as the caller may see it.
pub async fn update(
    app: &Arc<App>,
    coll: &Arc<Collection>,
    id: &str,
    req: &Request,
    input: Input,
) -> ApiResult<Value> {
    one(app, Op::Update(id.to_string()), coll, req, input).await
}

/// Deletes a record with its cascade (its files, and those of the records
/// the cascade deletes, go after the commit: `files::Janitor`).
pub async fn delete(
    app: &Arc<App>,
    coll: &Arc<Collection>,
    id: &str,
    req: &Request,
) -> ApiResult<()> {
    one(app, Op::Delete(id.to_string()), coll, req, Input::default())
        .await
        .map(|_| ())
}

async fn one(
    app: &Arc<App>,
    op: Op,
    coll: &Arc<Collection>,
    req: &Request,
    input: Input,
) -> ApiResult<Value> {
    let schema = app.store.schema();
    let step = Step {
        op,
        coll: coll.clone(),
        req: req.clone(),
        input,
    };
    let ready = prepare(app, &schema, step, false).await?;
    let (cleanup, done) = commit(app, &schema, vec![ready])
        .await
        .map_err(|e| e.error)?;
    finish(app, cleanup).await;
    let Some((coll, req, row)) = done.into_iter().next() else {
        return Err(ApiError::internal("a write returned nothing"));
    };
    match row {
        None => Ok(Value::Null),
        Some(row) => {
            let mut out = show(app, &schema, vec![(coll, req, Some(row))]).await?;
            Ok(out.pop().flatten().unwrap_or(Value::Null))
        }
    }
}

/// Runs several writes in one transaction: all commit or none does.
pub async fn batch(app: &Arc<App>, steps: Vec<Step>) -> Result<Vec<Option<Value>>, BatchError> {
    let schema = app.store.schema();
    let mut ready: Vec<Ready> = Vec::with_capacity(steps.len());
    for (index, step) in steps.into_iter().enumerate() {
        match prepare(app, &schema, step, true).await {
            Ok(r) => ready.push(r),
            Err(error) => {
                // As PocketBase runs sub-requests in order, an earlier one
                // that fails is the one reported.
                let earlier = first_failure(app, &schema, &ready).await;
                for r in ready {
                    files::remove(app, &r.coll, &r.file_id, r.stored).await;
                }
                return Err(earlier.unwrap_or(BatchError { index, error }));
            }
        }
    }
    let (cleanup, done) = commit(app, &schema, ready).await?;
    finish(app, cleanup).await;
    show(app, &schema, done)
        .await
        .map_err(|error| BatchError { index: 0, error })
}

/// The first of made-ready writes that fails when they run in order on the
/// writer, in a savepoint always rolled back (a dry run: nothing is
/// written, nothing published). None: they would all succeed.
async fn first_failure(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    ready: &[Ready],
) -> Option<BatchError> {
    if ready.is_empty() {
        return None;
    }
    let (schema2, mut ready2) = (schema.clone(), ready.to_vec());
    let found = Arc::new(std::sync::Mutex::new(None));
    let found2 = found.clone();
    let _ = app
        .store
        .write_changes(move |c, changes| -> ApiResult<()> {
            for (index, r) in ready2.iter_mut().enumerate() {
                if let Err(error) = apply(c, &schema2, r, changes) {
                    if let Ok(mut f) = found2.lock() {
                        *f = Some(BatchError { index, error });
                    }
                    break;
                }
            }
            Err(ApiError::bad("dry run"))
        })
        .await;
    let mut f = found.lock().ok()?;
    f.take()
}

/// A committed write: its collection, request and row (None: deleted).
type Done = (Arc<Collection>, Request, Option<Map<String, Value>>);
/// Files to remove once the fate of a write is known: (collection, record
/// directory, stored by the write, dropped by the write).
type Cleanup = Vec<(Arc<Collection>, String, Vec<String>, Vec<String>)>;

/// Runs made-ready writes in one savepoint of the writer's transaction.
/// On failure the files they stored are removed.
async fn commit(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    ready: Vec<Ready>,
) -> Result<(Cleanup, Vec<Done>), BatchError> {
    let cleanup: Cleanup = ready
        .iter()
        .map(|r| {
            (
                r.coll.clone(),
                r.file_id.clone(),
                r.stored.clone(),
                r.dropped.clone(),
            )
        })
        .collect();
    let failed_at = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (schema2, failed) = (schema.clone(), failed_at.clone());
    let result = app
        .store
        .write_changes(move |c, changes| {
            let mut out = Vec::with_capacity(ready.len());
            for (i, mut r) in ready.into_iter().enumerate() {
                failed.store(i, std::sync::atomic::Ordering::Relaxed);
                let row = apply(c, &schema2, &mut r, changes)?;
                out.push((r.coll, r.req, row));
            }
            Ok(out)
        })
        .await;
    match result {
        Ok(done) => Ok((cleanup, done)),
        Err(error) => {
            for (coll, id, stored, _) in cleanup {
                files::remove(app, &coll, &id, stored).await;
            }
            Err(BatchError {
                index: failed_at.load(std::sync::atomic::Ordering::Relaxed),
                error,
            })
        }
    }
}

/// After a commit: the files the writes dropped go.
async fn finish(app: &App, cleanup: Cleanup) {
    for (coll, id, _, dropped) in cleanup {
        files::remove(app, &coll, &id, dropped).await;
    }
}

/// The committed rows as each write's caller may see them, with each
/// request's `expand` and `fields`. One row with nothing to expand is
/// rendered here, on this thread's own read connection (`read_now`): the
/// row is in hand and reads nothing more, and the hand-off to a reader
/// thread — a blocking thread woken and the caller woken back, two context
/// switches — cost far more than the rendering (under a create load: 17% of
/// keepd's CPU, 0.4 points of it rendering). An expand may read much more:
/// it goes to the readers, as batches do.
async fn show(app: &App, schema: &Arc<Schema>, done: Vec<Done>) -> ApiResult<Vec<Option<Value>>> {
    let schema = schema.clone();
    let here = renders_alone(&done);
    let render_all = move |c: &Connection| {
        let mut out = Vec::with_capacity(done.len());
        for (coll, req, row) in done {
            out.push(match row {
                None => None,
                Some(row) => {
                    let ctx = req.rule_ctx(Map::new(), Map::new());
                    render::render(c, &schema, &coll, vec![row], &ctx, &req.view())?.pop()
                }
            });
        }
        Ok(out)
    };
    if here {
        app.store.read_now(render_all)
    } else {
        app.store.read(render_all).await
    }
}

/// Whether `show` may render `done` on the calling thread: one write whose
/// request expands nothing.
fn renders_alone(done: &[Done]) -> bool {
    match done {
        [(_, req, _)] => req.view().expand.is_empty(),
        _ => false,
    }
}

/// The rule a caller must pass for `op`: `Ok(None)` when none applies
/// (privileged callers), 403 when the rule is null (superusers only).
fn rule_for(
    schema: &Schema,
    coll: &Arc<Collection>,
    rule: Option<&str>,
    req: &Request,
    ctx: &RequestCtx,
) -> ApiResult<Option<Cond>> {
    if req.principal.is_privileged() {
        return Ok(None);
    }
    match rules::rule_cond(schema, coll, rule, ctx)? {
        None => Err(ApiError::superusers_only()),
        Some(c) => Ok(Some(c)),
    }
}

/// Makes a write ready: checks what can be checked before the body is
/// used, authorizes the write on a read connection when it has a cost of
/// its own, hashes the password and stores the files. In a batch
/// (`in_batch`) an earlier write may create what a later one updates, so a
/// record that is not there yet is left to the writer — unless the write
/// carries a password or files, which are never hashed or stored for a
/// write that wasn't authorized first.
async fn prepare(
    app: &Arc<App>,
    schema: &Arc<Schema>,
    step: Step,
    in_batch: bool,
) -> ApiResult<Ready> {
    let Step {
        op,
        coll,
        req,
        input,
    } = step;
    refuse_view(&coll)?;
    let privileged = req.principal.is_privileged();
    let null_rule = |r: &Option<String>| r.is_none() && !privileged;
    match &op {
        Op::Create if null_rule(&coll.create_rule) => return Err(ApiError::superusers_only()),
        Op::Update(_) if null_rule(&coll.update_rule) => return Err(ApiError::superusers_only()),
        Op::Delete(_) if null_rule(&coll.delete_rule) => return Err(ApiError::superusers_only()),
        _ => {}
    }
    let mut ready = Ready {
        op,
        coll: coll.clone(),
        req,
        raw: input.body,
        files: Map::new(),
        hash: None,
        file_id: String::new(),
        stored: Vec::new(),
        dropped: Vec::new(),
        file_errs: FieldErrors::new(),
        early: None,
        built: None,
    };
    if matches!(ready.op, Op::Delete(_)) {
        if !input.uploads.is_empty() {
            return Err(ApiError::bad(
                "Failed to read the submitted batch files data.",
            ));
        }
        return Ok(ready);
    }
    // The record as it is now (updates, and upserts of an existing id).
    let target = match &ready.op {
        Op::Update(id) => Some(id.clone()),
        Op::Upsert => Some(ready.raw.get("id").map(rv::to_text).unwrap_or_default())
            .filter(|id| !id.is_empty()),
        _ => None,
    };
    let current = match &target {
        Some(id) => {
            let (c2, id2) = (coll.clone(), id.clone());
            app.store
                .read(move |c| rs::fetch_by_id(c, &c2, &id2))
                .await?
        }
        None => None,
    };
    let updating = match &ready.op {
        Op::Update(_) => true,
        Op::Upsert => current.is_some(),
        _ => false,
    };
    if matches!(ready.op, Op::Upsert) {
        let rule = if updating {
            &coll.update_rule
        } else {
            &coll.create_rule
        };
        if null_rule(rule) {
            return Err(ApiError::superusers_only());
        }
    }
    let plan: Plan = files::plan(
        &coll,
        current.as_ref(),
        &mut ready.raw,
        input.uploads,
        privileged,
    );
    ready.files = plan.values.clone();
    ready.file_errs = plan.errors.clone();
    ready.dropped = plan.removed.clone();
    ready.file_id = target
        .clone()
        .or_else(|| ready.raw.get("id").map(rv::to_text))
        .unwrap_or_default();
    if !plan.new.is_empty() && ready.file_id.is_empty() {
        // A new record's files go in a directory named after it.
        ready.file_id = new_record_id();
        ready.raw.insert("id".into(), json!(ready.file_id));
    }
    let modifiers = ready
        .raw
        .keys()
        .any(|k| !matches!(body::parse_key(k), body::Key::Field(_, Setter::Set)));
    ready.early = match &ready.op {
        Op::Create => Some(authz(schema, &ready, None, coll.create_rule.as_deref())?),
        Op::Update(_) if !modifiers => {
            Some(authz(schema, &ready, None, coll.update_rule.as_deref())?)
        }
        _ => None,
    };
    let has_password = coll.is_auth()
        && !ready
            .raw
            .get("password")
            .map(rv::to_text)
            .unwrap_or_default()
            .is_empty();
    let costly = has_password || !plan.new.is_empty();
    if updating && current.is_none() && (costly || !in_batch) {
        return Err(ApiError::not_found());
    }
    if !(costly || (updating && !in_batch)) {
        build_early(&mut ready);
        return Ok(ready);
    }
    // Authorize (and validate) on the current rows before any cost.
    let (schema2, mut ready2) = (schema.clone(), ready.clone());
    let id2 = target.clone().unwrap_or_default();
    let checked = app
        .store
        .read(move |c| {
            if updating {
                check_update(c, &schema2, &id2, &ready2)
                    .map(|(_, current, manager)| Some((current, manager)))
            } else {
                check_create(c, &schema2, &mut ready2, true).map(|_| None)
            }
        })
        .await?;
    if has_password {
        let plain = ready
            .raw
            .get("password")
            .map(rv::to_text)
            .unwrap_or_default();
        if let Some((current, manager)) = checked {
            if !manager {
                let mut errs = FieldErrors::new();
                let stored_hash = current.get("password").map(rv::to_text);
                password::verify_old(app, &ready.raw, stored_hash, &mut errs).await?;
                if !errs.is_empty() {
                    return Err(ApiError::validation(UPDATE_FAILED, errs));
                }
            }
        }
        ready.hash = Some(password::hash(app, plain).await?);
    }
    let failed = if updating {
        UPDATE_FAILED
    } else {
        CREATE_FAILED
    };
    ready.stored = files::store_new(app, &coll, &ready.file_id, &plan, failed).await?;
    build_early(&mut ready);
    Ok(ready)
}

/// Builds a create's row off the writer when its body and rule did not
/// depend on the database (`Ready::early`): the writer then only checks
/// what reads the database (the rule on the unsaved row, relations,
/// uniqueness) and inserts.
fn build_early(ready: &mut Ready) {
    if !matches!(ready.op, Op::Create) {
        return;
    }
    let Some(az) = ready.early.take() else { return };
    let mut built = build_create(ready, az);
    built.insert = (built.errs.is_empty() && built.perrs.is_empty())
        .then(|| rs::Insert::new(&ready.coll, &built.rec));
    ready.built = Some(Box::new(built));
}

/// A create's row from its authorized body: values, defaults, id,
/// autodates, auth system values and every check that reads no database
/// (the file fields' errors go with the other fields'), the password
/// checked. The one place a create's row is made, before the writer or on
/// it. The request's context (the body as rules read it) is dropped here.
fn build_create(r: &Ready, az: Authz) -> Built {
    let mut errs = r.file_errs.clone();
    let rec = build_fields(
        &r.coll,
        None,
        &az.ctx.body,
        r.hash.as_deref(),
        r.req.principal.is_privileged(),
        &r.files,
        &mut errs,
    );
    let mut perrs = FieldErrors::new();
    password::check(&r.coll, &r.raw, true, false, &mut perrs);
    Built {
        rec,
        errs,
        perrs,
        rule: az.rule,
        insert: None,
    }
}

/// A write sync makes inside its own transaction (a change from a device
/// on the hub, from the hub on a device): no password, no uploads — file
/// fields take `files`, names of files sync already placed in storage.
pub struct Synced {
    pub op: Op,
    pub coll: Arc<Collection>,
    pub req: Request,
    /// Plain keys and values.
    pub body: Map<String, Value>,
    /// Final values of the file fields the write sets.
    pub files: Map<String, Value>,
}

/// Runs a sync write on the writer's connection (sync's own transaction
/// and savepoint) exactly as `apply` runs every write: the rule of the
/// request's principal on the current rows, validation, the write,
/// cascades, change capture. Returns the written row (None: deleted).
pub fn apply_synced(
    c: &Connection,
    schema: &Schema,
    w: Synced,
    changes: &mut Changes,
) -> ApiResult<Option<Map<String, Value>>> {
    let privileged = w.req.principal.is_privileged();
    let null_rule = |r: &Option<String>| r.is_none() && !privileged;
    match &w.op {
        Op::Create if null_rule(&w.coll.create_rule) => return Err(ApiError::superusers_only()),
        Op::Update(_) if null_rule(&w.coll.update_rule) => return Err(ApiError::superusers_only()),
        Op::Delete(_) if null_rule(&w.coll.delete_rule) => return Err(ApiError::superusers_only()),
        _ => {}
    }
    if w.coll.is_auth() && w.body.contains_key("password") {
        return Err(ApiError::bad("A password can't be synced."));
    }
    let mut ready = Ready {
        op: w.op,
        coll: w.coll,
        req: w.req,
        raw: w.body,
        files: w.files,
        hash: None,
        file_id: String::new(),
        stored: Vec::new(),
        dropped: Vec::new(),
        file_errs: FieldErrors::new(),
        early: None,
        built: None,
    };
    apply(c, schema, &mut ready, changes)
}

/// The write on the writer's connection: everything checked again on the
/// current rows, then written. Returns the written row (None: deleted).
fn apply(
    c: &Connection,
    schema: &Schema,
    r: &mut Ready,
    changes: &mut Changes,
) -> ApiResult<Option<Map<String, Value>>> {
    let coll = r.coll.clone();
    let coll = &coll;
    let create = |r: &mut Ready, changes: &mut Changes| -> ApiResult<Option<Map<String, Value>>> {
        let (rec, insert) = check_create(c, schema, r, false)?;
        match insert {
            Some(insert) => insert.run(c, coll)?,
            None => rs::insert(c, coll, &rec)?,
        }
        changes.created(c, coll, &rec)?;
        Ok(Some(rec))
    };
    let update =
        |r: &Ready, id: &str, changes: &mut Changes| -> ApiResult<Option<Map<String, Value>>> {
            let (rec, before, _) = check_update(c, schema, id, r)?;
            rs::update(c, coll, id, &rec).map_err(|e| match e {
                ApiError::BadRequest { data, .. } => ApiError::validation(UPDATE_FAILED, data),
                other => other,
            })?;
            changes.updated(c, coll, &before, &rec)?;
            Ok(Some(rec))
        };
    let op = r.op.clone();
    match &op {
        Op::Create => create(r, changes),
        Op::Update(id) => update(r, id, changes),
        Op::Upsert => {
            let id = r.raw.get("id").map(rv::to_text).unwrap_or_default();
            if !id.is_empty() && rs::fetch_by_id(c, coll, &id)?.is_some() {
                if coll.update_rule.is_none() && !r.req.principal.is_privileged() {
                    return Err(ApiError::superusers_only());
                }
                update(r, &id, changes)
            } else {
                if coll.create_rule.is_none() && !r.req.principal.is_privileged() {
                    return Err(ApiError::superusers_only());
                }
                create(r, changes)
            }
        }
        Op::Delete(id) => {
            let ctx = r.req.rule_ctx(Map::new(), Map::new());
            let rule = rule_for(schema, coll, coll.delete_rule.as_deref(), &r.req, &ctx)?
                .unwrap_or_default();
            if rs::fetch_where(c, coll, id, &rule)?.is_none() {
                return Err(ApiError::not_found());
            }
            delete_cascade(c, schema, coll, id, 0, changes)?;
            Ok(None)
        }
    }
}

/// A create, resolved, authorized and validated (not written). The create
/// rule is checked on the unsaved values first: a caller it refuses gets
/// the same answer whatever the data (no probing of unique values or ids).
/// Then the password errors alone, then the fields'. Returns the row and,
/// when it was made ready before the writer, its INSERT.
fn check_create(
    c: &Connection,
    schema: &Schema,
    r: &mut Ready,
    pre: bool,
) -> ApiResult<(Map<String, Value>, Option<rs::Insert>)> {
    let coll = &r.coll;
    let Built {
        rec,
        mut errs,
        perrs,
        rule,
        insert,
    } = match r.built.take() {
        Some(b) => *b,
        None => {
            let az = match r.early.take() {
                Some(az) => az,
                None => authz(schema, r, None, coll.create_rule.as_deref())?,
            };
            build_create(r, az)
        }
    };
    check_relations(c, schema, coll, &rec, &mut errs)?;
    if let Some(rule) = &rule {
        let open = rule.sql.is_empty() && rule.joins.is_empty();
        if !open && !rs::passes_unsaved(c, coll, &rec, rule)? {
            return Err(ApiError::bad(CREATE_FAILED));
        }
    }
    if !perrs.is_empty() {
        return Err(ApiError::validation(CREATE_FAILED, perrs));
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(CREATE_FAILED, errs));
    }
    // Before files are stored under the id (the writer's insert checks it
    // again through the primary key).
    if pre {
        if let Some(id) = rec.get("id").and_then(Value::as_str) {
            if rs::fetch_by_id(c, coll, id)?.is_some() {
                errs.add("id", "validation_not_unique", "Value must be unique.");
                return Err(ApiError::validation(CREATE_FAILED, errs));
            }
        }
    }
    Ok((rec, insert))
}

/// An update checked: the record as it will be, as it is, and whether the
/// caller manages it.
type Checked = (Map<String, Value>, Map<String, Value>, bool);

/// An update, resolved, authorized and validated (not written).
fn check_update(c: &Connection, schema: &Schema, id: &str, r: &Ready) -> ApiResult<Checked> {
    let coll = &r.coll;
    let current = rs::fetch_by_id(c, coll, id)?.ok_or_else(ApiError::not_found)?;
    let az = match &r.early {
        Some(az) => az.clone(),
        None => authz(schema, r, Some(&current), coll.update_rule.as_deref())?,
    };
    if let Some(rule) = &az.rule {
        if rs::fetch_where(c, coll, id, rule)?.is_none() {
            return Err(ApiError::not_found());
        }
    }
    let manager = r.req.principal.is_privileged() || is_manager(c, schema, coll, id, &az.ctx)?;
    let mut errs = FieldErrors::new();
    password::check(coll, &r.raw, false, !manager, &mut errs);
    for (k, v) in &r.file_errs.0 {
        errs.add_nested(k, v.clone());
    }
    let rec = build_record(
        c,
        schema,
        coll,
        Some(&current),
        &az.ctx.body,
        r.hash.as_deref(),
        manager,
        &r.files,
        &mut errs,
    )?;
    if !errs.is_empty() {
        return Err(ApiError::validation(UPDATE_FAILED, errs));
    }
    Ok((rec, current, manager))
}

/// Whether the caller manages auth record `id` of `coll` (may set
/// `verified`, change the e-mail or the password without `oldPassword`):
/// an authenticated caller passing the collection's manageRule. As
/// PocketBase: a guest never manages, and an empty manageRule (refused on
/// save) grants nothing.
fn is_manager(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    id: &str,
    ctx: &RequestCtx,
) -> ApiResult<bool> {
    if !coll.is_auth() || ctx.identity.auth().is_none() {
        return Ok(false);
    }
    let Some(rule) = coll.manage_rule().filter(|r| !r.trim().is_empty()) else {
        return Ok(false);
    };
    match rules::rule_cond(schema, coll, Some(rule), ctx)? {
        None => Ok(false),
        Some(cond) => Ok(rs::fetch_where(c, coll, id, &cond)?.is_some()),
    }
}

/// Builds the full row of a create (`existing` None) or an update from the
/// resolved body: values set, defaults, autodates, files, the auth system
/// values, then every field validated (relations checked to exist).
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
    let rec = build_fields(coll, existing, body, password_hash, manager, files, errs);
    check_relations(c, schema, coll, &rec, errs)?;
    Ok(rec)
}

/// The part of [`build_record`] that reads no database: the row, and every
/// field validated on its own value (a field that fails is in `errs`).
fn build_fields(
    coll: &Arc<Collection>,
    existing: Option<&Map<String, Value>>,
    body: &Map<String, Value>,
    password_hash: Option<&str>,
    manager: bool,
    files: &Map<String, Value>,
    errs: &mut FieldErrors,
) -> Map<String, Value> {
    let now = now_string();
    let mut rec: Map<String, Value> = match existing {
        Some(e) => e.clone(),
        None => coll
            .fields
            .iter()
            .map(|f| (f.name.clone(), rv::zero(f)))
            .collect(),
    };
    for (name, raw) in body {
        let Some(f) = coll.field(name) else { continue };
        match &f.kind {
            FieldKind::Autodate(_) | FieldKind::Password(_) | FieldKind::File(_) => continue,
            _ => {}
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
        // Already normalized by `body::resolve` (normalizing twice could
        // change a JSON value).
        rec.insert(name.to_string(), raw.clone());
    }
    if existing.is_none() {
        let id = rec.get("id").map(rv::to_text).unwrap_or_default();
        if id.is_empty() {
            rec.insert("id".into(), json!(new_record_id()));
        } else if let Some(f) = coll.field("id") {
            // Custom ids follow the id field's options (15 chars [a-z0-9] by default).
            if let Err((code, msg, params)) = rv::validate(f, &json!(id)) {
                errs.add_params("id", code, msg, params);
            }
        }
        // Text fields with an autogenerate pattern get a value when empty.
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
    for f in &coll.fields {
        if let FieldKind::Autodate(o) = &f.kind {
            if (existing.is_none() && o.on_create) || (existing.is_some() && o.on_update) {
                rec.insert(f.name.clone(), json!(now));
            }
        }
    }
    // File fields: only the values computed from uploads and the record's
    // own files (`records::files::plan`).
    for (k, v) in files {
        if matches!(coll.field(k).map(|f| &f.kind), Some(FieldKind::File(_))) {
            rec.insert(k.clone(), v.clone());
        }
    }
    if coll.is_auth() {
        let old_key = existing.and_then(|e| e.get("tokenKey"));
        if let Some(h) = password_hash {
            rec.insert("password".into(), json!(h));
            // A new password ends every session.
            if rec.get("tokenKey") == old_key {
                rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
            }
        }
        // A new e-mail ends them too (as PocketBase).
        if let Some(old) = existing {
            if rec.get("email") != old.get("email") && rec.get("tokenKey") == old_key {
                rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
            }
        }
        if rec
            .get("tokenKey")
            .map(rv::to_text)
            .unwrap_or_default()
            .is_empty()
        {
            rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
        }
    }
    for f in &coll.fields {
        if errs.0.contains_key(&f.name) {
            continue;
        }
        // The password is checked on its plain text (`records::password`).
        if matches!(f.kind, FieldKind::Password(_)) || (f.name == "id" && existing.is_none()) {
            continue;
        }
        let v = rec.get(&f.name).unwrap_or(&Value::Null);
        if let Err((code, msg, params)) = rv::validate(f, v) {
            errs.add_params(&f.name, code, msg, params);
        }
    }
    rec
}

/// The part of [`build_record`] that reads the database: each relation
/// field without an error names records that exist.
fn check_relations(
    c: &Connection,
    schema: &Schema,
    coll: &Arc<Collection>,
    rec: &Map<String, Value>,
    errs: &mut FieldErrors,
) -> ApiResult<()> {
    for f in &coll.fields {
        if errs.0.contains_key(&f.name) {
            continue;
        }
        if let FieldKind::Relation(o) = &f.kind {
            let ids = rv::to_string_list(rec.get(&f.name).unwrap_or(&Value::Null));
            if !ids.is_empty() {
                let ok = match schema.by_id(&o.collection_id) {
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
    Ok(())
}

/// Deletes a record and resolves references to it: cascadeDelete relations
/// delete the referencing records, required ones block, others are unset.
/// Every deleted and every unset record is recorded in `changes` (children
/// first, then the record itself, as PocketBase publishes them).
pub fn delete_cascade(
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
                let before = row.clone();
                row.insert(f.name.clone(), v);
                rs::update(c, other, &rid, &row)?;
                changes.updated(c, other, &before, &row)?;
            }
        }
    }
    if changes.wants(coll, Action::Delete) {
        if let Some(row) = rs::fetch_by_id(c, coll, id)? {
            changes.deleting(c, schema, coll, &row)?;
        }
    }
    rs::delete(c, coll, id)?;
    Ok(())
}
