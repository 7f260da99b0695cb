/* The live board: SSE from /api/alerts/stream (snapshot, then ticket events), one row per ticket,
 * counters, filters, SLA countdowns, the district map, verify / rework / extension decisions. */
"use strict";

(function () {
  const S = window.SOC;
  const $ = (selector) => document.querySelector(selector);
  // A person's session (cookie), or the wall screen's read-only token: see SOC.account() in common.js.
  const auth = S.account("board");

  const MAX_ROWS = 200;          // rows in the DOM; counters and the map cover everything
  const MAX_MARKERS = 2000;
  const CLOSED_KEEP_MS = 60 * 60 * 1000;   // closed tickets stay on the board for an hour
  const COLOURS = { red: "#e53935", orange: "#fb8c00", yellow: "#fdd835", blue: "#1e88e5" };

  /** ticket_id -> {t: Ticket, order: number}: the single source of truth for rows and markers. */
  const tickets = new Map();
  /** ticket_id -> row view {el, version, lang, ...} for rows in the DOM. */
  const rows = new Map();
  /** ticket_id -> SVG circle. */
  const markers = new Map();
  let order = 0;
  const filters = { source: "", severity: "", department: "", community: "" };

  // Exposed for the end-to-end tests and for curious operators in the console.
  const stats = { snapshots: 0, events: 0, ignored: 0, connects: 0, lastEventId: null };
  /** Every alarm the board raised (the e2e tests read it): {kind: "red"|"escalation", ticket_id, step, sounded, at}. */
  const alarms = [];
  window.SOC_BOARD = { stats, tickets, alarms };   // .sound is added with the alarm below

  // ------------------------------------------------------------------ banners and status
  const showError = S.showError;
  const hideError = S.hideError;
  const showNotice = (message) => S.showNotice(message, 5000);

  let connState = "offline";
  function setConn(state) {
    connState = state;
    const node = $("#conn");
    node.dataset.state = state;
    node.textContent = S.t(state);
  }

  function tickClock() { $("#clock").textContent = S.clock(new Date()); }

  // ------------------------------------------------------------------ sign-in
  function showSignIn(message, wallForm) {
    stopStream();
    setConn("offline");
    $("#main").hidden = true;
    $("#signout").hidden = true;
    S.paintWho($("#who"), null);
    $("#signin").hidden = false;
    showForm(Boolean(wallForm));
    $("#password").value = "";
    $("#token").value = "";
    $("#silences").hidden = true;
    $("#response-banner").hidden = true;
    silencesPainted = "";
    if (message) showError(message);
    if (wallForm) $("#token").focus();
    else ($("#user").value ? $("#password") : $("#user")).focus();
  }

  /** The person's form (user name, password) or the wall screen's (its read-only token). */
  function showForm(wall) {
    $("#signin-form").hidden = wall;
    $("#wall-form").hidden = !wall;
  }

  /** Who may use this board: anyone whose role watches it (the centre and the leadership the whole district,
   * a community workstation its community); through a token, only the wall screen's read-only one. */
  function checkBoard(district) {
    if (auth.token && !district.read_only) throw new S.ApiError(403, S.t("notWall"), { error: S.t("notWall") });
    if (!district.read_only && !(district.capabilities || []).includes("watch_board")) {
      throw new S.ApiError(403, S.t("noBoard"), { error: S.t("noBoard") });
    }
    // The wall screen reads and never acts: its board shows no action at all.
    document.body.toggleAttribute("data-read-only", Boolean(district.read_only));
    return district;
  }

  /** `how` gives the district JSON: a sign-in, the wall's token, or (on load) whoever the cookie names;
   * `failed` the message for its error; `wallForm`: show the token's form again on failure. */
  async function signIn(how, failed, wallForm) {
    try {
      const district = checkBoard(await how());
      hideError();
      start(district);
    } catch (error) {
      const transient = error instanceof S.ApiError && (error.status === 0 || error.status >= 500);
      if (transient && how === resume) {
        // The server is restarting: a remembered sign-in waits for it instead of asking again.
        showError(S.describeError(error));
        setConn("reconnecting");
        setTimeout(() => signIn(resume, failed, wallForm), 3000);
        return;
      }
      // Just signed in, but not for this board: sign out again (a session from another page stays).
      if (auth.active && how !== resume) await auth.logout().catch(() => {});
      auth.forget();
      showSignIn(failed(error), wallForm);
    }
  }

  const resume = () => auth.resume();

  /** A 401 while working: the session ended (idle expiry, signed out elsewhere, disabled). */
  function sessionEnded(error) {
    const wall = Boolean(auth.token);   // the wall's token was refused (changed): its own form again
    auth.forget();
    resetBoard();
    showSignIn(wall ? `${S.t("badToken")} (${S.describeError(error)})` : S.sessionEnded(error), wall);
  }

  // ------------------------------------------------------------------ state
  function activity(ticket) {
    const last = ticket.history && ticket.history.length ? Date.parse(ticket.history[ticket.history.length - 1].at) : 0;
    return Math.max(last || 0, Date.parse(ticket.dispatched_at) || 0);
  }

  function isOpen(ticket) { return ticket.status !== "closed"; }

  /** A live change: keep it if it's a newer version, and move it to the top. */
  function applyTicket(ticket) {
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

  function pruneClosed() {
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

  function stopStream() {
    clearTimeout(retryTimer);
    if (source) source.close();
    source = null;
  }

  function connect() {
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

  // ------------------------------------------------------------------ rendering
  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    setTimeout(render, 16);
  }

  function matches(ticket) {
    return (!filters.source || ticket.source === filters.source)
      && (!filters.severity || ticket.severity === filters.severity)
      && (!filters.department || ticket.department === filters.department)
      && (!filters.community || (filters.community === "-" ? !ticket.community : ticket.community === filters.community));
  }

  function render() {
    renderPending = false;
    const all = [...tickets.values()];
    renderCounters(all);
    const filtered = grouped(all.filter((entry) => matches(entry.t)).sort((a, b) => b.order - a.order));
    renderPinned(all);
    renderRows(filtered.slice(0, MAX_ROWS));
    renderMarkers(filtered.filter((entry) => isOpen(entry.t)).slice(0, MAX_MARKERS));
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

  function buildCounters() {
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

  function buildFilters() {
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

  function onFilterChange(event) {
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
      sourceRef: S.maskPhones(t.source_ref), incidentId: t.incident_id,
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
    if (t.status !== "closed" && !seenEntry(t) && auth.can("comment")) row.actions.append(seenButton(t));
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
      if (history[i].action === "resolve") return history[i].user ? history[i].user.user_id : null;
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

  async function post(row, action, body, form) {
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

  function flash(ticketId) {
    const row = rows.get(ticketId);
    if (!row) return;
    row.el.classList.remove("flash");
    void row.el.offsetWidth;   // restart the animation
    row.el.classList.add("flash");
  }

  function highlight(ticketId, scroll) {
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

  // ------------------------------------------------------------------ map
  let project = null;

  function buildMap() {
    const svg = S.clear($("#map"));
    markers.clear();
    const communities = S.getDistrict().communities;
    const points = Object.values(communities).flatMap((c) => c.polygon);
    if (!points.length) return;
    const lons = points.map((p) => p[0]);
    const lats = points.map((p) => p[1]);
    let [minLon, maxLon, minLat, maxLat] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
    const padLon = (maxLon - minLon) * 0.04 || 0.001;
    const padLat = (maxLat - minLat) * 0.06 || 0.001;
    minLon -= padLon; maxLon += padLon; minLat -= padLat; maxLat += padLat;
    // Linear projection; x scaled by cos(latitude) so the district keeps its shape.
    const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const width = 1000;
    const height = Math.round(width * (maxLat - minLat) / ((maxLon - minLon) * kx));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    mapSize = { width, height, metresPerUnit: ((maxLat - minLat) * 111320) / height };
    mapView = { z: 1, cx: width / 2, cy: height / 2 };
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    project = (lon, lat) => [
      clamp((lon - minLon) / (maxLon - minLon) * width, 6, width - 6),
      clamp((maxLat - lat) / (maxLat - minLat) * height, 6, height - 6),
    ];
    svg.append(S.el("rect", { x: 0, y: 0, width, height, class: "sea" }));
    const areas = S.el("g", { class: "communities" });
    const labels = S.el("g", { class: "labels" });
    for (const [id, community] of Object.entries(communities)) {
      const xy = community.polygon.map(([lon, lat]) => project(lon, lat));
      areas.append(S.el("polygon", { class: "community", dataset: { community: id },
        points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ") },
        S.el("title", { text: S.communityName(id) })));
      const cx = xy.reduce((s, p) => s + p[0], 0) / xy.length;
      const cy = xy.reduce((s, p) => s + p[1], 0) / xy.length;
      labels.append(S.el("text", { class: "community-label", x: cx.toFixed(1), y: cy.toFixed(1),
        "text-anchor": "middle", "dominant-baseline": "middle", dataset: { community: id } }, S.communityName(id)));
    }
    // One layer per severity, most severe drawn last (on top); community names above the markers.
    const layers = S.el("g", { id: "markers" });
    for (const s of [...S.SEVERITIES].reverse()) layers.append(S.el("g", { class: "layer", dataset: { severity: s } }));
    svg.append(areas, S.el("g", { id: "geo" }), S.el("g", { id: "sites-layer" }), S.el("g", { id: "links" }), layers,
      S.el("g", { id: "clusters" }), labels);
    drawGeo();
    drawSites();
    applyView();
  }

  function renderMarkers(open) {
    if (!project) return;
    const keep = new Set();
    // Big enough to see across the room, smaller when the map is crowded; the same size on screen at any zoom.
    const radius = +((open.length <= 60 ? 12 : open.length <= 250 ? 9 : 7) / mapView.z).toFixed(2);
    for (const { t } of open) {
      keep.add(t.ticket_id);
      let marker = markers.get(t.ticket_id);
      if (!marker) {
        marker = S.el("circle", { class: "marker", r: radius, dataset: { ticketId: t.ticket_id } });
        marker.addEventListener("click", () => { select(t.ticket_id, true); openDetail(t.ticket_id); });
        markers.set(t.ticket_id, marker);
      }
      if (marker.getAttribute("r") !== String(radius)) marker.setAttribute("r", radius);
      if (marker.dataset.version !== String(t.version) || marker.dataset.lang !== S.getLang()) {
        const [x, y] = project(t.lon, t.lat);
        marker.setAttribute("cx", x.toFixed(1));
        marker.setAttribute("cy", y.toFixed(1));
        marker.setAttribute("fill", COLOURS[t.severity] || "#9e9e9e");
        Object.assign(marker.dataset, { severity: t.severity, status: t.status, version: String(t.version), lang: S.getLang() });
        marker.classList.toggle("pulse", t.severity === "red");
        S.fill(marker, S.el("title", {
          text: `${S.label("severity", t.severity)} · ${t.title} · ${S.label("status", t.status)}` }));
      }
      const layer = document.querySelector(`#markers .layer[data-severity="${t.severity}"]`);
      if (layer && marker.parentNode !== layer) layer.append(marker);
    }
    for (const [id, marker] of markers) {
      if (!keep.has(id)) {
        marker.remove();
        markers.delete(id);
      }
    }
    renderMapLinks();
    renderClusters(open, radius);
    shadeCommunities();
  }

  // ------------------------------------------------------------------ map: offline layers, zoom, clusters, shading
  let mapSize = null;                  // {width, height, metresPerUnit}
  let mapView = { z: 1, cx: 0, cy: 0 };
  const ZOOMS = [1, 2, 4, 8];
  let geo = null;                      // GET /api/map (GeoJSON), once
  let sites = [];                      // GET /api/sites?status=active
  let shading = false;
  let clusterList = [];                // the clusters drawn now: {count, ids, x, y, severity}

  async function loadGeo() {
    try {
      geo = (await S.api(auth.token, "GET", "/api/map")).body;
    } catch (_error) {
      geo = null;   // the map works without its layers
    }
    try {
      sites = (await S.api(auth.token, "GET", "/api/sites?status=active")).body.sites || [];
    } catch (_error) {
      sites = [];
    }
    drawGeo();
    drawSites();
  }

  function drawGeo() {
    const layer = document.querySelector("#map #geo");
    if (!layer || !project || !geo) return;
    S.clear(layer);
    const order = ["river", "road", "underpass", "pump_station", "flood_station"];
    const features = [...(geo.features || [])].sort((a, b) => order.indexOf(a.properties.layer) - order.indexOf(b.properties.layer));
    const w = 1 / mapView.z;
    for (const f of features) {
      const p = f.properties;
      const title = S.el("title", { text: `${p.name} (${p.id})` });
      if (f.geometry.type === "LineString") {
        const d = f.geometry.coordinates.map(([lon, lat], i) => `${i ? "L" : "M"}${project(lon, lat).map((v) => v.toFixed(1)).join(",")}`).join(" ");
        layer.append(S.el("path", { class: `geo ${p.layer}`, d, "stroke-width": ((p.layer === "river" ? 7 : 5) * w).toFixed(2),
          dataset: { layer: p.layer, id: p.id } }, title));
      } else {
        const [x, y] = project(...f.geometry.coordinates);
        layer.append(S.el("rect", { class: `geo ${p.layer}`, x: (x - 5 * w).toFixed(1), y: (y - 5 * w).toFixed(1),
          width: (10 * w).toFixed(2), height: (10 * w).toFixed(2), dataset: { layer: p.layer, id: p.id } }, title));
      }
    }
  }

  function drawSites() {
    const layer = document.querySelector("#map #sites-layer");
    if (!layer || !project || !mapSize) return;
    S.clear(layer);
    for (const site of sites) {
      const [x, y] = project(site.lon, site.lat);
      layer.append(S.el("circle", { class: "site", cx: x.toFixed(1), cy: y.toFixed(1),
        r: Math.max(site.radius_m / mapSize.metresPerUnit, 2 / mapView.z).toFixed(2), dataset: { siteId: site.site_id } },
        S.el("title", { text: `${site.name} (${site.site_id}) ${site.radius_m} m` })));
    }
  }

  function applyView() {
    const svg = $("#map");
    if (!mapSize) return;
    const w = mapSize.width / mapView.z;
    const h = mapSize.height / mapView.z;
    mapView.cx = Math.min(mapSize.width - w / 2, Math.max(w / 2, mapView.cx));
    mapView.cy = Math.min(mapSize.height - h / 2, Math.max(h / 2, mapView.cy));
    svg.setAttribute("viewBox", `${(mapView.cx - w / 2).toFixed(1)} ${(mapView.cy - h / 2).toFixed(1)} ${w.toFixed(1)} ${h.toFixed(1)}`);
    svg.dataset.zoom = String(mapView.z);
    svg.style.setProperty("--z", String(mapView.z));
  }

  /** Zoom to one of ZOOMS, centred on an SVG point (the current centre by default). */
  function zoomTo(z, cx, cy) {
    if (!mapSize) return;
    mapView.z = ZOOMS.includes(z) ? z : mapView.z;
    if (cx !== undefined) { mapView.cx = cx; mapView.cy = cy; }
    applyView();
    drawGeo();
    drawSites();
    for (const marker of markers.values()) marker.dataset.lang = "";   // re-place at the new size
    render();
  }

  function zoomStep(step, cx, cy) {
    const at = ZOOMS.indexOf(mapView.z);
    zoomTo(ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, at + step))], cx, cy);
  }

  /** Markers closer on screen than about two marker widths are drawn as one cluster with its count. */
  function renderClusters(open, radius) {
    const layer = document.querySelector("#map #clusters");
    if (!layer) return;
    const reach = radius * 2.2;
    const seeds = [];
    const sorted = open.map((e) => e.t).filter((t) => markers.has(t.ticket_id))
      .sort((a, b) => S.SEVERITY_RANK[b.severity] - S.SEVERITY_RANK[a.severity] || String(a.ticket_id).localeCompare(b.ticket_id));
    for (const t of sorted) {
      const m = markers.get(t.ticket_id);
      const x = Number(m.getAttribute("cx"));
      const y = Number(m.getAttribute("cy"));
      const seed = seeds.find((c) => Math.hypot(c.x - x, c.y - y) <= reach);
      if (seed) seed.ids.push(t.ticket_id); else seeds.push({ x, y, ids: [t.ticket_id], severity: t.severity });
    }
    clusterList = seeds.filter((c) => c.ids.length > 1).map((c) => ({ ...c, count: c.ids.length }));
    const clustered = new Set(clusterList.flatMap((c) => c.ids));
    for (const [id, marker] of markers) marker.classList.toggle("clustered", clustered.has(id));
    S.clear(layer);
    for (const c of clusterList) {
      const group = S.el("g", { class: "cluster", dataset: { count: String(c.count), severity: c.severity, ticketIds: c.ids.join(" ") } },
        S.el("circle", { cx: c.x.toFixed(1), cy: c.y.toFixed(1), r: (radius * 1.5).toFixed(2), fill: COLOURS[c.severity] }),
        S.el("text", { x: c.x.toFixed(1), y: c.y.toFixed(1), "text-anchor": "middle", "dominant-baseline": "central",
          "font-size": (radius * 1.5).toFixed(2) }, String(c.count)),
        S.el("title", { text: `${c.count}` }));
      group.addEventListener("click", () => zoomStep(1, c.x, c.y));   // a cluster splits on zoom
      layer.append(group);
    }
  }

  /** Per-community view: each community shaded by its open tickets (toggle). */
  function shadeCommunities() {
    const counts = {};
    for (const { t } of tickets.values()) if (isOpen(t) && t.community) counts[t.community] = (counts[t.community] || 0) + 1;
    const max = Math.max(1, ...Object.values(counts));
    for (const polygon of document.querySelectorAll("#map .community")) {
      const n = counts[polygon.dataset.community] || 0;
      polygon.dataset.open = String(n);
      polygon.style.fill = shading ? `rgba(229, 57, 53, ${(0.12 + 0.7 * (n / max)).toFixed(3)})` : "";
    }
    for (const label of document.querySelectorAll("#map .community-label")) {
      const n = counts[label.dataset.community] || 0;
      label.textContent = shading ? `${S.communityName(label.dataset.community)} ${n}` : S.communityName(label.dataset.community);
    }
    const toggle = $("#map-shading");
    if (toggle) { toggle.setAttribute("aria-pressed", String(shading)); toggle.classList.toggle("active", shading); }
  }

  function initMapControls() {
    $("#zoom-in").addEventListener("click", () => zoomStep(1));
    $("#zoom-out").addEventListener("click", () => zoomStep(-1));
    $("#map-shading").addEventListener("click", () => { shading = !shading; shadeCommunities(); });
    $("#map").addEventListener("wheel", (event) => {
      if (!mapSize) return;
      event.preventDefault();
      const svg = $("#map");
      const point = svg.createSVGPoint();
      point.x = event.clientX; point.y = event.clientY;
      const at = point.matrixTransform(svg.getScreenCTM().inverse());
      zoomStep(event.deltaY < 0 ? 1 : -1, at.x, at.y);
    }, { passive: false });
    window.SOC_BOARD.map = {
      zoom: (z, lon, lat) => { const [x, y] = lon === undefined ? [mapView.cx, mapView.cy] : project(lon, lat); zoomTo(z, x, y); },
      clusters: () => clusterList.map((c) => ({ count: c.count, ids: c.ids.slice(), severity: c.severity })),
      get z() { return mapView.z; },
    };
  }

  // ------------------------------------------------------------------ silences (屏蔽), silenced list, response level
  // Polled every 10 s. A silence travels through soc.silences to every worker's table, so a GET right after
  // this page made or ended one may not show it yet: the page keeps its own change until a GET agrees (or
  // LAG_MS passes, after which the server's answer is the truth).
  const EXTRAS_POLL_MS = 10 * 1000;
  const LAG_MS = 30 * 1000;
  const SILENCED_WINDOW_MS = 24 * 60 * 60 * 1000;
  const SILENCED_PAGE = 1000;     // the API's largest page
  const SILENCED_ROWS = 200;
  const DURATIONS_MIN = [30, 60, 120, 240, 480, 1440, 4320, 10080];
  const DEFAULT_DURATION_MIN = 120;
  const LEVELS = ["none", "IV", "III", "II", "I"];
  const LEVEL_COLOURS = { I: "red", II: "orange", III: "yellow", IV: "blue" };

  let listedSilences = [];        // GET /api/silences?state=active
  const madeHere = new Map();     // silence_id -> {silence, at}
  const endedHere = new Map();    // silence_id -> at
  let silencesExpanded = false;
  let silencesPainted = "";
  const silencedById = new Map(); // incident_id -> silenced incident (last 24 h)
  let silencedCursor = null;      // received_at of the newest one we hold
  let silencedOpen = false;
  let silencedPainted = "";
  let response = null;            // GET /api/response, when the server has it
  let responseAvailable = false;
  let responseShownLevel = null;  // the level the select was last set to from the server
  let postedResponse = null;      // {state, at, change}: this page's POST, until a GET has its change

  const signedIn = () => auth.active && !$("#main").hidden;
  // The silences are the centre's: its duty officers manage them, the wall screen shows them.
  const readsSilences = () => auth.wall || (auth.may("manage_silences") && auth.district.department === "ops_centre");

  function fmt(key, vars) {
    return S.t(key).replace(/\{(\w+)\}/g, (_m, name) => (vars && name in vars ? String(vars[name]) : ""));
  }

  /** "HH:MM" today in the district, "MM-DD HH:MM" on another day. */
  function shortTime(value) {
    const full = S.dateTime(value);
    if (!full) return "";
    return full.slice(0, 10) === S.dateTime(new Date()).slice(0, 10) ? full.slice(11, 16) : full.slice(5, 16);
  }

  function durationLabel(minutes) {
    if (minutes % 1440 === 0) return fmt("days", { n: minutes / 1440 });
    if (minutes % 60 === 0) return fmt("hours", { n: minutes / 60 });
    return fmt("minutes", { n: minutes });
  }

  /** A failed call from one of these controls: sign in again on 401, otherwise the error banner. */
  function failed(error, what) {
    if (error instanceof S.ApiError && error.status === 401) {
      sessionEnded(error);
      return;
    }
    showError(what ? `${what}: ${S.describeError(error)}` : S.describeError(error));
  }

  function activeSilences() {
    const now = Date.now();
    const byId = new Map();
    for (const s of listedSilences) if (!endedHere.has(s.silence_id)) byId.set(s.silence_id, s);
    for (const [id, made] of madeHere) if (!byId.has(id) && !endedHere.has(id)) byId.set(id, made.silence);
    return [...byId.values()]
      .filter((s) => Date.parse(s.starts_at) <= now && Date.parse(s.ends_at) > now)
      .sort((a, b) => Date.parse(a.ends_at) - Date.parse(b.ends_at) || String(a.silence_id).localeCompare(b.silence_id));
  }

  function matcherValue(name, value) {
    if (name === "source") return S.label("source", value);
    if (name === "category") return S.label("category", value);
    if (name === "severity") return S.label("severity", value);
    if (name === "community") return S.communityName(value);
    if (name === "department") return S.departmentName(value);
    return value;
  }

  function matcherText(m) {
    const op = m.is_regex ? (m.is_equal === false ? "!~" : "=~") : (m.is_equal === false ? "≠" : "=");
    return `${S.label("matcher", m.name)}${op}${m.is_regex ? m.value : matcherValue(m.name, m.value)}`;
  }

  function renderSilences() {
    const banner = $("#silences");
    const list = activeSilences();
    const signature = JSON.stringify([S.getLang(), silencesExpanded, list.map((s) => [s.silence_id, s.ends_at, s.comment])]);
    if (signature === silencesPainted) return;
    if (banner.querySelector("button:disabled")) return;   // an "end now" in flight: repaint after it
    silencesPainted = signature;
    banner.hidden = !signedIn() || list.length === 0;
    if (banner.hidden) {
      S.clear(banner.querySelector(".message"));
      S.clear($("#silence-list"));
      return;
    }
    const shown = list.slice(0, 3).map((s) => `${s.comment} · ${fmt("silenceUntil", { time: shortTime(s.ends_at) })}`);
    const more = list.length > shown.length ? ` … (+${list.length - shown.length})` : "";
    S.text(banner.querySelector(".message"),
      `${fmt("silenceBanner", { n: list.length })}${S.getLang() === "en" ? ": " : "："}${shown.join(S.getLang() === "en" ? "; " : "；")}${more}`);
    const expand = $("#silences-expand");
    expand.textContent = S.t(silencesExpanded ? "hideList" : "showList");
    expand.setAttribute("aria-expanded", String(silencesExpanded));
    const ul = S.clear($("#silence-list"));
    ul.hidden = !silencesExpanded;
    for (const s of list) {
      const end = S.el("button", { type: "button", class: "danger", dataset: { action: "end-silence" } }, S.t("endSilence"));
      end.addEventListener("click", () => endSilence(s, end));
      ul.append(S.el("li", { dataset: { silenceId: s.silence_id, mode: s.mode } },
        S.el("span", { class: "comment", text: s.comment }),
        S.el("span", { class: "matchers", text: (s.matchers || []).map(matcherText).join(", ") }),
        S.el("span", { class: "mode", text: S.label("silenceMode", s.mode) }),
        S.el("span", { class: "span", title: `${S.dateTime(s.starts_at)} – ${S.dateTime(s.ends_at)}`,
          text: `${shortTime(s.starts_at)} – ${shortTime(s.ends_at)}` }),
        S.el("span", { class: "by", text: `${S.t("createdBy")} ${S.departmentName(s.created_by)}` }),
        S.el("span", { class: "id", text: s.silence_id }),
        end));
    }
  }

  async function refreshSilences() {
    if (!readsSilences()) { renderSilences(); return; }
    try {
      listedSilences = (await S.api(auth.token, "GET", "/api/silences?state=active")).body.silences || [];
      const now = Date.now();
      const ids = new Set(listedSilences.map((s) => s.silence_id));
      for (const [id, made] of madeHere) if (ids.has(id) || now - made.at > LAG_MS) madeHere.delete(id);
      for (const [id, at] of endedHere) if (!ids.has(id) || now - at > LAG_MS) endedHere.delete(id);
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) { failed(error); return; }
      // Keep showing the last list; the next poll tries again.
    }
    renderSilences();
  }

  async function endSilence(silence, button) {
    button.disabled = true;
    try {
      await S.api(auth.token, "DELETE", `/api/silences/${encodeURIComponent(silence.silence_id)}`);
      endedHere.set(silence.silence_id, Date.now());
      madeHere.delete(silence.silence_id);
      hideError();
      showNotice(fmt("silenceEnded", { comment: silence.comment }));
      setTimeout(refreshSilences, 1500);
    } catch (error) {
      failed(error, silence.silence_id);
    } finally {
      button.disabled = false;
      renderSilences();
    }
  }

  /** The matchers a ticket suggests: its station for flood readings (source_ref up to "@"), otherwise its
   * category and community; the rest are offered unticked. The API needs one besides severity. */
  function suggestedMatchers(t) {
    const ref = t.source === "flood" && t.source_ref ? String(t.source_ref).split("@")[0] : "";
    const list = [];
    if (ref) list.push({ name: "ref", value: ref, on: true });
    list.push({ name: "source", value: t.source, on: Boolean(ref) });
    list.push({ name: "category", value: t.category, on: !ref });
    if (t.community) list.push({ name: "community", value: t.community, on: !ref });
    if (t.department) list.push({ name: "department", value: t.department, on: false });
    list.push({ name: "severity", value: t.severity, on: false });
    return list.filter((m) => m.value);
  }

  function openSilence(row) {
    const existing = row.formHost.querySelector('form[data-action="silence"]');
    if (existing) {
      existing.querySelector('input[name="comment"]').focus();
      return;
    }
    const t = row.ticket;
    const boxes = suggestedMatchers(t).map((m) => {
      const box = S.el("input", { type: "checkbox", name: "matcher", value: m.name, checked: m.on });
      box.checked = m.on;
      return { m, box, label: S.el("label", { class: "matcher", title: `${m.name}=${m.value}`, dataset: { matcher: m.name } },
        box, ` ${S.label("matcher", m.name)}: ${matcherValue(m.name, m.value)}`) };
    });
    const duration = S.el("select", { name: "duration", "aria-label": S.t("duration") },
      ...DURATIONS_MIN.map((n) => S.el("option", { value: String(n) }, durationLabel(n))));
    duration.value = String(DEFAULT_DURATION_MIN);
    const mode = S.el("select", { name: "mode", "aria-label": S.t("mode") },
      ...["suppress", "quiet"].map((m) => S.el("option", { value: m }, S.label("silenceMode", m))));
    const comment = S.el("input", { type: "text", name: "comment", maxlength: "1000", required: true,
      placeholder: S.t("commentHint"), "aria-label": S.t("comment") });
    const form = S.el("form", { class: "inline-form silence-form", dataset: { action: "silence" } },
      S.el("fieldset", { class: "matchers" }, S.el("legend", { text: S.t("matchers") }), ...boxes.map((b) => b.label)),
      S.el("label", {}, `${S.t("duration")} `, duration),
      S.el("label", {}, `${S.t("mode")} `, mode),
      comment,
      S.el("button", { type: "submit", class: "warn", dataset: { action: "silence-submit" } }, S.t("silenceSubmit")),
      S.el("button", { type: "button", class: "ghost", dataset: { action: "cancel" },
        on: { click: () => S.clear(row.formHost) } }, S.t("cancel")));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const now = Date.now();
      const body = {
        matchers: boxes.filter((b) => b.box.checked)
          .map(({ m }) => ({ name: m.name, value: m.value, is_regex: false, is_equal: true })),
        starts_at: new Date(now).toISOString(),
        ends_at: new Date(now + Number(duration.value) * 60 * 1000).toISOString(),
        comment: comment.value.trim(),
        mode: mode.value,
      };
      const buttons = [...form.querySelectorAll("button")];
      for (const b of buttons) b.disabled = true;
      try {
        const made = (await S.api(auth.token, "POST", "/api/silences", body)).body;
        madeHere.set(made.silence_id, { silence: made, at: Date.now() });
        hideError();
        showNotice(fmt("silenceCreated", { time: shortTime(made.ends_at) }));
        form.remove();
        renderSilences();
        setTimeout(refreshSilences, 1500);
      } catch (error) {
        failed(error, row.el.dataset.ticketId);
      } finally {
        for (const b of buttons) b.disabled = false;
      }
    });
    S.clear(row.formHost).append(form);
    comment.focus();
  }

  function renderSilenced() {
    const toggle = $("#silenced-toggle");
    toggle.hidden = !readsSilences();
    const all = [...silencedById.values()].sort((a, b) =>
      (Date.parse(b.received_at) - Date.parse(a.received_at)) || String(b.incident_id).localeCompare(a.incident_id));
    S.text(toggle.querySelector(".n"), String(all.length));
    toggle.setAttribute("aria-expanded", String(silencedOpen));
    toggle.classList.toggle("active", silencedOpen);
    const panel = $("#silenced-panel");
    panel.hidden = !silencedOpen;
    if (!silencedOpen) return;
    const shown = all.slice(0, SILENCED_ROWS);
    const signature = JSON.stringify([S.getLang(), shown.map((i) => i.incident_id)]);
    if (signature === silencedPainted) return;
    silencedPainted = signature;
    const comments = new Map(activeSilences().map((s) => [s.silence_id, s.comment]));
    const body = S.clear($("#silenced-list"));
    for (const i of shown) {
      body.append(S.el("tr", { dataset: { incidentId: i.incident_id, silenceId: i.silence_id, sourceRef: i.source_ref,
        severity: i.severity } },
        S.el("td", { class: "time", title: `${S.t("observedAt")} ${S.dateTime(i.observed_at)}\n${S.dateTime(i.received_at)}`,
          text: shortTime(i.received_at) }),
        S.el("td", { class: "sev", dataset: { severity: i.severity }, text: S.label("severityShort", i.severity) }),
        S.el("td", { class: "title", text: i.title }),
        S.el("td", { class: "ref", text: i.source_ref }),
        S.el("td", { class: "silence", title: comments.get(i.silence_id) || "", text: i.silence_id })));
    }
    $("#silenced-empty").hidden = shown.length > 0;
  }

  /** New silenced incidents since the newest we hold (the API lists oldest first from `since`). */
  async function refreshSilenced() {
    if (!readsSilences()) { renderSilenced(); return; }
    const cutoff = Date.now() - SILENCED_WINDOW_MS;
    try {
      let since = silencedCursor || new Date(cutoff).toISOString();
      for (let page = 0; page < 10; page += 1) {
        const params = new URLSearchParams({ since, limit: String(SILENCED_PAGE) });
        const items = (await S.api(auth.token, "GET", `/api/silenced?${params}`)).body.incidents || [];
        for (const i of items) silencedById.set(i.incident_id, i);
        if (items.length) since = items[items.length - 1].received_at;
        silencedCursor = since;
        if (items.length < SILENCED_PAGE || !items.length) break;
      }
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) { failed(error); return; }
      if (silencedOpen && error instanceof S.ApiError && error.status !== 0) failed(error, S.t("silenced"));
    }
    for (const [id, i] of silencedById) if (Date.parse(i.received_at) < cutoff) silencedById.delete(id);
    renderSilenced();
  }

  function buildResponseForm() {
    const select = S.clear($("#response-level"));
    for (const level of LEVELS) select.append(S.el("option", { value: level, dataset: { colour: LEVEL_COLOURS[level] } },
      S.label("responseLevel", level)));
    select.value = responseShownLevel || "none";
    select.setAttribute("aria-label", S.t("responseControl"));
    $("#response-reason").setAttribute("aria-label", S.t("reason"));
  }

  function renderResponse() {
    $("#response-form").hidden = !signedIn() || !responseAvailable || !auth.may("set_response");
    const level = response && response.level && response.level !== "none" ? response.level : null;
    if (responseAvailable && (level || "none") !== responseShownLevel) {
      responseShownLevel = level || "none";
      $("#response-level").value = responseShownLevel;
    }
    const banner = $("#response-banner");
    banner.hidden = !signedIn() || !responseAvailable || !level;
    if (banner.hidden) {
      delete banner.dataset.level;
      delete banner.dataset.colour;
      return;
    }
    banner.dataset.level = level;
    banner.dataset.colour = response.colour || LEVEL_COLOURS[level] || "";
    const parts = [S.label("responseLevel", level)];
    if (response.since) parts.push(fmt("responseSince", { time: S.dateTime(response.since) }));
    if (response.reason) parts.push(response.reason);
    if (response.trigger && response.trigger !== "manual") parts.push(fmt("responseAuto", { rule: response.trigger }));
    S.text(banner.querySelector(".message"), parts.join(" · "));
  }

  async function refreshResponse() {
    if (!auth.active) return;
    try {
      const state = (await S.api(auth.token, "GET", "/api/response")).body;
      responseAvailable = true;
      // soc.response reaches this worker's table a moment after a POST: until the GET lists the change
      // this page made, the POST's answer is the newer truth.
      const posted = postedResponse;
      const arrived = !posted || !posted.change
        || (state.history || []).some((c) => c.at === posted.change.at && c.trigger === posted.change.trigger);
      if (arrived || Date.now() - posted.at > LAG_MS) {
        postedResponse = null;
        response = state;
      }
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) { failed(error); return; }
      if (error instanceof S.ApiError && error.status === 404) {   // a server without response levels
        responseAvailable = false;
        response = null;
      }
    }
    renderResponse();
  }

  async function submitResponse(event) {
    event.preventDefault();
    const form = $("#response-form");
    const reason = $("#response-reason");
    const level = $("#response-level").value;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      response = (await S.api(auth.token, "POST", "/api/response", { level, reason: reason.value.trim() })).body;
      postedResponse = { state: response, at: Date.now(), change: (response.history || [])[0] || null };
      responseAvailable = true;
      reason.value = "";
      hideError();
      showNotice(fmt("responseSet", { level: S.label("responseLevel", response.level || "none") }));
      renderResponse();
    } catch (error) {
      failed(error, S.t("responseControl"));
    } finally {
      button.disabled = false;
    }
  }

  let extrasBusy = false;
  async function refreshExtras() {
    if (extrasBusy || !auth.active) return;
    extrasBusy = true;
    try {
      await Promise.all([refreshSilences(), refreshSilenced(), refreshResponse()]);
    } finally {
      extrasBusy = false;
    }
  }

  function resetExtras() {
    listedSilences = [];
    madeHere.clear();
    endedHere.clear();
    silencedById.clear();
    silencedCursor = null;
    response = null;
    postedResponse = null;
    responseAvailable = false;
    responseShownLevel = null;
    silencesPainted = "";
    silencedPainted = "";
    renderSilences();
    renderSilenced();
    renderResponse();
  }

  // ------------------------------------------------------------------ who is on duty (值班表)
  const DUTY_REFRESH_MS = 60 * 1000;
  let duty = null;   // the last /api/duty/now answer

  function renderDuty() {
    const node = $("#duty");
    if (!duty) { node.hidden = true; return; }
    const en = S.getLang() === "en";
    const who = (label, person) => `${label} ${person ? person.name : "—"}`;
    node.textContent = `${who(en ? "Leader" : "带班领导", duty.leader)} · ${who(en ? "Officer" : "值班员", duty.officer)}`;
    node.hidden = false;
  }

  async function refreshDuty() {
    if (!auth.active) return;
    try {
      duty = (await S.api(auth.token, "GET", "/api/duty/now")).body;
    } catch (_error) {
      duty = null;   // the board works without it; the next minute tries again
    }
    renderDuty();
  }

  // ------------------------------------------------------------------ periodic
  function tick() {
    tickClock();
    const now = Date.now();
    for (const row of rows.values()) if (row.ticket && row.sla) S.renderSla(row.sla, row.ticket, now);
    for (const node of document.querySelectorAll("#pinned-list .sla")) {
      const entry = tickets.get(node.dataset.ticketId);
      if (entry) S.renderSla(node, entry.t, now);
    }
  }

  function rerenderAll() {
    for (const row of rows.values()) row.lang = null;   // force refill
    for (const marker of markers.values()) marker.dataset.lang = "";
    render();
  }

  // ------------------------------------------------------------------ wall screen: pinned strip, alarms, 已知悉,
  // compound cards (correlation), keyboard, ticket detail
  const WALL = {
    zh: {
      pinned: "红色 / 橙色在办（按时限排序）", enableSound: "启用声音", muted: "♪ 已静音", sound: "♪ 声音开",
      muteHint: "告警声音：新红色工单、每次升级", seen: "已知悉", seenBy: "已知悉 · {by} {time}",
      seenDone: "已记录已知悉", related: "关联", causeOf: "引发", effectOf: "由此引发", detailHistory: "处理记录",
      acceptDue: "签收时限", resolveDue: "处置时限", noDeadline: "待核查", close: "关闭",
    },
    en: {
      pinned: "Open red / orange, nearest deadline first", enableSound: "Enable sound", muted: "♪ Muted",
      sound: "♪ Sound on", muteHint: "Alarm: a new red ticket, each escalation step", seen: "Seen",
      seenBy: "Seen · {by} {time}", seenDone: "Marked as seen", related: "Linked", causeOf: "Caused",
      effectOf: "Caused by", detailHistory: "History", acceptDue: "Accept by", resolveDue: "Resolve by",
      noDeadline: "awaiting verification", close: "Close",
    },
  };
  const w = (key, vars) => (WALL[S.getLang() === "en" ? "en" : "zh"][key] || key)
    .replace(/\{(\w+)\}/g, (_m, name) => (vars && name in vars ? String(vars[name]) : ""));
  const SEEN_NOTE = "已知悉";
  const ESC_RANK = { none: 0, reminded: 1, escalated: 2, reported: 3 };
  const PINNED_MAX = 24;

  // ---- the strip: open red and orange tickets, the nearest deadline first
  function deadlineOf(t) {
    const sla = S.slaOf(t);
    return sla && !Number.isNaN(sla.due) ? sla.due : Infinity;
  }

  function pinnedTickets(all) {
    return all.map((e) => e.t)
      .filter((t) => isOpen(t) && (t.severity === "red" || t.severity === "orange"))
      .sort((a, b) => deadlineOf(a) - deadlineOf(b) || S.SEVERITY_RANK[b.severity] - S.SEVERITY_RANK[a.severity]
        || String(a.ticket_id).localeCompare(b.ticket_id));
  }

  let pinnedPainted = "";
  function renderPinned(all) {
    const list = pinnedTickets(all).slice(0, PINNED_MAX);
    const section = $("#pinned");
    section.hidden = list.length === 0;
    const signature = JSON.stringify([S.getLang(), selectedId, list.map((t) => [t.ticket_id, t.version])]);
    if (signature === pinnedPainted) return;
    pinnedPainted = signature;
    S.text(section.querySelector(".pinned-title"), `${w("pinned")} · ${list.length}`);
    const ol = S.clear($("#pinned-list"));
    const now = Date.now();
    for (const t of list) {
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
            seenEntry(t) || !auth.can("comment") ? null : seenButton(t))));
      if (t.ticket_id === selectedId) li.classList.add("selected");
      li.addEventListener("click", (event) => {
        if (event.target.closest("button")) return;
        select(t.ticket_id, true);
      });
      li.addEventListener("dblclick", () => openDetail(t.ticket_id));
      ol.append(li);
    }
  }

  // ---- 已知悉: a comment with this note, by the signed-in officer, in the ticket's history
  function seenEntry(t) {
    const history = t.history || [];
    for (let i = history.length - 1; i >= 0; i -= 1) {
      if (history[i].action === "comment" && history[i].note === SEEN_NOTE) return history[i];
    }
    return null;
  }

  function seenMark(t) {
    const entry = seenEntry(t);
    return entry ? S.el("span", { class: "seen", dataset: { seenBy: entry.by },
      text: w("seenBy", { by: S.maskPhones(entry.by), time: shortTime(entry.at) }) }) : null;
  }

  function seenButton(t) {
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
    await post(host, "comment", { note: SEEN_NOTE });
  }

  // ---- alarms: a new red ticket (or one raised to red), and each escalation step
  const sound = { enabled: false, muted: false };
  try { sound.muted = localStorage.getItem("soc.board.muted") === "1"; } catch (_e) { /* private mode */ }

  // Tones made with Web Audio: no sound file to serve and nothing a media-src policy refuses. Browsers keep an
  // AudioContext suspended until the person has clicked on the page: "enable sound" resumes it once.
  let audioContext = null;
  sound.played = { red: 0, escalation: 0 };
  window.SOC_BOARD.sound = sound;

  function context() {
    if (!audioContext) {
      const Context = window.AudioContext || window.webkitAudioContext;
      audioContext = Context ? new Context() : null;
    }
    return audioContext;
  }

  /** `beeps` tones of `freq` Hz, 0.18 s each with 0.09 s between. */
  function tone(freq, beeps, volume) {
    const ctx = context();
    const start = ctx.currentTime + 0.02;
    for (let i = 0; i < beeps; i += 1) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = freq;
      const at = start + i * 0.27;
      gain.gain.setValueAtTime(0, at);
      gain.gain.linearRampToValueAtTime(volume, at + 0.01);
      gain.gain.setValueAtTime(volume, at + 0.17);
      gain.gain.linearRampToValueAtTime(0, at + 0.18);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + 0.19);
    }
  }

  function renderSound() {
    const enable = $("#sound-enable");
    const mute = $("#mute");
    enable.textContent = w("enableSound");
    enable.hidden = sound.enabled || !signedIn();
    enable.title = sound.error || "";
    mute.hidden = !signedIn();
    mute.textContent = sound.muted ? w("muted") : w("sound");
    mute.title = w("muteHint");
    mute.setAttribute("aria-pressed", String(sound.muted));
    mute.dataset.muted = sound.muted ? "1" : "0";
    document.body.dataset.sound = sound.enabled ? (sound.muted ? "muted" : "on") : "blocked";
  }

  async function enableSound() {
    // Called from a click: the browser lets a page start its sound once the person has interacted with it.
    const ctx = context();
    try {
      if (!ctx) throw new Error("this browser has no Web Audio");
      await ctx.resume();
      sound.enabled = ctx.state === "running";
      if (sound.enabled) tone(880, 1, 0.05);   // a short, quiet confirmation
      else sound.error = `audio ${ctx.state}`;
    } catch (error) {
      sound.enabled = false;
      sound.error = `${error.name}: ${error.message}`;   // shown in the enable button's title
    }
    renderSound();
  }

  function alarmFor(before, t) {
    if (!t || !isOpen(t)) return;
    let kind = null;
    if (t.severity === "red" && (!before || before.severity !== "red")) kind = "red";
    else if (before && (ESC_RANK[t.escalation] || 0) > (ESC_RANK[before.escalation] || 0)) kind = "escalation";
    if (kind) fireAlarm(kind, t);
  }

  function fireAlarm(kind, t) {
    const sounded = sound.enabled && !sound.muted;
    alarms.push({ kind, ticket_id: t.ticket_id, severity: t.severity, step: t.escalation, sounded, at: Date.now() });
    if (alarms.length > 200) alarms.splice(0, alarms.length - 200);
    if (!sounded) return;
    if (context().state !== "running") {   // suspended again (the tab was in the background): offer the control
      sound.enabled = false;
      alarms[alarms.length - 1].sounded = false;
      renderSound();
      return;
    }
    tone(kind === "red" ? 1040 : 660, kind === "red" ? 3 : 2, 0.3);
    sound.played[kind] += 1;
  }

  // ---- compound cards: a cause with its effects right under it; the map draws each link
  function effectIds(t) {
    return (t.related || []).filter((r) => r.role === "effect").map((r) => r.ticket_id);
  }

  /** The feed's order with each visible effect moved under its (first visible) cause. */
  function grouped(list) {
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

  function renderLinks(row, t) {
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

  function renderMapLinks() {
    const layer = document.querySelector("#map #links");
    if (!layer || !project) return;
    const pairs = [];
    for (const [id, entry] of tickets) {
      if (!markers.has(id)) continue;
      for (const r of entry.t.related || []) {
        if (r.role === "effect" && markers.has(r.ticket_id)) pairs.push([id, r.ticket_id, r.rule]);
      }
    }
    const signature = JSON.stringify(pairs.map(([c, e]) => [c, e, markers.get(c).getAttribute("cx"), markers.get(c).getAttribute("cy"),
      markers.get(e).getAttribute("cx"), markers.get(e).getAttribute("cy")]));
    if (layer.dataset.signature === signature) return;
    layer.dataset.signature = signature;
    S.clear(layer);
    for (const [cause, effect, rule] of pairs) {
      const a = markers.get(cause);
      const b = markers.get(effect);
      layer.append(S.el("line", { class: "link", x1: a.getAttribute("cx"), y1: a.getAttribute("cy"), x2: b.getAttribute("cx"),
        y2: b.getAttribute("cy"), dataset: { cause, effect, rule } }, S.el("title", { text: rule })));
    }
  }

  // ---- keyboard: arrows move through the strip and then the feed, Enter opens, Escape closes
  let selectedId = null;

  function navigable() {
    return [...document.querySelectorAll("#pinned-list > li, #alerts > li")].map((n) => n.dataset.ticketId);
  }

  function select(ticketId, scroll) {
    selectedId = ticketId;
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
      select(ids[at], true);
      event.preventDefault();
    } else if (event.key === "Enter" && selectedId) {
      openDetail(selectedId);
      event.preventDefault();
    }
  }

  async function openDetail(ticketId) {
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
      if (t.description) body.append(S.el("p", { class: "desc", text: S.maskPhones(t.description) }));
      if ((t.related || []).length) {
        body.append(S.el("h3", { text: w("related") }), S.el("ul", { class: "related" },
          ...t.related.map((r) => S.el("li", { dataset: { relatedId: r.ticket_id, role: r.role } },
            `${r.role === "effect" ? w("causeOf") : w("effectOf")} [${r.rule}] ${r.ticket_id}`))));
      }
      body.append(S.el("h3", { text: w("detailHistory") }), S.el("ol", { class: "history" },
        ...(t.history || []).slice().reverse().map((h) => S.el("li", { dataset: { action: h.action } },
          S.el("time", { text: S.dateTime(h.at) }), " ",
          S.el("strong", { text: S.label("action", h.action) || h.action }), ` ${S.maskPhones(h.by)} `,
          h.note ? S.el("span", { text: S.maskPhones(h.note) }) : null))));
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

  function closeDetail() {
    $("#detail").hidden = true;
    delete $("#detail").dataset.ticketId;
  }

  function initWall() {
    $("#sound-enable").addEventListener("click", enableSound);
    $("#mute").addEventListener("click", () => {
      sound.muted = !sound.muted;
      try { localStorage.setItem("soc.board.muted", sound.muted ? "1" : "0"); } catch (_e) { /* private mode */ }
      renderSound();
    });
    $("#detail-close").addEventListener("click", closeDetail);
    $("#detail").addEventListener("click", (event) => { if (event.target === $("#detail")) closeDetail(); });
    document.addEventListener("keydown", onKey);
    renderSound();
  }

  // ------------------------------------------------------------------ start
  let started = false;
  function start(district) {
    S.setDistrict(district);
    $("#district-name").textContent = district.name || "";
    $("#signin").hidden = true;
    $("#main").hidden = false;
    $("#signout").hidden = false;
    S.paintWho($("#who"), district);
    buildCounters();
    buildFilters();
    buildMap();
    rerenderAll();
    buildResponseForm();
    renderSound();
    loadGeo();
    connect();
    refreshDuty();
    refreshExtras();
    if (!started) {
      started = true;
      setInterval(pruneClosed, 60 * 1000);
      setInterval(refreshDuty, DUTY_REFRESH_MS);
      setInterval(refreshExtras, EXTRAS_POLL_MS);
    }
  }

  function init() {
    S.applyI18n(document);
    S.bindLangToggle($("#lang"));
    S.onLangChange(() => {
      setConn(connState);
      if (auth.active) S.paintWho($("#who"), auth.district);
      renderDuty();
      silencesPainted = "";
      silencedPainted = "";
      renderSilences();
      renderSilenced();
      buildResponseForm();
      renderResponse();
      renderSound();
      if (!$("#main").hidden) {
        buildCounters();
        buildFilters();
        buildMap();
        rerenderAll();
      }
    });
    setConn("offline");
    tickClock();
    setInterval(tick, 1000);
    $("#error .close").addEventListener("click", hideError);
    $("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const user = $("#user").value.trim();
      const password = $("#password").value;
      S.submitting(event.target, () => signIn(() => auth.login(user, password), S.signInFailed));
    });
    $("#wall-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("#token").value.trim();
      S.submitting(event.target, () => signIn(() => auth.useToken(token), (error) => (
        error instanceof S.ApiError && error.status === 401 ? `${S.t("badToken")} (${S.describeError(error)})`
          : S.describeError(error)), true));
    });
    $("#wall-link").addEventListener("click", () => { hideError(); showForm(true); $("#token").focus(); });
    $("#user-link").addEventListener("click", () => { hideError(); showForm(false); $("#user").focus(); });
    $("#signout").addEventListener("click", async () => {
      const wall = auth.wall;
      const out = auth.logout();
      resetBoard();
      showSignIn("", wall);
      try {
        await out;
      } catch (error) {
        showError(S.describeError(error));   // the server is unreachable: the form is back all the same
      }
    });
    document.querySelector(".filters").addEventListener("change", onFilterChange);
    $("#silences-expand").addEventListener("click", () => {
      silencesExpanded = !silencesExpanded;
      renderSilences();
    });
    $("#silenced-toggle").addEventListener("click", () => {
      silencedOpen = !silencedOpen;
      silencedPainted = "";
      renderSilenced();
      if (silencedOpen) refreshSilenced();
    });
    $("#response-form").addEventListener("submit", submitResponse);
    initWall();
    initMapControls();
    // A reload: the session cookie (or the wall's remembered token) still signs in; nobody: the form.
    const remembered = Boolean(auth.token);
    signIn(resume, (error) => {
      if (!(error instanceof S.ApiError) || error.status !== 401) return S.describeError(error);
      return remembered ? `${S.t("badToken")} (${S.describeError(error)})` : "";
    }, remembered);
  }

  /** Forget everything the last sign-in showed (its tickets, silences, duty) before the next one. */
  function resetBoard() {
    tickets.clear();
    duty = null;
    renderDuty();
    resetExtras();
    lastEventId = null;
    stats.lastEventId = null;
    closeDetail();
    rerenderAll();
    renderSound();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
