// Collections: the list, a new one, and import/export of every collection
// as JSON (PocketBase's GET /api/collections and PUT /api/collections/import).

export default async function collections(ctx) {
  const { api, h } = ctx;
  const list = await api("GET", "/api/collections", { query: { perPage: 500, sort: "name" } });
  const items = list.items || [];

  const rows = items.map((c) =>
    h(
      "tr",
      null,
      h("td", null, h("a", { href: `#/records/${encodeURIComponent(c.name)}` }, c.name)),
      h("td", null, c.type),
      h("td", null, String((c.fields || []).length)),
      h("td", null, c.system ? "yes" : ""),
      h("td", null, h("a", { href: `#/collection/${encodeURIComponent(c.name)}`, "aria-label": `Edit collection ${c.name}` }, "Edit")),
    ),
  );

  function exportAll() {
    const blob = new Blob([JSON.stringify(items, null, 2)], { type: "application/json" });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: "collections.json", hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  const importText = h("textarea", { id: "import-json", name: "collections", class: "mono", rows: 8 });
  const importFile = h("input", { id: "import-file", type: "file", accept: "application/json,.json", onchange: loadFile });
  const deleteMissing = h("input", { id: "import-delete-missing", type: "checkbox", name: "deleteMissing" });
  async function loadFile() {
    const f = importFile.files[0];
    if (f) importText.value = await f.text();
  }
  const importForm = h(
    "form",
    { onsubmit: doImport, novalidate: true },
    h("label", { for: "import-file" }, "JSON file"),
    importFile,
    h("label", { for: "import-json" }, "Collections (JSON array)"),
    importText,
    h("label", { class: "inline", for: "import-delete-missing" }, deleteMissing, "Delete collections missing from the import"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Import")),
  );
  async function doImport(e) {
    e.preventDefault();
    ctx.fieldErrors(importForm, null);
    let parsed;
    try {
      parsed = JSON.parse(importText.value);
    } catch (err) {
      ctx.fieldErrors(importForm, { data: { collections: { code: "json", message: `Not JSON: ${err.message}` } } });
      return;
    }
    try {
      await api("PUT", "/api/collections/import", { body: { collections: parsed, deleteMissing: deleteMissing.checked } });
      ctx.toast("Collections imported.");
      ctx.refresh();
    } catch (err) {
      ctx.fieldErrors(importForm, err);
    }
  }

  return [
    h("div", { class: "row" },
      h("h1", { class: "grow" }, "Collections"),
      h("button", { type: "button", class: "primary", onclick: () => ctx.navigate("#/collection") }, "New collection"),
      h("button", { type: "button", onclick: exportAll }, "Export JSON"),
    ),
    h("div", { class: "table-wrap" },
      h("table", null,
        h("caption", { class: "muted" }, `${items.length} collections`),
        h("thead", null, h("tr", null, ["Name", "Type", "Fields", "System", "Schema"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", null, rows),
      ),
    ),
    h("section", { class: "card", "aria-labelledby": "import-title" }, h("h2", { id: "import-title" }, "Import collections"), importForm),
  ];
}
