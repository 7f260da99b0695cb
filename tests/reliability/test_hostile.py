"""Hostile input: random bytes, broken JSON, deep nesting, huge strings, wrong types, NaN, dates
out of range and coordinates off the earth. Nothing crashes, nothing is a 500, every rejection
has a reason from the closed set."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers import cap
from handlers.base import Context
from handlers.intake import RejectReason, Rejected, to_incident
from handlers.registry import SOURCES
from schemas.config import load_config
from streams.settings import REPO_ROOT
from tests.support import poll

CONFIG = load_config(REPO_ROOT / "deploy" / "config")
CTX = Context(CONFIG, datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc))

FIELDS = {
    "traffic": ["event_id", "type", "road", "lat", "lon", "observed_at", "lanes_blocked", "injuries", "speed_kmh"],
    "flood": ["station_id", "kind", "value", "status", "signal", "lat", "lon", "observed_at", "warning_level"],
    "city": ["case_no", "channel", "category", "description", "address", "lat", "lon", "reported_at", "reporter_phone"],
    "construction": ["event_id", "kind", "lat", "lon", "observed_at", "site_id", "value"],
}
nasty_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=50),
    st.sampled_from(["NaN", "Infinity", "-1e309", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00Z",
                     "2026-13-45T25:61:00+08:00", "accident", "water_level", "hotline_12345", "noise", "<script>"]),
    st.sampled_from([91.0, -91.0, 181.0, 1e308, -0.0]),
)
json_values = st.recursive(nasty_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                   st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)


def outcome(source: str, raw: bytes):
    try:
        return to_incident(source, raw, CTX)
    except Rejected as rejected:
        assert isinstance(rejected.reason, RejectReason)
        return rejected


@pytest.mark.parametrize("source", list(SOURCES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_random_bytes_are_rejected_with_a_reason_or_parsed(source, raw):
    outcome(source, raw)


@pytest.mark.parametrize("source", list(SOURCES))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_payloads_with_wrong_and_extreme_values_never_crash(source, data):
    payload = data.draw(st.fixed_dictionaries({}, optional={f: json_values for f in FIELDS[source]}))
    raw = json.dumps(payload, allow_nan=True).encode()  # NaN and Infinity as JSON extensions
    outcome(source, raw)


@pytest.mark.parametrize("depth", [10, 1000, 100_000])
def test_deep_nesting_and_huge_strings(depth):
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth,
                json.dumps({"event_id": "x" * 2_000_000}).encode()):
        for source in SOURCES:
            assert isinstance(outcome(source, raw), Rejected)


# ---------------------------------------------------------------- the same against the live worker

@pytest.mark.integration
def test_a_burst_of_hostile_messages_is_dead_lettered_and_the_worker_goes_on(pipeline, unique):
    samples = [b"\x00\xff", b"{", b"[]", b"null", b'{"lat": NaN}', b"[" * 5000 + b"]" * 5000,
               json.dumps({"event_id": unique, "type": "accident", "road": "r", "lat": 200, "lon": 0,
                           "observed_at": "2026-01-01T00:00:00+08:00"}).encode(),
               json.dumps({"event_id": unique, "type": "accident", "road": "r", "lat": 22.5, "lon": 113.9,
                           "observed_at": "10000-01-01T00:00:00+08:00"}).encode()]
    marker = f"hostile-{unique}".encode()
    for source in SOURCES:
        for sample in samples:
            pipeline.send(f"soc.raw.{source}", sample, key=marker)

    def dead_lettered():
        found = [m for m in pipeline.read_topic("soc.deadletter")
                 if json.loads(m.value)["source_topic"].startswith("soc.raw.")
                 and json.loads(m.value)["raw_size"] in {len(s) for s in samples}]
        return found if len(found) >= len(samples) * len(SOURCES) else None

    poll(dead_lettered, 60, "every hostile message in soc.deadletter")
    # And a good event right after is still processed.
    from tests.integration.payloads import Builder
    good = Builder(CONFIG, unique).traffic()
    pipeline.send("soc.raw.traffic", good)
    poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == good["event_id"]), 30, "the good event")


ROUTES = ["accept", "resolve", "return", "extend", "verify", "redispatch", "comment", "reopen"]


@pytest.mark.integration
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=json_values, role=st.sampled_from(["ops_centre", "traffic_police", None]),
       ticket_id=st.one_of(st.just("T20260101-00000000"), st.text(min_size=1, max_size=80).map(
           lambda s: s.replace("/", "_").replace("?", "_").replace("#", "_").replace("%", "_") or "x")))
def test_hostile_http_requests_are_never_a_500(pipeline, route, body, role, ticket_id):
    from urllib.parse import quote

    raw = json.dumps(body, allow_nan=True).encode()
    status, answer = pipeline.post(f"/api/tickets/{quote(ticket_id)}/{route}", role, raw)
    assert status < 500, (status, answer)
    assert isinstance(answer, dict) and "error" in answer
    status, answer = pipeline.get(f"/api/tickets?limit={quote(ticket_id)}", role)
    assert status < 500, (status, answer)



@pytest.mark.integration
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, text=st.text(max_size=200), site_id=st.text(min_size=1, max_size=40).map(
    lambda s: s.replace("/", "_").replace("?", "_").replace("#", "_").replace("%", "_") or "x"))
def test_hostile_requests_to_the_sites_and_open311_routes_are_never_a_500(pipeline, body, text, site_id):
    from urllib.parse import quote

    raw = json.dumps(body, allow_nan=True).encode()
    for method, path in (("POST", "/api/sites"), ("PATCH", f"/api/sites/{quote(site_id)}")):
        status, answer = pipeline.request(method, path, "construction_safety", raw)
        assert status < 500 and "error" in answer, (status, answer)
    for data, kind in ((raw, "application/json"), (text.encode(), "application/x-www-form-urlencoded")):
        status, answer = pipeline.request("POST", "/open311/v2/requests.json", body=data, headers={"Content-Type": kind})
        assert status < 500 and answer[0]["code"] == status, (status, answer)
    status, answer = pipeline.get(f"/open311/v2/requests.json?start_date={quote(text)}&status={quote(site_id)}")
    assert status < 500, (status, answer)


CAP_SAMPLE = (REPO_ROOT / "tests" / "data" / "cap" / "typhoon_orange_actual.xml").read_text(encoding="utf-8")
CAP_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(
    ["", "NaN", "91,113.9 5", "22.5,113.9 -1", "22.5,113.9 inf", "22.5,abc", "9999-12-31T23:59:59+14:00",
     "2026-13-45T25:61:00+08:00", "Extreme", "Update", "Cancel", "Exercise", "11B03", "&amp;", "]]>"]))


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=400))
def test_random_bytes_are_refused_as_cap_with_a_reason(raw):
    try:
        cap.parse(raw)
    except Rejected as rejected:
        assert isinstance(rejected.reason, RejectReason)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_cap_alerts_with_odd_values_are_decided_or_refused_with_a_reason(data):
    """The sample with any element's text replaced: decided, or Rejected from the closed set."""
    names = re.findall(r"<([a-zA-Z]+)>[^<]*</\1>", CAP_SAMPLE)
    document = CAP_SAMPLE
    for name in data.draw(st.lists(st.sampled_from(names), max_size=4, unique=True)):
        value = escape(data.draw(CAP_VALUES))
        document = re.sub(rf"<{name}>[^<]*</{name}>", lambda _: f"<{name}>{value}</{name}>", document, count=1)
    try:
        cap.decide(cap.parse(document.encode()), "szmb", {}, CONFIG, CTX.received_at)
    except Rejected as rejected:
        assert isinstance(rejected.reason, RejectReason)
