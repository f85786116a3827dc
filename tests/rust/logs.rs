//! The request log (`/api/logs`, memory only), the crons API and the test
//! e-mail route. keepd-only: PocketBase writes its logs to its auxiliary
//! database in batches (tests/sdk/logs.test.mjs runs the SDK's calls
//! against both).

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Bytes this process caused to be written to storage (/proc/PID/io).
fn write_bytes(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("io");
    s.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes")
}

/// Every file under `dir` with its size.
fn sizes(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().to_string_lossy().into_owned(), m.len()));
            }
        }
    }
    out.sort();
    out
}

fn logs(srv: &TestServer, query: &str) -> Value {
    let (st, v) = srv.su().get(&format!("/api/logs?{query}"));
    assert_eq!(st, 200, "{v}");
    v
}

#[test]
fn requests_are_logged_in_memory_without_secrets() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .root(TempRoot::on_disk("logs"))
        .start();
    let r = srv.raw(
        "GET",
        "/api/health?probe=one&token=secret-token-value&X-Api-Key=k-secret",
        &[
            ("User-Agent", "logs-test/1"),
            ("Referer", "http://ref.test/p?code=ref-secret"),
            ("Authorization", "not-a-valid-token"),
        ],
        None,
    );
    assert_eq!(r.status, 200);
    let (st, _) = srv.guest().get("/api/collections");
    assert_eq!(st, 401);

    let v = logs(&srv, "filter=data.url~'probe=one'");
    assert_eq!(v["totalItems"], 1, "{v}");
    let e = &v["items"][0];
    let id = e["id"].as_str().expect("id");
    assert_eq!(id.len(), 15, "{e}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(e["level"], 0);
    assert_eq!(e["data"]["method"], "GET");
    assert_eq!(e["data"]["status"], 200);
    assert_eq!(e["data"]["type"], "request");
    assert_eq!(e["data"]["auth"], "");
    assert_eq!(e["data"]["userAgent"], "logs-test/1");
    assert_eq!(e["data"]["userIP"], "127.0.0.1");
    assert_eq!(e["data"]["remoteIP"], "127.0.0.1");
    assert_eq!(
        e["data"]["url"],
        "/api/health?probe=one&token=***&X-Api-Key=***"
    );
    assert_eq!(e["data"]["referer"], "http://ref.test/p?code=***");
    assert_eq!(
        e["message"],
        "GET /api/health?probe=one&token=***&X-Api-Key=***"
    );
    let text = e.to_string();
    for secret in [
        "secret-token-value",
        "k-secret",
        "ref-secret",
        "not-a-valid",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // One by id; an unknown id.
    let (st, one) = srv.su().get(&format!("/api/logs/{id}"));
    assert_eq!(st, 200);
    assert_eq!(&one, e);
    let (st, nf) = srv.su().get("/api/logs/nope00000000000");
    assert_eq!(st, 404, "{nf}");

    // The superuser's own requests name its collection; failures have a
    // higher level; filters combine, sort orders.
    let v = logs(
        &srv,
        "filter=data.status=401%26%26data.url='/api/collections'",
    );
    assert_eq!(v["totalItems"], 1, "{v}");
    assert_eq!(v["items"][0]["level"], 8);
    let v = logs(&srv, "filter=data.auth='_superusers'&perPage=1");
    assert!(v["totalItems"].as_u64().unwrap_or(0) >= 2, "{v}");
    let v = logs(&srv, "sort=created&perPage=500");
    let times: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|x| x["created"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    let v = logs(&srv, "perPage=2&skipTotal=1");
    assert_eq!(
        (&v["totalItems"], &v["totalPages"]),
        (&json!(-1), &json!(-1))
    );
    assert_eq!(v["items"].as_array().map(Vec::len), Some(2), "{v}");
    let (st, bad) = srv.su().get("/api/logs?filter=bad~~");
    assert_eq!(st, 400, "{bad}");

    // Hourly stats.
    let (st, stats) = srv.su().get("/api/logs/stats");
    assert_eq!(st, 200);
    let stats = stats.as_array().expect("stats").clone();
    assert!(!stats.is_empty());
    let total: u64 = stats.iter().map(|s| s["total"].as_u64().unwrap_or(0)).sum();
    assert!(total >= 5, "{stats:?}");
    assert!(stats[0]["date"]
        .as_str()
        .unwrap_or("")
        .ends_with(":00:00.000Z"));

    // Superusers only.
    assert_eq!(srv.guest().get("/api/logs").0, 401);
    assert_eq!(srv.guest().get("/api/logs/stats").0, 401);
    assert_eq!(srv.guest().get(&format!("/api/logs/{id}")).0, 401);

    // Reading the log writes nothing to storage.
    std::thread::sleep(Duration::from_millis(500));
    let before = (write_bytes(srv.pid()), sizes(&srv.dir));
    for i in 0..60 {
        let path = match i % 3 {
            0 => "/api/logs?perPage=50&sort=-created".to_string(),
            1 => "/api/logs/stats".to_string(),
            _ => format!("/api/logs/{id}"),
        };
        let (st, _) = srv.su().get(&path);
        assert!(st == 200 || st == 404, "{path}: {st}");
    }
    let after = (write_bytes(srv.pid()), sizes(&srv.dir));
    assert_eq!(before, after, "reading the log wrote to storage");
}

#[test]
fn the_ring_is_bounded() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_REQUEST_LOG_ENTRIES", "5")
        .start();
    for _ in 0..20 {
        assert_eq!(srv.guest().get("/api/health").0, 200);
    }
    let v = logs(&srv, "perPage=100");
    assert_eq!(v["totalItems"], 5, "{v}");
    // An entry's size is bounded too: a long target and user agent are cut.
    let long = "x".repeat(6000);
    let r = srv.raw(
        "GET",
        &format!("/api/health?long={long}"),
        &[("User-Agent", &long)],
        None,
    );
    assert_eq!(r.status, 200);
    let lv = logs(&srv, "filter=data.url~'long='");
    assert_eq!(lv["totalItems"], 1, "{lv}");
    let e = &lv["items"][0]["data"];
    assert_eq!(e["url"].as_str().map(str::len), Some(512), "{e}");
    assert_eq!(e["userAgent"].as_str().map(str::len), Some(256), "{e}");
    // Oldest first unless sorted (as PocketBase); `-@rowid` newest first.
    let items = v["items"].as_array().expect("items");
    assert!(items[0]["created"].as_str() <= items[4]["created"].as_str());
    let newest = logs(&srv, "perPage=100&sort=-@rowid");
    let urls: Vec<&str> = newest["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|x| x["data"]["url"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(urls.len(), 5, "{newest}");
    assert_eq!(urls[0], "/api/logs?filter=data.url~'long='", "{urls:?}");
    assert!(urls[1].starts_with("/api/health?long="), "{urls:?}");
    assert_eq!(urls[2], "/api/logs?perPage=100", "{urls:?}");

    let off = TestServer::builder()
        .env("KEEPD_REQUEST_LOG_ENTRIES", "0")
        .start();
    assert_eq!(off.guest().get("/api/health").0, 200);
    assert_eq!(logs(&off, "")["totalItems"], 0);
}

#[test]
fn crons_list_and_run_the_scheduled_backup() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_BACKUP_ENCRYPTION", "none")
        .start();
    let (st, v) = srv.su().get("/api/crons");
    assert_eq!(st, 200);
    assert_eq!(v, json!([]));
    let (st, v) = srv.su().post("/api/crons/__pbAutoBackup__", &json!({}));
    assert_eq!(st, 404);
    assert_eq!(v["message"], "Missing or invalid cron job.");
    let (st, _) = srv
        .su()
        .patch("/api/settings", &json!({"backups": {"cron": "0 3 * * *"}}));
    assert_eq!(st, 200);
    let (_, v) = srv.su().get("/api/crons");
    assert_eq!(
        v,
        json!([{"id": "__pbAutoBackup__", "expression": "0 3 * * *"}])
    );
    assert_eq!(srv.guest().get("/api/crons").0, 401);
    let (st, _) = srv.guest().post("/api/crons/__pbAutoBackup__", &json!({}));
    assert_eq!(st, 401);
    let (st, v) = srv.su().post("/api/crons/__pbAutoBackup__", &json!({}));
    assert_eq!(st, 204, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = srv.su().get("/api/backups");
        let made = list.as_array().is_some_and(|l| {
            l.iter().any(|b| {
                b["key"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("@auto_pb_backup_")
            })
        });
        if made {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no backup: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn test_email_validates_as_pocketbase() {
    let srv = TestServer::start();
    let su = srv.su();
    let failed = "Failed to send the test email.";
    let (st, v) = su.post("/api/settings/test/email", &json!({}));
    assert_eq!(st, 400);
    assert_eq!(
        v,
        json!({"status": 400, "message": failed, "data": {
            "email": {"code": "validation_required", "message": "Cannot be blank."},
            "template": {"code": "validation_required", "message": "Cannot be blank."},
        }})
    );
    let (_, v) = su.post(
        "/api/settings/test/email",
        &json!({"email": "x", "template": "bad"}),
    );
    assert_eq!(v["data"]["email"]["code"], "validation_is_email");
    assert_eq!(v["data"]["template"]["code"], "validation_in_invalid");
    let (_, v) = su.post(
        "/api/settings/test/email",
        &json!({"email": "a@example.com", "template": "otp", "collection": "nope"}),
    );
    assert_eq!(
        v,
        json!({"status": 400, "message": failed, "data": {"collection": {
            "code": "validation_invalid_auth_collection",
            "message": "Must be a valid auth collection id or name."}}})
    );
    // Valid, but no mail can leave: the raw error, as PocketBase's.
    let (st, v) = su.post(
        "/api/settings/test/email",
        &json!({"email": "a@example.com", "template": "verification"}),
    );
    assert_eq!(st, 400, "{v}");
    let msg = v["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("Failed to send the test email. Raw error: \n"),
        "{v}"
    );
    let (st, _) = srv.guest().post(
        "/api/settings/test/email",
        &json!({"email": "a@example.com", "template": "verification"}),
    );
    assert_eq!(st, 401);
}

#[test]
fn a_superuser_clears_the_request_log() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    for _ in 0..3 {
        assert_eq!(srv.guest().get("/api/health").0, 200);
    }
    let health = "filter=data.url%3D%22%2Fapi%2Fhealth%22";
    assert!(logs(&srv, health)["totalItems"].as_i64().unwrap_or(0) >= 3);
    // Guests and users may not.
    assert_eq!(srv.guest().delete("/api/logs").0, 401);
    let (_, user) = srv.sign_up("u@example.com", "user-password-123");
    assert_eq!(srv.with_token(&user).delete("/api/logs").0, 403);
    assert!(logs(&srv, health)["totalItems"].as_i64().unwrap_or(0) >= 3);

    let (st, v) = srv.su().delete("/api/logs");
    assert_eq!(st, 204, "{v}");
    assert_eq!(logs(&srv, health)["totalItems"], 0);
    // What is logged after goes on being logged (the DELETE itself first).
    let all = logs(&srv, "sort=%40rowid");
    assert_eq!(all["items"][0]["data"]["method"], "DELETE", "{all}");
    assert_eq!(srv.guest().get("/api/health").0, 200);
    assert_eq!(logs(&srv, health)["totalItems"], 1);
    // Audited.
    let (_, a) = srv.su().get("/api/audit?action=logs.clear");
    assert_eq!(a["items"].as_array().map(Vec::len), Some(1), "{a}");
    assert_eq!(
        a["items"][0]["actor"]
            .as_str()
            .map(|s| s.starts_with("_superusers")),
        Some(true),
        "{a}"
    );
}
