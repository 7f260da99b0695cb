/* The live board's entry point: the periodic tick, start after sign-in, the page's controls, and sign-out. */
import { $, S, auth, connState, hideError, rows, setConn, tickClock, tickets } from "./state.js";
import { resume, showForm, showSignIn, signIn, useBoard } from "./signin.js";
import { connect, forgetPosition, pruneClosed } from "./stream.js";
import { buildCounters, buildFilters, onFilterChange, rerenderAll } from "./rows.js";
import { buildMap, initMapControls, loadGeo } from "./map.js";
import { EXTRAS_POLL_MS, buildResponseForm, initExtras, refreshExtras, relabelExtras, resetExtras } from "./silences.js";
import { DUTY_REFRESH_MS, refreshDuty, renderDuty, renderPlanRuns, resetDuty } from "./duty.js";
import { closeDetail, initWall, resetPinned, rotatePinned } from "./wall.js";
import { checkRepeats, renderAlarmSummary, renderSound, resetAlarms, setPolicy } from "./alarms.js";

// ------------------------------------------------------------------ periodic
function tick() {
  tickClock();
  const now = Date.now();
  checkRepeats(now);
  rotatePinned(now);
  for (const row of rows.values()) if (row.ticket && row.sla) S.renderSla(row.sla, row.ticket, now);
  for (const node of document.querySelectorAll("#pinned-list .sla")) {
    const entry = tickets.get(node.dataset.ticketId);
    if (entry) S.renderSla(node, entry.t, now);
  }
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
  setPolicy(district.board.alarms);
  resetPinned();
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
    relabelExtras();
    renderPlanRuns();
    renderSound();
    renderAlarmSummary();
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
  S.wireSignIn(auth, signIn, (wall) => { resetBoard(); showSignIn("", wall); });
  $("#wall-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    S.submitting(event.target, () => signIn(() => auth.useToken(token), (error) => (
      error instanceof S.ApiError && error.status === 401 ? `${S.t("badToken")} (${S.describeError(error)})`
        : S.describeError(error)), true));
  });
  $("#wall-link").addEventListener("click", () => { hideError(); showForm(true); $("#token").focus(); });
  $("#user-link").addEventListener("click", () => { hideError(); showForm(false); $("#user").focus(); });
  document.querySelector(".filters").addEventListener("change", onFilterChange);
  initExtras();
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
  resetDuty();
  resetExtras();
  forgetPosition();
  closeDetail();
  resetAlarms();
  rerenderAll();
  renderSound();
}

useBoard(start, resetBoard);
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
