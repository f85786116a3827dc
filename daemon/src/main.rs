//! The `keepd` command line. Reads like a start-up script; everything else
//! lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use keepd::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "keepd",
    version,
    about = "A PocketBase-compatible backend for the device: REST API, auth and realtime over embedded SQLite."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Data directory (default ./keepd_data; created 0700).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// TOML configuration file (defaults < file < KEEPD_* env < flags).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The database key file (as `database_key_file`; refused when others
    /// may read it). Run as root, the tools read it first, then act as the
    /// data directory's owner: `sudo keepd check --database-key-file
    /// /etc/keepd/database.key` uses the key the unit's LoadCredential= reads.
    #[arg(long, value_name = "PATH")]
    database_key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API.
    Serve {
        /// Address to listen on (default 127.0.0.1:8090).
        #[arg(long)]
        http: Option<String>,
        /// Also serve HTTPS (TLS 1.3) on this address, with tls_cert_file
        /// and tls_key_file (reloaded when they change).
        #[arg(long, value_name = "ADDR")]
        https: Option<String>,
        /// Also listen on this address for the console (`/_/`) and the
        /// superuser routes, which then answer only there (e.g.
        /// 127.0.0.1:8091, reached through an SSH tunnel).
        #[arg(long, value_name = "ADDR")]
        admin_http: Option<String>,
        /// Repair loose data-dir modes (0700 dir, 0600 files) instead of refusing to start.
        #[arg(long)]
        fix_permissions: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Write a backup (encrypted with age to `backup_recipients`) into
    /// <dir>/backups; works while the daemon runs.
    Backup {
        /// Backup name (`[a-z0-9_-]+.zip`; default pb_backup_<time>.zip).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Check a data directory: modes and owners, integrity_check,
    /// foreign_key_check, config, free disk. Non-zero exit on a problem.
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Encrypt the database, change its key, or decrypt it (builds with
    /// the `sqlcipher` feature). The current key is read from where the
    /// daemon reads it (database_key_file, or the database-key credential);
    /// none: the database is plaintext. Refuses while keepd runs on DIR.
    Rekey {
        /// File holding the new key (64 hex digits: a raw key; else a
        /// passphrase); the same modes as database_key_file.
        #[arg(long, value_name = "PATH", required_unless_present = "decrypt")]
        new_key_file: Option<PathBuf>,
        /// Write the database back as plaintext.
        #[arg(long, conflicts_with = "new_key_file")]
        decrypt: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Manage superusers.
    Superuser {
        #[command(subcommand)]
        cmd: SuperuserCmd,
    },
    /// Build a keepd data dir from another server's data (PocketBase).
    Import {
        #[command(subcommand)]
        cmd: ImportCmd,
    },
    /// Cloud sync of this device with its hub.
    Sync {
        #[command(subcommand)]
        cmd: SyncCmd,
    },
    /// The external database (PostgreSQL; builds with the `postgres` feature).
    Db {
        #[command(subcommand)]
        cmd: DbCmd,
    },
}

#[derive(Subcommand)]
enum DbCmd {
    /// Connect to PostgreSQL as configured (database_url, database_ca) and
    /// check the connection and the role: TLS, SCRAM, no superuser or
    /// other privileged attribute or membership, nothing owned outside its
    /// schema, the search_path pinned. Prints each finding and the
    /// server's facts; non-zero exit unless every check passes.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Read a PocketBase 0.23+ pb_data (never changed; PocketBase must be
    /// stopped) and build a new keepd data dir (--dir, which must be empty
    /// or absent) from it: collections, records with their ids and password
    /// hashes, settings, stored files. Prints what it could not map.
    Pocketbase {
        /// PocketBase's data directory (holding data.db).
        pb_data: PathBuf,
        /// Print the report only; nothing is written to --dir.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum SyncCmd {
    /// Trade a hub's enrolment token for this device's credential (kept
    /// 0600 in sync.credential_file). Safe to run again after a failure.
    Enrol {
        /// The hub's base URL (https://…).
        #[arg(long)]
        hub: String,
        /// The single-use enrolment token a hub superuser got for this device.
        #[arg(long)]
        token: String,
        /// PEM CA certificate the hub's certificate chains to (default: sync.ca_file).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Queue depth, last push/pull, lag, rejected and conflict counts.
    Status {
        /// The whole summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
enum SuperuserCmd {
    /// Create a superuser, or set the password of an existing one.
    Upsert {
        email: String,
        password: String,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a superuser.
    Delete {
        email: String,
        #[command(flatten)]
        common: Common,
    },
    /// Turn TOTP on for a superuser (new secret and recovery codes, printed).
    Totp {
        email: String,
        #[command(flatten)]
        common: Common,
    },
}

fn load(common: &Common, mut flags: Vec<(&'static str, String)>) -> anyhow::Result<Config> {
    if let Some(d) = &common.dir {
        flags.push(("dir", d.display().to_string()));
    }
    if let Some(k) = &common.database_key_file {
        flags.push(("database_key_file", k.display().to_string()));
    }
    let file = common.config.clone().or_else(|| {
        let p = PathBuf::from("/etc/keepd/keepd.toml");
        (common.config.is_none() && std::env::var_os("KEEPD_NO_ETC").is_none() && p.exists())
            .then_some(p)
    });
    Ok(Config::load(file.as_deref(), std::env::vars(), &flags)?)
}

fn main() -> anyhow::Result<()> {
    // Before any thread starts: glibc reads its malloc settings once.
    tune_malloc();
    // Everything keepd creates is private to its user.
    set_umask_077();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            http,
            https,
            admin_http,
            fix_permissions,
            common,
        } => {
            let mut flags = Vec::new();
            if let Some(h) = http {
                flags.push(("http", h));
            }
            if let Some(h) = https {
                flags.push(("https", h));
            }
            if let Some(a) = admin_http {
                flags.push(("admin_http", a));
            }
            if fix_permissions {
                flags.push(("fix_permissions", "true".into()));
            }
            let cfg = load(&common, flags)?;
            // A PostgreSQL database_url: its checks, before any runtime (the
            // client is blocking); a refusal stops here.
            if let Some(status) = keepd::store::postgres::serve_refusal(&cfg) {
                std::process::exit(status);
            }
            keepd::logging::init(&cfg.log);
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting keepd");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(keepd::run(cfg, shutdown_signal()))
        }
        Cmd::Check { common } => {
            // A config that doesn't load is reported by `load` (non-zero).
            let cfg = load(&common, vec![])?;
            let key = cfg.database_key();
            become_owner(&cfg.dir)?;
            // Shared with a running daemon; refused during a `keepd rekey`.
            let lock = cfg
                .dir
                .is_dir()
                .then(|| keepd::store::DirLock::shared(&cfg.dir))
                .transpose();
            let problems = match (key, lock) {
                (Err(e), _) => vec![e.to_string()],
                (_, Err(e)) => vec![e.to_string()],
                (Ok(key), Ok(_lock)) => keepd::ops::check::run(&cfg.dir, key.as_ref()),
            };
            if problems.is_empty() {
                println!("ok: {} is healthy", cfg.dir.display());
                return Ok(());
            }
            for p in &problems {
                println!("problem: {p}");
            }
            std::process::exit(1);
        }
        Cmd::Backup { name, common } => {
            let cfg = load(&common, vec![])?;
            keepd::logging::init("warn");
            let enc = cfg.backup_encryption().context(
                "backups are encrypted with age: set backup_recipients (or backup_encryption = \"none\")",
            )?;
            let name = name.unwrap_or_else(|| {
                format!(
                    "pb_backup_{}.zip",
                    chrono::Utc::now().format("%Y%m%d%H%M%S")
                )
            });
            // On PostgreSQL the store's export, taken through the store;
            // SQLite's file is copied beside the daemon.
            let postgres = cfg.database_url().map_err(anyhow::Error::msg)?.is_some();
            let key = if postgres { None } else { cfg.database_key()? };
            become_owner(&cfg.dir)?;
            let src = if postgres {
                keepd::ops::backup::Source::Store(keepd::open_store(&cfg)?)
            } else {
                keepd::ops::backup::Source::File(key)
            };
            let _lock = keepd::store::DirLock::shared(&cfg.dir)?;
            let path = keepd::ops::backup::create(&cfg.dir, &name, &enc, &src)?;
            println!("{}", path.display());
            Ok(())
        }
        Cmd::Rekey {
            new_key_file,
            decrypt: _,
            common,
        } => {
            let cfg = load(&common, vec![])?;
            let current = cfg.database_key()?;
            let new = new_key_file
                .as_deref()
                .map(keepd::store::DbKey::read)
                .transpose()?;
            become_owner(&cfg.dir)?;
            let db = cfg.dir.join("data.db");
            let done = keepd::store::rekey(&cfg.dir, current.as_ref(), new.as_ref())
                .with_context(|| format!("rekey of {}", db.display()))?;
            let shown = new_key_file.unwrap_or_default();
            match done {
                keepd::store::Rekeyed::Encrypted => println!(
                    "Encrypted {}. Start keepd with this key: database_key_file = \"{}\" (or LoadCredential=database-key:{}).",
                    db.display(),
                    shown.display(),
                    shown.display()
                ),
                keepd::store::Rekeyed::KeyChanged => println!(
                    "Changed the key of {}. Start keepd with the new key ({}) where the old one was. Backups made before keep the old key.",
                    db.display(),
                    shown.display()
                ),
                keepd::store::Rekeyed::Decrypted => println!(
                    "Decrypted {}. Remove database_key_file (or the database-key credential) before starting keepd.",
                    db.display()
                ),
            }
            Ok(())
        }
        Cmd::Import {
            cmd:
                ImportCmd::Pocketbase {
                    pb_data,
                    dry_run,
                    common,
                },
        } => {
            let mut cfg = load(&common, vec![])?;
            keepd::logging::init("warn");
            cfg.preload_database_key()?;
            // As root on a (empty) data dir of the service's user: act as
            // that user, so what is built is the service's.
            become_owner(&cfg.dir)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let report = rt
                .block_on(keepd::ops::import::run(&cfg, &pb_data, dry_run))
                .context("import pocketbase")?;
            print!("{}", report.render(dry_run));
            if dry_run {
                println!("dry run: nothing was written to {}", cfg.dir.display());
            } else {
                println!(
                    "Imported {} into {}. Start it with: keepd serve --dir {}",
                    pb_data.display(),
                    cfg.dir.display(),
                    cfg.dir.display()
                );
            }
            Ok(())
        }
        Cmd::Sync { cmd } => {
            match cmd {
                SyncCmd::Enrol {
                    hub,
                    token,
                    ca_file,
                    common,
                } => {
                    let cfg = load(&common, vec![])?;
                    keepd::logging::init("warn");
                    let (device, path) =
                        keepd::sync::device::enrol(&cfg, &hub, &token, ca_file.as_deref())
                            .context("sync enrol")?;
                    println!(
                        "Enrolled as device {device}; the credential is in {}.",
                        path.display()
                    );
                    if cfg.sync.role != "device" {
                        println!(
                        "Turn sync on in keepd.toml:\n[sync]\nrole = \"device\"\nhub = \"{hub}\"\nca_file = \"{}\"",
                        ca_file
                            .as_deref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| cfg.sync.ca_file.clone())
                    );
                    }
                    Ok(())
                }
                SyncCmd::Status { json, common } => {
                    let cfg = load(&common, vec![])?;
                    keepd::logging::init("warn");
                    let key = cfg.database_key()?;
                    let db = cfg.dir.join("data.db");
                    let conn = keepd::store::open_read_only(&db, key.as_ref())
                        .with_context(|| format!("opening {}", db.display()))?;
                    let role = cfg.sync.role();
                    let v = keepd::sync::device::status_json(&conn, role)
                    .map_err(|e| anyhow::anyhow!("reading the sync state (has this keepd run since sync was added?): {e}"))?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else {
                        println!("{}", keepd::sync::device::status_line(&v));
                    }
                    Ok(())
                }
            }
        }
        Cmd::Db {
            cmd: DbCmd::Check { common },
        } => {
            let cfg = load(&common, vec![])?;
            db_check(&cfg)
        }
        Cmd::Superuser { cmd } => {
            let (email, common) = match &cmd {
                SuperuserCmd::Upsert { email, common, .. }
                | SuperuserCmd::Delete { email, common }
                | SuperuserCmd::Totp { email, common } => (email.clone(), common.clone()),
            };
            let mut cfg = load(&common, vec![])?;
            keepd::logging::init("warn");
            // The key is read while its file may be root's only.
            cfg.preload_database_key()?;
            become_owner(&cfg.dir)?;
            // Multi-threaded (one worker): PostgreSQL's blocking client may
            // then block in place (`store::postgres::store::off_runtime`).
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            match cmd {
                SuperuserCmd::Upsert { password, .. } => {
                    rt.block_on(keepd::api::superusers::upsert(&cfg, &email, &password))
                        .context("superuser upsert")?;
                    println!("Successfully saved superuser \"{email}\"!");
                }
                SuperuserCmd::Delete { .. } => {
                    rt.block_on(keepd::api::superusers::delete(&cfg, &email))
                        .context("superuser delete")?;
                    println!("Successfully deleted superuser \"{email}\"!");
                }
                SuperuserCmd::Totp { .. } => {
                    let (uri, secret, codes) = rt
                        .block_on(keepd::api::superusers::totp(&cfg, &email))
                        .context("superuser totp")?;
                    println!("TOTP is on for superuser \"{email}\".");
                    println!("Add it to an authenticator app:\n  {uri}\n  (secret {secret})");
                    println!("Recovery codes (each works once; keep them safe):");
                    for c in codes {
                        println!("  {c}");
                    }
                }
            }
            Ok(())
        }
    }
}

/// `keepd db check`: prints the report; exit status 0 only when every
/// check passes.
fn db_check(cfg: &Config) -> anyhow::Result<()> {
    let url = cfg
        .database_url()
        .map_err(anyhow::Error::msg)?
        .context("database_url is not set (nor the database-url credential): this keepd uses SQLite, which `keepd check` checks")?;
    #[cfg(feature = "postgres")]
    {
        match keepd::store::postgres::checks::run_configured(cfg, url) {
            Ok(report) => {
                print!("{}", report.render());
                if !report.passed() {
                    std::process::exit(1);
                }
                Ok(())
            }
            Err(e) => {
                println!("refused: {e}");
                std::process::exit(1);
            }
        }
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = url;
        anyhow::bail!("this keepd was built without PostgreSQL support (cargo feature `postgres`)")
    }
}

/// Run as root on a data dir owned by another user (the service's), the
/// tools act as that user from here on: what they create stays the
/// service's. Call after reading root-only files.
fn become_owner(dir: &std::path::Path) -> anyhow::Result<()> {
    use keepd::ops::privilege::{become_owner, RunAs};
    if let RunAs::Owner { uid, gid } = become_owner(dir)? {
        eprintln!(
            "keepd: acting as uid {uid} gid {gid}, the owner of {}",
            dir.display()
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: draining connections");
}

/// glibc's allocator, set for a small device (BENCHMARKS.md "Allocator
/// and caches"). By default glibc gives each thread that allocates while
/// another holds the lock an arena of its own, up to 8 per core: every
/// blocking-pool thread that ran a read kept its own heap, about a dozen
/// of them under a list load. Here: one arena per core, and no fewer than
/// 4 (with 2 on two cores the list load lost a fifth of its throughput to
/// the arena locks). `MALLOC_ARENA_MAX` in the environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let arenas = std::thread::available_parallelism()
        .map_or(MIN_MALLOC_ARENAS, |n| n.get().max(MIN_MALLOC_ARENAS));
    let arenas = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only changes an allocator parameter; it is called
    // before any other thread exists, with a constant glibc documents
    // (M_ARENA_MAX) and a positive count. A refusal (return 0) leaves
    // glibc's default, which is harmless.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// The fewest arenas glibc may create (its default: 8 per core).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MIN_MALLOC_ARENAS: usize = 4;

fn set_umask_077() {
    // std has no umask; rustix would add a dependency for one call. The
    // daemon sets explicit modes on everything it creates as well, and the
    // systemd unit sets UMask=0077.
    keepd::util::restrict_umask();
}
