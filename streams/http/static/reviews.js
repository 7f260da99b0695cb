/* The review (复盘, /reviews?change=<change_id> or ?from=&to=) from GET /api/reviews: the course of a storm
 * (warnings, levels with who and why, plans, the first ticket of each category, red tickets), its times per
 * severity and department, its notifications, and the findings and actions a duty officer of the centre writes
 * (PUT /api/reviews/{review_id}/findings). The sentences come from the server in both languages
 * (handlers/review.py); the page only arranges them, on the daily report's A4 document (daily.css). */
"use strict";

(function () {
  const S = window.SOC;
  const R = window.SOC_REPORTS;
  const $ = (s) => document.querySelector(s);
  const LOCAL = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})$/;
  // Chinese documents write a response level with its Roman numeral character (Ⅲ级), as the daily report does.
  const ROMAN = { I: "Ⅰ", II: "Ⅱ", III: "Ⅲ", IV: "Ⅳ" };
  const LABELS = {
    zh: {
      title: "复盘", pickLevel: "应急响应期间…", show: "查看", print: "打印", downloadPdf: "下载 PDF",
      pickHint: "请选择一个应急响应期间，或填写起止时间。", badTime: "请按 YYYY-MM-DD HH:MM 填写起止时间，如 2026-12-08 14:00",
      reviewTitle: "{district}复盘", levelTitle: "{district}{level}级应急响应复盘", ongoing: "（仍在响应中）",
      meta: "复盘时段 {from} 至 {to}（{tz}） · 生成于 {now}", course: "一、经过", times: "二、处置时效",
      notices: "三、通知发送", silences: "四、屏蔽与静默", noSilences: "期间无屏蔽或静默。", heldTickets: "静默立案：{ids}",
      compound: "五、复合事件", noCompound: "期间无关联规则串联的工单。", map: "六、事件分布", mapKey: "{severity} {n} 件", noPoints: "期间无工单。",
      findings: "七、问题与整改措施", noFindings: "尚未填写", addFinding: "添加一条", save: "保存",
      levelAtStart: "期间开始前应急响应：{level}", noLevel: "未启动", levelName: "{level}级", noCourse: "期间无预警、响应调整或工单。",
      summary: "期间派单 {dispatched} 件（其中预防性工单 {preventive} 件）；签收超时 {late} 件，办结超时 {overdue} 件；催办 {reminded} 件，督办 {escalated} 件，通报 {reported} 件。",
      notifications: "共 {deliveries} 条通知：已送达 {delivered} 条，失败 {failed} 条（其中放弃 {given_up} 条），失败尝试 {failed_attempts} 次，静默 {muted} 条。",
      severity: "等级", department: "部门", dispatched: "派单", toTicket: "读数至派单（中位）", toAccept: "至签收（中位）",
      toClose: "至结案（中位）", late: "签收超时", overdue: "办结超时", escalations: "催办/督办/通报",
      finding: "问题", action: "整改措施", owner: "责任部门", due: "完成时限", done: "已完成",
      again: "预防性工单所在点位中，{n} 处在期间再次上报。", written: "第 {version} 版，{by} 于 {at} 填写", saved: "已保存第 {version} 版", minutes: "{n} 分钟", hours: "{n} 小时",
      lead: "—",
      openedTitle: "每{slot}派单（按等级）", hour: "小时", day: "日", acceptTitle: "各部门按时签收率（按时签收的工单占应签收工单的比例）",
      lateness: "已送达的 {delivered} 条从首次发送到送达用时中位 {median}、最长 {max}，超过 1 分钟的 {over} 条。",
      channelType: "通道", deliveries: "通知", delivered: "送达", failed: "失败", muted: "静默",
      lateMedian: "送达用时（中位）", lateMax: "最长", over60: "超过 1 分钟", seconds: "{n} 秒",
    },
    en: {
      title: "Review", pickLevel: "Response-level period…", show: "Show", print: "Print", downloadPdf: "Download PDF",
      pickHint: "Pick a response-level period, or give a start and an end.", badTime: "Give the times as YYYY-MM-DD HH:MM, e.g. 2026-12-08 14:00",
      reviewTitle: "{district} review", levelTitle: "{district} review of the level {level} response", ongoing: " (still in force)",
      meta: "Reviewed {from} to {to} ({tz}) · generated {now}", course: "1. Course of events", times: "2. Response times",
      notices: "3. Notifications", silences: "4. Silences", noSilences: "No silence was in force in the period.",
      heldTickets: "Opened quiet: {ids}", compound: "5. Compound incidents",
      noCompound: "No tickets were linked by a correlation rule in the period.", map: "6. Where the incidents were",
      mapKey: "{severity} {n}", noPoints: "No ticket in the period.", findings: "7. Findings and actions", noFindings: "none written yet", addFinding: "Add one", save: "Save",
      levelAtStart: "Response level before the period: {level}", noLevel: "none", levelName: "level {level}",
      noCourse: "No warning, level change or ticket in the period.",
      summary: "{dispatched} tickets dispatched ({preventive} preventive); {late} accepted late, {overdue} overdue; {reminded} reminded, {escalated} escalated, {reported} reported to the leadership.",
      notifications: "{deliveries} notifications: {delivered} delivered, {failed} failed ({given_up} given up), {failed_attempts} failed attempts, {muted} muted.",
      severity: "Severity", department: "Department", dispatched: "Dispatched", toTicket: "Reading to ticket (median)",
      toAccept: "To acceptance (median)", toClose: "To closure (median)", late: "Accepted late", overdue: "Overdue",
      escalations: "Reminded/escalated/reported", finding: "Finding", action: "Action", owner: "Owner", due: "Due",
      done: "Done", again: "{n} of the preventive tickets' places were reported again in the period.",
      written: "Version {version}, written by {by} at {at}", saved: "Version {version} saved",
      minutes: "{n} min", hours: "{n} h", lead: "—",
      openedTitle: "Tickets dispatched per {slot}, by severity", hour: "hour", day: "day",
      acceptTitle: "On-time acceptance by department (accepted in time, of the tickets due to be accepted)",
      lateness: "The {delivered} delivered took {median} from first attempt to delivery (median), {max} at most; {over} took longer than a minute.",
      channelType: "Channel", deliveries: "Notifications", delivered: "Delivered", failed: "Failed", muted: "Muted",
      lateMedian: "Time to deliver (median)", lateMax: "Longest", over60: "Over a minute", seconds: "{n} s",
    },
  };
  // As the stats page colours severities; the map is the stats page's map of the communities.
  const SEV_COLOURS = { red: "#e53935", orange: "#fb8c00", yellow: "#fdd835", blue: "#1e88e5" };
  const MAP = "soc-district";
  let chart = null;
  const charts = {};   // id -> echarts instance
  let review = null;
  let levels = [];
  let gate = null;

  const en = () => S.getLang() === "en";
  const levelOf = (level) => (en() ? level : ROMAN[level] || level);
  function tr(key, vars) {
    const text = LABELS[en() ? "en" : "zh"][key] || key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (vars && vars[name] !== undefined ? String(vars[name]) : ""));
  }
  const said = (item) => S.maskPersonal((en() ? item.text_en : item.text) || "");
  const when = (iso) => (iso ? S.dateTime(iso).slice(0, 16) : "—");

  function applyLabels(root) {
    for (const node of root.querySelectorAll("[data-review]")) node.textContent = tr(node.dataset.review);
  }

  /** Seconds as people read a wait: minutes, or hours past two. */
  function span(seconds) {
    if (seconds === null || seconds === undefined) return tr("lead");
    const minutes = seconds / 60;
    return minutes < 120 ? tr("minutes", { n: Math.round(minutes) }) : tr("hours", { n: (minutes / 60).toFixed(1) });
  }

  /** A delivery's wait: seconds under two minutes, then as `span`. */
  function wait(seconds) {
    return seconds !== null && seconds !== undefined && seconds < 120 ? tr("seconds", { n: Math.round(seconds) }) : span(seconds);
  }

  /** The period's tickets as dots on the district's communities, coloured by severity (ECharts, vendored). */
  function renderMap(points) {
    const counts = Object.keys(SEV_COLOURS).map((s) => [s, points.filter((p) => p.severity === s).length]).filter(([, n]) => n);
    S.text($("#map-key"), points.length ? counts.map(([s, n]) => tr("mapKey", { severity: S.label("severity", s), n })).join(en() ? ", " : "，")
      : tr("noPoints"));
    const node = $("#incident-map");
    node.hidden = !points.length || !window.echarts;
    if (node.hidden) return;
    const district = S.getDistrict();
    const features = Object.entries(district.communities || {}).map(([id, c]) => ({
      type: "Feature", properties: { name: S.communityName(id) },
      geometry: { type: "Polygon", coordinates: [[...c.polygon, c.polygon[0]]] } }));
    window.echarts.registerMap(MAP, { type: "FeatureCollection", features });
    if (!chart) chart = window.echarts.init(node, null, { renderer: "svg" });
    const order = ["blue", "yellow", "orange", "red"];   // the most severe drawn last, on top
    chart.setOption({ animation: false,
      tooltip: { trigger: "item", formatter: (p) => (p.seriesType === "scatter" ? tip(p.data.point) : esc(p.name)) },
      geo: { map: MAP, roam: true, nameProperty: "name", itemStyle: { areaColor: "#f1f5f9", borderColor: "#64748b" },
        label: { show: true, color: "#475569" }, emphasis: { label: { color: "#0f172a" }, itemStyle: { areaColor: "#e2e8f0" } } },
      series: order.map((s) => ({ id: s, name: S.label("severity", s), type: "scatter", coordinateSystem: "geo", symbolSize: 9,
        itemStyle: { color: SEV_COLOURS[s], borderColor: "#fff", borderWidth: 1 },
        data: points.filter((p) => p.severity === s).map((p) => ({ value: [p.lon, p.lat], point: p })) })) }, { notMerge: true });
    node.dataset.points = String(points.length);
  }

  const esc = (v) => String(v).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  /** A dot's tooltip: its ticket, title, department and time (escaped: titles come from reports). */
  function tip(p) {
    return [`<b>${esc(p.ticket_id)}</b> ${esc(S.maskPersonal(p.title))}`, esc(S.departmentName(p.department)),
      esc(`${S.label("severity", p.severity)} · ${when(p.dispatched_at)}`)].join("<br>");
  }

  /** The PDF's two charts on the page: tickets per hour (day) by severity, and each department's on-time acceptance. */
  function renderCharts() {
    if (!window.echarts) return;
    const o = review.opened;
    S.text($("#opened-title"), tr("openedTitle", { slot: tr(o.slot) }));
    const order = ["blue", "yellow", "orange", "red"];
    // The document's own text colour: the page is dark on screen and light in print.
    const ink = window.getComputedStyle($("#doc")).color;
    const draw = (id, option) => {
      if (!charts[id]) charts[id] = window.echarts.init($(`#${id}`), null, { renderer: "svg" });
      charts[id].setOption({ animation: false, textStyle: { color: ink }, grid: { left: 48, right: 24, top: 28, bottom: 36 },
        tooltip: { trigger: "axis" }, ...option }, { notMerge: true });
    };
    draw("opened-chart", { legend: { top: 0, textStyle: { color: ink } }, xAxis: { type: "category", data: en() ? o.labels_en : o.labels },
      yAxis: { type: "value", minInterval: 1 },
      series: order.map((s) => ({ id: s, name: S.label("severity", s), type: "bar", stack: "all", barMaxWidth: 48,
        itemStyle: { color: SEV_COLOURS[s] }, data: o.by_severity[s] })) });
    const rows = review.measures.departments.filter((row) => row.rates.accepted_on_time !== null && row.rates.accepted_on_time !== undefined);
    $("#accept-chart").style.height = `${Math.max(120, 40 + 28 * rows.length)}px`;
    $("#accept-chart").hidden = rows.length === 0;
    draw("accept-chart", { grid: { left: 140, right: 48, top: 8, bottom: 28 },
      xAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
      yAxis: { type: "category", inverse: true, data: rows.map((row) => S.departmentName(row.department)) },
      series: [{ id: "accepted_on_time", name: tr("acceptTitle"), type: "bar", itemStyle: { color: "#1e88e5" },
        barMaxWidth: 20, label: { show: true, position: "right", formatter: "{c}%", color: ink },
        data: rows.map((row) => Math.round(row.rates.accepted_on_time * 1000) / 10) }] });
    charts["accept-chart"].resize();
    $("#accept-chart").dataset.rows = String(rows.length);
    $("#opened-chart").dataset.slots = String(o.starts.length);
  }

  function renderNotifications(n) {
    S.text($("#notifications"), tr("notifications", n));
    const late = n.lateness;
    S.text($("#lateness"), late.delivered ? tr("lateness", { delivered: late.delivered, median: wait(late.median_s),
      max: wait(late.max_s), over: late.over_60s }) : "");
    table($("#by-channel-type"), [[tr("channelType")], [tr("deliveries"), "num"], [tr("delivered"), "num"], [tr("failed"), "num"],
      [tr("muted"), "num"], [tr("lateMedian"), "num"], [tr("lateMax"), "num"], [tr("over60"), "num"]],
    Object.entries(n.by_channel_type).map(([type, row]) => ({ dataset: { key: type }, cells: [[en() ? row.name_en : row.name, "nowrap"],
      [row.deliveries, "num"], [row.delivered, "num"], [row.failed, "num"], [row.muted, "num"],
      [wait(row.lateness.median_s), "num"], [wait(row.lateness.max_s), "num"], [row.lateness.over_60s, "num"]] })));
  }

  function table(node, head, rows) {
    S.clear(node).append(S.el("thead", {}, S.el("tr", {}, ...head.map(([h, cls]) => S.el("th", { text: h, class: cls || null })))),
      S.el("tbody", {}, ...rows.map((r) => S.el("tr", { dataset: r.dataset || {} }, ...r.cells.map(([c, cls]) => {
        const td = S.el("td", { class: cls || null });
        if (c instanceof Node) td.append(c);
        else S.text(td, c === null || c === undefined ? "" : String(c));
        return td;
      })))));
    node.hidden = rows.length === 0;
  }

  function measureRows(rows, name) {
    return rows.map((row) => ({ dataset: { key: row.department }, cells: [[name(row), "nowrap"], [row.dispatched, "num"],
      [span(row.times.to_ticket.median_s), "num"], [span(row.times.to_accept.median_s), "num"],
      [span(row.times.to_close.median_s), "num"], [row.accepted_late, "num"], [row.overdue, "num"],
      [`${row.reminded}/${row.escalated}/${row.reported}`, "num"]] }));
  }
  const measureHead = (first) => [[first], [tr("dispatched"), "num"], [tr("toTicket"), "num"], [tr("toAccept"), "num"],
    [tr("toClose"), "num"], [tr("late"), "num"], [tr("overdue"), "num"], [tr("escalations"), "num"]];

  function findingRow(f) {
    const district = S.getDistrict();
    const owner = S.el("select", { class: "owner" }, ...Object.keys(district.departments || {}).map((id) =>
      S.el("option", { value: id, text: S.departmentName(id) })));
    owner.value = f.owner || "";
    const input = (cls, value, size) => S.el("input", { type: "text", class: cls, value: value || "", size, maxlength: 1000 });
    const done = S.el("input", { type: "checkbox", class: "done" });
    done.checked = Boolean(f.done);
    return { cells: [[input("finding", f.finding, 24), "wide"], [input("action", f.action, 24), "wide"], [owner, "nowrap"],
      [input("due", f.due, 10), "nowrap"], [done, "nowrap"]] };
  }

  function renderFindings(rows) {
    table($("#findings"), [[tr("finding")], [tr("action")], [tr("owner")], [tr("due")], [tr("done")]], rows.map(findingRow));
    $("#findings-empty").hidden = rows.length > 0;
    const w = review.written;
    S.text($("#findings-meta"), w.version ? tr("written", { version: w.version, by: S.maskPersonal(w.by), at: en() ? w.at_text_en : w.at_text }) : "");
  }

  function render() {
    if (!review) return;
    const district = S.getDistrict();
    const level = review.level_period;
    S.text($("#review-title"), level ? tr("levelTitle", { district: district.name || "", level: levelOf(level.highest) }) + (level.ongoing ? tr("ongoing") : "")
      : tr("reviewTitle", { district: district.name || "" }));
    S.text($("#review-meta"), tr("meta", { from: when(review.from), to: when(review.to), tz: review.timezone, now: when(review.generated_at) }));
    S.text($("#level-start"), tr("levelAtStart", { level: review.level_at_start ? tr("levelName", { level: levelOf(review.level_at_start) }) : tr("noLevel") }));
    S.clear($("#timeline")).append(...review.timeline.map((line) => S.el("li", { dataset: { kind: line.kind }, text: said(line) })));
    if (!review.timeline.length) $("#timeline").append(S.el("li", { text: tr("noCourse") }));
    const m = review.measures;
    const all = m.district || { dispatched: 0, preventive: 0, accepted_late: 0, overdue: 0, reminded: 0, escalated: 0, reported: 0 };
    S.text($("#summary"), tr("summary", { dispatched: all.dispatched, preventive: all.preventive, late: all.accepted_late,
      overdue: all.overdue, reminded: all.reminded, escalated: all.escalated, reported: all.reported })
      + (review.preventive.length ? (en() ? " " : "") + tr("again", { n: review.preventive.filter((p) => p.reported_again.length).length }) : ""));
    table($("#by-severity"), measureHead(tr("severity")), measureRows(m.severities, (row) => S.label("severity", row.department)));
    table($("#by-department"), measureHead(tr("department")), measureRows(m.departments, (row) => S.departmentName(row.department)));
    renderNotifications(review.notifications);
    S.clear($("#silences")).append(...review.silences.map((line) => S.el("li", { dataset: { silenceId: line.silence_id } },
      S.el("span", { text: said(line) }),
      line.tickets.length ? S.el("span", { class: "meta", text: ` ${tr("heldTickets", { ids: line.tickets.join(en() ? ", " : "、") })}` }) : null)));
    if (!review.silences.length) $("#silences").append(S.el("li", { text: tr("noSilences") }));
    S.clear($("#compound")).append(...review.compound.map((group) => S.el("li", { dataset: { rule: group.rule }, text: said(group) })));
    if (!review.compound.length) $("#compound").append(S.el("li", { text: tr("noCompound") }));
    renderFindings(review.written.findings);
    // The same review drawn by the server (GET /api/reviews.pdf; the session cookie signs the request). Not through
    // S.el: it masks attribute values, and a time stamp can read as part of a number.
    const which = level ? { change: level.change_id } : { from: review.from, to: review.to };
    $("#pdf").href = `/api/reviews.pdf?${new URLSearchParams({ ...which, lang: en() ? "en" : "zh" })}`;
    $("#pdf").download = `review-${review.review_id}${en() ? "-en" : ""}.pdf`;
    document.title = $("#review-title").textContent;
    $("#pick-hint").hidden = true;
    $("#doc").hidden = false;
    renderMap(review.points);
    renderCharts();
  }

  function collected() {
    return [...$("#findings").querySelectorAll("tbody tr")].map((tr_) => ({
      finding: tr_.querySelector(".finding").value.trim(), action: tr_.querySelector(".action").value.trim(),
      owner: tr_.querySelector(".owner").value, due: tr_.querySelector(".due").value.trim(),
      done: tr_.querySelector(".done").checked,
    }));
  }

  async function save() {
    try {
      const body = (await S.api("", "PUT", `/api/reviews/${encodeURIComponent(review.review_id)}/findings`,
        { version: review.written.version, findings: collected() })).body;
      review.written = body;
      renderFindings(body.findings);
      S.showNotice(tr("saved", { version: body.version }));
    } catch (error) {
      gate.failed(error);
    }
  }

  function toRfc3339(value) {
    const found = LOCAL.exec(value.trim());
    return found ? S.localToRfc3339(`${found[1]}T${found[2]}`, S.districtOffset()) : null;
  }

  async function load(query) {
    if (!gate.auth.active) return;
    try {
      const path = query.change ? `/api/reviews/level/${encodeURIComponent(query.change)}`
        : `/api/reviews?${new URLSearchParams({ from: query.from, to: query.to })}`;
      review = (await S.api("", "GET", path)).body;
      const url = new URL(window.location.href);
      url.search = new URLSearchParams(query.change ? { change: query.change } : { from: query.from, to: query.to }).toString();
      window.history.replaceState(null, "", url);
      $("#level-period").value = query.change || "";
      $("#from").value = when(review.from);
      $("#to").value = when(review.to);
      S.hideError();
      render();
    } catch (error) {
      gate.failed(error);
    }
  }

  function paintLevels() {
    const pick = $("#level-period");
    const chosen = pick.value;
    S.clear(pick).append(S.el("option", { value: "", text: tr("pickLevel") }), ...levels.map((p) =>
      S.el("option", { value: p.change_id, text: `${when(p.from)} – ${p.to ? when(p.to) : "…"} · ${tr("levelName", { level: levelOf(p.highest) })}` })));
    pick.value = chosen;
  }

  async function start() {
    levels = (await S.api("", "GET", "/api/reviews/levels")).body.periods;
    paintLevels();
    const asked = new URLSearchParams(window.location.search);
    if (asked.get("change")) await load({ change: asked.get("change") });
    else if (asked.get("from") && asked.get("to")) await load({ from: asked.get("from"), to: asked.get("to") });
    else if (levels.length) await load({ change: levels[0].change_id });
  }

  function init() {
    applyLabels(document);
    gate = R.gate("stats", async () => {
      try {
        await start();
      } catch (error) {
        gate.failed(error);
      }
    });
    $("#level-period").addEventListener("change", () => { if ($("#level-period").value) load({ change: $("#level-period").value }); });
    $("#period-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const from = toRfc3339($("#from").value);
      const to = toRfc3339($("#to").value);
      if (!from || !to) {
        S.showError(tr("badTime"));
        return;
      }
      load({ from, to });
    });
    $("#add-finding").addEventListener("click", () => {
      const rows = collected();
      rows.push({ finding: "", action: "", owner: "", due: "", done: false });
      renderFindings(rows);
    });
    $("#save-findings").addEventListener("click", save);
    $("#print").addEventListener("click", () => window.print());
    const resize = () => { for (const c of [chart, ...Object.values(charts)]) if (c) c.resize(); };
    window.addEventListener("resize", resize);
    window.addEventListener("beforeprint", resize);
    S.onLangChange(() => {
      applyLabels(document);
      paintLevels();
      if (review) {
        const rows = collected();
        render();
        renderFindings(rows);
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
