"""A deployment's basemap (board.yaml basemap) under the board's map, in the real headless Chromium against a
stack of its own: the XYZ tiles covering the view fetched from the configured server (the pages' CSP allows its
origin and no other), placed under the district's communities, re-fetched nearer on zoom, with the attribution
shown; the shipped config has none and the map is the offline sketch alone."""
from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator

import pytest
import yaml
from PIL import Image
from playwright.sync_api import expect

from streams.settings import REPO_ROOT
from tests.e2e.conftest import Pages
from tests.support import Pipeline, poll, running_pipeline

pytestmark = pytest.mark.integration

TILES = "https://tiles.district.example"
BASEMAP = {"url": TILES + "/{z}/{x}/{y}.png", "attribution": "© 区测绘院 离线瓦片", "min_zoom": 12, "max_zoom": 17}
TILE = re.compile(r"^/(\d+)/(\d+)/(\d+)\.png$")


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> Iterator[Pipeline]:
    config_dir = tmp_path_factory.mktemp("basemap") / "config"
    shutil.copytree(REPO_ROOT / "deploy" / "config", config_dir)
    board = config_dir / "board.yaml"
    data = yaml.safe_load(board.read_text(encoding="utf-8"))
    board.write_text(yaml.safe_dump({**data, "basemap": BASEMAP}, allow_unicode=True), encoding="utf-8")
    with running_pipeline(tmp_path_factory.mktemp("basemap-logs"), config_dir) as running:
        yield running


@pytest.fixture
def mapped_pages(request, browser, mapped, artifacts) -> Iterator[Pages]:
    opened = Pages(browser, mapped)
    yield opened
    report = getattr(request.node, "rep_call", None)
    opened.close(request.node.name if report is not None and report.failed else None, artifacts)
    assert not opened.page_errors, f"JavaScript errors on the page: {opened.page_errors}"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (40, 90, 60)).save(out, format="PNG")
    return out.getvalue()


def test_the_configured_basemap_is_drawn_under_the_map_with_its_attribution(mapped, mapped_pages, artifacts):
    import urllib.request
    with urllib.request.urlopen(mapped.worker.url + "/", timeout=10) as response:
        csp = response.headers["Content-Security-Policy"]
    assert f"img-src 'self' data: blob: {TILES};" in csp

    fetched: list[tuple[int, int, int]] = []
    body = png()

    def serve(route):
        z, x, y = map(int, TILE.match(route.request.url.removeprefix(TILES)).groups())
        fetched.append((z, x, y))
        route.fulfill(status=200, content_type="image/png", body=body)

    page = mapped_pages._page({"width": 1920, "height": 1080})
    page.route(f"{TILES}/**", serve)
    page.goto(f"{mapped.worker.url}/")
    mapped_pages.sign_in(page, mapped_pages.user("ops_centre"))
    expect(page.locator("#map")).to_have_attribute("data-basemap", "on", timeout=15_000)
    expect(page.locator("#map-attribution")).to_have_text(BASEMAP["attribution"])
    tiles = page.locator("#map #basemap image.tile")
    expect(tiles.first).to_be_attached()
    drawn = page.eval_on_selector_all("#map #basemap image.tile", "ts => ts.map(t => t.dataset.tile)")
    zooms = {int(t.split("/")[0]) for t in drawn}
    assert len(zooms) == 1 and BASEMAP["min_zoom"] <= zooms.pop() <= BASEMAP["max_zoom"]
    # Every tile drawn was fetched from the server (the CSP let it through), and the tiles lie under the
    # communities: the first SVG layer after the sketch's sea.
    # (A call into the page lets Playwright's sync API run the route handler for the requests made meanwhile.)
    poll(lambda: (page.evaluate("0"), {f"{z}/{x}/{y}" for z, x, y in fetched} >= set(drawn))[1], 15,
         "every drawn tile fetched")
    order = page.evaluate("[...document.querySelector('#map').children].map(n => n.id || n.getAttribute('class'))")
    assert order.index("basemap") < order.index("communities") < order.index("markers")
    page.screenshot(path=str(artifacts / "board-basemap.png"))

    # Zoomed in, nearer tiles.
    first_zoom = int(drawn[0].split("/")[0])
    page.evaluate("window.SOC_BOARD.map.zoom(4)")
    expect(page.locator("#map")).to_have_attribute("data-zoom", "4")
    nearer = page.eval_on_selector_all("#map #basemap image.tile", "ts => ts.map(t => t.dataset.tile)")
    assert nearer and {int(t.split("/")[0]) for t in nearer} == {min(first_zoom + 2, BASEMAP["max_zoom"])}
