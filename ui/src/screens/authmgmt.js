// Auth records management: locked accounts (unlock), and per auth
// collection its records with verify, impersonate (the token shown with a
// copy button) and TOTP state (GET /api/totp/{collection}/{id}; shown as
// unknown when this keepd has no such route).
import { h, replace } from "../core/dom.js";
import { field, select, table, pager, infoDialog, copyable, errorNote } from "./ops-common.js";

const PER_PAGE = 30;

export default async function authmgmt(ctx, collection) {
  const status = h("p", { class: "status", role: "status" });
  const say = (msg, kind = "ok") => {
    replace(status, kind === "error" ? h("span", { class: "error-note" }, msg) : msg);
    ctx.toast(msg, kind);
  };
  const lockBox = h("div", { class: "lockouts" });
  const recBox = h("div", { class: "auth-records", "aria-live": "polite" });
  let totpMissing = false;
  let locks = [];

  const unlock = async (cname, rid) => {
    try {
      await ctx.api("DELETE", `/api/lockouts/${encodeURIComponent(cname)}/${encodeURIComponent(rid)}`);
      say(`Unlocked ${cname}/${rid}.`);
      await loadLocks();
      if (current) await loadRecords();
    } catch (e) {
      say(e.message, "error");
    }
  };

  const loadLocks = async () => {
    try {
      locks = await ctx.api("GET", "/api/lockouts");
    } catch (e) {
      replace(lockBox, errorNote(e));
      return;
    }
    replace(
      lockBox,
      h("h2", {}, "Locked accounts"),
      table(
        "",
        [
          ["Collection", (l) => l.collectionName || l.collectionId],
          ["Record", (l) => h("span", { class: "mono" }, l.recordId)],
          ["Locked for", (l) => `${l.secondsLeft} s`],
          ["Unlock", (l) => h("button", { type: "button", onclick: () => unlock(l.collectionName || l.collectionId, l.recordId), "aria-label": `Unlock ${l.recordId}` }, "Unlock")],
        ],
        locks,
        "No account is locked.",
      ),
    );
  };

  let collections = [];
  try {
    const res = await ctx.api("GET", "/api/collections", { query: { perPage: 500, filter: 'type = "auth"', sort: "name" } });
    collections = (res.items || []).filter((c) => c.type === "auth");
  } catch (e) {
    return [h("h1", {}, "Auth records"), errorNote(e)];
  }
  let current = collections.find((c) => c.name === collection || c.id === collection) || collections.find((c) => c.name !== "_superusers") || collections[0];
  const state = { page: 1, search: "" };

  const totpCell = (rec) => {
    const cell = h("span", { class: "muted" }, "…");
    if (totpMissing) {
      replace(cell, "unknown");
      return cell;
    }
    ctx
      .api("GET", `/api/totp/${encodeURIComponent(current.name)}/${encodeURIComponent(rec.id)}`)
      .then((t) => replace(cell, t.enabled ? `on (${t.recoveryCodesLeft} recovery codes left)` : "off"))
      .catch((e) => {
        if (e.status === 404) totpMissing = true;
        replace(cell, "unknown");
      });
    return cell;
  };

  const verify = async (rec) => {
    try {
      await ctx.api("PATCH", `/api/collections/${encodeURIComponent(current.name)}/records/${encodeURIComponent(rec.id)}`, { body: { verified: true } });
      say(`${rec.email || rec.id} is verified.`);
      await loadRecords();
    } catch (e) {
      say(e.message, "error");
    }
  };

  const impersonate = async (rec) => {
    try {
      const res = await ctx.api("POST", `/api/collections/${encodeURIComponent(current.name)}/impersonate/${encodeURIComponent(rec.id)}`, { body: {} });
      infoDialog(
        `Token for ${rec.email || rec.id}`,
        h("p", { class: "hint" }, "A token signed in as this record. Anyone holding it acts as them until it expires: keep it secret."),
        copyable("Auth token", res.token, ctx.toast),
      );
    } catch (e) {
      say(e.message, "error");
    }
  };

  const loadRecords = async () => {
    if (!current) {
      replace(recBox, h("p", { class: "empty" }, "No auth collection."));
      return;
    }
    const q = state.search.trim();
    // The search text is a bound value in the filter (quoted, escaped).
    const filter = q ? `email ~ ${JSON.stringify(q)} || id = ${JSON.stringify(q)}` : "";
    let res;
    try {
      res = await ctx.api("GET", `/api/collections/${encodeURIComponent(current.name)}/records`, {
        query: { page: state.page, perPage: PER_PAGE, filter },
      });
    } catch (e) {
      replace(recBox, errorNote(e));
      return;
    }
    const lockOf = (rec) => locks.find((l) => (l.collectionId === current.id || l.collectionName === current.name) && l.recordId === rec.id);
    replace(
      recBox,
      table(
        `${current.name} records`,
        [
          ["E-mail", (r) => r.email || h("span", { class: "muted" }, "(hidden)")],
          ["ID", (r) => h("span", { class: "mono" }, r.id)],
          ["Verified", (r) => (r.verified ? "yes" : h("button", { type: "button", onclick: () => verify(r), "aria-label": `Verify ${r.email || r.id}` }, "Verify"))],
          [
            "Lock",
            (r) => {
              const l = lockOf(r);
              return l
                ? [`locked for ${l.secondsLeft} s `, h("button", { type: "button", onclick: () => unlock(current.name, r.id), "aria-label": `Unlock ${r.email || r.id}` }, "Unlock")]
                : "not locked";
            },
          ],
          ["TOTP", (r) => totpCell(r)],
          ["Impersonate", (r) => h("button", { type: "button", onclick: () => impersonate(r), "aria-label": `Impersonate ${r.email || r.id}` }, "Impersonate")],
        ],
        res.items || [],
        "No record matches.",
      ),
      pager(res, (p) => {
        state.page = p;
        loadRecords();
      }),
    );
  };

  const collSel = select(
    { name: "collection" },
    collections.map((c) => [c.name, c.name]),
    current ? current.name : "",
  );
  collSel.addEventListener("change", () => ctx.navigate(`#/authmgmt/${encodeURIComponent(collSel.value)}`));
  const searchInput = h("input", { type: "search", name: "search", spellcheck: "false" });
  const form = h(
    "form",
    { class: "filter-form", role: "search" },
    field("Auth collection", collSel),
    field("Search by e-mail or id", searchInput),
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.search = searchInput.value;
    state.page = 1;
    loadRecords();
  });

  await loadLocks();
  await loadRecords();
  return h(
    "section",
    { class: "ops authmgmt", "aria-labelledby": "authmgmt-h" },
    h("h1", { id: "authmgmt-h" }, "Auth records"),
    status,
    lockBox,
    h("h2", {}, "Records"),
    form,
    recBox,
  );
}
