"""streams/http/stats.py's figures, checked against hand-counted values: tickets per hour, hot spots, open
tickets by age, missed deadlines, the district's daily row and the daily report's counts."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from handlers.performance import gauge_facts
from schemas.enums import Category, Severity, Source, TicketStatus
from schemas.records import Ticket
from handlers import daily
from streams.http import stats

UTC = ZoneInfo("UTC")
CST = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 5, 12, 1, 0, tzinfo=UTC)  # 09:00 in the district


def ticket(n: int, **changes) -> Ticket:
    values = dict(
        ticket_id=f"T-{n}", incident_id=f"I-{n}", source_ref=f"R-{n}", dedup_key=f"k{n}", department="flood_control",
        source=Source.flood, category=Category.flood_waterlogging, subcategory="waterlogging", severity=Severity.blue,
        title=f"积水 {n}，联系13912345678", description="", community="wanghai", lat=22.51, lon=113.93, occurrences=1,
        observed_at=AT, received_at=AT, last_seen_at=AT, dispatched_at=AT, accept_due=AT + timedelta(minutes=30),
        resolve_due=AT + timedelta(hours=4), version=1,
    )
    values.update(changes)
    return Ticket(**values)


def test_tickets_per_hour_by_source_and_severity():
    start = AT - timedelta(hours=47)
    found = stats.hourly([
        ticket(1, dispatched_at=AT),
        ticket(2, dispatched_at=AT + timedelta(minutes=59), severity=Severity.red),
        ticket(3, dispatched_at=start, source=Source.traffic, category=Category.traffic_accident),
        ticket(4, dispatched_at=start - timedelta(seconds=1)),   # before the first hour: not counted
        ticket(5, dispatched_at=AT + timedelta(hours=1)),        # after the last: not counted
    ], start, CST)
    assert len(found["hours"]) == 48 and found["hours"][0] == "2026-05-10T10:00:00+08:00"
    assert found["by_source"]["flood"][47] == 2 and found["by_source"]["traffic"][0] == 1
    assert sum(found["by_source"]["flood"]) == 2
    assert (found["by_severity"]["red"][47], found["by_severity"]["blue"][47], found["by_severity"]["blue"][0]) == (1, 1, 1)


def test_hot_spots_are_the_keys_with_most_reports_and_mask_phones():
    tickets = [ticket(1, dedup_key="a", occurrences=5), ticket(2, dedup_key="a", occurrences=2,
                                                              dispatched_at=AT + timedelta(hours=1)),
               ticket(3, dedup_key="b", occurrences=6), ticket(4, dedup_key="c", occurrences=1)]
    spots = stats.hotspots(tickets, limit=2)
    assert [(s["dedup_key"], s["reports"], s["tickets"]) for s in spots] == [("a", 7, 2), ("b", 6, 1)]
    assert spots[0]["title"] == "积水 2，联系139****5678"   # the latest ticket's title, masked


def test_open_tickets_by_age():
    now = AT + timedelta(days=5)
    ages = [timedelta(minutes=30), timedelta(hours=2), timedelta(hours=5), timedelta(days=2), timedelta(days=4)]
    tickets = [ticket(i, dispatched_at=now - age) for i, age in enumerate(ages)]
    tickets.append(ticket(9, dispatched_at=now - timedelta(minutes=5), status=TicketStatus.closed, closed_at=now))
    found = stats.open_by_age(tickets, now)
    assert found["buckets"] == ["lt1h", "1to4h", "4to24h", "1to3d", "gt3d"]
    assert found["by_severity"]["blue"] == [1, 1, 1, 1, 1] and sum(found["by_severity"]["red"]) == 0


def test_missed_deadlines():
    now = AT + timedelta(hours=5)
    assert daily.overdue(ticket(1), AT) == []
    assert daily.overdue(ticket(1), now) == ["accept", "resolve"]
    late_accept = ticket(2, status=TicketStatus.accepted, accepted_at=AT + timedelta(minutes=40))
    assert daily.overdue(late_accept, AT + timedelta(hours=1)) == ["accept"]
    on_time = ticket(3, status=TicketStatus.resolved, accepted_at=AT + timedelta(minutes=5), resolved_at=AT + timedelta(hours=3))
    assert daily.overdue(on_time, now) == []
    late = ticket(4, status=TicketStatus.closed, accepted_at=AT + timedelta(minutes=5), resolved_at=AT + timedelta(hours=4, minutes=1),
                  closed_at=now)
    assert daily.overdue(late, now) == ["resolve"]


def test_the_district_row_counts_every_department_as_one():
    now = AT + timedelta(hours=5)
    raws = [gauge_facts(t) for t in (
        ticket(1, status=TicketStatus.closed, accepted_at=AT, resolved_at=AT + timedelta(hours=1), closed_at=now),
        ticket(2, department="traffic_police", source=Source.traffic, category=Category.traffic_accident),
        ticket(3, dispatched_at=AT - timedelta(days=1)),   # another day
    )]
    row = stats.district_rates(raws, AT - timedelta(hours=1), AT + timedelta(hours=23), now, True)
    assert (row["dispatched"], row["closure"], row["on_time_handling"]) == (2, 0.5, 0.5)
    assert stats.district_rates(raws, AT + timedelta(days=2), AT + timedelta(days=3), now, True) == {
        "dispatched": 0, "on_time_handling": None, "closure": None, "rework": None, "satisfaction": None}
