// OAuth2 through the SDK against a local OIDC provider that this test runs
// (authorize → redirect with code+state, token endpoint checking the client
// secret, the PKCE S256 verifier and redirect_uri, userinfo): code flow with
// a new and then a linked record, linking by verified email, the all-in-one
// realtime flow through /api/oauth2-redirect, and rejected codes/verifiers.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { EventSource } from "eventsource";
import { startServer, client, superuserClient, uniq, ClientResponseError } from "./harness.mjs";

globalThis.EventSource = EventSource;

const CLIENT_ID = "keepd-test-client";
const CLIENT_SECRET = "s3cret-value";

/** A minimal OIDC provider. `users` maps a login hint to its userinfo. */
function startProvider() {
  const codes = new Map(); // code → {challenge, redirect, user}
  const tokens = new Map(); // access token → user
  const state = { user: null, tokenCalls: 0 };
  const srv = createServer(async (req, res) => {
    const u = new URL(req.url, "http://x");
    if (u.pathname === "/authorize") {
      const code = randomBytes(12).toString("hex");
      codes.set(code, {
        challenge: u.searchParams.get("code_challenge"),
        method: u.searchParams.get("code_challenge_method"),
        redirect: u.searchParams.get("redirect_uri"),
        clientId: u.searchParams.get("client_id"),
        user: state.user,
      });
      const to = new URL(u.searchParams.get("redirect_uri"));
      to.searchParams.set("code", code);
      to.searchParams.set("state", u.searchParams.get("state"));
      res.writeHead(302, { location: to.toString() }).end();
      return;
    }
    if (u.pathname === "/token" && req.method === "POST") {
      state.tokenCalls++;
      let body = "";
      for await (const c of req) body += c;
      const p = new URLSearchParams(body);
      const entry = codes.get(p.get("code"));
      const fail = (error) => res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error }));
      if (p.get("client_id") !== CLIENT_ID || p.get("client_secret") !== CLIENT_SECRET) return fail("invalid_client");
      if (p.get("grant_type") !== "authorization_code" || !entry) return fail("invalid_grant");
      if (entry.clientId !== CLIENT_ID || entry.redirect !== p.get("redirect_uri")) return fail("invalid_grant");
      const verifier = p.get("code_verifier") || "";
      const expected = createHash("sha256").update(verifier).digest("base64url");
      if (entry.method !== "S256" || expected !== entry.challenge) return fail("invalid_grant");
      codes.delete(p.get("code"));
      const access = randomBytes(16).toString("hex");
      tokens.set(access, entry.user);
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({ access_token: access, token_type: "Bearer", expires_in: 3600, refresh_token: "refresh-" + access }),
      );
      return;
    }
    if (u.pathname === "/gh/user" || u.pathname === "/gh/user/emails") {
      const auth = req.headers.authorization || "";
      const user = tokens.get(auth.replace(/^Bearer /, ""));
      if (!user) return res.writeHead(401).end();
      const body = u.pathname === "/gh/user" ? user.profile : user.emails;
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
      return;
    }
    if (u.pathname === "/userinfo") {
      const auth = req.headers.authorization || "";
      const user = tokens.get(auth.replace(/^Bearer /, ""));
      if (!user) return res.writeHead(401).end();
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(user));
      return;
    }
    res.writeHead(404).end();
  });
  return new Promise((resolve) =>
    srv.listen(0, "127.0.0.1", () => {
      state.url = `http://127.0.0.1:${srv.address().port}`;
      state.close = () => new Promise((r) => srv.close(r));
      state.codes = codes;
      resolve(state);
    }),
  );
}

let server, su, idp, users;

before(async () => {
  idp = await startProvider();
  server = await startServer();
  su = await superuserClient(server);
  users = uniq("people");
  await su.collections.create({
    name: users,
    type: "auth",
    createRule: "",
    fields: [{ name: "name", type: "text" }, { name: "avatar", type: "url" }],
    oauth2: {
      enabled: true,
      mappedFields: { name: "name", avatarURL: "avatar" },
      providers: [
        {
          name: "oidc",
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          authURL: idp.url + "/authorize",
          tokenURL: idp.url + "/token",
          userInfoURL: idp.url + "/userinfo",
          displayName: "Test IdP",
          pkce: true,
        },
      ],
    },
  });
});

after(async () => {
  await server?.stop();
  await idp?.close();
});

/** Runs the browser part: the authURL (with redirect) → the provider's redirect. */
async function authorize(method, redirect) {
  const r = await fetch(method.authURL + encodeURIComponent(redirect), { redirect: "manual" });
  assert.equal(r.status, 302);
  const to = new URL(r.headers.get("location"));
  return { code: to.searchParams.get("code"), state: to.searchParams.get("state") };
}

async function provider(pb) {
  const m = await pb.collection(users).listAuthMethods();
  assert.equal(m.oauth2.enabled, true);
  assert.equal(m.oauth2.providers.length, 1);
  return m.oauth2.providers[0];
}

describe("oauth2", () => {
  test("auth-methods lists the provider with state and PKCE S256", async () => {
    const p = await provider(client(server));
    assert.equal(p.name, "oidc");
    assert.equal(p.displayName, "Test IdP");
    assert.equal(p.state.length, 30);
    assert.equal(p.codeVerifier.length, 43);
    assert.equal(p.codeChallengeMethod, "S256");
    assert.equal(p.codeChallenge, createHash("sha256").update(p.codeVerifier).digest("base64url"));
    const u = new URL(p.authURL);
    assert.equal(u.origin + u.pathname, idp.url + "/authorize");
    assert.equal(u.searchParams.get("client_id"), CLIENT_ID);
    assert.equal(u.searchParams.get("response_type"), "code");
    assert.equal(u.searchParams.get("scope"), "openid email profile");
    assert.equal(u.searchParams.get("state"), p.state);
    assert.equal(u.searchParams.get("code_challenge"), p.codeChallenge);
    assert.ok(p.authURL.endsWith("&redirect_uri="));
    // a second call: a fresh state and verifier
    const p2 = await provider(client(server));
    assert.notEqual(p2.state, p.state);
    assert.notEqual(p2.codeVerifier, p.codeVerifier);
  });

  test("the client secret is never shown; an update without it keeps it", async () => {
    const c = await su.collections.getOne(users);
    assert.equal("clientSecret" in c.oauth2.providers[0], false);
    assert.equal(c.oauth2.providers[0].clientId, CLIENT_ID);
    const updated = await su.collections.update(users, { oauth2: c.oauth2 });
    assert.equal("clientSecret" in updated.oauth2.providers[0], false);
    // the token exchange still authenticates with the stored secret
    idp.user = { sub: "sub-upd", email: "upd@example.com", email_verified: true };
    const pb = client(server);
    const p = await provider(pb);
    const { code } = await authorize(p, "http://127.0.0.1:9/cb");
    const r = await pb.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, "http://127.0.0.1:9/cb");
    assert.equal(r.meta.isNew, true);
  });

  test("provider config validated on save", async () => {
    try {
      await su.collections.create({
        name: uniq("bad"),
        type: "auth",
        oauth2: {
          enabled: true,
          providers: [
            { name: "oidc", clientId: "a", clientSecret: "b", authURL: "not a url" },
            { name: "nosuch" },
          ],
        },
      });
      assert.fail("expected an error");
    } catch (e) {
      assert.equal(e.status, 400);
      assert.deepEqual(e.response.data.oauth2, {
        providers: {
          0: { authURL: { code: "validation_is_url", message: "Must be a valid URL." } },
          1: {
            clientId: { code: "validation_required", message: "Cannot be blank." },
            clientSecret: { code: "validation_required", message: "Cannot be blank." },
            name: {
              code: "validation_missing_provider",
              message: "Invalid or missing provider with name nosuch.",
              params: { name: "nosuch" },
            },
          },
        },
      });
    }
  });

  test("code flow: a new record, then the same record linked", async () => {
    idp.user = { sub: "sub-1", name: "Ada L", email: "ada@example.com", email_verified: true, picture: "https://img.example.com/a.png" };
    const redirect = "http://127.0.0.1:9/cb";
    const pb = client(server);
    let p = await provider(pb);
    let { code } = await authorize(p, redirect);
    const first = await pb.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, redirect, { emailVisibility: true });
    assert.equal(first.meta.isNew, true);
    assert.equal(first.meta.id, "sub-1");
    assert.equal(first.meta.email, "ada@example.com");
    assert.equal(first.meta.name, "Ada L");
    assert.equal(first.meta.avatarURL, "https://img.example.com/a.png");
    assert.equal(first.meta.refreshToken.startsWith("refresh-"), true);
    assert.deepEqual(first.meta.rawUser, idp.user);
    assert.equal(first.record.email, "ada@example.com");
    assert.equal(first.record.verified, true);
    assert.equal(first.record.name, "Ada L");
    assert.equal(first.record.avatar, "https://img.example.com/a.png");
    assert.ok(pb.authStore.isValid);

    const pb2 = client(server);
    p = await provider(pb2);
    ({ code } = await authorize(p, redirect));
    const second = await pb2.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, redirect);
    assert.equal(second.meta.isNew, false);
    assert.equal(second.record.id, first.record.id);
    const links = await su.collection("_externalAuths").getFullList({ filter: `recordRef = "${first.record.id}"` });
    assert.equal(links.length, 1);
    assert.equal(links[0].provider, "oidc");
    assert.equal(links[0].providerId, "sub-1");
  });

  test("an existing record with the same email is linked", async () => {
    const existing = await su.collection(users).create({
      email: "grace@example.com",
      password: "password-123456",
      passwordConfirm: "password-123456",
      verified: true,
    });
    idp.user = { sub: "sub-grace", name: "Grace", email: "grace@example.com", email_verified: true };
    const redirect = "http://127.0.0.1:9/cb";
    const pb = client(server);
    const p = await provider(pb);
    const { code } = await authorize(p, redirect);
    const r = await pb.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, redirect);
    assert.equal(r.meta.isNew, false);
    assert.equal(r.record.id, existing.id);
    // still verified; the password still works (verified records keep it)
    await client(server).collection(users).authWithPassword("grace@example.com", "password-123456");
  });

  test("an unverified provider email doesn't link; a new record without email", async () => {
    idp.user = { sub: "sub-x", name: "X", email: "grace@example.com", email_verified: false };
    const redirect = "http://127.0.0.1:9/cb";
    const pb = client(server);
    const p = await provider(pb);
    const { code } = await authorize(p, redirect);
    const r = await pb.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, redirect, {
      email: "x-own@example.com",
      emailVisibility: true,
    });
    assert.equal(r.meta.isNew, true);
    assert.equal(r.meta.email, "");
    assert.equal(r.record.email, "x-own@example.com");
    assert.equal(r.record.verified, false);
  });

  test("wrong code, verifier or redirect URL: 400 Failed to fetch OAuth2 token.", async () => {
    idp.user = { sub: "sub-2", email: "b@example.com", email_verified: true };
    const redirect = "http://127.0.0.1:9/cb";
    const pb = client(server);
    const p = await provider(pb);
    const { code } = await authorize(p, redirect);
    const expect400 = async (promise) => {
      try {
        await promise;
        assert.fail("expected an error");
      } catch (e) {
        assert.ok(e instanceof ClientResponseError, String(e));
        assert.equal(e.status, 400);
        assert.deepEqual(e.response, { status: 400, message: "Failed to fetch OAuth2 token.", data: {} });
      }
    };
    await expect400(pb.collection(users).authWithOAuth2Code("oidc", "not-a-code", p.codeVerifier, redirect));
    await expect400(pb.collection(users).authWithOAuth2Code("oidc", code, "x".repeat(43), redirect));
    await expect400(pb.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, "http://127.0.0.1:9/other"));
  });

  test("unknown provider and missing code: validation errors", async () => {
    const r = await fetch(`${server.url}/api/collections/${users}/auth-with-oauth2`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ provider: "nope" }),
    });
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), {
      status: 400,
      message: "An error occurred while loading the submitted data.",
      data: {
        code: { code: "validation_required", message: "Cannot be blank." },
        provider: {
          code: "validation_invalid_provider",
          message: "Provider with name nope is missing or is not enabled.",
          params: { name: "nope" },
        },
      },
    });
  });

  test("duplicate providers are rejected", async () => {
    const prov = { name: "google", clientId: "a", clientSecret: "b" };
    try {
      await su.collections.create({ name: uniq("dup"), type: "auth", oauth2: { enabled: true, providers: [prov, prov] } });
      assert.fail("expected an error");
    } catch (e) {
      assert.equal(e.status, 400);
      assert.deepEqual(e.response.data.oauth2, {
        providers: {
          1: {
            name: {
              code: "validation_duplicated_provider",
              message: "The provider google is already registered.",
              params: { name: "google" },
            },
          },
        },
      });
    }
    // disabled: not validated
    const off = await su.collections.create({ name: uniq("off"), type: "auth", oauth2: { enabled: false, providers: [{ name: "nosuch" }] } });
    assert.equal(off.oauth2.enabled, false);
  });

  test("a provider username is mapped only while it is free", async () => {
    const name = uniq("handles");
    await su.collections.create({
      name,
      type: "auth",
      createRule: "",
      fields: [{ name: "handle", type: "text" }],
      indexes: [`CREATE UNIQUE INDEX idx_handle_${name} ON ${name} (handle) WHERE handle != ''`],
      oauth2: {
        enabled: true,
        mappedFields: { username: "handle" },
        providers: [
          {
            name: "oidc",
            clientId: CLIENT_ID,
            clientSecret: CLIENT_SECRET,
            authURL: idp.url + "/authorize",
            tokenURL: idp.url + "/token",
            userInfoURL: idp.url + "/userinfo",
          },
        ],
      },
    });
    const login = async (sub) => {
      idp.user = { sub, preferred_username: "ada", email: `${sub}@example.com`, email_verified: true };
      const pb = client(server);
      const m = await pb.collection(name).listAuthMethods();
      const p = m.oauth2.providers[0];
      assert.equal(p.displayName, "OIDC");
      const { code } = await authorize(p, "http://127.0.0.1:9/cb");
      return pb.collection(name).authWithOAuth2Code("oidc", code, p.codeVerifier, "http://127.0.0.1:9/cb");
    };
    const a = await login("h-1");
    assert.equal(a.meta.username, "ada");
    assert.equal(a.record.handle, "ada");
    const b = await login("h-2");
    assert.equal(b.meta.isNew, true);
    assert.equal(b.record.handle, "");
  });

  test("github preset: numeric id, login, verified primary email from /emails", async () => {
    const name = uniq("gh");
    await su.collections.create({
      name,
      type: "auth",
      createRule: "",
      fields: [{ name: "login", type: "text" }],
      oauth2: {
        enabled: true,
        mappedFields: { username: "login" },
        providers: [
          {
            name: "github",
            clientId: CLIENT_ID,
            clientSecret: CLIENT_SECRET,
            authURL: idp.url + "/authorize",
            tokenURL: idp.url + "/token",
            userInfoURL: idp.url + "/gh/user",
          },
        ],
      },
    });
    idp.user = {
      profile: { id: 4242, login: "octo", name: "Octo Cat", avatar_url: "https://img.example.com/o.png" },
      emails: [
        { email: "secondary@example.com", verified: true, primary: false },
        { email: "octo@example.com", verified: true, primary: true },
      ],
    };
    const pb = client(server);
    const m = await pb.collection(name).listAuthMethods();
    const p = m.oauth2.providers[0];
    assert.equal(p.displayName, "GitHub");
    assert.equal(new URL(p.authURL).searchParams.get("scope"), "read:user user:email");
    const { code } = await authorize(p, "http://127.0.0.1:9/cb");
    const r = await pb.collection(name).authWithOAuth2Code("github", code, p.codeVerifier, "http://127.0.0.1:9/cb", {
      emailVisibility: true,
    });
    assert.equal(r.meta.id, "4242");
    assert.equal(r.meta.username, "octo");
    assert.equal(r.meta.name, "Octo Cat");
    assert.equal(r.meta.email, "octo@example.com");
    assert.equal(r.meta.avatarURL, "https://img.example.com/o.png");
    assert.equal(r.record.login, "octo");
    assert.equal(r.record.email, "octo@example.com");
    assert.equal(r.record.verified, true);
  });

  test("the authRule applies to OAuth2 logins", async () => {
    const c = await su.collections.getOne(users);
    await su.collections.update(users, { authRule: "name = 'allowed'" });
    try {
      idp.user = { sub: "sub-rule", name: "denied", email: "rule@example.com", email_verified: true };
      const redirect = "http://127.0.0.1:9/cb";
      const pb = client(server);
      const p = await provider(pb);
      const { code } = await authorize(p, redirect);
      try {
        await pb.collection(users).authWithOAuth2Code("oidc", code, p.codeVerifier, redirect);
        assert.fail("expected an error");
      } catch (e) {
        assert.equal(e.status, 403);
        assert.deepEqual(e.response, {
          status: 403,
          message: "The request doesn't satisfy the collection requirements to authenticate.",
          data: {},
        });
      }
    } finally {
      await su.collections.update(users, { authRule: c.authRule });
    }
  });

  test("oauth2-redirect without state or for an unknown client: the failure answer", async () => {
    // PocketBase redirects to its dashboard's failure page; keepd (no dashboard)
    // answers PocketBase's dashboard-less page.
    const isFailure = async (r, redirectStatus) => {
      if (r.status === redirectStatus) {
        assert.equal(r.headers.get("location"), "../_/#/auth/oauth2-redirect-failure");
      } else {
        assert.equal(r.status, 200);
        assert.equal(await r.text(), "Failed to authenticate. You can close this window and go back to the app to try again.");
      }
    };
    await isFailure(await fetch(`${server.url}/api/oauth2-redirect?code=abc`, { redirect: "manual" }), 307);
    await isFailure(await fetch(`${server.url}/api/oauth2-redirect?code=abc&state=nosuchclient`, { redirect: "manual" }), 307);
    await isFailure(
      await fetch(`${server.url}/api/oauth2-redirect`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "code=abc&state=nosuchclient",
        redirect: "manual",
      }),
      303,
    );
  });

  test("all-in-one authWithOAuth2 over realtime and /api/oauth2-redirect", async () => {
    idp.user = { sub: "sub-3", name: "Rt", email: "rt@example.com", email_verified: true };
    const pb = client(server);
    const res = await pb.collection(users).authWithOAuth2({
      provider: "oidc",
      urlCallback: async (url) => {
        // the browser: authorize at the provider, follow its redirect to keepd
        const r = await fetch(url, { redirect: "manual" });
        assert.equal(r.status, 302);
        const back = await fetch(r.headers.get("location"), { redirect: "manual" });
        assert.ok([200, 307].includes(back.status), `redirect handler answered ${back.status}`);
      },
    });
    assert.equal(res.meta.isNew, true);
    assert.equal(res.record.email, "rt@example.com");
    assert.ok(pb.authStore.isValid);
    pb.realtime.unsubscribe();
  });
});
