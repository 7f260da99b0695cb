"""Department performance for a scripted set of tickets, checked against hand-computed figures.

Every ticket is dispatched at 09:30 (NOW) on Tuesday 12 May 2026 unless said otherwise, driven
through handlers.lifecycle, and measured at 19:30 the same day.

Deadlines (routing.yaml), from dispatch at 09:30:
- traffic_accident orange:  accept 30 min -> 10:00, resolve 8 h -> 17:30   (traffic_police)
- flood_rainfall orange:    accept 30 min -> 10:00, resolve 8 h -> 17:30   (flood_control)
- city_road_damage yellow:  accept 2 h -> 11:30,    resolve 24 h -> 09:30 on the 13th (city_management)
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from handlers import lifecycle
from handlers.performance import gauge_facts, gauges, rows
from handlers.routing import route
from handlers.tickets import open_ticket
from schemas.enums import OPS_CENTRE, Category, Severity, Source
from schemas.records import Incident, Ticket, TicketAction, TicketEvent
from tests.unit.conftest import NOW
from tests.unit.photos import AFTER

A = TicketAction
TP, FC, CM = "traffic_police", "flood_control", "city_management"


def at(hh_mm: str, day: int = 12) -> datetime:
    h, m = hh_mm.split(":")
    return NOW.replace(day=day, hour=int(h), minute=int(m))


START, END = at("08:30"), at("08:30", day=13)
MEASURED = at("19:30")


class Script:
    """Drives one ticket through lifecycle.apply, failing loudly on any refused step."""

    def __init__(self, config, name: str, category: Category, severity: Severity, source: Source,
                 dispatched: str = "09:30"):
        self.config = config
        when = at(dispatched)
        incident = Incident(incident_id=f"perf-{name}", source=source, category=category, subcategory="x",
                            severity=severity, title=name, lat=22.53, lon=113.92, community="haibin",
                            observed_at=when - timedelta(minutes=2), received_at=when,
                            dedup_key=f"perf:{name}", source_ref=name)
        self.ticket = open_ticket(config, incident, route(config, category, severity, "haibin"), when)
        self.n = 0

    def do(self, action: TicketAction, actor: str, when: str, **fields) -> Script:
        self.n += 1
        ev = TicketEvent(event_id=f"{self.ticket.ticket_id}-{self.n}", ticket_id=self.ticket.ticket_id,
                         action=action, by=actor, actor=actor, at=at(when), **fields)
        outcome = lifecycle.apply(self.config, self.ticket, ev, at(when))
        assert outcome.verdict is lifecycle.Verdict.applied, (self.ticket.title, action, outcome.reason)
        self.ticket = outcome.ticket
        return self


def traffic(config, name, **kw):
    return Script(config, name, Category.traffic_accident, Severity.orange, Source.traffic, **kw)


def flood(config, name, **kw):
    return Script(config, name, Category.flood_rainfall, Severity.orange, Source.flood, **kw)


def road(config, name, **kw):
    return Script(config, name, Category.city_road_damage, Severity.yellow, Source.city, **kw)


@pytest.fixture(scope="module")
def tickets(config) -> dict[str, Ticket]:
    s = {
        # traffic_police
        "T1 on time, closed": traffic(config, "T1")
        .do(A.accept, TP, "09:40").do(A.resolve, TP, "12:00", note="cleared")
        .do(A.verify, OPS_CENTRE, "12:30", passed=True),
        "T2 late, resolved": traffic(config, "T2")
        .do(A.accept, TP, "10:20").do(A.resolve, TP, "18:00", note="cleared late"),
        # Rework at 11:30 restarts the deadlines: accept 12:00, resolve 19:30.
        "T3 reworked, closed": traffic(config, "T3")
        .do(A.accept, TP, "09:50").do(A.resolve, TP, "11:00", note="cleared")
        .do(A.verify, OPS_CENTRE, "11:30", passed=False, note="oil still on the road")
        .do(A.accept, TP, "11:45").do(A.resolve, TP, "13:00", note="oil removed")
        .do(A.verify, OPS_CENTRE, "13:30", passed=True),
        "T4 ignored, overdue": traffic(config, "T4"),
        # flood_control
        "T5 extended, resolved": flood(config, "T5")
        .do(A.accept, FC, "09:45").do(A.extend, FC, "15:00", until=at("21:30"), note="pump parts")
        .do(A.extend_decision, OPS_CENTRE, "15:10", approve=True).do(A.resolve, FC, "19:00", note="pumped"),
        "T9 extension refused, overdue": flood(config, "T9")
        .do(A.accept, FC, "09:55").do(A.extend, FC, "16:00", until=at("22:00"), note="rain")
        .do(A.extend_decision, OPS_CENTRE, "16:10", approve=False),
        # Accepted by flood_control, returned, redispatched at 10:00 to city_management, which
        # never accepts: deadlines from 10:00 are accept 10:30, resolve 18:00.
        "T6 returned, redispatched, overdue": flood(config, "T6")
        .do(A.accept, FC, "09:40").do(A.return_, FC, "09:50", note="a road surface problem")
        .do(A.redispatch, OPS_CENTRE, "10:00", department=CM),
        # city_management
        "T7 on time, closed": road(config, "T7")
        .do(A.accept, CM, "11:00").do(A.evidence, CM, "14:50", photo=AFTER).do(A.resolve, CM, "15:00", note="patched")
        .do(A.verify, OPS_CENTRE, "15:30", passed=True),
        "T8 open, not yet due": road(config, "T8"),
        # Dispatched before the period: not counted anywhere.
        "T10 outside the period": traffic(config, "T10", dispatched="08:00")
        .do(A.accept, TP, "08:05"),
    }
    return {name: script.ticket for name, script in s.items()}


def test_the_script_reached_the_intended_states(tickets):
    status = {name: t.status.value for name, t in tickets.items()}
    assert status == {
        "T1 on time, closed": "closed", "T2 late, resolved": "resolved", "T3 reworked, closed": "closed",
        "T4 ignored, overdue": "dispatched", "T5 extended, resolved": "resolved",
        "T9 extension refused, overdue": "accepted", "T6 returned, redispatched, overdue": "dispatched",
        "T7 on time, closed": "closed", "T8 open, not yet due": "dispatched",
        "T10 outside the period": "accepted"}
    t3 = tickets["T3 reworked, closed"]
    assert (t3.reworks, t3.accept_due, t3.resolve_due) == (1, at("12:00"), at("19:30"))
    assert tickets["T5 extended, resolved"].resolve_due == at("21:30")
    assert tickets["T9 extension refused, overdue"].resolve_due == at("17:30")
    t6 = tickets["T6 returned, redispatched, overdue"]
    assert (t6.department, t6.returns, t6.accepted_at, t6.accept_due, t6.resolve_due) == \
        (CM, 1, None, at("10:30"), at("18:00"))
    assert t6.dispatched_at == at("09:30")


def times(*seconds: float) -> dict:
    """A times entry, from the seconds counted by hand."""
    if not seconds:
        return {"count": 0, "mean_s": None, "median_s": None, "max_s": None}
    ordered = sorted(seconds)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"count": len(seconds), "mean_s": round(sum(seconds) / len(seconds), 1), "median_s": median,
            "max_s": max(seconds)}


def test_performance_rows(tickets):
    table = rows(tickets.values(), START, END, MEASURED)
    assert set(table) == {TP, FC, CM}
    got = {d: {k: v for k, v in r.as_dict().items() if k != "department"} for d, r in table.items()}
    assert got[TP] == {
        "dispatched": 4,          # T1 T2 T3 T4 (T10 was dispatched before the period)
        "accepted_on_time": 2,    # T1 09:40<=10:00, T3 11:45<=12:00 (after rework); T2 10:20>10:00; T4 never
        "resolved": 3,            # T1 closed, T2 resolved, T3 closed
        "resolved_on_time": 2,    # T1 12:00<=17:30, T3 13:00<=19:30; T2 18:00>17:30
        "closed": 2,              # T1 T3
        "reworked": 1,            # T3
        "submitted": 3,           # T1 T2 T3 reported a resolution at least once
        "returned": 0,
        "extended": 0,
        "overdue": 1,             # T4: unresolved, 17:30 < 19:30
        "still_open": 2,          # T2 (awaiting verification), T4
        "due": 4,                 # 3 resolved + T4 past its deadline
        "due_to_accept": 4,       # T1 T2 T3 accepted, T4's 10:00 passed
        "due_not_deferred": 4,    # no extension
        "resolved_on_time_not_deferred": 2,
        "followup_owed": 0, "followed_up": 0, "rated": 0, "satisfied": 0, "called_rated": 0, "sent_back": 0,
        "disputes": 0, "disputes_ruled": 0, "disputes_upheld": 0,  # no dispute, no supporting part
        "support_parts": 0, "support_due": 0, "support_on_time": 0,
        "accepted_late": 2,       # T2 10:20 > 10:00, T4 never (10:00 passed)
        "reminded": 0, "escalated": 0, "reported": 0, "preventive": 0,
        # Every reading was taken two minutes before its ticket (09:28).
        "times": {"to_ticket": times(120, 120, 120, 120),
                  # T1 09:40 (12 min), T2 10:20 (52 min), T3 11:45 (137 min, its acceptance after the rework)
                  "to_accept": times(720, 3120, 8220),
                  "to_close": times(10920, 14520)},  # T1 12:30 (182 min), T3 13:30 (242 min)
        "rates": {
            "on_time_handling": 0.5,   # 2 / 4
            "closure": 0.5,            # 2 / 4
            "rework": 0.3333,          # 1 / 3
            "accepted_on_time": 0.5,   # 2 / 4
            "resolved_on_time": 0.5,   # 2 / 4
            "followup": None, "satisfaction": None, "sent_back": None,  # no hotline case
            "disputes_upheld": None, "support_on_time": None,
        },
    }
    assert got[FC] == {
        "dispatched": 2,          # T5 T9 (T6 moved to city_management)
        "accepted_on_time": 2,    # T5 09:45, T9 09:55 <= 10:00
        "resolved": 1,            # T5
        "resolved_on_time": 1,    # T5 19:00 <= 21:30 (the approved extension)
        "closed": 0,
        "reworked": 0,
        "submitted": 1,           # T5
        "returned": 0,
        "extended": 1,            # T5 approved; T9's request was refused
        "overdue": 1,             # T9: 17:30 kept (refused) < 19:30
        "still_open": 2,          # T5 (awaiting verification), T9
        "due": 2,                 # T5 resolved + T9 past its deadline
        "due_to_accept": 2,       # both accepted
        "due_not_deferred": 1,    # T9 (T5 had an extension: 缓办, left out)
        "resolved_on_time_not_deferred": 0,
        "followup_owed": 0, "followed_up": 0, "rated": 0, "satisfied": 0, "called_rated": 0, "sent_back": 0,
        "disputes": 0, "disputes_ruled": 0, "disputes_upheld": 0,  # no dispute, no supporting part
        "support_parts": 0, "support_due": 0, "support_on_time": 0,
        "accepted_late": 0,
        "reminded": 0, "escalated": 0, "reported": 0, "preventive": 0,
        "times": {"to_ticket": times(120, 120), "to_accept": times(1020, 1620),  # T5 09:45, T9 09:55
                  "to_close": times()},
        "rates": {
            "on_time_handling": 0.5,   # 1 / 2
            "closure": 0.0,            # 0 / 2
            "rework": 0.0,             # 0 / 1
            "accepted_on_time": 1.0,   # 2 / 2
            "resolved_on_time": 0.0,   # 0 / 1
            "followup": None, "satisfaction": None, "sent_back": None,
            "disputes_upheld": None, "support_on_time": None,
        },
    }
    assert got[CM] == {
        "dispatched": 3,          # T6 (held now) T7 T8
        "accepted_on_time": 1,    # T7 11:00<=11:30; T6 was accepted only by flood_control; T8 never
        "resolved": 1,            # T7
        "resolved_on_time": 1,    # T7 15:00 <= 09:30 on the 13th
        "closed": 1,              # T7
        "reworked": 0,
        "submitted": 1,           # T7
        "returned": 1,            # T6 (counts for the department holding it now)
        "extended": 0,
        "overdue": 1,             # T6: 18:00 < 19:30
        "still_open": 2,          # T6 T8
        "due": 2,                 # T7 resolved + T6 past its deadline; T8 is due tomorrow
        "due_to_accept": 3,       # T7 accepted; T6's 10:30 and T8's 11:30 passed
        "due_not_deferred": 2,
        "resolved_on_time_not_deferred": 1,
        "followup_owed": 0, "followed_up": 0, "rated": 0, "satisfied": 0, "called_rated": 0, "sent_back": 0,
        "disputes": 0, "disputes_ruled": 0, "disputes_upheld": 0,  # no dispute, no supporting part
        "support_parts": 0, "support_due": 0, "support_on_time": 0,
        "accepted_late": 2,       # T6 (10:30) and T8 (11:30) not accepted by their deadlines
        "reminded": 0, "escalated": 0, "reported": 0, "preventive": 0,
        # T6 keeps its first dispatch time; T7 accepted 11:00 (92 min), closed 15:30 (362 min).
        "times": {"to_ticket": times(120, 120, 120), "to_accept": times(5520), "to_close": times(21720)},
        "rates": {
            "on_time_handling": 0.5,   # 1 / 2
            "closure": 0.3333,         # 1 / 3
            "rework": 0.0,             # 0 / 1
            "accepted_on_time": 0.3333,  # 1 / 3
            "resolved_on_time": 0.5,     # 1 / 2
            "followup": None, "satisfaction": None, "sent_back": None,
            "disputes_upheld": None, "support_on_time": None,
        },
    }


def test_earlier_in_the_day_fewer_tickets_are_due(tickets):
    # The same tickets (rows() reads their current state), measured with now = 17:00: no unresolved
    # deadline has passed yet (the earliest is 17:30), so only the resolved tickets are due.
    # traffic_police: T1 T2 T3 resolved, T1 T3 on time -> due 3, on time 2.
    table = rows(tickets.values(), START, END, at("17:00"))
    assert (table[TP].due, table[TP].overdue, table[TP].rates["on_time_handling"]) == (3, 0, 0.6667)  # 2 / 3
    assert (table[FC].due, table[FC].overdue, table[FC].rates["on_time_handling"]) == (1, 0, 1.0)     # 1 / 1
    assert (table[CM].due, table[CM].overdue, table[CM].rates["on_time_handling"]) == (1, 0, 1.0)     # 1 / 1


def test_the_period_selects_by_dispatch_time(tickets):
    assert rows(tickets.values(), at("08:00"), at("08:01"), MEASURED)[TP].dispatched == 1     # T10 only
    assert rows(tickets.values(), at("09:30"), at("09:31"), MEASURED)[TP].dispatched == 4     # start inclusive
    assert rows(tickets.values(), at("08:00"), at("09:30"), MEASURED).keys() == {TP}          # end exclusive
    assert rows(tickets.values(), at("20:00"), at("21:00"), MEASURED) == {}


def test_rates_are_none_without_a_denominator(config):
    fresh = traffic(config, "fresh").ticket
    [row] = rows([fresh], START, END, at("09:31")).values()
    assert row.rates == {"on_time_handling": None, "closure": 0.0, "rework": None, "accepted_on_time": None,
                         "resolved_on_time": None, "followup": None, "satisfaction": None, "sent_back": None,
                         "disputes_upheld": None, "support_on_time": None}
    assert (row.dispatched, row.due, row.submitted, row.still_open, row.overdue) == (1, 0, 0, 1, 0)


@pytest.mark.parametrize("now", [MEASURED, at("17:00")])
def test_gauges_from_stored_facts_agree_with_rows(tickets, now):
    figures = gauges([gauge_facts(t) for t in tickets.values()], START, END, now)
    table = rows(tickets.values(), START, END, now)
    assert figures.rows == table


def test_gauges_count_open_tickets_of_every_period(tickets):
    # Open counts are not limited to the period: T10 (dispatched before it) is open too.
    figures = gauges([gauge_facts(t) for t in tickets.values()], START, END, MEASURED)
    assert figures.open_tickets == {(TP, "orange"): 3, (FC, "orange"): 2, (CM, "orange"): 1, (CM, "yellow"): 1}
