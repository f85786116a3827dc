// The data screens in a real browser against a real keepd: a collection
// with every field type made through the form; records added, edited,
// searched, sorted and deleted, a file upload with its preview; a record
// made through the API appearing live; markup in values rendered as text
// under the CSP; a rule edited and the rule tester's answer; axe and a
// screenshot on each screen.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startKeepd, superuserApi, launch, openConsole, signIn, screenshot, axe, heading, eventually } from "./lib.mjs";

const TYPES = ["text", "number", "bool", "email", "url", "editor", "date", "autodate", "select", "json", "file", "relation", "password", "geoPoint"];
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");

let srv;
let browser;
let page;
let api;
let userId;
before(async () => {
  srv = await startKeepd();
  browser = await launch();
  api = await superuserApi(srv);
  const u = await api("POST", "/api/collections/users/records", { email: "someone@example.com", password: "a-password-123", passwordConfirm: "a-password-123", name: "Someone" });
  assert.equal(u.status, 200, JSON.stringify(u.body));
  userId = u.body.id;
  page = await openConsole(browser, srv);
  await signIn(page);
  await heading(page, "Collections");
});
after(async () => {
  await browser?.close();
  await srv?.stop();
});

// Saves the collection form; done when a new "saved" toast is up and the
// editor is drawn again. The toasts already up are marked first: one from an
// earlier save may still be there, and may expire while this one appears (a
// count of them could then never grow).
async function saveCollection(name) {
  await page.evaluate(() => {
    for (const t of document.querySelectorAll(".toast")) t.dataset.before = "";
  });
  await page.getByRole("button", { name: "Save changes" }).click();
  await page
    .locator(".toast:not([data-before])", { hasText: `Collection ${name} saved.` })
    .first()
    .waitFor({ timeout: 10000 });
  await heading(page, `Collection ${name}`);
}

const fieldName = (type, i) => `${type}${i + 1}`.toLowerCase();

test("the collections list and a new collection with every field type", async () => {
  await axe(page, "collections");
  await screenshot(page, "collections");
  await page.getByRole("button", { name: "New collection" }).click();
  await heading(page, "New collection");
  await page.getByLabel("Name", { exact: true }).fill("things");
  for (const type of TYPES) {
    await page.getByLabel("New field type").selectOption(type);
    await page.getByRole("button", { name: "Add field" }).click();
  }
  const idx = (t) => TYPES.indexOf(t);
  await page.locator(`[name="fields.${idx("select")}.values"]`).fill("red, green, blue");
  await page.locator(`[name="fields.${idx("relation")}.collectionId"]`).selectOption({ label: "users" });
  await page.locator(`[name="fields.${idx("file")}.maxSelect"]`).fill("2");
  await page.locator(`[name="fields.${idx("file")}.thumbs"]`).fill("100x100");
  await page.locator(`[name="fields.${idx("text")}.max"]`).fill("200");
  await axe(page, "collection-new");
  await screenshot(page, "collection-new");
  await page.getByRole("button", { name: "Create collection" }).click();
  await heading(page, "Collection things");
  const c = await api("GET", "/api/collections/things");
  assert.equal(c.status, 200);
  const got = Object.fromEntries(c.body.fields.map((f) => [f.name, f]));
  for (const [i, type] of TYPES.entries()) assert.equal(got[fieldName(type, i)]?.type, type, `${type} field`);
  assert.deepEqual(got.select9.values, ["red", "green", "blue"]);
  assert.equal(got.file11.maxSelect, 2);
  assert.equal(got.text1.max, 200);
  assert.equal(got.relation12.collectionId, (await api("GET", "/api/collections/users")).body.id);
  assert.deepEqual(page.errors, []);
});

test("collections export as JSON and import from JSON", async () => {
  await page.goto(`${srv.url}/_/#/collections`);
  await heading(page, "Collections");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export JSON" }).click()]);
  const exported = JSON.parse(await new Response(await download.createReadStream()).text());
  assert.ok(exported.some((c) => c.name === "things" && c.fields.length >= TYPES.length), "things exported");
  const imported = [{ name: "imported", type: "base", fields: [{ name: "title", type: "text" }], listRule: null }];
  await page.getByLabel("Collections (JSON array)").fill(JSON.stringify(imported));
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await page.getByRole("link", { name: "imported", exact: true }).waitFor();
  const c = await api("GET", "/api/collections/imported");
  assert.equal(c.status, 200);
  assert.equal(c.body.fields.find((f) => f.name === "title")?.type, "text");
  assert.equal((await api("GET", "/api/collections/things")).status, 200, "deleteMissing off keeps the others");
});

test("an auth collection's sign-in options", async () => {
  await page.goto(`${srv.url}/_/#/collection/users`);
  await heading(page, "Collection users");
  await page.getByLabel("One-time codes by e-mail (OTP)").check();
  await page.getByLabel("OTP length").fill("6");
  await page.getByLabel("Auth token lifetime (s)").fill("3600");
  await axe(page, "collection-auth");
  await screenshot(page, "collection-auth");
  await saveCollection("users");
  const c = (await api("GET", "/api/collections/users")).body;
  assert.equal(c.otp.length, 6);
  assert.equal(c.authToken.duration, 3600);
  assert.equal(c.passwordAuth.enabled, true, "untouched options kept");
});

test("a field error from the server marks its input", async () => {
  await page.goto(`${srv.url}/_/#/collection`);
  await heading(page, "New collection");
  await page.getByLabel("Name", { exact: true }).fill("bad name!");
  await page.getByRole("button", { name: "Create collection" }).click();
  const name = page.getByLabel("Name", { exact: true });
  await page.locator(".field-error").first().waitFor();
  assert.equal(await name.getAttribute("aria-invalid"), "true");
});

test("an API rule is checked as you type and saved", async (t) => {
  await page.goto(`${srv.url}/_/#/collection/things`);
  await heading(page, "Collection things");
  await axe(page, "collection-edit");
  await page.locator("#rule-listRule-locked").uncheck();
  await page.locator("#rule-listRule").fill('text1 = "visible" &&');
  const checker = (await api("POST", "/api/rules/check", { collection: "things", rule: "id != ''" })).status;
  if (checker !== 404) {
    await page.locator("#rule-listRule-status.field-error").waitFor();
    assert.doesNotMatch(await page.locator("#rule-listRule-status").textContent(), /An error occurred/, "the parser's own message");
    assert.equal(await page.locator("#rule-listRule").getAttribute("aria-invalid"), "true");
  } else {
    t.diagnostic("POST /api/rules/check is not in this keepd: the form stays quiet");
  }
  await page.locator("#rule-listRule").fill('text1 = "visible"');
  if (checker !== 404) await page.locator("#rule-listRule-status.ok").waitFor();
  await page.locator("#rule-viewRule-locked").uncheck();
  await page.locator("#rule-viewRule").fill("");
  await screenshot(page, "collection-rules");
  await saveCollection("things");
  const c = await api("GET", "/api/collections/things");
  assert.equal(c.body.listRule, 'text1 = "visible"');
  assert.equal(c.body.viewRule, "");
  assert.equal(c.body.createRule, null);
});

let recId;
test("a record with every field type, a file upload with its preview", async () => {
  await page.goto(`${srv.url}/_/#/records/things`);
  await heading(page, "Records of things");
  await axe(page, "records-empty");
  await page.getByRole("button", { name: "New record" }).click();
  await heading(page, "New record in things");
  await page.locator("#field-text1").fill("visible");
  await page.locator("#field-number2").fill("42.5");
  await page.locator("#field-bool3").check();
  await page.locator("#field-email4").fill("a@example.com");
  await page.locator("#field-url5").fill("https://example.com/x");
  await page.locator("#field-editor6").fill("<p>rich</p>");
  await page.locator("#field-date7").fill("2024-01-02 03:04:05.000Z");
  await page.locator("#field-select9").selectOption("green");
  await page.locator("#field-json10").fill('{"a": [1, 2]}');
  await page.locator("#field-file11").setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: PNG });
  await page.locator('img[alt="New file dot.png"]').waitFor();
  await page.locator("#field-relation12").fill("Someone");
  await page.getByRole("button", { name: "Find records for relation12" }).click();
  await page.getByRole("button", { name: `Add ${userId}` }).click();
  await page.locator("#field-password13").fill("secret-pass-1");
  await page.locator("#field-password13-confirm").fill("secret-pass-1");
  await page.locator("#field-geopoint14").fill("13.4");
  await page.locator("#field-geopoint14-lat").fill("52.5");
  await axe(page, "record-new");
  await screenshot(page, "record-new");
  // Focus first: Chromium scrolls the page when focus leaves the number
  // input under a click, and the release then lands beside the button.
  await page.locator("#save-record").focus();
  await page.getByRole("button", { name: "Create record" }).click();
  await page.getByRole("heading", { level: 1, name: /^Record [a-z0-9]{15}$/ }).waitFor();
  recId = (await page.getByRole("heading", { level: 1 }).textContent()).replace("Record ", "");
  const r = await api("GET", `/api/collections/things/records/${recId}`);
  assert.equal(r.status, 200);
  const v = r.body;
  assert.equal(v.text1, "visible");
  assert.equal(v.number2, 42.5);
  assert.equal(v.bool3, true);
  assert.equal(v.email4, "a@example.com");
  assert.equal(v.url5, "https://example.com/x");
  assert.equal(v.editor6, "<p>rich</p>");
  assert.equal(v.date7, "2024-01-02 03:04:05.000Z");
  assert.match(v.autodate8, /^\d{4}-/);
  assert.equal(v.select9, "green");
  assert.deepEqual(v.json10, { a: [1, 2] });
  assert.equal(v.file11.length, 1);
  assert.match(v.file11[0], /^dot_[a-z0-9]+\.png$/);
  assert.equal(v.relation12, userId);
  assert.deepEqual(v.geopoint14, { lon: 13.4, lat: 52.5 });
  // The preview is the server's thumb, loaded.
  const img = page.locator(`img[alt="${v.file11[0]}"]`);
  await img.waitFor();
  assert.match(await img.getAttribute("src"), /\?thumb=100x100$/);
  await page.waitForFunction((alt) => { const i = document.querySelector(`img[alt="${alt}"]`); return i && i.complete && i.naturalWidth > 0; }, v.file11[0]);
  await axe(page, "record-edit");
  await screenshot(page, "record-edit");
  assert.deepEqual(page.errors, []);
});

test("edit a record, search, sort and delete", async () => {
  await page.locator("#field-text1").fill("visible edited");
  await page.locator("#field-number2").fill("7");
  await page.getByRole("button", { name: "Save record" }).click();
  // (The create's own "saved" toast may still be up: ask the server.)
  let r = await eventually(async () => {
    const r = await api("GET", `/api/collections/things/records/${recId}`);
    return r.body.text1 === "visible edited" && r;
  });
  assert.equal(r.body.text1, "visible edited");
  assert.equal(r.body.number2, 7);
  for (const n of [1, 2, 3]) {
    const c = await api("POST", "/api/collections/things/records", { text1: `other ${n}`, number2: n, email4: `o${n}@example.com` });
    assert.equal(c.status, 200, JSON.stringify(c.body));
  }
  await page.goto(`${srv.url}/_/#/records/things`);
  await heading(page, "Records of things");
  await page.getByText("4 records").waitFor();
  await page.getByLabel("Filter").fill('text1 ~ "edited"');
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("1 records").waitFor();
  assert.equal(await page.locator("tbody tr").count(), 1);
  await page.getByLabel("Filter").fill("text1 ~");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator("#search-error").waitFor();
  await page.getByRole("button", { name: "Clear" }).click();
  await page.getByText("4 records").waitFor();
  await page.getByRole("button", { name: "Sort by number2" }).click();
  await page.locator('th[aria-sort="ascending"]').waitFor();
  const col = async () => page.locator("tbody tr td:nth-child(3)").allTextContents();
  assert.deepEqual(await col(), ["1", "2", "3", "7"]);
  await page.getByRole("button", { name: "Sort by number2, descending" }).click();
  await page.locator('th[aria-sort="descending"]').waitFor();
  assert.deepEqual(await col(), ["7", "3", "2", "1"]);
  await axe(page, "records");
  await screenshot(page, "records");
  await page.getByRole("link", { name: recId }).click();
  await heading(page, `Record ${recId}`);
  await page.getByRole("button", { name: "Delete record" }).click();
  await heading(page, "Records of things");
  r = await api("GET", `/api/collections/things/records/${recId}`);
  assert.equal(r.status, 404);
  assert.deepEqual(page.errors, []);
});

test("a protected file's preview carries a file token", async () => {
  const c = (await api("GET", "/api/collections/things")).body;
  const fields = c.fields.map((f) => (f.name === "file11" ? { ...f, protected: true } : f));
  // (A protected file is still public when the view rule is: PocketBase's rule.)
  assert.equal((await api("PATCH", `/api/collections/${c.id}`, { fields, viewRule: '@request.auth.id != ""' })).status, 200);
  const form = new FormData();
  form.append("text1", "with a protected file");
  form.append("file11", new Blob([PNG], { type: "image/png" }), "secret.png");
  const res = await fetch(`${srv.url}/api/collections/things/records`, { method: "POST", headers: { Authorization: api.token }, body: form });
  const rec = await res.json();
  assert.equal(res.status, 200, JSON.stringify(rec));
  const guest = await fetch(`${srv.url}/api/files/${c.id}/${rec.id}/${rec.file11[0]}`);
  assert.notEqual(guest.status, 200, "no token, no file");
  await page.goto(`${srv.url}/_/#/record/things/${rec.id}`);
  await heading(page, `Record ${rec.id}`);
  const img = page.locator(`img[alt="${rec.file11[0]}"]`);
  assert.match(await img.getAttribute("src"), /\?thumb=100x100&token=[^&]+$/);
  await page.waitForFunction((alt) => { const i = document.querySelector(`img[alt="${alt}"]`); return i && i.complete && i.naturalWidth > 0; }, rec.file11[0]);
  assert.equal((await api("PATCH", `/api/collections/${c.id}`, { fields: c.fields, viewRule: c.viewRule })).status, 200);
});

test("pages of records", async () => {
  let r = await api("POST", "/api/collections", { name: "many", type: "base", fields: [{ name: "n", type: "number" }] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  for (let n = 1; n <= 25; n++) assert.equal((await api("POST", "/api/collections/many/records", { n })).status, 200);
  await page.goto(`${srv.url}/_/#/records/many/1/n`);
  await page.getByText("25 records · page 1 of 2").waitFor();
  assert.equal(await page.locator("tbody tr").count(), 20);
  assert.ok(await page.getByRole("button", { name: "Previous page" }).isDisabled());
  await page.getByRole("button", { name: "Next page" }).click();
  await page.getByText("25 records · page 2 of 2").waitFor();
  assert.deepEqual(await page.locator("tbody tr td:nth-child(2)").allTextContents(), ["21", "22", "23", "24", "25"]);
  assert.ok(await page.getByRole("button", { name: "Next page" }).isDisabled());
});

test("an auth record: e-mail, password and its confirmation", async () => {
  await page.goto(`${srv.url}/_/#/record/users`);
  await heading(page, "New record in users");
  assert.equal(await page.locator("#field-tokenKey").count(), 0, "tokenKey is not shown");
  await page.locator("#field-email").fill("made@example.com");
  await page.locator("#field-password").fill("made-password-1");
  await page.locator("#field-password-confirm").fill("other-password-1");
  await page.locator("#save-record").focus();
  await page.getByRole("button", { name: "Create record" }).click();
  await page.locator('[name="passwordConfirm"][aria-invalid="true"]').waitFor();
  await page.locator("#field-password-confirm").fill("made-password-1");
  await page.locator("#save-record").focus();
  await page.getByRole("button", { name: "Create record" }).click();
  await page.getByRole("heading", { level: 1, name: /^Record [a-z0-9]{15}$/ }).waitFor();
  const login = await fetch(`${srv.url}/api/collections/users/auth-with-password`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ identity: "made@example.com", password: "made-password-1" }),
  });
  assert.equal(login.status, 200, "the new user signs in with the password set in the console");
});

test("a record created through the API appears live", async () => {
  await page.goto(`${srv.url}/_/#/records/things`);
  await heading(page, "Records of things");
  // Subscribed once the PB_CONNECT round trip is done.
  await page.waitForTimeout(500);
  const c = await api("POST", "/api/collections/things/records", { text1: "arrived live" });
  assert.equal(c.status, 200);
  await page.locator(`tr.fresh[data-id="${c.body.id}"]`).waitFor({ timeout: 10000 });
  assert.match(await page.locator(`tr[data-id="${c.body.id}"]`).textContent(), /arrived live/);
});

test("markup in a value renders as text and nothing executes (CSP)", async () => {
  const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
  const c = await api("POST", "/api/collections/things/records", { text1: evil, editor6: evil });
  assert.equal(c.status, 200);
  await page.goto(`${srv.url}/_/#/records/things`);
  await heading(page, "Records of things");
  const row = page.locator(`tr[data-id="${c.body.id}"]`);
  assert.equal((await row.locator("td").nth(1).textContent()), evil);
  await page.goto(`${srv.url}/_/#/record/things/${c.body.id}`);
  await heading(page, `Record ${c.body.id}`);
  assert.equal(await page.locator("#field-text1").inputValue(), evil);
  assert.equal(await page.locator("#field-editor6").inputValue(), evil);
  assert.equal(await page.locator('img[src="x"]').count(), 0);
  assert.equal(await page.locator("main script").count(), 0);
  // And the CSP itself: an inline script added to the page does not run.
  const violations = [];
  page.on("console", (m) => { if (/Content Security Policy/.test(m.text())) violations.push(m.text()); });
  await page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.__pwned = 3";
    document.body.append(s);
    const d = document.createElement("div");
    d.setAttribute("onclick", "window.__pwned = 4");
    document.body.append(d);
    d.click();
  });
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.ok(violations.length >= 1, "the browser reports the refused inline script");
  assert.deepEqual(page.errors.filter((e) => !/Content Security Policy/.test(e)), []);
  page.errors.length = 0;
});

test("the rule tester shows what a guest gets and why a record is refused", async (t) => {
  const probe = await api("POST", "/api/rules/test", { collection: "things", kind: "list" });
  for (const text1 of ["visible", "hidden"]) await api("POST", "/api/collections/things/records", { text1 });
  const hidden = (await api("GET", `/api/collections/things/records?filter=${encodeURIComponent('text1="hidden"')}`)).body.items[0].id;
  await page.goto(`${srv.url}/_/#/rules/things`);
  await heading(page, "Rule tester");
  await axe(page, "rule-tester");
  await screenshot(page, "rule-tester");
  await page.getByLabel("Collection").selectOption("things");
  await page.getByLabel("Rule", { exact: true }).selectOption("list");
  await page.getByLabel("Record id", { exact: true }).fill(hidden);
  await page.getByRole("button", { name: "Test rule" }).click();
  if (probe.status === 404) {
    await page.locator("#rule-result .error-box").waitFor();
    // Under ./dev.sh test and CI a test that cannot run fails.
    assert.ok(!(process.env.KEEPD_TESTS_STRICT === "1" || process.env.CI), "keepd has no POST /api/rules/test");
    t.skip("POST /api/rules/test is not in this keepd yet");
    return;
  }
  await page.locator("#rt-total").waitFor();
  assert.match(await page.locator("#rt-total").textContent(), /^1 record\(s\) visible to a guest/);
  await page.locator("#rt-record").getByText("refused").waitFor();
  assert.match(await page.locator("#rt-record").textContent(), /refuses text1 = ['"]visible['"]/);
  await screenshot(page, "rule-tester-result");
  await axe(page, "rule-tester-result");
});
