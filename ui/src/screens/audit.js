// keepd's audit log (/api/audit): privileged actions, newest first; exact
// filters by action, actor, target and IP, and a time range.
import { h, replace } from "../core/dom.js";
import { field, table, pager, errorNote } from "./ops-common.js";

const FILTERS = [
  ["action", "Action", "e.g. settings.update, backup.create, impersonate, unlock"],
  ["actor", "Actor", "e.g. _superusers/ID"],
  ["target", "Target", ""],
  ["ip", "IP", ""],
  ["since", "Since", "created ≥ this text, e.g. 2026-12-01"],
  ["until", "Until", "created ≤ this text"],
];

export default async function audit(ctx) {
  const state = { page: 1, q: {} };
  const inputs = Object.fromEntries(FILTERS.map(([k]) => [k, h("input", { type: "text", name: k, spellcheck: "false" })]));
  const listBox = h("div", { class: "audit-list", "aria-live": "polite" });

  const load = async () => {
    try {
      const res = await ctx.api("GET", "/api/audit", { query: { page: state.page, perPage: 50, ...state.q } });
      replace(
        listBox,
        table(
          "Audit log, newest first",
          [
            ["Time", (r) => r.created],
            ["Action", (r) => h("span", { class: "mono" }, r.action)],
            ["Actor", (r) => h("span", { class: "mono" }, r.actor)],
            ["Target", (r) => h("span", { class: "mono" }, r.target)],
            ["IP", (r) => r.ip],
            [
              "Change",
              (r) => {
                const diff = r.diff && typeof r.diff === "object" && Object.keys(r.diff).length ? JSON.stringify(r.diff, null, 2) : "";
                return diff ? h("details", {}, h("summary", {}, "Show"), h("pre", { class: "mono" }, diff)) : "";
              },
            ],
          ],
          res.items || [],
          "No entry matches.",
        ),
        pager(res, (p) => {
          state.page = p;
          load();
        }),
      );
    } catch (e) {
      replace(listBox, errorNote(e));
    }
  };

  const form = h(
    "form",
    { class: "filter-form", role: "search" },
    FILTERS.map(([k, label, hint]) => field(label, inputs[k], hint || undefined)),
    h("button", { type: "submit", class: "primary" }, "Apply"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.q = Object.fromEntries(FILTERS.map(([k]) => [k, inputs[k].value.trim()]).filter(([, v]) => v));
    state.page = 1;
    load();
  });

  await load();
  return h(
    "section",
    { class: "ops audit", "aria-labelledby": "audit-h" },
    h("h1", { id: "audit-h" }, "Audit log"),
    form,
    listBox,
  );
}
