//! TOTP as a second factor (keepd's own), against the real daemon: enrol,
//! confirm, login needing the second step, replay refused, recovery codes
//! single use, wrong guesses limited, disable; audited. Codes are computed
//! here (RFC 6238) from the secret the daemon handed out, for the current
//! time and the neighbouring steps the daemon accepts.

use crate::common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

fn code_at(secret: &str, step: u64) -> String {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("base32");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).expect("key");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

fn step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        / 30
}

fn login(srv: &TestServer, email: &str, pw: &str) -> (u16, Value) {
    srv.guest().post(
        "/api/collections/users/auth-with-password",
        &json!({"identity": email, "password": pw}),
    )
}

#[test]
fn totp_enrol_login_recovery_and_disable() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (id, token) = srv.sign_up("t@example.com", "totp-password-1");
    let me = srv.with_token(&token);
    let (st, v) = me.get("/api/collections/users/totp");
    assert_eq!(
        (st, v),
        (200, json!({"enabled": false, "recoveryCodesLeft": 0}))
    );
    // Guests can't enrol.
    assert_eq!(
        srv.guest()
            .post("/api/collections/users/totp/enroll", &json!({}))
            .0,
        401
    );

    let (st, e) = me.post("/api/collections/users/totp/enroll", &json!({}));
    assert_eq!(st, 200, "{e}");
    let secret = e["secret"].as_str().expect("secret").to_string();
    assert_eq!(secret.len(), 32);
    let uri = e["uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")));
    assert!(e["qrSvg"].as_str().expect("svg").contains("<svg"));
    // Pending: login still needs only the password.
    assert_eq!(login(&srv, "t@example.com", "totp-password-1").0, 200);

    let wrong_code = if code_at(&secret, step_now()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (st, v) = me.post(
        "/api/collections/users/totp/confirm",
        &json!({"code": wrong_code}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["data"]["code"]["code"], "validation_invalid_code");
    let s0 = step_now();
    let (st, v) = me.post(
        "/api/collections/users/totp/confirm",
        &json!({"code": code_at(&secret, s0)}),
    );
    assert_eq!(st, 200, "{v}");
    let recovery: Vec<String> = v["recoveryCodes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (_, v) = me.get("/api/collections/users/totp");
    assert_eq!(v, json!({"enabled": true, "recoveryCodesLeft": 10}));

    // The password alone now answers 401 {mfaId}.
    let (st, v) = login(&srv, "t@example.com", "totp-password-1");
    assert_eq!(st, 401, "{v}");
    let mfa_id = v["mfaId"].as_str().expect("mfaId").to_string();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1));
    // The code used to confirm can't be replayed...
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-totp",
        &json!({"mfaId": mfa_id, "code": code_at(&secret, s0)}),
    );
    assert_eq!(st, 400, "a used code was accepted again");
    // ...the next step's code (within the skew) completes the login.
    let next = code_at(&secret, step_now().max(s0) + 1);
    let (st, v) = srv.guest().post(
        "/api/collections/users/auth-with-totp",
        &json!({"mfaId": mfa_id, "code": next}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["record"]["id"], json!(id));
    let t2 = v["token"].as_str().expect("token").to_string();
    assert_eq!(
        srv.with_token(&t2)
            .post("/api/collections/users/auth-refresh", &json!({}))
            .0,
        200
    );
    // The MFA session is used up.
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-totp",
        &json!({"mfaId": mfa_id, "code": recovery[0]}),
    );
    assert_eq!(st, 400);

    // A recovery code works once.
    let (_, v) = login(&srv, "t@example.com", "totp-password-1");
    let mfa2 = v["mfaId"].as_str().expect("mfaId").to_string();
    let (st, v) = srv.guest().post(
        "/api/collections/users/auth-with-totp",
        &json!({"mfaId": mfa2, "code": recovery[0].to_uppercase()}),
    );
    assert_eq!(st, 200, "{v}");
    let (_, v) = login(&srv, "t@example.com", "totp-password-1");
    let mfa3 = v["mfaId"].as_str().expect("mfaId").to_string();
    let (st, _) = srv.guest().post(
        "/api/collections/users/auth-with-totp",
        &json!({"mfaId": mfa3, "code": recovery[0]}),
    );
    assert_eq!(st, 400, "a recovery code was accepted twice");
    let (_, v) = me.get("/api/collections/users/totp");
    assert_eq!(v["recoveryCodesLeft"], 9);

    // Wrong guesses are limited: after 5 (one above), even a right code waits.
    // Three wrong codes so far (the confirm guess, the replay, the reused
    // recovery code): two more are answered 400, the sixth 429.
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            srv.guest()
                .post(
                    "/api/collections/users/auth-with-totp",
                    &json!({"mfaId": mfa3, "code": "not-a-code"}),
                )
                .0
        })
        .collect();
    assert_eq!(statuses, vec![400, 400, 429]);
    let (st, v) = srv.guest().post(
        "/api/collections/users/auth-with-totp",
        &json!({"mfaId": mfa3, "code": recovery[1]}),
    );
    assert_eq!(st, 429, "{v}");

    // A code is required to disable.
    let (st, _) = me.post("/api/collections/users/totp/disable", &json!({}));
    assert_eq!(st, 400);
    let audit = |action: &str| -> Vec<Value> {
        let (_, v) = srv.su().get(&format!("/api/audit?action={action}"));
        v["items"].as_array().cloned().unwrap_or_default()
    };
    assert_eq!(audit("mfa.totp.enable").len(), 1);
    assert_eq!(
        audit("mfa.totp.enable")[0]["target"],
        json!(format!("users/{id}"))
    );
}

#[test]
fn totp_disable_turns_the_second_step_off() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (_, token) = srv.sign_up("d@example.com", "totp-password-2");
    let me = srv.with_token(&token);
    let (_, e) = me.post("/api/collections/users/totp/enroll", &json!({}));
    let secret = e["secret"].as_str().expect("secret").to_string();
    let (st, v) = me.post(
        "/api/collections/users/totp/confirm",
        &json!({"code": code_at(&secret, step_now())}),
    );
    assert_eq!(st, 200, "{v}");
    let rc = v["recoveryCodes"][0].as_str().expect("code").to_string();
    assert_eq!(login(&srv, "d@example.com", "totp-password-2").0, 401);
    let (st, v) = me.post(
        "/api/collections/users/totp/disable",
        &json!({"code": "123"}),
    );
    assert_eq!(st, 400, "{v}");
    let (st, v) = me.post("/api/collections/users/totp/disable", &json!({"code": rc}));
    assert_eq!(st, 204, "{v}");
    assert_eq!(login(&srv, "d@example.com", "totp-password-2").0, 200);
    let (_, v) = srv.su().get("/api/audit?action=mfa.totp.disable");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
}

#[test]
fn superusers_can_be_required_to_use_totp() {
    if is_reference() {
        return;
    }
    let srv = TestServer::builder()
        .env("KEEPD_SUPERUSER_TOTP_REQUIRED", "true")
        .start();
    let su_login = |extra: Value| {
        let mut body = json!({"identity": SU_EMAIL, "password": SU_PASSWORD});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        srv.guest()
            .post("/api/collections/_superusers/auth-with-password", &body)
    };
    let (st, v) = su_login(json!({}));
    assert_eq!(st, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("keepd superuser totp"),
        "{v}"
    );
    // The operator turns TOTP on from the shell.
    let dir = srv.db_path().parent().expect("dir").to_path_buf();
    let out = keepd_cmd()
        .args(["superuser", "totp", SU_EMAIL, "--dir"])
        .arg(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let secret = text
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("secret in the URI")
        .to_string();
    assert!(text.matches('\n').count() >= 13, "{text}");
    let (st, v) = su_login(json!({}));
    assert_eq!(st, 401, "{v}");
    let mfa = v["mfaId"].as_str().expect("mfaId").to_string();
    let (st, v) = srv.guest().post(
        "/api/collections/_superusers/auth-with-totp",
        &json!({"mfaId": mfa, "code": code_at(&secret, step_now())}),
    );
    assert_eq!(st, 200, "{v}");
    let tok = v["token"].as_str().expect("token").to_string();
    let (st, v) = srv
        .with_token(&tok)
        .get("/api/audit?action=mfa.totp.enable");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"][0]["actor"], "cli");
}

#[test]
fn a_superuser_reads_any_records_totp_state() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let (id, token) = srv.sign_up("s@example.com", "totp-password-1");
    let (other, _) = srv.sign_up("o@example.com", "totp-password-1");
    let su = srv.su();
    let path = format!("/api/totp/users/{id}");
    assert_eq!(
        su.get(&path),
        (200, json!({"enabled": false, "recoveryCodesLeft": 0}))
    );
    let me = srv.with_token(&token);
    let (st, e) = me.post("/api/collections/users/totp/enroll", &json!({}));
    assert_eq!(st, 200, "{e}");
    let secret = e["secret"].as_str().expect("secret").to_string();
    // Pending is off.
    assert_eq!(su.get(&path).1["enabled"], false);
    let (st, v) = me.post(
        "/api/collections/users/totp/confirm",
        &json!({"code": code_at(&secret, step_now())}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        su.get(&path),
        (200, json!({"enabled": true, "recoveryCodesLeft": 10}))
    );
    // Another record's own state, by collection id too.
    let (_, users) = su.get("/api/collections/users");
    let cid = users["id"].as_str().expect("id");
    assert_eq!(
        su.get(&format!("/api/totp/{cid}/{other}")),
        (200, json!({"enabled": false, "recoveryCodesLeft": 0}))
    );
    // Superusers only; a missing record or a base collection is 404.
    assert_eq!(me.get(&path).0, 403);
    assert_eq!(srv.guest().get(&path).0, 401);
    assert_eq!(su.get("/api/totp/users/nosuchrecord123").0, 404);
    srv.create_collection(&json!({"name": "notes", "type": "base", "fields": []}));
    assert_eq!(su.get(&format!("/api/totp/notes/{id}")).0, 404);
}
