// PocketBase's own dashboard as a second real client of keepd.
//
// The dashboard (PocketBase 0.40.6's `/_/`) is fetched at test time from the
// reference binary (tests/compat/.venv/bin/pocketbase); nothing of it is
// kept in this repository. A small front server serves those assets under
// /_/ and proxies everything else to a backend. The same steps run twice in
// headless Chromium, first with PocketBase itself as the backend, then with
// keepd; every network response the page sees is recorded, and a request
// that fails against keepd (status >= 400 or a network error) must fail the
// same way against PocketBase, unless it is one of the deliberate
// differences allow-listed below.
//
//   KEEPD_BIN      keepd binary (default target/debug/keepd)
//   PB_BIN         reference PocketBase (default tests/compat/.venv/bin/pocketbase)
//   CHROMIUM       browser (default /usr/bin/chromium)
//   PBDASH_ONLY    "pocketbase" or "keepd": run one pass only (no comparison)
//
// Screenshots of each step: tests/pbdash/artifacts/<backend>/NN-step.png,
// with the backend's log beside them (server.log).

import { chromium } from "playwright-core";
import { SMTPServer } from "smtp-server";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startBackend, fetchDashboard, startFront, SUPERUSER } from "./servers.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "../..");
const KEEPD_BIN = process.env.KEEPD_BIN || join(ROOT, "target/debug/keepd");
const PB_BIN = process.env.PB_BIN || join(ROOT, "tests/compat/.venv/bin/pocketbase");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = join(HERE, "artifacts");
const STEP_TIMEOUT_MS = 20_000;

// Requests keepd answers with an error on purpose (or not yet), each naming
// the COMPATIBILITY.md row or open work behind it. `method` and `path` match
// the normalised request (see normalise()).
const ALLOWED_KEEPD_FAILURES = [
  {
    // COMPATIBILITY.md, deliberate differences, row "SQL console": keepd
    // never executes request text as SQL, so the dashboard's SQL console
    // (Settings → SQL console, `POST /api/sql`) gets a 404.
    method: "POST",
    path: /^\/api\/sql$/,
    why: "SQL console (COMPATIBILITY.md: deliberate, no request text is executed as SQL)",
  },
];

/** A request's path with ids, file names and backup keys replaced, query dropped. */
function normalise(rawUrl) {
  const u = new URL(rawUrl);
  return u.pathname
    .replace(/^\/api\/files\/[^/]+\/[^/]+\/[^/]+$/, "/api/files/{collection}/{record}/{file}")
    .replace(/^(\/api\/backups\/)[^/]+/, "$1{key}")
    .replace(/^(\/api\/logs\/)(?!stats$)[^/]+$/, "$1{id}")
    .replace(/^(\/api\/crons\/)[^/]+$/, "$1{id}")
    .replace(/^(\/api\/collections\/[^/]+\/(?:records|impersonate)\/)[^/]+/, "$1{id}")
    .replace(/^(\/api\/collections\/)(?:pbc_\d+|_pb_users_auth_)(?=\/|$)/, "$1{collectionId}");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- the steps --------------------------------------------------------------
// Each takes ({page, front, smtp}) and throws when the dashboard did not get
// where it should. They use only the dashboard's UI (hash links are the
// dashboard's own navigation).

const modal = (page, pb) => page.locator(`.modal[data-pb=${pb}][data-modal-state=open]`);
const topModal = (page) => page.locator(".modal[data-modal-state=open]").last();

async function toastSuccess(page, text) {
  await page.locator(".toast.success", { hasText: text }).first().waitFor({ timeout: STEP_TIMEOUT_MS });
}

// The network gone quiet, as far as it does within a few seconds (the
// dashboard may poll); what a step needs is then awaited explicitly.
async function settle(page) {
  await page.waitForLoadState("networkidle", { timeout: 3000 }).catch(() => {});
}

// Submits the search form an editor is in. (Enter may be taken by the
// editor's autocomplete list when it happens to be open.)
async function submitSearch(editor) {
  await editor.evaluate((e) => e.closest("form").requestSubmit());
}

async function go(page, hash) {
  await page.evaluate((h) => (location.hash = h), hash);
  await settle(page);
}

const TINY_PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGP4z8CAFWEXHbQSACj/P8Fu7N9hAAAAAElFTkSuQmCC",
  "base64",
);

const STEPS = [
  [
    "sign-in",
    async ({ page, front }) => {
      await page.goto(`${front.url}/_/`);
      await page.locator("#login_identity").fill(SUPERUSER.email);
      await page.locator("#login_pass").fill(SUPERUSER.password);
      await page.locator("form[data-pb=authWithPasswordForm] button.next").click();
      await page.locator("[data-pb=pageCollections]").waitFor({ timeout: STEP_TIMEOUT_MS });
      await settle(page);
    },
  ],
  [
    "collection-every-field-type",
    async ({ page }) => {
      await page.locator("[data-pb=pageSidebar]").getByRole("button", { name: "New collection" }).click();
      const m = modal(page, "collectionUpsertModal");
      await m.locator("input[name=name]").fill("everything");
      const types = ["Plain text", "Rich editor", "Number", "Bool", "Email", "URL", "Datetime", "Autodate",
        "File", "Relation", "Select", "JSON", "Geo Point"];
      for (const t of types) {
        await m.getByRole("button", { name: "New field" }).click();
        await page.locator(".field-types-dropdown:popover-open").getByRole("button", { name: t, exact: true }).click();
      }
      // The relation field points at users; the select field gets its choices.
      const rel = m.locator("output[name$='.collectionId']").last();
      await rel.locator("button.selected-container").click();
      await rel.locator(".dropdown:popover-open").getByRole("button", { name: "users", exact: true }).click();
      await m.locator("input[name$='.values']").last().click();
      await m.locator(".field-select-choices-dropdown textarea").fill("red\ngreen\nblue");
      await m.locator("input[name=name]").click();
      await m.locator("footer").getByRole("button", { name: "Create", exact: true }).click();
      await toastSuccess(page, 'created collection "everything"');
      await settle(page);
    },
  ],
  [
    "collection-rules-and-index",
    async ({ page }) => {
      await page.getByRole("button", { name: "Collection settings" }).click();
      const m = modal(page, "collectionUpsertModal");
      await m.getByRole("button", { name: "API rules" }).click();
      await m.locator("[name=listRule] .unlock-overlay").click();
      await m.locator("[name=listRule] [contenteditable]").click();
      await page.keyboard.type('@request.auth.id != "" && number > 0');
      await m.getByRole("button", { name: "Fields" }).click();
      await m.getByRole("button", { name: "New index" }).click();
      const im = page.locator(".index-upsert-modal[data-modal-state=open]");
      await im.getByRole("button", { name: "number", exact: true }).click();
      await im.getByRole("button", { name: "Set index" }).click();
      const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().includes("/api/collections/"));
      await m.locator("footer").getByRole("button", { name: "Save changes", exact: true }).click();
      const res = await saved;
      if (res.status() !== 200) throw new Error(`saving the collection: ${res.status()}`);
      const body = await res.json();
      if (!String(body.listRule).includes("number > 0") || body.indexes?.length !== 1) {
        throw new Error(`the rule or index didn't stick: ${JSON.stringify({ listRule: body.listRule, indexes: body.indexes })}`);
      }
      await settle(page);
    },
  ],
  [
    "record-with-file",
    async ({ page, files }) => {
      await page.locator("[data-pb=pageHeaderPrimaryBtns]").getByRole("button", { name: "New record" }).click();
      const m = modal(page, "recordUpsertModal");
      await m.locator("textarea[name=text]").fill("hello world");
      await m.locator("input[name=number]").fill("42");
      await m.locator("input[name=bool]").check();
      await m.locator("input[name=email]").fill("a@example.com");
      await m.locator("input[name=url]").fill("https://example.com");
      await m.locator("input[name=date]").fill("2024-01-02T03:04");
      await m.locator("input[type=file]").setInputFiles(files.png);
      await m.locator("output[name=select] button").first().click();
      await m.locator("output[name=select] .dropdown:popover-open").getByRole("button", { name: "green", exact: true }).click();
      await m.locator("[name=json] [contenteditable]").click();
      await page.keyboard.press("Control+A");
      await page.keyboard.type('{"a":[1,2]}');
      await m.locator("input[id$='.lon']").fill("24.5");
      await m.locator("input[id$='.lat']").fill("42.7");
      // The rich editor (TinyMCE, in its iframe).
      await m.locator("iframe").first().contentFrame().locator("body").click();
      await page.keyboard.type("rich text");
      const created = page.waitForResponse((r) => r.request().method() === "POST" && r.url().includes("/records"));
      await m.locator("footer").getByRole("button", { name: "Create", exact: true }).click();
      const res = await created;
      const rec = res.status() === 200 ? await res.json() : {};
      const want = { text: "hello world", number: 42, bool: true, select: "green", lon: 24.5 };
      const got = { text: rec.text, number: rec.number, bool: rec.bool, select: rec.select, lon: rec.geoPoint?.lon };
      if (JSON.stringify(got) !== JSON.stringify(want) || !String(rec.editor).includes("rich text")
        || !/^red.*\.png$/.test(rec.file ?? "") || JSON.stringify(rec.json) !== '{"a":[1,2]}') {
        throw new Error(`the record created: ${res.status()} ${JSON.stringify(rec)}`);
      }
      await toastSuccess(page, "Successfully created everything");
      await settle(page);
      // The thumbnail in the list, then the record opened (its file preview).
      await page.locator("[data-pb=recordsListTable] tbody tr img").first().waitFor({ timeout: STEP_TIMEOUT_MS });
      await page.locator("[data-pb=recordsListTable] tbody tr").first().click();
      const v = modal(page, "recordUpsertModal");
      await v.locator("output[name=file] img").first().waitFor({ timeout: STEP_TIMEOUT_MS });
      await settle(page);
      // The file itself, in the dashboard's preview.
      const full = page.waitForResponse(
        (r) => r.url().includes("/api/files/") && !r.url().includes("thumb="),
      );
      await v.locator("output[name=file] button[title^='Preview']").first().click();
      const file = await full;
      if (file.status() !== 200) throw new Error(`the file preview: ${file.status()}`);
      // Escape closes the preview (the top modal) only; the record's panel
      // is then closed with its own button, and must be gone before the next
      // step (a click that lands while the preview is still leaving is lost).
      await page.keyboard.press("Escape");
      await page.locator(".modal[data-modal-state=open]").nth(1).waitFor({ state: "hidden", timeout: STEP_TIMEOUT_MS });
      await settle(page);
      await v.locator("footer").getByRole("button", { name: "Close", exact: true }).click();
      await v.waitFor({ state: "hidden", timeout: STEP_TIMEOUT_MS });
    },
  ],
  [
    "search-and-sort",
    async ({ page }) => {
      const search = page.locator("[data-pb=pageCollections] form [contenteditable]").first();
      await search.click();
      await page.keyboard.type('text ~ "hello" && number > 1');
      const listed = page.waitForResponse((r) => r.url().includes("/records?") && r.url().includes("hello"));
      await submitSearch(search);
      await listed;
      await page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "hello world" }).waitFor();
      const sorted = page.waitForResponse((r) => r.url().includes("/records?") && r.url().includes("sort=-number"));
      await page.locator("[data-pb=recordsListTable] th.col-field-name-number").click();
      await sorted;
      await settle(page);
    },
  ],
  [
    // The dashboard's pages don't subscribe to realtime themselves (its SDK
    // does for the OAuth2 popup): its own client subscribes here, through
    // the front server's streamed proxy, and a record made after that
    // arrives as an event.
    "realtime",
    async ({ page }) => {
      const got = await page.evaluate(async () => {
        const pb = window.app.pb;
        let done;
        const event = new Promise((r) => (done = r));
        const unsubscribe = await pb
          .collection("everything")
          .subscribe("*", (e) => done(`${e.action} ${e.record.text}`));
        await pb.collection("everything").create({ text: "live" });
        const timeout = new Promise((r) => setTimeout(() => r("no event within 10 s"), 10_000));
        const res = await Promise.race([event, timeout]);
        await unsubscribe();
        return res;
      });
      if (got !== "create live") throw new Error(`realtime: ${got}`);
    },
  ],
  [
    "users-and-impersonation",
    async ({ page, files }) => {
      await page.locator("[data-pb=pageSidebar] button[title=users]").click();
      await settle(page);
      await page.locator("[data-pb=pageHeaderPrimaryBtns]").getByRole("button", { name: "New record" }).click();
      const m = modal(page, "recordUpsertModal");
      await m.locator("input[name=email]").fill("user1@example.com");
      await m.locator("input[name=password]").fill("user-password-123");
      await m.locator("input[name=passwordConfirm]").fill("user-password-123");
      await m.locator("input[name=verified]").check();
      await page.locator(".modal.popup[data-modal-state=open]").getByRole("button", { name: /^Yes/ }).click();
      await m.locator("textarea[name=name]").fill("User One");
      await m.locator("input[type=file]").setInputFiles(files.png);
      await m.locator("footer").getByRole("button", { name: "Create", exact: true }).click();
      await toastSuccess(page, "Successfully created users");
      await settle(page);
      await page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "user1@example.com" }).click();
      await m.locator("button[aria-label='More options'], button[title='More options']").first().click();
      await page.getByRole("button", { name: "Impersonate", exact: true }).click();
      const im = page.locator(".record-impersonate-auth-modal[data-modal-state=open]");
      await im.locator("input[name=duration]").fill("600");
      await im.getByRole("button", { name: "Generate token" }).click();
      await im.locator(".impersonate-success:not([hidden])").waitFor({ timeout: STEP_TIMEOUT_MS });
      await im.getByRole("button", { name: "Close", exact: true }).click();
      await m.locator("footer").getByRole("button", { name: "Close", exact: true }).click();
    },
  ],
  [
    "record-edit-and-delete",
    async ({ page }) => {
      const search = page.locator("[data-pb=pageCollections] form [contenteditable]").first();
      const filterBy = async (text) => {
        await search.click();
        await page.keyboard.press("Control+A");
        await page.keyboard.press("Backspace");
        if (text) await page.keyboard.type(text);
        await submitSearch(search);
        await settle(page);
      };
      await go(page, "#/collections?collection=everything");
      await filterBy('text = "hello world"');
      await page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "hello world" }).click();
      const m = modal(page, "recordUpsertModal");
      await m.locator("input[name=number]").fill("43");
      // The relation through the records picker (searching the users).
      await m.getByRole("button", { name: "Open records picker" }).click();
      const picker = page.locator(".records-picker-modal[data-modal-state=open]");
      await picker.locator("[contenteditable]").click();
      await page.keyboard.type("User One");
      await submitSearch(picker.locator("[contenteditable]"));
      await picker.locator(".records-picker-list .list-item", { hasText: "User One" }).click();
      await picker.getByRole("button", { name: "Set selection" }).click();
      const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().includes("/records/"));
      await m.locator("footer").getByRole("button", { name: "Save changes", exact: true }).click();
      const res = await saved;
      const rec = res.status() === 200 ? await res.json() : {};
      if (rec.number !== 43 || !/^[a-z0-9]{15}$/.test(rec.relation ?? "")) {
        throw new Error(`record update: ${res.status()} ${JSON.stringify(rec).slice(0, 300)}`);
      }
      await toastSuccess(page, "Successfully updated");
      await settle(page);
      await filterBy('text = "live"');
      const row = page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "live" });
      await row.locator("input[type=checkbox]").check({ force: true });
      await page.locator("main button.danger", { hasText: "Delete" }).click();
      await page.locator(".modal.popup[data-modal-state=open]").getByRole("button", { name: /^Yes/ }).click();
      await toastSuccess(page, "Successfully deleted 1 record");
      await filterBy("");
    },
  ],
  [
    // An auth collection with OTP and MFA on and a shorter auth token.
    "auth-collection",
    async ({ page }) => {
      await page.locator("[data-pb=pageSidebar]").getByRole("button", { name: "New collection" }).click();
      const m = modal(page, "collectionUpsertModal");
      await m.locator("input[name=name]").fill("members");
      await m.getByRole("button", { name: /Type:/ }).click();
      await page.getByRole("button", { name: "Auth collection" }).click();
      await m.getByRole("button", { name: "Options", exact: true }).click();
      const open = (input) => input.evaluate((e) => e.closest("details") && (e.closest("details").open = true));
      for (const name of ["otp.enabled", "mfa.enabled"]) {
        const input = m.locator(`input[name='${name}']`);
        await open(input);
        if (!(await input.isChecked())) await m.locator(`label[for='${await input.getAttribute("id")}']`).click();
      }
      const duration = m.locator("input[name='authToken.duration']");
      await open(duration);
      await duration.fill("3600");
      const created = page.waitForResponse((r) => r.request().method() === "POST" && r.url().endsWith("/api/collections"));
      await m.locator("footer").getByRole("button", { name: "Create", exact: true }).click();
      const res = await created;
      const c = res.status() === 200 ? await res.json() : {};
      if (c.type !== "auth" || !c.otp?.enabled || !c.mfa?.enabled || c.authToken?.duration !== 3600) {
        throw new Error(`the auth collection created: ${res.status()} ${JSON.stringify(c).slice(0, 300)}`);
      }
      await toastSuccess(page, 'created collection "members"');
      await settle(page);
    },
  ],
  [
    "export-and-import-collections",
    async ({ page }) => {
      await go(page, "#/settings/export-collections");
      const preview = page.locator("output.export-preview");
      await preview.filter({ hasText: "everything" }).waitFor({ timeout: STEP_TIMEOUT_MS });
      const exported = JSON.parse(await preview.innerText());
      if (!Array.isArray(exported) || !exported.some((c) => c.name === "everything")) {
        throw new Error("the export preview lacks the collection made above");
      }
      const download = page.waitForEvent("download");
      await page.getByRole("button", { name: "Download as JSON" }).click();
      const d = await download;
      if (await d.failure()) throw new Error(`export download failed: ${await d.failure()}`);
      // Import what was exported, plus one new collection (all of it, so
      // that nothing is deleted as missing).
      const extra = {
        id: "pbcpbdashimport",
        name: "imported",
        type: "base",
        fields: [{ name: "title", type: "text" }],
      };
      await go(page, "#/settings/import-collections");
      await page.locator("textarea[name=collections]").fill(JSON.stringify([...exported, extra], null, 2));
      await page.getByRole("button", { name: "Review" }).click();
      const confirm = topModal(page).getByRole("button", { name: /Confirm/ });
      await confirm.click();
      await toastSuccess(page, "Successfully imported");
      await settle(page);
      // The imported collection deleted again (its name typed to confirm).
      await go(page, "#/collections?collection=imported");
      await page.getByRole("button", { name: "Collection settings" }).click();
      const m = modal(page, "collectionUpsertModal");
      await m.locator("header button[popovertarget]").first().click();
      await m.getByRole("button", { name: "Delete", exact: true }).click();
      const confirmDelete = page.locator(".modal.popup[data-modal-state=open]").last();
      await confirmDelete.locator("input[id$='.confirm_name']").fill("imported");
      await confirmDelete.getByRole("button", { name: "Yes" }).click();
      await toastSuccess(page, 'deleted collection "imported"');
      await settle(page);
    },
  ],
  [
    "mail-test",
    async ({ page, smtp }) => {
      await go(page, "#/settings/mail");
      await page.locator("input[name='smtp.enabled']").check({ force: true });
      await page.locator("input[name='smtp.host']").fill("127.0.0.1");
      await page.locator("input[name='smtp.port']").fill(String(smtp.port));
      const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().endsWith("/api/settings"));
      await page.getByRole("button", { name: "Save changes" }).click();
      const res = await saved;
      if (res.status() !== 200 || (await res.json()).smtp?.port !== smtp.port) {
        throw new Error(`saving the mail settings: ${res.status()}`);
      }
      const before = smtp.messages.length;
      await page.getByRole("button", { name: "Send test email" }).click();
      const m = topModal(page);
      await m.locator("input[id$='.template.verification']").check({ force: true });
      await m.locator("input[name=email]").fill("mailtest@example.com");
      await m.getByRole("button", { name: "Send", exact: true }).click();
      await toastSuccess(page, "Successfully sent");
      const deadline = Date.now() + 10_000;
      while (smtp.messages.length === before && Date.now() < deadline) await sleep(100);
      const got = smtp.messages.slice(before);
      if (!got.some((msg) => msg.to.includes("mailtest@example.com"))) {
        throw new Error(`the SMTP server got no test mail (got ${JSON.stringify(got.map((x) => x.to))})`);
      }
      // The test e-mail form closes itself once sent.
      if (await m.isVisible()) await m.getByRole("button", { name: "Close", exact: true }).click();
      // A password reset mail for a user, from the user's record.
      await go(page, "#/collections?collection=users");
      await page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "user1@example.com" }).click();
      const r = modal(page, "recordUpsertModal");
      await r.locator("button[aria-label='More options'], button[title='More options']").first().click();
      const sent = page.waitForResponse((x) => x.url().includes("/request-password-reset"));
      await page.getByRole("button", { name: "Send password reset email", exact: true }).click();
      await page.locator(".modal.popup[data-modal-state=open]").getByRole("button", { name: "Send", exact: true }).click();
      const reset = await sent;
      if (reset.status() !== 204) throw new Error(`request-password-reset: ${reset.status()}`);
      const until = Date.now() + 10_000;
      while (!smtp.messages.some((msg) => msg.to.includes("user1@example.com")) && Date.now() < until) await sleep(100);
      if (!smtp.messages.some((msg) => msg.to.includes("user1@example.com"))) {
        throw new Error("the SMTP server got no password reset mail");
      }
      await r.locator("footer").getByRole("button", { name: "Close", exact: true }).click();
    },
  ],
  [
    "backups",
    async ({ page, front, backend }) => {
      await go(page, "#/settings/backups");
      await page.getByRole("button", { name: "Initialize new backup" }).click();
      const c = modal(page, "backupCreateModal");
      await c.locator("input[name=name]").fill("pbdash_backup.zip");
      await c.getByRole("button", { name: "Start backup" }).click();
      const item = page.locator("[data-pb=backupsList] .list-item", { hasText: "pbdash_backup.zip" });
      await item.waitFor({ timeout: STEP_TIMEOUT_MS });
      // A record made after the backup, through the dashboard's own client:
      // the restore must take it away again.
      await page.evaluate(() =>
        window.app.pb.collection("everything").create({ text: "made after the backup" }),
      );
      await item.hover();
      const download = page.waitForEvent("download");
      await item.getByRole("button", { name: "Download" }).click();
      const d = await download;
      if (await d.failure()) throw new Error(`backup download failed: ${await d.failure()}`);
      const saved = join(mkdtempSync(join(tmpdir(), "pbdash-dl-")), "backup.zip");
      await d.saveAs(saved);
      const zip = readFileSync(saved);
      rmSync(dirname(saved), { recursive: true, force: true });
      if (zip.length < 1000) throw new Error(`the downloaded backup is ${zip.length} bytes`);
      // Uploaded back under another name (multipart through the proxy).
      const uploaded = page.waitForResponse((r) => r.url().endsWith("/api/backups/upload"));
      await page
        .locator("[data-pb=pageBackupsSettings] input[type=file]")
        .first()
        .setInputFiles({ name: "pbdash_uploaded.zip", mimeType: "application/zip", buffer: zip });
      const yes = page.locator(".modal.popup[data-modal-state=open]").getByRole("button", { name: /^Yes/ });
      // A confirmation first, if this version asks for one.
      await Promise.race([uploaded, yes.waitFor().then(() => yes.click(), () => {})]);
      const up = await uploaded;
      if (up.status() >= 400) throw new Error(`backup upload: ${up.status()}`);
      await page.locator("[data-pb=backupsList] .list-item", { hasText: "pbdash_uploaded.zip" }).waitFor();
      // Restore it: the server restarts on the restored data.
      await item.hover();
      await item.getByRole("button", { name: "Restore" }).click();
      const r = modal(page, "backupRestoreModal");
      await r.locator("input[name=key]").fill("pbdash_backup.zip");
      await r.getByRole("button", { name: "Restore backup" }).click();
      // The dashboard polls /api/health until the server is back, then reloads.
      const deadline = Date.now() + 30_000;
      for (;;) {
        await sleep(500);
        try {
          const res = await fetch(`${backend.url}/api/health`, { signal: AbortSignal.timeout(1000) });
          if (res.status === 200) break;
        } catch {}
        if (Date.now() > deadline) throw new Error("the server did not come back after the restore");
      }
      // The dashboard reloads itself once the server answers again; give it
      // that moment, then open the restored data afresh.
      await sleep(2000);
      await page.goto(`${front.url}/_/#/collections?collection=everything`);
      await settle(page);
      // The restored data still has the record made before the backup.
      await page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "hello world" }).waitFor({ timeout: STEP_TIMEOUT_MS });
      if (await page.locator("[data-pb=recordsListTable] tbody tr", { hasText: "made after the backup" }).count()) {
        throw new Error("the restore did not take the data back to the backup");
      }
    },
  ],
  [
    "logs",
    async ({ page }) => {
      await go(page, "#/logs");
      await page.locator("[data-pb=logsList] tbody tr").first().waitFor({ timeout: STEP_TIMEOUT_MS });
      await page.locator("[data-pb=logsList] tbody tr").first().click();
      const preview = modal(page, "logPreviewModal");
      await preview.waitFor({ timeout: STEP_TIMEOUT_MS });
      await settle(page);
      await page.keyboard.press("Escape");
      await preview.waitFor({ state: "hidden" });
      // A filter, as typed into the logs search.
      const filtered = page.waitForResponse(
        (r) => r.url().includes("/api/logs?") && decodeURIComponent(r.url()).includes("data.status"),
      );
      const logSearch = page.locator("[data-pb=pageLogs] [contenteditable]").first();
      await logSearch.click();
      await page.keyboard.type("data.status >= 200 && data.method = \"GET\"");
      await submitSearch(logSearch);
      const res = await filtered;
      if (res.status() !== 200) throw new Error(`filtered logs: ${res.status()}`);
      await page.locator("[data-pb=logsList] tbody tr").first().waitFor({ timeout: STEP_TIMEOUT_MS });
    },
  ],
  [
    "superusers-and-sign-out",
    async ({ page, front }) => {
      await go(page, "#/collections?collection=_superusers");
      await page.locator("[data-pb=pageHeaderPrimaryBtns]").getByRole("button", { name: "New record" }).click();
      const m = modal(page, "recordUpsertModal");
      await m.locator("input[name=email]").fill("second-admin@example.com");
      await m.locator("input[name=password]").fill("second-admin-password-1");
      await m.locator("input[name=passwordConfirm]").fill("second-admin-password-1");
      await m.locator("footer").getByRole("button", { name: "Create", exact: true }).click();
      await toastSuccess(page, "Successfully created _superusers");
      await settle(page);
      // Out, and in again as the new superuser.
      await page.locator("[data-pb=appHeader] button[popovertarget=logged-user-dropdown]").click();
      await page.locator("[data-pb=loggedUserDropdown]").getByRole("button", { name: "Logout" }).click();
      await page.locator("#login_identity").fill("second-admin@example.com");
      await page.locator("#login_pass").fill("second-admin-password-1");
      await page.locator("form[data-pb=authWithPasswordForm] button.next").click();
      await page.locator("[data-pb=appHeader]", { hasText: "second-admin@example.com" }).waitFor();
      await settle(page);
    },
  ],
  [
    "settings-pages",
    async ({ page }) => {
      // Application settings saved whole (as the dashboard sends them back),
      // with one rate limit rule added.
      await go(page, "#/settings");
      await page.locator("input[name='meta.appName']").fill("Dashboard test");
      await page.getByText("Rate limiting", { exact: true }).click();
      await page.getByRole("button", { name: "Add rate limit rule" }).click();
      await page.locator("input[name$='.label'][name^='rateLimits.rules.']").last().fill("/api/files");
      await page.getByRole("button", { name: "Save changes" }).click();
      await toastSuccess(page, "Successfully saved application settings");
      await go(page, "#/settings/storage");
      await page.locator("input[name='s3.enabled']").waitFor({ state: "attached", timeout: STEP_TIMEOUT_MS });
    },
  ],
  [
    // PocketBase runs the query; keepd refuses it (allow-listed above), and
    // the page shows that as an error instead of a result.
    "sql-console",
    async ({ page, backend }) => {
      await go(page, "#/settings/sql");
      await page.locator("[data-pb=pageSQLConsole] [name=query] [contenteditable]").click();
      await page.keyboard.type("SELECT 1 AS one");
      const answered = page.waitForResponse((r) => r.url().endsWith("/api/sql"));
      await page.getByRole("button", { name: "Execute", exact: true }).click();
      const res = await answered;
      const shown = backend.name === "pocketbase" ? ".page-table-wrapper" : ".alert.danger";
      await page.locator(`[data-pb=pageSQLConsole] ${shown}:not([hidden])`).waitFor({ timeout: STEP_TIMEOUT_MS });
      if (backend.name !== "pocketbase" && res.status() < 400) {
        throw new Error(`keepd answered POST /api/sql with ${res.status()}`);
      }
    },
  ],
  [
    "crons",
    async ({ page }) => {
      // Scheduled backups on (backups settings), so that both servers list
      // that job: keepd's only one (COMPATIBILITY.md, crons: PocketBase's
      // internal cleanup jobs are not listed).
      await go(page, "#/settings/backups");
      await page.getByRole("button", { name: "Backup options" }).click();
      const toggle = page.locator("#enableAutoBackupsToggle");
      await toggle.waitFor({ state: "attached" });
      if (!(await toggle.isChecked())) await page.locator("label[for=enableAutoBackupsToggle]").click();
      await page.locator("input[name='backups.cron']").waitFor();
      await page.locator("input[name='backups.cron']").fill("0 3 * * *");
      await page.locator("input[name='backups.cronMaxKeep']").fill("2");
      const saved = page.waitForResponse((r) => r.request().method() === "PATCH" && r.url().endsWith("/api/settings"));
      await page.getByRole("button", { name: "Save changes" }).click();
      const res = await saved;
      if (res.status() !== 200 || (await res.json()).backups?.cron !== "0 3 * * *") {
        throw new Error(`saving the backup schedule: ${res.status()}`);
      }
      await go(page, "#/settings/crons");
      const row = page.locator("[data-pb=cronsList] .list-item", { hasText: "__pbAutoBackup__" });
      await row.waitFor({ timeout: STEP_TIMEOUT_MS });
      const run = row.getByRole("button", { name: "Run" });
      await run.waitFor({ timeout: STEP_TIMEOUT_MS });
      const ran = page.waitForResponse((r) => r.request().method() === "POST" && r.url().includes("/api/crons/"));
      await run.click();
      await ran;
      await settle(page);
    },
  ],
];

// --- one pass ---------------------------------------------------------------

async function runPass({ name, bin, env, cacheDir, smtp, assetsFrom, misses }) {
  const backend = await startBackend(bin, name, env);
  const front = await startFront({
    cacheDir,
    backendUrl: backend.url,
    fillFrom: assetsFrom,
    misses,
  });
  const shots = join(ARTIFACTS, name);
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "pbdash-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  let step = "load";
  const events = [];
  page.on("response", (r) => {
    const req = r.request();
    const ev = { step, method: req.method(), url: r.url(), status: r.status() };
    if (r.headers()["x-pbdash-backend-down"]) ev.backendDown = true;
    events.push(ev);
    if (ev.status >= 400) r.text().then((t) => (ev.body = t.slice(0, 300)), () => {});
  });
  page.on("requestfailed", (req) => {
    const error = req.failure()?.errorText ?? "failed";
    // The dashboard cancels a superseded request (a newer list load, a
    // closed panel) and the page's own navigation aborts pending ones:
    // both end as net::ERR_ABORTED, which is not an answer from the server.
    if (error === "net::ERR_ABORTED") return;
    events.push({ step, method: req.method(), url: req.url(), status: 0, error });
  });
  page.on("dialog", (d) => d.accept());
  const stepErrors = [];
  const started = Date.now();
  try {
    let n = 0;
    for (const [stepName, fn] of STEPS) {
      n += 1;
      step = stepName;
      const t0 = Date.now();
      try {
        await fn({ page, front, smtp, backend, files: { png: { name: "red.png", mimeType: "image/png", buffer: TINY_PNG } } });
      } catch (e) {
        stepErrors.push({ step: stepName, error: String(e.message ?? e).split("\n").slice(0, 6).join("\n") });
        // Leave whatever panel is open and go on with the next step.
        await page.keyboard.press("Escape").catch(() => {});
        await page.keyboard.press("Escape").catch(() => {});
      }
      await sleep(400); // a closing panel's animation out of the picture
      await page
        .screenshot({ path: join(shots, `${String(n).padStart(2, "0")}-${stepName}.png`), fullPage: true })
        .catch(() => {});
      console.log(`  [${name}] ${stepName}: ${((Date.now() - t0) / 1000).toFixed(1)}s${stepErrors.at(-1)?.step === stepName ? " FAILED" : ""}`);
    }
  } finally {
    await browser.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    await front.stop();
    writeFileSync(join(shots, "server.log"), backend.output());
    await backend.stop();
  }
  console.log(`  [${name}] ${STEPS.length} steps in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return { events, stepErrors };
}

// --- main -------------------------------------------------------------------

function failures(events) {
  return events
    .filter((e) => e.status >= 400 || e.status === 0)
    // While the server restarts after the restore (either server), the
    // dashboard's requests find nobody listening; it polls /api/health
    // until the server is back. Not an answer of either server.
    .filter((e) => !(e.step === "backups" && e.backendDown))
    .map((e) => ({ ...e, path: normalise(e.url), key: `${e.step} ${e.method} ${normalise(e.url)}` }));
}

async function main() {
  const only = process.env.PBDASH_ONLY;
  const smtp = await startSmtp();
  const cacheDir = mkdtempSync(join(tmpdir(), "pbdash-assets-"));
  const problems = [];
  // The dashboard's assets, from the reference binary: kept running through
  // both passes, because TinyMCE loads its skins and plugins by computed
  // names no scan of the sources finds; those are fetched from it on first
  // use and kept, so both passes are served the same files.
  const assetsFrom = await startBackend(PB_BIN, "pocketbase-assets");
  const misses = new Set();
  try {
    const fetched = await fetchDashboard(assetsFrom.url, cacheDir);
    console.log(`fetched PocketBase's dashboard: ${fetched.size} files`);

    let pb = null;
    if (only !== "keepd") {
      console.log("pass 1: the dashboard against PocketBase");
      pb = await runPass({ name: "pocketbase", bin: PB_BIN, cacheDir, smtp, assetsFrom: assetsFrom.url, misses });
      for (const e of pb.stepErrors) problems.push(`PocketBase: step ${e.step} failed (the test is broken): ${e.error}`);
      for (const f of failures(pb.events)) console.log(`  [pocketbase] ${f.status || f.error} ${f.method} ${f.url} ${f.body ?? ""}`);
    }
    if (only !== "pocketbase") {
      console.log("pass 2: the dashboard against keepd");
      const kd = await runPass({
        name: "keepd",
        bin: KEEPD_BIN,
        // COMPATIBILITY.md, "backups": keepd encrypts backups with age and
        // refuses to make one (400) until `backup_recipients` or the explicit
        // plaintext choice is set; the dashboard has no field for either.
        env: { KEEPD_BACKUP_ENCRYPTION: "none" },
        cacheDir,
        smtp,
        assetsFrom: assetsFrom.url,
        misses,
      });
      for (const e of kd.stepErrors) problems.push(`keepd: step ${e.step} failed: ${e.error}`);
      const pbFailed = new Set(pb ? failures(pb.events).map((f) => f.key) : []);
      for (const f of failures(kd.events)) {
        const allowed = ALLOWED_KEEPD_FAILURES.find((a) => a.method === f.method && a.path.test(f.path));
        if (allowed) {
          console.log(`  [keepd] allowed: ${f.status} ${f.method} ${f.path} — ${allowed.why}`);
          continue;
        }
        if (pbFailed.has(f.key)) {
          console.log(`  [keepd] fails on PocketBase too: ${f.status} ${f.method} ${f.path}`);
          continue;
        }
        problems.push(
          `keepd: step ${f.step}: ${f.method} ${f.url} -> ${f.status || f.error} ${f.body ?? ""} (PocketBase answered it)`,
        );
      }
    }
    if (misses.size) console.log(`dashboard files fetched on first use: ${[...misses].join(", ")}`);
  } finally {
    await assetsFrom.stop();
    await new Promise((r) => smtp.server.close(r));
    rmSync(cacheDir, { recursive: true, force: true });
  }
  if (problems.length) {
    console.error(`\nPocketBase's dashboard against keepd: ${problems.length} problem(s)\n  - ${problems.join("\n  - ")}`);
    console.error(`screenshots and server logs: ${ARTIFACTS}`);
    process.exit(1);
  }
  console.log(`PocketBase's dashboard against keepd: no request fails that PocketBase answers (screenshots: ${ARTIFACTS})`);
}

async function startSmtp() {
  const messages = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onData(stream, session, cb) {
      let data = "";
      stream.on("data", (c) => (data += c));
      stream.on("end", () => {
        messages.push({ to: session.envelope.rcptTo.map((r) => r.address), data });
        cb();
      });
    },
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: server.server.address().port, messages };
}

await main();
process.exit(0);
