// Shared helpers of the console's browser tests: a real keepd on an
// ephemeral loopback port in a temp dir, Debian's Chromium through
// playwright-core, sign-in, screenshots into tests/browser/artifacts/, and
// an axe-core check failing on serious or critical violations.

import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(HERE, "artifacts");
const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
import { keepdEnv, startServer, SUPERUSER } from "../lib/server.mjs";

export const EMAIL = SUPERUSER.email;
export const PASSWORD = SUPERUSER.password;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bin() {
  return process.env.KEEPD_BIN || join(HERE, "../../target/debug/keepd");
}

// keepd with a superuser; { url, dir, stop(), run(args), restart(), exited() }
// (tests/lib/server.mjs). `env`: more KEEPD_* variables for this keepd.
// restart() starts keepd again on the same data dir and port (after it
// exited by itself, e.g. for a backup's restore, or after stopping it).
export function startKeepd({ env = {} } = {}) {
  return startServer(bin(), { name: "browser", env: keepdEnv(env) });
}

// A superuser API client for set-up and assertions: api(method, path, body).
export async function superuserApi(srv, email = EMAIL, password = PASSWORD) {
  const r = await fetch(`${srv.url}/api/collections/_superusers/auth-with-password`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ identity: email, password }),
  });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  const token = body.token;
  const api = async (method, path, data) => {
    const res = await fetch(`${srv.url}${path}`, {
      method,
      headers: { Authorization: token, ...(data !== undefined ? { "content-type": "application/json" } : {}) },
      body: data !== undefined ? JSON.stringify(data) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  api.token = token;
  return api;
}

// Playwright gives every launch a fresh profile directory of its own
// (TOOLCHAIN.md's --user-data-dir; it refuses that flag in `args`).
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
}

// A page on the console; page.errors collects page errors, console errors
// and CSP violations.
export async function openConsole(browser, srv) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(`pageerror: ${e.message}`));
  // A refused request (a wrong password, a bad filter) is logged by the
  // browser as "Failed to load resource": expected, not an error here.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) page.errors.push(`console: ${m.text()}`);
  });
  page.on("dialog", (d) => d.accept());
  await page.goto(`${srv.url}/_/`);
  return page;
}

export async function signIn(page, email = EMAIL, password = PASSWORD) {
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

// axe-core on the current page: fails on serious or critical violations.
export async function axe(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`),
    [],
    `axe on ${name}`,
  );
}

// RFC 6238 TOTP (six digits, 30-second steps, HMAC-SHA1) of a base32 secret.
export function totpCode(secret, step = Math.floor(Date.now() / 30000)) {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of secret.replace(/=+$/, "").toUpperCase()) bits += A.indexOf(ch).toString(2).padStart(5, "0");
  const key = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) key.push(parseInt(bits.slice(i, i + 8), 2));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", Buffer.from(key)).update(msg).digest();
  const o = mac[mac.length - 1] & 15;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

// The screen is drawn: its h1 has the text.
export async function heading(page, text) {
  await page.getByRole("heading", { level: 1, name: text }).waitFor();
}

// Polls `fn` until it returns a truthy value (or throws after `ms`).
export async function eventually(fn, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${fn}`);
    await sleep(100);
  }
}

// A minimal SMTP sink on loopback (no TLS, no AUTH offered): every message's
// raw text is pushed to `messages`. { port, messages, close() }.
export async function smtpSink() {
  const { createServer: tcp } = await import("node:net");
  const messages = [];
  const server = tcp((sock) => {
    let buf = "";
    let data = false;
    const say = (l) => sock.write(`${l}\r\n`);
    say("220 sink ESMTP");
    sock.on("data", (chunk) => {
      buf += chunk.toString("latin1");
      for (;;) {
        if (data) {
          const end = buf.indexOf("\r\n.\r\n");
          if (end < 0) return;
          messages.push(buf.slice(0, end));
          buf = buf.slice(end + 5);
          data = false;
          say("250 OK queued");
          continue;
        }
        const nl = buf.indexOf("\r\n");
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === "EHLO") { sock.write("250-sink\r\n250 8BITMIME\r\n"); }
        else if (cmd === "DATA") { data = true; say("354 go ahead"); }
        else if (cmd === "QUIT") { say("221 bye"); sock.end(); return; }
        else say("250 OK");
      }
    });
    sock.on("error", () => {});
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { port: server.address().port, messages, close: () => new Promise((ok) => server.close(ok)) };
}
