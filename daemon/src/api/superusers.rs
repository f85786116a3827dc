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
    let coll = store
        .schema()
        .get("_superusers")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("missing _superusers collection"))?;
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

/// The id of the superuser with this e-mail (case-insensitive).
async fn find(store: &crate::store::Store, email: &str) -> anyhow::Result<Option<String>> {
    let email = email.to_string();
    store
        .read(move |c| {
            use rusqlite::OptionalExtension;
            let sql = "SELECT \"id\" FROM \"_superusers\" WHERE \"email\" = ?1 COLLATE NOCASE";
            Ok(c.query_row(sql, [&email], |r| r.get(0)).optional()?)
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
    let coll = store
        .schema()
        .get("_superusers")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("missing _superusers collection"))?;
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
    let email2 = email.to_string();
    let rec: Option<(String, String)> = store
        .read(move |c| {
            use rusqlite::OptionalExtension;
            Ok(c.query_row(
                "SELECT s.id, (SELECT id FROM _collections WHERE name = '_superusers') FROM \"_superusers\" s WHERE s.email = ?1 COLLATE NOCASE",
                [&email2],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.to_body()))?;
    let Some((rid, cid)) = rec else {
        anyhow::bail!("no superuser with that email");
    };
    let secret = crate::auth::totp::new_secret();
    let uri = crate::auth::totp::uri(&secret, "keepd", email);
    let (codes, digests) = crate::auth::totp::recovery_codes();
    let rec_json = serde_json::to_string(&digests)?;
    let s2 = secret.clone();
    store
        .write(move |c| {
            let now = crate::util::now_string();
            c.execute(
                "INSERT INTO _keepd_totp (collectionRef, recordRef, secret, confirmed, lastStep, recovery, created, updated)
                 VALUES (?1, ?2, ?3, 1, 0, ?4, ?5, ?5)
                 ON CONFLICT(collectionRef, recordRef) DO UPDATE SET secret = excluded.secret, confirmed = 1, lastStep = 0, recovery = excluded.recovery, updated = excluded.updated",
                rusqlite::params![cid, rid, s2, rec_json, now],
            )?;
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
