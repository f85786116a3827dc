//! OAuth2 login as PocketBase's: `POST /api/collections/{c}/auth-with-oauth2
//! {provider, code, codeVerifier, redirectURL, createData}` and the
//! `/api/oauth2-redirect` page that hands the code to the SDK's realtime
//! `@oauth2` subscription (the all-in-one popup flow).
//!
//! Accounts are linked as PocketBase links them (`_externalAuths`): an
//! existing link; else the caller's own record; else the record with the
//! provider's verified email (an unverified one gets a random password and
//! loses its other links, so a pre-registered account can't be taken over);
//! else a new record through the collection's create rule.

use super::auth::auth_response;
use super::auth_otp::check_mfa;
use super::records::collection;
use crate::app::App;
use crate::auth::oauth2::{AuthUser, LoginError, Provider};
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::http::{Req, Resp};
use crate::records::{Input, Principal};
use crate::schema::record::to_text;
use crate::schema::Collection;
use crate::store::lookup::{self, Case};
use crate::store::{external_auths, records as rs};
use crate::util::{random_string, ALPHANUM};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const LOADING: &str = "An error occurred while loading the submitted data.";

fn oauth2_options(coll: &Collection) -> &Value {
    coll.options.get("oauth2").unwrap_or(&Value::Null)
}

/// The enabled providers of a collection, as auth-methods lists them.
pub(crate) fn providers_info(coll: &Collection) -> Vec<Value> {
    let o = oauth2_options(coll);
    if !o["enabled"].as_bool().unwrap_or(false) {
        return Vec::new();
    }
    o["providers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| p["name"].as_str())
                .filter_map(|name| Provider::from_options(o, name))
                .map(|p| p.auth_info())
                .collect()
        })
        .unwrap_or_default()
}

/// The record with this id.
async fn by_id(
    app: &App,
    coll: &Arc<Collection>,
    id: String,
) -> ApiResult<Option<Map<String, Value>>> {
    let coll = coll.clone();
    app.store
        .read(move |c| rs::fetch_by_id(c, &coll, &id))
        .await
}

/// The record with this email (ASCII case ignored).
async fn by_email(
    app: &App,
    coll: &Arc<Collection>,
    email: String,
) -> ApiResult<Option<Map<String, Value>>> {
    let coll = coll.clone();
    app.store
        .read(
            move |c| match lookup::id_by(c, &coll, "email", &email, Case::Ignore)? {
                Some(id) => rs::fetch_by_id(c, &coll, &id),
                None => Ok(None),
            },
        )
        .await
}

/// Saves `body` on a record as the system (the flow is its authority).
async fn system_update(
    app: &Arc<App>,
    req: &Req,
    coll: &Arc<Collection>,
    rec: &Map<String, Value>,
    body: Map<String, Value>,
) -> ApiResult<()> {
    let id = rec.get("id").map(to_text).unwrap_or_default();
    let system = super::records::request(app, req).with_principal(Principal::System);
    crate::records::update(app, coll, &id, &system, Input::json(body)).await?;
    Ok(())
}

pub async fn auth_with_oauth2(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let (_, coll) = collection(&app, req.param("collection"))
        .map_err(|_| ApiError::NotFound("Missing or invalid collection context.".into()))?;
    if !coll.is_auth() {
        return Err(ApiError::NotFound(
            "Missing or invalid auth collection context.".into(),
        ));
    }
    let o = oauth2_options(&coll).clone();
    if !o["enabled"].as_bool().unwrap_or(false) {
        return Err(ApiError::Forbidden(
            "The collection is not configured to allow OAuth2 authentication.".into(),
        ));
    }
    let body = req.json_body()?;
    let name = body.get("provider").map(to_text).unwrap_or_default();
    let code = body.get("code").map(to_text).unwrap_or_default();
    let verifier = body.get("codeVerifier").map(to_text).unwrap_or_default();
    let redirect = body
        .get("redirectURL")
        .or_else(|| body.get("redirectUrl"))
        .map(to_text)
        .unwrap_or_default();
    let mut errs = FieldErrors::new();
    let configured = o["providers"]
        .as_array()
        .is_some_and(|l| l.iter().any(|p| p["name"].as_str() == Some(name.as_str())));
    if name.is_empty() {
        errs.add("provider", "validation_required", "Cannot be blank.");
    } else if name.len() > 100 || !configured {
        errs.add_params(
            "provider",
            "validation_invalid_provider",
            format!("Provider with name {name} is missing or is not enabled."),
            json!({"name": name}),
        );
    }
    if code.is_empty() {
        errs.add("code", "validation_required", "Cannot be blank.");
    }
    if !errs.is_empty() {
        return Err(ApiError::validation(LOADING, errs));
    }
    let provider = Provider::from_options(&o, &name)
        .ok_or_else(|| ApiError::internal("Missing or invalid provider config."))?;
    let code_key = code.clone();
    let mut user: AuthUser =
        tokio::task::spawn_blocking(move || provider.login(&code, &verifier, &redirect))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| {
                tracing::info!(error = %e, "OAuth2 login failed");
                match e {
                    LoginError::Token(_) => ApiError::bad("Failed to fetch OAuth2 token."),
                    LoginError::User(_) => ApiError::bad("Failed to fetch OAuth2 user."),
                }
            })?;
    // Apple gives the name only in its first redirect (kept there by code).
    if name == "apple" && user.name.is_empty() {
        if let Some(n) = apple_names::take(&code_key) {
            user.name = n;
        }
    }

    // Which record: an existing link, the caller, or the verified email.
    let (cid, pname, pid) = (coll.id.clone(), name.clone(), user.id.clone());
    let link = app
        .store
        .read(move |c| external_auths::find(c, &cid, &pname, &pid))
        .await?;
    let caller = req
        .identity
        .auth()
        .filter(|a| a.collection.id == coll.id)
        .map(|a| (*a.record).clone());
    let mut rec = match &link {
        Some(l) => by_id(&app, &coll, l.record_ref.clone()).await?,
        None => None,
    };
    if rec.is_none() {
        rec = caller.clone();
    }
    if rec.is_none() && !user.email.is_empty() {
        rec = by_email(&app, &coll, user.email.clone()).await?;
    }
    let mut link_id = link.map(|l| l.id);
    let is_new = rec.is_none();
    let rec = match rec {
        None => {
            if coll.name == "_superusers" {
                return Err(ApiError::bad("Failed to authenticate."));
            }
            let mut payload = match body.get("createData") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            if payload
                .get("email")
                .map(to_text)
                .unwrap_or_default()
                .is_empty()
                && !user.email.is_empty()
            {
                payload.insert("email".into(), json!(user.email));
            }
            let mapped = &o["mappedFields"];
            let m = |k: &str| mapped[k].as_str().unwrap_or_default().to_string();
            let uname = m("username");
            if !uname.is_empty()
                && !payload.contains_key(&uname)
                && can_assign_username(&app, &coll, &uname, &user.username).await?
            {
                payload.insert(uname, json!(user.username));
            }
            let mut uploads = Vec::new();
            for (key, value) in [
                ("id", &user.id),
                ("name", &user.name),
                ("avatarURL", &user.avatar_url),
            ] {
                let field = m(key);
                let is_file = coll
                    .field(&field)
                    .is_some_and(|f| matches!(f.kind, crate::schema::FieldKind::File(_)));
                if field.is_empty()
                    || payload.contains_key(&field)
                    || !coll.has_field(&field)
                    || (key == "avatarURL" && value.is_empty())
                {
                    continue;
                }
                if key == "avatarURL" && is_file {
                    if let Some(up) = avatar_upload(&app, &coll, &field, value).await {
                        uploads.push(up);
                    }
                    continue;
                }
                payload.insert(field, json!(value));
            }
            if !payload.contains_key("password") {
                let pw = random_string(30, ALPHANUM);
                payload.insert("password".into(), json!(pw));
                payload.insert("passwordConfirm".into(), json!(pw));
            }
            // The create rule applies, as to any sign-up.
            let mut signup = super::records::request(&app, &req).with_principal(Principal::Guest);
            signup.context = "oauth2";
            let input = Input {
                body: payload,
                uploads,
            };
            let created = crate::records::create(&app, &coll, &signup, input)
                .await
                .map_err(|e| match e {
                    ApiError::BadRequest { .. } => e,
                    _ => ApiError::bad("Failed to authenticate."),
                })?;
            let id = created.get("id").map(to_text).unwrap_or_default();
            let fresh = by_id(&app, &coll, id)
                .await?
                .ok_or_else(|| ApiError::bad("Failed to authenticate."))?;
            let email = fresh.get("email").map(to_text).unwrap_or_default();
            if !user.email.is_empty() && email.eq_ignore_ascii_case(&user.email) {
                // The provider vouched for the address.
                let mut b = Map::new();
                b.insert("verified".into(), json!(true));
                system_update(&app, &req, &coll, &fresh, b).await?;
                let id = fresh.get("id").map(to_text).unwrap_or_default();
                by_id(&app, &coll, id)
                    .await?
                    .ok_or_else(|| ApiError::bad("Failed to authenticate."))?
            } else {
                fresh
            }
        }
        Some(rec) => {
            let rid = rec.get("id").map(to_text).unwrap_or_default();
            let verified = rec
                .get("verified")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let is_caller = caller
                .as_ref()
                .is_some_and(|c| c.get("id").map(to_text).unwrap_or_default() == rid);
            let mut b = Map::new();
            if !is_caller && !verified {
                // Someone pre-registered this address: their password goes.
                let pw = random_string(30, ALPHANUM);
                b.insert("password".into(), json!(pw));
                b.insert("passwordConfirm".into(), json!(pw));
            }
            if !verified {
                let (cid, rid2) = (coll.id.clone(), rid.clone());
                app.store
                    .write(move |c| external_auths::delete_for_record(c, &cid, &rid2))
                    .await?;
                link_id = None;
            }
            let email = rec.get("email").map(to_text).unwrap_or_default();
            if email.is_empty() && !user.email.is_empty() {
                b.insert("email".into(), json!(user.email));
            }
            if !verified && (email.is_empty() || email.eq_ignore_ascii_case(&user.email)) {
                b.insert("verified".into(), json!(true));
            }
            if !b.is_empty() {
                system_update(&app, &req, &coll, &rec, b).await?;
            }
            by_id(&app, &coll, rid)
                .await?
                .ok_or_else(|| ApiError::bad("Failed to authenticate."))?
        }
    };
    if link_id.is_none() {
        let (cid, rid, pname, pid) = (
            coll.id.clone(),
            rec.get("id").map(to_text).unwrap_or_default(),
            name.clone(),
            user.id.clone(),
        );
        app.store
            .write(move |c| external_auths::insert(c, &cid, &rid, &pname, &pid))
            .await?;
    }
    // The collection's authRule, for the request as it came.
    let id = rec.get("id").map(to_text).unwrap_or_default();
    super::auth::check_auth_rule(&app, &req, &coll, &id, body.clone()).await?;
    if let Some(resp) = check_mfa(&app, &req, &coll, &rec, "oauth2").await? {
        return Ok(resp);
    }
    super::auth_email::auth_alert(&app, &req, &coll, &rec).await;
    let resp = auth_response(&app, &req, &coll, rec).await?;
    // PocketBase's answer adds the provider's view of the user.
    let mut out: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    if let Some(m) = out.as_object_mut() {
        m.insert("meta".into(), user.meta(is_new));
    }
    Ok(Resp::ok(&out))
}

/// The provider's avatar as an upload into the file field `field` (as
/// PocketBase downloads it on sign-up): fetched through the bounded
/// outbound client (10 s, at most 5 MiB, public addresses only unless
/// `oauth2_private_addresses`; two at a time), then checked as the field
/// checks uploads.
/// A failed download or a file the field refuses is logged and left out:
/// the sign-up goes on without it.
async fn avatar_upload(
    app: &App,
    coll: &Collection,
    field: &str,
    url: &str,
) -> Option<crate::files::Upload> {
    // At most two downloads at once: each holds up to 5 MiB in memory.
    static DOWNLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _permit = DOWNLOADS.acquire().await.ok()?;
    let (u, private) = (url.to_string(), app.config.oauth2_private_addresses);
    let got =
        tokio::task::spawn_blocking(move || crate::auth::outbound::download_avatar(&u, private))
            .await
            .ok()?;
    let (data, filename) = match got {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "failed to retrieve the OAuth2 avatar");
            return None;
        }
    };
    if let Some(why) = crate::records::files::refusal(coll, field, &filename, &data) {
        tracing::warn!(reason = %why, "the OAuth2 avatar was refused");
        return None;
    }
    Some(crate::files::Upload {
        key: field.to_string(),
        filename,
        data: crate::files::Blob::Memory(bytes::Bytes::from(data)),
    })
}

/// PocketBase's answers when built without its dashboard.
fn page(ok: bool) -> Resp {
    let mut r = Resp::empty(200);
    if ok {
        r.body = bytes::Bytes::from_static(
            b"Auth completed. You can close this window and go back to the app.",
        );
        r.content_type = "text/html; charset=utf-8";
    } else {
        r.body = bytes::Bytes::from_static(
            b"Failed to authenticate. You can close this window and go back to the app to try again.",
        );
        r.content_type = "text/plain; charset=utf-8";
    }
    r
}

/// `GET/POST /api/oauth2-redirect`: the provider sends the browser here with
/// `state` (the realtime client id) and `code`; they go to that client's
/// `@oauth2` subscription.
pub async fn redirect(app: Arc<App>, req: Req) -> ApiResult<Resp> {
    let form: Map<String, Value> = if req.method == crate::http::Method::POST {
        req.json_body().unwrap_or_default()
    } else {
        req.query_map()
    };
    let get = |k: &str| form.get(k).map(to_text).unwrap_or_default();
    let (state, code, error) = (get("state"), get("code"), get("error"));
    if state.is_empty() {
        return Ok(page(false));
    }
    let mut data = json!({"state": state, "code": code});
    if !error.is_empty() {
        data["error"] = json!(error);
    }
    // Apple posts the user's name (`user`) on the first sign-in only: kept
    // a minute for the auth-with-oauth2 call that follows, before the code
    // reaches the client.
    let apple_name = (error.is_empty() && !code.is_empty())
        .then(|| apple_names::parse(&get("user")))
        .flatten();
    if let Some(n) = &apple_name {
        apple_names::keep(&code, n);
    }
    let sent = app.realtime.send_direct(
        &state,
        req.client_ip,
        "@oauth2",
        bytes::Bytes::from(data.to_string()),
    );
    if !sent && apple_name.is_some() {
        apple_names::take(&code);
    }
    Ok(page(sent && error.is_empty() && !code.is_empty()))
}

/// Whether the provider's username may go into `field` (PocketBase's
/// check): the field exists, a text field accepts the value, and a
/// single-column unique index on it doesn't hold the value yet.
async fn can_assign_username(
    app: &Arc<App>,
    coll: &Arc<Collection>,
    field: &str,
    username: &str,
) -> ApiResult<bool> {
    let Some(f) = coll.field(field) else {
        return Ok(false);
    };
    if username.is_empty() {
        return Ok(false);
    }
    if matches!(f.kind, crate::schema::FieldKind::Text(_))
        && crate::schema::record::validate(f, &json!(username)).is_err()
    {
        return Ok(false);
    }
    let unique = coll.indexes.iter().find_map(|ix| {
        crate::schema::index::parse_index(ix)
            .ok()
            .filter(|d| d.unique && d.columns.len() == 1 && d.columns[0].name == field)
    });
    let Some(ix) = unique else {
        return Ok(true);
    };
    let case = if ix.columns[0]
        .collate
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("nocase"))
    {
        Case::Ignore
    } else {
        Case::Exact
    };
    let (coll, field, name) = (coll.clone(), field.to_string(), username.to_string());
    let taken = app
        .store
        .read(move |c| Ok(lookup::id_by(c, &coll, &field, &name, case)?.is_some()))
        .await?;
    Ok(!taken)
}

/// Apple's user names from its redirects, by authorization code, for a
/// minute; bounded (the oldest go first past 1,000).
mod apple_names {
    use serde_json::Value;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const TTL: Duration = Duration::from_secs(60);
    const MAX: usize = 1000;
    static NAMES: Mutex<Option<HashMap<String, (String, Instant)>>> = Mutex::new(None);

    /// The full name in Apple's `user` form value
    /// (`{"name": {"firstName", "lastName"}, "email"}`), trimmed, at most
    /// 150 bytes; None when there is none.
    pub fn parse(user: &str) -> Option<String> {
        if user.is_empty() || user.len() > 10_000 {
            return None;
        }
        let v: Value = serde_json::from_str(user).ok()?;
        let part = |k: &str| v["name"][k].as_str().unwrap_or_default().to_string();
        let mut full = format!("{} {}", part("firstName"), part("lastName"));
        if full.len() > 150 {
            let mut cut = 150;
            while !full.is_char_boundary(cut) {
                cut -= 1;
            }
            full.truncate(cut);
        }
        let full = full.trim().to_string();
        (!full.is_empty()).then_some(full)
    }

    pub fn keep(code: &str, name: &str) {
        if code.len() > 1000 {
            return;
        }
        let mut g = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let m = g.get_or_insert_with(HashMap::new);
        m.retain(|_, (_, at)| at.elapsed() < TTL);
        if m.len() >= MAX {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(code.to_string(), (name.to_string(), Instant::now()));
    }

    /// The name kept for this code, once.
    pub fn take(code: &str) -> Option<String> {
        let mut g = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        let (name, at) = g.as_mut()?.remove(code)?;
        (at.elapsed() < TTL).then_some(name)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_from_apples_redirect() {
            let u = r#"{"name":{"firstName":"Ada","lastName":"Lovelace"},"email":"a@privaterelay.appleid.com"}"#;
            assert_eq!(parse(u).as_deref(), Some("Ada Lovelace"));
            assert_eq!(
                parse(r#"{"name":{"firstName":"Ada"}}"#).as_deref(),
                Some("Ada")
            );
            assert_eq!(parse(r#"{"email":"x@y.z"}"#), None);
            assert_eq!(parse("not json"), None);
            assert_eq!(parse(""), None);
            let long = format!(r#"{{"name":{{"firstName":"{}"}}}}"#, "é".repeat(200));
            let n = parse(&long).unwrap();
            assert!(n.len() <= 150 && n.chars().all(|c| c == 'é'));
            keep("code-1", "Ada Lovelace");
            assert_eq!(take("code-1").as_deref(), Some("Ada Lovelace"));
            assert_eq!(take("code-1"), None, "once");
            assert_eq!(take("code-2"), None);
            for i in 0..MAX + 10 {
                keep(&format!("c{i}"), "n");
            }
            let len = NAMES.lock().unwrap().as_ref().unwrap().len();
            assert!(len <= MAX, "{len}");
        }
    }
}
