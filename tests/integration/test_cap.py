"""CAP 1.2 through the stack (its own: a CAP typhoon raises the district's response level): the samples of
tests/data/cap posted to POST /api/ingest/cap with the feed's token, the level they move, the Exercise and the
refused documents dead-lettered with the worker unharmed, the signal lowered when an alert expires, and a red
ticket published as CAP that the intake reads back."""
from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from handlers import cap
from tests.support import config_with_rules, marker, poll, running_pipeline

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "cap"
FEED_TOKEN = f"test-cap-{marker()}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A short hold: the signal is read again every 10 s.
    config_dir = config_with_rules(tmp_path_factory, "cap", (r"^  hold: .*$", "  hold: 20s"))
    with running_pipeline(tmp_path_factory.mktemp("cap-stack"), config_dir=config_dir,
                          SOC_CAP_TOKEN_SZMB=FEED_TOKEN) as running:
        yield running


def document(name: str, unique: str, sent: datetime, expires: datetime | None = None) -> bytes:
    """A sample with ids of its own (the references follow) and times around now."""
    text = (DATA / f"{name}.xml").read_text(encoding="utf-8")
    text = re.sub(r"44030041600000_(\d+)", rf"44030041600000_\1_{unique}", text)
    text = re.sub(r"<sent>[^<]+</sent>", f"<sent>{sent.isoformat(timespec='seconds')}</sent>", text)
    text = re.sub(r"<effective>[^<]+</effective>", "", text)
    if expires is not None:
        text = re.sub(r"<expires>[^<]+</expires>", f"<expires>{expires.isoformat(timespec='seconds')}</expires>", text)
    return text.encode()


def post_cap(stack, body: bytes, token: str | None = FEED_TOKEN) -> tuple[int, dict]:
    return stack.request("POST", "/api/ingest/cap", token=token, body=body, headers={"Content-Type": "application/xml"})


def dead_letters(stack, needle: str) -> list[dict]:
    found = [json.loads(r.value) for r in stack.read_topic("soc.deadletter")]
    return [d for d in found if d["source_topic"] == "POST /api/ingest/cap" and needle in (d["raw_text"] or "")]


def flood_readings(stack, station: str) -> list[dict]:
    return [v for v in (json.loads(r.value) for r in stack.read_topic("soc.raw.flood")) if v["station_id"] == station]


def response_changes(stack, station: str) -> list[dict]:
    """The level changes the station's readings caused: soc.response is keyed `<rule>@<dedup key>`, and the
    dedup key names the station (the reason is the ticket's title, in people's words)."""
    latest = {r.key.decode(): json.loads(r.value) for r in stack.read_topic("soc.response")}
    return sorted((c for key, changes in latest.items() if key.endswith(f":{station}") for c in changes),
                  key=lambda c: c["at"])


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def test_a_typhoon_orange_raises_the_level_its_update_to_red_and_its_cancel_lowers_it(stack):
    unique = marker()[:6]
    start = now()
    status, alert = post_cap(stack, document("typhoon_orange_actual", unique, start, start + timedelta(hours=6)))
    assert status == 201, alert
    assert (alert["status"], alert["kind"], alert["severity"], alert["acted"]) == ("Actual", "typhoon", "orange", True)
    station = alert["station_id"]
    [ticket] = poll(lambda: [t for t in stack.inbox("flood_control") if t.source_ref.startswith(station)], 30,
                    "the typhoon ticket")
    assert (ticket.category.value, ticket.severity.value) == ("typhoon", "orange")
    poll(lambda: any(c["trigger"] == "typhoon_orange" and c["level"] == "II" for c in response_changes(stack, station)),
         30, "the typhoon_orange trigger")

    status, update = post_cap(stack, document("typhoon_red_update", unique, start + timedelta(seconds=1),
                                              start + timedelta(hours=6)))
    assert status == 201 and (update["msg_type"], update["severity"], update["station_id"]) == ("Update", "red", station)
    poll(lambda: any(c["trigger"] == "typhoon_red" and c["level"] == "I" for c in response_changes(stack, station)),
         30, "the typhoon_red trigger")
    poll(lambda: stack.ticket(ticket.ticket_id).severity.value == "red", 30, "the ticket raised to red")

    status, cancel = post_cap(stack, document("typhoon_cancel", unique, start + timedelta(seconds=2)))
    assert status == 201 and cancel["msg_type"] == "Cancel"
    # The keep-up timer re-sends the live signal too: wait for the lowering itself, the station's latest reading.
    readings = poll(lambda: (lambda r: r if any(x["signal"] == "white" for x in r) else None)(
        flood_readings(stack, station)), 30, "the lowering")
    assert max(readings, key=lambda r: datetime.fromisoformat(r["observed_at"]))["signal"] == "white"
    # A retry of the same document is taken once.
    status, again = post_cap(stack, document("typhoon_cancel", unique, start + timedelta(seconds=2)))
    assert status == 200 and again["duplicate"] is True


def test_an_exercise_is_recorded_and_dead_lettered_not_ticketed(stack):
    unique = marker()[:6]
    status, body = post_cap(stack, document("exercise", unique, now()))
    assert status == 202 and body == {**body, "status": "Exercise", "acted": False,
                                      "reason": "status Exercise: only Actual alerts are acted on"}
    [letter] = poll(lambda: dead_letters(stack, unique), 30, "the exercise's dead letter")
    assert (letter["error_type"], letter["message"]) == ("not_actual", "status Exercise: only Actual alerts are acted on")
    # The station an Actual alert of this key would have been (handlers/cap.py): nothing was ticketed for it.
    station = cap.station_of("typhoon", body["key"])
    assert not stack.tickets_where(lambda t: t.source_ref.startswith(station))


@pytest.mark.parametrize("name, status, reason", [
    ("malformed", 400, "not_xml"),
    ("entity_expansion", 400, "forbidden_xml"),
    ("circle_outside", 422, "outside_district"),
])
def test_refused_documents_are_4xx_dead_lettered_and_the_worker_goes_on(stack, name, status, reason):
    unique = marker()[:6]
    raw = (DATA / f"{name}.xml").read_bytes().replace(b"</identifier>", f"_{unique}</identifier>".encode())
    code, body = post_cap(stack, raw)
    assert (code, body["reason"]) == (status, reason), body
    [letter] = poll(lambda: dead_letters(stack, unique), 30, "the dead letter")
    assert letter["error_type"] == reason
    assert f'soc_events_rejected_total{{reason="{reason}",source="cap"}}' in urllib.request.urlopen(
        f"{stack.worker.url}/metrics", timeout=10).read().decode()
    # Unharmed: healthy, and the next alert is taken.
    assert stack.get("/healthz")[0] == 200
    start = now()
    code, body = post_cap(stack, document("typhoon_orange_actual", unique, start, start + timedelta(hours=1)))
    assert code == 201, body


def test_feeds_need_their_token_and_updates_an_earlier_alert(stack):
    raw = document("typhoon_orange_actual", marker()[:6], now())
    assert post_cap(stack, raw, token=None) == (401, {"error": "missing bearer token"})
    assert post_cap(stack, raw, token=stack.tokens["ops_centre"]) == (401, {"error": "unknown token"})
    code, body = post_cap(stack, document("typhoon_red_update", marker()[:6], now()))
    assert (code, body["reason"]) == (422, "unknown_reference")
    assert body["error"].startswith("Update must reference an earlier Actual alert")


def test_an_expired_alert_lowers_its_signal_by_itself(stack):
    unique = marker()[:6]
    start = now()
    expires = start + timedelta(seconds=6)
    status, alert = post_cap(stack, document("typhoon_orange_actual", unique, start, expires))
    assert status == 201
    station = alert["station_id"]
    lowering = poll(lambda: [r for r in flood_readings(stack, station) if r["signal"] == "white"], 40, "the lowering")
    assert [datetime.fromisoformat(r["observed_at"]) for r in lowering] == [expires]
    records = [json.loads(r.value) for r in stack.read_topic("soc.cap") if r.key.decode() == alert["key"]]
    assert datetime.fromisoformat(records[-1]["lowered_at"]) == expires


def test_a_red_ticket_as_cap_is_read_back_by_the_intake(stack):
    unique = marker()[:6]
    start = now()
    raw = document("typhoon_orange_actual", unique, start, start + timedelta(hours=1)).replace(
        b"<severity>Severe</severity>", b"<severity>Extreme</severity>")
    status, alert = post_cap(stack, raw)
    assert status == 201 and alert["severity"] == "red"
    [ticket] = poll(lambda: [t for t in stack.inbox("flood_control") if t.source_ref.startswith(alert["station_id"])],
                    30, "the red ticket")
    request = urllib.request.Request(f"{stack.worker.url}/api/tickets/{ticket.ticket_id}/cap",
                                     headers={"Authorization": f"Bearer {stack.tokens['flood_control']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/cap+xml")
        out = cap.parse(response.read())
    assert (out.identifier, out.status, out.info[0].severity, out.info[0].event, out.info[0].headline) == (
        f"SOC-{ticket.ticket_id}", "Actual", "Extreme", "台风", ticket.title)
    # Another department does not see it; an orange ticket has no CAP alert.
    assert stack.get(f"/api/tickets/{ticket.ticket_id}/cap", "traffic_police")[0] == 404
    status, alert = post_cap(stack, document("typhoon_orange_actual", marker()[:6], start,
                                             start + timedelta(hours=1)))
    [orange] = poll(lambda: [t for t in stack.inbox("flood_control") if t.source_ref.startswith(alert["station_id"])],
                    30, "the orange ticket")
    assert stack.get(f"/api/tickets/{orange.ticket_id}/cap", "ops_centre") == (
        409, {"error": "CAP alerts are published for red tickets only", "severity": "orange"})


def test_an_alert_expired_when_received_is_recorded_answered_202_and_raises_nothing(stack):
    unique = marker()[:6]
    sent = datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=8)))
    raw = document("typhoon_orange_actual", unique, sent, sent + timedelta(days=1)).replace(
        b"<severity>Severe</severity>", b"<severity>Extreme</severity>")
    status, body = post_cap(stack, raw)
    assert status == 202 and (body["acted"], body["severity"]) == (False, "red"), body
    assert body["reason"] == "expired 2025-01-02T00:00:00+08:00, before it was received: recorded, not acted on"
    [letter] = poll(lambda: dead_letters(stack, unique), 30, "the expired alert's dead letter")
    assert letter["error_type"] == "expired"
    [record] = poll(lambda: [json.loads(r.value) for r in stack.read_topic("soc.cap") if r.key.decode() == body["key"]],
                    30, "the expired alert's record")
    assert datetime.fromisoformat(record["lowered_at"]) == sent + timedelta(days=1)
    # A current alert posted after it is ticketed; by then the expired one has raised nothing.
    start = now()
    status, current = post_cap(stack, document("typhoon_orange_actual", marker()[:6], start,
                                               start + timedelta(hours=1)))
    assert status == 201
    poll(lambda: [t for t in stack.inbox("flood_control") if t.source_ref.startswith(current["station_id"])], 30,
         "the current alert's ticket")
    station = body["station_id"]
    assert flood_readings(stack, station) == [] and response_changes(stack, station) == []
    assert not stack.tickets_where(lambda t: t.source_ref.startswith(station))


@pytest.mark.parametrize("sent, expires, status, reason", [
    ("future", None, 422, "in_future"),
    ("0001-01-01T00:00:00+14:00", None, 422, "out_of_range"),
    ("9999-12-31T23:59:59-14:00", None, 422, "out_of_range"),
    ("now", "9999-12-31T23:59:59-14:00", 422, "out_of_range"),
])
def test_alerts_from_the_future_or_the_calendars_edges_are_refused_with_a_4xx(stack, sent, expires, status, reason):
    unique = marker()[:6]
    text = document("typhoon_orange_actual", unique, now()).decode()
    sent_text = {"future": (now() + timedelta(minutes=11)).isoformat(), "now": now().isoformat()}.get(sent, sent)
    text = re.sub(r"<sent>[^<]+</sent>", f"<sent>{sent_text}</sent>", text)
    text = re.sub(r"<expires>[^<]+</expires>", f"<expires>{expires}</expires>" if expires else "", text)
    code, body = post_cap(stack, text.encode())
    assert (code, body["reason"]) == (status, reason), body
    [letter] = poll(lambda: dead_letters(stack, unique), 30, "the dead letter")
    assert letter["error_type"] == reason
    assert stack.get("/healthz")[0] == 200


@pytest.mark.parametrize("encoding", ["GBK", "GB18030"])
def test_an_alert_declared_in_a_chinese_encoding_is_taken(stack, encoding):
    start = now()
    text = document("typhoon_orange_actual", marker()[:6], start, start + timedelta(hours=1)).decode()
    status, body = post_cap(stack, text.replace('encoding="UTF-8"', f'encoding="{encoding}"').encode(encoding))
    assert status == 201, body
    assert (body["kind"], body["severity"], body["acted"]) == ("typhoon", "orange", True)
