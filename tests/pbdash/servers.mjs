// The processes the dashboard test runs: a backend (PocketBase or keepd) on
// an ephemeral loopback port with a fresh data dir, the dashboard's assets
// fetched from the reference PocketBase, and a small front server that
// serves those assets under /_/ and proxies /api/ to the backend.

import { mkdirSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import http from "node:http";
import { dirname, join, posix } from "node:path";
import { startServer, SUPERUSER } from "../lib/server.mjs";

export { SUPERUSER };

/**
 * Start `bin` (keepd or pocketbase) with a superuser in a fresh data dir
 * (tests/lib/server.mjs). keepd's exit 75 after a staged backup restore is
 * answered by starting it again, as its service manager would; PocketBase
 * re-executes itself.
 */
export async function startBackend(bin, name, env = {}) {
  const srv = await startServer(bin, { name: `pbdash-${name}`, env: { ...process.env, ...env }, restartOn75: true });
  return { ...srv, name };
}

// ---------------------------------------------------------------------------
// The dashboard's assets, fetched from a running PocketBase into `cacheDir`.

const REF_PATTERNS = [
  // HTML src/href attributes and JS/CSS string literals naming a relative asset
  /(?:src|href)="(\.\/[^"#?]+)"/g,
  /["'`](\.\.?\/[A-Za-z0-9_@./-]+\.(?:js|css|svg|png|jpg|ico|woff2?|ttf|json|html))["'`]/g,
  /url\((?:["']?)(\.\.?\/[^)"'?#]+)/g,
  // absolute dashboard URLs built in JS, e.g. `/_/extensions.js`
  /["'`]\/_\/([A-Za-z0-9_@./-]+\.(?:js|css|svg|png))["'`]/g,
];

/**
 * Fetch PocketBase's `/_/` index and, transitively, every asset its HTML, JS
 * and CSS name. Returns the set of cached paths (relative to /_/).
 */
export async function fetchDashboard(pbUrl, cacheDir) {
  const seen = new Set();
  const queue = ["index.html"];
  while (queue.length) {
    const rel = queue.shift();
    if (seen.has(rel)) continue;
    seen.add(rel);
    const res = await fetch(`${pbUrl}/_/${rel === "index.html" ? "" : rel}`);
    if (res.status !== 200) {
      if (rel === "index.html") throw new Error(`PocketBase /_/ answered ${res.status}`);
      // A literal that only looks like an asset path (e.g. in a code sample).
      seen.delete(rel);
      continue;
    }
    const body = Buffer.from(await res.arrayBuffer());
    const file = join(cacheDir, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, body);
    if (/\.(html|js|css)$/.test(rel)) {
      const text = body.toString("utf8");
      const base = posix.dirname(rel);
      for (const re of REF_PATTERNS) {
        for (const m of text.matchAll(re)) {
          // JS chunks import each other relative to their own folder, CSS
          // too; a JS literal may also name a URL relative to the page (/_/).
          const targets = [posix.normalize(posix.join(base, m[1]))];
          if (rel.endsWith(".js")) targets.push(posix.normalize(m[1]));
          for (const target of targets) {
            if (!target.startsWith("..") && !seen.has(target)) queue.push(target);
          }
        }
      }
    }
  }
  return seen;
}

const TYPES = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  ico: "image/x-icon",
  woff2: "font/woff2",
  woff: "font/woff",
  json: "application/json",
};

/**
 * The front server: `/_/…` from `cacheDir` (on a miss, and only when
 * `fillFrom` is set, fetched once from that PocketBase and kept: TinyMCE
 * loads its plugins and skins by computed names no static scan finds), all
 * else proxied to `backendUrl`, streamed both ways (SSE, multipart uploads,
 * backup downloads).
 */
export async function startFront({ cacheDir, backendUrl, fillFrom = null, misses }) {
  const backend = new URL(backendUrl);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/_" || url.pathname.startsWith("/_/")) {
      if (url.pathname === "/_") {
        res.writeHead(301, { location: "/_/" }).end();
        return;
      }
      let rel = decodeURIComponent(url.pathname.slice(3)) || "index.html";
      rel = posix.normalize(rel);
      if (rel.startsWith("..")) {
        res.writeHead(400).end();
        return;
      }
      const file = join(cacheDir, rel);
      if (!existsSync(file) && fillFrom) {
        const up = await fetch(`${fillFrom}/_/${rel}`);
        if (up.status === 200) {
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, Buffer.from(await up.arrayBuffer()));
          misses?.add(rel);
        }
      }
      if (!existsSync(file)) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not in the fetched dashboard");
        return;
      }
      const ext = rel.split(".").pop();
      res.writeHead(200, {
        "content-type": TYPES[ext] ?? "application/octet-stream",
        "cache-control": "no-store",
      });
      res.end(readFileSync(file));
      return;
    }
    const headers = { ...req.headers, host: backend.host };
    const up = http.request(
      { host: backend.hostname, port: backend.port, method: req.method, path: req.url, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.rawHeaders);
        res.flushHeaders();
        upRes.pipe(res);
      },
    );
    up.on("error", (e) => {
      // Marked, so that the test can tell the backend being down (e.g.
      // restarting after a backup restore) from an answer of the backend.
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain", "x-pbdash-backend-down": "1" });
      res.end(String(e));
    });
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  server.on("connection", (s) => s.setNoDelay(true));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
