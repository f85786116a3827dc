// Collections API (/api/collections) through the official JS SDK.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let server;
let su; // superuser client

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
});
after(async () => {
  await server?.stop();
});

const byName = (collection) => Object.fromEntries(collection.fields.map((f) => [f.name, f]));

describe("superuser auth", () => {
  test("authWithPassword on _superusers returns a JWT and the superuser record", async () => {
    const pb = client(server);
    const res = await pb.collection("_superusers").authWithPassword(server.superuserEmail, server.superuserPassword);
    assert.equal(res.token.split(".").length, 3);
    assert.equal(res.token, pb.authStore.token);
    assert.equal(res.record.email, server.superuserEmail);
    assert.equal(res.record.collectionName, "_superusers");
    assert.match(res.record.id, /^[a-z0-9]{15}$/);
    assert.equal(pb.authStore.record.email, server.superuserEmail);
    assert.equal(pb.authStore.isValid, true);
    assert.equal(pb.authStore.isSuperuser, true);
    assert.equal("password" in res.record, false);
    assert.equal("tokenKey" in res.record, false);
  });

  test("wrong password is a 400 'Failed to authenticate.'", async () => {
    const pb = client(server);
    const err = await expectError(pb.collection("_superusers").authWithPassword(server.superuserEmail, "wrong-password"), 400);
    assert.equal(err.response.message, "Failed to authenticate.");
    assert.deepEqual(err.response.data, {});
    assert.equal(pb.authStore.token, "");
  });
});

describe("access control on the collections API", () => {
  const guestCalls = {
    getList: (pb) => pb.collections.getList(1, 10),
    getFullList: (pb) => pb.collections.getFullList(),
    getOne: (pb) => pb.collections.getOne("users"),
    create: (pb) => pb.collections.create({ name: uniq("guest"), type: "base" }),
    update: (pb) => pb.collections.update("users", { listRule: "" }),
    delete: (pb) => pb.collections.delete("users"),
    truncate: (pb) => pb.collections.truncate("users"),
    import: (pb) => pb.collections.import([{ name: uniq("guest"), type: "base" }], false),
  };

  for (const [name, call] of Object.entries(guestCalls)) {
    test(`guest ${name} -> 401`, async () => {
      const err = await expectError(call(client(server)), 401);
      assert.deepEqual(err.response, {
        data: {},
        message: "The request requires valid record authorization token.",
        status: 401,
      });
    });
  }

  test("a regular (non-superuser) auth record gets 403", async () => {
    const pb = client(server);
    const email = `${uniq("u")}@example.com`;
    await pb.collection("users").create({ email, password: "password-123", passwordConfirm: "password-123" });
    await pb.collection("users").authWithPassword(email, "password-123");
    for (const call of [guestCalls.getList, guestCalls.getOne, guestCalls.create, guestCalls.delete]) {
      const err = await expectError(call(pb), 403);
      assert.deepEqual(err.response, {
        data: {},
        message: "The authorized record is not allowed to perform this action.",
        status: 403,
      });
    }
  });

  test("the users collection still exists after the rejected calls", async () => {
    const users = await su.collections.getOne("users");
    assert.equal(users.name, "users");
    assert.equal(users.type, "auth");
    assert.equal(users.listRule, "id = @request.auth.id");
  });
});

describe("create with every field type", () => {
  let authors;
  let posts;
  const postsName = uniq("posts");
  const authorsName = uniq("authors");

  before(async () => {
    authors = await su.collections.create({
      name: authorsName,
      type: "base",
      fields: [{ name: "name", type: "text" }],
    });
    posts = await su.collections.create({
      name: postsName,
      type: "base",
      listRule: "",
      viewRule: "",
      createRule: "@request.auth.id != ''",
      updateRule: null,
      deleteRule: null,
      fields: [
        { name: "title", type: "text", required: true, min: 3, max: 20 },
        { name: "count", type: "number", min: 0, max: 100, onlyInt: true },
        { name: "score", type: "number" },
        { name: "flag", type: "bool" },
        { name: "mail", type: "email" },
        { name: "site", type: "url" },
        { name: "when", type: "date" },
        { name: "status", type: "select", values: ["draft", "published"], maxSelect: 1 },
        { name: "tags", type: "select", values: ["a", "b", "c"], maxSelect: 3 },
        { name: "meta", type: "json" },
        { name: "author", type: "relation", collectionId: authors.id, maxSelect: 1, cascadeDelete: true },
        { name: "coauthors", type: "relation", collectionId: authors.id, maxSelect: 5 },
        { name: "loc", type: "geoPoint" },
        { name: "created", type: "autodate", onCreate: true, onUpdate: false },
        { name: "updated", type: "autodate", onCreate: true, onUpdate: true },
      ],
    });
  });

  test("collection attributes", () => {
    assert.match(posts.id, /^pbc_\d+$/);
    assert.equal(posts.name, postsName);
    assert.equal(posts.type, "base");
    assert.equal(posts.system, false);
    assert.equal(posts.listRule, "");
    assert.equal(posts.viewRule, "");
    assert.equal(posts.createRule, "@request.auth.id != ''");
    assert.equal(posts.updateRule, null);
    assert.equal(posts.deleteRule, null);
    assert.deepEqual(posts.indexes, []);
    assert.match(posts.created, DATE_RE);
    assert.match(posts.updated, DATE_RE);
    // rules default to null (superusers only) when not given
    assert.equal(authors.listRule, null);
    assert.equal(authors.createRule, null);
  });

  test("an implicit primary key field 'id' comes first", () => {
    assert.deepEqual(
      posts.fields.map((f) => f.name),
      ["id", "title", "count", "score", "flag", "mail", "site", "when", "status", "tags", "meta", "author", "coauthors", "loc", "created", "updated"],
    );
    const id = posts.fields[0];
    assert.equal(id.type, "text");
    assert.equal(id.primaryKey, true);
    assert.equal(id.system, true);
    assert.equal(id.required, true);
    assert.equal(id.min, 15);
    assert.equal(id.max, 15);
    assert.equal(id.pattern, "^[a-z0-9]+$");
    assert.equal(id.autogeneratePattern, "[a-z0-9]{15}");
  });

  test("field options are echoed back with defaults filled in", () => {
    const f = byName(posts);
    for (const field of posts.fields) {
      assert.equal(typeof field.id, "string");
      assert.ok(field.id.length > 0);
      assert.equal(field.hidden, false);
      assert.equal(field.presentable, false);
    }
    assert.deepEqual(
      { type: f.title.type, required: f.title.required, min: f.title.min, max: f.title.max, pattern: f.title.pattern, system: f.title.system },
      { type: "text", required: true, min: 3, max: 20, pattern: "", system: false },
    );
    assert.deepEqual(
      { type: f.count.type, min: f.count.min, max: f.count.max, onlyInt: f.count.onlyInt, required: f.count.required },
      { type: "number", min: 0, max: 100, onlyInt: true, required: false },
    );
    // unset number bounds are null, not 0
    assert.equal(f.score.min, null);
    assert.equal(f.score.max, null);
    assert.equal(f.score.onlyInt, false);
    assert.equal(f.flag.type, "bool");
    assert.equal(f.mail.type, "email");
    assert.deepEqual(f.mail.onlyDomains, []);
    assert.deepEqual(f.mail.exceptDomains, []);
    assert.equal(f.site.type, "url");
    assert.equal(f.when.type, "date");
    assert.equal(f.when.min, "");
    assert.equal(f.when.max, "");
    assert.deepEqual({ values: f.status.values, maxSelect: f.status.maxSelect }, { values: ["draft", "published"], maxSelect: 1 });
    assert.deepEqual({ values: f.tags.values, maxSelect: f.tags.maxSelect }, { values: ["a", "b", "c"], maxSelect: 3 });
    assert.equal(f.meta.type, "json");
    assert.equal(f.meta.maxSize, 0);
    assert.deepEqual(
      { collectionId: f.author.collectionId, maxSelect: f.author.maxSelect, minSelect: f.author.minSelect, cascadeDelete: f.author.cascadeDelete },
      { collectionId: authors.id, maxSelect: 1, minSelect: 0, cascadeDelete: true },
    );
    assert.deepEqual(
      { collectionId: f.coauthors.collectionId, maxSelect: f.coauthors.maxSelect, cascadeDelete: f.coauthors.cascadeDelete },
      { collectionId: authors.id, maxSelect: 5, cascadeDelete: false },
    );
    assert.equal(f.loc.type, "geoPoint");
    assert.deepEqual({ type: f.created.type, onCreate: f.created.onCreate, onUpdate: f.created.onUpdate }, { type: "autodate", onCreate: true, onUpdate: false });
    assert.deepEqual({ type: f.updated.type, onCreate: f.updated.onCreate, onUpdate: f.updated.onUpdate }, { type: "autodate", onCreate: true, onUpdate: true });
  });

  test("generated ids follow PocketBase's scheme (pbc_crc32(type+name), type+crc32(name))", () => {
    assert.equal(posts.id, `pbc_${crc32("base" + postsName)}`);
    for (const field of posts.fields) {
      assert.equal(field.id, `${field.type}${crc32(field.name)}`, `id of field ${field.name}`);
    }
  });

  test("a record created in the new collection has every field with its zero value", async () => {
    const rec = await su.collection(postsName).create({ title: "hello" });
    assert.match(rec.id, /^[a-z0-9]{15}$/);
    assert.equal(rec.collectionId, posts.id);
    assert.equal(rec.collectionName, postsName);
    assert.match(rec.created, DATE_RE);
    assert.equal(rec.updated, rec.created);
    const { id, created, updated, ...rest } = rec;
    assert.deepEqual(rest, {
      collectionId: posts.id,
      collectionName: postsName,
      title: "hello",
      count: 0,
      score: 0,
      flag: false,
      mail: "",
      site: "",
      when: "",
      status: "",
      tags: [],
      meta: null,
      author: "",
      coauthors: [],
      loc: { lon: 0, lat: 0 },
    });
  });

  test("a collection without autodate fields has no created/updated on records", async () => {
    const rec = await su.collection(authorsName).create({ name: "x" });
    assert.deepEqual(Object.keys(rec).sort(), ["collectionId", "collectionName", "id", "name"]);
  });

  test("an auth collection gets the system auth fields", async () => {
    const members = await su.collections.create({ name: uniq("members"), type: "auth" });
    assert.equal(members.type, "auth");
    assert.deepEqual(
      members.fields.map((f) => f.name),
      ["id", "password", "tokenKey", "email", "emailVisibility", "verified"],
    );
    assert.deepEqual(members.passwordAuth, { enabled: true, identityFields: ["email"] });
    assert.equal(byName(members).password.hidden, true);
    assert.equal(byName(members).tokenKey.hidden, true);
  });

  test("type defaults to base and a custom collection id is kept", async () => {
    const c = await su.collections.create({ id: "mycustomid1", name: uniq("custom") });
    assert.equal(c.type, "base");
    assert.equal(c.id, "mycustomid1");
    assert.equal((await su.collections.getOne("mycustomid1")).name, c.name);
  });
});

describe("create validation errors", () => {
  const existing = uniq("existing");
  before(async () => {
    await su.collections.create({ name: existing, type: "base" });
  });

  const cases = [
    {
      name: "duplicate name (case-insensitive)",
      body: () => ({ name: existing.toUpperCase(), type: "base" }),
      data: { name: { code: "validation_collection_name_exists", message: "Collection name must be unique (case insensitive)." } },
    },
    {
      name: "missing name",
      body: () => ({ type: "base" }),
      data: { name: { code: "validation_required", message: "Cannot be blank." } },
    },
    {
      name: "invalid name",
      body: () => ({ name: "bad name!", type: "base" }),
      data: { name: { code: "validation_match_invalid", message: "Must be in a valid format." } },
    },
    {
      name: "unknown type",
      body: () => ({ name: uniq("x"), type: "nope" }),
      data: { type: { code: "validation_in_invalid", message: "Must be a valid value." } },
    },
    {
      name: "select without values",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "s", type: "select" }] }),
      data: { fields: { 1: { values: { code: "validation_required", message: "Cannot be blank." } } } },
    },
    {
      name: "relation to a missing collection",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "r", type: "relation", collectionId: "missing" }] }),
      data: { fields: { 1: { collectionId: { code: "validation_field_relation_missing_collection", message: "The relation collection doesn't exist." } } } },
    },
    {
      name: "rule referencing an unknown field",
      body: () => ({ name: uniq("x"), type: "base", listRule: "nofield = 1" }),
      data: { listRule: { code: "validation_invalid_rule", message: 'Invalid rule. Raw error: invalid left operand "nofield" - unknown field "nofield".' } },
    },
    {
      name: "duplicated field name differing in case",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "a", type: "text" }, { name: "A", type: "text" }] }),
      data: { fields: { 2: { name: { code: "validation_duplicated_field_name", message: "Duplicated or invalid field name A.", params: { fieldName: "A" } } } } },
    },
    {
      name: "reserved field name",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "expand", type: "text" }] }),
      data: { fields: { 1: { name: { code: "validation_not_in_invalid", message: "Must not be in list." } } } },
    },
    {
      name: "invalid field name",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "a b", type: "text" }] }),
      data: { fields: { 1: { name: { code: "validation_match_invalid", message: "Must be in a valid format." } } } },
    },
    {
      name: "select maxSelect above the number of values",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "s", type: "select", values: ["a"], maxSelect: 2 }] }),
      data: { fields: { 1: { maxSelect: { code: "validation_max_less_equal_than_required", message: "Must be no greater than 1.", params: { threshold: 1 } } } } },
    },
    {
      name: "number min > max",
      body: () => ({ name: uniq("x"), type: "base", fields: [{ name: "n", type: "number", min: 5, max: 1 }] }),
      data: { fields: { 1: { max: { code: "validation_min_number_constraint", message: "Must be greater or equal than 5.", params: { min: 5 } } } } },
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const err = await expectError(su.collections.create(c.body()), 400);
      assert.equal(err.response.message, "Failed to create collection.");
      assert.deepEqual(err.response.data, c.data);
    });
  }

  test("unknown field type -> 400 'Failed to load the submitted data due to invalid formatting.'", async () => {
    const err = await expectError(
      su.collections.create({ name: uniq("x"), type: "base", fields: [{ name: "f", type: "nope" }] }),
      400,
    );
    assert.deepEqual(err.response, {
      data: {},
      message: "Failed to load the submitted data due to invalid formatting.",
      status: 400,
    });
  });

  test("none of the failed creates left a collection behind", async () => {
    const all = await su.collections.getFullList({ filter: `name = "${existing}" || name = "bad name!"` });
    assert.deepEqual(all.map((c) => c.name), [existing]);
  });
});

describe("reading collections", () => {
  const prefix = uniq("rd");
  const names = [`${prefix}_a`, `${prefix}_b`, `${prefix}_c`];
  const created = {};

  before(async () => {
    for (const name of names) {
      created[name] = await su.collections.create({ name, type: "base", fields: [{ name: "t", type: "text" }] });
    }
  });

  test("getList pages and counts with filter and sort", async () => {
    const filter = su.filter("name ~ {:p}", { p: prefix });
    const page1 = await su.collections.getList(1, 2, { filter, sort: "-name" });
    assert.equal(page1.page, 1);
    assert.equal(page1.perPage, 2);
    assert.equal(page1.totalItems, 3);
    assert.equal(page1.totalPages, 2);
    assert.deepEqual(page1.items.map((c) => c.name), [names[2], names[1]]);
    const page2 = await su.collections.getList(2, 2, { filter, sort: "-name" });
    assert.deepEqual(page2.items.map((c) => c.name), [names[0]]);
    assert.equal(page2.totalItems, 3);
  });

  test("getList with fields returns only the requested keys", async () => {
    const res = await su.collections.getList(1, 5, { filter: `name = "${names[0]}"`, fields: "id,name" });
    assert.deepEqual(res.items, [{ id: created[names[0]].id, name: names[0] }]);
  });

  test("getFullList contains the system collections and the new ones", async () => {
    const all = await su.collections.getFullList({ sort: "name" });
    const allNames = all.map((c) => c.name);
    for (const name of ["_superusers", "_mfas", "_otps", "_externalAuths", "_authOrigins", "users", ...names]) {
      assert.ok(allNames.includes(name), `missing ${name}`);
    }
    const superusers = all.find((c) => c.name === "_superusers");
    assert.equal(superusers.type, "auth");
    assert.equal(superusers.system, true);
    assert.equal(superusers.id, "pbc_3142635823");
    const users = all.find((c) => c.name === "users");
    assert.equal(users.id, "_pb_users_auth_");
    assert.equal(users.system, false);
  });

  test("getFullList with a filter", async () => {
    const auth = await su.collections.getFullList({ filter: "type = 'auth' && system = true" });
    assert.deepEqual(auth.map((c) => c.name), ["_superusers"]);
  });

  test("getOne by name and by id", async () => {
    const c = created[names[1]];
    const byNameRes = await su.collections.getOne(names[1]);
    const byIdRes = await su.collections.getOne(c.id);
    assert.deepEqual(byNameRes, c);
    assert.deepEqual(byIdRes, c);
  });

  test("getOne of a missing collection -> 404", async () => {
    const err = await expectError(su.collections.getOne("does_not_exist"), 404);
    assert.deepEqual(err.response, { data: {}, message: "The requested resource wasn't found.", status: 404 });
  });

  test("getFirstListItem", async () => {
    const c = await su.collections.getFirstListItem(su.filter("name = {:n}", { n: names[2] }));
    assert.equal(c.id, created[names[2]].id);
    // no match: the SDK turns the empty list into a 404 ClientResponseError
    let err;
    try {
      await su.collections.getFirstListItem('name = "does_not_exist"');
    } catch (e) {
      err = e;
    }
    assert.equal(err?.status, 404);
  });
});

describe("updating collections", () => {
  test("rename a field keeps the data; rules change", async () => {
    const name = uniq("upd");
    const c = await su.collections.create({
      name,
      type: "base",
      fields: [{ name: "title", type: "text" }, { name: "n", type: "number" }],
    });
    const r1 = await su.collection(name).create({ title: "one", n: 1 });
    await su.collection(name).create({ title: "two", n: 2 });

    const fields = c.fields.map((f) => (f.name === "title" ? { ...f, name: "heading" } : f));
    const updated = await su.collections.update(name, { fields, listRule: "", viewRule: "n > 0" });
    assert.deepEqual(updated.fields.map((f) => f.name), ["id", "heading", "n"]);
    // the field keeps its id when renamed
    assert.equal(byName(updated).heading.id, byName(c).title.id);
    assert.equal(updated.listRule, "");
    assert.equal(updated.viewRule, "n > 0");
    assert.equal(updated.createRule, null);
    assert.equal(updated.id, c.id);

    const rows = await su.collection(name).getFullList({ sort: "n" });
    assert.deepEqual(rows.map((r) => [r.heading, r.n]), [["one", 1], ["two", 2]]);
    assert.equal("title" in rows[0], false);

    // the new rules apply to guests
    const guest = client(server);
    const list = await guest.collection(name).getList(1, 10, { sort: "n" });
    assert.equal(list.totalItems, 2);
    const one = await guest.collection(name).getOne(r1.id);
    assert.equal(one.heading, "one");
  });

  test("add and remove fields", async () => {
    const name = uniq("upd");
    const c = await su.collections.create({ name, type: "base", fields: [{ name: "a", type: "text" }, { name: "b", type: "number" }] });
    const rec = await su.collection(name).create({ a: "x", b: 5 });
    const updated = await su.collections.update(name, {
      fields: [...c.fields.filter((f) => f.name !== "b"), { name: "c", type: "bool" }],
    });
    assert.deepEqual(updated.fields.map((f) => [f.name, f.type]), [["id", "text"], ["a", "text"], ["c", "bool"]]);
    const got = await su.collection(name).getOne(rec.id);
    assert.equal(got.a, "x");
    assert.equal(got.c, false);
    assert.equal("b" in got, false);
  });

  test("rename a collection keeps its id; the old name is gone", async () => {
    const name = uniq("ren");
    const newName = uniq("renamed");
    const c = await su.collections.create({ name, type: "base", fields: [{ name: "t", type: "text" }] });
    const rec = await su.collection(name).create({ t: "kept" });
    const updated = await su.collections.update(c.id, { name: newName });
    assert.equal(updated.name, newName);
    assert.equal(updated.id, c.id);
    await expectError(su.collections.getOne(name), 404);
    const got = await su.collection(newName).getOne(rec.id);
    assert.equal(got.t, "kept");
    assert.equal(got.collectionName, newName);
  });

  test("invalid updates -> 400 with field codes", async () => {
    const name = uniq("upd");
    const c = await su.collections.create({ name, type: "base", fields: [{ name: "n", type: "number" }] });

    let err = await expectError(su.collections.update(name, { viewRule: "nope = 1" }), 400);
    assert.equal(err.response.message, "Failed to update collection.");
    assert.deepEqual(Object.keys(err.response.data), ["viewRule"]);
    assert.equal(err.response.data.viewRule.code, "validation_invalid_rule");

    err = await expectError(
      su.collections.update(name, { fields: c.fields.map((f) => (f.name === "n" ? { ...f, type: "text" } : f)) }),
      400,
    );
    assert.deepEqual(err.response.data, {
      fields: { 1: { code: "validation_field_type_change", message: "Field type cannot be changed." } },
    });

    err = await expectError(su.collections.update(name, { type: "auth" }), 400);
    assert.deepEqual(err.response.data.type, { code: "validation_collection_type_change", message: "Collection type cannot be changed." });

    // nothing changed
    const again = await su.collections.getOne(name);
    assert.equal(again.viewRule, null);
    assert.equal(again.type, "base");
    assert.equal(byName(again).n.type, "number");
  });

  test("update of a missing collection -> 404", async () => {
    await expectError(su.collections.update("does_not_exist", { listRule: "" }), 404);
  });
});

describe("truncate", () => {
  test("removes all records but keeps the collection", async () => {
    const name = uniq("tr");
    await su.collections.create({ name, type: "base", fields: [{ name: "t", type: "text" }] });
    for (const t of ["a", "b", "c"]) await su.collection(name).create({ t });
    assert.equal((await su.collection(name).getList()).totalItems, 3);
    assert.equal(await su.collections.truncate(name), true);
    const list = await su.collection(name).getList();
    assert.deepEqual(list, { items: [], page: 1, perPage: 30, totalItems: 0, totalPages: 0 });
    assert.equal((await su.collections.getOne(name)).name, name);
    // still writable
    const rec = await su.collection(name).create({ t: "again" });
    assert.equal(rec.t, "again");
  });

  test("cascades to records referencing the truncated ones", async () => {
    const parent = await su.collections.create({ name: uniq("par"), type: "base", fields: [{ name: "t", type: "text" }] });
    const child = await su.collections.create({
      name: uniq("chi"),
      type: "base",
      fields: [{ name: "p", type: "relation", collectionId: parent.id, cascadeDelete: true, maxSelect: 1 }],
    });
    const p = await su.collection(parent.name).create({ t: "x" });
    await su.collection(child.name).create({ p: p.id });
    await su.collections.truncate(parent.name);
    assert.equal((await su.collection(parent.name).getList()).totalItems, 0);
    assert.equal((await su.collection(child.name).getList()).totalItems, 0);
  });

  test("truncating _superusers is refused", async () => {
    const err = await expectError(su.collections.truncate("_superusers"), 400);
    assert.equal(err.response.message, "Failed to truncate collection (most likely due to required cascade delete record references).");
    // the superuser still works
    const again = await superuserClient(server);
    assert.equal(again.authStore.record.email, server.superuserEmail);
  });

  test("truncate of a missing collection -> 404", async () => {
    await expectError(su.collections.truncate("does_not_exist"), 404);
  });
});

describe("delete", () => {
  test("deletes the collection and its records", async () => {
    const name = uniq("del");
    const c = await su.collections.create({ name, type: "base", fields: [{ name: "t", type: "text" }] });
    await su.collection(name).create({ t: "x" });
    assert.equal(await su.collections.delete(name), true);
    await expectError(su.collections.getOne(c.id), 404);
    const err = await expectError(su.collection(name).getList(), 404);
    assert.equal(err.response.message, "Missing collection context.");
    // deleting again
    await expectError(su.collections.delete(name), 404);
  });

  test("a collection referenced by another one cannot be deleted", async () => {
    const parent = await su.collections.create({ name: uniq("par"), type: "base" });
    const child = await su.collections.create({
      name: uniq("chi"),
      type: "base",
      fields: [{ name: "p", type: "relation", collectionId: parent.id, maxSelect: 1 }],
    });
    const err = await expectError(su.collections.delete(parent.id), 400);
    assert.equal(err.response.message, `Failed to delete collection probably due to existing reference in ${child.name}.`);
    assert.equal((await su.collections.getOne(parent.id)).name, parent.name);
  });

  test("system collections cannot be deleted", async () => {
    const err = await expectError(su.collections.delete("_superusers"), 400);
    assert.deepEqual(err.response, { data: {}, message: "Failed to delete collection.", status: 400 });
  });
});

describe("import", () => {
  test("creates new collections and keeps the existing ones (deleteMissing=false)", async () => {
    const before = (await su.collections.getFullList()).map((c) => c.name).sort();
    const a = uniq("imp");
    const b = uniq("imp");
    const ok = await su.collections.import(
      [
        { name: a, type: "base", fields: [{ name: "title", type: "text", required: true }], listRule: "" },
        { name: b, type: "base", fields: [{ name: "flag", type: "bool" }] },
      ],
      false,
    );
    assert.equal(ok, true);
    const after = (await su.collections.getFullList()).map((c) => c.name).sort();
    assert.deepEqual(after, [...before, a, b].sort());

    const ca = await su.collections.getOne(a);
    assert.equal(ca.type, "base");
    assert.equal(ca.listRule, "");
    assert.deepEqual(ca.fields.map((f) => [f.name, f.type]), [["id", "text"], ["title", "text"]]);
    assert.equal(byName(ca).title.required, true);
    const rec = await su.collection(a).create({ title: "imported" });
    assert.equal(rec.title, "imported");
  });

  test("collections referencing each other can be imported together", async () => {
    const x = uniq("impx");
    const y = uniq("impy");
    await su.collections.import(
      [
        { id: `id_${x}`, name: x, type: "base", fields: [{ name: "to_y", type: "relation", collectionId: `id_${y}`, maxSelect: 1 }] },
        { id: `id_${y}`, name: y, type: "base", fields: [{ name: "to_x", type: "relation", collectionId: `id_${x}`, maxSelect: 1 }] },
      ],
      false,
    );
    const cx = await su.collections.getOne(x);
    assert.equal(cx.id, `id_${x}`);
    assert.equal(byName(cx).to_y.collectionId, `id_${y}`);
  });

  test("importing an existing collection by name updates it and keeps its id", async () => {
    const name = uniq("impup");
    const c = await su.collections.create({ name, type: "base", fields: [{ name: "old", type: "text" }] });
    await su.collections.import([{ name, type: "base", fields: [{ name: "extra", type: "email" }], listRule: "" }], false);
    const got = await su.collections.getOne(name);
    assert.equal(got.id, c.id);
    assert.equal(got.listRule, "");
    const types = Object.fromEntries(got.fields.map((f) => [f.name, f.type]));
    assert.equal(types.extra, "email");
    assert.equal(types.id, "text");
  });

  test("an invalid import fails as a whole", async () => {
    const good = uniq("impgood");
    const err = await expectError(
      su.collections.import([{ name: good, type: "base" }, { name: "bad!", type: "base" }], false),
      400,
    );
    assert.equal(err.response.message, "Failed to import collections.");
    assert.equal(err.response.data.collections.code, "validation_collections_import_failure");
    assert.match(err.response.data.collections.message, /^Data validations failed for collection "bad!"/);
    await expectError(su.collections.getOne(good), 404);
  });

  test("an empty import is rejected", async () => {
    const err = await expectError(su.collections.import([], false), 400);
    assert.deepEqual(err.response.data, { collections: { code: "validation_required", message: "Cannot be blank." } });
  });
});
