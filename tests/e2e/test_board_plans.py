"""The pre-plan runs on the board, in a real headless Chromium against a stack of their own (a run opens tickets
in several departments' inboxes, which the shared stack's other tests would count): the centre starts a plan,
the board's panel shows the run with its tasks at 0 of N, a task done moves it to 1 of N, and the stand-down
takes it off the board."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Pages
from tests.support import DUTY_OFFICER, Pipeline, running_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plans_stack(tmp_path_factory) -> Iterator[Pipeline]:
    with running_pipeline(tmp_path_factory.mktemp("plans-board")) as running:
        yield running


@pytest.fixture
def plan_pages(request, browser, plans_stack, artifacts) -> Iterator[Pages]:
    opened = Pages(browser, plans_stack)
    yield opened
    report = getattr(request.node, "rep_call", None)
    opened.close(request.node.name if report is not None and report.failed else None, artifacts)
    assert not opened.page_errors, f"JavaScript errors on the page: {opened.page_errors}"


def test_the_board_shows_a_runs_progress_and_drops_it_when_stood_down(plans_stack, plan_pages):
    board = plan_pages.board()
    panel = board.locator("#plan-runs")
    expect(panel).to_be_hidden()
    status, run = plans_stack.post("/api/plans/typhoon_ii/activate", DUTY_OFFICER, {"reason": "台风橙色预警，启动Ⅱ级响应"})
    assert status == 201, run
    shown = panel.locator(f'.plan-run[data-run-id="{run["run_id"]}"]')
    expect(shown).to_be_visible(timeout=20_000)  # the board polls its extras every 10 s
    expect(shown.locator(".plan-progress")).to_have_text("已完成 0/3")
    expect(shown.locator("li.plan-task")).to_have_count(3)
    expect(shown.locator("li.plan-task").first).to_contain_text("住建安监站 · 工地停工检查 · 待签收")
    expect(shown).to_contain_text("台风橙色预警，启动Ⅱ级响应")

    first = run["tasks"][0]
    for action, who, body in (("accept", first["department"], {}),
                              ("resolve", first["department"], {"resolution": "已全部停工"}),
                              ("verify", DUTY_OFFICER, {"passed": True})):
        assert plans_stack.post(f"/api/tickets/{first['ticket_id']}/{action}", who, body)[0] == 200
    expect(shown.locator(".plan-progress")).to_have_text("已完成 1/3", timeout=20_000)
    expect(shown.locator(f'li.plan-task[data-ticket-id="{first["ticket_id"]}"]')).to_have_attribute("data-status", "closed")

    board.click("#lang")
    expect(shown.locator(".plan-progress")).to_have_text("1 of 3 done")
    expect(shown.locator("strong")).to_have_text("Typhoon response level II plan")
    board.click("#lang")

    status, _ = plans_stack.post(f"/api/plan-runs/{run['run_id']}/stand-down", DUTY_OFFICER, {"reason": "台风转向"})
    assert status == 200
    expect(panel).to_be_hidden(timeout=20_000)


def accident_run(stack) -> dict:
    """The major-accident plan's run: started here, or the one another test of this module started."""
    status, run = stack.post("/api/plans/major_accident/activate", DUTY_OFFICER, {"reason": "演练：滨海大道多车相撞"})
    if status == 409:
        status, run = stack.get(f"/api/plan-runs/{run['run_id']}", "ops_centre")
        assert status == 200, run
        return run
    assert status == 201, run
    return run


def test_a_clerk_ticks_the_checklist_of_their_departments_task_in_the_inbox(plans_stack, plan_pages):
    run = accident_run(plans_stack)
    task = next(t for t in run["tasks"] if t["department"] == "traffic_police")
    inbox = plan_pages.inbox("traffic_police", name="赵交警")
    card = inbox.locator(f'li.card[data-ticket-id="{task["ticket_id"]}"]')
    expect(card).to_be_visible(timeout=20_000)
    lines = card.locator(".checklist li")
    expect(lines).to_have_count(3)
    expect(lines.first).to_contain_text("警力到场并设置警戒区")
    lines.first.locator("input[type=checkbox]").check()
    expect(lines.first).to_have_attribute("data-done", "true", timeout=10_000)
    expect(lines.first).to_contain_text("赵交警")
    expect(inbox.locator("#error")).to_be_hidden()
    status, detail = plans_stack.get(f"/api/plan-runs/{run['run_id']}", "ops_centre")
    ticked = next(t for t in detail["tasks"] if t["ticket_id"] == task["ticket_id"])["checklist"][0]
    assert (ticked["done"], ticked["by"]) == (True, "赵交警")
    # Unticked again by the same clerk.
    lines.first.locator("input[type=checkbox]").uncheck()
    expect(lines.first).to_have_attribute("data-done", "false", timeout=10_000)


def test_a_task_card_offers_the_nearest_available_resources_its_task_needs(plans_stack, plan_pages):
    run = accident_run(plans_stack)
    task = next(t for t in run["tasks"] if t["department"] == "traffic_police")
    inbox = plan_pages.inbox("traffic_police", name="钱交警")
    card = inbox.locator(f'li.card[data-ticket-id="{task["ticket_id"]}"]')
    tow = card.locator('.resources li[data-kind="tow_truck"]')
    expect(tow).to_have_attribute("data-resource-id", "tow_truck_01", timeout=20_000)  # 清障拖车2号 is in repair
    expect(card.locator('.resources li[data-kind="ambulance"]')).to_contain_text("暂无可用")
    tow.locator("button[data-action=assign-resource]").click()
    expect(tow).to_have_attribute("data-state", "assigned", timeout=10_000)
    expect(tow.locator("button")).to_have_count(0)
    status, listed = plans_stack.get("/api/resources?kind=tow_truck", "ops_centre")
    assert {r["id"]: (r["state"], r["ticket_id"]) for r in listed["items"]}["tow_truck_01"] == \
        ("assigned", task["ticket_id"])
    assert plans_stack.post("/api/resources/tow_truck_01/release", "traffic_police", {})[0] == 200
