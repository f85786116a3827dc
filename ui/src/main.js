// The console's shell: landmarks and navigation, the hash router over
// SCREENS, the `ctx` every screen gets (screens/README.md), toasts, field
// errors, and the idle sign-out. Everything is built with `h()`: no HTML
// string is ever parsed (the CSP forbids inline scripts and styles anyway).

import { api, session, ApiError } from "./core/api.js";
import { h, replace } from "./core/dom.js";
import login from "./screens/login.js";
import collections from "./screens/collections.js";
import collection from "./screens/collection.js";
import records from "./screens/records.js";
import record from "./screens/record.js";
import ruleTester from "./screens/rules.js";
// The operations screens.
import settingsScreen from "./screens/settings.js";
import backupsScreen from "./screens/backups.js";
import logsScreen from "./screens/logs.js";
import auditScreen from "./screens/audit.js";
import cronsScreen from "./screens/crons.js";
import authmgmtScreen from "./screens/authmgmt.js";
import syncScreen from "./screens/sync.js";

// Signed out after this long without a key press, click or scroll.
export const IDLE_SIGN_OUT_MS = 30 * 60 * 1000;

// The hash route's first segment → the screen. `nav`: its label in the
// navigation (screens without one are reached from others). `public`: shown
// without a signed-in superuser.
export const SCREENS = {
  login: { render: login, public: true },
  collections: { render: collections, nav: "Collections" },
  collection: { render: collection },
  records: { render: records },
  record: { render: record },
  rules: { render: ruleTester, nav: "Rule tester" },
  // The operations screens.
  authmgmt: { render: authmgmtScreen, nav: "Auth records" },
  logs: { render: logsScreen, nav: "Request log" },
  audit: { render: auditScreen, nav: "Audit log" },
  backups: { render: backupsScreen, nav: "Backups" },
  crons: { render: cronsScreen, nav: "Crons" },
  sync: { render: syncScreen, nav: "Sync" },
  settings: { render: settingsScreen, nav: "Settings" },
};
const HOME = "#/collections";

const toasts = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
const main = h("main", { id: "main", tabindex: "-1" });
const nav = h("nav", { "aria-label": "Main" });
const who = h("span", { class: "who" });
const header = h(
  "header",
  { class: "top" },
  h("a", { class: "skip", href: "#main", onclick: skipToMain }, "Skip to content"),
  h("a", { class: "brand", href: HOME }, "keepd"),
  nav,
  who,
  h("button", { type: "button", class: "ghost", id: "sign-out", onclick: () => signOut("") }, "Sign out"),
);

function skipToMain(e) {
  e.preventDefault();
  main.focus();
}

export function toast(message, kind = "ok") {
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : null }, String(message));
  toasts.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

// Flattens PocketBase's `data` ({fields: {0: {name: {code, message}}}}) into
// [["fields.0.name", message], ...].
function flatErrors(data, prefix = "", out = []) {
  for (const [k, v] of Object.entries(data || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && typeof v.message === "string" && typeof v.code === "string") {
      out.push([key, v.message]);
    } else if (v && typeof v === "object") {
      flatErrors(v, key, out);
    }
  }
  return out;
}

// Marks the inputs of `form` named after the error's fields (aria-invalid and
// a message linked by aria-describedby); errors without an input are toasted.
// Returns the number of errors. fieldErrors(form, null) only clears.
export function fieldErrors(form, err) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  if (!err) return 0;
  const errs = flatErrors(err.data);
  let first = null;
  for (const [key, message] of errs) {
    const input = [...form.querySelectorAll("[name]")].find((el) => el.getAttribute("name") === key);
    if (!input) {
      toast(`${key}: ${message}`, "error");
      continue;
    }
    const id = `err-${key.replace(/[^a-zA-Z0-9_-]/g, "_")}`;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", id);
    input.after(h("p", { class: "field-error", id }, message));
    first = first || input;
  }
  if (!errs.length) toast(err.message || String(err), "error");
  if (first) first.focus();
  return errs.length;
}

// ---------------------------------------------------------------------------
// Router.

let cleanups = [];
let renderSeq = 0;

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "", args: parts.slice(1) };
}

function runCleanups() {
  const fns = cleanups;
  cleanups = [];
  for (const fn of fns) {
    try { fn(); } catch (e) { console.error(e); }
  }
}

function drawNav(current) {
  const links = Object.entries(SCREENS)
    .filter(([, s]) => s.nav)
    .map(([name, s]) =>
      h("a", { href: `#/${name}`, "aria-current": name === current ? "page" : null }, s.nav),
    );
  replace(nav, h("ul", null, links.map((a) => h("li", null, a))));
  const su = session.superuser;
  replace(who, su ? su.email : "");
}

async function render() {
  const seq = ++renderSeq;
  let { name, args } = parseHash();
  if (!session.token && !(SCREENS[name] && SCREENS[name].public)) {
    if (location.hash !== "#/login") {
      location.replace("#/login");
      return;
    }
    name = "login";
  }
  if (!SCREENS[name]) {
    location.replace(session.token ? HOME : "#/login");
    return;
  }
  runCleanups();
  const screen = SCREENS[name];
  document.body.classList.toggle("signed-out", !!screen.public);
  drawNav(name);
  replace(main, h("p", { class: "muted", "aria-busy": "true" }, "Loading…"));
  let nodes;
  try {
    nodes = await screen.render(ctx, ...args);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    console.error(e);
    nodes = h("div", { class: "error-box", role: "alert" }, h("h1", null, "Something went wrong"), h("p", null, e.message || String(e)));
  }
  if (seq !== renderSeq) return; // a newer navigation won
  replace(main, nodes);
  const auto = main.querySelector("[autofocus]");
  if (auto) auto.focus();
  const h1 = main.querySelector("h1");
  document.title = h1 ? `${h1.textContent} · keepd` : "keepd console";
}

export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

export const ctx = {
  api,
  h,
  navigate,
  refresh: () => render(),
  toast,
  fieldErrors,
  onCleanup: (fn) => cleanups.push(fn),
  session,
  // Called by the login screen once a token is in hand.
  signedIn(token, record) {
    session.save(token, record);
    lastInput = Date.now();
    navigate(HOME);
  },
};

// ---------------------------------------------------------------------------
// Idle sign-out.

let lastInput = Date.now();
for (const ev of ["keydown", "pointerdown", "wheel", "touchstart"]) {
  addEventListener(ev, () => { lastInput = Date.now(); }, { passive: true, capture: true });
}

function signOut(reason) {
  runCleanups();
  session.clear();
  if (reason) toast(reason);
  navigate("#/login");
}

setInterval(() => {
  if (session.token && Date.now() - lastInput > IDLE_SIGN_OUT_MS) {
    signOut(`Signed out after ${IDLE_SIGN_OUT_MS / 60000} minutes without input.`);
  }
}, 15000);

// ---------------------------------------------------------------------------

document.body.append(header, main, toasts);
addEventListener("hashchange", render);
render();
