// Records API (/api/collections/{c}/records) through the official JS SDK:
// CRUD, validation, coercion, modifiers, listing/filtering/sorting, expand.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

const ID_RE = /^[a-z0-9]{15}$/;
const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const PUBLIC = { listRule: "", viewRule: "", createRule: "", updateRule: "", deleteRule: "" };

let server;
let su;
let pb; // guest client: every collection here has public rules

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
  pb = client(server);
});
after(async () => {
  await server?.stop();
});

/** Creates the authors + posts pair used by the CRUD/validation tests. */
async function createBlog() {
  const authors = await su.collections.create({
    name: uniq("authors"),
    type: "base",
    ...PUBLIC,
    fields: [{ name: "name", type: "text" }],
  });
  const posts = await su.collections.create({
    name: uniq("posts"),
    type: "base",
    ...PUBLIC,
    fields: [
      { name: "title", type: "text", required: true, min: 3, max: 20 },
      { name: "count", type: "number", min: 0, max: 100, onlyInt: true },
      { name: "score", type: "number" },
      { name: "flag", type: "bool" },
      { name: "mail", type: "email" },
      { name: "site", type: "url" },
      { name: "when", type: "date" },
      { name: "status", type: "select", values: ["draft", "published"], maxSelect: 1 },
      { name: "tags", type: "select", values: ["a", "b", "c"], maxSelect: 2 },
      { name: "meta", type: "json" },
      { name: "author", type: "relation", collectionId: authors.id, maxSelect: 1 },
      { name: "coauthors", type: "relation", collectionId: authors.id, maxSelect: 3 },
      { name: "loc", type: "geoPoint" },
      { name: "created", type: "autodate", onCreate: true },
      { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
    ],
  });
  return { authors: authors.name, posts: posts.name, postsId: posts.id };
}

describe("CRUD", () => {
  let blog;
  before(async () => {
    blog = await createBlog();
  });

  test("create returns the full record with a generated 15-char id", async () => {
    const rec = await pb.collection(blog.posts).create({ title: "hello", count: 3, tags: ["a", "b"], meta: { k: [1, 2] } });
    assert.match(rec.id, ID_RE);
    assert.equal(rec.collectionName, blog.posts);
    assert.equal(rec.collectionId, blog.postsId);
    assert.equal(rec.title, "hello");
    assert.equal(rec.count, 3);
    assert.deepEqual(rec.tags, ["a", "b"]);
    assert.deepEqual(rec.meta, { k: [1, 2] });
    assert.deepEqual(rec.loc, { lon: 0, lat: 0 });
    assert.match(rec.created, DATE_RE);
    assert.equal(rec.updated, rec.created);
  });

  test("ids are unique and always [a-z0-9]{15}", async () => {
    const ids = new Set();
    for (let i = 0; i < 20; i++) {
      const rec = await pb.collection(blog.posts).create({ title: `rec ${i}` });
      assert.match(rec.id, ID_RE);
      ids.add(rec.id);
    }
    assert.equal(ids.size, 20);
  });

  test("getOne, update and delete", async () => {
    const c = pb.collection(blog.posts);
    const rec = await c.create({ title: "first", score: 1.5 });
    const got = await c.getOne(rec.id);
    assert.deepEqual(got, rec);

    await new Promise((r) => setTimeout(r, 5));
    const upd = await c.update(rec.id, { title: "second", flag: true });
    assert.equal(upd.id, rec.id);
    assert.equal(upd.title, "second");
    assert.equal(upd.flag, true);
    assert.equal(upd.score, 1.5, "fields not sent are kept");
    assert.equal(upd.created, rec.created);
    assert.match(upd.updated, DATE_RE);
    assert.ok(upd.updated > rec.updated, "updated autodate moves forward");
    assert.deepEqual(await c.getOne(rec.id), upd);

    assert.equal(await c.delete(rec.id), true);
    const err = await expectError(c.getOne(rec.id), 404);
    assert.deepEqual(err.response, { data: {}, message: "The requested resource wasn't found.", status: 404 });
  });

  test("autodate fields cannot be set by the client", async () => {
    const c = su.collection(blog.posts);
    const rec = await c.create({ title: "dated", created: "2001-01-01 00:00:00.000Z", updated: "2001-01-01 00:00:00.000Z" });
    assert.notEqual(rec.created, "2001-01-01 00:00:00.000Z");
    assert.ok(rec.created > "2020");
    const upd = await c.update(rec.id, { created: "2001-01-01 00:00:00.000Z" });
    assert.equal(upd.created, rec.created);
  });

  test("custom ids", async () => {
    const c = pb.collection(blog.posts);
    const rec = await c.create({ id: "custom000000001", title: "custom" });
    assert.equal(rec.id, "custom000000001");
    assert.equal((await c.getOne("custom000000001")).title, "custom");

    const cases = [
      ["custom000000001", { code: "validation_not_unique", message: "Value must be unique." }],
      ["short", { code: "validation_min_text_constraint", message: "Must be at least 15 character(s).", params: { min: 15 } }],
      ["UPPER_case_1234", { code: "validation_invalid_format", message: "Invalid value format." }],
    ];
    for (const [id, expected] of cases) {
      const err = await expectError(c.create({ id, title: "custom" }), 400);
      assert.equal(err.response.message, "Failed to create record.");
      assert.deepEqual(err.response.data, { id: expected }, `id ${id}`);
    }
  });

  test("the primary key cannot be changed", async () => {
    const c = pb.collection(blog.posts);
    const rec = await c.create({ title: "pkey" });
    const err = await expectError(c.update(rec.id, { id: "zzzzzzzzzzzzzzz" }), 400);
    assert.equal(err.response.message, "Failed to update record.");
    assert.deepEqual(err.response.data, { id: { code: "validation_pk_change", message: "The record primary key cannot be changed." } });
  });

  test("unknown body keys are ignored", async () => {
    const rec = await pb.collection(blog.posts).create({ title: "unknown", nope: 1, expand: { x: 1 } });
    assert.equal("nope" in rec, false);
    assert.equal(rec.title, "unknown");
  });

  test("404s: missing record and missing collection", async () => {
    const c = pb.collection(blog.posts);
    const calls = [() => c.getOne("aaaaaaaaaaaaaaa"), () => c.update("aaaaaaaaaaaaaaa", { title: "hello" }), () => c.delete("aaaaaaaaaaaaaaa")];
    for (const call of calls) {
      const err = await expectError(call(), 404);
      assert.equal(err.response.message, "The requested resource wasn't found.");
    }
    let err = await expectError(pb.collection("nope_missing").getList(), 404);
    assert.deepEqual(err.response, { data: {}, message: "Missing collection context.", status: 404 });
    err = await expectError(pb.collection("nope_missing").getOne("aaaaaaaaaaaaaaa"), 404);
    assert.equal(err.response.message, "Missing collection context.");
    err = await expectError(pb.collection("nope_missing").create({}), 404);
    assert.equal(err.response.message, "Missing or invalid collection context.");
  });

  test("a collection can be addressed by id as well as by name", async () => {
    const rec = await pb.collection(blog.postsId).create({ title: "by id" });
    const got = await pb.collection(blog.posts).getOne(rec.id);
    assert.equal(got.title, "by id");
  });

  test("pb.filter escapes quotes in string params", async () => {
    const title = `O'Neil "q"`;
    const rec = await pb.collection(blog.posts).create({ title });
    const found = await pb.collection(blog.posts).getFirstListItem(pb.filter("title = {:t}", { t: title }));
    assert.equal(found.id, rec.id);
  });

  test("getFirstListItem without a match is a 404", async () => {
    let err;
    try {
      await pb.collection(blog.posts).getFirstListItem('title = "no such title"');
    } catch (e) {
      err = e;
    }
    assert.equal(err?.status, 404);
  });
});

describe("validation errors", () => {
  let blog;
  let authorId;
  before(async () => {
    blog = await createBlog();
    authorId = (await pb.collection(blog.authors).create({ name: "someone" })).id;
  });

  const missing = "aaaaaaaaaaaaaaa";
  const cases = [
    ["missing required", {}, { title: { code: "validation_required", message: "Cannot be blank." } }],
    ["empty required", { title: "" }, { title: { code: "validation_required", message: "Cannot be blank." } }],
    ["text too short", { title: "ab" }, { title: { code: "validation_min_text_constraint", message: "Must be at least 3 character(s).", params: { min: 3 } } }],
    ["text too long", { title: "x".repeat(21) }, { title: { code: "validation_max_text_constraint", message: "Must be no more than 20 character(s).", params: { max: 20 } } }],
    ["number above max", { title: "abc", count: 101 }, { count: { code: "validation_max_number_constraint", message: "Must be less or equal than 100.", params: { max: 100 } } }],
    ["number below min", { title: "abc", count: -1 }, { count: { code: "validation_min_number_constraint", message: "Must be greater or equal than 0.", params: { min: 0 } } }],
    ["decimal in onlyInt", { title: "abc", count: 1.5 }, { count: { code: "validation_only_int_constraint", message: "Decimal numbers are not allowed." } }],
    ["bad email", { title: "abc", mail: "not-an-email" }, { mail: { code: "validation_is_email", message: "Must be a valid email address." } }],
    ["bad url", { title: "abc", site: "not a url" }, { site: { code: "validation_invalid_url", message: "Must be a valid url." } }],
    ["select value not in list", { title: "abc", status: "nope" }, { status: { code: "validation_invalid_value", message: "Invalid value nope.", params: { value: "nope" } } }],
    ["multi-select value not in list", { title: "abc", tags: ["a", "z"] }, { tags: { code: "validation_invalid_value", message: "Invalid value z.", params: { value: "z" } } }],
    ["multi-select too many", { title: "abc", tags: ["a", "b", "c"] }, { tags: { code: "validation_too_many_values", message: "Select no more than 2.", params: { maxSelect: 2 } } }],
    ["relation to a missing record", { title: "abc", author: missing }, { author: { code: "validation_missing_rel_records", message: "Failed to find all relation records with the provided ids." } }],
    ["multi-relation to a missing record", { title: "abc", coauthors: [missing] }, { coauthors: { code: "validation_missing_rel_records", message: "Failed to find all relation records with the provided ids." } }],
    ["geoPoint out of range", { title: "abc", loc: { lon: 200, lat: 20 } }, { loc: { code: "validation_invalid_longitude", message: "Longitude must be between -180 and 180 degrees." } }],
    [
      "several fields at once",
      { title: "ab", count: 1000, mail: "x" },
      {
        count: { code: "validation_max_number_constraint", message: "Must be less or equal than 100.", params: { max: 100 } },
        mail: { code: "validation_is_email", message: "Must be a valid email address." },
        title: { code: "validation_min_text_constraint", message: "Must be at least 3 character(s).", params: { min: 3 } },
      },
    ],
  ];

  for (const [name, body, data] of cases) {
    test(`create: ${name}`, async () => {
      const err = await expectError(pb.collection(blog.posts).create(body), 400);
      assert.equal(err.response.message, "Failed to create record.");
      assert.deepEqual(err.response.data, data);
    });
  }

  test("multi-relation over maxSelect", async () => {
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await pb.collection(blog.authors).create({ name: `a${i}` })).id);
    const err = await expectError(pb.collection(blog.posts).create({ title: "abc", coauthors: ids }), 400);
    assert.deepEqual(err.response.data, {
      coauthors: { code: "validation_too_many_values", message: "Select no more than 3.", params: { maxSelect: 3 } },
    });
  });

  test("update validation uses 'Failed to update record.' and leaves the record untouched", async () => {
    const rec = await pb.collection(blog.posts).create({ title: "valid", author: authorId });
    const err = await expectError(pb.collection(blog.posts).update(rec.id, { title: "x", count: 500 }), 400);
    assert.equal(err.response.message, "Failed to update record.");
    assert.deepEqual(Object.keys(err.response.data).sort(), ["count", "title"]);
    assert.equal(err.response.data.title.code, "validation_min_text_constraint");
    assert.equal(err.response.data.count.code, "validation_max_number_constraint");
    const got = await pb.collection(blog.posts).getOne(rec.id);
    assert.equal(got.title, "valid");
    assert.equal(got.count, 0);
  });

  test("required semantics per type: false, 0, [] and {} are blank", async () => {
    const name = uniq("req");
    await su.collections.create({
      name,
      type: "base",
      ...PUBLIC,
      fields: [
        { name: "b", type: "bool", required: true },
        { name: "n", type: "number", required: true },
        { name: "t", type: "select", values: ["a", "b"], maxSelect: 2, required: true },
        { name: "j", type: "json", required: true },
      ],
    });
    const blank = { code: "validation_required", message: "Cannot be blank." };
    let err = await expectError(pb.collection(name).create({ b: false, n: 0, t: [], j: null }), 400);
    assert.deepEqual(err.response.data, { b: blank, n: blank, t: blank, j: blank });
    err = await expectError(pb.collection(name).create({ b: true, n: 1, t: ["a"], j: {} }), 400);
    assert.deepEqual(err.response.data, { j: blank });
    err = await expectError(pb.collection(name).create({ b: true, n: 1, t: ["a"], j: [] }), 400);
    assert.deepEqual(err.response.data, { j: blank });
    const ok = await pb.collection(name).create({ b: true, n: -1, t: ["b"], j: 0 });
    assert.deepEqual([ok.b, ok.n, ok.t, ok.j], [true, -1, ["b"], 0]);
  });
});

describe("value coercion", () => {
  let blog;
  let a1;
  let a2;
  before(async () => {
    blog = await createBlog();
    a1 = (await pb.collection(blog.authors).create({ name: "a1" })).id;
    a2 = (await pb.collection(blog.authors).create({ name: "a2" })).id;
  });

  // [field, input, stored value]
  const cases = () => [
    ["count", "12", 12],
    ["count", "abc", 0],
    ["count", null, 0],
    ["count", "", 0],
    ["count", true, 1],
    ["score", "1.5", 1.5],
    ["score", "1e2", 100],
    ["score", " 7 ", 0],
    ["flag", "true", true],
    ["flag", "TRUE", true],
    ["flag", "1", true],
    ["flag", 1, true],
    ["flag", "false", false],
    ["flag", "0", false],
    ["flag", 0, false],
    ["flag", "yes", false],
    ["flag", null, false],
    ["title", 12345, "12345"],
    ["title", 1.5, "1.5"],
    ["title", true, "true"],
    ["site", "example.com", "example.com"],
    ["when", "2024-01-02", "2024-01-02 00:00:00.000Z"],
    ["when", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05.000Z"],
    ["when", "2024-01-02 03:04:05", "2024-01-02 03:04:05.000Z"],
    ["when", "2024-01-02 03:04:05.123456Z", "2024-01-02 03:04:05.123Z"],
    ["when", "2024-01-02T03:04:05+02:00", "2024-01-02 01:04:05.000Z"],
    ["when", "yesterday", ""],
    ["when", 1700000000, ""],
    ["when", null, ""],
    ["status", ["draft"], "draft"],
    ["status", ["draft", "published"], "published"],
    ["tags", "b", ["b"]],
    ["tags", ["b", "b", "a"], ["b", "a"]],
    ["tags", null, []],
    ["tags", "", []],
    ["author", [a1, a2], a2],
    ["coauthors", a1, [a1]],
    ["coauthors", [a2, a1, a2], [a2, a1]],
    ["meta", "hello", "hello"],
    ["meta", '{"a":1}', { a: 1 }],
    ["meta", 5, 5],
    ["meta", true, true],
    ["meta", [1, "x"], [1, "x"]],
    ["meta", null, null],
  ];

  test("inputs are normalised per field type", async () => {
    for (const [field, input, expected] of cases()) {
      const body = { title: field === "title" ? input : "coerce", [field]: input };
      const rec = await pb.collection(blog.posts).create(body);
      assert.deepEqual(rec[field], expected, `${field} <- ${JSON.stringify(input)}`);
      const got = await pb.collection(blog.posts).getOne(rec.id);
      assert.deepEqual(got[field], expected, `${field} <- ${JSON.stringify(input)} (re-read)`);
    }
  });
});

describe("modifiers", () => {
  let name;
  let ids;
  let rec;
  before(async () => {
    const people = await su.collections.create({ name: uniq("people"), type: "base", ...PUBLIC, fields: [{ name: "n", type: "text" }] });
    ids = [];
    for (const n of ["p0", "p1", "p2", "p3"]) ids.push((await pb.collection(people.name).create({ n })).id);
    const c = await su.collections.create({
      name: uniq("mods"),
      type: "base",
      ...PUBLIC,
      fields: [
        { name: "count", type: "number", min: 0, onlyInt: true },
        { name: "score", type: "number" },
        { name: "tags", type: "select", values: ["a", "b", "c", "d"], maxSelect: 3 },
        { name: "rel", type: "relation", collectionId: people.id, maxSelect: 3 },
      ],
    });
    name = c.name;
    rec = await pb.collection(name).create({ count: 5, score: 1.5, tags: ["a"], rel: [ids[0]] });
  });

  // Applied in order to the same record: [body, expected subset]
  const steps = () => [
    [{ "count+": 3 }, { count: 8 }],
    [{ "count-": 2 }, { count: 6 }],
    [{ "score+": 0.25 }, { score: 1.75 }],
    [{ "score+": "2" }, { score: 3.75 }],
    [{ "score-": 10 }, { score: -6.25 }],
    [{ "tags+": "b" }, { tags: ["a", "b"] }],
    [{ "+tags": ["c"] }, { tags: ["c", "a", "b"] }],
    [{ "tags-": ["a", "c"] }, { tags: ["b"] }],
    [{ "tags-": "zzz" }, { tags: ["b"] }],
    [{ "+tags": "d" }, { tags: ["d", "b"] }],
    [{ "rel+": [ids[1], ids[2]] }, { rel: [ids[0], ids[1], ids[2]] }],
    [{ "rel-": ids[0] }, { rel: [ids[1], ids[2]] }],
    [{ "+rel": ids[3] }, { rel: [ids[3], ids[1], ids[2]] }],
    [{ rel: [ids[0]], "rel+": ids[1] }, { rel: [ids[0], ids[1]] }],
    [{ tags: [], "tags+": ["a", "c"] }, { tags: ["a", "c"] }],
  ];

  test("field+ appends/adds, +field prepends, field- removes/subtracts", async () => {
    for (const [body, expected] of steps()) {
      const upd = await pb.collection(name).update(rec.id, body);
      for (const [k, v] of Object.entries(expected)) {
        assert.deepEqual(upd[k], v, `${JSON.stringify(body)} -> ${k}`);
      }
    }
    const final = await pb.collection(name).getOne(rec.id);
    assert.deepEqual(
      { count: final.count, score: final.score, tags: final.tags, rel: final.rel },
      { count: 6, score: -6.25, tags: ["a", "c"], rel: [ids[0], ids[1]] },
    );
  });

  test("modifier results are validated", async () => {
    const r = await pb.collection(name).create({ count: 1, tags: ["a", "b", "c"] });
    let err = await expectError(pb.collection(name).update(r.id, { "count-": 2 }), 400);
    assert.deepEqual(err.response.data, {
      count: { code: "validation_min_number_constraint", message: "Must be greater or equal than 0.", params: { min: 0 } },
    });
    err = await expectError(pb.collection(name).update(r.id, { "tags+": "d" }), 400);
    assert.deepEqual(err.response.data, {
      tags: { code: "validation_too_many_values", message: "Select no more than 3.", params: { maxSelect: 3 } },
    });
    const got = await pb.collection(name).getOne(r.id);
    assert.equal(got.count, 1);
    assert.deepEqual(got.tags, ["a", "b", "c"]);
  });

  test("modifiers work on create too", async () => {
    const r = await pb.collection(name).create({ "count+": 4, "tags+": ["b"], "+rel": ids[2] });
    assert.equal(r.count, 4);
    assert.deepEqual(r.tags, ["b"]);
    assert.deepEqual(r.rel, [ids[2]]);
  });
});

describe("listing, filtering, sorting, expand", () => {
  let orgs;
  let authors;
  let items;
  const id = {};

  before(async () => {
    orgs = (await su.collections.create({ name: uniq("orgs"), type: "base", ...PUBLIC, fields: [{ name: "name", type: "text" }] })).name;
    const authorsC = await su.collections.create({
      name: uniq("authors"),
      type: "base",
      ...PUBLIC,
      fields: [{ name: "name", type: "text" }, { name: "org", type: "relation", collectionId: (await su.collections.getOne(orgs)).id, maxSelect: 1 }],
    });
    authors = authorsC.name;
    items = (
      await su.collections.create({
        name: uniq("items"),
        type: "base",
        ...PUBLIC,
        fields: [
          { name: "title", type: "text" },
          { name: "n", type: "number" },
          { name: "flag", type: "bool" },
          { name: "when", type: "date" },
          { name: "tags", type: "select", values: ["a", "b", "c"], maxSelect: 3 },
          { name: "author", type: "relation", collectionId: authorsC.id, maxSelect: 1 },
          { name: "coauthors", type: "relation", collectionId: authorsC.id, maxSelect: 3 },
          { name: "meta", type: "json" },
          { name: "created", type: "autodate", onCreate: true },
        ],
      })
    ).name;

    id.acme = (await pb.collection(orgs).create({ name: "acme" })).id;
    id.al = (await pb.collection(authors).create({ name: "al", org: id.acme })).id;
    id.bo = (await pb.collection(authors).create({ name: "bo" })).id;
    const rows = [
      { title: "alpha", n: 1, flag: true, when: "2024-01-01 10:00:00.000Z", tags: ["a"], author: id.al, coauthors: [id.bo], meta: { k: 1 } },
      { title: "beta", n: 2, flag: false, when: "2024-02-01 10:00:00.000Z", tags: ["a", "b"], author: id.bo, coauthors: [id.al, id.bo], meta: { k: 2 } },
      { title: "gamma", n: 3, flag: true, tags: [] },
      { title: "delta", n: 4, flag: false, when: "2024-03-01 10:00:00.000Z", tags: ["c"], author: id.al },
      { title: "Alphabet", n: 5, flag: false },
    ];
    for (const row of rows) id[row.title] = (await pb.collection(items).create(row)).id;
  });

  const titles = (list) => (list.items ?? list).map((r) => r.title);

  describe("paging", () => {
    test("page/perPage/totalItems/totalPages", async () => {
      const res = await pb.collection(items).getList(2, 2, { sort: "n" });
      assert.deepEqual({ ...res, items: titles(res) }, { items: ["gamma", "delta"], page: 2, perPage: 2, totalItems: 5, totalPages: 3 });
      const last = await pb.collection(items).getList(3, 2, { sort: "n" });
      assert.deepEqual(titles(last), ["Alphabet"]);
    });

    test("skipTotal gives -1 counts", async () => {
      const res = await pb.collection(items).getList(1, 2, { sort: "n", skipTotal: true });
      assert.deepEqual({ ...res, items: titles(res) }, { items: ["alpha", "beta"], page: 1, perPage: 2, totalItems: -1, totalPages: -1 });
    });

    test("a page past the end is empty but still counted", async () => {
      const res = await pb.collection(items).getList(99, 2);
      assert.deepEqual(res, { items: [], page: 99, perPage: 2, totalItems: 5, totalPages: 3 });
    });

    test("defaults and clamping: perPage 0 -> 30, perPage > 1000 -> 1000, page 0 -> 1", async () => {
      let res = await pb.collection(items).getList(1, 0);
      assert.equal(res.perPage, 30);
      assert.equal(res.items.length, 5);
      res = await pb.collection(items).getList(1, 5000);
      assert.equal(res.perPage, 1000);
      res = await pb.collection(items).getList(0, 2);
      assert.equal(res.page, 1);
      assert.equal(res.items.length, 2);
    });

    test("getFullList walks every page", async () => {
      const all = await pb.collection(items).getFullList({ sort: "n", batch: 2 });
      assert.deepEqual(titles(all), ["alpha", "beta", "gamma", "delta", "Alphabet"]);
    });
  });

  describe("sort", () => {
    const cases = [
      ["title", ["Alphabet", "alpha", "beta", "delta", "gamma"]], // binary collation: upper case first
      ["-title", ["gamma", "delta", "beta", "alpha", "Alphabet"]],
      ["-n", ["Alphabet", "delta", "gamma", "beta", "alpha"]],
      ["flag,-n", ["Alphabet", "delta", "beta", "gamma", "alpha"]],
      ["-flag,n", ["alpha", "gamma", "beta", "delta", "Alphabet"]],
      ["author.name,-n", ["Alphabet", "gamma", "delta", "alpha", "beta"]],
    ];
    for (const [sort, expected] of cases) {
      test(`sort=${sort}`, async () => {
        assert.deepEqual(titles(await pb.collection(items).getList(1, 10, { sort })), expected);
      });
    }

    test("sort=@random returns every record", async () => {
      const res = await pb.collection(items).getList(1, 10, { sort: "@random" });
      assert.deepEqual(titles(res).sort(), ["Alphabet", "alpha", "beta", "delta", "gamma"]);
      assert.equal(res.totalItems, 5);
    });

    test("sorting by an unknown field is a 400", async () => {
      const err = await expectError(pb.collection(items).getList(1, 10, { sort: "nope" }), 400);
      assert.deepEqual(err.response, { data: {}, message: "Something went wrong while processing your request.", status: 400 });
    });
  });

  describe("fields", () => {
    test("fields=id,title", async () => {
      const res = await pb.collection(items).getList(1, 2, { sort: "n", fields: "id,title" });
      assert.deepEqual(res.items, [
        { id: id.alpha, title: "alpha" },
        { id: id.beta, title: "beta" },
      ]);
      assert.equal(res.totalItems, 5);
    });

    test("fields with expand and excerpt", async () => {
      const one = await pb.collection(items).getOne(id.alpha, { expand: "author", fields: "title,expand.author.name" });
      assert.deepEqual(one, { title: "alpha", expand: { author: { name: "al" } } });
      const ex = await pb.collection(items).getOne(id.Alphabet, { fields: "title:excerpt(3,true)" });
      assert.deepEqual(ex, { title: "Alp..." });
    });

    test("fields=*,expand.author.name keeps all the record fields", async () => {
      const one = await pb.collection(items).getOne(id.alpha, { expand: "author", fields: "*,expand.author.name" });
      assert.equal(one.title, "alpha");
      assert.equal(one.n, 1);
      assert.equal(one.collectionName, items);
      assert.deepEqual(one.expand, { author: { name: "al" } });
    });
  });

  describe("filter", () => {
    const d = (s) => new Date(s);
    // [filter template, params, titles sorted by title]
    const cases = () => [
      ["title = {:t}", { t: "alpha" }, ["alpha"]],
      ["title != {:t}", { t: "alpha" }, ["Alphabet", "beta", "delta", "gamma"]],
      ["title = 'alpha'", {}, ["alpha"]],
      ["title = {:t}", { t: "ALPHA" }, []],
      ["n > {:n}", { n: 3 }, ["Alphabet", "delta"]],
      ["n >= {:n}", { n: 3 }, ["Alphabet", "delta", "gamma"]],
      ["n < {:n}", { n: 2 }, ["alpha"]],
      ["n <= {:n}", { n: 2 }, ["alpha", "beta"]],
      ["n = '3'", {}, ["gamma"]],
      ["title ~ {:t}", { t: "alph" }, ["Alphabet", "alpha"]],
      ["title ~ {:t}", { t: "ALPH" }, ["Alphabet", "alpha"]],
      ["title !~ {:t}", { t: "alph" }, ["beta", "delta", "gamma"]],
      ["title ~ {:t}", { t: "%lpha" }, ["alpha"]],
      ["title ~ {:t}", { t: "a_p" }, []],
      ["title > {:t}", { t: "b" }, ["beta", "delta", "gamma"]],
      ["title:lower = {:t}", { t: "alphabet" }, ["Alphabet"]],
      ["n = 3 && flag = true", {}, ["gamma"]],
      ["n = 1 || n = 5", {}, ["Alphabet", "alpha"]],
      ["(n = 1 || n = 4) && flag = false", {}, ["delta"]],
      ["n = 1 || (n = 4 && flag = false)", {}, ["alpha", "delta"]],
      ["flag = true || n = 2 && n = 1", {}, ["alpha", "gamma"]],
      ["flag = {:f}", { f: true }, ["alpha", "gamma"]],
      ["flag = false", {}, ["Alphabet", "beta", "delta"]],
      ["flag = 1", {}, ["alpha", "gamma"]],
      ["flag = 'true'", {}, []],
      ["when = null", {}, ["Alphabet", "gamma"]],
      ["when = ''", {}, ["Alphabet", "gamma"]],
      ["when != null", {}, ["alpha", "beta", "delta"]],
      ["when > {:d}", { d: d("2024-01-15T00:00:00Z") }, ["beta", "delta"]],
      ["when >= {:d}", { d: "2024-02-01 10:00:00.000Z" }, ["beta", "delta"]],
      ["when < {:d}", { d: "2024-02" }, ["Alphabet", "alpha", "gamma"]],
      ["created <= @now && created > {:d}", { d: "2020-01-01" }, ["Alphabet", "alpha", "beta", "delta", "gamma"]],
      ["author = null", {}, ["Alphabet", "gamma"]],
      ["author = {:id}", { id: "__al__" }, ["alpha", "delta"]],
      ["author.name = 'al'", {}, ["alpha", "delta"]],
      ["author.name != 'al'", {}, ["Alphabet", "beta", "gamma"]],
      ["author.org.name = 'acme'", {}, ["alpha", "delta"]],
      ["coauthors.name ?= 'al'", {}, ["beta"]],
      ["coauthors.name = 'bo'", {}, ["alpha"]],
      ["coauthors.id ?= {:id}", { id: "__al__" }, ["beta"]],
      ["coauthors:each ?= {:id}", { id: "__al__" }, ["beta"]],
      ["coauthors ?= {:id}", { id: "__bo__" }, []],
      ["coauthors:length = 2", {}, ["beta"]],
      ["coauthors:length = 0", {}, ["Alphabet", "delta", "gamma"]],
      ["tags:each ?= 'a'", {}, ["alpha", "beta"]],
      ["tags:each = 'a'", {}, ["alpha"]],
      ["tags ?= 'a'", {}, []],
      ["tags ~ 'b'", {}, ["beta"]],
      ["tags:length > 1", {}, ["beta"]],
      ["tags = '[]'", {}, ["Alphabet", "gamma"]],
      ["meta.k = 2", {}, ["beta"]],
      ["meta.k > 0", {}, ["alpha", "beta"]],
      ["  title   =   'alpha'  ", {}, ["alpha"]],
      ["// a comment\ntitle = 'alpha'", {}, ["alpha"]],
    ];

    test("operators, grouping, null, bool, dates, relations, json", async () => {
      for (const [tpl, rawParams, expected] of cases()) {
        const params = Object.fromEntries(
          Object.entries(rawParams).map(([k, v]) => [k, v === "__al__" ? id.al : v === "__bo__" ? id.bo : v]),
        );
        const filter = pb.filter(tpl, params);
        const res = await pb.collection(items).getList(1, 50, { filter, sort: "title" });
        assert.deepEqual(titles(res), expected, `filter: ${filter}`);
        assert.equal(res.totalItems, expected.length, `totalItems for ${filter}`);
      }
    });

    const invalid = ["nope = 1", "title =", "flag", "title = 'x' &&", "(title = 'x'"];
    for (const filter of invalid) {
      test(`invalid filter ${JSON.stringify(filter)} -> 400`, async () => {
        const err = await expectError(pb.collection(items).getList(1, 10, { filter }), 400);
        assert.deepEqual(err.response, { data: {}, message: "Something went wrong while processing your request.", status: 400 });
      });
    }

    test("getFirstListItem with a filter", async () => {
      const rec = await pb.collection(items).getFirstListItem(pb.filter("n > {:n} && flag = false", { n: 3 }), { sort: "n" });
      assert.equal(rec.title, "delta");
    });

    test("getFullList with a filter", async () => {
      const list = await pb.collection(items).getFullList({ filter: "tags:each ?= 'a' || tags:each ?= 'c'", sort: "-n" });
      assert.deepEqual(titles(list), ["delta", "beta", "alpha"]);
    });
  });

  describe("expand", () => {
    test("single relation", async () => {
      const rec = await pb.collection(items).getOne(id.alpha, { expand: "author" });
      assert.equal(rec.author, id.al);
      assert.deepEqual(Object.keys(rec.expand), ["author"]);
      assert.equal(rec.expand.author.id, id.al);
      assert.equal(rec.expand.author.name, "al");
      assert.equal(rec.expand.author.collectionName, authors);
    });

    test("multi relation keeps the stored order", async () => {
      const rec = await pb.collection(items).getOne(id.beta, { expand: "author,coauthors" });
      assert.equal(rec.expand.author.name, "bo");
      assert.deepEqual(rec.expand.coauthors.map((a) => a.name), ["al", "bo"]);
    });

    test("nested a.b", async () => {
      const rec = await pb.collection(items).getOne(id.alpha, { expand: "author.org" });
      assert.equal(rec.expand.author.name, "al");
      assert.equal(rec.expand.author.expand.org.id, id.acme);
      assert.equal(rec.expand.author.expand.org.name, "acme");
    });

    test("expand in getList", async () => {
      const res = await pb.collection(items).getList(1, 10, { sort: "n", expand: "author" });
      assert.deepEqual(
        res.items.map((r) => r.expand?.author?.name ?? null),
        ["al", "bo", null, "al", null],
      );
    });

    test("empty relations give expand: {}; unknown expand names are ignored", async () => {
      const empty = await pb.collection(items).getOne(id.gamma, { expand: "author,coauthors" });
      assert.deepEqual(empty.expand, {});
      const unknown = await pb.collection(items).getOne(id.gamma, { expand: "nope" });
      assert.equal("expand" in unknown, false);
    });

    test("back-relation <collection>_via_<field>", async () => {
      const al = await pb.collection(authors).getOne(id.al, { expand: `${items}_via_author` });
      const via = al.expand[`${items}_via_author`];
      assert.ok(Array.isArray(via));
      assert.deepEqual(via.map((r) => r.title).sort(), ["alpha", "delta"]);

      const bo = await pb.collection(authors).getOne(id.bo, { expand: `${items}_via_coauthors.author` });
      const viaCo = bo.expand[`${items}_via_coauthors`];
      assert.deepEqual(viaCo.map((r) => r.title).sort(), ["alpha", "beta"]);
      const alpha = viaCo.find((r) => r.title === "alpha");
      assert.equal(alpha.expand.author.name, "al");
    });

    test("filter through a back-relation", async () => {
      const res = await pb.collection(authors).getList(1, 10, { filter: `${items}_via_author.title ?= "delta"` });
      assert.deepEqual(res.items.map((a) => a.name), ["al"]);
    });

    test("expand is omitted when the related collection's viewRule denies it", async () => {
      const hidden = await su.collections.create({ name: uniq("hidden"), type: "base", listRule: "", viewRule: null, fields: [{ name: "x", type: "text" }] });
      const refs = await su.collections.create({
        name: uniq("refs"),
        type: "base",
        ...PUBLIC,
        fields: [{ name: "h", type: "relation", collectionId: hidden.id, maxSelect: 1 }],
      });
      const h = await su.collection(hidden.name).create({ x: "secret" });
      const r = await su.collection(refs.name).create({ h: h.id });
      const asGuest = await pb.collection(refs.name).getOne(r.id, { expand: "h" });
      assert.equal(asGuest.h, h.id);
      assert.equal("expand" in asGuest, false);
      const asSu = await su.collection(refs.name).getOne(r.id, { expand: "h" });
      assert.equal(asSu.expand.h.x, "secret");
    });
  });
});

describe("delete and relations", () => {
  test("cascadeDelete removes children; other references are cleared", async () => {
    const parents = await su.collections.create({ name: uniq("parents"), type: "base", ...PUBLIC, fields: [{ name: "name", type: "text" }] });
    await su.collections.update(parents.name, {
      fields: [...parents.fields, { name: "buddy", type: "relation", collectionId: parents.id, maxSelect: 1 }],
    });
    const children = await su.collections.create({
      name: uniq("children"),
      type: "base",
      ...PUBLIC,
      fields: [
        { name: "title", type: "text" },
        { name: "parent", type: "relation", collectionId: parents.id, maxSelect: 1, cascadeDelete: true },
        { name: "others", type: "relation", collectionId: parents.id, maxSelect: 3 },
      ],
    });
    const P = pb.collection(parents.name);
    const C = pb.collection(children.name);
    const p1 = await P.create({ name: "p1" });
    const p2 = await P.create({ name: "p2", buddy: p1.id });
    const c1 = await C.create({ title: "c1", parent: p1.id });
    const c2 = await C.create({ title: "c2", parent: p1.id, others: [p2.id] });
    const c3 = await C.create({ title: "c3", parent: p2.id, others: [p1.id, p2.id] });

    assert.equal(await P.delete(p1.id), true);

    await expectError(C.getOne(c1.id), 404);
    await expectError(C.getOne(c2.id), 404);
    const left = await C.getFullList({ sort: "title" });
    assert.deepEqual(left.map((c) => [c.title, c.parent, c.others]), [["c3", p2.id, [p2.id]]]);
    assert.equal(left[0].id, c3.id);
    assert.equal((await P.getOne(p2.id)).buddy, "");
  });

  test("a record in a required, non-cascading relation cannot be deleted", async () => {
    const targets = await su.collections.create({ name: uniq("targets"), type: "base", ...PUBLIC, fields: [{ name: "t", type: "text" }] });
    const holders = await su.collections.create({
      name: uniq("holders"),
      type: "base",
      ...PUBLIC,
      fields: [{ name: "r", type: "relation", collectionId: targets.id, maxSelect: 1, required: true }],
    });
    const t = await pb.collection(targets.name).create({ t: "x" });
    await pb.collection(holders.name).create({ r: t.id });
    const err = await expectError(pb.collection(targets.name).delete(t.id), 400);
    assert.deepEqual(err.response, {
      data: {},
      message: "Failed to delete record. Make sure that the record is not part of a required relation reference.",
      status: 400,
    });
    assert.equal((await pb.collection(targets.name).getOne(t.id)).t, "x");
  });
});
