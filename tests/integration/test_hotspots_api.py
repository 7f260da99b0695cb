"""GET /api/hotspots through the real stack: road-damage reports sent through soc.raw.city (with Kafka
timestamps days apart, so each opens its own ticket) come back as one recurring place with its count, local
dates and department, open and closed tickets alike; a place reported twice is not one; department users
and bad query parameters are refused with JSON."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.test_stats_api import send_at
from tests.support import DUTY_OFFICER, poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))


def reports(pipeline, build, community: str, days_ago: list[int], jitter_m: float = 15.0) -> list:
    """Road-damage reports at one spot of `community` (each a few metres off), at 10:00 `days_ago` days
    ago; their tickets, oldest first."""
    lat, lon = build.point(community)
    refs = []
    for n, days in enumerate(days_ago):
        day = (datetime.now(CST) - timedelta(days=days)).date()
        at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=CST)
        report = build.city(community, category="road_damage", description="路面塌陷", reported_at=at.isoformat(),
                            lat=round(lat + (n % 2) * jitter_m / 111_195.0, 6), lon=lon)
        send_at(pipeline, "soc.raw.city", report, at)
        refs.append(report["case_no"])

    def all_opened():
        found = [pipeline.tickets_where(lambda t, ref=ref: t.source_ref == ref) for ref in refs]
        return all(found) and [f[0] for f in found]

    return poll(all_opened, 30, f"{len(refs)} road-damage tickets")


def test_a_place_back_three_times_is_a_recurring_place_and_one_back_twice_is_not(pipeline, build):
    three = reports(pipeline, build, "liyuan", [9, 6, 3])
    twice = reports(pipeline, build, "shahe", [8, 4])
    assert len({t.ticket_id for t in three}) == 3
    first = three[0]
    assert pipeline.post(f"/api/tickets/{first.ticket_id}/accept", first.department, {})[0] == 200
    pipeline.upload_after_photo(first.ticket_id, first.department)  # road damage is resolved with one (routing.yaml)
    for action, who, body in [("resolve", first.department, {"resolution": "已修复"}),
                              ("verify", DUTY_OFFICER, {"passed": True})]:
        assert pipeline.post(f"/api/tickets/{first.ticket_id}/{action}", who, body)[0] == 200

    def found():
        status, answer = pipeline.get("/api/hotspots?category=city_road_damage", "district_leadership")
        assert status == 200, answer
        place = next((p for p in answer["places"] if three[-1].ticket_id in p["ticket_ids"]), None)
        return place is not None and place["open"] == 2 and (answer, place)

    answer, place = poll(found, 30, "the place with its first ticket closed")
    assert answer["rules"]["radius_m"] == 100 and answer["rules"]["min_count"] == 3 and answer["rules"]["days"] == 30
    assert place["category"] == "city_road_damage" and place["rules"] == ["days"]
    assert (place["lat"], place["lon"]) == (first.lat, first.lon)
    assert place["count"] == 3 and place["ticket_ids"] == [t.ticket_id for t in reversed(three)]
    assert place["last_dates"] == [(datetime.now(CST) - timedelta(days=d)).date().isoformat() for d in (3, 6, 9)]
    assert place["departments"] == ["city_management"]
    listed = {i for p in answer["places"] for i in p["ticket_ids"]}
    assert not listed & {t.ticket_id for t in twice}

    status, everything = pipeline.get("/api/hotspots", "ops_centre")
    assert status == 200 and any(p["ticket_ids"] == place["ticket_ids"] for p in everything["places"])


@pytest.mark.parametrize("path, who, status, error", [
    ("/api/hotspots", "city_management", 403, "the leadership view is for the operations centre and the leadership"),
    ("/api/hotspots?radius=50", "ops_centre", 400, None),
    ("/api/hotspots?category=puddles", "ops_centre", 400, None),
])
def test_hotspots_refuse_departments_and_bad_parameters_with_json(pipeline, path, who, status, error):
    got, answer = pipeline.get(path, who)
    assert got == status and isinstance(answer.get("error"), str), answer
    if error:
        assert answer["error"] == error
    if "category" in path:
        assert answer["error"].startswith("category must be one of: traffic_accident, ")
