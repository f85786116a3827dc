//! `request-otp` must not tell whether an address has an account: not by
//! the answer's shape (PocketBase's `{"otpId": <15 characters>}` either
//! way: 15 of `[a-z0-9]`), not by its time, not by handing the same `otpId` back after ten
//! requests (which an unknown address, answered with a new random id
//! each time, never does).

use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn otp_server() -> (TestServer, String) {
    // The production hash parameters: the cost a lookup must not reveal.
    let srv = TestServer::builder()
        .env("KEEPD_ARGON2_MEMORY_KIB", "19456")
        .env("KEEPD_ARGON2_ITERATIONS", "2")
        .start();
    // Rate limits off: the test makes many requests from one address.
    srv.rate_limits_off();
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"otp": {"enabled": true, "duration": 180, "length": 6}}),
    );
    assert_eq!(st, 200, "{v}");
    let email = format!("{}@example.com", uniq("otp"));
    srv.sign_up(&email, "otp-password-123");
    (srv, email)
}

fn request_otp(srv: &TestServer, email: &str) -> (Duration, String) {
    let t = Instant::now();
    let (st, v) = srv.guest().post(
        "/api/collections/users/request-otp",
        &json!({ "email": email }),
    );
    let took = t.elapsed();
    assert_eq!(st, 200, "{v}");
    let obj = v.as_object().expect("an object");
    assert_eq!(obj.len(), 1, "only otpId: {v}");
    let id = v["otpId"].as_str().expect("otpId").to_string();
    // PocketBase's record ids: 15 of [a-z0-9], known address or not.
    assert!(
        id.len() == 15
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{id}"
    );
    (took, id)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Many requests for a known and an unknown address, interleaved so that
/// both see the same load on a shared machine; their medians must be
/// within a factor of 3. The gap this guards against is the cost of an
/// argon2id hash (production parameters) and a commit, about 20× when only
/// the known address paid it; a factor of 3 leaves room for a noisy 2-core machine without
/// letting that gap back in. Medians, not single requests, so that a
/// scheduling hiccup doesn't decide the result.
#[test]
fn known_and_unknown_addresses_take_the_same_time() {
    if is_reference() {
        return;
    }
    let (srv, first) = otp_server();
    // Three accounts, each asked fewer than ten times (the first path).
    let mut known = vec![first];
    for _ in 0..2 {
        let email = format!("{}@example.com", uniq("otp"));
        srv.sign_up(&email, "otp-password-123");
        known.push(email);
    }
    let (mut k, mut u) = (Vec::new(), Vec::new());
    // A warm-up pair (first use of the hasher threads, prepared statements).
    request_otp(&srv, &known[0]);
    request_otp(&srv, &format!("{}@example.com", uniq("nobody")));
    for i in 0..24 {
        k.push(request_otp(&srv, &known[i % 3]).0);
        u.push(request_otp(&srv, &format!("{}@example.com", uniq("nobody"))).0);
    }
    let (mk, mu) = (median(k), median(u));
    let ratio = mk.max(mu).as_secs_f64() / mk.min(mu).as_secs_f64().max(1e-6);
    eprintln!("request-otp median: known {mk:?}, unknown {mu:?}");
    assert!(
        ratio < 3.0,
        "median answer time: known address {mk:?}, unknown {mu:?} (ratio {ratio:.1})"
    );
    // An unknown address leaves nothing behind.
    let db = srv.open_db();
    let orphans: i64 = db
        .query_row(
            "SELECT count(*) FROM _otps WHERE recordRef NOT IN (SELECT id FROM users)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(orphans, 0, "decoy OTP rows left behind");
}

/// PocketBase hands an account's newest otpId back from the 11th live
/// request on; keepd answers a new id each time (as for an unknown
/// address), stored with the newest OTP's password so that the code
/// already mailed still works with it.
#[test]
fn repeated_requests_never_hand_an_id_back() {
    if is_reference() {
        return;
    }
    let (srv, known) = otp_server();
    let ids: Vec<String> = (0..13).map(|_| request_otp(&srv, &known).1).collect();
    let mut uniq_ids = ids.clone();
    uniq_ids.sort();
    uniq_ids.dedup();
    assert_eq!(
        uniq_ids.len(),
        ids.len(),
        "an otpId came back twice: {ids:?}"
    );
    // The 11th onwards: the 10th's password (no new mail was sent).
    let db = srv.open_db();
    let hash = |id: &str| -> String {
        db.query_row("SELECT password FROM _otps WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap_or_else(|e| panic!("otp {id}: {e}"))
    };
    for later in &ids[10..] {
        assert_eq!(
            hash(later),
            hash(&ids[9]),
            "the last mailed code works with {later}"
        );
    }
    assert_ne!(
        hash(&ids[9]),
        hash(&ids[8]),
        "each of the first ten has its own code"
    );
}
