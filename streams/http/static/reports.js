/* Shared by the leadership view (/stats) and the daily duty report (/stats/daily): labels, sign-in
 * for the operations centre and the leadership, CSV files. */
"use strict";

(function () {
  const S = window.SOC;
  const LABELS = {
    zh: {
      title: "领导视图 · 部门考核", daily: "值班日报", dailyTitle: "值班日报", reviews: "复盘", refresh: "刷新", print: "打印",
      signInHint: "运行中心或街道领导登录", notAllowed: "该账号不是运行中心或街道领导的账号",
      generated: "数据时间 {time}",
      "rates-7": "近 7 天部门指标（%）", "rates-30": "近 30 天部门指标（%）", trend: "近 30 天每日趋势（全街道）",
      "hourly-source": "近 48 小时每小时新开工单（按来源）", "hourly-severity": "近 48 小时每小时新开工单（按等级）",
      hotspots: "高频上报点位（近 30 天，按上报次数）", age: "在办工单时长分布",
      "seasons-week": "季节规律：各周上报数（{from} 至 {to}，历年同周合计）", "seasons-hour": "季节规律：各时段上报数（0–23 时）",
      allCategories: "全部类别", week: "周次", weekLabel: "第{n}周", hourLabel: "{n}时", noHistory: "暂无记录",
      recurring: "高发点位地图（{radius} 米内同类问题近 {days} 天 {count} 次及以上，或近 {storms} 场风雨每场都有）",
      category: "类别", lat: "纬度", lon: "经度", recurringCount: "近期次数", stormsHit: "风雨期出现场数",
      openNow: "在办", lastDates: "最近发生", departments: "责任部门",
      on_time_handling: "按时处置率", closure: "结案率", rework: "返工率", satisfaction: "满意率",
      accepted_on_time: "按时签收率", resolved_on_time: "按期办结率", followup: "回访率", sent_back: "发回重办率",
      dispatched: "派遣数", department: "部门", day: "日期", hour: "时段", place: "点位", reports: "上报次数",
      tickets: "工单数", bucket: "时长", lt1h: "<1 小时", "1to4h": "1–4 小时", "4to24h": "4–24 小时", "1to3d": "1–3 天",
      gt3d: ">3 天", csvSaved: "已导出 {name}",
      // The daily duty report (daily.js)
      prevDay: "前一天", nextDay: "后一天", downloadPdf: "下载 PDF",
      badDay: "请按 YYYY-MM-DD 填写日期，如 2026-12-06",
      reportTitle: "{district}值班日报", reportDate: "{y}年{m}月{d}日 {weekday}",
      weekdays: "星期日,星期一,星期二,星期三,星期四,星期五,星期六",
      reportMeta: "统计时段（{period}） {from} 至 {to}（{tz}） · 生成于 {now}", periodDay: "全天", periodShift: "值班班次",
      officer: "值班员", leader: "带班领导", dutyLine: "{role}：{names}", stretch: "{name}（{from}–{to}）",
      summary: "一、总体情况", weather: "二、天气预警与应急响应", events: "三、红色、橙色事件及处置",
      overdue: "四、超时工单", openItems: "五、移交下一班的在办事项（红色、橙色）", rates: "六、部门当日指标",
      handovers: "七、交接班记录", noHandover: "当日未登记交接班", none: "无",
      summaryText: "全天新派工单 {total} 件，上报 {reports} 次；其中红色 {red} 件、橙色 {orange} 件、黄色 {yellow} 件、蓝色 {blue} 件。超时 {late} 件，移交下一班的红色、橙色在办事项 {open} 件。",
      levelAtStart: "零时应急响应：{level}", noLevel: "未启动", levelName: "{level}级应急响应",
      noWeather: "当日无天气预警，应急响应未调整。",
      officerSign: "值班员（签字）", leaderSign: "带班领导（签字）", signDate: "日期",
      total: "合计", source: "来源", severity: "等级", status: "状态", event: "事件", handling: "处置经过",
      missed: "超时环节", accept: "签收", resolve: "办结", community: "社区", reportsLine: "上报次数",
      dispatchedAt: "派单", standing: "当前情况", moreOpen: "另有 {n} 件未列出，见实时告警页。",
    },
    en: {
      title: "Leadership view · department rates", daily: "Daily duty report", dailyTitle: "Daily duty report", reviews: "Reviews",
      refresh: "Refresh", print: "Print", signInHint: "Operations centre or leadership sign-in",
      notAllowed: "This account is not the operations centre's or the leadership's", generated: "As of {time}",
      "rates-7": "Department rates, last 7 days (%)", "rates-30": "Department rates, last 30 days (%)",
      trend: "Daily trend, last 30 days (whole district)", "hourly-source": "Tickets opened per hour, last 48 h (by source)",
      "hourly-severity": "Tickets opened per hour, last 48 h (by severity)",
      hotspots: "Most-reported places (last 30 days, by reports)",
      "seasons-week": "Seasonal pattern: reports by week of the year ({from} to {to}, the same week of every year together)",
      "seasons-hour": "Seasonal pattern: reports by hour of the day (0–23 h)",
      allCategories: "All categories", week: "Week", weekLabel: "W{n}", hourLabel: "{n}h", noHistory: "no reports yet",
      recurring: "Recurring places (the same problem within {radius} m {count}+ times in {days} days, or in each of the last {storms} storms)",
      category: "Category", lat: "Latitude", lon: "Longitude", recurringCount: "Recent count", stormsHit: "Storms with reports",
      openNow: "Open", lastDates: "Last dates", departments: "Departments",
      age: "Open tickets by age", on_time_handling: "On-time handling", closure: "Closure", rework: "Rework",
      satisfaction: "Satisfaction", accepted_on_time: "Accepted on time", resolved_on_time: "Resolved on time",
      followup: "Follow-up", sent_back: "Sent back", dispatched: "Dispatched", department: "Department", day: "Day",
      hour: "Hour", place: "Place", reports: "Reports", tickets: "Tickets", bucket: "Age", lt1h: "< 1 h", "1to4h": "1–4 h",
      "4to24h": "4–24 h", "1to3d": "1–3 d", gt3d: "> 3 d", csvSaved: "Saved {name}",
      prevDay: "Previous day", nextDay: "Next day", downloadPdf: "Download PDF",
      badDay: "Write the day as YYYY-MM-DD, e.g. 2026-12-06",
      reportTitle: "{district} daily duty report", reportDate: "{weekday} {d} {month} {y}",
      weekdays: "Sunday,Monday,Tuesday,Wednesday,Thursday,Friday,Saturday",
      months: "January,February,March,April,May,June,July,August,September,October,November,December",
      reportMeta: "{period}: from {from} to {to} ({tz}) · generated {now}", periodDay: "Whole day", periodShift: "Duty shift",
      officer: "Duty officer", leader: "Leader on duty", dutyLine: "{role}: {names}", stretch: "{name} ({from}–{to})",
      summary: "1. Overview", weather: "2. Weather warnings and emergency response", events: "3. Red and orange events and their handling",
      overdue: "4. Tickets past a deadline", openItems: "5. Open red and orange items handed over", rates: "6. The day's department rates",
      handovers: "7. Shift handovers", noHandover: "No handover recorded that day", none: "None",
      summaryText: "{total} tickets dispatched, {reports} reports: {red} red, {orange} orange, {yellow} yellow, {blue} blue. {late} past a deadline; {open} open red and orange items handed over.",
      levelAtStart: "Emergency response at midnight: {level}", noLevel: "none", levelName: "level {level} emergency response",
      noWeather: "No weather warning that day; the emergency response level did not change.",
      officerSign: "Duty officer (signature)", leaderSign: "Leader on duty (signature)", signDate: "Date",
      total: "Total", source: "Source", severity: "Severity", status: "Status", event: "Event", handling: "Handling",
      missed: "Missed", accept: "accept", resolve: "resolve", community: "Community", reportsLine: "Reports",
      dispatchedAt: "Dispatched", standing: "Where it stands", moreOpen: "{n} more not listed: see the live board.",
    },
  };

  function tr(key, vars) {
    const table = LABELS[S.getLang() === "en" ? "en" : "zh"];
    const text = Object.prototype.hasOwnProperty.call(table, key) ? table[key] : key;
    return text.replace(/\{(\w+)\}/g, (_m, name) => (vars && name in vars ? String(vars[name]) : ""));
  }

  function applyLabels(root) {
    for (const node of root.querySelectorAll("[data-i18n-stats]")) node.textContent = tr(node.dataset.i18nStats);
  }

  /** A CSV (RFC 4180, UTF-8 with a BOM so spreadsheet programs read the Chinese) of a header and rows. */
  function csv(columns, rows) {
    const cell = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
    };
    return "\ufeff" + [columns, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
  }

  function download(name, text) {
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
    const a = S.el("a", { download: name });
    // Not through S.el: it masks attribute values, and a hyphenated run of the object URL's UUID (with the
    // port) can read as a split phone number, which would point the link at no Blob and fail the download.
    a.href = url;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  /** Sign-in for these pages: a person of the operations centre or the leadership (user name and password;
   * a reload keeps the session). `onStart(district)` draws the page; `gate(...).failed(error)` handles an
   * API error (a 401: the session ended, back to the form). */
  function gate(kind, onStart) {
    const auth = S.account(kind);
    const $ = (s) => document.querySelector(s);
    function showSignIn(message) {
      $("#main").hidden = true;
      $("#signout").hidden = true;
      S.paintWho($("#who"), null);
      $("#signin").hidden = false;
      $("#password").value = "";
      if (message) S.showError(message);
      ($("#user").value ? $("#password") : $("#user")).focus();
    }
    const resume = () => auth.resume();
    async function signIn(how, failed) {
      try {
        const district = await how();
        S.setDistrict(district);
        if (district.department !== "ops_centre" && district.department !== "district_leadership") {
          if (how !== resume) await auth.logout().catch(() => {});   // just signed in, not for this page
          throw new S.ApiError(403, tr("notAllowed"), { error: tr("notAllowed") });
        }
        S.paintWho($("#who"), district);
        S.hideError();
        $("#signin").hidden = true;
        $("#main").hidden = false;
        $("#signout").hidden = false;
        await onStart(district);
      } catch (error) {
        auth.forget();
        showSignIn(failed(error));
      }
    }
    function apiFailed(error) {
      if (error instanceof S.ApiError && error.status === 401) {
        auth.forget();
        showSignIn(S.sessionEnded(error));
        return;
      }
      S.showError(S.describeError(error));
    }
    S.wireSignIn(auth, signIn, () => showSignIn());
    $("#error .close").addEventListener("click", S.hideError);
    S.applyI18n(document);
    applyLabels(document);
    S.bindLangToggle($("#lang"));
    S.onLangChange(() => {
      S.applyI18n(document);
      applyLabels(document);
      if (auth.active) S.paintWho($("#who"), auth.district);
    });
    signIn(resume, (error) => (error instanceof S.ApiError && error.status === 401 ? "" : S.describeError(error)));
    return { auth, showSignIn, failed: apiFailed };
  }

  window.SOC_REPORTS = { tr, applyLabels, csv, download, gate };
})();
