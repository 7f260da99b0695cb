/* The district map: offline layers, basemap tiles, zoom, clusters, community shading and the ticket markers. */
import { $, COLOURS, S, auth, markers, tickets } from "./state.js";
import { isOpen } from "./stream.js";
import { render } from "./rows.js";
import { openDetail, renderMapLinks, select } from "./wall.js";

export let project = null;

export function buildMap() {
  const svg = S.clear($("#map"));
  markers.clear();
  const communities = S.getDistrict().communities;
  const points = Object.values(communities).flatMap((c) => c.polygon);
  if (!points.length) return;
  const lons = points.map((p) => p[0]);
  const lats = points.map((p) => p[1]);
  let [minLon, maxLon, minLat, maxLat] = [Math.min(...lons), Math.max(...lons), Math.min(...lats), Math.max(...lats)];
  const padLon = (maxLon - minLon) * 0.04 || 0.001;
  const padLat = (maxLat - minLat) * 0.06 || 0.001;
  minLon -= padLon; maxLon += padLon; minLat -= padLat; maxLat += padLat;
  // Linear projection; x scaled by cos(latitude) so the district keeps its shape.
  const kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const width = 1000;
  const height = Math.round(width * (maxLat - minLat) / ((maxLon - minLon) * kx));
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  mapSize = { width, height, metresPerUnit: ((maxLat - minLat) * 111320) / height };
  mapView = { z: 1, cx: width / 2, cy: height / 2 };
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  projectRaw = (lon, lat) => [(lon - minLon) / (maxLon - minLon) * width, (maxLat - lat) / (maxLat - minLat) * height];
  unproject = (x, y) => [minLon + x / width * (maxLon - minLon), maxLat - y / height * (maxLat - minLat)];
  project = (lon, lat) => {
    const [x, y] = projectRaw(lon, lat);
    return [clamp(x, 6, width - 6), clamp(y, 6, height - 6)];
  };
  centroids = {};
  svg.append(S.el("rect", { x: 0, y: 0, width, height, class: "sea" }), S.el("g", { id: "basemap" }));
  const areas = S.el("g", { class: "communities" });
  const labels = S.el("g", { class: "labels" });
  for (const [id, community] of Object.entries(communities)) {
    const xy = community.polygon.map(([lon, lat]) => project(lon, lat));
    areas.append(S.el("polygon", { class: "community", dataset: { community: id },
      points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ") },
      S.el("title", { text: S.communityName(id) })));
    const cx = xy.reduce((s, p) => s + p[0], 0) / xy.length;
    const cy = xy.reduce((s, p) => s + p[1], 0) / xy.length;
    centroids[id] = [cx, cy];
    labels.append(S.el("text", { class: "community-label", x: cx.toFixed(1), y: cy.toFixed(1),
      "text-anchor": "middle", "dominant-baseline": "middle", dataset: { community: id } }, S.communityName(id)));
  }
  // One layer per severity, most severe drawn last (on top); community names above the markers.
  const layers = S.el("g", { id: "markers" });
  for (const s of [...S.SEVERITIES].reverse()) layers.append(S.el("g", { class: "layer", dataset: { severity: s } }));
  svg.append(areas, S.el("g", { id: "geo" }), S.el("g", { id: "sites-layer" }), S.el("g", { id: "links" }), layers,
    S.el("g", { id: "clusters" }), labels, S.el("g", { id: "communities-clusters" }));
  drawGeo();
  drawSites();
  applyView();
  drawBasemap();
}

export function renderMarkers(open) {
  if (!project) return;
  renderCommunityClusters(open);
  // At the district's zoom a community's tickets are its cluster; only those outside every community are markers.
  if (mapView.z < MARKERS_FROM_ZOOM) open = open.filter((e) => !e.t.community);
  const keep = new Set();
  // Big enough to see across the room, smaller when the map is crowded; the same size on screen at any zoom.
  const radius = +((open.length <= 60 ? 12 : open.length <= 250 ? 9 : 7) / mapView.z).toFixed(2);
  for (const { t } of open) {
    keep.add(t.ticket_id);
    let marker = markers.get(t.ticket_id);
    if (!marker) {
      marker = S.el("circle", { class: "marker", r: radius, dataset: { ticketId: t.ticket_id } });
      marker.addEventListener("click", () => { select(t.ticket_id, true); openDetail(t.ticket_id); });
      markers.set(t.ticket_id, marker);
    }
    if (marker.getAttribute("r") !== String(radius)) marker.setAttribute("r", radius);
    if (marker.dataset.version !== String(t.version) || marker.dataset.lang !== S.getLang()) {
      const [x, y] = project(t.lon, t.lat);
      marker.setAttribute("cx", x.toFixed(1));
      marker.setAttribute("cy", y.toFixed(1));
      marker.setAttribute("fill", COLOURS[t.severity] || "#9e9e9e");
      Object.assign(marker.dataset, { severity: t.severity, status: t.status, version: String(t.version), lang: S.getLang() });
      marker.classList.toggle("pulse", t.severity === "red");
      S.fill(marker, S.el("title", {
        text: `${S.label("severity", t.severity)} · ${t.title} · ${S.label("status", t.status)}` }));
    }
    const layer = document.querySelector(`#markers .layer[data-severity="${t.severity}"]`);
    if (layer && marker.parentNode !== layer) layer.append(marker);
  }
  for (const [id, marker] of markers) {
    if (!keep.has(id)) {
      marker.remove();
      markers.delete(id);
    }
  }
  renderMapLinks();
  renderClusters(open, radius);
  shadeCommunities();
}

// ------------------------------------------------------------------ map: offline layers, zoom, clusters, shading
let mapSize = null;                  // {width, height, metresPerUnit}
export let mapView = { z: 1, cx: 0, cy: 0 };
const ZOOMS = [1, 2, 4, 8];
let geo = null;                      // GET /api/map (GeoJSON), once
let sites = [];                      // GET /api/sites?status=active
let shading = false;
let clusterList = [];                // the clusters drawn now: {count, ids, x, y, severity}
let communityClusters = [];          // at the district's zoom: {community, count, ids, severity}
const MARKERS_FROM_ZOOM = 2;         // below it, each community's open tickets are one cluster
let projectRaw = null;               // lon, lat -> SVG x, y, unclamped (the basemap's tiles)
let unproject = null;                // SVG x, y -> lon, lat
let centroids = {};                  // community -> its label's SVG point
const MAX_TILES = 64;

export async function loadGeo() {
  try {
    geo = (await S.api(auth.token, "GET", "/api/map")).body;
  } catch (_error) {
    geo = null;   // the map works without its layers
  }
  try {
    sites = (await S.api(auth.token, "GET", "/api/sites?status=active")).body.sites || [];
  } catch (_error) {
    sites = [];
  }
  drawGeo();
  drawSites();
}

function drawGeo() {
  const layer = document.querySelector("#map #geo");
  if (!layer || !project || !geo) return;
  S.clear(layer);
  const order = ["river", "road", "underpass", "pump_station", "flood_station"];
  const features = [...(geo.features || [])].sort((a, b) => order.indexOf(a.properties.layer) - order.indexOf(b.properties.layer));
  const w = 1 / mapView.z;
  for (const f of features) {
    const p = f.properties;
    const title = S.el("title", { text: `${p.name} (${p.id})` });
    if (f.geometry.type === "LineString") {
      const d = f.geometry.coordinates.map(([lon, lat], i) => `${i ? "L" : "M"}${project(lon, lat).map((v) => v.toFixed(1)).join(",")}`).join(" ");
      layer.append(S.el("path", { class: `geo ${p.layer}`, d, "stroke-width": ((p.layer === "river" ? 7 : 5) * w).toFixed(2),
        dataset: { layer: p.layer, id: p.id } }, title));
    } else {
      const [x, y] = project(...f.geometry.coordinates);
      layer.append(S.el("rect", { class: `geo ${p.layer}`, x: (x - 5 * w).toFixed(1), y: (y - 5 * w).toFixed(1),
        width: (10 * w).toFixed(2), height: (10 * w).toFixed(2), dataset: { layer: p.layer, id: p.id } }, title));
    }
  }
}

function drawSites() {
  const layer = document.querySelector("#map #sites-layer");
  if (!layer || !project || !mapSize) return;
  S.clear(layer);
  for (const site of sites) {
    const [x, y] = project(site.lon, site.lat);
    layer.append(S.el("circle", { class: "site", cx: x.toFixed(1), cy: y.toFixed(1),
      r: Math.max(site.radius_m / mapSize.metresPerUnit, 2 / mapView.z).toFixed(2), dataset: { siteId: site.site_id } },
      S.el("title", { text: `${site.name} (${site.site_id}) ${site.radius_m} m` })));
  }
}

function applyView() {
  const svg = $("#map");
  if (!mapSize) return;
  const w = mapSize.width / mapView.z;
  const h = mapSize.height / mapView.z;
  mapView.cx = Math.min(mapSize.width - w / 2, Math.max(w / 2, mapView.cx));
  mapView.cy = Math.min(mapSize.height - h / 2, Math.max(h / 2, mapView.cy));
  svg.setAttribute("viewBox", `${(mapView.cx - w / 2).toFixed(1)} ${(mapView.cy - h / 2).toFixed(1)} ${w.toFixed(1)} ${h.toFixed(1)}`);
  svg.dataset.zoom = String(mapView.z);
  svg.style.setProperty("--z", String(mapView.z));
}

/** Zoom to one of ZOOMS, centred on an SVG point (the current centre by default). */
function zoomTo(z, cx, cy) {
  if (!mapSize) return;
  mapView.z = ZOOMS.includes(z) ? z : mapView.z;
  if (cx !== undefined) { mapView.cx = cx; mapView.cy = cy; }
  applyView();
  drawBasemap();
  drawGeo();
  drawSites();
  for (const marker of markers.values()) marker.dataset.lang = "";   // re-place at the new size
  render();
}

function zoomStep(step, cx, cy) {
  const at = ZOOMS.indexOf(mapView.z);
  zoomTo(ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, at + step))], cx, cy);
}

/** Markers closer on screen than about two marker widths are drawn as one cluster with its count. */
function renderClusters(open, radius) {
  const layer = document.querySelector("#map #clusters");
  if (!layer) return;
  const reach = radius * 2.2;
  const seeds = [];
  const sorted = open.map((e) => e.t).filter((t) => markers.has(t.ticket_id))
    .sort((a, b) => S.SEVERITY_RANK[b.severity] - S.SEVERITY_RANK[a.severity] || String(a.ticket_id).localeCompare(b.ticket_id));
  for (const t of sorted) {
    const m = markers.get(t.ticket_id);
    const x = Number(m.getAttribute("cx"));
    const y = Number(m.getAttribute("cy"));
    const seed = seeds.find((c) => Math.hypot(c.x - x, c.y - y) <= reach);
    if (seed) seed.ids.push(t.ticket_id); else seeds.push({ x, y, ids: [t.ticket_id], severity: t.severity });
  }
  clusterList = seeds.filter((c) => c.ids.length > 1).map((c) => ({ ...c, count: c.ids.length }));
  const clustered = new Set(clusterList.flatMap((c) => c.ids));
  for (const [id, marker] of markers) marker.classList.toggle("clustered", clustered.has(id));
  S.clear(layer);
  for (const c of clusterList) {
    const group = S.el("g", { class: "cluster", dataset: { count: String(c.count), severity: c.severity, ticketIds: c.ids.join(" ") } },
      S.el("circle", { cx: c.x.toFixed(1), cy: c.y.toFixed(1), r: (radius * 1.5).toFixed(2), fill: COLOURS[c.severity] }),
      S.el("text", { x: c.x.toFixed(1), y: c.y.toFixed(1), "text-anchor": "middle", "dominant-baseline": "central",
        "font-size": (radius * 1.5).toFixed(2) }, String(c.count)),
      S.el("title", { text: `${c.count}` }));
    group.addEventListener("click", () => zoomStep(1, c.x, c.y));   // a cluster splits on zoom
    layer.append(group);
  }
}

/** The district's zoom: one cluster per community with its open tickets' count, in its worst severity's colour. */
function renderCommunityClusters(open) {
  const layer = document.querySelector("#map #communities-clusters");
  if (!layer) return;
  const by = new Map();
  if (mapView.z < MARKERS_FROM_ZOOM) {
    for (const { t } of open) {
      if (!t.community || !centroids[t.community]) continue;
      const c = by.get(t.community) || { community: t.community, ids: [], severity: t.severity };
      c.ids.push(t.ticket_id);
      if (S.SEVERITY_RANK[t.severity] > S.SEVERITY_RANK[c.severity]) c.severity = t.severity;
      by.set(t.community, c);
    }
  }
  communityClusters = [...by.values()].map((c) => ({ ...c, count: c.ids.length }));
  const signature = JSON.stringify([S.getLang(), mapView.z, communityClusters.map((c) => [c.community, c.severity, c.ids])]);
  if (layer.dataset.signature === signature) return;
  layer.dataset.signature = signature;
  S.clear(layer);
  const most = Math.max(1, ...communityClusters.map((c) => c.count));
  for (const c of communityClusters) {
    const r = 16 + 14 * Math.sqrt(c.count / most);   // the busiest community the biggest
    const [x, y] = [centroids[c.community][0], centroids[c.community][1] + r + 22];   // under its name
    const group = S.el("g", { class: "community-cluster", dataset: { community: c.community, count: String(c.count),
      severity: c.severity, ticketIds: c.ids.join(" ") } },
      S.el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: r.toFixed(1), fill: COLOURS[c.severity] }),
      S.el("text", { x: x.toFixed(1), y: y.toFixed(1), "text-anchor": "middle", "dominant-baseline": "central",
        "font-size": (r * 0.9).toFixed(1) }, String(c.count)),
      S.el("title", { text: `${S.communityName(c.community)} · ${c.count} · ${S.label("severity", c.severity)}` }));
    group.addEventListener("click", () => zoomTo(MARKERS_FROM_ZOOM, ...centroids[c.community]));   // into it: its markers
    layer.append(group);
  }
}

/** board.yaml's basemap: the XYZ tiles under the view, placed by their corners (Web Mercator tiles on the map's
 * linear projection: at a sub-district's size the two differ by less than a pixel). None: the sketch only. */
function drawBasemap() {
  const layer = document.querySelector("#map #basemap");
  const basemap = S.getDistrict().board.basemap;
  const attribution = $("#map-attribution");
  $("#map").dataset.basemap = basemap ? "on" : "off";
  attribution.hidden = !basemap;
  if (!layer || !basemap || !projectRaw) return;
  S.text(attribution, basemap.attribution);
  const view = $("#map").viewBox.baseVal;
  const [west, north] = unproject(view.x, view.y);
  const [east, south] = unproject(view.x + view.width, view.y + view.height);
  const pixels = $("#map").getBoundingClientRect().width || 1000;
  const fit = Math.round(Math.log2((360 * pixels) / (256 * (east - west))));
  const z = Math.max(basemap.min_zoom, Math.min(basemap.max_zoom, fit));
  const n = 2 ** z;
  const tileX = (lon) => Math.floor(((lon + 180) / 360) * n);
  const tileY = (lat) => {
    const rad = (lat * Math.PI) / 180;
    return Math.floor(((1 - Math.log(Math.tan(rad) + 1 / Math.cos(rad)) / Math.PI) / 2) * n);
  };
  const lonOf = (x) => (x / n) * 360 - 180;
  const latOf = (y) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
  const tiles = [];
  for (let x = tileX(west); x <= tileX(east); x += 1) for (let y = tileY(north); y <= tileY(south); y += 1) tiles.push([x, y]);
  const signature = JSON.stringify([z, tiles]);
  if (layer.dataset.signature === signature) return;
  layer.dataset.signature = signature;
  S.clear(layer);
  for (const [x, y] of tiles.slice(0, MAX_TILES)) {
    const [x0, y0] = projectRaw(lonOf(x), latOf(y));
    const [x1, y1] = projectRaw(lonOf(x + 1), latOf(y + 1));
    const sub = basemap.subdomains.length ? basemap.subdomains[(x + y) % basemap.subdomains.length] : "";
    const href = basemap.url.replace("{z}", z).replace("{x}", x).replace("{y}", y).replace("{s}", sub);
    // Made here, not with S.el: an SVG <image> (S.el makes the SVG elements the other layers use).
    const image = document.createElementNS("http://www.w3.org/2000/svg", "image");
    const attributes = { class: "tile", href, x: x0.toFixed(2), y: y0.toFixed(2), width: (x1 - x0).toFixed(2),
      height: (y1 - y0).toFixed(2), preserveAspectRatio: "none", "data-tile": `${z}/${x}/${y}` };
    for (const [name, value] of Object.entries(attributes)) image.setAttribute(name, value);
    layer.append(image);
  }
}

/** Per-community view: each community shaded by its open tickets (toggle). */
function shadeCommunities() {
  const counts = {};
  for (const { t } of tickets.values()) if (isOpen(t) && t.community) counts[t.community] = (counts[t.community] || 0) + 1;
  const max = Math.max(1, ...Object.values(counts));
  for (const polygon of document.querySelectorAll("#map .community")) {
    const n = counts[polygon.dataset.community] || 0;
    polygon.dataset.open = String(n);
    polygon.style.fill = shading ? `rgba(229, 57, 53, ${(0.12 + 0.7 * (n / max)).toFixed(3)})` : "";
  }
  for (const label of document.querySelectorAll("#map .community-label")) {
    const n = counts[label.dataset.community] || 0;
    label.textContent = shading ? `${S.communityName(label.dataset.community)} ${n}` : S.communityName(label.dataset.community);
  }
  const toggle = $("#map-shading");
  if (toggle) { toggle.setAttribute("aria-pressed", String(shading)); toggle.classList.toggle("active", shading); }
}

export function initMapControls() {
  $("#zoom-in").addEventListener("click", () => zoomStep(1));
  $("#zoom-out").addEventListener("click", () => zoomStep(-1));
  $("#map-shading").addEventListener("click", () => { shading = !shading; shadeCommunities(); });
  $("#map").addEventListener("wheel", (event) => {
    if (!mapSize) return;
    event.preventDefault();
    const svg = $("#map");
    const point = svg.createSVGPoint();
    point.x = event.clientX; point.y = event.clientY;
    const at = point.matrixTransform(svg.getScreenCTM().inverse());
    zoomStep(event.deltaY < 0 ? 1 : -1, at.x, at.y);
  }, { passive: false });
  window.SOC_BOARD.map = {
    zoom: (z, lon, lat) => { const [x, y] = lon === undefined ? [mapView.cx, mapView.cy] : project(lon, lat); zoomTo(z, x, y); },
    clusters: () => clusterList.map((c) => ({ count: c.count, ids: c.ids.slice(), severity: c.severity })),
    communities: () => communityClusters.map((c) => ({ community: c.community, count: c.count, ids: c.ids.slice(),
      severity: c.severity })),
    get z() { return mapView.z; },
  };
}
