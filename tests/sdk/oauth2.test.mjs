// OAuth2 through the JS SDK against a local OpenID Connect provider started
// here (authorization endpoint, token endpoint checking the client secret,
// the redirect URI and the PKCE S256 verifier, user-info endpoint):
// auth-methods, authWithOAuth2Code (new account, same account again,
// linking to an existing account by verified email), the SDK's all-in-one
// authWithOAuth2 realtime flow through /api/oauth2-redirect, and refusals.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import crypto from "node:crypto";
import { EventSource } from "eventsource";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

globalThis.EventSource = EventSource;

const CLIENT_ID = "keepd-test-client";
const CLIENT_SECRET = "keepd-test-secret";

let server;
let su;
let idp;
let idpURL;
let nextUser; // who the IdP signs in next
const codes = new Map(); // code → {redirectUri, challenge, user}
const tokens = new Map(); // access token → user

function b64url(buf) {
  return Buffer.from(buf).toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString()));
  });
}

function startIdp() {
  return new Promise((resolve) => {
    const srv = http.createServer(async (req, res) => {
      const url = new URL(req.url, "http://x");
      if (req.method === "GET" && url.pathname === "/authorize") {
        const p = url.searchParams;
        if (p.get("client_id") !== CLIENT_ID || p.get("response_type") !== "code") {
          res.writeHead(400).end("bad authorize request");
          return;
        }
        const code = crypto.randomBytes(12).toString("hex");
        codes.set(code, { redirectUri: p.get("redirect_uri"), challenge: p.get("code_challenge"), user: nextUser });
        const to = new URL(p.get("redirect_uri"));
        to.searchParams.set("code", code);
        to.searchParams.set("state", p.get("state"));
        res.writeHead(302, { location: to.toString() }).end();
        return;
      }
      if (req.method === "POST" && url.pathname === "/token") {
        const form = new URLSearchParams(await readBody(req));
        let id = form.get("client_id");
        let secret = form.get("client_secret");
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
        if (basic) {
          [id, secret] = Buffer.from(basic[1], "base64").toString().split(":").map(decodeURIComponent);
        }
        const entry = codes.get(form.get("code"));
        const fail = (why) => res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "invalid_grant", why }));
        if (id !== CLIENT_ID || secret !== CLIENT_SECRET) return fail("client");
        if (!entry) return fail("code");
        if (entry.redirectUri !== form.get("redirect_uri")) return fail("redirect_uri");
        const verifier = form.get("code_verifier") ?? "";
        if (b64url(crypto.createHash("sha256").update(verifier).digest()) !== entry.challenge) return fail("pkce");
        codes.delete(form.get("code"));
        const access = crypto.randomBytes(16).toString("hex");
        tokens.set(access, entry.user);
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({ access_token: access, token_type: "Bearer", expires_in: 3600, refresh_token: "r-" + access }),
        );
        return;
      }
      if (req.method === "GET" && url.pathname === "/userinfo") {
        const tok = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
        const user = tokens.get(tok);
        if (!user) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(user));
        return;
      }
      res.writeHead(404).end();
    });
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

before(async () => {
  idp = await startIdp();
  idpURL = `http://127.0.0.1:${idp.address().port}`;
  server = await startServer();
  su = await superuserClient(server);
  await su.collections.update("users", {
    oauth2: {
      enabled: true,
      mappedFields: { id: "", name: "name", username: "", avatarURL: "" },
      providers: [
        {
          name: "oidc",
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          authURL: `${idpURL}/authorize`,
          tokenURL: `${idpURL}/token`,
          userInfoURL: `${idpURL}/userinfo`,
          displayName: "Local IdP",
          pkce: true,
        },
      ],
    },
  });
});
after(async () => {
  await server?.stop();
  await new Promise((r) => idp?.close(r));
});

function idpUser(email, extra = {}) {
  return { sub: uniq("sub"), name: "Ada Lovelace", email, email_verified: true, preferred_username: "ada", ...extra };
}

/** Runs the browser part: the authorize URL → (code, state). */
async function authorize(provider, redirectURL) {
  const res = await fetch(provider.authURL + encodeURIComponent(redirectURL), { redirect: "manual" });
  assert.equal(res.status, 302);
  const loc = new URL(res.headers.get("location"));
  return { code: loc.searchParams.get("code"), state: loc.searchParams.get("state") };
}

describe("OAuth2", () => {
  test("auth-methods lists the provider with state and PKCE", async () => {
    const m = await client(server).collection("users").listAuthMethods();
    assert.equal(m.oauth2.enabled, true);
    assert.equal(m.oauth2.providers.length, 1);
    const p = m.oauth2.providers[0];
    assert.equal(p.name, "oidc");
    assert.equal(p.displayName, "Local IdP");
    assert.equal(p.codeChallengeMethod, "S256");
    assert.ok(p.state.length >= 30);
    assert.ok(p.authURL.startsWith(`${idpURL}/authorize?`), p.authURL);
    assert.ok(p.authURL.endsWith("&redirect_uri="), p.authURL);
    assert.ok(!JSON.stringify(m).includes(CLIENT_SECRET), "the client secret leaked");
  });

  test("authWithOAuth2Code: a new account, then the same account again", async () => {
    const g = client(server);
    const email = `${uniq("oa")}@example.com`;
    nextUser = idpUser(email);
    const redirectURL = "http://127.0.0.1:9/callback";
    const [p] = (await g.collection("users").listAuthMethods()).oauth2.providers;
    const { code, state } = await authorize(p, redirectURL);
    assert.equal(state, p.state);
    const first = await g.collection("users").authWithOAuth2Code("oidc", code, p.codeVerifier, redirectURL, { emailVisibility: true });
    assert.equal(first.meta.isNew, true);
    assert.equal(first.meta.id, nextUser.sub);
    assert.equal(first.meta.email, email);
    assert.equal(first.meta.name, "Ada Lovelace");
    assert.ok(first.meta.accessToken);
    assert.equal(first.record.email, email);
    assert.equal(first.record.name, "Ada Lovelace");
    assert.equal(first.record.verified, true);
    assert.ok(g.authStore.isValid);
    // Again: the link finds the same record.
    const [p2] = (await client(server).collection("users").listAuthMethods()).oauth2.providers;
    const again = await authorize(p2, redirectURL);
    const second = await client(server).collection("users").authWithOAuth2Code("oidc", again.code, p2.codeVerifier, redirectURL);
    assert.equal(second.meta.isNew, false);
    assert.equal(second.record.id, first.record.id);
    const links = await su.collection("_externalAuths").getFullList({ filter: `recordRef = "${first.record.id}"` });
    assert.equal(links.length, 1);
    assert.equal(links[0].provider, "oidc");
    assert.equal(links[0].providerId, nextUser.sub);
  });

  test("an existing account with the provider's verified email is linked, its old password dropped", async () => {
    const email = `${uniq("pre")}@example.com`;
    const g = client(server);
    const pre = await g.collection("users").create({ email, password: "pre-password-123", passwordConfirm: "pre-password-123" });
    nextUser = idpUser(email);
    const redirectURL = "http://127.0.0.1:9/callback";
    const [p] = (await g.collection("users").listAuthMethods()).oauth2.providers;
    const { code } = await authorize(p, redirectURL);
    const auth = await g.collection("users").authWithOAuth2Code("oidc", code, p.codeVerifier, redirectURL);
    assert.equal(auth.meta.isNew, false);
    assert.equal(auth.record.id, pre.id);
    assert.equal(auth.record.verified, true);
    // Whoever pre-registered the address can't get in with their password.
    await expectError(client(server).collection("users").authWithPassword(email, "pre-password-123"), 400);
  });

  test("the all-in-one flow: authWithOAuth2 over realtime and /api/oauth2-redirect", async () => {
    const g = client(server);
    const email = `${uniq("rt")}@example.com`;
    nextUser = idpUser(email);
    const auth = await g.collection("users").authWithOAuth2({
      provider: "oidc",
      urlCallback: async (url) => {
        // The "browser": the IdP redirects to the server's /api/oauth2-redirect.
        const r = await fetch(url, { redirect: "manual" });
        const back = r.headers.get("location");
        assert.ok(back.startsWith(`${server.url}/api/oauth2-redirect?`), back);
        await fetch(back);
      },
    });
    assert.equal(auth.record.email, email);
    assert.equal(auth.meta.isNew, true);
    assert.ok(g.authStore.isValid);
    g.realtime.unsubscribe();
  });

  test("refusals: wrong verifier or code, unknown provider", async () => {
    const g = client(server);
    nextUser = idpUser(`${uniq("bad")}@example.com`);
    const redirectURL = "http://127.0.0.1:9/callback";
    const [p] = (await g.collection("users").listAuthMethods()).oauth2.providers;
    const { code } = await authorize(p, redirectURL);
    const e1 = await expectError(g.collection("users").authWithOAuth2Code("oidc", code, "x".repeat(43), redirectURL), 400);
    assert.equal(e1.response.message, "Failed to fetch OAuth2 token.");
    const e2 = await expectError(g.collection("users").authWithOAuth2Code("oidc", "no-such-code", p.codeVerifier, redirectURL), 400);
    assert.equal(e2.response.message, "Failed to fetch OAuth2 token.");
    const e3 = await expectError(g.collection("users").authWithOAuth2Code("nope", "c", "v", redirectURL), 400);
    assert.equal(e3.response.data.provider.code, "validation_invalid_provider");
    assert.equal(g.authStore.isValid, false);
  });
});
