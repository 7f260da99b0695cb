"""The board's map with real geography, offline, in the real headless Chromium: the layers of
deploy/config/map.geojson drawn under the markers, a registered site with its radius, at the district's zoom one
cluster per community (its open tickets' count and worst severity) and no markers, a click on a community zooming
in to its markers, four tickets 40 m apart as four markers at the closest zoom, a click on a marker opening its
ticket, and the per-community shading by open tickets."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from schemas.geo import load_map
from streams.settings import REPO_ROOT
from tests.support import CONFIG, poll

pytestmark = pytest.mark.integration

LAYERS = load_map(REPO_ROOT / "deploy" / "config", CONFIG)
M_LAT = 1 / 111_320          # degrees of latitude per metre
M_LON = 1 / 102_800          # degrees of longitude per metre at 22.5° N


def community_cluster(board, community: str):
    return next((c for c in board.evaluate("window.SOC_BOARD.map.communities()") if c["community"] == community), None)


def cluster_of(board, ids: set[str]):
    for c in board.evaluate("window.SOC_BOARD.map.clusters()"):
        if ids & set(c["ids"]):
            return c
    return None


def test_layers_clusters_zoom_and_community_shading(pipeline, pages, build, artifacts):
    lat, lon = build.point("xingang")
    site = build.site(lat + 300 * M_LAT, lon, radius_m=80)
    status, body = pipeline.post("/api/sites", "construction_safety", site)
    assert status == 201, body
    offsets = [(0, 0), (0, 40), (0, 80), (40, 40)]   # metres north, east
    stations = [f"WL-C{i}-{build.unique}" for i in range(len(offsets))]
    for station, (north, east) in zip(stations, offsets):
        pipeline.send("soc.raw.flood", build.flood("xingang", station_id=station, value=3.2,
                                                   lat=round(lat + north * M_LAT, 6), lon=round(lon + east * M_LON, 6)))
    ours = poll(lambda: (found := [t for s in stations for t in pipeline.tickets_where(lambda t, s=s: t.source_ref.startswith(s))])
                and len(found) == len(stations) and found, 30, "the four tickets")
    ids = {t.ticket_id for t in ours}

    board = pages.board()
    # The offline layers, under the markers: every road and river of map.geojson, and the points.
    expect(board.locator("#map #geo path[data-layer='road']")).to_have_count(len(LAYERS.of("road")))
    expect(board.locator("#map #geo path[data-layer='river']")).to_have_count(len(LAYERS.of("river")))
    expect(board.locator("#map #geo rect[data-layer='pump_station']")).to_have_count(len(LAYERS.of("pump_station")))
    order = board.evaluate("[...document.querySelector('#map').children].map(n => n.id || n.getAttribute('class'))")
    assert order.index("geo") < order.index("markers") and order.index("sites-layer") < order.index("markers")
    circle = board.locator(f'#map .site[data-site-id="{site["site_id"]}"]')
    expect(circle).to_have_count(1)
    assert float(circle.get_attribute("r")) > 2   # 80 m at about 8 m per map unit

    # The district's zoom: no markers, one cluster per community with its open tickets' count and worst severity.
    poll(lambda: all(board.evaluate("id => window.SOC_BOARD.tickets.has(id)", t.ticket_id) for t in ours), 15,
         "the four on the board")
    expect(board.locator("#map")).to_have_attribute("data-zoom", "1")
    # (A point 80 m from the first may lie over the community's edge, or outside the district.)
    for community in {t.community for t in ours} - {None}:
        mine = {t.ticket_id for t in ours if t.community == community}
        poll(lambda c=community, m=mine: (k := community_cluster(board, c)) and m <= set(k["ids"]), 10,
             f"{community}'s cluster holding its share of the four")
        # The cluster as the board holds the community's open tickets (polled: a render follows each event).
        def agrees(c=community):
            expected = board.evaluate("""c => { const open = [...window.SOC_BOARD.tickets.values()].map(e => e.t)
                .filter(t => t.status !== 'closed' && t.community === c);
                const rank = {red: 4, orange: 3, yellow: 2, blue: 1};
                return {ids: open.map(t => t.ticket_id).sort(),
                        worst: open.map(t => t.severity).sort((a, b) => rank[b] - rank[a])[0]}; }""", c)
            cluster = community_cluster(board, c)
            return cluster and (sorted(cluster["ids"]), cluster["count"], cluster["severity"]) == (
                expected["ids"], len(expected["ids"]), expected["worst"]) and cluster
        cluster = poll(agrees, 10, f"{community}'s cluster agreeing with the board's tickets")
        group = board.locator(f'#map .community-cluster[data-community="{community}"]')
        expect(group).to_have_attribute("data-count", str(cluster["count"]))
        expect(group.locator("text")).to_have_text(str(cluster["count"]))
    for t in ours:   # outside every community, a ticket is still a marker of its own
        expect(board.locator(f'#map .marker[data-ticket-id="{t.ticket_id}"]')).to_have_count(0 if t.community else 1)
    board.screenshot(path=str(artifacts / "board-map-district.png"))

    # A click on a community zooms in on it: its tickets are markers there (close ones still one cluster).
    inside = next(t for t in ours if t.community)
    board.locator(f'#map .community-cluster[data-community="{inside.community}"]').click()
    expect(board.locator("#map")).to_have_attribute("data-zoom", "2")
    expect(board.locator("#map .community-cluster")).to_have_count(0)
    expect(board.locator(f'#map .marker[data-ticket-id="{inside.ticket_id}"]')).to_have_count(1)
    # At the closest zoom (x8) the four, 40 m apart, are four markers.
    board.evaluate("([lon, lat]) => window.SOC_BOARD.map.zoom(8, lon, lat)", [lon, lat])
    expect(board.locator("#map")).to_have_attribute("data-zoom", "8")
    assert cluster_of(board, ids) is None
    for t in ours:
        marker = board.locator(f'#map .marker[data-ticket-id="{t.ticket_id}"]')
        expect(marker).to_be_visible()
        expect(marker).not_to_have_class(re.compile(r"\bclustered\b"))
    board.screenshot(path=str(artifacts / "board-map-zoom8.png"))

    # A click on a marker opens its ticket.
    board.locator(f'#map .marker[data-ticket-id="{ours[0].ticket_id}"]').click()
    expect(board.locator("#detail")).to_have_attribute("data-ticket-id", ours[0].ticket_id)
    board.keyboard.press("Escape")

    # Per community: shaded by open tickets.
    board.click("#zoom-out")
    board.click("#zoom-out")
    board.click("#zoom-out")
    expect(board.locator("#map")).to_have_attribute("data-zoom", "1")
    board.click("#map-shading")
    expect(board.locator("#map-shading")).to_have_attribute("aria-pressed", "true")
    # (A point 80 m from the first may lie over the community's edge: count the first one's community.)
    community = ours[0].community
    polygon = board.locator(f'#map .community[data-community="{community}"]')
    name = CONFIG.district.communities[community].name
    label = board.locator(f'#map .community-label[data-community="{community}"]')

    def shaded() -> tuple[int] | None:
        """The board's open tickets of the community, as the polygon and its label say (read together: the
        stack is shared, and another test's ticket may open there meanwhile)."""
        expected = board.evaluate("""c => [...window.SOC_BOARD.tickets.values()]
            .filter(e => e.t.status !== 'closed' && e.t.community === c).length""", community)
        said = " ".join(label.text_content().split())
        agree = polygon.get_attribute("data-open") == str(expected) and said == f"{name} {expected}"
        return (expected,) if agree else None

    [expected] = poll(shaded, 15, "the community's shading equal to its open tickets", interval=0.2)
    assert expected >= sum(t.community == community for t in ours) >= 1
    assert "rgba(229, 57, 53" in polygon.evaluate("p => p.style.fill")
    board.screenshot(path=str(artifacts / "board-map-communities.png"))
