// The request log (keepd keeps it in memory): PocketBase's filter syntax
// plus quick filters by status class and method, paged newest first, a
// per-hour chart from /api/logs/stats drawn as SVG, one entry's details,
// and "clear" (DELETE /api/logs).
import { h, replace } from "../core/dom.js";
import { field, select, table, pager, confirmDialog, infoDialog, errorNote } from "./ops-common.js";

const SVG = "http://www.w3.org/2000/svg";
const PER_PAGE = 50;

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

const HOUR = 3600 * 1000;
const hourKey = (ms) => `${new Date(ms).toISOString().slice(0, 13).replace("T", " ")}:00:00.000Z`;

// Every hour from the first counted one (at least the last 24, at most a
// week) to the last, the hours without requests at 0.
function hours(stats) {
  const at = (s) => Date.parse(s.date.replace(" ", "T"));
  const last = at(stats[stats.length - 1]);
  const first = Math.max(Math.min(at(stats[0]), last - 23 * HOUR), last - 167 * HOUR);
  const by = new Map(stats.map((s) => [hourKey(at(s)), s.total]));
  const out = [];
  for (let t = first; t <= last; t += HOUR) out.push({ date: hourKey(t), total: by.get(hourKey(t)) || 0 });
  return out;
}

// Bars of requests per hour; a text summary for screen readers.
export function chart(counted) {
  if (!counted.length) return h("p", { class: "empty" }, "No requests in the log.");
  const stats = hours(counted);
  const W = 600;
  const H = 120;
  const max = Math.max(...stats.map((s) => s.total), 1);
  const bw = W / stats.length;
  const total = stats.reduce((n, s) => n + s.total, 0);
  const label = `Requests per hour over ${stats.length} hours: ${total} in all, at most ${max} in one hour.`;
  const bars = stats.map((s, i) => {
    if (!s.total) return null;
    const bh = Math.max(1, Math.round((s.total / max) * (H - 20)));
    return svg(
      "rect",
      { x: (i * bw + 1).toFixed(1), y: H - bh, width: Math.max(1, bw - 2).toFixed(1), height: bh, class: "bar" },
      svg("title", {}, `${s.date}: ${s.total}`),
    );
  });
  return h(
    "figure",
    { class: "logs-chart" },
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, preserveAspectRatio: "none", class: "chart" },
      svg("text", { x: 4, y: 12, class: "chart-max" }, String(max)),
      ...bars.filter(Boolean),
    ),
    h("figcaption", {}, label),
  );
}

// The filter the quick filters add to the typed one.
export function composeFilter(typed, status, method) {
  const parts = [];
  if (typed.trim()) parts.push(`(${typed.trim()})`);
  const ranges = { "2xx": [200, 300], "3xx": [300, 400], "4xx": [400, 500], "5xx": [500, 600] };
  if (ranges[status]) parts.push(`data.status >= ${ranges[status][0]} && data.status < ${ranges[status][1]}`);
  if (method) parts.push(`data.method = "${method}"`);
  return parts.join(" && ");
}

function details(entry) {
  const d = entry.data || {};
  const rows = [
    ["ID", entry.id],
    ["Time", entry.created],
    ["Level", entry.level],
    ["Message", entry.message],
    ["Method", d.method],
    ["URL", d.url],
    ["Status", d.status],
    ["Time taken (ms)", d.execTime],
    ["Client IP", d.userIP],
    ["Remote IP", d.remoteIP],
    ["Auth", d.auth || "guest"],
    ["User agent", d.userAgent],
    ["Referer", d.referer],
  ];
  return h("dl", { class: "kv" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { class: "mono" }, v === undefined || v === null ? "" : String(v))]));
}

export default async function logs(ctx) {
  const state = { page: 1, filter: "", status: "", method: "" };
  const filterInput = h("input", { type: "search", name: "filter", placeholder: 'data.url ~ "/api/collections" && data.status >= 400', spellcheck: "false" });
  const statusSel = select({ name: "status" }, [["", "Any status"], ["2xx", "2xx"], ["3xx", "3xx"], ["4xx", "4xx"], ["5xx", "5xx"]], "");
  const methodSel = select(
    { name: "method" },
    [["", "Any method"], ...["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"].map((m) => [m, m])],
    "",
  );
  const chartBox = h("div", { class: "chart-box" });
  const listBox = h("div", { class: "log-list", "aria-live": "polite" });
  const status = h("p", { class: "status", role: "status" });

  const open = async (id) => {
    try {
      infoDialog("Request", details(await ctx.api("GET", `/api/logs/${encodeURIComponent(id)}`)));
    } catch (e) {
      ctx.toast(e.message, "error");
    }
  };

  const load = async () => {
    const filter = composeFilter(state.filter, state.status, state.method);
    try {
      const [res, stats] = await Promise.all([
        ctx.api("GET", "/api/logs", { query: { page: state.page, perPage: PER_PAGE, sort: "-@rowid", filter } }),
        ctx.api("GET", "/api/logs/stats", { query: { filter } }),
      ]);
      replace(chartBox, chart(stats));
      replace(
        listBox,
        table(
          "Requests, newest first",
          [
            ["Time", (e) => e.created],
            ["Method", (e) => (e.data || {}).method],
            ["URL", (e) => h("span", { class: "mono url" }, (e.data || {}).url)],
            ["Status", (e) => h("span", { class: `status-code s${String((e.data || {}).status).charAt(0)}xx` }, String((e.data || {}).status))],
            ["Auth", (e) => (e.data || {}).auth || "guest"],
            ["Time (ms)", (e) => Number((e.data || {}).execTime || 0).toFixed(1)],
            ["Details", (e) => h("button", { type: "button", class: "link", onclick: () => open(e.id), "aria-label": `Details of ${(e.data || {}).method} ${(e.data || {}).url}` }, "Details")],
          ],
          res.items || [],
          "No request matches.",
        ),
        pager(res, (p) => {
          state.page = p;
          load();
        }),
      );
      replace(status, "");
    } catch (e) {
      replace(listBox, errorNote(e));
    }
  };

  const form = h(
    "form",
    { class: "filter-form", role: "search" },
    field("Filter", filterInput, "PocketBase filter syntax over id, created, level, message and data.*"),
    field("Status", statusSel),
    field("Method", methodSel),
    h("button", { type: "submit", class: "primary" }, "Apply"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.filter = filterInput.value;
    state.status = statusSel.value;
    state.method = methodSel.value;
    state.page = 1;
    load();
  });
  for (const sel of [statusSel, methodSel]) sel.addEventListener("change", () => form.requestSubmit());

  const clear = async () => {
    if (!(await confirmDialog("Clear the request log? The entries are gone for good.", "Clear"))) return;
    try {
      await ctx.api("DELETE", "/api/logs");
      ctx.toast("Request log cleared.", "ok");
      state.page = 1;
      await load();
    } catch (e) {
      const msg = e.status === 404 ? "This keepd cannot clear the request log." : e.message;
      replace(status, h("span", { class: "error-note" }, msg));
    }
  };

  await load();
  return h(
    "section",
    { class: "ops logs", "aria-labelledby": "logs-h" },
    h("h1", { id: "logs-h" }, "Request log"),
    h("p", { class: "hint" }, "The recent requests, kept in memory (lost at restart)."),
    form,
    h(
      "div",
      { class: "toolbar" },
      h("button", { type: "button", onclick: () => load() }, "Refresh"),
      h("button", { type: "button", class: "danger", onclick: clear }, "Clear the log"),
    ),
    status,
    chartBox,
    listBox,
  );
}
