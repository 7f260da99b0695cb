"""The inbox shows "source back to normal" on a ticket whose station read normal long enough after its
alarm (rules.yaml all_clear), and the ticket stays open for the centre to verify, in the real browser."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support import poll

pytestmark = pytest.mark.integration


def test_a_ticket_whose_source_is_back_to_normal_says_so_in_the_inbox(pipeline, pages, build):
    station = f"JS-{build.unique}"

    def waterlogging(cm: float, minutes: float) -> dict:
        return build.flood(station_id=station, kind="waterlogging", value=cm, warning_level=None, danger_level=None,
                           observed_at=build.at(minutes=minutes))

    pipeline.send("soc.raw.flood", waterlogging(32, -40))
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(station)), 30, "the ticket")
    for minutes in (-30, -20, -10):
        pipeline.send("soc.raw.flood", waterlogging(0.5, minutes))
    poll(lambda: pipeline.ticket(ticket.ticket_id).source_cleared_at, 30, "source_cleared_at")
    inbox = pages.inbox("flood_control")
    card = inbox.locator(f'#cards > li[data-ticket-id="{ticket.ticket_id}"]')
    expect(card.locator(".cleared")).to_contain_text("数据已恢复正常")
    expect(card).to_have_attribute("data-status", "dispatched")
