"""The review page (/reviews) in the real headless Chromium on a stack of its own (a response level changes
every other test's tickets): the centre starts level III and stands it down, a red traffic accident comes in
between; the page opens on that level period, lists its course as the API does in Chinese at local time
(English on the switch), and a duty officer writes a finding with its action, owner and due date that the API
then holds; a leader reading the page is refused when saving."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Pages
from tests.integration.payloads import Builder
from tests.support import CONFIG, poll, running_pipeline

pytestmark = pytest.mark.integration

# ISO times and offsets, snake_case words (enum and department ids), null and friends: never on the page.
MACHINE = re.compile(r"\d{4}-\d{2}-\d{2}T|[+-]\d{2}:\d{2}\b|\b[a-z]+_[a-z_]+\b|\b(null|undefined|NaN|manual)\b")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("reviews-page-stack")) as running:
        yield running


@pytest.fixture
def pages(request, browser, stack, artifacts):
    opened = Pages(browser, stack)
    yield opened
    report = getattr(request.node, "rep_call", None)
    opened.close(request.node.name if report is not None and report.failed else None, artifacts)


def decide(stack, level: str, reason: str) -> None:
    status, body = stack.post("/api/response", "ops_centre", {"level": level, "reason": reason})
    assert status == 201, body
    poll(lambda: any(c["reason"] == reason for c in stack.get("/api/response", "district_leadership")[1]["history"]),
         10, f"the decision {reason!r} in force")


def test_the_review_page_shows_the_level_period_and_the_centre_writes_its_findings(stack, pages, artifacts):
    decide(stack, "III", "暴雨橙色预警，启动Ⅲ级")
    accident = Builder(CONFIG, "reviewpage").traffic(road="望海路", injuries=3)
    stack.send("soc.raw.traffic", accident)
    poll(lambda: stack.tickets_where(lambda t: t.source_ref == accident["event_id"]), 30, "the accident's ticket")
    decide(stack, "none", "雨停，解除响应")
    period = poll(lambda: [p for p in stack.get("/api/reviews/levels", "ops_centre")[1]["periods"] if not p["ongoing"]],
                  15, "the level period over")[0]

    def reviewed():
        # The red accident starts the accident pre-plan: its run reaches the worker's mirror a moment later.
        status, found = stack.get(f"/api/reviews/level/{period['change_id']}", "ops_centre")
        assert status == 200, found
        return found if any(line["kind"] == "plan_started" for line in found["timeline"]) else None

    review = poll(reviewed, 15, "the accident's pre-plan in the review")

    page = pages._page({"width": 1366, "height": 900})
    page.goto(f"{stack.worker.url}/reviews")
    pages.sign_in(page, pages.user("ops_centre", name="周值班"))
    expect(page.locator("#doc")).to_be_visible(timeout=15_000)
    expect(page.locator("#timeline li")).to_have_count(len(review["timeline"]))
    expect(page.locator("#timeline")).to_contain_text("决定：暴雨橙色预警，启动Ⅲ级")
    expect(page.locator("#review-title")).to_contain_text("Ⅲ级应急响应复盘")
    text = page.inner_text("#doc")
    assert MACHINE.findall(text) == [], MACHINE.findall(text)
    assert "红色工单" in text
    assert page.get_attribute("#pdf", "href") == f"/api/reviews.pdf?change={period['change_id']}&lang=zh"
    # The period's tickets on the district's map, as many dots as the review has points.
    expect(page.locator("#incident-map")).to_have_attribute("data-points", str(len(review["points"])))
    assert page.locator("#incident-map svg path").count() >= len(CONFIG.district.communities)
    expect(page.locator("#silences li")).to_have_count(max(1, len(review["silences"])))
    expect(page.locator("#compound li")).to_have_count(max(1, len(review["compound"])))
    # The charts: a bar per hour of the period, a row per department with tickets due to be accepted.
    expect(page.locator("#opened-chart")).to_have_attribute("data-slots", str(len(review["opened"]["starts"])))
    due = [row for row in review["measures"]["departments"] if row["rates"]["accepted_on_time"] is not None]
    expect(page.locator("#accept-chart")).to_have_attribute("data-rows", str(len(due)))
    expect(page.locator("#opened-title")).to_have_text("每小时派单（按等级）")

    page.click("#add-finding")
    row = page.locator("#findings tbody tr").last
    row.locator(".finding").fill("红色事故签收用时过长")
    row.locator(".action").fill("事故类工单直派交警值班台")
    row.locator(".owner").select_option("traffic_police")
    row.locator(".due").fill("2027-03-31")
    page.click("#save-findings")
    expect(page.locator("#findings-meta")).to_contain_text("第 1 版，周值班")
    status, written = stack.get(f"/api/reviews/level-{period['change_id']}/findings", "district_leadership")
    assert status == 200 and written["findings"] == [{
        "finding": "红色事故签收用时过长", "action": "事故类工单直派交警值班台", "owner": "traffic_police",
        "due": "2027-03-31", "done": False, "owner_name": "交警大队海湾中队", "owner_name_en": "Traffic police"}]

    page.click("#lang")
    expect(page.locator("#review-title")).to_contain_text("review of the level III response")
    expect(page.locator("#doc")).to_contain_text("6. Where the incidents were")
    expect(page.locator("#findings-meta")).to_contain_text("Version 1, written by 周值班")
    page.screenshot(path=str(artifacts / "reviews-page.png"), full_page=True)

    leader = pages._page({"width": 1366, "height": 900})
    leader.goto(f"{stack.worker.url}/reviews?change={period['change_id']}")
    pages.sign_in(leader, pages.user(CONFIG.district.leadership, name="陈主任"))
    expect(leader.locator("#findings tbody tr")).to_have_count(1, timeout=15_000)
    leader.click("#save-findings")
    expect(leader.locator("#error")).to_contain_text("duty officer of the centre")
    assert pages.page_errors == []
