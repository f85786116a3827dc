//! A real PostgreSQL for the `postgres` feature's tests: Debian's server
//! (`/usr/lib/postgresql/<version>/bin`, apt package `postgresql`) in a
//! private temporary directory on an ephemeral loopback port, with TLS on
//! (a test CA and a server certificate for `localhost` only, made with
//! openssl) and the `pg_hba.conf` lines a test gives. initdb refuses to
//! run as root: as root the cluster is the `postgres` user's (`runuser`).
//! Stopped (immediate) and removed when dropped.

use super::{missing_prerequisite, test_ca, test_leaf};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

pub struct PgCluster {
    /// The cluster's private directory (data, socket, certificates, log).
    pub root: PathBuf,
    pub port: u16,
    /// The CA the server's certificate is signed by.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server shows.
    pub other_ca: PathBuf,
    bin: PathBuf,
    /// Some((uid, gid)) of `postgres` when the tests run as root.
    owner: Option<(u32, u32)>,
}

/// The newest PostgreSQL server binaries installed (KEEPD_PG_BIN overrides).
fn pg_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEEPD_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PgCluster {
    /// Starts a cluster whose pg_hba.conf is `hba` (after a line letting
    /// the superuser `postgres` in over the Unix socket). None: no
    /// PostgreSQL here (a failure under `strict`).
    pub fn start(hba: &str) -> Option<PgCluster> {
        let Some(bin) = pg_bin() else {
            missing_prerequisite(
                "no PostgreSQL server in /usr/lib/postgresql",
                "apt-get install postgresql, or ./dev.sh deps",
            );
            return None;
        };
        let owner = if rustix::process::geteuid().is_root() {
            match user_ids("postgres") {
                Some(ids) => Some(ids),
                None => {
                    missing_prerequisite(
                        "running as root and there is no postgres user for initdb",
                        "apt-get install postgresql",
                    );
                    return None;
                }
            }
        } else {
            None
        };
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "keepd-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("cluster dir");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        test_ca(&root, "ca");
        test_ca(&root, "other-ca");
        test_leaf(&root, "ca", "server", "DNS:localhost");
        if let Some((uid, gid)) = owner {
            for entry in std::fs::read_dir(&root).expect("list").flatten() {
                std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).expect("chown");
            }
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).expect("chown");
        }
        let port = free_port();
        let c = PgCluster {
            ca: root.join("ca.pem"),
            other_ca: root.join("other-ca.pem"),
            root,
            port,
            bin,
            owner,
        };
        let data = c.root.join("data");
        let out = c.run(
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=reject",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.status.success(), "initdb: {}", text(&out));
        let hba_text = format!("local all postgres trust\n{hba}\n");
        std::fs::write(data.join("pg_hba.conf"), hba_text).expect("pg_hba.conf");
        let opts = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} \
             -c ssl=on -c ssl_cert_file={root}/server.pem -c ssl_key_file={root}/server.key \
             -c fsync=off -c max_connections=30",
            root = c.root.display()
        );
        let log = c.root.join("server.log");
        let out = c.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-w",
                "-t",
                "60",
                "-l",
                log.to_str().expect("utf-8 path"),
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(c)
    }

    /// Runs one of the server's programs as the cluster's owner.
    fn run(&self, prog: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(prog);
        let mut cmd = match self.owner {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(&self.root)
            .env_remove("PGPASSWORD")
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e}"))
    }

    /// Runs SQL as the superuser over the Unix socket (stops at the first
    /// error, which fails the test).
    pub fn psql(&self, db: &str, sql: &str) {
        let out = self.psql_as("postgres", db, sql);
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
    }

    /// Runs SQL as `role` (let in by `trust` for the socket, or by the
    /// test's `pg_hba.conf`) and returns psql's output: unaligned rows,
    /// `|` between columns, or the error.
    pub fn psql_as(&self, role: &str, db: &str, sql: &str) -> Output {
        let root = self.root.to_str().expect("utf-8 path").to_string();
        let port = self.port.to_string();
        self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &root,
                "-p",
                &port,
                "-U",
                role,
                "-d",
                db,
                "-c",
                sql,
            ],
        )
    }

    /// The rows of a query run as the superuser, one line each.
    pub fn query(&self, db: &str, sql: &str) -> String {
        let out = self.psql_as("postgres", db, sql);
        assert!(out.status.success(), "psql {sql}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.root.join("data");
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
