/* A department's inbox: polls GET /api/tickets every 3 s (departments have no SSE); accept, resolve,
 * return, ask for an extension, each with a note; the operations centre can also verify and decide
 * extensions here (a supervisor their department's). Signed in as a person (user name and password); only
 * the actions their role may take are offered, and the history names them. Every API error is in #error. */
"use strict";

(function () {
  const S = window.SOC;
  const $ = (selector) => document.querySelector(selector);
  const auth = S.account("inbox");

  const POLL_MS = 3000;
  const PAGE = 200;

  let me = "";                       // this token's department id
  const tickets = new Map();         // ticket_id -> Ticket
  const cards = new Map();           // ticket_id -> card view
  let pollTimer = null;
  let polling = false;
  let pollError = false;
  let lastTotal = 0;
  // The ticket a notification linked to (/inbox#ticket=<id>): kept in view even when it is not on
  // the first page, shown with its notification log.
  let linked = null;                 // { id, ticket, notifications }

  window.SOC_INBOX = { tickets, get department() { return me; } };

  // ------------------------------------------------------------------ banners and status
  const showError = S.showError;
  const hideError = S.hideError;
  const showNotice = (message) => S.showNotice(message, 4000);

  let connState = "offline";
  let lastPoll = null;
  function setConn(state) {
    connState = state;
    const node = $("#conn");
    node.dataset.state = state;
    node.textContent = state === "connected" && lastPoll
      ? `${S.t("lastUpdate")} ${S.clock(lastPoll)}` : S.t(state);
  }

  // ------------------------------------------------------------------ sign-in
  function showSignIn(message) {
    clearTimeout(pollTimer);
    pollTimer = null;
    setConn("offline");
    $("#main").hidden = true;
    $("#signout").hidden = true;
    S.paintWho($("#who"), null);
    $("#signin").hidden = false;
    $("#password").value = "";
    if (message) showError(message);
    ($("#user").value ? $("#password") : $("#user")).focus();
  }

  /** The signed-in person's department: the inbox it lists (all of them: the centre). */
  function whoAmI(district) {
    if (district.department in district.departments) return district.department;
    throw new S.ApiError(403, S.t("badToken"), { error: S.t("badToken") });
  }

  /** `how` gives the district JSON (a sign-in, or on load whoever the cookie names); `failed` the message. */
  async function signIn(how, failed) {
    try {
      const district = await how();
      S.setDistrict(district);
      me = whoAmI(district);
      hideError();
      start();
    } catch (error) {
      const transient = error instanceof S.ApiError && (error.status === 0 || error.status >= 500);
      if (transient && how === resume) {
        // The server is restarting: a remembered sign-in waits for it instead of asking again.
        showError(S.describeError(error));
        setConn("reconnecting");
        setTimeout(() => signIn(resume, failed), 3000);
        return;
      }
      auth.forget();
      showSignIn(failed(error));
    }
  }

  const resume = () => auth.resume();

  /** A 401 while working: the session ended (idle expiry, signed out elsewhere, disabled). */
  function sessionEnded(error) {
    auth.forget();
    me = "";
    tickets.clear();
    render();
    paintHeader();
    showSignIn(S.sessionEnded(error));
  }

  function start() {
    $("#signin").hidden = true;
    $("#main").hidden = false;
    $("#signout").hidden = false;
    S.paintWho($("#who"), auth.district);
    for (const card of cards.values()) card.version = null;   // another person: other buttons
    paintHeader();
    setConn("connecting");
    poll().then(showLinked);
  }

  function paintHeader() {
    $("#department-name").textContent = me ? S.departmentName(me) : "";
    $("#inbox-title").textContent = me ? S.departmentName(me) : "";
  }

  // ------------------------------------------------------------------ polling
  async function poll() {
    clearTimeout(pollTimer);
    if (polling || !auth.active) return;
    polling = true;
    try {
      const { body } = await S.api(auth.token, "GET", `/api/tickets?department=${encodeURIComponent(me)}&limit=${PAGE}`);
      const fresh = new Map();
      for (const ticket of body.items || []) {
        const held = tickets.get(ticket.ticket_id);
        // A newer version we got from an action response wins over a list read a moment older.
        fresh.set(ticket.ticket_id, S.isNewer(ticket, held) ? ticket : held);
      }
      if (linked && linked.ticket && !fresh.has(linked.id)) fresh.set(linked.id, linked.ticket);
      tickets.clear();
      for (const [id, ticket] of fresh) tickets.set(id, ticket);
      lastPoll = new Date();
      if (pollError) hideError();
      pollError = false;
      setConn("connected");
      lastTotal = body.total;
      $("#summary").textContent = summary(lastTotal);
      render();
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) {
        polling = false;
        sessionEnded(error);
        return;
      }
      pollError = true;
      setConn("reconnecting");
      showError(S.describeError(error));
    } finally {
      polling = false;
    }
    if (auth.active) pollTimer = setTimeout(poll, POLL_MS);
  }

  function summary(total) {
    const open = [...tickets.values()].filter((t) => t.status !== "closed").length;
    return S.getLang() === "en" ? `${open} open of ${total}` : `在办 ${open} / 共 ${total}`;
  }

  // ------------------------------------------------------------------ rendering
  function sortKey(a, b) {
    const openA = a.status === "closed" ? 1 : 0;
    const openB = b.status === "closed" ? 1 : 0;
    if (openA !== openB) return openA - openB;
    const rank = (S.SEVERITY_RANK[b.severity] || 0) - (S.SEVERITY_RANK[a.severity] || 0);
    if (rank) return rank;
    return (Date.parse(b.dispatched_at) || 0) - (Date.parse(a.dispatched_at) || 0);
  }

  function render() {
    const list = $("#cards");
    const sorted = [...tickets.values()].sort(sortKey);
    const keep = new Set();
    let previous = null;
    const lang = S.getLang();
    for (const ticket of sorted) {
      let card = cards.get(ticket.ticket_id);
      if (!card) {
        card = createCard(ticket.ticket_id);
        cards.set(ticket.ticket_id, card);
      }
      if (card.version !== ticket.version || card.lang !== lang) fillCard(card, ticket);
      keep.add(ticket.ticket_id);
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (expected !== card.el) list.insertBefore(card.el, expected);
      previous = card.el;
    }
    for (const [id, card] of cards) {
      if (!keep.has(id)) {
        card.el.remove();
        cards.delete(id);
      }
    }
    $("#empty").hidden = sorted.length > 0;
  }

  function createCard(ticketId) {
    const card = { version: null, lang: null, ticket: null };
    card.el = S.el("li", { class: "card", dataset: { ticketId } });
    card.view = S.el("div", { class: "view" });
    card.buttons = S.el("div", { class: "buttons" });
    card.formHost = S.el("div", { class: "form-host" });
    card.historyCount = S.el("span");
    card.history = S.el("ol", { class: "history" });
    card.details = S.el("details", { class: "history-box" },
      S.el("summary", {}, card.historyCount), card.history);
    card.el.append(S.el("div", { class: "band" }),
      S.el("div", { class: "content" }, card.view, card.buttons, card.formHost, card.details));
    return card;
  }

  function fillCard(card, t) {
    card.version = t.version;
    card.lang = S.getLang();
    card.ticket = t;
    Object.assign(card.el.dataset, { severity: t.severity, status: t.status, version: String(t.version),
      sourceRef: S.maskPhones(t.source_ref), escalation: t.escalation });

    card.sla = S.el("span", { class: "sla" });
    S.renderSla(card.sla, t);
    const head = S.el("div", { class: "head" },
      S.el("span", { class: "sev", text: S.label("severity", t.severity) }),
      S.el("span", { class: "title", text: t.title }),
      S.el("span", { class: "status", dataset: { status: t.status }, text: S.label("status", t.status) }),
      t.escalation && t.escalation !== "none"
        ? S.el("span", { class: "esc", dataset: { escalation: t.escalation }, text: S.label("escalation", t.escalation) }) : null,
      card.sla);
    const meta = S.el("div", { class: "meta" },
      S.el("span", { class: "tag source", text: S.label("source", t.source) }),
      S.el("span", { class: "tag category", text: S.label("category", t.category) }),
      S.el("span", { class: "community", text: S.communityName(t.community) }),
      t.department !== me ? S.el("span", { class: "department", text: S.departmentName(t.department) }) : null,
      S.el("span", { class: "time", title: `${S.t("observedAt")} ${S.dateTime(t.observed_at)}`,
        text: `${S.t("dispatchedAt")} ${S.dateTime(t.dispatched_at)}` }),
      S.el("span", { class: "occ", text: `×${t.occurrences}` }),
      S.el("span", { class: "id", text: t.ticket_id }),
      t.reworks ? S.el("span", { text: `${S.t("reworks")} ${t.reworks}` }) : null,
      t.returns ? S.el("span", { text: `${S.t("returns")} ${t.returns}` }) : null);
    S.fill(card.view, head, meta,
      t.description ? S.el("div", { class: "desc", text: t.description }) : null,
      t.extension ? S.el("div", { class: "ext",
        text: `${S.t("extensionPending")}: ${S.t("until")} ${S.dateTime(t.extension.until)} — ${t.extension.reason}` }) : null,
      // A hint from the readings; closing stays the centre's verification.
      t.source_cleared_at && t.status !== "closed" ? S.el("div", { class: "cleared",
        text: `${S.t("sourceCleared")} ${S.dateTime(t.source_cleared_at)}` }) : null,
      (t.related || []).length ? S.el("div", { class: "related", text: `${S.t("relatedTickets")}: ${
        t.related.map((r) => `${S.t(r.role === "cause" ? "relatedCause" : "relatedEffect")} ${r.ticket_id} (${r.rule})`).join(", ")}` }) : null);

    S.clear(card.buttons);
    for (const action of actionsFor(t)) {
      card.buttons.append(S.el("button", { type: "button", class: action.style || "", dataset: { action: action.id },
        on: { click: () => openForm(card, action) } }, S.t(action.label)));
    }
    // Keep a half-written form while its action is still possible; drop it otherwise.
    const open = card.formHost.querySelector("form");
    if (open && !actionsFor(t).some((a) => a.id === open.dataset.action)) S.clear(card.formHost);

    card.historyCount.textContent = `${S.t("history")} (${(t.history || []).length})`;
    S.clear(card.history);
    const notified = linked && linked.id === t.ticket_id ? linked.notifications : [];
    const entries = [...(t.history || []).map((entry) => ({ at: entry.at, entry })),
      ...notified.map((note) => ({ at: note.at, note }))].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    for (const { entry, note } of entries) {
      if (entry) {
        card.history.append(S.el("li", {},
          S.el("span", { class: "at", text: S.dateTime(entry.at) }),
          S.el("strong", { text: S.historyAction(entry.action) }),
          ` · ${entry.by}`,
          entry.note ? ` — ${entry.note}` : ""));
      } else {
        card.history.append(S.el("li", { class: "notified", dataset: { result: note.result } },
          S.el("span", { class: "at", text: S.dateTime(note.at) }),
          S.el("strong", { text: S.historyAction("notified") }),
          ` · ${note.channel} ${note.result}`,
          note.error ? ` — ${note.error}` : ""));
      }
    }
  }

  // ------------------------------------------------------------------ deep link from a notification
  function linkedId() {
    const found = /(?:^#|&)ticket=([^&]+)/.exec(location.hash);
    return found ? decodeURIComponent(found[1]) : null;
  }

  async function showLinked() {
    const id = linkedId();
    if (!id || !auth.active) return;
    try {
      const { body } = await S.api(auth.token, "GET", `/api/tickets/${encodeURIComponent(id)}`);
      linked = { id, ticket: body, notifications: body.notifications || [] };
      if (!tickets.has(id) || S.isNewer(body, tickets.get(id))) tickets.set(id, body);
      const card = cards.get(id);
      if (card) card.version = null;  // repaint with the notification log
      render();
      const shown = cards.get(id);
      if (!shown) return;
      for (const other of cards.values()) other.el.classList.toggle("linked", other === shown);
      shown.details.open = true;
      shown.el.scrollIntoView({ block: "center" });
    } catch (error) {
      showError(S.describeError(error));
    }
  }

  // ------------------------------------------------------------------ actions
  const OWNER_OPEN = ["dispatched", "accepted"];
  const ACTIONS = {
    accept: { id: "accept", path: "accept", label: "accept", style: "ok", field: "note", fieldLabel: "note" },
    resolve: { id: "resolve", path: "resolve", label: "resolve", style: "ok", field: "resolution", fieldLabel: "resolution" },
    return: { id: "return", path: "return", label: "return", style: "warn", field: "reason", fieldLabel: "reason" },
    extend: { id: "extend", path: "extend", label: "extend", field: "reason", fieldLabel: "reason", until: true },
    verify: { id: "verify", path: "verify", label: "verify", style: "ok", field: "note", fieldLabel: "note", extra: { passed: true } },
    rework: { id: "rework", path: "verify", label: "rework", style: "warn", field: "note", fieldLabel: "reworkNote", extra: { passed: false } },
    approve: { id: "approve-extension", path: "extend", label: "approve", style: "ok", field: "note", fieldLabel: "note", extra: { approve: true } },
    reject: { id: "reject-extension", path: "extend", label: "reject", style: "warn", field: "note", fieldLabel: "note", extra: { approve: false } },
  };

  /** The user id behind the ticket's latest resolve: they may not verify it themselves. */
  function resolverOf(t) {
    const history = t.history || [];
    for (let i = history.length - 1; i >= 0; i -= 1) {
      if (history[i].action === "resolve") return history[i].user ? history[i].user.user_id : null;
    }
    return null;
  }

  /** What this person may do to `t`: the owner's steps for their department's tickets, the centre's checks,
   * each only if their role may take it (GET /api/district's actions: a clerk decides no extension). */
  function actionsFor(t) {
    const list = [];
    const can = (action) => auth.can(action);
    const self = auth.user ? auth.user.user_id : null;
    if (t.department === me) {
      if (t.status === "dispatched" && can("accept")) list.push(ACTIONS.accept);
      if (t.status === "accepted" && can("resolve")) list.push(ACTIONS.resolve);
      if (OWNER_OPEN.includes(t.status) && can("return")) list.push(ACTIONS.return);
      if (OWNER_OPEN.includes(t.status) && !t.extension && can("extend")) list.push(ACTIONS.extend);
    }
    if (me === "ops_centre" && t.status === "resolved" && can("verify") && resolverOf(t) !== self) {
      list.push(ACTIONS.verify, ACTIONS.rework);
    }
    if (t.extension && OWNER_OPEN.includes(t.status) && can("extend_decision") && t.extension.user_id !== self
        && (me === "ops_centre" || t.department === me)) {
      list.push(ACTIONS.approve, ACTIONS.reject);
    }
    return list;
  }

  function defaultUntil(t) {
    // A day after the current resolve deadline, as a datetime-local value in the district's zone.
    const base = new Date(Math.max(Date.parse(t.resolve_due) || Date.now(), Date.now()) + 24 * 3600 * 1000);
    return S.dateTime(base).replace(" ", "T").slice(0, 16);
  }

  function openForm(card, action) {
    const existing = card.formHost.querySelector("form");
    if (existing && existing.dataset.action === action.id) {
      existing.querySelector("textarea").focus();
      return;
    }
    S.clear(card.formHost);
    const t = card.ticket;
    const note = S.el("textarea", { name: action.field, maxlength: "4000", rows: "3" });
    const until = action.until ? S.el("input", { type: "datetime-local", name: "until", required: true, value: defaultUntil(t) }) : null;
    const form = S.el("form", { class: "action-form", dataset: { action: action.id } },
      S.el("strong", { text: S.t(action.label) }),
      until ? S.el("label", {}, S.el("span", { text: `${S.t("until")} (${S.districtOffset()})` }), until) : null,
      S.el("label", {}, S.el("span", { text: S.t(action.fieldLabel) }), note),
      S.el("div", { class: "row-buttons" },
        S.el("button", { type: "submit", class: action.style || "", dataset: { action: "submit" } }, S.t("submit")),
        S.el("button", { type: "button", class: "ghost", dataset: { action: "cancel" },
          on: { click: () => S.clear(card.formHost) } }, S.t("cancel"))));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      // No `by`: the server names the signed-in person in the history.
      const body = { [action.field]: note.value.trim(), ...(action.extra || {}) };
      if (until) body.until = S.localToRfc3339(until.value, S.districtOffset());
      submit(card, action, body, form);
    });
    card.formHost.append(form);
    note.focus();
  }

  async function submit(card, action, body, form) {
    const buttons = [...form.querySelectorAll("button"), ...card.buttons.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    const ticketId = card.el.dataset.ticketId;
    try {
      const { status, body: result } = await S.api(auth.token, "POST",
        `/api/tickets/${encodeURIComponent(ticketId)}/${action.path}`, body);
      hideError();
      form.remove();
      if (status === 202) {
        showNotice(S.t("queued"));
      } else {
        showNotice(`${ticketId}: ${S.t(action.label)} — ${S.t("done")}`);
        if (result && result.ticket_id) upsert(result);
      }
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) {
        sessionEnded(error);
        return;
      }
      showError(`${ticketId} · ${S.t(action.label)}: ${S.describeError(error)}`);
      if (error instanceof S.ApiError && error.body && error.body.ticket) upsert(error.body.ticket);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  function upsert(ticket) {
    if (S.isNewer(ticket, tickets.get(ticket.ticket_id))) {
      tickets.set(ticket.ticket_id, ticket);
      render();
    }
  }

  // ------------------------------------------------------------------ start
  function tick() {
    $("#clock").textContent = S.clock(new Date());
    const now = Date.now();
    for (const card of cards.values()) if (card.ticket && card.sla) S.renderSla(card.sla, card.ticket, now);
  }

  function init() {
    S.applyI18n(document);
    S.bindLangToggle($("#lang"));
    S.onLangChange(() => {
      setConn(connState);
      if (auth.active) S.paintWho($("#who"), auth.district);
      paintHeader();
      $("#summary").textContent = me ? summary(lastTotal) : "";
      for (const card of cards.values()) card.lang = null;
      render();
    });
    setConn("offline");
    tick();
    setInterval(tick, 1000);
    $("#error .close").addEventListener("click", hideError);
    $("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const user = $("#user").value.trim();
      const password = $("#password").value;
      S.submitting(event.target, () => signIn(() => auth.login(user, password), S.signInFailed));
    });
    $("#signout").addEventListener("click", async () => {
      const out = auth.logout();
      me = "";
      linked = null;
      tickets.clear();
      render();
      paintHeader();
      showSignIn();
      try {
        await out;
      } catch (error) {
        showError(S.describeError(error));
      }
    });
    window.addEventListener("hashchange", showLinked);
    document.addEventListener("visibilitychange", () => { if (!document.hidden && auth.active && me) poll(); });
    // A reload: the session cookie still signs in; nobody signed in: the form, without an error.
    signIn(resume, (error) => (error instanceof S.ApiError && error.status === 401 ? "" : S.describeError(error)));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
