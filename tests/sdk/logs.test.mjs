// pb.logs, pb.crons and pb.settings.testEmail through the JS SDK: the
// request log (list, filter, sort, one entry, hourly stats), the cron jobs
// (the scheduled backup listed and run), and a test e-mail received by a
// real SMTP server started here (npm smtp-server). PocketBase writes its
// logs in batches: the log is polled until the request shows.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { SMTPServer } from "smtp-server";
import { startServer, superuserClient, client, expectError, uniq } from "./harness.mjs";

let server;
let su;
let smtp;
const inbox = [];

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
        inbox.push({ to: session.envelope.rcptTo.map((r) => r.address.toLowerCase()), raw });
        cb();
      });
    },
  });
  await new Promise((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  process.env.KEEPD_BACKUP_ENCRYPTION = "none";
  server = await startServer();
  su = await superuserClient(server);
});
after(async () => {
  delete process.env.KEEPD_BACKUP_ENCRYPTION;
  await server?.stop();
  await new Promise((r) => smtp?.close(r));
});

async function until(what, fn, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("logs", () => {
  test("a request shows in the log without its token; list, filter, sort, one, stats", async () => {
    const marker = uniq("logmark");
    const res = await fetch(`${server.url}/api/health?${marker}=1&token=sdk-secret-value`, {
      headers: { "user-agent": "sdk-logs-test", referer: "http://ref.test/page" },
    });
    assert.equal(res.status, 200);
    // (The log's own requests carry the filter, percent-encoded.)
    const filter = `data.url ~ '/api/health?${marker}'`;
    const list = await until("the request in the log", async () => {
      const l = await su.logs.getList(1, 10, { filter });
      return l.items.length ? l : null;
    });
    assert.equal(list.totalItems, 1);
    assert.equal(list.page, 1);
    assert.equal(list.perPage, 10);
    const e = list.items[0];
    assert.match(e.id, /^[a-z0-9]{15}$/);
    assert.match(e.created, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    assert.equal(e.level, 0);
    assert.equal(e.data.type, "request");
    assert.equal(e.data.method, "GET");
    assert.equal(e.data.status, 200);
    assert.equal(e.data.auth, "");
    assert.equal(e.data.userAgent, "sdk-logs-test");
    assert.equal(e.data.referer, "http://ref.test/page");
    assert.equal(e.data.userIP, "127.0.0.1");
    assert.equal(typeof e.data.execTime, "number");
    assert.ok(e.data.url.startsWith("/api/health?"), e.data.url);
    assert.equal(e.message, `GET ${e.data.url}`);
    // keepd keeps no credential in the log (PocketBase keeps the URL as sent).
    if (!/pocketbase/.test(process.env.KEEPD_BIN)) {
      assert.ok(!JSON.stringify(e).includes("sdk-secret-value"), JSON.stringify(e));
    }
    // One entry by id.
    const one = await su.logs.getOne(e.id);
    assert.deepEqual(one, e);
    await expectError(su.logs.getOne("nope0000000000x"), 404);
    // A failed request is logged at a higher level; filters combine.
    await expectError(client(server).collections.getFullList(), 401);
    const failed = await until("the 401 in the log", async () => {
      const l = await su.logs.getList(1, 5, { filter: "data.status = 401 && data.url ~ '/api/collections'" });
      return l.items.length ? l : null;
    });
    assert.ok(failed.items.every((x) => x.data.status === 401 && x.level > 0));
    // Sorted newest first.
    const sorted = await su.logs.getList(1, 50, { sort: "-created" });
    const times = sorted.items.map((x) => x.created);
    assert.deepEqual(times, [...times].sort().reverse());
    // Unsorted: oldest first; `-@rowid`: the order logged, newest first.
    const plain = (await su.logs.getList(1, 50)).items.map((x) => x.created);
    assert.deepEqual(plain, [...plain].sort());
    const byRow = (await su.logs.getList(1, 50, { sort: "-@rowid" })).items.map((x) => x.created);
    assert.deepEqual(byRow, [...byRow].sort().reverse());
    // Requests per hour.
    const stats = await su.logs.getStats();
    assert.ok(stats.length >= 1, JSON.stringify(stats));
    assert.match(stats[0].date, /^\d{4}-\d{2}-\d{2} \d{2}:00:00\.000Z$/);
    assert.ok(stats.reduce((n, s) => n + s.total, 0) >= 2);
    const only = await su.logs.getStats({ filter });
    assert.equal(only.reduce((n, s) => n + s.total, 0), 1);
    // A filter that doesn't parse.
    await expectError(su.logs.getList(1, 1, { filter: "bad~~" }), 400);
    // Superusers only.
    await expectError(client(server).logs.getList(), 401);
    await expectError(client(server).logs.getStats(), 401);
  });
});

describe("crons", () => {
  test("the scheduled backup is a job; it runs on request", async () => {
    await su.settings.update({ backups: { cron: "0 3 * * *", cronMaxKeep: 3 } });
    const jobs = await su.crons.getFullList();
    const job = jobs.find((j) => j.id === "__pbAutoBackup__");
    assert.deepEqual(job, { id: "__pbAutoBackup__", expression: "0 3 * * *" });
    await expectError(su.crons.run("__nope__"), 404);
    await expectError(client(server).crons.getFullList(), 401);
    await expectError(client(server).crons.run("__pbAutoBackup__"), 401);
    assert.equal(await su.crons.run("__pbAutoBackup__"), true);
    await until("the scheduled backup", async () =>
      (await su.backups.getFullList()).some((b) => b.key.startsWith("@auto_pb_backup_")),
    );
    // Without the setting, no job.
    await su.settings.update({ backups: { cron: "" } });
    assert.ok(!(await su.crons.getFullList()).some((j) => j.id === "__pbAutoBackup__"));
  });
});

describe("test email", () => {
  test("validation as PocketBase's; a template received by the mail server", async () => {
    let err = await expectError(su.settings.testEmail("", "", ""), 400);
    assert.deepEqual(Object.keys(err.response.data).sort(), ["email", "template"]);
    assert.equal(err.response.data.email.code, "validation_required");
    assert.equal(err.response.message, "Failed to send the test email.");
    err = await expectError(su.settings.testEmail("", "x", "bad"), 400);
    assert.equal(err.response.data.email.code, "validation_is_email");
    assert.equal(err.response.data.template.code, "validation_in_invalid");
    err = await expectError(su.settings.testEmail("nope", "a@example.com", "verification"), 400);
    assert.equal(err.response.data.collection.code, "validation_invalid_auth_collection");
    await expectError(client(server).settings.testEmail("", "a@example.com", "verification"), 401);

    const port = smtp.server.address().port;
    await su.settings.update({
      meta: { appName: "Acme", senderName: "Acme", senderAddress: "noreply@acme.test" },
      smtp: { enabled: true, host: "127.0.0.1", port, tls: false, username: "", password: "" },
    });
    for (const template of ["verification", "password-reset", "email-change", "otp", "login-alert"]) {
      const to = `${uniq("t")}@example.com`;
      assert.equal(await su.settings.testEmail("users", to, template), true);
      const got = inbox.find((m) => m.to.includes(to));
      assert.ok(got, `${template}: no mail to ${to}`);
      assert.match(got.raw, /^subject: .+$/im);
    }
  });
});
