/* The printable daily duty report (值班日报, /stats/daily?date=YYYY-MM-DD) from GET /api/stats/daily. */
"use strict";

(function () {
  const S = window.SOC;
  const R = window.SOC_REPORTS;
  const $ = (s) => document.querySelector(s);
  const RATES = ["accepted_on_time", "resolved_on_time", "on_time_handling", "closure", "rework", "followup", "satisfaction", "sent_back"];
  let report = null;
  let gate = null;   // SOC_REPORTS.gate: the signed-in person

  const pct = (rate) => (rate === null || rate === undefined ? "—" : `${(Math.round(rate * 1000) / 10).toFixed(1)}%`);
  const time = (iso) => (iso ? S.dateTime(iso).slice(5, 16) : "—");

  function table(node, head, rows) {
    S.clear(node).append(S.el("thead", {}, S.el("tr", {}, ...head.map((h) => S.el("th", { text: h })))),
      S.el("tbody", {}, ...rows.map((r) => S.el("tr", { dataset: r.dataset || {} },
        ...r.cells.map((c) => S.el("td", { text: c === null || c === undefined ? "" : String(c) }))))));
  }

  function render() {
    if (!report) return;
    const d = S.getDistrict();
    S.text($("#report-title"), R.tr("reportTitle", { district: d.name || "", date: report.date }));
    S.text($("#report-meta"), R.tr("reportMeta", { from: S.dateTime(report.from), to: S.dateTime(report.to),
      tz: d.timezone || "", now: S.dateTime(report.generated_at) }));
    const sevs = Object.keys(report.counts.by_severity);
    const sources = Object.keys(report.counts.by_source);
    table($("#counts"), [R.tr("source"), ...sevs.map((s) => S.label("severity", s)), R.tr("total"), R.tr("reportsLine")], [
      ...sources.map((src) => ({ dataset: { source: src }, cells: [S.label("source", src),
        ...sevs.map((s) => report.counts.matrix[src][s]), report.counts.by_source[src], report.counts.reports_by_source[src]] })),
      { dataset: { source: "total" }, cells: [R.tr("total"), ...sevs.map((s) => report.counts.by_severity[s]), report.counts.total,
        Object.values(report.counts.reports_by_source).reduce((a, b) => a + b, 0)] },
    ]);
    const handling = (t) => t.history.map((h) => `${time(h.at)} ${S.label("action", h.action) || h.action} ${S.maskPhones(h.by)}${h.note ? "：" + S.maskPhones(h.note) : ""}`).join("\n");
    table($("#red"), [R.tr("ticket"), R.tr("community"), R.tr("department"), S.t("dispatchedAt"), S.t("accept"), S.t("resolve"),
      R.tr("status"), R.tr("handling")],
    report.red.map((t) => ({ dataset: { ticketId: t.ticket_id }, cells: [`${S.maskPhones(t.title)} (${t.ticket_id})`,
      S.communityName(t.community), S.departmentName(t.department), time(t.dispatched_at), time(t.accepted_at), time(t.resolved_at),
      `${S.label("status", t.status)}${t.escalation !== "none" ? " · " + S.label("escalation", t.escalation) : ""}`, handling(t)] })));
    $("#red-empty").hidden = report.red.length > 0;
    $("#red").hidden = report.red.length === 0;
    table($("#overdue"), [R.tr("ticket"), R.tr("severity"), R.tr("department"), R.tr("missed"), R.tr("acceptDue"), R.tr("resolveDue"), R.tr("status")],
      report.overdue.map((t) => ({ dataset: { ticketId: t.ticket_id, missed: t.missed.join(" ") }, cells: [`${S.maskPhones(t.title)} (${t.ticket_id})`,
        S.label("severity", t.severity), S.departmentName(t.department), t.missed.map((m) => R.tr(m)).join(" · "), time(t.accept_due), time(t.resolve_due),
        S.label("status", t.status)] })));
    $("#overdue-empty").hidden = report.overdue.length > 0;
    $("#overdue").hidden = report.overdue.length === 0;
    table($("#rates"), [R.tr("department"), R.tr("dispatched"), ...RATES.map((r) => R.tr(r))],
      report.departments.map((row) => ({ dataset: { department: row.department },
        cells: [S.departmentName(row.department), row.dispatched, ...RATES.map((r) => pct(row.rates[r]))] })));
    document.body.dataset.date = report.date;
  }

  async function load() {
    const day = $("#date").value;
    try {
      report = (await S.api("", "GET", `/api/stats/daily${day ? `?date=${encodeURIComponent(day)}` : ""}`)).body;
      $("#date").value = report.date;
      const url = new URL(window.location.href);
      url.searchParams.set("date", report.date);
      window.history.replaceState(null, "", url);
      S.hideError();
      render();
    } catch (error) {
      gate.failed(error);
    }
  }

  function init() {
    const wanted = new URLSearchParams(window.location.search).get("date");
    if (wanted) $("#date").value = wanted;
    gate = R.gate("stats", async () => { await load(); });
    $("#date").addEventListener("change", () => gate.auth.active && load());
    $("#date-form").addEventListener("submit", (event) => { event.preventDefault(); if (gate.auth.active) load(); });
    $("#print").addEventListener("click", () => window.print());
    S.onLangChange(render);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
