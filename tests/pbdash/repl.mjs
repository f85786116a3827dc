import { chromium } from "playwright-core";
import { startBackend, fetchDashboard, startFront, SUPERUSER } from "./servers.mjs";
import http from "node:http";
const bin = process.argv[2] || "../compat/.venv/bin/pocketbase";
const pb = await startBackend("../compat/.venv/bin/pocketbase", "pocketbase");
const cache = "/tmp/pbexp/cache";
await fetchDashboard(pb.url, cache);
const be = bin.includes("keepd") ? await startBackend(bin, "keepd") : pb;
const front = await startFront({ cacheDir: cache, backendUrl: be.url, fillFrom: pb.url, misses: new Set() });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox","--disable-gpu","--disable-quic"] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const log = [];
page.on("response", r => log.push(`${r.status()} ${r.request().method()} ${r.url().replace(front.url,"")}`));
page.on("requestfailed", r => log.push(`FAILED ${r.failure()?.errorText} ${r.request?.method?.()} ${r.url()}`));
page.on("dialog", d => { log.push("DIALOG " + d.message()); d.accept(); });
await page.goto(front.url + "/_/");
await page.fill("#login_identity", SUPERUSER.email);
await page.fill("#login_pass", SUPERUSER.password);
await page.click("form[data-pb=authWithPasswordForm] button.next");
await page.waitForTimeout(1000);
const F = front.url;
http.createServer(async (req, res) => {
  let body = ""; for await (const c of req) body += c;
  log.length = 0;
  let out;
  try { out = await eval(`(async () => { ${body} })()`); } catch (e) { out = "ERR " + e.message; }
  res.end(JSON.stringify(out, null, 1) + "\n--net--\n" + log.filter(l => !l.includes("/_/")).join("\n") + "\n");
}).listen(18999, "127.0.0.1");
console.log("ready", front.url, be.url);
