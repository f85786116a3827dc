//! OAuth2 beyond the SDK tests: the providers list compared key for key
//! with the reference PocketBase's, Apple's client-secret generator (its
//! checks as PocketBase's, the JWT's ES256 signature verified), the
//! provider names a collection may use, and a sign-up against a local
//! OpenID Connect provider (run here) whose avatar is downloaded into the
//! record's file field — or left out, without failing the sign-up, when
//! it is too large, not an image, missing, or on a refused address.

use crate::common::{raw_at, reference_pocketbase, PocketBase, TestServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

// -- the reference PocketBase ------------------------------------------------

/// The reference PocketBase and the data dir it serves (kept while it runs).
struct Pb(PocketBase, #[allow(dead_code)] Arc<crate::common::TempRoot>);

/// The reference PocketBase running with a superuser: (it, token).
fn start_pb(bin: &Path) -> (Pb, String) {
    let root = crate::common::TempRoot::new("pb-oauth2");
    let dir = root.path.join("pb_data");
    let ok = Command::new(bin)
        .args([
            "superuser",
            "upsert",
            "su@example.com",
            "su-password-123",
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("pocketbase superuser upsert");
    assert!(ok.success());
    let pb = Pb(PocketBase::start(bin, &dir), root);
    let addr = pb.0.addr;
    let body = json!({"identity": "su@example.com", "password": "su-password-123"}).to_string();
    let r = raw_at(
        addr,
        "POST",
        "/api/collections/_superusers/auth-with-password",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    )
    .unwrap();
    let token = r.json()["token"].as_str().unwrap().to_string();
    (pb, token)
}

#[test]
fn providers_list_is_pocketbases() {
    let srv = TestServer::start();
    let r = srv.raw("GET", "/api/collections/meta/oauth2-providers", &[], None);
    assert_eq!(r.status, 401, "superusers only");
    let (_, user) = srv.sign_up("list@example.com", "list-password-1");
    let r = srv.raw(
        "GET",
        "/api/collections/meta/oauth2-providers",
        &[("Authorization", &user)],
        None,
    );
    assert_eq!(r.status, 403, "not for users");
    let su = srv.superuser_token();
    let ours = srv.raw(
        "GET",
        "/api/collections/meta/oauth2-providers",
        &[("Authorization", &su)],
        None,
    );
    assert_eq!(ours.status, 200);
    assert!(ours
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let list: Vec<Value> = serde_json::from_slice(&ours.body).unwrap();
    assert_eq!(list.len(), 32);
    if crate::common::is_reference() {
        return;
    }
    let Some(bin) = reference_pocketbase() else {
        return;
    };
    let (pb, token) = start_pb(&bin);
    let theirs = raw_at(
        pb.0.addr,
        "GET",
        "/api/collections/meta/oauth2-providers",
        &[("Authorization", &token)],
        None,
    )
    .unwrap();
    assert_eq!(theirs.status, 200);
    // Everything but the logos is PocketBase's, in its order; the logos
    // are keepd's own monograms (COMPATIBILITY.md, "auth provider logos").
    let theirs: Vec<Value> = serde_json::from_slice(&theirs.body).unwrap();
    let strip = |l: &[Value]| -> Vec<Value> {
        l.iter()
            .map(|p| {
                let mut p = p.clone();
                let logo = p["logo"].take();
                assert!(logo.as_str().is_some_and(|s| s.starts_with("<svg")), "{p}");
                p
            })
            .collect()
    };
    assert_eq!(strip(&list), strip(&theirs));
    // Every name the list gives can be configured on a collection.
    let providers: Vec<Value> = list
        .iter()
        .map(|p| {
            let mut c = json!({"name": p["name"], "clientId": "cid", "clientSecret": "sec"});
            if matches!(
                p["name"].as_str(),
                Some("oidc" | "oidc2" | "oidc3" | "mailcow")
            ) {
                c["authURL"] = json!("https://idp.example.com/auth");
                c["tokenURL"] = json!("https://idp.example.com/token");
                c["userInfoURL"] = json!("https://idp.example.com/me");
            }
            c
        })
        .collect();
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"oauth2": {"enabled": true, "providers": providers}}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, m) = srv.guest().get("/api/collections/users/auth-methods");
    assert_eq!(st, 200);
    let names: Vec<&str> = m["oauth2"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, all);
    // An unknown name is refused as PocketBase refuses it.
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"oauth2": {"enabled": true, "providers": [{"name": "nope", "clientId": "x", "clientSecret": "y"}]}}),
    );
    assert_eq!(st, 400);
    assert_eq!(
        v["data"],
        json!({"oauth2": {"providers": {"0": {"name": {"code": "validation_missing_provider", "message": "Invalid or missing provider with name nope.", "params": {"name": "nope"}}}}}})
    );
}

// -- Apple's client secret ---------------------------------------------------

fn p256_pem() -> (String, Vec<u8>) {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let kp =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let b64 = STANDARD.encode(pkcs8.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    (pem, kp.public_key().as_ref().to_vec())
}

#[test]
fn apple_client_secret_as_pocketbase() {
    let srv = TestServer::start();
    let path = "/api/settings/apple/generate-client-secret";
    let (st, _) = srv.guest().post(path, &json!({}));
    assert_eq!(st, 401);
    // PocketBase 0.40.6's answers to the same bodies.
    let (st, v) = srv.su().post(path, &json!({}));
    assert_eq!(st, 400);
    let blank = json!({"code": "validation_required", "message": "Cannot be blank."});
    assert_eq!(
        v,
        json!({"data": {"clientId": blank, "duration": blank, "keyId": blank, "privateKey": blank, "teamId": blank},
               "message": "Invalid client secret data.", "status": 400})
    );
    let (_, v) = srv.su().post(
        path,
        &json!({"clientId": "a", "teamId": "123", "keyId": "12345678901", "privateKey": "x", "duration": 99999999}),
    );
    let len = json!({"code": "validation_length_invalid", "message": "The length must be exactly 10.", "params": {"max": 10, "min": 10}});
    assert_eq!(
        v["data"],
        json!({"duration": {"code": "validation_max_less_equal_than_required", "message": "Must be no greater than 15777000.", "params": {"threshold": 15777000}},
               "keyId": len, "privateKey": {"code": "validation_match_invalid", "message": "Must be in a valid format."}, "teamId": len})
    );
    let (_, v) = srv.su().post(path, &json!({"duration": -1}));
    assert_eq!(
        v["data"]["duration"],
        json!({"code": "validation_min_greater_equal_than_required", "message": "Must be no less than 1.", "params": {"threshold": 1}})
    );
    let (st, v) = srv.su().post(
        path,
        &json!({"clientId": "a", "teamId": "1234567890", "keyId": "1234567890", "privateKey": "-----BEGIN PRIVATE KEY----- abc -----END PRIVATE KEY-----", "duration": 5}),
    );
    assert_eq!(st, 400);
    assert_eq!(v["data"], json!({}));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to generate client secret. Raw error: \ninvalid key"),
        "{v}"
    );

    let (pem, public) = p256_pem();
    let before = chrono::Utc::now().timestamp();
    let (st, v) = srv.su().post(
        path,
        &json!({"clientId": "com.example.app", "teamId": "ABCDEFGHIJ", "keyId": "KEY1234567", "privateKey": pem, "duration": 3600}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v.as_object().unwrap().len(), 1);
    let jwt = v["secret"].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let dec = |p: &str| -> Value { serde_json::from_slice(&B64.decode(p).unwrap()).unwrap() };
    assert_eq!(
        dec(parts[0]),
        json!({"alg": "ES256", "kid": "KEY1234567", "typ": "JWT"})
    );
    let c = dec(parts[1]);
    assert_eq!(c["iss"], "ABCDEFGHIJ");
    assert_eq!(c["sub"], "com.example.app");
    assert_eq!(c["aud"], json!(["https://appleid.apple.com"]));
    let iat = c["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= chrono::Utc::now().timestamp());
    assert_eq!(c["exp"].as_i64().unwrap(), iat + 3600);
    let sig = B64.decode(parts[2]).unwrap();
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public);
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("ES256 signature by the given key");
}

// -- a local OpenID Connect provider -----------------------------------------

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// Users by code (the code is the user's key; its access token is
/// `at-<code>`), and what each path was asked.
#[derive(Default)]
struct Idp {
    users: HashMap<String, Value>,
    hits: HashMap<String, usize>,
    /// Codes answered with an `id_token` (and no user-info use).
    id_tokens: HashMap<String, String>,
    jwks: Value,
    /// Whether the token endpoint takes the client's credentials in a
    /// Basic header (else only in the form).
    basic_ok: bool,
}

fn start_idp(state: Arc<Mutex<Idp>>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let state = state.clone();
            std::thread::spawn(move || {
                let _ = serve_one(s, &state);
            });
        }
    });
    addr
}

fn serve_one(s: std::net::TcpStream, state: &Mutex<Idp>) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mut len, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((h, ""));
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "authorization" => auth = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    *state.lock().unwrap().hits.entry(path.clone()).or_default() += 1;
    let (status, ctype, out): (u16, &str, Vec<u8>) = match path.as_str() {
        "/token" => {
            let form: HashMap<String, String> =
                form_urlencoded::parse(&body).into_owned().collect();
            let code = form.get("code").cloned().unwrap_or_default();
            let mut st = state.lock().unwrap();
            // The client's credentials: Basic only when `basic_ok`, else
            // the form (a provider that takes one way only).
            let basic = auth
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b).ok());
            let (id, secret) = match basic {
                Some(b) => {
                    *st.hits.entry("basic".into()).or_default() += 1;
                    if !st.basic_ok {
                        (String::new(), String::new())
                    } else {
                        let t = String::from_utf8_lossy(&b).to_string();
                        let (i, s) = t.split_once(':').unwrap_or_default();
                        (i.to_string(), s.to_string())
                    }
                }
                None => (
                    form.get("client_id").cloned().unwrap_or_default(),
                    form.get("client_secret").cloned().unwrap_or_default(),
                ),
            };
            if id != "idp-client" || secret != "idp-secret" {
                (
                    400,
                    "application/json",
                    br#"{"error":"invalid_client"}"#.to_vec(),
                )
            } else if let Some(idt) = st.id_tokens.get(&code) {
                let t = json!({"access_token": format!("at-{code}"), "token_type": "Bearer", "id_token": idt});
                (200, "application/json", t.to_string().into_bytes())
            } else if !st.users.contains_key(&code) {
                (
                    400,
                    "application/json",
                    br#"{"error":"invalid_grant"}"#.to_vec(),
                )
            } else {
                let t = json!({"access_token": format!("at-{code}"), "token_type": "Bearer", "expires_in": 3600});
                (200, "application/json", t.to_string().into_bytes())
            }
        }
        "/me" => {
            let code = auth.strip_prefix("Bearer at-").unwrap_or_default();
            match state.lock().unwrap().users.get(code) {
                Some(u) => (200, "application/json", u.to_string().into_bytes()),
                None => (401, "application/json", b"{}".to_vec()),
            }
        }
        "/jwks" => (
            200,
            "application/json",
            state.lock().unwrap().jwks.to_string().into_bytes(),
        ),
        "/avatar.png" => (200, "image/png", PNG.to_vec()),
        // Over the 5 MiB cap.
        "/huge.png" => {
            let mut b = PNG.to_vec();
            b.resize(6 << 20, 0);
            (200, "image/png", b)
        }
        // Under the cap, over the field's own limit.
        "/big.png" => {
            let mut b = PNG.to_vec();
            b.resize(64 << 10, 0);
            (200, "image/png", b)
        }
        "/page.html" => (
            200,
            "text/html",
            b"<html><body>not an image</body></html>".to_vec(),
        ),
        _ => (404, "text/plain", b"not found".to_vec()),
    };
    let mut s = s;
    write!(
        s,
        "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        out.len()
    )?;
    s.write_all(&out)?;
    s.flush()
}

/// A server whose `users` collection signs in with the local provider.
fn oidc_server(idp: SocketAddr, private_ok: bool) -> TestServer {
    let mut b = TestServer::builder();
    if private_ok {
        b = b.env("KEEPD_OAUTH2_PRIVATE_ADDRESSES", "true");
    }
    let srv = b.start();
    let base = format!("http://{idp}");
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"oauth2": {"enabled": true, "providers": [{
            "name": "oidc", "clientId": "idp-client", "clientSecret": "idp-secret",
            "authURL": format!("{base}/authorize"), "tokenURL": format!("{base}/token"),
            "userInfoURL": format!("{base}/me")}]}}),
    );
    assert_eq!(st, 200, "{v}");
    srv
}

fn oauth2_login(srv: &TestServer, code: &str) -> (u16, Value) {
    srv.guest().post(
        "/api/collections/users/auth-with-oauth2",
        &json!({"provider": "oidc", "code": code, "codeVerifier": "v".repeat(43), "redirectURL": "http://app.example/cb"}),
    )
}

fn user(sub: &str, picture: String) -> Value {
    json!({"sub": sub, "name": format!("User {sub}"), "email": format!("{sub}@example.com"), "email_verified": true, "picture": picture})
}

#[test]
fn sign_up_downloads_the_avatar_into_the_file_field() {
    if crate::common::is_reference() {
        // PocketBase refuses avatars on loopback addresses and has no
        // setting to allow them.
        return;
    }
    let state = Arc::new(Mutex::new(Idp::default()));
    let idp = start_idp(state.clone());
    let base = format!("http://{idp}");
    {
        let mut s = state.lock().unwrap();
        for (code, pic) in [
            ("ok", "/avatar.png"),
            ("huge", "/huge.png"),
            ("html", "/page.html"),
            ("gone", "/nothing.png"),
            ("again", "/avatar.png"),
        ] {
            s.users
                .insert(code.into(), user(code, format!("{base}{pic}")));
        }
    }
    let srv = oidc_server(idp, true);

    let (st, v) = oauth2_login(&srv, "ok");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["meta"]["isNew"], true);
    assert_eq!(v["meta"]["avatarURL"], format!("{base}/avatar.png"));
    let rec = &v["record"];
    assert_eq!(rec["name"], "User ok");
    assert_eq!(rec["verified"], true);
    let file = rec["avatar"].as_str().unwrap();
    assert!(
        file.starts_with("avatar_") && file.ends_with(".png"),
        "{rec}"
    );
    let id = rec["id"].as_str().unwrap();
    let token = v["token"].as_str().unwrap();
    let r = srv.raw(
        "GET",
        &format!("/api/files/users/{id}/{file}"),
        &[("Authorization", token)],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, PNG, "the provider's image, byte for byte");

    // Refused avatars are left out; the sign-up goes on.
    for code in ["huge", "html", "gone"] {
        let (st, v) = oauth2_login(&srv, code);
        assert_eq!(st, 200, "{code}: {v}");
        assert_eq!(v["meta"]["isNew"], true, "{code}");
        assert_eq!(v["record"]["avatar"], "", "{code}");
        assert_eq!(v["record"]["name"], format!("User {code}"));
    }
    // The field's own limit counts too.
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"fields": [{"id": "file376926767", "name": "avatar", "type": "file", "maxSelect": 1, "maxSize": 1000, "mimeTypes": ["image/png"]}]}),
    );
    assert_eq!(st, 200, "{v}");
    state
        .lock()
        .unwrap()
        .users
        .insert("big".into(), user("big", format!("{base}/big.png")));
    let (st, v) = oauth2_login(&srv, "big");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["record"]["avatar"], "");
    // A login of an existing account downloads nothing.
    let hits = state.lock().unwrap().hits.get("/avatar.png").copied();
    let (st, v) = oauth2_login(&srv, "ok");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["meta"]["isNew"], false);
    assert_eq!(v["record"]["avatar"], file);
    assert_eq!(state.lock().unwrap().hits.get("/avatar.png").copied(), hits);
    // The token endpoint refused the Basic header each time; the form
    // with the credentials followed.
    let hits = state.lock().unwrap().hits.clone();
    assert_eq!(hits.get("/token"), Some(&(2 * hits["basic"])), "{hits:?}");
    // Each refused one was asked for once, the huge one not read whole.
    assert_eq!(state.lock().unwrap().hits.get("/huge.png"), Some(&1));
    let _ = state.lock().unwrap().users.remove("again");
}

#[test]
fn avatars_on_private_addresses_are_refused_by_default() {
    // PocketBase refuses them too: this runs against both.
    let state = Arc::new(Mutex::new(Idp::default()));
    let idp = start_idp(state.clone());
    state.lock().unwrap().users.insert(
        "local".into(),
        user("local", format!("http://{idp}/avatar.png")),
    );
    // The provider itself is on loopback too: its endpoints are the
    // operator's settings, only the avatar URL (the provider's answer) is
    // held to public addresses.
    let srv = oidc_server(idp, false);
    let (st, v) = oauth2_login(&srv, "local");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["record"]["avatar"], "");
    assert_eq!(v["record"]["email"], "local@example.com");
    assert_eq!(
        state.lock().unwrap().hits.get("/avatar.png"),
        None,
        "never asked"
    );
}

/// An Ed25519-signed id_token and the key set holding its key.
fn ed25519_id_token(claims: &Value) -> (String, Value) {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let kp =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let header = json!({"alg": "EdDSA", "kid": "k-1", "typ": "JWT"});
    let signed = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = kp.sign(signed.as_bytes());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k-1", "alg": "EdDSA", "use": "sig",
                                "x": B64.encode(kp.public_key().as_ref())}]});
    (format!("{signed}.{}", B64.encode(sig.as_ref())), jwks)
}

#[test]
fn oidc_id_token_checked_against_the_configured_key_set() {
    let state = Arc::new(Mutex::new(Idp::default()));
    let idp = start_idp(state.clone());
    let base = format!("http://{idp}");
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: &str| {
        json!({"iss": base, "aud": aud, "iat": now, "exp": now + 300, "sub": "idt-user",
               "email": "idt@example.com", "email_verified": true, "name": "Id Token"})
    };
    let (good, jwks) = ed25519_id_token(&claims("idp-client"));
    let (other_aud, _) = ed25519_id_token(&claims("someone-else"));
    {
        let mut s = state.lock().unwrap();
        s.id_tokens.insert("good".into(), good.clone());
        // Signed by a key the set doesn't hold.
        s.id_tokens.insert("forged".into(), other_aud.clone());
        s.jwks = jwks;
        s.basic_ok = true;
    }
    let srv = TestServer::start();
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"oauth2": {"enabled": true, "providers": [{
            "name": "oidc", "clientId": "idp-client", "clientSecret": "idp-secret",
            "authURL": format!("{base}/authorize"), "tokenURL": format!("{base}/token"),
            "extra": {"jwksURL": format!("{base}/jwks"), "issuers": [base]}}]}}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = oauth2_login(&srv, "good");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["meta"]["id"], "idt-user");
    assert_eq!(v["record"]["email"], "idt@example.com");
    assert_eq!(v["record"]["name"], "Id Token");
    assert_eq!(state.lock().unwrap().hits.get("/jwks"), Some(&1));
    // The credentials went in a Basic header, taken the first time.
    assert_eq!(state.lock().unwrap().hits.get("basic"), Some(&1));
    assert_eq!(state.lock().unwrap().hits.get("/token"), Some(&1));
    assert_eq!(state.lock().unwrap().hits.get("/me"), None);
    let (st, v) = oauth2_login(&srv, "forged");
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["message"], "Failed to fetch OAuth2 user.");
    // Another issuer than the configured ones.
    let (st, v) = srv.su().patch(
        "/api/collections/users",
        &json!({"oauth2": {"enabled": true, "providers": [{
            "name": "oidc", "clientId": "idp-client", "clientSecret": "idp-secret",
            "authURL": format!("{base}/authorize"), "tokenURL": format!("{base}/token"),
            "extra": {"jwksURL": format!("{base}/jwks"), "issuers": ["https://elsewhere.example"]}}]}}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, _) = oauth2_login(&srv, "good");
    assert_eq!(st, 400);
}
