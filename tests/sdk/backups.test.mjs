// pb.backups through the JS SDK: create, list, download with a superuser
// file token, delete. (Restore is covered in tests/rust/backups.rs: keepd
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
});
