"""Raw bytes -> Incident or a rejection with a reason from the closed set, and the dead-letter record."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from handlers.privacy import mask_personal

from handlers import intake
from handlers.base import Context
from handlers.geo import grid_cell
from handlers.intake import DEADLETTER_RAW_BYTES, MAX_PAYLOAD_BYTES, RejectReason, Rejected, dead_letter, decode, to_incident, validate

MALFORMED = "malformed"

# Every captured bad payload: (file, source, reason, loc of the first field error or None).
CASES = [
    ("traffic_truncated.json", "traffic", "not_json", None),
    ("flood_bare_nan.json", "flood", "not_json", None),          # NaN is not JSON (RFC 8259)
    ("traffic_array.json", "traffic", "not_object", None),
    ("city_gbk.json", "city", "not_utf8", None),
    ("traffic_missing_observed_at.json", "traffic", "missing_field", "observed_at"),
    ("traffic_lat_text.json", "traffic", "wrong_type", "lat"),
    ("traffic_lanes_fraction.json", "traffic", "wrong_type", "lanes_blocked"),
    ("traffic_no_offset.json", "traffic", "wrong_type", "observed_at"),
    ("city_description_number.json", "city", "wrong_type", "description"),
    ("traffic_unknown_type.json", "traffic", "unknown_value", "type"),
    ("city_unknown_channel.json", "city", "unknown_value", "channel"),
    ("flood_unknown_signal.json", "flood", "unknown_value", "signal"),
    ("flood_value_nan_text.json", "flood", "out_of_range", "value"),
    ("flood_value_infinity_text.json", "flood", "out_of_range", "value"),
    ("city_lat_91.json", "city", "out_of_range", "lat"),
    ("traffic_confidence_percent.json", "traffic", "out_of_range", "confidence"),
    ("construction_negative_value.json", "construction", "out_of_range", "value"),
    ("construction_empty_site_id.json", "construction", "out_of_range", "site_id"),
    ("flood_pump_without_status.json", "flood", "invalid", "(payload)"),
    ("construction_noise_without_value.json", "construction", "invalid", "(payload)"),
]


def reject(source: str, raw: bytes | None, ctx: Context) -> Rejected:
    with pytest.raises(Rejected) as info:
        to_incident(source, raw, ctx)
    assert isinstance(info.value.reason, RejectReason)
    return info.value


@pytest.mark.parametrize("name, source, reason, loc", CASES, ids=[c[0] for c in CASES])
def test_captured_malformed_payloads(ctx, sample_bytes, name, source, reason, loc):
    rejected = reject(source, sample_bytes(MALFORMED, name), ctx)
    assert rejected.reason == reason
    if loc is None:
        assert rejected.field_errors == []
    else:
        assert rejected.field_errors[0].loc == loc
        assert rejected.message.startswith(f"{loc}: ")


def test_every_malformed_sample_is_covered():
    folder = Path(__file__).resolve().parents[1] / "data" / MALFORMED
    assert sorted(p.name for p in folder.iterdir()) == sorted(c[0] for c in CASES)


# ------------------------------------------------------------------ decode

def test_none_is_not_an_object():
    with pytest.raises(Rejected) as info:
        decode(None)
    assert (info.value.reason, info.value.message) == ("not_object", "empty message (null value)")


def test_too_large_is_checked_before_anything_else():
    raw = b"\xff" * (MAX_PAYLOAD_BYTES + 1)   # not UTF-8 either
    with pytest.raises(Rejected) as info:
        decode(raw)
    assert info.value.reason == "too_large"
    assert info.value.message == f"{MAX_PAYLOAD_BYTES + 1} bytes, limit {MAX_PAYLOAD_BYTES}"


def test_exactly_one_mebibyte_is_accepted():
    head, tail = b'{"pad": "', b'"}'
    raw = head + b"x" * (MAX_PAYLOAD_BYTES - len(head) - len(tail)) + tail
    assert len(raw) == MAX_PAYLOAD_BYTES == 1024 * 1024
    assert decode(raw)["pad"].startswith("xxx")
    with pytest.raises(Rejected, match="too_large"):
        decode(raw[:-2] + b'x"}')


@pytest.mark.parametrize("raw, reason", [
    (b"", "not_json"),
    (b"   ", "not_json"),
    (b"{'event_id': 'x'}", "not_json"),           # Python repr, not JSON
    (b'{"value": Infinity}', "not_json"),
    (b"null", "not_object"),
    (b'"accident"', "not_object"),
    (b"42", "not_object"),
    (b"[]", "not_object"),
    (b"\xe4\xb8", "not_utf8"),                    # half of 中
    ("{\"road\": \"望海路\"}".encode("utf-16"), "not_utf8"),
])
def test_decode_reasons(raw, reason):
    with pytest.raises(Rejected) as info:
        decode(raw)
    assert info.value.reason == reason


def test_decode_returns_the_object():
    assert decode('{"road": "望海路", "lanes_blocked": 2}'.encode()) == {"road": "望海路", "lanes_blocked": 2}


# ------------------------------------------------------------------ validate

def test_validate_returns_the_source_model(sample):
    event = validate("traffic", sample("traffic", "accident_minor"))
    assert type(event).__name__ == "TrafficEvent"
    assert event.lanes_blocked == 1


@pytest.mark.parametrize("field, value, reason", [
    ("lat", 91, "out_of_range"),
    ("lat", -90.5, "out_of_range"),
    ("lon", 180.01, "out_of_range"),
    ("lat", "NaN", "out_of_range"),
    ("lon", "Infinity", "out_of_range"),
    ("lat", "-inf", "out_of_range"),
    ("lat", None, "wrong_type"),
    ("lat", [22.5], "wrong_type"),
    ("observed_at", "yesterday", "wrong_type"),
    ("observed_at", "2026-05-12", "wrong_type"),
    # Year 1 at +14:00 cannot be put in UTC, year 9999 has no next day: refused where read, not an OverflowError.
    ("observed_at", "0001-01-01T00:00:00+14:00", "out_of_range"),
    ("observed_at", "9999-12-31T23:59:59-14:00", "out_of_range"),
    ("injuries", "一人", "wrong_type"),
    ("type", "ACCIDENT", "unknown_value"),
    ("event_id", "x" * 201, "out_of_range"),
])
def test_field_rejections(sample, field, value, reason):
    data = sample("traffic", "accident_minor")
    data[field] = value
    with pytest.raises(Rejected) as info:
        validate("traffic", data)
    assert info.value.reason == reason
    assert [e.loc for e in info.value.field_errors] == [field]


def test_every_field_error_is_listed_and_the_first_names_the_reason(sample):
    data = sample("traffic", "accident_minor")
    del data["road"]
    data.update(lat=91, type="crash")
    with pytest.raises(Rejected) as info:
        validate("traffic", data)
    assert [(e.loc, e.type) for e in info.value.field_errors] == [
        ("type", "enum"), ("road", "missing"), ("lat", "less_than_equal")]
    assert info.value.reason == "unknown_value"


def test_field_errors_list_every_problem():
    with pytest.raises(Rejected) as info:
        validate("city", {f"x{i}": i for i in range(40)})   # unknown keys are ignored, not errors
    assert info.value.reason == "missing_field"
    assert [e.loc for e in info.value.field_errors] == [
        "case_no", "channel", "category", "description", "address", "lat", "lon", "reported_at"]
    with pytest.raises(Rejected) as info:
        validate("traffic", {"event_id": "e", "type": "accident", "road": "r", "lat": 1, "lon": 1,
                             "observed_at": "2026-05-12T09:00:00+08:00", **{k: "?" for k in (
                                 "lanes_blocked", "injuries", "vehicles", "speed_kmh", "confidence")}})
    assert len(info.value.field_errors) == 5


def test_a_handler_bug_is_not_mistaken_for_a_rejection(ctx, sample, monkeypatch):
    def broken(payload, ctx):
        raise KeyError("boom")
    monkeypatch.setattr(intake.SOURCES["traffic"], "classify", broken)
    with pytest.raises(KeyError):
        to_incident("traffic", json.dumps(sample("traffic", "accident_minor")).encode(), ctx)


# ------------------------------------------------------------------ dead letters

RECEIVED = datetime(2026, 5, 12, 1, 30, tzinfo=timezone.utc)


def test_dead_letter_keeps_text_and_field_errors(ctx, sample_bytes):
    raw = sample_bytes(MALFORMED, "city_lat_91.json")
    rejected = reject("city", raw, ctx)
    record = dead_letter("soc.raw.city", 3, 1207, raw, rejected, RECEIVED)
    assert (record.source_topic, record.partition, record.offset, record.received_at) == (
        "soc.raw.city", 3, 1207, RECEIVED)
    assert record.error_type == "out_of_range"
    assert record.message == "lat: Input should be less than or equal to 90"
    assert [(e.loc, e.type) for e in record.field_errors] == [("lat", "less_than_equal")]
    # The raw value's fields as sent, the citizen's number masked (personal data is never stored).
    assert json.loads(record.raw_text) == {**json.loads(raw), "reporter_phone": "138****8000",
                                           "description": mask_personal(json.loads(raw)["description"])}
    assert "13800138000" not in record.raw_text and "0013" not in record.raw_text
    assert record.raw_base64 is None
    assert (record.raw_size, record.raw_truncated) == (len(raw), False)
    assert json.loads(record.model_dump_json())["raw_text"].startswith("{")


def test_dead_letter_of_non_utf8_is_base64(ctx, sample_bytes):
    raw = sample_bytes(MALFORMED, "city_gbk.json")
    record = dead_letter("soc.raw.city", 0, 5, raw, reject("city", raw, ctx), RECEIVED)
    assert record.error_type == "not_utf8"
    assert record.raw_text is None
    assert base64.b64decode(record.raw_base64) == raw.replace(b"13800138000", b"138****8000")
    assert base64.b64decode(record.raw_base64).decode("gbk").startswith('{"case_no": "12345-20260512-00873"')


def test_dead_letter_of_a_null_value():
    record = dead_letter("soc.raw.traffic", None, None, None, Rejected("not_object", "empty message (null value)"),
                         RECEIVED)
    assert (record.raw_text, record.raw_base64, record.partition, record.offset) == (None, None, None, None)


def test_dead_letter_of_a_huge_payload_is_clipped():
    raw = b'{"description": "' + b"a" * (2 * MAX_PAYLOAD_BYTES) + b'"}'
    record = dead_letter("soc.raw.city", 1, 9, raw, Rejected("too_large", "big"), RECEIVED)
    assert record.raw_text is not None and record.raw_base64 is None
    assert len(record.raw_text.encode()) == DEADLETTER_RAW_BYTES
    assert raw.decode().startswith(record.raw_text)
    assert (record.raw_size, record.raw_truncated) == (len(raw), True)


def test_dead_letter_of_utf8_text_clipped_inside_a_character_stays_text():
    raw = ('{"description": "' + "井盖缺失" * (MAX_PAYLOAD_BYTES // 3) + '"}').encode()
    assert (DEADLETTER_RAW_BYTES - len('{"description": "')) % 3 != 0, "the clip must cut a character"
    record = dead_letter("soc.raw.city", 1, 9, raw, Rejected("too_large", "big"), RECEIVED)
    assert record.raw_base64 is None
    assert DEADLETTER_RAW_BYTES - 3 < len(record.raw_text.encode()) < DEADLETTER_RAW_BYTES
    assert raw.decode().startswith(record.raw_text)
    assert len(raw.decode()) > len(record.raw_text) > 1000


def test_dead_letter_of_binary_clipped_is_base64():
    raw = b"\x00\xff" * MAX_PAYLOAD_BYTES
    record = dead_letter("soc.raw.flood", 0, 0, raw, Rejected("too_large", "big"), RECEIVED)
    assert record.raw_text is None
    assert raw.startswith(base64.b64decode(record.raw_base64))


# ------------------------------------------------------------------ identity of incidents

def test_incident_id_and_dedup_key_are_deterministic(ctx, sample_bytes):
    raw = sample_bytes("traffic", "accident_minor.json")
    first = to_incident("traffic", raw, ctx)
    later = Context(config=ctx.config, received_at=ctx.received_at + timedelta(hours=3), sites=ctx.sites)
    replay = to_incident("traffic", raw, later)
    assert first.incident_id == replay.incident_id
    assert first.dedup_key == replay.dedup_key == f"traffic:traffic_accident:{grid_cell(22.5081, 113.9276, 150)}"
    assert first.received_at != replay.received_at
    assert first.incident_id.startswith("traf-") and len(first.incident_id) == len("traf-") + 16


def test_incident_id_differs_per_source_ref_and_per_source(ctx, sample):
    data = sample("traffic", "accident_minor")
    a = to_incident("traffic", json.dumps(data).encode(), ctx)
    data["event_id"] = "TP-20260512-000325"
    b = to_incident("traffic", json.dumps(data).encode(), ctx)
    assert a.incident_id != b.incident_id
    assert a.dedup_key == b.dedup_key   # same place, same category: one problem
    assert intake.digest("traffic", "X") != intake.digest("city", "X")


def test_incident_id_prefixes(ctx, sample_bytes):
    ids = {source: to_incident(source, sample_bytes(source, name), ctx).incident_id
           for source, name in [("traffic", "wrong_way.json"), ("flood", "pump_fault.json"),
                                ("city", "hotline_noise.json"), ("construction", "no_helmet.json")]}
    assert {s: i.split("-")[0] for s, i in ids.items()} == {
        "traffic": "traf", "flood": "floo", "city": "city", "construction": "cons"}


def test_dedup_key_separates_categories_at_one_place(ctx, sample):
    data = sample("traffic", "accident_minor")
    accident = to_incident("traffic", json.dumps(data).encode(), ctx)
    data.update(event_id="SC-1", type="congestion", speed_kmh=12)
    congestion = to_incident("traffic", json.dumps(data).encode(), ctx)
    assert accident.dedup_key.rsplit(":", 2)[1:] == congestion.dedup_key.rsplit(":", 2)[1:]
    assert accident.dedup_key != congestion.dedup_key


# ------------------------------------------------------------------ community

@pytest.mark.parametrize("source, name, community", [
    ("traffic", "accident_injury.json", "haibin"),
    ("traffic", "accident_minor.json", "wanghai"),
    ("traffic", "illegal_parking.json", "yugang"),
    ("traffic", "congestion.json", "xingang"),
    ("traffic", "signal_fault.json", "liyuan"),
    ("traffic", "wrong_way.json", "guiwan"),
    ("traffic", "road_obstruction.json", "rongshu"),
    ("traffic", "accident_pileup.json", "shahe"),
    ("traffic", "outside_district.json", None),
    ("city", "camera_ai_vending.json", "yugang"),
    ("flood", "pump_fault.json", "haibin"),
    ("construction", "no_helmet.json", "liyuan"),
])
def test_community_assignment(ctx, sample_bytes, source, name, community):
    assert to_incident(source, sample_bytes(source, name), ctx).community == community


def test_received_at_is_the_injected_clock(ctx, sample_bytes, clock):
    incident = to_incident("flood", sample_bytes("flood", "rainfall_heavy.json"), ctx)
    assert incident.received_at == clock
    assert incident.observed_at == datetime.fromisoformat("2026-05-12T09:05:00+08:00")


def test_a_phone_number_in_any_field_is_masked_in_the_incident(ctx, sample):
    data = sample("traffic", "accident_minor")
    data["road"] = "望海路(报警人13912345678)"
    data["camera_id"] = "CAM-0755-26881234"
    raw = json.dumps(data, ensure_ascii=False).encode()
    incident = to_incident("traffic", raw, ctx)
    text = incident.model_dump_json()
    assert "13912345678" not in text and "139****5678" in incident.title


def test_a_normal_reading_is_valid_but_opens_nothing(ctx, sample):
    data = sample("flood", "water_level_normal")
    assert to_incident("flood", json.dumps(data).encode(), ctx) is None


def test_a_dead_letter_masks_phone_numbers_in_text_and_in_bytes_that_are_not_utf8():
    from datetime import datetime, timezone

    from handlers.intake import Rejected, dead_letter

    at = datetime(2026, 5, 12, 1, 30, tzinfo=timezone.utc)
    broken = '{"reporter_phone": "138 0013 8000", "description": '.encode()
    letter = dead_letter("soc.raw.city", 0, 7, broken, Rejected("not_json", "unexpected end"), at)
    assert "0013" not in letter.raw_text and "reporter_phone" in letter.raw_text
    gbk = "市民电话13800138000".encode("gbk")
    letter = dead_letter("soc.raw.city", 0, 8, gbk, Rejected("not_utf8", "invalid start byte"), at)
    assert b"13800138000" not in base64.b64decode(letter.raw_base64)
    assert letter.raw_size == len(gbk)


def test_a_dead_letter_masks_the_decoded_values_not_how_the_json_spells_them():
    from datetime import datetime, timezone

    from handlers.intake import Rejected, dead_letter

    at = datetime(2026, 5, 12, 1, 30, tzinfo=timezone.utc)
    escaped = rb'{"description": "\u0031\u0033\u0039\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038",'
    escaped += rb' "note": "139\n1234\n5678", "id": "44030519900101123X", "phone": 13912345678, "n": 12345678901234567890123}'
    letter = dead_letter("soc.raw.city", 0, 9, escaped, Rejected("missing_field", "case_no: Field required"), at)
    assert json.loads(letter.raw_text) == {"description": "139****5678", "note": "139****5678",
                                           "id": "440305**********3X", "phone": "139****5678",
                                           "n": 12345678901234567890123}
    # Cut short, the JSON cannot be decoded: its escapes are read before the text is masked.
    cut = dead_letter("soc.raw.city", 0, 10, escaped[:-60], Rejected("not_json", "unexpected end"), at)
    assert "139****5678" in cut.raw_text and "1234" not in cut.raw_text
    # XML (a CAP alert) spells digits as character references.
    xml = b"<alert><note>&#49;&#x33;9 1234 5678</note></alert>"
    assert dead_letter("POST /api/ingest/cap", None, None, xml, Rejected("not_xml", "x"), at).raw_text == (
        "<alert><note>139****5678</note></alert>")
    # GBK JSON from an old system: decoded, masked and written back in GBK.
    gbk = '{"description": "市民电话\\u0031\\u0033\\u00380013\\n8000"}'.encode("gbk")
    letter = dead_letter("soc.raw.city", 0, 11, gbk, Rejected("not_utf8", "invalid start byte"), at)
    assert json.loads(base64.b64decode(letter.raw_base64).decode("gbk")) == {"description": "市民电话138****8000"}
