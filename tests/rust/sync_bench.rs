//! Sync figures for BENCHMARKS.md (ignored: `tests/bench/sync.sh` runs them
//! against a release keepd). Loopback, real processes, TLS.

use crate::common::TestServer;
use crate::sync_harness::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn notes(hub: &Hub) {
    hub.collection(json!({
        "name": "notes", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "done", "type": "bool"},
        ],
    }));
    hub.sync_collections(&[("notes", "both")]);
}

/// Creates `n` records on a server from 4 threads.
fn create_many(srv: &TestServer, n: u64, tag: &str) {
    let token = srv.superuser_token();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let token = token.clone();
            s.spawn(move || {
                let c = srv.with_token(&token);
                let mut i = t;
                while i < n {
                    let (st, v) = c.post(
                        "/api/collections/notes/records",
                        &json!({"title": format!("{tag} note number {i}"), "n": i, "done": i % 2 == 0}),
                    );
                    assert_eq!(st, 200, "{v}");
                    i += 4;
                }
            });
        }
    });
}

fn wait_for<F: FnMut() -> bool>(secs: u64, mut f: F) -> Duration {
    let t = Instant::now();
    wait_until(secs, "the benchmark step", || {
        let ok = f();
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    });
    t.elapsed()
}

#[test]
#[ignore = "a benchmark: tests/bench/sync.sh runs it (release build) for BENCHMARKS.md"]
fn figures_one_device_each_way() {
    let n = env_u64("KEEPD_SYNC_BENCH_N", 10_000);
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    let p1 = Proxy::start(hub.https, 1);
    let p2 = Proxy::start(hub.https, 2);
    let (d1, _) = start_device(
        &hub,
        &p1.url(),
        &pki.ca,
        "d1",
        &[("KEEPD_SYNC_POLL_SECS", "25")],
    );
    let (d2, _) = start_device(
        &hub,
        &p2.url(),
        &pki.ca,
        "d2",
        &[("KEEPD_SYNC_POLL_SECS", "25")],
    );
    for d in [&d1, &d2] {
        wait_until(30, "syncing", || status(d)["state"] == "syncing");
    }
    // A: device → hub, a backlog of n changes made offline.
    p1.set_online(false);
    p2.set_online(false);
    create_many(&d1, n, "d1");
    assert_eq!(status(&d1)["queue"], n);
    let (u0, d0) = (
        p1.counts().bytes_up.load(Ordering::Relaxed),
        p1.counts().bytes_down.load(Ordering::Relaxed),
    );
    let head_before = status(&hub.srv)["log"]["head"].as_u64().unwrap();
    p1.set_online(true);
    // From the reconnect (which waits out the device's backoff) and from
    // the first change in (the flow itself).
    let t_first_up = wait_for(600, || {
        status(&hub.srv)["log"]["head"].as_u64().unwrap() > head_before
    });
    let t_flow_up = wait_for(600, || status(&d1)["queue"] == 0);
    let t_up = t_first_up + t_flow_up;
    let wire_up = p1.counts().bytes_up.load(Ordering::Relaxed) - u0;
    let wire_down = p1.counts().bytes_down.load(Ordering::Relaxed) - d0;
    // B: hub → device, the same n changes pulled by a device that was away.
    let pid = d2.pid();
    let rss0 = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let head = status(&hub.srv)["log"]["head"].as_u64().unwrap();
    let c0 = status(&d2)["cursor"].as_u64().unwrap_or(0);
    p2.set_online(true);
    let t_first_down = wait_for(600, || status(&d2)["cursor"].as_u64().unwrap_or(0) > c0);
    let t_flow_down = wait_for(600, || status(&d2)["cursor"].as_u64().unwrap_or(0) >= head);
    let t_down = t_first_down + t_flow_down;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    assert_eq!(all_records(&d2, "notes").len() as u64, n);
    // C: convergence of a fresh n-change backlog, both devices online.
    p1.set_online(false);
    create_many(&d1, n, "again");
    let head0 = status(&hub.srv)["log"]["head"].as_u64().unwrap();
    let t = Instant::now();
    p1.set_online(true);
    wait_until(900, "converged", || {
        let ok =
            status(&d1)["queue"] == 0 && status(&d2)["cursor"].as_u64().unwrap_or(0) >= head0 + n;
        if !ok {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok
    });
    let t_conv = t.elapsed();
    // The same change as PocketBase's JSON request and answer.
    let token = hub.srv.superuser_token();
    let body = json!({"title": "d1 note number 1234", "n": 1234, "done": true}).to_string();
    let req_head = format!(
        "POST /api/collections/notes/records HTTP/1.1\r\nHost: {}\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        hub.srv.addr,
        body.len()
    );
    let r = hub.srv.raw(
        "POST",
        "/api/collections/notes/records",
        &[("Authorization", &token)],
        Some(body.as_bytes()),
    );
    let resp_bytes: usize = 17
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
        + 2
        + r.body.len();
    let json_bytes = req_head.len() + body.len() + resp_bytes;
    let per = (wire_up + wire_down) as f64 / n as f64;
    println!("| Figure | Value |");
    println!("|---|---|");
    println!(
        "| device → hub, {n}-change offline backlog | {:.0} changes/s once flowing ({:.2} s; {:.2} s from the reconnect) |",
        n as f64 / t_flow_up.as_secs_f64(),
        t_flow_up.as_secs_f64(),
        t_up.as_secs_f64()
    );
    println!(
        "| hub → device, {n} changes | {:.0} changes/s once flowing ({:.2} s; {:.2} s from the reconnect) |",
        n as f64 / t_flow_down.as_secs_f64(),
        t_flow_down.as_secs_f64(),
        t_down.as_secs_f64()
    );
    println!(
        "| bytes on the wire per change, device → hub (TLS, both directions) | {per:.0} B (PocketBase JSON request + answer, no TLS: {json_bytes} B; {:.1}× less) |",
        json_bytes as f64 / per
    );
    println!(
        "| time to converge after a {n}-change offline backlog (device → hub → other device) | {:.2} s |",
        t_conv.as_secs_f64()
    );
    println!(
        "| device RSS during catch-up ({n} changes) | {} MiB before, {} MiB peak |",
        rss0 / 1024,
        peak.load(Ordering::Relaxed) / 1024
    );
}

#[test]
#[ignore = "a benchmark: tests/bench/sync.sh runs it (release build) for BENCHMARKS.md"]
fn figures_a_hub_with_100_devices_pushing_at_once() {
    let devices = env_u64("KEEPD_SYNC_BENCH_DEVICES", 100) as usize;
    let batches = env_u64("KEEPD_SYNC_BENCH_BATCHES", 10);
    let per_batch = env_u64("KEEPD_SYNC_BENCH_BATCH", 100);
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[("KEEPD_SYNC_DEVICE_RATE_PER_SEC", "1000")]);
    notes(&hub);
    let (_, coll) = hub.srv.su().get("/api/collections/notes");
    let cid = coll["id"].as_str().unwrap().to_string();
    let url = hub.url();
    let mut creds = Vec::new();
    for i in 0..devices {
        let (id, token) = hub.device(&format!("sim{i}"));
        let secret = format!("{:0>40}", i);
        let c =
            keepd::sync::client::Client::new(&url, &pki.ca, None, Duration::from_secs(10)).unwrap();
        let a = c
            .send(
                "POST",
                "/api/sync/enrol",
                "application/json",
                json!({"token": token, "secret": secret})
                    .to_string()
                    .as_bytes(),
                Duration::from_secs(30),
            )
            .unwrap();
        assert_eq!(a.status, 200);
        creds.push(format!("{id}.{secret}"));
    }
    let start = Instant::now();
    let lat: Vec<Vec<Duration>> = std::thread::scope(|s| {
        let hs: Vec<_> = creds
            .iter()
            .enumerate()
            .map(|(i, cred)| {
                let (url, ca, cid) = (url.clone(), pki.ca.clone(), cid.clone());
                s.spawn(move || {
                    use keepd::sync::frame::*;
                    let c = keepd::sync::client::Client::new(
                        &url,
                        &ca,
                        Some(cred.clone()),
                        Duration::from_secs(10),
                    )
                    .unwrap();
                    let mut out = Vec::new();
                    let mut seq = 0u64;
                    for b in 0..batches {
                        let changes: Vec<Change> = (0..per_batch)
                            .map(|k| {
                                seq += 1;
                                Change {
                                    seq,
                                    hlc: keepd::sync::hlc::at(keepd::sync::hlc::wall_ms()) + seq,
                                    collection: cid.clone(),
                                    record: format!("{:03}{:012}", i, seq),
                                    op: Op::Create,
                                    fields: vec![
                                        (
                                            "title".into(),
                                            Val::Text(format!("sim {i} batch {b} change {k}")),
                                        ),
                                        ("n".into(), Val::Int(k as i64)),
                                        ("done".into(), Val::Bool(k % 2 == 0)),
                                    ],
                                    base: vec![],
                                    files: vec![],
                                }
                            })
                            .collect();
                        let body = encode(&Msg::Push(Push { hlc: 0, changes }), true);
                        let t = Instant::now();
                        let a = c
                            .send(
                                "POST",
                                "/api/sync/push",
                                CONTENT_TYPE,
                                &body,
                                Duration::from_secs(120),
                            )
                            .unwrap();
                        out.push(t.elapsed());
                        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    let mut all: Vec<Duration> = lat.into_iter().flatten().collect();
    all.sort();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    let total = devices as u64 * batches * per_batch;
    let on_hub = all_records(&hub.srv, "notes").len() as u64;
    assert_eq!(on_hub, total);
    println!(
        "| hub with {devices} devices pushing at once ({batches} batches of {per_batch} each, TLS) | {:.0} changes/s; push p50 {} ms, p99 {} ms ({:.1} s) |",
        total as f64 / wall.as_secs_f64(),
        p(0.5).as_millis(),
        p(0.99).as_millis(),
        wall.as_secs_f64()
    );
}
