//! Password handling against the real daemon: a bcrypt hash (as in a
//! PocketBase database brought over) verifies and is replaced by argon2id
//! at that login; the password never reaches the log.

use crate::common::*;
use serde_json::json;

#[test]
fn bcrypt_hashes_verify_and_are_upgraded_to_argon2id() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (id, _) = srv.sign_up("old@example.com", "placeholder-123");
    // What PocketBase stores: bcrypt, cost 10.
    let bcrypt_hash = bcrypt::hash("imported-password-1", 10).expect("bcrypt");
    assert!(bcrypt_hash.starts_with("$2b$10$"));
    {
        let db = rusqlite::Connection::open(srv.db_path()).expect("db");
        db.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy");
        db.execute(
            "UPDATE users SET password = ?1 WHERE id = ?2",
            [&bcrypt_hash, &id],
        )
        .expect("update");
    }
    let stored = || -> String {
        srv.open_db()
            .query_row("SELECT password FROM users WHERE id = ?1", [&id], |r| {
                r.get(0)
            })
            .expect("row")
    };
    // A wrong password fails and leaves the hash alone.
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "old@example.com", "password": "wrong-password-1"}),
    );
    assert_eq!(st, 400);
    assert_eq!(stored(), bcrypt_hash);
    // The right one logs in and the hash becomes argon2id.
    let (st, v) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "old@example.com", "password": "imported-password-1"}),
    );
    assert_eq!(st, 200, "{v}");
    let now = stored();
    assert!(now.starts_with("$argon2id$"), "{now}");
    // The earlier session survives the upgrade (tokenKey unchanged)...
    let (st, _) = srv
        .with_token(v["token"].as_str().expect("token"))
        .post("/api/collections/users/auth-refresh", &json!({}));
    assert_eq!(st, 200);
    // ...and the same password logs in against the new hash.
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "old@example.com", "password": "imported-password-1"}),
    );
    assert_eq!(st, 200);
    // A hostile bcrypt cost is refused, not computed for hours.
    {
        let db = rusqlite::Connection::open(srv.db_path()).expect("db");
        db.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy");
        let slow = bcrypt_hash.replacen("$2b$10$", "$2b$31$", 1);
        db.execute("UPDATE users SET password = ?1 WHERE id = ?2", [&slow, &id])
            .expect("update");
    }
    let started = std::time::Instant::now();
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "old@example.com", "password": "imported-password-1"}),
    );
    assert_eq!(st, 400);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn passwords_never_reach_the_log() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder().env("KEEPD_LOG", "debug").start();
    let secret = "Very-Distinct-Pass-7319";
    srv.sign_up("log@example.com", secret);
    for pw in [secret, "Another-Distinct-Guess-4422"] {
        srv.guest().post(
            "/api/collections/users/auth-with-password",
            &json!({"identity": "log@example.com", "password": pw}),
        );
    }
    let out = srv.output();
    assert!(out.contains("request"), "debug logging is on: {out}");
    assert!(!out.contains(secret), "a password reached the log");
    assert!(!out.contains("Another-Distinct-Guess-4422"));
}

#[test]
fn common_passwords_are_refused() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    for pw in ["password", "Baseball", "qwertyuiop", "iloveyou"] {
        let (st, v) = srv.guest().post(
            "/api/collections/users/records",
            &json!({"email": "c@example.com", "password": pw, "passwordConfirm": pw}),
        );
        assert_eq!(st, 400, "{pw}: {v}");
        assert_eq!(
            v["data"]["password"]["code"], "validation_common_password",
            "{pw}"
        );
    }
    // An uncommon one is fine, and changing to a common one is refused too.
    let (id, token) = srv.sign_up("c@example.com", "uncommon-pass-4821");
    let (st, v) = srv.with_token(&token).patch(
        &format!("/api/collections/users/records/{id}"),
        &json!({"oldPassword": "uncommon-pass-4821", "password": "football", "passwordConfirm": "football"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["password"]["code"], "validation_common_password");
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn hashing_memory_is_given_back_when_idle() {
    if is_reference() {
        return;
    }
    // The shipped size (OWASP's 19 MiB) and two hasher threads, as a device
    // runs: a block of this size is where an allocator is tempted to keep it.
    let srv = TestServer::builder()
        .env("KEEPD_ARGON2_MEMORY_KIB", "19456")
        .env("KEEPD_MAX_CONCURRENT_HASHES", "2")
        .start();
    let pid = srv.pid();
    let token = srv.superuser_token();
    assert!(!token.is_empty());
    let during = rss_kib(pid);
    // The login just hashed: the block is still held (reuse within a burst).
    assert!(
        during > 19 * 1024,
        "RSS {during} KiB right after a 19 MiB hash"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let now = rss_kib(pid);
        if now + 15 * 1024 < during {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hashing block was not given back: RSS {now} KiB (was {during} KiB)"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // And a later login still works (the block is allocated again).
    let (st, v) = srv.guest().post(
        "/api/collections/_superusers/auth-with-password",
        &serde_json::json!({"identity": SU_EMAIL, "password": SU_PASSWORD}),
    );
    assert_eq!(st, 200, "{v}");
}
