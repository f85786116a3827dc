// Small pieces shared by the operations screens (settings, backups, logs,
// audit, crons, auth records, sync). Everything is built with h(): values
// from the server are text, never HTML.
import { h, replace } from "../core/dom.js";

let seq = 0;
// A unique id for label/input pairs.
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${seq}`;
}

// A labelled input: field("Bucket", h("input", {...})). The label names the
// control through `for`; the hint (optional) through aria-describedby.
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const lab = h("label", { for: id }, label);
  const check = control.type === "checkbox";
  // A checkbox before its label, as the platform draws them.
  const kids = check ? [control, lab] : [lab, control];
  if (hint) {
    const hid = `${id}-hint`;
    control.setAttribute("aria-describedby", hid);
    kids.push(h("small", { id: hid, class: "hint" }, hint));
  }
  return h("div", { class: check ? "ops-field ops-check" : "ops-field" }, kids);
}

// <select> with its options; `value` picks the selected one.
export function select(props, options, value) {
  return h(
    "select",
    props,
    options.map(([v, label]) => h("option", { value: v, selected: String(v) === String(value) }, label)),
  );
}

// A table with a header row: cols = [[label, row => cell content], ...].
export function table(caption, cols, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "ops-table" },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, cols.map(([label]) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, cols.map(([, cell]) => h("td", {}, cell(r)))))),
    ),
  );
}

// Previous / next for PocketBase's list shape ({page, totalPages}).
export function pager(res, go) {
  const page = res.page || 1;
  const pages = res.totalPages > 0 ? res.totalPages : page;
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => go(page - 1) }, "Previous"),
    h("span", { "aria-live": "polite" }, `Page ${page} of ${Math.max(pages, 1)} (${Math.max(res.totalItems, 0)} items)`),
    h("button", { type: "button", disabled: page >= pages, onclick: () => go(page + 1) }, "Next"),
  );
}

// A modal <dialog> asking to confirm; resolves true/false.
export function confirmDialog(message, confirmLabel = "Confirm") {
  return new Promise((resolve) => {
    const dlg = h("dialog", { class: "ops-dialog", "aria-label": "Confirm" });
    const done = (ok) => {
      dlg.close();
      dlg.remove();
      resolve(ok);
    };
    replace(
      dlg,
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onclick: () => done(false) }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => done(true) }, confirmLabel),
      ),
    );
    dlg.addEventListener("cancel", () => done(false));
    document.body.append(dlg);
    dlg.showModal();
  });
}

// A modal <dialog> showing nodes with a Close button.
export function infoDialog(title, ...children) {
  const dlg = h("dialog", { class: "ops-dialog", "aria-label": title });
  const close = () => {
    dlg.close();
    dlg.remove();
  };
  replace(
    dlg,
    h("h2", {}, title),
    children,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: close }, "Close")),
  );
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

// A read-only secret (a token) with a Copy button.
export function copyable(label, value, toast) {
  const input = h("input", { type: "text", readonly: true, value, class: "mono", spellcheck: "false" });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      toast("Copied.", "ok");
    } catch {
      input.select();
      toast("Select the text and copy it.", "error");
    }
  };
  return h("div", { class: "copyable" }, field(label, input), h("button", { type: "button", onclick: copy }, "Copy"));
}

export function fmtBytes(n) {
  if (!(n >= 0)) return "";
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

// An error box for a failed load.
export function errorNote(err) {
  return h("p", { class: "error-note", role: "alert" }, (err && err.message) || String(err));
}

// The value of an input named `name` inside `root`, by type.
export function read(root, name) {
  const el = root.querySelector(`[name="${CSS.escape(name)}"]`);
  if (!el) return undefined;
  if (el.type === "checkbox") return el.checked;
  if (el.type === "number") return el.value === "" ? 0 : Number(el.value);
  return el.value;
}
