//! OAuth2 providers as PocketBase configures them (`oauth2.providers` of an
//! auth collection): every provider PocketBase ships, each a preset of
//! `oauth2_presets.rs` (URLs, scopes, PKCE, where the user's fields sit)
//! that the collection's options may override (display name, URLs,
//! PKCE). Authorization code flow with PKCE (S256) when the provider takes
//! it, and state; the code exchange, the user info and Apple's keys go out
//! through the bounded client of `outbound.rs`, on a blocking thread.

use super::oauth2_presets::{preset, Preset, Quirk, Verified};
use super::outbound::{provider_agent, read_capped, MAX_BODY};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Apple's id_token signing keys.
pub const APPLE_JWKS_URL: &str = "https://appleid.apple.com/auth/keys";
const APPLE_ISSUER: &str = "https://appleid.apple.com";
/// PocketBase's leeway on id_token times (5 minutes).
const ID_TOKEN_LEEWAY: i64 = 300;

/// One provider's settings, from the collection's options merged over the
/// preset of its name.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub display_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub auth_url: String,
    pub token_url: String,
    pub user_info_url: String,
    pub scopes: Vec<String>,
    pub pkce: bool,
    /// The provider's `extra` settings (OIDC: `jwksURL`, `issuers`).
    pub extra: Value,
    preset: &'static Preset,
}

/// The user as the provider describes them (PocketBase's `meta`).
#[derive(Debug, Clone, Default)]
pub struct AuthUser {
    pub id: String,
    pub name: String,
    pub username: String,
    /// Only when the provider says it is verified.
    pub email: String,
    pub avatar_url: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expiry: String,
    pub raw: Value,
}

impl AuthUser {
    /// PocketBase's `meta` object of an OAuth2 login.
    pub fn meta(&self, is_new: bool) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "username": self.username,
            "email": self.email,
            "avatarURL": self.avatar_url,
            "accessToken": self.access_token,
            "refreshToken": self.refresh_token,
            "expiry": self.expiry,
            "rawUser": self.raw,
            "isNew": is_new,
        })
    }
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The text at a JSON pointer: a string as it is, a number written out
/// (ids some providers give as numbers), else empty.
fn at(v: &Value, ptr: &str) -> String {
    if ptr.is_empty() {
        return String::new();
    }
    match v.pointer(ptr) {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// `true`, or the text "true" (some providers send flags as strings).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t)) => t == "true" || t == "1",
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// An email address as PocketBase's format check takes it (one `@`, a
/// local part and a dotted-or-not domain, no spaces).
fn is_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && !d.is_empty()
                && !d.contains('@')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

impl Provider {
    /// The provider named `name` in an auth collection's `oauth2` options.
    pub fn from_options(oauth2: &Value, name: &str) -> Option<Provider> {
        let cfg = oauth2["providers"]
            .as_array()?
            .iter()
            .find(|p| p["name"].as_str() == Some(name))?;
        let pre = preset(name)?;
        let or = |k: &str, d: &str| {
            let v = s(cfg, k);
            if v.is_empty() {
                d.to_string()
            } else {
                v
            }
        };
        let p = Provider {
            name: name.to_string(),
            display_name: or("displayName", pre.display),
            client_id: s(cfg, "clientId"),
            client_secret: s(cfg, "clientSecret"),
            auth_url: or("authURL", pre.auth_url),
            token_url: or("tokenURL", pre.token_url),
            user_info_url: or("userInfoURL", pre.user_info_url),
            scopes: pre.scopes.iter().map(|x| x.to_string()).collect(),
            pkce: cfg["pkce"].as_bool().unwrap_or(pre.pkce),
            extra: cfg.get("extra").cloned().unwrap_or(Value::Null),
            preset: pre,
        };
        let mut p = p;
        if pre.quirk == Quirk::Microsoft
            && !s(&p.extra, "idTokenEmailClaim").is_empty()
            && !p.scopes.iter().any(|x| x == "openid")
        {
            p.scopes.push("openid".into());
        }
        let info_needed = !matches!(pre.quirk, Quirk::Oidc | Quirk::Apple);
        (!p.client_id.is_empty()
            && !p.auth_url.is_empty()
            && !p.token_url.is_empty()
            && (!info_needed || !p.user_info_url.is_empty()))
        .then_some(p)
    }

    /// PocketBase's auth-methods entry: a fresh state, PKCE verifier and
    /// challenge, and the authorization URL (its parameters sorted by name,
    /// as PocketBase writes them) ending in `&redirect_uri=` for the client
    /// to complete.
    pub fn auth_info(&self) -> Value {
        let state = crate::util::random_string(30, crate::util::ALPHANUM);
        let mut params: BTreeMap<&str, String> = BTreeMap::new();
        params.insert("client_id", self.client_id.clone());
        let (mut verifier, mut challenge, mut method) = (String::new(), String::new(), "");
        if self.pkce {
            verifier = crate::util::random_string(43, crate::util::ALPHANUM);
            challenge = s256(&verifier);
            method = "S256";
            params.insert("code_challenge", challenge.clone());
            params.insert("code_challenge_method", method.into());
        }
        params.insert("response_type", "code".into());
        if !self.scopes.is_empty() {
            params.insert("scope", self.scopes.join(" "));
        }
        params.insert("state", state.clone());
        for (k, v) in self.preset.auth_params {
            params.insert(k, v.to_string());
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &params {
            q.append_pair(k, v);
        }
        let sep = if self.auth_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}{}&redirect_uri=", self.auth_url, q.finish());
        json!({
            "name": self.name,
            "displayName": self.display_name,
            "logo": super::oauth2_presets::logo(&self.name),
            "state": state,
            "authURL": url,
            "codeVerifier": verifier,
            "codeChallenge": challenge,
            "codeChallengeMethod": method,
        })
    }

    /// Exchanges the code and fetches the user (blocking; call from a
    /// blocking thread).
    pub fn login(
        &self,
        code: &str,
        verifier: &str,
        redirect_url: &str,
    ) -> Result<AuthUser, LoginError> {
        let agent = provider_agent();
        // As PocketBase's OAuth2 client: the client's credentials in a
        // Basic header first, then in the form if the provider refuses that.
        let tok = match self.exchange(&agent, code, verifier, redirect_url, true) {
            Ok(t) => t,
            Err(first) => self
                .exchange(&agent, code, verifier, redirect_url, false)
                .map_err(|e| LoginError::Token(format!("{first}; then {e}")))?,
        };
        let access = s(&tok, "access_token");
        let expiry = match &tok["expires_in"] {
            Value::Number(n) => n.as_i64(),
            Value::String(t) => t.parse().ok(),
            _ => None,
        }
        .filter(|secs| *secs > 0)
        .map(|secs| crate::util::format_time(chrono::Utc::now() + chrono::Duration::seconds(secs)))
        .unwrap_or_default();
        let get = |url: &str| -> Result<Value, LoginError> {
            let mut r = agent
                .get(url)
                .header("Authorization", &format!("Bearer {access}"))
                .header("Accept", "application/json")
                .call()
                .map_err(|e| LoginError::User(e.to_string()))?;
            let status = r.status().as_u16();
            let body = read_capped(&mut r, MAX_BODY).map_err(LoginError::User)?;
            if status >= 400 {
                return Err(LoginError::User(format!("status {status}")));
            }
            serde_json::from_slice(&body).map_err(|e| LoginError::User(e.to_string()))
        };
        let raw = match self.preset.quirk {
            Quirk::Apple => apple_claims(&s(&tok, "id_token"), &self.client_id, &|kid| {
                jwks(APPLE_JWKS_URL, kid)
            })
            .map_err(LoginError::User)?,
            Quirk::Oidc if self.user_info_url.is_empty() => {
                // Without a user-info endpoint: the id_token's claims,
                // checked with the `extra` settings (`issuers`, `jwksURL`).
                let issuers: Vec<String> = self.extra["issuers"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|i| i.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let jwks_url = s(&self.extra, "jwksURL");
                let keys = |kid: &str| jwks(&jwks_url, kid);
                let check = IdTokenCheck {
                    client_id: &self.client_id,
                    issuers: &issuers,
                    exp_required: false,
                };
                let keys: Option<KeySet> = (!jwks_url.is_empty()).then_some(&keys);
                checked_id_token(&s(&tok, "id_token"), &check, keys).map_err(LoginError::User)?
            }
            _ => self.fetch_info(&agent, &access)?,
        };
        let mut u = map_user(self.preset, &self.user_info_url, raw, &tok, &get)?;
        if self.preset.quirk == Quirk::Microsoft {
            let mode = s(&self.extra, "idTokenEmailClaim");
            if !mode.is_empty() {
                u.email = microsoft_email(&mode, &s(&tok, "id_token"));
            }
        }
        u.access_token = access.clone();
        u.refresh_token = s(&tok, "refresh_token");
        u.expiry = expiry;
        if u.id.is_empty() {
            return Err(LoginError::User("the provider gave no user id".into()));
        }
        Ok(u)
    }

    /// One code exchange: the token endpoint's answer when it is a 2xx with
    /// an access token. `basic`: the client id and secret (each
    /// URL-encoded, RFC 6749 2.3.1) in a Basic header, else in the form.
    fn exchange(
        &self,
        agent: &ureq::Agent,
        code: &str,
        verifier: &str,
        redirect_url: &str,
        basic: bool,
    ) -> Result<Value, String> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_url),
        ];
        if !basic {
            form.push(("client_id", &self.client_id));
            if !self.client_secret.is_empty() {
                form.push(("client_secret", &self.client_secret));
            }
        }
        if self.pkce {
            form.push(("code_verifier", verifier));
        }
        let mut rq = agent
            .post(&self.token_url)
            .header("Accept", "application/json");
        if basic {
            let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let cred = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&self.client_id),
                enc(&self.client_secret)
            ));
            rq = rq.header("Authorization", &format!("Basic {cred}"));
        }
        let mut resp = rq.send_form(form).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = read_capped(&mut resp, MAX_BODY)?;
        if !(200..300).contains(&status) {
            return Err(format!("status {status}"));
        }
        let tok = token_answer(&text);
        if s(&tok, "access_token").is_empty() {
            return Err("no access_token".into());
        }
        Ok(tok)
    }

    /// The user-info request as the preset makes it (GET, or a GraphQL
    /// POST; extra headers).
    fn fetch_info(&self, agent: &ureq::Agent, access: &str) -> Result<Value, LoginError> {
        let bearer = format!("Bearer {access}");
        let headers: Vec<(&str, String)> = self
            .preset
            .info_headers
            .iter()
            .map(|(k, v)| (*k, v.replace("{clientId}", &self.client_id)))
            .collect();
        let result = match self.preset.info_post {
            Some(body) => {
                let mut rq = agent
                    .post(&self.user_info_url)
                    .header("Authorization", &bearer)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json");
                for (k, v) in &headers {
                    rq = rq.header(*k, v);
                }
                rq.send(body.as_bytes())
            }
            None => {
                let mut rq = agent
                    .get(&self.user_info_url)
                    .header("Authorization", &bearer)
                    .header("Accept", "application/json");
                for (k, v) in &headers {
                    rq = rq.header(*k, v);
                }
                rq.call()
            }
        };
        let mut r = result.map_err(|e| LoginError::User(e.to_string()))?;
        let status = r.status().as_u16();
        let body = read_capped(&mut r, MAX_BODY).map_err(LoginError::User)?;
        if status >= 400 {
            return Err(LoginError::User(format!("status {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| LoginError::User(e.to_string()))
    }
}

/// Microsoft's email from its id_token as `extra.idTokenEmailClaim`
/// chooses (PocketBase's modes): `verified_primary_email`,
/// `email_and_xms_edov` (the `email` claim when `xms_edov` is true),
/// `any_verified` (the first, else the second), `email`. The token came
/// straight from the token endpoint; only its issue time is checked.
pub fn microsoft_email(mode: &str, id_token: &str) -> String {
    let Ok((_, claims, _, _)) = jwt_parts(id_token) else {
        return String::new();
    };
    let now = chrono::Utc::now().timestamp();
    if claims["iat"]
        .as_f64()
        .is_some_and(|t| t as i64 - ID_TOKEN_LEEWAY > now)
    {
        return String::new();
    }
    let primary = || s(&claims, "verified_primary_email");
    let edov = || {
        if truthy(claims.get("xms_edov")) {
            s(&claims, "email")
        } else {
            String::new()
        }
    };
    match mode {
        "any_verified" => Some(primary())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(edov),
        "verified_primary_email" => primary(),
        "email_and_xms_edov" => edov(),
        "email" => s(&claims, "email"),
        _ => String::new(),
    }
}

/// A token endpoint's answer: JSON, or form-encoded (GitHub may answer so).
fn token_answer(text: &[u8]) -> Value {
    serde_json::from_slice(text).unwrap_or_else(|_| {
        Value::Object(
            form_urlencoded::parse(text)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect::<Map<String, Value>>(),
        )
    })
}

/// The provider's user info mapped through its preset: the fields at their
/// pointers, the email only when verified, the account's activity checked,
/// and the preset's quirk (`get` makes its extra requests: the email
/// lists). `token` is the token endpoint's answer.
pub fn map_user(
    p: &Preset,
    user_info_url: &str,
    mut raw: Value,
    token: &Value,
    get: &dyn Fn(&str) -> Result<Value, LoginError>,
) -> Result<AuthUser, LoginError> {
    if let Some((ptr, want)) = p.active {
        let want: Value = serde_json::from_str(want).unwrap_or(Value::Null);
        if raw.pointer(ptr) != Some(&want) {
            return Err(LoginError::User(format!(
                "the {} account is not active",
                p.display
            )));
        }
    }
    if p.quirk == Quirk::Instagram && raw.get("permissions").is_none() {
        if let (Some(perm), Some(m)) = (token.get("permissions"), raw.as_object_mut()) {
            m.insert("permissions".into(), perm.clone());
        }
    }
    let mut u = AuthUser {
        id: at(&raw, p.id),
        name: at(&raw, p.user_name),
        username: at(&raw, p.username),
        avatar_url: at(&raw, p.avatar),
        ..Default::default()
    };
    let verified = match p.verified {
        Verified::Always => true,
        Verified::Flags(list) => list.iter().all(|f| truthy(raw.pointer(f))),
        Verified::Time(ptr) => {
            chrono::DateTime::parse_from_rfc3339(&at(&raw, ptr)).is_ok_and(|t| t.timestamp() > 0)
        }
        Verified::Never => false,
    };
    if verified {
        u.email = at(&raw, p.email);
    }
    let base = user_info_url.trim_end_matches('/');
    match p.quirk {
        Quirk::Github | Quirk::Gitea => {
            // Only a verified primary address counts; no list, no email.
            if let Ok(Value::Array(list)) = get(&format!("{base}/emails")) {
                if let Some(e) = list
                    .iter()
                    .find(|e| truthy(e.get("verified")) && truthy(e.get("primary")))
                {
                    u.email = s(e, "email");
                }
            }
        }
        Quirk::Bitbucket => {
            if let Ok(v) = get(&format!("{base}/emails")) {
                if let Some(e) = v["values"].as_array().and_then(|l| {
                    l.iter()
                        .find(|e| truthy(e.get("is_primary")) && truthy(e.get("is_confirmed")))
                }) {
                    u.email = s(e, "email");
                }
            }
        }
        Quirk::Gitee => {
            let own = s(&raw, "email");
            if is_email(&own) {
                u.email = own;
            } else if let Ok(Value::Array(list)) = get("https://gitee.com/api/v5/emails") {
                u.email = list
                    .iter()
                    .find(|e| {
                        s(e, "state") == "confirmed"
                            && e["scope"]
                                .as_array()
                                .is_some_and(|sc| sc.iter().any(|x| x == "primary"))
                            && is_email(&s(e, "email"))
                    })
                    .map(|e| s(e, "email"))
                    .unwrap_or_default();
            }
        }
        Quirk::Discord => {
            if u.name.is_empty() {
                u.name = s(&raw, "username");
                let d = s(&raw, "discriminator");
                if !d.is_empty() && d != "0" {
                    u.name = format!("{}#{d}", u.name);
                }
            }
            let hash = s(&raw, "avatar");
            if !hash.is_empty() {
                u.avatar_url = format!("https://cdn.discordapp.com/avatars/{}/{hash}.png", u.id);
            }
        }
        Quirk::Yandex => {
            if !truthy(raw.get("is_avatar_empty")) {
                u.avatar_url = format!(
                    "https://avatars.yandex.net/get-yapic/{}/islands-200",
                    s(&raw, "default_avatar_id")
                );
            }
        }
        Quirk::Vk => {
            if raw["response"].as_array().is_none_or(|l| l.is_empty()) {
                return Err(LoginError::User("missing response entry".into()));
            }
            let r = &raw["response"][0];
            u.name = format!("{} {}", s(r, "first_name"), s(r, "last_name"))
                .trim()
                .to_string();
            u.email = match token.get("email") {
                Some(Value::String(e)) => e.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
        }
        Quirk::Strava => {
            u.name = format!("{} {}", s(&raw, "firstname"), s(&raw, "lastname"));
            if u.id == "0" {
                u.id.clear();
            }
        }
        Quirk::Mailcow => {
            if let Some((user, _)) = u.username.split_once('@') {
                u.username = user.to_string();
            }
        }
        Quirk::Wakatime => {
            if !truthy(raw.pointer("/data/photo_public")) {
                u.avatar_url.clear();
            }
        }
        Quirk::None | Quirk::Oidc | Quirk::Apple | Quirk::Instagram | Quirk::Microsoft => {}
    }
    u.raw = raw;
    Ok(u)
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("token exchange failed: {0}")]
    Token(String),
    #[error("user info failed: {0}")]
    User(String),
}

/// The PKCE S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Splits a compact JWT into its decoded header and claims, and the
/// signed part and signature.
fn jwt_parts(tok: &str) -> Result<(Value, Value, String, Vec<u8>), String> {
    let mut it = tok.split('.');
    let (Some(h), Some(c), Some(sig), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err("not a JWT".into());
    };
    let dec = |p: &str| -> Result<Value, String> {
        let bytes = B64.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let sig = B64.decode(sig).map_err(|e| e.to_string())?;
    Ok((dec(h)?, dec(c)?, format!("{h}.{c}"), sig))
}

/// Answers a key id with the JSON Web Key Set that should hold it.
pub type KeySet<'a> = &'a dyn Fn(&str) -> Result<Value, String>;

/// What an `id_token` is checked against (PocketBase's checks).
pub struct IdTokenCheck<'a> {
    /// The audience it must name.
    pub client_id: &'a str,
    /// When not empty, its issuer must be one of these.
    pub issuers: &'a [String],
    /// Whether `exp` must be present (Apple's).
    pub exp_required: bool,
}

/// An `id_token`'s claims, checked: `exp` not past and `iat`/`nbf` not
/// ahead (5 minutes' leeway each), the audience, the issuer; and, when
/// `keys` is given (it answers a key id with a JWKS), the signature — RS256
/// by an RSA key or EdDSA by an Ed25519 key, as PocketBase takes them.
pub fn checked_id_token(
    id_token: &str,
    check: &IdTokenCheck,
    keys: Option<KeySet>,
) -> Result<Value, String> {
    if id_token.is_empty() {
        return Err("empty id_token".into());
    }
    let (header, claims, signed, sig) = jwt_parts(id_token)?;
    let now = chrono::Utc::now().timestamp();
    let time = |k: &str| claims[k].as_f64().map(|t| t as i64);
    match time("exp") {
        Some(exp) if exp + ID_TOKEN_LEEWAY < now => return Err("the id_token has expired".into()),
        None if check.exp_required || !claims["exp"].is_null() => {
            return Err("the id_token has no valid exp".into())
        }
        _ => {}
    }
    for k in ["iat", "nbf"] {
        if time(k).is_some_and(|t| t - ID_TOKEN_LEEWAY > now) {
            return Err(format!("the id_token's {k} is ahead"));
        }
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == check.client_id,
        Value::Array(l) => l.iter().any(|a| a.as_str() == Some(check.client_id)),
        _ => false,
    };
    if !aud_ok || check.client_id.is_empty() {
        return Err("the id_token is for another audience".into());
    }
    if !check.issuers.is_empty() {
        let iss = claims["iss"].as_str().unwrap_or_default();
        if !check
            .issuers
            .iter()
            .any(|i| bool::from(subtle::ConstantTimeEq::ct_eq(i.as_bytes(), iss.as_bytes())))
        {
            return Err(format!("the id_token's issuer {iss:?} is not accepted"));
        }
    }
    let Some(keys) = keys else {
        return Ok(claims);
    };
    let kid = header["kid"].as_str().unwrap_or_default();
    if kid.is_empty() {
        return Err("the id_token names no key (kid)".into());
    }
    let jwks = keys(kid)?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|k| k["kid"].as_str() == Some(kid) && !s(k, "alg").is_empty())
        })
        .ok_or_else(|| format!("no key {kid:?} in the key set"))?;
    let b = |k: &str| {
        B64.decode(s(key, k).trim_end_matches('='))
            .map_err(|e| e.to_string())
    };
    use ring::signature;
    let ok = match (header["alg"].as_str(), s(key, "kty").as_str()) {
        (Some("RS256"), "RSA") => signature::RsaPublicKeyComponents {
            n: b("n")?,
            e: b("e")?,
        }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &sig,
        )
        .is_ok(),
        (Some("EdDSA"), "OKP") if s(key, "crv") == "Ed25519" => {
            signature::UnparsedPublicKey::new(&signature::ED25519, b("x")?)
                .verify(signed.as_bytes(), &sig)
                .is_ok()
        }
        (alg, kty) => return Err(format!("unsupported id_token key: {alg:?} with {kty:?}")),
    };
    if !ok {
        return Err("the id_token's signature does not verify".into());
    }
    Ok(claims)
}

/// Apple's `id_token` checked as PocketBase checks it: `exp` required,
/// issuer Apple, audience the client id, signed by a key of Apple's
/// (`keys` answers with Apple's JWKS).
pub fn apple_claims(
    id_token: &str,
    client_id: &str,
    keys: &dyn Fn(&str) -> Result<Value, String>,
) -> Result<Value, String> {
    let issuers = [APPLE_ISSUER.to_string()];
    let check = IdTokenCheck {
        client_id,
        issuers: &issuers,
        exp_required: true,
    };
    checked_id_token(id_token, &check, Some(keys))
}

/// A JWKS, cached per URL for an hour; fetched again (at most once a
/// minute) when a token names a key the cached set lacks (keys rotate).
fn jwks(url: &str, kid: &str) -> Result<Value, String> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    static CACHE: Mutex<Option<HashMap<String, (Instant, Value)>>> = Mutex::new(None);
    let has = |v: &Value| {
        v["keys"]
            .as_array()
            .is_some_and(|l| l.iter().any(|k| k["kid"].as_str() == Some(kid)))
    };
    if let Some((at, v)) = CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(url))
    {
        let age = at.elapsed();
        if age < Duration::from_secs(3600) && (has(v) || age < Duration::from_secs(60)) {
            return Ok(v.clone());
        }
    }
    let mut r = provider_agent()
        .get(url)
        .header("Accept", "application/json")
        .call()
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let body = read_capped(&mut r, MAX_BODY)?;
    if status >= 400 {
        return Err(format!("the key set at {url}: status {status}"));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let m = cache.get_or_insert_with(HashMap::new);
    if m.len() >= 16 {
        m.clear();
    }
    m.insert(url.to_string(), (Instant::now(), v.clone()));
    Ok(v)
}

/// The DER inside a PEM block (`-----BEGIN …-----` lines dropped).
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Apple's client secret as PocketBase's `POST
/// /api/settings/apple/generate-client-secret` makes it: an ES256 JWT
/// signed with the PKCS#8 P-256 key, `kid` the key id, issuer the team,
/// subject the client id, audience Apple, valid `duration` seconds from
/// `now` (unix seconds).
pub fn apple_client_secret(
    client_id: &str,
    team_id: &str,
    key_id: &str,
    private_key: &str,
    duration: i64,
    now: i64,
) -> Result<String, String> {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let der = pem_der(private_key.trim())
        .ok_or("invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key.")?;
    let rng = ring::rand::SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
        .map_err(|_| "invalid key: not a PKCS#8 P-256 private key".to_string())?;
    // Field order as PocketBase's (its JWT library's).
    let header = format!(
        r#"{{"alg":"ES256","kid":{},"typ":"JWT"}}"#,
        Value::String(key_id.into())
    );
    let claims = format!(
        r#"{{"iss":{},"sub":{},"aud":["{APPLE_ISSUER}"],"exp":{},"iat":{now}}}"#,
        Value::String(team_id.into()),
        Value::String(client_id.into()),
        now + duration
    );
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = key
        .sign(&rng, signed.as_bytes())
        .map_err(|_| "signing failed".to_string())?;
    Ok(format!("{signed}.{}", B64.encode(sig.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_rfc7636_vector() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn presets_and_auth_info() {
        let opts = json!({"providers": [
            {"name": "google", "clientId": "cid", "clientSecret": "sec"},
            {"name": "oidc", "clientId": "c2", "clientSecret": "oidc-client-secret-value", "authURL": "http://idp/auth", "tokenURL": "http://idp/token", "userInfoURL": "http://idp/me"},
            {"name": "oidc2", "clientId": "c3"},
        ]});
        let g = Provider::from_options(&opts, "google").unwrap();
        assert_eq!(g.token_url, "https://oauth2.googleapis.com/token");
        assert_eq!(g.display_name, "Google");
        assert!(Provider::from_options(&opts, "oidc2").is_none(), "no URLs");
        assert!(
            Provider::from_options(&opts, "github").is_none(),
            "not configured"
        );
        let o = Provider::from_options(&opts, "oidc").unwrap();
        let info = o.auth_info();
        let url = info["authURL"].as_str().unwrap();
        assert!(
            url.starts_with("http://idp/auth?client_id=c2&code_challenge="),
            "{url}"
        );
        assert!(url.ends_with("&redirect_uri="));
        assert!(url.contains(&format!("state={}", info["state"].as_str().unwrap())));
        assert_eq!(
            s256(info["codeVerifier"].as_str().unwrap()),
            info["codeChallenge"]
        );
        assert_eq!(info["codeChallengeMethod"], "S256");
        assert!(
            !info.to_string().contains("oidc-client-secret-value"),
            "the secret leaked"
        );
    }
}

#[cfg(test)]
#[path = "oauth2_tests.rs"]
mod preset_tests;
