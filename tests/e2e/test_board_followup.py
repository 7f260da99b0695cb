"""The duty officer's 回访 from the board: a closed hotline case shows the follow-up results, and
"unsatisfied" sends it back to the department (发回重办), in the real browser."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support import DUTY_OFFICER, poll

pytestmark = pytest.mark.integration


def test_the_officer_follows_up_a_closed_hotline_case_from_the_board(pipeline, pages, build):
    report = build.city()
    pipeline.send("soc.raw.city", report)
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == report["case_no"]), 30, "the hotline ticket")
    owner = ticket.department
    assert pipeline.post(f"/api/tickets/{ticket.ticket_id}/accept", owner, {})[0] == 200
    pipeline.upload_after_photo(ticket.ticket_id, owner)  # garbage is resolved with one (routing.yaml)
    for action, department, body in [("resolve", owner, {"resolution": "已清运"}),
                                      ("verify", DUTY_OFFICER, {"passed": True})]:
        assert pipeline.post(f"/api/tickets/{ticket.ticket_id}/{action}", department, body)[0] == 200
    board = pages.board()
    row = board.locator(f'#alerts > li[data-ticket-id="{ticket.ticket_id}"]')
    expect(row).to_have_attribute("data-status", "closed", timeout=10_000)
    buttons = row.locator('button[data-action^="followup-"]')
    expect(buttons).to_have_count(4)
    row.locator('button[data-action="followup-unsatisfied"]').click()
    expect(row).to_have_attribute("data-status", "dispatched", timeout=10_000)
    expect(buttons).to_have_count(0)
    sent_back = pipeline.ticket(ticket.ticket_id)
    assert (sent_back.rating, sent_back.reworks, sent_back.followups[0].by) == ("unsatisfied", 1, "张值班")
