//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps) — keepd's own
//! second factor (PocketBase has none): secrets, `otpauth://` URIs, QR
//! codes as SVG, verification with ±1 step of clock skew and replay
//! protection (a step, once used, is never accepted again), and single-use
//! recovery codes stored as SHA-256 digests.
//!
//! Pure: time comes in as Unix seconds (tests pass fixed times).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const STEP: u64 = 30;
pub const DIGITS: u32 = 6;
/// Steps either side of now that are accepted (clock skew).
pub const SKEW: u64 = 1;
pub const RECOVERY_CODES: usize = 10;

/// A new random secret (160 bits), base32 without padding.
pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut b);
    data_encoding::BASE32_NOPAD.encode(&b)
}

/// The code for a time step.
pub fn code_at(secret_b32: &str, step: u64) -> Option<String> {
    let key = data_encoding::BASE32_NOPAD
        .decode(secret_b32.trim_end_matches('=').as_bytes())
        .ok()?;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    Some(format!(
        "{:0width$}",
        bin % 10u32.pow(DIGITS),
        width = DIGITS as usize
    ))
}

/// The step a code is valid for, if it matches within the skew and is
/// later than `last_step` (the last one used). Constant-time compare.
pub fn verify(secret_b32: &str, code: &str, now: u64, last_step: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = now / STEP;
    let mut found = None;
    for step in now_step.saturating_sub(SKEW)..=now_step + SKEW {
        if let Some(expected) = code_at(secret_b32, step) {
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
            if same && step > last_step {
                found = Some(step);
            }
        }
    }
    found
}

/// The `otpauth://` URI authenticator apps read.
pub fn uri(secret_b32: &str, issuer: &str, account: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The URI as a QR code in SVG.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build(),
    )
}

/// New recovery codes (shown once) and their digests (stored).
pub fn recovery_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw = crate::util::random_string(10, b"abcdefghjkmnpqrstuvwxyz23456789");
            format!("{}-{}", &raw[..5], &raw[5..])
        })
        .collect();
    let digests = codes.iter().map(|c| digest(c)).collect();
    (codes, digests)
}

/// The stored form of a recovery code.
pub fn digest(code: &str) -> String {
    let norm = code.trim().to_ascii_lowercase();
    let mut h = Sha256::new();
    h.update(norm.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, truncated to 6 digits (the RFC shows 8).
    #[test]
    fn rfc6238_vectors() {
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, eight) in [
            (59u64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code_at(&secret, t / STEP).unwrap(), &eight[2..], "t={t}");
        }
    }

    #[test]
    fn skew_and_replay() {
        let s = new_secret();
        let now = 1_700_000_000u64;
        let step = now / STEP;
        let c = code_at(&s, step).unwrap();
        assert_eq!(verify(&s, &c, now, 0), Some(step));
        // One step either side is accepted, two are not.
        assert_eq!(verify(&s, &c, now + STEP, 0), Some(step));
        assert_eq!(verify(&s, &c, now - STEP, 0), Some(step));
        assert_eq!(verify(&s, &c, now + 2 * STEP, 0), None);
        assert_eq!(verify(&s, &c, now - 2 * STEP, 0), None);
        // Replay: a used step is not accepted again.
        assert_eq!(verify(&s, &c, now, step), None);
        // Malformed codes.
        assert_eq!(verify(&s, "12345", now, 0), None);
        assert_eq!(verify(&s, "abcdef", now, 0), None);
    }

    #[test]
    fn uri_qr_and_recovery() {
        let u = uri("JBSWY3DPEHPK3PXP", "My App", "a@b.c");
        assert_eq!(
            u,
            "otpauth://totp/My%20App:a%40b%2Ec?secret=JBSWY3DPEHPK3PXP&issuer=My%20App&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&u).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.contains("<svg"),
            "{}",
            &svg[..60]
        );
        let (codes, digests) = recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(digest(&codes[0]), digests[0]);
        assert_eq!(digest(&codes[0].to_uppercase()), digests[0]);
        assert_ne!(digests[0], digests[1]);
    }
}
