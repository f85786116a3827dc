// One record: an input for every field type, file uploads with previews
// (thumbs through /api/files/…?thumb=100x100, a file token for protected
// files), a relation picker searching the target collection; create, save,
// delete. `#/record/<collection>` makes a new one.

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

// A field's value as short text for a table cell (never HTML).
export function cellText(f, v) {
  if (v === null || v === undefined || v === "") return "";
  if (Array.isArray(v)) return v.join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  const s = String(v);
  return s.length > 80 ? `${s.slice(0, 79)}…` : s;
}

// A PocketBase filter string literal for user text.
export function quote(s) {
  return `"${String(s).replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export default async function record(ctx, name, id) {
  const { api, h } = ctx;
  const c = await api("GET", `/api/collections/${encodeURIComponent(name)}`);
  const isNew = !id;
  const rec = isNew ? {} : await api("GET", `/api/collections/${encodeURIComponent(name)}/records/${encodeURIComponent(id)}`);
  const fields = (c.fields || []).filter((f) => f.name !== "id" && !(c.type === "auth" && f.name === "tokenKey"));
  let fileToken = "";
  if (!isNew && fields.some((f) => f.type === "file" && f.protected && rec[f.name] && rec[f.name].length)) {
    try { fileToken = (await api("POST", "/api/files/token")).token; } catch { /* previews stay links */ }
  }
  const fileUrl = (fname, thumb) => {
    const q = new URLSearchParams();
    if (thumb) q.set("thumb", "100x100");
    if (fileToken) q.set("token", fileToken);
    const qs = q.toString();
    return `/api/files/${encodeURIComponent(c.id)}/${encodeURIComponent(rec.id)}/${encodeURIComponent(fname)}${qs ? `?${qs}` : ""}`;
  };

  // Each field: its DOM, and read() → value (or undefined to leave it out).
  const editors = [];
  const form = h("form", { onsubmit: save, novalidate: true });

  for (const f of fields) {
    const fid = `field-${f.name}`;
    const v = rec[f.name];
    const label = h("label", { for: fid }, f.name, f.required ? " *" : "", h("span", { class: "muted" }, ` (${f.type})`));
    let node;
    let read = () => undefined;
    let files = null;
    switch (f.type) {
      case "bool": {
        const el = h("input", { id: fid, name: f.name, type: "checkbox", checked: !!v });
        node = h("div", null, h("label", { class: "inline", for: fid }, el, f.name, h("span", { class: "muted" }, " (bool)")));
        read = () => el.checked;
        break;
      }
      case "number": {
        const el = h("input", { id: fid, name: f.name, type: "number", step: f.onlyInt ? "1" : "any", value: v ?? "" });
        read = () => (el.value === "" ? null : Number(el.value));
        node = [label, el];
        break;
      }
      case "editor":
      case "json": {
        const text = f.type === "json" ? (v === undefined || v === null ? "" : JSON.stringify(v, null, 2)) : v || "";
        const el = h("textarea", { id: fid, name: f.name, rows: f.type === "json" ? 5 : 6, class: f.type === "json" ? "mono" : null, value: text });
        read = () => {
          if (f.type !== "json") return el.value;
          if (el.value.trim() === "") return null;
          try { return JSON.parse(el.value); } catch { throw fieldError(f.name, "Not valid JSON."); }
        };
        node = [label, el];
        break;
      }
      case "select": {
        const multi = (f.maxSelect || 1) > 1;
        const chosen = new Set(Array.isArray(v) ? v : v ? [v] : []);
        const el = h("select", { id: fid, name: f.name, multiple: multi },
          !multi && h("option", { value: "" }, "—"),
          (f.values || []).map((x) => h("option", { value: x, selected: chosen.has(x) }, x)));
        read = () => (multi ? [...el.selectedOptions].map((o) => o.value) : el.value);
        node = [label, el];
        break;
      }
      case "autodate":
        node = [h("p", null, h("strong", null, f.name), " ", h("span", { class: "muted" }, v || "(set by the server)"))];
        break;
      case "password": {
        const el = h("input", { id: fid, name: f.name, type: "password", autocomplete: "new-password" });
        const conf = h("input", { id: `${fid}-confirm`, name: "passwordConfirm", type: "password", autocomplete: "new-password" });
        node = [label, el, h("label", { for: `${fid}-confirm` }, "Confirm password"), conf];
        read = () => (el.value ? el.value : undefined);
        editors.push({ f: { name: "passwordConfirm" }, read: () => (conf.value ? conf.value : undefined) });
        break;
      }
      case "geoPoint": {
        const p = v || { lon: 0, lat: 0 };
        const lon = h("input", { id: fid, name: `${f.name}.lon`, type: "number", step: "any", value: p.lon });
        const lat = h("input", { id: `${fid}-lat`, name: `${f.name}.lat`, type: "number", step: "any", value: p.lat });
        node = h("fieldset", { class: "field" }, h("legend", null, `${f.name} (geoPoint)`),
          h("label", { for: fid }, "Longitude"), lon, h("label", { for: `${fid}-lat` }, "Latitude"), lat);
        read = () => ({ lon: Number(lon.value) || 0, lat: Number(lat.value) || 0 });
        break;
      }
      case "file": {
        const multi = (f.maxSelect || 1) > 1;
        const have = Array.isArray(v) ? v : v ? [v] : [];
        const removed = new Set();
        const input = h("input", { id: fid, name: f.name, type: "file", multiple: multi, accept: (f.mimeTypes || []).join(",") || null });
        const pending = h("div", { class: "thumbs", "aria-live": "polite" });
        input.addEventListener("change", () => {
          for (const img of pending.querySelectorAll("img")) URL.revokeObjectURL(img.src);
          pending.replaceChildren(...[...input.files].map((file) =>
            h("figure", null, IMAGE.test(file.name) ? h("img", { src: URL.createObjectURL(file), alt: `New file ${file.name}` }) : null,
              h("figcaption", null, `new: ${file.name}`))));
        });
        const current = h("div", { class: "thumbs" }, have.map((fname) => {
          const box = h("input", { id: `${fid}-rm-${fname}`, type: "checkbox", onchange: (e) => { e.target.checked ? removed.add(fname) : removed.delete(fname); } });
          return h("figure", null,
            IMAGE.test(fname) ? h("img", { src: fileUrl(fname, true), alt: fname, loading: "lazy" }) : null,
            h("figcaption", null, h("a", { href: fileUrl(fname, false), target: "_blank", rel: "noopener noreferrer" }, fname)),
            h("label", { class: "inline", for: `${fid}-rm-${fname}` }, box, "Remove"));
        }));
        files = () => ({ input, multi, removed: [...removed] });
        node = [label, current, input, pending];
        break;
      }
      case "relation": {
        const multi = (f.maxSelect || 1) > 1;
        const picked = Array.isArray(v) ? [...v] : v ? [v] : [];
        const chips = h("ul", { class: "row", "aria-label": `${f.name}: selected records` });
        const draw = () => chips.replaceChildren(...picked.map((rid, i) => h("li", { class: "pill" }, rid, " ",
          h("button", { type: "button", class: "link", "aria-label": `Remove ${rid} from ${f.name}`, onclick: () => { picked.splice(i, 1); draw(); } }, "×"))));
        draw();
        const q = h("input", { id: fid, name: f.name, type: "search", placeholder: "Search the target collection" });
        const results = h("ul", { class: "picker", "aria-live": "polite" });
        let target = null;
        async function find() {
          try {
            target = target || (await api("GET", `/api/collections/${encodeURIComponent(f.collectionId)}`));
            const textFields = (target.fields || []).filter((x) => ["text", "email", "url"].includes(x.type) && !x.hidden).slice(0, 3);
            const t = q.value.trim();
            const filter = t ? textFields.map((x) => `${x.name} ~ ${quote(t)}`).concat(`id ~ ${quote(t)}`).join(" || ") : "";
            const found = await api("GET", `/api/collections/${encodeURIComponent(target.id)}/records`, { query: { perPage: 10, filter } });
            const show = (r) => textFields.filter((x) => x.name !== "id").map((x) => r[x.name]).filter(Boolean).join(" · ");
            results.replaceChildren(...found.items.map((r) => h("li", null,
              h("button", { type: "button", onclick: () => {
                if (!multi) picked.length = 0;
                if (!picked.includes(r.id)) picked.push(r.id);
                draw();
              } }, `Add ${r.id}`), " ", show(r))));
            if (!found.items.length) results.replaceChildren(h("li", { class: "muted" }, "No records found."));
          } catch (err) {
            results.replaceChildren(h("li", { class: "field-error" }, err.message));
          }
        }
        q.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); find(); } });
        node = [label, chips, h("div", { class: "row" }, h("div", { class: "grow" }, q),
          h("button", { type: "button", onclick: find, "aria-label": `Find records for ${f.name}` }, "Find")), results];
        read = () => (multi ? [...picked] : picked[0] || "");
        break;
      }
      default: {
        // text, email, url, date: text inputs (PocketBase's date format is
        // "YYYY-MM-DD HH:MM:SS.sssZ").
        const type = f.type === "email" ? "email" : f.type === "url" ? "url" : "text";
        const el = h("input", { id: fid, name: f.name, type, value: v ?? "",
          placeholder: f.type === "date" ? "2024-01-31 12:00:00.000Z" : null,
          autocomplete: "off" });
        read = () => el.value;
        node = [label, el];
      }
    }
    editors.push({ f, read, files });
    form.append(h("div", { class: "edit-field", dataset: { field: f.name } }, node));
  }

  function fieldError(key, message) {
    const e = new Error(message);
    e.data = { [key]: { code: "invalid", message } };
    return e;
  }

  async function save(e) {
    e.preventDefault();
    ctx.fieldErrors(form, null);
    const data = {};
    const parts = [];
    try {
      for (const { f, read, files } of editors) {
        const v = read();
        if (v !== undefined) data[f.name] = v;
        if (files) {
          const { input, multi, removed } = files();
          if (removed.length) data[`${f.name}-`] = removed;
          for (const file of input.files) parts.push([multi ? `${f.name}+` : f.name, file]);
        }
      }
    } catch (err) {
      ctx.fieldErrors(form, err);
      return;
    }
    const base = `/api/collections/${encodeURIComponent(name)}/records`;
    let opts = { body: data };
    if (parts.length) {
      const fd = new FormData();
      fd.append("@jsonPayload", JSON.stringify(data));
      for (const [k, file] of parts) fd.append(k, file);
      opts = { form: fd };
    }
    try {
      const saved = isNew ? await api("POST", base, opts) : await api("PATCH", `${base}/${encodeURIComponent(rec.id)}`, opts);
      ctx.toast(`Record ${saved.id} saved.`);
      if (isNew) ctx.navigate(`#/record/${encodeURIComponent(name)}/${encodeURIComponent(saved.id)}`);
      else ctx.refresh();
    } catch (err) {
      ctx.fieldErrors(form, err);
    }
  }

  async function remove() {
    if (!confirm(`Delete record ${rec.id}?`)) return;
    try {
      await api("DELETE", `/api/collections/${encodeURIComponent(name)}/records/${encodeURIComponent(rec.id)}`);
      ctx.toast(`Record ${rec.id} deleted.`);
      ctx.navigate(`#/records/${encodeURIComponent(name)}`);
    } catch (err) {
      ctx.toast(err.message, "error");
    }
  }

  const readOnly = c.type === "view";
  form.append(h("div", { class: "actions" },
    !readOnly && h("button", { type: "submit", class: "primary", id: "save-record" }, isNew ? "Create record" : "Save record"),
    !isNew && !readOnly && h("button", { type: "button", class: "danger", id: "delete-record", onclick: remove }, "Delete record"),
    h("a", { href: `#/records/${encodeURIComponent(name)}` }, "Back to the list")));

  return [
    h("h1", null, isNew ? `New record in ${c.name}` : `Record ${rec.id}`),
    !isNew && h("p", { class: "muted" }, `created ${rec.created || "–"} · updated ${rec.updated || "–"}`),
    form,
  ];
}
