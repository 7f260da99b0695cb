/* The leadership view (/stats): every chart drawn with Apache ECharts (vendored, /static/echarts.min.js)
 * from GET /api/stats. Each chart is built from one table (columns and rows): the series plot exactly
 * its figures and its CSV button saves exactly that table. */
"use strict";

(function () {
  const S = window.SOC;
  const R = window.SOC_REPORTS;
  const $ = (s) => document.querySelector(s);
  const RATES = ["on_time_handling", "closure", "rework", "satisfaction"];
  const SEV_COLOURS = { red: "#e53935", orange: "#fb8c00", yellow: "#fdd835", blue: "#1e88e5" };
  const SOURCE_COLOURS = { traffic: "#26a69a", flood: "#42a5f5", city: "#ab47bc", construction: "#ffa726" };

  const charts = {};      // id -> {columns, rows}
  const instances = {};   // id -> echarts instance
  let data = null;
  window.SOC_STATS = { charts, instances, get data() { return data; } };

  const pct = (rate) => (rate === null || rate === undefined ? null : Math.round(rate * 10000) / 100);
  const hourLabel = (iso) => S.dateTime(iso).slice(5, 13) + "时";

  function tables(d) {
    const out = {};
    for (const days of ["7", "30"]) {
      const rows = d.performance[days].departments.map((row) => [row.department, S.departmentName(row.department),
        ...RATES.map((r) => pct(row.rates[r])), row.dispatched]);
      out[`rates-${days}`] = { columns: ["department", R.tr("department"), ...RATES.map((r) => R.tr(r)), R.tr("dispatched")], rows };
    }
    out.trend = { columns: [R.tr("day"), R.tr("dispatched"), ...RATES.map((r) => R.tr(r))],
      rows: d.daily.days.map((day, i) => [day, d.daily.dispatched[i], ...RATES.map((r) => pct(d.daily[r][i]))]) };
    const sources = Object.keys(d.hourly.by_source);
    out["hourly-source"] = { columns: [R.tr("hour"), ...sources.map((s) => S.label("source", s))],
      rows: d.hourly.hours.map((h, i) => [h, ...sources.map((s) => d.hourly.by_source[s][i])]), keys: sources };
    const sevs = Object.keys(d.hourly.by_severity);
    out["hourly-severity"] = { columns: [R.tr("hour"), ...sevs.map((s) => S.label("severity", s))],
      rows: d.hourly.hours.map((h, i) => [h, ...sevs.map((s) => d.hourly.by_severity[s][i])]), keys: sevs };
    out.hotspots = { columns: ["dedup_key", R.tr("place"), R.tr("community"), R.tr("reports"), R.tr("tickets")],
      rows: d.hotspots.map((h) => [h.dedup_key, S.maskPhones(h.title), S.communityName(h.community), h.reports, h.tickets]) };
    const ageSevs = Object.keys(d.open_by_age.by_severity);
    out.age = { columns: [R.tr("bucket"), ...ageSevs.map((s) => S.label("severity", s))],
      rows: d.open_by_age.buckets.map((b, i) => [R.tr(b), ...ageSevs.map((s) => d.open_by_age.by_severity[s][i])]), keys: ageSevs };
    return out;
  }

  const base = () => ({
    backgroundColor: "transparent", animation: false, tooltip: { trigger: "axis" },
    legend: { top: 0, textStyle: { color: "#f1f5f9" } }, grid: { left: 48, right: 24, top: 40, bottom: 64, containLabel: true },
  });

  function option(id, table) {
    if (id.startsWith("rates-")) {
      return { ...base(), xAxis: { type: "category", data: table.rows.map((r) => r[1]), axisLabel: { rotate: 35, interval: 0 } },
        yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
        series: RATES.map((rate, k) => ({ id: rate, name: R.tr(rate), type: "bar", data: table.rows.map((r) => r[2 + k]) })) };
    }
    if (id === "trend") {
      return { ...base(), xAxis: { type: "category", data: table.rows.map((r) => r[0].slice(5)) },
        yAxis: [{ type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } }, { type: "value", minInterval: 1 }],
        series: [{ id: "dispatched", name: R.tr("dispatched"), type: "bar", yAxisIndex: 1, data: table.rows.map((r) => r[1]),
          itemStyle: { color: "#455a64" } },
        ...RATES.map((rate, k) => ({ id: rate, name: R.tr(rate), type: "line", connectNulls: false,
          data: table.rows.map((r) => r[2 + k]) }))] };
    }
    if (id === "hourly-source" || id === "hourly-severity" || id === "age") {
      const colours = id === "hourly-source" ? SOURCE_COLOURS : SEV_COLOURS;
      return { ...base(), xAxis: { type: "category", data: table.rows.map((r) => (id === "age" ? r[0] : hourLabel(r[0]))) },
        yAxis: { type: "value", minInterval: 1 },
        series: table.keys.map((key, k) => ({ id: key, name: table.columns[1 + k], type: "bar", stack: "all",
          itemStyle: { color: colours[key] }, data: table.rows.map((r) => r[1 + k]) })) };
    }
    if (id === "hotspots") {
      const rows = [...table.rows].reverse();
      return { ...base(), grid: { left: 8, right: 32, top: 40, bottom: 16, containLabel: true },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: rows.map((r) => `${r[1]}`.slice(0, 24)) },
        series: [{ id: "reports", name: R.tr("reports"), type: "bar", data: rows.map((r) => r[3]) },
          { id: "tickets", name: R.tr("tickets"), type: "bar", data: rows.map((r) => r[4]) }] };
    }
    return base();
  }

  function draw() {
    if (!data) return;
    Object.assign(charts, tables(data));
    for (const card of document.querySelectorAll(".chart-card")) {
      const id = card.dataset.chart;
      S.text(card.querySelector("h2"), R.tr(id));
      const node = card.querySelector(".chart");
      if (!instances[id]) instances[id] = window.echarts.init(node, "dark", { renderer: "canvas" });
      instances[id].setOption(option(id, charts[id]), { notMerge: true });
      card.dataset.rows = String(charts[id].rows.length);
    }
    S.text($("#generated"), R.tr("generated", { time: S.dateTime(data.generated_at) }));
    document.body.dataset.drawn = String((Number(document.body.dataset.drawn) || 0) + 1);
  }

  let gate = null;

  async function load() {
    try {
      data = (await S.api("", "GET", "/api/stats")).body;
      S.hideError();
      draw();
    } catch (error) {
      gate.failed(error);
    }
  }

  function init() {
    gate = R.gate("stats", async (district) => {
      S.text($("#district-name"), district.name || "");
      await load();
    });
    if (!window.echarts) S.showError("echarts.min.js is missing: run tools/vendor-echarts.sh");
    $("#refresh").addEventListener("click", () => gate.auth.active && load());
    for (const card of document.querySelectorAll(".chart-card")) {
      card.querySelector(".csv").addEventListener("click", () => {
        const table = charts[card.dataset.chart];
        if (!table) return;
        const name = `${card.dataset.chart}-${(data.generated_at || "").slice(0, 10)}.csv`;
        R.download(name, R.csv(table.columns, table.rows));
      });
    }
    S.onLangChange(draw);
    window.addEventListener("resize", () => { for (const i of Object.values(instances)) i.resize(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
