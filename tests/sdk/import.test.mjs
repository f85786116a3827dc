// Moving in from PocketBase, proved with the real one: a pb_data is made by
// PocketBase 0.40.6 through its API (every field type, relations and a
// back-relation, files and a stored thumb, rules reading `@request.auth` and
// `@collection`, users with passwords, an OAuth2 link, settings), the same
// SDK questions are asked of it as guest, as each user and as superuser, it
// is stopped, `keepd import pocketbase` builds a keepd data dir from it, and
// keepd must give the same answers: same records, same rule outcomes, every
// user signing in with their old password, files byte-identical.
//
// Needs both binaries: KEEPD_BIN (keepd; when it is PocketBase — the
// reference run of this suite — there is nothing to import into and the test
// is skipped) and PB_BIN (default: the one tests/compat installs).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { PocketBase, serve } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const PB_BIN = resolve(process.env.PB_BIN || join(here, "../compat/.venv/bin/pocketbase"));
const KEEPD = process.env.KEEPD_BIN ? resolve(process.env.KEEPD_BIN) : "";
const isKeepd = KEEPD && spawnSync(KEEPD, ["import", "--help"], { encoding: "utf8" }).status === 0;
const skip = !isKeepd
  ? "KEEPD_BIN is not keepd (nothing to import into)"
  : !existsSync(PB_BIN)
    ? `no PocketBase at ${PB_BIN}`
    : false;

const SU = ["mover@example.com", "mover-password-123"];
const USERS = [
  ["ana@example.com", "ana-password-1", "Ana"],
  ["bo@example.com", "bo-password-22", "Bo"],
  ["cy@example.com", "cy-password-333", "Cy"],
];
const JPG = readFileSync(join(here, "fixtures/bands.jpg"));
const DOC = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) % 251));

function sdk(url) {
  const pb = new PocketBase(url);
  pb.autoCancellation(false);
  return pb;
}

/** Builds the PocketBase side through its API; returns what the questions need. */
async function populate(url) {
  const su = sdk(url);
  await su.collection("_superusers").authWithPassword(...SU);
  const users = await su.collections.getOne("users");
  const ids = [];
  for (const [email, password, name] of USERS) {
    const r = await su.collection("users").create({ email, password, passwordConfirm: password, name });
    ids.push(r.id);
  }
  await su.collection("users").update(ids[0], { verified: true });
  const tags = await su.collections.create({
    name: "tags",
    type: "base",
    listRule: "",
    viewRule: "",
    fields: [{ name: "name", type: "text", required: true }],
    indexes: ["CREATE UNIQUE INDEX idx_tags_name ON tags (name)"],
  });
  const tagIds = [];
  for (const name of ["open", "news", "misc"]) tagIds.push((await su.collection("tags").create({ name })).id);
  const owned = '@request.auth.id != "" && (author = @request.auth.id || ok = true)';
  await su.collections.create({
    name: "posts",
    type: "base",
    listRule: owned,
    viewRule: owned,
    createRule: '@request.auth.id != ""',
    updateRule: "author = @request.auth.id",
    fields: [
      { name: "title", type: "text", required: true, min: 2, max: 80 },
      { name: "body", type: "editor" },
      { name: "n", type: "number" },
      { name: "ok", type: "bool" },
      { name: "contact", type: "email" },
      { name: "site", type: "url" },
      { name: "when", type: "date" },
      { name: "kind", type: "select", values: ["a", "b", "c"], maxSelect: 1 },
      { name: "labels", type: "select", values: ["x", "y", "z"], maxSelect: 3 },
      { name: "meta", type: "json" },
      { name: "doc", type: "file", maxSelect: 1, maxSize: 1_000_000 },
      { name: "pics", type: "file", maxSelect: 3, maxSize: 1_000_000, thumbs: ["20x20"] },
      { name: "author", type: "relation", collectionId: users.id, maxSelect: 1 },
      { name: "tags", type: "relation", collectionId: tags.id, maxSelect: 5 },
      { name: "place", type: "geoPoint" },
      { name: "secret", type: "text", hidden: true },
      { name: "created", type: "autodate", onCreate: true },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
    indexes: ["CREATE INDEX idx_posts_n ON posts (n)"],
  });
  // A rule through `@collection`: a comment is listed to whoever may see a
  // post tagged "open", or to its post's author.
  await su.collections.create({
    name: "comments",
    type: "base",
    listRule: 'post.author = @request.auth.id || @collection.tags.name ?= "open"',
    viewRule: "post.author = @request.auth.id",
    fields: [
      { name: "post", type: "relation", collectionId: (await su.collections.getOne("posts")).id, maxSelect: 1, cascadeDelete: true },
      { name: "text", type: "text" },
    ],
  });
  const postIds = [];
  for (let i = 0; i < 6; i++) {
    const form = new FormData();
    const fields = {
      title: `post ${i}`,
      body: `<p>body <b>${i}</b></p>`,
      n: i * 1.5 - 2,
      ok: i % 2 === 0,
      contact: `c${i}@example.com`,
      site: `https://example.com/${i}`,
      when: `2026-0${(i % 9) + 1}-1${i} 08:30:00.000Z`,
      kind: ["a", "b", "c"][i % 3],
      meta: JSON.stringify({ i, nested: { list: [i, "x"] } }),
      author: ids[i % 3],
      place: JSON.stringify({ lon: 10 + i, lat: 50 - i }),
      secret: `hidden ${i}`,
    };
    for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
    for (const l of ["x", "y", "z"].slice(0, i % 4)) form.append("labels", l);
    for (const t of tagIds.slice(0, i % 4)) form.append("tags", t);
    if (i % 2 === 0) form.append("doc", new Blob([DOC]), `report-${i}.bin`);
    if (i < 3) form.append("pics", new Blob([JPG], { type: "image/jpeg" }), `band-${i}.jpg`);
    const r = await su.collection("posts").create(form);
    postIds.push(r.id);
    await su.collection("comments").create({ post: r.id, text: `on ${i}` });
  }
  // A thumb PocketBase made and stored: it moves in with the original.
  const p0 = await su.collection("posts").getOne(postIds[0]);
  const thumb = await fetch(su.files.getURL(p0, p0.pics[0], { thumb: "20x20" }));
  assert.equal(thumb.status, 200);
  // An OAuth2 link.
  await su.collection("_externalAuths").create({
    collectionRef: users.id,
    recordRef: ids[1],
    provider: "google",
    providerId: "g-1234567890",
  });
  await su.settings.update({
    meta: { appName: "Moved In", senderName: "Mover", senderAddress: "mover@example.com" },
    smtp: { enabled: true, host: "127.0.0.1", port: 2525, username: "u", password: "p" },
    batch: { enabled: true, maxRequests: 9, timeout: 3, maxBodySize: 0 },
    rateLimits: { enabled: true, rules: [{ label: "/api/", maxRequests: 900, duration: 10 }] },
  });
  return { postIds, userIds: ids };
}

/** The questions, asked the same way of either server; answers keyed by name. */
async function ask(url, { postIds, userIds }) {
  const out = {};
  const guest = sdk(url);
  const su = sdk(url);
  await su.collection("_superusers").authWithPassword(...SU);
  const as = { guest, su };
  for (const [email, password] of USERS) {
    const c = sdk(url);
    const auth = await c.collection("users").authWithPassword(email, password);
    out[`login ${email}`] = auth.record;
    as[email] = c;
  }
  const settle = async (name, p) => {
    try {
      out[name] = await p;
    } catch (e) {
      out[name] = { error: e.status, data: e.response?.data ?? null };
    }
  };
  for (const [who, c] of Object.entries(as)) {
    await settle(`${who} posts by title`, c.collection("posts").getList(1, 50, { sort: "title", expand: "author,tags" }));
    await settle(
      `${who} posts filtered`,
      c.collection("posts").getList(1, 2, { filter: 'n > -1 && kind != "b"', sort: "-n" }),
    );
    await settle(`${who} posts near`, c.collection("posts").getFullList({ filter: "geoDistance(place.lon, place.lat, 12, 48) < 200", sort: "title" }));
    await settle(`${who} comments`, c.collection("comments").getFullList({ sort: "text", expand: "post" }));
    await settle(`${who} tags with posts`, c.collection("tags").getFullList({ sort: "name", expand: "posts_via_tags" }));
    for (const id of postIds) await settle(`${who} view ${id}`, c.collection("posts").getOne(id));
  }
  await settle(`links`, as[USERS[1][0]].collection("_externalAuths").getFullList({ fields: "provider,providerId,recordRef" }));
  await settle(`users`, su.collection("users").getFullList({ sort: "email", fields: "id,email,name,verified,created,updated" }));
  const s = await su.settings.getAll();
  out.settings = {
    meta: [s.meta.appName, s.meta.senderName, s.meta.senderAddress],
    smtp: [s.smtp.enabled, s.smtp.host, s.smtp.port, s.smtp.username],
    batch: [s.batch.enabled, s.batch.maxRequests, s.batch.timeout],
    rateLimits: [s.rateLimits.enabled, s.rateLimits.rules.map((r) => [r.label, r.maxRequests, r.duration])],
  };
  // Files: every stored one, and the stored thumb.
  const posts = await su.collection("posts").getFullList({ sort: "title" });
  for (const p of posts) {
    for (const name of [p.doc, ...p.pics].filter(Boolean)) {
      const res = await fetch(su.files.getURL(p, name));
      out[`file ${name}`] = [res.status, res.headers.get("content-type"), Buffer.from(await res.arrayBuffer()).toString("base64")];
    }
  }
  const p0 = posts.find((p) => p.id === postIds[0]);
  const t = await fetch(su.files.getURL(p0, p0.pics[0], { thumb: "20x20" }));
  out.thumb = [t.status, Buffer.from(await t.arrayBuffer()).toString("base64")];
  // Writes last (they change what the reads above would see): the update
  // and delete rules, per principal.
  const comment = await su.collection("comments").getFirstListItem(`post = "${postIds[5]}"`);
  for (const [who, c] of Object.entries(as)) {
    await settle(`${who} update`, c.collection("posts").update(postIds[1], { n: 7 }, { fields: "id,n" }));
    await settle(`${who} delete`, c.collection("comments").delete(comment.id).then(() => "deleted"));
  }
  return out;
}

test("a pb_data made by PocketBase moves into keepd and answers the same", { skip, timeout: 180_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "keepd-import-"));
  try {
    const pbRoot = join(root, "pb");
    const pbDir = join(pbRoot, "pb_data");
    mkdirSync(pbDir, { recursive: true, mode: 0o700 });
    const up = spawnSync(PB_BIN, ["superuser", "upsert", ...SU, "--dir", pbDir], { cwd: pbRoot, encoding: "utf8" });
    assert.equal(up.status, 0, up.stderr);
    let pb = await serve(PB_BIN, pbRoot, pbDir, { keep: true });
    const made = await populate(pb.url);
    // The answers are read from a copy: the questions include an update and
    // a delete, and the import must see the data as it was made.
    await pb.stop();
    const askRoot = join(root, "pb-asked");
    spawnSync("cp", ["-a", pbRoot, askRoot]);
    pb = await serve(PB_BIN, askRoot, join(askRoot, "pb_data"), { keep: true });
    const want = await ask(pb.url, made);
    await pb.stop();

    const kRoot = join(root, "keepd");
    const kDir = join(kRoot, "data");
    mkdirSync(kRoot, { mode: 0o700 });
    const imp = spawnSync(KEEPD, ["import", "pocketbase", pbDir, "--dir", kDir], { cwd: kRoot, encoding: "utf8" });
    assert.equal(imp.status, 0, `import failed:\n${imp.stdout}\n${imp.stderr}`);
    const keepd = await serve(KEEPD, kRoot, kDir, { keep: true });
    let got;
    try {
      got = await ask(keepd.url, made);
      // A second sign-in (the hash upgraded to argon2id by the first) works too.
      for (const [email, password] of USERS) {
        await sdk(keepd.url).collection("users").authWithPassword(email, password);
      }
    } finally {
      await keepd.stop();
    }
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
    for (const k of Object.keys(want)) {
      assert.deepEqual(got[k], want[k], `answer to "${k}" differs after the import`);
    }
    // The questions covered what they mean to: rules refused someone, files
    // and the thumb were there, the link was found.
    assert.equal(want["guest posts by title"].error, undefined);
    assert.equal(want["guest posts by title"].items.length, 0);
    assert.ok(want[`${USERS[0][0]} posts by title`].items.length >= 3);
    assert.equal(want["guest update"].error, 404);
    assert.equal(want.thumb[0], 200);
    assert.equal(want.links.length, 1);
    assert.ok(Object.keys(want).filter((k) => k.startsWith("file ")).length >= 6);
  } finally {
    if (process.env.KEEPD_KEEP_TMP) console.log(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
});
