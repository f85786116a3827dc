// pb.backups through the JS SDK: create, list, download with a superuser
// file token, upload, delete; the schedule's settings. (Restore is covered in tests/rust/backups.rs: keepd
// exits for its service manager to restart it, PocketBase re-executes
// itself.) keepd encrypts backups with age; plaintext here is the explicit
// `backup_encryption = "none"` choice (PocketBase ignores the variable).

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, superuserClient, client, expectError } from "./harness.mjs";

let server;
let su;

before(async () => {
  process.env.KEEPD_BACKUP_ENCRYPTION = "none";
  server = await startServer();
  su = await superuserClient(server);
});
after(async () => {
  delete process.env.KEEPD_BACKUP_ENCRYPTION;
  await server?.stop();
});

describe("backups", () => {
  test("create, list, download, delete", async () => {
    assert.equal(await su.backups.create("sdk_one.zip"), true);
    const list = await su.backups.getFullList();
    const b = list.find((x) => x.key === "sdk_one.zip");
    assert.ok(b, JSON.stringify(list));
    assert.ok(b.size > 0);
    assert.match(b.modified, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const token = await su.files.getToken();
    const res = await fetch(su.backups.getDownloadURL(token, "sdk_one.zip"));
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body.length, b.size);
    assert.equal(body.subarray(0, 2).toString(), "PK");
    // Only superusers.
    await expectError(client(server).backups.getFullList(), 401);
    const bad = await expectError(su.backups.create("Not Valid"), 400);
    assert.ok(bad.response.data.name, JSON.stringify(bad.response));
    assert.equal(await su.backups.delete("sdk_one.zip"), true);
    assert.ok(!(await su.backups.getFullList()).some((x) => x.key === "sdk_one.zip"));
  });

  test("upload", async () => {
    assert.equal(await su.backups.create("sdk_src.zip"), true);
    const token = await su.files.getToken();
    const res = await fetch(su.backups.getDownloadURL(token, "sdk_src.zip"));
    const body = Buffer.from(await res.arrayBuffer());
    // A named file (a Blob with a name), as an object or as FormData.
    assert.equal(await su.backups.upload({ file: new File([body], "sdk_up.zip") }), true);
    const fd = new FormData();
    fd.append("file", new Blob([body]), "sdk_fd.zip");
    assert.equal(await su.backups.upload(fd), true);
    const list = await su.backups.getFullList();
    for (const key of ["sdk_up.zip", "sdk_fd.zip"]) {
      const b = list.find((x) => x.key === key);
      assert.ok(b, `${key}: ${JSON.stringify(list)}`);
      assert.equal(b.size, body.length);
    }
    const back = await fetch(su.backups.getDownloadURL(await su.files.getToken(), "sdk_up.zip"));
    assert.ok(Buffer.from(await back.arrayBuffer()).equals(body));
    // Refused in PocketBase's shape: the name taken, not a zip, no file.
    let err = await expectError(su.backups.upload({ file: new File([body], "sdk_up.zip") }), 400);
    assert.equal(err.response.data.file?.code, "validation_backup_name_exists", JSON.stringify(err.response));
    err = await expectError(su.backups.upload({ file: new File(["plain text"], "notes.zip") }), 400);
    assert.equal(err.response.data.file?.code, "validation_invalid_mime_type", JSON.stringify(err.response));
    err = await expectError(su.backups.upload({}), 400);
    assert.equal(err.response.data.file?.code, "validation_required", JSON.stringify(err.response));
    await expectError(client(server).backups.upload({ file: new File([body], "guest.zip") }), 401);
    for (const key of ["sdk_src.zip", "sdk_up.zip", "sdk_fd.zip"]) {
      assert.equal(await su.backups.delete(key), true);
    }
  });

  test("the schedule is validated as PocketBase validates it", async () => {
    let err = await expectError(su.settings.update({ backups: { cron: "61 * * * *", cronMaxKeep: 1 } }), 400);
    assert.equal(err.response.data.backups?.cron?.code, "validation_invalid_cron", JSON.stringify(err.response));
    err = await expectError(su.settings.update({ backups: { cron: "@daily", cronMaxKeep: 0 } }), 400);
    assert.equal(err.response.data.backups?.cronMaxKeep?.code, "validation_required", JSON.stringify(err.response));
    const s = await su.settings.update({ backups: { cron: "0 3 * * *", cronMaxKeep: 7 } });
    assert.equal(s.backups.cron, "0 3 * * *");
    assert.equal(s.backups.cronMaxKeep, 7);
    await su.settings.update({ backups: { cron: "" } });
  });
});
