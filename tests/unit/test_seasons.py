"""Seasonal patterns (handlers/seasons.py) from a scripted history counted by hand: per category, reports by
ISO week of the year and by hour of the day in the district's time (a report at 00:30 on a Monday in the
district is 16:30 on the Sunday before in UTC), the same week of two years gathered, and the work the centre
sent (tasks, preventive tickets) and facts without a category left out."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from handlers import seasons
from handlers.performance import Facts
from schemas.enums import Category

CST = ZoneInfo("Asia/Shanghai")
WATER, MANHOLE = Category.flood_waterlogging, Category.city_manhole


def fact(category: Category | None, *at: int, task: bool = False) -> Facts:
    when = datetime(*at, tzinfo=CST).timestamp()
    return Facts("flood_control", "blue", "closed", when, when + 3600, None,
                 category=category.value if category else None, lat=22.53, lon=113.93, task=task)


HISTORY = [
    fact(WATER, 2026, 6, 15, 14, 30),   # Monday of ISO week 25, 14h
    fact(WATER, 2026, 6, 17, 14, 5),    # week 25, 14h
    fact(WATER, 2025, 6, 16, 14, 20),   # week 25 of 2025 (a Monday): the same week of another year
    fact(WATER, 2026, 6, 22, 0, 30),    # Monday 00:30 in the district (Sunday 16:30 UTC): week 26, 0h
    fact(WATER, 2026, 7, 1, 2, 10),     # week 27, 2h
    fact(WATER, 2026, 12, 31, 20, 0),   # 2026 began on a Thursday: it has a week 53; 20h
    fact(MANHOLE, 2026, 1, 1, 9, 0),    # Thursday 1 January 2026: week 1, 9h
    fact(WATER, 2026, 6, 16, 10, 0, task=True),  # a plan's task or a preventive ticket: not a report
    fact(None, 2026, 6, 16, 11, 0),              # stored before the category was kept
]


def counts(values: tuple[int, ...], base: int) -> dict[int, int]:
    return {i + base: v for i, v in enumerate(values) if v}


def test_each_category_counted_by_week_of_year_and_hour_of_day_in_the_districts_time():
    found = seasons.seasons(HISTORY, CST)
    assert (found.first, found.last) == (date(2025, 6, 16), date(2026, 12, 31))
    water, manhole = found.patterns  # most reports first
    assert (water.category, water.total) == (WATER, 6)
    assert len(water.by_week) == 53 and len(water.by_hour) == 24
    assert counts(water.by_week, 1) == {25: 3, 26: 1, 27: 1, 53: 1}
    assert counts(water.by_hour, 0) == {14: 3, 0: 1, 2: 1, 20: 1}
    assert (manhole.category, manhole.total) == (MANHOLE, 1)
    assert counts(manhole.by_week, 1) == {1: 1} and counts(manhole.by_hour, 0) == {9: 1}


def test_one_category_only_and_none_without_reports():
    only = seasons.seasons(HISTORY, CST, MANHOLE)
    assert [p.category for p in only.patterns] == [MANHOLE]
    assert (only.first, only.last) == (date(2026, 1, 1), date(2026, 1, 1))
    empty = seasons.seasons(HISTORY, CST, Category.traffic_accident)
    assert empty == seasons.Seasons(None, None, ())


def test_in_another_time_zone_the_same_reports_fall_in_other_weeks_and_hours():
    utc = seasons.seasons(HISTORY, ZoneInfo("UTC"), WATER)
    [water] = utc.patterns
    # 00:30 Monday 22 June in the district is 16:30 Sunday 21 June UTC: week 25, 16h.
    assert counts(water.by_week, 1) == {25: 4, 27: 1, 53: 1}
    assert counts(water.by_hour, 0) == {6: 3, 16: 1, 18: 1, 12: 1}
