"""Backbone on the real broker and Redis: raw events in, department tickets out."""
from __future__ import annotations

import base64
import json
import time

import pytest

from schemas.enums import Severity, TicketStatus
from tests.support import poll

pytestmark = pytest.mark.integration



def by_ref(pipeline, source_ref: str):
    return next(iter(pipeline.tickets_where(lambda t: t.source_ref == source_ref)), None)


def test_flood_over_danger_level_is_red_for_flood_control_and_ops_centre(pipeline, build):
    reading = build.flood(value=4.35)
    started = time.monotonic()
    pipeline.send("soc.raw.flood", reading)
    ref = f'{reading["station_id"]}@{datetime_of(reading)}'
    ticket = poll(lambda: by_ref(pipeline, ref),
                  30, "the red flood ticket")
    elapsed = time.monotonic() - started
    print(f"flood reading -> ticket in Redis: {elapsed:.2f} s")
    assert ticket.severity is Severity.red
    assert ticket.department == "flood_control"
    assert ticket.status is TicketStatus.dispatched
    assert ticket.community == "haibin"
    flood_inbox = {t.ticket_id for t in pipeline.inbox("flood_control")}
    ops_inbox = {t.ticket_id for t in pipeline.inbox("ops_centre")}
    assert ticket.ticket_id in flood_inbox and ticket.ticket_id in ops_inbox
    on_topic = [json.loads(m.value) for m in pipeline.read_topic("soc.tickets") if m.key == ticket.ticket_id.encode()]
    assert on_topic and on_topic[-1]["severity"] == "red"


def test_all_four_sources_reach_the_right_inboxes(pipeline, build):
    # The report comes from 0.0003 degrees north of the site's centre: still in shahe (1.6% of
    # random site points were too near its northern edge, and the report went out of jurisdiction).
    site_lat, site_lon = build.point("shahe", north_room=0.0003)
    pipeline.send("soc.sites", build.site(site_lat, site_lon), key=f"SITE-{build.unique}".encode())
    # Whitelists are registered long before activity; here, wait until the worker has it.
    poll(lambda: pipeline.get(f"/api/sites/SITE-{build.unique}", "ops_centre")[0] == 200, 30, "the site registration")
    sent = {
        "traffic": build.traffic(injuries=1),
        "flood": build.flood(kind="waterlogging", value=35, warning_level=None, danger_level=None),
        "city": build.city(category="illegal_vending", community="rongshu"),
        "construction": build.site_event(lat=site_lat + 0.0003, lon=site_lon, observed_at=build.at(hour=23)),
    }
    for source, payload in sent.items():
        pipeline.send(f"soc.raw.{source}", payload)
    expected = {  # source -> (department, severity, subcategory)
        "traffic": ("traffic_police", Severity.orange, "accident"),
        "flood": ("flood_control", Severity.orange, "waterlogging"),
        "city": ("city_management", Severity.blue, "illegal_vending"),
        # 23:00 at a registered site whose hours end at 22:00: out of hours, at night.
        "construction": ("construction_safety", Severity.orange, "outside_work_hours"),
    }
    refs = {"traffic": sent["traffic"]["event_id"], "city": sent["city"]["case_no"],
            "construction": sent["construction"]["event_id"],
            "flood": f'{sent["flood"]["station_id"]}@{datetime_of(sent["flood"])}'}
    for source, (department, severity, subcategory) in expected.items():
        def mine(t, source=source):
            return t.source_ref == refs[source]
        ticket = poll(lambda: next(iter(pipeline.tickets_where(mine)), None), 30, f"the {source} ticket")
        assert (ticket.department, ticket.severity, ticket.subcategory) == (department, severity, subcategory), source
        assert ticket.ticket_id in {t.ticket_id for t in pipeline.inbox(department)}


def datetime_of(payload: dict) -> str:
    """The payload's time as the flood handler's source_ref writes it (UTC)."""
    from datetime import datetime, timezone

    return datetime.fromisoformat(payload.get("observed_at") or payload["reported_at"]).astimezone(timezone.utc).isoformat()


def test_duplicates_inside_the_window_make_one_ticket(pipeline, build):
    first = build.city(category="manhole_cover_missing")
    copies = [first] + [dict(first, case_no=build.next_id("12345"), reported_at=build.at(minutes=5 * i))
                        for i in range(1, 5)]
    for payload in copies:
        pipeline.send("soc.raw.city", payload)
    # A redelivered copy (same case number) is not another occurrence.
    pipeline.send("soc.raw.city", copies[1])

    def merged():
        # Copies are parsed in parallel partitions: any one of them may be the one that opened it.
        tickets = pipeline.tickets_where(lambda t: t.source_ref in {c["case_no"] for c in copies})
        return tickets if tickets and tickets[0].occurrences == len(copies) else None

    tickets = poll(merged, 30, f"one ticket with {len(copies)} occurrences")
    assert len(tickets) == 1
    assert tickets[0].severity is Severity.orange


MALFORMED = {
    "not_json": b"{not json",
    "not_utf8": b"\xff\xfe\x00garbage",
    "wrong_type": {"lat": "north"},
    "missing_field": {"drop": "event_id"},
    "unknown_value": {"type": "meteor_strike"},
    "out_of_range": {"lat": 123.0},
    "too_large": b"{\"pad\": \"" + b"x" * (1024 * 1024 + 10) + b"\"}",
}


def test_malformed_messages_are_dead_lettered_and_the_rest_processed(pipeline, build):
    valid_before = build.traffic(type="congestion", speed_kmh=10)
    valid_after = build.traffic(type="congestion", speed_kmh=12, community="xingang")
    pipeline.send("soc.raw.traffic", valid_before)
    markers = {}
    for reason, bad in MALFORMED.items():
        if isinstance(bad, dict):
            payload = build.traffic()
            if "drop" in bad:
                payload.pop(bad["drop"])
                payload["road"] = f"marker-{reason}-{build.unique}"
            else:
                payload.update(bad)
                payload["road"] = f"marker-{reason}-{build.unique}"
            value = json.dumps(payload).encode()
        else:
            value = bad
        markers[reason] = value
        pipeline.send("soc.raw.traffic", value)
    pipeline.send("soc.raw.traffic", valid_after)

    for valid in (valid_before, valid_after):
        poll(lambda v=valid: by_ref(pipeline, v["event_id"]), 30, "the valid events around the bad ones")

    def original(record: dict) -> bytes | None:
        if record["raw_base64"] is not None:
            return base64.b64decode(record["raw_base64"])
        return None if record["raw_text"] is None else record["raw_text"].encode()

    def dead_letters():
        found = {}
        for message in pipeline.read_topic("soc.deadletter"):
            record = json.loads(message.value)
            raw = original(record)
            for reason, value in markers.items():
                if raw and value.startswith(raw) and record["raw_size"] == len(value):
                    found[reason] = record
        return found if set(found) == set(markers) else None

    found = poll(dead_letters, 30, "every malformed message in soc.deadletter")
    for reason, record in found.items():
        assert record["error_type"] == reason, (reason, record["message"])
        assert record["source_topic"] == "soc.raw.traffic"
        assert record["offset"] is not None
    assert found["too_large"]["raw_truncated"] is True
    assert found["not_utf8"]["raw_base64"] is not None
