"""The board on the wall screen and the compound card of correlation, in the
real headless Chromium against the real stack: the pinned red/orange strip in deadline order, the alarm for
a new red ticket (not for a blue one; muted when muted), 已知悉 recorded in the history, arrows and Enter,
a waterlogging ticket with the congestion it caused grouped under it and linked on the map, and screenshots
at 1920x1080 and 3840x2160 (tests/artifacts)."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from schemas.records import HistoryKind
from tests.support import poll

pytestmark = pytest.mark.integration


def one_ticket(pipeline, station: str):
    found = pipeline.tickets_where(lambda t: t.source_ref.startswith(station))
    return found[0] if found else None


def deadline(ticket) -> datetime | None:
    if ticket.status.value == "dispatched":
        return ticket.accept_due
    if ticket.status.value == "accepted":
        return ticket.resolve_due
    return None


def strip_ids(board) -> list[str]:
    """The strip's order across all its pages."""
    return board.evaluate("window.SOC_BOARD.strip.ids()")


def show_pin(board, ticket_id: str):
    """The strip's card of the ticket, its page brought up (the strip pages when crowded)."""
    board.evaluate("id => window.SOC_BOARD.strip.show(id)", ticket_id)
    return board.locator(f'#pinned-list > li[data-ticket-id="{ticket_id}"]')


def alarms(board) -> list[dict]:
    return board.evaluate("window.SOC_BOARD.alarms.slice()")


def wait_alarm(board, ticket_id: str, kind: str | None = None, timeout: float = 45) -> None:
    """Until the board has raised an alarm for the ticket and announced it (board.yaml's policy sounds at most once
    per interval, 30 s: an alarm raised just after another sound waits for the next)."""
    # page.evaluate, not wait_for_function: the pages' CSP refuses the eval that a predicate string needs.
    poll(lambda: any(a["ticket_id"] == ticket_id and (kind is None or a["kind"] == kind) and a["announced"]
                     for a in alarms(board)), timeout, f"an alarm for {ticket_id}")


def reading(build, station: str, above_danger: float, community: str = "haibin") -> dict:
    # danger 4.0, warning 3.0: 4.2 is red, 3.2 orange, 2.6 blue (rules.yaml water_level)
    return build.flood(community, station_id=station, value=4.0 + above_danger)


def test_the_strip_pins_red_and_orange_by_nearest_deadline_with_countdown(pipeline, pages, build, artifacts):
    board = pages.board()
    red, orange = f"WL-R-{build.unique}", f"WL-O-{build.unique}"
    pipeline.send("soc.raw.flood", reading(build, red, 0.2))
    pipeline.send("soc.raw.flood", reading(build, orange, -0.8, "wanghai"))
    tickets = poll(lambda: (a := one_ticket(pipeline, red)) and (b := one_ticket(pipeline, orange)) and (a, b), 30,
                   "the red and orange tickets")
    assert [t.severity.value for t in tickets] == ["red", "orange"]
    ours = {t.ticket_id for t in tickets}

    def strip_matches_deadlines() -> bool:
        shown = [i for i in strip_ids(board) if i in ours]
        current = [pipeline.ticket(i) for i in ours]
        return shown == [t.ticket_id for t in sorted(current, key=deadline)]

    poll(strip_matches_deadlines, 15, "the strip in deadline order")
    # Every card of the strip is open red or orange, and their deadlines never go down.
    cards = board.eval_on_selector_all("#pinned-list > li", "cs => cs.map(c => [c.dataset.severity, c.dataset.deadline])")
    assert all(sev in ("red", "orange") for sev, _ in cards)
    dues = [d for _, d in cards if d]
    assert dues == sorted(dues, key=lambda d: datetime.fromisoformat(d.replace("Z", "+00:00")))
    card = show_pin(board, tickets[0].ticket_id)
    expect(card.locator(".sla")).to_have_text(re.compile(r"^签收剩余 \d"))

    # The red one accepted: its deadline becomes the resolve deadline, and the strip reorders to match.
    red_ticket = tickets[0]
    assert pipeline.post(f"/api/tickets/{red_ticket.ticket_id}/accept", red_ticket.department, {})[0] == 200
    poll(lambda: pipeline.ticket(red_ticket.ticket_id).status.value == "accepted", 10, "the red ticket accepted")
    poll(strip_matches_deadlines, 15, "the strip in deadline order after the accept")
    card = show_pin(board, red_ticket.ticket_id)
    expect(card.locator(".sla")).to_have_text(re.compile(r"^处置剩余 \d"))
    # Blue tickets are never pinned.
    assert not board.locator('#pinned-list > li[data-severity="blue"]').count()
    board.screenshot(path=str(artifacts / "board-1920x1080.png"))


def test_a_new_red_ticket_sounds_the_alarm_and_a_blue_one_does_not(pipeline, pages, build):
    board = pages.board()
    enable = board.locator("#sound-enable")
    expect(enable).to_be_visible()
    enable.click()   # the one-time control the browser's autoplay rule needs
    expect(enable).to_be_hidden()
    expect(board.locator("body")).to_have_attribute("data-sound", "on")

    blue, red, red2 = f"WL-B-{build.unique}", f"WL-R-{build.unique}", f"WL-R2-{build.unique}"
    pipeline.send("soc.raw.flood", reading(build, blue, -1.4))
    blue_ticket = poll(lambda: one_ticket(pipeline, blue), 30, "the blue ticket")
    assert blue_ticket.severity.value == "blue"
    expect(board.locator(f'#alerts > li[data-ticket-id="{blue_ticket.ticket_id}"]')).to_have_count(1)
    pipeline.send("soc.raw.flood", reading(build, red, 0.3, "yugang"))
    red_ticket = poll(lambda: one_ticket(pipeline, red), 30, "the red ticket")
    wait_alarm(board, red_ticket.ticket_id)
    mine = [a for a in alarms(board) if a["ticket_id"] in (red_ticket.ticket_id, blue_ticket.ticket_id)]
    assert [(a["kind"], a["ticket_id"], a["sounded"]) for a in mine] == [("new_red", red_ticket.ticket_id, True)]
    # The tones were started on the page's running AudioContext.
    assert board.evaluate("window.SOC_BOARD.sound.played.new_red") >= 1

    # Muted: the alarm is still raised (the hook shows it) but nothing sounds.
    board.click("#mute")
    expect(board.locator("#mute")).to_have_attribute("aria-pressed", "true")
    pipeline.send("soc.raw.flood", reading(build, red2, 0.4, "xingang"))
    red2_ticket = poll(lambda: one_ticket(pipeline, red2), 30, "the second red ticket")
    wait_alarm(board, red2_ticket.ticket_id)
    [muted] = [a for a in alarms(board) if a["ticket_id"] == red2_ticket.ticket_id]
    assert (muted["kind"], muted["sounded"]) == ("new_red", False)
    board.click("#mute")   # leave the next test's board unmuted (the choice is remembered per browser context)


def test_督办_and_通报_sound_the_alarm_and_催办_does_not(pipeline, pages, build):
    """An orange reading that reached Kafka an hour ago is overdue at once: the escalation timer sends its
    steps (催办, 督办, 通报), and the board sounds for 督办 and 通报 it sees, not for 催办 nor the arrival."""
    import json
    import time as clock

    board = pages.board()
    board.click("#sound-enable")
    expect(board.locator("body")).to_have_attribute("data-sound", "on")
    station = f"WL-E-{build.unique}"
    pipeline.producer.send("soc.raw.flood", value=json.dumps(reading(build, station, -0.8, "guiwan")).encode(),
                           timestamp_ms=int((clock.time() - 3600) * 1000))
    pipeline.producer.flush()
    ticket = poll(lambda: one_ticket(pipeline, station), 30, "the overdue orange ticket")
    poll(lambda: pipeline.ticket(ticket.ticket_id).escalation.value == "reported", 60, "the escalation steps")
    wait_alarm(board, ticket.ticket_id, "reported")
    mine = [a for a in alarms(board) if a["ticket_id"] == ticket.ticket_id]
    # The steps the board saw: 通报 always (the last), 督办 when it came in an event of its own.
    assert [a["kind"] for a in mine] in (["escalated", "reported"], ["reported"])
    assert all(a["kind"] == a["step"] and a["sounded"] for a in mine)
    played = board.evaluate("window.SOC_BOARD.sound.played")
    assert played["reported"] + played["escalated"] >= 1
    card = show_pin(board, ticket.ticket_id)
    expect(card.locator(".esc")).to_have_text("通报")
    expect(card.locator(".sla")).to_have_attribute("data-state", "overdue")


def test_seen_is_recorded_in_the_history_and_keyboard_opens_a_ticket(pipeline, pages, build):
    board = pages.board()
    station = f"WL-S-{build.unique}"
    pipeline.send("soc.raw.flood", reading(build, station, -0.8, "rongshu"))
    ticket = poll(lambda: one_ticket(pipeline, station), 30, "the orange ticket")
    row = board.locator(f'#alerts > li[data-ticket-id="{ticket.ticket_id}"]')
    expect(row).to_have_count(1)
    row.locator('button[data-action="seen"]').click()
    expect(row.locator(".seen")).to_have_text(re.compile(r"^已知悉 · 张值班 "))
    expect(row.locator('button[data-action="seen"]')).to_have_count(0)
    pin = show_pin(board, ticket.ticket_id)
    expect(pin.locator(".seen")).to_have_count(1)
    seen = [h for h in pipeline.ticket(ticket.ticket_id).history if h.kind is HistoryKind.acknowledged]
    assert [h.user.name for h in seen] == ["张值班"]

    # Arrows move through the strip, then the feed; Enter opens the selected ticket; Escape closes it.
    board.locator("body").click(position={"x": 5, "y": 300})
    # New tickets may arrive meanwhile (a storm): press until the ticket is selected, each press one step down.
    ids = board.eval_on_selector_all("#pinned-list > li, #alerts > li", "ns => ns.map(n => n.dataset.ticketId)")
    board.keyboard.press("ArrowDown")
    expect(board.locator("body")).to_have_attribute("data-selected", ids[0])
    for _ in range(len(ids) + 20):
        if board.locator("body").get_attribute("data-selected") == ticket.ticket_id:
            break
        before = board.eval_on_selector_all("#pinned-list > li, #alerts > li", "ns => ns.map(n => n.dataset.ticketId)")
        at = before.index(board.locator("body").get_attribute("data-selected"))
        board.keyboard.press("ArrowDown")
        assert board.locator("body").get_attribute("data-selected") == before[at + 1] or len(before) == at + 1
    expect(board.locator("body")).to_have_attribute("data-selected", ticket.ticket_id)
    expect(show_pin(board, ticket.ticket_id)).to_have_class(re.compile(r"\bselected\b"))
    board.keyboard.press("Enter")
    detail = board.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail).to_have_attribute("data-ticket-id", ticket.ticket_id)
    expect(detail.locator("#detail-title")).to_contain_text(ticket.title)
    # The history in words, at local time: no machine words, no ISO timestamps.
    said = detail.locator('.history li[data-kind="acknowledged"]')
    expect(said).to_have_text(re.compile(r"^\d{1,2}月\d{1,2}日 \d{2}:\d{2} 张值班（街道智慧运行中心）已知悉$"))
    expect(detail.locator('.history li[data-kind="dispatch"]')).to_have_text(
        re.compile(r"^\d{1,2}月\d{1,2}日 \d{2}:\d{2} 系统派单至\S+$"))
    history = detail.locator(".history").inner_text()
    assert not re.search(r"pipeline|flood_control|ops_centre|->|\d{4}-\d{2}-\d{2}T|\+00:00", history), history
    board.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    now = board.eval_on_selector_all("#pinned-list > li, #alerts > li", "ns => ns.map(n => n.dataset.ticketId)")
    board.keyboard.press("ArrowUp")
    expect(board.locator("body")).to_have_attribute("data-selected", now[max(0, now.index(ticket.ticket_id) - 1)])


def test_a_waterlogging_ticket_shows_the_congestion_it_caused_as_one_compound_card(pipeline, pages, build, artifacts):
    board = pages.board()
    lat, lon = build.point("liyuan", north_room=0.002)
    station = f"JS-{build.unique}"
    pipeline.send("soc.raw.traffic", {"event_id": build.next_id("SC"), "type": "congestion", "road": "荔园路",
                                      "lat": lat + 0.0018, "lon": lon, "observed_at": build.at(), "speed_kmh": 35.0})
    pipeline.send("soc.raw.flood", build.flood(station_id=station, kind="waterlogging", value=20, lat=lat, lon=lon,
                                               warning_level=None, danger_level=None))

    def linked():
        flood = one_ticket(pipeline, station)
        if flood is None:
            return None
        effects = [r.ticket_id for r in flood.related if r.role == "effect"]
        return (flood, pipeline.ticket(effects[0])) if effects else None

    flood, jam = poll(linked, 60, "the waterlogging and congestion tickets linked")
    cause_row = board.locator(f'#alerts > li[data-ticket-id="{flood.ticket_id}"]')
    effect_row = board.locator(f'#alerts > li[data-ticket-id="{jam.ticket_id}"]')
    expect(cause_row).to_have_attribute("data-compound", "cause", timeout=15_000)
    expect(cause_row).to_have_attribute("data-effects", "1")
    expect(effect_row).to_have_attribute("data-compound", "effect")
    expect(effect_row).to_have_attribute("data-cause-id", flood.ticket_id)
    # The effect sits right under its cause in the feed, and each names the other and the rule.
    following = board.evaluate("id => document.querySelector(`#alerts > li[data-ticket-id='${id}']`)"
                               ".nextElementSibling.dataset.ticketId", flood.ticket_id)
    assert following == jam.ticket_id
    link = cause_row.locator(f'.links button[data-related-id="{jam.ticket_id}"]')
    expect(link).to_have_attribute("data-role", "effect")
    expect(link).to_contain_text("积水致拥堵")
    expect(effect_row.locator(f'.links button[data-related-id="{flood.ticket_id}"]')).to_have_attribute("data-role", "cause")
    # The map draws the link between the two places: at the district's zoom (no markers, community clusters) and
    # zoomed in, from marker to marker.
    line = board.locator(f'#map #links line[data-cause="{flood.ticket_id}"][data-effect="{jam.ticket_id}"]')
    expect(line).to_have_count(1)
    assert line.get_attribute("data-rule") == "积水致拥堵"
    expect(board.locator(f'#map .marker[data-ticket-id="{flood.ticket_id}"]')).to_have_count(0)
    board.evaluate("window.SOC_BOARD.map.zoom(2)")
    marker = board.locator(f'#map .marker[data-ticket-id="{flood.ticket_id}"]')
    expect(marker).to_have_count(1)
    expect(line).to_have_attribute("x1", marker.get_attribute("cx"))

    # The same board on a 4K wall screen: twice the type, nothing cut off.
    wall = pages._page({"width": 3840, "height": 2160})
    wall.goto(f"{pipeline.worker.url}/")
    pages.sign_in(wall, pages.user("ops_centre", name="张值班"))
    expect(wall.locator(f'#alerts > li[data-ticket-id="{flood.ticket_id}"]')).to_have_attribute("data-compound", "cause",
                                                                                                timeout=15_000)
    assert wall.evaluate("getComputedStyle(document.body).fontSize") == "46px"
    assert wall.evaluate("document.documentElement.scrollWidth <= 3840")
    wall.screenshot(path=str(artifacts / "board-3840x2160.png"))


def test_the_wall_role_sees_the_board_and_cannot_act(pipeline, pages, build):
    event = build.traffic()
    pipeline.send("soc.raw.traffic", event)
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the ticket")
    for action, department, body in [("accept", "traffic_police", {}),
                                      ("resolve", "traffic_police", {"resolution": "已处置"})]:
        assert pipeline.post(f"/api/tickets/{ticket.ticket_id}/{action}", department, body)[0] == 200
    wall = pages.board(token=pipeline.wall_token, name="大屏")
    row = wall.locator(f'#alerts > li[data-ticket-id="{ticket.ticket_id}"]')
    expect(row).to_have_attribute("data-status", "resolved", timeout=10_000)
    # The centre's board offers verify on a resolved ticket; the wall's offers nothing at all.
    expect(row.locator('button[data-action="verify"]')).to_be_hidden()
    assert wall.locator("button[data-action]:visible").count() == 0
    assert wall.evaluate("document.body.hasAttribute('data-read-only')")
    officer = pages.board()
    expect(officer.locator(f'#alerts > li[data-ticket-id="{ticket.ticket_id}"] button[data-action="verify"]')).to_be_visible()
    # And the API refuses the wall token's action whatever the page does.
    status, body = pipeline.post(f"/api/tickets/{ticket.ticket_id}/verify", None, {"passed": True},
                                 token=pipeline.wall_token)
    assert status == 403 and "read-only" in body["error"]
