/* The tickets the board holds and the live feed that keeps them: SSE from /api/alerts/stream (a snapshot, then
 * ticket events). */
import { $, CLOSED_KEEP_MS, S, auth, setConn, showError, stats, tickets } from "./state.js";
import { sessionEnded } from "./signin.js";
import { flash, scheduleRender } from "./rows.js";
import { alarmFor } from "./alarms.js";

// ------------------------------------------------------------------ state
let order = 0;   // arrival order of the tickets held
function activity(ticket) {
  const last = ticket.history && ticket.history.length ? Date.parse(ticket.history[ticket.history.length - 1].at) : 0;
  return Math.max(last || 0, Date.parse(ticket.dispatched_at) || 0);
}

export function isOpen(ticket) { return ticket.status !== "closed"; }

/** A live change: keep it if it's a newer version, and move it to the top. */
export function applyTicket(ticket) {
  if (!ticket || !ticket.ticket_id) return false;
  const held = tickets.get(ticket.ticket_id);
  if (!S.isNewer(ticket, held && held.t)) {
    stats.ignored += 1;
    return false;
  }
  tickets.set(ticket.ticket_id, { t: ticket, order: ++order, changedAt: Date.now() });
  scheduleRender();
  return true;
}

/** A snapshot: the current tickets. Anything we hold that it doesn't list has gone. */
function applySnapshot(list) {
  const seen = new Set();
  const sorted = [...list].sort((a, b) => activity(a) - activity(b));
  for (const ticket of sorted) {
    seen.add(ticket.ticket_id);
    const held = tickets.get(ticket.ticket_id);
    if (S.isNewer(ticket, held && held.t)) tickets.set(ticket.ticket_id, { t: ticket, order: ++order, changedAt: 0 });
  }
  for (const id of [...tickets.keys()]) if (!seen.has(id)) tickets.delete(id);
  scheduleRender();
}

export function pruneClosed() {
  const cutoff = Date.now() - CLOSED_KEEP_MS;
  let changed = false;
  for (const [id, entry] of tickets) {
    if (entry.t.status === "closed" && Date.parse(entry.t.closed_at || 0) < cutoff) {
      tickets.delete(id);
      changed = true;
    }
  }
  if (changed) scheduleRender();
}

// ------------------------------------------------------------------ SSE
let source = null;
let retryTimer = null;
let backoff = 1000;
let lastEventId = null;

export function stopStream() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
}

export function connect() {
  stopStream();
  // A person's stream is their session cookie (EventSource sends it, same origin); the wall's is its token.
  const params = new URLSearchParams(auth.token ? { token: auth.token } : {});
  // A new EventSource does not send Last-Event-ID: pass it so the server resumes instead of a snapshot.
  if (lastEventId) params.set("last_event_id", lastEventId);
  setConn(stats.connects ? "reconnecting" : "connecting");
  const es = new EventSource(`/api/alerts/stream?${params}`);
  source = es;
  es.addEventListener("open", () => {
    if (source !== es) return;
    stats.connects += 1;
    backoff = 1000;
    setConn("connected");
  });
  es.addEventListener("snapshot", (event) => {
    if (source !== es) return;
    stats.snapshots += 1;
    if (event.lastEventId) lastEventId = stats.lastEventId = event.lastEventId;
    try {
      applySnapshot(JSON.parse(event.data));
    } catch (error) {
      showError(`snapshot: ${error.message}`);
    }
  });
  es.addEventListener("ticket", (event) => {
    if (source !== es) return;
    stats.events += 1;
    if (event.lastEventId) lastEventId = stats.lastEventId = event.lastEventId;
    try {
      const message = JSON.parse(event.data);
      const held = message.ticket && tickets.get(message.ticket.ticket_id);
      if (applyTicket(message.ticket)) {
        flash(message.ticket.ticket_id);
        alarmFor(held && held.t, message.ticket);
      }
    } catch (error) {
      showError(`event: ${error.message}`);
    }
  });
  es.addEventListener("error", () => {
    if (source !== es) return;
    if (es.readyState === EventSource.CONNECTING) {
      // The browser reconnects by itself and sends Last-Event-ID.
      setConn("reconnecting");
      return;
    }
    // CLOSED: the server answered with an error (e.g. 401, or 5xx while restarting). Find out which.
    setConn("reconnecting");
    es.close();
    scheduleReconnect();
  });
}

/** The next stream starts afresh, with a snapshot. */
export function forgetPosition() {
  lastEventId = null;
  stats.lastEventId = null;
}

function scheduleReconnect() {
  clearTimeout(retryTimer);
  const delay = backoff + Math.random() * 250;
  backoff = Math.min(backoff * 2, 10000);
  retryTimer = setTimeout(async () => {
    try {
      await auth.resume();
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) {
        sessionEnded(error);
        return;
      }
      scheduleReconnect();   // server still down: keep trying
      return;
    }
    connect();
  }, delay);
}
