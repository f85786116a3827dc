//! keepd-diskfull: keepd when its storage fails, on real filesystems.
//!
//! - full: the data dir on a small ext4 loop mount, filled up. Writes must
//!   fail with PocketBase's error shape, reads go on, `STATUS=` says
//!   "degraded … disk full", the watchdog keeps being pinged (a restart
//!   doesn't free space), the journal says it; space freed, writes work
//!   again without a restart; `keepd check` finds the database whole.
//! - readonly: the same mount turned read-only by an ext4 error
//!   (`errors=remount-ro`, triggered through sysfs), as a failing disk
//!   does: writes refused, reads served, `STATUS=` "read-only", keepd
//!   stops cleanly.
//! - eio: the data dir on tests/powercut's FUSE model made to fail every
//!   change with EIO (a dying device): the same checks, then the device
//!   heals and writes work again.
//!
//!   keepd-diskfull [--keepd BIN] [--work DIR] [full|readonly|eio]...

use anyhow::{anyhow, bail, Context, Result};
use keepd_powercut::client::{Client, Multipart, Resp};
use keepd_powercut::fuse;
use keepd_powercut::model::Model;
use keepd_powercut::proc::{self, Keepd, SU_EMAIL, SU_PASSWORD};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let mut keepd = std::env::var_os("KEEPD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/keepd"));
    let mut work = std::env::temp_dir();
    let mut which: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keepd" => keepd = PathBuf::from(args.next().unwrap_or_default()),
            "--work" => work = PathBuf::from(args.next().unwrap_or_default()),
            "full" | "readonly" | "eio" => which.push(a),
            _ => {
                eprintln!(
                    "usage: keepd-diskfull [--keepd BIN] [--work DIR] [full|readonly|eio]..."
                );
                std::process::exit(2);
            }
        }
    }
    if which.is_empty() {
        which = vec!["full".into(), "readonly".into(), "eio".into()];
    }
    let keepd = match keepd.canonicalize() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("keepd-diskfull: keepd binary {}: {e}", keepd.display());
            std::process::exit(2);
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for w in &which {
        let root = work.join(format!("keepd-diskfull-{}-{w}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let r = std::fs::create_dir_all(&root)
            .map_err(anyhow::Error::from)
            .and_then(|()| match w.as_str() {
                "full" => full(&keepd, &root),
                "readonly" => readonly(&keepd, &root),
                _ => eio(&keepd, &root),
            });
        match r {
            Ok(()) => {
                println!("ok   {w}");
                passed += 1;
                let _ = std::fs::remove_dir_all(&root);
            }
            Err(e) => {
                println!("FAIL {w}: {e:#}\n     (kept: {})", root.display());
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

// ---------------------------------------------------------------------------
// sd_notify messages, as systemd would receive them.

struct Notify {
    path: PathBuf,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Notify {
    fn bind(dir: &Path) -> Result<Notify> {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path)?;
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Ok(mut v) = g.lock() {
                    for l in text.lines() {
                        v.push((Instant::now(), l.to_string()));
                    }
                }
            }
        });
        Ok(Notify { path, got })
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("NOTIFY_SOCKET", self.path.to_str().unwrap_or_default()),
            ("WATCHDOG_USEC", "1000000"),
        ]
    }

    fn lines(&self) -> Vec<(Instant, String)> {
        self.got.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits for a STATUS= line sent after `since` containing every one
    /// of `words`.
    fn status(
        &self,
        since: Instant,
        words: &[&str],
        within: Duration,
    ) -> Result<(Instant, String)> {
        let end = Instant::now() + within;
        loop {
            if let Some(l) = self.lines().into_iter().rev().find(|(at, l)| {
                *at >= since && l.starts_with("STATUS=") && words.iter().all(|w| l.contains(w))
            }) {
                return Ok(l);
            }
            if Instant::now() > end {
                bail!(
                    "no STATUS= with {words:?} within {within:?}; got: {:?}",
                    self.lines()
                        .iter()
                        .filter(|l| l.1.starts_with("STATUS="))
                        .map(|l| l.1.clone())
                        .collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// WATCHDOG=1 pings after `t`.
    fn pings_after(&self, t: Instant) -> usize {
        self.lines()
            .iter()
            .filter(|(at, l)| *at > t && l == "WATCHDOG=1")
            .count()
    }
}

// ---------------------------------------------------------------------------
// The shared scenario: data, a storage failure, what must hold.

fn sh(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (apt-get install e2fsprogs mount)"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A small ext4 on a loop device (no reserved blocks: keepd runs as root
/// here and would use them), remounting read-only on errors.
struct Loop {
    mnt: PathBuf,
}

impl Loop {
    fn new(root: &Path, mib: u64) -> Result<Loop> {
        let img = root.join("disk.img");
        let f = std::fs::File::create(&img)?;
        f.set_len(mib << 20)?;
        drop(f);
        sh(
            "mkfs.ext4",
            &["-q", "-F", "-m", "0", img.to_str().unwrap_or_default()],
        )?;
        let mnt = root.join("mnt");
        std::fs::create_dir_all(&mnt)?;
        sh(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                img.to_str().unwrap_or_default(),
                mnt.to_str().unwrap_or_default(),
            ],
        )?;
        Ok(Loop { mnt })
    }

    /// The loop device's name under /sys/fs/ext4.
    fn device(&self) -> Result<String> {
        let m = std::fs::read_to_string("/proc/mounts")?;
        let me = self.mnt.canonicalize()?;
        m.lines()
            .find(|l| l.split(' ').nth(1) == me.to_str())
            .and_then(|l| l.split(' ').next())
            .and_then(|d| d.rsplit('/').next())
            .map(String::from)
            .ok_or_else(|| anyhow!("{} is not mounted", me.display()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).output();
    }
}

struct Daemon {
    keepd: Keepd,
    su: Client,
    notify: Notify,
    docs: Vec<(String, String, Vec<u8>)>,
    notes: Vec<String>,
    dir: PathBuf,
}

fn data_dir(at: &Path) -> Result<PathBuf> {
    let d = at.join("data");
    std::fs::create_dir_all(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
    Ok(d)
}

fn start(bin: &Path, root: &Path, dir: &Path) -> Result<Daemon> {
    let d = dir.to_str().unwrap_or_default();
    let (ok, out) = proc::tool(
        bin,
        &["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", d],
    )?;
    if !ok {
        bail!("superuser upsert: {out}");
    }
    let notify = Notify::bind(root)?;
    let t0 = Instant::now();
    let keepd = Keepd::start(bin, dir, &root.join("keepd.log"), &notify.env())?;
    let mut su = Client::new(keepd.addr);
    let r = su.json(
        "POST",
        "/api/collections/_superusers/auth-with-password",
        &json!({"identity": SU_EMAIL, "password": SU_PASSWORD}),
    )?;
    su.token = r.json()["token"].as_str().unwrap_or_default().to_string();
    for body in [
        json!({"name": "notes", "type": "base", "fields": [{"name": "body", "type": "text", "max": 1000000}]}),
        json!({"name": "docs", "type": "base", "viewRule": "", "fields": [
            {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 10485760}]}),
    ] {
        let r = su.json("POST", "/api/collections", &body)?;
        if !r.ok() {
            bail!("creating a collection: {} {}", r.status, r.text());
        }
    }
    let mut d = Daemon {
        keepd,
        su,
        notify,
        docs: Vec::new(),
        notes: Vec::new(),
        dir: dir.to_path_buf(),
    };
    for i in 0..20 {
        let r = d.su.json(
            "POST",
            "/api/collections/notes/records",
            &json!({"body": format!("note {i}")}),
        )?;
        if !r.ok() {
            bail!("a note before the fault: {} {}", r.status, r.text());
        }
        d.notes
            .push(r.json()["id"].as_str().unwrap_or_default().to_string());
    }
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = d.su.multipart(
        "POST",
        "/api/collections/docs/records",
        &Multipart::default().file("doc", "before.bin", &data),
    )?;
    if !r.ok() {
        bail!("a file before the fault: {} {}", r.status, r.text());
    }
    let v = r.json();
    d.docs.push((
        v["id"].as_str().unwrap_or_default().to_string(),
        v["doc"].as_str().unwrap_or_default().to_string(),
        data,
    ));
    d.notify
        .status(t0, &["serving on"], Duration::from_secs(10))?;
    Ok(d)
}

/// PocketBase's error shape: {status, message, data}.
fn error_shape(r: &Resp) -> bool {
    let v = r.json();
    v["status"].as_u64() == Some(r.status as u64)
        && v["message"].is_string()
        && v["data"].is_object()
}

impl Daemon {
    /// Writes until they fail (at most `tries`); returns (ok, failed)
    /// and checks every failure's shape.
    fn writes_fail(&self, tries: usize, size: usize) -> Result<(usize, Vec<Resp>)> {
        let body = "x".repeat(size);
        let (mut ok, mut failed) = (0, Vec::new());
        for _ in 0..tries {
            let r = self.su.json(
                "POST",
                "/api/collections/notes/records",
                &json!({"body": body}),
            )?;
            if r.ok() {
                ok += 1;
                continue;
            }
            if !error_shape(&r) {
                bail!(
                    "a failed write answered {} {} (not PocketBase's error shape)",
                    r.status,
                    r.text()
                );
            }
            failed.push(r);
            if failed.len() >= 3 {
                break;
            }
        }
        let up = self.su.multipart(
            "POST",
            "/api/collections/docs/records",
            &Multipart::default().file("doc", "during.bin", &vec![7u8; 256 << 10]),
        )?;
        if up.ok() {
            failed.push(Resp {
                status: 0,
                body: b"an upload succeeded".to_vec(),
            });
        } else if !error_shape(&up) {
            bail!("a failed upload answered {} {}", up.status, up.text());
        } else {
            failed.push(up);
        }
        Ok((ok, failed))
    }

    /// Everything written before the fault reads back.
    fn reads_work(&self) -> Result<()> {
        let r = self.su.get("/api/collections/notes/records?perPage=200")?;
        if !r.ok() {
            bail!("listing during the fault: {} {}", r.status, r.text());
        }
        let ids: Vec<String> = r.json()["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for id in &self.notes {
            if !ids.contains(id) {
                bail!("note {id} missing from the list during the fault");
            }
            let v = self
                .su
                .get(&format!("/api/collections/notes/records/{id}"))?;
            if !v.ok() {
                bail!("viewing {id} during the fault: {} {}", v.status, v.text());
            }
        }
        for (id, name, data) in &self.docs {
            let f = self.su.get(&format!("/api/files/docs/{id}/{name}"))?;
            if !f.ok() || &f.body != data {
                bail!(
                    "downloading {name} during the fault: {} ({} bytes)",
                    f.status,
                    f.body.len()
                );
            }
        }
        let h = self.su.get("/api/health")?;
        if !h.ok() {
            bail!("/api/health during the fault: {}", h.status);
        }
        Ok(())
    }

    /// The watchdog goes on being pinged while degraded (≥ 2 pings in 2 s
    /// at WATCHDOG_USEC=1 s).
    fn watchdog_alive(&self) -> Result<()> {
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(2100));
        let n = self.notify.pings_after(t);
        if n < 2 {
            bail!("{n} watchdog pings in 2 s while degraded");
        }
        Ok(())
    }

    fn log_says(&self, what: &str) -> Result<()> {
        let log = std::fs::read_to_string(&self.keepd.log)?;
        if !log.contains(what) {
            bail!(
                "the log doesn't say {what:?}; its end:\n{}",
                proc::tail(&self.keepd.log, 5)
            );
        }
        Ok(())
    }

    fn write_one(&self) -> Result<Resp> {
        Ok(self.su.json(
            "POST",
            "/api/collections/notes/records",
            &json!({"body": "after"}),
        )?)
    }
}

fn report(name: &str, ok: usize, failed: &[Resp], status: &str) {
    let codes: Vec<String> = failed
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r.status,
                r.json()["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    println!("  {name}: {ok} writes went through before the refusals {codes:?}");
    println!("  {name}: {status}");
}

// ---------------------------------------------------------------------------

fn full(bin: &Path, root: &Path) -> Result<()> {
    let disk = Loop::new(root, 48)?;
    let dir = data_dir(&disk.mnt)?;
    let d = start(bin, root, &dir)?;
    // Fill the disk.
    let filler = disk.mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler)?;
        for chunk in [1 << 20, 4096, 512] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
    }
    let t = Instant::now();
    let (ok, failed) = d.writes_fail(400, 64 << 10)?;
    if failed.is_empty() || failed.iter().any(|r| r.status == 0) {
        bail!(
            "writes kept working on a full disk ({ok} went through, then {} refusals)",
            failed.len()
        );
    }
    let (_, st) = d
        .notify
        .status(t, &["degraded", "disk full"], Duration::from_secs(10))?;
    report("full", ok, &failed, &st);
    d.reads_work()?;
    d.watchdog_alive()?;
    d.log_says("WRITES FAILING")?;
    // Space comes back: writes work again, without a restart.
    let t = Instant::now();
    std::fs::remove_file(&filler)?;
    d.notify
        .status(t, &["serving on"], Duration::from_secs(15))?;
    let r = d.write_one()?;
    if !r.ok() {
        bail!("a write after space came back: {} {}", r.status, r.text());
    }
    d.log_says("writes work again")?;
    finish(bin, d)
}

fn finish(bin: &Path, mut d: Daemon) -> Result<()> {
    d.keepd.stop()?;
    let (ok, out) = proc::tool(bin, &["check", "--dir", d.dir.to_str().unwrap_or_default()])?;
    // `check` warns about free space on these small disks: only the
    // database's own checks count here.
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.contains("integrity_check")
                || l.contains("foreign_key_check")
                || l.contains("can't be opened")
        })
        .collect();
    if !bad.is_empty() || (!ok && !out.contains("free on its filesystem")) {
        bail!("keepd check after the fault:\n{out}");
    }
    Ok(())
}

fn readonly(bin: &Path, root: &Path) -> Result<()> {
    let disk = Loop::new(root, 48)?;
    let dir = data_dir(&disk.mnt)?;
    let mut d = start(bin, root, &dir)?;
    let dev = disk.device()?;
    std::fs::write(
        format!("/sys/fs/ext4/{dev}/trigger_fs_error"),
        "keepd-diskfull",
    )
    .with_context(|| format!("triggering an ext4 error on {dev}"))?;
    let t = Instant::now();
    let (ok, failed) = d.writes_fail(20, 1024)?;
    if failed.is_empty() || failed.iter().any(|r| r.status == 0) {
        bail!("writes kept working on a read-only filesystem ({ok} went through)");
    }
    let (_, st) = d
        .notify
        .status(t, &["degraded", "read-only"], Duration::from_secs(10))?;
    report("readonly", ok, &failed, &st);
    d.reads_work()?;
    d.watchdog_alive()?;
    d.log_says("WRITES FAILING")?;
    // A clean stop still ends (the checkpoint can't be written).
    let t = Instant::now();
    d.keepd
        .stop()
        .context("stopping on a read-only filesystem")?;
    println!("  readonly: stopped cleanly in {:?}", t.elapsed());
    Ok(())
}

fn eio(bin: &Path, root: &Path) -> Result<()> {
    fuse::available().map_err(|e| anyhow!("FUSE: {e}"))?;
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt)?;
    let model = Arc::new(Mutex::new(Model::new(0o700, 0, 0)));
    let session = fuse::mount(model.clone(), &mnt)?;
    let conn = fuse::connection(&mnt);
    let r = (|| {
        let d = start(bin, root, &mnt)?;
        let t = Instant::now();
        fuse::lock(&model).inject = Some(libc::EIO);
        let (ok, failed) = d.writes_fail(20, 1024)?;
        if failed.is_empty() || failed.iter().any(|r| r.status == 0) {
            bail!("writes kept working on a failing device ({ok} went through)");
        }
        let (_, st) = d
            .notify
            .status(t, &["degraded", "I/O"], Duration::from_secs(10))?;
        report("eio", ok, &failed, &st);
        d.reads_work()?;
        d.watchdog_alive()?;
        d.log_says("WRITES FAILING")?;
        // The device heals.
        let t = Instant::now();
        fuse::lock(&model).inject = None;
        d.notify
            .status(t, &["serving on"], Duration::from_secs(15))?;
        let r = d.write_one()?;
        if !r.ok() {
            bail!("a write after the device healed: {} {}", r.status, r.text());
        }
        finish(bin, d)
    })();
    let _ = fuse::unmount(session, &mnt, conn, Duration::from_secs(10));
    r
}
