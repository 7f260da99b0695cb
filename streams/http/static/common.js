/* Shared by the board and the inbox: i18n, personal data masking, safe text, time formatting, the API helper.
 * Plain ES2020, no build step, no external resources. Everything hangs off window.SOC.
 *
 * Rule for both pages: text that comes from a ticket or an API response is only ever put into the
 * page through SOC.text()/SOC.el() (textContent, after masking personal data), never via innerHTML. */
"use strict";

(function () {
  // ---------------------------------------------------------------- personal data masking
  // The rules of handlers/privacy.py (its docstring explains them), step for step, on code points:
  // tests/unit/test_privacy.py runs both on the same texts.
  const MAX_GAP = 5;
  const NUMERALS = new Map([["幺", "1"]]);
  for (const set of ["〇一二三四五六七八九", "零壹贰叁肆伍陆柒捌玖", "零壹貳參肆伍陸柒捌玖"]) {
    Array.from(set).forEach((c, i) => NUMERALS.set(c, String(i)));
  }
  const SEPARATOR = /^[\t\n\v\f\r−.．·・、/／()（）\p{Zs}\p{Zl}\p{Zp}\p{Cf}\p{Pd}]$/u;
  const DECIMAL_DIGIT = /^\p{Nd}$/u;
  const CHECK_X = "XxＸｘ";
  const DAY = "(?:0[1-9]|[12]\\d|3[01])";
  const MONTH = "(?:0[1-9]|1[0-2])";
  const ID = new RegExp(`^[1-8]\\d{5}(?:(?:18|19|20)\\d\\d${MONTH}${DAY}\\d{3}[\\dX]|\\d\\d${MONTH}${DAY}\\d{3})$`);
  const DATE = new RegExp(`^(?:19|20)\\d\\d${MONTH}${DAY}$`);
  const MOBILE = /^(?:0086|86|0)?(1[3-9]\d)\d{4}(\d{4})$/;
  const LANDLINE = /^(0(?:[12]\d|[3-9]\d\d))\d{3,4}(\d{4})$/;
  const LOCAL = /^[2-9]\d{3}(\d{4})$/;
  const DIGIT = `[\\p{Nd}${[...NUMERALS.keys()].join("")}]`;
  const DECIMAL = new RegExp(`(?<!${DIGIT}[.．])(?<!${DIGIT})(${DIGIT}+)[.．]${DIGIT}+(?![.．]?${DIGIT})`, "gu");
  const EMAIL = /(?<![A-Za-z0-9._%+-])([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*[@＠]([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)/g;

  /** A digit of any script (decimal digits come in runs of ten from their zero) or a Chinese numeral, as
   * ASCII; null for anything else. */
  function digitOf(ch) {
    if (NUMERALS.has(ch)) return NUMERALS.get(ch);
    if (!DECIMAL_DIGIT.test(ch)) return null;
    const code = ch.codePointAt(0);
    let zero = code;
    while (DECIMAL_DIGIT.test(String.fromCodePoint(zero - 1))) zero -= 1;
    return String((code - zero) % 10);
  }

  /** The text with each decimal number's characters as _ (no digit, no separator), in their places. */
  function withoutDecimals(text) {
    return text.replace(DECIMAL, (whole, integer) => {
      const digits = Array.from(integer);
      return digits.length === 1 || digitOf(digits[0]) !== "0" ? "_".repeat(Array.from(whole).length) : whole;
    });
  }

  function runsOf(chars) {
    const runs = [];
    const n = chars.length;
    let i = 0;
    while (i < n) {
      if (digitOf(chars[i]) === null) { i += 1; continue; }
      const run = [{ value: digitOf(chars[i]), at: i, startsGroup: true }];
      for (;;) {
        let j = i + 1;
        while (j < n && j - i - 1 < MAX_GAP && SEPARATOR.test(chars[j])) j += 1;
        const gap = chars.slice(i + 1, j).join("");
        if (!gap && j < n && CHECK_X.includes(chars[j])) {
          run.push({ value: "X", at: j, startsGroup: true });
          i = j + 1;
          break;
        }
        if (j >= n || digitOf(chars[j]) === null) {
          i = j;
          break;
        }
        run.push({ value: digitOf(chars[j]), at: j, startsGroup: Boolean(gap) });
        i = j;
      }
      runs.push(run);
    }
    return runs;
  }

  function numbersOf(run) {
    const values = run.map((d) => d.value).join("");
    const bounds = new Set(run.flatMap((d, k) => (d.startsGroup ? [k] : [])).concat([run.length]));
    const taken = run.map(() => false);
    const found = [];
    const free = (start, end) => !taken.slice(start, end).some(Boolean);
    function claim(lengths, fits) {
      for (let start = 0; start < run.length; start += 1) {
        if (!bounds.has(start) || taken[start]) continue;
        for (const end of lengths.map((length) => start + length)) {
          const number = bounds.has(end) && free(start, end) ? fits(start, end) : null;
          if (number) {
            found.push(number);
            for (let k = start; k < end; k += 1) taken[k] = true;
            break;
          }
        }
      }
    }
    const identity = (start, end) => {
      const digits = values.slice(start, end);
      return ID.test(digits) ? { start, end, masked: `${digits.slice(0, 6)}${"*".repeat(end - start - 8)}${digits.slice(-2)}`, opening: "" } : null;
    };
    const date = (start, end) => {
      const cuts = [...bounds].filter((k) => start < k && k < end).sort((a, b) => a - b);
      if (cuts.length && !(cuts.length === 2 && cuts[0] === start + 4 && cuts[1] - cuts[0] <= 2 && end - cuts[1] <= 2)) return null;
      const edges = [start, ...cuts, end];
      const padded = cuts.concat([end]).map((b, k) => values.slice(edges[k], b).padStart(2, "0")).join("");
      return DATE.test(padded) ? { start, end, masked: null, opening: "" } : null;
    };
    const phone = (pattern, form, opening) => (start, end) => {
      const m = values.slice(start, end).match(pattern);
      return m ? { start, end, masked: form(m), opening } : null;
    };
    claim([18, 15], identity);
    claim([15, 13, 12, 11], phone(MOBILE, (m) => `${m[1]}****${m[2]}`, "+＋"));
    claim([12, 11, 10], phone(LANDLINE, (m) => `${m[1]}-****${m[2]}`, "(（"));
    claim([8, 7, 6], date);
    claim([8], phone(LOCAL, (m) => `****${m[1]}`, ""));
    return found.sort((a, b) => a.start - b.start);
  }

  function maskNumbers(text) {
    const chars = Array.from(text);
    let out = "";
    let last = 0;
    for (const run of runsOf(Array.from(withoutDecimals(text)))) {
      for (const number of numbersOf(run)) {
        if (number.masked === null) continue;
        let begin = run[number.start].at;
        if (begin > last && number.opening.includes(chars[begin - 1])) begin -= 1;
        out += chars.slice(last, begin).join("") + number.masked;
        last = run[number.end - 1].at + 1;
      }
    }
    return out + chars.slice(last).join("");
  }

  /** Phone numbers, resident ID numbers and e-mail addresses in a value, masked. */
  function maskPersonal(value) {
    if (value === null || value === undefined) return "";
    let text = String(value).replace(EMAIL, (_, first, domain) => `${first}***@${domain}`);
    for (let masked = maskNumbers(text); masked !== text; masked = maskNumbers(text)) text = masked;
    return text;
  }

  // ---------------------------------------------------------------- safe DOM helpers
  /** Set an element's text (masked). Never interprets markup. */
  function text(node, value) {
    node.textContent = maskPersonal(value);
    return node;
  }

  /** Create an element: el("div", {class: "x", dataset: {a: 1}, title: "..."}, child | "text", ...).
   * String children become text nodes (masked); attributes are set with setAttribute (masked). */
  function el(tag, attrs, ...children) {
    const SVG_NS = "http://www.w3.org/2000/svg";
    const svgTags = new Set(["svg", "g", "path", "polygon", "circle", "text", "title", "rect", "line"]);
    const node = svgTags.has(tag) ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") {
        for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) node.dataset[k] = String(v);
      } else if (key === "on") {
        for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
      } else if (key === "text") {
        text(node, value);
      } else if (key.startsWith("on")) {
        throw new Error(`use {on: {...}} for handlers, not ${key}`);
      } else {
        node.setAttribute(key, value === true ? "" : maskPersonal(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(maskPersonal(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  /** Replace a node's children; null/false children are skipped, strings become (masked) text. */
  function fill(node, ...children) {
    clear(node);
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(maskPersonal(child)));
    }
    return node;
  }

  // ---------------------------------------------------------------- i18n
  const LABELS = {
    zh: {
      source: { traffic: "交通", flood: "三防", city: "城市管理", construction: "建设工地" },
      severity: { red: "红色 Ⅰ级", orange: "橙色 Ⅱ级", yellow: "黄色 Ⅲ级", blue: "蓝色 Ⅳ级" },
      severityShort: { red: "红", orange: "橙", yellow: "黄", blue: "蓝" },
      status: { dispatched: "待签收", accepted: "处置中", resolved: "待核查", closed: "已结案", returned: "已退回" },
      escalation: { none: "", reminded: "催办", escalated: "督办", reported: "通报" },
      category: {
        traffic_accident: "交通事故", traffic_congestion: "交通拥堵", traffic_violation: "交通违法",
        traffic_facility: "交通设施故障", road_obstruction: "道路障碍",
        flood_water_level: "水位超警", flood_rainfall: "强降雨", flood_waterlogging: "内涝积水",
        flood_pump_station: "泵站故障", typhoon: "台风预警",
        city_sanitation: "环境卫生", city_street_order: "街面秩序", city_facility: "市政设施",
        city_noise: "噪声扰民", city_illegal_construction: "违法建设", city_road_damage: "道路破损",
        city_manhole: "井盖缺失", city_other: "其他城市管理",
        site_unregistered: "未报备工地", site_out_of_hours: "超时段施工", site_permit_invalid: "许可失效",
        site_safety: "施工安全隐患", site_noise: "施工噪声", site_dust: "扬尘超标", flood_device_offline: "三防设备离线",
        site_device_offline: "工地设备离线",
      },
      action: { notified: "通知" },
      ui: {
        title: "智慧运行中心 · 实时告警", inboxTitle: "部门工单",
        connected: "已连接", reconnecting: "重连中…", connecting: "连接中…", offline: "未连接",
        all: "全部", source: "来源", severity: "等级", department: "部门", community: "社区",
        status: "状态", open: "在办", map: "辖区地图", alerts: "告警列表",
        signIn: "登录", signOut: "退出", token: "令牌", userName: "用户名", password: "密码",
        signInHint: "运行中心登录", inboxSignInHint: "部门工单登录", wallSignIn: "大屏令牌",
        wallHint: "大屏只读令牌", userSignIn: "用户登录", badToken: "令牌无效", notWall: "该令牌不是大屏的只读令牌",
        sessionEnded: "登录已失效，请重新登录", signInFailed: "登录失败", noBoard: "该账号不能查看实时告警",
        chatClaimTitle: "绑定钉钉/企业微信/飞书账号", chatClaimCode: "绑定码", chatClaimBind: "绑定",
        chatClaimDone: "已绑定", dingtalk: "钉钉", wecom: "企业微信", feishu: "飞书",
        wallUser: "大屏（只读）",
        overdue: "超时", acceptIn: "签收剩余", resolveIn: "处置剩余", due: "时限",
        verify: "核查通过", rework: "返工", redispatch: "改派", reworkNote: "返工原因", submit: "提交", cancel: "取消",
        followup_satisfied: "回访：满意", followup_basically_satisfied: "回访：基本满意",
        followup_unsatisfied: "回访：不满意（发回重办）", followup_unreachable: "回访：未接通", followupDue: "回访时限",
        sourceCleared: "数据已恢复正常（待核查）", relatedTickets: "关联", relatedCause: "起因", relatedEffect: "影响",
        approve: "批准延期", reject: "驳回延期", extensionPending: "延期申请中", until: "延至",
        accept: "签收", resolve: "处置反馈", return: "退回", extend: "申请延期",
        supportAccept: "签收协办", supportFeedback: "协办反馈", supportFeedbackNote: "协办情况", dispute: "派单异议",
        disputeReason: "异议理由", ruleUphold: "维持原派单", ruleReassign: "异议成立，改派建议单位",
        note: "备注", resolution: "处置结果", reason: "原因", by: "处理人",
        history: "处理记录", noTickets: "暂无工单", noAlerts: "暂无告警", occurrences: "次",
        queued: "已提交，等待处理", done: "已完成",
        outside: "辖区外", lastUpdate: "更新于", reworks: "返工", returns: "退回",
        description: "描述", dispatchedAt: "派遣", observedAt: "发生",
        networkError: "网络错误：无法连接服务器",
        // silences (屏蔽) and the emergency-response level (应急响应)
        silenceSimilar: "屏蔽类似告警", silenceBanner: "屏蔽中 {n} 条", silenceUntil: "至 {time}",
        showList: "展开", hideList: "收起", endSilence: "立即结束", silenceEnded: "屏蔽已结束：{comment}",
        silenceCreated: "已屏蔽，至 {time}", matchers: "匹配条件", duration: "时长", mode: "方式",
        comment: "说明", commentHint: "屏蔽原因，如：泵站计划检修", silenceSubmit: "屏蔽",
        silenced: "已屏蔽", silencedTitle: "已屏蔽的告警（近 24 小时）", noSilenced: "暂无被屏蔽的告警",
        alertTitle: "告警", sourceRef: "来源编号", silenceId: "屏蔽编号", createdBy: "创建",
        quietTicket: "静默", quietUntil: "静默至 {time}（{id}）",
        minutes: "{n} 分钟", hours: "{n} 小时", days: "{n} 天",
        responseControl: "应急响应", setLevel: "发布", responseSince: "自 {time}",
        responseSet: "应急响应已调整：{level}", responseAuto: "按响应规则自动", responseManual: "人工",
      },
      role: { clerk: "经办人", supervisor: "科室负责人", duty_officer: "值班员", leader: "街道领导", admin: "管理员",
        service: "服务凭据" },
      matcher: { source: "来源", category: "类别", subcategory: "子类", severity: "等级", community: "社区",
        department: "部门", ref: "站点/设施" },
      silenceMode: { suppress: "屏蔽（不立案）", quiet: "静默（立案不通知）" },
      responseLevel: { I: "I级应急响应", II: "II级应急响应", III: "III级应急响应", IV: "IV级应急响应",
        none: "不启动（解除）" },
    },
    en: {
      source: { traffic: "Traffic", flood: "Flood", city: "City", construction: "Construction" },
      severity: { red: "Red (I)", orange: "Orange (II)", yellow: "Yellow (III)", blue: "Blue (IV)" },
      severityShort: { red: "I", orange: "II", yellow: "III", blue: "IV" },
      status: { dispatched: "Dispatched", accepted: "Accepted", resolved: "Resolved", closed: "Closed", returned: "Returned" },
      escalation: { none: "", reminded: "Reminded", escalated: "Escalated", reported: "Reported" },
      category: {
        traffic_accident: "Traffic accident", traffic_congestion: "Congestion", traffic_violation: "Traffic violation",
        traffic_facility: "Traffic facility fault", road_obstruction: "Road obstruction",
        flood_water_level: "Water level", flood_rainfall: "Heavy rainfall", flood_waterlogging: "Waterlogging",
        flood_pump_station: "Pump station", typhoon: "Typhoon signal",
        city_sanitation: "Sanitation", city_street_order: "Street order", city_facility: "Public facility",
        city_noise: "Noise", city_illegal_construction: "Illegal construction", city_road_damage: "Road damage",
        city_manhole: "Manhole cover", city_other: "Other city issue",
        site_unregistered: "Unregistered site", site_out_of_hours: "Out-of-hours work",
        site_permit_invalid: "Permit invalid", site_safety: "Site safety", site_noise: "Site noise",
        site_dust: "Dust", flood_device_offline: "Flood device offline", site_device_offline: "Site device offline",
      },
      action: { notified: "Notified" },
      ui: {
        title: "Operations centre · live alerts", inboxTitle: "Department inbox",
        connected: "Connected", reconnecting: "Reconnecting…", connecting: "Connecting…", offline: "Offline",
        all: "All", source: "Source", severity: "Severity", department: "Department", community: "Community",
        status: "Status", open: "open", map: "District map", alerts: "Alerts",
        signIn: "Sign in", signOut: "Sign out", token: "Token", userName: "User name", password: "Password",
        signInHint: "Operations centre sign-in", inboxSignInHint: "Department inbox sign-in",
        wallSignIn: "Wall screen token", wallHint: "The wall screen's read-only token", userSignIn: "Sign in as a user",
        badToken: "Unknown token", notWall: "This is not the wall screen's read-only token",
        chatClaimTitle: "Bind your DingTalk, WeCom or Feishu account", chatClaimCode: "Binding code",
        chatClaimBind: "Bind", chatClaimDone: "Bound", dingtalk: "DingTalk", wecom: "WeCom", feishu: "Feishu",
        sessionEnded: "Your session has ended: sign in again", signInFailed: "Sign-in failed",
        noBoard: "This account may not watch the board", wallUser: "Wall screen (read-only)",
        overdue: "Overdue", acceptIn: "Accept in", resolveIn: "Resolve in", due: "Due",
        verify: "Verify", rework: "Rework", redispatch: "Redispatch", reworkNote: "Reason for rework", submit: "Submit", cancel: "Cancel",
        followup_satisfied: "Follow-up: satisfied", followup_basically_satisfied: "Follow-up: basically satisfied",
        followup_unsatisfied: "Follow-up: unsatisfied (send back)", followup_unreachable: "Follow-up: unreachable",
        followupDue: "Follow-up due",
        sourceCleared: "Source back to normal (verify to close)", relatedTickets: "Related",
        relatedCause: "caused by", relatedEffect: "causes",
        approve: "Approve extension", reject: "Reject extension", extensionPending: "Extension requested",
        until: "until", accept: "Accept", resolve: "Resolve", return: "Return", extend: "Ask extension",
        supportAccept: "Accept our part", supportFeedback: "Report our part", supportFeedbackNote: "What we did",
        dispute: "Dispute dispatch", disputeReason: "Why it is not ours", ruleUphold: "Uphold dispatch",
        ruleReassign: "Reassign as suggested",
        note: "Note", resolution: "Resolution", reason: "Reason", by: "Handled by",
        history: "History", noTickets: "No tickets", noAlerts: "No alerts", occurrences: "×",
        queued: "Submitted; waiting for the worker", done: "Done",
        outside: "Outside the district", lastUpdate: "Updated", reworks: "Reworks", returns: "Returns",
        description: "Description", dispatchedAt: "Dispatched", observedAt: "Observed",
        networkError: "Network error: cannot reach the server",
        silenceSimilar: "Silence similar", silenceBanner: "{n} active silence(s)", silenceUntil: "until {time}",
        showList: "Show", hideList: "Hide", endSilence: "End now", silenceEnded: "Silence ended: {comment}",
        silenceCreated: "Silenced until {time}", matchers: "Match", duration: "Duration", mode: "Mode",
        comment: "Comment", commentHint: "Why, e.g. planned pump maintenance", silenceSubmit: "Silence",
        silenced: "Silenced", silencedTitle: "Silenced alerts (last 24 h)", noSilenced: "Nothing silenced",
        alertTitle: "Alert", sourceRef: "Source ref", silenceId: "Silence", createdBy: "by",
        quietTicket: "Quiet", quietUntil: "quiet until {time} ({id})",
        minutes: "{n} min", hours: "{n} h", days: "{n} d",
        responseControl: "Emergency response", setLevel: "Set", responseSince: "since {time}",
        responseSet: "Response level set: {level}", responseAuto: "automatic, by the response rules", responseManual: "manual",
      },
      role: { clerk: "Clerk", supervisor: "Supervisor", duty_officer: "Duty officer", leader: "Leader", admin: "Administrator",
        service: "Service credential" },
      matcher: { source: "Source", category: "Category", subcategory: "Subcategory", severity: "Severity",
        community: "Community", department: "Department", ref: "Station/site" },
      silenceMode: { suppress: "Suppress (no ticket)", quiet: "Quiet (ticket, no notification)" },
      responseLevel: { I: "Level I emergency response", II: "Level II emergency response",
        III: "Level III emergency response", IV: "Level IV emergency response", none: "None (stand down)" },
    },
  };

  const LANG_KEY = "soc.lang";
  let lang = (() => {
    try { return localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh"; } catch (_e) { return "zh"; }
  })();
  const langListeners = [];

  function getLang() { return lang; }

  function setLang(value) {
    lang = value === "en" ? "en" : "zh";
    try { localStorage.setItem(LANG_KEY, lang); } catch (_e) { /* private mode */ }
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    applyI18n(document);
    for (const listener of langListeners) listener(lang);
  }

  function onLangChange(listener) { langListeners.push(listener); }

  /** label("status", "closed") in the current language; falls back to the raw value. */
  function label(group, key) {
    const table = LABELS[lang][group] || {};
    return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : (key === null || key === undefined ? "" : String(key));
  }

  function t(key) { return label("ui", key); }

  /** Fill [data-i18n="key"] elements and [data-i18n-placeholder] attributes. */
  function applyI18n(root) {
    for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
    for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  }

  /** A history entry's action ("verified and closed", "extension approved until …", "催办 reminder"). */
  /** A history entry in words, in the page's language, as the server says it (handlers/wording.py): local
   * time, display names. Empty for a ticket from the live stream, which carries the record only; the pages
   * read the words from the ticket API. Masked here too, like every text the pages show. */
  function historyText(entry) {
    return maskPersonal((lang === "en" ? entry.text_en : entry.text) || "");
  }

  // District data from /api/district: names for departments and communities.
  let district = { name: "", timezone: "Asia/Shanghai", communities: {}, departments: {} };

  function setDistrict(value) { district = value || district; }
  function getDistrict() { return district; }

  function departmentName(id) {
    const dept = district.departments[id];
    if (!dept) return id || "";
    return lang === "en" ? (dept.name_en || dept.name || id) : (dept.name || id);
  }

  function communityName(id) {
    if (!id) return t("outside");
    const community = district.communities[id];
    if (lang === "en" || !community) return id.charAt(0).toUpperCase() + id.slice(1);
    return community.name || id;
  }

  // ---------------------------------------------------------------- time
  const formatters = new Map();
  function formatter(kind) {
    const tz = district.timezone || "Asia/Shanghai";
    const key = `${kind}|${tz}`;
    if (!formatters.has(key)) {
      const options = kind === "time"
        ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }
        : { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
      formatters.set(key, new Intl.DateTimeFormat("en-GB", { timeZone: tz, ...options }));
    }
    return formatters.get(key);
  }

  /** HH:MM:SS in the district's time zone. */
  function clock(value) {
    const date = value instanceof Date ? value : new Date(value);
    return Number.isNaN(date.getTime()) ? "" : formatter("time").format(date);
  }

  /** YYYY-MM-DD HH:MM:SS in the district's time zone. */
  function dateTime(value) {
    const date = value instanceof Date ? value : new Date(value);
    if (Number.isNaN(date.getTime())) return "";
    const parts = Object.fromEntries(formatter("date").formatToParts(date).map((p) => [p.type, p.value]));
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
  }

  /** A duration in ms as "1d 02:03:04" / "02:03:04" / "03:04". */
  function duration(ms) {
    let s = Math.floor(Math.abs(ms) / 1000);
    const days = Math.floor(s / 86400); s -= days * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    const pad = (n) => String(n).padStart(2, "0");
    const hms = h || days ? `${pad(h)}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
    return days ? `${days}d ${hms}` : hms;
  }

  /** The SLA a ticket is running against: {stage, due (ms)} or null when no clock runs. */
  function slaOf(ticket) {
    if (ticket.status === "dispatched") return { stage: "accept", due: Date.parse(ticket.accept_due) };
    if (ticket.status === "accepted") return { stage: "resolve", due: Date.parse(ticket.resolve_due) };
    return null;
  }

  /** Fill an element with the countdown text for `ticket` (now = Date.now()). */
  function renderSla(node, ticket, now) {
    const sla = slaOf(ticket);
    if (!sla || Number.isNaN(sla.due)) {
      node.textContent = "";
      node.dataset.state = "none";
      return;
    }
    const left = sla.due - (now || Date.now());
    if (left < 0) {
      node.textContent = `${t("overdue")}${lang === "en" ? " " : ""}${duration(left)}`;
      node.dataset.state = "overdue";
    } else {
      node.textContent = `${t(sla.stage === "accept" ? "acceptIn" : "resolveIn")} ${duration(left)}`;
      node.dataset.state = left < 5 * 60 * 1000 ? "soon" : "ok";
    }
  }

  // ---------------------------------------------------------------- API
  const TOKEN_KEY = "soc.token";
  const SAFE_METHODS = ["GET", "HEAD"];
  const CSRF_HEADER = "X-CSRF-Token";
  let csrf = "";   // the signed-in session's CSRF token (see account() below)

  function session(kind) {
    const get = (key) => { try { return sessionStorage.getItem(`${key}.${kind}`) || ""; } catch (_e) { return ""; } };
    const set = (key, value) => {
      try {
        if (value) sessionStorage.setItem(`${key}.${kind}`, value); else sessionStorage.removeItem(`${key}.${kind}`);
      } catch (_e) { /* private mode: the page keeps working until reload */ }
    };
    return {
      get token() { return get(TOKEN_KEY); },
      set token(value) { set(TOKEN_KEY, value); },
    };
  }

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  /** Human-readable text of an API error: the server's message, field errors and status. */
  function describeError(error) {
    if (!(error instanceof ApiError)) return String(error && error.message ? error.message : error);
    if (error.status === 0) return `${t("networkError")} (${error.message})`;
    const body = error.body || {};
    let message = `${error.status}: ${body.error || error.message}`;
    if (Array.isArray(body.fields) && body.fields.length) {
      message += " — " + body.fields.map((f) => `${f.loc}: ${f.msg}`).join("; ");
    }
    if (body.status) message += ` [${label("status", body.status)}]`;
    return message;
  }

  /** fetch() as the signed-in person (the session cookie, and the CSRF token on a state change) or with a
   * bearer token (the wall screen's); resolves to {status, body}; rejects with ApiError on non-2xx. */
  async function api(token, method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (csrf && !SAFE_METHODS.includes(method)) headers[CSRF_HEADER] = csrf;
    const init = { method, headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return send(path, init);
  }

  /** A multipart form (a photo: POST /api/tickets/{id}/evidence) sent as api() sends JSON: the browser sets
   * the form's Content-Type with its boundary; the CSRF token goes with it. */
  async function upload(token, path, form) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    else if (csrf) headers[CSRF_HEADER] = csrf;
    return send(path, { method: "POST", headers, body: form, cache: "no-store", credentials: "same-origin" });
  }

  async function send(path, init) {
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, String(error && error.message ? error.message : error), null);
    }
    let payload = null;
    const raw = await response.text();
    if (raw) {
      try { payload = JSON.parse(raw); } catch (_e) { payload = { error: raw.slice(0, 500) }; }
    }
    if (!response.ok) {
      throw new ApiError(response.status, (payload && payload.error) || response.statusText || "request failed", payload);
    }
    return { status: response.status, body: payload };
  }

  // ---------------------------------------------------------------- signing in
  // A person signs in with a user name and password (POST /api/login): the session is an HttpOnly cookie
  // the page never sees, and every POST/PATCH/DELETE carries the session's CSRF token, held here in memory
  // only and read again from GET /api/district after a reload (the cookie outlives the page, so a reload
  // does not ask again). The board's wall screen signs in with its read-only token instead (sessionStorage).
  function account(kind) {
    const store = session(kind);
    let district = null;   // the last GET /api/district: who is signed in, and what they may do
    return {
      /** The wall screen's token; "" when a person is signed in (their cookie speaks for them). */
      get token() { return store.token; },
      get district() { return district; },
      get user() { return district ? district.user : null; },
      get active() { return district !== null; },
      get wall() { return Boolean(district && district.read_only); },
      /** May the signed-in person take this ticket action ("verify", "extend_decision", ...)? */
      can(action) { return Boolean(district && (district.actions || []).includes(action)); },
      /** ... or use this control ("manage_silences", "set_response", ...)? (handlers/permissions.py) */
      may(capability) { return Boolean(district && (district.capabilities || []).includes(capability)); },
      /** Whoever the cookie (or the wall token) names: the district JSON; ApiError 401 when nobody. */
      async resume() {
        const found = (await api(store.token, "GET", "/api/district")).body;
        csrf = store.token ? "" : (found.csrf || "");
        district = found;
        return found;
      },
      async login(user, password) {
        store.token = "";
        district = null;
        await api("", "POST", "/api/login", { user, password });
        return this.resume();
      },
      async useToken(token) {
        store.token = token;
        district = null;
        try {
          return await this.resume();
        } catch (error) {
          if (!(error instanceof ApiError) || (error.status !== 0 && error.status < 500)) store.token = "";
          throw error;
        }
      },
      /** Sign out: the server ends a person's session; a wall token is just forgotten. The page is signed
       * out at once (the request carries the CSRF token it had); the promise settles with the server's answer. */
      async logout() {
        const request = district !== null && !store.token ? api("", "POST", "/api/logout") : null;
        district = null;
        store.token = "";
        csrf = "";
        if (request) await request;
      },
      /** The server said 401: nobody is signed in any more. */
      forget() {
        district = null;
        store.token = "";
        csrf = "";
      },
    };
  }

  /** Run a sign-in from `form` with its submit button disabled until it settles (no second request racing
   * the first, whose answer clears the password field). */
  function submitting(form, run) {
    const button = form.querySelector("button[type=submit]");
    if (button.disabled) return Promise.resolve();
    button.disabled = true;
    return Promise.resolve().then(run).finally(() => { button.disabled = false; });
  }

  /** A page's sign-in form and sign-out button. `signIn(login, failed)` runs the form's user and password
   * through the page's own sign-in; `signedOut(wall)` clears the page and shows the form at once, before the
   * server has answered (`wall`: whether it was the wall screen's token that signed out). */
  function wireSignIn(auth, signIn, signedOut) {
    document.querySelector("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const user = document.querySelector("#user").value.trim();
      const password = document.querySelector("#password").value;
      submitting(event.target, () => signIn(() => auth.login(user, password), signInFailed));
    });
    document.querySelector("#signout").addEventListener("click", async () => {
      const wall = auth.wall;
      const out = auth.logout();
      signedOut(wall);
      try {
        await out;
      } catch (error) {
        showError(describeError(error));   // the server is unreachable: the form is back all the same
      }
    });
  }

  /** The message for a 401 in the middle of work: the session ended (expired, signed out elsewhere). */
  function sessionEnded(error) {
    return `${t("sessionEnded")} (${describeError(error)})`;
  }

  /** The message for a refused sign-in: the server's own words (wrong password, locked, disabled). */
  function signInFailed(error) {
    if (error instanceof ApiError && error.status !== 0 && error.body && error.body.error) {
      const wait = error.body.retry_after_s ? ` (${error.body.retry_after_s} s)` : "";
      return `${t("signInFailed")}: ${error.body.error}${wait}`;
    }
    return `${t("signInFailed")}: ${describeError(error)}`;
  }

  /** "张三 · 街道三防办 · 经办人" in `node`, or the wall screen's label; its data-* name the user. */
  function paintWho(node, district) {
    if (!node) return;
    const user = district && district.user;
    if (!user) {
      node.textContent = "";
      node.hidden = true;
      for (const key of ["userId", "role", "department"]) delete node.dataset[key];
      return;
    }
    node.textContent = district.read_only ? t("wallUser")
      : `${user.name} · ${departmentName(user.department)} · ${label("role", user.role)}`;
    node.title = district.read_only ? "" : user.user_id;
    Object.assign(node.dataset, { userId: user.user_id, role: district.read_only ? "wall" : user.role,
      department: user.department });
    node.hidden = false;
  }

  // ---------------------------------------------------------------- tickets
  const SEVERITY_RANK = { red: 4, orange: 3, yellow: 2, blue: 1 };
  const SEVERITIES = ["red", "orange", "yellow", "blue"];
  const SOURCES = ["traffic", "flood", "city", "construction"];
  const STATUSES = ["dispatched", "accepted", "resolved", "returned", "closed"];

  /** Is this ticket newer than what we hold? One row per ticket_id, highest version wins. */
  function isNewer(candidate, held) {
    return !held || Number(candidate.version || 0) > Number(held.version || 0);
  }

  /** An RFC 3339 timestamp with the district's offset from a datetime-local value ("2026-05-01T18:30"). */
  function localToRfc3339(value, offset) {
    if (!value) return "";
    const withSeconds = /T\d{2}:\d{2}$/.test(value) ? `${value}:00` : value;
    return `${withSeconds}${offset || "+08:00"}`;
  }

  /** The district's UTC offset as "+08:00" (Asia/Shanghai has no DST). */
  function districtOffset() {
    try {
      const parts = new Intl.DateTimeFormat("en-US", { timeZone: district.timezone || "Asia/Shanghai", timeZoneName: "longOffset" })
        .formatToParts(new Date());
      const name = (parts.find((p) => p.type === "timeZoneName") || {}).value || "";
      const match = /GMT([+-]\d{2}:\d{2})/.exec(name);
      if (match) return match[1];
      if (name === "GMT") return "+00:00";
    } catch (_e) { /* old engine */ }
    return "+08:00";
  }

  // ---------------------------------------------------------------- banners (#error, #notice)
  function showError(message) {
    const banner = document.querySelector("#error");
    text(banner.querySelector(".message"), message);
    banner.hidden = false;
  }

  function hideError() { document.querySelector("#error").hidden = true; }

  let noticeTimer = null;
  function showNotice(message, ms) {
    const banner = document.querySelector("#notice");
    text(banner.querySelector(".message"), message);
    banner.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { banner.hidden = true; }, ms);
  }

  /** Install the 中/EN toggle on a button. */
  function bindLangToggle(button) {
    const paint = () => { button.textContent = lang === "en" ? "中文" : "EN"; button.dataset.lang = lang; };
    button.addEventListener("click", () => setLang(lang === "en" ? "zh" : "en"));
    onLangChange(paint);
    paint();
  }

  window.SOC = {
    maskPersonal, text, el, clear, fill,
    LABELS, label, t, historyText, getLang, setLang, onLangChange, applyI18n, bindLangToggle,
    setDistrict, getDistrict, departmentName, communityName,
    clock, dateTime, duration, slaOf, renderSla,
    session, account, submitting, wireSignIn, api, upload, ApiError, describeError, sessionEnded, signInFailed, paintWho, showError, hideError, showNotice,
    SEVERITY_RANK, SEVERITIES, SOURCES, STATUSES, isNewer, localToRfc3339, districtOffset,
  };
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
})();
