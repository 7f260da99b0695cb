"""Traffic events: parse, classify, every severity boundary of rules.yaml's traffic section."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from handlers import traffic
from handlers.geo import grid_cell
from handlers.intake import to_incident
from schemas.enums import Category, Severity
from schemas.raw import TrafficType

B, Y, O, R = Severity.blue, Severity.yellow, Severity.orange, Severity.red


def classify(ctx, data):
    return traffic.classify(traffic.parse(data), ctx)


@pytest.mark.parametrize("name, category, subcategory, severity, title", [
    ("accident_minor", Category.traffic_accident, "accident", Y, "望海路与创业路交叉口 交通事故"),
    ("accident_injury", Category.traffic_accident, "accident", O, "海滨大道 交通事故"),
    ("accident_pileup", Category.traffic_accident, "accident", R, "沙河西路（沙河桥段） 交通事故"),
    ("congestion", Category.traffic_congestion, "congestion", Y, "新港三路 交通拥堵"),
    ("illegal_parking", Category.traffic_violation, "illegal_parking", Y, "渔港路 违法停车"),
    ("signal_fault", Category.traffic_facility, "signal_fault", Y, "荔园路与桂湾二路交叉口 信号灯故障"),
    ("road_obstruction", Category.road_obstruction, "road_obstruction", O, "榕树街 道路障碍"),
    ("wrong_way", Category.traffic_violation, "wrong_way", O, "桂湾二路 车辆逆行"),
    ("vendor_extra_fields", Category.traffic_congestion, "congestion", B,  # 31 km/h: deficit 29
     "望海路 交通拥堵"),
    ("utc_timestamp", Category.traffic_accident, "accident", O, "新港三路 交通事故"),
])
def test_captured_samples(ctx, sample, name, category, subcategory, severity, title):
    data = sample("traffic", name)
    found = classify(ctx, data)
    assert (found.category, found.subcategory, found.severity, found.title) == (category, subcategory, severity, title)
    assert found.source_ref == data["event_id"]
    assert (found.lat, found.lon) == (data["lat"], data["lon"])


def test_every_type_has_a_category_and_a_label():
    assert set(traffic.CATEGORY) == set(TrafficType)
    assert set(traffic.LABEL) == set(TrafficType)


# ------------------------------------------------------------------ severity boundaries (rules.yaml: traffic)

def _accident(sample, **fields):
    data = sample("traffic", "accident_minor")
    data.update(lanes_blocked=0, injuries=0, vehicles=1)
    data.update(fields)
    return data


@pytest.mark.parametrize("fields, expected", [
    ({}, Y),                                   # base
    ({"lanes_blocked": 1}, Y),                 # lanes_blocked >= 2 -> orange
    ({"lanes_blocked": 2}, O),
    ({"injuries": 1}, O),                      # injuries >= 1 -> orange
    ({"injuries": 2}, O),                      # injuries >= 3 -> red
    ({"injuries": 3}, R),
    ({"vehicles": 4}, Y),                      # vehicles >= 5 -> red
    ({"vehicles": 5}, R),
    ({"lanes_blocked": 2, "injuries": 2, "vehicles": 4}, O),
    ({"lanes_blocked": 2, "injuries": 3}, R),  # the highest threshold reached wins
])
def test_accident_boundaries(ctx, sample, fields, expected):
    assert classify(ctx, _accident(sample, **fields)).severity is expected


def test_accident_without_optional_fields_stays_at_base(ctx, sample):
    data = sample("traffic", "accident_minor")
    for key in ("lanes_blocked", "injuries", "vehicles", "camera_id", "confidence", "intersection_id"):
        data.pop(key)
    assert classify(ctx, data).severity is Y


@pytest.mark.parametrize("speed_kmh, expected", [
    (None, None),  # no speed measured: nothing to grade
    (75.0, None),  # faster than free flow: negative deficit
    (40.5, None),  # deficit 19.5
    (40.0, B),     # deficit 20 -> blue
    (30.5, B),    # deficit 29.5
    (30.0, Y),    # deficit 30 -> yellow
    (15.5, Y),    # deficit 44.5
    (15.0, O),    # deficit 45 -> orange
    (0.0, O),
])
def test_congestion_speed_deficit_boundaries(ctx, sample, speed_kmh, expected):
    data = sample("traffic", "congestion")
    data["speed_kmh"] = speed_kmh
    assert classify(ctx, data).severity is expected


@pytest.mark.parametrize("kind, lanes, expected", [
    ("illegal_parking", None, B),
    ("illegal_parking", 0, B),
    ("illegal_parking", 1, Y),
    ("signal_fault", None, Y),
    ("signal_fault", 1, Y),
    ("signal_fault", 2, O),
    ("road_obstruction", 1, Y),
    ("road_obstruction", 2, O),
    ("road_obstruction", 4, O),
])
def test_lanes_blocked_boundaries(ctx, sample, kind, lanes, expected):
    data = sample("traffic", kind)
    data["lanes_blocked"] = lanes
    assert classify(ctx, data).severity is expected


@pytest.mark.parametrize("speed_kmh", [None, 10.0, 80.0])
def test_wrong_way_is_always_orange(ctx, sample, speed_kmh):
    data = sample("traffic", "wrong_way")
    data["speed_kmh"] = speed_kmh
    assert classify(ctx, data).severity is O


# ------------------------------------------------------------------ identity, details, time

def test_identity_is_the_dedup_grid_cell_of_the_place(ctx, sample, config):
    first = classify(ctx, sample("traffic", "accident_minor"))
    assert first.identity == grid_cell(22.5081, 113.9276, config.rules.dedup.grid_m)
    # Another report of the same crash a few metres away, from another camera, later.
    again = sample("traffic", "accident_minor")
    again.update(event_id="TP-20260512-000325", lat=22.50812, lon=113.92762,
                 observed_at="2026-05-12T09:19:00+08:00", camera_id="CAM-WH-0232")
    assert classify(ctx, again).identity == first.identity
    # 500 m further along the road is another place.
    far = sample("traffic", "accident_minor")
    far["lat"] = 22.5126
    assert classify(ctx, far).identity != first.identity


def test_details_keep_the_reported_fields_only(ctx, sample):
    found = classify(ctx, sample("traffic", "accident_minor"))
    assert found.details == {"road": "望海路与创业路交叉口", "intersection_id": "HW-X-017", "lanes_blocked": 1,
                             "injuries": 0, "vehicles": 2, "camera_id": "CAM-WH-0231", "confidence": 0.93}
    congestion = classify(ctx, sample("traffic", "vendor_extra_fields"))
    assert congestion.details == {"road": "望海路", "speed_kmh": 31.0}
    assert congestion.description == ""


def test_observed_at_keeps_the_instant_of_a_utc_timestamp(ctx, sample):
    found = classify(ctx, sample("traffic", "utc_timestamp"))
    assert found.observed_at == datetime(2026, 5, 12, 1, 40, tzinfo=timezone.utc)
    assert found.observed_at.utcoffset().total_seconds() == 0


def test_vendor_extra_fields_are_ignored_not_rejected(sample):
    event = traffic.parse(sample("traffic", "vendor_extra_fields"))
    assert not hasattr(event, "platform_version")
    assert "ext" not in event.model_dump()


@pytest.mark.parametrize("field, value", [
    ("type", "crash"), ("lanes_blocked", 21), ("lanes_blocked", -1), ("confidence", 1.01),
    ("speed_kmh", 301), ("road", ""), ("observed_at", "2026-05-12T09:12:40"),
])
def test_parse_rejects_bad_fields(sample, field, value):
    data = sample("traffic", "accident_minor")
    data[field] = value
    with pytest.raises(ValidationError) as info:
        traffic.parse(data)
    assert [e["loc"] for e in info.value.errors()] == [(field,)]


def test_incident_from_a_captured_accident(ctx, sample, sample_bytes, clock):
    incident = to_incident("traffic", sample_bytes("traffic", "accident_pileup.json"), ctx)
    assert incident.source.value == "traffic"
    assert incident.category is Category.traffic_accident and incident.severity is R
    assert incident.title == "沙河西路（沙河桥段） 交通事故"
    assert incident.community == "shahe"
    assert incident.source_ref == "TP-20260512-000330"
    assert incident.dedup_key == f"traffic:traffic_accident:{grid_cell(22.5315, 113.9702, 150)}"
    assert incident.received_at == clock
    assert incident.observed_at == datetime.fromisoformat("2026-05-12T09:24:51+08:00")
