// Signing in to the console: password only, password then TOTP, and by
// keyboard alone; the idle sign-out; axe on the sign-in screens.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { startKeepd, superuserApi, launch, openConsole, signIn, screenshot, axe, heading, eventually, smtpSink, EMAIL, PASSWORD } from "./lib.mjs";

let srv;
let browser;
before(async () => {
  srv = await startKeepd();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

function base32(s) {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of s.replace(/=+$/, "").toUpperCase()) bits += A.indexOf(ch).toString(2).padStart(5, "0");
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

// RFC 6238: six digits, 30-second steps, HMAC-SHA1.
function totp(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(msg).digest();
  const o = mac[mac.length - 1] & 15;
  const n = (mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}

test("password sign-in opens the collections; sign out returns to the sign-in form", async () => {
  const page = await openConsole(browser, srv);
  await heading(page, "Sign in");
  await axe(page, "login");
  await screenshot(page, "login");
  await signIn(page, EMAIL, "wrong-password-123");
  await page.locator(".toast-error, .field-error").first().waitFor();
  await signIn(page);
  await heading(page, "Collections");
  assert.match(page.url(), /#\/collections$/);
  const token = await page.evaluate(() => sessionStorage.getItem("keepd.console.token"));
  assert.ok(token && token.length > 20, "the token is kept in sessionStorage");
  assert.deepEqual(await page.context().cookies(), [], "no cookie is ever set");
  await page.getByRole("button", { name: "Sign out" }).click();
  await heading(page, "Sign in");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("keepd.console.token")), null);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("keyboard only: sign in and open a record with Tab and Enter", async () => {
  const api = await superuserApi(srv);
  let r = await api("POST", "/api/collections", { name: "kbd", type: "base", fields: [{ name: "title", type: "text" }], listRule: "", viewRule: "" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await api("POST", "/api/collections/kbd/records", { title: "by keyboard" });
  const id = r.body.id;
  const page = await openConsole(browser, srv);
  await heading(page, "Sign in");
  // The e-mail input has focus; type, Tab to the password, Enter submits.
  await page.keyboard.type(EMAIL);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await heading(page, "Collections");
  // Tab until the link to the collection's records has focus, then Enter.
  const focusedText = () => page.evaluate(() => document.activeElement && document.activeElement.textContent);
  for (let i = 0; i < 40 && (await focusedText()) !== "kbd"; i++) await page.keyboard.press("Tab");
  assert.equal(await focusedText(), "kbd");
  const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(ring, "none", "focus is visible");
  await page.keyboard.press("Enter");
  await heading(page, "Records of kbd");
  for (let i = 0; i < 40 && (await focusedText()) !== id; i++) await page.keyboard.press("Tab");
  assert.equal(await focusedText(), id);
  await page.keyboard.press("Enter");
  await heading(page, `Record ${id}`);
  assert.equal(await page.getByLabel("title").inputValue(), "by keyboard");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test("with TOTP on, the password is followed by the authenticator code", async () => {
  const api = await superuserApi(srv);
  const en = await api("POST", "/api/collections/_superusers/totp/enroll", {});
  assert.equal(en.status, 200, JSON.stringify(en.body));
  const step = Math.floor(Date.now() / 1000 / 30);
  const conf = await api("POST", "/api/collections/_superusers/totp/confirm", { code: totp(en.body.secret, step - 1) });
  assert.equal(conf.status, 200, JSON.stringify(conf.body));

  const page = await openConsole(browser, srv);
  await signIn(page);
  await heading(page, "Second step");
  await axe(page, "login-totp");
  await screenshot(page, "login-totp");
  await page.getByLabel("Code").fill("000000");
  await page.getByRole("button", { name: "Verify" }).click();
  await page.locator(".field-error").first().waitFor();
  assert.equal(await page.getByLabel("Code").getAttribute("aria-invalid"), "true");
  await page.getByLabel("Code").fill(totp(en.body.secret, Math.floor(Date.now() / 1000 / 30)));
  await page.getByRole("button", { name: "Verify" }).click();
  await heading(page, "Collections");
  assert.deepEqual(page.errors, []);
  await page.context().close();

  // Turned off again for the other tests (a recovery code does it).
  const off = await api("POST", "/api/collections/_superusers/totp/disable", { code: conf.body.recoveryCodes[0] });
  assert.equal(off.status, 204, JSON.stringify(off.body));
});

test("idle: the console signs out after IDLE_SIGN_OUT_MS without input", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.clock.install();
  await page.goto(`${srv.url}/_/`);
  await signIn(page);
  await heading(page, "Collections");
  await page.clock.fastForward("31:00");
  await heading(page, "Sign in");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("keepd.console.token")), null);
  await page.getByText(/Signed out after 30 minutes/).waitFor();
  await context.close();
});

test("with MFA on, the password is followed by a one-time code sent by e-mail", async () => {
  const smtp = await smtpSink();
  const api = await superuserApi(srv);
  try {
    let r = await api("PATCH", "/api/settings", { smtp: { enabled: true, host: "127.0.0.1", port: smtp.port, tls: false } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // An unusual length, so the code is easy to find in the mail.
    r = await api("PATCH", "/api/collections/_superusers", { otp: { enabled: true, length: 9, duration: 300 }, mfa: { enabled: true, duration: 600 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));

    const page = await openConsole(browser, srv);
    await signIn(page);
    await heading(page, "Second step");
    await page.getByRole("button", { name: "E-mail me a one-time code instead" }).click();
    await page.getByText(/We sent a one-time code/).waitFor();
    const mail = await eventually(() => smtp.messages.find((m) => /\b\d{9}\b/.test(m.replace(/=\r\n/g, ""))));
    const code = mail.replace(/=\r\n/g, "").match(/\b(\d{9})\b/)[1];
    await page.getByLabel("Code").fill(code);
    await page.getByRole("button", { name: "Verify" }).click();
    await heading(page, "Collections");
    assert.deepEqual(page.errors, []);
    await page.context().close();
  } finally {
    await api("PATCH", "/api/collections/_superusers", { otp: { enabled: false }, mfa: { enabled: false } });
    await smtp.close();
  }
});
