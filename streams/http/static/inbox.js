/* A department's inbox: polls GET /api/tickets every 3 s (departments have no SSE). Its own tickets come
 * first; those it only watches (the API's `relation` of each ticket) are apart in the 关注 list, marked.
 * Accept, resolve, return, ask for an extension, dispute the dispatch (派单异议), each with a note; a supporting
 * department (协办) accepts and reports on its own part; the operations centre can also verify, decide extensions
 * (a supervisor their department's) and rule on a dispute here. Signed in as a person (user name and password); only
 * the actions their role may take are offered, and the history names them. Every API error is in #error.
 * On a phone without a connection an action waits in a queue kept on the phone (localStorage), with an id
 * made here (client_id): it is sent when the connection returns, and the server applies it once however
 * often it is sent (a resend is answered as replayed). The 待发送 list shows what still waits. */
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
  let lastTotal = { own: 0, watched: 0 };   // how many the API has of each list
  // The ticket a notification linked to (/inbox#ticket=<id>): kept in view even when it is not on
  // the first page, shown with its notification log.
  let linked = null;                 // { id, ticket, notifications }

  window.SOC_INBOX = { tickets, get department() { return me; }, get waiting() { return waiting().length; } };

  // The words of the 关注 list, in the page's language.
  const WORDS = {
    zh: { watched: "关注", in_view: "查看", hint: "其他部门办理、本部门关注的工单",
      summary: (open, own, watched) => `本部门在办 ${open} / 共 ${own} · 关注 ${watched}`,
      outbox: (n) => `待发送 ${n} 项（无网络时的操作，联网后自动发送）`, waiting: "待发送",
      queuedOffline: "无网络：已存入待发送，联网后自动发送", sent: "已发送",
      photo: "处置后照片（可现场拍照）", photoNeeded: "处置后照片（此类工单必须上传）", photoOffline: "无网络：照片要联网才能上传，联网后再提交",
      checklist: "预案任务清单", ticked: (by, at) => `${by} ${at}`,
      resources: "最近可调派资源", assign: "调派", assigned: "已调派", noResource: "暂无可用",
      support: "协办单位", lead: "主办", partStatus: { asked: "待签收", accepted: "已签收", fed_back: "已反馈" },
      partDue: "时限", disputed: (reason, suggest) => `派单异议：${reason}${suggest ? `（建议：${suggest}）` : ""}`,
      ruleDue: "裁定时限", photos: { before: "处置前", after: "处置后", other: "其他照片" },
      reporterPhoto: "市民上报照片（外部链接）" },
    en: { watched: "Watching", in_view: "In view", hint: "Handled by other departments, watched here",
      summary: (open, own, watched) => `${open} open of ${own} here · ${watched} watched`,
      outbox: (n) => `${n} waiting to be sent (taken offline; sent when the connection returns)`, waiting: "Waiting",
      queuedOffline: "No connection: kept to send when the connection returns", sent: "Sent",
      photo: "Photo after the work (take one now)", photoNeeded: "Photo after the work (required for this category)", photoOffline: "No connection: a photo is uploaded only online; submit again when online",
      checklist: "Plan task checklist", ticked: (by, at) => `${by} ${at}`,
      resources: "Nearest available resources", assign: "Send", assigned: "Sent", noResource: "none available",
      support: "Supporting", lead: "Lead", partStatus: { asked: "to accept", accepted: "accepted", fed_back: "reported" },
      partDue: "due", disputed: (reason, suggest) => `Dispatch disputed: ${reason}${suggest ? ` (suggests ${suggest})` : ""}`,
      ruleDue: "ruling due", photos: { before: "Before", after: "After", other: "Other photos" },
      reporterPhoto: "Reporter's photo (external link)" },
  };
  const words = () => WORDS[S.getLang() === "en" ? "en" : "zh"];

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
    paintOutbox();
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
      // Two pages, so the tickets it watches never push its own work off the first one.
      const list = (relation) => S.api(auth.token, "GET",
        `/api/tickets?department=${encodeURIComponent(me)}&relation=${relation}&limit=${PAGE}`);
      const [own, watched] = (await Promise.all([list("own"), list("watched")])).map((reply) => reply.body);
      const fresh = new Map();
      for (const ticket of [...(own.items || []), ...(watched.items || [])]) {
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
      lastTotal = { own: own.total, watched: watched.total };
      $("#summary").textContent = summary(lastTotal);
      render();
      if (waiting().length) flush();
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

  function summary(totals) {
    const open = [...tickets.values()].filter((t) => t.relation === "own" && t.status !== "closed").length;
    return words().summary(open, totals.own, totals.watched);
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

  /** The department's own tickets in #cards; those it watches (or, from a link, only has in view) in #watched. */
  function render() {
    const sorted = [...tickets.values()].sort(sortKey);
    const own = sorted.filter((t) => t.relation === "own");
    const others = sorted.filter((t) => t.relation !== "own");
    const keep = new Set();
    place($("#cards"), own, keep);
    place($("#watched"), others, keep);
    for (const [id, card] of cards) {
      if (!keep.has(id)) {
        card.el.remove();
        cards.delete(id);
      }
    }
    $("#empty").hidden = own.length > 0;
    $("#watching").hidden = others.length === 0;
    $("#watching-title").textContent = words().watched;
    $("#watching-hint").textContent = words().hint;
  }

  function place(list, sorted, keep) {
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
  }

  /** The supporting departments' parts (协办, docs/api.md): each with where it stands, its feedback, or its deadline. */
  function supportParts(t) {
    const w = words();
    const parts = t.support.map((part) => S.el("li", { dataset: { department: part.department, status: part.status } },
      `${S.departmentName(part.department)} · ${w.partStatus[part.status] || part.status}`,
      part.feedback ? `：${part.feedback}` : ` · ${w.partDue} ${S.dateTime(part.status === "asked" ? part.accept_due : part.due)}`));
    return S.el("div", { class: "support" }, S.el("strong", { text: w.support }), S.el("ul", {}, ...parts));
  }

  /** A pre-plan task's checklist (docs/plans.md): its own department ticks the lines while the task is open. */
  function checklist(t) {
    const open = t.relation === "own" && t.status !== "closed" && !auth.wall;
    const lines = t.task.checklist.map((line, item) => {
      const box = S.el("input", { type: "checkbox", dataset: { item }, disabled: !open });
      box.checked = line.done;
      box.addEventListener("change", () => tickLine(t.ticket_id, item, box));
      return S.el("li", { dataset: { done: String(line.done) } }, S.el("label", {}, box, ` ${line.item}`),
        line.done && line.by ? S.el("span", { class: "by", text: ` · ${words().ticked(line.by, S.dateTime(line.at))}` }) : null);
    });
    return S.el("div", { class: "checklist" }, S.el("strong", { text: words().checklist }),
      S.el("ol", {}, ...lines));
  }

  // The resources a task needs (resources.yaml kinds): for each kind the nearest available one, and a button to
  // send it when the clerk's department holds it. GET /api/resources is asked once a minute per card at most.
  const KIND_NAMES = {
    zh: { pump_truck: "泵车", rescue_crew: "救援队伍", sandbag_depot: "沙袋点", shelter: "避难场所", barrier: "围挡",
          tow_truck: "清障车", ambulance: "救护车", generator: "发电车", patrol_team: "巡查力量" },
    en: { pump_truck: "pump truck", rescue_crew: "rescue crew", sandbag_depot: "sandbag depot", shelter: "shelter",
          barrier: "barriers", tow_truck: "tow truck", ambulance: "ambulance", generator: "generator",
          patrol_team: "patrol" },
  };
  const RESOURCES_MS = 60 * 1000;

  function nearestResources(card, t) {
    const node = S.el("div", { class: "resources" }, S.el("strong", { text: words().resources }));
    const list = S.el("ul", {});
    node.append(list);
    const paint = (items) => {
      const kinds = KIND_NAMES[S.getLang() === "en" ? "en" : "zh"];
      S.fill(list, ...t.task.resources.map((kind) => {
        const held = items.find((r) => r.kind === kind && r.state === "assigned" && r.ticket_id === t.ticket_id);
        const free = items.find((r) => r.kind === kind && r.state === "available");
        const shown = held || free;
        if (!shown) return S.el("li", { dataset: { kind }, text: `${kinds[kind] || kind}: ${words().noResource}` });
        const far = shown.distance_m >= 1000 ? `${(shown.distance_m / 1000).toFixed(1)} km` : `${shown.distance_m} m`;
        const mine = !held && t.relation === "own" && (shown.department === me || me === "ops_centre") && !auth.wall;
        return S.el("li", { dataset: { kind, resourceId: shown.id, state: held ? "assigned" : "available" } },
          `${kinds[kind] || kind}: ${shown.name} · ${far}${held ? ` · ${words().assigned}` : ""} `,
          mine ? S.el("button", { type: "button", class: "ghost", dataset: { action: "assign-resource" },
            on: { click: () => assignResource(card, t, shown.id) } }, words().assign) : null);
      }));
    };
    const cached = card.resources;
    if (cached && cached.ticketVersion === t.version && Date.now() - cached.at < RESOURCES_MS) {
      paint(cached.items);
    } else {
      S.api(auth.token, "GET", `/api/resources?near=${t.lat},${t.lon}`).then(({ body }) => {
        card.resources = { ticketVersion: t.version, at: Date.now(), items: body.items || [] };
        paint(card.resources.items);
      }).catch(() => { /* the card works without it; the next fill asks again */ });
    }
    return node;
  }

  async function assignResource(card, t, resourceId) {
    try {
      await S.api(auth.token, "POST", `/api/resources/${encodeURIComponent(resourceId)}/assign`, { ticket_id: t.ticket_id });
      hideError();
    } catch (error) {
      if (error instanceof S.ApiError && error.status === 401) { sessionEnded(error); return; }
      showError(`${t.ticket_id} · ${words().assign}: ${S.describeError(error)}`);
    }
    card.resources = null;   // asked again: the assignment, or who holds it now
    fillCard(card, t);
  }

  async function tickLine(ticketId, item, box) {
    box.disabled = true;
    try {
      const { body } = await S.api(auth.token, "POST", `/api/tickets/${encodeURIComponent(ticketId)}/checklist`,
        { item, done: box.checked });
      hideError();
      if (body && body.ticket_id) upsert(body);
    } catch (error) {
      box.checked = !box.checked;   // as the ticket still stands
      if (error instanceof S.ApiError && error.status === 401) { sessionEnded(error); return; }
      showError(`${ticketId} · ${words().checklist}: ${S.describeError(error)}`);
    } finally {
      box.disabled = false;
    }
  }

  // Photos are served only with the viewer's credential, which an <img src> cannot carry for a token: each is
  // fetched once and shown from memory (a blob: URL, set directly: never through S.el's attribute masking).
  const photoUrls = new Map();   // API path -> Promise of a blob: URL
  function photoUrl(path) {
    if (!photoUrls.has(path)) {
      const headers = auth.token ? { Authorization: `Bearer ${auth.token}` } : {};
      photoUrls.set(path, fetch(path, { headers, credentials: "same-origin", cache: "no-store" })
        .then((response) => {
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          return response.blob();
        })
        .then((blob) => URL.createObjectURL(blob))
        .catch((error) => { photoUrls.delete(path); throw error; }));
    }
    return photoUrls.get(path);
  }

  /** 处置前后照片: the ticket's photos side by side, before on the left and after on the right, as the one
   * who verifies compares them; a click opens the whole image. */
  function photosBox(t) {
    const shots = (t.history || []).filter((h) => h.kind === "evidence" && h.photo);
    if (!shots.length) return null;
    const column = (stage) => {
      const mine = shots.filter((h) => h.photo.stage === stage);
      if (!mine.length && stage === "other") return null;
      return S.el("div", { class: "photo-col", dataset: { stage } },
        S.el("div", { class: "photo-head", text: `${words().photos[stage]} ${mine.length}` }),
        ...mine.map((h) => {
          const img = S.el("img", { class: "thumb", alt: words().photos[stage] });
          const link = S.el("a", { class: "photo", href: "#", title: `${S.dateTime(h.at)} ${h.note || ""}` }, img);
          photoUrl(`/api/evidence/${encodeURIComponent(h.photo.sha256)}/thumbnail`)
            .then((url) => { img.src = url; }).catch(() => { img.alt = "×"; });
          link.addEventListener("click", async (event) => {
            event.preventDefault();
            try {
              window.open(await photoUrl(`/api/evidence/${encodeURIComponent(h.photo.sha256)}`), "_blank", "noopener");
            } catch (error) {
              showError(`${t.ticket_id}: ${S.describeError(error)}`);
            }
          });
          return link;
        }));
    };
    return S.el("div", { class: "photos" }, column("before"), column("after"), column("other"));
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
      sourceRef: S.maskPersonal(t.source_ref), escalation: t.escalation, relation: t.relation });

    card.sla = S.el("span", { class: "sla" });
    S.renderSla(card.sla, t);
    const head = S.el("div", { class: "head" },
      S.el("span", { class: "sev", text: S.label("severity", t.severity) }),
      t.relation !== "own" ? S.el("span", { class: "relation", dataset: { relation: t.relation }, text: words()[t.relation] }) : null,
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
      // The reporter's own photo stays where they put it: a link the browser opens, never fetched by the server.
      t.media_url ? S.el("div", { class: "media" }, S.el("a", { href: t.media_url, target: "_blank",
        rel: "noopener noreferrer", referrerpolicy: "no-referrer", text: words().reporterPhoto })) : null,
      t.extension ? S.el("div", { class: "ext",
        text: `${S.t("extensionPending")}: ${S.t("until")} ${S.dateTime(t.extension.until)} — ${t.extension.reason}` }) : null,
      // A hint from the readings; closing stays the centre's verification.
      t.source_cleared_at && t.status !== "closed" ? S.el("div", { class: "cleared",
        text: `${S.t("sourceCleared")} ${S.dateTime(t.source_cleared_at)}` }) : null,
      (t.related || []).length ? S.el("div", { class: "related", text: `${S.t("relatedTickets")}: ${
        t.related.map((r) => `${S.t(r.role === "cause" ? "relatedCause" : "relatedEffect")} ${r.ticket_id} (${r.rule})`).join(", ")}` }) : null,
      t.task && t.task.checklist.length ? checklist(t) : null,
      (t.support || []).length ? supportParts(t) : null,
      t.dispute ? S.el("div", { class: "dispute", text: `${words().disputed(t.dispute.reason,
        t.dispute.suggest ? S.departmentName(t.dispute.suggest) : "")} · ${words().ruleDue} ${S.dateTime(t.dispute.rule_due)}` }) : null,
      t.task && t.task.resources.length && t.status !== "closed" ? nearestResources(card, t) : null,
      photosBox(t));

    S.clear(card.buttons);
    const queued = waiting().filter((entry) => entry.ticket_id === t.ticket_id);
    card.el.classList.toggle("waiting", queued.length > 0);
    if (queued.length) {
      // Sent when the connection returns; another action now could contradict it.
      card.buttons.append(S.el("span", { class: "waiting-mark",
        text: `${words().waiting}：${queued.map((entry) => S.t(actionById(entry.action).label)).join("、")}` }));
    }
    for (const action of queued.length ? [] : actionsFor(t)) {
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
        card.history.append(S.el("li", { dataset: { kind: entry.kind }, text: S.historyText(entry) }));
      } else {
        card.history.append(S.el("li", { class: "notified", dataset: { result: note.result } },
          S.el("span", { class: "at", text: S.dateTime(note.at) }),
          S.el("strong", { text: S.label("action", "notified") }),
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
    resolve: { id: "resolve", path: "resolve", label: "resolve", style: "ok", field: "resolution", fieldLabel: "resolution", photo: true },
    return: { id: "return", path: "return", label: "return", style: "warn", field: "reason", fieldLabel: "reason" },
    extend: { id: "extend", path: "extend", label: "extend", field: "reason", fieldLabel: "reason", until: true },
    verify: { id: "verify", path: "verify", label: "verify", style: "ok", field: "note", fieldLabel: "note", extra: { passed: true } },
    rework: { id: "rework", path: "verify", label: "rework", style: "warn", field: "note", fieldLabel: "reworkNote", extra: { passed: false } },
    approve: { id: "approve-extension", path: "extend", label: "approve", style: "ok", field: "note", fieldLabel: "note", extra: { approve: true } },
    reject: { id: "reject-extension", path: "extend", label: "reject", style: "warn", field: "note", fieldLabel: "note", extra: { approve: false } },
    supportAccept: { id: "support-accept", path: "support/accept", label: "supportAccept", style: "ok", field: "note", fieldLabel: "note" },
    supportFeedback: { id: "support-feedback", path: "support/feedback", label: "supportFeedback", style: "ok", field: "note", fieldLabel: "supportFeedbackNote" },
    dispute: { id: "dispute", path: "dispute", label: "dispute", style: "warn", field: "reason", fieldLabel: "disputeReason" },
    uphold: { id: "rule-uphold", path: "rule", label: "ruleUphold", style: "ok", field: "note", fieldLabel: "note", extra: { decision: "uphold" } },
    reassign: { id: "rule-reassign", path: "rule", label: "ruleReassign", style: "warn", field: "note", fieldLabel: "note" },
  };

  /** The user id behind the ticket's latest resolve: they may not verify it themselves. */
  function resolverOf(t) {
    const history = t.history || [];
    for (let i = history.length - 1; i >= 0; i -= 1) {
      if (history[i].kind === "resolve") return history[i].user ? history[i].user.user_id : null;
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
      if (OWNER_OPEN.includes(t.status) && can("dispute")) list.push(ACTIONS.dispute);
    }
    // A supporting department's own part (协办): accept it, then say what it did.
    const part = (t.support || []).find((p) => p.department === me);
    if (part && t.status !== "closed") {
      if (part.status === "asked" && can("support_accept")) list.push(ACTIONS.supportAccept);
      if (part.status === "accepted" && can("support_feedback")) list.push(ACTIONS.supportFeedback);
    }
    // A disputed dispatch waits for the centre's ruling: upheld, or (when the department suggested one) moved there.
    if (me === "ops_centre" && t.dispute && t.status === "returned" && can("rule")) {
      list.push(ACTIONS.uphold);
      if (t.dispute.suggest) {
        list.push({ ...ACTIONS.reassign, extra: { decision: "reassign", department: t.dispute.suggest } });
      }
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
    // A phone opens its camera for it (capture); a desktop picks a file.
    // routing.yaml resolves some categories only with a photo after the work: the form asks for it first.
    const needed = action.photo && (S.getDistrict().after_photo_to_resolve || []).includes(t.category);
    const photo = action.photo ? S.el("input", { type: "file", name: "photo", accept: "image/jpeg,image/png",
      capture: "environment", required: needed }) : null;
    const form = S.el("form", { class: "action-form", dataset: { action: action.id } },
      S.el("strong", { text: S.t(action.label) }),
      until ? S.el("label", {}, S.el("span", { text: `${S.t("until")} (${S.districtOffset()})` }), until) : null,
      S.el("label", {}, S.el("span", { text: S.t(action.fieldLabel) }), note),
      photo ? S.el("label", {}, S.el("span", { text: needed ? words().photoNeeded : words().photo }), photo) : null,
      S.el("div", { class: "row-buttons" },
        S.el("button", { type: "submit", class: action.style || "", dataset: { action: "submit" } }, S.t("submit")),
        S.el("button", { type: "button", class: "ghost", dataset: { action: "cancel" },
          on: { click: () => S.clear(card.formHost) } }, S.t("cancel"))));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      // No `by`: the server names the signed-in person in the history.
      const body = { [action.field]: note.value.trim(), ...(action.extra || {}) };
      if (until) body.until = S.localToRfc3339(until.value, S.districtOffset());
      submit(card, action, body, form, photo && photo.files.length ? photo.files[0] : null);
    });
    card.formHost.append(form);
    note.focus();
  }

  async function submit(card, action, body, form, photo) {
    const buttons = [...form.querySelectorAll("button"), ...card.buttons.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    const ticketId = card.el.dataset.ticketId;
    if (photo) {
      // The photo first (evidence, stage after), so that a resolve the rules allow only with one is allowed.
      try {
        if (!navigator.onLine) throw new S.ApiError(0, "offline", null);
        const data = new FormData();
        data.append("image", photo);
        data.append("stage", "after");
        if (body[action.field]) data.append("note", body[action.field]);
        const { body: uploaded } = await S.upload(auth.token, `/api/tickets/${encodeURIComponent(ticketId)}/evidence`, data);
        if (uploaded && uploaded.ticket) upsert(uploaded.ticket);
        form.querySelector("input[type=file]").value = "";
      } catch (error) {
        for (const b of buttons) b.disabled = false;
        if (error instanceof S.ApiError && error.status === 401) sessionEnded(error);
        else showError(`${ticketId} · ${words().photo}: ${error instanceof S.ApiError && error.status === 0
          ? words().photoOffline : S.describeError(error)}`);
        return;
      }
    }
    // The action's own id, made here: if the answer is lost, sending it again applies it once.
    const clientId = newClientId();
    try {
      if (!navigator.onLine) throw new S.ApiError(0, "offline", null);
      const { status, body: result } = await S.api(auth.token, "POST",
        `/api/tickets/${encodeURIComponent(ticketId)}/${action.path}`, { ...body, client_id: clientId });
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
      if (error instanceof S.ApiError && error.status === 0) {
        // No connection: the action waits on the phone and goes when the connection returns.
        enqueue({ client_id: clientId, ticket_id: ticketId, action: action.id, path: action.path, body,
          title: card.ticket ? card.ticket.title : "", queued_at: new Date().toISOString() });
        form.remove();
        showNotice(words().queuedOffline);
        return;
      }
      showError(`${ticketId} · ${S.t(action.label)}: ${S.describeError(error)}`);
      if (error instanceof S.ApiError && error.body && error.body.ticket) upsert(error.body.ticket);
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  // ------------------------------------------------------------------ actions waiting for the connection
  const OUTBOX_KEY = "soc.inbox.outbox";

  function newClientId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function readOutbox() {
    try {
      const list = JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]");
      return Array.isArray(list) ? list : [];
    } catch (_e) { return []; }
  }

  function writeOutbox(list) {
    try {
      if (list.length) localStorage.setItem(OUTBOX_KEY, JSON.stringify(list)); else localStorage.removeItem(OUTBOX_KEY);
    } catch (_e) { /* storage full or private mode: the action is shown as failed instead */ }
  }

  /** The signed-in person's waiting actions, oldest first (another person's stay for when they sign in). */
  function waiting() {
    const self = auth.user ? auth.user.user_id : null;
    return self ? readOutbox().filter((entry) => entry.user_id === self) : [];
  }

  function actionById(id) {
    return Object.values(ACTIONS).find((action) => action.id === id) || { label: id };
  }

  function enqueue(entry) {
    // Kept on the phone as the server would keep it: personal data masked.
    const body = Object.fromEntries(Object.entries(entry.body).map(([k, v]) => [k, typeof v === "string" ? S.maskPersonal(v) : v]));
    writeOutbox([...readOutbox(), { ...entry, body, user_id: auth.user.user_id }]);
    repaintWaiting(entry.ticket_id);
  }

  function drop(clientId) {
    const entry = readOutbox().find((e) => e.client_id === clientId);
    writeOutbox(readOutbox().filter((e) => e.client_id !== clientId));
    if (entry) repaintWaiting(entry.ticket_id);
  }

  function repaintWaiting(ticketId) {
    const card = cards.get(ticketId);
    if (card) card.version = null;
    render();
    paintOutbox();
  }

  function paintOutbox() {
    const list = waiting();
    $("#outbox").hidden = list.length === 0;
    $("#outbox-title").textContent = words().outbox(list.length);
    S.fill($("#outbox-list"), ...list.map((entry) => S.el("li", { dataset: { clientId: entry.client_id, ticketId: entry.ticket_id } },
      S.el("strong", { text: S.t(actionById(entry.action).label) }),
      ` ${entry.title || entry.ticket_id} · ${entry.ticket_id} · ${S.dateTime(entry.queued_at)}`)));
  }

  /** Send what waits, oldest first, each with its own id: one answer per action (applied, or replayed if an
   * earlier send got through); stops at the first that finds no connection, to try again later. */
  let flushing = false;
  async function flush() {
    if (flushing || !auth.active || !navigator.onLine) return;
    flushing = true;
    try {
      for (const entry of waiting()) {
        const label = S.t(actionById(entry.action).label);
        try {
          const { body: result } = await S.api(auth.token, "POST",
            `/api/tickets/${encodeURIComponent(entry.ticket_id)}/${entry.path}`, { ...entry.body, client_id: entry.client_id });
          drop(entry.client_id);
          showNotice(`${entry.ticket_id}: ${label} — ${words().sent}`);
          if (result && result.ticket_id) upsert(result);
        } catch (error) {
          if (error instanceof S.ApiError && (error.status === 0 || error.status >= 500)) break;
          if (error instanceof S.ApiError && error.status === 401) {
            sessionEnded(error);
            break;
          }
          // Refused (another person acted first, the ticket moved on): it will never go; say why.
          drop(entry.client_id);
          showError(`${entry.ticket_id} · ${label}: ${S.describeError(error)}`);
          if (error instanceof S.ApiError && error.body && error.body.ticket) upsert(error.body.ticket);
        }
      }
    } finally {
      flushing = false;
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
      if (auth.active) paintOutbox();
    });
    setConn("offline");
    tick();
    setInterval(tick, 1000);
    $("#error .close").addEventListener("click", hideError);
    S.wireSignIn(auth, signIn, () => {
      me = "";
      linked = null;
      tickets.clear();
      render();
      paintHeader();
      showSignIn();
    });
    $("#chat-claim-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const code = $("#chat-code").value.trim().toUpperCase();
      S.submitting(event.target, async () => {
        try {
          const { body } = await S.api(auth.token, "POST", "/api/chat-bindings/claim", { code });
          $("#chat-code").value = "";
          showNotice(`${S.t("chatClaimDone")} ${S.t(body.vendor)} ${body.chat_user_id}`);
        } catch (error) {
          if (error instanceof S.ApiError && error.status === 401) sessionEnded(error);
          else showError(S.describeError(error));
        }
      });
    });
    window.addEventListener("hashchange", showLinked);
    window.addEventListener("online", () => { if (auth.active && me) poll(); });
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/inbox-sw.js", { scope: "/inbox" }).catch((error) => {
        // Not installable then (an insecure origin, a private window): the inbox itself works as before.
        console.warn("service worker not registered", error);
      });
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden && auth.active && me) poll(); });
    // A reload: the session cookie still signs in; nobody signed in: the form, without an error.
    signIn(resume, (error) => (error instanceof S.ApiError && error.status === 401 ? "" : S.describeError(error)));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
