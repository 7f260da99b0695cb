"""CAP 1.2 in and out (handlers/cap.py): the samples under tests/data/cap, the chain Alert -> Update ->
Cancel, what is refused and why, the signal kept up and lowered at expiry, and a red ticket round trip."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from handlers import cap, ticketing
from handlers.base import Context
from handlers.intake import Rejected, digest, to_incident
from handlers.privacy import mask_personal
from schemas.config import ConfigError, load_config
from schemas.enums import Category, Severity
from schemas.raw import FloodKind, TyphoonSignal
from tests.unit.conftest import DATA

RECEIVED = datetime(2026, 12, 1, 2, 0, 5, tzinfo=timezone.utc)
SZ = "szmb@weather.sz.gov.cn"


def sample(name: str) -> bytes:
    return (DATA / "cap" / f"{name}.xml").read_bytes()


def on_arrival(alert) -> datetime:
    """When a feed's alert reaches the intake: a few seconds after it was sent."""
    return alert.sent + timedelta(seconds=5)


def decide(config, name: str, known=None) -> cap.Decision:
    alert = cap.parse(sample(name))
    return cap.decide(alert, "szmb", known or {}, config, on_arrival(alert))


def rejected(config, raw: bytes, known=None, received_at: datetime | None = None) -> Rejected:
    with pytest.raises(Rejected) as info:
        alert = cap.parse(raw)
        cap.decide(alert, "szmb", known or {}, config, received_at or on_arrival(alert))
    return info.value


def chain(config):
    """The orange Actual, its Update and its Cancel, each decided with what the earlier ones recorded."""
    known = {}
    decisions = []
    for name in ("typhoon_orange_actual", "typhoon_red_update", "typhoon_cancel"):
        decision = decide(config, name, known)
        known.update({r.key: r for r in decision.records})
        decisions.append(decision)
    return decisions, known


def test_the_orange_actual_is_an_orange_typhoon_signal_reading_over_the_whole_district(config):
    decision = decide(config, "typhoon_orange_actual")
    [record] = decision.records
    [reading] = decision.readings
    assert record.key == f"{SZ},44030041600000_20261201100000" and record.live
    assert (record.kind, record.severity, record.chain) == ("typhoon", Severity.orange, record.key)
    assert record.communities == sorted(config.district.communities)
    assert record.expires == datetime(2026, 12, 2, 10, tzinfo=timezone(timedelta(hours=8)))
    assert (reading.kind, reading.signal, reading.station_id) == (FloodKind.typhoon_signal, TyphoonSignal.orange,
                                                                  record.station_id)
    assert reading.observed_at == record.sent and record.station_id.startswith("CAP-typhoon-")
    # The normal path grades it orange: the typhoon_orange response trigger's category and severity.
    incident = to_incident("flood", reading.model_dump_json().encode(), Context(config, RECEIVED))
    assert (incident.category, incident.severity) == (Category.typhoon, Severity.orange)
    assert incident.community is not None
    # Titled as people say it, never by the chain's machine id.
    assert incident.title.startswith("台风预警 台风信号") and "CAP-" not in incident.title


def test_a_chain_whose_hash_reads_as_a_phone_number_gets_a_station_masking_leaves_whole(config):
    # The station is the incident's source_ref, which is masked: CAP-typhoon-41523493 was stored as
    # CAP-typhoon-****3493, and the ticket no longer named its station.
    key = next(k for k in (f"{SZ},44030041600000_{n}" for n in range(1000))
               if re.fullmatch(r"[2-9]\d{7}", digest(k, size=4)))
    station = cap.station_of("typhoon", key)
    assert station.startswith("CAP-typhoon-") and mask_personal(station) == station
    assert cap.station_of("typhoon", key) == station


def test_the_update_raises_the_same_station_and_the_cancel_lowers_it(config):
    (first, update, cancel), known = chain(config)
    station = first.records[0].station_id
    assert [d.readings[0].station_id for d in (update, cancel)] == [station, station]
    assert update.readings[0].signal is TyphoonSignal.red
    assert update.records[0].communities == ["haibin", "wanghai"]  # a 1.5 km circle on the coast
    assert cancel.readings[0].signal is TyphoonSignal.white
    assert cancel.readings[0].observed_at == cancel.records[0].sent
    # Each decision supersedes what it references: nothing of the chain is live after the Cancel.
    assert not any(r.live for r in known.values())
    assert known[first.records[0].key].superseded_by == update.records[0].key


def test_an_update_and_a_cancel_sent_in_the_alerts_second_are_readings_of_their_own(config):
    # A reading's incident is its station and time: the red update read at the orange's time was taken as a
    # replay of the orange, and the ticket stayed orange.
    first = decide(config, "typhoon_orange_actual")
    known = {r.key: r for r in first.records}
    same_second = re.sub(rb"<sent>[^<]+</sent>", f"<sent>{first.records[0].sent.isoformat()}</sent>".encode(),
                         sample("typhoon_red_update"))
    alert = cap.parse(same_second)
    update = cap.decide(alert, "szmb", known, config, on_arrival(alert))
    assert update.records[0].sent == first.records[0].sent
    assert update.readings[0].observed_at == first.readings[0].observed_at + timedelta(seconds=1)
    ctx = Context(config, RECEIVED)
    orange, red = (to_incident("flood", d.readings[0].model_dump_json().encode(), ctx) for d in (first, update))
    assert orange.incident_id != red.incident_id and red.severity is Severity.red
    # Read again at fixed times from when it took over, not from its `sent`.
    every = timedelta(minutes=15)
    again, _ = cap.due(config, update.records[0], alert.sent + timedelta(minutes=20), every)
    assert again.observed_at == update.readings[0].observed_at + every
    known.update({r.key: r for r in update.records})
    cancel = cap.parse(re.sub(rb"<sent>[^<]+</sent>", f"<sent>{alert.sent.isoformat()}</sent>".encode(),
                              sample("typhoon_cancel")))
    lowered = cap.decide(cancel, "szmb", known, config, on_arrival(cancel))
    assert lowered.readings[0].observed_at == first.readings[0].observed_at + timedelta(seconds=2)
    assert lowered.readings[0].signal is TyphoonSignal.white


def test_the_update_of_the_same_signal_keys_one_dedup_key(config):
    (first, update, _), _ = chain(config)
    ctx = Context(config, RECEIVED)
    keys = {to_incident("flood", d.readings[0].model_dump_json().encode(), ctx).dedup_key for d in (first, update)}
    assert len(keys) == 1


def test_an_exercise_is_recorded_and_not_acted_on(config):
    decision = decide(config, "exercise")
    assert decision.readings == [] and decision.records[0].status == "Exercise" and not decision.records[0].live
    assert decision.ignored.reason == "not_actual"
    assert decision.ignored.message == "status Exercise: only Actual alerts are acted on"


def test_an_update_or_cancel_must_reference_an_earlier_alert(config):
    for name in ("typhoon_red_update", "typhoon_cancel"):
        why = rejected(config, sample(name))
        assert why.reason == "unknown_reference"
        assert why.message.startswith(f"{'Update' if 'update' in name else 'Cancel'} must reference an earlier Actual alert")


@pytest.mark.parametrize("name, reason, message", [
    ("malformed", "not_xml", "not well-formed XML: mismatched tag: line 6, column 2"),
    ("entity_expansion", "forbidden_xml", "refused: DTDForbidden (no DTDs or entities)"),
])
def test_malformed_and_entity_expansion_documents_are_refused(name, reason, message):
    with pytest.raises(Rejected) as info:
        cap.parse(sample(name))
    assert (info.value.reason, info.value.message) == (reason, message)


def test_a_circle_outside_the_district_is_refused(config):
    why = rejected(config, sample("circle_outside"))
    assert (why.reason, why.message) == ("outside_district", "the area (龙岗区) meets no community of 海湾街道")


def test_refusals_name_what_is_wrong(config):
    text = sample("typhoon_orange_actual").decode()
    cases = {
        text.replace("<severity>Severe</severity>", "<severity>Unknown</severity>"):
            "severity 'Unknown': Extreme, Severe, Moderate or Minor",
        text.replace("<event>台风</event>", "<event>高温</event>").replace("<value>11B01</value>", "<value>11B09</value>"):
            "event '高温' is neither a typhoon nor a rainstorm warning",
        text.replace("2026-12-02T10:00:00+08:00", "2026-12-01T09:00:00+08:00"): "expires is not after sent",
        text.replace("<sent>2026-12-01T10:00:00+08:00</sent>", "<sent>2026-12-01T10:00:00</sent>"):
            "<sent> '2026-12-01T10:00:00' has no UTC offset",
        text.replace("<identifier>44030041600000_20261201100000</identifier>", ""): "<identifier> is missing",
        text.replace("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1"):
            "root element '{urn:oasis:names:tc:emergency:cap:1.1}alert' is not a CAP 1.2 <alert> "
            "(urn:oasis:names:tc:emergency:cap:1.2)",
        text.replace("22.49,113.89 22.49,113.99", "22.49,113.89 91,113.99"): "<polygon> point '91,113.99' is not on the earth",
    }
    for document, message in cases.items():
        assert rejected(config, document.encode()).message == message
    assert rejected(config, b"<a>" * (cap.MAX_BYTES // 3 + 1)).reason == "too_large"


def test_a_rainstorm_is_a_rainfall_reading_graded_its_colour(config):
    text = sample("typhoon_orange_actual").decode().replace("<event>台风</event>", "<event>暴雨</event>")
    for severity, colour in cap.SEVERITY.items():
        document = text.replace("<value>11B01</value>", "<value>11B03</value>").replace(
            "<severity>Severe</severity>", f"<severity>{severity}</severity>")
        [reading] = cap.decide(cap.parse(document.encode()), "szmb", {}, config, RECEIVED).readings
        incident = to_incident("flood", reading.model_dump_json().encode(), Context(config, RECEIVED))
        assert (reading.kind, incident.category, incident.severity) == (FloodKind.rainfall, Category.flood_rainfall, colour)
        assert incident.title.startswith("暴雨预警 ") and "CAP-" not in incident.title


def test_the_signal_is_read_again_at_fixed_times_and_lowered_at_expiry(config):
    record = decide(config, "typhoon_orange_actual").records[0]
    every = timedelta(minutes=15)
    first, none = cap.due(config, record, record.sent + timedelta(minutes=20), every)
    again, _ = cap.due(config, record, record.sent + timedelta(minutes=29), every)
    assert none is None and first == again and first.observed_at == record.sent + every
    assert first.signal is TyphoonSignal.orange
    lowering, lowered = cap.due(config, record, record.expires + timedelta(seconds=3), every)
    assert (lowering.signal, lowering.observed_at) == (TyphoonSignal.white, record.expires)
    assert lowered.lowered_at == record.expires and not lowered.live
    # A white signal is below every threshold: it opens nothing.
    assert to_incident("flood", lowering.model_dump_json().encode(), Context(config, RECEIVED)) is None


def test_a_red_ticket_as_cap_reads_back_to_the_same_fields(config):
    (first, _, _), _ = chain(config)
    reading = first.readings[0].model_copy(update={"signal": TyphoonSignal.red})
    incident = to_incident("flood", reading.model_dump_json().encode(), Context(config, RECEIVED))
    [ticket] = ticketing.step(config, None, incident, incident.dedup_key).tickets
    assert ticket.severity is Severity.red
    alert = cap.parse(cap.to_cap(ticket, config))
    assert (alert.identifier, alert.sender, alert.sent, alert.status, alert.msg_type, alert.scope) == (
        f"SOC-{ticket.ticket_id}", "soc.haiwan.example.gov.cn", ticket.dispatched_at.replace(microsecond=0),
        "Actual", "Alert", "Public")
    [info] = alert.info
    assert (info.categories, info.event, info.severity, info.urgency, info.certainty) == (
        ["Met"], "台风", "Extreme", "Immediate", "Observed")
    assert (info.headline, info.expires, info.parameters) == (
        ticket.title, ticket.resolve_due.replace(microsecond=0), {"ticket_id": ticket.ticket_id})
    [area] = info.areas
    assert area.description == config.district.communities[ticket.community].name
    assert (area.circles[0].lat, area.circles[0].lon, area.circles[0].radius_km) == (
        round(ticket.lat, 6), round(ticket.lon, 6), 0.5)
    # And this project's own intake takes it as the same signal: a red typhoon warning in the district.
    decision = cap.decide(alert, "szmb", {}, config, RECEIVED)
    assert decision.records[0].severity is Severity.red and ticket.community in decision.records[0].communities


@pytest.mark.parametrize("geocode, inside", [
    ("440305007", True),      # the district itself
    ("440305", True),         # 南山区, which contains it
    ("440300", True),         # 深圳市
    ("440305007003", True),   # a community's code, inside it
    ("440305008", False),     # the next street
    ("440306", False),        # 宝安区
])
def test_an_area_given_as_a_division_code(config, geocode, inside):
    area = (f"<area><areaDesc>行政区划 {geocode}</areaDesc><geocode><valueName>GB/T 2260</valueName>"
            f"<value>{geocode}</value></geocode></area>")
    document = re.sub(r"<area>.*</area>", area, sample("typhoon_orange_actual").decode(), flags=re.S).encode()
    if inside:
        decision = cap.decide(cap.parse(document), "szmb", {}, config, RECEIVED)
        assert decision.records[0].communities == sorted(config.district.communities)
    else:
        assert rejected(config, document).reason == "outside_district"


def timed(sent: datetime, expires: datetime | None) -> bytes:
    """The orange Actual sent and expiring at the times given."""
    text = sample("typhoon_orange_actual").decode()
    text = re.sub(r"<sent>[^<]+</sent>", f"<sent>{sent.isoformat()}</sent>", text)
    text = re.sub(r"<effective>[^<]+</effective>", "", text)
    return re.sub(r"<expires>[^<]+</expires>", f"<expires>{expires.isoformat()}</expires>" if expires else "",
                  text).encode()


def test_an_alert_expired_before_it_was_received_is_recorded_lowered_and_raises_nothing(config):
    sent, expires = datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 2, tzinfo=timezone.utc)
    decision = cap.decide(cap.parse(timed(sent, expires)), "szmb", {}, config, RECEIVED)
    [record] = decision.records
    assert decision.readings == []
    assert (decision.ignored.reason, decision.ignored.message) == (
        "expired", "expired 2025-01-02T00:00:00+00:00, before it was received: recorded, not acted on")
    assert (record.kind, record.severity, record.lowered_at, record.live) == ("typhoon", Severity.orange, expires, False)
    # An Update of it, current again, is taken as its chain's next alert.
    update = sample("typhoon_red_update").decode().replace("44030041600000_20261201100000,2026-12-01T10:00:00+08:00",
                                                           f"44030041600000_20261201100000,{sent.isoformat()}")
    alert = cap.parse(update.encode())
    taken = cap.decide(alert, "szmb", {record.key: record}, config, on_arrival(alert))
    assert taken.ignored is None and taken.readings[0].signal is TyphoonSignal.red
    assert taken.records[0].station_id == record.station_id


def test_whether_it_expired_is_decided_by_the_time_it_was_received_not_by_the_clock_of_a_replay(config):
    raw = timed(RECEIVED - timedelta(hours=2), RECEIVED + timedelta(minutes=1))
    assert cap.decide(cap.parse(raw), "szmb", {}, config, RECEIVED).ignored is None
    late = cap.decide(cap.parse(raw), "szmb", {}, config, RECEIVED + timedelta(minutes=1))
    assert late.ignored.reason == "expired" and late.records[0].received_at == RECEIVED + timedelta(minutes=1)


def test_an_expired_update_leaves_the_live_alert_it_references_as_it_was(config):
    first = decide(config, "typhoon_orange_actual")
    known = {r.key: r for r in first.records}
    update = sample("typhoon_red_update").decode().replace("2026-12-02T16:00:00+08:00", "2026-12-01T16:00:04+08:00")
    decision = cap.decide(cap.parse(update.encode()), "szmb", known, config, datetime(2026, 12, 1, 8, 0, 5, tzinfo=timezone.utc))
    assert decision.ignored.reason == "expired" and decision.readings == []
    assert [r.key for r in decision.records] == [f"{SZ},44030041600000_20261201160000"]
    assert decision.records[0].supersedes == [] and known[first.records[0].key].live


def test_an_alert_sent_more_than_the_configured_skew_ahead_is_refused(config, copy):
    assert config.district.intake.cap_clock_skew == "10m"
    within = timed(RECEIVED + timedelta(minutes=10), None)
    assert cap.decide(cap.parse(within), "szmb", {}, config, RECEIVED).ignored is None
    why = rejected(config, timed(RECEIVED + timedelta(minutes=10, seconds=1), None), received_at=RECEIVED)
    assert (why.reason, why.message) == (
        "in_future", "sent 2026-12-01T02:10:06+00:00 is more than 10m ahead of this worker's clock")
    district = copy / "district.yaml"
    district.write_text(district.read_text(encoding="utf-8").replace("\nintake:\n", "\nintake:\n  cap_clock_skew: 1m\n"),
                        encoding="utf-8")
    assert rejected(load_config(copy), within, received_at=RECEIVED).reason == "in_future"


def test_a_cap_clock_skew_that_is_not_a_duration_is_a_config_error(copy):
    district = copy / "district.yaml"
    district.write_text(district.read_text(encoding="utf-8").replace("\nintake:\n", "\nintake:\n  cap_clock_skew: soon\n"),
                        encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(copy)
    assert str(info.value) == "district.yaml: intake.cap_clock_skew: bad duration 'soon': use a number with s, m or h, e.g. 90m"


@pytest.mark.parametrize("element, value", [
    ("sent", "0001-01-01T00:00:00+14:00"),
    ("sent", "9999-12-31T23:59:59-14:00"),
    ("expires", "9999-12-31T23:59:59-14:00"),
    ("sent", "0001-01-01T00:00:00Z"),
])
def test_years_1_and_9999_are_refused_as_out_of_range(config, element, value):
    text = sample("typhoon_orange_actual").decode()
    document = re.sub(rf"<{element}>[^<]+</{element}>", f"<{element}>{value}</{element}>", text)
    with pytest.raises(Rejected) as info:
        cap.parse(document.encode())
    assert (info.value.reason, info.value.message) == (
        "out_of_range", f"<{element}> {value!r} is not between the years 2000 and 2100")


@pytest.mark.parametrize("encoding", ["GBK", "GB18030", "gb2312"])
def test_a_document_in_a_chinese_encoding_is_decoded(config, encoding):
    text = sample("typhoon_orange_actual").decode().replace('encoding="UTF-8"', f'encoding="{encoding}"')
    alert = cap.parse(text.encode(encoding))
    assert (alert.info[0].event, alert.info[0].headline) == ("台风", "深圳市气象台发布台风橙色预警信号")
    assert cap.decide(alert, "szmb", {}, config, RECEIVED).readings[0].signal is TyphoonSignal.orange


@pytest.mark.parametrize("raw, message", [
    ('<?xml version="1.0" encoding="x-no-such"?><a/>'.encode(), "unknown encoding 'x-no-such'"),
    ('<?xml version="1.0" encoding="GBK"?><a>'.encode() + b"\x81\x20</a>", "not GBK text at byte 39"),
])
def test_an_unknown_encoding_or_bytes_not_in_the_declared_one_are_not_xml(raw, message):
    with pytest.raises(Rejected) as info:
        cap.parse(raw)
    assert (info.value.reason, info.value.message) == ("not_xml", message)
