// Test harness: starts a fresh server (PocketBase or keepd, whatever KEEPD_BIN
// points at) on a free loopback port with an empty data dir.
//
//   BIN superuser upsert EMAIL PASSWORD --dir DIR
//   BIN serve --http 127.0.0.1:PORT --dir DIR
//
// Readiness: GET /api/health answers 200.

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import PocketBase, { ClientResponseError } from "pocketbase";
import assert from "node:assert/strict";

export { PocketBase, ClientResponseError };

const READY_TIMEOUT_MS = 20_000;
const running = new Set();

function killAll() {
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
  running.clear();
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start a server. Returns {url, superuserEmail, superuserPassword, dir, stop()}.
 */
export async function startServer() {
  let bin = process.env.KEEPD_BIN;
  if (!bin) {
    throw new Error("KEEPD_BIN must point at the server binary (keepd or pocketbase)");
  }
  // the child runs in its own cwd, so make a relative path absolute
  if (bin.includes("/")) bin = resolve(bin);
  // The data dir is nested inside a private root: PocketBase puts its default
  // pb_migrations/ (auto-migrations) and pb_hooks/ next to the data dir, i.e.
  // in DIR/.., so a bare temp dir would leak migrations into the shared tmpdir.
  const root = mkdtempSync(join(tmpdir(), "keepd-sdk-"));
  const dir = join(root, "pb_data");
  mkdirSync(dir, { mode: 0o700 });
  const superuserEmail = "admin@example.com";
  const superuserPassword = "admin-password-123";

  const up = spawnSync(bin, ["superuser", "upsert", superuserEmail, superuserPassword, "--dir", dir], {
    cwd: root,
    encoding: "utf8",
    timeout: READY_TIMEOUT_MS,
  });
  if (up.status !== 0) {
    rmSync(root, { recursive: true, force: true });
    throw new Error(`superuser upsert failed (status ${up.status}): ${up.stdout}\n${up.stderr}\n${up.error ?? ""}`);
  }

  const server = await serve(bin, root, dir);
  return { ...server, superuserEmail, superuserPassword };
}

/**
 * Serve an existing data dir with `bin` (keepd or PocketBase) on a free
 * loopback port; `root` is the private directory around it, removed by
 * stop() unless `keep` is set. Returns {url, dir, stop(), output()}.
 */
export async function serve(bin, root, dir, { keep = false } = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ["serve", "--http", `127.0.0.1:${port}`, "--dir", dir], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  const collect = (chunk) => {
    output += chunk;
    if (output.length > 20_000) output = output.slice(-20_000);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      running.delete(child);
      resolve();
    });
  });

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let ready = false;
  while (Date.now() < deadline && !exited) {
    try {
      const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) {
        ready = true;
        break;
      }
    } catch {}
    await sleep(100);
  }
  if (!ready) {
    child.kill("SIGKILL");
    await exitPromise;
    if (!keep) rmSync(root, { recursive: true, force: true });
    throw new Error(`server not ready within ${READY_TIMEOUT_MS}ms (exit: ${JSON.stringify(exited)}):\n${output}`);
  }

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitPromise;
      clearTimeout(t);
    }
    if (!keep) rmSync(root, { recursive: true, force: true });
  }

  return { url, dir, stop, output: () => output };
}

/** A fresh SDK client (no auto-cancellation, so parallel requests are fine). */
export function client(server) {
  const pb = new PocketBase(server.url);
  pb.autoCancellation(false);
  return pb;
}

/** A fresh SDK client authenticated as the superuser. */
export async function superuserClient(server) {
  const pb = client(server);
  await pb.collection("_superusers").authWithPassword(server.superuserEmail, server.superuserPassword);
  return pb;
}

let seq = 0;
/** A collection/record-friendly unique name with a prefix. */
export function uniq(prefix = "c") {
  seq += 1;
  return `${prefix}_${Date.now().toString(36)}${seq}`;
}

/**
 * Await a promise that must reject with a ClientResponseError; returns the error
 * after checking its status and the generic {status, message, data} shape.
 */
export async function expectError(promise, status) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a ${status} error, but the request succeeded`);
  assert.ok(err instanceof ClientResponseError, `expected ClientResponseError, got ${err}`);
  assert.equal(err.status, status, `status; response=${JSON.stringify(err.response)}`);
  assert.equal(err.response.status, status);
  assert.equal(typeof err.response.message, "string");
  assert.ok(err.response.message.length > 0);
  assert.equal(typeof err.response.data, "object");
  assert.notEqual(err.response.data, null);
  return err;
}
