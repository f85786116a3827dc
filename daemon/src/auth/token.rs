//! PocketBase-compatible JWTs: HS256, signed with the record's tokenKey
//! followed by the collection's secret for that token type. Only HS256 is
//! accepted; `alg: none` and every other algorithm are rejected.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Reads the claims without verifying (to find the collection and record
/// whose key verifies it). Never trust the result before `verify`.
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || s.is_empty() {
        return None;
    }
    let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return None;
    }
    match serde_json::from_slice(&B64.decode(p).ok()?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

pub fn sign(claims: &Map<String, Value>, key: &str) -> String {
    let header = B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string());
    let payload = B64.encode(Value::Object(claims.clone()).to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("hmac accepts any key length");
    mac.update(signing_input.as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies signature (constant time) and expiry; returns the claims.
pub fn verify(token: &str, key: &str, now: i64) -> Option<Map<String, Value>> {
    let claims = unverified_claims(token)?;
    let (signing_input, sig) = token.rsplit_once('.')?;
    let sig = B64.decode(sig).ok()?;
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&sig).ok()?;
    let exp = claims.get("exp").and_then(Value::as_i64)?;
    if exp <= now {
        return None;
    }
    Some(claims)
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
}
