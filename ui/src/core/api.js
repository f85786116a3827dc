// The console's one HTTP client. The superuser token lives in sessionStorage
// (see ui/README.md for the trade-off) and is sent only as the Authorization
// header, never as a cookie: a cross-site request carries no credential, so
// CSRF is impossible by construction.

const TOKEN_KEY = "keepd.console.token";
const RECORD_KEY = "keepd.console.superuser";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    // PocketBase's error shape: { status, message, data: { field: { code, message } } }
    this.data = (body && body.data) || {};
    // The whole answer (a 401 of the first sign-in step carries `mfaId`).
    this.body = body || {};
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  get superuser() {
    try { return JSON.parse(sessionStorage.getItem(RECORD_KEY) || "null"); } catch { return null; }
  },
  save(token, record) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(RECORD_KEY, JSON.stringify(record || null));
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(RECORD_KEY);
  },
};

// api("GET", "/api/collections", { query: { perPage: 50 } })
// api("POST", "/api/collections", { body: {...} })        JSON body
// api("POST", "/api/collections/x/records", { form })      FormData (uploads)
// api("GET", "/api/backups/k", { raw: true })              the Response itself
export async function api(method, path, opts = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(opts.query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = {};
  if (session.token) headers.Authorization = session.token;
  let body;
  if (opts.form) {
    body = opts.form;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(url, { method, headers, body, credentials: "omit", signal: opts.signal });
  if (res.status === 401 && session.token && !opts.noSignOut) {
    session.clear();
    location.hash = "#/login";
  }
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, data);
  }
  if (opts.raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}
