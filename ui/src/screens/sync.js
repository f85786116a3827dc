// keepd's sync: its status and lag, devices (a hub: create, new enrolment
// token, revoke), rejected changes and conflicts. When sync is off the
// daemon answers 404 and the screen says so.
import { h, replace } from "../core/dom.js";
import { field, table, confirmDialog, infoDialog, copyable, errorNote } from "./ops-common.js";

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === undefined || v === null || v === "" ? "—" : String(v))]));
}

function statusView(s) {
  if (s.role === "hub") {
    return kv([
      ["Role", "hub"],
      ["Devices enrolled", s.devices && s.devices.enrolled],
      ["Devices revoked", s.devices && s.devices.revoked],
      ["Change log", s.log ? `${s.log.oldest} … ${s.log.head}` : ""],
      ["Rejected changes", s.rejected],
      ["Conflicts", s.conflicts],
    ]);
  }
  const lag = s.lag || {};
  return kv([
    ["Role", s.role],
    ["Device", s.device],
    ["State", s.state],
    ["Waiting to push", lag.up],
    ["Waiting to pull", lag.down],
    ["Oldest unsent change (s)", lag.secs],
    ["Last push", s.lastPush],
    ["Last pull", s.lastPull],
    ["Last error", s.lastError],
    ["Clock offset (ms)", s.clockOffsetMs],
    ["Rejected changes", s.rejected],
    ["Conflicts", s.conflicts],
  ]);
}

export default async function sync(ctx) {
  const head = h("h1", { id: "sync-h" }, "Sync");
  let st;
  try {
    st = await ctx.api("GET", "/api/sync/status");
  } catch (e) {
    const msg = e.status === 404 ? `Sync is not configured on this keepd. ${e.message}` : e.message;
    return h("section", { class: "ops sync", "aria-labelledby": "sync-h" }, head, h("p", { class: "empty", role: "status" }, msg));
  }
  const status = h("p", { class: "status", role: "status" });
  const say = (msg, kind = "ok") => {
    replace(status, kind === "error" ? h("span", { class: "error-note" }, msg) : msg);
    ctx.toast(msg, kind);
  };
  const statusBox = h("div", { class: "sync-status" }, statusView(st));
  const devBox = h("div", { class: "sync-devices" });
  const rejBox = h("div", { class: "sync-rejected" });
  const confBox = h("div", { class: "sync-conflicts" });

  const showToken = (title, res) =>
    infoDialog(
      title,
      h("p", { class: "hint" }, `Give this enrolment token to the device; it works once and expires in ${res.expires} s. It is not shown again.`),
      copyable("Enrolment token", res.token, ctx.toast),
    );

  const loadDevices = async () => {
    if (st.role !== "hub") {
      replace(devBox);
      return;
    }
    let res;
    try {
      res = await ctx.api("GET", "/api/sync/devices");
    } catch (e) {
      replace(devBox, errorNote(e));
      return;
    }
    const nameInput = h("input", { type: "text", name: "name", required: true });
    const form = h("form", { class: "inline-form" }, field("New device name", nameInput), h("button", { type: "submit", class: "primary" }, "Create device"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const r = await ctx.api("POST", "/api/sync/devices", { body: { name: nameInput.value.trim() } });
        showToken(`Device ${r.device && r.device.name ? r.device.name : ""} created`, r);
        await loadDevices();
      } catch (e) {
        say(e.message, "error");
      }
    });
    const renew = async (d) => {
      try {
        showToken(`New enrolment token for ${d.name || d.id}`, await ctx.api("POST", `/api/sync/devices/${encodeURIComponent(d.id)}/token`));
      } catch (e) {
        say(e.message, "error");
      }
    };
    const revoke = async (d) => {
      if (!(await confirmDialog(`Revoke ${d.name || d.id}? It can no longer push or pull.`, "Revoke"))) return;
      try {
        await ctx.api("DELETE", `/api/sync/devices/${encodeURIComponent(d.id)}`);
        say(`Revoked ${d.name || d.id}.`);
        await loadDevices();
      } catch (e) {
        say(e.message, "error");
      }
    };
    replace(
      devBox,
      h("h2", {}, "Devices"),
      form,
      table(
        "",
        [
          ["Name", (d) => d.name || ""],
          ["ID", (d) => h("span", { class: "mono" }, d.id)],
          ["Enrolled", (d) => d.enrolled || "not yet"],
          ["Last push", (d) => d.lastPush || "—"],
          ["Last pull", (d) => d.lastPull || "—"],
          ["Revoked", (d) => d.revoked || "no"],
          [
            "Actions",
            (d) =>
              d.revoked
                ? ""
                : h(
                    "div",
                    { class: "row-actions" },
                    h("button", { type: "button", onclick: () => renew(d), "aria-label": `New token for ${d.name || d.id}` }, "New token"),
                    h("button", { type: "button", class: "danger", onclick: () => revoke(d), "aria-label": `Revoke ${d.name || d.id}` }, "Revoke"),
                  ),
          ],
        ],
        res.items || [],
        "No devices.",
      ),
    );
  };

  const loadRejected = async () => {
    try {
      const res = await ctx.api("GET", "/api/sync/rejected", { query: { limit: 100 } });
      replace(
        rejBox,
        h("h2", {}, "Rejected changes"),
        table(
          "",
          [
            ["Time", (x) => x.created],
            ["Device", (x) => h("span", { class: "mono" }, x.device)],
            ["Record", (x) => h("span", { class: "mono" }, `${x.collectionId}/${x.recordId}`)],
            ["Operation", (x) => x.op],
            ["Status", (x) => String(x.status)],
            ["Reason", (x) => x.reason],
          ],
          res.items || [],
          "No rejected changes.",
        ),
      );
    } catch (e) {
      replace(rejBox, errorNote(e));
    }
  };

  const loadConflicts = async () => {
    try {
      const res = await ctx.api("GET", "/api/sync/conflicts", { query: { limit: 100 } });
      const val = (v) => h("span", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v));
      replace(
        confBox,
        h("h2", {}, "Conflicts"),
        table(
          "",
          [
            ["Time", (x) => x.created],
            ["Record", (x) => h("span", { class: "mono" }, `${x.collectionId}/${x.recordId}`)],
            ["Field", (x) => x.field],
            ["Kept", (x) => [val(x.kept), " by ", x.keptBy]],
            ["Lost", (x) => [val(x.lost), " by ", x.lostBy]],
            ["Why", (x) => x.why],
          ],
          res.items || [],
          "No conflicts.",
        ),
      );
    } catch (e) {
      replace(confBox, errorNote(e));
    }
  };

  const refresh = async () => {
    try {
      st = await ctx.api("GET", "/api/sync/status");
      replace(statusBox, statusView(st));
    } catch (e) {
      replace(statusBox, errorNote(e));
    }
    await Promise.all([loadDevices(), loadRejected(), loadConflicts()]);
  };

  await Promise.all([loadDevices(), loadRejected(), loadConflicts()]);
  return h(
    "section",
    { class: "ops sync", "aria-labelledby": "sync-h" },
    head,
    h("div", { class: "toolbar" }, h("button", { type: "button", onclick: refresh }, "Refresh")),
    status,
    h("h2", {}, "Status"),
    statusBox,
    devBox,
    rejBox,
    confBox,
  );
}
