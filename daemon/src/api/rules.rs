//! keepd's rule tools for the console (superusers):
//!
//! - `POST /api/rules/check {collection, rule}` — 204 when the rule compiles
//!   for the collection (the compiler a collection save uses,
//!   `rules::rule_problem`), else 400 with `data.rule = {code:
//!   "validation_invalid_rule", message}` (the parser's position in it).
//! - `POST /api/rules/test {collection, kind, rule?, auth?, recordId?,
//!   filter?, page?, perPage?}` — the rule tester: the records a list or
//!   view rule (the saved one, or a candidate) gives a principal, read
//!   through `records::list` as that principal (an auth record loaded as
//!   its token would load it, or a guest), and for one record whether it
//!   passes, with each top-level `&&`/`||` clause (printed back from the
//!   AST) checked by `records::check_rule`. `@request.*` other than `auth`
//!   is empty (`request: "empty"`). Audited as `rules.test`.

use super::require_superuser;
use crate::app::App;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::filter::Expr;
use crate::http::{Req, Resp};
use crate::records::{self, ListParams, Principal, Request};
use crate::schema::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const VALIDATION: &str = "An error occurred while validating the submitted data.";

/// Most records one tester answer lists.
const MAX_PER_PAGE: i64 = 100;

fn field_error(key: &str, code: &str, message: impl Into<String>) -> ApiError {
    let mut e = FieldErrors::new();
    e.add(key, code, message);
    ApiError::validation(VALIDATION, e)
}

fn required(key: &str) -> ApiError {
    field_error(key, "validation_required", "Cannot be blank.")
}

fn text<'a>(body: &'a Map<String, Value>, key: &str) -> ApiResult<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(field_error(
            key,
            "validation_invalid_value",
            "Must be a string.",
        )),
    }
}

/// The body's collection (name or id): 404 when there is none such.
fn collection(app: &App, body: &Map<String, Value>) -> ApiResult<Arc<Collection>> {
    let name = text(body, "collection")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| required("collection"))?;
    app.store
        .schema()
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Missing collection context.".into()))
}

/// A rule that does not compile for `coll`, as a 400 on `rule`.
fn check(app: &App, coll: &Arc<Collection>, rule: &str) -> ApiResult<()> {
    let schema = app.store.schema();
    crate::rules::rule_problem(&schema, coll, rule).map_err(|p| {
        let mut message = format!("Invalid rule. Raw error: {}", p.message);
        if let Some((pos, what)) = p.at {
            let at = rule.get(..pos).map_or(pos, |s| s.chars().count()) + 1;
            message.push_str(&format!(" (at character {at}: {what})"));
        }
        field_error("rule", "validation_invalid_rule", message)
    })
}

pub async fn check_rule(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let coll = collection(&app, &body)?;
    let rule = match body.get("rule") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => return Err(required("rule")),
        Some(_) => {
            return Err(field_error(
                "rule",
                "validation_invalid_value",
                "Must be a string.",
            ))
        }
    };
    check(&app, &coll, rule)?;
    Ok(Resp::empty(204))
}

/// The principal of `auth: {collection, id}` (absent or null: a guest),
/// built as the token path builds it.
fn principal(app: &App, body: &Map<String, Value>) -> ApiResult<Principal> {
    let auth = match body.get("auth") {
        None | Some(Value::Null) => return Ok(Principal::Guest),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(field_error(
                "auth",
                "validation_invalid_value",
                "Must be {collection, id} or null.",
            ))
        }
    };
    let missing = || ApiError::NotFound("The auth record doesn't exist.".into());
    let coll_name = text(auth, "collection")?.unwrap_or_default();
    let id = text(auth, "id")?.unwrap_or_default();
    let coll = app
        .store
        .schema()
        .get(coll_name)
        .cloned()
        .ok_or_else(missing)?;
    let rec = super::identity::auth_record_now(app, &coll, id)?.ok_or_else(missing)?;
    Ok(super::identity::identity_of(rec).into())
}

fn int(body: &Map<String, Value>, key: &str) -> ApiResult<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| field_error(key, "validation_invalid_value", "Must be an integer.")),
    }
}

/// The top-level operands of a rule: those of its `&&` or `||`, or the
/// rule itself when it is one comparison.
fn clauses(rule: &str) -> Vec<String> {
    match crate::filter::parse(rule) {
        Ok(Expr::And(xs)) | Ok(Expr::Or(xs)) => xs.iter().map(ToString::to_string).collect(),
        Ok(e) => vec![e.to_string()],
        Err(_) => Vec::new(),
    }
}

pub async fn test_rule(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    require_superuser(&req)?;
    let body = req.json_body()?;
    let coll = collection(&app, &body)?;
    let kind = match text(&body, "kind")? {
        Some(k @ ("list" | "view")) => k,
        Some(_) => {
            return Err(field_error(
                "kind",
                "validation_in_invalid",
                "Must be list or view.",
            ))
        }
        None => return Err(required("kind")),
    };
    // The rule: a candidate (null: superusers only), or the saved one.
    let rule: Option<String> = match body.get("rule") {
        None => match kind {
            "list" => coll.list_rule.clone(),
            _ => coll.view_rule.clone(),
        },
        Some(Value::Null) => None,
        Some(Value::String(s)) => {
            check(&app, &coll, s)?;
            Some(s.clone())
        }
        Some(_) => {
            return Err(field_error(
                "rule",
                "validation_invalid_value",
                "Must be a string or null.",
            ))
        }
    };
    let principal = principal(&app, &body)?;
    let record_id = text(&body, "recordId")?.filter(|s| !s.is_empty());
    let filter = text(&body, "filter")?.unwrap_or_default().to_string();
    let page = int(&body, "page")?.unwrap_or(1).max(1);
    let per_page = match int(&body, "perPage")?.unwrap_or(30) {
        n if n <= 0 => 30,
        n => n.min(MAX_PER_PAGE),
    };

    // The collection as it would be with this rule: listing it lists what
    // the rule gives (for a view rule, the records the principal may open).
    let mut tried = (*coll).clone();
    tried.list_rule = rule.clone();
    if kind == "view" {
        tried.view_rule = rule.clone();
    }
    let tried = Arc::new(tried);
    let request = Request {
        principal: principal.clone(),
        method: "GET".into(),
        context: "default",
        ..Default::default()
    };
    let locked = rule.is_none();
    let (total, items) = if locked && !principal.is_privileged() {
        (0, Value::Array(Vec::new()))
    } else {
        let params = ListParams {
            filter,
            sort: String::new(),
            page,
            per_page,
            skip_total: false,
        };
        let mut page = records::list(&app, &tried, &request, params).await?;
        (
            page["totalItems"].as_i64().unwrap_or(0),
            page["items"].take(),
        )
    };

    let mut out = json!({
        "rule": rule,
        "locked": locked,
        "request": "empty",
        "totalItems": total,
        "items": items,
    });
    if let Some(id) = record_id {
        // The record must exist (read as keepd itself).
        records::view(&app, &coll, id, &Request::system()).await?;
        let passes = |r: String| {
            let (app, tried, request) = (app.clone(), tried.clone(), request.clone());
            let id = id.to_string();
            async move {
                records::check_rule(&app, &tried, &id, Some(&r), &request, Map::new())
                    .await
                    .map(|ok| ok == Some(true))
            }
        };
        let allowed = match &rule {
            _ if principal.is_privileged() => true,
            None => false,
            Some(r) => passes(r.clone()).await?,
        };
        let mut each = Vec::new();
        for expr in rule.as_deref().map(clauses).unwrap_or_default() {
            let result = passes(expr.clone()).await?;
            each.push(json!({"expr": expr, "result": result}));
        }
        out["record"] = json!({"id": id, "allowed": allowed, "clauses": each});
    }
    app.audit(crate::store::audit::Entry {
        action: "rules.test",
        actor: super::auth::actor(&req),
        ip: req.client_ip.to_string(),
        target: format!("{}/{kind}", coll.name),
        diff: json!({
            "rule": out["rule"],
            "auth": body.get("auth").cloned().unwrap_or(Value::Null),
            "recordId": record_id,
        }),
    })
    .await;
    Ok(Resp::ok(&out))
}
