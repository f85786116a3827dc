// The rule tester: which records a list/view rule gives an auth record (or
// a guest), and for one record id, which clauses refused it
// (POST /api/rules/test).

import { cellText } from "./record.js";

export default async function ruleTester(ctx, preset = "") {
  const { api, h } = ctx;
  const all = (await api("GET", "/api/collections", { query: { perPage: 500, sort: "name" } })).items || [];
  const auths = all.filter((c) => c.type === "auth");
  const out = h("section", { id: "rule-result", "aria-live": "polite", "aria-labelledby": "rt-result" });

  const coll = h("select", { id: "rt-collection", name: "collection", onchange: fillRule },
    all.filter((c) => !c.system || c.name === "users").map((c) => h("option", { value: c.name, selected: c.name === preset }, c.name)));
  const kind = h("select", { id: "rt-kind", name: "kind", onchange: fillRule },
    h("option", { value: "list" }, "list"), h("option", { value: "view" }, "view"));
  const authColl = h("select", { id: "rt-auth-collection", name: "auth.collection" },
    h("option", { value: "" }, "Guest (no auth record)"), auths.map((c) => h("option", { value: c.name }, c.name)));
  const authId = h("input", { id: "rt-auth-id", name: "auth.id", placeholder: "auth record id" });
  const recordId = h("input", { id: "rt-record-id", name: "recordId", placeholder: "optional: why is this record refused?" });
  const useSaved = h("input", { id: "rt-use-saved", type: "checkbox", checked: true, onchange: () => { rule.disabled = useSaved.checked; } });
  const rule = h("textarea", { id: "rt-rule", name: "rule", class: "mono", rows: 3, disabled: true });

  function fillRule() {
    const c = all.find((x) => x.name === coll.value);
    const r = c ? c[`${kind.value}Rule`] : null;
    rule.value = r === null || r === undefined ? "" : r;
    savedNote.textContent = r === null || r === undefined ? "Saved rule: locked (superusers only)." : r === "" ? "Saved rule: empty (everyone)." : "";
  }
  const savedNote = h("p", { class: "muted", id: "rt-saved-note" });

  const form = h("form", { onsubmit: run, novalidate: true },
    h("div", { class: "grid" },
      h("div", null, h("label", { for: "rt-collection" }, "Collection"), coll),
      h("div", null, h("label", { for: "rt-kind" }, "Rule"), kind),
      h("div", null, h("label", { for: "rt-auth-collection" }, "As"), authColl),
      h("div", null, h("label", { for: "rt-auth-id" }, "Auth record id"), authId),
      h("div", null, h("label", { for: "rt-record-id" }, "Record id"), recordId)),
    h("label", { class: "inline", for: "rt-use-saved" }, useSaved, "Use the saved rule"),
    h("label", { for: "rt-rule" }, "Rule to test"), rule, savedNote,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "rt-run" }, "Test rule")));

  async function run(e) {
    e.preventDefault();
    ctx.fieldErrors(form, null);
    const body = { collection: coll.value, kind: kind.value, perPage: 50 };
    if (!useSaved.checked) body.rule = rule.value;
    if (authColl.value) body.auth = { collection: authColl.value, id: authId.value.trim() };
    if (recordId.value.trim()) body.recordId = recordId.value.trim();
    let r;
    try {
      r = await api("POST", "/api/rules/test", { body });
    } catch (err) {
      out.replaceChildren(h("p", { class: "error-box", role: "alert" }, `The rule tester answered ${err.status}: ${err.message}`));
      ctx.fieldErrors(form, Object.keys(err.data).length ? err : null);
      return;
    }
    const items = r.items || [];
    const cols = items.length ? Object.keys(items[0]).filter((k) => !["collectionId", "collectionName"].includes(k)).slice(0, 6) : [];
    out.replaceChildren(
      h("h2", { id: "rt-result" }, "Result"),
      h("p", null, "Rule: ", r.locked ? h("strong", null, "locked (superusers only)") : h("code", null, r.rule === "" ? "(empty: everyone)" : r.rule)),
      h("p", { id: "rt-total" }, `${r.totalItems} record(s) visible to ${authColl.value ? `${authColl.value}/${authId.value}` : "a guest"}.`),
      items.length > 0 && h("div", { class: "table-wrap" }, h("table", null,
        h("thead", null, h("tr", null, cols.map((k) => h("th", { scope: "col" }, k)))),
        h("tbody", null, items.map((it) => h("tr", null, cols.map((k) => h("td", null, cellText(null, it[k])))))))),
      r.record && h("section", { class: "card", id: "rt-record" },
        h("h3", null, `Record ${r.record.id}: `, r.record.allowed ? h("span", { class: "ok" }, "allowed") : h("span", { class: "bad" }, "refused")),
        h("ul", null, (r.record.clauses || []).map((cl) => h("li", null,
          h("span", { class: cl.result ? "ok" : "bad" }, cl.result ? "✓ passes " : "✗ refuses "), h("code", null, cl.expr))))),
    );
  }

  fillRule();
  return [h("h1", null, "Rule tester"),
    h("p", { class: "muted" }, "See which records a list or view rule gives an auth record or a guest, and which clauses refuse one record."),
    form, out];
}
