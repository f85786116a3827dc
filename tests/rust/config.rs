//! Configuration: defaults < --config file < KEEPD_* env < flags; invalid
//! values stop the start with an error naming the key; the CLI answers
//! --version and --help.

use crate::common::*;
use std::time::Duration;

fn data_dir() -> (std::sync::Arc<TempRoot>, std::path::PathBuf) {
    let root = TempRoot::new("cfg");
    let dir = root.path.join("data");
    (root, dir)
}

#[test]
fn invalid_env_values_name_the_key() {
    if is_reference() {
        return;
    }
    let (_root, dir) = data_dir();
    // (variable, value, the key the error must name)
    let cases = [
        ("KEEPD_MAX_CONNECTIONS", "lots", "max_connections"),
        ("KEEPD_MAX_CONNECTIONS", "0", "max_connections"),
        ("KEEPD_MAX_CONNECTIONS", "-3", "max_connections"),
        ("KEEPD_READERS", "0", "readers"),
        ("KEEPD_READERS", "1000", "readers"),
        ("KEEPD_HEADER_TIMEOUT_SECS", "0", "header_timeout_secs"),
        ("KEEPD_HEADER_TIMEOUT_SECS", "soon", "header_timeout_secs"),
        ("KEEPD_MAX_BODY_BYTES", "10", "max_body_bytes"),
        ("KEEPD_MAX_BODY_BYTES", "1.5", "max_body_bytes"),
        ("KEEPD_ARGON2_MEMORY_KIB", "64", "argon2_memory_kib"),
        ("KEEPD_ARGON2_ITERATIONS", "0", "argon2_iterations"),
        ("KEEPD_MAX_CONCURRENT_HASHES", "0", "max_concurrent_hashes"),
        ("KEEPD_MAX_THUMB_WORKERS", "0", "max_thumb_workers"),
        ("KEEPD_MAX_THUMB_PIXELS", "lots", "max_thumb_pixels"),
        ("KEEPD_HTTP", "nonsense", "http"),
        ("KEEPD_HTTP", "127.0.0.1:99999", "http"),
        ("KEEPD_FIX_PERMISSIONS", "maybe", "fix_permissions"),
        ("KEEPD_MAX_FILTER_LEN", "many", "max_filter_len"),
    ];
    let mut failures = Vec::new();
    for (var, value, key) in cases {
        let out = serve_once(&dir, &[], &[(var, value)], Duration::from_secs(10));
        if !out.failed() {
            failures.push(format!(
                "{var}={value}: want a non-zero exit, got {:?}",
                out.status
            ));
        } else if !out.stderr.contains(key) {
            failures.push(format!(
                "{var}={value}: stderr must name `{key}`:\n{}",
                out.stderr
            ));
        }
        if out.stdout.contains("keepd listening") {
            failures.push(format!("{var}={value}: it listened anyway"));
        }
    }
    // The same through a flag (flags win over the environment).
    for bad in ["nonsense", "127.0.0.1:99999", ""] {
        let out = serve_once(
            &dir,
            &["--http", bad],
            &[("KEEPD_HTTP", "127.0.0.1:0")],
            Duration::from_secs(10),
        );
        if !out.failed() || !out.stderr.contains("http") || out.stdout.contains("keepd listening") {
            failures.push(format!(
                "--http {bad:?}: want a non-zero exit naming `http`, got {:?}:\n{}",
                out.status, out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn config_file_errors_name_the_key_or_path() {
    if is_reference() {
        return;
    }
    let (root, dir) = data_dir();
    let file = root.path.join("keepd.toml");
    // (file content, what stderr must contain)
    let cases = [
        ("bogus_key = 1\n", "bogus_key"),
        (
            "max_connections = 10\nlisten_adress = \"x\"\n",
            "listen_adress",
        ),
        ("max_connections = \"many\"\n", "max_connections"),
        ("readers = 0\n", "readers"),
        ("max_body_bytes = -1\n", "max_body_bytes"),
        ("this is not toml\n", "keepd.toml"),
        ("[section]\nmax_connections = 3\n", "section"),
    ];
    let mut failures = Vec::new();
    for (content, must) in cases {
        std::fs::write(&file, content).expect("write config");
        let out = serve_once(
            &dir,
            &["--config", file.to_str().expect("utf8")],
            &[],
            Duration::from_secs(10),
        );
        if !out.failed() || !out.stderr.contains(must) {
            failures.push(format!(
                "{content:?}: want a non-zero exit naming {must:?}, got {:?}:\n{}",
                out.status, out.stderr
            ));
        }
    }
    // A missing file is an error that names it.
    let missing = root.path.join("missing.toml");
    let out = serve_once(
        &dir,
        &["--config", missing.to_str().expect("utf8")],
        &[],
        Duration::from_secs(10),
    );
    if !out.failed() || !out.stderr.contains("missing.toml") {
        failures.push(format!("missing config: {:?}:\n{}", out.status, out.stderr));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn config_file_applies_and_env_overrides_it() {
    if is_reference() {
        return;
    }
    let root = TempRoot::new("cfg");
    let file = root.path.join("keepd.toml");
    std::fs::write(
        &file,
        "max_body_bytes = 2048\nmax_filter_len = 100\nlog = \"warn\"\n",
    )
    .expect("write config");
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(3000));
    let long_filter = format!("id = '{}'", "x".repeat(150));

    // The file's limits apply.
    let srv = TestServer::builder()
        .root(root.clone())
        .arg("--config")
        .arg(file.to_str().expect("utf8"))
        .start();
    // (_superusers: no file or editor fields to widen the cap.)
    let (st, v) = srv.su().send_bytes(
        "POST",
        "/api/collections/_superusers/records",
        Some(body.as_bytes()),
    );
    assert_eq!(st, 413, "max_body_bytes = 2048 from the file: {v}");
    let (st, v) = srv.su().list("users", &[("filter", &long_filter)]);
    assert_eq!(st, 400, "max_filter_len = 100 from the file: {v}");
    drop(srv);

    // The environment overrides the file.
    let srv = TestServer::builder()
        .root(root.clone())
        .no_superuser()
        .arg("--config")
        .arg(file.to_str().expect("utf8"))
        .env("KEEPD_MAX_BODY_BYTES", "65536")
        .env("KEEPD_MAX_FILTER_LEN", "3500")
        .start();
    // (_superusers: no file or editor fields to widen the cap.)
    let (st, v) = srv.su().send_bytes(
        "POST",
        "/api/collections/_superusers/records",
        Some(body.as_bytes()),
    );
    assert_eq!(
        st, 400,
        "the env's 64 KiB cap admits the body (a validation error, not 413): {v}"
    );
    let (st, v) = srv.su().list("users", &[("filter", &long_filter)]);
    assert_eq!(st, 200, "the env's filter length admits the filter: {v}");
}

#[test]
fn version_and_help() {
    if is_reference() {
        return;
    }
    let mut cmd = keepd_cmd();
    cmd.arg("--version");
    let out = run_with_timeout(cmd, Duration::from_secs(10));
    assert!(out.succeeded(), "{out:?}");
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.starts_with("keepd"), "{}", out.stdout);

    let mut cmd = keepd_cmd();
    cmd.arg("--help");
    let out = run_with_timeout(cmd, Duration::from_secs(10));
    assert!(out.succeeded(), "{out:?}");
    for word in ["serve", "superuser"] {
        assert!(
            out.stdout.contains(word),
            "--help lists {word}:\n{}",
            out.stdout
        );
    }

    let mut cmd = keepd_cmd();
    cmd.args(["serve", "--help"]);
    let out = run_with_timeout(cmd, Duration::from_secs(10));
    assert!(out.succeeded(), "{out:?}");
    for flag in ["--http", "--dir", "--config", "--fix-permissions"] {
        assert!(
            out.stdout.contains(flag),
            "serve --help lists {flag}:\n{}",
            out.stdout
        );
    }

    // Usage errors: non-zero, and the message says what was wrong.
    for (args, must) in [
        (&["serve", "--no-such-flag"][..], "--no-such-flag"),
        (&["frobnicate"][..], "frobnicate"),
        (&[][..], "Usage"),
    ] {
        let mut cmd = keepd_cmd();
        cmd.args(args);
        let out = run_with_timeout(cmd, Duration::from_secs(10));
        assert!(out.failed(), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(must),
            "{args:?}: stderr must mention {must:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn superuser_upsert_then_password_change() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let dir = srv.dir.to_str().expect("utf8").to_string();
    // A second upsert for the same email changes the password (while serving).
    let mut cmd = keepd_cmd();
    cmd.args([
        "superuser",
        "upsert",
        SU_EMAIL,
        "a-new-password-456",
        "--dir",
        &dir,
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    assert!(out.succeeded(), "{out:?}");
    let auth = |pw: &str| {
        srv.guest()
            .post(
                "/api/collections/_superusers/auth-with-password",
                &serde_json::json!({"identity": SU_EMAIL, "password": pw}),
            )
            .0
    };
    assert_eq!(auth("a-new-password-456"), 200);
    assert_eq!(auth(SU_PASSWORD), 400);
    // An invalid email is refused.
    let mut cmd = keepd_cmd();
    cmd.args([
        "superuser",
        "upsert",
        "not-an-email",
        "a-new-password-456",
        "--dir",
        &dir,
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    assert!(out.failed(), "{out:?}");
}

/// Built without the `postgres` feature, a PostgreSQL URL (in the file or
/// as the `database-url` credential) stops the start, saying why, and
/// never shows the password.
#[cfg(not(feature = "postgres"))]
#[test]
fn a_postgres_url_without_the_feature_is_refused() {
    if is_reference() {
        return;
    }
    let (root, dir) = data_dir();
    let creds = root.path.join("creds");
    std::fs::create_dir_all(&creds).expect("creds");
    std::fs::write(
        creds.join("database-url"),
        "postgres://keepd:cred-Secret@db.example/app\n",
    )
    .expect("credential");
    let out = keepd_cmd()
        .args(["serve", "--http", "127.0.0.1:0", "--dir"])
        .arg(&dir)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .expect("run keepd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cargo feature `postgres`"), "{text}");
    assert!(!text.contains("cred-Secret"), "{text}");
    assert!(!dir.exists(), "nothing created: {text}");
}
