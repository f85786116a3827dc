// Scheduled jobs (/api/crons) with "run now" (POST /api/crons/{id}).
import { h, replace } from "../core/dom.js";
import { table, errorNote } from "./ops-common.js";

const NAMES = { __pbAutoBackup__: "Scheduled backup" };

export default async function crons(ctx) {
  const box = h("div", { class: "cron-list" });
  const status = h("p", { class: "status", role: "status" });

  const run = async (id) => {
    try {
      await ctx.api("POST", `/api/crons/${encodeURIComponent(id)}`);
      replace(status, `Started ${NAMES[id] || id}.`);
      ctx.toast(`Started ${NAMES[id] || id}.`, "ok");
    } catch (e) {
      replace(status, h("span", { class: "error-note" }, e.message));
    }
  };

  const load = async () => {
    try {
      const jobs = await ctx.api("GET", "/api/crons");
      replace(
        box,
        table(
          "Jobs",
          [
            ["Job", (j) => [NAMES[j.id] || j.id, " ", h("span", { class: "mono muted" }, NAMES[j.id] ? `(${j.id})` : "")]],
            ["Schedule", (j) => h("span", { class: "mono" }, j.expression)],
            ["Run", (j) => h("button", { type: "button", onclick: () => run(j.id), "aria-label": `Run now: ${NAMES[j.id] || j.id}` }, "Run now")],
          ],
          jobs,
          "No scheduled jobs. Set a backups schedule in Settings to add one.",
        ),
      );
    } catch (e) {
      replace(box, errorNote(e));
    }
  };

  await load();
  return h(
    "section",
    { class: "ops crons", "aria-labelledby": "crons-h" },
    h("h1", { id: "crons-h" }, "Crons"),
    status,
    box,
  );
}
