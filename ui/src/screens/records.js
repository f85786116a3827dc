// A collection's records: search (PocketBase filter syntax), sort by a
// column, pages; new records arrive live through /api/realtime (SSE).

import { subscribe } from "../core/realtime.js";
import { cellText } from "./record.js";

const PER_PAGE = 20;

export default async function records(ctx, name, page = "1", sort = "-created", filter = "") {
  const { api, h } = ctx;
  const c = await api("GET", `/api/collections/${encodeURIComponent(name)}`);
  const cols = (c.fields || []).filter((f) => !f.hidden && f.type !== "password" && f.name !== "id").slice(0, 6);
  const hasCreated = (c.fields || []).some((f) => f.name === "created");
  if (sort === "-created" && !hasCreated) sort = "";
  if (sort === "_") sort = "";
  let list;
  let filterError = "";
  try {
    list = await api("GET", `/api/collections/${encodeURIComponent(name)}/records`, {
      query: { page, perPage: PER_PAGE, sort, filter },
    });
  } catch (err) {
    if (err.status !== 400) throw err;
    filterError = err.message;
    list = { items: [], page: 1, totalPages: 0, totalItems: 0 };
  }
  const go = (p, s, f) => ctx.navigate(`#/records/${[name, p, s || "_", f].map((x) => encodeURIComponent(x)).join("/")}`);

  const search = h("input", { id: "record-search", name: "filter", type: "search", value: filter, placeholder: "e.g. title ~ \"hello\" && created > \"2024-01-01\"",
    "aria-invalid": filterError ? "true" : null, "aria-describedby": filterError ? "search-error" : null });
  const searchForm = h("form", { role: "search", class: "row", onsubmit: (e) => { e.preventDefault(); go(1, sort, search.value.trim()); } },
    h("label", { for: "record-search" }, "Filter"), h("div", { class: "grow" }, search),
    h("button", { type: "submit" }, "Search"),
    filter && h("button", { type: "button", class: "ghost", onclick: () => go(1, sort, "") }, "Clear"));

  function header(f) {
    const dir = sort === f ? "ascending" : sort === `-${f}` ? "descending" : null;
    const next = sort === f ? `-${f}` : f;
    return h("th", { scope: "col", "aria-sort": dir },
      h("button", { type: "button", onclick: () => go(1, next, filter), "aria-label": `Sort by ${f}${dir === "ascending" ? ", descending" : ""}` },
        f, dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : ""));
  }

  function row(r, fresh) {
    return h("tr", { class: fresh ? "fresh" : null, dataset: { id: r.id } },
      h("td", null, h("a", { href: `#/record/${encodeURIComponent(name)}/${encodeURIComponent(r.id)}` }, r.id)),
      cols.map((f) => h("td", null, cellText(f, r[f.name]))));
  }
  const tbody = h("tbody", null, list.items.map((r) => row(r, false)));

  // Live: a record created elsewhere appears at the top.
  ctx.onCleanup(subscribe(`${c.name}/*`, (ev) => {
    if (ev.action === "create" && !tbody.querySelector(`tr[data-id="${CSS.escape(ev.record.id)}"]`)) {
      tbody.prepend(row(ev.record, true));
      ctx.toast(`New record ${ev.record.id}`);
    } else if (ev.action === "delete") {
      const tr = tbody.querySelector(`tr[data-id="${CSS.escape(ev.record.id)}"]`);
      if (tr) tr.remove();
    }
  }));

  const p = Number(list.page) || 1;
  return [
    h("div", { class: "row" },
      h("h1", { class: "grow" }, `Records of ${c.name}`),
      c.type !== "view" && h("button", { type: "button", class: "primary", id: "new-record",
        onclick: () => ctx.navigate(`#/record/${encodeURIComponent(name)}`) }, "New record"),
      h("a", { href: `#/collection/${encodeURIComponent(name)}` }, "Schema")),
    searchForm,
    filterError && h("p", { id: "search-error", class: "field-error", role: "alert" }, filterError),
    h("div", { class: "table-wrap" },
      h("table", null,
        h("caption", { class: "muted" }, `${list.totalItems} records · page ${p} of ${Math.max(1, list.totalPages)}`),
        h("thead", null, h("tr", null, header("id"), cols.map((f) => header(f.name)))),
        tbody)),
    h("nav", { class: "row", "aria-label": "Pages" },
      h("button", { type: "button", disabled: p <= 1, onclick: () => go(p - 1, sort, filter) }, "Previous page"),
      h("button", { type: "button", disabled: p >= list.totalPages, onclick: () => go(p + 1, sort, filter) }, "Next page")),
  ];
}
