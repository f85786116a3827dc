// S3 storage for file fields, against a real S3-compatible server (moto's
// server mode, from PyPI, started by this test): the `s3` settings
// validated as PocketBase does, `pb.settings.testS3`, uploads landing in
// the bucket under <collectionId>/<recordId>/<name> (and not on disk),
// downloads served from the bucket, files of deleted records (cascades
// included) and of dropped values removed from it, `?thumb=` thumbs made
// into the bucket and removed with their image; backups on S3
// (`backups.s3`) made into the same bucket, listed (only backups, not the
// files beside them), downloaded and deleted through the SDK.
//
// moto_server comes from MOTO_SERVER, else tests/sdk/.venv (made by
// `./dev.sh deps` from requirements.txt).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, superuserClient, expectError } from "./harness.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const MOTO = process.env.MOTO_SERVER || join(HERE, ".venv", "bin", "moto_server");
const BUCKET = "keepd-files";
// The server started below makes plaintext backups (no age key to manage
// here; encrypted backups on S3 are tested in tests/rust/backups_s3.rs).
process.env.KEEPD_BACKUP_ENCRYPTION = "none";

let moto; // { url, child }
let server;
let su;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startMoto() {
  assert.ok(existsSync(MOTO), `moto_server not found at ${MOTO} (run ./dev.sh deps)`);
  const port = await freePort();
  const child = spawn(MOTO, ["-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${url}/moto-api/`);
      if (r.ok) return { url, child };
    } catch {}
    await sleep(100);
  }
  child.kill("SIGKILL");
  throw new Error("moto_server did not start");
}

// The bucket's keys, straight from the S3 server (moto answers unsigned
// requests).
async function bucketKeys() {
  const r = await fetch(`${moto.url}/${BUCKET}?list-type=2`);
  assert.equal(r.status, 200);
  const xml = await r.text();
  return [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]).sort();
}

// moto checks no signature, but reads objects only for a request that
// carries credentials.
const MOTO_AUTH = {
  Authorization:
    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
};

async function bucketObject(key) {
  const r = await fetch(`${moto.url}/${BUCKET}/${key}`, { headers: MOTO_AUTH });
  return r.status === 200 ? Buffer.from(await r.arrayBuffer()) : null;
}

async function eventually(fn, what) {
  for (let i = 0; i < 100; i++) {
    if (await fn()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting: ${what}`);
}

function localFiles(dir) {
  const root = join(dir, "storage");
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true });
}

const s3conf = () => ({
  enabled: true,
  bucket: BUCKET,
  region: "us-east-1",
  endpoint: moto.url,
  accessKey: "keepd-test-key",
  secret: "keepd-test-secret",
  forcePathStyle: true,
});

before(async () => {
  moto = await startMoto();
  const mk = await fetch(`${moto.url}/${BUCKET}`, { method: "PUT" });
  assert.equal(mk.status, 200, "bucket created");
  server = await startServer();
  su = await superuserClient(server);
  await su.collections.create({
    name: "albums",
    type: "base",
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    deleteRule: "",
    fields: [{ name: "title", type: "text" }],
  });
  const albums = await su.collections.getOne("albums");
  await su.collections.create({
    name: "photos",
    type: "base",
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    deleteRule: "",
    fields: [
      { name: "caption", type: "text" },
      { name: "album", type: "relation", collectionId: albums.id, cascadeDelete: true, maxSelect: 1 },
      { name: "images", type: "file", maxSelect: 5, maxSize: 1 << 20 },
    ],
  });
});

after(async () => {
  await server?.stop();
  moto?.child.kill("SIGKILL");
});

test("s3 settings are validated as PocketBase's and the secret is never shown", async () => {
  const err = await expectError(su.settings.update({ s3: { enabled: true, endpoint: "x y" } }), 400);
  assert.equal(err.response.message, "An error occurred while saving the new settings.");
  assert.deepEqual(Object.keys(err.response.data.s3).sort(), ["accessKey", "bucket", "endpoint", "region", "secret"]);
  assert.equal(err.response.data.s3.endpoint.code, "validation_is_url");
  assert.equal(err.response.data.s3.bucket.code, "validation_required");

  const off = await expectError(su.settings.testS3("storage"), 400);
  assert.match(off.response.message, /S3 storage filesystem is not enabled/);
  const bad = await expectError(su.settings.testS3("nope"), 400);
  assert.equal(bad.response.data.filesystem.code, "validation_in_invalid");

  const saved = await su.settings.update({ s3: s3conf() });
  assert.equal(saved.s3.enabled, true);
  assert.equal(saved.s3.secret, undefined, "the secret is not returned");
  // A later change without the secret keeps it.
  await su.settings.update({ s3: { ...s3conf(), secret: undefined } });
  assert.equal(await su.settings.testS3("storage"), true);
  assert.deepEqual(await bucketKeys(), [], "the test file was removed again");
});

test("uploads go to the bucket, downloads come from it, removals reach it", async () => {
  await su.settings.update({ s3: s3conf() });
  const coll = await su.collections.getOne("photos");
  const fd = new FormData();
  fd.append("caption", "beach");
  const jpegish = Buffer.concat([Buffer.from("GIF89a"), Buffer.alloc(200, 7)]);
  fd.append("images", new Blob([jpegish]), "Beach Day.gif");
  fd.append("images", new Blob([Buffer.from("plain words\n")]), "notes.txt");
  const rec = await su.collection("photos").create(fd);
  assert.equal(rec.images.length, 2);
  const keys = await bucketKeys();
  assert.deepEqual(keys, rec.images.map((n) => `${coll.id}/${rec.id}/${n}`).sort());
  assert.deepEqual(await bucketObject(`${coll.id}/${rec.id}/${rec.images[0]}`), jpegish);
  assert.deepEqual(localFiles(server.dir), [], "nothing written to local storage");

  // Downloaded through the API, from the bucket.
  const url = su.files.getURL(rec, rec.images[0]);
  const got = await fetch(url);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("content-type"), "image/gif");
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), jpegish);
  const missing = await fetch(url.replace(rec.images[0], "nope_abcdefghij.gif"));
  assert.equal(missing.status, 404);

  // A removed value goes from the bucket.
  const upd = await su.collection("photos").update(rec.id, { "images-": [rec.images[1]] });
  assert.deepEqual(upd.images, [rec.images[0]]);
  await eventually(
    async () => (await bucketKeys()).length === 1,
    "the dropped file is deleted from the bucket",
  );
  assert.equal(await bucketObject(`${coll.id}/${rec.id}/${rec.images[1]}`), null);

  // A deleted record takes its files.
  await su.collection("photos").delete(rec.id);
  await eventually(async () => (await bucketKeys()).length === 0, "the record's files are deleted");
});

test("a cascade delete removes the dependent records' files from the bucket", async () => {
  await su.settings.update({ s3: s3conf() });
  const album = await su.collection("albums").create({ title: "holiday" });
  const fd = new FormData();
  fd.append("album", album.id);
  fd.append("images", new Blob([Buffer.from("one\n")]), "a.txt");
  const p1 = await su.collection("photos").create(fd);
  const fd2 = new FormData();
  fd2.append("album", album.id);
  fd2.append("images", new Blob([Buffer.from("two\n")]), "b.txt");
  const p2 = await su.collection("photos").create(fd2);
  assert.equal((await bucketKeys()).length, 2);
  await su.collection("albums").delete(album.id);
  await expectError(su.collection("photos").getOne(p1.id), 404);
  await expectError(su.collection("photos").getOne(p2.id), 404);
  await eventually(async () => (await bucketKeys()).length === 0, "cascade-deleted records' files are deleted");
});

test("thumbs of an image in the bucket are kept there and go with the image", async () => {
  await su.settings.update({ s3: s3conf() });
  const coll = await su.collections.getOne("photos");
  const fd = new FormData();
  fd.append("images", new Blob([readFileSync(join(HERE, "fixtures", "bands.gif"))]), "bands.gif");
  const rec = await su.collection("photos").create(fd);
  const name = rec.images[0];
  const r = await fetch(su.files.getURL(rec, name, { thumb: "100x100" }));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "image/gif");
  const thumb = Buffer.from(await r.arrayBuffer());
  assert.deepEqual([thumb.readUInt16LE(6), thumb.readUInt16LE(8)], [100, 100], "a 100×100 GIF");
  assert.deepEqual(await bucketObject(`${coll.id}/${rec.id}/thumbs_${name}/100x100_${name}`), thumb);
  assert.deepEqual(localFiles(server.dir), [], "nothing written to local storage");
  await su.collection("photos").update(rec.id, { "images-": [name] });
  await eventually(async () => (await bucketKeys()).length === 0, "the image and its thumb are deleted");
  await su.collection("photos").delete(rec.id);
});

test("an unreachable bucket fails the write and stores nothing", async () => {
  await su.settings.update({ s3: { ...s3conf(), bucket: "no-such-bucket" } });
  const fd = new FormData();
  fd.append("caption", "lost");
  fd.append("images", new Blob([Buffer.from("x\n")]), "x.txt");
  const before = await su.collection("photos").getFullList();
  const err = await expectError(su.collection("photos").create(fd), 400);
  assert.equal(err.response.message, "Failed to create record.");
  const afterList = await su.collection("photos").getFullList();
  assert.equal(afterList.length, before.length, "no record without its file");
  await su.settings.update({ s3: { enabled: false } });
});

test("backups on S3: made into the bucket, listed, downloaded and deleted through the SDK", async () => {
  await su.settings.update({ s3: s3conf(), backups: { s3: s3conf() } });
  await su.collection("albums").create({ title: "kept" });
  const fd = new FormData();
  fd.append("images", new Blob([Buffer.from("beside the backup\n")]), "beside.txt");
  const rec = await su.collection("photos").create(fd);
  await su.backups.create("sdk_s3.zip");
  const keys = await bucketKeys();
  assert.ok(keys.includes("sdk_s3.zip"), `${keys}`);
  assert.ok(keys.length > 1, "the record's file is in the bucket too");
  const list = await su.backups.getFullList();
  // keepd lists only backup names; PocketBase lists every object of the
  // bucket, the record's file too (COMPATIBILITY.md, "Backups").
  const zips = list.filter((b) => b.key.endsWith(".zip"));
  assert.deepEqual(zips.map((b) => b.key), ["sdk_s3.zip"]);
  assert.ok(list.length <= 2, `${list.map((b) => b.key)}`);
  list.splice(0, list.length, ...zips);
  assert.ok(list[0].size > 100 && /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$/.test(list[0].modified));
  const token = await su.files.getToken();
  const r = await fetch(su.backups.getDownloadURL(token, "sdk_s3.zip"));
  assert.equal(r.status, 200);
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(body.length, list[0].size);
  assert.equal(body.subarray(0, 2).toString(), "PK", "a plaintext zip, as configured");
  assert.deepEqual(body, await bucketObject("sdk_s3.zip"));
  assert.ok(!existsSync(join(server.dir, "backups", "sdk_s3.zip")), "not kept locally");
  await su.backups.delete("sdk_s3.zip");
  assert.ok(!(await bucketKeys()).includes("sdk_s3.zip"));
  // Deleting it again: done already, as PocketBase answers on S3.
  await su.backups.delete("sdk_s3.zip");
  await su.collection("photos").delete(rec.id);
  await su.settings.update({ s3: { enabled: false }, backups: { s3: { enabled: false } } });
});
