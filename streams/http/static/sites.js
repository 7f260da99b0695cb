/* The site whitelist page (小散工程报备): construction_safety or the operations centre registers a site
 * (POST /api/sites), lists them by status and suspends, revokes or reactivates one (PATCH). Every API
 * error is shown in #error; text from the API goes through SOC.el()/SOC.text() only. */
"use strict";

(function () {
  const S = window.SOC;
  const $ = (selector) => document.querySelector(selector);
  const auth = S.session("sites");
  const REGISTRARS = ["construction_safety", "ops_centre"];
  const STATUS = { active: "有效", suspended: "暂停", revoked: "撤销" };
  const ACTIONS = { active: [["suspended", "暂停"], ["revoked", "撤销"]], suspended: [["active", "恢复"], ["revoked", "撤销"]],
    revoked: [["active", "恢复"]] };

  window.SOC_SITES = { sites: new Map() };

  function showSignIn(message) {
    $("#main").hidden = true;
    $("#signout").hidden = true;
    $("#signin").hidden = false;
    if (message) S.showError(message);
    $("#token").focus();
  }

  async function signIn(token) {
    try {
      const district = (await S.api(token, "GET", "/api/district")).body;
      if (!REGISTRARS.includes(district.department)) throw new S.ApiError(403, "此令牌不能管理工地报备", { error: "此令牌不能管理工地报备" });
      S.setDistrict(district);
      auth.token = token;
      S.text($("#who"), S.departmentName(district.department));
      S.hideError();
      $("#signin").hidden = true;
      $("#main").hidden = false;
      $("#signout").hidden = false;
      await refresh();
    } catch (error) {
      auth.token = "";
      showSignIn(S.describeError(error));
    }
  }

  function permit(site) {
    const day = (value) => (/^\d{4}-\d{2}-\d{2}$/.test(value) ? value : S.dateTime(value));
    return `${day(site.permit_from)} ～ ${day(site.permit_until)}`;
  }

  function row(site) {
    const buttons = (ACTIONS[site.status] || []).map(([status, label]) => {
      const button = S.el("button", { type: "button", class: "ghost", dataset: { status } }, label);
      button.addEventListener("click", () => change(site.site_id, status));
      return button;
    });
    return S.el("tr", { dataset: { siteId: site.site_id, status: site.status } },
      S.el("td", {}, site.site_id), S.el("td", {}, site.name), S.el("td", {}, site.contractor),
      S.el("td", {}, permit(site)), S.el("td", {}, site.work_hours),
      S.el("td", { class: "status" }, STATUS[site.status] || site.status), S.el("td", {}, ...buttons));
  }

  async function refresh() {
    const status = $("#status-filter").value;
    const path = status ? `/api/sites?status=${encodeURIComponent(status)}` : "/api/sites";
    try {
      const sites = (await S.api(auth.token, "GET", path)).body.sites;
      window.SOC_SITES.sites = new Map(sites.map((s) => [s.site_id, s]));
      S.fill($("#sites tbody"), ...sites.map(row));
      S.text($("#summary"), `${sites.length} 个`);
    } catch (error) {
      S.showError(S.describeError(error));
    }
  }

  async function change(siteId, status) {
    try {
      await S.api(auth.token, "PATCH", `/api/sites/${encodeURIComponent(siteId)}`, { status });
      S.hideError();
      S.showNotice(`${siteId}：${STATUS[status]}`, 4000);
      await refresh();
    } catch (error) {
      S.showError(S.describeError(error));
    }
  }

  async function register(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = {};
    for (const [name, value] of form.entries()) {
      const text = String(value).trim();
      if (text === "") continue;
      body[name] = ["lat", "lon", "radius_m"].includes(name) && !Number.isNaN(Number(text)) ? Number(text) : text;
    }
    try {
      const site = (await S.api(auth.token, "POST", "/api/sites", body)).body;
      S.hideError();
      S.showNotice(`已报备：${site.site_id} ${site.name}`, 6000);
      event.target.reset();
      await refresh();
    } catch (error) {
      S.showError(S.describeError(error));
    }
  }

  $("#signin-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("#token").value.trim()); });
  $("#signout").addEventListener("click", () => { auth.token = ""; showSignIn(); });
  $("#register").addEventListener("submit", register);
  $("#status-filter").addEventListener("change", refresh);
  $("#error .close").addEventListener("click", S.hideError);
  if (auth.token) signIn(auth.token); else showSignIn();
})();
