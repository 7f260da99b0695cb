"""The site whitelist API (POST/PATCH/GET /api/sites) on the session's stack: who may use it, the exact
validation errors, plain-date permits on the API and straight on soc.sites, and a change reaching the
construction checks."""
from __future__ import annotations

import pytest

from tests.support import poll

pytestmark = pytest.mark.integration


def site(build, **change) -> dict:
    lat, lon = build.point("xingang")
    return {"site_id": f"T-{build.unique}", "name": f"{build.unique} 外墙翻新", "contractor": "新港建筑",
            "kind": "small_scattered", "lat": lat, "lon": lon, "radius_m": 50, "permit_from": "2026-01-01",
            "permit_until": "2034-12-31", "work_hours": "08:00-12:00,14:00-18:00", **change}


def test_register_list_and_change_a_site(pipeline, build):
    status, body = pipeline.post("/api/sites", "construction_safety", site(build))
    assert status == 201 and (body["site_id"], body["status"], body["permit_until"]) == (
        f"T-{build.unique}", "active", "2034-12-31")
    assert pipeline.post("/api/sites", "ops_centre", site(build)) == (
        409, {"error": f"site T-{build.unique} is already registered: PATCH /api/sites/T-{build.unique} changes it"})
    status, listed = pipeline.get("/api/sites?status=active", "ops_centre")
    assert status == 200 and body in listed["sites"]
    status, changed = pipeline.request("PATCH", f"/api/sites/T-{build.unique}", "construction_safety",
                                       {"status": "suspended", "permit_until": "2035-06-30T18:00:00+08:00",
                                        "work_hours": "07:00-19:00"})
    assert status == 200 and (changed["status"], changed["permit_until"], changed["work_hours"]) == (
        "suspended", "2035-06-30T18:00:00+08:00", "07:00-19:00")
    assert pipeline.get(f"/api/sites/T-{build.unique}", "construction_safety") == (200, changed)
    status, listed = pipeline.get("/api/sites?status=active", "ops_centre")
    assert changed["site_id"] not in [s["site_id"] for s in listed["sites"]]
    # Generated ids when none is given.
    status, made = pipeline.post("/api/sites", "construction_safety", {**site(build), "site_id": None})
    assert status == 201 and made["site_id"].startswith("S")


@pytest.mark.parametrize("change, loc, msg", [
    ({"permit_from": "2026-12-10", "permit_until": "2026-12-01"}, "permit_until",
     "permit_until must be after permit_from (a plain date's day is included)"),
    ({"permit_from": "2026-12-10T10:00:00+08:00", "permit_until": "2026-12-10T09:00:00+08:00"}, "permit_until",
     "permit_until must be after permit_from (a plain date's day is included)"),
    ({"work_hours": "7:00-12:00"}, "work_hours",
     "Value error, bad time span '7:00-12:00': use HH:MM-HH:MM, e.g. 07:00-12:00,14:00-22:00"),
    ({"work_hours": "07:00-12:00,14:00-24:30"}, "work_hours",
     "Value error, bad time span '14:00-24:30': use HH:MM-HH:MM, e.g. 07:00-12:00,14:00-22:00"),
    ({"permit_from": "2026-12-01T08:00"}, "permit_from",
     "Value error, needs a UTC offset (RFC 3339), or a plain date YYYY-MM-DD"),
    ({"permit_until": "31/12/2026"}, "permit_until",
     "Value error, bad date '31/12/2026': use YYYY-MM-DD or an RFC 3339 time with its offset"),
    ({"lat": 22.6, "lon": 114.1}, "lat", "(22.6, 114.1) is outside 海湾街道"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
])
def test_registrations_are_refused_with_the_exact_reason(pipeline, build, change, loc, msg):
    status, body = pipeline.post("/api/sites", "construction_safety", site(build, **change))
    assert (status, body) == (422, {"error": "invalid body", "fields": [{"loc": loc, "msg": msg}]})


def test_only_construction_safety_and_the_centre(pipeline, build):
    expected = (403, {"error": "only construction_safety and the operations centre manage the site whitelist"})
    assert pipeline.post("/api/sites", "traffic_police", site(build)) == expected
    assert pipeline.get("/api/sites", "environment") == expected
    assert pipeline.get("/api/sites", token="nope")[0] == 401
    assert pipeline.get("/api/sites?status=gone", "ops_centre") == (
        400, {"error": "status must be one of active, suspended, revoked"})
    assert pipeline.request("PATCH", "/api/sites/NOPE-1", "ops_centre", {"status": "active"}) == (
        404, {"error": "no site NOPE-1"})
    assert pipeline.post("/api/sites", "construction_safety", site(build))[0] == 201
    assert pipeline.request("PATCH", f"/api/sites/T-{build.unique}", "ops_centre", {}) == (
        422, {"error": "nothing to change: status, permit_from, permit_until or work_hours"})


def test_a_plain_date_registration_on_soc_sites_is_whitelisted(pipeline, build):
    registration = site(build, permit_from=build.day.date().isoformat(), permit_until=build.day.date().isoformat(),
                        status="active")
    pipeline.send("soc.sites", registration, key=registration["site_id"].encode())
    poll(lambda: pipeline.get(f"/api/sites/{registration['site_id']}", "ops_centre")[0] == 200, 30, "the registration")
    # The permit's only day, at 21:00: registered and permitted, but outside its work hours.
    event_id = f"ACT-{build.unique}"
    pipeline.send("soc.raw.construction", {"event_id": event_id, "kind": "activity_detected",
                                           "site_id": registration["site_id"], "lat": registration["lat"],
                                           "lon": registration["lon"],
                                           "observed_at": build.day.replace(hour=21).isoformat()})
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event_id), 30, "the ticket")
    assert ticket.category.value == "site_out_of_hours"


@pytest.mark.parametrize("permit_from, permit_until, state", [
    ("2020-01-01", "2020-12-31", "expired"),
    ("2020-01-01", "2099-12-31", "valid"),
    ("2099-01-01", "2099-12-31", "not_yet_valid"),
])
def test_every_site_says_whether_its_permit_is_in_force_today(pipeline, build, permit_from, permit_until, state):
    status, body = pipeline.post("/api/sites", "construction_safety",
                                 site(build, permit_from=permit_from, permit_until=permit_until))
    assert status == 201 and (body["status"], body["permit_state"]) == ("active", state)
    assert pipeline.get(f"/api/sites/{body['site_id']}", "ops_centre")[1]["permit_state"] == state
    listed = pipeline.get("/api/sites", "construction_safety")[1]["sites"]
    assert [s["permit_state"] for s in listed if s["site_id"] == body["site_id"]] == [state]
