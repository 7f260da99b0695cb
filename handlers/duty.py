"""The duty roster (值班表): who is 带班领导 (leader) and 值班员 (officer) at a given time.

Pure arithmetic on district.yaml's `duty` section, in intervals (never minute by minute); the
time is passed in. For one role:

- a rotation's shift k starts at its `start` clock time, k days (daily) or k weeks (weekly) after
  the first, in the district's local time, and ends where shift k + 1 starts;
- a shift belongs to the calendar day it starts on: `days: workdays` staffs only shifts starting
  on working days (make-up days included, holidays excluded), `restdays` only the others;
- the member on a staffed shift is members[n mod len(members)], where n counts the earlier
  shifts *this rotation staffed*: a holiday taken by a restdays rotation skips nobody's turn on
  the workdays rotation;
- where several rotations of a role staff the same minute, the first in the file wins;
- an override replaces whoever the rotations give for its interval (it may split a shift) and
  also covers time no rotation staffs. Overrides of one role never overlap (the config refuses it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from handlers.deadlines import is_workday
from schemas.config import DUTY_ROLES, District, DutyRotation, WorkCalendar

# Longer than any shift (7 days, plus an hour where a clock change falls inside one): widening
# a query by this much finds every shift that overlaps it whole.
_WIDEST_SHIFT = timedelta(days=8)


@dataclass(frozen=True)
class OnDuty:
    role: str          # "leader" | "officer"
    member_id: str
    name: str
    phone_env: str
    start: datetime    # aware, in the district time zone: this stretch (shift or override) starts
    end: datetime


def on_duty(district: District, at: datetime) -> dict[str, OnDuty]:
    """role -> who is on duty at `at`; a role is missing when nobody is."""
    _aware(at)
    found: dict[str, OnDuty] = {}
    for stretch in shifts(district, at, at + timedelta(microseconds=1)):
        found.setdefault(stretch.role, stretch)
    return found


def shifts(district: District, start: datetime, end: datetime) -> list[OnDuty]:
    """Every stretch overlapping [start, end), whole (not cut at the query's edges), ordered by
    start then role."""
    _aware(start)
    _aware(end)
    found = [s for role in DUTY_ROLES for s in _timeline(district, role, start, end) if s.end > start and s.start < end]
    return sorted(found, key=lambda s: (s.start, DUTY_ROLES.index(s.role)))


def coverage_gaps(district: District, start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """(role, from, to) for every stretch of [start, end) with nobody on duty in that role, ordered by
    from then role; times in the district time zone."""
    _aware(start)
    _aware(end)
    tz = district.tz
    gaps = []
    for role in DUTY_ROLES:
        cursor = start.astimezone(tz)
        for stretch in _timeline(district, role, start, end):
            if stretch.start > cursor:
                gaps.append((role, cursor, min(stretch.start, end.astimezone(tz))))
            cursor = max(cursor, stretch.end)
            if cursor >= end:
                break
        if cursor < end:
            gaps.append((role, cursor, end.astimezone(tz)))
    return sorted((g for g in gaps if g[1] < g[2]), key=lambda g: (g[1], DUTY_ROLES.index(g[0])))


def handover(district: District, at: datetime) -> tuple[datetime, dict[str, OnDuty], dict[str, OnDuty]]:
    """The shift change a handover at `at` is about, and who hands over and who takes over there.

    The change is the nearer edge of the officer's stretch at `at`: a handover written just before
    08:30 or just after it is about the 08:30 change. With no officer on duty, the change is `at`."""
    stretch = on_duty(district, at).get("officer")
    change = at
    if stretch is not None:
        change = stretch.start if at - stretch.start < stretch.end - at else stretch.end
    return change, on_duty(district, change - timedelta(microseconds=1)), on_duty(district, change)


# ---------------------------------------------------------------- intervals

def _aware(when: datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive time {when.isoformat()}: give a UTC offset")


def _timeline(district: District, role: str, start: datetime, end: datetime) -> list[OnDuty]:
    """The role's stretches near [start, end), sorted, non-overlapping: overrides first, then each
    rotation in file order filling only what is still free."""
    duty, tz = district.duty, district.tz
    lo, hi = start - _WIDEST_SHIFT, end + _WIDEST_SHIFT
    taken: list[OnDuty] = []

    def person(member_id: str, begin: datetime, finish: datetime) -> OnDuty:
        member = duty.members[member_id]
        return OnDuty(role, member_id, member.name, member.phone_env, begin, finish)

    for override in duty.overrides:
        if override.role == role:
            begin, finish = _local(override.start, tz), _local(override.end, tz)
            if finish > lo and begin < hi:
                taken.append(person(override.member, begin, finish))
    for rotation in duty.rotations:
        if rotation.role != role:
            continue
        for member_id, begin, finish in _rotation_shifts(rotation, district.calendar, tz, lo, hi):
            taken.extend(person(member_id, a, b) for a, b in _free_parts(begin, finish, taken))
    return sorted(taken, key=lambda s: s.start)


def _free_parts(begin: datetime, finish: datetime, taken: list[OnDuty]) -> list[tuple[datetime, datetime]]:
    """[begin, finish) minus every interval already taken."""
    parts = [(begin, finish)]
    for other in taken:
        parts = [piece for a, b in parts
                 for piece in ((a, min(b, other.start)), (max(a, other.end), b)) if piece[0] < piece[1]]
    return parts


def _local(naive: datetime, tz) -> datetime:
    # Through UTC and back: a wall time skipped by a clock change lands on its real instant.
    return naive.replace(tzinfo=tz).astimezone(tz)


def _rotation_shifts(rotation: DutyRotation, calendar: WorkCalendar, tz, lo: datetime,
                     hi: datetime) -> list[tuple[str, datetime, datetime]]:
    """(member, start, end) of the rotation's staffed shifts overlapping [lo, hi)."""
    step = 7 if rotation.every == "weekly" else 1
    first_day, clock = rotation.start.date(), rotation.start.time()

    def shift_start(k: int) -> datetime:
        return _local(datetime.combine(first_day + timedelta(days=step * k), clock), tz)

    # The index of the shift holding `lo` (the days count can be one too many before the clock time).
    k = max(0, (lo.astimezone(tz).date() - first_day).days // step)
    while k > 0 and shift_start(k) > lo:
        k -= 1
    n = _staffed_before(rotation, calendar, k)
    found = []
    while shift_start(k) < hi:
        day = first_day + timedelta(days=step * k)
        if _staffs(rotation, calendar, day):
            begin, finish = shift_start(k), shift_start(k + 1)
            if finish > lo:
                found.append((rotation.members[n % len(rotation.members)], begin, finish))
            n += 1
        k += 1
    return found


def _staffs(rotation: DutyRotation, calendar: WorkCalendar, day: date) -> bool:
    if rotation.days == "all":
        return True
    return is_workday(calendar, day) == (rotation.days == "workdays")


def _staffed_before(rotation: DutyRotation, calendar: WorkCalendar, k: int) -> int:
    """How many of the rotation's shifts 0 .. k-1 it staffs."""
    first_day = rotation.start.date()
    if rotation.days == "all":
        return k
    if rotation.every == "weekly":
        return sum(_staffs(rotation, calendar, first_day + timedelta(days=7 * i)) for i in range(k))
    working = _working_days(calendar, first_day, first_day + timedelta(days=k))
    return working if rotation.days == "workdays" else k - working


def _working_days(calendar: WorkCalendar, first: date, stop: date) -> int:
    """Working days in [first, stop), counted in whole weeks plus the calendar's exceptions."""
    weekdays = set(calendar.work_days)
    weeks, rest = divmod((stop - first).days, 7)
    count = weeks * len(weekdays)
    count += sum((first + timedelta(days=7 * weeks + i)).isoweekday() in weekdays for i in range(rest))
    make_up = set(calendar.make_up_days)
    count -= sum(1 for day in set(calendar.holidays)
                 if first <= day < stop and day.isoweekday() in weekdays and day not in make_up)
    count += sum(1 for day in make_up if first <= day < stop and day.isoweekday() not in weekdays)
    return count
