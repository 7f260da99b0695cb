/* The site whitelist page (小散工程报备): construction_safety or the operations centre registers a site
 * (POST /api/sites), its place picked on the district map (a click sets lat/lon; typing them still works),
 * lists them by status and suspends, revokes or reactivates one (PATCH). Dates are shown and entered as
 * YYYY-MM-DD whatever the browser's locale; whether a permit is in force today is the API's permit_state.
 * Every API error is shown in #error; text from the API goes through SOC.el()/SOC.text() only. */
"use strict";

(function () {
  const S = window.SOC;
  const $ = (selector) => document.querySelector(selector);
  const auth = S.account("sites");
  const REGISTRARS = ["construction_safety", "ops_centre"];
  const NOT_HERE = "此账号不能管理工地报备（建设工程安全部门或运行中心）";
  const STATUS = { active: "正常", suspended: "暂停", revoked: "撤销" };
  const PERMIT = { not_yet_valid: "未生效", valid: "有效", expired: "已过期" };
  const ACTIONS = { active: [["suspended", "暂停"], ["revoked", "撤销"]], suspended: [["active", "恢复"], ["revoked", "撤销"]],
    revoked: [["active", "恢复"]] };

  window.SOC_SITES = { sites: new Map() };

  // ------------------------------------------------------------------ the map: click to pick the place
  let map = null;  // { svg, width, height, metresPerUnit, project(lon, lat), unproject(x, y) }

  function buildMap() {
    const svg = S.clear($("#site-map"));
    const points = Object.values(S.getDistrict().communities || {}).flatMap((c) => c.polygon);
    if (!points.length) return;
    const lons = points.map((p) => p[0]);
    const lats = points.map((p) => p[1]);
    const padLon = (Math.max(...lons) - Math.min(...lons)) * 0.04 || 0.001;
    const padLat = (Math.max(...lats) - Math.min(...lats)) * 0.06 || 0.001;
    const [minLon, maxLon] = [Math.min(...lons) - padLon, Math.max(...lons) + padLon];
    const [minLat, maxLat] = [Math.min(...lats) - padLat, Math.max(...lats) + padLat];
    // Linear, x scaled by cos(latitude) so the district keeps its shape (as the board draws it).
    const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    const width = 1000;
    const height = Math.round(width * (maxLat - minLat) / ((maxLon - minLon) * kx));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    map = {
      svg, width, height, metresPerUnit: ((maxLat - minLat) * 111320) / height,
      project: (lon, lat) => [(lon - minLon) / (maxLon - minLon) * width, (maxLat - lat) / (maxLat - minLat) * height],
      unproject: (x, y) => [minLon + x / width * (maxLon - minLon), maxLat - y / height * (maxLat - minLat)],
    };
    const xy = (coords) => coords.map(([lon, lat]) => map.project(lon, lat).map((v) => v.toFixed(1)).join(",")).join(" ");
    svg.append(S.el("rect", { x: 0, y: 0, width, height, class: "sea" }));
    const areas = S.el("g", { class: "communities" });
    const labels = S.el("g", { class: "labels" });
    for (const [id, community] of Object.entries(S.getDistrict().communities)) {
      areas.append(S.el("polygon", { class: "community", dataset: { community: id }, points: xy(community.polygon) }));
      const [cx, cy] = map.project(community.polygon.reduce((s, p) => s + p[0], 0) / community.polygon.length,
        community.polygon.reduce((s, p) => s + p[1], 0) / community.polygon.length);
      labels.append(S.el("text", { class: "community-label", x: cx.toFixed(1), y: cy.toFixed(1), "text-anchor": "middle",
        "dominant-baseline": "middle" }, S.communityName(id)));
    }
    svg.append(areas, S.el("g", { id: "site-map-roads" }), S.el("g", { id: "site-map-sites" }), labels,
      S.el("g", { id: "site-map-pick" }));
    drawRoads();
    drawSites();
    drawPick();
  }

  /** The map's roads and rivers (GET /api/map), under the sites: a place is easier to find by its road. */
  async function drawRoads() {
    try {
      const layers = (await S.api(auth.token, "GET", "/api/map")).body;
      const lines = layers.features.filter((f) => f.geometry.type === "LineString");
      S.fill($("#site-map-roads"), ...lines.map((f) => S.el("path", {
        class: `geo ${f.properties.layer}`, d: f.geometry.coordinates.map(([lon, lat], i) =>
          `${i ? "L" : "M"}${map.project(lon, lat).map((v) => v.toFixed(1)).join(",")}`).join(" ") },
        S.el("title", { text: f.properties.name }))));
    } catch (error) {
      failed(error);
    }
  }

  function drawSites() {
    const layer = $("#site-map-sites");
    if (!map || !layer) return;
    S.fill(layer, ...[...window.SOC_SITES.sites.values()].map((site) => {
      const [x, y] = map.project(site.lon, site.lat);
      return S.el("circle", { class: "site", cx: x.toFixed(1), cy: y.toFixed(1), r: Math.max(site.radius_m / map.metresPerUnit, 4).toFixed(1),
        dataset: { siteId: site.site_id } }, S.el("title", { text: `${site.site_id} ${site.name}` }));
    }));
  }

  /** The place in the form's lat/lon (picked or typed), with its radius, as a marker. */
  function drawPick() {
    const layer = $("#site-map-pick");
    if (!map || !layer) return;
    const form = $("#register");
    const lat = Number(form.elements.lat.value);
    const lon = Number(form.elements.lon.value);
    if (form.elements.lat.value.trim() === "" || form.elements.lon.value.trim() === "" || !Number.isFinite(lat)
        || !Number.isFinite(lon)) {
      S.clear(layer);
      return;
    }
    const [x, y] = map.project(lon, lat);
    const radius = Number(form.elements.radius_m.value);
    S.fill(layer, S.el("circle", { class: "pick-area", cx: x.toFixed(1), cy: y.toFixed(1),
      r: Math.max((Number.isFinite(radius) ? radius : 0) / map.metresPerUnit, 6).toFixed(1) }),
    S.el("circle", { class: "pick", cx: x.toFixed(1), cy: y.toFixed(1), r: 7 }));
  }

  function pick(event) {
    if (!map) return;
    const point = map.svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const inside = point.matrixTransform(map.svg.getScreenCTM().inverse());
    const [lon, lat] = map.unproject(inside.x, inside.y);
    const form = $("#register");
    form.elements.lat.value = lat.toFixed(6);
    form.elements.lon.value = lon.toFixed(6);
    drawPick();
  }

  /** Today in the district's time zone, YYYY-MM-DD. */
  const today = () => S.dateTime(new Date()).slice(0, 10);

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
      if (!$("#register").elements.permit_from.value) $("#register").elements.permit_from.value = today();
      buildMap();
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
    // A plain date as it is; a time as the district's YYYY-MM-DD HH:MM.
    const day = (value) => (/^\d{4}-\d{2}-\d{2}$/.test(value) ? value : S.dateTime(value).slice(0, 16));
    return `${day(site.permit_from)} ～ ${day(site.permit_until)}`;
  }

  /** An active site reads as its permit today (未生效 / 有效 / 已过期); a suspended or revoked one as that. */
  function standing(site) {
    if (site.status === "active") return PERMIT[site.permit_state];
    return site.permit_state === "valid" ? STATUS[site.status] : `${STATUS[site.status]}（${PERMIT[site.permit_state]}）`;
  }

  function row(site) {
    const buttons = (ACTIONS[site.status] || []).map(([status, label]) => {
      const button = S.el("button", { type: "button", class: "ghost", dataset: { status } }, label);
      button.addEventListener("click", () => change(site.site_id, status));
      return button;
    });
    return S.el("tr", { dataset: { siteId: site.site_id, status: site.status, permit: site.permit_state } },
      S.el("td", {}, site.site_id), S.el("td", {}, site.name), S.el("td", {}, site.contractor),
      S.el("td", {}, permit(site)), S.el("td", {}, site.work_hours),
      S.el("td", { class: "status" }, standing(site)), S.el("td", {}, ...buttons));
  }

  async function refresh() {
    const status = $("#status-filter").value;
    const path = status ? `/api/sites?status=${encodeURIComponent(status)}` : "/api/sites";
    try {
      const sites = (await S.api(auth.token, "GET", path)).body.sites;
      window.SOC_SITES.sites = new Map(sites.map((s) => [s.site_id, s]));
      S.fill($("#sites tbody"), ...sites.map(row));
      drawSites();
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
      event.target.elements.permit_from.value = today();
      drawPick();
      await refresh();
    } catch (error) {
      failed(error);
    }
  }

  S.wireSignIn(auth, signIn, () => showSignIn());
  $("#register").addEventListener("submit", register);
  for (const name of ["lat", "lon", "radius_m"]) $("#register").elements[name].addEventListener("input", drawPick);
  $("#site-map").addEventListener("click", pick);
  $("#status-filter").addEventListener("change", refresh);
  $("#error .close").addEventListener("click", S.hideError);
  // A reload: the session cookie still signs in; nobody signed in: the form, without an error.
  signIn(resume, (error) => (error instanceof S.ApiError && error.status === 401 ? "" : S.describeError(error)));
})();
