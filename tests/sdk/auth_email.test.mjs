// Email flows through the JS SDK against a real SMTP server started here
// (npm smtp-server): verification, password reset, email change — each
// mail read as the server received it, its token taken from the link and
// used to finish the flow; and the request routes answer unknown
// addresses exactly like known ones.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { SMTPServer } from "smtp-server";
import { startServer, client, superuserClient, uniq, expectError } from "./harness.mjs";

let server;
let su;
let smtp;
let smtpPort;
const inbox = [];

function decodeBody(raw) {
  const head = raw.split(/\r?\n\r?\n/)[0];
  // Single part or multipart/alternative; quoted-printable or base64 parts.
  let body = raw;
  if (/content-transfer-encoding:\s*quoted-printable/i.test(raw)) {
    body = body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
  }
  const b64 = /content-transfer-encoding:\s*base64\r?\n(?:[^\r\n]+\r?\n)*\r?\n([A-Za-z0-9+\/=\r\n]+)/gi;
  for (const m of raw.matchAll(b64)) {
    body += "\n" + Buffer.from(m[1].replace(/\s+/g, ""), "base64").toString("utf8");
  }
  const subject = /^subject:\s*(.*)$/im.exec(head)?.[1] ?? "";
  return { head, body, subject };
}

/**
 * Waits for the next mail to `to`. keepd sends mail from one queue, in the
 * order it was asked for: a mail asked for last is the sentinel that shows
 * a mail asked for before it would have arrived.
 */
async function mailTo(to, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const i = inbox.findIndex((m) => m.to.includes(to.toLowerCase()));
    if (i >= 0) return inbox.splice(i, 1)[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no mail to ${to} within ${timeoutMs} ms`);
}

function tokenFrom(mail, action) {
  const m = new RegExp(`${action}/([A-Za-z0-9_\\-]+\\.[A-Za-z0-9_\\-]+\\.[A-Za-z0-9_\\-]+)`).exec(mail.body);
  assert.ok(m, `no ${action} link in: ${mail.body}`);
  return m[1];
}

before(async () => {
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, cb) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const to = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
        inbox.push({ to, from: session.envelope.mailFrom.address, ...decodeBody(raw) });
        cb();
      });
    },
  });
  await new Promise((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  smtpPort = smtp.server.address().port;
  server = await startServer();
  su = await superuserClient(server);
  await su.settings.update({
    meta: { appName: "Acme", appURL: "https://acme.test", senderName: "Acme", senderAddress: "noreply@acme.test" },
    smtp: { enabled: true, host: "127.0.0.1", port: smtpPort, tls: false, username: "", password: "" },
  });
});
after(async () => {
  await server?.stop();
  await new Promise((r) => smtp?.close(r));
});

async function signUp(email, password) {
  const g = client(server);
  const rec = await g.collection("users").create({ email, password, passwordConfirm: password });
  return rec;
}

describe("email flows", () => {
  test("verification: mail with a token, confirm marks the record verified", async () => {
    const email = `${uniq("ver")}@example.com`;
    const rec = await signUp(email, "ver-password-123");
    assert.equal(rec.verified, false);
    const g = client(server);
    assert.equal(await g.collection("users").requestVerification(email), true);
    const mail = await mailTo(email);
    assert.equal(mail.from, "noreply@acme.test");
    assert.equal(mail.subject, "Verify your Acme email");
    const token = tokenFrom(mail, "confirm-verification");
    assert.ok(mail.body.includes("https://acme.test/_/#/auth/confirm-verification/"));
    assert.equal(await g.collection("users").confirmVerification(token), true);
    const after = await su.collection("users").getOne(rec.id);
    assert.equal(after.verified, true);
    // A tampered token is refused with PocketBase's field error.
    const err = await expectError(g.collection("users").confirmVerification(token.slice(0, -2) + "xx"), 400);
    assert.equal(err.response.data.token.code, "validation_invalid_token");
  });

  test("password reset: the new password works, old sessions end", async () => {
    const email = `${uniq("reset")}@example.com`;
    const rec = await signUp(email, "old-password-123");
    const u = client(server);
    await u.collection("users").authWithPassword(email, "old-password-123");
    const g = client(server);
    assert.equal(await g.collection("users").requestPasswordReset(email), true);
    const mail = await mailTo(email);
    assert.match(mail.subject, /Reset your Acme password/);
    const token = tokenFrom(mail, "confirm-password-reset");
    // Mismatched confirmation.
    const err = await expectError(g.collection("users").confirmPasswordReset(token, "new-password-456", "other-789"), 400);
    assert.equal(err.response.data.passwordConfirm.code, "validation_values_mismatch");
    assert.equal(await g.collection("users").confirmPasswordReset(token, "new-password-456", "new-password-456"), true);
    await g.collection("users").authWithPassword(email, "new-password-456");
    await expectError(client(server).collection("users").authWithPassword(email, "old-password-123"), 400);
    // The session from before the reset is revoked.
    await expectError(u.collection("users").authRefresh(), 401);
    // The reset proved the address.
    assert.equal((await su.collection("users").getOne(rec.id)).verified, true);
  });

  test("email change: mail to the new address, confirm with the password", async () => {
    const email = `${uniq("chg")}@example.com`;
    const next = `${uniq("new")}@example.com`;
    const rec = await signUp(email, "chg-password-123");
    const u = client(server);
    await u.collection("users").authWithPassword(email, "chg-password-123");
    assert.equal(await u.collection("users").requestEmailChange(next), true);
    const mail = await mailTo(next);
    const token = tokenFrom(mail, "confirm-email-change");
    const err = await expectError(u.collection("users").confirmEmailChange(token, "wrong-password"), 400);
    assert.equal(err.response.data.password.code, "validation_invalid_password");
    assert.equal(await u.collection("users").confirmEmailChange(token, "chg-password-123"), true);
    const after = await su.collection("users").getOne(rec.id);
    assert.equal(after.email, next);
    assert.equal(after.verified, true);
    await client(server).collection("users").authWithPassword(next, "chg-password-123");
    // Guests can't request a change.
    await expectError(client(server).collection("users").requestEmailChange(`${uniq("x")}@example.com`), 401);
  });

  test("request routes answer unknown addresses like known ones, and send nothing", async () => {
    const email = `${uniq("known")}@example.com`;
    await signUp(email, "known-password-123");
    const unknown = `${uniq("unknown")}@example.com`;
    for (const path of ["request-password-reset", "request-verification"]) {
      const answers = [];
      for (const e of [email, unknown]) {
        const res = await fetch(`${server.url}/api/collections/users/${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email: e }),
        });
        answers.push([res.status, await res.text()]);
      }
      assert.deepEqual(answers[0], answers[1], path);
      assert.equal(answers[0][0], 204);
    }
    // Both mails to the known address, then a sentinel asked for after
    // everything above.
    await mailTo(email);
    await mailTo(email);
    const sentinel = `${uniq("sentinel")}@example.com`;
    await signUp(sentinel, "sentinel-password-123");
    assert.equal(await client(server).collection("users").requestVerification(sentinel), true);
    await mailTo(sentinel);
    assert.equal(inbox.filter((m) => m.to.includes(unknown)).length, 0);
    // A malformed address is a field error, for both servers alike.
    const err = await expectError(client(server).collection("users").requestPasswordReset("not-an-email"), 400);
    assert.equal(err.response.data.email.code, "validation_is_email");
  });
});

describe("one-time passwords and multi-factor auth", () => {
  function codeFrom(mail) {
    const m = /<strong>(\d+)<\/strong>/.exec(mail.body);
    assert.ok(m, `no code in: ${mail.body}`);
    return m[1];
  }

  test("request-otp mails a code; auth-with-otp logs in once with it", async () => {
    await su.collections.update("users", { otp: { enabled: true, duration: 180, length: 6 } });
    const email = `${uniq("otp")}@example.com`;
    const rec = await signUp(email, "otp-password-123");
    const g = client(server);
    const { otpId } = await g.collection("users").requestOTP(email);
    assert.match(otpId, /^[a-z0-9]{15}$/i);
    const mail = await mailTo(email);
    assert.equal(mail.subject, "OTP for Acme");
    const code = codeFrom(mail);
    assert.match(code, /^\d{6}$/);
    const wrong = await expectError(g.collection("users").authWithOTP(otpId, code === "000000" ? "111111" : "000000"), 400);
    assert.equal(wrong.response.message, "Invalid or expired OTP.");
    const auth = await g.collection("users").authWithOTP(otpId, code);
    assert.equal(auth.record.id, rec.id);
    assert.ok(g.authStore.isValid);
    // Single use.
    await expectError(client(server).collection("users").authWithOTP(otpId, code), 400);
    // Unknown addresses get an id of the same shape, and no mail.
    const unknown = `${uniq("nobody")}@example.com`;
    const res = await g.collection("users").requestOTP(unknown);
    assert.match(res.otpId, /^[a-z0-9]{15}$/i);
    // The sentinel: a code asked for afterwards for the known address.
    await g.collection("users").requestOTP(email);
    await mailTo(email);
    assert.equal(inbox.filter((m) => m.to.includes(unknown)).length, 0);
  });

  test("MFA: password then OTP with the mfaId; the same method twice is refused", async () => {
    await su.collections.update("users", {
      otp: { enabled: true, duration: 180, length: 6 },
      mfa: { enabled: true, duration: 600, rule: "" },
    });
    try {
      const email = `${uniq("mfa")}@example.com`;
      const rec = await signUp(email, "mfa-password-123");
      const u = client(server);
      // PocketBase answers the first factor with 401 and just {mfaId}.
      let first;
      try {
        await u.collection("users").authWithPassword(email, "mfa-password-123");
      } catch (e) {
        first = e;
      }
      assert.ok(first, "the password alone logged in");
      assert.equal(first.status, 401);
      assert.deepEqual(Object.keys(first.response), ["mfaId"]);
      const mfaId = first.response.mfaId;
      assert.match(mfaId, /^[a-z0-9]{15}$/i);
      assert.equal(u.authStore.isValid, false);
      // The same method again is not a second factor.
      const again = await expectError(
        u.collection("users").authWithPassword(email, "mfa-password-123", { mfaId }),
        400,
      );
      assert.equal(again.response.message, "A different authentication method is required.");
      const { otpId } = await u.collection("users").requestOTP(email);
      const code = codeFrom(await mailTo(email));
      const auth = await u.collection("users").authWithOTP(otpId, code, { mfaId });
      assert.equal(auth.record.id, rec.id);
      assert.ok(u.authStore.isValid);
      // The MFA session is used up.
      const { otpId: otp2 } = await u.collection("users").requestOTP(email);
      const code2 = codeFrom(await mailTo(email));
      await expectError(client(server).collection("users").authWithOTP(otp2, code2, { mfaId }), 400);
    } finally {
      await su.collections.update("users", { mfa: { enabled: false }, otp: { enabled: false } });
    }
  });
});

describe("login alert", () => {
  async function loginAs(email, password, agent) {
    const res = await fetch(`${server.url}/api/collections/users/auth-with-password`, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": agent },
      body: JSON.stringify({ identity: email, password }),
    });
    assert.equal(res.status, 200);
  }

  test("a login from a new device mails the owner; the first and known ones don't", async () => {
    const email = `${uniq("alert")}@example.com`;
    await signUp(email, "alert-password-123");
    await loginAs(email, "alert-password-123", "device-one/1.0");
    await loginAs(email, "alert-password-123", "device-one/1.0");
    // The new device's alert is the sentinel: an alert for either login
    // above would have been queued, and so delivered, before it.
    await loginAs(email, "alert-password-123", "device-two/2.0");
    const mail = await mailTo(email);
    assert.equal(mail.subject, "Login from a new location");
    assert.ok(mail.body.includes("device-two/2.0"), `alert for the first or a known device: ${mail.body}`);
    assert.equal(inbox.filter((m) => m.to.includes(email)).length, 0, "more than one alert");
  });
});
