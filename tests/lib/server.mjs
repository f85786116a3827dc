// The one way the JavaScript suites (tests/sdk, tests/browser, tests/pbdash)
// run a server under test: keepd or the reference PocketBase, on a free
// loopback port, serving a data dir nested in a private temp root
// (PocketBase writes pb_migrations/ and pb_hooks/ next to its data dir, so a
// bare temp dir would leak them into the shared tmpdir).
//
//   BIN superuser upsert EMAIL PASSWORD --dir DIR
//   BIN serve --http 127.0.0.1:PORT --dir DIR
//
// Readiness: GET /api/health answers 200. Every child is killed when the
// test process exits. No npm dependency: each suite imports it as it is.

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const READY_TIMEOUT_MS = 20_000;
export const SUPERUSER = { email: "admin@example.com", password: "admin-password-123" };

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

// The child runs in its own cwd: a relative path is made absolute; a bare
// name is left to the PATH.
const absolute = (bin) => (bin.includes("/") ? resolve(bin) : bin);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A loopback port free at the time of asking. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/**
 * The environment of a hermetic keepd: nothing inherited that starts with
 * KEEPD_ (the caller's shell cannot change a test), no /etc config, fast
 * password hashing; `extra` on top.
 */
export function keepdEnv(extra = {}) {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPD_"))),
    KEEPD_NO_ETC: "1",
    KEEPD_ARGON2_MEMORY_KIB: "8192",
    KEEPD_ARGON2_ITERATIONS: "1",
    KEEPD_LOG: "warn",
    ...extra,
  };
}

/**
 * A fresh private root with an empty data dir and, unless `superuser` is
 * null, that superuser upserted. Returns {root, dir, run(args)}; run() runs
 * `bin ARGS --dir DIR` and returns its stdout, throwing on a failure.
 */
export function makeDataDir(bin, { name = "server", env = process.env, superuser = SUPERUSER } = {}) {
  bin = absolute(bin);
  const root = mkdtempSync(join(tmpdir(), `keepd-${name}-`));
  const dir = join(root, "pb_data");
  mkdirSync(dir, { mode: 0o700 });
  const run = (args) => {
    const r = spawnSync(bin, [...args, "--dir", dir], { cwd: root, env, encoding: "utf8", timeout: READY_TIMEOUT_MS });
    if (r.status !== 0) {
      throw new Error(`${name}: ${args.join(" ")} failed (status ${r.status}): ${r.stdout}\n${r.stderr}\n${r.error ?? ""}`);
    }
    return r.stdout;
  };
  if (superuser) {
    try {
      run(["superuser", "upsert", superuser.email, superuser.password]);
    } catch (e) {
      rmSync(root, { recursive: true, force: true });
      throw e;
    }
  }
  return { root, dir, run };
}

/**
 * Serve the data dir `dir` (inside the private `root`) with `bin` on a free
 * loopback port. Options: `env` (the child's whole environment; default
 * this process's), `keep` (leave `root` in place on stop), `restartOn75`
 * (keepd ends a staged backup restore with status 75 for its service
 * manager — systemd's Restart=on-failure — to start it again on the
 * restored data: play that part, up to three times), `name` (in messages).
 * Returns {url, port, root, dir, output(), restarts(), exited(), restart(), stop()}:
 * exited() is a promise of the exit code of the current process;
 * restart() stops it and serves the same dir on the same port again.
 */
export async function serve(bin, root, dir, { env = process.env, keep = false, restartOn75 = false, name = "server" } = {}) {
  bin = absolute(bin);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = "";
  const collect = (chunk) => {
    output += chunk;
    if (output.length > 50_000) output = output.slice(-50_000);
  };
  let child;
  let exited = null;
  let exitPromise;
  let stopping = false;
  let restarts = 0;

  const launch = () => {
    exited = null;
    child = spawn(bin, ["serve", "--http", `127.0.0.1:${port}`, "--dir", dir], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    exitPromise = new Promise((r) =>
      child.on("exit", (code, signal) => {
        exited = { code, signal };
        running.delete(child);
        if (restartOn75 && code === 75 && !stopping && restarts < 3) {
          restarts += 1;
          collect(`\n[tests] exit 75: restarting ${name}\n`);
          launch();
        }
        r(code);
      }),
    );
  };

  const ready = async () => {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline && !exited) {
      try {
        const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return true;
      } catch {}
      await sleep(100);
    }
    return false;
  };

  const halt = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitPromise;
      clearTimeout(t);
    }
  };

  launch();
  if (!(await ready())) {
    child.kill("SIGKILL");
    await exitPromise;
    if (!keep) rmSync(root, { recursive: true, force: true });
    throw new Error(`${name} not ready within ${READY_TIMEOUT_MS}ms (exit: ${JSON.stringify(exited)}):\n${output}`);
  }

  let stopped = false;
  return {
    url,
    port,
    root,
    dir,
    output: () => output,
    restarts: () => restarts,
    exited: () => exitPromise,
    async restart() {
      stopping = true;
      await halt();
      stopping = false;
      launch();
      if (!(await ready())) throw new Error(`${name} did not start again:\n${output}`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      stopping = true;
      await halt();
      if (!keep) rmSync(root, { recursive: true, force: true });
    },
  };
}

/** makeDataDir + serve: a fresh server with a superuser. Adds run(args). */
export async function startServer(bin, { name = "server", env = process.env, superuser = SUPERUSER, restartOn75 = false } = {}) {
  const { root, dir, run } = makeDataDir(bin, { name, env, superuser });
  const srv = await serve(bin, root, dir, { env, restartOn75, name });
  return { ...srv, run };
}
