// Settings: application, mail (with a test e-mail), S3 storage (with its
// test), rate limits, the batch API, keepd's lockout policy, the backup
// schedule and the backups' S3 (with its test); trusted
// proxies and superuser IPs shown read-only. Saved with PATCH /api/settings;
// field errors come from PocketBase's error `data` (input names are the
// settings' paths, e.g. `s3.bucket`).
import { h, replace } from "../core/dom.js";
import { field, select, read, errorNote } from "./ops-common.js";

const TEMPLATES = [
  ["verification", "Verification"],
  ["password-reset", "Password reset"],
  ["email-change", "E-mail change"],
  ["otp", "One-time password"],
  ["login-alert", "Login alert"],
];

const text = (name, value, props = {}) => h("input", { type: "text", name, value: value ?? "", ...props });
const num = (name, value, props = {}) => h("input", { type: "number", name, value: String(value ?? 0), ...props });
const check = (name, checked) => h("input", { type: "checkbox", name, checked: !!checked });

function section(title, ...body) {
  return h("fieldset", { class: "ops-fieldset" }, h("legend", {}, title), h("div", { class: "fieldset-body" }, body));
}

function s3Fields(prefix, s3) {
  return [
    field("Enabled", check(`${prefix}.enabled`, s3.enabled)),
    field("Bucket", text(`${prefix}.bucket`, s3.bucket)),
    field("Region", text(`${prefix}.region`, s3.region)),
    field("Endpoint", text(`${prefix}.endpoint`, s3.endpoint, { placeholder: "https://s3.example.com" })),
    field("Access key", text(`${prefix}.accessKey`, s3.accessKey, { autocomplete: "off" })),
    field(
      "Secret",
      h("input", { type: "password", name: `${prefix}.secret`, value: "", autocomplete: "new-password" }),
      "Left empty, the stored secret is kept.",
    ),
    field("Force path-style addressing", check(`${prefix}.forcePathStyle`, s3.forcePathStyle)),
  ];
}

function rateRow(rule, remove) {
  const row = h(
    "tr",
    { class: "rate-rule" },
    h("td", {}, h("input", { type: "text", name: "label", dataset: { key: "label" }, value: rule.label || "", "aria-label": "Label" })),
    h(
      "td",
      {},
      select({ name: "audience", dataset: { key: "audience" }, "aria-label": "Audience" }, [["", "Everyone"], ["@guest", "Guests"], ["@auth", "Signed in"]], rule.audience || ""),
    ),
    h("td", {}, h("input", { type: "number", min: "1", name: "duration", dataset: { key: "duration" }, value: String(rule.duration ?? 1), "aria-label": "Duration (seconds)" })),
    h("td", {}, h("input", { type: "number", min: "1", name: "maxRequests", dataset: { key: "maxRequests" }, value: String(rule.maxRequests ?? 1), "aria-label": "Max requests" })),
    h("td", {}, h("button", { type: "button", class: "link", onclick: () => remove(row) }, "Remove")),
  );
  return row;
}

export default async function settings(ctx) {
  const root = h("section", { class: "ops settings", "aria-labelledby": "settings-h" });
  let s;
  try {
    s = await ctx.api("GET", "/api/settings");
  } catch (e) {
    return [h("h1", { id: "settings-h" }, "Settings"), errorNote(e)];
  }
  const meta = s.meta || {};
  const smtp = s.smtp || {};
  const backups = s.backups || {};
  const rl = s.rateLimits || { rules: [] };
  const lock = s.lockout || {};
  const tp = s.trustedProxy || { headers: [] };
  const batch = s.batch || {};

  const rulesBody = h("tbody", {});
  const removeRow = (row) => row.remove();
  for (const r of rl.rules || []) rulesBody.append(rateRow(r, removeRow));

  const form = h("form", { class: "settings-form", novalidate: true });
  const status = h("p", { class: "status", role: "status" });

  // --- test e-mail ---
  const testEmail = h("input", { type: "email", name: "testEmail", autocomplete: "email" });
  const testTpl = select({ name: "testTemplate" }, TEMPLATES, "verification");
  const testOut = h("p", { class: "status", role: "status" });
  const sendTest = async () => {
    replace(testOut, "Sending…");
    try {
      await ctx.api("POST", "/api/settings/test/email", { body: { email: testEmail.value.trim(), template: testTpl.value } });
      replace(testOut, `Sent to ${testEmail.value.trim()}.`);
      ctx.toast("Test e-mail sent.", "ok");
    } catch (e) {
      const d = e.data || {};
      const why = Object.values(d).map((x) => x && x.message).filter(Boolean).join(" ");
      replace(testOut, h("span", { class: "error-note" }, `${e.message}${why ? ` ${why}` : ""}`));
    }
  };

  // --- S3 test ---
  const s3Out = h("p", { class: "status", role: "status" });
  const backupsS3Out = h("p", { class: "status", role: "status" });
  const testS3 = (filesystem, out) => async () => {
    replace(out, "Testing…");
    try {
      await ctx.api("POST", "/api/settings/test/s3", { body: { filesystem } });
      replace(out, `The ${filesystem} bucket answered.`);
    } catch (e) {
      replace(out, h("span", { class: "error-note" }, e.message));
    }
  };

  replace(
    form,
    section(
      "Application",
      field("Application name", text("meta.appName", meta.appName, { required: true })),
      field("Application URL", text("meta.appURL", meta.appURL, { type: "url", required: true })),
      field("Sender name", text("meta.senderName", meta.senderName)),
      field("Sender address", text("meta.senderAddress", meta.senderAddress, { type: "email" })),
      field("Hide collection controls", check("meta.hideControls", meta.hideControls)),
    ),
    section(
      "Mail (SMTP)",
      field("Send through SMTP", check("smtp.enabled", smtp.enabled)),
      field("Host", text("smtp.host", smtp.host)),
      field("Port", num("smtp.port", smtp.port, { min: "1", max: "65535" })),
      field("Username", text("smtp.username", smtp.username, { autocomplete: "off" })),
      field(
        "Password",
        h("input", { type: "password", name: "smtp.password", value: "", autocomplete: "new-password" }),
        "Left empty, the stored password is kept.",
      ),
      field("Auth method", select({ name: "smtp.authMethod" }, [["", "Default (PLAIN)"], ["PLAIN", "PLAIN"], ["LOGIN", "LOGIN"]], smtp.authMethod || "")),
      field("Implicit TLS", check("smtp.tls", smtp.tls), "Off: STARTTLS when the server offers it."),
      field("Local name (HELO)", text("smtp.localName", smtp.localName)),
      h(
        "div",
        { class: "subpanel", role: "group", "aria-label": "Send a test e-mail" },
        h("h3", {}, "Send a test e-mail"),
        h("p", { class: "hint" }, "Uses the saved settings: save first."),
        field("Recipient", testEmail),
        field("Template", testTpl),
        h("button", { type: "button", onclick: sendTest }, "Send test e-mail"),
        testOut,
      ),
    ),
    section(
      "File storage (S3)",
      ...s3Fields("s3", s.s3 || {}),
      h("button", { type: "button", onclick: testS3("storage", s3Out) }, "Test storage S3"),
      s3Out,
    ),
    section(
      "Rate limits",
      field("Rate limiting on", check("rateLimits.enabled", rl.enabled)),
      h(
        "table",
        { class: "ops-table" },
        h("caption", {}, "Rules (label: a path, a tag like *:auth, or METHOD /path)"),
        h(
          "thead",
          {},
          h("tr", {}, ["Label", "Audience", "Duration (s)", "Max requests", "Remove"].map((t) => h("th", { scope: "col" }, t))),
        ),
        rulesBody,
      ),
      h(
        "button",
        { type: "button", onclick: () => rulesBody.append(rateRow({ label: "", audience: "", duration: 10, maxRequests: 100 }, removeRow)) },
        "Add a rule",
      ),
    ),
    section(
      "Batch API",
      field("Batch requests on", check("batch.enabled", batch.enabled)),
      field("Requests per batch", num("batch.maxRequests", batch.maxRequests, { min: "0" })),
      field("Timeout (seconds)", num("batch.timeout", batch.timeout, { min: "0" })),
      field("Largest body (bytes, 0: the default)", num("batch.maxBodySize", batch.maxBodySize, { min: "0" })),
    ),
    section(
      "Account lockout",
      field("Failures before a lock", num("lockout.maxFailures", lock.maxFailures, { min: "0" })),
      field("Window (seconds)", num("lockout.windowSeconds", lock.windowSeconds, { min: "1", max: "86400" })),
      field("First lock (seconds)", num("lockout.baseSeconds", lock.baseSeconds, { min: "1", max: "86400" })),
      field("Longest lock (seconds)", num("lockout.maxSeconds", lock.maxSeconds, { min: "1", max: "86400" })),
    ),
    section(
      "Backups schedule",
      field("Cron expression", text("backups.cron", backups.cron, { placeholder: "0 3 * * *" }), "Empty: no scheduled backups."),
      field("Scheduled backups kept", num("backups.cronMaxKeep", backups.cronMaxKeep, { min: "1" })),
      h(
        "div",
        { class: "subpanel", role: "group", "aria-label": "Backups in S3" },
        h("h3", {}, "Backups in S3"),
        ...s3Fields("backups.s3", backups.s3 || {}),
        h("button", { type: "button", onclick: testS3("backups", backupsS3Out) }, "Test backups S3"),
        backupsS3Out,
      ),
    ),
    section(
      "Trusted proxies (read-only)",
      h(
        "dl",
        { class: "kv" },
        h("dt", {}, "Client IP headers"),
        h("dd", {}, (tp.headers || []).length ? tp.headers.join(", ") : "none (the connection's address is used)"),
        h("dt", {}, "Use the leftmost IP"),
        h("dd", {}, tp.useLeftmostIP ? "yes" : "no"),
        h("dt", {}, "Superuser IPs"),
        h("dd", {}, (s.superuserIPs || []).length ? s.superuserIPs.join(", ") : "any"),
      ),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save settings"), status),
  );

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const g = (n) => read(form, n);
    const patch = {
      meta: {
        appName: g("meta.appName"),
        appURL: g("meta.appURL"),
        senderName: g("meta.senderName"),
        senderAddress: g("meta.senderAddress"),
        hideControls: g("meta.hideControls"),
      },
      smtp: {
        enabled: g("smtp.enabled"),
        host: g("smtp.host"),
        port: g("smtp.port"),
        username: g("smtp.username"),
        authMethod: g("smtp.authMethod"),
        tls: g("smtp.tls"),
        localName: g("smtp.localName"),
      },
      s3: {
        enabled: g("s3.enabled"),
        bucket: g("s3.bucket"),
        region: g("s3.region"),
        endpoint: g("s3.endpoint"),
        accessKey: g("s3.accessKey"),
        forcePathStyle: g("s3.forcePathStyle"),
      },
      rateLimits: {
        enabled: g("rateLimits.enabled"),
        rules: [...rulesBody.querySelectorAll("tr")].map((tr, i) => {
          // Named by position, as PocketBase's errors name them.
          const rule = {};
          for (const el of tr.querySelectorAll("[data-key]")) {
            el.name = `rateLimits.rules.${i}.${el.dataset.key}`;
            rule[el.dataset.key] = read(tr, el.name);
          }
          return rule;
        }),
      },
      lockout: {
        maxFailures: g("lockout.maxFailures"),
        windowSeconds: g("lockout.windowSeconds"),
        baseSeconds: g("lockout.baseSeconds"),
        maxSeconds: g("lockout.maxSeconds"),
      },
      batch: {
        enabled: g("batch.enabled"),
        maxRequests: g("batch.maxRequests"),
        timeout: g("batch.timeout"),
        maxBodySize: g("batch.maxBodySize"),
      },
      backups: {
        cron: g("backups.cron"),
        cronMaxKeep: g("backups.cronMaxKeep"),
        s3: {
          enabled: g("backups.s3.enabled"),
          bucket: g("backups.s3.bucket"),
          region: g("backups.s3.region"),
          endpoint: g("backups.s3.endpoint"),
          accessKey: g("backups.s3.accessKey"),
          forcePathStyle: g("backups.s3.forcePathStyle"),
        },
      },
    };
    // Secrets are sent only when typed (the answer never shows them).
    if (g("smtp.password")) patch.smtp.password = g("smtp.password");
    if (g("s3.secret")) patch.s3.secret = g("s3.secret");
    if (g("backups.s3.secret")) patch.backups.s3.secret = g("backups.s3.secret");
    replace(status, "Saving…");
    try {
      await ctx.api("PATCH", "/api/settings", { body: patch });
      ctx.fieldErrors(form, null);
      replace(status, "Saved.");
      ctx.toast("Settings saved.", "ok");
    } catch (e) {
      const marked = ctx.fieldErrors(form, e);
      replace(status, h("span", { class: "error-note" }, marked ? `${e.message} See the marked fields.` : e.message));
    }
  });

  replace(root, h("h1", { id: "settings-h" }, "Settings"), form);
  return root;
}
