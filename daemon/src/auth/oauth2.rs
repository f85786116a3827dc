//! OAuth2 providers as PocketBase configures them (`oauth2.providers` of an
//! auth collection): generic OpenID Connect (`oidc`, `oidc2`, `oidc3`, with
//! the URLs given), and presets for `google` and `github`. Authorization
//! code flow with PKCE (S256) and state; the code exchange and the user
//! info fetch go out over HTTPS (ureq + rustls, webpki roots) with
//! timeouts and a size cap, on a blocking thread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Largest provider answer read.
const MAX_BODY: u64 = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

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
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Oidc,
    Google,
    Github,
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

impl Provider {
    /// The provider named `name` in an auth collection's `oauth2` options.
    pub fn from_options(oauth2: &Value, name: &str) -> Option<Provider> {
        let cfg = oauth2["providers"]
            .as_array()?
            .iter()
            .find(|p| p["name"].as_str() == Some(name))?;
        let (kind, display, auth, token, info, scopes, pkce): (
            Kind,
            &str,
            &str,
            &str,
            &str,
            &[&str],
            bool,
        ) = match name {
            "google" => (
                Kind::Google,
                "Google",
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                "https://www.googleapis.com/oauth2/v3/userinfo",
                &[
                    "https://www.googleapis.com/auth/userinfo.profile",
                    "https://www.googleapis.com/auth/userinfo.email",
                ],
                true,
            ),
            "github" => (
                Kind::Github,
                "GitHub",
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com/user",
                &["read:user", "user:email"],
                true,
            ),
            "oidc" | "oidc2" | "oidc3" => (
                Kind::Oidc,
                "OIDC",
                "",
                "",
                "",
                &["openid", "email", "profile"],
                true,
            ),
            _ => return None,
        };
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
            display_name: or("displayName", display),
            client_id: s(cfg, "clientId"),
            client_secret: s(cfg, "clientSecret"),
            auth_url: or("authURL", auth),
            token_url: or("tokenURL", token),
            user_info_url: or("userInfoURL", info),
            scopes: scopes.iter().map(|x| x.to_string()).collect(),
            pkce: cfg["pkce"].as_bool().unwrap_or(pkce),
            kind,
        };
        (!p.client_id.is_empty() && !p.auth_url.is_empty() && !p.token_url.is_empty()).then_some(p)
    }

    /// PocketBase's auth-methods entry: a fresh state, PKCE verifier and
    /// challenge, and the authorization URL ending in `&redirect_uri=` for
    /// the client to complete.
    pub fn auth_info(&self) -> Value {
        let state = crate::util::random_string(30, crate::util::ALPHANUM);
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &self.client_id);
        let (mut verifier, mut challenge, mut method) = (String::new(), String::new(), "");
        if self.pkce {
            verifier = crate::util::random_string(43, crate::util::ALPHANUM);
            challenge = s256(&verifier);
            method = "S256";
            q.append_pair("code_challenge", &challenge);
            q.append_pair("code_challenge_method", method);
        }
        q.append_pair("response_type", "code");
        q.append_pair("scope", &self.scopes.join(" "));
        q.append_pair("state", &state);
        let sep = if self.auth_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{}{sep}{}&redirect_uri=", self.auth_url, q.finish());
        json!({
            "name": self.name,
            "displayName": self.display_name,
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
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_url),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ];
        if self.pkce {
            form.push(("code_verifier", verifier));
        }
        let mut resp = agent
            .post(&self.token_url)
            .header("Accept", "application/json")
            .send_form(form)
            .map_err(|e| LoginError::Token(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| LoginError::Token(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(LoginError::Token(format!("status {status}")));
        }
        let tok: Value = serde_json::from_str(&text)
            .or_else(|_| {
                // GitHub may answer form-encoded.
                let m: Map<String, Value> = form_urlencoded::parse(text.as_bytes())
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                Ok::<Value, ()>(Value::Object(m))
            })
            .unwrap_or(Value::Null);
        let access = s(&tok, "access_token");
        if access.is_empty() {
            return Err(LoginError::Token("no access_token".into()));
        }
        let expiry = tok["expires_in"]
            .as_i64()
            .map(|secs| {
                crate::util::format_time(chrono::Utc::now() + chrono::Duration::seconds(secs))
            })
            .unwrap_or_default();
        let get = |url: &str| -> Result<Value, LoginError> {
            let mut r = agent
                .get(url)
                .header("Authorization", &format!("Bearer {access}"))
                .header("Accept", "application/json")
                .call()
                .map_err(|e| LoginError::User(e.to_string()))?;
            if !r.status().is_success() {
                return Err(LoginError::User(format!("status {}", r.status().as_u16())));
            }
            let body = r
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .map_err(|e| LoginError::User(e.to_string()))?;
            serde_json::from_str(&body).map_err(|e| LoginError::User(e.to_string()))
        };
        let raw = if self.user_info_url.is_empty() {
            // OIDC without a user-info endpoint: the id_token's claims.
            id_token_claims(&s(&tok, "id_token"))
                .ok_or_else(|| LoginError::User("no user info".into()))?
        } else {
            get(&self.user_info_url)?
        };
        let mut u = AuthUser {
            access_token: access.clone(),
            refresh_token: s(&tok, "refresh_token"),
            expiry,
            raw: raw.clone(),
            ..Default::default()
        };
        match self.kind {
            Kind::Oidc | Kind::Google => {
                u.id = s(&raw, "sub");
                u.name = s(&raw, "name");
                u.username = s(&raw, "preferred_username");
                u.avatar_url = s(&raw, "picture");
                let verified = match &raw["email_verified"] {
                    Value::Bool(b) => *b,
                    Value::String(v) => v == "true",
                    _ => false,
                };
                if verified {
                    u.email = s(&raw, "email");
                }
            }
            Kind::Github => {
                u.id = match &raw["id"] {
                    Value::Number(n) => n.to_string(),
                    v => v.as_str().unwrap_or_default().to_string(),
                };
                u.name = s(&raw, "name");
                u.username = s(&raw, "login");
                u.avatar_url = s(&raw, "avatar_url");
                // Only a verified primary address counts.
                let base = self.user_info_url.trim_end_matches('/');
                if let Ok(Value::Array(list)) = get(&format!("{base}/emails")) {
                    if let Some(e) = list.iter().find(|e| {
                        e["verified"].as_bool() == Some(true)
                            && e["primary"].as_bool() == Some(true)
                    }) {
                        u.email = s(e, "email");
                    }
                }
            }
        }
        if u.id.is_empty() {
            return Err(LoginError::User("the provider gave no user id".into()));
        }
        Ok(u)
    }
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

/// The payload of an id_token (trusted as it came straight from the
/// provider's token endpoint over TLS, as the OIDC code flow allows).
fn id_token_claims(tok: &str) -> Option<Value> {
    let payload = tok.split('.').nth(1)?;
    serde_json::from_slice(&B64.decode(payload).ok()?).ok()
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
