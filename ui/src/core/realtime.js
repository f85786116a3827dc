// PocketBase realtime over SSE: open /api/realtime, and on each PB_CONNECT
// (the first, and again after a reconnect) subscribe this client to `topic`
// with the superuser's Authorization header (POST /api/realtime).
// Returns the function that closes it (give it to ctx.onCleanup).

import { api } from "./api.js";

export function subscribe(topic, onEvent) {
  const es = new EventSource("/api/realtime");
  es.addEventListener("PB_CONNECT", async (e) => {
    try {
      const { clientId } = JSON.parse(e.data);
      await api("POST", "/api/realtime", { body: { clientId, subscriptions: [topic] } });
    } catch (err) {
      console.warn("realtime subscription failed", err);
    }
  });
  es.addEventListener(topic, (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch { return; }
    onEvent(data);
  });
  return () => es.close();
}
