//! `keepd superuser upsert|delete`: manage `_superusers` records from the
//! command line (the same store code as the API, no HTTP).

use crate::config::Config;
use crate::error::ApiError;
use crate::schema::record::is_email;
use crate::store::records as rs;
use crate::util::{new_record_id, now_string, random_string, ALPHANUM};
use serde_json::{json, Value};

pub async fn upsert(cfg: &Config, email: &str, password: &str) -> anyhow::Result<()> {
    if !is_email(email) {
        anyhow::bail!("invalid email address {email:?}");
    }
    let min = 8;
    if password.chars().count() < min {
        anyhow::bail!("the password must be at least {min} characters");
    }
    let store = crate::open_store(cfg)?;
    let hasher = crate::auth::password::Hasher::new(
        cfg.argon2_memory_kib,
        cfg.argon2_iterations,
        cfg.argon2_parallelism,
        1,
    )?;
    let hash = hasher
        .hash(password.to_string())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let schema = store.schema();
    let coll = schema
        .get("_superusers")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("missing _superusers collection"))?;
    let email = email.to_string();
    store
        .write(move |c| {
            let sql = "SELECT \"id\" FROM \"_superusers\" WHERE \"email\" = ?1 COLLATE NOCASE";
            let existing: Option<String> = {
                use rusqlite::OptionalExtension;
                c.query_row(sql, [&email], |r| r.get(0)).optional()?
            };
            let now = now_string();
            match existing {
                Some(id) => {
                    let mut rec =
                        rs::fetch_by_id(c, &coll, &id)?.ok_or_else(ApiError::not_found)?;
                    rec.insert("password".into(), json!(hash));
                    rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
                    rec.insert("updated".into(), json!(now));
                    rs::update(c, &coll, &id, &rec)
                }
                None => {
                    let mut rec = serde_json::Map::new();
                    for f in &coll.fields {
                        rec.insert(f.name.clone(), crate::schema::record::zero(f));
                    }
                    rec.insert("id".into(), json!(new_record_id()));
                    rec.insert("email".into(), json!(email));
                    rec.insert("password".into(), json!(hash));
                    rec.insert("tokenKey".into(), json!(random_string(50, ALPHANUM)));
                    rec.insert("verified".into(), Value::Bool(true));
                    rec.insert("created".into(), json!(now));
                    rec.insert("updated".into(), json!(now));
                    rs::insert(c, &coll, &rec)
                }
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.to_body()))?;
    Ok(())
}

pub async fn delete(cfg: &Config, email: &str) -> anyhow::Result<()> {
    let store = crate::open_store(cfg)?;
    let email = email.to_string();
    let n = store
        .write(move |c| {
            Ok(c.execute(
                "DELETE FROM \"_superusers\" WHERE \"email\" = ?1 COLLATE NOCASE",
                [&email],
            )?)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.to_body()))?;
    if n == 0 {
        anyhow::bail!("no superuser with that email");
    }
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
