"""GET /api/stats/seasons through the real stack: manhole reports sent through soc.raw.city with Kafka
timestamps at chosen local times (their tickets' dispatch times) add, by hand, 2 reports at 08h in the week of
10 days ago and 1 at 21h in the week of 3 days ago to the category's pattern; department users and bad
parameters are refused with JSON."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.test_stats_api import send_at
from tests.support import poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))


def pattern(pipeline, category: str) -> dict:
    status, answer = pipeline.get(f"/api/stats/seasons?category={category}", "district_leadership")
    assert status == 200, answer
    assert (answer["weeks"], answer["hours"], answer["timezone"]) == (53, 24, "Asia/Shanghai")
    [found] = answer["categories"] or [{"category": category, "total": 0, "by_week": [0] * 53, "by_hour": [0] * 24}]
    return found


def at_local(days_ago: int, hour: int, minute: int) -> datetime:
    day = (datetime.now(CST) - timedelta(days=days_ago)).date()
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST)


def test_scripted_reports_add_their_hand_counted_weeks_and_hours(pipeline, build):
    before = pattern(pipeline, "city_manhole")
    script = [("liyuan", at_local(10, 8, 10)), ("shahe", at_local(10, 8, 40)), ("guiwan", at_local(3, 21, 15))]
    refs = []
    for community, at in script:
        report = build.city(community, category="manhole_cover_missing", description="井盖缺失", reported_at=at.isoformat())
        send_at(pipeline, "soc.raw.city", report, at)
        refs.append(report["case_no"])
    poll(lambda: all(pipeline.tickets_where(lambda t, ref=ref: t.source_ref == ref) for ref in refs), 30,
         "the three manhole tickets")

    by_week, by_hour = list(before["by_week"]), list(before["by_hour"])
    by_week[at_local(10, 8, 10).isocalendar().week - 1] += 2
    by_week[at_local(3, 21, 15).isocalendar().week - 1] += 1
    by_hour[8] += 2
    by_hour[21] += 1
    after = poll(lambda: (found := pattern(pipeline, "city_manhole"))["total"] == before["total"] + 3 and found, 30,
                 "the pattern with the three reports")
    assert (after["by_week"], after["by_hour"]) == (by_week, by_hour)

    status, everything = pipeline.get("/api/stats/seasons", "ops_centre")
    assert status == 200
    totals = [c["total"] for c in everything["categories"]]
    assert totals == sorted(totals, reverse=True) and {"category": "city_manhole", **after} in everything["categories"]
    assert everything["from"] <= at_local(10, 8, 10).date().isoformat() <= everything["to"]


@pytest.mark.parametrize("path, who, status, error", [
    ("/api/stats/seasons", "city_management", 403, "the leadership view is for the operations centre and the leadership"),
    ("/api/stats/seasons?year=2026", "ops_centre", 400, None),
    ("/api/stats/seasons?category=puddles", "ops_centre", 400, None),
])
def test_seasons_refuse_departments_and_bad_parameters_with_json(pipeline, path, who, status, error):
    got, answer = pipeline.get(path, who)
    assert got == status and isinstance(answer.get("error"), str), answer
    if error:
        assert answer["error"] == error
    if "category" in path:
        assert answer["error"].startswith("category must be one of: traffic_accident, ")
