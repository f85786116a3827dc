//! A seeded randomized run of sync under faults: a hub and three devices,
//! each device behind its own fault-injecting TCP proxy (refused, cut
//! mid-response, delayed and stalled connections, offline periods), kill -9
//! of devices and of the hub, and a workload of creates, updates and deletes
//! on each device. Each round: the devices write offline, then sync under
//! faults, then a quiet period until everyone agrees, then the assertions:
//!
//! - every acknowledged write of a device to its own records is on the hub
//!   exactly (nothing lost, nothing duplicated, nothing resurrected);
//! - every device holds exactly what its rules let it see of the hub's
//!   records, with the same values (and nothing its rules deny);
//! - every value of a shared record written in the round is either the
//!   final one or listed in the hub's conflict table as lost (delete wins:
//!   edits of a record deleted in the round are listed as lost to it);
//! - no conflict is recorded twice (a replayed batch changes nothing).
//!
//! The seed is printed; `KEEPD_SYNC_SEED=N` replays it, `KEEPD_SYNC_ROUNDS`
//! makes the run longer (`tests/sync/long.sh`).

use crate::common::TestServer;
use crate::sync_harness::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

struct Dev {
    srv: TestServer,
    id: String,
    proxy: Proxy,
}

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

/// Waits until every device has sent everything and pulled to the hub's
/// head, twice in a row; on a timeout, shows where each one is.
fn converge(hub: &Hub, devs: &[Dev], secs: u64) {
    let mut stable = 0;
    let mut last_head = u64::MAX;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let h = status(&hub.srv);
        let head = h["log"]["head"].as_u64().unwrap_or(0);
        let all = devs.iter().all(|d| {
            let s = status(&d.srv);
            s["queue"] == 0 && s["cursor"].as_u64().unwrap_or(0) >= head && s["state"] == "syncing"
        });
        if all && head == last_head {
            stable += 1;
        } else {
            stable = 0;
        }
        last_head = head;
        if stable >= 2 {
            return;
        }
        if std::time::Instant::now() > deadline {
            eprintln!("hub: {h}");
            for (i, d) in devs.iter().enumerate() {
                eprintln!("d{i}: {}", status(&d.srv));
            }
            panic!("timed out after {secs}s waiting for all devices to agree with the hub");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn conflicts(srv: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before = 0i64;
    loop {
        let (st, v) = srv
            .su()
            .get(&format!("/api/sync/conflicts?limit=1000&before={before}"));
        assert_eq!(st, 200, "{v}");
        let items = v["items"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        before = items.last().unwrap()["id"].as_i64().unwrap();
        out.extend(items);
    }
    out
}

/// One write of a device to its own records (create, update or delete),
/// remembered as the hub must end up with it.
fn owned_op(
    d: &Dev,
    owned: &mut BTreeMap<String, Option<Value>>,
    rng: &mut Rng,
    round: u64,
    di: usize,
    k: u64,
) {
    let mine: Vec<String> = owned
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    let x = rng.below(100);
    let su = d.srv.su();
    if x < 15 {
        // A create with a file.
        let title = format!("r{round} d{di} f{k}");
        let n = rng.below(1000) as i64;
        let content: Vec<u8> = (0..(1 + rng.below(20_000)))
            .map(|_| b'a' + (rng.below(26) as u8))
            .collect();
        let (ct, body) = crate::common::multipart(&[
            ("title", None, title.as_bytes()),
            ("n", None, n.to_string().as_bytes()),
            ("owner", None, d.id.as_bytes()),
            ("f", Some("doc.txt"), &content),
        ]);
        let token = d.srv.superuser_token();
        let r = d.srv.raw(
            "POST",
            "/api/collections/notes/records",
            &[
                ("Content-Type", ct.as_str()),
                ("Authorization", token.as_str()),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 200, "create with a file on d{di}: {}", r.text());
        let v = r.json();
        owned.insert(
            v["id"].as_str().unwrap().to_string(),
            Some(json!({"title": title, "n": n, "f": v["f"],
                "content": String::from_utf8(content).unwrap()})),
        );
    } else if x < 50 || mine.is_empty() {
        let title = format!("r{round} d{di} o{k} {}", rng.below(1000));
        let n = rng.below(1000) as i64;
        let (st, v) = su.post(
            "/api/collections/notes/records",
            &json!({"title": title, "n": n, "owner": d.id, "shared": false}),
        );
        assert_eq!(st, 200, "create on d{di}: {v}");
        owned.insert(
            v["id"].as_str().unwrap().to_string(),
            Some(json!({"title": title, "n": n})),
        );
    } else if x < 85 {
        let id = rng.pick(&mine).unwrap().clone();
        let title = format!("r{round} d{di} u{k}");
        let (st, v) = su.patch(
            &format!("/api/collections/notes/records/{id}"),
            &json!({"title": title}),
        );
        assert_eq!(st, 200, "update on d{di}: {v}");
        if let Some(Some(e)) = owned.get_mut(&id) {
            e["title"] = json!(title);
        }
    } else {
        let id = rng.pick(&mine).unwrap().clone();
        let (st, v) = su.delete(&format!("/api/collections/notes/records/{id}"));
        assert_eq!(st, 204, "delete on d{di}: {v}");
        owned.insert(id, None);
    }
}

#[test]
fn randomized_workload_under_faults_converges_without_loss() {
    let seed = env_u64("KEEPD_SYNC_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let rounds = env_u64("KEEPD_SYNC_ROUNDS").unwrap_or(4);
    eprintln!(
        "sync chaos: seed {seed}, {rounds} rounds (replay: KEEPD_SYNC_SEED={seed} cargo test -p keepd --test integration sync_chaos::)"
    );
    let mut rng = Rng::new(seed);
    let pki = Pki::new();
    let mut hub = Hub::start(&pki, &[]);
    hub.collection(json!({
        "name": "notes",
        "type": "base",
        "listRule": "owner = @request.auth.id || shared = true",
        "viewRule": "owner = @request.auth.id || shared = true",
        "createRule": "owner = @request.auth.id",
        "updateRule": "owner = @request.auth.id || shared = true",
        "deleteRule": "owner = @request.auth.id || shared = true",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
            {"name": "owner", "type": "text"},
            {"name": "shared", "type": "bool"},
            {"name": "f", "type": "file", "maxSelect": 1, "maxSize": 1000000},
        ],
    }));
    hub.sync_collections(&[("notes", "both")]);
    let mut shared: Vec<String> = Vec::new();
    for i in 0..4 {
        let (st, v) = hub.srv.su().post(
            "/api/collections/notes/records",
            &json!({"title": format!("shared {i}"), "n": i, "shared": true}),
        );
        assert_eq!(st, 200, "{v}");
        shared.push(v["id"].as_str().unwrap().to_string());
    }
    let mut devs: Vec<Dev> = Vec::new();
    for i in 0..3 {
        let proxy = Proxy::start(hub.https, seed ^ (i as u64 + 1));
        let (srv, id) = start_device(&hub, &proxy.url(), &pki.ca, &format!("d{i}"), &[]);
        devs.push(Dev { srv, id, proxy });
    }
    // Owned records: device index → id → expected fields (None: deleted).
    let mut owned: Vec<BTreeMap<String, Option<Value>>> = vec![BTreeMap::new(); devs.len()];
    converge(&hub, &devs, 60);
    for round in 0..rounds {
        // 1. Offline: every device writes.
        for d in &devs {
            d.proxy.set_online(false);
        }
        // (shared record, field) → device index → last value written.
        let mut written: BTreeMap<(String, String), BTreeMap<usize, Value>> = BTreeMap::new();
        let mut deleted_shared: BTreeSet<String> = BTreeSet::new();
        // Shared record → the device that deleted it this round.
        let mut deleter: BTreeMap<String, usize> = BTreeMap::new();
        for (di, d) in devs.iter().enumerate() {
            let ops = 8 + rng.below(10);
            for k in 0..ops {
                let mine: Vec<String> = owned[di]
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(k, _)| k.clone())
                    .collect();
                let x = rng.below(100);
                let su = d.srv.su();
                if x < 35 || mine.is_empty() {
                    let title = format!("r{round} d{di} k{k} {}", rng.below(1000));
                    let n = rng.below(1000) as i64;
                    let (st, v) = su.post(
                        "/api/collections/notes/records",
                        &json!({"title": title, "n": n, "owner": d.id, "shared": false}),
                    );
                    assert_eq!(st, 200, "create on d{di}: {v}");
                    owned[di].insert(
                        v["id"].as_str().unwrap().to_string(),
                        Some(json!({"title": title, "n": n})),
                    );
                } else if x < 60 {
                    let id = rng.pick(&mine).unwrap().clone();
                    let n = rng.below(1000) as i64;
                    let (st, v) = su.patch(
                        &format!("/api/collections/notes/records/{id}"),
                        &json!({"n": n}),
                    );
                    assert_eq!(st, 200, "update on d{di}: {v}");
                    if let Some(Some(e)) = owned[di].get_mut(&id) {
                        e["n"] = json!(n);
                    }
                } else if x < 70 {
                    let id = rng.pick(&mine).unwrap().clone();
                    let (st, v) = su.delete(&format!("/api/collections/notes/records/{id}"));
                    assert_eq!(st, 204, "delete on d{di}: {v}");
                    owned[di].insert(id, None);
                } else {
                    let live: Vec<String> = shared
                        .iter()
                        .filter(|s| !deleted_shared.contains(*s))
                        .cloned()
                        .collect();
                    let Some(id) = rng.pick(&live).cloned() else {
                        continue;
                    };
                    if rng.chance(0.04) && shared.len() > 2 {
                        let (st, v) = su.delete(&format!("/api/collections/notes/records/{id}"));
                        assert_eq!(st, 204, "shared delete on d{di}: {v}");
                        deleted_shared.insert(id.clone());
                        deleter.insert(id, di);
                        continue;
                    }
                    let (field, value) = if rng.chance(0.5) {
                        ("title", json!(format!("s r{round} d{di} k{k}")))
                    } else {
                        ("n", json!(rng.below(100_000) as i64))
                    };
                    let (st, v) = su.patch(
                        &format!("/api/collections/notes/records/{id}"),
                        &json!({ field: value }),
                    );
                    if st == 404 {
                        // Deleted locally earlier in this round.
                        continue;
                    }
                    assert_eq!(st, 200, "shared update on d{di}: {v}");
                    written
                        .entry((id, field.to_string()))
                        .or_default()
                        .insert(di, value);
                }
            }
        }
        // 2. Online, under faults, the devices keep writing their own
        // records; kill -9 a device or the hub now and then.
        for d in &devs {
            d.proxy.set_faults(true);
            d.proxy.set_online(true);
        }
        // A fixed number of steps (not a time): the same seed makes the
        // same workload.
        let steps = 30 + rng.below(40);
        let kill_dev_at = rng.chance(0.5).then(|| rng.below(steps));
        let kill_hub_at = rng.chance(0.35).then(|| rng.below(steps));
        for step in 0..steps {
            if kill_dev_at == Some(step) {
                let i = rng.below(devs.len() as u64) as usize;
                eprintln!("round {round}: kill -9 device d{i}");
                devs[i].srv = devs[i].srv.restart();
            }
            if kill_hub_at == Some(step) {
                eprintln!("round {round}: kill -9 the hub");
                hub.restart();
                for d in &devs {
                    d.proxy.set_upstream(hub.https);
                }
            }
            let di = rng.below(devs.len() as u64) as usize;
            owned_op(&devs[di], &mut owned[di], &mut rng, round, di, step);
            std::thread::sleep(std::time::Duration::from_millis(20 + rng.below(80)));
        }
        // 3. Quiet: no faults until everyone agrees.
        for d in &devs {
            d.proxy.set_faults(false);
        }
        converge(&hub, &devs, 120);
        // 4. What must hold.
        let on_hub = all_records(&hub.srv, "notes");
        for (di, d) in devs.iter().enumerate() {
            for (id, want) in &owned[di] {
                match (want, on_hub.get(id)) {
                    (None, None) => {}
                    (Some(w), Some(h)) => {
                        assert_eq!(h["title"], w["title"], "seed {seed} round {round}: title of {id} (d{di})");
                        assert_eq!(h["n"], w["n"], "seed {seed} round {round}: n of {id} (d{di})");
                        assert_eq!(h["owner"], json!(d.id));
                        if let Some(content) = w.get("content").and_then(Value::as_str) {
                            assert_eq!(h["f"], w["f"], "seed {seed} round {round}: file of {id}");
                            let r = hub.srv.raw(
                                "GET",
                                &format!("/api/files/{}/{id}/{}", h["collectionId"].as_str().unwrap(), h["f"].as_str().unwrap()),
                                &[],
                                None,
                            );
                            assert_eq!(r.status, 200, "seed {seed}: file of {id} on the hub");
                            assert_eq!(r.body, content.as_bytes(), "seed {seed}: content of {id}'s file on the hub");
                        }
                    }
                    (w, h) => panic!("seed {seed} round {round}: d{di}'s record {id}: expected {w:?}, hub has {h:?}"),
                }
            }
        }
        // Nothing on the hub that nobody wrote.
        let known: BTreeSet<&String> = owned
            .iter()
            .flat_map(|m| m.keys())
            .chain(shared.iter())
            .collect();
        for id in on_hub.keys() {
            assert!(
                known.contains(id),
                "seed {seed} round {round}: unknown record {id} on the hub"
            );
        }
        for id in &deleted_shared {
            assert!(
                !on_hub.contains_key(id),
                "seed {seed}: shared {id} deleted but on the hub"
            );
        }
        // Devices see exactly what their rules let them.
        for (di, d) in devs.iter().enumerate() {
            let local = all_records(&d.srv, "notes");
            let expected: BTreeMap<&String, &Value> = on_hub
                .iter()
                .filter(|(_, r)| r["owner"] == json!(d.id) || r["shared"] == json!(true))
                .collect();
            for (id, r) in &local {
                assert!(
                    r["owner"] == json!(d.id) || r["shared"] == json!(true),
                    "seed {seed} round {round}: d{di} holds {id}, which its rules deny: {r}"
                );
                let h = expected.get(id).unwrap_or_else(|| {
                    panic!("seed {seed} round {round}: d{di} holds {id}, the hub doesn't: {r}")
                });
                for f in ["title", "n", "owner", "shared", "f"] {
                    assert_eq!(r[f], h[f], "seed {seed} round {round}: d{di} {id}.{f}");
                }
            }
            assert_eq!(
                local.len(),
                expected.len(),
                "seed {seed} round {round}: d{di} holds {} records, the hub lets it see {}",
                local.len(),
                expected.len()
            );
        }
        // Every value written to a shared record is final or a listed loss.
        let cs = conflicts(&hub.srv);
        let mut seen = BTreeSet::new();
        for c in &cs {
            let key = (
                c["recordId"].to_string(),
                c["field"].to_string(),
                c["lostHlc"].to_string(),
                c["lostBy"].to_string(),
            );
            assert!(
                seen.insert(key),
                "seed {seed}: conflict recorded twice: {c}"
            );
        }
        for ((id, field), by_dev) in &written {
            let final_value = on_hub.get(id).map(|r| r[field.as_str()].clone());
            for (di, v) in by_dev {
                if final_value.as_ref() == Some(v) || deleter.get(id) == Some(di) {
                    continue;
                }
                let dev_id = &devs[*di].id;
                let explained = cs.iter().any(|c| {
                    c["recordId"] == json!(id)
                        && c["field"] == json!(field)
                        && c["lost"] == *v
                        && c["lostBy"] == json!(dev_id)
                });
                assert!(
                    explained,
                    "seed {seed} round {round}: d{di} wrote {id}.{field} = {v}, the hub has {final_value:?}, and no conflict lists the loss"
                );
            }
            // Writes of the round follow the last round's value: one of
            // them is final.
            if let Some(fv) = &final_value {
                assert!(
                    by_dev.values().any(|v| v == fv),
                    "seed {seed} round {round}: {id}.{field} = {fv}, which nobody wrote this round ({by_dev:?})"
                );
            }
        }
        shared.retain(|s| !deleted_shared.contains(s));
        // 5. The hub hides a shared record from every device, then shows it
        // again: each device drops its copy, then gets it back.
        if let Some(p) = rng.pick(&shared).cloned() {
            let flip = |on: bool| {
                let (st, v) = hub.srv.su().patch(
                    &format!("/api/collections/notes/records/{p}"),
                    &json!({"shared": on}),
                );
                assert_eq!(st, 200, "{v}");
            };
            flip(false);
            converge(&hub, &devs, 120);
            for (di, d) in devs.iter().enumerate() {
                assert_eq!(
                    d.srv
                        .su()
                        .get(&format!("/api/collections/notes/records/{p}"))
                        .0,
                    404,
                    "seed {seed} round {round}: d{di} still holds {p}, which its rules now deny"
                );
            }
            flip(true);
            converge(&hub, &devs, 120);
            let h = hub
                .srv
                .su()
                .get(&format!("/api/collections/notes/records/{p}"))
                .1;
            for (di, d) in devs.iter().enumerate() {
                let (st, r) = d
                    .srv
                    .su()
                    .get(&format!("/api/collections/notes/records/{p}"));
                assert_eq!(
                    st, 200,
                    "seed {seed} round {round}: d{di} didn't get {p} back"
                );
                for f in ["title", "n", "shared"] {
                    assert_eq!(r[f], h[f], "seed {seed} round {round}: d{di} {p}.{f}");
                }
            }
        }
        eprintln!(
            "round {round}: ok ({} records on the hub, {} conflicts so far)",
            on_hub.len(),
            cs.len()
        );
    }
    for (i, d) in devs.iter().enumerate() {
        let c = d.proxy.counts();
        eprintln!(
            "proxy d{i}: clean {} refused {} cut {} delayed {} stalled {}",
            c.clean.load(std::sync::atomic::Ordering::Relaxed),
            c.refused.load(std::sync::atomic::Ordering::Relaxed),
            c.cut.load(std::sync::atomic::Ordering::Relaxed),
            c.delayed.load(std::sync::atomic::Ordering::Relaxed),
            c.stalled.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}
