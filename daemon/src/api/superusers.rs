//! `keepd superuser upsert|delete`: manage `_superusers` records from the
//! command line, through the same record domain as the API (no HTTP).

use crate::config::Config;
use crate::error::ApiError;
use crate::records::{Input, Request};
use crate::schema::record::is_email;
use serde_json::json;

pub async fn upsert(cfg: &Config, email: &str, password: &str) -> anyhow::Result<()> {
    if !is_email(email) {
        anyhow::bail!("invalid email address {email:?}");
    }
    let store = crate::open_store(cfg)?;
    let mut cfg = cfg.clone();
    // One hash at a time is plenty for the shell.
    cfg.max_concurrent_hashes = 1;
    let app = crate::app::App::new(cfg, store.clone()).await?;
    let coll = superusers(&store)?;
    let existing = find(&store, email).await?;
    // The operator's shell is the authority; the password policy is the
    // API's (the `_superusers` password field and keepd's common list).
    let mut body = serde_json::Map::new();
    body.insert("password".into(), json!(password));
    body.insert("passwordConfirm".into(), json!(password));
    let req = Request::system();
    let result = match existing {
        Some(id) => crate::records::update(&app, &coll, &id, &req, Input::json(body)).await,
        None => {
            body.insert("email".into(), json!(email));
            body.insert("verified".into(), json!(true));
            crate::records::create(&app, &coll, &req, Input::json(body)).await
        }
    };
    result.map_err(cli_error)?;
    Ok(())
}

/// The `_superusers` collection.
fn superusers(
    store: &crate::store::Store,
) -> anyhow::Result<std::sync::Arc<crate::schema::Collection>> {
    store
        .schema()
        .get("_superusers")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("missing _superusers collection"))
}

/// The id of the superuser with this e-mail (case-insensitive).
async fn find(store: &crate::store::Store, email: &str) -> anyhow::Result<Option<String>> {
    let coll = superusers(store)?;
    let email = email.to_string();
    store
        .read(move |c| {
            use crate::store::lookup::{id_by, Case};
            id_by(c, &coll, "email", &email, Case::Ignore)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.to_body()))
}

/// A refused write as one line for the shell: the message, then each
/// field's complaint.
fn cli_error(e: ApiError) -> anyhow::Error {
    let body = e.to_body();
    let mut msg = body["message"].as_str().unwrap_or_default().to_string();
    if let Some(data) = body["data"].as_object() {
        for (field, err) in data {
            let text = err["message"].as_str().unwrap_or_default();
            msg.push_str(&format!(" {field}: {text}"));
        }
    }
    anyhow::anyhow!("{msg}")
}

pub async fn delete(cfg: &Config, email: &str) -> anyhow::Result<()> {
    let store = crate::open_store(cfg)?;
    let app = crate::app::App::new(cfg.clone(), store.clone()).await?;
    let coll = superusers(&store)?;
    let id = find(&store, email).await?;
    let Some(id) = id else {
        anyhow::bail!("no superuser with that email");
    };
    crate::records::delete(&app, &coll, &id, &Request::system())
        .await
        .map_err(cli_error)?;
    Ok(())
}

/// TOTP for a superuser from the command line (the operator's shell is the
/// trusted channel): a new secret, on at once, with fresh recovery codes.
/// Returns (otpauth URI, secret, recovery codes).
pub async fn totp(cfg: &Config, email: &str) -> anyhow::Result<(String, String, Vec<String>)> {
    let store = crate::open_store(cfg)?;
    let coll = superusers(&store)?;
    let Some(rid) = find(&store, email).await? else {
        anyhow::bail!("no superuser with that email");
    };
    let secret = crate::auth::totp::new_secret();
    let uri = crate::auth::totp::uri(&secret, "keepd", email);
    let (codes, digests) = crate::auth::totp::recovery_codes();
    let state = crate::store::totp::Totp {
        secret: secret.clone(),
        confirmed: true,
        last_step: 0,
        recovery: digests,
    };
    store
        .write(move |c| {
            crate::store::totp::put(c, &coll.id, &rid, &state)?;
            crate::store::audit::append(
                c,
                &crate::store::audit::Entry {
                    action: "mfa.totp.enable",
                    actor: "cli".into(),
                    ip: String::new(),
                    target: format!("_superusers/{rid}"),
                    diff: serde_json::json!({"via": "keepd superuser totp"}),
                },
            )?;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.to_body()))?;
    Ok((uri, secret, codes))
}
