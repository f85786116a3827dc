// Backups: list, create, download, upload, restore (confirmed), delete.
// A download asks for a superuser file token (POST /api/files/token) and
// fetches `/api/backups/{key}?token=…` into a blob: the token never lands
// in the address bar or the history.
import { h, replace } from "../core/dom.js";
import { field, table, confirmDialog, fmtBytes, errorNote } from "./ops-common.js";

export default async function backups(ctx) {
  const list = h("div", { class: "backup-list", "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });
  const say = (msg, kind = "ok") => {
    replace(status, kind === "error" ? h("span", { class: "error-note" }, msg) : msg);
    ctx.toast(msg, kind);
  };

  const load = async () => {
    let items;
    try {
      items = await ctx.api("GET", "/api/backups");
    } catch (e) {
      replace(list, errorNote(e));
      return;
    }
    items.sort((a, b) => String(b.modified).localeCompare(String(a.modified)));
    replace(
      list,
      table(
        "Backups",
        [
          ["Name", (b) => h("span", { class: "mono" }, b.key)],
          ["Size", (b) => fmtBytes(b.size)],
          ["Modified", (b) => b.modified],
          [
            "Actions",
            (b) =>
              h(
                "div",
                { class: "row-actions" },
                h("button", { type: "button", onclick: () => download(b.key), "aria-label": `Download ${b.key}` }, "Download"),
                h("button", { type: "button", onclick: () => restore(b.key), "aria-label": `Restore ${b.key}` }, "Restore"),
                h("button", { type: "button", class: "danger", onclick: () => remove(b.key), "aria-label": `Delete ${b.key}` }, "Delete"),
              ),
          ],
        ],
        items,
        "No backups yet.",
      ),
    );
  };

  const download = async (key) => {
    try {
      const { token } = await ctx.api("POST", "/api/files/token");
      const res = await ctx.api("GET", `/api/backups/${encodeURIComponent(key)}`, { query: { token }, raw: true });
      const url = URL.createObjectURL(await res.blob());
      const a = h("a", { href: url, download: key, class: "hidden" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      say(e.message, "error");
    }
  };

  const restore = async (key) => {
    const ok = await confirmDialog(
      `Restore ${key}? Every change since it was made is lost; keepd restarts with it (its service manager starts it again).`,
      "Restore",
    );
    if (!ok) return;
    try {
      await ctx.api("POST", `/api/backups/${encodeURIComponent(key)}/restore`);
      say(`Restoring ${key}: keepd is restarting. Sign in again in a moment.`);
    } catch (e) {
      say(e.message, "error");
    }
  };

  const remove = async (key) => {
    if (!(await confirmDialog(`Delete the backup ${key}?`, "Delete"))) return;
    try {
      await ctx.api("DELETE", `/api/backups/${encodeURIComponent(key)}`);
      say(`Deleted ${key}.`);
      await load();
    } catch (e) {
      say(e.message, "error");
    }
  };

  const nameInput = h("input", { type: "text", name: "name", placeholder: "pb_backup_YYYYMMDDhhmmss.zip", pattern: "[a-z0-9_\\-]+\\.zip" });
  const createForm = h(
    "form",
    { class: "inline-form" },
    field("Name (optional)", nameInput),
    h("button", { type: "submit", class: "primary" }, "Create a backup"),
  );
  createForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    replace(status, "Creating…");
    try {
      await ctx.api("POST", "/api/backups", { body: nameInput.value.trim() ? { name: nameInput.value.trim() } : {} });
      nameInput.value = "";
      say("Backup created.");
      await load();
    } catch (e) {
      const why = e.data && e.data.name ? ` ${e.data.name.message}` : "";
      say(`${e.message}${why}`, "error");
    }
  });

  const fileInput = h("input", { type: "file", name: "file", accept: ".zip,application/zip", required: true });
  const uploadForm = h(
    "form",
    { class: "inline-form" },
    field("Backup file (.zip)", fileInput),
    h("button", { type: "submit" }, "Upload"),
  );
  uploadForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = fileInput.files && fileInput.files[0];
    if (!f) {
      say("Choose a file first.", "error");
      return;
    }
    const form = new FormData();
    form.append("file", f);
    replace(status, "Uploading…");
    try {
      await ctx.api("POST", "/api/backups/upload", { form });
      fileInput.value = "";
      say(`Uploaded ${f.name}.`);
      await load();
    } catch (e) {
      const why = e.data && e.data.file ? ` ${e.data.file.message}` : "";
      say(`${e.message}${why}`, "error");
    }
  });

  await load();
  return h(
    "section",
    { class: "ops backups", "aria-labelledby": "backups-h" },
    h("h1", { id: "backups-h" }, "Backups"),
    h("div", { class: "toolbar" }, createForm, uploadForm),
    status,
    list,
  );
}
