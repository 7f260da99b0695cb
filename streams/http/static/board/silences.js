/* Silences (屏蔽), the silenced list and the emergency-response level: polled beside the stream. */
import { $, S, auth, hideError, showError, showNotice } from "./state.js";
import { sessionEnded } from "./signin.js";
import { refreshPlanRuns, resetPlanRuns } from "./duty.js";
import { w } from "./wall.js";
import { raiseAlarm } from "./alarms.js";

// Polled every 10 s. A silence travels through soc.silences to every worker's table, so a GET right after
// this page made or ended one may not show it yet: the page keeps its own change until a GET agrees (or
// LAG_MS passes, after which the server's answer is the truth).
export const EXTRAS_POLL_MS = 10 * 1000;
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
let responseHeard = false;      // a GET has answered since sign-in: later raises sound
let responseShownLevel = null;  // the level the select was last set to from the server
let postedResponse = null;      // {state, at, change}: this page's POST, until a GET has its change

export const signedIn = () => auth.active && !$("#main").hidden;
// The silences are the centre's: its duty officers manage them, the wall screen shows them.
const readsSilences = () => auth.wall || (auth.may("manage_silences") && auth.district.department === "ops_centre");

export function fmt(key, vars) {
  return S.t(key).replace(/\{(\w+)\}/g, (_m, name) => (vars && name in vars ? String(vars[name]) : ""));
}

/** "HH:MM" today in the district, "MM-DD HH:MM" on another day. */
export function shortTime(value) {
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
export function failed(error, what) {
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

export function openSilence(row) {
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

export function buildResponseForm() {
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
  // The rule's name is config, not words: people read that the rules moved the level.
  if (response.trigger && response.trigger !== "manual") parts.push(fmt("responseAuto", {}));
  const message = banner.querySelector(".message");
  S.text(message, parts.join(" · "));
  message.title = message.textContent;  // the masked text, as shown
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
      // A level raised since the last answer sounds (not the one in force when the board opened).
      if (responseHeard && LEVELS.indexOf(state.level || "none") > LEVELS.indexOf((response && response.level) || "none")) {
        raiseAlarm("response_raised", null, state.level);
      }
      response = state;
      responseHeard = true;
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
    responseHeard = true;
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
export async function refreshExtras() {
  if (extrasBusy || !auth.active) return;
  extrasBusy = true;
  try {
    await Promise.all([refreshSilences(), refreshSilenced(), refreshResponse(), refreshPlanRuns()]);
  } finally {
    extrasBusy = false;
  }
}

/** Signed out: the silences and response banners go, and are painted afresh at the next sign-in. */
export function hideSilences() {
  $("#silences").hidden = true;
  $("#response-banner").hidden = true;
  silencesPainted = "";
}

/** The silences, the silenced list and the response level in the language just chosen. */
export function relabelExtras() {
  silencesPainted = "";
  silencedPainted = "";
  renderSilences();
  renderSilenced();
  buildResponseForm();
  renderResponse();
}

export function initExtras() {
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
}

export function resetExtras() {
  listedSilences = [];
  madeHere.clear();
  endedHere.clear();
  silencedById.clear();
  silencedCursor = null;
  response = null;
  responseHeard = false;
  postedResponse = null;
  responseAvailable = false;
  responseShownLevel = null;
  silencesPainted = "";
  silencedPainted = "";
  renderSilences();
  renderSilenced();
  renderResponse();
  resetPlanRuns();
}
