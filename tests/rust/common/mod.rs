//! The one harness of the integration tests: `TestServer` boots the real
//! `keepd` binary on `127.0.0.1:0` with a fresh private data dir, and a tiny
//! HTTP/1.1 client over `std::net::TcpStream` talks to it (the bad-input
//! tests need raw sockets anyway, so one client serves both).
//!
//! Setting `KEEPD_TEST_BIN=/path/to/pocketbase` runs the API-level tests
//! against the reference PocketBase instead (free port, readiness by
//! polling /api/health): the expected values are PocketBase's contract.
#![allow(dead_code)]

#[cfg(feature = "postgres")]
pub mod pg;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const SU_EMAIL: &str = "admin@example.com";
pub const SU_PASSWORD: &str = "admin-password-123";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The server binary under test.
pub fn bin() -> PathBuf {
    match std::env::var_os("KEEPD_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_keepd")),
    }
}

/// True when the suite runs against the reference PocketBase.
pub fn is_reference() -> bool {
    bin()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("pocketbase"))
}

/// Whether a test that cannot run must fail instead of skipping: under CI
/// (`CI` set, as CI systems and `.ci/run` set it) and under `./dev.sh test`
/// (`KEEPD_TESTS_STRICT=1`), where a skip would pass unseen.
/// The suite runs under qemu-user (`cross/build.sh --test` sets
/// KEEPD_TESTS_UNDER_QEMU): a few checks measure what the emulator itself
/// changes — its helper thread in every process, its own memory in the
/// RSS. They are skipped there, saying why; the same run checks them
/// natively first.
pub fn under_qemu(why: &str) -> bool {
    let yes = std::env::var_os("KEEPD_TESTS_UNDER_QEMU").is_some();
    if yes {
        eprintln!("skipped under qemu-user: {why}");
    }
    yes
}

pub fn strict() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    on("CI") || on("KEEPD_TESTS_STRICT")
}

/// A test's missing prerequisite: a failure under [`strict`], else a skip
/// said on stderr (`cargo test -- --nocapture` shows it). Returns only when
/// the caller should skip.
pub fn missing_prerequisite(what: &str, fix: &str) {
    assert!(
        !strict(),
        "cannot run: {what} ({fix}); a skipped test would pass unseen under CI"
    );
    eprintln!("SKIPPED: {what} ({fix})");
}

/// The reference PocketBase binary: `KEEPD_PB_BIN`, else the one
/// tests/compat installs; `None` (a skip, or a failure under [`strict`])
/// when it is missing.
pub fn reference_pocketbase() -> Option<std::path::PathBuf> {
    let p = match std::env::var_os("KEEPD_PB_BIN") {
        Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/compat/.venv/bin/pocketbase"),
    };
    if p.is_file() {
        return Some(p);
    }
    missing_prerequisite(
        &format!("the reference PocketBase at {}", p.display()),
        "run tests/compat/setup.sh, or set KEEPD_PB_BIN",
    );
    None
}

/// The reference PocketBase serving `dir` on a loopback port; killed on
/// drop (never stopped cleanly, so what it wrote may be left in its WAL).
pub struct PocketBase {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl PocketBase {
    /// Starts it and waits until `/api/health` answers 200 (30 s at most).
    pub fn start(bin: &std::path::Path, dir: &std::path::Path) -> PocketBase {
        use std::time::{Duration, Instant};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new(bin)
            .args(["serve", "--dir"])
            .arg(dir)
            .args(["--http", &addr.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn pocketbase");
        let pb = PocketBase { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !raw_at(addr, "GET", "/api/health", &[], None).is_ok_and(|r| r.status == 200) {
            assert!(Instant::now() < deadline, "pocketbase did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        pb
    }
}

impl Drop for PocketBase {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `openssl` command in `dir` (test CAs and certificates); a
/// failure fails the test with openssl's own message.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA in `dir`: `NAME.key` and `NAME.pem` (P-256, 3 days).
pub fn test_ca(dir: &std::path::Path, name: &str) {
    let (key, pem, subj) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN=keepd test {name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "3",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A server certificate in `dir` signed by the CA `ca` there:
/// `NAME.key` (0600) and `NAME.pem`, for the subject alternative names
/// `san` (e.g. `DNS:localhost`), CN localhost.
pub fn test_leaf(dir: &std::path::Path, ca: &str, name: &str, san: &str) {
    use std::os::unix::fs::PermissionsExt;
    let (ext, key, csr, pem) = (
        format!("{name}.ext"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            "/CN=localhost",
        ],
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "3",
            "-extfile",
            &ext,
        ],
    );
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600))
        .expect("chmod key");
}

/// Environment every keepd child gets: no /etc config, fast hashing.
pub fn base_env() -> Vec<(String, String)> {
    vec![
        ("KEEPD_NO_ETC".into(), "1".into()),
        ("KEEPD_ARGON2_MEMORY_KIB".into(), "8192".into()),
        ("KEEPD_ARGON2_ITERATIONS".into(), "1".into()),
        ("KEEPD_LOG".into(), "warn".into()),
    ]
}

/// A `keepd` command with the test environment (and nothing inherited that
/// starts with KEEPD_, so the caller's shell cannot change a test).
pub fn keepd_cmd() -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("KEEPD_") {
            c.env_remove(&k);
        }
    }
    for (k, v) in base_env() {
        c.env(k, v);
    }
    c
}

// ---------------------------------------------------------------------------
// Temporary directories (no dev-dependency for one struct).

/// A private temporary directory, removed on drop.
pub struct TempRoot {
    pub path: PathBuf,
}

impl TempRoot {
    pub fn new(tag: &str) -> Arc<TempRoot> {
        TempRoot::under(&std::env::temp_dir(), tag)
    }

    /// Under cargo's target dir: a real disk even where /tmp is a tmpfs
    /// (for tests that read the kernel's storage-write counters).
    #[allow(dead_code)]
    pub fn on_disk(tag: &str) -> Arc<TempRoot> {
        TempRoot::under(Path::new(env!("CARGO_TARGET_TMPDIR")), tag)
    }

    fn under(base: &Path, tag: &str) -> Arc<TempRoot> {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = base.join(format!(
            "keepd-it-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp root");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .expect("chmod temp root");
        Arc::new(TempRoot { path })
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// The server.

pub struct ServerBuilder {
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// Arguments for both `superuser upsert` and `serve` (`--config`).
    common: Vec<String>,
    root: Option<Arc<TempRoot>>,
    superuser: bool,
}

pub struct TestServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub base: String,
    pub root: Arc<TempRoot>,
    /// The data dir (`<root>/data`).
    pub dir: PathBuf,
    output: Arc<Mutex<String>>,
    su_token: OnceLock<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

fn collect_output(
    r: impl Read + Send + 'static,
    out: Arc<Mutex<String>>,
    ready: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut rd = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match rd.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(tx) = &ready {
                for marker in ["keepd listening on http://", "Server started at http://"] {
                    if let Some(i) = line.find(marker) {
                        let _ = tx.send(
                            line[i + marker.len()..]
                                .trim()
                                .trim_end_matches('/')
                                .to_string(),
                        );
                    }
                }
            }
            let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
            if o.len() > 64 * 1024 {
                let cut = o.len() - 32 * 1024;
                let cut = (cut..o.len())
                    .find(|i| o.is_char_boundary(*i))
                    .unwrap_or(o.len());
                o.replace_range(..cut, "…");
            }
            o.push_str(&line);
        }
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl ServerBuilder {
    /// An extra environment variable for `keepd serve`.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// An extra argument for `keepd serve`.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    /// `--config FILE` for `superuser upsert` and `serve` alike.
    pub fn config(mut self, path: &Path) -> Self {
        let p = path.to_string_lossy().to_string();
        self.common.extend(["--config".to_string(), p.clone()]);
        self.args.extend(["--config".to_string(), p]);
        self
    }
    /// Reuse a root (and its `data` dir) from an earlier server.
    pub fn root(mut self, root: Arc<TempRoot>) -> Self {
        self.root = Some(root);
        self
    }
    /// Skip `superuser upsert` (e.g. on restart).
    pub fn no_superuser(mut self) -> Self {
        self.superuser = false;
        self
    }

    pub fn try_start(self) -> Result<TestServer, String> {
        let root = self.root.unwrap_or_else(|| TempRoot::new("srv"));
        let dir = root.path.join("data");
        let dir_s = dir.to_string_lossy().to_string();
        if self.superuser {
            let out = keepd_cmd()
                .args([
                    "superuser",
                    "upsert",
                    SU_EMAIL,
                    SU_PASSWORD,
                    "--dir",
                    &dir_s,
                ])
                .args(&self.common)
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .current_dir(&root.path)
                .output()
                .map_err(|e| format!("spawn superuser upsert: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "superuser upsert failed ({}):\n{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let reference = is_reference();
        let http = if reference {
            format!("127.0.0.1:{}", free_port())
        } else {
            "127.0.0.1:0".to_string()
        };
        let mut cmd = keepd_cmd();
        cmd.args(["serve", "--http", &http, "--dir", &dir_s])
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&root.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("spawn serve: {e}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        collect_output(
            child.stdout.take().expect("stdout"),
            output.clone(),
            Some(tx.clone()),
        );
        collect_output(
            child.stderr.take().expect("stderr"),
            output.clone(),
            Some(tx),
        );
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr: SocketAddr = loop {
            if let Ok(Some(st)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "server exited before listening ({st}):\n{}",
                    output.lock().unwrap_or_else(|e| e.into_inner())
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "server did not start within {READY_TIMEOUT:?}:\n{}",
                    output.lock().unwrap_or_else(|e| e.into_inner())
                ));
            }
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(50)) {
                if let Ok(a) = a.parse::<SocketAddr>() {
                    if a.port() != 0 {
                        break a;
                    }
                }
                if reference {
                    if let Ok(a) = http.parse::<SocketAddr>() {
                        break a;
                    }
                }
            }
        };
        let srv = TestServer {
            child: Some(child),
            addr,
            base: format!("http://{addr}"),
            root,
            dir,
            output,
            su_token: OnceLock::new(),
            env: self.env,
            args: self.args,
        };
        // Readiness: the health route answers.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = srv.try_raw("GET", "/api/health", &[], None) {
                if r.status == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("health never answered 200:\n{}", srv.output()));
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        Ok(srv)
    }

    pub fn start(self) -> TestServer {
        match self.try_start() {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }
}

impl TestServer {
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            env: Vec::new(),
            args: Vec::new(),
            common: Vec::new(),
            root: None,
            superuser: true,
        }
    }

    /// A fresh server with a superuser (`SU_EMAIL` / `SU_PASSWORD`).
    pub fn start() -> TestServer {
        Self::builder().start()
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn db_path(&self) -> PathBuf {
        // keepd and PocketBase both keep their records in data.db.
        self.dir.join("data.db")
    }

    /// The OS process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, as a power cut would: no drain, no shutdown hooks.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a new server on the same data dir (same env and args).
    pub fn restart(&mut self) -> TestServer {
        self.kill9();
        let mut b = Self::builder().root(self.root.clone()).no_superuser();
        b.env = self.env.clone();
        b.args = self.args.clone();
        b.start()
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    // -- HTTP -------------------------------------------------------------

    /// One request on a fresh connection (`Connection: close`).
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        raw_at(self.addr, method, path, headers, body)
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        match self.try_raw(method, path, headers, body) {
            Ok(r) => r,
            Err(e) => panic!("{method} {path}: {e}\nserver output:\n{}", self.output()),
        }
    }

    /// A client without credentials.
    pub fn guest(&self) -> Client<'_> {
        Client {
            srv: self,
            token: None,
        }
    }

    /// A client with the given auth token.
    pub fn with_token(&self, token: &str) -> Client<'_> {
        Client {
            srv: self,
            token: Some(token.to_string()),
        }
    }

    /// A superuser client (token fetched once and cached).
    pub fn su(&self) -> Client<'_> {
        let t = self.superuser_token();
        self.with_token(&t)
    }

    pub fn superuser_token(&self) -> String {
        self.su_token
            .get_or_init(|| {
                let (st, v) = self.guest().post(
                    "/api/collections/_superusers/auth-with-password",
                    &json!({"identity": SU_EMAIL, "password": SU_PASSWORD}),
                );
                assert_eq!(st, 200, "superuser auth: {v}");
                v["token"].as_str().expect("token").to_string()
            })
            .clone()
    }

    /// Creates a collection as superuser; panics unless 200.
    pub fn create_collection(&self, def: &Value) -> Value {
        let (st, v) = self.su().post("/api/collections", def);
        assert_eq!(st, 200, "create collection {}: {v}", def["name"]);
        v
    }

    /// Turns rate limiting off (as superuser; panics unless 200): for tests
    /// that send many requests from one address (limits are tested in
    /// guard.rs).
    pub fn rate_limits_off(&self) {
        let (st, v) = self.su().patch(
            "/api/settings",
            &serde_json::json!({"rateLimits": {"enabled": false}}),
        );
        assert_eq!(st, 200, "rate limits off: {v}");
    }

    /// Signs a user up in `users` and authenticates: (record id, token).
    pub fn sign_up(&self, email: &str, password: &str) -> (String, String) {
        let (st, v) = self.guest().post(
            "/api/collections/users/records",
            &json!({"email": email, "password": password, "passwordConfirm": password}),
        );
        assert_eq!(st, 200, "sign up {email}: {v}");
        let id = v["id"].as_str().expect("id").to_string();
        let (st, v) = self.guest().post(
            "/api/collections/users/auth-with-password",
            &json!({"identity": email, "password": password}),
        );
        assert_eq!(st, 200, "auth {email}: {v}");
        (id, v["token"].as_str().expect("token").to_string())
    }

    /// Opens the database read-only (for asserting stored content).
    pub fn open_db(&self) -> rusqlite::Connection {
        open_db_ro(&self.db_path())
    }
}

/// One request to `addr` on a fresh connection (`Connection: close`): any
/// server, keepd or another.
pub fn raw_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        addr
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    if let Some(b) = body {
        req.extend_from_slice(b);
    }
    s.write_all(&req)?;
    read_response(&mut s)
}

pub fn open_db_ro(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db read-only")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let out = self.output();
            let tail: String = out
                .chars()
                .rev()
                .take(6000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            eprintln!(
                "---- server output ({}) ----\n{tail}\n---- end ----",
                self.base
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Client.

pub struct Client<'a> {
    pub srv: &'a TestServer,
    pub token: Option<String>,
}

impl Client<'_> {
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let b = body.map(|b| b.to_string().into_bytes());
        self.send_bytes(method, path, b.as_deref())
    }

    pub fn send_bytes(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(t) = &self.token {
            headers.push(("Authorization", t));
        }
        let r = self.srv.raw(method, path, &headers, body);
        (r.status, r.json())
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, Some(body))
    }
    pub fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("PATCH", path, Some(body))
    }
    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None)
    }

    /// GET a records list with query parameters (encoded here).
    pub fn list(&self, collection: &str, query: &[(&str, &str)]) -> (u16, Value) {
        self.get(&format!(
            "/api/collections/{collection}/records{}",
            qs(query)
        ))
    }
}

// ---------------------------------------------------------------------------
// Raw HTTP.

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON (`Null` when empty, a string when not JSON).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.body).into_owned()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find_subslice(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Reads one HTTP/1.1 response (content-length, chunked, or until EOF).
pub fn read_response(s: &mut impl Read) -> std::io::Result<Resp> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find_subslice(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a response head ({} bytes)",
                    buf.len()
                ),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    let body = if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < len {
            let n = s.read(&mut tmp)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Read to EOF (we always send Connection: close), then decode.
        loop {
            let n = s.read(&mut tmp)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        let mut out = Vec::new();
        let mut p = &rest[..];
        while let Some(i) = find_subslice(p, b"\r\n") {
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&p[..i])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .unwrap_or(0);
            p = &p[i + 2..];
            if size == 0 || p.len() < size {
                break;
            }
            out.extend_from_slice(&p[..size]);
            p = &p[(size + 2).min(p.len())..];
        }
        out
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        loop {
            let n = s.read(&mut tmp)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        rest
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Percent-encodes a query component.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&…` (empty for no pairs).
pub fn qs(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

/// Asserts a PocketBase error body: `{status, message, data}` with the
/// given status, a non-empty message and an object `data`.
pub fn assert_error_shape(v: &Value, status: u16, ctx: &str) {
    assert_eq!(v["status"], json!(status), "{ctx}: status in body: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{ctx}: message: {v}"
    );
    assert!(v["data"].is_object(), "{ctx}: data must be an object: {v}");
    let keys: Vec<&String> = v
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 3, "{ctx}: exactly status/message/data: {v}");
}

/// The `id`s of a list response's items.
pub fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A field of every item in a list response, as strings, in order.
pub fn column(v: &Value, field: &str) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| match &x[field] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One counter of a `/proc/…/io` file (a process's, or a thread's under
/// `task/TID/`): `write_bytes`, `syscw`, …; None when the file or the line
/// is missing.
pub fn proc_io(file: &Path, counter: &str) -> Option<u64> {
    std::fs::read_to_string(file).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix(counter)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A unique-enough suffix for emails and names.
pub fn uniq(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------
// One-shot commands.

/// How a command ended.
#[derive(Debug)]
pub struct Outcome {
    /// None: still running at the deadline (then killed).
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.status.is_some_and(|s| !s.success())
    }
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `cmd` to its end, or kills it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Outcome {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    collect_output(child.stdout.take().expect("stdout"), out.clone(), None);
    collect_output(child.stderr.take().expect("stderr"), err.clone(), None);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // Let the reader threads drain the pipes.
    std::thread::sleep(Duration::from_millis(50));
    let get = |m: &Arc<Mutex<String>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Outcome {
        status,
        stdout: get(&out),
        stderr: get(&err),
    }
}

/// `keepd serve --http 127.0.0.1:0 --dir DIR ARGS…` run until it exits or
/// `timeout` passes (a server that starts is killed at the deadline).
/// `--http` is left out when ARGS or ENV set the address.
pub fn serve_once(dir: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Outcome {
    let mut cmd = keepd_cmd();
    cmd.arg("serve");
    if !args.contains(&"--http") && !env.iter().any(|(k, _)| *k == "KEEPD_HTTP") {
        cmd.args(["--http", "127.0.0.1:0"]);
    }
    cmd.arg("--dir").arg(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_with_timeout(cmd, timeout)
}

/// The permission bits of a path.
pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

/// A multipart/form-data body of `parts` (name, file name for a file part,
/// content): (Content-Type header, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "keepdtestboundary7d3a";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
