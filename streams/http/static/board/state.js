/* The board's shared state (tickets, rows, markers, filters, what the e2e tests read), the connection status
 * line and the banners. */

export const S = window.SOC;
export const $ = (selector) => document.querySelector(selector);
// A person's session (cookie), or the wall screen's read-only token: see SOC.account() in common.js.
export const auth = S.account("board");

export const MAX_ROWS = 200;          // rows in the DOM; counters and the map cover everything
export const MAX_MARKERS = 2000;
export const CLOSED_KEEP_MS = 60 * 60 * 1000;   // closed tickets stay on the board for an hour
export const COLOURS = { red: "#e53935", orange: "#fb8c00", yellow: "#fdd835", blue: "#1e88e5" };

/** ticket_id -> {t: Ticket, order: number}: the single source of truth for rows and markers. */
export const tickets = new Map();
/** ticket_id -> row view {el, version, lang, ...} for rows in the DOM. */
export const rows = new Map();
/** ticket_id -> SVG circle. */
export const markers = new Map();
export const filters = { source: "", severity: "", department: "", community: "" };

// Exposed for the end-to-end tests and for curious operators in the console.
export const stats = { snapshots: 0, events: 0, ignored: 0, connects: 0, lastEventId: null };
/** Every alarm the board raised (the e2e tests read it): {kind (board.yaml's AlarmKind), ticket_id, severity, step,
 * level, at, announced, sounded}: announced and sounded once the policy's next sound has come. */
export const alarms = [];
window.SOC_BOARD = { stats, tickets, alarms };   // .sound is added with the alarms below

// ------------------------------------------------------------------ banners and status
export const showError = S.showError;
export const hideError = S.hideError;
export const showNotice = (message) => S.showNotice(message, 5000);

export let connState = "offline";
export function setConn(state) {
  connState = state;
  const node = $("#conn");
  node.dataset.state = state;
  node.textContent = S.t(state);
}

export function tickClock() { $("#clock").textContent = S.clock(new Date()); }
