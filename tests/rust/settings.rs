//! `/api/settings` as PocketBase binds, validates and shows it: unknown keys
//! dropped, a value of the wrong type anywhere refused as a whole, `null`
//! the zero value, rate-limit rules checked, secrets never shown — and the
//! settings kept across a restart. Runs against PocketBase too
//! (`KEEPD_TEST_BIN`), except the restart.

use crate::common::*;
use serde_json::{json, Value};

const LOADING: &str = "An error occurred while loading the submitted data.";
const SAVING: &str = "An error occurred while saving the new settings.";

#[test]
fn settings_bind_validate_and_hide_secrets_as_pocketbase() {
    let srv = TestServer::start();
    let su = srv.su();
    // Unknown keys are dropped; secrets are taken but never shown.
    let (st, v) = su.patch(
        "/api/settings",
        &json!({
            "foo": {"x": 1},
            "smtp": {"bar": 2, "password": "smtp-secret-1", "host": "mail.example.com"},
            "s3": {"secret": "s3-secret-1"},
            "backups": {"s3": {"secret": "backups-secret-1"}},
        }),
    );
    assert_eq!(st, 200, "{v}");
    let (_, got) = su.get("/api/settings");
    for shown in [&v, &got] {
        assert!(shown.get("foo").is_none(), "{shown}");
        assert!(shown["smtp"].get("bar").is_none(), "{shown}");
        assert!(shown["smtp"].get("password").is_none(), "{shown}");
        assert!(shown["s3"].get("secret").is_none(), "{shown}");
        assert!(shown["backups"]["s3"].get("secret").is_none(), "{shown}");
        assert_eq!(shown["smtp"]["host"], "mail.example.com");
        assert!(!shown.to_string().contains("secret-1"), "{shown}");
    }
    // A value of the wrong type, in any group: refused as a whole.
    for bad in [
        json!({"smtp": {"port": "x"}}),
        json!({"smtp": {"port": 1.5}}),
        json!({"meta": "x"}),
        json!({"meta": {"appName": 5}}),
        json!({"superuserIPs": "x"}),
        json!({"batch": {"maxRequests": true}, "meta": {"appName": "Changed"}}),
    ] {
        let (st, v) = su.patch("/api/settings", &bad);
        assert_eq!(st, 400, "{bad}: {v}");
        assert_eq!(
            v,
            json!({"status": 400, "message": LOADING, "data": {}}),
            "{bad}"
        );
    }
    // null is the zero value.
    let (st, v) = su.patch("/api/settings", &json!({"batch": {"timeout": null}}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["batch"]["timeout"], 0);
    assert_eq!(v["batch"]["maxRequests"], 50);
    // Rate-limit rules and excluded addresses.
    let (st, v) = su.patch(
        "/api/settings",
        &json!({"rateLimits": {"excludedIPs": ["", "10.0.0.0/8", "1.2.3.4", "x"], "rules": [
            {"label": "", "maxRequests": -1, "duration": -2, "audience": "x"},
            {"label": "a b c", "maxRequests": 1, "duration": 1},
            {"label": "x"},
        ]}}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["message"], SAVING);
    assert_eq!(
        v["data"],
        json!({"rateLimits": {
            "excludedIPs": {
                "0": {"code": "validation_required", "message": "Cannot be blank."},
                "3": {"code": "validation_invlaid_ip_or_subnet", "message": "Invalid IP or CIDR subnet."},
            },
            "rules": {
                "0": {
                    "audience": {"code": "validation_in_invalid", "message": "Must be a valid value."},
                    "duration": {"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 1.", "params": {"threshold": 1}},
                    "label": {"code": "validation_required", "message": "Cannot be blank."},
                    "maxRequests": {"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 1.", "params": {"threshold": 1}},
                },
                "1": {"label": {"code": "validation_match_invalid", "message": "Must be in a valid format."}},
                "2": {
                    "duration": {"code": "validation_required", "message": "Cannot be blank."},
                    "maxRequests": {"code": "validation_required", "message": "Cannot be blank."},
                },
            },
        }})
    );
    let (st, v) = su.patch(
        "/api/settings",
        &json!({"rateLimits": {"rules": [
            {"label": "users:auth", "maxRequests": 1, "duration": 1},
            {"label": "users:auth", "audience": "@guest", "maxRequests": 1, "duration": 1},
        ]}}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["rateLimits"]["rules"]["1"]["label"]["code"],
        "validation_conflicting_rate_limit_rule"
    );
    let (st, v) = su.patch(
        "/api/settings",
        &json!({"rateLimits": {"enabled": true, "rules": []}}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["data"]["rateLimits"]["rules"]["code"],
        "validation_required"
    );
    // Nothing refused was kept.
    let (_, after) = su.get("/api/settings");
    let mut want = got.clone();
    want["batch"]["timeout"] = json!(0);
    assert_eq!(after, want);

    if is_reference() {
        return;
    }
    // Kept across a restart, secrets included (stored, still not shown).
    let mut srv = srv;
    let srv = srv.restart();
    let (_, again) = srv.su().get("/api/settings");
    assert_eq!(again, want);
    let stored: String = srv
        .open_db()
        .query_row("SELECT value FROM _params WHERE id = 'settings'", [], |r| {
            r.get(0)
        })
        .expect("stored settings");
    let stored: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(stored["smtp"]["password"], "smtp-secret-1");
    assert!(stored.get("foo").is_none());
}
