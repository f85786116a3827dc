// Realtime (SSE) through the SDK's subscribe/unsubscribe: events for `*` and
// for one record, subscription options (filter, fields, expand), API rules and
// hidden fields per subscriber, revoked and deleted auth, batch and cascade
// writes, and the error answers of POST /api/realtime.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { EventSource } from "eventsource";
import { startServer, client, superuserClient, uniq } from "./harness.mjs";

// Node has no EventSource; the SDK uses the global one. This one also keeps
// the name of every event that came over the wire, so a test can tell what
// the server sent even where the SDK no longer listens (after an
// unsubscribe it drops events of that topic itself).
class RecordingEventSource extends EventSource {
  received = [];
  dispatchEvent(e) {
    if (e.type !== "open" && e.type !== "error") this.received.push(e.type);
    return super.dispatchEvent(e);
  }
}
globalThis.EventSource = RecordingEventSource;

/** The names of the events `pb`'s current realtime connection received. */
const wire = (pb) => pb.realtime.eventSource?.received ?? [];

let server;
let su;
let guest;
let posts; // public list/view, hidden field `secret`
let priv; // list/view only for the owner
let tags; // relation target for expand
let comments; // cascade-deleted with their post
let members; // list/view for any authenticated caller
const PASS = "password-123456";
const opened = []; // every subscriber client, closed at the end

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `pred()` is true (polling), or fails after `ms`. */
async function waitFor(pred, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (pred()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A fresh SDK client whose realtime connection is closed after the suite. */
function subscriber(authToken, authRecord) {
  const pb = client(server);
  if (authToken) pb.authStore.save(authToken, authRecord);
  opened.push(pb);
  return pb;
}

async function signUp(name) {
  const email = `${uniq(name)}@example.com`;
  const rec = await guest.collection("users").create({ email, password: PASS, passwordConfirm: PASS, name });
  const pb = subscriber();
  const auth = await pb.collection("users").authWithPassword(email, PASS);
  return { id: rec.id, email, pb, token: auth.token, record: auth.record };
}

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
  guest = client(server);
  tags = uniq("tags");
  const tagsColl = await su.collections.create({
    name: tags,
    type: "base",
    fields: [{ name: "label", type: "text" }],
    listRule: "",
    viewRule: "",
  });
  posts = uniq("posts");
  const postsColl = await su.collections.create({
    name: posts,
    type: "base",
    fields: [
      { name: "title", type: "text" },
      { name: "n", type: "number" },
      { name: "secret", type: "text", hidden: true },
      { name: "tag", type: "relation", collectionId: tagsColl.id, maxSelect: 1 },
    ],
    listRule: "",
    viewRule: "",
  });
  priv = uniq("priv");
  await su.collections.create({
    name: priv,
    type: "base",
    fields: [
      { name: "title", type: "text" },
      { name: "owner", type: "relation", collectionId: "_pb_users_auth_", maxSelect: 1 },
    ],
    listRule: "owner = @request.auth.id",
    viewRule: "owner = @request.auth.id",
  });
  members = uniq("members");
  await su.collections.create({
    name: members,
    type: "base",
    fields: [{ name: "title", type: "text" }],
    listRule: '@request.auth.id != ""',
    viewRule: '@request.auth.id != ""',
  });
  comments = uniq("comments");
  await su.collections.create({
    name: comments,
    type: "base",
    fields: [
      { name: "body", type: "text" },
      { name: "post", type: "relation", collectionId: postsColl.id, maxSelect: 1, cascadeDelete: true },
    ],
    listRule: "",
    viewRule: "",
  });
});

after(async () => {
  for (const pb of opened) {
    try {
      await pb.realtime.unsubscribe();
    } catch {}
  }
  await server?.stop();
});

describe("subscribe and unsubscribe", () => {
  test("events for * and for one record: create, update, delete, exactly", async () => {
    const pb = subscriber();
    const all = [];
    const one = [];
    await pb.collection(posts).subscribe("*", (e) => all.push(e));
    assert.equal(pb.realtime.isConnected, true);
    assert.match(pb.realtime.clientId, /^[A-Za-z0-9]{40}$/);

    const created = await su.collection(posts).create({ title: "hello", n: 1, secret: "s3cret" });
    await waitFor(() => all.length === 1, "the create event");
    const asGuest = await guest.collection(posts).getOne(created.id);
    assert.equal("secret" in asGuest, false);
    assert.deepEqual(all[0], { action: "create", record: asGuest });

    await pb.collection(posts).subscribe(created.id, (e) => one.push(e));
    await su.collection(posts).update(created.id, { title: "hello again", n: 2 });
    await waitFor(() => all.length === 2 && one.length === 1, "the update events");
    const updated = await guest.collection(posts).getOne(created.id);
    assert.equal(updated.title, "hello again");
    assert.deepEqual(all[1], { action: "update", record: updated });
    assert.deepEqual(one[0], { action: "update", record: updated });

    await su.collection(posts).delete(created.id);
    await waitFor(() => all.length === 3 && one.length === 2, "the delete events");
    assert.deepEqual(all[2], { action: "delete", record: updated });
    assert.deepEqual(one[1], { action: "delete", record: updated });

    // Unsubscribing stops delivery (the record topic first, then all).
    await pb.collection(posts).unsubscribe(created.id);
    const other = await su.collection(posts).create({ title: "second" });
    await waitFor(() => all.length === 4, "the second create");
    assert.equal(all[3].record.id, other.id);
    assert.equal(one.length, 2);
    assert.equal(wire(pb).filter((n) => n === `${posts}/${created.id}`).length, 2);

    // The same connection keeps a sentinel topic: events reach a client in
    // commit order, so once the sentinel (committed last) is in, an event
    // for the unsubscribed topic would be too.
    const seen = [];
    await pb.collection(tags).subscribe("*", (e) => seen.push(e));
    await pb.collection(posts).unsubscribe();
    assert.equal(pb.realtime.isConnected, true);
    await su.collection(posts).update(other.id, { n: 5 });
    const mark = await su.collection(tags).create({ label: "sentinel" });
    await waitFor(() => seen.some((e) => e.record.id === mark.id), "the sentinel's event");
    // Nothing for posts came over the wire after the unsubscribe.
    assert.equal(wire(pb).filter((n) => n.startsWith(`${posts}/`)).length, 4 + 2);
    assert.equal(all.length, 4);
    assert.equal(one.length, 2);
    await pb.collection(tags).unsubscribe();
    assert.equal(pb.realtime.isConnected, false);
  });

  test("superusers see hidden fields; a record topic gets only its record", async () => {
    const pb = subscriber(su.authStore.token, su.authStore.record);
    const a = await su.collection(posts).create({ title: "a", secret: "x" });
    const b = await su.collection(posts).create({ title: "b", secret: "y" });
    const got = [];
    await pb.collection(posts).subscribe(b.id, (e) => got.push(e));
    await su.collection(posts).update(a.id, { n: 1 });
    // b's update, committed after a's, is the sentinel (commit order).
    await su.collection(posts).update(b.id, { n: 2 });
    await waitFor(() => got.some((e) => e.record.id === b.id), "b's update");
    assert.equal(got.length, 1);
    assert.equal(got[0].record.id, b.id);
    assert.equal(got[0].record.secret, "y");
    assert.deepEqual(got[0].record, await su.collection(posts).getOne(b.id));
  });

  test("options: filter, fields and expand", async () => {
    const tag = await su.collection(tags).create({ label: "news" });
    const pb = subscriber();
    const filtered = [];
    const expanded = [];
    await pb.collection(posts).subscribe("*", (e) => filtered.push(e), { filter: "n > 5", fields: "id,title" });
    await pb.collection(posts).subscribe("*", (e) => expanded.push(e), { expand: "tag" });
    const low = await su.collection(posts).create({ title: "low", n: 3, tag: tag.id });
    const high = await su.collection(posts).create({ title: "high", n: 10, tag: tag.id });
    // `high` is committed last: once the filtered topic has it, an event
    // for `low` would have come before it.
    await waitFor(
      () => filtered.some((e) => e.record.id === high.id) && expanded.length === 2,
      "the events for high",
    );
    assert.deepEqual(filtered, [{ action: "create", record: { id: high.id, title: "high" } }]);
    assert.deepEqual(
      expanded.map((e) => [e.action, e.record.id, e.record.expand?.tag?.label]),
      [
        ["create", low.id, "news"],
        ["create", high.id, "news"],
      ],
    );
    assert.deepEqual(expanded[1].record, await guest.collection(posts).getOne(high.id, { expand: "tag" }));
  });
});

describe("API rules per subscriber", () => {
  test("B never gets an event for a record only A may view; A does", async () => {
    const A = await signUp("A");
    const B = await signUp("B");
    const gotA = [];
    const gotB = [];
    await A.pb.collection(priv).subscribe("*", (e) => gotA.push(e));
    await B.pb.collection(priv).subscribe("*", (e) => gotB.push(e));
    const recA = await su.collection(priv).create({ title: "for A", owner: A.id });
    // B also subscribes to A's record by id: the view rule guards it.
    await B.pb.collection(priv).subscribe(recA.id, (e) => gotB.push(e));
    await su.collection(priv).update(recA.id, { title: "for A, updated" });
    await su.collection(priv).delete(recA.id);
    // A sentinel for B, committed after A's: events arrive in commit order.
    const recB = await su.collection(priv).create({ title: "for B", owner: B.id });
    await waitFor(() => gotA.length === 3, "A's events");
    await waitFor(() => gotB.some((e) => e.record.id === recB.id), "B's own event (the sentinel)");
    assert.deepEqual(
      gotA.map((e) => [e.action, e.record.id, e.record.title]),
      [
        ["create", recA.id, "for A"],
        ["update", recA.id, "for A, updated"],
        ["delete", recA.id, "for A, updated"],
      ],
    );
    assert.deepEqual(gotB, [{ action: "create", record: await B.pb.collection(priv).getOne(recB.id) }]);
  });

  test("emails of auth records stay hidden as in the records API", async () => {
    // Anyone may view users here; e-mails still show only to their owner.
    await su.collections.update("users", { viewRule: "" });
    const C = await signUp("C");
    const asGuest = [];
    const asSelf = [];
    const g = subscriber();
    await g.collection("users").subscribe(C.id, (e) => asGuest.push(e));
    await C.pb.collection("users").subscribe(C.id, (e) => asSelf.push(e));
    await su.collection("users").update(C.id, { name: "Cee" });
    await waitFor(() => asGuest.length === 1 && asSelf.length === 1, "the user update events");
    assert.equal(asGuest[0].record.name, "Cee");
    assert.equal("email" in asGuest[0].record, false);
    assert.equal(asSelf[0].record.email, C.email);
    for (const e of [asGuest[0], asSelf[0]]) {
      assert.equal("password" in e.record, false);
      assert.equal("tokenKey" in e.record, false);
    }
    assert.deepEqual(asSelf[0].record, await C.pb.collection("users").getOne(C.id));
  });

  test("a revoked token (tokenKey changed) and a deleted auth record stop delivery", async () => {
    const D = await signUp("D");
    const E = await signUp("E");
    const gotD = [];
    const gotE = [];
    for (const [u, got] of [
      [D, gotD],
      [E, gotE],
    ]) {
      await u.pb.collection(members).subscribe("*", (e) => got.push(e));
      await u.pb.collection(posts).subscribe("*", (e) => got.push(e)); // public: the sentinel
    }
    await su.collection(members).create({ title: "before" });
    await waitFor(() => gotD.length === 1 && gotE.length === 1, "the events before revocation");

    // D's password changes (new tokenKey); E's record is deleted: both are
    // guests now, who may not see members.
    await su.collection("users").update(D.id, { password: "another-pass-123", passwordConfirm: "another-pass-123" });
    await su.collection("users").delete(E.id);
    await su.collection(members).create({ title: "after" });
    const sentinel = await su.collection(posts).create({ title: "sentinel" });
    const hasSentinel = (got) => got.some((e) => e.record.id === sentinel.id);
    await waitFor(() => hasSentinel(gotD) && hasSentinel(gotE), "the sentinel events");
    assert.deepEqual(
      gotD.map((e) => [e.action, e.record.title]),
      [
        ["create", "before"],
        ["create", "sentinel"],
      ],
    );
    assert.deepEqual(
      gotE.map((e) => [e.action, e.record.title]),
      [
        ["create", "before"],
        ["create", "sentinel"],
      ],
    );
  });
});

describe("writes that publish", () => {
  test("batch writes publish after commit; a rolled-back batch publishes nothing", async () => {
    await su.settings.update({ batch: { enabled: true, maxRequests: 50, timeout: 3, maxBodySize: 0 } });
    const pb = subscriber();
    const got = [];
    await pb.collection(posts).subscribe("*", (e) => got.push(e));
    const ok = su.createBatch();
    ok.collection(posts).create({ title: "batch 1" });
    ok.collection(posts).create({ title: "batch 2" });
    await ok.send();
    await waitFor(() => got.length === 2, "the batch events");
    // (PocketBase sends each message from its own goroutine: compare as sets.)
    assert.deepEqual(
      got.map((e) => [e.action, e.record.title]).sort(),
      [
        ["create", "batch 1"],
        ["create", "batch 2"],
      ],
    );
    const bad = su.createBatch();
    bad.collection(posts).create({ title: "rolled back" });
    bad.collection(posts).update("missing00000000", { title: "no such record" });
    await assert.rejects(bad.send());
    const sentinel = await su.collection(posts).create({ title: "after the rollback" });
    await waitFor(() => got.some((e) => e.record.id === sentinel.id), "the sentinel event");
    assert.equal(got.length, 3, JSON.stringify(got.map((e) => e.record.title)));
    assert.equal(got[2].record.id, sentinel.id);
  });

  test("a cascade delete publishes the children's deletes and the parent's", async () => {
    const post = await su.collection(posts).create({ title: "parent" });
    const c1 = await su.collection(comments).create({ body: "one", post: post.id });
    const c2 = await su.collection(comments).create({ body: "two", post: post.id });
    const pb = subscriber();
    const got = [];
    await pb.collection(comments).subscribe("*", (e) => got.push(e));
    await pb.collection(posts).subscribe(post.id, (e) => got.push(e));
    await su.collection(posts).delete(post.id);
    await waitFor(() => got.length === 3, "the cascade events");
    assert.deepEqual(
      got.map((e) => [e.action, e.record.collectionName, e.record.id]).sort(),
      [
        ["delete", comments, c1.id],
        ["delete", comments, c2.id],
        ["delete", posts, post.id],
      ].sort(),
    );
    assert.deepEqual(got.find((e) => e.record.id === c1.id).record, { ...c1 });
  });
});

describe("POST /api/realtime errors", () => {
  const post = (body, headers = {}) =>
    fetch(`${server.url}/api/realtime`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    }).then(async (r) => [r.status, r.status === 204 ? null : await r.json()]);

  test("unknown client, missing client id, malformed body", async () => {
    assert.deepEqual(await post({ clientId: "nope", subscriptions: [] }), [
      404,
      { status: 404, message: "Missing or invalid client id.", data: {} },
    ]);
    assert.deepEqual(await post({ subscriptions: ["a"] }), [
      400,
      {
        status: 400,
        message: "Something went wrong while processing your request.",
        data: { clientId: { code: "validation_required", message: "Cannot be blank." } },
      },
    ]);
    assert.deepEqual(await post({ clientId: "x", subscriptions: "a" }), [
      400,
      { status: 400, message: "Something went wrong while processing your request.", data: {} },
    ]);
  });

  test("an authenticated client cannot change to another auth", async () => {
    const F = await signUp("F");
    const G = await signUp("G");
    await F.pb.collection(posts).subscribe("*", () => {});
    const clientId = F.pb.realtime.clientId;
    assert.deepEqual(await post({ clientId, subscriptions: [`${posts}/*`] }, { Authorization: G.token }), [
      403,
      { status: 403, message: "The current and the previous request authorization don't match.", data: {} },
    ]);
    assert.deepEqual(await post({ clientId, subscriptions: [`${posts}/*`] }), [
      403,
      { status: 403, message: "The current and the previous request authorization don't match.", data: {} },
    ]);
    assert.deepEqual(await post({ clientId, subscriptions: [] }, { Authorization: F.token }), [204, null]);
  });
});
