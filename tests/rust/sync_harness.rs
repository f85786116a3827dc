//! What the sync tests share: a test CA and a hub certificate (openssl),
//! a hub (`[sync] role = "hub"`, HTTPS on loopback), devices enrolled with
//! `keepd sync enrol` before they serve, and waiting for a condition with a
//! deadline.
#![allow(dead_code)]

use crate::common::{keepd_cmd, test_ca, test_leaf, TempRoot, TestServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test CA and a certificate for 127.0.0.1 / localhost signed by it.
pub struct Pki {
    pub root: Arc<TempRoot>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let root = TempRoot::new("pki");
        let d = root.path.clone();
        test_ca(&d, "ca");
        Pki::leaf(&d, "hub");
        Pki {
            ca: d.join("ca.pem"),
            cert: d.join("hub.pem"),
            key: d.join("hub.key"),
            root,
        }
    }

    /// A new certificate and key for the hub (same CA), e.g. to test a reload.
    pub fn leaf(d: &Path, name: &str) {
        test_leaf(d, "ca", name, "IP:127.0.0.1,DNS:localhost");
    }
}

/// Waits until `f` holds, or panics with `what` after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The HTTPS address a server printed.
pub fn https_addr(srv: &TestServer) -> SocketAddr {
    let out = srv.output();
    let marker = "keepd listening on https://";
    let i = out.find(marker).expect("no https line in the output");
    out[i + marker.len()..]
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("https address")
}

pub struct Hub {
    pub srv: TestServer,
    pub https: SocketAddr,
}

/// Environment of a hub serving HTTPS with the test certificate.
pub fn hub_env(pki: &Pki) -> Vec<(String, String)> {
    let mut v = log_env();
    v.extend([
        ("KEEPD_SYNC_ROLE".into(), "hub".into()),
        ("KEEPD_HTTPS".into(), "127.0.0.1:0".into()),
        ("KEEPD_TLS_CERT_FILE".into(), pki.cert.display().to_string()),
        ("KEEPD_TLS_KEY_FILE".into(), pki.key.display().to_string()),
    ]);
    v
}

/// `KEEPD_SYNC_TEST_LOG=debug` (say) sets the log filter of every hub and
/// device the sync tests start.
fn log_env() -> Vec<(String, String)> {
    match std::env::var("KEEPD_SYNC_TEST_LOG") {
        Ok(l) if !l.is_empty() => vec![("KEEPD_LOG".into(), l)],
        _ => Vec::new(),
    }
}

impl Hub {
    pub fn start(pki: &Pki, extra: &[(&str, &str)]) -> Hub {
        let mut b = TestServer::builder();
        for (k, v) in hub_env(pki) {
            b = b.env(&k, &v);
        }
        for (k, v) in extra {
            b = b.env(k, v);
        }
        let srv = b.start();
        let https = https_addr(&srv);
        Hub { srv, https }
    }

    /// Restarts the hub on its data (same env); the HTTPS port changes.
    pub fn restart(&mut self) {
        self.srv = self.srv.restart();
        self.https = https_addr(&self.srv);
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.https)
    }

    /// A collection for the tests (open rules unless given).
    pub fn collection(&self, def: Value) -> Value {
        self.srv.create_collection(&def)
    }

    /// Sets the synced collections: `[(name, direction)]`.
    pub fn sync_collections(&self, list: &[(&str, &str)]) {
        let body: Vec<Value> = list
            .iter()
            .map(|(c, d)| json!({"collection": c, "direction": d}))
            .collect();
        let (st, v) = self
            .srv
            .su()
            .send("PUT", "/api/sync/collections", Some(&json!(body)));
        assert_eq!(st, 200, "sync collections: {v}");
    }

    /// Creates a device: (id, enrolment token).
    pub fn device(&self, name: &str) -> (String, String) {
        let (st, v) = self
            .srv
            .su()
            .post("/api/sync/devices", &json!({"name": name}));
        assert_eq!(st, 200, "create device: {v}");
        (
            v["device"]["id"].as_str().expect("id").to_string(),
            v["token"].as_str().expect("token").to_string(),
        )
    }
}

/// `keepd sync enrol` for a device whose data dir is `<root>/data`.
pub fn enrol(root: &TempRoot, hub_url: &str, token: &str, ca: &Path) -> std::process::Output {
    let dir = root.path.join("data");
    keepd_cmd()
        .args([
            "sync",
            "enrol",
            "--hub",
            hub_url,
            "--token",
            token,
            "--ca-file",
            &ca.display().to_string(),
            "--dir",
            &dir.display().to_string(),
        ])
        .output()
        .expect("spawn keepd sync enrol")
}

/// Device environment (fast retries, short polls for tests).
pub fn device_env(hub_url: &str, ca: &Path) -> Vec<(String, String)> {
    let mut v = log_env();
    v.extend([
        ("KEEPD_SYNC_ROLE".into(), "device".into()),
        ("KEEPD_SYNC_HUB".into(), hub_url.into()),
        ("KEEPD_SYNC_CA_FILE".into(), ca.display().to_string()),
        ("KEEPD_SYNC_POLL_SECS".into(), "5".into()),
        ("KEEPD_SYNC_RETRY_MAX_SECS".into(), "2".into()),
        ("KEEPD_SYNC_REQUEST_TIMEOUT_SECS".into(), "10".into()),
        ("KEEPD_SYNC_CONNECT_TIMEOUT_SECS".into(), "3".into()),
    ]);
    v
}

/// A device enrolled with the hub (through `hub_url`, e.g. a proxy), serving.
pub fn start_device(
    hub: &Hub,
    hub_url: &str,
    ca: &Path,
    name: &str,
    extra: &[(&str, &str)],
) -> (TestServer, String) {
    let (id, token) = hub.device(name);
    let root = TempRoot::new("dev");
    std::fs::create_dir_all(root.path.join("data")).expect("data dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.path.join("data"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let out = enrol(&root, hub_url, &token, ca);
    assert!(
        out.status.success(),
        "enrol failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut b = TestServer::builder().root(root);
    for (k, v) in device_env(hub_url, ca) {
        b = b.env(&k, &v);
    }
    for (k, v) in extra {
        b = b.env(k, v);
    }
    (b.start(), id)
}

/// The records of a collection as `id → record` (superuser, all pages).
pub fn all_records(srv: &TestServer, coll: &str) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    let mut page = 1;
    loop {
        let (st, v) = srv.su().list(
            coll,
            &[
                ("page", &page.to_string()),
                ("perPage", "500"),
                ("sort", "id"),
            ],
        );
        assert_eq!(st, 200, "list {coll}: {v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        for it in &items {
            out.insert(
                it["id"].as_str().unwrap_or_default().to_string(),
                it.clone(),
            );
        }
        if items.len() < 500 {
            break;
        }
        page += 1;
    }
    out
}

/// `GET /api/sync/status` as superuser.
pub fn status(srv: &TestServer) -> Value {
    let (st, v) = srv.su().get("/api/sync/status");
    assert_eq!(st, 200, "status: {v}");
    v
}

// ---------------------------------------------------------------------------
// A seeded PRNG (splitmix64): failing seeds are printed and replayed.

#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.below(v.len() as u64) as usize])
        }
    }
}

// ---------------------------------------------------------------------------
// A fault-injecting TCP proxy between a device and the hub.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What the proxy did to connections (for the test's report).
#[derive(Default, Debug)]
pub struct ProxyCounts {
    pub clean: AtomicU64,
    pub refused: AtomicU64,
    pub cut: AtomicU64,
    pub delayed: AtomicU64,
    pub stalled: AtomicU64,
    /// Bytes forwarded client → server and server → client.
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

struct ProxyState {
    upstream: Mutex<SocketAddr>,
    online: AtomicBool,
    faults: AtomicBool,
    rng: Mutex<Rng>,
    live: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    counts: ProxyCounts,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
}

#[derive(Clone, Copy)]
enum Fault {
    Clean,
    /// Close after this many bytes from the server.
    Cut(u64),
    /// Hold each chunk from the server this long.
    Delay(u64),
    /// Forward nothing, close after this long.
    Stall(u64),
}

impl Proxy {
    pub fn start(upstream: SocketAddr, seed: u64) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = l.local_addr().expect("proxy addr");
        let state = Arc::new(ProxyState {
            upstream: Mutex::new(upstream),
            online: AtomicBool::new(true),
            faults: AtomicBool::new(false),
            rng: Mutex::new(Rng::new(seed)),
            live: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            counts: ProxyCounts::default(),
        });
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve_conn(st, client));
            }
        });
        Proxy { addr, state }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Offline: new connections are refused and open ones cut.
    pub fn set_online(&self, on: bool) {
        self.state.online.store(on, Ordering::SeqCst);
        if !on {
            let mut g = self.state.live.lock().unwrap_or_else(|e| e.into_inner());
            for s in g.drain(..) {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Faults on: each connection may be refused, cut mid-response,
    /// delayed or stalled.
    pub fn set_faults(&self, on: bool) {
        self.state.faults.store(on, Ordering::SeqCst);
    }

    pub fn set_upstream(&self, a: SocketAddr) {
        *self
            .state
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = a;
    }

    pub fn counts(&self) -> &ProxyCounts {
        &self.state.counts
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.set_online(false);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_conn(st: Arc<ProxyState>, client: TcpStream) {
    if !st.online.load(Ordering::SeqCst) {
        st.counts.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let fault = if st.faults.load(Ordering::SeqCst) {
        let mut r = st.rng.lock().unwrap_or_else(|e| e.into_inner());
        let x = r.below(100);
        match x {
            0..=9 => {
                st.counts.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            10..=24 => Fault::Cut(r.below(6000)),
            25..=34 => Fault::Delay(20 + r.below(300)),
            35..=37 => Fault::Stall(12_000),
            _ => Fault::Clean,
        }
    } else {
        Fault::Clean
    };
    match fault {
        Fault::Clean => st.counts.clean.fetch_add(1, Ordering::Relaxed),
        Fault::Cut(_) => st.counts.cut.fetch_add(1, Ordering::Relaxed),
        Fault::Delay(_) => st.counts.delayed.fetch_add(1, Ordering::Relaxed),
        Fault::Stall(_) => st.counts.stalled.fetch_add(1, Ordering::Relaxed),
    };
    if let Fault::Stall(ms) = fault {
        std::thread::sleep(Duration::from_millis(ms));
        let _ = client.shutdown(std::net::Shutdown::Both);
        return;
    }
    let up = *st.upstream.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(server) = TcpStream::connect_timeout(&up, Duration::from_secs(2)) else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    {
        let mut g = st.live.lock().unwrap_or_else(|e| e.into_inner());
        g.retain(|s| s.peer_addr().is_ok());
        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
            g.push(a);
            g.push(b);
        }
    }
    let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let st_up = st.clone();
    let up_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    st_up.counts.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = [0u8; 16384];
    let mut sent: u64 = 0;
    loop {
        match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut n = n;
                if let Fault::Cut(at) = fault {
                    if sent + n as u64 > at {
                        n = (at - sent.min(at)) as usize;
                        let _ = c_write.write_all(&buf[..n]);
                        let _ = c_write.shutdown(std::net::Shutdown::Both);
                        let _ = s_read.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                }
                if let Fault::Delay(ms) = fault {
                    std::thread::sleep(Duration::from_millis(ms));
                }
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n as u64;
                st.counts.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Both);
    let _ = s_read.shutdown(std::net::Shutdown::Both);
    let _ = up_thread.join();
}
