// The console's operations screens in Chromium against a real keepd:
// settings saved and read back (and a refused value marked on its field),
// the test e-mail received by a real SMTP server (npm smtp-server), the
// request log with a filter and one entry's details, the audit log after a
// privileged action, crons "run now", a backup created, downloaded and
// restored, a locked account unlocked, verify and impersonate, sync shown
// as off; axe and a screenshot on each screen.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SMTPServer } from "smtp-server";
import { startKeepd, superuserApi, launch, openConsole, signIn, screenshot, axe, heading, totpCode } from "./lib.mjs";

let srv;
let browser;
let page;
let api;
let smtp;
const inbox = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

before(async () => {
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, session, cb) {
      const chunks = [];
      stream.on("data", (c) => chunks.push(c));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        inbox.push({ to: session.envelope.rcptTo.map((r) => r.address), raw });
        cb();
      });
    },
  });
  await new Promise((r) => smtp.listen(0, "127.0.0.1", r));
  // Plaintext backups: the explicit choice (keepd encrypts them by default).
  srv = await startKeepd({ env: { KEEPD_BACKUP_ENCRYPTION: "none" } });
  api = await superuserApi(srv);
  browser = await launch();
  page = await openConsole(browser, srv);
  await signIn(page);
  await heading(page, "Collections");
});

after(async () => {
  await browser?.close();
  await srv?.stop();
  await new Promise((r) => (smtp ? smtp.close(r) : r()));
});

async function open(name, title) {
  await page.evaluate((h) => { location.hash = h; }, `#/${name}`);
  await heading(page, title);
}

test("settings: saved through the form, read back; a refused value is marked on its field", async () => {
  await open("settings", "Settings");
  await axe(page, "settings");
  await screenshot(page, "settings");
  const port = smtp.server.address().port;
  await page.getByLabel("Application name").fill("Ops Console Test");
  await page.getByLabel("Send through SMTP").check();
  await page.getByLabel("Host", { exact: true }).fill("127.0.0.1");
  await page.getByLabel("Port", { exact: true }).fill(String(port));
  await page.getByLabel("Sender address").fill("ops@acme.test");
  await page.getByLabel("Failures before a lock").fill("3");
  await page.getByLabel("Cron expression").fill("0 3 * * *");
  await page.getByLabel("Batch requests on").check();
  await page.getByLabel("Requests per batch").fill("20");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Saved.", { exact: true }).waitFor();
  const s = (await api("GET", "/api/settings")).body;
  assert.equal(s.meta.appName, "Ops Console Test");
  assert.equal(s.meta.senderAddress, "ops@acme.test");
  assert.equal(s.smtp.enabled, true);
  assert.equal(s.smtp.host, "127.0.0.1");
  assert.equal(s.smtp.port, port);
  assert.equal(s.lockout.maxFailures, 3);
  assert.equal(s.backups.cron, "0 3 * * *");
  assert.equal(s.batch.enabled, true);
  assert.equal(s.batch.maxRequests, 20);
  // The rate-limit rules went back as they were.
  assert.equal(s.rateLimits.rules.length, 4);
  assert.equal(s.rateLimits.rules[0].label, "*:auth");

  // Drawn again from the server.
  await page.reload();
  await heading(page, "Settings");
  assert.equal(await page.getByLabel("Application name").inputValue(), "Ops Console Test");
  assert.equal(await page.getByLabel("Port", { exact: true }).inputValue(), String(port));

  // A rule refused by the server: its field is marked with the message.
  await page.getByRole("button", { name: "Add a rule" }).click();
  const row = page.locator("tr.rate-rule").last();
  await row.getByLabel("Label").fill("");
  await page.getByRole("button", { name: "Save settings" }).click();
  await row.locator('[aria-invalid="true"]').first().waitFor();
  assert.equal(await row.getByLabel("Label").getAttribute("aria-invalid"), "true");
  assert.ok(await row.locator(".field-error").count(), "the message is shown by the field");
  assert.equal((await api("GET", "/api/settings")).body.rateLimits.rules.length, 4, "nothing saved");
  await row.getByRole("button", { name: "Remove" }).click();
  assert.equal(await page.locator("tr.rate-rule").count(), 4);
  // The S3 test answers with the server's reason (S3 is off here).
  await page.getByRole("button", { name: "Test storage S3" }).click();
  await page.getByText(/S3 storage filesystem is not enabled/).waitFor();
  // A secret typed is sent, and never shown back.
  await page.getByLabel("Enabled").last().check();
  await page.getByLabel("Bucket").last().fill("keepd-backups");
  await page.getByLabel("Endpoint").last().fill("http://127.0.0.1:9");
  await page.getByLabel("Access key").last().fill("AK");
  await page.getByLabel("Secret").last().fill("backup-s3-secret");
  // No region: the nested error (backups.s3.region) is marked on its input.
  await page.getByRole("button", { name: "Save settings" }).click();
  const region = page.getByLabel("Region").last();
  await page.locator('[name="backups.s3.region"][aria-invalid="true"]').waitFor();
  assert.equal(await region.getAttribute("name"), "backups.s3.region");
  await region.fill("eu-west-1");
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Saved.", { exact: true }).waitFor();
  const b3 = (await api("GET", "/api/settings")).body.backups.s3;
  assert.equal(b3.bucket, "keepd-backups");
  assert.equal(b3.secret, undefined);
  // Saved again without typing it: accepted, so the stored secret was kept
  // (an enabled S3 needs one); the test then fails at the endpoint.
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Saved.", { exact: true }).waitFor();
  await page.getByRole("button", { name: "Test backups S3" }).click();
  await page.locator(".error-note", { hasText: "Failed to test the S3 filesystem" }).last().waitFor();
  // Off again (the backups below are local).
  await page.getByLabel("Enabled").last().uncheck();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Saved.", { exact: true }).waitFor();
  assert.deepEqual(page.errors, []);
});

test("mail: the test e-mail reaches the SMTP server", async () => {
  await open("settings", "Settings");
  await page.getByLabel("Recipient").fill("inbox@example.com");
  await page.getByLabel("Template").selectOption("password-reset");
  await page.getByRole("button", { name: "Send test e-mail" }).click();
  const mail = await until("the test e-mail", () => inbox.find((m) => m.to.includes("inbox@example.com")));
  assert.match(mail.raw, /^From: .*ops@acme\.test/m);
  assert.match(mail.raw, /^Subject: .*Reset your Ops Console Test password/m);
  await page.getByText("Sent to inbox@example.com.", { exact: true }).waitFor();
  // A refused address is the server's field error, shown.
  await page.getByLabel("Recipient").fill("not-an-address");
  await page.getByRole("button", { name: "Send test e-mail" }).click();
  await page.getByText("Must be a valid email address.").waitFor();
});

test("request log: a request made before appears, found with a filter, its details open", async () => {
  const marker = `opsmarker${Date.now()}`;
  const r = await fetch(`${srv.url}/api/collections/nosuch/records?${marker}=1`);
  assert.equal(r.status, 404);
  await open("logs", "Request log");
  await page.locator(".logs-chart svg rect").first().waitFor();
  await axe(page, "logs");
  await screenshot(page, "logs");
  // The path with the marker: the console's own /api/logs requests carry
  // the filter percent-encoded in their URL, so only the request matches.
  await page.getByLabel("Filter", { exact: true }).fill(`data.url ~ "/api/collections/nosuch/records?${marker}"`);
  await page.getByRole("button", { name: "Apply" }).click();
  const rows = page.locator(".log-list tbody tr");
  await until("one matching row", async () => (await rows.count()) === 1 && (await rows.first().textContent()).includes(marker));
  assert.match(await rows.first().textContent(), /GET.*404/);
  // The chart counts what the filter matches.
  await page.locator(".logs-chart figcaption").filter({ hasText: ": 1 in all, at most 1 in one hour." }).waitFor();
  assert.equal(await page.locator(".logs-chart svg rect").count(), 1);
  // A quick filter that excludes it.
  await page.getByLabel("Status").selectOption("2xx");
  await page.getByText("No request matches.").waitFor();
  await page.getByLabel("Status").selectOption("4xx");
  await until("the row again", async () => (await rows.count()) === 1 && (await rows.first().textContent()).includes(marker));
  await rows.first().getByRole("button", { name: /Details/ }).click();
  const dlg = page.getByRole("dialog", { name: "Request" });
  await dlg.waitFor();
  assert.match(await dlg.textContent(), new RegExp(`/api/collections/nosuch/records\\?${marker}=1`));
  await dlg.getByRole("button", { name: "Close" }).click();
  // What a client sends is shown as text: markup in a URL and a user agent
  // draws nothing and runs nothing.
  const xss = `<img src=x onerror="window.__xss=1">`;
  const r2 = await fetch(`${srv.url}/api/health?${marker}x=${encodeURIComponent("<script>window.__xss=2</script>")}`, { headers: { "user-agent": xss } });
  assert.equal(r2.status, 200);
  await page.getByLabel("Status").selectOption("");
  await page.getByLabel("Filter", { exact: true }).fill(`data.url ~ "/api/health?${marker}x"`);
  await page.getByRole("button", { name: "Apply" }).click();
  // The previous answer (one row too) stays until the new one replaces it.
  await until("the markup row", async () => (await rows.count()) === 1 && (await rows.first().textContent()).includes("/api/health"));
  await rows.first().getByRole("button", { name: /Details/ }).click();
  await dlg.waitFor();
  await dlg.getByText(xss, { exact: true }).waitFor();
  assert.equal(await page.locator(".ops-dialog img, .log-list img, .log-list script").count(), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await dlg.getByRole("button", { name: "Close" }).click();
  // A bad filter is the server's error, shown.
  await page.getByLabel("Filter", { exact: true }).fill("data.url ~");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.locator(".log-list .error-note").waitFor();
  // Clear: the request is gone.
  await page.getByLabel("Filter", { exact: true }).fill(`data.url ~ "/api/collections/nosuch/records?${marker}"`);
  await page.getByLabel("Status").selectOption("");
  await until("the row again", async () => (await rows.count()) === 1 && (await rows.first().textContent()).includes("nosuch"));
  await page.getByRole("button", { name: "Clear the log" }).click();
  await page.getByRole("dialog", { name: "Confirm" }).getByRole("button", { name: "Clear" }).click();
  await page.getByText("No request matches.").waitFor();
  const left = (await api("GET", `/api/logs?filter=${encodeURIComponent(`data.url ~ "${marker}"`)}`)).body;
  assert.ok(left.items.every((e) => e.data.url.startsWith("/api/logs")), JSON.stringify(left.items));
  assert.deepEqual(page.errors, []);
});

test("audit log: the settings change is listed, found by its action", async () => {
  await open("audit", "Audit log");
  await axe(page, "audit");
  await screenshot(page, "audit");
  await page.getByLabel("Action").fill("settings.update");
  await page.getByRole("button", { name: "Apply" }).click();
  const rows = page.locator(".audit-list tbody tr");
  // The unfiltered page is on screen until the filtered answer replaces it:
  // wait for rows that all match, not for any row.
  await until("only settings.update rows", async () => {
    const texts = await rows.allTextContents();
    return texts.length >= 1 && texts.every((t) => /settings\.update/.test(t));
  });
  assert.match(await rows.first().textContent(), /_superusers/);
  await page.getByLabel("Action").fill("no.such.action");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.getByText("No entry matches.").waitFor();
});

test("crons: the scheduled backup runs now", async () => {
  const before = (await api("GET", "/api/backups")).body.length;
  await open("crons", "Crons");
  await axe(page, "crons");
  await screenshot(page, "crons");
  await page.getByRole("cell", { name: "0 3 * * *", exact: true }).waitFor();
  await page.getByRole("button", { name: "Run now: Scheduled backup" }).click();
  await page.locator(".crons .status").filter({ hasText: "Started Scheduled backup." }).waitFor();
  await until("the scheduled backup", async () => (await api("GET", "/api/backups")).body.length > before, 20000);
});

test("backups: create, download, restore (keepd restarts with it)", async () => {
  await open("backups", "Backups");
  await page.getByLabel("Name (optional)").fill("ops_one.zip");
  await page.getByRole("button", { name: "Create a backup" }).click();
  await page.getByRole("cell", { name: "ops_one.zip", exact: true }).waitFor();
  await axe(page, "backups");
  await screenshot(page, "backups");
  const listed = (await api("GET", "/api/backups")).body.find((b) => b.key === "ops_one.zip");
  assert.ok(listed);

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download ops_one.zip" }).click()]);
  assert.equal(download.suggestedFilename(), "ops_one.zip");
  const bytes = readFileSync(await download.path());
  assert.equal(bytes.length, listed.size);
  assert.equal(bytes.subarray(0, 2).toString(), "PK");
  // The token went in the query of a fetch, never into the address bar.
  assert.doesNotMatch(page.url(), /token/);

  // The downloaded file uploaded again under another name.
  await page.getByLabel("Backup file (.zip)").setInputFiles({ name: "ops_up.zip", mimeType: "application/zip", buffer: bytes });
  await page.getByRole("button", { name: "Upload" }).click();
  await page.getByRole("cell", { name: "ops_up.zip", exact: true }).waitFor();
  assert.equal((await api("GET", "/api/backups")).body.find((b) => b.key === "ops_up.zip").size, bytes.length);
  // Not a backup: refused, with the server's reason.
  await page.getByLabel("Backup file (.zip)").setInputFiles({ name: "junk.zip", mimeType: "application/zip", buffer: Buffer.from("not a zip") });
  await page.getByRole("button", { name: "Upload" }).click();
  await page.locator(".backups .status .error-note").waitFor();
  assert.ok(!(await api("GET", "/api/backups")).body.some((b) => b.key === "junk.zip"));
  // Delete, confirmed.
  await page.getByRole("button", { name: "Delete ops_up.zip" }).click();
  await page.getByRole("dialog", { name: "Confirm" }).getByRole("button", { name: "Delete" }).click();
  await page.getByRole("cell", { name: "ops_up.zip", exact: true }).waitFor({ state: "detached" });
  assert.ok(!(await api("GET", "/api/backups")).body.some((b) => b.key === "ops_up.zip"));

  // A change after the backup, which the restore takes back.
  assert.equal((await api("PATCH", "/api/settings", { meta: { appName: "After The Backup" } })).status, 200);
  await page.getByRole("button", { name: "Restore ops_one.zip" }).click();
  const confirm = page.getByRole("dialog", { name: "Confirm" });
  await confirm.getByRole("button", { name: "Cancel" }).click();
  assert.equal((await api("GET", "/api/settings")).body.meta.appName, "After The Backup", "cancel restores nothing");
  await page.getByRole("button", { name: "Restore ops_one.zip" }).click();
  await confirm.getByRole("button", { name: "Restore" }).click();
  await page.locator(".backups .status").filter({ hasText: "keepd is restarting" }).waitFor();
  // keepd exits for its service manager to start it again (status 75).
  assert.equal(await srv.exited(), 75);
  await srv.restart();
  const api2 = await superuserApi(srv);
  assert.equal((await api2("GET", "/api/settings")).body.meta.appName, "Ops Console Test");
  const restored = (await api2("GET", "/api/audit?action=backup.restore")).body;
  assert.ok(restored.totalItems >= 1, JSON.stringify(restored));
  api = api2;
  // The console signs in again (the old token is still valid: same keys).
  await page.reload();
  await heading(page, "Backups");
  assert.deepEqual(page.errors, []);
});

test("auth records: a locked account unlocked; verify; impersonate shows a token", async () => {
  const mk = await api("POST", "/api/collections", {
    name: "members",
    type: "auth",
    fields: [],
    passwordAuth: { enabled: true, identityFields: ["email"] },
  });
  assert.equal(mk.status, 200, JSON.stringify(mk.body));
  const rec = await api("POST", "/api/collections/members/records", {
    email: "locked@example.com",
    password: "member-password-1",
    passwordConfirm: "member-password-1",
  });
  assert.equal(rec.status, 200, JSON.stringify(rec.body));
  const login = (password) =>
    fetch(`${srv.url}/api/collections/members/auth-with-password`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ identity: "locked@example.com", password }),
    });
  for (let i = 0; i < 3; i++) await login("wrong-password-1");
  assert.equal((await login("member-password-1")).status, 429, "locked after three failures");

  await open("authmgmt/members", "Auth records");
  await axe(page, "authmgmt");
  await screenshot(page, "authmgmt");
  const lockRow = page.locator(".lockouts tbody tr");
  assert.equal(await lockRow.count(), 1);
  assert.match(await lockRow.textContent(), new RegExp(rec.body.id));
  await page.getByRole("button", { name: `Unlock ${rec.body.id}` }).click();
  await page.getByText("No account is locked.").waitFor();
  assert.deepEqual((await api("GET", "/api/lockouts")).body, []);
  assert.equal((await login("member-password-1")).status, 200, "unlocked");
  const audit = (await api("GET", "/api/audit?action=unlock")).body;
  assert.equal(audit.items[0].target, `members/${rec.body.id}`);

  await page.getByRole("button", { name: "Verify locked@example.com" }).click();
  await until("verified", async () => (await api("GET", `/api/collections/members/records/${rec.body.id}`)).body.verified === true);

  await page.getByRole("button", { name: "Impersonate locked@example.com" }).click();
  const dlg = page.getByRole("dialog", { name: "Token for locked@example.com" });
  await dlg.waitFor();
  await axe(page, "authmgmt-impersonate");
  const token = await dlg.getByLabel("Auth token").inputValue();
  const me = await fetch(`${srv.url}/api/collections/members/auth-refresh`, { method: "POST", headers: { Authorization: token } });
  assert.equal(me.status, 200);
  assert.equal((await me.json()).record.id, rec.body.id);
  await dlg.getByRole("button", { name: "Close" }).click();

  // TOTP state: off, then on once the member enrols.
  const row = page.locator(".auth-records tbody tr", { hasText: "locked@example.com" });
  await row.getByText("off", { exact: true }).waitFor();
  const own = (path, body) =>
    fetch(`${srv.url}${path}`, { method: "POST", headers: { Authorization: token, "content-type": "application/json" }, body: JSON.stringify(body) }).then(async (r) => ({ status: r.status, body: await r.json() }));
  const en = await own("/api/collections/members/totp/enroll", {});
  assert.equal(en.status, 200, JSON.stringify(en.body));
  const conf = await own("/api/collections/members/totp/confirm", { code: totpCode(en.body.secret) });
  assert.equal(conf.status, 200, JSON.stringify(conf.body));
  await page.getByRole("button", { name: "Search" }).click();
  await row.getByText(`on (${conf.body.recoveryCodes.length} recovery codes left)`).waitFor();
  assert.deepEqual(page.errors, []);
});

test("sync: off on this keepd, and the screen says so", async () => {
  await open("sync", "Sync");
  await page.getByText("Sync is not configured on this keepd.").waitFor();
  await axe(page, "sync");
  await screenshot(page, "sync");
});

test("sync on a hub: status, a device created (its token shown once) and revoked", async () => {
  const hub = await startKeepd({ env: { KEEPD_SYNC_ROLE: "hub" } });
  try {
    const hubApi = await superuserApi(hub);
    const p = await openConsole(browser, hub);
    await signIn(p);
    await heading(p, "Collections");
    await p.evaluate(() => { location.hash = "#/sync"; });
    await heading(p, "Sync");
    await p.getByText("hub", { exact: true }).waitFor();
    await p.getByLabel("New device name").fill("field-unit-1");
    await p.getByRole("button", { name: "Create device" }).click();
    const dlg = p.getByRole("dialog", { name: /Device field-unit-1 created/ });
    await dlg.waitFor();
    const token = await dlg.getByLabel("Enrolment token").inputValue();
    assert.ok(token.length > 20, token);
    await axe(p, "sync-hub-token");
    await dlg.getByRole("button", { name: "Close" }).click();
    const devs = (await hubApi("GET", "/api/sync/devices")).body.items;
    assert.equal(devs.length, 1);
    assert.equal(devs[0].name, "field-unit-1");
    await p.getByRole("cell", { name: "field-unit-1", exact: true }).waitFor();
    await axe(p, "sync-hub");
    await screenshot(p, "sync-hub");
    await p.getByRole("button", { name: "Revoke field-unit-1" }).click();
    await p.getByRole("dialog", { name: "Confirm" }).getByRole("button", { name: "Revoke" }).click();
    await until("revoked", async () => (await hubApi("GET", "/api/sync/devices")).body.items[0].revoked !== "");
    await p.getByRole("button", { name: "Revoke field-unit-1" }).waitFor({ state: "detached" });
    assert.deepEqual(p.errors, []);
    await p.context().close();
  } finally {
    await hub.stop();
  }
});

test("keyboard only: a backup deleted with Tab, Enter and the dialog's keys; focus visible", async () => {
  assert.equal((await api("POST", "/api/backups", { name: "ops_kbd.zip" })).status, 204);
  await open("backups", "Backups");
  await page.getByRole("cell", { name: "ops_kbd.zip", exact: true }).waitFor();
  const focused = () => page.evaluate(() => document.activeElement && (document.activeElement.getAttribute("aria-label") || document.activeElement.textContent));
  const tabTo = async (name) => {
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press("Tab");
      if ((await focused()) === name) return;
    }
    throw new Error(`${name} not reached by Tab`);
  };
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  await tabTo("Delete ops_kbd.zip");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "the focused button shows its focus");
  await page.keyboard.press("Enter");
  const dlg = page.getByRole("dialog", { name: "Confirm" });
  await dlg.waitFor();
  assert.equal(await focused(), "Cancel", "the dialog opens on its safe choice");
  await page.keyboard.press("Escape");
  await dlg.waitFor({ state: "detached" });
  assert.ok((await api("GET", "/api/backups")).body.some((b) => b.key === "ops_kbd.zip"), "Escape deletes nothing");
  await tabTo("Delete ops_kbd.zip");
  await page.keyboard.press("Enter");
  await dlg.waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "Delete");
  await page.keyboard.press("Enter");
  await page.getByRole("cell", { name: "ops_kbd.zip", exact: true }).waitFor({ state: "detached" });
  assert.ok(!(await api("GET", "/api/backups")).body.some((b) => b.key === "ops_kbd.zip"));
  assert.deepEqual(page.errors, []);
});
