// Test harness: starts a fresh server (PocketBase or keepd, whatever KEEPD_BIN
// points at) on a free loopback port with an empty data dir.
//
//   BIN superuser upsert EMAIL PASSWORD --dir DIR
//   BIN serve --http 127.0.0.1:PORT --dir DIR
//
// Readiness: GET /api/health answers 200. The processes are run by
// tests/lib/server.mjs, shared with the browser and dashboard suites.

import PocketBase, { ClientResponseError } from "pocketbase";
import assert from "node:assert/strict";
import { startServer as start, serve as serveDir, SUPERUSER } from "../lib/server.mjs";

export { PocketBase, ClientResponseError };

/**
 * Start a server. Returns {url, superuserEmail, superuserPassword, dir, stop()}.
 */
export async function startServer() {
  let bin = process.env.KEEPD_BIN;
  if (!bin) {
    throw new Error("KEEPD_BIN must point at the server binary (keepd or pocketbase)");
  }
  const server = await start(bin, { name: "sdk" });
  return { ...server, superuserEmail: SUPERUSER.email, superuserPassword: SUPERUSER.password };
}

/**
 * Serve an existing data dir with `bin` (keepd or PocketBase) on a free
 * loopback port; `root` is the private directory around it, removed by
 * stop() unless `keep` is set. Returns {url, dir, stop(), output()}.
 */
export function serve(bin, root, dir, { keep = false } = {}) {
  return serveDir(bin, root, dir, { keep, name: "sdk" });
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
