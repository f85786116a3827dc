//! One typed configuration: defaults < TOML file < `KEEPD_*` environment <
//! command-line flags, validated at start. An error names the key.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub http: SocketAddr,
    /// Address to serve HTTPS on (TLS 1.3, `tls_cert_file` and
    /// `tls_key_file`); empty: no HTTPS listener.
    pub https: String,
    /// PEM certificate chain of the HTTPS listener (leaf first).
    pub tls_cert_file: String,
    /// PEM private key of the HTTPS listener (PKCS#8, SEC1 or PKCS#1).
    pub tls_key_file: String,
    /// Seconds between checks of the certificate and key files; a change
    /// is loaded for new connections without a restart.
    pub tls_reload_secs: u64,
    /// Address of the admin listener (plain HTTP, e.g. 127.0.0.1:8091);
    /// empty: none. When set, the console (`/_/…`) and every superuser
    /// surface answer only there; it serves the whole API too.
    pub admin_http: String,
    /// Data directory (database, files). Created 0700.
    pub dir: PathBuf,
    /// Most open client connections; more are answered 429 and closed.
    pub max_connections: usize,
    /// Seconds a client may take to send the request head.
    pub header_timeout_secs: u64,
    /// Seconds a client may take to send the request body.
    pub body_timeout_secs: u64,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Bytes of request bodies read whole (JSON, urlencoded, the text of
    /// forms) held in memory at once across all requests; a body that
    /// would go over is answered 429 before more of it is read. Its last
    /// eighth is kept for bodies up to 64 KiB; the rest must hold
    /// `max_body_bytes`.
    pub max_body_bytes_in_flight: u64,
    /// Most open connections from one peer address (0: no cap); more are
    /// answered 429 and closed at accept. Addresses in `trusted_proxies`
    /// are not counted (a proxy carries many clients; `max_connections`
    /// still bounds them, and rate limits see the forwarded address).
    pub max_connections_per_ip: usize,
    /// Read-only SQLite connections.
    pub readers: usize,
    /// Most password hashes computed at once (each holds `argon2_memory_kib`).
    pub max_concurrent_hashes: usize,
    /// Most thumbnails (`?thumb=`) decoded at once; each may take up to
    /// `max_thumb_bytes`.
    pub max_thumb_workers: usize,
    /// Largest image (width × height, as its header declares it, and at
    /// each step of the resize) a thumbnail is made of; larger ones are
    /// served as they are.
    pub max_thumb_pixels: u64,
    /// Memory one thumbnail may take while it is made (the decoded image
    /// at its depth, a conversion to 8 bits, the resampler's buffers; the
    /// decoder's allocations are capped there too); an image that would
    /// take more is served as it is. At most `max_thumb_workers` × this.
    pub max_thumb_bytes: u64,
    /// Argon2id memory in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id parallelism (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Longest `filter` / rule text in bytes.
    pub max_filter_len: usize,
    /// Most realtime (SSE) clients connected at once; more get 429.
    pub realtime_max_clients: usize,
    /// Most realtime clients from one IP address; more get 429.
    pub realtime_max_clients_per_ip: usize,
    /// Most subscriptions one realtime client may hold (at most 64).
    pub realtime_max_subscriptions: usize,
    /// Longest subscription topic (with its options) in bytes.
    pub realtime_max_topic_len: usize,
    /// Largest `POST /api/realtime` body in bytes.
    pub realtime_max_body_bytes: usize,
    /// Events queued for one realtime client; a client that falls this far
    /// behind is disconnected.
    pub realtime_queue: usize,
    /// Bytes queued for one realtime client; a client that falls this far
    /// behind is disconnected (a message to an empty queue is taken
    /// whatever its size).
    pub realtime_queue_bytes: usize,
    /// Bytes queued across all realtime clients; over it the client
    /// furthest behind is disconnected.
    pub realtime_max_queued_bytes: usize,
    /// Seconds between keep-alive comments on an idle event stream (0: none).
    pub realtime_keepalive_secs: u64,
    /// Seconds without an event after which a stream is closed (the SDK
    /// reconnects; PocketBase: 5 minutes).
    pub realtime_idle_timeout_secs: u64,
    /// Longest life of one event stream in seconds (PocketBase: 30 minutes).
    pub realtime_max_lifetime_secs: u64,
    /// Proxies whose forwarding headers are believed (comma-separated
    /// addresses or CIDRs, e.g. "127.0.0.1, 10.0.0.0/8"); empty: none, the
    /// TCP peer is the client.
    pub trusted_proxies: String,
    /// Failed logins for one account within `lockout_window_secs` that lock
    /// it (0: no lockout).
    pub lockout_max_failures: u32,
    pub lockout_window_secs: u64,
    /// First lockout's length; each further one doubles, up to
    /// `lockout_max_secs`.
    pub lockout_base_secs: u64,
    pub lockout_max_secs: u64,
    /// Days audit-log entries are kept (at least 1).
    pub audit_retention_days: u32,
    /// Requests kept in the in-memory request log (`GET /api/logs`; the
    /// oldest dropped; 0: none kept).
    pub request_log_entries: usize,
    /// Bytes of record-list answers kept for reuse until the data next
    /// changes (keys counted too; 0: off).
    pub list_cache_bytes: usize,
    /// Backups are encrypted with age to these recipients (comma-separated
    /// `age1…` public keys).
    pub backup_recipients: String,
    /// "age" (default: backups need `backup_recipients`) or "none"
    /// (plaintext backups, chosen explicitly).
    pub backup_encryption: String,
    /// The age identity (`AGE-SECRET-KEY-1…`) restores decrypt with: a file
    /// path; empty: `$CREDENTIALS_DIRECTORY/backup-identity` when present.
    pub backup_identity_file: String,
    /// Largest `POST /api/backups/upload` body in bytes (streamed to disk,
    /// never held in memory).
    pub max_backup_upload_bytes: u64,
    /// Bytes of uploaded files in flight at once across all record writes
    /// (spilled to `<data>/.uploads/` as they arrive; over it: 429).
    pub max_upload_bytes_in_flight: u64,
    /// Seconds between checks of the backup schedule (`backups.cron` in the
    /// settings). Each check runs the backup when the current minute
    /// matches, as PocketBase's cron ticker (`SetInterval`, 60 s); below 60
    /// a matching minute runs it more than once, which only tests want.
    pub backup_cron_tick_secs: u64,
    /// The database key (encryption at rest; builds with the `sqlcipher`
    /// feature): a file path, never the key itself; empty:
    /// `$CREDENTIALS_DIRECTORY/database-key` when present, else plaintext.
    pub database_key_file: String,
    /// The database key read ahead (`preload_database_key`): a command run
    /// as root reads it before it becomes the data dir's owner.
    #[serde(skip)]
    pub preloaded_key: Option<crate::store::DbKey>,
    /// PostgreSQL instead of SQLite (builds with the `postgres` feature; in
    /// progress: the connection and `keepd db check`, no storage yet):
    /// `postgres://ROLE:PASSWORD@HOST:PORT/DB`. Read from this file (which
    /// must then not be readable by others) or, when empty, from the
    /// systemd credential `database-url`; never from the environment or the
    /// command line, and never shown with its password. Empty: SQLite.
    pub database_url: crate::store::postgres::url::DatabaseUrl,
    /// PEM file of the CA the PostgreSQL server's certificate must chain
    /// to (TLS is required; the host name is checked too).
    pub database_ca: String,
    /// The one schema keepd's role owns and works in (the search_path is
    /// pinned to it).
    pub database_schema: String,
    /// Most connections to PostgreSQL at once.
    pub database_pool: usize,
    /// Seconds a statement may run, a lock may be waited for, and a
    /// transaction may sit idle, before PostgreSQL ends it.
    pub database_statement_timeout_secs: u64,
    /// Superusers must log in with TOTP as second step; one without TOTP is
    /// refused until `keepd superuser totp EMAIL` turns it on.
    pub superuser_totp_required: bool,
    /// Log filter: a level, or `level,target=level,…` directives, e.g. "info" or "warn,keepd=debug".
    pub log: String,
    /// Repair loose file modes at start instead of refusing to run.
    pub fix_permissions: bool,
    /// Let an OAuth2 sign-up download the provider's avatar from loopback,
    /// private and link-local addresses (refused by default, as PocketBase
    /// refuses them): for an identity provider on the local network.
    pub oauth2_private_addresses: bool,
    /// Cloud sync (`[sync]` in the file, `KEEPD_SYNC_<KEY>` in the
    /// environment).
    pub sync: SyncConfig,
}

/// `[sync]`: this keepd's part in a fleet — a hub, a device of a hub, or
/// neither (see ARCHITECTURE.md, "Sync").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// "off" (default), "hub" or "device".
    pub role: String,
    /// Device: the hub's base URL (`https://…` only).
    pub hub: String,
    /// Device: the PEM CA certificate(s) the hub's certificate must chain
    /// to (pinned; the system roots are not used).
    pub ca_file: String,
    /// Device: where the device credential is kept (0600); empty:
    /// `$CREDENTIALS_DIRECTORY/sync-credential` when present, else
    /// `<dir>/sync-credential`.
    pub credential_file: String,
    /// Device: longest wait of one pull (long poll) in seconds.
    pub poll_secs: u64,
    /// Device: most changes in one push.
    pub batch_changes: usize,
    /// Largest push body in bytes (the hub refuses larger ones with 413);
    /// also the largest pull answer a device asks for.
    pub max_batch_bytes: usize,
    /// Device: DEFLATE frames.
    pub compress: bool,
    /// Device: most changes queued for the hub; local writes to synced
    /// collections are refused beyond it.
    pub outbox_max: u64,
    /// Device: a warning is logged once the queue is this full (percent).
    pub outbox_warn_percent: u64,
    /// Device: longest pause between retries (jittered exponential backoff).
    pub retry_max_secs: u64,
    /// Device: seconds to connect to the hub (TCP + TLS).
    pub connect_timeout_secs: u64,
    /// Device: seconds a push may take as a whole, and a pull beyond its
    /// long poll, before it is abandoned and retried.
    pub request_timeout_secs: u64,
    /// Hub: the auth collection devices are records of (created at start).
    pub device_collection: String,
    /// Hub: seconds an enrolment token stays valid.
    pub enrol_ttl_secs: u64,
    /// Hub: log entries kept for pulls; a device whose cursor is older
    /// re-snapshots.
    pub log_keep: u64,
    /// Hub: sync requests per second one device may make (429 beyond).
    pub device_rate_per_sec: u32,
    /// Hub: an incoming clock more than this ahead of the hub's is not
    /// believed (the change is kept, ordered at the hub's time).
    pub max_clock_skew_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            role: "off".into(),
            hub: String::new(),
            ca_file: String::new(),
            credential_file: String::new(),
            poll_secs: 25,
            batch_changes: 500,
            max_batch_bytes: 1 << 20,
            compress: true,
            outbox_max: 1_000_000,
            outbox_warn_percent: 80,
            retry_max_secs: 60,
            connect_timeout_secs: 10,
            request_timeout_secs: 30,
            device_collection: "devices".into(),
            enrol_ttl_secs: 24 * 3600,
            log_keep: 1_000_000,
            device_rate_per_sec: 50,
            max_clock_skew_secs: 300,
        }
    }
}

/// Keys of `[sync]`; each is also read from `KEEPD_SYNC_<KEY IN UPPER CASE>`.
const SYNC_KEYS: &[&str] = &[
    "role",
    "hub",
    "ca_file",
    "credential_file",
    "poll_secs",
    "batch_changes",
    "max_batch_bytes",
    "compress",
    "outbox_max",
    "outbox_warn_percent",
    "retry_max_secs",
    "connect_timeout_secs",
    "request_timeout_secs",
    "device_collection",
    "enrol_ttl_secs",
    "log_keep",
    "device_rate_per_sec",
    "max_clock_skew_secs",
];

/// Which part this keepd plays in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRole {
    Off,
    Hub,
    Device,
}

impl SyncConfig {
    pub fn role(&self) -> SyncRole {
        match self.role.as_str() {
            "hub" => SyncRole::Hub,
            "device" => SyncRole::Device,
            _ => SyncRole::Off,
        }
    }

    /// Where the device credential is read from and written to.
    pub fn credential_path(&self, dir: &std::path::Path) -> PathBuf {
        if !self.credential_file.is_empty() {
            return PathBuf::from(&self.credential_file);
        }
        if let Some(cred) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let p = std::path::Path::new(&cred).join("sync-credential");
            if p.exists() {
                return p;
            }
        }
        dir.join("sync-credential")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Key {
                key: format!("sync.{key}"),
                message: message.into(),
            })
        };
        if !matches!(self.role.as_str(), "off" | "hub" | "device") {
            return bad("role", "must be \"off\", \"hub\" or \"device\"");
        }
        if !self.hub.is_empty() && !self.hub.starts_with("https://") {
            return bad("hub", "must be an https:// URL (sync is HTTPS only)");
        }
        if self.role() == SyncRole::Device && self.hub.is_empty() {
            return bad("hub", "a device needs the hub's https:// URL");
        }
        if self.role() == SyncRole::Device && self.ca_file.is_empty() {
            return bad(
                "ca_file",
                "a device needs the CA certificate the hub's certificate chains to",
            );
        }
        if self.poll_secs == 0 || self.poll_secs > 300 {
            return bad("poll_secs", "must be between 1 and 300");
        }
        if self.batch_changes == 0 || self.batch_changes > 100_000 {
            return bad("batch_changes", "must be between 1 and 100000");
        }
        if self.max_batch_bytes < 4096 || self.max_batch_bytes > 64 << 20 {
            return bad("max_batch_bytes", "must be between 4096 and 67108864");
        }
        if self.outbox_max == 0 {
            return bad("outbox_max", "must be at least 1");
        }
        if self.outbox_warn_percent == 0 || self.outbox_warn_percent > 100 {
            return bad("outbox_warn_percent", "must be between 1 and 100");
        }
        if self.retry_max_secs == 0 {
            return bad("retry_max_secs", "must be at least 1");
        }
        if self.connect_timeout_secs == 0 || self.request_timeout_secs == 0 {
            return bad(
                "request_timeout_secs",
                "connect_timeout_secs and request_timeout_secs must be at least 1",
            );
        }
        if !crate::schema::parse::is_name(&self.device_collection) {
            return bad("device_collection", "must be a collection name");
        }
        if self.enrol_ttl_secs == 0 {
            return bad("enrol_ttl_secs", "must be at least 1");
        }
        if self.log_keep < 10 {
            return bad("log_keep", "must be at least 10");
        }
        if self.device_rate_per_sec == 0 {
            return bad("device_rate_per_sec", "must be at least 1");
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http: SocketAddr::from(([127, 0, 0, 1], 8090)),
            https: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_reload_secs: 5,
            admin_http: String::new(),
            dir: PathBuf::from("keepd_data"),
            max_connections: 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 60,
            max_body_bytes: 32 << 20,
            max_body_bytes_in_flight: 64 << 20,
            max_connections_per_ip: 64,
            readers: 4,
            max_concurrent_hashes: 2,
            max_thumb_workers: 2,
            max_thumb_pixels: 50_000_000,
            max_thumb_bytes: 96 << 20,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_filter_len: 3500,
            realtime_max_clients: 1000,
            realtime_max_clients_per_ip: 50,
            realtime_max_subscriptions: crate::realtime::MAX_SUBSCRIPTIONS,
            realtime_max_topic_len: 512,
            realtime_max_body_bytes: 64 << 10,
            realtime_queue: 256,
            realtime_queue_bytes: 4 << 20,
            realtime_max_queued_bytes: 64 << 20,
            realtime_keepalive_secs: 25,
            realtime_idle_timeout_secs: 300,
            realtime_max_lifetime_secs: 1800,
            trusted_proxies: String::new(),
            lockout_max_failures: 10,
            lockout_window_secs: 900,
            lockout_base_secs: 60,
            lockout_max_secs: 900,
            audit_retention_days: 365,
            request_log_entries: 1000,
            list_cache_bytes: 4 << 20,
            superuser_totp_required: false,
            backup_recipients: String::new(),
            backup_encryption: "age".into(),
            backup_identity_file: String::new(),
            max_backup_upload_bytes: 4 << 30,
            max_upload_bytes_in_flight: 1 << 30,
            backup_cron_tick_secs: 60,
            database_key_file: String::new(),
            preloaded_key: None,
            database_url: Default::default(),
            database_ca: String::new(),
            database_schema: "keepd".into(),
            database_pool: 8,
            database_statement_timeout_secs: 30,
            log: "info".into(),
            fix_permissions: false,
            oauth2_private_addresses: false,
            sync: SyncConfig::default(),
        }
    }
}

/// Keys that may be set; each is also read from `KEEPD_<KEY IN UPPER CASE>`.
const KEYS: &[&str] = &[
    "http",
    "https",
    "tls_cert_file",
    "tls_key_file",
    "tls_reload_secs",
    "admin_http",
    "dir",
    "max_connections",
    "header_timeout_secs",
    "body_timeout_secs",
    "max_body_bytes",
    "max_body_bytes_in_flight",
    "max_connections_per_ip",
    "readers",
    "max_concurrent_hashes",
    "max_thumb_workers",
    "max_thumb_pixels",
    "max_thumb_bytes",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "max_filter_len",
    "realtime_max_clients",
    "realtime_max_clients_per_ip",
    "realtime_max_subscriptions",
    "realtime_max_topic_len",
    "realtime_max_body_bytes",
    "realtime_queue",
    "realtime_queue_bytes",
    "realtime_max_queued_bytes",
    "realtime_keepalive_secs",
    "realtime_idle_timeout_secs",
    "realtime_max_lifetime_secs",
    "trusted_proxies",
    "lockout_max_failures",
    "lockout_window_secs",
    "lockout_base_secs",
    "lockout_max_secs",
    "audit_retention_days",
    "request_log_entries",
    "list_cache_bytes",
    "superuser_totp_required",
    "backup_recipients",
    "backup_encryption",
    "backup_identity_file",
    "max_backup_upload_bytes",
    "max_upload_bytes_in_flight",
    "backup_cron_tick_secs",
    "database_key_file",
    "database_url",
    "database_ca",
    "database_schema",
    "database_pool",
    "database_statement_timeout_secs",
    "log",
    "fix_permissions",
    "oauth2_private_addresses",
    "sync",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

/// Parses a value from the environment or a flag: TOML syntax when it
/// parses (numbers, booleans), a plain string otherwise.
fn scalar(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

impl Config {
    /// Layers the sources. `file`: explicit path (must exist), or None.
    /// `env`: the process environment (passed in for tests). `flags`: key →
    /// raw value from the command line.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            table = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        // The URL carries a password: the environment (readable in
        // /proc/PID/environ, inherited by children) never holds it.
        let file_holds_url = table.contains_key("database_url");
        if file_holds_url {
            if let Some(path) = file {
                use std::os::unix::fs::PermissionsExt;
                let url = match table.get("database_url") {
                    Some(toml::Value::String(s)) => {
                        crate::store::postgres::url::DatabaseUrl::new(s)
                    }
                    _ => Default::default(),
                };
                let mode = std::fs::metadata(path)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if url.has_password() && mode & 0o007 != 0 {
                    return Err(ConfigError::Key {
                        key: "database_url".into(),
                        message: format!(
                            "it carries a password and {} may be read by others (mode {:o}): make the file 0600 or 0640, or give the URL as the systemd credential `database-url`",
                            path.display(),
                            mode & 0o777
                        ),
                    });
                }
            }
        }
        for (k, v) in env {
            if k == "KEEPD_DATABASE_URL" {
                return Err(ConfigError::Key {
                    key: "database_url".into(),
                    message: "not read from the environment (KEEPD_DATABASE_URL), which would carry the password: set it in the configuration file or give it as the systemd credential `database-url`".into(),
                });
            }
            if let Some(rest) = k.strip_prefix("KEEPD_SYNC_") {
                let key = rest.to_ascii_lowercase();
                if SYNC_KEYS.contains(&key.as_str()) {
                    sync_table(&mut table).insert(key, scalar(&v));
                }
            } else if let Some(rest) = k.strip_prefix("KEEPD_") {
                let key = rest.to_ascii_lowercase();
                if KEYS.contains(&key.as_str()) && key != "sync" {
                    table.insert(key, scalar(&v));
                }
            }
        }
        for (k, v) in flags {
            if *k == "database_url" {
                return Err(ConfigError::Key {
                    key: "database_url".into(),
                    message: "never taken from the command line (ps shows it to every user)".into(),
                });
            }
            match k.strip_prefix("sync.") {
                Some(key) => {
                    sync_table(&mut table).insert(key.to_string(), scalar(v));
                }
                None => {
                    table.insert(k.to_string(), scalar(v));
                }
            }
        }
        if let Some(sync) = table.get_mut("sync").and_then(toml::Value::as_table_mut) {
            for key in [
                "role",
                "hub",
                "ca_file",
                "credential_file",
                "device_collection",
            ] {
                if let Some(v) = sync.get_mut(key) {
                    if !v.is_str() {
                        *v = toml::Value::String(v.to_string());
                    }
                }
            }
            for key in sync.keys() {
                if !SYNC_KEYS.contains(&key.as_str()) {
                    return Err(ConfigError::Key {
                        key: format!("sync.{key}"),
                        message: format!(
                            "unknown key (known keys of [sync]: {})",
                            SYNC_KEYS.join(", ")
                        ),
                    });
                }
            }
        }
        // Addresses and paths are strings even when they look like numbers.
        for key in [
            "http",
            "https",
            "tls_cert_file",
            "tls_key_file",
            "admin_http",
            "dir",
            "log",
            "trusted_proxies",
            "backup_recipients",
            "backup_encryption",
            "backup_identity_file",
            "database_key_file",
            "database_ca",
            "database_schema",
        ] {
            if let Some(v) = table.get_mut(key) {
                if !v.is_str() {
                    *v = toml::Value::String(v.to_string());
                }
            }
        }
        for key in table.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(ConfigError::Key {
                    key: key.clone(),
                    message: format!("unknown key (known keys: {})", KEYS.join(", ")),
                });
            }
        }
        let cfg: Config = Config::deserialize(toml::Value::Table(table)).map_err(|e| {
            let msg = e.to_string();
            let key = SYNC_KEYS
                .iter()
                .find(|k| msg.contains(&format!("`{k}`")))
                .map(|k| format!("sync.{k}"))
                .or_else(|| {
                    KEYS.iter()
                        .find(|k| msg.contains(&format!("`{k}`")) || msg.contains(&format!("{k} ")))
                        .map(|k| k.to_string())
                })
                .unwrap_or_else(|| "?".into());
            ConfigError::Key {
                key,
                message: msg.trim().to_string(),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Key {
                key: key.into(),
                message: message.into(),
            })
        };
        if self.max_connections == 0 {
            return bad("max_connections", "must be at least 1");
        }
        if self.readers == 0 || self.readers > 64 {
            return bad("readers", "must be between 1 and 64");
        }
        if self.max_concurrent_hashes == 0 {
            return bad("max_concurrent_hashes", "must be at least 1");
        }
        if self.max_thumb_workers == 0 {
            return bad("max_thumb_workers", "must be at least 1");
        }
        if self.max_thumb_pixels == 0 {
            return bad("max_thumb_pixels", "must be at least 1");
        }
        if self.max_thumb_bytes < 1 << 20 {
            return bad("max_thumb_bytes", "must be at least 1048576");
        }
        if self.argon2_memory_kib < 8 * 1024 {
            return bad("argon2_memory_kib", "must be at least 8192 (8 MiB)");
        }
        if self.argon2_iterations == 0 {
            return bad("argon2_iterations", "must be at least 1");
        }
        if self.argon2_parallelism == 0 {
            return bad("argon2_parallelism", "must be at least 1");
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes", "must be at least 1024");
        }
        // An eighth of the budget is kept for small bodies: the rest must
        // hold the largest body.
        let in_flight = self.max_body_bytes_in_flight;
        if in_flight - in_flight / 8 < self.max_body_bytes as u64 {
            return bad(
                "max_body_bytes_in_flight",
                "must be at least 8/7 of max_body_bytes (an eighth is kept for small bodies)",
            );
        }
        if self.header_timeout_secs == 0 {
            return bad("header_timeout_secs", "must be at least 1");
        }
        if self.realtime_max_clients == 0 {
            return bad("realtime_max_clients", "must be at least 1");
        }
        if self.realtime_max_clients_per_ip == 0 {
            return bad("realtime_max_clients_per_ip", "must be at least 1");
        }
        if self.realtime_max_subscriptions == 0
            || self.realtime_max_subscriptions > crate::realtime::MAX_SUBSCRIPTIONS
        {
            return bad(
                "realtime_max_subscriptions",
                &format!(
                    "must be between 1 and {}",
                    crate::realtime::MAX_SUBSCRIPTIONS
                ),
            );
        }
        if self.realtime_max_topic_len < 16 {
            return bad("realtime_max_topic_len", "must be at least 16");
        }
        if self.realtime_max_body_bytes < 1024 {
            return bad("realtime_max_body_bytes", "must be at least 1024");
        }
        if self.realtime_queue == 0 {
            return bad("realtime_queue", "must be at least 1");
        }
        if self.realtime_queue_bytes < 1024 {
            return bad("realtime_queue_bytes", "must be at least 1024");
        }
        if self.realtime_max_queued_bytes < self.realtime_queue_bytes {
            return bad(
                "realtime_max_queued_bytes",
                "must be at least realtime_queue_bytes",
            );
        }
        if self.realtime_idle_timeout_secs == 0 {
            return bad("realtime_idle_timeout_secs", "must be at least 1");
        }
        if self.realtime_max_lifetime_secs == 0 {
            return bad("realtime_max_lifetime_secs", "must be at least 1");
        }
        if self.trusted_proxy_nets().is_none() {
            return bad(
                "trusted_proxies",
                "must be a comma-separated list of IP addresses or CIDRs",
            );
        }
        if self.lockout_window_secs == 0 || self.lockout_base_secs == 0 {
            return bad(
                "lockout_window_secs",
                "lockout_window_secs and lockout_base_secs must be at least 1",
            );
        }
        if self.lockout_max_secs < self.lockout_base_secs {
            return bad("lockout_max_secs", "must be at least lockout_base_secs");
        }
        if !matches!(self.backup_encryption.as_str(), "age" | "none") {
            return bad("backup_encryption", "must be \"age\" or \"none\"");
        }
        if let Err(e) = crate::ops::backup::parse_recipients(&self.backup_recipients) {
            return bad("backup_recipients", &format!("not an age recipient: {e}"));
        }
        if self.max_backup_upload_bytes < 1024 {
            return bad("max_backup_upload_bytes", "must be at least 1024");
        }
        if self.max_upload_bytes_in_flight < 1024 {
            return bad("max_upload_bytes_in_flight", "must be at least 1024");
        }
        if !(1..=60).contains(&self.backup_cron_tick_secs) {
            return bad("backup_cron_tick_secs", "must be between 1 and 60");
        }
        if self.list_cache_bytes > 1 << 30 {
            return bad("list_cache_bytes", "must be at most 1073741824");
        }
        if self.request_log_entries > 100_000 {
            return bad("request_log_entries", "must be at most 100000");
        }
        if self.audit_retention_days == 0 {
            return bad("audit_retention_days", "must be at least 1");
        }
        if self.dir.as_os_str().is_empty() {
            return bad("dir", "must not be empty");
        }
        if !self.https.is_empty() {
            if self.https.parse::<SocketAddr>().is_err() {
                return bad("https", "must be an address such as 0.0.0.0:8443");
            }
            if self.tls_cert_file.is_empty() || self.tls_key_file.is_empty() {
                return bad(
                    "https",
                    "HTTPS needs tls_cert_file and tls_key_file (PEM files)",
                );
            }
        }
        if !self.admin_http.is_empty() {
            match self.admin_http.parse::<SocketAddr>() {
                Err(_) => return bad("admin_http", "must be an address such as 127.0.0.1:8091"),
                Ok(a) if a == self.http && a.port() != 0 => {
                    return bad("admin_http", "must differ from `http`");
                }
                Ok(_) => {}
            }
        }
        if self.tls_reload_secs == 0 {
            return bad("tls_reload_secs", "must be at least 1");
        }
        self.sync.validate()?;
        if self.database_pool == 0 || self.database_pool > 100 {
            return bad("database_pool", "must be between 1 and 100");
        }
        if !(1..=3600).contains(&self.database_statement_timeout_secs) {
            return bad(
                "database_statement_timeout_secs",
                "must be between 1 and 3600",
            );
        }
        if !crate::store::postgres::is_schema_name(&self.database_schema) {
            return bad(
                "database_schema",
                "must be a lower-case name (a-z, 0-9, _; at most 63; not public, information_schema or pg_…)",
            );
        }
        if !self.database_url.is_empty() {
            crate::store::postgres::check_url_form(&self.database_url).map_err(|message| {
                ConfigError::Key {
                    key: "database_url".into(),
                    message,
                }
            })?;
        }
        if !self.database_key_file.is_empty() && !cfg!(feature = "sqlcipher") {
            return bad(
                "database_key_file",
                "this keepd was built without encryption support (cargo feature `sqlcipher`); use a build with it, or remove the key",
            );
        }
        Ok(())
    }
}

/// The `[sync]` table of the layered configuration, made if missing.
fn sync_table(table: &mut toml::Table) -> &mut toml::Table {
    let entry = table
        .entry("sync")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        *entry = toml::Value::Table(toml::Table::new());
    }
    match entry {
        toml::Value::Table(t) => t,
        _ => unreachable!("made a table above"),
    }
}

impl Config {
    /// The HTTPS listen address, if HTTPS is on.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.parse().ok()
    }

    /// The admin listener's address, if there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_http.parse().ok()
    }

    /// How backups are encrypted (None: age chosen but no recipients).
    pub fn backup_encryption(&self) -> Option<crate::ops::backup::Encryption> {
        use crate::ops::backup::{parse_recipients, Encryption};
        if self.backup_encryption == "none" {
            return Some(Encryption::None);
        }
        let r = parse_recipients(&self.backup_recipients).ok()?;
        (!r.is_empty()).then_some(Encryption::Age(r))
    }

    /// Where the restore identity is read from, if anywhere.
    pub fn backup_identity_path(&self) -> Option<std::path::PathBuf> {
        if !self.backup_identity_file.is_empty() {
            return Some(self.backup_identity_file.clone().into());
        }
        let cred = std::env::var_os("CREDENTIALS_DIRECTORY")?;
        let p = std::path::Path::new(&cred).join("backup-identity");
        p.exists().then_some(p)
    }

    /// Where the database key is read from, if anywhere: the file
    /// `database_key_file`, else the systemd credential `database-key`.
    pub fn database_key_path(&self) -> Option<std::path::PathBuf> {
        crate::store::key::location(&self.database_key_file)
    }

    /// The database key, read and checked (None: plaintext).
    pub fn database_key(&self) -> Result<Option<crate::store::DbKey>, crate::store::KeyError> {
        if let Some(k) = &self.preloaded_key {
            return Ok(Some(k.clone()));
        }
        self.database_key_path()
            .map(|p| crate::store::DbKey::read(&p))
            .transpose()
    }

    /// Reads the database key now and keeps it (for a command about to
    /// give up the rights to read its file).
    pub fn preload_database_key(&mut self) -> Result<(), crate::store::KeyError> {
        self.preloaded_key = self.database_key()?;
        Ok(())
    }

    /// The PostgreSQL URL, if keepd is to use PostgreSQL: `database_url`,
    /// else the systemd credential `database-url` when present.
    pub fn database_url(&self) -> Result<Option<crate::store::postgres::url::DatabaseUrl>, String> {
        use crate::store::postgres::url;
        if !self.database_url.is_empty() {
            return Ok(Some(self.database_url.clone()));
        }
        let Some(path) = url::credential_path() else {
            return Ok(None);
        };
        let u = url::DatabaseUrl::read(&path)?;
        crate::store::postgres::check_url_form(&u)
            .map_err(|e| format!("the credential {}: {e}", path.display()))?;
        Ok(Some(u))
    }

    /// `trusted_proxies` parsed (None: a malformed entry).
    pub fn trusted_proxy_nets(&self) -> Option<Vec<(std::net::IpAddr, u8)>> {
        self.trusted_proxies
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(crate::auth::limiter::parse_net)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_order() {
        let dir = std::env::temp_dir().join(format!("keepd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k.toml");
        std::fs::write(&f, "readers = 2\nmax_connections = 10\nlog = \"debug\"\n").unwrap();
        let env = vec![("KEEPD_MAX_CONNECTIONS".to_string(), "20".to_string())];
        let c = Config::load(Some(&f), env, &[("log", "warn".into())]).unwrap();
        assert_eq!(c.readers, 2);
        assert_eq!(c.max_connections, 20);
        assert_eq!(c.log, "warn");
        assert_eq!(c.http.port(), 8090);
    }

    #[test]
    fn the_sync_table_layers_and_names_its_keys() {
        let dir = std::env::temp_dir().join(format!("keepd-cfg-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k.toml");
        std::fs::write(
            &f,
            "[sync]\nrole = \"device\"\nhub = \"https://hub:8443\"\nca_file = \"/ca.pem\"\npoll_secs = 10\n",
        )
        .unwrap();
        let env = vec![("KEEPD_SYNC_POLL_SECS".to_string(), "20".to_string())];
        let c = Config::load(Some(&f), env, &[]).unwrap();
        assert_eq!(c.sync.role(), SyncRole::Device);
        assert_eq!(c.sync.poll_secs, 20);
        assert_eq!(c.sync.hub, "https://hub:8443");
        let bad = |env: Vec<(&str, &str)>| {
            let env = env.into_iter().map(|(k, v)| (k.to_string(), v.to_string()));
            Config::load(None, env, &[]).unwrap_err().to_string()
        };
        let e = bad(vec![("KEEPD_SYNC_ROLE", "device")]);
        assert!(e.contains("`sync.hub`"), "{e}");
        let e = bad(vec![
            ("KEEPD_SYNC_ROLE", "hub"),
            ("KEEPD_SYNC_HUB", "http://x"),
        ]);
        assert!(e.contains("`sync.hub`") && e.contains("https"), "{e}");
        let e = bad(vec![("KEEPD_SYNC_OUTBOX_MAX", "0")]);
        assert!(e.contains("`sync.outbox_max`"), "{e}");
        let e = bad(vec![("KEEPD_HTTPS", "127.0.0.1:8443")]);
        assert!(e.contains("`https`") && e.contains("tls_cert_file"), "{e}");
        std::fs::write(&f, "[sync]\nrol = \"hub\"\n").unwrap();
        let e = Config::load(Some(&f), Vec::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sync.rol`"), "{e}");
    }

    #[test]
    fn the_database_url_comes_only_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("keepd-cfg-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let e = Config::load(
            None,
            env("KEEPD_DATABASE_URL", "postgres://k:envpw@db/app"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`database_url`") && e.contains("environment"),
            "{e}"
        );
        assert!(!e.contains("envpw"), "{e}");
        let e = Config::load(
            None,
            Vec::new(),
            &[("database_url", "postgres://k:p@h/d".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("command line") && !e.contains("k:p@"), "{e}");
        let f = dir.join("k.toml");
        std::fs::write(&f, "database_url = \"postgres://k:filepw@db/app\"\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::load(Some(&f), Vec::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("read by others") && !e.contains("filepw"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let built_with = cfg!(feature = "postgres");
        match Config::load(Some(&f), Vec::new(), &[]) {
            Ok(c) => {
                assert!(built_with);
                assert_eq!(c.database_schema, "keepd");
                assert_eq!(c.database_pool, 8);
                let shown = format!("{c:?}");
                assert!(
                    !shown.contains("filepw") && shown.contains("k:***@db"),
                    "{shown}"
                );
            }
            Err(e) => {
                assert!(!built_with, "{e}");
                assert!(e.to_string().contains("`postgres`"), "{e}");
            }
        }
        // Without a password the file's mode does not matter.
        std::fs::write(
            &f,
            "database_url = \"postgres://k@%2Frun%2Fpostgresql/app?sslmode=disable\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = Config::load(Some(&f), Vec::new(), &[]);
        assert_eq!(r.is_ok(), cfg!(feature = "postgres"), "{r:?}");
        for (k, v) in [
            ("KEEPD_DATABASE_SCHEMA", "public"),
            ("KEEPD_DATABASE_SCHEMA", "Bad"),
            ("KEEPD_DATABASE_POOL", "0"),
            ("KEEPD_DATABASE_STATEMENT_TIMEOUT_SECS", "0"),
        ] {
            let key = k.trim_start_matches("KEEPD_").to_ascii_lowercase();
            let e = Config::load(None, env(k, v), &[]).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{e}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let env = vec![("KEEPD_READERS".to_string(), "0".to_string())];
        let e = Config::load(None, env, &[]).unwrap_err().to_string();
        assert!(e.contains("`readers`"), "{e}");
        let env = vec![("KEEPD_MAX_CONNECTIONS".to_string(), "lots".to_string())];
        let e = Config::load(None, env, &[]).unwrap_err().to_string();
        assert!(e.contains("max_connections"), "{e}");
        let e = Config::load(None, Vec::new(), &[("http", "nonsense".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("http"), "{e}");
    }
}
