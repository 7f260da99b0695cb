"""Alertmanager's time intervals (notify.yaml mute intervals, rules.yaml maintenance windows), read in
the district's time zone. An interval matches when every field it gives matches:

- ``times``: ``{start_time, end_time}`` ``HH:MM`` ranges; unlike Alertmanager, an end before the start
  spans midnight (``22:00``-``07:30``);
- ``weekdays``: ``monday``..``sunday`` or ranges such as ``monday:friday``;
- ``days_of_month``: ``1``..``31`` or ranges ``1:5``; negative days count from the month's end (``-1``);
- ``months``: ``january``..``december`` or ``1``..``12``, or ranges ``march:may``.
"""
from __future__ import annotations

import re

from pydantic import field_validator, model_validator

from schemas.strict import Strict

_CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


class TimeRange(Strict):
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, text: str) -> str:
        if not _CLOCK.match(text):
            raise ValueError(f"bad time {text!r}: use HH:MM (00:00 to 24:00)")
        return text

    @model_validator(mode="after")
    def _not_empty(self) -> TimeRange:
        if self.start_time == self.end_time:
            raise ValueError(f"empty time range {self.start_time}-{self.end_time}")
        return self

    @property
    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes after midnight; end < start spans midnight."""
        def m(text: str) -> int:
            hours, minutes = text.split(":")
            return int(hours) * 60 + int(minutes)
        return m(self.start_time), m(self.end_time)


def month_number(text: str) -> int:
    return MONTHS.index(text) + 1 if text in MONTHS else int(text)


def _parts(spec: str) -> list[str]:
    return spec.split(":") if spec.count(":") == 1 else [spec]


class TimeInterval(Strict):
    """One Alertmanager time interval: it matches when every given field matches."""

    times: list[TimeRange] = []
    weekdays: list[str] = []
    days_of_month: list[str] = []
    months: list[str] = []

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, days: list[str]) -> list[str]:
        for day in days:
            for part in day.split(":"):
                if part not in WEEKDAYS or day.count(":") > 1:
                    raise ValueError(f"bad weekday {day!r}: use monday..sunday or a range like monday:friday")
        return days

    @field_validator("days_of_month", mode="before")
    @classmethod
    def _days(cls, days: list) -> list[str]:
        days = [str(d) for d in days]
        for day in days:
            parts = _parts(day)
            if day.count(":") > 1 or not all(re.fullmatch(r"-?\d{1,2}", p) and 1 <= abs(int(p)) <= 31 for p in parts):
                raise ValueError(f"bad day of month {day!r}: use 1..31, -31..-1 or a range like 1:5")
        return days

    @field_validator("months", mode="before")
    @classmethod
    def _months(cls, months: list) -> list[str]:
        months = [str(m).lower() for m in months]
        for month in months:
            parts = _parts(month)
            if month.count(":") > 1 or not all(p in MONTHS or (p.isdigit() and 1 <= int(p) <= 12) for p in parts):
                raise ValueError(f"bad month {month!r}: use january..december, 1..12 or a range like march:may")
        return months

    @model_validator(mode="after")
    def _something(self) -> TimeInterval:
        if not (self.times or self.weekdays or self.days_of_month or self.months):
            raise ValueError("an interval needs times, weekdays, days_of_month or months")
        return self
