"""回访 (follow-up) and 满意率: a hotline or app case closed by verification is owed a call to the citizen;
each result's transition, the centre's ladder on an overdue call, and the 12345 assessment figures for a
scripted set of cases, against hand-computed values.

Cases are dispatched at 09:30 on Tuesday 12 May 2026 (working hours 08:30-12:00 and 14:00-18:00), and
verified at 11:30: the follow-up is owed within 2 working hours, by 15:30 (30 min before lunch, 1 h 30 after).
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import escalation, lifecycle
from handlers.performance import gauge_facts, gauges, rows
from handlers.routing import route
from handlers.tickets import open_ticket
from schemas.enums import OPS_CENTRE, Category, Escalation, Severity, Source, TicketStatus
from schemas.records import Incident, TicketAction, TicketEvent
from tests.unit.photos import AFTER
from tests.unit.test_performance import at

A = TicketAction
CM = "city_management"
START, END, MEASURED = at("08:30"), at("08:30", day=13), at("19:30")


class Case:
    """One city report (channel given) driven through lifecycle.apply."""

    def __init__(self, config, name: str, channel: str = "hotline_12345"):
        self.config, self.n = config, 0
        when = at("09:30")
        incident = Incident(incident_id=f"fu-{name}", source=Source.city, category=Category.city_road_damage,
                            subcategory="pothole", severity=Severity.yellow, title=name, lat=22.53, lon=113.92,
                            community="haibin", observed_at=when - timedelta(minutes=2), received_at=when,
                            dedup_key=f"fu:{name}", source_ref=name, details={"channel": channel})
        self.ticket = open_ticket(config, incident, route(config, incident.category, incident.severity, "haibin"), when)

    def attempt(self, action: TicketAction, actor: str, when: str, **fields) -> lifecycle.Outcome:
        self.n += 1
        event = TicketEvent(event_id=f"{self.ticket.ticket_id}-{self.n}", ticket_id=self.ticket.ticket_id,
                            action=action, by=actor, actor=actor, at=at(when), **fields)
        return lifecycle.apply(self.config, self.ticket, event, at(when))

    def do(self, action: TicketAction, actor: str, when: str, **fields) -> "Case":
        outcome = self.attempt(action, actor, when, **fields)
        assert outcome.verdict is lifecycle.Verdict.applied, (self.ticket.title, action, outcome.reason)
        self.ticket = outcome.ticket
        return self

    def closed(self, resolved: str = "10:30", verified: str = "11:30") -> "Case":
        # Road damage is resolved with a photo after the work (routing.yaml), taken again after each send-back.
        return (self.do(A.accept, CM, "09:40").do(A.evidence, CM, resolved, photo=AFTER)
                .do(A.resolve, CM, resolved, note="patched")
                .do(A.verify, OPS_CENTRE, verified, passed=True))

    def call(self, result: str, when: str) -> "Case":
        return self.do(A.followup, OPS_CENTRE, when, result=result, note="")


def test_a_verified_hotline_case_is_owed_a_follow_up_within_two_working_hours(config):
    case = Case(config, "owed").closed()
    assert (case.ticket.status, case.ticket.followup_due, case.ticket.rating) == (TicketStatus.closed, at("15:30"), None)
    grid = Case(config, "grid", channel="grid_patrol").closed()
    assert grid.ticket.followup_due is None
    refused = grid.attempt(A.followup, OPS_CENTRE, "12:00", result="satisfied")
    assert (refused.verdict, refused.reason) == (lifecycle.Verdict.refused, "no follow-up is owed on this ticket")


def test_only_the_centre_follows_up(config):
    case = Case(config, "dept").closed()
    refused = case.attempt(A.followup, CM, "12:00", result="satisfied")
    assert refused.verdict is lifecycle.Verdict.refused and "operations centre" in refused.reason


@pytest.mark.parametrize("result", ["satisfied", "basically_satisfied"])
def test_a_satisfied_citizen_rates_the_case_and_nothing_more_is_owed(config, result):
    case = Case(config, result).closed().call(result, "12:00")
    assert (case.ticket.status, case.ticket.rating, case.ticket.followup_due) == (TicketStatus.closed, result, None)
    assert [f.result for f in case.ticket.followups] == [result]
    assert case.attempt(A.followup, OPS_CENTRE, "12:10", result="unsatisfied").verdict is lifecycle.Verdict.refused


def test_unsatisfied_sends_the_case_back_with_fresh_deadlines_and_the_third_time_escalates(config):
    case = Case(config, "unsatisfied").closed().call("unsatisfied", "12:00")
    t = case.ticket
    # 发回重办: the same department, dispatched again from 12:00 (yellow road damage: 2 h to accept).
    assert (t.status, t.department, t.reworks, t.closed_at, t.followup_due, t.rating) == \
        (TicketStatus.dispatched, CM, 1, None, None, "unsatisfied")
    assert (t.accept_due, t.escalation) == (at("14:00"), Escalation.none)
    case.closed("14:30", "15:00").call("unsatisfied", "15:30")
    assert "district_leadership" not in case.ticket.watchers
    case.closed("16:00", "16:30").call("unsatisfied", "17:00")
    t = case.ticket
    assert (t.status, t.reworks, t.escalation) == (TicketStatus.dispatched, 3, Escalation.escalated)
    assert {"district_leadership", OPS_CENTRE} <= set(t.watchers)
    assert "提级督办" in t.history[-1].action


def test_two_unreachable_calls_close_the_case_unrated(config):
    case = Case(config, "unreachable").closed().call("unreachable", "14:00")
    # Called again within the same time, from the failed call: 2 working hours from 14:00.
    assert (case.ticket.followup_due, case.ticket.rating) == (at("16:00"), None)
    case.call("unreachable", "15:00")
    t = case.ticket
    assert (t.status, t.followup_due, t.rating, len(t.followups)) == (TicketStatus.closed, None, "unrated", 2)


def test_an_overdue_follow_up_climbs_the_centres_ladder(config):
    t = Case(config, "late").closed().ticket  # closed 11:30, owed by 15:30: 4 h of clock time allowed
    steps = {s.step: s for s in escalation.ladder(config, t)}
    assert {s.stage for s in steps.values()} == {escalation.FOLLOWUP}
    assert (steps[Escalation.reminded].at, steps[Escalation.escalated].at) == (at("14:42"), at("15:30"))
    assert [s.step for s in escalation.due_steps(config, t, at("15:31"))] == [Escalation.reminded, Escalation.escalated]
    # 通报 to the leadership; the department that did the work is not told about the centre's lateness.
    assert escalation.recipients(config, t, Escalation.reported, escalation.FOLLOWUP) == ["district_leadership"]
    done = Case(config, "on time").closed().call("satisfied", "12:00").ticket
    assert escalation.ladder(config, done) == []


@pytest.fixture(scope="module")
def cases(config):
    return {
        "H1": Case(config, "H1").closed().call("satisfied", "12:00").ticket,
        "H2": Case(config, "H2").closed().call("basically_satisfied", "12:00").ticket,
        # Sent back once, handled again, then satisfied.
        "H3": Case(config, "H3").closed().call("unsatisfied", "12:00").closed("14:30", "15:00")
        .call("satisfied", "15:30").ticket,
        "H4": Case(config, "H4").closed().call("unreachable", "12:00").call("unreachable", "14:00").ticket,
        "H5": Case(config, "H5").closed().ticket,   # owed, not called yet
        "G1": Case(config, "G1", channel="grid_patrol").closed().ticket,  # never owed
    }


def test_the_12345_figures_for_a_scripted_set_of_cases(config, cases):
    [row] = rows(cases.values(), START, END, MEASURED).values()
    assert (row.followup_owed, row.followed_up) == (5, 4)   # H1-H5 owed; H1-H4 called
    assert (row.rated, row.satisfied) == (3, 3)             # H1 H2 H3 (last rating); H4 unrated
    assert (row.called_rated, row.sent_back) == (3, 1)      # H1 H2 H3 gave a rating; H3 was sent back
    assert (row.rates["followup"], row.rates["satisfaction"], row.rates["sent_back"]) == (0.8, 1.0, 0.3333)
    # Without 基本满意 counted as satisfied: H1 H3 of the three rated.
    [strict] = rows(cases.values(), START, END, MEASURED, basically_counts=False).values()
    assert strict.rates["satisfaction"] == 0.6667
    assert gauges([gauge_facts(t) for t in cases.values()], START, END, MEASURED).rows == {CM: row}
