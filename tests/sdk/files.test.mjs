// File fields through the JS SDK: multipart create/update (FormData), the
// `+`/`-` modifiers, stored names, downloads with PocketBase's headers,
// MIME types checked by content sniffing, size limits, protected files
// with a file token, files removed with their record, and `?thumb=`
// thumbnails (sizes, crop anchors, formats, the original when a size isn't
// allowed, thumbs stored beside the original and removed with it).

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync, inflateSync } from "node:zlib";
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

// ---- thumbnails -----------------------------------------------------------

// Images are made here (PNG) or read from fixtures/ (JPEG, GIF, WebP: the
// same picture, 40×42, top third red, middle green, bottom blue).
const fixture = (name) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An 8-bit RGB PNG of w×h whose pixel (x, y) is rgb(x, y). */
function makePng(w, h, rgb) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) Buffer.from(rgb(x, y)).copy(raw, y * (w * 3 + 1) + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from("89504e470d0a1a0a", "hex"),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Decodes an 8-bit, non-interlaced PNG: {width, height, rgb(x, y)}. */
function readPng(buf) {
  assert.equal(buf.subarray(0, 8).toString("hex"), "89504e470d0a1a0a", "a PNG");
  let off = 8;
  let ihdr;
  const idat = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString("latin1", off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === "IHDR") ihdr = data;
    if (type === "IDAT") idat.push(data);
    off += 12 + len;
  }
  const width = ihdr.readUInt32BE(0);
  const height = ihdr.readUInt32BE(4);
  assert.equal(ihdr[8], 8, "bit depth");
  assert.equal(ihdr[12], 0, "interlace");
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[ihdr[9]];
  assert.ok(channels, `color type ${ihdr[9]}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const v = raw[y * (stride + 1) + 1 + i];
      const a = i >= channels ? px[y * stride + i - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + i] : 0;
      const c = i >= channels && y > 0 ? px[(y - 1) * stride + i - channels] : 0;
      let pred = 0;
      if (f === 1) pred = a;
      else if (f === 2) pred = b;
      else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + i] = (v + pred) & 0xff;
    }
  }
  const rgb = (x, y) => {
    const o = y * stride + x * channels;
    return channels < 3 ? [px[o], px[o], px[o]] : [px[o], px[o + 1], px[o + 2]];
  };
  return { width, height, rgb };
}

/** A JPEG's dimensions from its SOF marker. */
function jpegSize(buf) {
  assert.equal(buf.readUInt16BE(0), 0xffd8, "a JPEG");
  let off = 2;
  while (off < buf.length) {
    const marker = buf[off + 1];
    const len = buf.readUInt16BE(off + 2);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { width: buf.readUInt16BE(off + 7), height: buf.readUInt16BE(off + 5) };
    }
    off += 2 + len;
  }
  throw new Error("no SOF marker");
}

/** A GIF's logical screen size. */
function gifSize(buf) {
  assert.equal(buf.toString("latin1", 0, 3), "GIF", "a GIF");
  return { width: buf.readUInt16LE(6), height: buf.readUInt16LE(8) };
}

/** The JPEG with an EXIF APP1 segment saying "rotate 90° clockwise" (6). */
function rotated(jpeg) {
  const tiff = Buffer.from("49492a000800000001001201030001000000060000000000000000", "hex");
  const app1 = Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
  const head = Buffer.from([0xff, 0xe1, 0, 0]);
  head.writeUInt16BE(app1.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), head, app1, jpeg.subarray(2)]);
}

const BANDS = makePng(40, 42, (x, y) => [[255, 0, 0], [0, 255, 0], [0, 0, 255]][Math.floor((y * 3) / 42)]);

/** Which of red (0), green (1), blue (2) a pixel mostly is. */
const hue = ([r, g, b]) => [r, g, b].indexOf(Math.max(r, g, b));

describe("thumbnails", () => {
  let coll;
  let rec;
  const SIZES = ["20x10", "20x10t", "20x10b", "20x10f", "0x15", "15x0"];

  before(async () => {
    coll = await su.collections.create({
      name: uniq("pics"),
      type: "base",
      listRule: "",
      viewRule: "",
      createRule: "",
      updateRule: "",
      fields: [
        { name: "img", type: "file", maxSelect: 1, maxSize: 100000, thumbs: SIZES },
        { name: "more", type: "file", maxSelect: 9, maxSize: 100000, thumbs: ["0x20"] },
      ],
    });
    rec = await pb.collection(coll.name).create(
      form({
        img: { name: "bands.png", data: BANDS },
        more: [
          { name: "photo.jpg", data: fixture("bands.jpg") },
          { name: "turned.jpg", data: rotated(fixture("bands.jpg")) },
          { name: "anim.gif", data: fixture("bands.gif") },
          { name: "pic.webp", data: fixture("bands.webp") },
          { name: "notes.txt", data: "not a picture" },
        ],
      }),
    );
  });

  const thumbUrl = (r, name, thumb) => pb.files.getURL(r, name, { thumb });

  test("each listed size gives its dimensions (PNG)", async () => {
    const want = {
      "20x10": [20, 10],
      "20x10t": [20, 10],
      "20x10b": [20, 10],
      "20x10f": [9, 10], // fits inside, keeps the ratio
      "0x15": [14, 15],
      "15x0": [15, 16],
      "100x100": [100, 100], // PocketBase's default, always allowed
    };
    for (const [size, [w, h]] of Object.entries(want)) {
      const r = await get(thumbUrl(rec, rec.img, size));
      assert.equal(r.status, 200, size);
      assert.equal(r.headers.get("content-type"), "image/png", size);
      assert.equal(r.headers.get("content-disposition"), `inline; filename="${size}_${rec.img}"`, size);
      const img = readPng(r.body);
      assert.deepEqual([img.width, img.height], [w, h], size);
    }
  });

  test("crops keep the top, the bottom or the centre", async () => {
    const rows = async (size) => {
      const img = readPng((await get(thumbUrl(rec, rec.img, size))).body);
      return [hue(img.rgb(10, 0)), hue(img.rgb(10, img.height - 1))];
    };
    assert.deepEqual(await rows("20x10t"), [0, 1], "top: red over green");
    assert.deepEqual(await rows("20x10b"), [1, 2], "bottom: green over blue");
    assert.deepEqual(await rows("20x10"), [0, 2], "centre: red over blue");
  });

  test("sizes not allowed, malformed sizes and non-images give the original", async () => {
    for (const size of ["30x30", "20x10x", "abc", "0x0", "20X10", "-20x10", "100x100f"]) {
      const r = await get(thumbUrl(rec, rec.img, size));
      assert.equal(r.status, 200, size);
      assert.deepEqual(r.body, BANDS, size);
      assert.equal(r.headers.get("content-disposition"), `inline; filename="${rec.img}"`, size);
    }
    // A field without thumbs still has the default size.
    const txt = rec.more[4];
    const t = await get(thumbUrl(rec, txt, "100x100"));
    assert.equal(t.body.toString(), "not a picture");
    assert.equal(t.headers.get("content-disposition"), `attachment; filename="${txt}"`);
  });

  test("JPEG gives JPEG, GIF gives GIF, WebP gives PNG", async () => {
    const [jpg, , gif, webp] = rec.more;
    let r = await get(thumbUrl(rec, jpg, "100x100"));
    assert.equal(r.headers.get("content-type"), "image/jpeg");
    assert.deepEqual(jpegSize(r.body), { width: 100, height: 100 });
    r = await get(thumbUrl(rec, gif, "100x100"));
    assert.equal(r.headers.get("content-type"), "image/gif");
    assert.deepEqual(gifSize(r.body), { width: 100, height: 100 });
    r = await get(thumbUrl(rec, webp, "100x100"));
    assert.equal(r.headers.get("content-type"), "image/png");
    assert.equal(r.headers.get("content-disposition"), `inline; filename="100x100_${webp}"`);
    const img = readPng(r.body);
    assert.deepEqual([img.width, img.height], [100, 100]);
    assert.deepEqual([hue(img.rgb(50, 0)), hue(img.rgb(50, 99))], [0, 2]);
  });

  test("EXIF orientation: a quarter-turned JPEG is scaled as it is shown", async () => {
    const [jpg, turned] = rec.more;
    assert.deepEqual(jpegSize((await get(thumbUrl(rec, jpg, "0x20"))).body), { width: 19, height: 20 });
    const r = await get(thumbUrl(rec, turned, "0x20"));
    assert.equal(r.headers.get("content-type"), "image/jpeg");
    assert.deepEqual(jpegSize(r.body), { width: 21, height: 20 }, "40×42 shown as 42×40");
  });

  test("thumbs are kept beside the original and go with it", async () => {
    const dir = join(server.dir, "storage", coll.id, rec.id, `thumbs_${rec.img}`);
    const file = join(dir, `20x10_${rec.img}`);
    assert.equal((await get(thumbUrl(rec, rec.img, "20x10"))).status, 200);
    assert.ok(existsSync(file), "stored on first request");
    const stored = readFileSync(file);
    assert.deepEqual((await get(thumbUrl(rec, rec.img, "20x10"))).body, stored, "served from the file");
    // Replacing the file removes the old one's thumbs.
    const replaced = await pb.collection(coll.name).update(rec.id, form({ img: { name: "again.png", data: BANDS } }));
    assert.notEqual(replaced.img, rec.img);
    assert.ok(!existsSync(dir), "thumbs removed with their original");
    assert.equal((await get(thumbUrl(replaced, rec.img, "20x10"))).status, 404);
    assert.deepEqual(readPng((await get(thumbUrl(replaced, replaced.img, "20x10"))).body).width, 20);
    rec = replaced;
  });
});
