//! Password hashing with argon2id (OWASP defaults), on a fixed pool of
//! hasher threads. Each thread owns one argon2 memory block, reused while
//! hashes keep coming and given back after a short idle time, so the memory
//! password hashing can take is at most `threads × m_cost` whatever the
//! load (a login burst waits for a thread, briefly, and is then turned away
//! with 429: it never allocates more), and nothing between bursts.
//!
//! bcrypt hashes (a PocketBase database brought over) verify too, and are
//! reported stale so the login replaces them with argon2id.

use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, Semaphore};

/// Stored hashes asking for more memory than this are refused (a corrupt or
/// hostile row must not make us allocate without bound).
const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;
const OUTPUT_LEN: usize = 32;
/// Stored bcrypt hashes above this cost are refused (PocketBase uses 10;
/// each step doubles the work, so a hostile row could stall a hasher).
const MAX_BCRYPT_COST: u32 = 14;

/// The shipped list of common passwords (8+ characters), lower case.
static COMMON: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
    std::sync::OnceLock::new();

/// Whether a password is one of the ~10,000 most common ones (compared
/// case-insensitively): those fall to the first guesses of any attack.
pub fn is_common(password: &str) -> bool {
    let set = COMMON.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    set.contains(password.to_lowercase().as_str())
}

/// The cost of a bcrypt hash (`$2a$`, `$2b$`, `$2y$`), None for others.
fn bcrypt_cost(phc: &str) -> Option<u32> {
    let rest = phc
        .strip_prefix("$2a$")
        .or_else(|| phc.strip_prefix("$2b$"))
        .or_else(|| phc.strip_prefix("$2y$"))?;
    rest.get(..2)?.parse().ok()
}

enum Job {
    Hash {
        password: String,
        reply: oneshot::Sender<ApiResult<String>>,
    },
    Verify {
        password: String,
        phc: String,
        reply: oneshot::Sender<(bool, bool)>,
    },
}

#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    tx: mpsc::SyncSender<Job>,
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
        threads: usize,
    ) -> anyhow::Result<Hasher> {
        let params = Params::new(memory_kib, iterations, parallelism, Some(OUTPUT_LEN))
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = Arc::new(Mutex::new(rx));
        let blocks = Arc::new(Blocks::default());
        for i in 0..threads {
            let (rx, blocks) = (rx.clone(), blocks.clone());
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("keepd-hash-{i}"))
                .spawn(move || worker(rx, params, blocks))?;
        }
        let dummy = dummy_phc(&params).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(threads)),
            tx,
            wait: Duration::from_secs(5),
            dummy: Arc::new(dummy),
        })
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
        let _permit = self.permit().await?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job::Hash { password, reply })
            .map_err(|_| ApiError::internal("hasher pool unavailable"))?;
        rx.await
            .map_err(|_| ApiError::internal("hasher thread stopped"))?
    }

    /// Verifies `password` against `hash`; `None` verifies against the dummy
    /// so unknown identities cost the same. Returns whether it matched and
    /// whether the stored hash should be upgraded to current parameters.
    pub async fn verify(&self, password: String, hash: Option<String>) -> ApiResult<(bool, bool)> {
        let _permit = self.permit().await?;
        let known = hash.is_some();
        let phc = hash.unwrap_or_else(|| self.dummy.as_ref().clone());
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job::Verify {
                password,
                phc,
                reply,
            })
            .map_err(|_| ApiError::internal("hasher pool unavailable"))?;
        let (ok, stale) = rx
            .await
            .map_err(|_| ApiError::internal("hasher thread stopped"))?;
        Ok((ok && known, ok && known && stale))
    }

    pub fn params(&self) -> &Params {
        &self.params
    }
}

/// An argon2 memory block of `count` 1 KiB blocks whose memory goes back
/// to the operating system when it is dropped. glibc serves an allocation
/// from its own mapping only while it is above a threshold that rises to
/// the size of each mapped chunk freed (up to 32 MiB); a 19 MiB block
/// freed once would make the next one come from an arena that keeps it.
/// Reserving more than that cap keeps every block its own mapping; only
/// the `count` blocks written are ever resident.
fn new_block(count: usize) -> Vec<Block> {
    const ALWAYS_MAPPED: usize = (32 << 20) + (1 << 20);
    let reserve = count.max(ALWAYS_MAPPED / std::mem::size_of::<Block>());
    let mut v = Vec::with_capacity(reserve);
    v.resize(count, Block::default());
    v
}

/// Blocks unused for this long go back to the operating system (a block
/// this large is its own mapping, so freeing it lowers RSS at once); the
/// next hash allocates one again.
const IDLE_RELEASE: Duration = Duration::from_secs(2);

/// The argon2 memory blocks, shared by the hasher threads: a thread takes
/// one for a hash and puts it back, so there are never more blocks than
/// threads. The thread waiting for work frees the ones left unused.
#[derive(Default)]
struct Blocks(Mutex<Vec<(Vec<Block>, std::time::Instant)>>);

impl Blocks {
    fn take(&self) -> Vec<Block> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.pop().map(|(b, _)| b).unwrap_or_default()
    }

    fn put(&self, b: Vec<Block>) {
        if b.is_empty() {
            return;
        }
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.push((b, std::time::Instant::now()));
    }

    fn release_idle(&self) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|(_, at)| at.elapsed() < IDLE_RELEASE);
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>, params: Params, blocks: Arc<Blocks>) {
    loop {
        // One thread at a time waits on the channel; it wakes every
        // `IDLE_RELEASE` to free the blocks nobody used since.
        let job = {
            let Ok(g) = rx.lock() else { return };
            loop {
                match g.recv_timeout(IDLE_RELEASE) {
                    Ok(j) => break j,
                    Err(mpsc::RecvTimeoutError::Timeout) => blocks.release_idle(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        let mut memory = blocks.take();
        match job {
            Job::Hash { password, reply } => {
                if memory.len() < params.block_count() {
                    memory = new_block(params.block_count());
                }
                let r = hash_with(&params, &mut memory, password.as_bytes())
                    .map_err(|e| ApiError::internal(format!("argon2: {e}")));
                let _ = reply.send(r);
            }
            Job::Verify {
                password,
                phc,
                reply,
            } => {
                let r = verify_with(&params, &mut memory, password.as_bytes(), &phc);
                let _ = reply.send(r);
            }
        }
        blocks.put(memory);
    }
}

fn hash_with(params: &Params, memory: &mut [Block], password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::thread_rng());
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| e.to_string())?;
    let mut out = [0u8; OUTPUT_LEN];
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    a.hash_password_into_with_memory(
        password,
        salt_raw,
        &mut out,
        &mut memory[..params.block_count()],
    )
    .map_err(|e| e.to_string())?;
    let out = Output::new(&out).map_err(|e| e.to_string())?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        out
    ))
}

/// The hash an unknown identity's password is verified against: the
/// current parameters, a random salt and a random output. Verifying
/// against it is the same work as against a stored hash of these
/// parameters (argon2 runs in full, then the compare fails), so the
/// timing doesn't tell which identities exist; unlike hashing a random
/// password, making it costs nothing at start-up (a full argon2 run was
/// nine tenths of the instructions from exec to the first answer).
fn dummy_phc(params: &Params) -> Result<String, String> {
    use rand::RngCore;
    let salt = SaltString::generate(&mut rand::thread_rng());
    let mut out = [0u8; OUTPUT_LEN];
    rand::thread_rng().fill_bytes(&mut out);
    let out = Output::new(&out).map_err(|e| e.to_string())?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        out
    ))
}

/// (matched, parameters differ from the current ones)
fn verify_with(
    current: &Params,
    memory: &mut Vec<Block>,
    password: &[u8],
    phc: &str,
) -> (bool, bool) {
    if let Some(cost) = bcrypt_cost(phc) {
        // A PocketBase database brought over: its bcrypt hashes still
        // verify, and are replaced by argon2id at this login (stale).
        if cost > MAX_BCRYPT_COST {
            return (false, false);
        }
        let ok = bcrypt::verify(password, phc).unwrap_or(false);
        return (ok, true);
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return (false, false);
    };
    let algorithm = match parsed.algorithm.as_str() {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => Algorithm::Argon2d,
        _ => return (false, false),
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return (false, false);
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return (false, false);
    };
    if params.m_cost() > MAX_VERIFY_MEMORY_KIB {
        return (false, false);
    }
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return (false, false);
    };
    let Ok(params_out) = Params::new(
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        Some(expected.len()),
    ) else {
        return (false, false);
    };
    if memory.len() < params_out.block_count() {
        *memory = new_block(params_out.block_count());
    }
    let mut out = vec![0u8; expected.len()];
    let a = Argon2::new(algorithm, version, params_out.clone());
    if a.hash_password_into_with_memory(
        password,
        salt_raw,
        &mut out,
        &mut memory[..params_out.block_count()],
    )
    .is_err()
    {
        return (false, false);
    }
    let ok: bool = out.as_slice().ct_eq(expected.as_bytes()).into();
    // Keep the reusable buffer at the configured size.
    if memory.len() > current.block_count() {
        memory.truncate(current.block_count());
        memory.shrink_to_fit();
    }
    let stale = algorithm != Algorithm::Argon2id
        || params.m_cost() != current.m_cost()
        || params.t_cost() != current.t_cost()
        || params.p_cost() != current.p_cost();
    (ok, stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_costs_what_a_stored_hash_costs_and_never_matches() {
        let params = Params::new(19_456, 2, 1, Some(OUTPUT_LEN)).unwrap();
        let dummy = dummy_phc(&params).unwrap();
        let parsed = PasswordHash::new(&dummy).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let theirs = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (theirs.m_cost(), theirs.t_cost(), theirs.p_cost()),
            (19_456, 2, 1),
            "same parameters, so the same work as a stored hash"
        );
        assert_eq!(parsed.hash.unwrap().len(), OUTPUT_LEN);
        assert_ne!(dummy, dummy_phc(&params).unwrap(), "random salt and output");
        let mut memory = new_block(params.block_count());
        // No password matches it (and it is not stale: current parameters).
        assert_eq!(
            verify_with(&params, &mut memory, b"", &dummy),
            (false, false)
        );
        assert_eq!(
            verify_with(&params, &mut memory, b"password", &dummy),
            (false, false)
        );
    }

    #[test]
    fn making_a_hasher_runs_no_argon2() {
        // 256 MiB over 10 passes would take seconds to hash (0.8 s for
        // 128 MiB over 8 on a 2-core test machine); setting up the pool
        // must not do it.
        let started = std::time::Instant::now();
        let h = Hasher::new(256 * 1024, 10, 1, 1).unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "Hasher::new took {:?}",
            started.elapsed()
        );
        assert!(h.dummy.starts_with("$argon2id$v=19$m=262144,t=10,p=1$"));
    }

    #[test]
    fn common_passwords() {
        assert!(is_common("password"));
        assert!(is_common("Baseball"));
        assert!(is_common("12345678"));
        assert!(!is_common("password-a-123"));
        assert!(!is_common("correct horse battery staple"));
    }

    #[tokio::test]
    async fn hash_verify_and_upgrade_hint() {
        let h = Hasher::new(8192, 1, 1, 2).unwrap();
        let phc = h.hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"), "{phc}");
        assert_eq!(
            h.verify("correct horse".into(), Some(phc.clone()))
                .await
                .unwrap(),
            (true, false)
        );
        assert_eq!(
            h.verify("wrong".into(), Some(phc.clone())).await.unwrap(),
            (false, false)
        );
        // Unknown identity: never matches, even with the dummy's password unknown.
        assert_eq!(
            h.verify("correct horse".into(), None).await.unwrap(),
            (false, false)
        );
        // A hash made with other parameters verifies and asks for an upgrade.
        let h2 = Hasher::new(9216, 1, 1, 1).unwrap();
        assert_eq!(
            h2.verify("correct horse".into(), Some(phc)).await.unwrap(),
            (true, true)
        );
        // Garbage never verifies.
        assert_eq!(
            h.verify("x".into(), Some("$argon2id$nonsense".into()))
                .await
                .unwrap(),
            (false, false)
        );
    }

    #[tokio::test]
    async fn interoperates_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let h = Hasher::new(8192, 1, 1, 1).unwrap();
        let ours = h.hash("pw-123456".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"pw-123456", &parsed)
            .is_ok());
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw-123456", &SaltString::generate(&mut rand::thread_rng()))
        .unwrap()
        .to_string();
        assert_eq!(
            h.verify("pw-123456".into(), Some(theirs)).await.unwrap(),
            (true, false)
        );
    }
}
