"""The duty roster: rotations across holidays and make-up days, overrides, gaps, and the strict config."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from handlers import duty
from handlers.deadlines import is_workday
from schemas.config import District, WorkCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: str, clock: str = "12:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=SHANGHAI)


# Monday 28 Dec 2026 .. : Thu 31 Dec and Fri 1 Jan are holidays, Sunday 3 Jan is worked (调休).
CALENDAR = {"work_days": [1, 2, 3, 4, 5], "holidays": ["2026-12-31", "2027-01-01"], "make_up_days": ["2027-01-03"]}
ROSTER = {
    "members": {
        "a": {"name": "张伟", "phone_env": "SOC_DUTY_A_PHONE"},
        "b": {"name": "李娜", "phone_env": "SOC_DUTY_B_PHONE"},
        "c": {"name": "王强", "phone_env": "SOC_DUTY_C_PHONE"},
        "x": {"name": "周杰", "phone_env": "SOC_DUTY_X_PHONE"},
        "y": {"name": "吴芳", "phone_env": "SOC_DUTY_Y_PHONE"},
        "l1": {"name": "陈建国", "phone_env": "SOC_DUTY_L1_PHONE"},
        "l2": {"name": "林海涛", "phone_env": "SOC_DUTY_L2_PHONE"},
    },
    "rotations": [
        {"role": "leader", "every": "weekly", "start": "2026-12-28T08:30", "members": ["l1", "l2"]},
        {"role": "officer", "every": "daily", "start": "2026-12-28T08:30", "days": "workdays",
         "members": ["a", "b", "c"]},
        {"role": "officer", "every": "daily", "start": "2026-12-28T08:30", "days": "restdays", "members": ["x", "y"]},
    ],
    "overrides": [
        {"role": "officer", "member": "c", "from": "2026-12-29T20:00", "to": "2026-12-30T02:00", "reason": "换班"},
    ],
}


def district(roster: dict | None = None, calendar: dict | None = None, timezone_name: str = "Asia/Shanghai") -> District:
    return District.model_validate({
        "name": "海湾街道", "timezone": timezone_name, "communities": {}, "departments": {},
        "calendar": CALENDAR if calendar is None else calendar, "duty": ROSTER if roster is None else roster,
    })


def officers(d: District, start: datetime, end: datetime) -> list[tuple[str, str, str]]:
    return [(s.member_id, f"{s.start:%m-%d %H:%M}", f"{s.end:%m-%d %H:%M}")
            for s in duty.shifts(d, start, end) if s.role == "officer"]


# ------------------------------------------------------------------ rotation arithmetic

def test_a_holiday_goes_to_the_restdays_rotation_and_skips_no_ones_turn_on_the_workdays_one():
    d = district(dict(ROSTER, overrides=[]))
    got = [member for member, *_ in officers(d, at("2026-12-28", "08:30"), at("2027-01-06", "08:30"))]
    #       Mon  Tue  Wed  Thu(hol) Fri(hol) Sat  Sun(make-up) Mon  Tue
    assert got == ["a", "b", "c", "x", "y", "x", "a", "b", "c"]


def test_a_make_up_sunday_is_a_workday_shift_and_the_next_weekend_continues_the_restdays_turns():
    d = district(dict(ROSTER, overrides=[]))
    assert duty.on_duty(d, at("2027-01-03"))["officer"].member_id == "a"       # the worked Sunday
    assert duty.on_duty(d, at("2027-01-09"))["officer"].member_id == "y"       # Sat: x, y, x were before
    assert duty.on_duty(d, at("2027-01-10"))["officer"].member_id == "x"
    assert duty.on_duty(d, at("2027-01-11"))["officer"].member_id == "a"       # 4 Jan b, 5 c, 6 a, 7 b, 8 c


def test_an_override_splits_a_shift_in_three():
    got = officers(district(), at("2026-12-29", "08:30"), at("2026-12-30", "08:30"))
    assert got == [("b", "12-29 08:30", "12-29 20:00"), ("c", "12-29 20:00", "12-30 02:00"),
                   ("b", "12-30 02:00", "12-30 08:30")]
    assert duty.on_duty(district(), at("2026-12-29", "23:00"))["officer"].name == "王强"
    # The override changes nobody's later turns.
    assert duty.on_duty(district(), at("2026-12-30"))["officer"].member_id == "c"


def test_an_override_covers_time_no_rotation_staffs():
    roster = dict(ROSTER, overrides=[{"role": "officer", "member": "a", "from": "2026-12-27T08:30",
                                      "to": "2026-12-28T08:30"}])
    assert duty.on_duty(district(roster), at("2026-12-27"))["officer"].member_id == "a"
    assert "leader" not in duty.on_duty(district(roster), at("2026-12-27"))


def test_the_weekly_leader_rotation_changes_on_monday_at_0830():
    d = district()
    leaders = [(s.member_id, s.start, s.end) for s in duty.shifts(d, at("2026-12-28", "08:30"), at("2027-01-18", "08:30"))
               if s.role == "leader"]
    assert leaders == [("l1", at("2026-12-28", "08:30"), at("2027-01-04", "08:30")),
                       ("l2", at("2027-01-04", "08:30"), at("2027-01-11", "08:30")),
                       ("l1", at("2027-01-11", "08:30"), at("2027-01-18", "08:30"))]
    assert duty.on_duty(d, at("2027-01-04", "08:29"))["leader"].member_id == "l1"
    assert duty.on_duty(d, at("2027-01-04", "08:30"))["leader"].member_id == "l2"


def test_a_weekly_rotation_on_workdays_only_counts_the_weeks_it_staffs():
    roster = dict(ROSTER, overrides=[], rotations=[
        # Fridays 08:30: 1 Jan 2027 is a holiday, so that week is nobody's and l2 keeps the next turn.
        {"role": "leader", "every": "weekly", "start": "2026-12-25T08:30", "days": "workdays", "members": ["l1", "l2"]},
    ])
    d = district(roster)
    assert duty.on_duty(d, at("2026-12-28"))["leader"].member_id == "l1"
    assert "leader" not in duty.on_duty(d, at("2027-01-02"))
    assert duty.on_duty(d, at("2027-01-09"))["leader"].member_id == "l2"
    assert duty.on_duty(d, at("2027-01-16"))["leader"].member_id == "l1"


def test_the_first_matching_rotation_wins():
    roster = dict(ROSTER, overrides=[], rotations=[
        {"role": "officer", "every": "daily", "start": "2026-12-28T08:30", "days": "restdays", "members": ["x"]},
        {"role": "officer", "every": "daily", "start": "2026-12-28T08:30", "members": ["a", "b"]},
    ])
    got = [member for member, *_ in officers(district(roster), at("2027-01-01", "08:30"), at("2027-01-05", "08:30"))]
    # Fri (holiday) and Sat go to the first rotation; the second's own turns still advance beneath it.
    assert got == ["x", "x", "a", "b"]


def test_times_in_any_offset_give_the_same_answer_in_the_district_time_zone():
    d = district()
    utc = datetime(2026, 12, 30, 0, 29, tzinfo=timezone.utc)   # 08:29 in Shanghai
    before, after = duty.on_duty(d, utc)["officer"], duty.on_duty(d, utc + timedelta(minutes=1))["officer"]
    assert (before.member_id, after.member_id) == ("b", "c")
    assert after.start == datetime(2026, 12, 30, 8, 30, tzinfo=SHANGHAI) and after.start.tzinfo == SHANGHAI
    assert after.start.utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError, match="naive time"):
        duty.on_duty(d, datetime(2026, 12, 30, 9, 0))


def test_shifts_in_a_zone_with_a_clock_change_keep_their_clock_time():
    # Europe/Berlin moves to summer time at 02:00 on 28 Mar 2027: the shift across it is 23 h long.
    d = district(dict(ROSTER, overrides=[]), calendar={"work_days": [1, 2, 3, 4, 5, 6, 7]}, timezone_name="Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    got = [s for s in duty.shifts(d, datetime(2027, 3, 28, 3, tzinfo=berlin), datetime(2027, 3, 28, 13, tzinfo=berlin))
           if s.role == "officer"]
    # (Aware datetimes of one zone subtract as wall times: the length is measured in UTC.)
    assert [(s.start.isoformat(), s.end.astimezone(timezone.utc) - s.start) for s in got] == [
        ("2027-03-27T08:30:00+01:00", timedelta(hours=23)), ("2027-03-28T08:30:00+02:00", timedelta(hours=24))]


def test_shifts_are_whole_and_ordered_by_start_then_role():
    got = duty.shifts(district(), at("2026-12-28", "09:00"), at("2026-12-28", "10:00"))
    assert [(s.role, s.member_id, s.start, s.end) for s in got] == [
        ("leader", "l1", at("2026-12-28", "08:30"), at("2027-01-04", "08:30")),
        ("officer", "a", at("2026-12-28", "08:30"), at("2026-12-29", "08:30")),
    ]
    assert got[1].phone_env == "SOC_DUTY_A_PHONE" and got[1].name == "张伟"


def test_the_workday_count_agrees_with_the_calendar_day_by_day():
    calendar = WorkCalendar.model_validate({"work_days": [1, 2, 3, 4, 6], "holidays": ["2027-02-10", "2027-02-13", "2027-02-14"],
                                            "make_up_days": ["2027-02-07", "2027-02-13", "2027-02-20"]})
    rng = random.Random(14)
    for _ in range(300):
        first = date(2027, 1, 1) + timedelta(days=rng.randrange(80))
        stop = first + timedelta(days=rng.randrange(60))
        expected = sum(is_workday(calendar, first + timedelta(days=i)) for i in range((stop - first).days))
        assert duty._working_days(calendar, first, stop) == expected, (first, stop)


# ------------------------------------------------------------------ coverage and handovers

def test_coverage_gaps_before_the_roster_starts_and_without_a_weekend_pool():
    roster = dict(ROSTER, overrides=[], rotations=ROSTER["rotations"][:2])
    gaps = duty.coverage_gaps(district(roster), at("2026-12-28", "00:00"), at("2027-01-05", "00:00"))
    assert gaps == [
        ("leader", at("2026-12-28", "00:00"), at("2026-12-28", "08:30")),
        ("officer", at("2026-12-28", "00:00"), at("2026-12-28", "08:30")),
        ("officer", at("2026-12-31", "08:30"), at("2027-01-03", "08:30")),   # Thu, Fri holidays and Saturday
    ]
    assert duty.coverage_gaps(district(), at("2026-12-28", "08:30"), at("2027-02-28", "08:30")) == []


def test_the_deployed_roster_covers_30_days_from_any_time_in_2027(config):
    for month in range(1, 13):
        start = datetime(2027, month, 1, 3, 17, tzinfo=SHANGHAI)
        assert duty.coverage_gaps(config.district, start, start + timedelta(days=30)) == [], month
    assert set(duty.on_duty(config.district, at("2026-12-24"))) == {"leader", "officer"}


def test_a_handover_is_about_the_nearer_shift_change():
    d = district()
    change, outgoing, incoming = duty.handover(d, at("2026-12-29", "08:20"))
    assert change == at("2026-12-29", "08:30")
    assert (outgoing["officer"].member_id, incoming["officer"].member_id) == ("a", "b")
    assert outgoing["leader"] == incoming["leader"]
    change, outgoing, incoming = duty.handover(d, at("2026-12-29", "08:45"))
    assert change == at("2026-12-29", "08:30") and incoming["officer"].member_id == "b"
    # An override's edges are shift changes as well.
    change, outgoing, incoming = duty.handover(d, at("2026-12-29", "19:50"))
    assert change == at("2026-12-29", "20:00") and (outgoing["officer"].member_id, incoming["officer"].member_id) == ("b", "c")


# ------------------------------------------------------------------ strict config

def errors_for(change) -> list[str]:
    from pydantic import ValidationError

    roster = {**ROSTER, "members": dict(ROSTER["members"]), "rotations": [dict(r) for r in ROSTER["rotations"]],
              "overrides": [dict(o) for o in ROSTER["overrides"]]}
    change(roster)
    with pytest.raises(ValidationError) as info:
        district(roster)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in info.value.errors()]


@pytest.mark.parametrize("change, line", [
    (lambda r: r["rotations"][1].update(start="2026-12-28 08:30"),
     "duty.rotations.1.start: bad local time '2026-12-28 08:30': use YYYY-MM-DDTHH:MM in the district time zone, quoted"),
    (lambda r: r["rotations"][1].update(start="2026-13-28T08:30"),
     "duty.rotations.1.start: bad local time '2026-13-28T08:30': use YYYY-MM-DDTHH:MM in the district time zone, quoted"),
    (lambda r: r["rotations"][0].update(role="deputy"), "duty.rotations.0.role: Input should be 'leader' or 'officer'"),
    (lambda r: r["rotations"][0].update(every="monthly"), "duty.rotations.0.every: Input should be 'daily' or 'weekly'"),
    (lambda r: r["rotations"][2].update(days="weekends"),
     "duty.rotations.2.days: Input should be 'all', 'workdays' or 'restdays'"),
    (lambda r: r["rotations"][0].update(members=[]),
     "duty.rotations.0.members: List should have at least 1 item after validation, not 0"),
    (lambda r: r["rotations"][0].update(shift_hours=12), "duty.rotations.0.shift_hours: Extra inputs are not permitted"),
    (lambda r: r["members"].update(d={"name": "赵敏", "phone_env": "13800138000"}),
     "duty.members.d.phone_env: String should match pattern '^[A-Z][A-Z0-9_]*$'"),
    (lambda r: r["members"].update(d={"name": "赵敏", "phone": "13800138000", "phone_env": "SOC_DUTY_D_PHONE"}),
     "duty.members.d.phone: Extra inputs are not permitted"),
    (lambda r: r["overrides"][0].update(to="2026-12-29T20:00"), "duty.overrides.0: to must be after from"),
    (lambda r: r["overrides"].append({"role": "officer", "member": "a", "from": "2026-12-30T01:00", "to": "2026-12-30T03:00"}),
     "duty.overrides: overrides 0 and 1 overlap for the officer role"),
])
def test_a_bad_roster_is_refused_with_the_exact_error(change, line):
    assert errors_for(change) == [line]


def test_undefined_members_are_named_by_load_config(copy):
    import yaml

    from schemas.config import ConfigError, load_config

    path = copy / "district.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["duty"]["rotations"][1]["members"][1] = "li_si"
    data["duty"]["overrides"][0]["member"] = "wang_wu"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(copy)
    assert info.value.errors == [
        "district.yaml: duty.rotations.1.members.1: undefined duty member 'li_si'",
        "district.yaml: duty.overrides.0.member: undefined duty member 'wang_wu'",
    ]


def test_a_district_without_a_roster_still_loads():
    d = district(roster={})
    assert d.duty.rotations == [] and duty.on_duty(d, at("2027-01-01")) == {}
    assert duty.coverage_gaps(d, at("2027-01-01", "00:00"), at("2027-01-02", "00:00")) == [
        ("leader", at("2027-01-01", "00:00"), at("2027-01-02", "00:00")),
        ("officer", at("2027-01-01", "00:00"), at("2027-01-02", "00:00")),
    ]
