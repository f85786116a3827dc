//! keepd's guards against abuse, against the real daemon: account lockout
//! (brute force → 429 with Retry-After → the owner gets back in after the
//! delay or a superuser unlock), PocketBase's rate-limit rules (on by
//! default in keepd), `X-Forwarded-For` believed only from trusted proxies,
//! and the append-only audit log of privileged actions.
//!
//! Lockout, the audit log and trusted proxies are keepd's own: skipped
//! against PocketBase.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn login(srv: &TestServer, email: &str, password: &str) -> Resp {
    let body = json!({"identity": email, "password": password}).to_string();
    srv.raw(
        "POST",
        "/api/collections/users/auth-with-password",
        &[],
        Some(body.as_bytes()),
    )
}

fn audit(srv: &TestServer, query: &str) -> Vec<Value> {
    let (st, v) = srv.su().get(&format!("/api/audit?{query}"));
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn brute_force_locks_the_account_and_the_owner_gets_back_in() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_LOCKOUT_MAX_FAILURES", "3")
        .env("KEEPD_LOCKOUT_BASE_SECS", "2")
        .env("KEEPD_LOCKOUT_MAX_SECS", "4")
        .start();
    let (id, _) = srv.sign_up("owner@example.com", "owner-password-1");
    for i in 0..3 {
        let r = login(&srv, "owner@example.com", &format!("guess-{i}"));
        assert_eq!(r.status, 400, "attempt {i}: {}", r.text());
        assert_eq!(r.json()["message"], "Failed to authenticate.");
    }
    // Locked: even the right password is refused, with Retry-After.
    let r = login(&srv, "owner@example.com", "owner-password-1");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_error_shape(&r.json(), 429, "locked");
    assert_eq!(
        r.json()["message"],
        "Too many failed login attempts, please try again later."
    );
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    // Another account and unknown identities are unaffected.
    srv.sign_up("other@example.com", "other-password-1");
    assert_eq!(
        login(&srv, "other@example.com", "other-password-1").status,
        200
    );
    assert_eq!(
        login(&srv, "nobody@example.com", "x-password-1").status,
        400
    );
    // The lockout is listed and audited.
    let (st, v) = srv.su().get("/api/lockouts");
    assert_eq!(st, 200);
    assert_eq!(v[0]["recordId"], json!(id));
    assert_eq!(v[0]["collectionName"], "users");
    let entries = audit(&srv, "action=lockout");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["target"], json!(format!("users/{id}")));
    assert_eq!(entries[0]["ip"], "127.0.0.1");
    assert_eq!(entries[0]["diff"]["lockedForSeconds"], 2);
    // The lock runs out by itself (nobody logs in meanwhile)...
    let expired = wait_until(Duration::from_secs(6), || {
        let (st, v) = srv.su().get("/api/lockouts");
        st == 200 && v.as_array().is_some_and(|a| a.is_empty())
    });
    assert!(
        expired,
        "the 2 s lockout was still listed after 6 s: {}",
        srv.su().get("/api/lockouts").1
    );
    // ...and the guesser's next lockout lasts twice as long (capped at 4 s).
    for i in 0..3 {
        login(&srv, "owner@example.com", &format!("again-{i}"));
    }
    let r = login(&srv, "owner@example.com", "owner-password-1");
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((2..=4).contains(&retry) && retry > 1, "retry-after {retry}");
    // A superuser can end it at once.
    let (st, v) = srv.su().delete(&format!("/api/lockouts/users/{id}"));
    assert_eq!(st, 204, "{v}");
    assert_eq!(
        login(&srv, "owner@example.com", "owner-password-1").status,
        200
    );
    let (st, _) = srv.su().delete(&format!("/api/lockouts/users/{id}"));
    assert_eq!(st, 404, "unlocking an unlocked account");
    assert_eq!(audit(&srv, "action=unlock").len(), 1);
    // Locked again: the owner gets back in after the delay, with nobody's help.
    for i in 0..3 {
        login(&srv, "owner@example.com", &format!("third-{i}"));
    }
    assert_eq!(
        login(&srv, "owner@example.com", "owner-password-1").status,
        429
    );
    let until = Instant::now() + Duration::from_secs(8);
    let mut back = false;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(300));
        if login(&srv, "owner@example.com", "owner-password-1").status == 200 {
            back = true;
            break;
        }
    }
    assert!(back, "the owner was not let back in after the delay");
    // Only superusers see or lift lockouts.
    let (st, _) = srv.guest().get("/api/lockouts");
    assert_eq!(st, 401);
    let (st, _) = srv.guest().delete(&format!("/api/lockouts/users/{id}"));
    assert_eq!(st, 401);
}

#[test]
fn rate_limit_rules_answer_429_with_retry_after() {
    let srv = TestServer::start();
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"rateLimits": {"enabled": true, "rules": [
            {"label": "*:auth", "audience": "", "duration": 30, "maxRequests": 2},
            {"label": "/api/", "audience": "", "duration": 30, "maxRequests": 1000},
        ]}}),
    );
    assert_eq!(st, 200, "{v}");
    srv.sign_up("rl@example.com", "rl-password-123");
    // sign_up logged in once already: one more is allowed, then 429.
    assert_eq!(login(&srv, "rl@example.com", "rl-password-123").status, 200);
    let r = login(&srv, "rl@example.com", "rl-password-123");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"status": 429, "message": "Too Many Requests.", "data": {}})
    );
    if !is_reference() {
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=30).contains(&retry), "{retry}");
    }
    // Other routes have their own windows; superusers are not limited.
    let (st, _) = srv.guest().get("/api/collections/users/auth-methods");
    assert_eq!(st, 200);
    // Another collection's logins have their own window (as PocketBase).
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            srv.guest()
                .post(
                    "/api/collections/_superusers/auth-with-password",
                    &json!({"identity": SU_EMAIL, "password": SU_PASSWORD}),
                )
                .0
        })
        .collect();
    assert_eq!(statuses, vec![200, 200, 429]);
    let (st, _) = srv.su().get("/api/collections");
    assert_eq!(st, 200);
}

#[test]
fn rate_limits_are_on_by_default() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (st, v) = srv.su().get("/api/settings");
    assert_eq!(st, 200);
    assert_eq!(v["rateLimits"]["enabled"], true, "{v}");
    let auth = v["rateLimits"]["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["label"] == "*:auth").cloned())
        .expect("an auth rule");
    let max = auth["maxRequests"].as_u64().expect("max");
    // A guessing burst from one address is cut off by the default rule.
    let mut limited = false;
    for i in 0..=max + 1 {
        let r = login(&srv, &format!("u{i}@example.com"), "whatever-123");
        if r.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "no 429 within {} login attempts", max + 2);
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    if is_reference() {
        return;
    }
    let rule = json!({"rateLimits": {"enabled": true, "rules": [
        {"label": "/api/health", "audience": "", "duration": 60, "maxRequests": 1},
    ]}});
    let health = |srv: &TestServer, xff: &str| {
        srv.raw("GET", "/api/health", &[("X-Forwarded-For", xff)], None)
            .status
    };
    // Trusted: each forwarded client has its own window.
    let srv = TestServer::builder()
        .env("KEEPD_TRUSTED_PROXIES", "127.0.0.1")
        .start();
    assert_eq!(srv.su().patch("/api/settings", &rule).0, 200);
    assert_eq!(health(&srv, "203.0.113.1"), 200);
    assert_eq!(health(&srv, "203.0.113.1"), 429);
    assert_eq!(health(&srv, "203.0.113.2"), 200);
    assert_eq!(health(&srv, "198.51.100.9, 203.0.113.3"), 200);
    assert_eq!(health(&srv, "203.0.113.3"), 429, "the rightmost hop counts");
    let (_, v) = srv.su().get("/api/health");
    assert_eq!(v["data"]["realIP"], "127.0.0.1");
    drop(srv);
    // Not trusted (the default): the header is ignored.
    let srv = TestServer::start();
    assert_eq!(srv.su().patch("/api/settings", &rule).0, 200);
    assert_eq!(health(&srv, "203.0.113.1"), 200);
    assert_eq!(
        health(&srv, "203.0.113.2"),
        429,
        "a client chose its own address"
    );
}

#[test]
fn privileged_actions_are_audited_and_the_log_is_append_only() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let su = srv.su();
    let su_id = {
        let (_, v) = su.get("/api/collections/_superusers/records");
        v["items"][0]["id"].as_str().expect("id").to_string()
    };
    let actor = format!("_superusers/{su_id}");
    let logins = audit(&srv, "action=superuser.login");
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["actor"], json!(actor));
    assert_eq!(logins[0]["ip"], "127.0.0.1");

    srv.create_collection(
        &json!({"name": "notes", "type": "base", "fields": [{"name": "t", "type": "text"}]}),
    );
    let (st, _) = su.patch("/api/collections/notes", &json!({"listRule": "t != ''"}));
    assert_eq!(st, 200);
    let (st, _) = su.delete("/api/collections/notes/truncate");
    assert_eq!(st, 204);
    let (st, _) = su.delete("/api/collections/notes");
    assert_eq!(st, 204);
    let created = audit(&srv, "action=collection.create&target=collections/notes");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"], json!(actor));
    assert_eq!(created[0]["diff"]["after"]["name"], "notes");
    let updated = audit(&srv, "action=collection.update");
    assert_eq!(updated.len(), 1);
    assert_eq!(
        updated[0]["diff"]["listRule"],
        json!({"before": null, "after": "t != ''"})
    );
    assert_eq!(audit(&srv, "action=collection.truncate").len(), 1);
    let deleted = audit(&srv, "action=collection.delete");
    assert_eq!(deleted[0]["diff"]["before"]["listRule"], "t != ''");

    let (st, _) = su.patch(
        "/api/settings",
        &json!({"smtp": {"host": "mail.example.com", "password": "smtp-secret-value"}}),
    );
    assert_eq!(st, 200);
    let s = audit(&srv, "action=settings.update");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["diff"]["smtp.host"]["after"], "mail.example.com");
    assert_eq!(s[0]["diff"]["smtp.password"], json!({"changed": true}));

    let (uid, _) = srv.sign_up("imp@example.com", "imp-password-123");
    let (st, _) = su.post(
        &format!("/api/collections/users/impersonate/{uid}"),
        &json!({"duration": 60}),
    );
    assert_eq!(st, 200);
    let imp = audit(&srv, "action=impersonate");
    assert_eq!(imp[0]["target"], json!(format!("users/{uid}")));
    assert_eq!(imp[0]["diff"]["duration"], 60);

    // Newest first, paged; no secret anywhere in the log.
    let (st, v) = su.get("/api/audit?perPage=2&page=1");
    assert_eq!(st, 200);
    assert_eq!(v["perPage"], 2);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["items"][0]["action"], "impersonate");
    assert!(v["totalItems"].as_i64().unwrap_or(0) >= 7, "{v}");
    let (_, all) = su.get("/api/audit?perPage=500");
    assert!(!all.to_string().contains("smtp-secret-value"));

    // Read-only through the API, superusers only...
    for (m, p) in [
        ("PATCH", "/api/audit"),
        ("DELETE", "/api/audit"),
        ("POST", "/api/audit"),
    ] {
        let r = srv.raw(
            m,
            p,
            &[("Authorization", &srv.superuser_token())],
            Some(b"{}"),
        );
        assert_eq!(r.status, 404, "{m} {p}");
    }
    let (st, _) = srv.guest().get("/api/audit");
    assert_eq!(st, 401);
    let (_, uv) = srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": "imp@example.com", "password": "imp-password-123"}),
    );
    let (st, _) = srv
        .with_token(uv["token"].as_str().expect("token"))
        .get("/api/audit");
    assert_eq!(st, 403);
    // ...and append-only in the database itself.
    let db = rusqlite::Connection::open(srv.db_path()).expect("db");
    assert!(db
        .execute("UPDATE _keepd_audit SET action = 'x'", [])
        .is_err());
    assert!(db.execute("DELETE FROM _keepd_audit", []).is_err());
}

#[test]
fn lockout_policy_through_the_settings_api() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (st, v) = srv.su().get("/api/settings");
    assert_eq!(st, 200);
    assert_eq!(
        v["lockout"],
        json!({"maxFailures": 10, "windowSeconds": 900, "baseSeconds": 60, "maxSeconds": 900})
    );
    let (st, v) = srv
        .su()
        .patch("/api/settings", &json!({"lockout": {"maxSeconds": 1}}));
    assert_eq!(st, 400, "maxSeconds below baseSeconds: {v}");
    assert_eq!(v["data"]["lockout"]["code"], "validation_invalid_lockout");
    let (st, v) = srv.su().patch(
        "/api/settings",
        &json!({"lockout": {"maxFailures": 2, "baseSeconds": 30, "maxSeconds": 60}}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["lockout"]["maxFailures"], 2);
    srv.sign_up("pol@example.com", "pol-password-123");
    assert_eq!(login(&srv, "pol@example.com", "x-1").status, 400);
    assert_eq!(login(&srv, "pol@example.com", "x-2").status, 400);
    let r = login(&srv, "pol@example.com", "pol-password-123");
    assert_eq!(r.status, 429, "the new policy locks after two");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&retry));
    // Kept across a restart.
    let mut srv = srv;
    let srv = srv.restart();
    let (_, v) = srv.su().get("/api/settings");
    assert_eq!(v["lockout"]["maxFailures"], 2);
}
