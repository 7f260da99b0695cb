"""Times and days as people and feeds write them (ISO 8601 / RFC 3339), held to the years the pipeline's
date arithmetic can take. Python's datetime stops at the years 1 and 9999, so a year-1 time with a +14:00
offset cannot be put in UTC and a year-9999 day has no next day: both raised OverflowError far from where
the text was read. Refusals are returned as a BadTime (what is wrong, typed), and each interface words its
own 4xx from it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from schemas.times import RANGE_TEXT, in_years


class TimeProblem(str, Enum):
    not_a_time = "not_a_time"
    no_offset = "no_offset"
    out_of_range = "out_of_range"


@dataclass(frozen=True)
class BadTime:
    problem: TimeProblem

    @property
    def range_text(self) -> str:
        return RANGE_TEXT


def within_years(when: datetime | date) -> BadTime | None:
    """None when `when` (as written, before any conversion) falls in the years the pipeline handles."""
    return None if in_years(when) else BadTime(TimeProblem.out_of_range)


def instant(text: str) -> datetime | BadTime:
    """An ISO 8601 time with its UTC offset, in the years the pipeline handles."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return BadTime(TimeProblem.not_a_time)
    if when.utcoffset() is None:
        return BadTime(TimeProblem.no_offset)
    return within_years(when) or when


def day(text: str) -> date | BadTime:
    """A calendar day written YYYY-MM-DD, in the years the pipeline handles."""
    try:
        found = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        found = None
    if found is None:
        return BadTime(TimeProblem.not_a_time)
    return within_years(found) or found
