"""Silences through the real stack: the API, soc.silences, the ticket step and the silenced list."""
from __future__ import annotations

import re
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from streams.accounts import service_actor
from tests.support import CONFIG, DUTY_OFFICER, poll

pytestmark = pytest.mark.integration



def span(hours: float = 2) -> dict:
    now = datetime.now(timezone.utc)
    return {"starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=hours)).isoformat()}


def make(pipeline, station: str, mode: str = "suppress") -> dict:
    status, body = pipeline.post("/api/silences", "ops_centre", {
        "matchers": [{"name": "ref", "value": station}, {"name": "source", "value": "flood"}],
        "comment": "泵站计划检修", "mode": mode, **span()})
    assert status == 201, body
    poll(lambda: any(s["silence_id"] == body["silence_id"] and s["state"] == "active"
                     for s in pipeline.get("/api/silences?state=active", "ops_centre")[1]["silences"]),
         30, "the silence on every worker")
    return body


def test_only_the_centre_makes_silences_and_bad_ones_get_a_json_4xx(pipeline):
    body = {"matchers": [{"name": "ref", "value": "X"}], "comment": "c", **span()}
    assert pipeline.post("/api/silences", "flood_control", body) == (
        403, {"error": "only the operations centre manages silences"})
    status, error = pipeline.post("/api/silences", "ops_centre", {**body, **span(hours=24 * 8)})
    assert status == 422 and "a silence lasts at most 7 days" in error["fields"][0]["msg"]
    status, error = pipeline.post("/api/silences", "ops_centre", {**body, "matchers": [{"name": "severity",
                                                                                           "value": "blue"}]})
    assert status == 422 and "besides severity" in error["fields"][0]["msg"]
    assert pipeline.get("/api/silences?state=gone", "ops_centre") == (
        400, {"error": "state must be one of active, pending, expired"})
    assert pipeline.request("DELETE", "/api/silences/nope", "ops_centre")[0] == 404


def test_a_suppressed_station_opens_nothing_and_a_red_reading_opens_quietly(pipeline, build):
    station = f"WL-{build.unique}"
    silence = make(pipeline, station)
    pipeline.send("soc.raw.flood", build.flood(value=3.5))  # over the warning level only
    listed = poll(lambda: [i for i in pipeline.get("/api/silenced", "ops_centre")[1]["incidents"]
                           if i["source_ref"].startswith(station)], 30, "the reading in the silenced list")
    assert listed[0]["silence_id"] == silence["silence_id"]
    assert not pipeline.tickets_where(lambda t: t.source_ref.startswith(station))
    metrics = urllib.request.urlopen(f"{pipeline.worker.url}/metrics", timeout=10).read().decode()
    assert re.search(r'soc_incidents_silenced_total\{source="flood"\} [1-9]', metrics)

    pipeline.send("soc.raw.flood", build.flood(value=4.8, observed_at=build.at(minutes=1)))  # over danger: red
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(station)), 30, "the red ticket")
    assert ticket.severity.value == "red" and ticket.silenced_by == silence["silence_id"]
    assert ticket.history[-1].note.startswith("红色不屏蔽")

    # The review after the storm counts what the silence kept back, not only the red ticket it let through.
    now = datetime.now(timezone.utc)
    status, review = pipeline.get(f"/api/reviews?from={quote((now - timedelta(hours=1)).isoformat())}"
                                  f"&to={quote((now + timedelta(hours=1)).isoformat())}", "ops_centre")
    assert status == 200, review
    [line] = [s for s in review["silences"] if s["silence_id"] == silence["silence_id"]]
    assert (line["suppressed"], line["tickets"]) == (1, [ticket.ticket_id])
    assert "期间屏蔽事件 1 起（未立案），红色事件照常立案并静默 1 件" in line["text"]


def test_ending_a_silence_lets_the_next_report_open_a_ticket(pipeline, build):
    station = f"WL-{build.unique}"
    silence = make(pipeline, station)
    status, ended = pipeline.request("DELETE", f"/api/silences/{silence['silence_id']}", "ops_centre")
    assert status == 200 and ended["state"] == "expired" and ended["expired_by"] == service_actor(CONFIG, "ops_centre").name
    poll(lambda: any(s["silence_id"] == silence["silence_id"]
                     for s in pipeline.get("/api/silences?state=expired", "ops_centre")[1]["silences"]),
         30, "the silence expired on every worker")
    pipeline.send("soc.raw.flood", build.flood(value=3.5))
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(station)), 30, "the ticket")
    assert ticket.silenced_by is None


def test_a_pump_station_down_inhibits_waterlogging_near_it_until_its_ticket_closes(pipeline, build):
    lat, lon = build.point("haibin")
    pump = build.flood(station_id=f"PS-{build.unique}", kind="pump_station", status="offline", value=None,
                       warning_level=None, danger_level=None, lat=lat, lon=lon)
    pipeline.send("soc.raw.flood", pump)
    [source] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(f"PS-{build.unique}")), 30,
                    "the pump station ticket")
    assert source.inhibits == ["pump_down_waterlogging"]

    def waterlogging(n: int, minutes: float) -> dict:
        return build.flood(station_id=f"JS-{build.unique}-{n}", kind="waterlogging", value=20, warning_level=None,
                           danger_level=None, lat=lat + 0.001, lon=lon, observed_at=build.at(minutes=minutes))

    # The worker learns of the pump ticket through soc.inhibitors; a reading that meets it there is held back.
    sent = {"n": 0}

    def held_back():
        sent["n"] += 1
        pipeline.send("soc.raw.flood", waterlogging(sent["n"], sent["n"]))
        entries = pipeline.get("/api/silenced", "ops_centre")[1]["incidents"]
        return [e for e in entries if e["source_ticket_id"] == source.ticket_id]

    [entry] = poll(held_back, 30, "a waterlogging reading held back by the pump ticket", interval=2)[:1]
    assert entry["silence_id"] == "inhibit:pump_down_waterlogging"

    # The pump station fixed and the ticket closed: the next reading opens its own ticket.
    for action, body, who in (("accept", {}, "flood_control"),
                              ("resolve", {"resolution": "泵站已恢复"}, "flood_control"),
                              ("verify", {"passed": True}, DUTY_OFFICER)):
        status, answer = pipeline.post(f"/api/tickets/{source.ticket_id}/{action}", who, body)
        assert status == 200, answer
    ref = f"JS-{build.unique}-after"
    later = {"n": 0}

    def reading_after_close():
        # Each a new reading (its own time): an identical one would be a replay of a held-back one.
        later["n"] += 1
        pipeline.send("soc.raw.flood", {**waterlogging(0, 200 + later["n"]), "station_id": ref})
        return pipeline.tickets_where(lambda t: t.source_ref.startswith(ref))

    [after] = poll(reading_after_close, 30, "a ticket after the pump ticket closed", interval=2)[:1]
    assert after.status.value == "dispatched"
