//! Socket activation the way systemd does it: `systemd-socket-activate`
//! (from the systemd package) binds the port and starts keepd on the first
//! connection with LISTEN_FDS/LISTEN_PID; keepd serves on that socket and
//! ignores its `http` setting.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serves_on_the_socket_the_service_manager_passes() {
    if is_reference() {
        return;
    }
    let Ok(tool) = which("systemd-socket-activate") else {
        missing_prerequisite(
            "systemd-socket-activate is not installed",
            "apt-get install systemd, or ./dev.sh deps",
        );
        return;
    };
    let root = TempRoot::new("sock");
    let dir = root.path.join("data");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cmd = Command::new(tool);
    cmd.arg("-l").arg(format!("127.0.0.1:{port}"));
    for (k, v) in base_env() {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    // An `http` the socket must win over.
    cmd.arg(bin())
        .args(["serve", "--http", "127.0.0.1:1", "--dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let until = Instant::now() + Duration::from_secs(20);
    let mut answered = None;
    while Instant::now() < until {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let _ = write!(
                s,
                "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            if let Ok(r) = read_response(&mut s) {
                answered = Some(r);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let r = answered.unwrap_or_else(|| panic!("no answer on the passed socket:\n{log}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["message"], "API is healthy.");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .ok_or(())
}

/// With socket activation keepd still binds `admin_http` itself: the passed
/// socket serves users and refuses superusers, the admin listener serves them.
#[test]
fn binds_the_admin_listener_itself_under_socket_activation() {
    if is_reference() {
        return;
    }
    let Ok(tool) = which("systemd-socket-activate") else {
        missing_prerequisite(
            "systemd-socket-activate is not installed",
            "apt-get install systemd, or ./dev.sh deps",
        );
        return;
    };
    let root = TempRoot::new("sockadm");
    let dir = root.path.join("data");
    let dir_s = dir.to_string_lossy().to_string();
    let out = keepd_cmd()
        .args([
            "superuser",
            "upsert",
            SU_EMAIL,
            SU_PASSWORD,
            "--dir",
            &dir_s,
        ])
        .output()
        .expect("superuser upsert");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let (public, admin) = (free(), free());
    let mut cmd = Command::new(tool);
    cmd.arg("-l").arg(public.to_string());
    for (k, v) in base_env() {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    cmd.arg(bin())
        .args(["serve", "--http", "127.0.0.1:1", "--admin-http"])
        .arg(admin.to_string())
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let sign_in = |addr| {
        let body = serde_json::json!({"identity": SU_EMAIL, "password": SU_PASSWORD}).to_string();
        raw_at(
            addr,
            "POST",
            "/api/collections/_superusers/auth-with-password",
            &[],
            Some(body.as_bytes()),
        )
    };
    // The first connection to the passed socket starts keepd.
    let until = Instant::now() + Duration::from_secs(20);
    let mut on_public = None;
    while Instant::now() < until {
        if let Ok(r) = sign_in(public) {
            on_public = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut on_admin = None;
    while on_admin.is_none() && Instant::now() < until {
        on_admin = sign_in(admin).ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let p = on_public.unwrap_or_else(|| panic!("no answer on the passed socket:\n{log}"));
    assert_eq!(p.status, 403, "{}", p.text());
    let a = on_admin.unwrap_or_else(|| panic!("no answer on the admin listener:\n{log}"));
    assert_eq!(a.status, 200, "{}", a.text());
}
