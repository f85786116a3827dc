//! PocketBase-compatible JWTs: HS256, signed with the record's tokenKey
//! followed by the collection's secret for that token type. Only HS256 is
//! accepted; `alg: none` and every other algorithm are rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A token split and its claims read, not yet verified: `verify` checks
/// the signature over the very bytes the claims were read from, so the
/// header and payload are decoded and parsed once per request.
pub struct Parsed<'a> {
    signing_input: &'a str,
    sig: &'a str,
    claims: Map<String, Value>,
}

impl<'a> Parsed<'a> {
    /// Splits the token and reads its header and claims. Only HS256 is
    /// accepted; the claims are not to be trusted before `verify`.
    pub fn new(token: &'a str) -> Option<Parsed<'a>> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || s.is_empty() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return None;
        }
        let claims = match serde_json::from_slice(&B64.decode(p).ok()?).ok()? {
            Value::Object(m) => m,
            _ => return None,
        };
        Some(Parsed {
            signing_input: &token[..h.len() + 1 + p.len()],
            sig: s,
            claims,
        })
    }

    /// The unverified claims (to find the collection and record whose key
    /// verifies the token).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Verifies the signature (constant time) and the expiry; the claims
    /// when both hold.
    pub fn verify(self, key: &str, now: i64) -> Option<Map<String, Value>> {
        let sig = B64.decode(self.sig).ok()?;
        let mut mac = keyed(key);
        mac.update(self.signing_input.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let exp = self.claims.get("exp").and_then(Value::as_i64)?;
        if exp <= now {
            return None;
        }
        Some(self.claims)
    }
}

/// Reads the claims without verifying. Never trust the result.
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    Parsed::new(token).map(|p| p.claims)
}

pub fn sign(claims: &Map<String, Value>, key: &str) -> String {
    let header = B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let payload = B64.encode(Value::Object(claims.clone()).to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = keyed(key);
    mac.update(signing_input.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies signature (constant time) and expiry; returns the claims.
pub fn verify(token: &str, key: &str, now: i64) -> Option<Map<String, Value>> {
    Parsed::new(token)?.verify(key, now)
}

/// Keys whose HMAC state (the key hashed when longer than a block, then
/// the inner and outer pads absorbed) was set up last on this thread.
/// A key is a record's tokenKey followed by its collection's secret (about
/// 100 bytes, so each fresh set-up costs four SHA-256 blocks, about half of
/// verifying a token); the same few callers come back request after
/// request. The entry is found by the key itself, compared in constant
/// time, so a changed tokenKey or secret never meets an old state.
const KEYED_PER_THREAD: usize = 8;

thread_local! {
    static KEYED: std::cell::RefCell<Vec<(Box<[u8]>, HmacSha256)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn keyed(key: &str) -> HmacSha256 {
    use subtle::ConstantTimeEq;
    let key = key.as_bytes();
    KEYED.with(|cell| {
        let Ok(mut cache) = cell.try_borrow_mut() else {
            return HmacSha256::new_from_slice(key).expect("hmac accepts any key length");
        };
        let mut hit = None;
        for (i, (k, _)) in cache.iter().enumerate() {
            if k.len() == key.len() && bool::from(k.as_ref().ct_eq(key)) {
                hit = Some(i);
            }
        }
        if let Some(i) = hit {
            // Most recent first.
            let e = cache.remove(i);
            let mac = e.1.clone();
            cache.insert(0, e);
            return mac;
        }
        let mac = HmacSha256::new_from_slice(key).expect("hmac accepts any key length");
        if cache.len() >= KEYED_PER_THREAD {
            cache.pop();
        }
        cache.insert(0, (key.into(), mac.clone()));
        mac
    })
}

/// Claims of a new auth token.
pub fn auth_claims(
    record_id: &str,
    collection_id: &str,
    refreshable: bool,
    exp: i64,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(record_id));
    m.insert("collectionId".into(), json!(collection_id));
    m.insert("type".into(), json!("auth"));
    m.insert("refreshable".into(), json!(refreshable));
    m.insert("exp".into(), json!(exp));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let c = auth_claims("abc", "pbc_1", true, 2_000_000_000);
        let t = sign(&c, "key1secret");
        assert!(verify(&t, "key1secret", 1_000).is_some());
        assert!(verify(&t, "other", 1_000).is_none());
        assert!(verify(&t, "key1secret", 2_000_000_001).is_none(), "expired");
        // alg none
        let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = t.split('.').nth(1).unwrap();
        assert!(verify(&format!("{header}.{payload}."), "key1secret", 1_000).is_none());
        assert!(verify(&format!("{header}.{payload}.x"), "key1secret", 1_000).is_none());
        // payload swapped under the old signature
        let parts: Vec<&str> = t.split('.').collect();
        let forged =
            B64.encode(r#"{"id":"other","collectionId":"pbc_1","type":"auth","exp":2000000000}"#);
        assert!(verify(
            &format!("{}.{}.{}", parts[0], forged, parts[2]),
            "key1secret",
            1_000
        )
        .is_none());
    }

    #[test]
    fn a_changed_key_never_meets_a_kept_state() {
        // Same length, one byte apart (a tokenKey renewed by a password change).
        let (k1, k2) = (
            "a".repeat(50) + "secret",
            "b".to_string() + &"a".repeat(49) + "secret",
        );
        let c = auth_claims("abc", "pbc_1", true, 2_000_000_000);
        let t1 = sign(&c, &k1);
        assert!(verify(&t1, &k1, 1_000).is_some());
        assert!(
            verify(&t1, &k2, 1_000).is_none(),
            "kept state of k1 used for k2"
        );
        let t2 = sign(&c, &k2);
        assert!(verify(&t2, &k2, 1_000).is_some());
        assert!(verify(&t2, &k1, 1_000).is_none());
        // More keys than are kept: the old ones are set up again, still right.
        for i in 0..3 * KEYED_PER_THREAD {
            let k = format!("{i:050}secret");
            assert!(verify(&sign(&c, &k), &k, 1_000).is_some());
            assert!(verify(&t1, &k, 1_000).is_none());
        }
        assert!(verify(&t1, &k1, 1_000).is_some());
        assert!(verify(&t1, &k2, 1_000).is_none());
    }

    #[test]
    fn parsed_verifies_the_bytes_its_claims_came_from() {
        let c = auth_claims("abc", "pbc_1", true, 2_000_000_000);
        let t = sign(&c, "key1secret");
        let p = Parsed::new(&t).unwrap();
        assert_eq!(p.claims().get("id").and_then(Value::as_str), Some("abc"));
        assert_eq!(p.verify("key1secret", 1_000), Some(c.clone()));
        assert!(Parsed::new(&t).unwrap().verify("other", 1_000).is_none());
        assert!(Parsed::new(&format!("{t}.x")).is_none(), "four parts");
        assert!(
            Parsed::new(&t[..t.rfind('.').unwrap() + 1]).is_none(),
            "no signature"
        );
    }
}
