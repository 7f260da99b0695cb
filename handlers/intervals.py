"""Time intervals (schemas/intervals.py) compiled once, then matched against a local time."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from schemas.intervals import WEEKDAYS, TimeInterval, month_number


def _span(spec: str, convert) -> tuple[int, int]:
    first, _, last = spec.partition(":")
    return convert(first), convert(last or first)


@dataclass(frozen=True)
class CompiledInterval:
    ranges: tuple[tuple[int, int], ...]  # minutes after midnight; end < start spans midnight
    weekdays: frozenset[int]  # 0 = Monday; empty: every day
    days_of_month: tuple[tuple[int, int], ...]  # inclusive; negative counts from the month's end
    months: frozenset[int]  # 1..12; empty: every month

    @classmethod
    def of(cls, interval: TimeInterval) -> CompiledInterval:
        days: set[int] = set()
        for spec in interval.weekdays:
            lo, hi = _span(spec, WEEKDAYS.index)
            days.update(range(lo, hi + 1) if lo <= hi else [*range(lo, 7), *range(0, hi + 1)])
        months: set[int] = set()
        for spec in interval.months:
            lo, hi = _span(spec, month_number)
            months.update(range(lo, hi + 1) if lo <= hi else [*range(lo, 13), *range(1, hi + 1)])
        return cls(tuple(r.minutes for r in interval.times), frozenset(days),
                   tuple(_span(spec, int) for spec in interval.days_of_month), frozenset(months))

    def contains(self, local: datetime) -> bool:
        if self.weekdays and local.weekday() not in self.weekdays:
            return False
        if self.months and local.month not in self.months:
            return False
        if self.days_of_month:
            last = calendar.monthrange(local.year, local.month)[1]
            day = lambda d: d if d > 0 else last + 1 + d  # noqa: E731
            if not any(day(lo) <= local.day <= day(hi) for lo, hi in self.days_of_month):
                return False
        minute = local.hour * 60 + local.minute
        return not self.ranges or any(start <= minute < end if start < end else minute >= start or minute < end
                                      for start, end in self.ranges)

