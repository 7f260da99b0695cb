"""Times as feeds and people write them, held to the years the pipeline's date arithmetic can take.

Python's datetime stops at the years 1 and 9999: a year-1 time with a +14:00 offset cannot be put in UTC and a
year-9999 day has no next day, so such a time raised OverflowError far from where it was read. A model field
of type SaneTime refuses it where it is read, with the reason."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError

FIRST_YEAR, LAST_YEAR = 2000, 2100
RANGE_TEXT = f"between the years {FIRST_YEAR} and {LAST_YEAR}"
TIME_OUT_OF_RANGE = "time_out_of_range"  # the error type a SaneTime field reports


def in_years(when: datetime | date) -> bool:
    return FIRST_YEAR <= when.year <= LAST_YEAR


def _sane(value: datetime) -> datetime:
    if not in_years(value):
        raise PydanticCustomError(TIME_OUT_OF_RANGE, "must be a time {range}", {"range": RANGE_TEXT})
    return value


SaneTime = Annotated[AwareDatetime, AfterValidator(_sane)]
