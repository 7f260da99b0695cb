"""The inbox shows the work: the department's own tickets first, with their buttons; the tickets it only
watches (here the congestion a waterlogging caused, which flood control watches) apart in the 关注 list,
each marked 关注 and without buttons."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.integration.payloads import linked_flood_and_jam

pytestmark = pytest.mark.integration


def test_own_tickets_come_first_with_their_actions_and_watched_ones_are_marked_apart(pipeline, pages, build):
    flood, jam = linked_flood_and_jam(pipeline, build, "guiwan")
    inbox = pages.inbox("flood_control")

    own = inbox.locator(f'#cards > li[data-ticket-id="{flood.ticket_id}"]')
    expect(own).to_have_attribute("data-relation", "own")
    expect(own.locator('.buttons button[data-action="accept"]')).to_be_visible()
    expect(own.locator(".relation")).to_have_count(0)

    watched = inbox.locator(f'#watched > li[data-ticket-id="{jam.ticket_id}"]')
    expect(watched).to_have_attribute("data-relation", "watched")
    expect(watched.locator(".relation")).to_have_text("关注")
    expect(watched.locator(".buttons button")).to_have_count(0)
    expect(inbox.locator("#watching-title")).to_have_text("关注")
    expect(inbox.locator("#summary")).to_have_text(re.compile(r"^本部门在办 \d+ / 共 \d+ · 关注 [1-9]\d*$"))
    assert inbox.locator(f'#cards > li[data-ticket-id="{jam.ticket_id}"]').count() == 0
    # Every card in the work list is the department's own, and the work list comes before the 关注 list.
    assert set(inbox.eval_on_selector_all("#cards > li", "cards => cards.map(c => c.dataset.relation)")) == {"own"}
    assert set(inbox.eval_on_selector_all("#watched > li", "cards => cards.map(c => c.dataset.relation)")) == {"watched"}
    assert inbox.evaluate("() => Boolean(document.querySelector('#cards').compareDocumentPosition("
                          "document.querySelector('#watched')) & Node.DOCUMENT_POSITION_FOLLOWING)")

    inbox.click("#lang")
    expect(watched.locator(".relation")).to_have_text("Watching")
