/* The leadership view (/stats): every chart drawn with Apache ECharts (vendored, /static/echarts.min.js)
 * from GET /api/stats, the map of recurring places (高发点位) from GET /api/hotspots over the
 * district's communities, and the seasonal pattern (季节规律) of one category or all, by week of the year and by
 * hour of the day, from GET /api/stats/seasons. Each chart is built from one table (columns and rows): the series plot exactly
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
  let recurring = null;   // GET /api/hotspots
  let seasonal = null;    // GET /api/stats/seasons
  const MAP = "soc-district";
  window.SOC_STATS = { charts, instances, get data() { return data; }, get recurring() { return recurring; },
    get seasonal() { return seasonal; } };

  const pct = (rate) => (rate === null || rate === undefined ? null : Math.round(rate * 10000) / 100);
  const hourLabel = (iso) => S.dateTime(iso).slice(5, 13) + "时";
  // A local date (YYYY-MM-DD) as people write it: 8月31日.
  const dayLabel = (day) => (S.getLang() === "en" ? day : `${Number(day.slice(5, 7))}月${Number(day.slice(8, 10))}日`);

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
      rows: d.hotspots.map((h) => [h.dedup_key, S.maskPersonal(h.title), S.communityName(h.community), h.reports, h.tickets]) };
    out.recurring = { columns: ["category", R.tr("category"), R.tr("lat"), R.tr("lon"), R.tr("recurringCount"),
      R.tr("stormsHit"), R.tr("openNow"), R.tr("lastDates"), R.tr("departments")],
      rows: recurring.places.map((p) => [p.category, S.label("category", p.category), p.lat, p.lon, p.count, p.storms,
        p.open, p.last_dates.map(dayLabel).join("、"), p.departments.map((dep) => S.departmentName(dep)).join("、")]) };
    Object.assign(out, seasonTables());
    const ageSevs = Object.keys(d.open_by_age.by_severity);
    out.age = { columns: [R.tr("bucket"), ...ageSevs.map((s) => S.label("severity", s))],
      rows: d.open_by_age.buckets.map((b, i) => [R.tr(b), ...ageSevs.map((s) => d.open_by_age.by_severity[s][i])]), keys: ageSevs };
    return out;
  }

  /** The seasonal pattern of the category picked (or of every category, one stacked series each): a row per
   * week (1-53) and a row per hour (0-23), a column per category. */
  function seasonTables() {
    const picked = $("#season-category").value;
    const shown = seasonal.categories.filter((c) => !picked || c.category === picked);
    const keys = shown.map((c) => c.category);
    const columns = (first) => [first, ...keys.map((k) => S.label("category", k))];
    const rows = (size, field) => Array.from({ length: size }, (_v, i) => [i + (field === "by_week" ? 1 : 0),
      ...shown.map((c) => c[field][i])]);
    return { "seasons-week": { columns: columns(R.tr("week")), rows: rows(seasonal.weeks, "by_week"), keys },
      "seasons-hour": { columns: columns(R.tr("hour")), rows: rows(seasonal.hours, "by_hour"), keys } };
  }

  /** The picker's options: every category with reports, most first, after "all"; the choice kept across loads. */
  function seasonChoices() {
    const select = $("#season-category");
    const keep = select.value;
    const options = [["", R.tr("allCategories")], ...seasonal.categories.map((c) => [c.category, S.label("category", c.category)])];
    select.replaceChildren(...options.map(([value, text]) => S.el("option", { value, text })));
    select.value = options.some(([value]) => value === keep) ? keep : "";
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
    if (id === "seasons-week" || id === "seasons-hour") {
      const label = id === "seasons-week" ? "weekLabel" : "hourLabel";
      return { ...base(), legend: { type: "scroll", top: 0, textStyle: { color: "#f1f5f9" } },
        xAxis: { type: "category", data: table.rows.map((r) => R.tr(label, { n: r[0] })) },
        yAxis: { type: "value", minInterval: 1 },
        series: table.keys.map((key, k) => ({ id: key, name: table.columns[1 + k], type: "bar", stack: "all",
          data: table.rows.map((r) => r[1 + k]) })) };
    }
    if (id === "hotspots") {
      const rows = [...table.rows].reverse();
      return { ...base(), grid: { left: 8, right: 32, top: 40, bottom: 16, containLabel: true },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", data: rows.map((r) => `${r[1]}`.slice(0, 24)) },
        series: [{ id: "reports", name: R.tr("reports"), type: "bar", data: rows.map((r) => r[3]) },
          { id: "tickets", name: R.tr("tickets"), type: "bar", data: rows.map((r) => r[4]) }] };
    }
    if (id === "recurring") {
      const most = Math.max(1, ...table.rows.map((r) => r[4]));
      return { backgroundColor: "transparent", animation: false,
        tooltip: { trigger: "item", formatter: (p) => (p.seriesType === "scatter" ? placeTip(table.rows[p.dataIndex]) : p.name) },
        geo: { map: MAP, roam: true, nameProperty: "name", itemStyle: { areaColor: "#1e293b", borderColor: "#64748b" },
          label: { show: true, color: "#94a3b8" }, emphasis: { label: { color: "#f1f5f9" }, itemStyle: { areaColor: "#334155" } } },
        series: [{ id: "places", name: R.tr("recurring", rules()), type: "scatter", coordinateSystem: "geo",
          symbolSize: (v) => 10 + 18 * Math.sqrt(v[2] / most), itemStyle: { color: "#ef4444", borderColor: "#fff", borderWidth: 1 },
          data: table.rows.map((r) => [r[3], r[2], r[4]]) }] };
    }
    return base();
  }

  /** The retained history the seasonal pattern covers, as local dates people write. */
  function seasonSpan() {
    if (!seasonal.from) return { from: R.tr("noHistory"), to: "" };
    return { from: dayLabel(seasonal.from), to: dayLabel(seasonal.to) };
  }

  function rules() {
    const r = recurring.rules;
    return { radius: r.radius_m, days: r.days, count: r.min_count, storms: r.storms };
  }

  /** A place's tooltip: its kind, how often, when last and whose (escaped: a department's name is config text). */
  function placeTip(row) {
    const esc = (v) => String(v).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
    return [`<b>${esc(row[1])}</b>`, `${esc(R.tr("recurringCount"))}：${row[4]}`, `${esc(R.tr("stormsHit"))}：${row[5]}`,
      `${esc(R.tr("openNow"))}：${row[6]}`, `${esc(R.tr("lastDates"))}：${esc(row[7])}`,
      `${esc(R.tr("departments"))}：${esc(row[8])}`].join("<br>");
  }

  /** The communities as GeoJSON for the map (polygons are [lon, lat] rings). */
  function registerDistrict(district) {
    const features = Object.entries(district.communities || {}).map(([id, c]) => ({
      type: "Feature", properties: { name: S.communityName(id) },
      geometry: { type: "Polygon", coordinates: [[...c.polygon, c.polygon[0]]] } }));
    window.echarts.registerMap(MAP, { type: "FeatureCollection", features });
  }

  function draw() {
    if (!data) return;
    registerDistrict(S.getDistrict());   // again on a language change: the community names
    Object.assign(charts, tables(data));
    for (const card of document.querySelectorAll(".chart-card")) {
      const id = card.dataset.chart;
      S.text(card.querySelector("h2"), id === "recurring" ? R.tr(id, rules()) : R.tr(id, seasonSpan()));
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
      const [stats, places, seasons] = await Promise.all([S.api("", "GET", "/api/stats"), S.api("", "GET", "/api/hotspots"),
        S.api("", "GET", "/api/stats/seasons")]);
      data = stats.body;
      recurring = places.body;
      seasonal = seasons.body;
      seasonChoices();
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
    $("#season-category").addEventListener("change", draw);
    S.onLangChange(() => { if (seasonal) seasonChoices(); draw(); });
    window.addEventListener("resize", () => { for (const i of Object.values(instances)) i.resize(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
