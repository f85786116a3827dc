//! Running keepd: `serve` as a child whose bound address is read from its
//! stdout, its log kept in a file; the command-line tools.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SU_EMAIL: &str = "powercut@example.com";
pub const SU_PASSWORD: &str = "powercut-password-1";

/// The environment every keepd child gets (nothing of the caller's
/// KEEPD_* leaks in): no /etc config, cheap password hashing, plaintext
/// backups (so the harness can open them), warnings only.
pub fn command(bin: &Path) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("KEEPD_") || k == "NOTIFY_SOCKET" || k.starts_with("WATCHDOG_") {
            c.env_remove(&k);
        }
    }
    for (k, v) in [
        ("KEEPD_NO_ETC", "1"),
        ("KEEPD_ARGON2_MEMORY_KIB", "8192"),
        ("KEEPD_ARGON2_ITERATIONS", "1"),
        ("KEEPD_LOG", "warn"),
        ("KEEPD_BACKUP_ENCRYPTION", "none"),
    ] {
        c.env(k, v);
    }
    c
}

pub struct Keepd {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Keepd {
    /// Starts `keepd serve` on a free loopback port; returns once it
    /// listens (or fails with its log).
    pub fn start(bin: &Path, dir: &Path, log: &Path, env: &[(&str, &str)]) -> Result<Keepd> {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("log file {}", log.display()))?;
        let mut c = command(bin);
        c.args(["serve", "--http", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logf);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(a) = line.strip_prefix("keepd listening on http://") {
                        let _ = tx.send(a.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let mut k = Keepd {
            child: Some(child),
            addr: "127.0.0.1:1".parse()?,
            log: log.to_path_buf(),
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(a) => {
                k.addr = a.parse()?;
                Ok(k)
            }
            Err(_) => {
                let status = k.kill();
                bail!(
                    "keepd did not start ({status}); its log:\n{}",
                    tail(log, 40)
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL and reap (the process dies with the power).
    pub fn kill(&mut self) -> String {
        match self.child.take() {
            Some(mut c) => {
                let _ = c.kill();
                c.wait().map(|s| s.to_string()).unwrap_or_default()
            }
            None => "not running".into(),
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let st = c.wait()?;
            if !st.success() {
                bail!("keepd stopped with {st}; log:\n{}", tail(&self.log, 30));
            }
        }
        Ok(())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Keepd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a keepd tool (`check`, `superuser upsert`) to completion.
pub fn tool(bin: &Path, args: &[&str]) -> Result<(bool, String)> {
    let out = command(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running keepd {}", args.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

/// The last `n` lines of a file.
pub fn tail(p: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
