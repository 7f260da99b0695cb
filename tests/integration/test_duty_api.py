"""The duty roster routes against a running worker and real Redis: who is on duty, the shifts of a
period, and a handover's snapshot of the open red and orange tickets."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest

from handlers import duty
from streams.accounts import service_actor
from tests.integration.payloads import Builder
from tests.support import CONFIG, DUTY_OFFICER, poll

pytestmark = pytest.mark.integration

DISTRICT = CONFIG.district


def person(stretch) -> dict | None:
    return None if stretch is None else {"member_id": stretch.member_id, "name": stretch.name,
                                         "from": stretch.start.isoformat(), "to": stretch.end.isoformat()}


def no_phone_fields(body: dict) -> None:
    text = json.dumps(body, ensure_ascii=False)
    assert "phone" not in text and "SOC_DUTY_" not in text


def test_anyone_signed_in_sees_who_is_on_duty_now_without_phone_numbers(pipeline):
    for department in ("ops_centre", "flood_control"):
        status, body = pipeline.get("/api/duty/now", department)
        assert status == 200, body
        # The worker's clock decides; the roster says who that is.
        found = duty.on_duty(DISTRICT, datetime.fromisoformat(body["at"]))
        assert body["leader"] == person(found.get("leader")) and body["officer"] == person(found.get("officer"))
        if "officer" in found:
            assert body["shift"] == {"from": found["officer"].start.isoformat(), "to": found["officer"].end.isoformat()}
        no_phone_fields(body)
    status, body = pipeline.get("/api/duty/now")
    assert status == 401 and "error" in body


def test_the_shifts_of_a_week_with_an_override(pipeline):
    query = urlencode({"from": "2026-12-21T08:30:00+08:00", "to": "2026-12-28T08:30:00+08:00"})
    status, body = pipeline.get(f"/api/duty?{query}", "ops_centre")
    assert status == 200, body
    start, end = datetime.fromisoformat("2026-12-21T08:30:00+08:00"), datetime.fromisoformat("2026-12-28T08:30:00+08:00")
    assert body["shifts"] == [{"role": s.role, **person(s)} for s in duty.shifts(DISTRICT, start, end)]
    officers = [s["member_id"] for s in body["shifts"] if s["role"] == "officer"]
    assert officers == ["zhang_wei", "li_na", "wang_qiang", "li_na", "zhao_min", "zhou_jie", "wu_fang"]
    assert isinstance(body["handovers"], list)
    no_phone_fields(body)
    # The leadership reads it too.
    assert pipeline.get(f"/api/duty?{query}", "district_leadership")[0] == 200


@pytest.mark.parametrize("query, status", [
    ({"from": "2026-12-01T00:00:00+08:00", "to": "2027-02-02T00:00:01+08:00"}, 400),   # over 62 days
    ({"from": "2026-12-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00"}, 400),   # empty
    ({"from": "2026-12-01T00:00:00"}, 400),                                            # no offset
    ({"from": "yesterday"}, 400),
    ({"since": "2026-12-01T00:00:00+08:00"}, 400),                                     # unknown parameter
])
def test_a_bad_period_is_400_json(pipeline, query, status):
    got, body = pipeline.get(f"/api/duty?{urlencode(query)}", "ops_centre")
    assert got == status and body["error"], body


def test_a_department_may_not_read_the_roster_or_hand_over(pipeline):
    status, body = pipeline.get("/api/duty", "traffic_police")
    assert status == 403 and body["error"]
    status, body = pipeline.post("/api/duty/handover", "traffic_police", {"note": "交班"})
    assert status == 403 and body["error"]
    assert pipeline.post("/api/duty/handover", None, {"note": "交班"})[0] == 401


@pytest.mark.parametrize("body, status", [({"note": "x", "by": "张伟"}, 422), ({"note": 7}, 422),
                                          (b"{not json", 400), (b"[]", 400)])
def test_a_bad_handover_body_is_4xx_json(pipeline, body, status):
    got, payload = pipeline.post("/api/duty/handover", "ops_centre", body)
    assert got == status and payload["error"], payload


def test_a_handover_records_the_open_red_tickets_and_not_the_closed_ones(pipeline, unique):
    build = Builder(CONFIG, unique)
    red, closed = build.traffic(injuries=3), build.traffic(community="guiwan", injuries=1, road="桂湾路")
    for event in (red, closed):
        pipeline.send("soc.raw.traffic", event)
    tickets = {e["event_id"]: poll(lambda e=e: pipeline.tickets_where(lambda t: t.source_ref == e["event_id"]),
                                   30, "the ticket")[0] for e in (red, closed)}
    red_ticket, closed_ticket = tickets[red["event_id"]], tickets[closed["event_id"]]
    assert (red_ticket.severity.value, closed_ticket.severity.value) == ("red", "orange")
    for action, department, body in [("accept", "traffic_police", {}),
                                     ("resolve", "traffic_police", {"resolution": "已处置"}),
                                     ("verify", DUTY_OFFICER, {"passed": True})]:
        assert pipeline.post(f"/api/tickets/{closed_ticket.ticket_id}/{action}", department, body)[0] == 200

    status, record = pipeline.post("/api/duty/handover", "ops_centre", {"note": "夜间无异常，有事打13912345678"})
    assert status == 201, record
    assert record["by"] == service_actor(CONFIG, "ops_centre").name and record["note"] == "夜间无异常，有事打139****5678"
    at = datetime.fromisoformat(record["at"])
    change, outgoing, incoming = duty.handover(DISTRICT, at)
    assert record["shift_change"] == change.isoformat()
    assert record["outgoing"]["officer"] == person(outgoing.get("officer"))
    assert record["incoming"]["leader"] == person(incoming.get("leader"))
    snapshot = {t["ticket_id"]: t for t in record["open_tickets"]}
    assert closed_ticket.ticket_id not in snapshot
    mine = dict(snapshot[red_ticket.ticket_id])
    assert mine.pop("escalation") in {"none", "reminded", "escalated", "reported"}  # the timer may have moved it
    assert mine == {
        "ticket_id": red_ticket.ticket_id, "title": red_ticket.title, "severity": "red", "status": "dispatched",
        "department": "traffic_police",
        "accept_due": red_ticket.accept_due.isoformat(), "resolve_due": red_ticket.resolve_due.isoformat()}
    assert {t["severity"] for t in record["open_tickets"]} <= {"red", "orange"}
    assert record["open_total"] >= len(record["open_tickets"])
    no_phone_fields(record)

    # The roster of the period around it lists the handover, as recorded.
    query = urlencode({"from": (at - timedelta(minutes=1)).isoformat(), "to": (at + timedelta(minutes=1)).isoformat()})
    status, body = pipeline.get(f"/api/duty?{query}", "ops_centre")
    assert status == 200 and record in body["handovers"]
