// Batch API (POST /api/batch) through pb.createBatch(). The SDK sends it as
// multipart/form-data with a single "@jsonPayload" part: {"requests":[{method,url,headers,body}]}.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

const BATCH_SETTINGS = { enabled: true, maxRequests: 50, timeout: 3, maxBodySize: 0 };

let server;
let su;
let guest;
let items; // collection names
let logs;

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
  guest = client(server);
  items = uniq("items");
  logs = uniq("logs");
  await su.collections.create({
    name: items,
    type: "base",
    fields: [{ name: "title", type: "text", required: true }, { name: "n", type: "number" }],
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    deleteRule: "",
  });
  await su.collections.create({
    name: logs,
    type: "base",
    fields: [{ name: "msg", type: "text" }],
    listRule: "",
    viewRule: "",
    createRule: "",
    updateRule: "",
    deleteRule: null,
  });
});
after(async () => {
  await server?.stop();
});

const allItems = async () => (await su.collection(items).getFullList({ sort: "title" })).map((r) => [r.title, r.n]);
const allLogs = async () => (await su.collection(logs).getFullList({ sort: "msg" })).map((r) => r.msg);

// Tests in this file run in order: the first ones need batch to still be disabled.

describe("batch disabled (the default)", () => {
  test("the default settings have batch off", async () => {
    const settings = await su.settings.getAll();
    assert.deepEqual(settings.batch, { enabled: false, maxRequests: 50, timeout: 3, maxBodySize: 0 });
  });

  test("a batch is refused with 403 and nothing is written", async () => {
    for (const pb of [su, guest]) {
      const batch = pb.createBatch();
      batch.collection(logs).create({ msg: "while-disabled" });
      const err = await expectError(batch.send(), 403);
      assert.deepEqual(err.response, { data: {}, message: "Batch requests are not allowed.", status: 403 });
    }
    assert.deepEqual(await allLogs(), []);
  });

  test("only superusers can change the settings", async () => {
    let err = await expectError(guest.settings.update({ batch: BATCH_SETTINGS }), 401);
    assert.equal(err.response.message, "The request requires valid record authorization token.");
    const email = `${uniq("u")}@example.com`;
    const user = client(server);
    await user.collection("users").create({ email, password: "password-123", passwordConfirm: "password-123" });
    await user.collection("users").authWithPassword(email, "password-123");
    err = await expectError(user.settings.update({ batch: BATCH_SETTINGS }), 403);
    assert.equal(err.response.message, "The authorized record is not allowed to perform this action.");
    assert.equal((await su.settings.getAll()).batch.enabled, false);
  });

  test("a superuser enables it through pb.settings.update", async () => {
    const res = await su.settings.update({ batch: BATCH_SETTINGS });
    assert.deepEqual(res.batch, BATCH_SETTINGS);
    assert.deepEqual((await su.settings.getAll()).batch, BATCH_SETTINGS);
  });
});

describe("batch enabled", () => {
  test("creates, updates, deletes and upserts across collections", async () => {
    const one = await su.collection(items).create({ title: "one", n: 1 });
    const two = await su.collection(items).create({ title: "two", n: 2 });

    const batch = guest.createBatch();
    batch.collection(items).create({ title: "three", n: 3 });
    batch.collection(items).update(one.id, { n: 10 });
    batch.collection(items).delete(two.id);
    batch.collection(items).upsert({ id: one.id, title: "one-upserted" });
    batch.collection(items).upsert({ id: "upsertnew000001", title: "upsert-new" });
    batch.collection(items).upsert({ title: "upsert-noid", n: 7 });
    batch.collection(logs).create({ msg: "hello" });
    const res = await batch.send();

    assert.equal(res.length, 7);
    assert.deepEqual(res.map((r) => r.status), [200, 200, 204, 200, 200, 200, 200]);
    const [created, updated, deleted, upserted, upsertNew, upsertNoId, log] = res;
    assert.match(created.body.id, /^[a-z0-9]{15}$/);
    assert.equal(created.body.title, "three");
    assert.equal(created.body.collectionName, items);
    assert.deepEqual([updated.body.id, updated.body.title, updated.body.n], [one.id, "one", 10]);
    assert.equal(deleted.body, null);
    assert.deepEqual([upserted.body.id, upserted.body.title, upserted.body.n], [one.id, "one-upserted", 10]);
    assert.deepEqual([upsertNew.body.id, upsertNew.body.title], ["upsertnew000001", "upsert-new"]);
    assert.match(upsertNoId.body.id, /^[a-z0-9]{15}$/);
    assert.equal(upsertNoId.body.n, 7);
    assert.equal(log.body.msg, "hello");
    assert.equal(log.body.collectionName, logs);

    assert.deepEqual(await allItems(), [["one-upserted", 10], ["three", 3], ["upsert-new", 0], ["upsert-noid", 7]]);
    assert.deepEqual(await allLogs(), ["hello"]);
    await expectError(su.collection(items).getOne(two.id), 404);
  });

  test("per-request query params (fields) are honoured", async () => {
    const batch = su.createBatch();
    batch.collection(items).create({ title: "with-fields", n: 4 }, { fields: "title,n" });
    const res = await batch.send();
    assert.deepEqual(res, [{ body: { title: "with-fields", n: 4 }, status: 200 }]);
  });

  test("all-or-nothing: a failing request rolls back the whole batch", async () => {
    const itemsBefore = await allItems();
    const logsBefore = await allLogs();
    const target = await su.collection(items).getFirstListItem("title = 'three'");

    const batch = guest.createBatch();
    batch.collection(logs).create({ msg: "must-not-exist" });
    batch.collection(items).update(target.id, { n: 999 });
    batch.collection(items).create({}); // title is required
    batch.collection(items).create({ title: "after-failure" });
    const err = await expectError(batch.send(), 400);

    assert.deepEqual(err.response, {
      data: {
        requests: {
          2: {
            code: "batch_request_failed",
            message: "Batch request failed.",
            response: {
              data: { title: { code: "validation_required", message: "Cannot be blank." } },
              message: "Failed to create record.",
              status: 400,
            },
          },
        },
      },
      message: "Batch transaction failed.",
      status: 400,
    });
    assert.deepEqual(await allItems(), itemsBefore);
    assert.deepEqual(await allLogs(), logsBefore);
    assert.equal((await su.collection(items).getOne(target.id)).n, 3);
  });

  test("a rolled-back delete leaves the record in place", async () => {
    const keep = await su.collection(items).create({ title: "keep-me" });
    const batch = guest.createBatch();
    batch.collection(items).delete(keep.id);
    batch.collection(items).update("aaaaaaaaaaaaaaa", { title: "missing" });
    const err = await expectError(batch.send(), 400);
    assert.equal(err.response.message, "Batch transaction failed.");
    assert.deepEqual(err.response.data, {
      requests: {
        1: {
          code: "batch_request_failed",
          message: "Batch request failed.",
          response: { data: {}, message: "The requested resource wasn't found.", status: 404 },
        },
      },
    });
    assert.equal((await su.collection(items).getOne(keep.id)).title, "keep-me");
  });

  test("API rules apply to each request", async () => {
    const log = await su.collection(logs).create({ msg: "undeletable" });
    const batch = guest.createBatch();
    batch.collection(logs).create({ msg: "rolled-back" });
    batch.collection(logs).delete(log.id); // deleteRule is null
    const err = await expectError(batch.send(), 400);
    assert.deepEqual(err.response.data.requests["1"], {
      code: "batch_request_failed",
      message: "Batch request failed.",
      response: { data: {}, message: "Only superusers can perform this action.", status: 403 },
    });
    assert.deepEqual(Object.keys(err.response.data.requests), ["1"]);
    assert.ok((await allLogs()).includes("undeletable"));
    assert.ok(!(await allLogs()).includes("rolled-back"));

    // the same batch as superuser goes through
    const ok = su.createBatch();
    ok.collection(logs).delete(log.id);
    assert.deepEqual(await ok.send(), [{ body: null, status: 204 }]);
  });

  test("failing upsert of an existing record reports 'Failed to update record.'", async () => {
    const rec = await su.collection(items).create({ title: "upsert-target" });
    const batch = guest.createBatch();
    batch.collection(items).upsert({ id: rec.id, title: "" });
    const err = await expectError(batch.send(), 400);
    assert.deepEqual(err.response.data.requests["0"].response, {
      data: { title: { code: "validation_required", message: "Cannot be blank." } },
      message: "Failed to update record.",
      status: 400,
    });
  });

  test("unknown collection inside a batch", async () => {
    const batch = guest.createBatch();
    batch.collection("no_such_collection").create({ msg: "x" });
    const err = await expectError(batch.send(), 400);
    assert.deepEqual(err.response.data.requests["0"].response, { data: {}, message: "Missing collection context.", status: 404 });
  });

  test("empty batch and too many requests are invalid batch data", async () => {
    let err = await expectError(guest.createBatch().send(), 400);
    assert.deepEqual(err.response, {
      data: { requests: { code: "validation_required", message: "Cannot be blank." } },
      message: "Invalid batch request data.",
      status: 400,
    });

    const batch = guest.createBatch();
    for (let i = 0; i < 51; i++) batch.collection(logs).create({ msg: `too-many-${i}` });
    err = await expectError(batch.send(), 400);
    assert.deepEqual(err.response, {
      data: { requests: { code: "validation_length_too_long", message: "The length must be no more than 50.", params: { max: 50, min: 0 } } },
      message: "Invalid batch request data.",
      status: 400,
    });
    assert.ok(!(await allLogs()).some((m) => m.startsWith("too-many-")));
  });

  test("a plain JSON body is accepted too", async () => {
    const res = await fetch(`${server.url}/api/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requests: [{ method: "POST", url: `/api/collections/${logs}/records`, body: { msg: "raw-json" } }] }),
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.length, 1);
    assert.equal(body[0].status, 200);
    assert.equal(body[0].body.msg, "raw-json");
    assert.ok((await allLogs()).includes("raw-json"));
  });

  test("non record-write requests are rejected inside a batch", async () => {
    const res = await fetch(`${server.url}/api/batch`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requests: [{ method: "GET", url: `/api/collections/${logs}/records` }] }),
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      data: {
        requests: {
          0: {
            code: "batch_request_failed",
            message: "Batch request failed.",
            response: { data: {}, message: "Something went wrong while processing your request.", status: 400 },
          },
        },
      },
      message: "Batch transaction failed.",
      status: 400,
    });
  });

  test("files in a batch: uploads under requests.N.field, stored with their record; a rollback keeps none", async () => {
    const docs = uniq("bdocs");
    await su.collections.create({
      name: docs,
      type: "base",
      fields: [
        { name: "title", type: "text", required: true },
        { name: "att", type: "file", maxSelect: 3, maxSize: 10000 },
      ],
      listRule: "",
      viewRule: "",
      createRule: "",
      updateRule: "",
      deleteRule: "",
    });
    const batch = su.createBatch();
    batch.collection(docs).create({ title: "one", att: [new File(["first file\n"], "first.txt")] });
    batch.collection(docs).create({
      title: "two",
      att: [new File(["second\n"], "second.txt"), new File(["third\n"], "third.txt")],
    });
    const res = await batch.send();
    assert.deepEqual(res.map((r) => r.status), [200, 200]);
    const [one, two] = res.map((r) => r.body);
    assert.equal(one.att.length, 1);
    // Named twice, as PocketBase does in a batch.
    assert.match(one.att[0], /^first_[a-z0-9]{10}_[a-z0-9]{10}\.txt$/);
    assert.equal(two.att.length, 2);
    const body = async (rec, name) => {
      const r = await fetch(su.files.getURL(rec, name));
      assert.equal(r.status, 200);
      return r.text();
    };
    assert.equal(await body(one, one.att[0]), "first file\n");
    assert.equal(await body(two, two.att[1]), "third\n");

    // Append to one and drop from the other in one batch.
    const b2 = su.createBatch();
    b2.collection(docs).update(one.id, { "att+": new File(["more\n"], "more.txt") });
    b2.collection(docs).update(two.id, { "att-": [two.att[0]] });
    const res2 = await b2.send();
    assert.equal(res2[0].body.att.length, 2);
    assert.deepEqual(res2[1].body.att, [two.att[1]]);
    assert.equal(await body(res2[0].body, res2[0].body.att[1]), "more\n");
    assert.equal((await fetch(su.files.getURL(two, two.att[0]))).status, 404, "the dropped file is gone");

    // A failing step rolls back the batch and its new files.
    const before = await su.collection(docs).getFullList();
    const b3 = su.createBatch();
    b3.collection(docs).create({ title: "three", att: [new File(["lost\n"], "lost.txt")] });
    b3.collection(docs).create({ att: [new File(["no title\n"], "x.txt")] });
    await expectError(b3.send(), 400);
    assert.equal((await su.collection(docs).getFullList()).length, before.length);

    // A cascade of a batch delete takes the files too.
    const b4 = su.createBatch();
    b4.collection(docs).delete(one.id);
    await b4.send();
    assert.equal((await fetch(su.files.getURL(one, one.att[0]))).status, 404);
  });

  test("disabling it again takes effect immediately", async () => {
    await su.settings.update({ batch: { ...BATCH_SETTINGS, enabled: false } });
    const batch = su.createBatch();
    batch.collection(logs).create({ msg: "disabled-again" });
    const err = await expectError(batch.send(), 403);
    assert.equal(err.response.message, "Batch requests are not allowed.");
    assert.ok(!(await allLogs()).includes("disabled-again"));
  });
});
