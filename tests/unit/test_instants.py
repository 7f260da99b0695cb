"""The one parser of times and days people and feeds write (handlers/instants.py): what it takes, and the
typed refusal of what it does not, the years at the ends of Python's calendar included."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from handlers.instants import BadTime, TimeProblem, day, instant


def test_a_time_with_its_offset_is_taken_as_written():
    assert instant("2026-12-01T08:30:00+08:00") == datetime(2026, 12, 1, 8, 30, tzinfo=timezone(timedelta(hours=8)))
    assert instant("2026-12-01T00:30:00Z") == datetime(2026, 12, 1, 0, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, problem", [
    ("yesterday", TimeProblem.not_a_time),
    ("", TimeProblem.not_a_time),
    ("2026-12-01T08:30:00", TimeProblem.no_offset),
    # Where datetime ends, a conversion to UTC or a window added to it overflowed.
    ("0001-01-01T00:00:00+14:00", TimeProblem.out_of_range),
    ("0001-01-05T00:00:00Z", TimeProblem.out_of_range),
    ("9999-12-31T00:00:00-14:00", TimeProblem.out_of_range),
    ("1999-12-31T23:59:59+00:00", TimeProblem.out_of_range),
    ("2101-01-01T00:00:00+00:00", TimeProblem.out_of_range),
])
def test_what_is_not_a_time_the_pipeline_can_work_with_is_a_typed_refusal(text, problem):
    assert instant(text) == BadTime(problem)


def test_the_first_and_last_years_taken_convert_and_shift_without_overflow():
    for text in ("2000-01-01T00:00:00+14:00", "2100-12-31T23:59:59-14:00"):
        when = instant(text)
        assert when.astimezone(timezone.utc) - timedelta(days=400) < when + timedelta(days=400)


@pytest.mark.parametrize("text, expected", [
    ("2026-12-01", date(2026, 12, 1)),
    ("2026-12-1", BadTime(TimeProblem.not_a_time)),
    ("20261201", BadTime(TimeProblem.not_a_time)),
    ("2026-02-30", BadTime(TimeProblem.not_a_time)),
    ("9999-12-31", BadTime(TimeProblem.out_of_range)),
    ("0001-01-01", BadTime(TimeProblem.out_of_range)),
])
def test_a_day_is_written_yyyy_mm_dd_in_the_years_the_pipeline_handles(text, expected):
    assert day(text) == expected
