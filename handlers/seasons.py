"""Seasonal patterns (季节规律): per category, the reports by week of the year and by hour of the day, in
the district's time, over the history the store retains. No I/O.

Read from the facts the store keeps beside each ticket (handlers/performance.py): its category and its
dispatch time. A week is the ISO week (1 to 53, Monday first), so a week's figure gathers the same week of
every year retained; facts written before the category was kept, and the work the centre sent (a pre-plan's
tasks, preventive tickets) are not reports and are left out. `GET /api/stats/seasons` and the stats page's
seasonal chart both read `seasons`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from handlers.performance import Facts
from schemas.enums import Category

WEEKS = 53
HOURS = 24


@dataclass(frozen=True)
class Pattern:
    category: Category
    total: int
    by_week: tuple[int, ...]  # [0] is week 1
    by_hour: tuple[int, ...]  # [0] is 00:00-00:59


@dataclass(frozen=True)
class Seasons:
    first: date | None  # the local dates of the oldest and the newest report counted
    last: date | None
    patterns: tuple[Pattern, ...]  # most reports first, then by category


def seasons(facts: Iterable[Facts], zone: tzinfo, category: Category | None = None) -> Seasons:
    """Every category's pattern, or `category`'s only (none when it has no report)."""
    weeks: dict[Category, Counter] = {}
    hours: dict[Category, Counter] = {}
    days: list[date] = []
    for f in facts:
        if f.category is None or f.task or (category is not None and f.category != category.value):
            continue
        kind = Category(f.category)
        local = datetime.fromtimestamp(f.dispatched_at, zone)
        weeks.setdefault(kind, Counter())[local.isocalendar().week] += 1
        hours.setdefault(kind, Counter())[local.hour] += 1
        days.append(local.date())
    order = list(Category)
    patterns = sorted((Pattern(kind, sum(weeks[kind].values()), tuple(weeks[kind][w] for w in range(1, WEEKS + 1)),
                               tuple(hours[kind][h] for h in range(HOURS))) for kind in weeks),
                      key=lambda p: (-p.total, order.index(p.category)))
    return Seasons(min(days, default=None), max(days, default=None), tuple(patterns))
