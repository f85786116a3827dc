//! keepd-powercut: seeded power-cut runs against keepd on the FUSE model.
//!
//! Each run mounts a fresh model filesystem as keepd's data dir, starts
//! keepd, and lets concurrent writers (record creates, updates, deletes,
//! batches, file uploads, backups) work; at a random moment it cuts the
//! power: the model keeps only what was durable and refuses everything
//! after (EIO), keepd is killed, the filesystem is remounted from what
//! survived, `keepd check` runs on it, keepd starts again and every
//! acknowledged write (a 2xx answer that arrived) is looked for. Then the
//! writers go on, until the next cut. See tests/powercut/README.md.
//!
//!   keepd-powercut [--keepd BIN] [--seed N] [--runs R] [--cuts C]
//!                  [--seconds S] [--writers W] [--mode strict|writeback|mixed]
//!                  [--wait-ms MIN..MAX] [--work DIR] [--self-test]

use anyhow::{anyhow, bail, Context, Result};
use keepd_powercut::client::{Client, Multipart};
use keepd_powercut::fuse;
use keepd_powercut::model::{Cut, CutReport, Model};
use keepd_powercut::proc::{self, Keepd, SU_EMAIL, SU_PASSWORD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Opts {
    keepd: PathBuf,
    seed: u64,
    runs: u32,
    cuts: u32,
    seconds: u64,
    writers: u32,
    mode: Option<Cut>,
    work: PathBuf,
    self_test: bool,
    /// Orphan files reported without failing the run (exploration only).
    orphans_warn: bool,
    /// Load before each cut, in milliseconds (drawn from this range).
    wait_ms: (u64, u64),
}

fn parse_opts() -> Result<Opts> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Opts {
        keepd: std::env::var_os("KEEPD_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/debug/keepd")),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1),
        runs: 1,
        cuts: 5,
        seconds: 0,
        writers: 4,
        mode: None,
        work: std::env::temp_dir(),
        self_test: false,
        orphans_warn: false,
        wait_ms: (300, 2500),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--keepd" => o.keepd = PathBuf::from(val()?),
            "--seed" => o.seed = val()?.parse()?,
            "--runs" => o.runs = val()?.parse()?,
            "--cuts" => o.cuts = val()?.parse()?,
            "--seconds" => o.seconds = val()?.parse()?,
            "--writers" => o.writers = val()?.parse::<u32>()?.max(1),
            "--work" => o.work = PathBuf::from(val()?),
            "--mode" => {
                o.mode = match val()?.as_str() {
                    "strict" => Some(Cut::Strict),
                    "writeback" => Some(Cut::Writeback),
                    "mixed" => None,
                    m => bail!("unknown mode {m}"),
                }
            }
            "--self-test" => o.self_test = true,
            "--orphans-warn" => o.orphans_warn = true,
            "--wait-ms" => {
                let v = val()?;
                let (a, b) = v.split_once("..").unwrap_or((&v, &v));
                o.wait_ms = (a.parse()?, b.parse::<u64>()?.max(a.parse::<u64>()? + 1));
            }
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("powercut.rs")
                        .lines()
                        .skip(12)
                        .take(4)
                        .map(|l| l.trim_start_matches("//!"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                std::process::exit(0);
            }
            _ => bail!("unknown argument {a}"),
        }
    }
    o.keepd = o
        .keepd
        .canonicalize()
        .with_context(|| format!("keepd binary {}", o.keepd.display()))?;
    Ok(o)
}

fn main() {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("keepd-powercut: {e:#}");
            std::process::exit(2);
        }
    };
    if let Err(why) = fuse::available() {
        eprintln!("keepd-powercut: FUSE can't be used here: {why}");
        std::process::exit(3);
    }
    let r = if o.self_test {
        self_test(&o)
    } else {
        run_all(&o)
    };
    if let Err(e) = r {
        eprintln!("\nkeepd-powercut: FAILED: {e:#}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// A mounted model, remounted from what survives a cut.

struct Mounted {
    model: fuse::Shared,
    session: Option<fuser::BackgroundSession>,
    /// The FUSE connection (to abort a session that won't end).
    conn: Option<u64>,
    at: PathBuf,
}

impl Mounted {
    fn new(at: &Path, model: Model) -> Result<Mounted> {
        let model = Arc::new(Mutex::new(model));
        let session = fuse::mount(model.clone(), at)
            .with_context(|| format!("mounting the model at {}", at.display()))?;
        Ok(Mounted {
            model,
            session: Some(session),
            conn: fuse::connection(at),
            at: at.to_path_buf(),
        })
    }

    /// The power goes: freeze, keep what was durable.
    fn cut(&self, mode: Cut, rng: &mut StdRng) -> (Model, CutReport) {
        fuse::lock(&self.model).cut(mode, rng)
    }

    fn unmount(&mut self) -> Result<()> {
        if let Some(s) = self.session.take() {
            if let Err(e) = fuse::unmount(s, &self.at, self.conn, Duration::from_secs(10)) {
                // Busy: detach lazily (nothing of keepd runs any more).
                let c = std::ffi::CString::new(self.at.as_os_str().as_encoded_bytes())?;
                // SAFETY: a valid C string path.
                let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                if r != 0 {
                    bail!("unmounting {}: {e}", self.at.display());
                }
            }
        }
        Ok(())
    }

    /// Unmounts and mounts `image` in its place.
    fn replace(&mut self, image: Model) -> Result<()> {
        self.unmount()?;
        *self = Mounted::new(&self.at.clone(), image)?;
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.unmount();
    }
}

struct WorkDir(PathBuf, bool);
impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn work_dir(o: &Opts, tag: &str) -> Result<WorkDir> {
    let p = o
        .work
        .join(format!("keepd-powercut-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("mnt"))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
    Ok(WorkDir(p, true))
}

// ---------------------------------------------------------------------------
// The instrument checks itself: what it must lose, it loses.

fn self_test(o: &Opts) -> Result<()> {
    use std::io::Write;
    let wd = work_dir(o, "selftest")?;
    let mnt = wd.0.join("mnt");
    let mut m = Mounted::new(&mnt, Model::new(0o700, 0, 0))?;
    let write = |name: &str, data: &[u8], sync: bool| -> Result<()> {
        let mut f = std::fs::File::create(mnt.join(name))?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    };
    let sync_dir = |p: &Path| -> Result<()> { Ok(std::fs::File::open(p)?.sync_all()?) };
    // A temporary name renamed over without fsync: the classic mistake.
    write("config", b"old", true)?;
    write("kept", b"synced, entry synced", true)?;
    write(
        "late-entry",
        b"synced, entry created before the dir sync",
        true,
    )?;
    sync_dir(&mnt)?;
    write(".config.tmp", b"new", false)?;
    std::fs::rename(mnt.join(".config.tmp"), mnt.join("config"))?;
    write("late-entry-2", b"synced data, entry never synced", true)?;
    write("unsynced", b"data never synced", false)?;
    std::fs::write(mnt.join("kept"), b"overwritten, not synced")?;
    std::fs::create_dir(mnt.join("dir"))?;
    write("dir/inner", b"inner", true)?;
    sync_dir(&mnt.join("dir"))?;
    let mut rng = StdRng::seed_from_u64(o.seed);
    let (image, report) = m.cut(Cut::Strict, &mut rng);
    println!("self-test: {report}");
    if std::fs::read(mnt.join("kept")).is_ok() {
        bail!("the filesystem still answers after the cut");
    }
    m.replace(image)?;
    let read = |n: &str| std::fs::read(mnt.join(n)).ok();
    let checks: [(&str, Option<&[u8]>); 6] = [
        ("kept", Some(b"synced, entry synced")),
        (
            "late-entry",
            Some(b"synced, entry created before the dir sync"),
        ),
        ("late-entry-2", None),
        ("unsynced", None),
        ("dir/inner", None),
        ("config", Some(b"old")),
    ];
    for (name, want) in checks {
        let got = read(name);
        if got.as_deref() != want {
            bail!(
                "self-test: {name}: expected {:?}, found {:?}",
                want.map(String::from_utf8_lossy),
                got.as_deref().map(String::from_utf8_lossy)
            );
        }
    }
    // SQLite through the mount: WAL, shared-memory index, locks.
    let db = mnt.join("db");
    std::fs::create_dir(&db)?;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o700))?;
    let db = db.to_str().unwrap_or_default();
    let (ok, out) = proc::tool(
        &o.keepd,
        &["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", db],
    )?;
    if !ok {
        bail!("keepd superuser upsert on the mount failed:\n{out}");
    }
    let (ok, out) = proc::tool(&o.keepd, &["check", "--dir", db])?;
    if !ok {
        bail!("keepd check on the mount failed:\n{out}");
    }
    println!("self-test: 6 of 6 expectations held; keepd writes and checks through the mount");
    println!("1 passed, 0 failed");
    Ok(())
}

// ---------------------------------------------------------------------------
// What the writers were told, and what must be found.

#[derive(Default, Clone)]
struct Note {
    id: Option<String>,
    created: bool,
    /// Values of `n` sent, in order, with whether each was acknowledged.
    values: Vec<(i64, bool)>,
    delete: Option<bool>,
    /// A member of a batch (never updated or deleted).
    batch: bool,
    busy: bool,
}

#[derive(Clone)]
struct Doc {
    id: Option<String>,
    file: Option<String>,
    sha: [u8; 32],
    acked: bool,
}

#[derive(Clone)]
struct Batch {
    tags: Vec<String>,
    acked: bool,
}

#[derive(Default)]
struct Ledger {
    notes: BTreeMap<String, Note>,
    docs: BTreeMap<String, Doc>,
    batches: Vec<Batch>,
    backups: BTreeMap<String, bool>,
    /// (kind → (attempted, acknowledged)).
    counts: BTreeMap<&'static str, (u64, u64)>,
    /// The last refusal of each kind (an answer other than 2xx, or no
    /// answer), for the report.
    refused: BTreeMap<&'static str, Vec<String>>,
    /// (kind → (total, longest)) time to an acknowledgement.
    latency: BTreeMap<&'static str, (Duration, Duration)>,
}

impl Ledger {
    fn count(
        &mut self,
        kind: &'static str,
        r: &std::io::Result<keepd_powercut::client::Resp>,
        t0: Instant,
    ) {
        let acked = matches!(r, Ok(r) if r.ok());
        let c = self.counts.entry(kind).or_default();
        c.0 += 1;
        c.1 += acked as u64;
        if acked {
            let l = self.latency.entry(kind).or_default();
            l.0 += t0.elapsed();
            l.1 = l.1.max(t0.elapsed());
        }
        let why = match r {
            Ok(r) if !r.ok() => {
                let mut t = r.text();
                t.truncate(200);
                format!("{} {t}", r.status)
            }
            Err(e) => format!("no answer: {e}"),
            Ok(_) => return,
        };
        let seen = self.refused.entry(kind).or_default();
        if seen.len() < 3 && !seen.contains(&why) {
            seen.push(why);
        }
    }
}

#[derive(Default)]
struct Totals {
    runs: u64,
    cuts: u64,
    strict: u64,
    writeback: u64,
    counts: BTreeMap<&'static str, (u64, u64)>,
    refused: BTreeMap<&'static str, Vec<String>>,
    latency: BTreeMap<&'static str, (Duration, Duration)>,
    checked: u64,
    unacked_kept: u64,
    unacked_lost: u64,
    bytes_lost: u64,
    names_lost: u64,
}

fn run_all(o: &Opts) -> Result<()> {
    let started = Instant::now();
    let mut t = Totals::default();
    println!(
        "keepd-powercut: seed {} runs {} cuts/run {} writers {} mode {} keepd {}",
        o.seed,
        o.runs,
        o.cuts,
        o.writers,
        o.mode.map(|m| m.to_string()).unwrap_or("mixed".into()),
        o.keepd.display()
    );
    for run in 0..o.runs {
        if o.seconds > 0 && started.elapsed().as_secs() >= o.seconds {
            break;
        }
        let seed = o.seed.wrapping_add(run as u64);
        let wd = work_dir(o, &format!("run{run}"))?;
        match one_run(o, seed, &wd.0, &mut t, started) {
            Ok(()) => {}
            Err(e) => {
                let keep = WorkDir(wd.0.clone(), false);
                std::mem::forget(wd);
                bail!(
                    "run {run} (seed {seed}; replay with --seed {seed} --runs 1): {e:#}\n(logs kept in {})",
                    keep.0.display()
                );
            }
        }
        t.runs += 1;
    }
    println!("\n== keepd-powercut summary (seed {}) ==", o.seed);
    println!(
        "runs {}, power cuts {} ({} strict, {} writeback), {:.0} s",
        t.runs,
        t.cuts,
        t.strict,
        t.writeback,
        started.elapsed().as_secs_f64()
    );
    for (k, (a, ack)) in &t.counts {
        let (sum, max) = t.latency.get(k).copied().unwrap_or_default();
        println!(
            "  {k:<8} attempted {a:>6}, acknowledged {ack:>6} (mean {:>5.1} ms, longest {:>6.1} ms)",
            sum.as_secs_f64() * 1000.0 / (*ack).max(1) as f64,
            max.as_secs_f64() * 1000.0
        );
        for why in t.refused.get(k).into_iter().flatten() {
            println!("           not acknowledged: {why}");
        }
    }
    println!(
        "  acknowledged writes checked after cuts: {}; unacknowledged writes found after a cut: {} kept, {} lost",
        t.checked, t.unacked_kept, t.unacked_lost
    );
    println!(
        "  the model threw away {} bytes of unsynced content and {} unsynced names",
        t.bytes_lost, t.names_lost
    );
    if t.cuts == 0 {
        bail!("no power cut happened");
    }
    println!("{} passed, 0 failed", t.cuts);
    Ok(())
}

struct Setup {
    docs_id: String,
}

fn superuser(k: &Keepd) -> Result<Client> {
    let mut c = Client::new(k.addr);
    let r = c.json(
        "POST",
        "/api/collections/_superusers/auth-with-password",
        &json!({"identity": SU_EMAIL, "password": SU_PASSWORD}),
    )?;
    if !r.ok() {
        bail!("superuser login: {} {}", r.status, r.text());
    }
    c.token = r.json()["token"].as_str().unwrap_or_default().to_string();
    Ok(c)
}

fn setup(c: &Client) -> Result<Setup> {
    let must = |r: std::io::Result<keepd_powercut::client::Resp>, what: &str| -> Result<Value> {
        let r = r?;
        if !r.ok() {
            bail!("{what}: {} {}", r.status, r.text());
        }
        Ok(r.json())
    };
    must(
        c.json(
            "POST",
            "/api/collections",
            &json!({"name": "notes", "type": "base", "fields": [
                {"name": "tag", "type": "text"},
                {"name": "n", "type": "number"},
                {"name": "batch", "type": "text"}]}),
        ),
        "create notes",
    )?;
    let docs = must(
        c.json(
            "POST",
            "/api/collections",
            &json!({"name": "docs", "type": "base", "viewRule": "", "fields": [
                {"name": "tag", "type": "text"},
                {"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 4194304}]}),
        ),
        "create docs",
    )?;
    must(
        c.json(
            "PATCH",
            "/api/settings",
            &json!({"batch": {"enabled": true, "maxRequests": 50, "timeout": 10, "maxBodySize": 0}}),
        ),
        "enable batch",
    )?;
    Ok(Setup {
        docs_id: docs["id"].as_str().unwrap_or_default().to_string(),
    })
}

fn one_run(o: &Opts, seed: u64, root: &Path, t: &mut Totals, started: Instant) -> Result<()> {
    let mnt = root.join("mnt");
    let log = root.join("keepd.log");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mounted = Mounted::new(&mnt, Model::new(0o700, 0, 0))?;
    let dir = mnt
        .to_str()
        .ok_or_else(|| anyhow!("mount path"))?
        .to_string();
    let (ok, out) = proc::tool(
        &o.keepd,
        &["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--dir", &dir],
    )?;
    if !ok {
        bail!("superuser upsert: {out}");
    }
    let mut keepd = Keepd::start(&o.keepd, &mnt, &log, &[])?;
    let su = superuser(&keepd)?;
    let s = setup(&su)?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut backup_n = 0u64;
    println!("run seed {seed}: keepd up at {}", keepd.addr);
    for cut in 0..o.cuts {
        if o.seconds > 0 && started.elapsed().as_secs() >= o.seconds {
            break;
        }
        // Writers work until the power goes.
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..o.writers {
            let c = Client {
                timeout: Duration::from_secs(20),
                ..superuser(&keepd)?
            };
            let ledger = ledger.clone();
            let stop = stop.clone();
            let wseed = seed
                .wrapping_mul(1_000_003)
                .wrapping_add((cut * 97 + w) as u64);
            let prefix = format!("c{cut}w{w}");
            let do_backup = w == 0;
            let start_backup = backup_n;
            backup_n += 1000;
            workers.push(std::thread::spawn(move || {
                writer(
                    c,
                    ledger,
                    stop,
                    StdRng::seed_from_u64(wseed),
                    prefix,
                    do_backup,
                    start_backup,
                )
            }));
        }
        let wait = Duration::from_millis(rng.gen_range(o.wait_ms.0..o.wait_ms.1));
        std::thread::sleep(wait);
        let mode = o.mode.unwrap_or(if rng.gen_bool(0.5) {
            Cut::Strict
        } else {
            Cut::Writeback
        });
        let (image, report) = mounted.cut(mode, &mut rng);
        stop.store(true, Ordering::SeqCst);
        let killed = keepd.kill();
        for w in workers {
            let _ = w.join();
        }
        t.cuts += 1;
        match mode {
            Cut::Strict => t.strict += 1,
            Cut::Writeback => t.writeback += 1,
        }
        t.bytes_lost += report.bytes_lost;
        t.names_lost += report.names_lost;
        mounted.replace(image)?;
        // What survived must be a healthy data dir.
        let (ok, out) =
            proc::tool(&o.keepd, &["check", "--dir", &dir]).context("keepd check after the cut")?;
        if !ok {
            bail!("cut {cut} ({report}): `keepd check` on what survived failed:\n{out}");
        }
        keepd = Keepd::start(&o.keepd, &mnt, &log, &[])
            .with_context(|| format!("restart after cut {cut} ({report})"))?;
        let su = superuser(&keepd)?;
        let v = verify(&su, &mnt, &s, &ledger, o.orphans_warn)
            .with_context(|| format!("after cut {cut} at {:?} ({report}; keepd {killed})", wait))?;
        t.checked += v.checked;
        t.unacked_kept += v.unacked_kept;
        t.unacked_lost += v.unacked_lost;
        println!(
            "  cut {cut} after {:>4} ms: {report}; verified {} acknowledged writes ({} unacknowledged kept, {} lost)",
            wait.as_millis(),
            v.checked,
            v.unacked_kept,
            v.unacked_lost
        );
    }
    keepd.stop()?;
    let (ok, out) = proc::tool(&o.keepd, &["check", "--dir", &dir])?;
    if !ok {
        bail!("keepd check after the clean stop failed:\n{out}");
    }
    let l = ledger.lock().map_err(|_| anyhow!("ledger poisoned"))?;
    for (k, (a, ack)) in &l.counts {
        let c = t.counts.entry(k).or_default();
        c.0 += a;
        c.1 += ack;
    }
    for (k, why) in &l.refused {
        let seen = t.refused.entry(k).or_default();
        for w in why {
            if seen.len() < 3 && !seen.contains(w) {
                seen.push(w.clone());
            }
        }
    }
    for (k, (sum, max)) in &l.latency {
        let e = t.latency.entry(k).or_default();
        e.0 += *sum;
        e.1 = e.1.max(*max);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The writers.

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

fn writer(
    c: Client,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    mut rng: StdRng,
    prefix: String,
    do_backup: bool,
    mut backup_n: u64,
) {
    let lock = || match ledger.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let mut k = 0u64;
    while !stop.load(Ordering::SeqCst) {
        k += 1;
        let t0 = Instant::now();
        let roll = rng.gen_range(0..100);
        if roll < 30 {
            let tag = format!("{prefix}-n{k}");
            lock().notes.insert(
                tag.clone(),
                Note {
                    values: vec![(0, false)],
                    busy: true,
                    ..Default::default()
                },
            );
            let r = c.json(
                "POST",
                "/api/collections/notes/records",
                &json!({"tag": tag, "n": 0}),
            );
            let mut l = lock();
            let ok = matches!(&r, Ok(r) if r.ok());
            l.count("create", &r, t0);
            if let Some(n) = l.notes.get_mut(&tag) {
                n.busy = false;
                if let (true, Ok(r)) = (ok, &r) {
                    n.created = true;
                    n.values = vec![(0, true)];
                    n.id = r.json()["id"].as_str().map(String::from);
                }
            }
        } else if roll < 50 {
            // Update or delete one of this writer's settled notes.
            let pick = {
                let mut l = lock();
                let mine: Vec<String> = l
                    .notes
                    .iter()
                    .filter(|(t, n)| {
                        t.starts_with(&prefix)
                            && n.created
                            && n.id.is_some()
                            && !n.batch
                            && !n.busy
                            && n.delete.is_none()
                    })
                    .map(|(t, _)| t.clone())
                    .collect();
                if mine.is_empty() {
                    None
                } else {
                    let t = mine[rng.gen_range(0..mine.len())].clone();
                    let del = rng.gen_bool(0.25);
                    let n = l.notes.get_mut(&t).expect("picked");
                    n.busy = true;
                    let next = n.values.last().map(|v| v.0).unwrap_or(0) + 1;
                    if del {
                        n.delete = Some(false);
                    } else {
                        n.values.push((next, false));
                    }
                    Some((t, n.id.clone().unwrap_or_default(), del, next))
                }
            };
            let Some((tag, id, del, next)) = pick else {
                continue;
            };
            let path = format!("/api/collections/notes/records/{id}");
            let r = if del {
                c.request("DELETE", &path, None)
            } else {
                c.json("PATCH", &path, &json!({"n": next}))
            };
            let ok = matches!(&r, Ok(r) if r.ok());
            let mut l = lock();
            l.count(if del { "delete" } else { "update" }, &r, t0);
            if let Some(n) = l.notes.get_mut(&tag) {
                n.busy = false;
                if ok {
                    if del {
                        n.delete = Some(true);
                    } else if let Some(v) = n.values.last_mut() {
                        v.1 = true;
                    }
                }
            }
        } else if roll < 68 {
            let size = rng.gen_range(2..=5);
            let tags: Vec<String> = (0..size).map(|j| format!("{prefix}-b{k}-{j}")).collect();
            {
                let mut l = lock();
                for t in &tags {
                    l.notes.insert(
                        t.clone(),
                        Note {
                            values: vec![(0, false)],
                            batch: true,
                            busy: true,
                            ..Default::default()
                        },
                    );
                }
                l.batches.push(Batch {
                    tags: tags.clone(),
                    acked: false,
                });
            }
            let reqs: Vec<Value> = tags
                .iter()
                .map(|t| {
                    json!({"method": "POST", "url": "/api/collections/notes/records",
                           "body": {"tag": t, "n": 0, "batch": format!("{prefix}-b{k}")}})
                })
                .collect();
            let r = c.json("POST", "/api/batch", &json!({ "requests": reqs }));
            let ok = matches!(&r, Ok(r) if r.ok());
            let mut l = lock();
            l.count("batch", &r, t0);
            let ids: Vec<Option<String>> = match (&r, ok) {
                (Ok(r), true) => r
                    .json()
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| x["body"]["id"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                _ => vec![],
            };
            for (i, t) in tags.iter().enumerate() {
                if let Some(n) = l.notes.get_mut(t) {
                    n.busy = false;
                    if ok {
                        n.created = true;
                        n.values = vec![(0, true)];
                        n.id = ids.get(i).cloned().flatten();
                    }
                }
            }
            if ok {
                if let Some(b) = l.batches.iter_mut().find(|b| b.tags == tags) {
                    b.acked = true;
                }
            }
        } else if roll < 93 || !do_backup {
            let tag = format!("{prefix}-d{k}");
            let size = match rng.gen_range(0..10) {
                0 => rng.gen_range(64 << 10..400 << 10),
                _ => rng.gen_range(16..8192),
            };
            let data = random_bytes(&mut rng, size);
            let sha: [u8; 32] = Sha256::digest(&data).into();
            lock().docs.insert(
                tag.clone(),
                Doc {
                    id: None,
                    file: None,
                    sha,
                    acked: false,
                },
            );
            let form =
                Multipart::default()
                    .text("tag", &tag)
                    .file("doc", &format!("f{k}.bin"), &data);
            let r = c.multipart("POST", "/api/collections/docs/records", &form);
            let ok = matches!(&r, Ok(r) if r.ok());
            let mut l = lock();
            l.count("file", &r, t0);
            if let (true, Ok(r)) = (ok, &r) {
                let v = r.json();
                if let Some(d) = l.docs.get_mut(&tag) {
                    d.acked = true;
                    d.id = v["id"].as_str().map(String::from);
                    d.file = v["doc"].as_str().map(String::from);
                }
            }
        } else {
            backup_n += 1;
            let name = format!("pc_{backup_n}.zip");
            lock().backups.insert(name.clone(), false);
            let r = c.json("POST", "/api/backups", &json!({ "name": name }));
            let ok = matches!(&r, Ok(r) if r.ok());
            let mut l = lock();
            l.count("backup", &r, t0);
            if ok {
                l.backups.insert(name, true);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// After a cut: everything acknowledged is there, nothing half-done.

#[derive(Default)]
struct Verified {
    checked: u64,
    unacked_kept: u64,
    unacked_lost: u64,
    orphans: Vec<String>,
}

fn list_all(c: &Client, coll: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for page in 1.. {
        let r = c.get(&format!(
            "/api/collections/{coll}/records?page={page}&perPage=500&skipTotal=1&sort=id"
        ))?;
        if !r.ok() {
            bail!("listing {coll}: {} {}", r.status, r.text());
        }
        let v = r.json();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let n = items.len();
        out.extend(items);
        if n < 500 {
            break;
        }
    }
    Ok(out)
}

fn verify(
    c: &Client,
    mnt: &Path,
    s: &Setup,
    ledger: &Mutex<Ledger>,
    orphans_warn: bool,
) -> Result<Verified> {
    let mut v = Verified::default();
    let mut l = ledger.lock().map_err(|_| anyhow!("ledger poisoned"))?;
    let mut errors: Vec<String> = Vec::new();

    // Records.
    let notes: HashMap<String, Value> = list_all(c, "notes")?
        .into_iter()
        .map(|r| (r["tag"].as_str().unwrap_or_default().to_string(), r))
        .collect();
    for tag in notes.keys() {
        if !l.notes.contains_key(tag) {
            errors.push(format!("note {tag:?} was never written"));
        }
    }
    let mut gone = Vec::new();
    for (tag, n) in l.notes.iter_mut() {
        let found = notes.get(tag);
        let acked_delete = n.delete == Some(true);
        match found {
            Some(r) => {
                if acked_delete {
                    errors.push(format!(
                        "note {tag}: deletion was acknowledged, the record is back"
                    ));
                }
                let val = r["n"].as_i64().unwrap_or(-1);
                // The last acknowledged value, or any value sent after it.
                let last_acked = n.values.iter().rposition(|x| x.1);
                let allowed: Vec<i64> = match last_acked {
                    Some(i) => n.values[i..].iter().map(|x| x.0).collect(),
                    None => n.values.iter().map(|x| x.0).collect(),
                };
                if !allowed.contains(&val) {
                    errors.push(format!(
                        "note {tag}: n = {val}, expected one of {allowed:?} (values sent: {:?})",
                        n.values
                    ));
                }
                if let (Some(id), Some(fid)) = (&n.id, r["id"].as_str()) {
                    if id != fid {
                        errors.push(format!("note {tag}: id {fid}, acknowledged as {id}"));
                    }
                }
                if n.created {
                    v.checked += 1;
                } else {
                    v.unacked_kept += 1;
                }
                // Settle: what is there now is the truth from here on.
                n.created = true;
                n.id = r["id"].as_str().map(String::from);
                n.values = vec![(val, true)];
                n.delete = None;
            }
            None => {
                if n.created && !acked_delete && n.delete.is_none() {
                    errors.push(format!(
                        "note {tag}: acknowledged (id {:?}, values {:?}) and missing after the cut",
                        n.id, n.values
                    ));
                } else if n.created && n.delete.is_some() {
                    v.checked += acked_delete as u64;
                } else {
                    v.unacked_lost += 1;
                }
                gone.push(tag.clone());
            }
        }
    }
    for t in gone {
        l.notes.remove(&t);
    }
    // Batches: all or nothing.
    let mut keep_batches = Vec::new();
    for b in std::mem::take(&mut l.batches) {
        let present = b.tags.iter().filter(|t| notes.contains_key(*t)).count();
        if present != 0 && present != b.tags.len() {
            errors.push(format!(
                "batch {:?}: {present} of {} records present (half-applied)",
                b.tags,
                b.tags.len()
            ));
        }
        if b.acked && present != b.tags.len() {
            errors.push(format!(
                "batch {:?}: acknowledged, {present} records present",
                b.tags
            ));
        }
        if present == b.tags.len() {
            keep_batches.push(Batch { acked: true, ..b });
        }
    }
    l.batches = keep_batches;

    // Files: acknowledged uploads present with their content; every
    // stored file belongs to a record.
    let docs: HashMap<String, Value> = list_all(c, "docs")?
        .into_iter()
        .map(|r| (r["tag"].as_str().unwrap_or_default().to_string(), r))
        .collect();
    let mut owned: HashMap<String, String> = HashMap::new();
    let mut gone = Vec::new();
    for (tag, d) in l.docs.iter_mut() {
        match docs.get(tag) {
            Some(r) => {
                let id = r["id"].as_str().unwrap_or_default().to_string();
                let file = r["doc"].as_str().unwrap_or_default().to_string();
                if d.acked && (d.id.as_deref() != Some(&id) || d.file.as_deref() != Some(&file)) {
                    errors.push(format!(
                        "doc {tag}: found {id}/{file}, acknowledged as {:?}/{:?}",
                        d.id, d.file
                    ));
                }
                let got = c.get(&format!("/api/files/docs/{id}/{file}"))?;
                let sha: [u8; 32] = Sha256::digest(&got.body).into();
                if !got.ok() || sha != d.sha {
                    errors.push(format!(
                        "doc {tag}: the record is there, its file {file} {}",
                        if got.ok() {
                            format!("has other content ({} bytes)", got.body.len())
                        } else {
                            format!("answers {}", got.status)
                        }
                    ));
                }
                if d.acked {
                    v.checked += 1;
                } else {
                    v.unacked_kept += 1;
                }
                d.acked = true;
                d.id = Some(id.clone());
                d.file = Some(file.clone());
                owned.insert(id, file);
            }
            None => {
                if d.acked {
                    errors.push(format!("doc {tag}: acknowledged ({:?}) and missing", d.id));
                } else {
                    v.unacked_lost += 1;
                }
                gone.push(tag.clone());
            }
        }
    }
    for t in gone {
        l.docs.remove(&t);
    }
    for tag in docs.keys() {
        if !l.docs.contains_key(tag) {
            errors.push(format!("doc {tag:?} was never written"));
        }
    }
    let storage = mnt.join("storage").join(&s.docs_id);
    if let Ok(rd) = std::fs::read_dir(&storage) {
        for e in rd.flatten() {
            let rec = e.file_name().to_string_lossy().to_string();
            let files: Vec<String> = std::fs::read_dir(e.path())
                .map(|r| {
                    r.flatten()
                        .map(|f| f.file_name().to_string_lossy().to_string())
                        .collect()
                })
                .unwrap_or_default();
            match owned.get(&rec) {
                None => v.orphans.push(format!(
                    "orphan: storage/{}/{rec}/ {files:?} belongs to no record",
                    s.docs_id
                )),
                Some(want) => {
                    for f in files.iter().filter(|f| *f != want) {
                        v.orphans
                            .push(format!("orphan: storage/{}/{rec}/{f}", s.docs_id));
                    }
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(mnt.join(".uploads")) {
        let left: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        if !left.is_empty() {
            errors.push(format!(".uploads not cleared at start: {left:?}"));
        }
    }

    // Backups: acknowledged ones listed and whole (a zip's end record).
    let r = c.get("/api/backups")?;
    if !r.ok() {
        bail!("listing backups: {} {}", r.status, r.text());
    }
    let listed: Vec<String> = r
        .json()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b["key"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut gone = Vec::new();
    for (name, acked) in l.backups.iter_mut() {
        let path = mnt.join("backups").join(name.as_str());
        let here = listed.contains(name);
        if here {
            let bytes = std::fs::read(&path).unwrap_or_default();
            let tail = &bytes[bytes.len().saturating_sub(66_000)..];
            if !tail.windows(4).any(|w| w == b"PK\x05\x06") {
                errors.push(format!(
                    "backup {name}: listed but not a whole zip ({} bytes)",
                    bytes.len()
                ));
            }
            if *acked {
                v.checked += 1;
            } else {
                v.unacked_kept += 1;
            }
            *acked = true;
        } else {
            if *acked {
                errors.push(format!("backup {name}: acknowledged and missing"));
            } else {
                v.unacked_lost += 1;
            }
            gone.push(name.clone());
        }
    }
    for n in gone {
        l.backups.remove(&n);
    }
    if let Ok(rd) = std::fs::read_dir(mnt.join("backups")) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if !listed.contains(&n) {
                errors.push(format!("backups/{n}: left over, not a listed backup"));
            }
        }
    }
    if orphans_warn {
        for o in &v.orphans {
            println!("  warning: {o}");
        }
    } else {
        errors.extend(v.orphans.iter().cloned());
    }
    if !errors.is_empty() {
        errors.truncate(30);
        bail!("{} problem(s):\n  {}", errors.len(), errors.join("\n  "));
    }
    Ok(v)
}
