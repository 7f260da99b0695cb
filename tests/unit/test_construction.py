"""Construction-site events checked against the whitelist: registration, work hours, permits,
GB 12523 noise limits, PM10, safety. Local time is the district's (Asia/Shanghai)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from handlers import construction
from handlers.base import Context
from handlers.geo import distance_m, grid_cell
from handlers.intake import to_incident
from schemas.enums import Category, Severity
from schemas.raw import SiteRegistration

B, Y, O, R = Severity.blue, Severity.yellow, Severity.orange, Severity.red
MAIN_SITE = "HW-2026-0012"    # 海湾花园二期, active, 07:00-12:00,14:00-22:00, permit 2026-02-01 .. 2026-12-31
METRO_SITE = "HW-2026-0020"   # 地铁12号线海湾站附属工程, active, night works 20:00-06:00


def classify(ctx, data):
    return construction.classify(construction.parse(data), ctx)


def at(sample, name, when, **fields):
    data = sample("construction", name)
    data["observed_at"] = when
    data.update(fields)
    return data


def with_sites(ctx, *extra: SiteRegistration) -> Context:
    return Context(config=ctx.config, received_at=ctx.received_at,
                   sites={**ctx.sites, **{s.site_id: s for s in extra}})


def round_the_clock(ctx) -> Context:
    site = ctx.sites[MAIN_SITE].model_copy(update={"work_hours": "00:00-12:00,12:00-00:00"})
    return with_sites(ctx, site)


# ------------------------------------------------------------------ the whitelist

def test_registered_site_in_hours_is_no_incident(ctx, sample):
    assert classify(ctx, sample("construction", "activity_in_hours")) is None


def test_registered_site_in_hours_produces_no_incident_through_intake(ctx, sample_bytes):
    assert to_incident("construction", sample_bytes("construction", "activity_in_hours.json"), ctx) is None


def test_unregistered_site(ctx, sample):
    found = classify(ctx, sample("construction", "activity_unregistered"))
    assert (found.category, found.subcategory, found.severity) == (Category.site_unregistered, "no_registration", Y)
    assert found.title == "滨海大道附近 未报备施工"
    assert found.identity == grid_cell(22.5085, 113.9102, ctx.config.rules.dedup.grid_m)
    assert found.source_ref == "GD-AI-PATROL-20260512-093000"
    assert "site_id" not in found.details
    assert found.details["findings"] == ["site_unregistered"]


def test_unregistered_site_at_night_is_orange(ctx, sample):
    found = classify(ctx, at(sample, "activity_unregistered", "2026-05-12T23:10:00+08:00"))
    assert (found.category, found.severity) == (Category.site_unregistered, O)


def test_outside_work_hours_at_night(ctx, sample):
    found = classify(ctx, sample("construction", "activity_night"))  # 23:30+08:00
    assert (found.category, found.subcategory, found.severity) == (
        Category.site_out_of_hours, "outside_work_hours", O)
    assert found.title == "海湾花园二期住宅项目 超时施工"
    assert found.identity == MAIN_SITE
    assert found.details["local_time"] == "23:30"
    assert found.details["work_hours"] == "07:00-12:00,14:00-22:00"
    assert found.details["contractor"] == "中建海湾建设有限公司"


def test_work_hours_are_checked_in_district_local_time(ctx, sample):
    # 15:30 UTC is 23:30 in Asia/Shanghai: out of hours although 15:30 is inside the spans.
    found = classify(ctx, at(sample, "activity_in_hours", "2026-05-12T15:30:00Z"))
    assert (found.category, found.severity, found.details["local_time"]) == (Category.site_out_of_hours, O, "23:30")
    # 02:00 UTC is 10:00 local: in hours although 02:00 is not.
    assert classify(ctx, at(sample, "activity_in_hours", "2026-05-12T02:00:00Z")) is None


def test_lunch_break_gap(ctx, sample):
    found = classify(ctx, sample("construction", "activity_lunch_break"))  # 12:40
    assert (found.category, found.severity) == (Category.site_out_of_hours, Y)


@pytest.mark.parametrize("local, in_hours", [
    ("06:59", False), ("07:00", True), ("11:59", True), ("12:00", False),
    ("13:59", False), ("14:00", True), ("21:59", True), ("22:00", False),
])
def test_work_hours_span_edges(ctx, sample, local, in_hours):
    found = classify(ctx, at(sample, "activity_in_hours", f"2026-05-12T{local}:00+08:00"))
    assert (found is None) is in_hours
    if not in_hours:
        assert found.category is Category.site_out_of_hours
        assert found.severity is (O if local == "22:00" else Y)


@pytest.mark.parametrize("local, in_hours", [("19:59", False), ("20:00", True), ("23:30", True),
                                             ("05:59", True), ("06:00", False)])
def test_work_hours_across_midnight(ctx, sample, local, in_hours):
    data = at(sample, "activity_in_hours", f"2026-05-13T{local}:00+08:00", site_id=METRO_SITE, lat=22.525, lon=113.948)
    found = classify(ctx, data)
    assert (found is None) is in_hours
    if not in_hours:
        assert found.category is Category.site_out_of_hours


@pytest.mark.parametrize("site_id, subcategory", [("HW-2026-0007", "suspended"), ("HW-2025-0044", "revoked")])
def test_suspended_and_revoked_registrations(ctx, sample, site_id, subcategory):
    site = ctx.sites[site_id]
    found = classify(ctx, at(sample, "activity_in_hours", "2026-05-12T10:00:00+08:00",
                             site_id=site_id, lat=site.lat, lon=site.lon))
    assert (found.category, found.subcategory, found.severity) == (Category.site_permit_invalid, subcategory, O)
    assert found.title == f"{site.name} 许可失效施工"
    assert found.details["site_status"] == subcategory


@pytest.mark.parametrize("site_id, when, subcategory", [
    ("HW-2025-0102", "2026-04-30T10:00:00+08:00", None),              # last day of the permit
    ("HW-2025-0102", "2026-05-01T10:00:00+08:00", "expired"),         # until 2026-04-30T23:59:59+08:00
    ("HW-2025-0102", "2026-04-30T16:00:00Z", "expired"),              # = 2026-05-01 00:00 local
    ("HW-2026-0050", "2026-05-31T10:00:00+08:00", "not_yet_valid"),   # from 2026-06-01T00:00:00+08:00
    ("HW-2026-0050", "2026-06-01T10:00:00+08:00", None),
])
def test_permit_dates(ctx, sample, site_id, when, subcategory):
    site = ctx.sites[site_id]
    found = classify(ctx, at(sample, "activity_in_hours", when, site_id=site_id, lat=site.lat, lon=site.lon))
    if subcategory is None:
        assert found is None
    else:
        assert (found.category, found.subcategory, found.severity) == (Category.site_permit_invalid, subcategory, O)


# ------------------------------------------------------------------ finding the site

def test_site_found_by_radius_when_site_id_is_absent(ctx, sample):
    event = construction.parse(sample("construction", "activity_by_radius"))
    assert event.site_id is None
    assert construction.find_site(event, ctx.sites).site_id == MAIN_SITE
    assert classify(ctx, sample("construction", "activity_by_radius")) is None  # registered, in hours


def test_finding_by_radius_names_the_site(ctx, sample):
    data = sample("construction", "activity_by_radius")
    data.update(kind="unsafe_scaffold")
    found = classify(ctx, data)
    assert found.details["site_id"] == MAIN_SITE
    assert found.identity == MAIN_SITE
    assert found.title == "海湾花园二期住宅项目 施工安全隐患"


def test_just_outside_the_radius_is_unregistered(ctx, sample):
    site = ctx.sites[MAIN_SITE]
    lat = site.lat + 0.00145  # about 161 m north, radius 150 m
    assert 150 < distance_m(lat, site.lon, site.lat, site.lon) < 170
    data = sample("construction", "activity_by_radius")
    data.update(lat=lat, lon=site.lon)
    assert classify(ctx, data).category is Category.site_unregistered
    data.update(lat=site.lat + 0.00130)   # about 145 m: inside
    assert classify(ctx, data) is None


def test_unknown_site_id_falls_back_to_the_radius(ctx, sample):
    data = sample("construction", "activity_by_radius")
    data["site_id"] = "HW-1999-0001"
    assert classify(ctx, data) is None
    data.update(lat=22.5085, lon=113.9102)
    assert classify(ctx, data).category is Category.site_unregistered


def test_active_registration_preferred_over_a_closer_suspended_one(ctx, sample):
    main = ctx.sites[MAIN_SITE]
    event = construction.parse(sample("construction", "activity_by_radius"))
    closer = main.model_copy(update={"site_id": "HW-2026-0099", "status": "suspended",
                                     "lat": event.lat, "lon": event.lon, "radius_m": 50})
    assert construction.find_site(event, {**ctx.sites, closer.site_id: closer}).site_id == MAIN_SITE
    # Alone, the suspended registration covers the point and makes it a permit problem.
    assert construction.find_site(event, {closer.site_id: closer}).site_id == "HW-2026-0099"


def test_empty_whitelist_makes_everything_unregistered(ctx, sample):
    empty = Context(config=ctx.config, received_at=ctx.received_at, sites={})
    assert classify(empty, sample("construction", "activity_in_hours")).category is Category.site_unregistered


# ------------------------------------------------------------------ GB 12523 noise, PM10

@pytest.mark.parametrize("db, expected", [
    (70.0, None),   # at the day limit: no breach
    (70.1, B),      # over by 0.1
    (74.9, B),
    (75.0, Y),      # over_limit_db >= 5
    (84.9, Y),
    (85.0, O),      # over_limit_db >= 15
])
def test_day_noise_limit_70(ctx, sample, db, expected):
    found = classify(ctx, at(sample, "noise_day", "2026-05-12T15:20:00+08:00", value=db))
    if expected is None:
        assert found is None
    else:
        assert (found.category, found.subcategory, found.severity) == (Category.site_noise, "day_noise", expected)


@pytest.mark.parametrize("db, expected", [
    (55.0, None),   # at the night limit
    (55.5, B),
    (59.9, B),
    (60.0, Y),
    (65.0, Y),      # under the day limit, over the night one
    (69.9, Y),
    (70.0, O),
])
def test_night_noise_limit_55(ctx, sample, db, expected):
    found = classify(ctx, at(sample, "noise_night_metro", "2026-05-13T01:10:00+08:00", value=db))
    if expected is None:
        assert found is None
    else:
        assert (found.category, found.subcategory, found.severity) == (Category.site_noise, "night_noise", expected)


def test_captured_noise_samples(ctx, sample):
    day = classify(ctx, sample("construction", "noise_day"))        # 78.4 dB(A) at 15:20
    assert (day.category, day.severity, day.details["value"]) == (Category.site_noise, Y, 78.4)
    assert day.title == "海湾花园二期住宅项目 施工噪声超标"
    night = classify(ctx, sample("construction", "noise_night_metro"))  # 61.0 dB(A) at 01:10
    assert (night.category, night.subcategory, night.severity) == (Category.site_noise, "night_noise", Y)


@pytest.mark.parametrize("local, expected", [
    ("05:59", Y),     # night (22:00-06:00): 60 is 5 over 55
    ("06:00", None),  # day: 60 is under 70
    ("21:59", None),
    ("22:00", Y),
])
def test_day_and_night_start(ctx, sample, local, expected):
    found = classify(round_the_clock(ctx), at(sample, "noise_day", f"2026-05-12T{local}:00+08:00", value=60.0))
    assert (found and found.severity) == expected


@pytest.mark.parametrize("pm10, expected", [
    (150.0, None),  # at the limit
    (151.0, B),
    (224.9, B),
    (225.0, Y),     # pm10_ratio >= 1.5
    (374.9, Y),
    (375.0, O),     # pm10_ratio >= 2.5
])
def test_pm10_limit(ctx, sample, pm10, expected):
    found = classify(ctx, at(sample, "dust_pm10", "2026-05-12T09:45:00+08:00", value=pm10))
    if expected is None:
        assert found is None
    else:
        assert (found.category, found.subcategory, found.severity) == (Category.site_dust, "pm10", expected)


def test_captured_dust_sample(ctx, sample):
    found = classify(ctx, sample("construction", "dust_pm10"))  # 236 µg/m³
    assert (found.category, found.severity, found.title) == (Category.site_dust, Y, "海湾花园二期住宅项目 施工扬尘超标")


# ------------------------------------------------------------------ safety and several findings at once

@pytest.mark.parametrize("name, site_id", [("no_helmet", "HW-2026-0031"), ("unsafe_scaffold", MAIN_SITE)])
def test_safety_findings(ctx, sample, name, site_id):
    found = classify(ctx, sample("construction", name))
    assert (found.category, found.subcategory, found.severity) == (Category.site_safety, name, O)
    assert found.identity == site_id
    assert found.details["findings"] == ["site_safety"]


def test_no_helmet_at_an_unregistered_place(ctx, sample):
    found = classify(ctx, at(sample, "no_helmet", "2026-05-12T09:12:00+08:00", site_id=None,
                             lat=22.5085, lon=113.9102))
    assert (found.category, found.severity) == (Category.site_safety, O)
    assert found.details["findings"] == ["site_safety", "site_unregistered"]


def test_equal_severities_resolved_by_priority(ctx, sample):
    # Night noise 35 dB over the limit (orange) at a place nobody registered, at night (orange).
    found = classify(ctx, at(sample, "noise_day", "2026-05-12T23:00:00+08:00", site_id=None,
                             lat=22.5085, lon=113.9102, value=90.0))
    assert (found.category, found.severity) == (Category.site_unregistered, O)
    assert found.details["findings"] == ["site_noise", "site_unregistered"]


def test_the_most_severe_finding_names_the_ticket(ctx, sample):
    # Out of hours at lunch (yellow) and 20 dB over the day limit (orange).
    found = classify(ctx, at(sample, "noise_day", "2026-05-12T12:30:00+08:00", value=90.0))
    assert (found.category, found.subcategory, found.severity) == (Category.site_noise, "day_noise", O)
    assert found.details["findings"] == ["site_noise", "site_out_of_hours"]


def test_incident_from_a_night_activity(ctx, sample_bytes):
    incident = to_incident("construction", sample_bytes("construction", "activity_night.json"), ctx)
    assert incident.dedup_key == f"construction:site_out_of_hours:{MAIN_SITE}"
    assert incident.community == "xingang"
    assert incident.observed_at == datetime.fromisoformat("2026-05-12T23:30:00+08:00")


@pytest.mark.parametrize("when, subcategory", [
    ("2026-04-01T00:00:00+08:00", None),             # the first day, from its midnight in the district
    ("2026-03-31T23:59:00+08:00", "not_yet_valid"),
    ("2026-04-30T23:59:59+08:00", None),             # the until-day is included to its end
    ("2026-04-30T16:30:00+00:00", "expired"),        # 00:30 on 1 May in the district
])
def test_permits_as_plain_dates_are_days_in_the_district(ctx, sample, when, subcategory):
    site = SiteRegistration.model_validate({**ctx.sites[MAIN_SITE].model_dump(mode="json"), "permit_from": "2026-04-01",
                                            "permit_until": "2026-04-30", "work_hours": "00:00-12:00,12:00-00:00"})
    event = {**sample("construction", "activity_in_hours"), "site_id": MAIN_SITE, "observed_at": when}
    found = construction.classify(construction.parse(event), replace(ctx, sites={MAIN_SITE: site}))
    assert (found and found.subcategory) == subcategory
