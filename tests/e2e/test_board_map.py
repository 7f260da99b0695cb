"""The board's map with real geography, offline (issue 20, item 2), in the real headless Chromium: the layers of
deploy/config/map.geojson drawn under the markers, a registered site with its radius, four tickets 40 m apart
clustered with their count at the district's zoom and split at the closest, a click on a marker opening its
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

    # The district's zoom: the four are one cluster, with its count.
    poll(lambda: all(board.evaluate("id => window.SOC_BOARD.tickets.has(id)", t.ticket_id) for t in ours), 15,
         "the four on the board")
    poll(lambda: (c := cluster_of(board, ids)) and ids <= set(c["ids"]), 10, "one cluster holding the four")
    cluster = cluster_of(board, ids)
    assert cluster["count"] == len(cluster["ids"]) >= 4
    group = board.locator("#map #clusters .cluster").filter(has_text=str(cluster["count"])).first
    assert set(group.get_attribute("data-ticket-ids").split()) >= ids
    for t in ours:
        expect(board.locator(f'#map .marker[data-ticket-id="{t.ticket_id}"]')).to_have_class(re.compile(r"\bclustered\b"))

    # Clicking the cluster zooms in on it; at the closest zoom (x8) the four are four markers again.
    for expected_zoom in ("2", "4", "8"):
        current = cluster_of(board, ids)
        if current is None:   # already split: zoom in further on the place
            board.evaluate("([lon, lat]) => window.SOC_BOARD.map.zoom(window.SOC_BOARD.map.z * 2, lon, lat)", [lon, lat])
        else:
            board.locator(f'#map #clusters .cluster[data-ticket-ids~="{sorted(ids & set(current["ids"]))[0]}"]').click()
        expect(board.locator("#map")).to_have_attribute("data-zoom", expected_zoom)
    assert cluster_of(board, ids) is None
    for t in ours:
        marker = board.locator(f'#map .marker[data-ticket-id="{t.ticket_id}"]')
        expect(marker).to_be_visible()
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
    expected = board.evaluate("""c => [...window.SOC_BOARD.tickets.values()]
        .filter(e => e.t.status !== 'closed' && e.t.community === c).length""", community)
    assert expected >= sum(t.community == community for t in ours) >= 1
    expect(polygon).to_have_attribute("data-open", str(expected))
    assert "rgba(229, 57, 53" in polygon.evaluate("p => p.style.fill")
    name = CONFIG.district.communities[community].name
    expect(board.locator(f'#map .community-label[data-community="{community}"]')).to_have_text(f"{name} {expected}")
    board.screenshot(path=str(artifacts / "board-map-communities.png"))
