//! The password policy of auth records, the same for every way in (the
//! records API, batch, password reset, the superuser CLI): the password
//! field's own options (min, max, pattern), keepd's list of common
//! passwords, `passwordConfirm`, and `oldPassword` for a change made by the
//! record itself. Hashing (argon2id) happens only after the write was
//! authorized and these checks passed.

use crate::app::App;
use crate::error::{ApiResult, FieldErrors};
use crate::schema::record::{self as rv};
use crate::schema::Collection;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Checks the password keys of a write to an auth collection. `create`:
/// the password is required. `needs_old`: `oldPassword` must be given (the
/// record changes its own password; it is verified by [`verify_old`]).
/// Returns the new plain password when one is set and acceptable.
pub fn check(
    coll: &Collection,
    body: &Map<String, Value>,
    create: bool,
    needs_old: bool,
    errs: &mut FieldErrors,
) -> Option<String> {
    if !coll.is_auth() {
        return None;
    }
    let text = |k: &str| body.get(k).map(rv::to_text).unwrap_or_default();
    let (pw, confirm) = (text("password"), text("passwordConfirm"));
    if pw.is_empty() {
        // An oldPassword or a passwordConfirm alone asks for a change: the
        // new one is missing (and, as PocketBase, the confirmation then
        // doesn't match it, and a non-manager owes the old one).
        let old = text("oldPassword");
        if create || !old.is_empty() || !confirm.is_empty() {
            errs.add("password", "validation_required", "Cannot be blank.");
            if confirm.is_empty() {
                errs.add("passwordConfirm", "validation_required", "Cannot be blank.");
            } else {
                errs.add(
                    "passwordConfirm",
                    "validation_values_mismatch",
                    "Values don't match.",
                );
            }
            if !create && needs_old && old.is_empty() {
                errs.add("oldPassword", "validation_required", "Cannot be blank.");
            }
        }
        return None;
    }
    if let Some(f) = coll.field("password") {
        if let Err((code, msg, params)) = rv::validate(f, &json!(pw)) {
            errs.add_params("password", code, msg, params);
            return None;
        }
    }
    // keepd's own rule: none of the most common passwords.
    if crate::auth::password::is_common(&pw) {
        errs.add(
            "password",
            "validation_common_password",
            "The password is too common, please choose another one.",
        );
        return None;
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
        return None;
    }
    if needs_old && text("oldPassword").is_empty() {
        errs.add("oldPassword", "validation_required", "Cannot be blank.");
        return None;
    }
    Some(pw)
}

/// Verifies `oldPassword` against the record's stored hash.
pub async fn verify_old(
    app: &App,
    body: &Map<String, Value>,
    stored_hash: Option<String>,
    errs: &mut FieldErrors,
) -> ApiResult<()> {
    let old = body.get("oldPassword").map(rv::to_text).unwrap_or_default();
    let (ok, _) = app.hasher.verify(old, stored_hash).await?;
    if !ok {
        errs.add(
            "oldPassword",
            "validation_invalid_old_password",
            "Missing or invalid old password.",
        );
    }
    Ok(())
}

/// Stores a fresh hash of a record's current password (after a login
/// verified it against a hash made with older parameters, or bcrypt). Not
/// a password change: the tokenKey stays, sessions live on, no event.
pub async fn rehash(app: &App, coll: &Arc<Collection>, id: &str, plain: String) -> ApiResult<()> {
    let new_hash = hash(app, plain).await?;
    let (coll, id) = (coll.clone(), id.to_string());
    app.store
        .write(move |c| {
            crate::store::records::set_value(c, &coll, &id, "password", &json!(new_hash))
        })
        .await
}

/// Hashes an accepted password (bounded concurrency: `auth::password`).
pub async fn hash(app: &App, plain: String) -> ApiResult<String> {
    app.hasher.hash(plain).await
}
