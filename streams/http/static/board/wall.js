/* The wall screen: the pinned strip of open red and orange tickets, 已知悉, compound cards, the keyboard and the
 * ticket detail. */
import { $, S, auth, rows, tickets } from "./state.js";
import { isOpen } from "./stream.js";
import { highlight, matches, post } from "./rows.js";
import { mapView, project } from "./map.js";
import { failed, shortTime, signedIn } from "./silences.js";
import { enableSound, renderSound, sound } from "./alarms.js";

const WALL = {
  zh: {
    pinned: "红色 / 橙色在办（超时、时限最近、未知悉在前）", pinnedTotal: "共 {n} 件", pinnedPage: "第 {page}/{pages} 页",
    groupCompound: "关联事件 {n} 件", groupStation: "同一站点 {n} 件", enableSound: "启用声音", muted: "♪ 已静音", sound: "♪ 声音开",
    muteHint: "告警声音：新红色、未知悉的红色、督办、通报、应急响应提升", unseenReds: "未知悉红色 {n}", seen: "已知悉", seenBy: "已知悉 · {by} {time}",
    seenDone: "已记录已知悉", related: "关联", causeOf: "引发", effectOf: "由此引发", detailHistory: "处理记录",
    acceptDue: "签收时限", resolveDue: "处置时限", noDeadline: "待核查", close: "关闭",
  },
  en: {
    pinned: "Open red / orange: overdue, nearest deadline, unseen first", pinnedTotal: "{n} in all",
    pinnedPage: "page {page}/{pages}", groupCompound: "one incident, {n} tickets", groupStation: "one station, {n} tickets",
    enableSound: "Enable sound", muted: "♪ Muted",
    sound: "♪ Sound on", muteHint: "Alarm: a new red, a red not yet seen, 督办, 通报, a raised response level",
    unseenReds: "Unseen red {n}", seen: "Seen",
    seenBy: "Seen · {by} {time}", seenDone: "Marked as seen", related: "Linked", causeOf: "Caused",
    effectOf: "Caused by", detailHistory: "History", acceptDue: "Accept by", resolveDue: "Resolve by",
    noDeadline: "awaiting verification", close: "Close",
  },
};
export const w = (key, vars) => (WALL[S.getLang() === "en" ? "en" : "zh"][key] || key)
  .replace(/\{(\w+)\}/g, (_m, name) => (vars && name in vars ? String(vars[name]) : ""));
export const ESC_RANK = { none: 0, reminded: 1, escalated: 2, reported: 3 };
const PINNED_ROWS = 2;                 // the strip shows this many rows of cards; the rest are on its other pages
const ROTATE_MS = 20 * 1000;           // the wall screen turns to the strip's next page this often

// ---- the strip: every open red and orange ticket, grouped by incident, what needs a person now first; paged
function deadlineOf(t) {
  const sla = S.slaOf(t);
  return sla && !Number.isNaN(sla.due) ? sla.due : Infinity;
}

/** Overdue first, then the nearest deadline, then not yet 已知悉; those waiting for verification (no deadline) last. */
function urgencyKey(t, now) {
  const due = deadlineOf(t);
  return [due < now ? 0 : 1, due, seenEntry(t) ? 1 : 0, -S.SEVERITY_RANK[t.severity], String(t.ticket_id)];
}

function compareKeys(a, b) {
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

/** A flood station's id (its readings' source_ref is "<station>@<time>"); "" for other sources. */
function stationOf(t) {
  return t.source === "flood" && t.source_ref ? String(t.source_ref).split("@")[0] : "";
}

/** The open red and orange tickets in incidents: a compound incident's cause with its effects, one station's
 * tickets together; each incident as urgent as its most urgent ticket. [{key, kind, tickets}] in order. */
function pinnedGroups(all, now) {
  const list = all.map((e) => e.t).filter((t) => isOpen(t) && (t.severity === "red" || t.severity === "orange"));
  const parent = new Map(list.map((t) => [t.ticket_id, t.ticket_id]));
  const find = (id) => {
    while (parent.get(id) !== id) { parent.set(id, parent.get(parent.get(id))); id = parent.get(id); }
    return id;
  };
  const union = (a, b) => { const [ra, rb] = [find(a), find(b)]; if (ra !== rb) parent.set(rb, ra); };
  const byStation = new Map();
  const causes = new Set();
  for (const t of list) {
    for (const id of effectIds(t)) if (parent.has(id) && id !== t.ticket_id) { union(t.ticket_id, id); causes.add(t.ticket_id); }
    const station = stationOf(t);
    if (station && byStation.has(station)) union(byStation.get(station), t.ticket_id);
    else if (station) byStation.set(station, t.ticket_id);
  }
  const keys = new Map(list.map((t) => [t.ticket_id, urgencyKey(t, now)]));
  const groups = new Map();
  for (const t of list) {
    const root = find(t.ticket_id);
    if (!groups.has(root)) groups.set(root, []);
    groups.get(root).push(t);
  }
  const out = [];
  for (const [root, members] of groups) {
    // The cause leads its effects; otherwise the most urgent first.
    members.sort((a, b) => (causes.has(b.ticket_id) - causes.has(a.ticket_id)) || compareKeys(keys.get(a.ticket_id), keys.get(b.ticket_id)));
    const compound = members.some((t) => causes.has(t.ticket_id));
    out.push({ key: root, kind: members.length < 2 ? "single" : compound ? "compound" : "station", tickets: members,
      urgency: members.map((t) => keys.get(t.ticket_id)).sort(compareKeys)[0] });
  }
  return out.sort((a, b) => compareKeys(a.urgency, b.urgency));
}

/** The strip's pages: as many cards as its rows hold, an incident kept on one page when it fits. */
function paginate(groups, size) {
  const pages = [[]];
  for (const g of groups) {
    let page = pages[pages.length - 1];
    if (page.length && page.length + g.tickets.length > size) { page = []; pages.push(page); }
    g.tickets.forEach((t, i) => {
      if (page.length >= size) { page = []; pages.push(page); }
      page.push({ t, group: g, first: i === 0 });
    });
  }
  return pages;
}

/** Cards per page: the strip's grid columns (they follow the screen's width) times its rows. */
function pageSize() {
  const columns = getComputedStyle($("#pinned-list")).gridTemplateColumns.split(" ").filter(Boolean).length;
  return Math.max(1, columns) * PINNED_ROWS;
}

let pinnedPage = 0;
let pinnedPages = [];
let pinnedTotal = 0;
let pinnedPainted = "";
let rotatedAt = 0;

export function renderPinned(all) {
  const now = Date.now();
  const groups = pinnedGroups(all, now);
  pinnedTotal = groups.reduce((n, g) => n + g.tickets.length, 0);
  const section = $("#pinned");
  section.hidden = pinnedTotal === 0;
  pinnedPages = paginate(groups, pageSize());
  pinnedPage = Math.min(pinnedPage, pinnedPages.length - 1);
  const page = pinnedPages[pinnedPage];
  Object.assign(section.dataset, { total: String(pinnedTotal), page: String(pinnedPage + 1), pages: String(pinnedPages.length) });
  const signature = JSON.stringify([S.getLang(), selectedId, pinnedTotal, pinnedPage, pinnedPages.length,
    page.map(({ t, group, first }) => [t.ticket_id, t.version, group.key, group.kind, first])]);
  if (signature === pinnedPainted) return;
  pinnedPainted = signature;
  S.text(section.querySelector(".pinned-title"), `${w("pinned")} · ${w("pinnedTotal", { n: pinnedTotal })}`);
  S.text($("#pinned-page"), w("pinnedPage", { page: pinnedPage + 1, pages: pinnedPages.length }));
  $("#pinned-prev").disabled = pinnedPage === 0;
  $("#pinned-next").disabled = pinnedPage >= pinnedPages.length - 1;
  $("#pinned-pager").hidden = pinnedPages.length < 2;
  const ol = S.clear($("#pinned-list"));
  for (const { t, group, first } of page) {
    const sla = S.el("span", { class: "sla", dataset: { ticketId: t.ticket_id } });
    S.renderSla(sla, t, now);
    const deadline = deadlineOf(t);
    const li = S.el("li", { class: "pin", tabindex: "-1", dataset: { ticketId: t.ticket_id, severity: t.severity,
      escalation: t.escalation || "none", status: t.status, deadline: Number.isFinite(deadline) ? new Date(deadline).toISOString() : "" } },
      S.el("span", { class: "band", text: S.label("severityShort", t.severity) }),
      S.el("div", { class: "pin-body" },
        S.el("div", { class: "title", text: t.title, title: t.title }),
        S.el("div", { class: "meta", text: `${S.communityName(t.community)} · ${S.departmentName(t.department)}` }),
        S.el("div", { class: "pin-foot" },
          Number.isFinite(deadline) ? sla : S.el("span", { class: "sla", dataset: { state: "none" }, text: w("noDeadline") }),
          t.escalation && t.escalation !== "none"
            ? S.el("span", { class: "esc", dataset: { escalation: t.escalation }, text: S.label("escalation", t.escalation) })
            : null,
          seenMark(t),
          seenEntry(t) || !auth.can("acknowledge") ? null : seenButton(t))));
    if (group.kind !== "single") {
      Object.assign(li.dataset, { group: group.key, groupKind: group.kind, groupSize: String(group.tickets.length) });
      li.classList.add(first ? "group-first" : "group-next");
      if (first) li.querySelector(".pin-foot").prepend(S.el("span", { class: "group-tag",
        text: w(group.kind === "compound" ? "groupCompound" : "groupStation", { n: group.tickets.length }) }));
    }
    if (t.ticket_id === selectedId) li.classList.add("selected");
    li.addEventListener("click", (event) => {
      if (event.target.closest("button")) return;
      select(t.ticket_id, true);
    });
    li.addEventListener("dblclick", () => openDetail(t.ticket_id));
    ol.append(li);
  }
}

/** The strip from its first page, its rotation starting now (a new sign-in). */
export function resetPinned() {
  pinnedPage = 0;
  rotatedAt = Date.now();
}

function turnPinned(step) {
  if (!pinnedPages.length) return;
  pinnedPage = (pinnedPage + step + pinnedPages.length) % pinnedPages.length;
  rotatedAt = Date.now();
  renderPinned([...tickets.values()]);
}

/** The strip's page that holds the ticket, shown (a ticket selected on the map or in the feed). */
function showPinned(ticketId) {
  const at = pinnedPages.findIndex((p) => p.some(({ t }) => t.ticket_id === ticketId));
  if (at >= 0 && at !== pinnedPage) {
    pinnedPage = at;
    rotatedAt = Date.now();
    renderPinned([...tickets.values()]);
  }
}

/** Each second: the wall screen, which nobody scrolls, turns the strip's page every ROTATE_MS. */
export function rotatePinned(now) {
  if (!auth.wall || pinnedPages.length < 2 || now - rotatedAt < ROTATE_MS) return;
  turnPinned(1);
}

// ---- 已知悉: an acknowledgement by the signed-in officer, in the ticket's history
export function seenEntry(t) {
  const history = t.history || [];
  for (let i = history.length - 1; i >= 0; i -= 1) {
    if (history[i].kind === "acknowledged") return history[i];
  }
  return null;
}

export function seenMark(t) {
  const entry = seenEntry(t);
  const by = entry && (entry.user ? entry.user.name : S.departmentName(entry.by));
  return entry ? S.el("span", { class: "seen", dataset: { seenBy: by },
    text: w("seenBy", { by: S.maskPersonal(by), time: shortTime(entry.at) }) }) : null;
}

export function seenButton(t) {
  const button = S.el("button", { type: "button", class: "ghost seen-button", dataset: { action: "seen" } }, w("seen"));
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    markSeen(t.ticket_id);
  });
  return button;
}

async function markSeen(ticketId) {
  const host = rows.get(ticketId) || { el: document.querySelector(`#pinned-list > li[data-ticket-id="${CSS.escape(ticketId)}"]`) };
  if (!host.el) return;
  await post(host, "acknowledge", {});
}

// ---- compound cards: a cause with its effects right under it; the map draws each link
function effectIds(t) {
  return (t.related || []).filter((r) => r.role === "effect").map((r) => r.ticket_id);
}

/** The feed's order with each visible effect moved under its (first visible) cause. */
export function grouped(list) {
  const visible = new Map(list.map((e) => [e.t.ticket_id, e]));
  const under = new Map();   // effect id -> cause id
  for (const e of list) {
    for (const id of effectIds(e.t)) if (visible.has(id) && !under.has(id) && id !== e.t.ticket_id) under.set(id, e.t.ticket_id);
  }
  for (const [effect, cause] of [...under]) if (under.has(cause)) under.delete(effect);   // one level only
  const out = [];
  for (const e of list) {
    if (under.has(e.t.ticket_id)) continue;
    out.push(e);
    for (const other of list) if (under.get(other.t.ticket_id) === e.t.ticket_id) out.push(other);
  }
  groupOf = under;
  return out;
}
let groupOf = new Map();

export function renderLinks(row, t) {
  const cause = groupOf.get(t.ticket_id) || "";
  const effects = [...groupOf].filter(([, c]) => c === t.ticket_id).map(([e]) => e);
  const related = (t.related || []).filter((r) => r.ticket_id !== t.ticket_id);
  const signature = JSON.stringify([S.getLang(), cause, effects, related,
    related.map((r) => { const o = tickets.get(r.ticket_id); return o ? [o.t.version] : null; })]);
  row.el.classList.toggle("compound", effects.length > 0);
  row.el.classList.toggle("effect", Boolean(cause));
  if (effects.length) row.el.dataset.compound = "cause"; else if (cause) row.el.dataset.compound = "effect";
  else delete row.el.dataset.compound;
  row.el.dataset.effects = String(effects.length);
  if (cause) row.el.dataset.causeId = cause; else delete row.el.dataset.causeId;
  if (row.links.parentNode !== row.body) row.body.append(row.links);
  if (row.linksSignature === signature) return;
  row.linksSignature = signature;
  S.clear(row.links);
  for (const r of related) {
    const other = tickets.get(r.ticket_id);
    const o = other && other.t;
    const text = o ? `${S.label("severityShort", o.severity)} ${o.title} · ${S.departmentName(o.department)} · ${S.label("status", o.status)}`
      : r.ticket_id;
    row.links.append(S.el("button", { type: "button", class: "link", dataset: { relatedId: r.ticket_id, role: r.role, rule: r.rule },
      title: r.ticket_id, on: { click: () => { select(r.ticket_id, true); } } },
      `${r.role === "effect" ? "↳ " + w("causeOf") : "↰ " + w("effectOf")} [${r.rule}] ${text}`));
  }
}

/** A line from each cause to each effect, at their places: at every zoom, drawn or clustered. */
export function renderMapLinks() {
  const layer = document.querySelector("#map #links");
  if (!layer || !project) return;
  const pairs = [];
  for (const [id, entry] of tickets) {
    if (!isOpen(entry.t) || !matches(entry.t)) continue;
    for (const r of entry.t.related || []) {
      const other = r.role === "effect" && tickets.get(r.ticket_id);
      if (other && isOpen(other.t) && matches(other.t)) pairs.push([entry.t, other.t, r.rule]);
    }
  }
  const ends = pairs.map(([c, e, rule]) => [c.ticket_id, e.ticket_id, rule, ...project(c.lon, c.lat), ...project(e.lon, e.lat)]);
  const signature = JSON.stringify([mapView.z, ends]);
  if (layer.dataset.signature === signature) return;
  layer.dataset.signature = signature;
  S.clear(layer);
  for (const [cause, effect, rule, x1, y1, x2, y2] of ends) {
    layer.append(S.el("line", { class: "link", x1: x1.toFixed(1), y1: y1.toFixed(1), x2: x2.toFixed(1),
      y2: y2.toFixed(1), dataset: { cause, effect, rule } }, S.el("title", { text: rule })));
  }
}

// ---- keyboard: arrows move through the strip and then the feed, Enter opens, Escape closes
let selectedId = null;

function navigable() {
  return [...document.querySelectorAll("#pinned-list > li, #alerts > li")].map((n) => n.dataset.ticketId);
}

/** `bring`: show the strip's page holding it (a pick on the map or a link; the arrows keep the page). */
export function select(ticketId, scroll, bring = scroll) {
  selectedId = ticketId;
  if (bring) showPinned(ticketId);
  highlight(ticketId, scroll);
  const pin = document.querySelector(`#pinned-list > li[data-ticket-id="${CSS.escape(ticketId)}"]`);
  if (pin && scroll) pin.scrollIntoView({ block: "nearest" });
  document.body.dataset.selected = ticketId;
}

function onKey(event) {
  if (!signedIn()) return;
  if (event.key === "Escape" && !$("#detail").hidden) { closeDetail(); event.preventDefault(); return; }
  if (!$("#detail").hidden) return;
  if (event.target.closest && event.target.closest("input, select, textarea, button, form")) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const ids = navigable();
    if (!ids.length) return;
    let at = ids.indexOf(selectedId);
    if (at < 0) at = event.key === "ArrowDown" ? 0 : ids.length - 1;
    else at = Math.max(0, Math.min(ids.length - 1, at + (event.key === "ArrowDown" ? 1 : -1)));
    select(ids[at], true, false);
    event.preventDefault();
  } else if (event.key === "Enter" && selectedId) {
    openDetail(selectedId);
    event.preventDefault();
  }
}

export async function openDetail(ticketId) {
  const entry = tickets.get(ticketId);
  const panel = $("#detail");
  panel.dataset.ticketId = ticketId;
  const paint = (t) => {
    if (panel.dataset.ticketId !== ticketId) return;
    S.text($("#detail-title"), `${S.label("severity", t.severity)} · ${t.title}`);
    const facts = [
      [S.t("status"), S.label("status", t.status)], [S.t("department"), S.departmentName(t.department)],
      [S.t("community"), S.communityName(t.community)], [S.t("dispatchedAt"), S.dateTime(t.dispatched_at)],
      [w("acceptDue"), S.dateTime(t.accept_due)], [w("resolveDue"), S.dateTime(t.resolve_due)],
      ["ID", t.ticket_id],
    ];
    const body = S.clear($("#detail-body"));
    body.append(S.el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [S.el("dt", { text: k }), S.el("dd", { text: v || "—" })])));
    if (t.description) body.append(S.el("p", { class: "desc", text: S.maskPersonal(t.description) }));
    if ((t.related || []).length) {
      body.append(S.el("h3", { text: w("related") }), S.el("ul", { class: "related" },
        ...t.related.map((r) => S.el("li", { dataset: { relatedId: r.ticket_id, role: r.role } },
          `${r.role === "effect" ? w("causeOf") : w("effectOf")} [${r.rule}] ${r.ticket_id}`))));
    }
    // The words come with the ticket from the API (the stream's copy has none): painted once they are here.
    const said = (t.history || []).filter((h) => S.historyText(h));
    if (said.length) {
      body.append(S.el("h3", { text: w("detailHistory") }), S.el("ol", { class: "history" },
        ...said.reverse().map((h) => S.el("li", { dataset: { kind: h.kind }, text: S.historyText(h) }))));
    }
  };
  if (entry) paint(entry.t);
  panel.hidden = false;
  $("#detail-close").focus();
  try {
    paint((await S.api(auth.token, "GET", `/api/tickets/${encodeURIComponent(ticketId)}`)).body);
  } catch (error) {
    failed(error, ticketId);
  }
}

export function closeDetail() {
  $("#detail").hidden = true;
  delete $("#detail").dataset.ticketId;
}

export function initWall() {
  $("#sound-enable").addEventListener("click", enableSound);
  $("#mute").addEventListener("click", () => {
    sound.muted = !sound.muted;
    try { localStorage.setItem("soc.board.muted", sound.muted ? "1" : "0"); } catch (_e) { /* private mode */ }
    renderSound();
  });
  $("#detail-close").addEventListener("click", closeDetail);
  $("#pinned-prev").addEventListener("click", () => turnPinned(-1));
  $("#pinned-next").addEventListener("click", () => turnPinned(1));
  // For the e2e tests: the strip's whole order across its pages, and a ticket's page brought up.
  window.SOC_BOARD.strip = { ids: () => pinnedPages.flat().map(({ t }) => t.ticket_id), show: showPinned };
  $("#detail").addEventListener("click", (event) => { if (event.target === $("#detail")) closeDetail(); });
  document.addEventListener("keydown", onKey);
  renderSound();
}
