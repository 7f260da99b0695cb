"""Deadlines from routing.yaml, in wall-clock time or in working hours of the district calendar."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.config import Config, Deadline, WorkCalendar, parse_duration, parse_span
from schemas.enums import Category, Severity

_MAX_DAYS = 400


def is_workday(calendar: WorkCalendar, day: date) -> bool:
    if day in calendar.make_up_days:
        return True
    return day.isoweekday() in calendar.work_days and day not in calendar.holidays


def add_working_time(start: datetime, amount: timedelta, calendar: WorkCalendar, tz: ZoneInfo) -> datetime:
    """start + amount, counting only time inside the calendar's working hours."""
    remaining = amount
    cursor = start.astimezone(tz)
    spans = [parse_span(s) for s in calendar.work_hours]
    for _ in range(_MAX_DAYS):
        day = cursor.date()
        if is_workday(calendar, day):
            for span_start, span_end in spans:
                seg_start = max(cursor, datetime.combine(day, span_start, tz))
                seg_end = datetime.combine(day, span_end, tz)
                if seg_start >= seg_end:
                    continue
                if remaining <= seg_end - seg_start:
                    return seg_start + remaining
                remaining -= seg_end - seg_start
        cursor = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
    raise ValueError(f"no working time within {_MAX_DAYS} days of {start.isoformat()}")


def deadline_for(config: Config, category: Category, severity: Severity) -> Deadline:
    return config.routing.category_deadlines.get(category, {}).get(severity) or config.routing.deadlines[severity]


def due(config: Config, start: datetime, duration: str) -> datetime:
    amount, working = parse_duration(duration)
    if working:
        return add_working_time(start, amount, config.district.calendar, config.district.tz)
    return start + amount


def due_dates(config: Config, category: Category, severity: Severity, dispatched_at: datetime) -> tuple[datetime, datetime]:
    deadline = deadline_for(config, category, severity)
    return due(config, dispatched_at, deadline.accept), due(config, dispatched_at, deadline.resolve)
