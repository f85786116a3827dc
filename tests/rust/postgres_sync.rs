//! The sync hub on PostgreSQL: several hub processes serving one schema
//! (behind a load balancer), SQLite devices syncing through one and then
//! the other while writes go through all of them, one process killed
//! mid-run; and what one process changes in memory (settings, the synced
//! collections) reaching the others.

use crate::common::pg::PgCluster;
use crate::common::{TempRoot, TestServer};
use crate::sync_harness::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// SCRAM over TLS for every role.
const HBA: &str = "hostssl all all 127.0.0.1/32 scram-sha-256\n";

/// A role owning a schema of its name in database `db`, and a keepd config
/// (mode 0600) that stores there: the config's dir and path.
fn schema_config(
    pg: &PgCluster,
    db: &str,
    role: &str,
    password: &str,
) -> (std::sync::Arc<TempRoot>, std::path::PathBuf) {
    pg.psql(
        db,
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'; CREATE SCHEMA {role} AUTHORIZATION {role};"),
    );
    let root = TempRoot::new(&format!("{role}-cfg"));
    let cfg = root.path.join("keepd.toml");
    std::fs::write(
        &cfg,
        format!(
            "database_url = \"postgres://{role}:{password}@localhost:{}/{db}\"\n\
             database_ca = \"{}\"\ndatabase_schema = \"{role}\"\n",
            pg.port,
            pg.ca.display()
        ),
    )
    .expect("config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (root, cfg)
}

/// A database with its public schema closed to all.
fn database(pg: &PgCluster, db: &str) {
    pg.psql("postgres", &format!("CREATE DATABASE {db}"));
    pg.psql(db, "REVOKE CREATE ON SCHEMA public FROM PUBLIC");
}

/// A hub process on the schema of `cfg` (its own data dir for files).
fn pg_hub(pki: &Pki, cfg: &std::path::Path, tag: &str) -> Hub {
    let mut b = TestServer::builder().root(TempRoot::new(tag)).config(cfg);
    for (k, v) in hub_env(pki) {
        b = b.env(&k, &v);
    }
    let srv = b.start();
    let https = https_addr(&srv);
    Hub { srv, https }
}

/// A device enrolled through `url` (a proxy in front of the hubs), made by
/// the superuser whose token is `token` through `hub`.
fn device(
    hub: &Hub,
    token: &str,
    url: &str,
    pki: &Pki,
    name: &str,
    extra: &[(&str, &str)],
) -> TestServer {
    let (st, v) = hub
        .srv
        .with_token(token)
        .post("/api/sync/devices", &json!({"name": name}));
    assert_eq!(st, 200, "create device: {v}");
    let t = v["token"].as_str().expect("token").to_string();
    let root = TempRoot::new("pgdev");
    let data = root.path.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = enrol(&root, url, &t, &pki.ca);
    assert!(
        out.status.success(),
        "enrol: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut b = TestServer::builder().root(root);
    for (k, v) in device_env(url, &pki.ca) {
        b = b.env(&k, &v);
    }
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start()
}

/// The notes as `id → (title, n)`: the synced fields (autodates are each
/// node's own).
fn notes(srv: &TestServer, token: Option<&str>) -> BTreeMap<String, (Value, Value)> {
    let mut out = BTreeMap::new();
    let mut page = 1;
    loop {
        let c = match token {
            Some(t) => srv.with_token(t),
            None => srv.su(),
        };
        let (st, v) = c.list(
            "notes",
            &[
                ("page", &page.to_string()),
                ("perPage", "500"),
                ("sort", "id"),
            ],
        );
        assert_eq!(st, 200, "list: {v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        for it in &items {
            out.insert(
                it["id"].as_str().unwrap_or_default().to_string(),
                (it["title"].clone(), it["n"].clone()),
            );
        }
        if items.len() < 500 {
            return out;
        }
        page += 1;
    }
}

/// Writes through a hub process: creates titled `{tag}{i}`, every third
/// write an update of the last create. Stops at the first unanswered
/// request; the titles answered.
fn hub_writes(addr: std::net::SocketAddr, token: &str, tag: &str, n: usize) -> Vec<String> {
    let mut done = Vec::new();
    let mut last = None::<String>;
    for i in 0..n {
        let title = format!("{tag}{i}");
        let body = json!({"title": title, "n": i}).to_string();
        let (method, path) = match (&last, i % 3) {
            (Some(id), 2) => ("PATCH", format!("/api/collections/notes/records/{id}")),
            _ => ("POST", "/api/collections/notes/records".to_string()),
        };
        let Ok(r) = crate::common::raw_at(
            addr,
            method,
            &path,
            &[("Authorization", token)],
            Some(body.as_bytes()),
        ) else {
            break;
        };
        if r.status != 200 {
            break;
        }
        if method == "POST" {
            last = r.json()["id"].as_str().map(str::to_string);
        }
        done.push(title);
    }
    done
}

/// Creates on a device, titled `{tag}{i}`; the titles.
fn dev_writes(d: &TestServer, tag: &str) -> Vec<String> {
    let mut done = Vec::new();
    for i in 0..60 {
        let title = format!("{tag}{i}");
        let (st, v) = d.guest().post(
            "/api/collections/notes/records",
            &json!({"title": title, "n": i}),
        );
        assert_eq!(st, 200, "{v}");
        done.push(title);
        std::thread::sleep(Duration::from_millis(20));
    }
    done
}

/// Until every device has sent everything and pulled to the log's head
/// (as `hub` says it), twice in a row.
fn converge(hub: &Hub, token: &str, devs: &[&TestServer], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut stable, mut last) = (0, u64::MAX);
    loop {
        let (st, h) = hub.srv.with_token(token).get("/api/sync/status");
        assert_eq!(st, 200, "{h}");
        let head = h["log"]["head"].as_u64().unwrap_or(0);
        let all = devs.iter().all(|d| {
            let s = status(d);
            s["queue"] == 0 && s["cursor"].as_u64().unwrap_or(0) >= head && s["state"] == "syncing"
        });
        if all && head == last {
            stable += 1;
        } else {
            stable = 0;
        }
        last = head;
        if stable >= 2 {
            return;
        }
        if Instant::now() > deadline {
            for (i, d) in devs.iter().enumerate() {
                eprintln!("d{i}: {}", status(d));
            }
            panic!("devices did not converge in {secs}s; hub: {h}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hub_processes_on_one_schema_serve_devices_the_same_log() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database(&pg, "fleet");
    let pki = Pki::new();
    let (_croot, cfg) = schema_config(&pg, "fleet", "hubrole", "hub-Secret-21");

    let mut a = pg_hub(&pki, &cfg, "pgsync-a");
    a.collection(json!({
        "name": "notes", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]
    }));
    let b = pg_hub(&pki, &cfg, "pgsync-b");
    // (b's superuser upsert made a's cached token void: one token for both.)
    let token = b.srv.superuser_token();

    // Made through a, known to b at once: the synced collections and the
    // settings (each write marks its change in the change log).
    let (st, v) = a.srv.with_token(&token).send(
        "PUT",
        "/api/sync/collections",
        Some(&json!([{"collection": "notes", "direction": "both"}])),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = a.srv.with_token(&token).patch(
        "/api/settings",
        &json!({"meta": {"appName": "fleet-hub-7"}}),
    );
    assert_eq!(st, 200, "{v}");
    let t0 = Instant::now();
    wait_until(5, "b has the synced collections and the settings", || {
        let (_, c) = b.srv.with_token(&token).get("/api/sync/collections");
        let (_, s) = b.srv.with_token(&token).get("/api/settings");
        c["collections"].as_array().is_some_and(|l| l.len() == 1)
            && s["meta"]["appName"] == "fleet-hub-7"
    });
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "b took {:?} to load what a changed",
        t0.elapsed()
    );

    // Two SQLite devices behind a proxy that sends them to a or b.
    let proxy = Proxy::start(a.https, 7);
    let d1 = device(
        &a,
        &token,
        &proxy.url(),
        &pki,
        "d1",
        &[("KEEPD_SYNC_POLL_SECS", "30")],
    );
    let d2 = device(
        &a,
        &token,
        &proxy.url(),
        &pki,
        "d2",
        &[("KEEPD_SYNC_POLL_SECS", "30")],
    );
    for d in [&d1, &d2] {
        wait_until(30, "the device has the notes collection", || {
            d.su().get("/api/collections/notes").0 == 200 && status(d)["state"] == "syncing"
        });
    }

    // A device long-polling b hears at once of a write made through a
    // (its long poll lasts 30 s: b's follower of the change log wakes it).
    proxy.set_upstream(b.https);
    proxy.set_online(false);
    proxy.set_online(true);
    std::thread::sleep(Duration::from_secs(2));
    let (st, v) = a.srv.with_token(&token).post(
        "/api/collections/notes/records",
        &json!({"title": "wake", "n": 0}),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let t0 = Instant::now();
    wait_until(20, "the devices have the write made through a", || {
        [&d1, &d2].iter().all(|d| {
            d.su()
                .get(&format!("/api/collections/notes/records/{id}"))
                .0
                == 200
        })
    });
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a write through a reached devices polling b after {:?}",
        t0.elapsed()
    );

    // A device whose clock runs a minute ahead pushes a record through b;
    // then a (whose clock never saw that minute) edits it: its write is
    // stamped newer than the record's clocks, so the devices take it.
    let (_, coll) = a.srv.with_token(&token).get("/api/collections/notes");
    let cid = coll["id"].as_str().expect("collection id").to_string();
    let fast = sim_devices(&b, &token, &pki.ca, 1);
    let ahead = keepd::sync::hlc::at(keepd::sync::hlc::wall_ms() + 60_000);
    {
        use keepd::sync::frame::*;
        let c = keepd::sync::client::Client::new(
            &b.url(),
            &pki.ca,
            Some(fast[0].clone()),
            Duration::from_secs(10),
        )
        .expect("client");
        let change = Change {
            seq: 1,
            hlc: ahead,
            collection: cid.clone(),
            record: "fastclock000001".into(),
            op: Op::Create,
            fields: vec![
                ("title".into(), Val::Text("from a fast clock".into())),
                ("n".into(), Val::Int(1)),
            ],
            base: vec![],
            files: vec![],
        };
        let body = encode(
            &Msg::Push(Push {
                hlc: ahead,
                changes: vec![change],
            }),
            true,
        );
        let r = c
            .send(
                "POST",
                "/api/sync/push",
                CONTENT_TYPE,
                &body,
                Duration::from_secs(30),
            )
            .expect("push");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    wait_until(20, "the devices have the fast clock's record", || {
        [&d1, &d2].iter().all(|d| {
            d.su()
                .get("/api/collections/notes/records/fastclock000001")
                .0
                == 200
        })
    });
    let (st, v) = a.srv.with_token(&token).patch(
        "/api/collections/notes/records/fastclock000001",
        &json!({"title": "edited through a"}),
    );
    assert_eq!(st, 200, "{v}");

    // Writes through both hub processes and both devices while the proxy
    // switches between a and b; a is killed mid-run and comes back.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (mut wa, mut wb, mut w1, mut w2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    std::thread::scope(|s| {
        let (addr_a, addr_b, tok) = (a.srv.addr, b.srv.addr, token.as_str());
        let ta = s.spawn(move || hub_writes(addr_a, tok, "a", 150));
        let tb = s.spawn(move || hub_writes(addr_b, tok, "b", 150));
        let t1 = s.spawn(|| dev_writes(&d1, "x"));
        let t2 = s.spawn(|| dev_writes(&d2, "y"));
        let (https_a, https_b, proxy, stop) = (a.https, b.https, &proxy, &stop);
        let switcher = s.spawn(move || {
            let mut to_b = false;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(700));
                proxy.set_upstream(if to_b { https_b } else { https_a });
                proxy.set_online(false);
                proxy.set_online(true);
                to_b = !to_b;
            }
        });
        std::thread::sleep(Duration::from_millis(1500));
        a.srv.kill9();
        proxy.set_upstream(b.https);
        wa = ta.join().expect("a writes");
        wb = tb.join().expect("b writes");
        w1 = t1.join().expect("d1 writes");
        w2 = t2.join().expect("d2 writes");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        switcher.join().expect("switcher");
    });
    assert!(wa.len() < 150, "a was killed mid-run: {} writes", wa.len());
    assert_eq!(wb.len(), 150);
    // a again, on the same schema; both serve devices from here on.
    a.restart();
    let (st, v) = a.srv.with_token(&token).post(
        "/api/collections/notes/records",
        &json!({"title": "after the restart", "n": 1}),
    );
    assert_eq!(st, 200, "{v}");
    proxy.set_upstream(a.https);
    proxy.set_online(false);
    proxy.set_online(true);
    converge(&b, &token, &[&d1, &d2], 90);

    // Every node has the same rows: every write answered is there once,
    // whichever process or device took it.
    let hub_a = notes(&a.srv, Some(&token));
    let hub_b = notes(&b.srv, Some(&token));
    assert_eq!(hub_a, hub_b, "a and b serve one schema");
    assert_eq!(notes(&d1, None), hub_b, "d1 has the hub's rows");
    assert_eq!(notes(&d2, None), hub_b, "d2 has the hub's rows");
    let titles: Vec<String> = hub_b
        .values()
        .filter_map(|(t, _)| t.as_str().map(str::to_string))
        .collect();
    let mut uniq = titles.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), titles.len(), "no write twice");
    for t in w1.iter().chain(&w2) {
        assert!(titles.contains(t), "device write {t} is on the hub");
    }
    // Hub writes (every third an update retitling the create before
    // it): each title answered is there, or the one that retitled it.
    for w in [&wa, &wb] {
        for t in w.iter() {
            let (tag, n) = t.split_at(1);
            let n: usize = n.parse().expect("n");
            let next = format!("{tag}{}", n + 1);
            let retitled = n % 3 == 1 && w.contains(&next);
            let want = if retitled { &next } else { t };
            assert!(titles.contains(want), "hub write {t} ({want}) is there");
        }
    }
    // Each record was created once in the hub's log.
    let doubled = pg.query(
        "fleet",
        "SELECT count(*) FROM (SELECT recordref FROM hubrole._keepd_sync_log \
         WHERE op = 'c' GROUP BY recordref HAVING count(*) > 1) d",
    );
    assert_eq!(doubled, "0");
    drop(proxy);
}

/// Pushes `batches` batches of `per_batch` creates from each of `creds`
/// (enrolled devices), device `i` to `urls[i % urls.len()]`, all at once;
/// changes per second over the whole run.
#[allow(clippy::too_many_arguments)]
fn push_all(
    urls: &[String],
    ca: &std::path::Path,
    cid: &str,
    creds: &[String],
    batches: u64,
    per_batch: u64,
    run: usize,
    extra: Option<&str>,
) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for (i, cred) in creds.iter().enumerate() {
            let url = urls[i % urls.len()].clone();
            s.spawn(move || {
                use keepd::sync::frame::*;
                let c = keepd::sync::client::Client::new(
                    &url,
                    ca,
                    Some(cred.clone()),
                    Duration::from_secs(10),
                )
                .expect("client");
                let mut seq = (run as u64) * batches * per_batch;
                for b in 0..batches {
                    let changes: Vec<Change> = (0..per_batch)
                        .map(|k| {
                            seq += 1;
                            let mut fields = vec![
                                (
                                    "title".into(),
                                    Val::Text(format!("sim {i} batch {b} change {k}")),
                                ),
                                ("n".into(), Val::Int(k as i64)),
                            ];
                            if let Some(x) = extra {
                                fields.push(("extra".into(), Val::Text(x.into())));
                            }
                            Change {
                                seq,
                                hlc: keepd::sync::hlc::at(keepd::sync::hlc::wall_ms()) + seq,
                                collection: cid.to_string(),
                                record: format!("{:03}{:012}", i, seq),
                                op: Op::Create,
                                fields,
                                base: vec![],
                                files: vec![],
                            }
                        })
                        .collect();
                    let body = encode(&Msg::Push(Push { hlc: 0, changes }), true);
                    let a = c
                        .send(
                            "POST",
                            "/api/sync/push",
                            CONTENT_TYPE,
                            &body,
                            Duration::from_secs(120),
                        )
                        .expect("push");
                    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                }
            });
        }
    });
    (creds.len() as u64 * batches * per_batch) as f64 / start.elapsed().as_secs_f64()
}

/// Enrols `n` simulated devices through `hub`: their credentials.
fn sim_devices(hub: &Hub, token: &str, ca: &std::path::Path, n: usize) -> Vec<String> {
    let url = hub.url();
    (0..n)
        .map(|i| {
            let (st, v) = hub
                .srv
                .with_token(token)
                .post("/api/sync/devices", &json!({"name": format!("sim{i}")}));
            assert_eq!(st, 200, "{v}");
            let (id, t) = (
                v["device"]["id"].as_str().expect("id").to_string(),
                v["token"].as_str().expect("token").to_string(),
            );
            let secret = format!("{:0>40}", i);
            let c = keepd::sync::client::Client::new(&url, ca, None, Duration::from_secs(10))
                .expect("client");
            let a = c
                .send(
                    "POST",
                    "/api/sync/enrol",
                    "application/json",
                    json!({"token": t, "secret": secret}).to_string().as_bytes(),
                    Duration::from_secs(30),
                )
                .expect("enrol");
            assert_eq!(a.status, 200);
            format!("{id}.{secret}")
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The hub's changes/s with simulated devices pushing at once: a hub on
/// SQLite, one hub process on PostgreSQL, two on one schema (the devices
/// split between them). PostgreSQL runs with fsync on (a write is answered
/// after a durable commit, as SQLite's `synchronous=FULL`).
#[test]
#[ignore = "a benchmark: tests/bench/sync.sh --postgres runs it (release build) for BENCHMARKS.md"]
fn figures_hub_changes_per_second_sqlite_and_postgres() {
    let devices = std::env::var("KEEPD_SYNC_BENCH_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize);
    let batches = std::env::var("KEEPD_SYNC_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10u64);
    let per_batch = std::env::var("KEEPD_SYNC_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100u64);
    let runs = std::env::var("KEEPD_SYNC_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    pg.psql("postgres", "ALTER SYSTEM SET fsync = on");
    pg.psql("postgres", "SELECT pg_reload_conf()");
    database(&pg, "bench");
    let pki = Pki::new();
    let def = json!({
        "name": "notes", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]
    });
    let rate = [("KEEPD_SYNC_DEVICE_RATE_PER_SEC", "1000")];
    let mut rows = Vec::new();
    for (label, procs) in [
        ("SQLite, one hub", 0usize),
        ("PostgreSQL, one hub process", 1),
        ("PostgreSQL, two hub processes on one schema", 2),
    ] {
        let mut figures = Vec::new();
        for run in 0..runs {
            let hubs: Vec<Hub> = if procs == 0 {
                vec![Hub::start(&pki, &rate)]
            } else {
                let role = format!("bench{procs}r{run}");
                let (_root, cfg) = schema_config(&pg, "bench", &role, "bench-Secret-31");
                (0..procs)
                    .map(|i| {
                        let mut b = TestServer::builder()
                            .root(TempRoot::new(&format!("pgbench{i}")))
                            .config(&cfg);
                        for (k, v) in hub_env(&pki)
                            .into_iter()
                            .chain(rate.iter().map(|(k, v)| (k.to_string(), v.to_string())))
                        {
                            b = b.env(&k, &v);
                        }
                        let srv = b.start();
                        let https = https_addr(&srv);
                        Hub { srv, https }
                    })
                    .collect()
            };
            let token = hubs.last().expect("a hub").srv.superuser_token();
            let first = &hubs[0];
            let (st, coll) = first.srv.with_token(&token).post("/api/collections", &def);
            assert_eq!(st, 200, "{coll}");
            let (st, v) = first.srv.with_token(&token).send(
                "PUT",
                "/api/sync/collections",
                Some(&json!([{"collection": "notes", "direction": "both"}])),
            );
            assert_eq!(st, 200, "{v}");
            let cid = coll["id"].as_str().expect("id").to_string();
            let creds = sim_devices(first, &token, &pki.ca, devices);
            let urls: Vec<String> = hubs.iter().map(Hub::url).collect();
            figures.push(push_all(
                &urls, &pki.ca, &cid, &creds, batches, per_batch, run, None,
            ));
            let n = notes(&first.srv, Some(&token)).len() as u64;
            if n != devices as u64 * batches * per_batch {
                let (_, refused) = first.srv.with_token(&token).get("/api/sync/rejected");
                panic!(
                    "{label}: {n} of {} pushed changes stored; refused: {refused}",
                    devices as u64 * batches * per_batch
                );
            }
        }
        rows.push((label, figures));
    }
    println!("| Hub ({devices} devices pushing at once, {batches} batches of {per_batch} each, TLS) | changes/s, median of {runs} | runs |");
    println!("|---|---|---|");
    for (label, f) in rows {
        let each: Vec<String> = f.iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "| {label} | {:.0} | {} |",
            median(f.clone()),
            each.join(", ")
        );
    }
}

/// A hub process behind what another process just committed — here the
/// synced collections, changed in the schema where this process has not
/// followed it yet — reads them again before it refuses a device's change
/// for them: a refusal is for good (the device moves on), a lag is not a
/// reason. A collection that is really not synced is still refused. And a
/// field added to the collection there is read again before a change's
/// value for it would be dropped as unknown.
#[test]
fn a_hub_process_behind_the_synced_collections_reads_them_before_refusing() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database(&pg, "lag");
    let pki = Pki::new();
    let (_croot, cfg) = schema_config(&pg, "lag", "lagrole", "lag-Secret-44");
    let hub = pg_hub(&pki, &cfg, "pglag");
    let token = hub.srv.superuser_token();
    let mut ids = Vec::new();
    for name in ["notes", "private"] {
        let (st, v) = hub.srv.with_token(&token).post(
            "/api/collections",
            &json!({
                "name": name, "type": "base",
                "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
                "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]
            }),
        );
        assert_eq!(st, 200, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    // Another process's commit this one has not read: no mark in the log.
    pg.psql(
        "lag",
        &format!(
            "INSERT INTO lagrole._keepd_sync_collections (name, collectionId, direction, updated) \
             VALUES ('notes', '{}', 'both', '2026-12-07 00:00:00.000Z')",
            ids[0]
        ),
    );
    let (_, listed) = hub.srv.with_token(&token).get("/api/sync/collections");
    assert_eq!(
        listed["collections"].as_array().map(Vec::len),
        Some(0),
        "the process must not know yet: {listed}"
    );
    let creds = sim_devices(&hub, &token, &pki.ca, 1);
    push_all(&[hub.url()], &pki.ca, &ids[0], &creds, 1, 3, 0, None);
    let (_, refused) = hub.srv.with_token(&token).get("/api/sync/rejected");
    assert_eq!(
        notes(&hub.srv, Some(&token)).len(),
        3,
        "every change stored; refused: {refused}"
    );
    assert_eq!(
        refused["items"].as_array().map(Vec::len),
        Some(0),
        "{refused}"
    );
    // Read again, the list still says no for a collection not on it.
    // (Its seqs after the first push's 1..=3: 5 and 6.)
    push_all(&[hub.url()], &pki.ca, &ids[1], &creds, 1, 2, 2, None);
    let (_, refused) = hub.srv.with_token(&token).get("/api/sync/rejected");
    let items = refused["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{refused}");
    assert!(items.iter().all(|r| r["status"] == 403), "{refused}");
    // A field another process added (no mark either): a change naming it
    // makes this process read the collection again, and the value is
    // stored — not dropped as a field the collection lacks. (Seqs 7..=8.)
    // This process knows the synced list first (set through it), so that
    // the list's own re-read does not hide the field's.
    let (st, v) = hub.srv.with_token(&token).send(
        "PUT",
        "/api/sync/collections",
        Some(&json!([{"collection": "notes", "direction": "both"}])),
    );
    assert_eq!(st, 200, "{v}");
    pg.psql(
        "lag",
        "ALTER TABLE lagrole.notes ADD COLUMN extra TEXT COLLATE \"C\" DEFAULT '' NOT NULL; \
         UPDATE lagrole._collections SET fields = (fields::jsonb || jsonb_build_array( \
           (SELECT e FROM jsonb_array_elements(fields::jsonb) e WHERE e->>'name' = 'title') \
           || '{\"id\": \"text_extra_lag\", \"name\": \"extra\"}'::jsonb))::text \
         WHERE name = 'notes'",
    );
    push_all(
        &[hub.url()],
        &pki.ca,
        &ids[0],
        &creds,
        1,
        2,
        3,
        Some("added elsewhere"),
    );
    let (_, refused) = hub.srv.with_token(&token).get("/api/sync/rejected");
    assert_eq!(
        refused["items"].as_array().map(Vec::len),
        Some(2),
        "nothing more refused: {refused}"
    );
    assert_eq!(
        pg.query(
            "lag",
            "SELECT count(*) FROM lagrole.notes WHERE extra = 'added elsewhere'"
        ),
        "2",
        "the new field's values stored"
    );
}

/// A device whose own store is PostgreSQL syncs with a hub (on SQLite)
/// both ways: its outbox, clocks and pull cursor in its schema.
#[test]
fn a_device_on_postgres_syncs_both_ways() {
    let Some(pg) = PgCluster::start(HBA) else {
        return;
    };
    database(&pg, "edge");
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    hub.collection(json!({
        "name": "notes", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]
    }));
    hub.sync_collections(&[("notes", "both")]);
    let (_, token) = hub.device("pgdev");
    let (_croot, cfg) = schema_config(&pg, "edge", "devrole", "dev-Secret-41");
    let root = TempRoot::new("pgdev");
    let data = root.path.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = enrol(&root, &hub.url(), &token, &pki.ca);
    assert!(
        out.status.success(),
        "enrol: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut b = TestServer::builder().root(root).config(&cfg);
    for (k, v) in device_env(&hub.url(), &pki.ca) {
        b = b.env(&k, &v);
    }
    let dev = b.start();
    wait_until(30, "the device has the notes collection", || {
        dev.su().get("/api/collections/notes").0 == 200 && status(&dev)["state"] == "syncing"
    });
    let w = dev_writes(&dev, "d");
    let mut on_hub = Vec::new();
    for i in 0..20 {
        let (st, v) = hub.srv.su().post(
            "/api/collections/notes/records",
            &json!({"title": format!("h{i}"), "n": i}),
        );
        assert_eq!(st, 200, "{v}");
        on_hub.push(v["id"].as_str().expect("id").to_string());
    }
    let (st, v) = hub.srv.su().patch(
        &format!("/api/collections/notes/records/{}", on_hub[3]),
        &json!({"title": "h3 edited"}),
    );
    assert_eq!(st, 200, "{v}");
    converge(&hub, &hub.srv.superuser_token(), &[&dev], 60);
    let here = notes(&dev, None);
    assert_eq!(here, notes(&hub.srv, None), "the device has the hub's rows");
    assert_eq!(here.len(), w.len() + 20);
    // The device's state is in its schema.
    assert_eq!(
        pg.query("edge", "SELECT count(*) FROM devrole._keepd_sync_outbox"),
        "0"
    );
    assert_ne!(
        pg.query("edge", "SELECT count(*) FROM devrole._keepd_sync_clocks"),
        "0"
    );
}
