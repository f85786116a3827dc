//! Cloud sync between real keepd processes on loopback: a hub serving
//! HTTPS with a test CA, devices enrolled with `keepd sync enrol`.

use crate::common::{TempRoot, TestServer};
use crate::sync_harness::*;
use serde_json::json;

fn notes(hub: &Hub) {
    hub.collection(json!({
        "name": "notes",
        "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "n", "type": "number"},
        ],
    }));
    hub.sync_collections(&[("notes", "both")]);
}

#[test]
fn a_device_change_reaches_the_hub_and_a_hub_change_the_device() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    let (dev, _) = start_device(&hub, &hub.url(), &pki.ca, "d1", &[]);
    // The device takes the hub's definition of the synced collection.
    wait_until(20, "the device has the notes collection", || {
        dev.su().get("/api/collections/notes").0 == 200
    });
    let (st, v) = dev.guest().post(
        "/api/collections/notes/records",
        &json!({"title": "from the device", "n": 1}),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    wait_until(20, "the hub has the device's record", || {
        hub.srv
            .guest()
            .get(&format!("/api/collections/notes/records/{id}"))
            .0
            == 200
    });
    let (st, v) = hub.srv.guest().post(
        "/api/collections/notes/records",
        &json!({"title": "from the hub", "n": 2}),
    );
    assert_eq!(st, 200, "{v}");
    let hid = v["id"].as_str().unwrap().to_string();
    wait_until(20, "the device has the hub's record", || {
        dev.guest()
            .get(&format!("/api/collections/notes/records/{hid}"))
            .0
            == 200
    });
    // An update and a delete flow too.
    let (st, _) = hub.srv.guest().patch(
        &format!("/api/collections/notes/records/{id}"),
        &json!({"title": "edited on the hub"}),
    );
    assert_eq!(st, 200);
    wait_until(20, "the device sees the hub's edit", || {
        dev.guest()
            .get(&format!("/api/collections/notes/records/{id}"))
            .1["title"]
            == "edited on the hub"
    });
    let (st, _) = dev
        .guest()
        .delete(&format!("/api/collections/notes/records/{hid}"));
    assert_eq!(st, 204);
    wait_until(20, "the hub sees the device's delete", || {
        hub.srv
            .guest()
            .get(&format!("/api/collections/notes/records/{hid}"))
            .0
            == 404
    });
    let s = status(&dev);
    wait_until(10, "the device's queue drains", || {
        status(&dev)["queue"] == 0
    });
    assert_eq!(s["role"], "device", "{s}");
}

#[test]
fn enrolment_tokens_are_single_use() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    let (_, token) = hub.device("d1");
    let a = TempRoot::new("enrol-a");
    let b = TempRoot::new("enrol-b");
    for r in [&a, &b] {
        std::fs::create_dir_all(r.path.join("data")).unwrap();
    }
    let out = enrol(&a, &hub.url(), &token, &pki.ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same device again (a lost answer retried): fine.
    let out = enrol(&a, &hub.url(), &token, &pki.ca);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another device with the same token: refused, and no credential left.
    let out = enrol(&b, &hub.url(), &token, &pki.ca);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid, used or expired"));
    assert!(!b.path.join("data/sync-credential").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(a.path.join("data/sync-credential"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn sync_routes_refuse_plain_http() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    let (st, v) = hub
        .srv
        .guest()
        .post("/api/sync/enrol", &json!({"token": "x.y", "secret": "z"}));
    assert_eq!(st, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("HTTPS only"));
    let _ = TestServer::builder;
}

/// The SHA-256 fingerprint of the certificate a TLS server presents.
fn served_fingerprint(addr: std::net::SocketAddr, extra: &[&str]) -> Option<String> {
    let mut args = vec![
        "s_client".to_string(),
        "-connect".into(),
        addr.to_string(),
        "-servername".into(),
        "localhost".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = std::process::Command::new("openssl")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    let begin = pem.find("-----BEGIN CERTIFICATE-----")?;
    let end = pem.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    let cert = &pem[begin..end];
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(cert.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn file_fingerprint(path: &std::path::Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn https_is_tls13_only_and_reloads_its_certificate_without_a_restart() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[("KEEPD_TLS_RELOAD_SECS", "1")]);
    let first = file_fingerprint(&pki.cert);
    assert_eq!(
        served_fingerprint(hub.https, &[]).as_deref(),
        Some(first.as_str())
    );
    // TLS 1.2 is refused.
    assert_eq!(served_fingerprint(hub.https, &["-tls1_2"]), None);
    // A new pair in place of the old: served to new connections.
    Pki::leaf(&pki.root.path, "next");
    std::fs::rename(pki.root.path.join("next.key"), &pki.key).unwrap();
    std::fs::rename(pki.root.path.join("next.pem"), &pki.cert).unwrap();
    let second = file_fingerprint(&pki.cert);
    assert_ne!(first, second);
    wait_until(20, "the new certificate is served", || {
        served_fingerprint(hub.https, &[]).as_deref() == Some(second.as_str())
    });
    // A broken pair is not loaded: the one in force stays.
    std::fs::write(&pki.cert, "not a certificate").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(
        served_fingerprint(hub.https, &[]).as_deref(),
        Some(second.as_str())
    );
    assert!(hub.srv.output().contains("certificate change not loaded"));
}

#[test]
fn a_revoked_device_stops_at_once_and_keeps_its_local_writes() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    let (dev, id) = start_device(&hub, &hub.url(), &pki.ca, "d1", &[]);
    wait_until(20, "the device syncs", || {
        status(&dev)["state"] == "syncing"
    });
    let (st, _) = hub.srv.su().delete(&format!("/api/sync/devices/{id}"));
    assert_eq!(st, 204);
    // The next write can't reach the hub; the device says it was revoked.
    let (st, v) = dev
        .guest()
        .post("/api/collections/notes/records", &json!({"title": "after"}));
    assert_eq!(st, 200, "{v}");
    let rid = v["id"].as_str().unwrap().to_string();
    wait_until(30, "the device knows it is revoked", || {
        status(&dev)["state"] == "revoked"
    });
    assert_eq!(status(&dev)["queue"], 1);
    assert_eq!(
        hub.srv
            .guest()
            .get(&format!("/api/collections/notes/records/{rid}"))
            .0,
        404
    );
    let (_, list) = hub.srv.su().get("/api/sync/devices");
    assert!(!list["items"][0]["revoked"].as_str().unwrap().is_empty());
}

#[test]
fn a_refused_change_is_listed_with_its_reason_and_the_queue_goes_on() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    hub.collection(json!({
        "name": "notes",
        "type": "base",
        "listRule": "", "viewRule": "",
        // Devices may create only titled notes that aren't "forbidden".
        "createRule": "title != 'forbidden'", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text", "required": true}, {"name": "n", "type": "number"}],
    }));
    hub.sync_collections(&[("notes", "both")]);
    let (dev, _) = start_device(&hub, &hub.url(), &pki.ca, "d1", &[]);
    wait_until(20, "the device has the collection", || {
        dev.su().get("/api/collections/notes").0 == 200
    });
    // The device's own rules are the hub's: open for create locally too? No:
    // the definition came from the hub, so its rule applies locally as well;
    // a superuser on the device bypasses it.
    let (st, v) = dev.su().post(
        "/api/collections/notes/records",
        &json!({"title": "forbidden"}),
    );
    assert_eq!(st, 200, "{v}");
    let bad = v["id"].as_str().unwrap().to_string();
    let (st, v) = dev
        .guest()
        .post("/api/collections/notes/records", &json!({"title": "fine"}));
    assert_eq!(st, 200, "{v}");
    let good = v["id"].as_str().unwrap().to_string();
    wait_until(20, "the good change reaches the hub", || {
        hub.srv
            .guest()
            .get(&format!("/api/collections/notes/records/{good}"))
            .0
            == 200
    });
    wait_until(20, "the device's queue drains", || {
        status(&dev)["queue"] == 0
    });
    assert_eq!(
        hub.srv
            .guest()
            .get(&format!("/api/collections/notes/records/{bad}"))
            .0,
        404
    );
    let (st, v) = dev.su().get("/api/sync/rejected");
    assert_eq!(st, 200);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["recordId"], bad.as_str());
    assert_eq!(items[0]["status"], 400);
    assert_eq!(items[0]["reason"]["message"], "Failed to create record.");
    let (_, v) = hub.srv.su().get("/api/sync/rejected");
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    // Not for guests.
    assert_eq!(dev.guest().get("/api/sync/rejected").0, 401);
}

/// A device spoken by the test itself (frames built with keepd's own
/// `sync::frame`), over plain HTTP from loopback, which the hub lets through
/// as a trusted proxy.
struct RawDevice<'a> {
    hub: &'a TestServer,
    auth: String,
}

impl<'a> RawDevice<'a> {
    fn enrol(hub: &'a Hub) -> RawDevice<'a> {
        let (id, token) = hub.device("raw");
        let secret = "s".repeat(40);
        let (st, v) = hub.srv.guest().post(
            "/api/sync/enrol",
            &json!({"token": token, "secret": secret}),
        );
        assert_eq!(st, 200, "{v}");
        RawDevice {
            hub: &hub.srv,
            auth: format!("KeepdDevice {id}.{secret}"),
        }
    }

    fn push(&self, changes: Vec<keepd::sync::frame::Change>) -> keepd::sync::frame::PushAck {
        use keepd::sync::frame::{decode, encode, Msg, Push};
        let body = encode(&Msg::Push(Push { hlc: 0, changes }), true);
        let r = self.hub.raw(
            "POST",
            "/api/sync/push",
            &[
                ("Authorization", &self.auth),
                ("Content-Type", "application/x-keepd-sync"),
            ],
            Some(&body),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        match decode(&r.body, 1 << 24).unwrap() {
            Msg::PushAck(a) => a,
            other => panic!("{other:?}"),
        }
    }
}

fn change(
    seq: u64,
    coll: &str,
    rec: &str,
    op: keepd::sync::frame::Op,
    fields: &[(&str, serde_json::Value)],
) -> keepd::sync::frame::Change {
    keepd::sync::frame::Change {
        seq,
        hlc: keepd::sync::hlc::at(keepd::sync::hlc::wall_ms()) + seq,
        collection: coll.into(),
        record: rec.into(),
        op,
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), keepd::sync::frame::Val::from_json(v)))
            .collect(),
        base: vec![],
        files: vec![],
    }
}

#[test]
fn a_replayed_push_changes_nothing_and_a_refused_change_blocks_nothing() {
    use keepd::sync::frame::Op;
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[("KEEPD_TRUSTED_PROXIES", "127.0.0.1")]);
    hub.collection(json!({
        "name": "notes", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "title != 'no'", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}],
    }));
    hub.sync_collections(&[("notes", "both")]);
    let (_, coll) = hub.srv.su().get("/api/collections/notes");
    let cid = coll["id"].as_str().unwrap().to_string();
    let dev = RawDevice::enrol(&hub);
    let batch = vec![
        change(
            1,
            &cid,
            "aaaaaaaaaaaaaaa",
            Op::Create,
            &[("title", json!("a")), ("n", json!(1))],
        ),
        change(
            2,
            &cid,
            "bbbbbbbbbbbbbbb",
            Op::Create,
            &[("title", json!("no"))],
        ),
        change(3, &cid, "aaaaaaaaaaaaaaa", Op::Update, &[("n", json!(2))]),
        change(
            4,
            &cid,
            "ccccccccccccccc",
            Op::Create,
            &[("title", json!("c"))],
        ),
        change(
            5,
            &cid,
            "ddddddddddddddd",
            Op::Create,
            &[("title", json!("d"))],
        ),
        change(6, &cid, "ddddddddddddddd", Op::Delete, &[]),
    ];
    let first = dev.push(batch.clone());
    assert_eq!(first.through, 6);
    assert_eq!(first.refused.len(), 1);
    assert_eq!(first.refused[0].seq, 2);
    assert_eq!(first.refused[0].status, 400);
    let head = status(&hub.srv)["log"]["head"].clone();
    let conflicts = status(&hub.srv)["conflicts"].clone();
    let before = all_records(&hub.srv, "notes");
    assert_eq!(before.len(), 2);
    assert_eq!(before["aaaaaaaaaaaaaaa"]["n"], 2);
    // The same batch again (its answer was lost): the same answer, nothing
    // written, nothing logged.
    let again = dev.push(batch);
    assert_eq!(
        again,
        keepd::sync::frame::PushAck {
            hub_hlc: again.hub_hlc,
            hub_ms: again.hub_ms,
            ..first
        }
    );
    assert_eq!(status(&hub.srv)["log"]["head"], head);
    assert_eq!(all_records(&hub.srv, "notes"), before);
    // (Applied again, the create of the deleted record would count as an
    // edit lost to the delete.)
    assert_eq!(status(&hub.srv)["conflicts"], conflicts);
    let (_, rej) = hub.srv.su().get("/api/sync/rejected");
    assert_eq!(rej["items"].as_array().unwrap().len(), 1);
    // Garbage is refused as such, without a half-applied anything.
    let r = hub.srv.raw(
        "POST",
        "/api/sync/push",
        &[("Authorization", &dev.auth)],
        Some(b"KS\x01\x00garbage"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = hub.srv.raw(
        "POST",
        "/api/sync/push",
        &[("Authorization", &dev.auth)],
        Some(b"KS\x09\x00"),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("version 9"), "{}", r.text());
    // A wrong credential is refused.
    let r = hub.srv.raw(
        "POST",
        "/api/sync/push",
        &[("Authorization", "KeepdDevice x.y")],
        Some(b"KS\x01\x00"),
    );
    assert_eq!(r.status, 401);
}

fn post_form(
    srv: &TestServer,
    path: &str,
    parts: &[(&str, Option<&str>, &[u8])],
) -> crate::common::Resp {
    let (ct, body) = crate::common::multipart(parts);
    srv.raw("POST", path, &[("Content-Type", ct.as_str())], Some(&body))
}

#[test]
fn files_travel_by_content_under_the_same_names() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    hub.collection(json!({
        "name": "docs", "type": "base",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "f", "type": "file", "maxSelect": 3, "maxSize": 100000},
        ],
    }));
    hub.sync_collections(&[("docs", "both")]);
    let (d1, _) = start_device(&hub, &hub.url(), &pki.ca, "d1", &[]);
    let (d2, _) = start_device(&hub, &hub.url(), &pki.ca, "d2", &[]);
    for d in [&d1, &d2] {
        wait_until(20, "the device has the docs collection", || {
            d.su().get("/api/collections/docs").0 == 200
        });
    }
    let content = b"hello, synced file\n".repeat(50);
    let r = post_form(
        &d1,
        "/api/collections/docs/records",
        &[("title", None, b"one"), ("f", Some("note.txt"), &content)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = r.json();
    let id = rec["id"].as_str().unwrap().to_string();
    let name = rec["f"][0].as_str().unwrap().to_string();
    // The same content again, in another record: its blob isn't sent twice.
    let r = post_form(
        &d1,
        "/api/collections/docs/records",
        &[("title", None, b"two"), ("f", Some("copy.txt"), &content)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for (srv, what) in [(&hub.srv, "the hub"), (&d2, "the other device")] {
        wait_until(30, &format!("{what} has the record with its file"), || {
            let (st, v) = srv
                .guest()
                .get(&format!("/api/collections/docs/records/{id}"));
            st == 200 && v["f"][0] == json!(name)
        });
        let (_, coll) = srv.su().get("/api/collections/docs");
        let r = srv.raw(
            "GET",
            &format!("/api/files/{}/{id}/{name}", coll["id"].as_str().unwrap()),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "{what}");
        assert_eq!(r.body, content, "{what}");
    }
    let db = hub.srv.open_db();
    let blobs: i64 = db
        .query_row("SELECT COUNT(*) FROM _keepd_sync_blobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(blobs, 1, "one blob for one content");
    // A file uploaded on the hub reaches the devices too; replacing it
    // there removes the old one on the device.
    let r = post_form(
        &hub.srv,
        "/api/collections/docs/records",
        &[
            ("title", None, b"hub"),
            ("f", Some("h.txt"), b"from the hub"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let hid = r.json()["id"].as_str().unwrap().to_string();
    wait_until(30, "the device has the hub's file", || {
        d1.guest()
            .get(&format!("/api/collections/docs/records/{hid}"))
            .0
            == 200
    });
    let (_, v) = d1
        .guest()
        .get(&format!("/api/collections/docs/records/{hid}"));
    let (_, coll) = d1.su().get("/api/collections/docs");
    let cid = coll["id"].as_str().unwrap().to_string();
    let hname = v["f"][0].as_str().unwrap().to_string();
    let r = d1.raw("GET", &format!("/api/files/{cid}/{hid}/{hname}"), &[], None);
    assert_eq!(r.body, b"from the hub");
    let (st, _) = hub.srv.guest().send(
        "PATCH",
        &format!("/api/collections/docs/records/{hid}"),
        Some(&json!({"f": []})),
    );
    assert_eq!(st, 200);
    wait_until(30, "the device drops the removed file", || {
        d1.raw("GET", &format!("/api/files/{cid}/{hid}/{hname}"), &[], None)
            .status
            == 404
    });
    assert!(!d1
        .dir
        .join("storage")
        .join(&cid)
        .join(&hid)
        .join(&hname)
        .exists());
}

#[test]
fn a_full_queue_refuses_writes_with_a_clear_error_after_a_warning() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    let proxy = Proxy::start(hub.https, 1);
    let (dev, _) = start_device(
        &hub,
        &proxy.url(),
        &pki.ca,
        "d1",
        &[
            ("KEEPD_SYNC_OUTBOX_MAX", "10"),
            ("KEEPD_SYNC_OUTBOX_WARN_PERCENT", "50"),
        ],
    );
    wait_until(20, "the device syncs", || {
        status(&dev)["state"] == "syncing"
    });
    proxy.set_online(false);
    for i in 0..10 {
        let (st, v) = dev.guest().post(
            "/api/collections/notes/records",
            &json!({"title": format!("t{i}")}),
        );
        assert_eq!(st, 200, "write {i}: {v}");
    }
    assert!(dev.output().contains("SYNC QUEUE"), "{}", dev.output());
    let (st, v) = dev.guest().post(
        "/api/collections/notes/records",
        &json!({"title": "one too many"}),
    );
    assert_eq!(st, 503, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("sync queue is full"),
        "{v}"
    );
    // Nothing of the refused write was kept.
    assert_eq!(all_records(&dev, "notes").len(), 10);
    assert_eq!(status(&dev)["queue"], 10);
    // Back online, the queue drains and writes are taken again.
    proxy.set_online(true);
    wait_until(30, "the queue drains", || status(&dev)["queue"] == 0);
    let (st, _) = dev
        .guest()
        .post("/api/collections/notes/records", &json!({"title": "again"}));
    assert_eq!(st, 200);
    // The ten queued writes and the one taken after the drain all reach the
    // hub (the last one may already be there: no fixed count in between).
    wait_until(30, "the hub has all eleven writes", || {
        all_records(&hub.srv, "notes").len() == 11
    });
    assert_eq!(all_records(&hub.srv, "notes").len(), 11);
}

#[test]
fn the_hub_limits_each_devices_request_rate() {
    let pki = Pki::new();
    let hub = Hub::start(
        &pki,
        &[
            ("KEEPD_TRUSTED_PROXIES", "127.0.0.1"),
            ("KEEPD_SYNC_DEVICE_RATE_PER_SEC", "1"),
        ],
    );
    notes(&hub);
    let dev = RawDevice::enrol(&hub);
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            hub.srv
                .raw(
                    "GET",
                    "/api/sync/schema",
                    &[("Authorization", &dev.auth)],
                    None,
                )
                .status
        })
        .collect();
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    let r = hub.srv.raw(
        "GET",
        "/api/sync/schema",
        &[("Authorization", &dev.auth)],
        None,
    );
    if r.status == 429 {
        assert!(r.header("retry-after").is_some());
    }
}

#[test]
fn a_device_clock_a_day_wrong_still_orders_its_writes_by_the_hubs_time() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    let (st, v) = hub
        .srv
        .guest()
        .post("/api/collections/notes/records", &json!({"title": "start"}));
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let day = (24 * 3600 * 1000i64).to_string();
    let minus_day = format!("-{day}");
    let pa = Proxy::start(hub.https, 1);
    let pb = Proxy::start(hub.https, 2);
    let pc = Proxy::start(hub.https, 3);
    let (a, _) = start_device(
        &hub,
        &pa.url(),
        &pki.ca,
        "ahead",
        &[("KEEPD_SYNC_TEST_CLOCK_OFFSET_MS", &day)],
    );
    let (b, _) = start_device(&hub, &pb.url(), &pki.ca, "right", &[]);
    let (c, _) = start_device(
        &hub,
        &pc.url(),
        &pki.ca,
        "behind",
        &[("KEEPD_SYNC_TEST_CLOCK_OFFSET_MS", &minus_day)],
    );
    // One exchange each (a change to pull) teaches them the hub's time.
    let (st, _) = hub
        .srv
        .guest()
        .post("/api/collections/notes/records", &json!({"title": "tick"}));
    assert_eq!(st, 200);
    for d in [&a, &b, &c] {
        wait_until(30, "each device has the record", || {
            d.guest()
                .get(&format!("/api/collections/notes/records/{id}"))
                .0
                == 200
                && all_records(d, "notes").len() == 2
        });
    }
    let edit = |d: &TestServer, t: &str| {
        let (st, v) = d.guest().patch(
            &format!("/api/collections/notes/records/{id}"),
            &json!({"title": t}),
        );
        assert_eq!(st, 200, "{v}");
    };
    // Offline: the device a day ahead writes first, the right one after.
    pa.set_online(false);
    pb.set_online(false);
    pc.set_online(false);
    edit(&a, "ahead, earlier");
    std::thread::sleep(std::time::Duration::from_millis(100));
    edit(&b, "right, later");
    std::thread::sleep(std::time::Duration::from_millis(100));
    // The device a day behind writes last of all.
    edit(&c, "behind, latest");
    pa.set_online(true);
    pb.set_online(true);
    pc.set_online(true);
    for d in [&hub.srv, &a, &b, &c] {
        wait_until(30, "everyone has the latest write", || {
            d.guest()
                .get(&format!("/api/collections/notes/records/{id}"))
                .1["title"]
                == "behind, latest"
        });
    }
    for d in [&a, &b, &c] {
        wait_until(30, "every change has reached the hub", || {
            status(d)["queue"] == 0
        });
    }
    let (_, cs) = hub.srv.su().get("/api/sync/conflicts");
    let lost: Vec<&str> = cs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["lost"].as_str())
        .collect();
    assert!(
        lost.contains(&"ahead, earlier") && lost.contains(&"right, later"),
        "{cs}"
    );
    assert!(status(&a)["clockOffsetMs"].as_i64().unwrap() < -(23 * 3600 * 1000));
}

#[test]
fn a_device_keeps_the_hubs_definitions_and_its_down_collections_read_only() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    hub.collection(json!({
        "name": "prices", "type": "base", "listRule": "", "viewRule": "",
        "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "sku", "type": "text"}],
    }));
    hub.sync_collections(&[("notes", "both"), ("prices", "down")]);
    let (st, _) = hub
        .srv
        .guest()
        .post("/api/collections/prices/records", &json!({"sku": "x1"}));
    assert_eq!(st, 200);
    let (dev, _) = start_device(&hub, &hub.url(), &pki.ca, "d1", &[]);
    wait_until(30, "the device has the hub's prices", || {
        dev.su().get("/api/collections/prices").0 == 200 && all_records(&dev, "prices").len() == 1
    });
    let (st, v) = dev
        .su()
        .patch("/api/collections/notes", &json!({"listRule": null}));
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("synced from the hub"),
        "{v}"
    );
    assert_eq!(dev.su().delete("/api/collections/prices").0, 400);
    let (st, v) = dev
        .guest()
        .post("/api/collections/prices/records", &json!({"sku": "local"}));
    assert_eq!(st, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("read-only on this device"),
        "{v}"
    );
    // keepd sync status, from the command line, on the live data dir.
    let out = crate::common::keepd_cmd()
        .args(["sync", "status", "--json", "--dir"])
        .arg(&dev.dir)
        .env("KEEPD_SYNC_ROLE", "device")
        .env("KEEPD_SYNC_HUB", hub.url())
        .env("KEEPD_SYNC_CA_FILE", &pki.ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["role"], "device");
    assert_eq!(v["queue"], 0);
    assert!(v["lastPull"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
}

#[test]
fn a_device_further_behind_than_the_hub_keeps_takes_the_collections_whole() {
    let pki = Pki::new();
    let mut hub = Hub::start(&pki, &[("KEEPD_SYNC_LOG_KEEP", "20")]);
    notes(&hub);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (st, v) = hub.srv.guest().post(
            "/api/collections/notes/records",
            &json!({"title": format!("early {i}")}),
        );
        assert_eq!(st, 200);
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let proxy = Proxy::start(hub.https, 7);
    let (dev, _) = start_device(&hub, &proxy.url(), &pki.ca, "d1", &[]);
    wait_until(30, "the device has the early records", || {
        dev.su().get("/api/collections/notes").0 == 200 && all_records(&dev, "notes").len() == 5
    });
    // Away while the hub changes more than it keeps.
    proxy.set_online(false);
    for i in 0..40 {
        let (st, _) = hub.srv.guest().post(
            "/api/collections/notes/records",
            &json!({"title": format!("late {i}")}),
        );
        assert_eq!(st, 200);
    }
    let (st, _) = hub
        .srv
        .guest()
        .delete(&format!("/api/collections/notes/records/{}", ids[0]));
    assert_eq!(st, 204);
    // A local change made meanwhile is not lost by the re-snapshot.
    let (st, v) = dev.guest().post(
        "/api/collections/notes/records",
        &json!({"title": "made while away"}),
    );
    assert_eq!(st, 200);
    let mine = v["id"].as_str().unwrap().to_string();
    // The log is pruned at start (and every minute).
    hub.restart();
    proxy.set_upstream(hub.https);
    let oldest = status(&hub.srv)["log"]["oldest"].as_u64().unwrap();
    assert!(oldest > 10, "the log was pruned: oldest {oldest}");
    proxy.set_online(true);
    wait_until(60, "the device has caught up", || {
        let local = all_records(&dev, "notes");
        local.len() == 45 && !local.contains_key(&ids[0]) && local.contains_key(&mine)
    });
    wait_until(30, "the hub has the local change", || {
        all_records(&hub.srv, "notes").contains_key(&mine)
    });
    assert!(
        dev.output().contains("taking the synced collections whole"),
        "{}",
        dev.output()
    );
}

#[test]
fn a_device_reports_its_sync_state_to_the_service_manager() {
    use std::os::unix::net::UnixDatagram;
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    notes(&hub);
    let root = TempRoot::new("notify-sync");
    let path = root.path.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let (_dev, _) = start_device(
        &hub,
        &hub.url(),
        &pki.ca,
        "d1",
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    wait_until(30, "a STATUS= line with the sync state", || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        seen.iter()
            .any(|m| m.contains("STATUS=") && m.contains("sync syncing: queue 0"))
    });
}

#[test]
fn a_record_a_device_may_no_longer_list_leaves_it_and_comes_back() {
    let pki = Pki::new();
    let hub = Hub::start(&pki, &[]);
    hub.collection(json!({
        "name": "notes", "type": "base",
        "listRule": "shared = true", "viewRule": "shared = true",
        "createRule": "", "updateRule": "", "deleteRule": "",
        "fields": [{"name": "title", "type": "text"}, {"name": "shared", "type": "bool"}],
    }));
    hub.sync_collections(&[("notes", "both")]);
    let (dev, _) = start_device(&hub, &hub.url(), &pki.ca, "d1", &[]);
    wait_until(30, "the device syncs", || {
        status(&dev)["state"] == "syncing"
    });
    let (_, v) = hub.srv.su().post(
        "/api/collections/notes/records",
        &json!({"title": "public", "shared": true}),
    );
    let id = v["id"].as_str().unwrap().to_string();
    let (_, v) = hub.srv.su().post(
        "/api/collections/notes/records",
        &json!({"title": "private", "shared": false}),
    );
    let private = v["id"].as_str().unwrap().to_string();
    let has = |want: bool| {
        let id = id.clone();
        let dev = &dev;
        move || {
            dev.su()
                .get(&format!("/api/collections/notes/records/{id}"))
                .0
                == if want { 200 } else { 404 }
        }
    };
    wait_until(30, "the device has the public record", has(true));
    let patch = |shared: bool| {
        let (st, v) = hub.srv.su().patch(
            &format!("/api/collections/notes/records/{id}"),
            &json!({"shared": shared}),
        );
        assert_eq!(st, 200, "{v}");
    };
    patch(false);
    wait_until(
        30,
        "the device drops the record it may no longer list",
        has(false),
    );
    patch(true);
    wait_until(30, "the record comes back", has(true));
    // The private one never reached it.
    assert_eq!(
        dev.su()
            .get(&format!("/api/collections/notes/records/{private}"))
            .0,
        404
    );
    // The local removal was not sent to the hub as a delete.
    assert_eq!(
        hub.srv
            .su()
            .get(&format!("/api/collections/notes/records/{id}"))
            .0,
        200
    );
}
