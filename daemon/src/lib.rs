//! keepd: a PocketBase-compatible backend for the device.
//!
//! Start reading at `run` (what `keepd serve` does), then `api::routes` for
//! the route table, then `records` for the heart of it: what a record
//! write and read mean, whoever asks.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

// A panic while serving a request must unwind to the server's guard (it is
// answered 500 and the daemon goes on; ARCHITECTURE "A panic is one
// request's"): a build that aborts on panic would let one request stop it.
#[cfg(not(panic = "unwind"))]
compile_error!("keepd must be built with panic = \"unwind\" (see Cargo.toml [profile.release])");

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod files;
pub mod filter;
pub mod http;
pub mod logging;
pub mod ops;
pub mod realtime;
pub mod records;
pub mod rules;
pub mod schema;
pub mod settings;
pub mod store;
pub mod sync;
pub mod util;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Creates the data dir (0700) if missing, then checks every path in it
/// (modes, owners, no links). With `fix`, repairs modes first.
pub fn prepare_data_dir(dir: &Path, fix: bool) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    if fix {
        store::fix_modes(dir)?;
    }
    let started = std::time::Instant::now();
    let problems = store::check_modes(dir);
    tracing::debug!(took = ?started.elapsed(), "data directory checked");
    if !problems.is_empty() {
        const SHOWN: usize = 20;
        let mut list: Vec<String> = problems
            .iter()
            .take(SHOWN)
            .map(|p| format!("  - {p}"))
            .collect();
        if problems.len() > SHOWN {
            list.push(format!("  … and {} more", problems.len() - SHOWN));
        }
        let mut fixes = Vec::new();
        if problems.iter().any(|p| p.fault == store::ModeFault::Loose) {
            fixes
                .push("`keepd serve --fix-permissions` sets 0700 on directories and 0600 on files");
        }
        if problems.iter().any(|p| p.fault == store::ModeFault::Owner) {
            fixes.push("ownership must be fixed by hand (chown)");
        }
        if problems.iter().any(|p| p.fault == store::ModeFault::Kind) {
            fixes.push("symbolic links and special files must be replaced or removed by hand: keepd neither follows nor repairs them");
        }
        anyhow::bail!(
            "refusing to start: the data directory is not private:\n{}\n({})",
            list.join("\n"),
            fixes.join("; ")
        );
    }
    Ok(())
}

/// Opens the store (the daemon and command-line tools such as superuser
/// upsert): data dir checked, database key read, migrations run.
pub fn open_store(cfg: &config::Config) -> anyhow::Result<Arc<store::Store>> {
    #[cfg(feature = "postgres")]
    if let Some(url) = cfg.database_url().map_err(anyhow::Error::msg)? {
        prepare_data_dir(&cfg.dir, cfg.fix_permissions)?;
        tracing::info!(schema = %cfg.database_schema, "storing in PostgreSQL");
        return store::postgres::open_store(
            cfg,
            url,
            &store::StoreOptions {
                readers: cfg.readers,
                ..Default::default()
            },
        );
    }
    open_sqlite_store(cfg)
}

/// Opens the SQLite store of `cfg`'s data dir, whatever `database_url`
/// says (`keepd import --dry-run` builds in a scratch SQLite store).
pub fn open_sqlite_store(cfg: &config::Config) -> anyhow::Result<Arc<store::Store>> {
    prepare_data_dir(&cfg.dir, cfg.fix_permissions)?;
    let key = cfg.database_key()?;
    if let Some(k) = &key {
        tracing::info!(
            raw = k.is_raw(),
            "the database is encrypted (key from {})",
            cfg.database_key_path().unwrap_or_default().display()
        );
        if !k.is_raw() {
            tracing::warn!("the database key is a passphrase: every new connection derives the key from it (slow on a small device); 64 hex digits are used as a raw key without that cost");
        }
    }
    store::Store::open(
        &cfg.dir,
        &store::StoreOptions {
            readers: cfg.readers,
            key,
            ..Default::default()
        },
    )
}

/// `keepd serve`: open the store, bind, serve until `shutdown`.
pub async fn run(cfg: config::Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    tracing::info!(dir = %cfg.dir.display(), "opening data directory");
    let restored = ops::backup::apply_pending(&cfg.dir, |export| store::load_export(&cfg, export))
        .map_err(|e| anyhow::anyhow!("applying a restore: {e}"))?;
    let store = open_store(&cfg)?;
    ops::backup::clean_temporary(&cfg.dir);
    files::Uploads::clear_leftovers(&cfg.dir)
        .map_err(|e| anyhow::anyhow!("clearing {}/.uploads: {e}", cfg.dir.display()))?;
    // Files a crash left without a committed record (stored before a
    // COMMIT that never came, or not yet removed after a delete).
    let started = std::time::Instant::now();
    match files::sweep::sweep(&store, &cfg.dir) {
        Ok(s) if s != files::sweep::Swept::default() => tracing::warn!(
            records = s.records,
            files = s.files,
            took = ?started.elapsed(),
            "removed stored files no committed record names (left by a crash)"
        ),
        Ok(_) => tracing::debug!(took = ?started.elapsed(), "storage swept"),
        Err(e) => tracing::warn!(error = %e, "sweeping storage for files without a record failed"),
    }
    if let Some(note) = restored {
        tracing::warn!("restored from a backup (the replaced files are in .pre-restore/)");
        let n: serde_json::Value = serde_json::from_str(&note).unwrap_or_default();
        let entry = store::audit::Entry {
            action: "backup.restore",
            actor: n["actor"].as_str().unwrap_or_default().to_string(),
            ip: n["ip"].as_str().unwrap_or_default().to_string(),
            target: format!("backups/{}", n["key"].as_str().unwrap_or_default()),
            diff: serde_json::json!({}),
        };
        store
            .write(move |c| store::audit::append(c, &entry))
            .await
            .map_err(|e| anyhow::anyhow!("audit of the restore: {e}"))?;
    }
    // Socket activation (systemd's keepd.socket, LISTEN_FDS): the service
    // manager's socket, bound even below port 1024 without capabilities.
    let passed = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|e| anyhow::anyhow!("the socket passed by the service manager: {e}"))?;
    let activated = passed.is_some();
    let listener = match passed {
        Some(l) => {
            l.set_nonblocking(true)?;
            tracing::info!("using the socket passed by the service manager (socket activation)");
            tokio::net::TcpListener::from_std(l)?
        }
        None => tokio::net::TcpListener::bind(cfg.http)
            .await
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", cfg.http))?,
    };
    let addr = listener.local_addr()?;
    if !addr.ip().to_canonical().is_loopback() {
        // Plain HTTP beyond loopback: everything is readable on the way,
        // passwords and tokens included.
        let from = if activated {
            "the socket the service manager passed (ListenStream= in keepd.socket)"
        } else {
            "the `http` setting"
        };
        tracing::warn!(
            %addr,
            "PLAINTEXT HTTP BEYOND LOOPBACK: keepd listens on {addr} ({from}) without TLS: passwords, tokens and records cross the network readable by anyone on the way; listen on 127.0.0.1 behind a TLS reverse proxy or serve HTTPS itself (`https`, with a certificate; README)"
        );
    }
    // HTTPS (rustls, TLS 1.3), its certificate reloaded when the files change.
    let https = match cfg.https_addr() {
        Some(a) => {
            let tls = http::tls::Tls::load(
                std::path::Path::new(&cfg.tls_cert_file),
                std::path::Path::new(&cfg.tls_key_file),
            )?;
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("binding {a} (https): {e}"))?;
            tokio::spawn(tls.clone().watch(Duration::from_secs(cfg.tls_reload_secs)));
            Some((l, tls))
        }
        None => None,
    };
    // The admin listener: bound by keepd itself, also when the API socket
    // comes from the service manager (socket activation passes one socket).
    let admin = match cfg.admin_addr() {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("binding {a} (admin_http): {e}"))?;
            let bound = l.local_addr()?;
            if !bound.ip().to_canonical().is_loopback() {
                tracing::warn!(
                    addr = %bound,
                    "the admin listener (admin_http) is plain HTTP beyond loopback: superuser passwords and tokens cross the network readable; bind it to 127.0.0.1 and reach it through an SSH tunnel (README)"
                );
            }
            Some(l)
        }
        None => None,
    };
    let app = app::App::new(cfg, store.clone()).await?;
    // Cloud sync: the capture is registered before the first request.
    if let Some(s) = sync::start(&app).await? {
        let _ = app.sync.set(s);
    }
    // What other processes on the database change (PostgreSQL).
    app.follow_marks();
    // Audit-log retention: pruned at start and daily.
    {
        let app = app.clone();
        tokio::spawn(async move {
            let days = app.config.audit_retention_days;
            loop {
                let pruned = app.store.write(move |c| store::audit::prune(c, days)).await;
                match pruned {
                    Ok(n) if n > 0 => tracing::info!(entries = n, days, "audit log pruned"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "audit log pruning failed"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)).await;
            }
        });
    }
    // Scheduled backups (`backups.cron` in the settings).
    tokio::spawn(ops::schedule::run(app.clone()));
    // A daily integrity check that shouts when the database is damaged.
    {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(24 * 3600)).await;
                let r = store.quick_check().await;
                match r {
                    Ok(s) if s == "ok" => tracing::info!("daily integrity check: ok"),
                    Ok(s) => {
                        tracing::error!(result = %s, "DATABASE CORRUPTION found by the daily integrity check: restore from a backup (keepd check for details)")
                    }
                    Err(e) => tracing::error!(error = %e, "daily integrity check failed to run"),
                }
            }
        });
    }
    tracing::info!(%addr, "keepd is serving");
    if let Some((l, _)) = &https {
        let a = l.local_addr()?;
        tracing::info!(addr = %a, "keepd is serving HTTPS");
        println!("keepd listening on https://{a}");
    }
    if let Some(l) = &admin {
        let a = l.local_addr()?;
        tracing::info!(addr = %a, "keepd is serving the console and superuser routes (admin listener)");
        println!("keepd admin listening on http://{a}");
    }
    // Tests and supervisors read this line to learn the bound port.
    println!("keepd listening on http://{addr}");
    ops::notify::ready(&format!("serving on {addr}"));
    // Storage health in STATUS= and the journal, and the watchdog pings.
    let monitor = tokio::spawn(ops::notify::monitor(
        store.clone(),
        app.config.dir.clone(),
        addr.to_string(),
        ops::notify::watchdog_interval(),
    ));
    let shutdown = async move {
        shutdown.await;
        ops::notify::stopping();
    };
    let limits = http::Limits {
        max_connections: app.config.max_connections,
        header_timeout: Duration::from_secs(app.config.header_timeout_secs.max(1)),
        body_timeout: Duration::from_secs(app.config.body_timeout_secs),
        drain: Duration::from_secs(10),
        max_body_bytes_in_flight: app.config.max_body_bytes_in_flight,
        max_connections_per_ip: app.config.max_connections_per_ip,
        per_ip_exempt: app.trusted.clone(),
    };
    // The server gets keepd's routes and its per-request decisions
    // (`impl http::Site for App`) from here: it imports neither.
    http::serve(
        listener,
        https,
        admin,
        app,
        api::routes::table(),
        limits,
        shutdown,
    )
    .await?;
    monitor.abort();
    // Requests drained: the WAL goes into data.db, so that the stopped
    // data dir's data.db is complete by itself (a copy of it alone, a
    // tool that ignores the -wal file).
    match tokio::time::timeout(Duration::from_secs(8), store.close()).await {
        Ok(Ok(())) => tracing::info!("database checkpointed: data.db holds every write"),
        Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint at stop failed: data.db-wal still holds recent writes (SQLite applies it at the next open)"),
        Err(_) => tracing::warn!("checkpoint at stop timed out: data.db-wal still holds recent writes (SQLite applies it at the next open)"),
    }
    tracing::info!("stopped");
    Ok(())
}
