/* The feed: counters, filters, one row per ticket with its SLA countdown and actions (verify, rework, extension
 * decisions). */
import { $, MAX_MARKERS, MAX_ROWS, S, auth, filters, hideError, markers, rows, showError, showNotice, tickets } from "./state.js";
import { sessionEnded } from "./signin.js";
import { applyTicket, isOpen } from "./stream.js";
import { renderMarkers } from "./map.js";
import { fmt, openSilence } from "./silences.js";
import { grouped, renderLinks, renderPinned, seenButton, seenEntry, seenMark } from "./wall.js";
import { renderUnseen } from "./alarms.js";

let renderPending = false;
export function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  setTimeout(render, 16);
}

export function matches(ticket) {
  return (!filters.source || ticket.source === filters.source)
    && (!filters.severity || ticket.severity === filters.severity)
    && (!filters.department || ticket.department === filters.department)
    && (!filters.community || (filters.community === "-" ? !ticket.community : ticket.community === filters.community));
}

/** Every row and marker filled again (the language changed, or the board was cleared). */
export function rerenderAll() {
  for (const row of rows.values()) row.lang = null;   // force refill
  for (const marker of markers.values()) marker.dataset.lang = "";
  render();
}

export function render() {
  renderPending = false;
  const all = [...tickets.values()];
  renderCounters(all);
  const filtered = grouped(all.filter((entry) => matches(entry.t)).sort((a, b) => b.order - a.order));
  renderPinned(all);
  renderUnseen();
  renderRows(filtered.slice(0, MAX_ROWS));
  // Red and orange first: if the map must leave some out, it leaves out the least severe.
  renderMarkers(filtered.filter((entry) => isOpen(entry.t))
    .sort((a, b) => S.SEVERITY_RANK[b.t.severity] - S.SEVERITY_RANK[a.t.severity] || b.order - a.order).slice(0, MAX_MARKERS));
  const info = $("#list-info");
  const en = S.getLang() === "en";
  if (filtered.length > MAX_ROWS) {
    info.textContent = en ? `Showing ${MAX_ROWS} of ${filtered.length}` : `显示 ${MAX_ROWS} / 共 ${filtered.length}`;
  } else {
    info.textContent = en ? `${filtered.length} alerts` : `共 ${filtered.length}`;
  }
  $("#empty").hidden = filtered.length > 0;
}

function renderCounters(all) {
  const bySeverity = Object.fromEntries(S.SEVERITIES.map((s) => [s, 0]));
  const bySource = Object.fromEntries(S.SOURCES.map((s) => [s, 0]));
  let open = 0;
  for (const { t } of all) {
    if (!isOpen(t)) continue;
    open += 1;
    if (t.severity in bySeverity) bySeverity[t.severity] += 1;
    if (t.source in bySource) bySource[t.source] += 1;
  }
  for (const [key, count] of [...Object.entries(bySeverity), ...Object.entries(bySource), ["open", open]]) {
    const node = document.querySelector(`[data-counter="${key}"] .n`);
    if (node && node.textContent !== String(count)) node.textContent = String(count);
  }
}

export function buildCounters() {
  const severity = S.clear($("#severity-counters"));
  for (const s of S.SEVERITIES) {
    severity.append(S.el("button", { type: "button", class: "counter", dataset: { counter: s, severity: s },
      on: { click: () => toggleFilter("severity", s) } },
      S.el("span", { class: "n" }, "0"), S.el("span", { class: "l", text: S.label("severity", s) })));
  }
  severity.append(S.el("div", { class: "counter total", dataset: { counter: "open" } },
    S.el("span", { class: "n" }, "0"), S.el("span", { class: "l", text: S.t("open") })));
  const sources = S.clear($("#source-counters"));
  for (const s of S.SOURCES) {
    sources.append(S.el("button", { type: "button", class: "counter source", dataset: { counter: s, source: s },
      on: { click: () => toggleFilter("source", s) } },
      S.el("span", { class: "n" }, "0"), S.el("span", { class: "l", text: S.label("source", s) })));
  }
}

function toggleFilter(name, value) {
  filters[name] = filters[name] === value ? "" : value;
  document.querySelector(`[data-filter="${name}"]`).value = filters[name];
  rerenderAll();
}

export function buildFilters() {
  const district = S.getDistrict();
  const options = {
    source: S.SOURCES.map((s) => [s, S.label("source", s)]),
    severity: S.SEVERITIES.map((s) => [s, S.label("severity", s)]),
    department: Object.keys(district.departments).map((d) => [d, S.departmentName(d)]),
    community: [...Object.keys(district.communities).map((c) => [c, S.communityName(c)]), ["-", S.t("outside")]],
  };
  for (const [name, list] of Object.entries(options)) {
    const select = S.clear(document.querySelector(`[data-filter="${name}"]`));
    select.append(S.el("option", { value: "" }, S.t("all")));
    for (const [value, text] of list) select.append(S.el("option", { value }, text));
    select.value = filters[name];
  }
}

export function onFilterChange(event) {
  const name = event.target.dataset.filter;
  if (!name) return;
  filters[name] = event.target.value;
  rerenderAll();
}

function renderRows(visible) {
  const list = $("#alerts");
  const keep = new Set();
  let previous = null;
  const lang = S.getLang();
  for (const { t } of visible) {
    let row = rows.get(t.ticket_id);
    if (!row) {
      row = createRow(t.ticket_id);
      rows.set(t.ticket_id, row);
    }
    if (row.version !== t.version || row.lang !== lang) fillRow(row, t);
    renderLinks(row, t);
    keep.add(t.ticket_id);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== row.el) list.insertBefore(row.el, expected);
    previous = row.el;
  }
  for (const [id, row] of rows) {
    if (!keep.has(id)) {
      row.el.remove();
      rows.delete(id);
    }
  }
}

function createRow(ticketId) {
  const el = S.el("li", { class: "row", dataset: { ticketId } });
  const row = { el, version: null, lang: null, ticket: null };
  row.band = S.el("div", { class: "band" });
  row.body = S.el("div", { class: "body" });
  row.side = S.el("div", { class: "side" });
  row.actions = S.el("div", { class: "actions" });
  row.formHost = S.el("div", { class: "form-host" });
  row.links = S.el("div", { class: "links" });
  el.append(row.band, row.body, row.side, row.actions, row.formHost);
  el.addEventListener("click", (event) => {
    if (event.target.closest("button, input, form, select, textarea")) return;
    highlight(ticketId, false);
  });
  return row;
}

function fillRow(row, t) {
  row.version = t.version;
  row.lang = S.getLang();
  row.ticket = t;
  const el = row.el;
  Object.assign(el.dataset, {
    severity: t.severity, status: t.status, version: String(t.version), source: t.source,
    department: t.department, community: t.community || "", escalation: t.escalation,
    sourceRef: S.maskPersonal(t.source_ref), incidentId: t.incident_id,
  });
  el.classList.toggle("closed", t.status === "closed");

  S.fill(row.band, S.el("span", { text: S.label("severityShort", t.severity) }));

  const meta = S.el("div", { class: "meta" },
    S.el("span", { class: "tag source", text: S.label("source", t.source) }),
    S.el("span", { class: "tag category", text: S.label("category", t.category) }),
    S.el("span", { class: "community", text: S.communityName(t.community) }),
    S.el("span", { class: "department", text: S.departmentName(t.department) }));
  S.fill(row.body,
    S.el("div", { class: "title", text: t.title, title: t.title }),
    meta,
    t.description ? S.el("div", { class: "desc", text: t.description, title: t.description }) : null);

  row.sla = S.el("span", { class: "sla" });
  S.renderSla(row.sla, t);
  const badges = S.el("div", { class: "badges" },
    S.el("span", { class: "status", dataset: { status: t.status }, text: S.label("status", t.status) }),
    t.escalation && t.escalation !== "none"
      ? S.el("span", { class: "esc", dataset: { escalation: t.escalation }, text: S.label("escalation", t.escalation) })
      : null,
    t.extension ? S.el("span", { class: "ext", text: S.t("extensionPending"),
      title: `${S.t("until")} ${S.dateTime(t.extension.until)} — ${t.extension.reason}` }) : null,
    t.silenced_by ? S.el("span", { class: "quiet", dataset: { silenceId: t.silenced_by }, text: S.t("quietTicket"),
      title: fmt("quietUntil", { time: S.dateTime(t.quiet_until), id: t.silenced_by }) }) : null,
    seenMark(t));
  S.fill(row.side,
    S.el("div", { class: "when" },
      S.el("time", { class: "time", datetime: t.observed_at, title: `${S.t("observedAt")} ${S.dateTime(t.observed_at)}\n${S.t("dispatchedAt")} ${S.dateTime(t.dispatched_at)}`,
        text: S.clock(t.observed_at) }),
      S.el("span", { class: "occ", title: S.t("occurrences"), text: `×${t.occurrences}` })),
    badges,
    row.sla);

  // Only what the signed-in role may do (GET /api/district's actions and capabilities): a leader's board has
  // no verify, a community workstation's no redispatch; and no one verifies what they resolved themselves.
  S.clear(row.actions);
  if (t.status === "resolved" && auth.can("verify") && !isMine(resolverOf(t))) {
    row.actions.append(
      S.el("button", { type: "button", class: "ok", dataset: { action: "verify" },
        on: { click: () => verify(row, true, "") } }, `${S.LABELS.zh.ui.verify} ${S.LABELS.en.ui.verify}`),
      S.el("button", { type: "button", class: "warn", dataset: { action: "rework" },
        on: { click: () => openRework(row) } }, `${S.LABELS.zh.ui.rework} ${S.LABELS.en.ui.rework}`));
  }
  if (t.extension && (t.status === "dispatched" || t.status === "accepted") && mayDecideExtension(t)) {
    row.actions.append(
      S.el("button", { type: "button", class: "ok", dataset: { action: "approve-extension" },
        on: { click: () => decideExtension(row, true) } }, S.t("approve")),
      S.el("button", { type: "button", class: "warn", dataset: { action: "reject-extension" },
        on: { click: () => decideExtension(row, false) } }, S.t("reject")));
  }
  if (t.status === "returned" && auth.can("redispatch")) {
    row.actions.append(
      S.el("button", { type: "button", class: "warn", dataset: { action: "redispatch" },
        on: { click: () => openRedispatch(row) } }, `${S.LABELS.zh.ui.redispatch} ${S.LABELS.en.ui.redispatch}`));
  }
  if (t.status === "closed" && t.followup_due && auth.can("followup")) {
    // 回访: the officer's call to the citizen after a hotline or app case closed.
    for (const [result, style] of FOLLOWUP_RESULTS) {
      row.actions.append(S.el("button", { type: "button", class: style, dataset: { action: `followup-${result}` },
        title: `${S.t("followupDue")} ${S.dateTime(t.followup_due)}`,
        on: { click: () => post(row, "followup", { result, note: "" }) } }, S.t(`followup_${result}`)));
    }
  }
  if (t.status !== "closed" && !seenEntry(t) && auth.can("acknowledge")) row.actions.append(seenButton(t));
  if (t.status !== "closed" && auth.may("manage_silences")) {
    row.actions.append(
      S.el("button", { type: "button", class: "ghost silence", dataset: { action: "silence" },
        on: { click: () => openSilence(row) } }, S.t("silenceSimilar")));
  }
  // A half-written form stays while its action is still possible (a silence form always is).
  const open = row.formHost.querySelector("form");
  const stillValid = open && ((open.dataset.action === "rework" && t.status === "resolved")
    || (open.dataset.action === "redispatch" && t.status === "returned") || open.dataset.action === "silence");
  if (open && !stillValid) S.clear(row.formHost);
}

/** The user id behind the ticket's latest resolve (the one person who may not verify it). */
function resolverOf(t) {
  const history = t.history || [];
  for (let i = history.length - 1; i >= 0; i -= 1) {
    if (history[i].kind === "resolve") return history[i].user ? history[i].user.user_id : null;
  }
  return null;
}

function isMine(userId) { return Boolean(userId) && Boolean(auth.user) && auth.user.user_id === userId; }

/** The centre decides any extension; a supervisor their own department's; nobody the one they asked for. */
function mayDecideExtension(t) {
  const me = auth.district;
  return auth.can("extend_decision") && (me.department === "ops_centre" || me.department === t.department)
    && !isMine(t.extension.user_id);
}

function openRedispatch(row) {
  const existing = row.formHost.querySelector('form[data-action="redispatch"]');
  if (existing) {
    existing.querySelector("select").focus();
    return;
  }
  const departments = Object.keys(S.getDistrict().departments);
  const select = S.el("select", { name: "department", "aria-label": S.t("department") },
    ...departments.map((d) => S.el("option", { value: d }, S.departmentName(d))));
  const current = row.ticket && row.ticket.department;
  select.value = departments.find((d) => d !== current && d !== "ops_centre" && d !== "district_leadership") || current;
  const note = S.el("input", { type: "text", name: "note", maxlength: "2000", placeholder: S.t("note"),
    "aria-label": S.t("note") });
  const form = S.el("form", { class: "inline-form", dataset: { action: "redispatch" } },
    select, note,
    S.el("button", { type: "submit", class: "warn", dataset: { action: "redispatch-submit" } }, S.t("submit")),
    S.el("button", { type: "button", class: "ghost", dataset: { action: "cancel" },
      on: { click: () => S.clear(row.formHost) } }, S.t("cancel")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    post(row, "redispatch", { department: select.value, note: note.value.trim() }, form);
  });
  S.clear(row.formHost).append(form);
  select.focus();
}

function openRework(row) {
  const existing = row.formHost.querySelector('form[data-action="rework"]');
  if (existing) {
    existing.querySelector("input").focus();
    return;
  }
  const input = S.el("input", { type: "text", name: "note", maxlength: "2000", placeholder: S.t("reworkNote"),
    "aria-label": S.t("reworkNote") });
  const form = S.el("form", { class: "inline-form", dataset: { action: "rework" } },
    input,
    S.el("button", { type: "submit", class: "warn", dataset: { action: "rework-submit" } }, S.t("submit")),
    S.el("button", { type: "button", class: "ghost", dataset: { action: "cancel" },
      on: { click: () => S.clear(row.formHost) } }, S.t("cancel")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    verify(row, false, input.value.trim(), form);
  });
  S.clear(row.formHost).append(form);
  input.focus();
}

export async function post(row, action, body, form) {
  const buttons = [...(row.el || row).querySelectorAll("button")];
  if (!row.el) row = { el: row };
  for (const b of buttons) b.disabled = true;
  try {
    const { status, body: result } = await S.api(auth.token, "POST",
      `/api/tickets/${encodeURIComponent(row.el.dataset.ticketId)}/${action}`, body);
    hideError();
    if (status === 202) showNotice(S.t("queued"));
    else if (result && result.ticket_id) applyTicket(result);
    if (form) form.remove();
  } catch (error) {
    if (error instanceof S.ApiError && error.status === 401) {
      sessionEnded(error);
      return;
    }
    showError(`${row.el.dataset.ticketId}: ${S.describeError(error)}`);
    if (error instanceof S.ApiError && error.body && error.body.ticket) applyTicket(error.body.ticket);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

const FOLLOWUP_RESULTS = [["satisfied", "ok"], ["basically_satisfied", "ok"], ["unsatisfied", "warn"],
  ["unreachable", "ghost"]];

function verify(row, passed, note, form) {
  return post(row, "verify", { passed, note: note || "" }, form);
}

function decideExtension(row, approve) {
  return post(row, "extend", { approve, note: "" });
}

export function flash(ticketId) {
  const row = rows.get(ticketId);
  if (!row) return;
  row.el.classList.remove("flash");
  void row.el.offsetWidth;   // restart the animation
  row.el.classList.add("flash");
}

export function highlight(ticketId, scroll) {
  for (const node of document.querySelectorAll(".selected")) node.classList.remove("selected");
  const pin = document.querySelector(`#pinned-list > li[data-ticket-id="${CSS.escape(ticketId)}"]`);
  if (pin) pin.classList.add("selected");
  const row = rows.get(ticketId);
  const marker = markers.get(ticketId);
  if (row) {
    row.el.classList.add("selected");
    if (scroll) row.el.scrollIntoView({ block: "center", behavior: "smooth" });
  }
  if (marker) marker.classList.add("selected");
}
