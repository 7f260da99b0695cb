"""Recurring places (handlers/hotspots.py) from scripted histories: the days rule (N returns within R metres
over D days), the storm rule (a return in each of the last K storms that are over), what a place reports
(count, last local dates, departments), how storms are made of response levels and rainstorm warnings, and
the stored facts they are read from."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from handlers import hotspots
from handlers.geo import distance_m
from handlers.hotspots import Rule, Sighting, Storm
from handlers.performance import gauge_facts, stored_facts
from schemas.cap import CapRecord
from schemas.config import HotspotRules
from schemas.enums import Category, Severity, Source, TicketStatus
from schemas.records import Ticket
from schemas.response import MANUAL, ResponseChange

UTC = ZoneInfo("UTC")
CST = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 8, 31, 4, 0, tzinfo=UTC)  # 12:00 in the district
LAT, LON = 22.5400, 113.9300
WATER = Category.flood_waterlogging


def north(metres: float) -> float:
    return LAT + metres / 111_195.0


def seen(n: int, days_ago: float, lat: float = LAT, lon: float = LON, category: Category = WATER,
         department: str = "flood_control", open: bool = False) -> Sighting:
    return Sighting(f"T-{n:02d}", category, lat, lon, NOW - timedelta(days=days_ago), department, open)


def rules(**changes) -> HotspotRules:
    return HotspotRules(**{"radius_m": 50, "min_count": 3, "days": 30, "storms": 0, **changes})


def test_a_place_back_three_times_within_50_m_over_30_days_is_found_and_one_200_m_away_is_not():
    history = [
        seen(1, 25.5, department="flood_control"),
        seen(2, 12.2, lat=north(20), department="city_management"),
        seen(3, 0.1, lat=north(-30), department="flood_control", open=True),
        seen(4, 10, lat=north(200)),   # 200 m north of the first: a place of its own, once
        seen(5, 31),                   # before the 30 days: not counted
    ]
    assert round(distance_m(north(200), LON, LAT, LON)) == 200
    [place] = hotspots.recurring(history, [], rules(), NOW, CST)
    assert place.category is WATER and (place.lat, place.lon) == (LAT, LON)
    assert place.rules == (Rule.days,)
    assert place.count == 3 and place.open == 1 and place.storms == 0
    # Local dates: 25.5 days before NOW is 16:00 UTC on 5 August, midnight of the 6th in the district.
    assert place.last_dates == ("2026-08-31", "2026-08-19", "2026-08-06")
    assert place.departments == ("flood_control", "city_management")
    assert place.ticket_ids == ("T-03", "T-02", "T-01")


def test_two_returns_are_not_enough_and_another_category_at_the_same_spot_is_another_place():
    history = [seen(1, 20), seen(2, 10), seen(3, 5, category=Category.city_manhole)]
    assert hotspots.recurring(history, [], rules(), NOW, CST) == []


def test_four_returns_in_90_days_found_two_not_and_600_m_apart_not_merged_at_200_m():
    history = [seen(n, days) for n, days in enumerate((80, 60, 30, 3), 1)]
    history += [seen(10 + n, days, lat=north(600)) for n, days in enumerate((70, 40), 1)]
    found = hotspots.recurring(history, [], rules(radius_m=200, min_count=3, days=90), NOW, CST)
    assert [(p.lat, p.count, p.ticket_ids) for p in found] == [(LAT, 4, ("T-04", "T-03", "T-02", "T-01"))]
    # The two groups together would make six: a place anchored on its first ticket does not creep north.
    assert hotspots.recurring(history, [], rules(radius_m=200, min_count=5, days=90), NOW, CST) == []


def test_a_chain_of_near_neighbours_does_not_make_one_place():
    # Each 40 m from the one before, at R=50: the third is 80 m from the first and founds its own place.
    history = [seen(1, 9), seen(2, 8, lat=north(40)), seen(3, 7, lat=north(80)), seen(4, 6, lat=north(120))]
    found = hotspots.recurring(history, [], rules(min_count=2), NOW, CST)
    assert [p.ticket_ids for p in found] == [("T-04", "T-03"), ("T-02", "T-01")]


def storm(days_ago: float, hours: float = 12) -> Storm:
    start = NOW - timedelta(days=days_ago)
    return Storm(start, start + timedelta(hours=hours))


def test_a_place_back_in_each_of_the_last_three_storms_is_found_by_the_storm_rule():
    storms = [storm(200), storm(150), storm(100), storm(20)]
    back = [seen(1, 150 - 0.2, department="city_management"), seen(2, 100 - 0.1), seen(3, 20 - 0.3)]
    missed_one = [seen(10 + n, days - 0.2, lat=north(500)) for n, days in enumerate((200, 150, 20))]
    only_two = [seen(20 + n, days - 0.2, lat=north(1000)) for n, days in enumerate((100, 20))]
    between = seen(30, 60, lat=north(1500))  # between storms and before the 30 days: not looked at
    [place] = hotspots.recurring([*back, *missed_one, *only_two, between], storms, rules(storms=3), NOW, CST)
    assert place.rules == (Rule.storms,) and place.storms == 3
    assert place.count == 1   # only the last storm's return is in the 30 days
    assert place.ticket_ids == ("T-03", "T-02", "T-01")
    assert place.departments == ("flood_control", "city_management")
    assert place.last_dates == ("2026-08-11", "2026-05-23", "2026-04-03")


def test_a_storm_still_going_on_and_fewer_storms_than_asked_do_not_count():
    storms = [storm(100), storm(20), Storm(NOW - timedelta(hours=3), None)]
    history = [seen(1, 100 - 0.2), seen(2, 20 - 0.2), seen(3, 0.1)]
    # The storm going on is not one of the last two: the place came back in both of those.
    [place] = hotspots.recurring(history, storms, rules(storms=2, min_count=5), NOW, CST)
    assert place.rules == (Rule.storms,) and place.storms == 2
    # Three storms asked for, two over: the rule cannot be met yet.
    assert hotspots.recurring(history, storms, rules(storms=3, min_count=5), NOW, CST) == []


def test_both_rules_met_are_both_named_and_the_places_come_most_tickets_first():
    storms = [storm(25), storm(15)]
    history = [seen(1, 25 - 0.1), seen(2, 15 - 0.1), seen(3, 2)]
    history += [seen(10 + n, days, lat=north(300)) for n, days in enumerate((9, 8, 7, 6), 1)]
    found = hotspots.recurring(history, storms, rules(storms=2), NOW, CST)
    assert [(p.ticket_ids[0], p.rules, p.count) for p in found] == [
        ("T-14", (Rule.days,), 4), ("T-03", (Rule.days, Rule.storms), 3)]


def test_the_configured_categories_alone_are_looked_at():
    history = [seen(n, n) for n in (1, 2, 3)] + [seen(n, n, category=Category.city_manhole) for n in (4, 5, 6)]
    found = hotspots.recurring(history, [], rules(categories=[Category.city_manhole]), NOW, CST)
    assert [p.category for p in found] == [Category.city_manhole]


def test_storms_join_overlapping_response_levels_and_rainstorm_warnings():
    hold = timedelta(minutes=30)
    t0 = NOW - timedelta(days=10)
    histories = {
        MANUAL: [ResponseChange(at=t0, level="III", reason="暴雨", trigger=MANUAL, by="ops_centre"),
                 ResponseChange(at=t0 + timedelta(hours=6), level=None, reason="解除", trigger=MANUAL, by="ops_centre"),
                 ResponseChange(at=NOW - timedelta(hours=1), level="IV", reason="台风", trigger=MANUAL, by="ops_centre")],
        "rainstorm_red@CAP-rainstorm-1": [
            ResponseChange(at=t0 + timedelta(hours=5), level="II", reason="红色暴雨", trigger="rainstorm_red", by="pipeline")],
    }
    warning = Storm(t0 - timedelta(days=3), t0 - timedelta(days=2))
    found = hotspots.storms(histories, hold, [warning])
    # The rule's level from 5 h lapses after a hold and holds one more: 6 h in all, joined with the centre's.
    assert found == [warning, Storm(t0, t0 + timedelta(hours=6)), Storm(NOW - timedelta(hours=1), None)]


def cap(identifier: str, chain: str, received: datetime, msg_type: str = "Alert", kind: str | None = "rainstorm",
        lowered_at: datetime | None = None) -> CapRecord:
    return CapRecord(key=f"gd,{identifier}", identifier=identifier, sender="gd", sent=received, status="Actual",
                     msg_type=msg_type, feed="gd", received_at=received, chain=chain, kind=kind,
                     lowered_at=lowered_at)


def test_a_rainstorm_warning_lasts_from_its_first_alert_to_its_cancel_or_its_lowering():
    t0 = NOW - timedelta(days=5)
    records = [
        cap("a1", "A", t0), cap("a2", "A", t0 + timedelta(hours=2)),
        cap("a3", "A", t0 + timedelta(hours=5), msg_type="Cancel", kind=None),
        cap("b1", "B", t0 + timedelta(days=1), lowered_at=t0 + timedelta(days=1, hours=3)),
        cap("c1", "C", t0 + timedelta(days=2)),                      # still up
        cap("d1", "D", t0 + timedelta(days=3), kind="typhoon"),      # not a rainstorm
    ]
    assert sorted(hotspots.rainstorm_warnings(records), key=lambda s: s.start) == [
        Storm(t0, t0 + timedelta(hours=5)), Storm(t0 + timedelta(days=1), t0 + timedelta(days=1, hours=3)),
        Storm(t0 + timedelta(days=2), None)]


def test_sightings_come_from_the_stored_facts_and_facts_without_a_place_are_left_out():
    at = NOW - timedelta(days=2)
    ticket = Ticket(
        ticket_id="T-1", incident_id="I-1", source_ref="R-1", dedup_key="k1", department="flood_control",
        source=Source.flood, category=WATER, subcategory="waterlogging", severity=Severity.blue, title="积水",
        lat=LAT, lon=LON, observed_at=at, received_at=at, last_seen_at=at, dispatched_at=at,
        accept_due=at + timedelta(minutes=30), resolve_due=at + timedelta(hours=4), status=TicketStatus.closed)
    # Written before the place was kept (nor the task, disputes, support parts and review times after it).
    old = stored_facts(gauge_facts(ticket)[:-1].rsplit(b",", 10)[0] + b"]")
    assert old.category is None
    assert hotspots.sightings({"T-1": stored_facts(gauge_facts(ticket)), "T-0": old}) == [
        Sighting("T-1", WATER, LAT, LON, at, "flood_control", False)]


def every_place(found: list[Sighting], radius_m: float) -> list[tuple[str, ...]]:
    """The clustering done the slow way: each ticket against every place founded so far."""
    places: list[list[Sighting]] = []
    for s in sorted(found, key=lambda s: (s.opened_at, s.ticket_id)):
        home = next((p for p in places if p[0].category is s.category
                     and distance_m(p[0].lat, p[0].lon, s.lat, s.lon) <= radius_m), None)
        if home is None:
            places.append([s])
        else:
            home.append(s)
    return sorted(tuple(sorted(m.ticket_id for m in p)) for p in places)


def test_the_grid_finds_the_same_places_as_comparing_with_every_place():
    import random
    rng = random.Random(7)
    for lat0, radius in ((22.5, 50), (22.5, 200), (59.9, 100)):
        history = [Sighting(f"T-{n:04d}", rng.choice((WATER, Category.city_manhole)), lat0 + rng.random() * 0.01,
                            LON + rng.random() * 0.01, NOW - timedelta(days=rng.random() * 29), "flood_control", False)
                   for n in range(600)]
        found = hotspots.recurring(history, [], rules(radius_m=radius, min_count=2), NOW, CST)
        many = [p for p in every_place(history, radius) if len(p) >= 2]
        assert sorted(tuple(sorted(p.ticket_ids)) for p in found if p.count <= 10) == [p for p in many if len(p) <= 10]
        assert len(found) == len(many)
