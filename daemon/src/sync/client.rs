//! The device's HTTPS client to its hub (ureq over rustls, blocking: run it
//! on a blocking thread). It trusts only the CA certificates of `ca_file`
//! (pinned; the system and webpki roots are not used), refuses `http://`,
//! follows no redirects, and bounds every phase with a timeout so a stalled
//! or cut connection becomes an error the caller retries.

use std::sync::Arc;
use std::time::Duration;

/// A hub answer: status, body, Retry-After.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub retry_after: Option<u64>,
}

/// A request that got no answer (connect, TLS, timeout, cut).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NetError(pub String);

/// Largest answer read (frames are capped well below).
const MAX_ANSWER: u64 = 128 << 20;

pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

/// Reads the pinned CA certificates (PEM).
pub fn read_ca(path: &std::path::Path) -> anyhow::Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("sync.ca_file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.map_err(|e| anyhow::anyhow!("sync.ca_file {}: {e}", path.display()))?
        {
            out.push(c);
        }
    }
    if out.is_empty() {
        anyhow::bail!("sync.ca_file {}: no certificate in it", path.display());
    }
    Ok(out)
}

impl Client {
    /// A client of `hub` (`https://…`) trusting the CAs of `ca_file`;
    /// `auth`: the device credential (`<id>.<secret>`), if enrolled.
    pub fn new(
        hub: &str,
        ca_file: &std::path::Path,
        auth: Option<String>,
        connect: Duration,
    ) -> anyhow::Result<Client> {
        if !hub.starts_with("https://") {
            anyhow::bail!("the hub URL must be https:// (sync is HTTPS only): {hub}");
        }
        let roots = read_ca(ca_file)?;
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .https_only(true)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(connect))
            .timeout_resolve(Some(connect))
            .user_agent(format!("keepd/{} sync", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            agent,
            base: hub.trim_end_matches('/').to_string(),
            auth,
        })
    }

    fn finish(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, NetError> {
        let mut resp = r.map_err(|e| NetError(e.to_string()))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| NetError(e.to_string()))?;
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    /// GET `path` (with query), the whole exchange within `timeout`.
    pub fn get(&self, path: &str, timeout: Duration) -> Result<Answer, NetError> {
        let mut rb = self
            .agent
            .get(format!("{}{path}", self.base))
            .config()
            .timeout_global(Some(timeout))
            .build();
        if let Some(a) = &self.auth {
            rb = rb.header("authorization", format!("KeepdDevice {a}"));
        }
        self.finish(rb.call())
    }

    /// HEAD `path`: the status only.
    pub fn head(&self, path: &str, timeout: Duration) -> Result<u16, NetError> {
        let mut rb = self
            .agent
            .head(format!("{}{path}", self.base))
            .config()
            .timeout_global(Some(timeout))
            .build();
        if let Some(a) = &self.auth {
            rb = rb.header("authorization", format!("KeepdDevice {a}"));
        }
        Ok(self.finish(rb.call())?.status)
    }

    /// POST (or PUT) a body of `content_type`.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Answer, NetError> {
        let url = format!("{}{path}", self.base);
        let rb = match method {
            "PUT" => self.agent.put(url),
            _ => self.agent.post(url),
        };
        let mut rb = rb
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", content_type);
        if let Some(a) = &self.auth {
            rb = rb.header("authorization", format!("KeepdDevice {a}"));
        }
        self.finish(rb.send(body))
    }
}
