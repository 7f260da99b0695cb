"""Silences on the board, in a real headless Chromium against the real stack: a silence made from a
ticket's "silence similar" button, the banner of active silences, the silenced list, and ending a
silence from the banner.

The stack is shared by the whole session, so other tests' silences may be active too: these tests look
for their own silence (by id and comment), never for "the only one", and end what they make.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from tests.support import poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
# Past the flood dedup window (180 min in rules.yaml) after the first reading: a new problem at the station,
# not one more occurrence of its open ticket (which a silence never stops counting).
LATER = 240


def short_time(value: str) -> str:
    """What the board shows for a time: HH:MM today in Asia/Shanghai, MM-DD HH:MM on another day."""
    when = datetime.fromisoformat(value).astimezone(CST)
    return when.strftime("%H:%M") if when.date() == datetime.now(CST).date() else when.strftime("%m-%d %H:%M")


def silences(pipeline, state: str) -> list[dict]:
    status, body = pipeline.get(f"/api/silences?state={state}", "ops_centre")
    assert status == 200, body
    return body["silences"]


def ours(pipeline, comment: str) -> dict | None:
    return next((s for s in silences(pipeline, "active") if s["comment"] == comment), None)


def end_quietly(pipeline, silence_id: str) -> None:
    """Clean-up: the stack is shared, so a silence left behind would change later tests."""
    pipeline.request("DELETE", f"/api/silences/{silence_id}", "ops_centre")


def test_a_silence_from_a_ticket_keeps_the_station_quiet_until_it_is_ended_from_the_banner(pipeline, pages, build):
    first = build.flood(value=3.5)  # over the warning level: a ticket opens
    station = first["station_id"]
    pipeline.send("soc.raw.flood", first)
    board = pages.board()
    station_rows = board.locator(f'#alerts > li[data-source-ref^="{station}@"]')
    expect(station_rows).to_have_count(1, timeout=10_000)
    the_row = station_rows.first

    # The form is prefilled from the ticket: the station (source_ref up to "@") and the source, 2 h, suppress.
    the_row.locator('button[data-action="silence"]').click()
    form = the_row.locator('form[data-action="silence"]')
    box = lambda name: form.locator(f'label[data-matcher="{name}"] input[type=checkbox]')  # noqa: E731
    expect(box("ref")).to_be_checked()
    expect(form.locator('label[data-matcher="ref"]')).to_contain_text(station)
    expect(box("source")).to_be_checked()
    for name in ("category", "community", "department", "severity"):
        expect(box(name)).not_to_be_checked()
    expect(form.locator('select[name="duration"]')).to_have_value("120")
    expect(form.locator('select[name="mode"]')).to_have_value("suppress")

    # No comment: the browser keeps the form (the comment is required) and nothing is sent.
    form.locator('button[data-action="silence-submit"]').click()
    expect(form).to_have_count(1)
    assert form.locator('input[name="comment"]').evaluate("input => input.validity.valueMissing")

    # Severity alone: the API's 422 and its reason reach the error banner, and the form stays for a correction.
    comment = f"泵站计划检修 {build.unique}"
    form.locator('input[name="comment"]').fill(comment)
    box("ref").uncheck()
    box("source").uncheck()
    box("severity").check()
    form.locator('button[data-action="silence-submit"]').click()
    error = board.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("422")
    expect(error).to_contain_text("besides severity")
    expect(form).to_have_count(1)

    box("severity").uncheck()
    box("ref").check()
    box("source").check()
    form.locator('button[data-action="silence-submit"]').click()
    expect(form).to_have_count(0)
    expect(error).to_be_hidden()
    silence = poll(lambda: ours(pipeline, comment), 30, "the silence on the worker")
    silence_id = silence["silence_id"]
    try:
        assert sorted((m["name"], m["value"], m["is_regex"], m["is_equal"]) for m in silence["matchers"]) == [
            ("ref", station, False, True), ("source", "flood", False, True)]
        assert silence["mode"] == "suppress" and silence["created_by"] == "张值班"
        span = datetime.fromisoformat(silence["ends_at"]) - datetime.fromisoformat(silence["starts_at"])
        assert span == timedelta(hours=2)

        # The banner names it with its end time; expanded, it lists the silence with its matchers.
        banner = board.locator("#silences")
        expect(banner).to_be_visible()
        expect(banner.locator(".message")).to_contain_text("屏蔽中")
        expect(banner.locator(".message")).to_contain_text(f"{comment} · 至 {short_time(silence['ends_at'])}")
        board.click("#silences-expand")
        item = board.locator(f'#silence-list li[data-silence-id="{silence_id}"]')
        expect(item).to_be_visible()
        expect(item.locator(".matchers")).to_contain_text(f"站点/设施={station}")
        expect(item.locator(".matchers")).to_contain_text("来源=三防")
        expect(item.locator(".mode")).to_have_text("屏蔽（不立案）")

        # A new reading at the station (past the open ticket's dedup window) opens nothing: it is listed
        # in the silenced panel under this silence.
        board.click("#silenced-toggle")
        expect(board.locator("#silenced-panel")).to_be_visible()
        pipeline.send("soc.raw.flood", build.flood(value=3.5, observed_at=build.at(minutes=LATER)))
        listed = board.locator(f'#silenced-list tr[data-source-ref^="{station}@"]')
        expect(listed).to_have_count(1, timeout=30_000)  # the panel polls every 10 s
        expect(listed).to_have_attribute("data-silence-id", silence_id)
        expect(listed.locator("td.silence")).to_have_text(silence_id)
        expect(listed.locator("td.ref")).to_contain_text(station)
        assert int(board.locator("#silenced-toggle .n").inner_text()) >= 1
        assert len(pipeline.tickets_where(lambda t: t.source_ref.startswith(station))) == 1
        expect(station_rows).to_have_count(1)

        # In English too.
        board.click("#lang")
        expect(banner.locator(".message")).to_contain_text("active silence")
        expect(banner.locator(".message")).to_contain_text(f"{comment} · until")
        expect(item.locator('button[data-action="end-silence"]')).to_have_text("End now")
        expect(the_row.locator('button[data-action="silence"]')).to_have_text("Silence similar")
        board.click("#lang")

        # "End now" in the banner's list: it leaves the banner, the API has it expired, and the station's
        # next reading opens a ticket again.
        item.locator('button[data-action="end-silence"]').click()
        expect(board.locator("#notice")).to_contain_text(f"屏蔽已结束：{comment}")
        expect(board.locator("#error")).to_be_hidden()
        expect(item).to_have_count(0)
        expect(banner.locator(".message")).not_to_contain_text(comment)
        ended = poll(lambda: next((s for s in silences(pipeline, "expired") if s["silence_id"] == silence_id), None),
                     30, "the silence expired on the worker")
        assert ended["expired_by"] == "张值班"
        pipeline.send("soc.raw.flood", build.flood(value=3.5, observed_at=build.at(minutes=2 * LATER)))
        expect(station_rows).to_have_count(2, timeout=30_000)
        reopened = poll(lambda: [t for t in pipeline.tickets_where(lambda t: t.source_ref.startswith(station))
                                 if t.ticket_id != the_row.get_attribute("data-ticket-id")], 30, "the new ticket")
        assert reopened[0].silenced_by is None
        expect(item).to_have_count(0)  # and it stayed out of the banner across the board's polls meanwhile
    finally:
        end_quietly(pipeline, silence_id)


def test_a_quiet_silence_from_a_city_ticket_matches_category_and_community(pipeline, pages, build):
    """Not a flood ticket: the form offers category and community. Quiet: the next one opens, marked quiet."""
    community = "guiwan"
    lat, lon = build.point(community, north_room=0.003)  # the second case ~330 m north: another grid cell
    first = build.city(community=community, category="illegal_advertising", description="小广告", lat=lat, lon=lon)
    pipeline.send("soc.raw.city", first)
    board = pages.board()
    the_row = board.locator(f'#alerts > li[data-source-ref="{first["case_no"]}"]')
    expect(the_row).to_have_count(1, timeout=10_000)
    category = pipeline.tickets_where(lambda t: t.source_ref == first["case_no"])[0].category.value

    the_row.locator('button[data-action="silence"]').click()
    form = the_row.locator('form[data-action="silence"]')
    box = lambda name: form.locator(f'label[data-matcher="{name}"] input[type=checkbox]')  # noqa: E731
    expect(form.locator('label[data-matcher="ref"]')).to_have_count(0)
    expect(box("category")).to_be_checked()
    expect(box("community")).to_be_checked()
    expect(box("source")).not_to_be_checked()
    expect(form.locator('label[data-matcher="community"]')).to_contain_text("桂湾")
    comment = f"集中整治期间 {build.unique}"
    form.locator('input[name="comment"]').fill(comment)
    form.locator('select[name="duration"]').select_option("30")
    form.locator('select[name="mode"]').select_option("quiet")
    form.locator('button[data-action="silence-submit"]').click()
    expect(form).to_have_count(0)
    silence = poll(lambda: ours(pipeline, comment), 30, "the silence on the worker")
    try:
        assert sorted((m["name"], m["value"]) for m in silence["matchers"]) == [
            ("category", category), ("community", community)]
        assert silence["mode"] == "quiet"
        span = datetime.fromisoformat(silence["ends_at"]) - datetime.fromisoformat(silence["starts_at"])
        assert span == timedelta(minutes=30)
        expect(board.locator("#silences .message")).to_contain_text(comment)

        # Another case of the same kind in the same community: its ticket opens, marked quiet on the board.
        second = build.city(community=community, category="illegal_advertising", description="又一处小广告",
                            lat=round(lat + 0.003, 6), lon=lon, reported_at=build.at(minutes=5))
        pipeline.send("soc.raw.city", second)
        second_row = board.locator(f'#alerts > li[data-source-ref="{second["case_no"]}"]')
        expect(second_row).to_have_count(1, timeout=15_000)
        expect(second_row.locator(".quiet")).to_have_text("静默", timeout=5000)
        expect(second_row.locator(".quiet")).to_have_attribute("data-silence-id", silence["silence_id"])
        [ticket] = pipeline.tickets_where(lambda t: t.source_ref == second["case_no"])
        assert ticket.silenced_by == silence["silence_id"]
        expect(the_row.locator(".quiet")).to_have_count(0)  # opened before the silence
    finally:
        end_quietly(pipeline, silence["silence_id"])
