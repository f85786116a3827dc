// File fields through the JS SDK: multipart create/update (FormData), the
// `+`/`-` modifiers, stored names, downloads with PocketBase's headers,
// MIME types checked by content sniffing, size limits, protected files
// with a file token, and files removed with their record.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

let server;
let su;
let pb; // an authenticated user

// A 1×1 PNG.
const PNG = Buffer.from(
  "89504e470d0a1a0a0000000d4948445200000001000000010806000000" +
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082",
  "hex",
);

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
  await su.collections.create({
    name: "docs",
    type: "base",
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    deleteRule: "",
    fields: [
      { name: "title", type: "text" },
      { name: "doc", type: "file", maxSelect: 1, maxSize: 5000 },
      { name: "attachments", type: "file", maxSelect: 5, maxSize: 100000 },
      { name: "onlytext", type: "file", maxSelect: 1, maxSize: 100000, mimeTypes: ["text/plain"] },
    ],
  });
  await su.collections.create({
    name: "vault",
    type: "base",
    listRule: "@request.auth.id != ''",
    viewRule: "@request.auth.id != ''",
    createRule: "",
    fields: [{ name: "secret", type: "file", maxSelect: 1, maxSize: 100000, protected: true }],
  });
  const email = `${uniq("f")}@example.com`;
  pb = client(server);
  await pb.collection("users").create({ email, password: "files-password-123", passwordConfirm: "files-password-123" });
  await pb.collection("users").authWithPassword(email, "files-password-123");
});
after(async () => {
  await server?.stop();
});

function form(fields) {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item && item.name !== undefined && item.data !== undefined) {
        fd.append(k, new Blob([item.data]), item.name);
      } else {
        fd.append(k, item);
      }
    }
  }
  return fd;
}

async function get(url) {
  const res = await fetch(url);
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

describe("file fields", () => {
  let rec;

  test("multipart create stores files under PocketBase's names", async () => {
    rec = await pb.collection("docs").create(
      form({
        title: "with files",
        doc: { name: "My Photo.png", data: PNG },
        attachments: [
          { name: "notes.txt", data: "first notes" },
          { name: "more.txt", data: "second notes" },
        ],
      }),
    );
    assert.match(rec.doc, /^my_photo_[a-z0-9]{10}\.png$/);
    assert.equal(rec.attachments.length, 2);
    assert.match(rec.attachments[0], /^notes_[a-z0-9]{10}\.txt$/);
    assert.equal(rec.title, "with files");
  });

  test("downloads carry PocketBase's headers", async () => {
    const url = pb.files.getURL(rec, rec.doc);
    const r = await get(url);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, PNG);
    assert.equal(r.headers.get("content-type"), "image/png");
    assert.equal(r.headers.get("content-disposition"), `inline; filename="${rec.doc}"`);
    assert.equal(
      r.headers.get("content-security-policy"),
      "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox",
    );
    assert.equal(r.headers.get("x-content-type-options"), "nosniff");
    const d = await get(pb.files.getURL(rec, rec.doc, { download: true }));
    assert.equal(d.headers.get("content-disposition"), `attachment; filename="${rec.doc}"`);
    const t = await get(pb.files.getURL(rec, rec.attachments[0]));
    assert.equal(t.body.toString(), "first notes");
    assert.equal(t.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(t.headers.get("content-disposition"), `attachment; filename="${rec.attachments[0]}"`);
    // A name the record doesn't have.
    assert.equal((await get(`${server.url}/api/files/docs/${rec.id}/nope_1234567890.png`)).status, 404);
  });

  test("+ appends, - removes (and the removed file is gone)", async () => {
    const added = await pb.collection("docs").update(rec.id, form({ "attachments+": { name: "third.txt", data: "third" } }));
    assert.equal(added.attachments.length, 3);
    assert.deepEqual(added.attachments.slice(0, 2), rec.attachments);
    const gone = rec.attachments[0];
    const removed = await pb.collection("docs").update(rec.id, { "attachments-": [gone] });
    assert.equal(removed.attachments.length, 2);
    assert.ok(!removed.attachments.includes(gone));
    assert.equal((await get(pb.files.getURL(removed, gone))).status, 404);
    // Replacing the single file drops the old one.
    const replaced = await pb.collection("docs").update(rec.id, form({ doc: { name: "other.png", data: PNG } }));
    assert.notEqual(replaced.doc, rec.doc);
    assert.equal((await get(pb.files.getURL(replaced, rec.doc))).status, 404);
    assert.equal((await get(pb.files.getURL(replaced, replaced.doc))).status, 200);
    rec = replaced;
  });

  test("MIME types are sniffed from the content, not the name", async () => {
    const e = await expectError(
      pb.collection("docs").create(form({ onlytext: { name: "looks.txt", data: PNG } })),
      400,
    );
    assert.equal(e.response.data.onlytext.code, "validation_invalid_mime_type");
    const ok = await pb.collection("docs").create(form({ onlytext: { name: "looks.png", data: "plain words" } }));
    assert.match(ok.onlytext, /\.png$/);
  });

  test("oversized files are refused", async () => {
    const e = await expectError(
      pb.collection("docs").create(form({ doc: { name: "big.bin", data: Buffer.alloc(6000, 7) } })),
      400,
    );
    assert.equal(e.response.data.doc.code, "validation_file_size_limit");
  });

  test("protected files need a file token and the view rule", async () => {
    const v = await pb.collection("vault").create(form({ secret: { name: "s.txt", data: "top secret" } }));
    const plain = pb.files.getURL(v, v.secret);
    assert.equal((await get(plain)).status, 404);
    const token = await pb.files.getToken();
    const r = await get(pb.files.getURL(v, v.secret, { token }));
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), "top secret");
    assert.equal((await get(pb.files.getURL(v, v.secret, { token: "garbage" }))).status, 404);
  });

  test("deleting the record deletes its files", async () => {
    const url = pb.files.getURL(rec, rec.doc);
    assert.equal((await get(url)).status, 200);
    await pb.collection("docs").delete(rec.id);
    assert.equal((await get(url)).status, 404);
  });
});
