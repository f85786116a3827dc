//! Password hashing with argon2id (OWASP defaults), behind a semaphore so a
//! burst of logins can't make the device spend more memory than planned:
//! at most `max_concurrent` hashes run at once, others wait briefly and are
//! then turned away with 429.

use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    wait: Duration,
    /// A hash of a random password, verified against when the identity is
    /// unknown so the timing doesn't tell which identities exist.
    dummy: Arc<String>,
}

impl Hasher {
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        max_concurrent: usize,
    ) -> anyhow::Result<Hasher> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut rand::thread_rng());
        let dummy = a
            .hash_password(
                crate::util::random_string(24, crate::util::ALPHANUM).as_bytes(),
                &salt,
            )
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string();
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            wait: Duration::from_secs(5),
            dummy: Arc::new(dummy),
        })
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    async fn permit(&self) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(ApiError::TooManyRequests {
                message: "Too many requests, please try again later.".into(),
                retry_after: 2,
            }),
        }
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: String) -> ApiResult<String> {
        let permit = self.permit().await?;
        let a = self.argon();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut rand::thread_rng());
            let r = a
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string());
            drop(permit);
            r.map_err(|e| ApiError::internal(format!("argon2: {e}")))
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Verifies `password` against `hash`; `None` hash verifies against the
    /// dummy so unknown identities cost the same. Returns whether it matched
    /// and whether the stored hash should be upgraded to current parameters.
    pub async fn verify(&self, password: String, hash: Option<String>) -> ApiResult<(bool, bool)> {
        let permit = self.permit().await?;
        let a = self.argon();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy.as_ref().clone());
        let want = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let r = match PasswordHash::new(&hash) {
                Ok(parsed) => {
                    let ok = a.verify_password(password.as_bytes(), &parsed).is_ok();
                    let stale = Params::try_from(&parsed)
                        .map(|p| {
                            p.m_cost() != want.m_cost()
                                || p.t_cost() != want.t_cost()
                                || p.p_cost() != want.p_cost()
                        })
                        .unwrap_or(true)
                        || parsed.algorithm.as_str() != "argon2id";
                    (ok && known, ok && known && stale)
                }
                Err(_) => (false, false),
            };
            drop(permit);
            Ok(r)
        })
        .await
        .map_err(ApiError::internal)?
    }
}
