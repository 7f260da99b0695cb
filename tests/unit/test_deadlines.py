"""Accept / resolve deadlines: wall-clock durations and working hours ("wh") on the district calendar."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from handlers.deadlines import add_working_time, deadline_for, due, due_dates, is_workday
from schemas.config import WorkCalendar, parse_duration
from schemas.enums import Category, Severity

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A test calendar: 09:00-12:00 and 13:00-17:00 (7 h a day); National Day week 2026 off
# (Thu 1, Fri 2, Mon 5 - Wed 7 October), made up on Sunday 27 September and Saturday 10 October.
TEST_CALENDAR = WorkCalendar(
    work_days=[1, 2, 3, 4, 5],
    work_hours=["09:00-12:00", "13:00-17:00"],
    holidays=[date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5), date(2026, 10, 6), date(2026, 10, 7)],
    make_up_days=[date(2026, 9, 27), date(2026, 10, 10)],
)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def with_calendar(config, calendar: WorkCalendar):
    return config.model_copy(update={"district": config.district.model_copy(update={"calendar": calendar})})


# ------------------------------------------------------------------ the calendar

@pytest.mark.parametrize("day, working", [
    (date(2026, 9, 25), True),    # Friday
    (date(2026, 9, 26), False),   # Saturday
    (date(2026, 9, 27), True),    # Sunday, make-up day
    (date(2026, 10, 1), False),   # Thursday, holiday
    (date(2026, 10, 3), False),   # Saturday inside the holiday week
    (date(2026, 10, 8), True),    # Thursday after it
    (date(2026, 10, 10), True),   # Saturday, make-up day
    (date(2026, 10, 11), False),  # Sunday
])
def test_is_workday(day, working):
    assert is_workday(TEST_CALENDAR, day) is working


@pytest.mark.parametrize("start, hours, expected", [
    ("2026-09-30 16:00", 0.5, "2026-09-30 16:30"),   # Wednesday before the holiday
    ("2026-09-30 16:00", 1, "2026-09-30 17:00"),     # exactly the rest of the day
    ("2026-09-30 16:00", 4, "2026-10-08 12:00"),     # 1 h, then the whole holiday week skipped
    ("2026-09-30 16:00", 5, "2026-10-08 14:00"),     # ... and past the lunch break
    ("2026-10-01 10:00", 1, "2026-10-08 10:00"),     # dispatched on the holiday itself
    ("2026-10-09 16:30", 2, "2026-10-10 10:30"),     # Friday -> make-up Saturday
    ("2026-10-16 16:30", 2, "2026-10-19 10:30"),     # Friday -> Monday, an ordinary weekend
    ("2026-09-26 10:00", 1, "2026-09-27 10:00"),     # Saturday -> make-up Sunday
    ("2026-09-29 12:30", 1, "2026-09-29 14:00"),     # lunch break does not count
    ("2026-09-29 07:00", 1, "2026-09-29 10:00"),     # before hours: counting starts at 09:00
    ("2026-09-29 17:00", 1, "2026-09-30 10:00"),     # at closing time
    ("2026-09-29 09:00", 7, "2026-09-29 17:00"),     # one working day
    ("2026-09-29 09:00", 7.5, "2026-09-30 09:30"),
])
def test_working_hours_on_the_test_calendar(start, hours, expected):
    assert add_working_time(local(start), timedelta(hours=hours), TEST_CALENDAR, SHANGHAI) == local(expected)


def test_due_uses_the_district_calendar(config):
    test = with_calendar(config, TEST_CALENDAR)
    assert due(test, local("2026-09-30 16:00"), "4wh") == local("2026-10-08 12:00")
    assert due(config, local("2026-09-30 16:00"), "4wh") != local("2026-10-08 12:00")


def test_a_calendar_without_working_time_is_an_error():
    never = WorkCalendar(work_days=[], make_up_days=[])
    with pytest.raises(ValueError, match="no working time within 400 days"):
        add_working_time(local("2026-05-12 09:30"), timedelta(hours=1), never, SHANGHAI)


# ------------------------------------------------------------------ the real calendar (08:30-12:00, 14:00-18:00)

def test_friday_evening_dispatch_counts_from_monday_morning(config):
    friday_evening = local("2026-05-15 19:00")
    accept, resolve = due_dates(config, Category.traffic_congestion, Severity.blue, friday_evening)
    assert accept == local("2026-05-18 14:30")              # 4wh: 3.5 h Monday morning + 0.5 h after lunch
    assert resolve == friday_evening + timedelta(days=5)    # 5d: calendar days
    accept, resolve = due_dates(config, Category.city_sanitation, Severity.blue, friday_evening)
    assert accept == local("2026-05-18 10:30")              # 2wh
    assert resolve == local("2026-05-19 09:00")             # 8wh: 7.5 h Monday, 0.5 h Tuesday


def test_dispatch_given_in_utc(config):
    # 11:00 UTC on Friday is 19:00 in the district.
    accept = due(config, datetime.fromisoformat("2026-05-15T11:00:00+00:00"), "4wh")
    assert accept == local("2026-05-18 14:30")
    assert accept.utcoffset() == timedelta(hours=8)


def test_national_day_in_the_real_calendar(config):
    assert due(config, local("2026-09-30 17:00"), "4wh") == local("2026-10-08 11:30")
    assert due(config, local("2026-10-09 17:00"), "4wh") == local("2026-10-10 11:30")   # make-up Saturday
    assert due(config, local("2026-09-26 09:00"), "1wh") == local("2026-09-27 09:30")   # make-up Sunday


def test_new_year_holiday_in_the_real_calendar(config):
    # Thursday 31 Dec 2026 17:30: half an hour that day; Friday 1 Jan is a holiday, then the weekend.
    assert due(config, local("2026-12-31 17:30"), "2wh") == local("2027-01-04 10:00")


# ------------------------------------------------------------------ wall-clock durations

@pytest.mark.parametrize("severity, accept, resolve", [
    (Severity.red, timedelta(minutes=10), timedelta(hours=2)),
    (Severity.orange, timedelta(minutes=30), timedelta(hours=8)),
    (Severity.yellow, timedelta(hours=2), timedelta(hours=24)),
])
def test_plain_durations(config, clock, severity, accept, resolve):
    assert due_dates(config, Category.traffic_accident, severity, clock) == (clock + accept, clock + resolve)


def test_plain_durations_ignore_weekends_and_holidays(config):
    night_of_holiday = local("2026-10-03 23:55")
    assert due_dates(config, Category.typhoon, Severity.red, night_of_holiday) == (
        local("2026-10-04 00:05"), local("2026-10-04 01:55"))


@pytest.mark.parametrize("category, severity, accept, resolve", [
    (Category.flood_waterlogging, Severity.red, "5m", "1h"),
    (Category.flood_waterlogging, Severity.orange, "15m", "3h"),
    (Category.flood_waterlogging, Severity.yellow, "2h", "24h"),    # not overridden: the default
    (Category.city_manhole, Severity.red, "5m", "1h"),
    (Category.city_manhole, Severity.orange, "15m", "4h"),
    (Category.city_sanitation, Severity.blue, "2wh", "8wh"),
    (Category.city_sanitation, Severity.red, "10m", "2h"),
    (Category.site_dust, Severity.blue, "4wh", "5d"),
])
def test_category_deadlines_override_the_defaults(config, category, severity, accept, resolve):
    deadline = deadline_for(config, category, severity)
    assert (deadline.accept, deadline.resolve) == (accept, resolve)


@pytest.mark.parametrize("text, amount, working", [
    ("30s", timedelta(seconds=30), False),
    ("15m", timedelta(minutes=15), False),
    ("1.5h", timedelta(minutes=90), False),
    ("5d", timedelta(days=5), False),
    ("8wh", timedelta(hours=8), True),
])
def test_parse_duration(text, amount, working):
    assert parse_duration(text) == (amount, working)


def test_manhole_red_in_the_middle_of_the_night(config):
    night = local("2026-05-13 02:10")
    assert due_dates(config, Category.city_manhole, Severity.red, night) == (
        local("2026-05-13 02:15"), local("2026-05-13 03:10"))
