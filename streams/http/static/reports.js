/* Shared by the leadership view (/stats) and the daily duty report (/stats/daily): labels, sign-in
 * for the operations centre and the leadership, CSV files. */
"use strict";

(function () {
  const S = window.SOC;
  const LABELS = {
    zh: {
      title: "领导视图 · 部门考核", daily: "值班日报", dailyTitle: "值班日报", refresh: "刷新", print: "打印",
      signInHint: "运行中心或街道领导登录", notAllowed: "该账号不是运行中心或街道领导的账号",
      generated: "数据时间 {time}",
      "rates-7": "近 7 天部门指标（%）", "rates-30": "近 30 天部门指标（%）", trend: "近 30 天每日趋势（全街道）",
      "hourly-source": "近 48 小时每小时新开工单（按来源）", "hourly-severity": "近 48 小时每小时新开工单（按等级）",
      hotspots: "高发点位（近 30 天，按上报次数）", age: "在办工单时长分布",
      on_time_handling: "按时处置率", closure: "结案率", rework: "返工率", satisfaction: "满意率",
      accepted_on_time: "按时签收率", resolved_on_time: "按期办结率", followup: "回访率", sent_back: "发回重办率",
      dispatched: "派遣数", department: "部门", day: "日期", hour: "时段", place: "点位", reports: "上报次数",
      tickets: "工单数", bucket: "时长", lt1h: "<1 小时", "1to4h": "1–4 小时", "4to24h": "4–24 小时", "1to3d": "1–3 天",
      gt3d: ">3 天", counts: "告警统计（按来源、等级）", red: "红色告警及处置", overdue: "超时工单", rates: "当日部门指标",
      none: "无", total: "合计", source: "来源", severity: "等级", status: "状态", ticket: "工单",
      handling: "处置经过", missed: "超时环节", accept: "签收", resolve: "处置", community: "社区",
      reportTitle: "{district} 值班日报 · {date}", reportMeta: "统计 {from} 至 {to}（{tz}）· 生成于 {now}",
      reportsLine: "上报次数", csvSaved: "已导出 {name}", acceptDue: "签收时限", resolveDue: "处置时限",
    },
    en: {
      title: "Leadership view · department rates", daily: "Daily duty report", dailyTitle: "Daily duty report",
      refresh: "Refresh", print: "Print", signInHint: "Operations centre or leadership sign-in",
      notAllowed: "This account is not the operations centre's or the leadership's", generated: "As of {time}",
      "rates-7": "Department rates, last 7 days (%)", "rates-30": "Department rates, last 30 days (%)",
      trend: "Daily trend, last 30 days (whole district)", "hourly-source": "Tickets opened per hour, last 48 h (by source)",
      "hourly-severity": "Tickets opened per hour, last 48 h (by severity)", hotspots: "Hot spots (last 30 days, by reports)",
      age: "Open tickets by age", on_time_handling: "On-time handling", closure: "Closure", rework: "Rework",
      satisfaction: "Satisfaction", accepted_on_time: "Accepted on time", resolved_on_time: "Resolved on time",
      followup: "Follow-up", sent_back: "Sent back", dispatched: "Dispatched", department: "Department", day: "Day",
      hour: "Hour", place: "Place", reports: "Reports", tickets: "Tickets", bucket: "Age", lt1h: "< 1 h", "1to4h": "1–4 h",
      "4to24h": "4–24 h", "1to3d": "1–3 d", gt3d: "> 3 d", counts: "Alerts by source and severity",
      red: "Red alerts and their handling", overdue: "Overdue tickets", rates: "The day's department rates", none: "None",
      total: "Total", source: "Source", severity: "Severity", status: "Status", ticket: "Ticket", handling: "Handling",
      missed: "Missed", accept: "accept", resolve: "resolve", community: "Community",
      reportTitle: "{district} daily duty report · {date}", reportMeta: "From {from} to {to} ({tz}) · generated {now}",
      reportsLine: "Reports", csvSaved: "Saved {name}", acceptDue: "Accept by", resolveDue: "Resolve by",
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
    const a = S.el("a", { href: url, download: name });
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
    $("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const user = $("#user").value.trim();
      const password = $("#password").value;
      S.submitting(event.target, () => signIn(() => auth.login(user, password), S.signInFailed));
    });
    $("#signout").addEventListener("click", async () => {
      const out = auth.logout();
      showSignIn();
      try {
        await out;
      } catch (error) {
        S.showError(S.describeError(error));
      }
    });
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
