//! The connection to PostgreSQL, as the security review asks.
//!
//! - TLS is required, with libpq's `verify-full` semantics: the server's
//!   chain is checked against `database_ca` (only that CA; no system roots)
//!   and its certificate must name the host of the URL (a DNS name or an IP
//!   address). rustls with the ring provider.
//! - Over TLS, authentication is SCRAM with channel binding
//!   (SCRAM-SHA-256-PLUS, `channel_binding=require`): a server that lets the
//!   role in without a password (`trust`), or asks for it in clear or as
//!   md5, is refused by the client, as is a man in the middle holding
//!   another certificate.
//! - Plaintext only when the URL says `sslmode=disable` explicitly and every
//!   host is loopback (127.0.0.0/8, ::1, `localhost`) or a Unix socket
//!   directory. Any other `sslmode`, `channel_binding` or TLS parameter is
//!   refused at start, naming the parameter (never the URL's password).
//! - Each session is pinned: `search_path` to the one schema,
//!   `statement_timeout`, `lock_timeout` and
//!   `idle_in_transaction_session_timeout` from
//!   `database_statement_timeout_secs`, sent in the start-up packet (the
//!   URL's `options` parameter is refused: keepd sets them).

use super::url::DatabaseUrl;
use postgres::config::{ChannelBinding, Host, SslMode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Seconds to reach the server (TCP, TLS and authentication).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why PostgreSQL could not be used: one line, never holding the password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PgError(pub String);

/// What the connection needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub url: DatabaseUrl,
    /// `database_ca` (None: not set).
    pub ca: Option<PathBuf>,
    pub schema: String,
    pub pool: usize,
    pub statement_timeout: Duration,
}

impl Settings {
    pub fn from_config(cfg: &crate::config::Config, url: DatabaseUrl) -> Settings {
        Settings {
            url,
            ca: (!cfg.database_ca.is_empty()).then(|| PathBuf::from(&cfg.database_ca)),
            schema: cfg.database_schema.clone(),
            pool: cfg.database_pool,
            statement_timeout: Duration::from_secs(cfg.database_statement_timeout_secs),
        }
    }
}

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS, certificate chain and host name verified, SCRAM with channel
    /// binding.
    Tls,
    /// Plaintext to a loopback host or a Unix socket (`sslmode=disable`).
    LoopbackPlaintext,
}

/// A checked connection target: connecting needs nothing more.
pub struct Target {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pub transport: Transport,
    pub role: String,
    pub schema: String,
    pub statement_timeout: Duration,
    /// The URL without its password, for messages.
    pub shown: String,
}

/// The parameters keepd decides itself, taken out of the URL's query.
struct Taken {
    rest: Zeroizing<String>,
    sslmode: Option<String>,
    channel_binding: Option<String>,
}

const LIBPQ_SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

fn take_params(url: &str) -> Result<Taken, PgError> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut channel_binding = None;
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "sslmode" => sslmode = Some(v.to_string()),
            "channel_binding" => channel_binding = Some(v.to_string()),
            "sslrootcert" => {
                return Err(PgError("database_url: sslrootcert is not taken; set database_ca to the CA's PEM file".into()))
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslnegotiation" | "sslcrl" | "sslsni" => {
                return Err(PgError(format!(
                    "database_url: {k} is not supported (keepd authenticates with SCRAM over TLS verified against database_ca)"
                )))
            }
            "options" => {
                return Err(PgError("database_url: options is not taken; keepd sets the session's search_path and timeouts itself (database_schema, database_statement_timeout_secs)".into()))
            }
            _ => kept.push(kv),
        }
    }
    let mut rest = Zeroizing::new(base.to_string());
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok(Taken {
        rest,
        sslmode,
        channel_binding,
    })
}

/// Whether a host is this machine: a Unix socket directory, `localhost`,
/// or a loopback address.
fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Tcp(n) => n.clone(),
        Host::Unix(p) => p.display().to_string(),
    }
}

/// Checks the URL and the TLS settings against keepd's policy and builds
/// the target. Nothing is sent to the server.
pub fn prepare(s: &Settings) -> Result<Target, PgError> {
    if !super::is_schema_name(&s.schema) {
        return Err(PgError(
            "database_schema: not a schema name keepd takes".into(),
        ));
    }
    super::check_url_form(&s.url).map_err(|e| PgError(format!("database_url: {e}")))?;
    let taken = take_params(s.url.expose())?;
    let mut config: postgres::Config = taken.rest.parse().map_err(|e| {
        PgError(format!(
            "database_url is not a PostgreSQL URL keepd can use ({e})"
        ))
    })?;
    let role = config.get_user().map(str::to_string).ok_or_else(|| {
        PgError("database_url names no role (postgres://ROLE:PASSWORD@HOST:PORT/DATABASE)".into())
    })?;
    if config.get_hosts().is_empty() {
        return Err(PgError(
            "database_url names no host (postgres://ROLE:PASSWORD@HOST:PORT/DATABASE)".into(),
        ));
    }
    let transport = match taken.sslmode.as_deref() {
        None | Some("verify-full") => Transport::Tls,
        Some("disable") => {
            let remote: Vec<String> = config
                .get_hosts()
                .iter()
                .filter(|h| !is_local(h))
                .map(host_text)
                .chain(
                    config
                        .get_hostaddrs()
                        .iter()
                        .filter(|a| !a.is_loopback())
                        .map(|a| a.to_string()),
                )
                .collect();
            if !remote.is_empty() {
                return Err(PgError(format!(
                    "database_url: sslmode=disable is taken only for a loopback host or a Unix socket directory, and {} is not one; remove sslmode (TLS, verified against database_ca)",
                    remote.join(", ")
                )));
            }
            Transport::LoopbackPlaintext
        }
        Some(other) if LIBPQ_SSLMODES.contains(&other) => {
            return Err(PgError(format!(
                "database_url: sslmode={other} is not taken; keepd always verifies the server's certificate against database_ca and its host name (verify-full, the default: leave sslmode out), or uses plaintext to a loopback host with sslmode=disable"
            )))
        }
        Some(_) => return Err(PgError("database_url: sslmode has an unknown value".into())),
    };
    match (transport, taken.channel_binding.as_deref()) {
        (Transport::Tls, None | Some("require")) => {
            config.channel_binding(ChannelBinding::Require);
        }
        (Transport::Tls, Some(_)) => {
            return Err(PgError("database_url: over TLS keepd authenticates with SCRAM and channel binding only (channel_binding=require, the default: leave it out)".into()))
        }
        (Transport::LoopbackPlaintext, None | Some("disable")) => {
            config.channel_binding(ChannelBinding::Disable);
        }
        (Transport::LoopbackPlaintext, Some(_)) => {
            return Err(PgError(
                "database_url: channel binding needs TLS; with sslmode=disable leave channel_binding out"
                    .into(),
            ))
        }
    }
    let tls = match transport {
        Transport::LoopbackPlaintext => {
            config.ssl_mode(SslMode::Disable);
            None
        }
        Transport::Tls => {
            if let Some(h) = config
                .get_hosts()
                .iter()
                .find(|h| matches!(h, Host::Unix(_)))
            {
                return Err(PgError(format!(
                    "database_url: {} is a Unix socket directory, which is reached without TLS: add sslmode=disable",
                    host_text(h)
                )));
            }
            config.ssl_mode(SslMode::Require);
            Some(tls_connector(s.ca.as_deref())?)
        }
    };
    let ms = s.statement_timeout.as_millis();
    config.options(&format!(
        "-c search_path={schema} -c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}",
        schema = s.schema
    ));
    config.application_name("keepd");
    config.connect_timeout(CONNECT_TIMEOUT);
    Ok(Target {
        config,
        tls,
        transport,
        role,
        schema: s.schema.clone(),
        statement_timeout: s.statement_timeout,
        shown: s.url.redacted(),
    })
}

/// rustls trusting only the CA(s) of `database_ca`; rustls' verifier checks
/// the chain and that the certificate names the host connected to.
fn tls_connector(
    ca: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    let ca = ca.ok_or_else(|| {
        PgError("database_ca is not set: TLS to PostgreSQL checks the server's certificate against this CA (a PEM file); set it (or, for a loopback server only, add sslmode=disable to database_url)".into())
    })?;
    let bad = |e: &dyn std::fmt::Display| PgError(format!("database_ca {}: {e}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl Target {
    /// One new session, authenticated and pinned.
    pub fn connect(&self) -> Result<postgres::Client, PgError> {
        let done = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        };
        done.map_err(|e| {
            let text = describe(&e);
            let mut msg = format!("connecting to PostgreSQL ({}) failed: {text}", self.shown);
            if text.contains("channel binding") {
                msg.push_str(" (the server let the role in without SCRAM-SHA-256 over TLS: pg_hba.conf must say `hostssl … scram-sha-256` for it, and its password be stored as SCRAM)");
            } else if text.contains("invalid peer certificate") {
                msg.push_str(" (the server's certificate must chain to database_ca and name the host of database_url)");
            }
            PgError(msg)
        })
    }
}

/// An error of the client in one line: the server's message, or the
/// client's with its causes (a TLS handshake's reason).
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, ca: Option<&str>) -> Settings {
        Settings {
            url: DatabaseUrl::new(url),
            ca: ca.map(PathBuf::from),
            schema: "keepd".into(),
            pool: 2,
            statement_timeout: Duration::from_secs(30),
        }
    }

    fn refused(url: &str) -> String {
        match prepare(&settings(url, None)) {
            Ok(_) => panic!("{url} was taken"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn plaintext_only_to_this_machine_and_only_when_asked() {
        for url in [
            "postgres://k:pw@127.0.0.1:5432/app?sslmode=disable",
            "postgres://k:pw@localhost/app?sslmode=disable",
            "postgres://k:pw@[::1]:5432/app?sslmode=disable",
            "postgres://k@%2Frun%2Fpostgresql/app?sslmode=disable",
        ] {
            let t = prepare(&settings(url, None)).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(t.transport, Transport::LoopbackPlaintext, "{url}");
        }
        let e = refused("postgres://k:pw@db.example/app?sslmode=disable");
        assert!(
            e.contains("sslmode=disable") && e.contains("db.example"),
            "{e}"
        );
        let e = refused("postgres://k:pw@10.0.0.5/app?sslmode=disable");
        assert!(e.contains("10.0.0.5"), "{e}");
        let e = refused("postgres://k:pw@localhost/app?sslmode=disable&hostaddr=10.0.0.5");
        assert!(e.contains("10.0.0.5"), "{e}");
        // TLS is the default: without database_ca, nothing to verify against.
        let e = refused("postgres://k:pw@127.0.0.1/app");
        assert!(e.contains("database_ca"), "{e}");
        for mode in ["require", "verify-ca", "prefer", "allow"] {
            let e = refused(&format!("postgres://k:pw@db/app?sslmode={mode}"));
            assert!(e.contains(&format!("sslmode={mode}")), "{e}");
        }
        let e = refused("postgres://k:pw@db/app?sslmode=pw-lookalike");
        assert!(!e.contains("lookalike"), "{e}");
        let e = refused("postgres://k:pw@db/app?channel_binding=disable");
        assert!(e.contains("channel binding"), "{e}");
        let e = refused("postgres://k:pw@db/app?options=-c%20search_path%3Dpublic");
        assert!(e.contains("options"), "{e}");
        let e = refused("postgres://k:pw@db/app?sslrootcert=/x.pem");
        assert!(e.contains("database_ca"), "{e}");
        let e = refused("postgres://k@%2Frun%2Fpostgresql/app");
        assert!(e.contains("Unix socket"), "{e}");
        let e = refused("postgres://db/app?sslmode=disable");
        assert!(e.contains("no role"), "{e}");
        for e in [
            refused("postgres://k:secretpw@db.example/app?sslmode=disable"),
            refused("postgres://k:secretpw@db.example:notaport/app"),
        ] {
            assert!(!e.contains("secretpw"), "{e}");
        }
    }
}
