"""A notification's link (/inbox#ticket=<id>) opens the inbox on that ticket, its history unfolded."""
from __future__ import annotations

import pytest

from tests.support import poll

pytestmark = pytest.mark.integration


def test_the_ticket_link_of_a_notification_focuses_its_card(pipeline, pages, build):
    pipeline.send("soc.raw.flood", build.flood(value=4.6))
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(f"WL-{build.unique}")), 30,
                    "the red flood ticket")
    inbox = pages.inbox("flood_control")
    inbox.evaluate(f"location.hash = '#ticket={ticket.ticket_id}'")
    card = inbox.locator(f'li.card[data-ticket-id="{ticket.ticket_id}"]')
    poll(lambda: "linked" in (card.get_attribute("class") or ""), 15, "the linked card")
    assert card.locator("details.history-box").get_attribute("open") is not None
    # Only one card is marked.
    assert inbox.locator("li.card.linked").count() == 1
