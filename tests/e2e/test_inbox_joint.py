"""The inbox of joint handling (主办/协办) and disputed dispatch (派单异议): a supporting department accepts its
part and reports on it from its inbox; the owner disputes a dispatch and the centre's duty officer moves the
ticket to the department suggested."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support import poll

pytestmark = pytest.mark.integration


def opened(pipeline, event: dict) -> str:
    pipeline.send("soc.raw.traffic", event)
    found = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the new ticket")
    return found[0].ticket_id


def act(card, action: str, text: str) -> None:
    card.locator(f'.buttons button[data-action="{action}"]').click()
    form = card.locator(f'form[data-action="{action}"]')
    form.locator("textarea").fill(text)
    form.locator('button[data-action="submit"]').click()


def test_a_supporting_department_accepts_and_reports_on_its_part_from_its_inbox(pipeline, pages, build):
    ticket_id = opened(pipeline, build.traffic(type="road_obstruction"))
    inbox = pages.inbox("city_management", name="周城管")
    card = inbox.locator(f'#watched > li[data-ticket-id="{ticket_id}"]')
    part = card.locator('.support li[data-department="city_management"]')
    expect(part).to_have_attribute("data-status", "asked", timeout=20_000)
    expect(part).to_contain_text("城管执法队 · 待签收")
    # Its own part's actions only: the lead's accept is not offered here.
    expect(card.locator('.buttons button[data-action="accept"]')).to_have_count(0)
    act(card, "support-accept", "马上到场")
    expect(part).to_have_attribute("data-status", "accepted", timeout=10_000)
    act(card, "support-feedback", "残留物已清运")
    expect(part).to_have_attribute("data-status", "fed_back", timeout=10_000)
    expect(part).to_contain_text("已反馈：残留物已清运")
    expect(card.locator('.history li[data-kind="support_feedback"]')).to_contain_text("周城管（城管执法队）反馈协办情况：残留物已清运")
    expect(card.locator(".buttons button")).to_have_count(0)
    expect(inbox.locator("#error")).to_be_hidden()
    shown = pipeline.ticket(ticket_id)
    assert [(p.department, p.status.value, p.feedback) for p in shown.support] == \
        [("city_management", "fed_back", "残留物已清运")]


def test_the_owner_disputes_and_the_duty_officer_reassigns_as_suggested(pipeline, pages, build):
    ticket_id = opened(pipeline, build.traffic())
    # The API takes the suggestion; the inbox form takes the reason.
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/dispute", "traffic_police",
                                 {"reason": "系路面塌陷，非交通事故", "suggest": "city_management"})
    assert status == 200, body
    officer = pages.inbox("ops_centre", name="张值班")
    card = officer.locator(f'li.card[data-ticket-id="{ticket_id}"]')
    expect(card.locator(".dispute")).to_contain_text("派单异议：系路面塌陷，非交通事故（建议：城管执法队）", timeout=20_000)
    act(card, "rule-reassign", "路面塌陷归城管")
    poll(lambda: (t := pipeline.ticket(ticket_id)) is not None and t.department == "city_management", 10,
         "the ticket with city management")
    expect(officer.locator("#error")).to_be_hidden()

    # The new owner may dispute in its turn, from its inbox.
    clerk = pages.inbox("city_management", name="吴城管")
    own = clerk.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')
    act(own, "dispute", "塌陷在燃气管道上方，应由燃气公司处理")
    expect(own).to_have_attribute("data-status", "returned", timeout=10_000)
    assert pipeline.ticket(ticket_id).dispute.reason == "塌陷在燃气管道上方，应由燃气公司处理"
