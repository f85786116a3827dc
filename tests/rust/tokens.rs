//! Auth tokens under attack, against the real daemon: `alg: none`, a wrong
//! key, an expired token signed with the right key, a tampered payload,
//! another collection's token, a refresh of a non-refreshable
//! (impersonation) token — all refused as PocketBase refuses them; and a
//! password change revoking every earlier token.
//!
//! The forged tokens are signed here with HMAC-SHA256 over keys read from
//! the database (tokenKey + the collection's secret), so a rejection shows
//! that the check in question works, not that the forgery was clumsy.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};

fn parts(token: &str) -> (Value, Map<String, Value>) {
    let mut it = token.split('.');
    let h: Value = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    let p: Value = serde_json::from_slice(&B64.decode(it.next().unwrap()).unwrap()).unwrap();
    (h, p.as_object().cloned().unwrap())
}

fn sign(header: &Value, claims: &Map<String, Value>, key: &str) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(Value::Object(claims.clone()).to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// tokenKey of a record + the collection's authToken secret.
fn signing_key(srv: &TestServer, collection: &str, id: &str) -> String {
    let db = srv.open_db();
    let token_key: String = db
        .query_row(
            &format!("SELECT tokenKey FROM {collection} WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let options: String = db
        .query_row(
            "SELECT options FROM _collections WHERE name = ?1",
            [collection],
            |r| r.get(0),
        )
        .unwrap();
    let o: Value = serde_json::from_str(&options).unwrap();
    format!("{token_key}{}", o["authToken"]["secret"].as_str().unwrap())
}

fn refresh(srv: &TestServer, collection: &str, token: &str) -> (u16, Value) {
    srv.with_token(token).post(
        &format!("/api/collections/{collection}/auth-refresh"),
        &json!({}),
    )
}

#[test]
fn forged_and_misused_tokens_are_refused() {
    let srv = TestServer::start();
    let (id, token) = srv.sign_up("tok@example.com", "tok-password-123");
    // The genuine token works.
    let (st, v) = refresh(&srv, "users", &token);
    assert_eq!(st, 200, "{v}");
    let (header, claims) = parts(&token);
    assert_eq!(header["alg"], "HS256");
    let key = signing_key(&srv, "users", &id);
    // Re-signing the same claims with the right key is accepted: the
    // forgeries below differ only in what is under test.
    assert_eq!(refresh(&srv, "users", &sign(&header, &claims, &key)).0, 200);

    let unauthorized = |t: &str, what: &str| {
        let (st, v) = refresh(&srv, "users", t);
        assert_eq!(st, 401, "{what}: {v}");
        assert_eq!(
            v["message"], "The request requires valid record authorization token.",
            "{what}"
        );
    };
    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(Value::Object(claims.clone()).to_string())
    );
    unauthorized(&none, "alg none");
    // alg: none with the genuine signature kept.
    let sig = token.rsplit('.').next().unwrap();
    let none_sig = format!("{}{sig}", none);
    unauthorized(&none_sig, "alg none with a signature");
    // Another algorithm.
    unauthorized(
        &sign(&json!({"alg": "HS512", "typ": "JWT"}), &claims, &key),
        "alg HS512",
    );
    // A wrong key.
    unauthorized(&sign(&header, &claims, "not-the-key"), "wrong key");
    // Expired, signed with the right key.
    let mut expired = claims.clone();
    expired.insert("exp".into(), json!(1_000_000_000));
    unauthorized(&sign(&header, &expired, &key), "expired");
    // A tampered payload under the original signature.
    let mut other = claims.clone();
    other.insert("refreshable".into(), json!(true));
    other.insert("exp".into(), json!(claims["exp"].as_i64().unwrap() + 1));
    let tampered = format!(
        "{}.{}.{sig}",
        token.split('.').next().unwrap(),
        B64.encode(Value::Object(other).to_string())
    );
    unauthorized(&tampered, "tampered payload");
    // Garbage.
    unauthorized("abc.def.ghi", "garbage");

    // Another collection's token on this collection's route.
    let su_token = srv.superuser_token();
    let (st, v) = refresh(&srv, "users", &su_token);
    assert_eq!(st, 403, "{v}");
    assert_eq!(
        v["message"],
        "The request requires auth record from _superusers collection."
    );
    // A user token is not a superuser token.
    let (st, _) = srv.with_token(&token).get("/api/collections");
    assert_eq!(st, 403);

    // Impersonation tokens are not refreshable: a refresh hands the same
    // token back (as PocketBase), never a new or longer one.
    let (st, v) = srv.su().post(
        &format!("/api/collections/users/impersonate/{id}"),
        &json!({"duration": 60}),
    );
    assert_eq!(st, 200, "{v}");
    let imp = v["token"].as_str().unwrap().to_string();
    assert_eq!(parts(&imp).1["refreshable"], false);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (st, v) = refresh(&srv, "users", &imp);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["token"],
        json!(imp),
        "an impersonation token was extended"
    );
    assert_eq!(v["record"]["id"], json!(id));
    // ...and marking one refreshable breaks its signature.
    let (h, mut c) = parts(&imp);
    c.insert("refreshable".into(), json!(true));
    let imp_sig = imp.rsplit('.').next().unwrap();
    let forged = format!(
        "{}.{}.{imp_sig}",
        B64.encode(h.to_string()),
        B64.encode(Value::Object(c).to_string())
    );
    unauthorized(&forged, "impersonation token made refreshable");
}

#[test]
fn a_password_change_revokes_earlier_tokens() {
    let srv = TestServer::start();
    let (id, token) = srv.sign_up("rev@example.com", "rev-password-123");
    let (st, v) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "rev@example.com", "password": "rev-password-123"}),
    );
    assert_eq!(st, 200);
    let second = v["token"].as_str().unwrap().to_string();
    // Changing the password needs the old one.
    let (st, v) = srv.with_token(&token).patch(
        &format!("/api/collections/users/records/{id}"),
        &json!({"password": "new-password-456", "passwordConfirm": "new-password-456"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["oldPassword"]["code"], "validation_required");
    let (st, v) = srv.with_token(&token).patch(
        &format!("/api/collections/users/records/{id}"),
        &json!({"oldPassword": "rev-password-123", "password": "new-password-456", "passwordConfirm": "new-password-456"}),
    );
    assert_eq!(st, 200, "{v}");
    for t in [&token, &second] {
        let (st, _) = refresh(&srv, "users", t);
        assert_eq!(st, 401, "a token from before the change still works");
    }
    // The new password works and its token does.
    let (st, v) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "rev@example.com", "password": "new-password-456"}),
    );
    assert_eq!(st, 200);
    assert_eq!(refresh(&srv, "users", v["token"].as_str().unwrap()).0, 200);
    // The old password doesn't.
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "rev@example.com", "password": "rev-password-123"}),
    );
    assert_eq!(st, 400);
}

#[test]
fn file_tokens_are_short_lived_and_signed_with_the_file_secret() {
    let srv = TestServer::start();
    let (id, token) = srv.sign_up("file@example.com", "file-password-123");
    let (st, v) = srv.guest().post("/api/files/token", &json!({}));
    assert_eq!(st, 401, "{v}");
    let (st, v) = srv.with_token(&token).post("/api/files/token", &json!({}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(1));
    let ft = v["token"].as_str().expect("token").to_string();
    let (h, c) = parts(&ft);
    assert_eq!(h["alg"], "HS256");
    assert_eq!(c["type"], "file");
    assert_eq!(c["id"], json!(id));
    assert_eq!(c["collectionId"], "_pb_users_auth_");
    let exp = c["exp"].as_i64().expect("exp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    assert!(
        exp > now && exp <= now + 180 + 5,
        "a file token lives minutes: {}",
        exp - now
    );
    // Signed with tokenKey + the fileToken secret (not the auth secret).
    let db = srv.open_db();
    let token_key: String = db
        .query_row("SELECT tokenKey FROM users WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .expect("row");
    let options: String = db
        .query_row(
            "SELECT options FROM _collections WHERE name = 'users'",
            [],
            |r| r.get(0),
        )
        .expect("row");
    let o: Value = serde_json::from_str(&options).expect("json");
    let key = format!(
        "{token_key}{}",
        o["fileToken"]["secret"].as_str().expect("secret")
    );
    assert_eq!(sign(&h, &c, &key), ft);
    // A file token is not an auth token.
    let (st, _) = refresh(&srv, "users", &ft);
    assert_eq!(st, 401);
}

/// A token the daemon has just accepted again and again (so each worker
/// may remember it as verified) is refused at once after its record's
/// tokenKey changes or the record goes, even when the change comes from
/// another process writing the database.
#[test]
fn a_token_accepted_a_moment_ago_is_refused_once_its_key_changes_outside() {
    let srv = TestServer::start();
    let (id, token) = srv.sign_up("keyed@example.com", "keyed-password-123");
    let (gone_id, gone_token) = srv.sign_up("gone@example.com", "gone-password-123");
    let own = |tok: &str, rec: &str| {
        srv.with_token(tok)
            .get(&format!("/api/collections/users/records/{rec}"))
            .0
    };
    for _ in 0..20 {
        assert_eq!(own(&token, &id), 200);
        assert_eq!(own(&gone_token, &gone_id), 200);
    }
    // Another process's connection, not the daemon's writer.
    let db = rusqlite::Connection::open(srv.db_path()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = db
        .execute(
            "UPDATE users SET tokenKey = 'renewed-elsewhere-0123456789' WHERE id = ?1",
            [&id],
        )
        .unwrap();
    assert_eq!(n, 1);
    db.execute("DELETE FROM users WHERE id = ?1", [&gone_id])
        .unwrap();
    drop(db);
    for _ in 0..20 {
        assert_eq!(
            own(&token, &id),
            404,
            "a token of the old tokenKey still works"
        );
        assert_eq!(
            refresh(&srv, "users", &gone_token).0,
            401,
            "a deleted record's token still works"
        );
    }
}
