"""The red strip is whole, in the real headless Chromium against a stack of its own (300 open red and orange
tickets would crowd every other test's strip): its count equals the API's count of open red and orange tickets,
every one of them is on one of its pages, overdue ones come first, one station's tickets sit together, and the
wall screen turns the pages by itself."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from playwright.sync_api import expect

from schemas.enums import TicketStatus
from tests.e2e.conftest import BOARD_VIEWPORT, Pages
from tests.support import CONFIG, Pipeline, poll, running_pipeline

pytestmark = pytest.mark.integration

COMMUNITIES = sorted(CONFIG.district.communities)
OPEN = [s.value for s in TicketStatus if s is not TicketStatus.closed]
RED, ORANGE, SHARED = 180, 118, 2   # SHARED stations open two tickets four hours apart: 300 in all


@pytest.fixture(scope="module")
def crowded(tmp_path_factory) -> Iterator[Pipeline]:
    with running_pipeline(tmp_path_factory.mktemp("strip-logs")) as running:
        yield running


@pytest.fixture
def strip_pages(request, browser, crowded, artifacts) -> Iterator[Pages]:
    opened = Pages(browser, crowded)
    yield opened
    report = getattr(request.node, "rep_call", None)
    opened.close(request.node.name if report is not None and report.failed else None, artifacts)
    assert not opened.page_errors, f"JavaScript errors on the page: {opened.page_errors}"


def listing(pipeline: Pipeline, query: str) -> dict:
    """GET /api/tickets?query, waiting out the API's row budget (429 says how long) rather than failing."""
    while True:
        code, body = pipeline.get(f"/api/tickets?{query}", "ops_centre")
        if code != 429:
            assert code == 200, body
            return body
        time.sleep(body["retry_after_s"])


def open_count(pipeline: Pipeline) -> int:
    return sum(listing(pipeline, f"severity={severity}&status={status}&limit=1")["total"]
               for severity in ("red", "orange") for status in OPEN)


def open_red_and_orange(pipeline: Pipeline) -> set[str]:
    """Every open red and orange ticket's id, page by page, for each open status and both severities."""
    ids: set[str] = set()
    for severity in ("red", "orange"):
        for status in OPEN:
            offset = 0
            while True:
                body = listing(pipeline, f"severity={severity}&status={status}&limit=200&offset={offset}")
                ids |= {t["ticket_id"] for t in body["items"]}
                offset += len(body["items"])
                if offset >= body["total"] or not body["items"]:
                    break
    return ids


def strip_cards(board) -> list[dict]:
    return board.eval_on_selector_all("#pinned-list > li", """cs => cs.map(c => ({id: c.dataset.ticketId,
        severity: c.dataset.severity, deadline: c.dataset.deadline, group: c.dataset.group || '',
        first: c.classList.contains('group-first')}))""")


def test_300_open_red_and_orange_are_all_on_the_strip_with_a_true_count(crowded, strip_pages, build, artifacts):
    pipeline = crowded
    stations = []
    for i in range(RED + ORANGE):
        station = f"WL-S{i:03d}-{build.unique}"
        above = 0.3 if i < RED else -0.8   # 4.3: red, 3.2: orange
        pipeline.send("soc.raw.flood", build.flood(COMMUNITIES[i % len(COMMUNITIES)], station_id=station,
                                                   value=round(4.0 + above, 2)))
        stations.append(station)
    shared = stations[:SHARED]
    for station in shared:   # the same station past rules.yaml's 180-minute dedup window: a second ticket of it
        pipeline.send("soc.raw.flood", build.flood("haibin", station_id=station, value=4.4, observed_at=build.at(240)))
    expected = RED + ORANGE + SHARED
    poll(lambda: open_count(pipeline) >= expected, 180, f"{expected} open red and orange tickets", 1.0)
    api_ids = open_red_and_orange(pipeline)
    assert len(api_ids) >= expected

    board = strip_pages.board()
    strip = board.locator("#pinned")
    expect(strip).to_have_attribute("data-total", str(len(api_ids)), timeout=30_000)
    expect(strip.locator(".pinned-title")).to_have_text(re.compile(rf"· 共 {len(api_ids)} 件$"))
    pages = int(strip.get_attribute("data-pages"))
    per_page = len(strip_cards(board))
    assert pages >= 2 and per_page >= 2
    expect(board.locator("#pinned-page")).to_have_text(f"第 1/{pages} 页")
    board.screenshot(path=str(artifacts / "board-strip-300.png"))

    # Page by page with ›: every open red and orange ticket once, and nothing else.
    seen: list[dict] = []
    for page in range(1, pages + 1):
        expect(strip).to_have_attribute("data-page", str(page))
        seen += strip_cards(board)
        if page < pages:
            board.click("#pinned-next")
    expect(board.locator("#pinned-next")).to_be_disabled()
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) and set(ids) == api_ids
    assert {c["severity"] for c in seen} == {"red", "orange"}

    # What needs a person now first: every overdue card before every card still in time.
    now = datetime.now().astimezone()
    overdue = [datetime.fromisoformat(c["deadline"].replace("Z", "+00:00")) < now if c["deadline"] else False for c in seen]
    assert overdue == sorted(overdue, reverse=True)
    # One station's two tickets together, one incident marked on its first card.
    for station in shared:
        ticket_ids = {t.ticket_id for t in pipeline.tickets_where(lambda t, s=station: t.source_ref.startswith(s))}
        assert len(ticket_ids) == 2, [t.source_ref for t in pipeline.tickets_where(lambda t, s=station: s in t.source_ref)]
        at = [i for i, c in enumerate(seen) if c["id"] in ticket_ids]
        assert at[1] == at[0] + 1, at
        assert seen[at[0]]["group"] and seen[at[0]]["group"] == seen[at[1]]["group"]
        assert (seen[at[0]]["first"], seen[at[1]]["first"]) == (True, False)

    # The wall screen turns the pages by itself, on its own clock.
    wall = strip_pages._page(BOARD_VIEWPORT)
    wall.clock.install()
    wall.goto(f"{pipeline.worker.url}/")
    wall.click("#wall-link")
    wall.fill("#token", pipeline.wall_token)
    wall.click("#wall-form button[type=submit]")
    wall.clock.pause_at(datetime.fromtimestamp(wall.evaluate("Date.now()") / 1000 + 1, timezone.utc))
    wall_strip = wall.locator("#pinned")
    # Its stream is real; its drawing waits for its clock.
    poll(lambda: (wall.clock.run_for(500), wall_strip.get_attribute("data-total") == str(len(api_ids)))[1], 30,
         "the wall's strip drawn")
    expect(wall_strip).to_have_attribute("data-page", "1")
    first = strip_cards(wall)[0]["id"]
    wall.clock.run_for(15_000)
    expect(wall_strip).to_have_attribute("data-page", "1")
    wall.clock.run_for(6_000)
    expect(wall_strip).to_have_attribute("data-page", "2")
    assert first not in {c["id"] for c in strip_cards(wall)}
