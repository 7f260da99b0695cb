/* The daily duty report (值班日报, /stats/daily?date=YYYY-MM-DD[&period=shift]) from GET /api/stats/daily: one
 * A4 document a leader signs, of a whole day or of the duty officer's shift that starts that day (daily.css
 * lays it out on paper). The sentences (warnings, levels, the course of each event, the handovers) come from
 * the server in both languages (handlers/daily.py); the page only arranges them. */
"use strict";

(function () {
  const S = window.SOC;
  const R = window.SOC_REPORTS;
  const $ = (s) => document.querySelector(s);
  const RATES = ["accepted_on_time", "resolved_on_time", "on_time_handling", "closure", "rework", "followup", "satisfaction", "sent_back"];
  const DAY = /^\d{4}-\d{2}-\d{2}$/;
  let report = null;
  let gate = null;   // SOC_REPORTS.gate: the signed-in person

  const en = () => S.getLang() === "en";
  const pct = (rate) => (rate === null || rate === undefined ? "—" : `${(Math.round(rate * 1000) / 10).toFixed(1)}%`);
  const said = (item) => S.maskPersonal((en() ? item.text_en : item.text) || "");

  /** A time at the district's local time: "14:23" on the report's day, "12月5日 14:23" (5 Dec 14:23) on another
   * or when `dated`. */
  function when(iso, dated) {
    if (!iso) return "—";
    const [day, clock] = S.dateTime(iso).split(" ");
    const hm = clock.slice(0, 5);
    if (!dated && report && day === report.date) return hm;
    const [, m, d] = day.split("-").map(Number);
    return en() ? `${d} ${R.tr("months").split(",")[m - 1].slice(0, 3)} ${hm}` : `${m}月${d}日 ${hm}`;
  }

  function dayTitle(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    const weekday = R.tr("weekdays").split(",")[new Date(Date.UTC(y, m - 1, d)).getUTCDay()];
    return R.tr("reportDate", { y, m, d, weekday, month: en() ? R.tr("months").split(",")[m - 1] : "" });
  }

  function cell(content, cls) {
    const td = S.el("td", { class: cls || null });
    if (content instanceof Node) td.append(content);
    else S.text(td, content === null || content === undefined ? "" : String(content));
    return td;
  }

  /** A table: head is [[label, class]], rows are {dataset, cells: [[content, class]]}. */
  function table(node, head, rows) {
    S.clear(node).append(S.el("thead", {}, S.el("tr", {}, ...head.map(([h, cls]) => S.el("th", { text: h, class: cls || null })))),
      S.el("tbody", {}, ...rows.map((r) => S.el("tr", { dataset: r.dataset || {} }, ...r.cells.map(([c, cls]) => cell(c, cls))))));
    node.hidden = rows.length === 0;
  }

  const severity = (s) => S.el("span", { class: `sev ${s}`, text: S.label("severityShort", s) });
  const event = (t) => S.el("div", {}, S.el("div", { text: S.maskPersonal(t.title) }),
    S.el("div", { class: "ref", text: S.communityName(t.community) }));
  const status = (t) => `${S.label("status", t.status)}${t.escalation !== "none" ? " · " + S.label("escalation", t.escalation) : ""}`;

  function duty() {
    const lines = ["officer", "leader"].map((role) => {
      const people = (report.duty[role] || []).map((p) => R.tr("stretch", { name: p.name, from: when(p.from, true), to: when(p.to, true) }));
      return people.length ? R.tr("dutyLine", { role: R.tr(role), names: people.join(en() ? "; " : "；") }) : "";
    }).filter(Boolean);
    S.text($("#report-duty"), lines.join(en() ? " · " : "　"));
    // Those who sign: the officer and the leader of the duty day (the last stretch of the day).
    const last = (role) => (report.duty[role] || []).slice(-1).map((p) => p.name).join("");
    S.text($("#sign-officer"), last("officer"));
    S.text($("#sign-leader"), last("leader"));
  }

  function summary() {
    const c = report.counts;
    S.text($("#summary-text"), R.tr("summaryText", { total: c.total,
      reports: Object.values(c.reports_by_source).reduce((a, b) => a + b, 0), ...c.by_severity,
      late: report.overdue.length, open: report.open_items.total }));
    const sevs = Object.keys(c.by_severity);
    const sources = Object.keys(c.by_source).filter((src) => c.by_source[src] > 0);
    table($("#counts"), [[R.tr("source")], ...sevs.map((s) => [S.label("severityShort", s), "num"]), [R.tr("total"), "num"], [R.tr("reportsLine"), "num"]], [
      ...sources.map((src) => ({ dataset: { source: src }, cells: [[S.label("source", src), "nowrap"],
        ...sevs.map((s) => [c.matrix[src][s], "num"]), [c.by_source[src], "num"], [c.reports_by_source[src], "num"]] })),
      { dataset: { source: "total" }, cells: [[R.tr("total"), "nowrap"], ...sevs.map((s) => [c.by_severity[s], "num"]), [c.total, "num"],
        [Object.values(c.reports_by_source).reduce((a, b) => a + b, 0), "num"]] },
    ]);
  }

  function weather() {
    const level = report.response.at_start;
    S.text($("#level-start"), R.tr("levelAtStart", { level: level ? R.tr("levelName", { level }) : R.tr("noLevel") }));
    // The warnings and the level changes on one time line, as the day went.
    const lines = [...report.warnings.map((w) => ({ at: w.at, kind: "warning", item: w })),
      ...report.response.changes.map((c) => ({ at: c.at, kind: "level", item: c }))]
      .sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    S.clear($("#timeline")).append(...lines.map((l) => S.el("li", { dataset: { kind: l.kind }, text: said(l.item) })));
    if (!lines.length) $("#timeline").append(S.el("li", { text: R.tr("noWeather") }));
  }

  function render() {
    if (!report) return;
    const d = S.getDistrict();
    S.text($("#report-title"), R.tr("reportTitle", { district: d.name || "" }));
    const period = R.tr(report.period === "shift" ? "periodShift" : "periodDay");
    S.text($("#report-meta"), `${dayTitle(report.date)} · ${R.tr("reportMeta", { period, from: when(report.from), to: when(report.to),
      tz: report.timezone || d.timezone || "", now: when(report.generated_at) })}`);
    duty();
    summary();
    weather();
    table($("#events"), [[R.tr("severity")], [R.tr("event")], [R.tr("department")], [R.tr("status")], [R.tr("handling")]],
      report.events.map((t) => ({ dataset: { ticketId: t.ticket_id, severity: t.severity }, cells: [[severity(t.severity), "nowrap"],
        [event(t), "event"], [S.departmentName(t.department), "nowrap"], [status(t), "nowrap"],
        [S.el("ul", { class: "course" }, ...t.history.map((h) => S.el("li", { text: S.historyText(h) }))), "wide"]] })));
    $("#events-empty").hidden = report.events.length > 0;
    table($("#overdue"), [[R.tr("severity")], [R.tr("event")], [R.tr("department")], [R.tr("dispatchedAt")], [R.tr("missed")], [R.tr("status")]],
      report.overdue.map((t) => ({ dataset: { ticketId: t.ticket_id, missed: t.missed.join(" ") }, cells: [[severity(t.severity), "nowrap"],
        [event(t), "wide"], [S.departmentName(t.department), "nowrap"], [when(t.dispatched_at), "nowrap"],
        [t.missed.map((m) => R.tr(m)).join(en() ? ", " : "、"), "nowrap"], [status(t), "nowrap"]] })));
    $("#overdue-empty").hidden = report.overdue.length > 0;
    const open = report.open_items;
    table($("#open-items"), [[R.tr("severity")], [R.tr("event")], [R.tr("department")], [R.tr("status")], [R.tr("standing")]],
      open.tickets.map((t) => ({ dataset: { ticketId: t.ticket_id }, cells: [[severity(t.severity), "nowrap"], [event(t), "wide"],
        [S.departmentName(t.department), "nowrap"], [status(t), "nowrap"], [said(t), "nowrap"]] })));
    $("#open-empty").hidden = open.total > 0;
    S.text($("#open-more"), open.total > open.tickets.length ? R.tr("moreOpen", { n: open.total - open.tickets.length }) : "");
    table($("#rates"), [[R.tr("department")], [R.tr("dispatched"), "num"], ...RATES.map((r) => [R.tr(r), "num"])],
      report.departments.map((row) => ({ dataset: { department: row.department },
        cells: [[S.departmentName(row.department), "nowrap"], [row.dispatched, "num"], ...RATES.map((r) => [pct(row.rates[r]), "num"])] })));
    S.clear($("#handovers")).append(...report.handovers.map((h) => S.el("li", { dataset: { handoverId: h.handover_id }, text: said(h) })));
    $("#handovers-empty").hidden = report.handovers.length > 0;
    // The same report as a PDF drawn by the server (GET /api/stats/daily.pdf; the session cookie signs the
    // request). Not through S.el: it masks attribute values, and a date can read as part of a number.
    const shift = report.period === "shift";
    $("#pdf").href = `/api/stats/daily.pdf?date=${encodeURIComponent(report.date)}${shift ? "&period=shift" : ""}&lang=${en() ? "en" : "zh"}`;
    $("#pdf").download = `daily-report-${report.date}${shift ? "-shift" : ""}${en() ? "-en" : ""}.pdf`;
    document.title = `${R.tr("reportTitle", { district: d.name || "" })} ${report.date}`;
    document.body.dataset.date = report.date;
  }

  /** The day in the field moved by `days` (the district's calendar: no clock involved). */
  function shift(days) {
    const value = $("#date").value.trim();
    if (!DAY.test(value)) return;
    const [y, m, d] = value.split("-").map(Number);
    $("#date").value = new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
    load();
  }

  async function load() {
    const day = $("#date").value.trim();
    if (day && !DAY.test(day)) {
      S.showError(R.tr("badDay"));
      return;
    }
    if (!gate.auth.active) return;
    try {
      const query = new URLSearchParams({ period: $("#period").value });
      if (day) query.set("date", day);
      report = (await S.api("", "GET", `/api/stats/daily?${query}`)).body;
      $("#date").value = report.date;
      const url = new URL(window.location.href);
      url.searchParams.set("date", report.date);
      url.searchParams.set("period", report.period);
      window.history.replaceState(null, "", url);
      S.hideError();
      render();
    } catch (error) {
      gate.failed(error);
    }
  }

  function init() {
    const asked = new URLSearchParams(window.location.search);
    if (asked.get("date")) $("#date").value = asked.get("date");
    if (asked.get("period") === "shift") $("#period").value = "shift";
    gate = R.gate("stats", async () => { await load(); });
    $("#date").addEventListener("change", load);
    $("#period").addEventListener("change", load);
    $("#date-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
    $("#prev-day").addEventListener("click", () => shift(-1));
    $("#next-day").addEventListener("click", () => shift(1));
    $("#print").addEventListener("click", () => window.print());
    S.onLangChange(render);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
