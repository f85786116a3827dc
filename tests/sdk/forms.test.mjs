// Form bodies on JSON endpoints through the official JS SDK: `pb.send` with
// a FormData (multipart) or URLSearchParams (urlencoded) body, as
// integrations that post forms do — their first request is the login.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, client, superuserClient, expectError } from "./harness.mjs";

const PW = "Zebra-Quartz-7731";
const SU_LOGIN = "/api/collections/_superusers/auth-with-password";
const USER_LOGIN = "/api/collections/users/auth-with-password";

let server;
let su;

before(async () => {
  server = await startServer();
  su = await superuserClient(server);
  await su.collection("users").create({ email: "form@example.com", password: PW, passwordConfirm: PW });
});
after(async () => {
  await server?.stop();
});

describe("form logins", () => {
  test("superuser login with a multipart body", async () => {
    const pb = client(server);
    const form = new FormData();
    form.append("identity", server.superuserEmail);
    form.append("password", server.superuserPassword);
    const res = await pb.send(SU_LOGIN, { method: "POST", body: form });
    assert.ok(res.token, "a token");
    assert.equal(res.record.email, server.superuserEmail);
    // The token authenticates the SDK like a JSON login's.
    pb.authStore.save(res.token, res.record);
    assert.ok(pb.authStore.isSuperuser);
    const list = await pb.collections.getList(1, 1);
    assert.ok(list.totalItems > 0);
  });

  test("user login with a urlencoded body", async () => {
    // (The SDK sends anything but FormData as JSON: a plain fetch.)
    const body = new URLSearchParams({ identity: "form@example.com", password: PW });
    const r = await fetch(server.url + USER_LOGIN, { method: "POST", body });
    assert.equal(r.status, 200);
    const res = await r.json();
    assert.equal(res.record.email, "form@example.com");
    const pb = client(server);
    pb.authStore.save(res.token, res.record);
    const refreshed = await pb.collection("users").authRefresh();
    assert.equal(refreshed.record.email, "form@example.com");
  });

  test("@jsonPayload carries the JSON body inside a form", async () => {
    const pb = client(server);
    const form = new FormData();
    form.append("@jsonPayload", JSON.stringify({ identity: "form@example.com", password: PW }));
    const res = await pb.send(USER_LOGIN, { method: "POST", body: form });
    assert.equal(res.record.email, "form@example.com");
  });

  test("a wrong password in a form is the usual 400", async () => {
    const pb = client(server);
    const form = new FormData();
    form.append("identity", "form@example.com");
    form.append("password", "not-the-password-1");
    const err = await expectError(pb.send(USER_LOGIN, { method: "POST", body: form }), 400);
    assert.equal(err.response.message, "Failed to authenticate.");
  });
});
