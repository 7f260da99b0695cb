"""Flood-prevention readings (三防): parse, classify, every severity boundary of rules.yaml's flood section."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from handlers import flood
from handlers.intake import to_incident
from schemas.enums import Category, Severity
from schemas.raw import FloodKind

B, Y, O, R = Severity.blue, Severity.yellow, Severity.orange, Severity.red


def classify(ctx, data):
    return flood.classify(flood.parse(data), ctx)


@pytest.mark.parametrize("name, category, severity, title", [
    ("water_level_near_warning", Category.flood_water_level, Y, "SW-XG-01 水位 4.32 m"),
    ("water_level_normal", Category.flood_water_level, None, "SW-XG-01 水位 3.1 m"),  # normal: no incident
    ("rainfall_heavy", Category.flood_rainfall, O, "YL-YG-02 降雨 86.5 mm/h"),
    ("waterlogging_underpass", Category.flood_waterlogging, O, "JS-LY-05 积水 32 cm"),
    ("pump_fault", Category.flood_pump_station, O, "BZ-HB-01 泵站 故障"),
    ("pump_offline", Category.flood_pump_station, Y, "BZ-SH-02 泵站 离线"),
    ("typhoon_orange", Category.typhoon, O, "QX-HW 台风信号 橙色"),
])
def test_captured_samples(ctx, sample, name, category, severity, title):
    data = sample("flood", name)
    found = classify(ctx, data)
    assert (found.category, found.subcategory, found.severity, found.title) == (category, data["kind"], severity, title)


def test_every_kind_has_a_category_and_a_label():
    assert set(flood.CATEGORY) == set(FloodKind)
    assert set(flood.LABEL) == set(FloodKind)


# ------------------------------------------------------------------ severity boundaries (rules.yaml: flood)

@pytest.mark.parametrize("value, expected", [
    (3.10, None),  # well below the warning level: a normal reading, no incident
    (3.99, None),
    (4.00, B),    # 0.5 m below the warning level -> blue
    (4.19, B),    # 0.31 m below the warning level
    (4.20, Y),    # above_warning >= -0.3 -> yellow (4.2 - 4.5 = -0.2999... in floats)
    (4.49, Y),
    (4.50, O),    # at the warning level -> orange
    (5.49, O),
    (5.50, R),    # at the danger level -> red
    (6.80, R),
])
def test_water_level_boundaries(ctx, sample, value, expected):
    data = sample("flood", "water_level_near_warning")  # warning 4.5 m, danger 5.5 m
    data["value"] = value
    assert classify(ctx, data).severity is expected


@pytest.mark.parametrize("value, warning, danger", [
    # Exactly 0.3 m below the warning level, where value - warning is -0.30000000000000004 in floats.
    (1.2, 1.5, 2.5),
    (0.7, 1.0, 1.8),
])
def test_water_level_exactly_at_the_yellow_margin_despite_float_rounding(ctx, sample, value, warning, danger):
    data = sample("flood", "water_level_near_warning")
    data.update(value=value, warning_level=warning, danger_level=danger)
    assert classify(ctx, data).severity is Y


def test_water_level_without_station_levels_is_not_graded(ctx, sample):
    # Without the station's own levels a height means nothing: no incident rather than a guess.
    data = sample("flood", "water_level_near_warning")
    del data["warning_level"], data["danger_level"]
    data["value"] = 9.9
    assert classify(ctx, data).severity is None


def test_water_level_with_only_a_warning_level(ctx, sample):
    data = sample("flood", "water_level_near_warning")
    del data["danger_level"]
    data["value"] = 7.0
    assert classify(ctx, data).severity is O


@pytest.mark.parametrize("kind, value, expected", [
    ("rainfall", 0.0, None),
    ("rainfall", 29.9, None),
    ("rainfall", 30.0, B),
    ("rainfall", 49.9, B),
    ("rainfall", 50.0, Y),
    ("rainfall", 79.9, Y),
    ("rainfall", 80.0, O),
    ("rainfall", 99.9, O),
    ("rainfall", 100.0, R),
    ("waterlogging", 4.9, None),
    ("waterlogging", 5.0, B),
    ("waterlogging", 14.9, B),
    ("waterlogging", 15.0, Y),
    ("waterlogging", 29.9, Y),
    ("waterlogging", 30.0, O),
    ("waterlogging", 49.9, O),
    ("waterlogging", 50.0, R),
])
def test_value_boundaries(ctx, sample, kind, value, expected):
    name = {"rainfall": "rainfall_heavy", "waterlogging": "waterlogging_underpass"}[kind]
    data = sample("flood", name)
    data["value"] = value
    assert classify(ctx, data).severity is expected


@pytest.mark.parametrize("status, expected", [("running", None), ("standby", None), ("offline", Y), ("fault", O)])
def test_pump_station_status(ctx, sample, status, expected):
    data = sample("flood", "pump_fault")
    data["status"] = status
    assert classify(ctx, data).severity is expected


@pytest.mark.parametrize("signal, expected, label", [
    ("white", None, "白色"), ("blue", B, "蓝色"), ("yellow", Y, "黄色"), ("orange", O, "橙色"), ("red", R, "红色"),
])
def test_typhoon_signal_levels(ctx, sample, signal, expected, label):
    data = sample("flood", "typhoon_orange")
    data["signal"] = signal
    found = classify(ctx, data)
    assert found.severity is expected
    assert found.title == f"QX-HW 台风信号 {label}"


# ------------------------------------------------------------------ identity, source_ref, details

def test_one_station_is_one_identity_whatever_the_reading(ctx, sample):
    normal = classify(ctx, sample("flood", "water_level_normal"))
    rising = classify(ctx, sample("flood", "water_level_near_warning"))
    assert normal.identity == rising.identity == "SW-XG-01"
    assert normal.source_ref == "SW-XG-01@2026-05-11T22:00:00+00:00"
    assert rising.source_ref == "SW-XG-01@2026-05-12T01:00:00+00:00"


def test_one_reading_sent_with_another_offset_has_the_same_source_ref(ctx, sample):
    data = sample("flood", "water_level_near_warning")
    in_utc = dict(data, observed_at="2026-05-12T01:00:00Z")
    assert classify(ctx, data).source_ref == classify(ctx, in_utc).source_ref


def test_details_keep_the_reading_and_the_station_levels(ctx, sample):
    assert classify(ctx, sample("flood", "water_level_near_warning")).details == {
        "station_id": "SW-XG-01", "value": 4.32, "warning_level": 4.5, "danger_level": 5.5}
    assert classify(ctx, sample("flood", "pump_fault")).details == {"station_id": "BZ-HB-01", "status": "fault"}
    assert classify(ctx, sample("flood", "typhoon_orange")).details == {"station_id": "QX-HW", "signal": "orange"}


@pytest.mark.parametrize("name, missing", [
    ("pump_fault", "status"), ("typhoon_orange", "signal"), ("rainfall_heavy", "value"),
])
def test_a_reading_needs_its_measurement(sample, name, missing):
    data = sample("flood", name)
    del data[missing]
    with pytest.raises(ValidationError, match=f"reading needs '{missing}'"):
        flood.parse(data)


def test_incident_from_a_captured_reading(ctx, sample_bytes):
    incident = to_incident("flood", sample_bytes("flood", "waterlogging_underpass.json"), ctx)
    assert incident.category is Category.flood_waterlogging and incident.severity is O
    assert incident.community == "liyuan"
    assert incident.dedup_key == "flood:flood_waterlogging:JS-LY-05"
    assert incident.source_ref == "JS-LY-05@2026-05-12T01:10:00+00:00"
