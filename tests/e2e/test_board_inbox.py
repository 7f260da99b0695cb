"""The board and the inbox in a real headless Chromium against the real stack (Tansu, Redis, a worker).

The worker-restart test restarts the session's worker, so it runs last in this module.
"""
from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from handlers.privacy import mask_personal
from tests.support import poll

pytestmark = pytest.mark.integration

RED = "rgb(229, 57, 53)"
PHONE = "13800138000"
HTML_DESCRIPTION = f"<img src=x onerror=alert(1)><script>alert(2)</script>请联系{PHONE}"


def row(board, ticket_id: str):
    return board.locator(f'#alerts > li[data-ticket-id="{ticket_id}"]')


def card(inbox, ticket_id: str):
    return inbox.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')


def act_in_inbox(inbox, ticket_id: str, action: str, text: str, field: str) -> None:
    """Open an action's inline form on a card, write the note and submit it."""
    the_card = card(inbox, ticket_id)
    the_card.locator(f'.buttons button[data-action="{action}"]').click()
    form = the_card.locator(f'form[data-action="{action}"]')
    form.locator(f'textarea[name="{field}"]').fill(text)
    form.locator('button[type="submit"]').click()
    expect(form).to_have_count(0)


def ticket_ids_on(board) -> list[str]:
    return board.eval_on_selector_all("#alerts > li", "rows => rows.map(r => r.dataset.ticketId)")


def test_red_flood_appears_live_and_goes_through_the_closed_loop(pipeline, pages, build, artifacts):
    board = pages.board()
    event = build.flood(value=4.35)  # above the danger level 4.0: red
    the_row = board.locator(f'#alerts > li[data-source-ref^="{event["station_id"]}@"]')

    sent = time.monotonic()
    pipeline.send("soc.raw.flood", event)
    expect(the_row).to_have_attribute("data-severity", "red", timeout=3000)
    elapsed = time.monotonic() - sent
    assert elapsed < 3.0, f"the red alert took {elapsed:.2f}s to reach the board"
    print(f"red alert on the board {elapsed:.2f}s after it was produced")

    ticket_id = the_row.get_attribute("data-ticket-id")
    expect(the_row).to_have_attribute("data-status", "dispatched")
    expect(the_row.locator(".band")).to_have_css("background-color", RED)
    expect(the_row.locator(".status")).to_have_text("待签收")
    expect(the_row.locator(".tag.source")).to_have_text("三防")
    expect(the_row.locator(".community")).to_have_text("海滨社区")
    expect(the_row.locator(".department")).to_have_text("街道三防办")
    expect(the_row.locator(".occ")).to_have_text("×1")
    expect(the_row.locator(".time")).to_have_text(re.compile(r"^\d{2}:\d{2}:\d{2}$"))
    expect(the_row.locator(".sla")).to_have_text(re.compile(r"签收剩余 \d"))
    # Markers are drawn once the map is zoomed in (the district's zoom shows a cluster per community).
    board.evaluate("window.SOC_BOARD.map.zoom(2)")
    marker = board.locator(f'#map circle.marker[data-ticket-id="{ticket_id}"]')
    expect(marker).to_have_attribute("data-severity", "red")
    expect(marker).to_have_attribute("fill", "#e53935")
    assert int(board.locator('[data-counter="red"] .n').inner_text()) >= 1
    assert int(board.locator('[data-counter="flood"] .n').inner_text()) >= 1
    board.screenshot(path=str(artifacts / "board.png"))

    # The department accepts, then resolves, in its inbox; the board follows each step live.
    inbox = pages.inbox("flood_control", name="李工")
    the_card = card(inbox, ticket_id)
    expect(the_card).to_have_attribute("data-status", "dispatched")
    expect(inbox.locator("#cards > li").first).to_have_attribute("data-severity", "red")  # most severe first
    act_in_inbox(inbox, ticket_id, "accept", "已签收，人员赶赴现场", "note")
    expect(the_card).to_have_attribute("data-status", "accepted")
    expect(the_row).to_have_attribute("data-status", "accepted", timeout=5000)
    expect(the_row.locator(".sla")).to_have_text(re.compile(r"处置剩余 \d"))

    act_in_inbox(inbox, ticket_id, "resolve", "已开闸泄洪，水位回落", "resolution")
    expect(the_card).to_have_attribute("data-status", "resolved")
    expect(the_row).to_have_attribute("data-status", "resolved", timeout=5000)
    the_card.locator("details summary").click()
    expect(the_card.locator(".history li")).to_have_count(3)  # dispatch, accept, resolve
    expect(the_card.locator(".history")).to_contain_text("已开闸泄洪，水位回落")
    inbox.screenshot(path=str(artifacts / "inbox.png"))

    # The duty officer sends it back for rework, with a note written inline on the board.
    the_row.locator('button[data-action="rework"]').click()
    the_row.locator('form[data-action="rework"] input[name="note"]').fill("现场仍有积水，请复查")
    the_row.locator('button[data-action="rework-submit"]').click()
    expect(the_row).to_have_attribute("data-status", "dispatched", timeout=5000)
    assert pipeline.ticket(ticket_id).reworks == 1
    assert pipeline.ticket(ticket_id).history[-1].note == "现场仍有积水，请复查"

    # Second round: accept, resolve, and this time the officer verifies and the ticket closes.
    expect(the_card).to_have_attribute("data-status", "dispatched", timeout=5000)  # the inbox polls every 3 s
    act_in_inbox(inbox, ticket_id, "accept", "", "note")
    expect(the_row).to_have_attribute("data-status", "accepted", timeout=5000)
    act_in_inbox(inbox, ticket_id, "resolve", "泵站加开两台，积水已排净", "resolution")
    expect(the_row).to_have_attribute("data-status", "resolved", timeout=5000)
    the_row.locator('button[data-action="verify"]').click()
    expect(the_row).to_have_attribute("data-status", "closed", timeout=5000)
    expect(the_row.locator(".status")).to_have_text("已结案")
    expect(marker).to_have_count(0)  # the map shows open tickets only
    expect(the_card).to_have_attribute("data-status", "closed", timeout=5000)
    closed = pipeline.ticket(ticket_id)
    assert closed.status.value == "closed" and closed.history[-1].by.startswith("张值班")
    assert ticket_ids_on(board).count(ticket_id) == 1
    expect(board.locator("#error")).to_be_hidden()
    expect(inbox.locator("#error")).to_be_hidden()


def test_html_payload_renders_as_text_and_phones_are_masked(pipeline, pages, build):
    board = pages.board()
    event = build.city(description=HTML_DESCRIPTION)  # garbage overflow in liyuan -> ws_liyuan
    pipeline.send("soc.raw.city", event)
    the_row = board.locator(f'#alerts > li[data-source-ref="{event["case_no"]}"]')
    expect(the_row).to_have_count(1, timeout=10_000)
    ticket_id = the_row.get_attribute("data-ticket-id")

    description = the_row.locator(".desc")
    expect(description).to_contain_text("<script>alert(2)</script>")
    expect(description).to_contain_text("<img src=x onerror=alert(1)>")
    expect(description).to_contain_text("138****8000")
    inbox = pages.inbox(pipeline.ticket(ticket_id).department)
    expect(card(inbox, ticket_id).locator(".desc")).to_contain_text("<script>alert(2)</script>")

    for page in (board, inbox):
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("#alerts script, #cards script").count() == 0
        assert PHONE not in page.content()
        assert PHONE not in page.locator("body").inner_text()
    assert not pages.dialogs


def test_client_masks_personal_data_like_the_backend(pipeline, pages):
    """Both pages mask on their own too: the same rules as handlers/privacy.py, on every string shown."""
    board = pages.board()
    samples = ["请联系13800138000", "+86 138-0013-8000 转", "电话 0755-26881234", "（0755）2688 1234",
               "075526881234", "138 0013 8000", "编号 913800138000123", "1380013800", "1234567",
               "138.0013.8000", "１３８－００１３－８０００", "一三八〇〇一三八〇〇〇", "0755·2688·1234",
               "1 3 8 0 0 1 3 8 0 0 0", "138\u200b0013\n8000", "幺三八零零幺三八零零零", "身份证44030519900101123X",
               "邮箱 zhang.san@example.com", "2026-12-06 14:30 水位2.35米"]
    masked = board.evaluate("samples => samples.map(s => SOC.maskPersonal(s))", samples)
    assert masked == [mask_personal(s) for s in samples]
    assert board.evaluate("SOC.maskPersonal('１３８００１３８０００')") == "138****8000"


def _raw_ticket(ticket_id: str, department: str) -> dict:
    """A ticket as the API would return it, but with phone numbers the backend would have masked."""
    now = datetime.now(timezone.utc)
    iso = lambda dt: dt.isoformat()  # noqa: E731
    return {
        "ticket_id": ticket_id, "incident_id": "city-x", "source_ref": "12345-x", "dedup_key": "k",
        "department": department, "watchers": [], "relation": "own", "out_of_jurisdiction": False, "source": "city",
        "category": "city_other", "subcategory": "other", "severity": "orange",
        "title": f"回电 {PHONE}", "description": f"请联系{PHONE}或0755-26881234 <b>bold</b>",
        "community": "liyuan", "lat": 22.53, "lon": 113.91, "status": "accepted", "escalation": "reminded",
        "occurrences": 2, "incident_ids": [], "observed_at": iso(now), "received_at": iso(now),
        "last_seen_at": iso(now), "dispatched_at": iso(now), "accept_due": iso(now + timedelta(minutes=10)),
        "resolve_due": iso(now + timedelta(hours=2)), "accepted_at": iso(now), "resolved_at": None,
        "closed_at": None, "reworks": 0, "returns": 0,
        "extension": {"by": f"王 {PHONE}", "until": iso(now + timedelta(days=1)), "reason": f"联系 {PHONE}",
                      "requested_at": iso(now)},
        "previous_ticket_id": None, "successor_ticket_id": None, "version": 3,
        "history": [{"at": iso(now), "by": f"王 {PHONE}", "action": "accept", "note": f"已电话 {PHONE}",
                     "event_id": "e1", "kind": "accept", "text": f"12月6日 14:23 王 {PHONE}签收：已电话 {PHONE}",
                     "text_en": f"6 Dec 14:23 王 {PHONE} accepted: 已电话 {PHONE}"}],
    }


def test_unmasked_phones_from_the_api_are_masked_on_both_pages(pipeline, pages):
    """Even if a payload reached the API unmasked, neither page shows the number."""
    board_ticket = _raw_ticket("T-E2E-PHONE-B", "city_management")
    board = pages._page({"width": 1920, "height": 1080})
    board.route("**/api/alerts/stream*", lambda route: route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        body=f"id: 1-0\nevent: snapshot\ndata: {json.dumps([board_ticket], ensure_ascii=False)}\n\n"))
    board.goto(f"{pipeline.worker.url}/")
    pages.sign_in(board, pages.user("ops_centre"))
    expect(row(board, "T-E2E-PHONE-B")).to_have_count(1)
    expect(row(board, "T-E2E-PHONE-B").locator(".esc")).to_have_text("催办")
    expect(row(board, "T-E2E-PHONE-B").locator(".desc")).to_contain_text("138****8000")

    inbox_ticket = _raw_ticket("T-E2E-PHONE-I", "ws_liyuan")
    inbox = pages._page({"width": 1400, "height": 1000})
    inbox.route("**/api/tickets?*", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({"total": 1, "limit": 200, "offset": 0, "items": [inbox_ticket]}, ensure_ascii=False))
        if "limit=200" in route.request.url else route.continue_())
    inbox.goto(f"{pipeline.worker.url}/inbox")
    pages.sign_in(inbox, pages.user("ws_liyuan"))
    the_card = card(inbox, "T-E2E-PHONE-I")
    expect(the_card).to_have_count(1)
    the_card.locator("details summary").click()
    expect(the_card.locator(".history")).to_contain_text("138****8000")
    expect(the_card.locator(".desc")).to_contain_text("<b>bold</b>")
    expect(the_card.locator(".desc")).to_contain_text("0755-****1234")
    the_card.locator('.buttons button[data-action="resolve"]').click()
    expect(the_card.locator('form[data-action="resolve"]')).to_have_count(1)

    for page in (board, inbox):
        assert PHONE not in page.content()
        assert PHONE not in page.locator("body").inner_text()
        assert page.locator("b").count() == 0


def test_inbox_shows_api_errors_and_extension_goes_to_the_board(pipeline, pages, build):
    event = build.traffic()
    pipeline.send("soc.raw.traffic", event)
    ticket = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the ticket")[0]
    board = pages.board()
    inbox = pages.inbox("traffic_police")
    the_card = card(inbox, ticket.ticket_id)
    expect(the_card).to_have_attribute("data-status", "dispatched")

    # An extension that ends before the current deadline: the API says 409 and the page shows why.
    the_card.locator('.buttons button[data-action="extend"]').click()
    form = the_card.locator('form[data-action="extend"]')
    form.locator('input[name="until"]').fill("2020-01-01T10:00")
    form.locator('textarea[name="reason"]').fill("需协调拖车")
    form.locator('button[type="submit"]').click()
    error = inbox.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("409")
    expect(error).to_contain_text("later than the current resolve deadline")
    expect(form).to_have_count(1)  # the form stays for a correction

    # A valid one: the card shows the pending request, and so does the board, where the officer approves.
    until = (ticket.resolve_due + timedelta(days=2)).astimezone(timezone(timedelta(hours=8)))
    form.locator('input[name="until"]').fill(until.strftime("%Y-%m-%dT%H:%M"))
    form.locator('button[type="submit"]').click()
    expect(form).to_have_count(0)
    expect(error).to_be_hidden()
    expect(the_card.locator(".ext")).to_be_visible()
    the_row = row(board, ticket.ticket_id)
    expect(the_row.locator(".ext")).to_be_visible(timeout=5000)
    the_row.locator('button[data-action="approve-extension"]').click()
    expect(the_row.locator(".ext")).to_have_count(0, timeout=5000)
    assert pipeline.ticket(ticket.ticket_id).resolve_due == until.replace(second=0, microsecond=0)

    # A body the API rejects as invalid (a return needs a reason): the 422 and the field are shown.
    act_in_inbox(inbox, ticket.ticket_id, "accept", "", "note")
    expect(the_card).to_have_attribute("data-status", "accepted")
    the_card.locator('.buttons button[data-action="return"]').click()
    form = the_card.locator('form[data-action="return"]')
    form.locator('button[type="submit"]').click()
    expect(error).to_be_visible()
    expect(error).to_contain_text("422")
    expect(error).to_contain_text("reason")
    expect(the_card).to_have_attribute("data-status", "accepted")
    form.locator('textarea[name="reason"]').fill("非本单位职责，应由城管处理")
    form.locator('button[type="submit"]').click()
    expect(the_card).to_have_attribute("data-status", "returned")
    expect(error).to_be_hidden()
    the_row = row(board, ticket.ticket_id)
    expect(the_row).to_have_attribute("data-status", "returned", timeout=5000)

    # The officer re-dispatches the returned ticket from the board; it leaves this inbox.
    the_row.locator('button[data-action="redispatch"]').click()
    the_row.locator('form[data-action="redispatch"] select[name="department"]').select_option("city_management")
    the_row.locator('button[data-action="redispatch-submit"]').click()
    expect(the_row).to_have_attribute("data-status", "dispatched", timeout=5000)
    expect(the_row).to_have_attribute("data-department", "city_management")
    expect(the_row.locator(".department")).to_have_text("城管执法队")
    expect(the_card).to_have_count(0, timeout=5000)


def test_filters_counters_and_language(pipeline, pages, build):
    red = build.flood(value=4.5, community="yugang")
    pipeline.send("soc.raw.flood", red)
    blue_event = build.traffic(type="illegal_parking", community="xingang")
    pipeline.send("soc.raw.traffic", blue_event)
    poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == blue_event["event_id"]), 30, "the traffic ticket")
    board = pages.board()
    red_row = board.locator(f'#alerts > li[data-source-ref^="{red["station_id"]}@"]')
    other_row = board.locator(f'#alerts > li[data-source-ref="{blue_event["event_id"]}"]')
    expect(red_row).to_have_count(1)   # a fresh page shows what is open from the snapshot
    expect(other_row).to_have_count(1)

    board.select_option("#filter-severity", "red")
    expect(other_row).to_have_count(0)
    expect(red_row).to_have_count(1)
    severities = board.eval_on_selector_all("#alerts > li", "rows => rows.map(r => r.dataset.severity)")
    assert severities and set(severities) == {"red"}
    assert all(c["severity"] == "red" for c in board.evaluate("window.SOC_BOARD.map.communities()"))
    board.evaluate("window.SOC_BOARD.map.zoom(2)")
    assert all(m == "red" for m in board.eval_on_selector_all("#map circle.marker", "ms => ms.map(m => m.dataset.severity)"))
    board.select_option("#filter-severity", "")
    board.select_option("#filter-source", "traffic")
    board.select_option("#filter-community", "xingang")
    expect(other_row).to_have_count(1)
    expect(red_row).to_have_count(0)
    board.select_option("#filter-source", "")
    board.select_option("#filter-community", "")
    board.select_option("#filter-department", "flood_control")
    expect(red_row).to_have_count(1)
    expect(other_row).to_have_count(0)
    board.select_option("#filter-department", "")

    # The stack is shared: tickets open and close while the store is read, so both sides are read again.
    counter = board.locator('[data-counter="open"] .n')
    poll(lambda: counter.text_content() == str(len(pipeline.tickets_where(lambda t: t.status.value != "closed"))),
         30, "the open counter equal to the open tickets", interval=0.5)

    board.click("#lang")
    expect(red_row.locator(".status")).to_have_text("Dispatched")
    expect(red_row.locator(".tag.source")).to_have_text("Flood")
    expect(board.locator("#conn")).to_have_text("Connected")
    board.click("#lang")
    expect(red_row.locator(".status")).to_have_text("待签收")


def test_board_survives_a_worker_restart_without_duplicate_rows(pipeline, pages, build, wait_ready):
    before = build.traffic()
    pipeline.send("soc.raw.traffic", before)
    board = pages.board()
    before_row = board.locator(f'#alerts > li[data-source-ref="{before["event_id"]}"]')
    expect(before_row).to_have_count(1, timeout=10_000)
    assert board.evaluate("window.SOC_BOARD.stats.snapshots") == 1

    pipeline.worker.process.stop()
    expect(board.locator("#conn")).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    process, _ = pipeline.stack.start_worker(web_port=pipeline.worker.port)
    pipeline.worker.process = process
    wait_ready()
    expect(board.locator("#conn")).to_have_attribute("data-state", "connected", timeout=30_000)

    after = build.traffic(community="guiwan")
    pipeline.send("soc.raw.traffic", after)
    after_row = board.locator(f'#alerts > li[data-source-ref="{after["event_id"]}"]')
    expect(after_row).to_have_count(1, timeout=10_000)
    # The same incident again: the ticket's row is replaced (occurrences 2), not added.
    pipeline.send("soc.raw.traffic", dict(after, event_id=f"{after['event_id']}-again", observed_at=build.at(1)))
    expect(after_row.locator(".occ")).to_have_text("×2", timeout=10_000)
    expect(before_row).to_have_count(1)

    ids = ticket_ids_on(board)
    assert len(ids) == len(set(ids)), f"duplicate rows: {[i for i in ids if ids.count(i) > 1]}"
    board.evaluate("window.SOC_BOARD.map.zoom(2)")
    markers = board.eval_on_selector_all("#map circle.marker", "ms => ms.map(m => m.dataset.ticketId)")
    assert len(markers) == len(set(markers)) and markers
    # It resumed from Last-Event-ID rather than starting over from a snapshot.
    assert board.evaluate("window.SOC_BOARD.stats.snapshots") == 1
    assert board.evaluate("window.SOC_BOARD.stats.connects") >= 2
