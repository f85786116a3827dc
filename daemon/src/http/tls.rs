//! TLS for the HTTPS listener (`serve --https ADDR`): rustls with the ring
//! provider, TLS 1.3 only, HTTP/1.1 by ALPN. The certificate chain and key
//! come from PEM files (`tls_cert_file`, `tls_key_file`; the key file must
//! be private, as the database key is) and are reloaded when either file
//! changes: new connections get the new pair, open ones keep theirs. A pair
//! that fails to load is logged and the one in force stays.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The HTTPS listener's TLS configuration, reloadable.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
    /// What the files looked like when last loaded.
    seen: Mutex<Stamp>,
}

/// A file's identity and version as the file system shows it.
type Stamp = [(u64, u64, i64, i64, u64); 2];

fn stamp_of(p: &Path) -> (u64, u64, i64, i64, u64) {
    match std::fs::metadata(p) {
        Ok(m) => (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()),
        Err(_) => (0, 0, 0, 0, 0),
    }
}

/// Reads the certificate chain and key and builds the server side.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let meta = std::fs::metadata(key)
        .map_err(|e| anyhow::anyhow!("tls_key_file {}: {e}", key.display()))?;
    if let Some(why) = crate::util::loose_mode(meta.mode(), meta.uid()) {
        anyhow::bail!(
            "tls_key_file {}: has mode {:04o}: {why}; refusing to use it",
            key.display(),
            meta.mode() & 0o7777
        );
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("tls_cert_file {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("tls_cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("tls_cert_file {}: no certificate in it", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("tls_key_file {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| anyhow::anyhow!("tls_cert_file / tls_key_file: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

impl Tls {
    /// Loads the pair (an error stops the start).
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Tls>> {
        let seen = [stamp_of(cert), stamp_of(key)];
        let cfg = server_config(cert, key)?;
        Ok(Arc::new(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(cfg)),
            seen: Mutex::new(seen),
        }))
    }

    /// The configuration new connections get.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let cfg = match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        tokio_rustls::TlsAcceptor::from(cfg)
    }

    /// Loads the pair again if either file changed since the last load.
    /// Returns whether a new pair is in force.
    pub fn reload_if_changed(&self) -> bool {
        let now = [stamp_of(&self.cert), stamp_of(&self.key)];
        {
            let seen = match self.seen.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if *seen == now {
                return false;
            }
        }
        // Remember this version either way: a broken pair is reported
        // once, not at every check.
        match self.seen.lock() {
            Ok(mut g) => *g = now,
            Err(p) => *p.into_inner() = now,
        }
        match server_config(&self.cert, &self.key) {
            Ok(cfg) => {
                match self.current.write() {
                    Ok(mut g) => *g = Arc::new(cfg),
                    Err(p) => *p.into_inner() = Arc::new(cfg),
                }
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate change not loaded; the previous certificate stays in use");
                false
            }
        }
    }

    /// Checks the files every `every` for as long as the process runs.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
        }
    }
}
