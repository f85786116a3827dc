// Auth records (the default `users` collection) and API rules, as seen by a
// guest, two regular users (A and B) and the superuser.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

let server;
let su;
let guest;
let A; // client authenticated as user A
let B;
let userA;
let userB;
const PASS_A = "password-a-123";
const PASS_B = "password-b-123";
const emailA = `${uniq("a")}@example.com`;
const emailB = `${uniq("b")}@example.com`;

const decodeJwt = (token) => token.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
  guest = client(server);
  userA = await guest.collection("users").create({ email: emailA, password: PASS_A, passwordConfirm: PASS_A, name: "User A" });
  userB = await guest.collection("users").create({ email: emailB, password: PASS_B, passwordConfirm: PASS_B, emailVisibility: true });
  A = client(server);
  await A.collection("users").authWithPassword(emailA, PASS_A);
  B = client(server);
  await B.collection("users").authWithPassword(emailB, PASS_B);
});
after(async () => {
  await server?.stop();
});

describe("users auth collection", () => {
  test("sign-up returns the new record; email is hidden unless emailVisibility", () => {
    assert.match(userA.id, /^[a-z0-9]{15}$/);
    assert.equal(userA.collectionName, "users");
    assert.equal(userA.collectionId, "_pb_users_auth_");
    assert.equal(userA.name, "User A");
    assert.equal(userA.verified, false);
    assert.equal(userA.emailVisibility, false);
    assert.equal("email" in userA, false);
    assert.equal(userB.email, emailB);
    for (const u of [userA, userB]) {
      assert.equal("password" in u, false);
      assert.equal("passwordConfirm" in u, false);
      assert.equal("tokenKey" in u, false);
    }
  });

  test("sign-up validation", async () => {
    const cases = [
      [
        "duplicate email",
        { email: emailA, password: PASS_A, passwordConfirm: PASS_A },
        { email: { code: "validation_not_unique", message: "Value must be unique." } },
      ],
      [
        "password mismatch",
        { email: `${uniq("c")}@example.com`, password: PASS_A, passwordConfirm: "something-else" },
        { passwordConfirm: { code: "validation_values_mismatch", message: "Values don't match." } },
      ],
      [
        "password too short",
        { email: `${uniq("c")}@example.com`, password: "short", passwordConfirm: "short" },
        { password: { code: "validation_min_text_constraint", message: "Must be at least 8 character(s)." } },
      ],
      [
        "no password",
        { email: `${uniq("c")}@example.com` },
        {
          password: { code: "validation_required", message: "Cannot be blank." },
          passwordConfirm: { code: "validation_required", message: "Cannot be blank." },
        },
      ],
      [
        "bad email",
        { email: "nope", password: PASS_A, passwordConfirm: PASS_A },
        { email: { code: "validation_is_email", message: "Must be a valid email address." } },
      ],
      [
        "guest cannot self-verify",
        { email: `${uniq("c")}@example.com`, password: PASS_A, passwordConfirm: PASS_A, verified: true },
        { verified: { code: "validation_values_mismatch", message: "Values don't match." } },
      ],
    ];
    for (const [name, body, data] of cases) {
      const err = await expectError(guest.collection("users").create(body), 400);
      assert.equal(err.response.message, "Failed to create record.", name);
      assert.deepEqual(err.response.data, data, name);
    }
  });

  test("authWithPassword: token is a 3-part HS256 JWT and the auth store holds the record", async () => {
    const pb = client(server);
    const res = await pb.collection("users").authWithPassword(emailA, PASS_A);
    assert.equal(res.token.split(".").length, 3);
    const [header, payload] = decodeJwt(res.token);
    assert.equal(header.alg, "HS256");
    assert.equal(header.typ, "JWT");
    assert.equal(payload.id, userA.id);
    assert.equal(payload.collectionId, "_pb_users_auth_");
    assert.equal(payload.type, "auth");
    assert.equal(payload.refreshable, true);
    assert.ok(payload.exp > Date.now() / 1000);
    assert.equal(pb.authStore.token, res.token);
    assert.equal(pb.authStore.isValid, true);
    assert.equal(pb.authStore.isSuperuser, false);
    assert.equal(pb.authStore.record.id, userA.id);
    assert.equal(pb.authStore.record.email, emailA, "the owner sees their own email");
    assert.equal(pb.authStore.record.collectionName, "users");
  });

  test("authWithPassword failures are a 400 with empty data", async () => {
    for (const [email, password] of [
      [emailA, "wrong-password"],
      ["nobody@example.com", "whatever-123"],
    ]) {
      const err = await expectError(client(server).collection("users").authWithPassword(email, password), 400);
      assert.deepEqual(err.response, { data: {}, message: "Failed to authenticate.", status: 400 });
    }
  });

  test("authRefresh returns a fresh token for the same record", async () => {
    const pb = client(server);
    const first = await pb.collection("users").authWithPassword(emailB, PASS_B);
    await new Promise((r) => setTimeout(r, 1100)); // the exp claim has 1s resolution
    const res = await pb.collection("users").authRefresh();
    assert.equal(res.record.id, userB.id);
    assert.equal(res.record.email, emailB);
    assert.equal(res.token.split(".").length, 3);
    assert.notEqual(res.token, first.token);
    assert.ok(decodeJwt(res.token)[1].exp > decodeJwt(first.token)[1].exp);
    assert.equal(pb.authStore.token, res.token);
  });

  test("authRefresh without a token -> 401", async () => {
    const err = await expectError(client(server).collection("users").authRefresh(), 401);
    assert.deepEqual(err.response, { data: {}, message: "The request requires valid record authorization token.", status: 401 });
  });

  test("listAuthMethods", async () => {
    const methods = await guest.collection("users").listAuthMethods();
    assert.deepEqual(methods.password, { enabled: true, identityFields: ["email"] });
    assert.equal(methods.oauth2.enabled, false);
    assert.deepEqual(methods.oauth2.providers, []);
    assert.equal(methods.mfa.enabled, false);
    assert.equal(methods.otp.enabled, false);
  });

  test("default users rules: each user only sees themself", async () => {
    const listA = await A.collection("users").getList(1, 50);
    assert.deepEqual(listA.items.map((u) => u.id), [userA.id]);
    assert.equal(listA.items[0].email, emailA);
    const listB = await B.collection("users").getList(1, 50);
    assert.deepEqual(listB.items.map((u) => u.id), [userB.id]);

    const guestList = await guest.collection("users").getList(1, 50);
    assert.deepEqual(guestList, { items: [], page: 1, perPage: 50, totalItems: 0, totalPages: 0 });

    assert.equal((await A.collection("users").getOne(userA.id)).id, userA.id);
    await expectError(A.collection("users").getOne(userB.id), 404);
    await expectError(guest.collection("users").getOne(userA.id), 404);

    const all = await su.collection("users").getFullList({ sort: "created" });
    assert.deepEqual(all.map((u) => u.email), [emailA, emailB], "superuser sees everyone, emails included");
  });

  test("users can update themselves but not others", async () => {
    const upd = await A.collection("users").update(userA.id, { name: "Renamed A" });
    assert.equal(upd.name, "Renamed A");
    await expectError(B.collection("users").update(userA.id, { name: "hacked" }), 404);
    assert.equal((await su.collection("users").getOne(userA.id)).name, "Renamed A");
  });

  test("a regular user cannot reach superuser-only endpoints", async () => {
    let err = await expectError(A.collection("_superusers").getList(), 403);
    assert.deepEqual(err.response, { data: {}, message: "Only superusers can perform this action.", status: 403 });
    err = await expectError(A.collections.getList(), 403);
    assert.equal(err.response.message, "The authorized record is not allowed to perform this action.");
    err = await expectError(A.settings.getAll(), 403);
    assert.equal(err.response.message, "The authorized record is not allowed to perform this action.");
  });

  test("an invalid token is treated as a guest on public endpoints", async () => {
    const pb = client(server);
    pb.authStore.save("abc.def.ghi", null);
    const list = await pb.collection("users").getList();
    assert.equal(list.totalItems, 0);
    const health = await pb.health.check();
    assert.deepEqual(health, { message: "API is healthy.", code: 200, data: {} });
  });
});

describe("collection API rules", () => {
  let notes;
  let locked;
  let noteA;
  let noteB;

  before(async () => {
    notes = uniq("notes");
    locked = uniq("locked");
    await su.collections.create({
      name: notes,
      type: "base",
      fields: [
        { name: "text", type: "text" },
        { name: "owner", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 },
      ],
      listRule: "owner = @request.auth.id",
      viewRule: "owner = @request.auth.id",
      createRule: "@request.auth.id != ''",
      updateRule: "owner = @request.auth.id",
      deleteRule: "owner = @request.auth.id",
    });
    await su.collections.create({ name: locked, type: "base", fields: [{ name: "text", type: "text" }] });
    noteA = await su.collection(notes).create({ text: "a1", owner: userA.id });
    noteB = await su.collection(notes).create({ text: "b1", owner: userB.id });
  });

  const who = () => ({ guest, A, B, su });

  test("list: a failing list rule filters rows (200)", async () => {
    const expected = { guest: [], A: ["a1"], B: ["b1"], su: ["a1", "b1"] };
    for (const [name, pb] of Object.entries(who())) {
      const res = await pb.collection(notes).getList(1, 30, { sort: "text" });
      assert.deepEqual(res.items.map((n) => n.text), expected[name], name);
      assert.equal(res.totalItems, expected[name].length, name);
    }
  });

  test("view: a failing view rule is a 404", async () => {
    const expected = { guest: 404, A: 200, B: 404, su: 200 };
    for (const [name, pb] of Object.entries(who())) {
      if (expected[name] === 200) {
        assert.equal((await pb.collection(notes).getOne(noteA.id)).text, "a1", name);
      } else {
        const err = await expectError(pb.collection(notes).getOne(noteA.id), 404);
        assert.equal(err.response.message, "The requested resource wasn't found.");
      }
    }
  });

  test("create: a failing create rule is a 400 with empty data", async () => {
    const err = await expectError(guest.collection(notes).create({ text: "guest note" }), 400);
    assert.deepEqual(err.response, { data: {}, message: "Failed to create record.", status: 400 });
    const byA = await A.collection(notes).create({ text: "new by A", owner: userA.id });
    assert.equal(byA.owner, userA.id);
    const bySu = await su.collection(notes).create({ text: "new by su" });
    assert.equal(bySu.text, "new by su");
    const list = await su.collection(notes).getFullList({ filter: "text = 'guest note'" });
    assert.equal(list.length, 0);
  });

  test("update: a failing update rule is a 404 and changes nothing", async () => {
    for (const pb of [guest, B]) {
      await expectError(pb.collection(notes).update(noteA.id, { text: "hacked" }), 404);
    }
    assert.equal((await A.collection(notes).update(noteA.id, { text: "a1 edited" })).text, "a1 edited");
    assert.equal((await su.collection(notes).update(noteA.id, { text: "a1" })).text, "a1");
    assert.equal((await su.collection(notes).getOne(noteA.id)).text, "a1");
  });

  test("update rules are checked against the stored record, not the new data", async () => {
    const n = await B.collection(notes).create({ text: "give away", owner: userB.id });
    const given = await B.collection(notes).update(n.id, { owner: userA.id });
    assert.equal(given.owner, userA.id);
    await expectError(B.collection(notes).getOne(n.id), 404);
    assert.equal((await A.collection(notes).getOne(n.id)).text, "give away");
  });

  test("delete: a failing delete rule is a 404", async () => {
    for (const pb of [guest, B]) {
      const err = await expectError(pb.collection(notes).delete(noteA.id), 404);
      assert.equal(err.response.message, "The requested resource wasn't found.");
    }
    assert.equal((await su.collection(notes).getOne(noteA.id)).text, "a1");
    assert.equal(await A.collection(notes).delete(noteA.id), true);
    await expectError(su.collection(notes).getOne(noteA.id), 404);
    assert.equal((await B.collection(notes).getOne(noteB.id)).text, "b1");
  });

  test("null rules: superusers only, everyone else gets 403", async () => {
    const rec = await su.collection(locked).create({ text: "secret" });
    const calls = {
      list: (pb) => pb.collection(locked).getList(),
      view: (pb) => pb.collection(locked).getOne(rec.id),
      create: (pb) => pb.collection(locked).create({ text: "x" }),
      update: (pb) => pb.collection(locked).update(rec.id, { text: "x" }),
      delete: (pb) => pb.collection(locked).delete(rec.id),
    };
    for (const [name, pb] of Object.entries({ guest, A, B })) {
      for (const [op, call] of Object.entries(calls)) {
        const err = await expectError(call(pb), 403);
        assert.deepEqual(
          err.response,
          { data: {}, message: "Only superusers can perform this action.", status: 403 },
          `${name} ${op}`,
        );
      }
    }
    assert.equal((await su.collection(locked).getList()).totalItems, 1);
    assert.equal((await su.collection(locked).getOne(rec.id)).text, "secret");
    // superusers get a normal 404 for a missing record
    await expectError(su.collection(locked).getOne("aaaaaaaaaaaaaaa"), 404);
  });

  test("empty rules: anyone, guests included", async () => {
    const open = uniq("open");
    await su.collections.create({
      name: open,
      type: "base",
      fields: [{ name: "text", type: "text" }],
      listRule: "",
      viewRule: "",
      createRule: "",
      updateRule: "",
      deleteRule: "",
    });
    const rec = await guest.collection(open).create({ text: "by guest" });
    assert.equal((await B.collection(open).getOne(rec.id)).text, "by guest");
    assert.equal((await A.collection(open).update(rec.id, { text: "by A" })).text, "by A");
    assert.equal((await guest.collection(open).getList()).totalItems, 1);
    assert.equal(await guest.collection(open).delete(rec.id), true);
    assert.equal((await su.collection(open).getList()).totalItems, 0);
  });

  test("mixed rules and @request.body", async () => {
    const mixed = uniq("mixed");
    await su.collections.create({
      name: mixed,
      type: "base",
      fields: [{ name: "text", type: "text" }],
      listRule: "",
      viewRule: null,
      createRule: "text = 'ok'",
      updateRule: "@request.body.text = 'ok'",
      deleteRule: null,
    });
    const m = await guest.collection(mixed).create({ text: "ok" });
    assert.equal(m.text, "ok");
    let err = await expectError(guest.collection(mixed).create({ text: "bad" }), 400);
    assert.deepEqual(err.response, { data: {}, message: "Failed to create record.", status: 400 });
    assert.equal((await guest.collection(mixed).getList()).totalItems, 1, "list allowed even though view is not");
    err = await expectError(guest.collection(mixed).getOne(m.id), 403);
    assert.equal(err.response.message, "Only superusers can perform this action.");
    assert.equal((await guest.collection(mixed).update(m.id, { text: "ok" })).text, "ok");
    await expectError(guest.collection(mixed).update(m.id, { text: "no" }), 404);
    await expectError(guest.collection(mixed).delete(m.id), 403);
  });

  test("a create rule on the new data: owner = @request.auth.id", async () => {
    const owned = uniq("owned");
    await su.collections.create({
      name: owned,
      type: "base",
      fields: [{ name: "text", type: "text" }, { name: "owner", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 }],
      createRule: "owner = @request.auth.id",
      listRule: "",
    });
    const err = await expectError(B.collection(owned).create({ text: "spoof", owner: userA.id }), 400);
    assert.equal(err.response.message, "Failed to create record.");
    assert.equal((await B.collection(owned).create({ text: "mine", owner: userB.id })).owner, userB.id);
    // a guest's @request.auth.id is "" and so is an empty owner: allowed
    assert.equal((await guest.collection(owned).create({ text: "ownerless" })).owner, "");
    const texts = (await guest.collection(owned).getFullList({ sort: "text" })).map((r) => r.text);
    assert.deepEqual(texts, ["mine", "ownerless"]);
  });

  test("only superusers may use @request / @collection in their own filter", async () => {
    const cases = [
      ["@request.auth.id != ''", "Only superusers can filter by @request."],
      ["owner = @request.auth.id", "Only superusers can filter by @request."],
      [`@collection.users.id ?= "${userA.id}"`, "Only superusers can filter by @collection."],
    ];
    for (const [filter, message] of cases) {
      for (const [name, pb] of Object.entries({ guest, A })) {
        const err = await expectError(pb.collection(notes).getList(1, 30, { filter }), 403);
        assert.deepEqual(err.response, { data: {}, message, status: 403 }, `${name}: ${filter}`);
      }
    }
    const res = await su.collection(notes).getList(1, 30, { filter: "@request.auth.id != ''" });
    assert.ok(res.totalItems >= 1);
    // a plain filter on top of the list rule is fine
    const mine = await B.collection(notes).getList(1, 30, { filter: "text = 'b1'" });
    assert.deepEqual(mine.items.map((n) => n.id), [noteB.id]);
  });
});
