//! Stored files on disk, against the real daemon: private modes (dirs
//! 0700, files 0600), hostile upload names that can't leave the record's
//! directory, a traversal corpus on the download route, files removed
//! with their record, and thumbnails never made of images over
//! `max_thumb_pixels` (decompression bombs).

use crate::common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A multipart POST of `parts` (with a token when given).
fn post_form(
    srv: &TestServer,
    path: &str,
    token: Option<&str>,
    parts: &[(&str, Option<&str>, &[u8])],
) -> Resp {
    let (ct, body) = multipart(parts);
    let mut headers = vec![("Content-Type", ct.as_str())];
    if let Some(t) = token {
        headers.push(("Authorization", t));
    }
    srv.raw("POST", path, &headers, Some(&body))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

#[test]
fn files_on_disk_are_private_and_names_cannot_escape() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let coll = srv.create_collection(&json!({
        "name": "docs", "type": "base", "listRule": "", "viewRule": "",
        "fields": [{"name": "f", "type": "file", "maxSelect": 3, "maxSize": 10000}]
    }));
    let cid = coll["id"].as_str().expect("id").to_string();
    let (ct, body) = multipart(&[
        ("f", Some("../../evil.txt"), b"one"),
        ("f", Some("/etc/passwd"), b"two"),
        ("f", Some("..\\..\\win.txt"), b"three"),
    ]);
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        "/api/collections/docs/records",
        &[("Authorization", &tok), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec: Value = r.json();
    let id = rec["id"].as_str().expect("id").to_string();
    let names: Vec<String> = rec["f"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect();
    assert_eq!(names.len(), 3);
    let data_dir = srv.db_path().parent().expect("dir").to_path_buf();
    let rec_dir = data_dir.join("storage").join(&cid).join(&id);
    for n in &names {
        assert!(
            !n.contains('/') && !n.contains('\\') && !n.starts_with('.'),
            "{n}"
        );
        let p = rec_dir.join(n);
        assert!(p.exists(), "{p:?}");
        assert_eq!(mode(&p), 0o600, "{p:?}");
    }
    for d in [
        data_dir.join("storage"),
        data_dir.join("storage").join(&cid),
        rec_dir.clone(),
    ] {
        assert_eq!(mode(&d), 0o700, "{d:?}");
    }
    // Nothing was written outside the record's directory.
    assert!(!data_dir.join("evil.txt").exists());
    assert!(!data_dir.join("storage").join("evil.txt").exists());

    // The download route: a traversal corpus never reaches another file.
    let secret_db = std::fs::read(data_dir.join("data.db")).expect("db");
    for path in [
        format!("/api/files/docs/{id}/..%2F..%2F..%2Fdata.db"),
        format!("/api/files/docs/{id}/%2e%2e%2f%2e%2e%2fdata.db"),
        format!("/api/files/docs/{id}/..%5C..%5Cdata.db"),
        format!("/api/files/docs/{id}/data.db"),
        format!("/api/files/docs/{id}/.%2e/.%2e/data.db"),
        format!("/api/files/docs/{id}/x%00.txt"),
        format!("/api/files/docs/..%2F..%2F/{}", names[0]),
        format!("/api/files/docs/{id}/%E2%88%95etc%E2%88%95passwd"),
        format!("/api/files/{cid}/..%2F{id}/{}", names[0]),
    ] {
        let r = srv.raw("GET", &path, &[], None);
        assert_eq!(r.status, 404, "{path}: {}", r.status);
        assert!(r.body.len() < 200 || r.body != secret_db, "{path}");
    }
    // The real names work.
    let r = srv.raw(
        "GET",
        &format!("/api/files/docs/{id}/{}", names[1]),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"two");

    // Deleting the record removes its directory.
    let (st, _) = srv
        .su()
        .delete(&format!("/api/collections/docs/records/{id}"));
    assert_eq!(st, 204);
    assert!(!rec_dir.exists(), "the record's files stayed");
}

#[test]
fn a_failed_write_leaves_no_files() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let coll = srv.create_collection(&json!({
        "name": "strict", "type": "base", "createRule": "",
        "fields": [
            {"name": "f", "type": "file", "maxSelect": 1, "maxSize": 10000},
            {"name": "must", "type": "text", "required": true}
        ]
    }));
    let cid = coll["id"].as_str().expect("id").to_string();
    let r = post_form(
        &srv,
        "/api/collections/strict/records",
        None,
        &[("f", Some("a.txt"), b"data")],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let dir = srv
        .db_path()
        .parent()
        .expect("dir")
        .join("storage")
        .join(&cid);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "a refused record left {leftovers:?}");
}

#[test]
fn cascade_and_batch_deletes_take_the_files() {
    if is_reference() {
        return;
    }
    let srv = TestServer::start();
    let parent = srv.create_collection(&json!({
        "name": "albums", "type": "base", "fields": [{"name": "t", "type": "text"}]
    }));
    let child = srv.create_collection(&json!({
        "name": "photos", "type": "base",
        "fields": [
            {"name": "album", "type": "relation", "collectionId": parent["id"], "cascadeDelete": true, "maxSelect": 1},
            {"name": "f", "type": "file", "maxSelect": 1, "maxSize": 10000}
        ]
    }));
    let cid = child["id"].as_str().expect("id").to_string();
    let tok = srv.superuser_token();
    let (st, album) = srv
        .su()
        .post("/api/collections/albums/records", &json!({"t": "x"}));
    assert_eq!(st, 200);
    let aid = album["id"].as_str().expect("id");
    let storage = srv
        .db_path()
        .parent()
        .expect("dir")
        .join("storage")
        .join(&cid);
    let mut dirs = Vec::new();
    for n in 0..2 {
        let r = post_form(
            &srv,
            "/api/collections/photos/records",
            Some(&tok),
            &[
                ("album", None, aid.as_bytes()),
                ("f", Some("p.txt"), b"pix"),
            ],
        );
        assert_eq!(r.status, 200, "{n}: {}", r.text());
        let id = r.json()["id"].as_str().expect("id").to_string();
        assert!(storage.join(&id).is_dir());
        dirs.push(storage.join(id));
    }
    // Deleting the album cascades to both photos and their files.
    let (st, _) = srv
        .su()
        .delete(&format!("/api/collections/albums/records/{aid}"));
    assert_eq!(st, 204);
    for d in &dirs {
        assert!(
            !d.exists(),
            "a cascade-deleted record's files stayed: {d:?}"
        );
    }

    // A batch that fails leaves none of its uploads on disk.
    let (st, _) = srv
        .su()
        .patch("/api/settings", &json!({"batch": {"enabled": true}}));
    assert_eq!(st, 200);
    let payload = json!({"requests": [
        {"method": "POST", "url": "/api/collections/photos/records", "body": {}},
        {"method": "POST", "url": "/api/collections/photos/records", "body": {"album": "missing_id_xyz"}}
    ]})
    .to_string();
    let r = post_form(
        &srv,
        "/api/batch",
        Some(&tok),
        &[
            ("@jsonPayload", None, payload.as_bytes()),
            ("requests.0.f", Some("a.txt"), b"one"),
            ("requests[1].f", Some("b.txt"), b"two"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let left: Vec<_> = std::fs::read_dir(&storage)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed batch left {left:?}");
    // A file part for a request that doesn't exist is refused.
    let r = post_form(
        &srv,
        "/api/batch",
        Some(&tok),
        &[
            ("@jsonPayload", None, payload.as_bytes()),
            ("requests.7.f", Some("a.txt"), b"one"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

/// A PNG (RGB, 8-bit) of `w`×`h`.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30]));
    let mut v = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(std::io::Cursor::new(&mut v), image::ImageFormat::Png)
        .expect("png");
    v
}

/// A PNG whose header declares `w`×`h` while its data is one empty block:
/// a decoder that believed the header would allocate w×h×3 bytes.
fn bomb(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &[0x78, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        (b"IEND", &[]),
    ] {
        v.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        v.extend(&c);
        v.extend(crc32fast::hash(&c).to_be_bytes());
    }
    v
}

/// Width and height from a PNG's IHDR.
fn png_size(b: &[u8]) -> (u32, u32) {
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let n = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    (n(16), n(20))
}

#[test]
fn thumbs_are_not_made_of_images_over_the_pixel_limit() {
    if is_reference() {
        return; // PocketBase has no such limit: it would decode the bomb.
    }
    let srv = TestServer::builder()
        .env("KEEPD_MAX_THUMB_PIXELS", "1000")
        .env("KEEPD_MAX_THUMB_WORKERS", "1")
        .start();
    let coll = srv.create_collection(&json!({
        "name": "pics", "type": "base", "viewRule": "",
        "fields": [{"name": "f", "type": "file", "maxSelect": 5, "maxSize": 100000,
                    "thumbs": ["20x10", "50x0"]}]
    }));
    let cid = coll["id"].as_str().expect("id").to_string();
    let bomb = bomb(100_000, 100_000);
    let (big, small) = (png(40, 30), png(30, 20));
    let (ct, body) = multipart(&[
        ("f", Some("bomb.png"), &bomb),
        ("f", Some("big.png"), &big),
        ("f", Some("small.png"), &small),
    ]);
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        "/api/collections/pics/records",
        &[("Authorization", &tok), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec: Value = r.json();
    let id = rec["id"].as_str().expect("id").to_string();
    let names: Vec<String> = rec["f"]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect();
    let get = |name: &str, thumb: &str| {
        srv.raw(
            "GET",
            &format!("/api/files/pics/{id}/{name}?thumb={thumb}"),
            &[],
            None,
        )
    };
    let rec_dir = srv
        .db_path()
        .parent()
        .expect("dir")
        .join("storage")
        .join(&cid)
        .join(&id);
    // 10^10 pixels declared: the original, at once, and nothing stored.
    let started = std::time::Instant::now();
    let r = get(&names[0], "100x100");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bomb);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("inline; filename=\"{}\"", names[0]).as_str())
    );
    assert!(!rec_dir
        .join(format!("thumbs_{}/100x100_{}", names[0], names[0]))
        .exists());
    // 1200 pixels > 1000: the original.
    assert_eq!(get(&names[1], "20x10").body, big);
    // 600 pixels: a thumb…
    let r = get(&names[2], "20x10");
    assert_eq!(png_size(&r.body), (20, 10));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("inline; filename=\"20x10_{}\"", names[2]).as_str())
    );
    // …unless a step of the resize is over the limit (50×33, 100×100).
    assert_eq!(get(&names[2], "50x0").body, small);
    assert_eq!(get(&names[2], "100x100").body, small);
    // The daemon is fine after all that.
    assert_eq!(srv.raw("GET", "/api/health", &[], None).status, 200);
}

#[test]
fn large_files_download_whole_and_streamed() {
    let srv = TestServer::start();
    srv.create_collection(&json!({
        "name": "blobs", "type": "base", "viewRule": "",
        "fields": [{"name": "f", "type": "file", "maxSelect": 1, "maxSize": 4 << 20}]
    }));
    // 1.5 MiB that is not valid UTF-8 and matches no magic number.
    let data: Vec<u8> = (0..(3u32 << 19))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    let (ct, body) = multipart(&[("f", Some("blob.bin"), &data)]);
    let tok = srv.superuser_token();
    let r = srv.raw(
        "POST",
        "/api/collections/blobs/records",
        &[("Authorization", &tok), ("Content-Type", &ct)],
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = r.json();
    let path = format!(
        "/api/files/blobs/{}/{}",
        rec["id"].as_str().expect("id"),
        rec["f"].as_str().expect("name")
    );
    let r = srv.raw("GET", &path, &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data, "downloaded bytes differ");
    if !is_reference() {
        // (PocketBase's sniffer calls these bytes text/plain.)
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(
            r.header("content-length").map(str::to_string),
            Some(data.len().to_string())
        );
    }
}
