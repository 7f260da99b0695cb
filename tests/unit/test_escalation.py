"""The escalation ladder (催办 reminder -> 督办 escalation -> 通报 report): when each step is due,
that each is taken once, and who is added to the ticket's inboxes."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from handlers import escalation, lifecycle
from handlers.lifecycle import Verdict
from handlers.routing import route
from handlers.tickets import PIPELINE, open_ticket
from schemas.enums import (
    OPS_CENTRE,
    Category,
    Escalation,
    Severity,
    Source,
    TicketStatus,
)
from schemas.records import Incident, Ticket, TicketAction, TicketEvent
from tests.unit.conftest import NOW

E = Escalation


def at(hh_mm: str, day: int = 12) -> datetime:
    """A local time on Tuesday 12 May 2026 (NOW is 09:30)."""
    h, m = hh_mm.split(":")[:2]
    s = hh_mm.split(":")[2] if hh_mm.count(":") == 2 else "0"
    return NOW.replace(day=day, hour=int(h), minute=int(m), second=int(s))


def make_ticket(config, category=Category.traffic_accident, severity=Severity.red, community="haibin",
                now: datetime = NOW) -> Ticket:
    incident = Incident(
        incident_id=f"esc-{category.value}-{severity.value}", source=Source.traffic, category=category,
        subcategory="x", severity=severity, title="t", lat=22.53, lon=113.92, community=community,
        observed_at=now - timedelta(minutes=1), received_at=now, dedup_key=f"k:{category.value}",
        source_ref="ref")
    return open_ticket(config, incident, route(config, category, severity, community), now)


def act(config, ticket: Ticket, action: TicketAction, actor: str, when: datetime, **fields) -> Ticket:
    ev = TicketEvent(event_id=f"{action.value}-{when.isoformat()}", ticket_id=ticket.ticket_id, action=action,
                     by=actor, actor=actor, at=when, **fields)
    outcome = lifecycle.apply(config, ticket, ev, when)
    assert outcome.verdict is Verdict.applied, outcome.reason
    return outcome.ticket


def take(config, ticket: Ticket, step: escalation.Step, now: datetime) -> lifecycle.Outcome:
    return lifecycle.apply(config, ticket, escalation.escalation_event(ticket, step, now), now)


def names(steps) -> list[tuple[str, str]]:
    return [(s.stage, s.step.value) for s in steps]


def test_ladder_fractions_come_from_routing_yaml(config):
    assert (config.routing.escalation.remind_before, config.routing.escalation.report_after) == (0.2, 0.5)


def test_ladder_of_a_red_ticket(config):
    # Red: accept in 10 min (due 09:40), resolve in 2 h (due 11:30), dispatched 09:30.
    # accept:  remind 09:40 - 0.2 x 10 min = 09:38; escalate 09:40; report 09:40 + 0.5 x 10 min = 09:45
    # resolve: remind 11:30 - 0.2 x 120 min = 11:06; escalate 11:30; report 11:30 + 0.5 x 120 min = 12:30
    t = make_ticket(config)
    assert [(s.stage, s.step, s.due, s.at) for s in escalation.ladder(config, t)] == [
        ("accept", E.reminded, at("09:40"), at("09:38")),
        ("accept", E.escalated, at("09:40"), at("09:40")),
        ("accept", E.reported, at("09:40"), at("09:45")),
        ("resolve", E.reminded, at("11:30"), at("11:06")),
        ("resolve", E.escalated, at("11:30"), at("11:30")),
        ("resolve", E.reported, at("11:30"), at("12:30")),
    ]


def test_ladder_of_a_working_hours_deadline(config):
    # Blue traffic_violation: accept in 4 working hours -> 15:30 the same day (2.5 h to 12:00, 1.5 h
    # from 14:00). The ladder is in elapsed time: 6 h allowed, remind 72 min before, report 3 h after.
    t = make_ticket(config, Category.traffic_violation, Severity.blue)
    accept = [s for s in escalation.ladder(config, t) if s.stage == "accept"]
    assert [s.at for s in accept] == [at("14:18"), at("15:30"), at("18:30")]


@pytest.mark.parametrize("when, expected", [
    ("09:37:59", []),
    ("09:38", [("accept", "reminded")]),
    ("09:39:59", [("accept", "reminded")]),
    ("09:40", [("accept", "reminded"), ("accept", "escalated")]),
    ("09:44:59", [("accept", "reminded"), ("accept", "escalated")]),
    ("09:45", [("accept", "reminded"), ("accept", "escalated"), ("accept", "reported")]),
    ("11:05:59", [("accept", "reminded"), ("accept", "escalated"), ("accept", "reported")]),
    ("11:06", [("accept", "reminded"), ("accept", "escalated"), ("accept", "reported"),
               ("resolve", "reminded")]),
    ("11:30", [("accept", "reminded"), ("accept", "escalated"), ("accept", "reported"),
               ("resolve", "reminded"), ("resolve", "escalated")]),
    ("12:29:59", [("accept", "reminded"), ("accept", "escalated"), ("accept", "reported"),
                  ("resolve", "reminded"), ("resolve", "escalated")]),
    ("12:30", [("accept", "reminded"), ("accept", "escalated"), ("accept", "reported"),
               ("resolve", "reminded"), ("resolve", "escalated"), ("resolve", "reported")]),
])
def test_due_steps_just_before_and_at_each_step(config, when, expected):
    assert names(escalation.due_steps(config, make_ticket(config), at(when))) == expected


def test_each_step_is_taken_once(config):
    t = make_ticket(config)
    [reminder] = escalation.due_steps(config, t, at("09:38"))
    outcome = take(config, t, reminder, at("09:38"))
    assert outcome.verdict is Verdict.applied
    reminded = outcome.ticket
    assert reminded.escalation is E.reminded and reminded.version == t.version + 1
    entry = reminded.history[-1]
    assert (entry.by, entry.action, entry.event_id) == (PIPELINE, "催办 reminder", reminder.event_id)
    assert entry.note == f"accept due {at('09:40').isoformat()}"
    # The reminder is no longer due however often the timer looks; a second worker's copy is a replay.
    assert escalation.due_steps(config, reminded, at("09:39")) == []
    assert names(escalation.due_steps(config, reminded, at("09:40"))) == [("accept", "escalated")]
    again = take(config, reminded, reminder, at("09:39"))
    assert (again.verdict, again.ticket, again.reason) == (Verdict.replayed, reminded, "event already applied")
    # A reminder a few seconds later (another worker's clock) is the same step.
    late_copy = escalation.escalation_event(t, reminder, at("09:38:05"))
    assert late_copy.event_id == reminder.event_id
    late = lifecycle.apply(config, reminded, late_copy, at("09:38:05"))
    assert (late.verdict, late.ticket) == (Verdict.replayed, reminded)


def test_the_escalation_event_names_its_stage_and_step(config):
    t = make_ticket(config)
    [reminder, escalated] = escalation.due_steps(config, t, at("09:40"))
    ev = escalation.escalation_event(t, escalated, at("09:40"))
    assert (ev.action, ev.ticket_id, ev.by, ev.actor, ev.at) == \
        (TicketAction.escalate, t.ticket_id, PIPELINE, PIPELINE, at("09:40"))
    assert (ev.event_id, ev.stage, ev.step, ev.until) == (escalated.event_id, "accept", E.escalated, at("09:40"))
    assert ev.note == ""
    # The event travels as JSON on soc.ticket-events and comes back the same.
    assert TicketEvent.model_validate_json(ev.model_dump_json()) == ev
    assert escalation.escalation_event(t, reminder, at("09:40")).step is E.reminded


def test_the_whole_ladder_climbs_in_order(config):
    t = make_ticket(config)
    for when, step in [("09:38", E.reminded), ("09:40", E.escalated), ("09:45", E.reported)]:
        [due] = escalation.due_steps(config, t, at(when))
        t = take(config, t, due, at(when)).ticket
        assert t.escalation is step
    assert escalation.due_steps(config, t, at("11:05")) == []
    assert len(escalation.taken(t)) == 3


def test_an_accepted_ticket_has_no_accept_stage(config):
    t = act(config, make_ticket(config), TicketAction.accept, "traffic_police", at("09:35"))
    ladder = escalation.ladder(config, t)
    assert {s.stage for s in ladder} == {"resolve"}
    assert names(escalation.due_steps(config, t, at("09:50"))) == []
    assert names(escalation.due_steps(config, t, at("11:06"))) == [("resolve", "reminded")]


@pytest.mark.parametrize("status_via", ["resolve", "return"])
def test_no_ladder_once_resolved_or_returned(config, status_via):
    t = act(config, make_ticket(config), TicketAction.accept, "traffic_police", at("09:35"))
    if status_via == "resolve":
        t = act(config, t, TicketAction.resolve, "traffic_police", at("10:00"), note="done")
    else:
        t = act(config, t, TicketAction.return_, "traffic_police", at("10:00"), note="not ours")
    assert escalation.ladder(config, t) == []
    assert escalation.due_steps(config, t, at("23:00")) == []


def test_an_escalation_that_is_no_longer_due_is_rejected(config):
    t = make_ticket(config)
    [_reminder, escalated] = escalation.due_steps(config, t, at("09:40"))
    # The department accepts at 09:39; the timer's 09:40 scan still saw the dispatched copy.
    accepted = act(config, t, TicketAction.accept, "traffic_police", at("09:39"))
    outcome = take(config, accepted, escalated, at("09:40"))
    assert (outcome.verdict, outcome.ticket, outcome.reason) == (Verdict.refused, accepted, "escalation no longer due")
    assert accepted.escalation is E.none


def test_an_escalation_event_before_its_time_is_rejected(config):
    t = make_ticket(config)
    [_, escalated, _] = [s for s in escalation.ladder(config, t) if s.stage == "accept"]
    early = escalation.escalation_event(t, escalated, at("09:39"))
    outcome = lifecycle.apply(config, t, early, at("09:39"))
    assert (outcome.verdict, outcome.reason) == (Verdict.refused, "escalation no longer due")


def test_an_approved_extension_is_a_new_deadline_with_its_own_ladder(config):
    t = act(config, make_ticket(config), TicketAction.accept, "traffic_police", at("09:35"))
    [old_reminder] = escalation.due_steps(config, t, at("11:06"))
    t = take(config, t, old_reminder, at("11:06")).ticket
    assert t.escalation is E.reminded
    t = act(config, t, TicketAction.extend, "traffic_police", at("11:10"), until=at("15:30"), note="crane")
    t = act(config, t, TicketAction.extend_decision, OPS_CENTRE, at("11:15"), approve=True)
    assert t.resolve_due == at("15:30") and t.escalation is E.none
    # 6 h allowed from the 09:30 dispatch: remind 15:30 - 72 min = 14:18, report 15:30 + 3 h = 18:30.
    assert [(s.step, s.at) for s in escalation.ladder(config, t)] == [
        (E.reminded, at("14:18")), (E.escalated, at("15:30")), (E.reported, at("18:30"))]
    assert escalation.due_steps(config, t, at("14:17")) == []
    [new_reminder] = escalation.due_steps(config, t, at("14:18"))
    assert new_reminder.event_id != old_reminder.event_id
    # The old deadline's escalation (11:30), generated from a stale copy, is not due any more.
    stale = escalation.Step("resolve", E.escalated, at("11:30"), at("11:30"))
    stale_outcome = take(config, t, stale, at("11:30"))
    assert (stale_outcome.verdict, stale_outcome.reason) == (Verdict.refused, "escalation no longer due")
    assert take(config, t, new_reminder, at("14:18")).ticket.escalation is E.reminded


def test_rework_restarts_the_ladder_from_the_rework(config):
    t = act(config, make_ticket(config), TicketAction.accept, "traffic_police", at("09:35"))
    t = act(config, t, TicketAction.resolve, "traffic_police", at("10:30"), note="done")
    t = act(config, t, TicketAction.verify, OPS_CENTRE, at("12:00"), passed=False, note="not done")
    assert (t.accept_due, t.resolve_due) == (at("12:10"), at("14:00"))
    # 10 min / 2 h allowed again, counted from 12:00, not from the 09:30 dispatch.
    assert [(s.stage, s.step.value, s.at) for s in escalation.ladder(config, t)] == [
        ("accept", "reminded", at("12:08")), ("accept", "escalated", at("12:10")),
        ("accept", "reported", at("12:15")),
        ("resolve", "reminded", at("13:36")), ("resolve", "escalated", at("14:00")),
        ("resolve", "reported", at("15:00"))]
    assert escalation.due_steps(config, t, at("12:07")) == []


def test_redispatch_restarts_the_ladder(config):
    t = act(config, make_ticket(config), TicketAction.return_, "traffic_police", at("09:36"), note="not ours")
    t = act(config, t, TicketAction.redispatch, OPS_CENTRE, at("10:00"), department="city_management")
    assert [s.at for s in escalation.ladder(config, t) if s.stage == "accept"] == \
        [at("10:08"), at("10:10"), at("10:15")]


def test_escalated_adds_the_supervisor_and_the_centre_and_reported_adds_leadership(config):
    # Orange city_facility in Haibin goes to the community workstation, supervised by city_management.
    # Accept in 30 min: remind 09:54, escalate 10:00, report 10:15.
    t = make_ticket(config, Category.city_facility, Severity.orange)
    assert (t.department, t.watchers) == ("ws_haibin", [])
    assert config.district.departments["ws_haibin"].supervisor == "city_management"
    seen = []
    for when in ("09:54", "10:00", "10:15"):
        [step] = escalation.due_steps(config, t, at(when))
        t = take(config, t, step, at(when)).ticket
        seen.append((t.escalation, list(t.watchers)))
    assert seen == [
        (E.reminded, []),
        (E.escalated, ["city_management", OPS_CENTRE]),
        (E.reported, ["city_management", OPS_CENTRE, config.district.leadership]),
    ]
    assert config.district.leadership == "district_leadership"
    assert "district_leadership" in t.inboxes and "ws_haibin" == t.inboxes[0]


def test_recipients_never_include_the_owner(config):
    # traffic_police's supervisor is the ops centre: added once; a ticket owned by the centre
    # does not list the centre as its own watcher.
    t = make_ticket(config)
    assert escalation.recipients(config, t, E.escalated, "resolve") == [OPS_CENTRE]
    assert escalation.recipients(config, t, E.reported, "resolve") == [OPS_CENTRE, "district_leadership"]
    outside = make_ticket(config, community=None)
    assert outside.department == OPS_CENTRE
    assert escalation.recipients(config, outside, E.reported, "accept") == ["district_leadership"]
    assert escalation.recipients(config, t, E.reminded, "accept") == t.watchers


def test_a_closed_ticket_has_no_ladder(config):
    t = act(config, make_ticket(config), TicketAction.accept, "traffic_police", at("09:35"))
    t = act(config, t, TicketAction.resolve, "traffic_police", at("10:00"), note="done")
    t = act(config, t, TicketAction.verify, OPS_CENTRE, at("10:05"), passed=True)
    assert t.status is TicketStatus.closed
    assert escalation.due_steps(config, t, at("23:59")) == []


def test_next_due_is_the_first_untaken_step_and_none_when_the_ladder_ends(config):
    t = make_ticket(config)
    assert escalation.next_due(config, t) == at("09:38")
    # Each taken step moves the index to the next one; after the accept stage's report it is the
    # resolve stage's reminder (resolve due 11:30).
    for when, then in (("09:38", "09:40"), ("09:40", "09:45"), ("09:45", "11:06")):
        [step] = escalation.due_steps(config, t, at(when))
        t = take(config, t, step, at(when)).ticket
        assert escalation.next_due(config, t) == at(then)
    closed = act(config, act(config, act(config, t, TicketAction.accept, t.department, at("09:50")),
                             TicketAction.resolve, t.department, at("10:00"), note="done"),
                 TicketAction.verify, "ops_centre", at("10:10"), passed=True)
    assert escalation.next_due(config, closed) is None


def test_a_workers_dues_ladder_each_ticket_version_and_keep_the_latest(config):
    opened = make_ticket(config)
    accepted = act(config, opened, TicketAction.accept, "traffic_police", NOW + timedelta(minutes=2))
    dues = escalation.Dues(config, size=2)
    # The accept deadline's reminder first; once accepted, the resolve deadline's.
    assert dues(opened) == escalation.next_due(config, opened) != escalation.next_due(config, accepted)
    assert dues(accepted) == escalation.next_due(config, accepted)
    assert dues(opened) == escalation.next_due(config, opened)
    other = make_ticket(config, category=Category.traffic_congestion, severity=Severity.orange)
    dues(other)
    assert list(dues._due) == [(accepted.ticket_id, accepted.version), (other.ticket_id, other.version)]
