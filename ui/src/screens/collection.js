// One collection's schema: name and type, every PocketBase field type with
// its options, the API rules (checked as you type through
// POST /api/rules/check), indexes. `#/collection` makes a new one.

export const FIELD_TYPES = [
  "text", "number", "bool", "email", "url", "editor", "date", "autodate",
  "select", "json", "file", "relation", "password", "geoPoint",
];

// Options per field type: [key, kind, label]. kind: number | text | bool |
// list (comma separated) | collection (a collection id).
const OPTIONS = {
  text: [["min", "number", "Min length"], ["max", "number", "Max length"], ["pattern", "text", "Pattern (regex)"],
    ["autogeneratePattern", "text", "Autogenerate pattern"], ["primaryKey", "bool", "Primary key"]],
  number: [["min", "number", "Min"], ["max", "number", "Max"], ["onlyInt", "bool", "Integers only"]],
  bool: [],
  email: [["onlyDomains", "list", "Only domains"], ["exceptDomains", "list", "Except domains"]],
  url: [["onlyDomains", "list", "Only domains"], ["exceptDomains", "list", "Except domains"]],
  editor: [["maxSize", "number", "Max size (bytes)"], ["convertURLs", "bool", "Convert URLs"]],
  date: [["min", "text", "Min date"], ["max", "text", "Max date"]],
  autodate: [["onCreate", "bool", "Set on create"], ["onUpdate", "bool", "Set on update"]],
  select: [["values", "list", "Values"], ["maxSelect", "number", "Max selected"]],
  json: [["maxSize", "number", "Max size (bytes)"]],
  file: [["maxSelect", "number", "Max files"], ["maxSize", "number", "Max size (bytes)"], ["mimeTypes", "list", "MIME types"],
    ["thumbs", "list", "Thumb sizes"], ["protected", "bool", "Protected (needs a file token)"]],
  relation: [["collectionId", "collection", "Target collection"], ["minSelect", "number", "Min selected"],
    ["maxSelect", "number", "Max selected"], ["cascadeDelete", "bool", "Cascade delete"]],
  password: [["min", "number", "Min length"], ["max", "number", "Max length"], ["pattern", "text", "Pattern (regex)"],
    ["cost", "number", "bcrypt cost"]],
  geoPoint: [],
};

const DEFAULTS = {
  select: { values: [], maxSelect: 1 },
  file: { maxSelect: 1, maxSize: 0, mimeTypes: [], thumbs: [], protected: false },
  relation: { collectionId: "", maxSelect: 1, minSelect: 0, cascadeDelete: false },
  autodate: { onCreate: true, onUpdate: false },
  number: { min: null, max: null, onlyInt: false },
};

const RULES = [
  ["listRule", "List rule"], ["viewRule", "View rule"], ["createRule", "Create rule"],
  ["updateRule", "Update rule"], ["deleteRule", "Delete rule"],
];
const AUTH_RULES = [["authRule", "Auth rule"], ["manageRule", "Manage rule"]];

export default async function collection(ctx, name) {
  const { api, h } = ctx;
  const all = (await api("GET", "/api/collections", { query: { perPage: 500, sort: "name" } })).items || [];
  const isNew = !name;
  const c = isNew
    ? { name: "", type: "base", fields: [], indexes: [], listRule: null, viewRule: null, createRule: null, updateRule: null, deleteRule: null }
    : await api("GET", `/api/collections/${encodeURIComponent(name)}`);
  const model = structuredClone(c);
  model.fields = model.fields || [];

  const fieldsBox = h("div", { id: "fields" });
  const form = h("form", { onsubmit: save, novalidate: true });
  let ruleCheck = true; // off once the server says it has no rule checker

  function optionInput(f, i, [key, kind, label]) {
    const id = `f${i}-${key}`;
    const name = `fields.${i}.${key}`;
    if (kind === "bool") {
      return h("label", { class: "inline", for: id },
        h("input", { id, name, type: "checkbox", checked: !!f[key], onchange: (e) => { f[key] = e.target.checked; } }), label);
    }
    if (kind === "collection") {
      return h("div", null, h("label", { for: id }, label),
        h("select", { id, name, onchange: (e) => { f[key] = e.target.value; } },
          h("option", { value: "" }, "— choose —"),
          all.map((t) => h("option", { value: t.id, selected: t.id === f[key] }, t.name))));
    }
    const value = kind === "list" ? (f[key] || []).join(", ") : f[key] ?? "";
    return h("div", null, h("label", { for: id }, label),
      h("input", {
        id, name, type: kind === "number" ? "number" : "text", value: String(value),
        oninput: (e) => {
          const v = e.target.value;
          if (kind === "list") f[key] = v.split(",").map((s) => s.trim()).filter(Boolean);
          else if (kind === "number") f[key] = v === "" ? (f.type === "number" ? null : 0) : Number(v);
          else f[key] = v;
        },
      }));
  }

  function drawFields() {
    const nodes = model.fields.map((f, i) => {
      const id = `f${i}-name`;
      return h("fieldset", { class: "field", dataset: { field: f.name || "" } },
        h("legend", null, `${f.name || "(unnamed)"} · ${f.type}${f.system ? " · system" : ""}`),
        h("div", { class: "grid" },
          h("div", null, h("label", { for: id }, "Name"),
            h("input", { id, name: `fields.${i}.name`, value: f.name || "", disabled: !!f.system, required: true,
              oninput: (e) => { f.name = e.target.value; } })),
          ...["required", "hidden", "presentable"].map((k) =>
            h("label", { class: "inline", for: `f${i}-${k}` },
              h("input", { id: `f${i}-${k}`, name: `fields.${i}.${k}`, type: "checkbox", checked: !!f[k],
                onchange: (e) => { f[k] = e.target.checked; } }), k)),
          ...(OPTIONS[f.type] || []).map((o) => optionInput(f, i, o)),
        ),
        !f.system && h("button", { type: "button", class: "danger", onclick: () => { model.fields.splice(i, 1); drawFields(); } },
          `Remove field ${f.name || i + 1}`),
      );
    });
    fieldsBox.replaceChildren(...nodes);
  }

  const newType = h("select", { id: "new-field-type", name: "newFieldType" }, FIELD_TYPES.map((t) => h("option", { value: t }, t)));
  function addField() {
    const type = newType.value;
    model.fields.push({ name: `${type}${model.fields.length + 1}`.toLowerCase(), type, required: false, hidden: false,
      presentable: false, ...structuredClone(DEFAULTS[type] || {}) });
    drawFields();
    const inputs = fieldsBox.querySelectorAll("fieldset input[id$='-name']");
    const last = inputs[inputs.length - 1];
    if (last) { last.focus(); last.select(); }
  }

  // --- rules ---
  function ruleInput(key, label) {
    const id = `rule-${key}`;
    const status = h("p", { id: `${id}-status`, class: "muted", "aria-live": "polite" });
    const locked = model[key] === null || model[key] === undefined;
    const text = h("textarea", { id, name: key, class: "mono", rows: 2, disabled: locked, "aria-describedby": `${id}-status`,
      value: locked ? "" : model[key], oninput: () => { model[key] = text.value; check(); } });
    const lock = h("input", { id: `${id}-locked`, type: "checkbox", checked: locked, onchange: () => {
      text.disabled = lock.checked;
      model[key] = lock.checked ? null : text.value;
      status.textContent = lock.checked ? "Superusers only." : "";
      if (!lock.checked) check();
    } });
    if (locked) status.textContent = "Superusers only.";
    let timer = 0;
    let seq = 0;
    function check() {
      clearTimeout(timer);
      if (!ruleCheck || isNew) return;
      timer = setTimeout(async () => {
        const mine = ++seq;
        try {
          await api("POST", "/api/rules/check", { body: { collection: c.name, rule: text.value } });
          if (mine !== seq) return;
          text.removeAttribute("aria-invalid");
          status.className = "ok";
          status.textContent = text.value.trim() ? "Valid rule." : "Empty: anyone, guests included.";
        } catch (err) {
          if (mine !== seq) return;
          if (err.status === 404 || err.status === 405) { ruleCheck = false; status.textContent = ""; return; }
          text.setAttribute("aria-invalid", "true");
          status.className = "field-error";
          // 400 {data: {rule: {code, message}}}: the parser's message.
          status.textContent = (err.data.rule && err.data.rule.message) || err.message;
        }
      }, 350);
    }
    return h("div", { class: "rule" },
      h("label", { for: id }, label), text,
      h("label", { class: "inline", for: `${id}-locked` }, lock, "Locked (superusers only)"), status);
  }

  const nameInput = h("input", { id: "coll-name", name: "name", value: model.name, required: true, oninput: (e) => { model.name = e.target.value; } });
  const typeSelect = h("select", { id: "coll-type", name: "type", disabled: !isNew, onchange: (e) => { model.type = e.target.value; ctxRedraw(); } },
    ["base", "auth", "view"].map((t) => h("option", { value: t, selected: t === model.type }, t)));
  const indexes = h("textarea", { id: "coll-indexes", name: "indexes", class: "mono", rows: 3, value: (model.indexes || []).join("\n"),
    oninput: (e) => { model.indexes = e.target.value.split("\n").map((s) => s.trim()).filter(Boolean); } });
  const viewQuery = h("textarea", { id: "coll-viewQuery", name: "viewQuery", class: "mono", rows: 4, value: model.viewQuery || "",
    oninput: (e) => { model.viewQuery = e.target.value; } });
  const typed = h("div");

  function ctxRedraw() {
    const rules = model.type === "auth" ? RULES.concat(AUTH_RULES) : model.type === "view" ? RULES.slice(0, 2) : RULES;
    typed.replaceChildren(
      model.type === "view"
        ? h("section", { "aria-labelledby": "sq" }, h("h2", { id: "sq" }, "View query"), h("label", { for: "coll-viewQuery" }, "SELECT statement"), viewQuery)
        : h("section", { "aria-labelledby": "fh" }, h("h2", { id: "fh" }, "Fields"), fieldsBox,
          h("div", { class: "row" }, h("label", { for: "new-field-type" }, "New field type"), newType,
            h("button", { type: "button", id: "add-field", onclick: addField }, "Add field"))),
      h("section", { "aria-labelledby": "rh" }, h("h2", { id: "rh" }, "API rules"),
        h("p", { class: "muted" }, "PocketBase filter syntax, e.g. @request.auth.id != \"\". Locked: superusers only; empty: everyone."),
        rules.map(([k, l]) => ruleInput(k, l))),
      model.type === "auth" && authOptions(),
      model.type !== "view" && h("section", { "aria-labelledby": "ih" }, h("h2", { id: "ih" }, "Indexes"),
        h("label", { for: "coll-indexes" }, "One CREATE INDEX statement per line"), indexes),
    );
    drawFields();
  }

  // Auth collections: sign-in methods and token lifetimes ([path, kind, label]).
  const AUTH_OPTIONS = [
    ["passwordAuth.enabled", "bool", "Password sign-in"], ["passwordAuth.identityFields", "list", "Identity fields"],
    ["otp.enabled", "bool", "One-time codes by e-mail (OTP)"], ["otp.duration", "number", "OTP lifetime (s)"],
    ["otp.length", "number", "OTP length"], ["mfa.enabled", "bool", "Multi-factor (two methods)"],
    ["mfa.duration", "number", "MFA window (s)"], ["authToken.duration", "number", "Auth token lifetime (s)"],
  ];
  function authOptions() {
    const at = (path) => path.split(".").reduce((o, k) => (o[k] = o[k] || {}), model);
    const inputs = AUTH_OPTIONS.map(([path, kind, label]) => {
      const [group, key] = path.split(".");
      const id = `opt-${group}-${key}`;
      const obj = at(group);
      if (kind === "bool") {
        return h("label", { class: "inline", for: id },
          h("input", { id, name: path, type: "checkbox", checked: !!obj[key], onchange: (e) => { obj[key] = e.target.checked; } }), label);
      }
      const value = kind === "list" ? (obj[key] || []).join(", ") : obj[key] ?? "";
      return h("div", null, h("label", { for: id }, label),
        h("input", { id, name: path, type: kind === "number" ? "number" : "text", value: String(value), oninput: (e) => {
          obj[key] = kind === "list" ? e.target.value.split(",").map((x) => x.trim()).filter(Boolean) : Number(e.target.value) || 0;
        } }));
    });
    return h("section", { "aria-labelledby": "ah" }, h("h2", { id: "ah" }, "Sign-in"), h("div", { class: "grid" }, inputs));
  }

  async function save(e) {
    e.preventDefault();
    ctx.fieldErrors(form, null);
    const body = { name: model.name, type: model.type, indexes: model.indexes || [] };
    for (const [k] of RULES.concat(AUTH_RULES)) if (k in model || isNew) body[k] = model[k] ?? null;
    if (model.type === "view") body.viewQuery = model.viewQuery || "";
    else body.fields = model.fields;
    if (model.type !== "auth") { delete body.authRule; delete body.manageRule; }
    else for (const g of ["passwordAuth", "otp", "mfa", "authToken"]) if (model[g]) body[g] = model[g];
    try {
      const saved = isNew
        ? await api("POST", "/api/collections", { body })
        : await api("PATCH", `/api/collections/${encodeURIComponent(c.id)}`, { body });
      ctx.toast(`Collection ${saved.name} saved.`);
      ctx.navigate(`#/collection/${encodeURIComponent(saved.name)}`);
    } catch (err) {
      ctx.fieldErrors(form, err);
    }
  }

  async function remove() {
    if (!confirm(`Delete the collection ${c.name} and all its records?`)) return;
    try {
      await api("DELETE", `/api/collections/${encodeURIComponent(c.id)}`);
      ctx.toast(`Collection ${c.name} deleted.`);
      ctx.navigate("#/collections");
    } catch (err) {
      ctx.toast(err.message, "error");
    }
  }

  form.append(
    h("div", { class: "grid" },
      h("div", null, h("label", { for: "coll-name" }, "Name"), nameInput),
      h("div", null, h("label", { for: "coll-type" }, "Type"), typeSelect)),
    typed,
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary", id: "save-collection" }, isNew ? "Create collection" : "Save changes"),
      !isNew && h("a", { href: `#/records/${encodeURIComponent(c.name)}` }, "Records"),
      !isNew && !c.system && h("button", { type: "button", class: "danger", onclick: remove }, "Delete collection")),
  );
  ctxRedraw();
  return [h("h1", null, isNew ? "New collection" : `Collection ${c.name}`), form];
}
