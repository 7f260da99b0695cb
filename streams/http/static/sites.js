/* The site whitelist page (小散工程报备): construction_safety or the operations centre registers a site
 * (POST /api/sites), lists them by status and suspends, revokes or reactivates one (PATCH). Every API
 * error is shown in #error; text from the API goes through SOC.el()/SOC.text() only. */
"use strict";

(function () {
  const S = window.SOC;
  const $ = (selector) => document.querySelector(selector);
  const auth = S.account("sites");
  const REGISTRARS = ["construction_safety", "ops_centre"];
  const NOT_HERE = "此账号不能管理工地报备（建设工程安全部门或运行中心）";
  const STATUS = { active: "有效", suspended: "暂停", revoked: "撤销" };
  const ACTIONS = { active: [["suspended", "暂停"], ["revoked", "撤销"]], suspended: [["active", "恢复"], ["revoked", "撤销"]],
    revoked: [["active", "恢复"]] };

  window.SOC_SITES = { sites: new Map() };

  function showSignIn(message) {
    $("#main").hidden = true;
    $("#signout").hidden = true;
    S.paintWho($("#who"), null);
    $("#signin").hidden = false;
    $("#password").value = "";
    if (message) S.showError(message);
    ($("#user").value ? $("#password") : $("#user")).focus();
  }

  /** `how` gives the district JSON (a sign-in, or on load whoever the cookie names); `failed` the message. */
  async function signIn(how, failed) {
    try {
      const district = await how();
      S.setDistrict(district);
      if (!REGISTRARS.includes(district.department) || !auth.may("register_sites")) {
        // Just signed in with an account that has no business here: sign it out again.
        if (how !== resume) await auth.logout().catch(() => {});
        throw new S.ApiError(403, NOT_HERE, { error: NOT_HERE });
      }
      S.paintWho($("#who"), district);
      S.hideError();
      $("#signin").hidden = true;
      $("#main").hidden = false;
      $("#signout").hidden = false;
      await refresh();
    } catch (error) {
      auth.forget();
      showSignIn(failed(error));
    }
  }

  const resume = () => auth.resume();

  /** An API error while working: a 401 means the session ended, so back to the form. */
  function failed(error) {
    if (error instanceof S.ApiError && error.status === 401) {
      auth.forget();
      showSignIn(S.sessionEnded(error));
      return;
    }
    S.showError(S.describeError(error));
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
      failed(error);
    }
  }

  async function change(siteId, status) {
    try {
      await S.api(auth.token, "PATCH", `/api/sites/${encodeURIComponent(siteId)}`, { status });
      S.hideError();
      S.showNotice(`${siteId}：${STATUS[status]}`, 4000);
      await refresh();
    } catch (error) {
      failed(error);
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
      failed(error);
    }
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
  $("#register").addEventListener("submit", register);
  $("#status-filter").addEventListener("change", refresh);
  $("#error .close").addEventListener("click", S.hideError);
  // A reload: the session cookie still signs in; nobody signed in: the form, without an error.
  signIn(resume, (error) => (error instanceof S.ApiError && error.status === 401 ? "" : S.describeError(error)));
})();
