"""Every page fits the screens people have: the 1920x1080 wall screen, the 1366x768 laptop of a
centre or department desk, and a 390x844 phone. At each size the page never scrolls sideways, the header
keeps to at most two lines (once, at 1366x768, the board's title wrapped one character per line and the
header was ~600 px tall), and the board's map stays inside its frame. Each page holds real tickets, a site
and a day's report while it is measured; screenshots in tests/artifacts."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.integration.payloads import Builder
from tests.integration.test_sites_api import site
from tests.integration.test_stats_api import scripted_day
from tests.support import CONFIG, marker

pytestmark = pytest.mark.integration

SIZES = {"wall": {"width": 1920, "height": 1080}, "laptop": {"width": 1366, "height": 768},
         "phone": {"width": 390, "height": 844}}
# The board twice: the centre's whole district, and a community workstation's map zoomed to its community
# (whose markers once spilled outside the map's frame).
PAGES = ["board", "community-board", "inbox", "stats", "daily", "sites"]

# The header's items (its title and each item of its status line), grouped into lines by their vertical
# extent; each item's own height in lines of its text. Read in the page so the figures are the browser's.
MEASURE = """() => {
    const header = document.querySelector('header.topbar');
    const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
    const items = [header.querySelector('h1'), ...header.querySelectorAll('.statusline > *')].filter(visible);
    const lines = [];
    for (const el of items) {
        const r = el.getBoundingClientRect();
        const line = lines.find(l => r.top < l.bottom && r.bottom > l.top);
        if (line) { line.top = Math.min(line.top, r.top); line.bottom = Math.max(line.bottom, r.bottom); }
        else lines.push({top: r.top, bottom: r.bottom});
    }
    const tallest = items.map(el => {
        const style = getComputedStyle(el);
        const lineHeight = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.35;
        return {what: el.id || el.tagName, lines: el.getBoundingClientRect().height / lineHeight};
    }).sort((a, b) => b.lines - a.lines)[0];
    // What sticks out (for the failure message): elements past the right edge not inside a box that scrolls.
    const clipped = el => { for (let p = el.parentElement; p; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
    const overflowing = [...document.querySelectorAll('body *')].filter(el => {
        const r = el.getBoundingClientRect();
        return r.width > 0 && r.right > innerWidth + 1 && !clipped(el);
    }).slice(0, 6).map(el => `${el.tagName}#${el.id}.${el.getAttribute('class')}`);
    return {scrollWidth: document.documentElement.scrollWidth, innerWidth, innerHeight,
            headerHeight: header.getBoundingClientRect().height, lines: lines.length, tallest, overflowing};
}"""


@pytest.fixture(scope="module")
def content(pipeline):
    """Today's tickets (a red traffic accident, a yellow one, a hotline case) and a registered site."""
    build = Builder(CONFIG, marker())  # letters only: a hex marker can read as a phone number
    day, tickets = scripted_day(pipeline, build, days_ago=0)
    status, body = pipeline.post("/api/sites", "construction_safety", site(build))
    assert status == 201, body
    return {"day": day, "red": tickets["red"], "site": body["site_id"]}


def open_page(pages, pipeline, content, name: str, size: str):
    viewport = SIZES[size]
    if name in ("board", "community-board"):
        page = pages.board(department="ws_wanghai" if name == "community-board" else "ops_centre")
        page.set_viewport_size(viewport)
        expect(page.locator(f'#alerts [data-ticket-id="{content["red"].ticket_id}"]')).to_be_attached()
        return page
    page = pages._page(viewport)
    path, department, ready = {
        "inbox": ("/inbox", content["red"].department, f'#cards [data-ticket-id="{content["red"].ticket_id}"]'),
        "stats": ("/stats", CONFIG.district.leadership, "body[data-drawn]"),
        "daily": (f"/stats/daily?date={content['day']}", "ops_centre", f'#events [data-ticket-id="{content["red"].ticket_id}"]'),
        "sites": ("/sites", "construction_safety", f'#sites tr[data-site-id="{content["site"]}"]'),
    }[name]
    page.goto(f"{pipeline.worker.url}{path}")
    pages.sign_in(page, pages.user(department, name="欧阳值班员"))
    expect(page.locator(ready)).to_be_attached(timeout=15_000)
    if name == "stats":
        expect(page.locator("body")).to_have_attribute("data-drawn", re.compile(r"^[1-9]"), timeout=15_000)
    return page


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", PAGES)
def test_the_page_fits_the_screen(pipeline, pages, content, artifacts, name, size):
    page = open_page(pages, pipeline, content, name, size)
    measured = page.evaluate(MEASURE)
    page.screenshot(path=str(artifacts / f"layout-{name}-{size}.png"))
    assert measured["scrollWidth"] <= measured["innerWidth"], str(measured)
    assert measured["lines"] <= 2, str(measured)
    # No item of the header breaks into a column of characters; the header is at most two lines tall
    # (board type is 22 px, its clock 1.25em; two lines with padding stay under 150 px).
    assert measured["tallest"]["lines"] < 2.2, str(measured)
    assert measured["headerHeight"] <= 150, str(measured)
    if (name, size) == ("inbox", "phone"):
        # On the phone every control of the header is on screen, none scrolled out of sight.
        for control in ("#conn", "#lang", "#signout"):
            box = page.locator(control).bounding_box()
            assert box and 0 <= box["x"] and box["x"] + box["width"] <= measured["innerWidth"], (control, box)
    if (name, size) == ("inbox", "phone"):
        # On the phone every control of the header is on screen, none scrolled out of sight.
        for control in ("#conn", "#lang", "#signout"):
            box = page.locator(control).bounding_box()
            assert box and 0 <= box["x"] and box["x"] + box["width"] <= measured["innerWidth"], (control, box)
    if name in ("board", "community-board"):
        frame = page.locator(".map-pane").bounding_box()
        drawn = page.locator("#map").bounding_box()
        assert drawn["width"] > 100 and drawn["height"] > 100, drawn
        assert frame["x"] <= drawn["x"] and drawn["x"] + drawn["width"] <= frame["x"] + frame["width"] + 0.5, (frame, drawn)
        assert frame["y"] <= drawn["y"] and drawn["y"] + drawn["height"] <= frame["y"] + frame["height"] + 0.5, (frame, drawn)
        assert frame["x"] + frame["width"] <= measured["innerWidth"], frame
        # What is drawn outside the map's box is cut at its edge, never painted over the page.
        assert page.evaluate("getComputedStyle(document.querySelector('#map')).overflow") in ("hidden", "clip")
