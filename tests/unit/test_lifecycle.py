"""The ticket state machine (GB/T 30428 closed loop): every transition, per role, and replays.

Occurrences and successors are the ticket step's (test_ticketing.py).

Expectations come from the tables written below, not from handlers.lifecycle.TRANSITIONS, so a
change to the code's rules makes these tests fail.
"""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest

from handlers import lifecycle
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
from schemas.records import HistoryKind, Incident, Ticket, TicketAction, TicketEvent
from tests.unit.conftest import NOW

A = TicketAction
S = TicketStatus

OWNER = "traffic_police"        # traffic_accident routes here
OTHER = "flood_control"         # another department
CENTRE = OPS_CENTRE
ROLES = {"owner": OWNER, "other": OTHER, "centre": CENTRE}
REDISPATCH_TO = "city_management"

_ids = itertools.count(1)


def minutes(n: float) -> datetime:
    return NOW + timedelta(minutes=n)


def make_incident(n: int = 1, *, severity: Severity = Severity.orange, observed_at: datetime | None = None,
                  category: Category = Category.traffic_accident, source: Source = Source.traffic,
                  community: str | None = "haibin") -> Incident:
    observed = observed_at or NOW - timedelta(minutes=5)
    return Incident(
        incident_id=f"traf-{n:016x}", source=source, category=category, subcategory="collision",
        severity=severity, title=f"accident {n}", lat=22.53, lon=113.92, community=community,
        observed_at=observed, received_at=observed + timedelta(seconds=3),
        dedup_key=f"{source.value}:{category.value}:cell-1", source_ref=f"TP-{n}")


def new_ticket(config, incident: Incident | None = None, now: datetime = NOW) -> Ticket:
    incident = incident or make_incident()
    return open_ticket(config, incident, route(config, incident.category, incident.severity, incident.community), now)


def event(action: TicketAction, actor: str, at: datetime, *, by: str | None = None, event_id: str | None = None,
          **fields) -> TicketEvent:
    return TicketEvent(event_id=event_id or f"ev-{next(_ids)}", ticket_id=fields.pop("ticket_id", "T-test"),
                       action=action, by=by or f"clerk of {actor}", actor=actor, at=at, **fields)


def applied(config, ticket: Ticket, ev: TicketEvent, now: datetime | None = None) -> Ticket:
    """Apply an event that must be accepted; the updated ticket."""
    outcome = lifecycle.apply(config, ticket, ev.model_copy(update={"ticket_id": ticket.ticket_id}), now or ev.at)
    assert outcome.verdict is Verdict.applied, outcome.reason
    assert outcome.reason == ""
    return outcome.ticket


def rejected(config, ticket: Ticket, ev: TicketEvent, now: datetime | None = None,
             verdict: Verdict = Verdict.refused) -> str:
    """Apply an event that must change nothing (refused, or a replay); the reason."""
    outcome = lifecycle.apply(config, ticket, ev.model_copy(update={"ticket_id": ticket.ticket_id}), now or ev.at)
    assert outcome.verdict is verdict
    # Nothing changes: the ticket handed back is the one given.
    assert outcome.ticket == ticket
    assert outcome.reason
    return outcome.reason


# ------------------------------------------------------------------ building tickets in each state

def in_status(config, status: TicketStatus, *, extension_pending: bool = False) -> Ticket:
    """A ticket brought to `status` through the real transitions (dispatched at NOW)."""
    t = new_ticket(config)
    if status is S.returned:
        return applied(config, t, event(A.return_, OWNER, minutes(3), note="not a traffic matter"))
    if status is not S.dispatched:
        t = applied(config, t, event(A.accept, OWNER, minutes(2)))
    if extension_pending:
        t = applied(config, t, event(A.extend, OWNER, minutes(4), until=t.resolve_due + timedelta(hours=4),
                                     note="waiting for a tow truck"))
    if status in (S.resolved, S.closed):
        t = applied(config, t, event(A.resolve, OWNER, minutes(30), note="road cleared"))
    if status is S.closed:
        t = applied(config, t, event(A.verify, CENTRE, minutes(40), passed=True))
    assert t.status is status
    return t


def valid_event(action: TicketAction, actor: str, ticket: Ticket) -> TicketEvent:
    """An event of `action` with every field that action needs, so only role and state decide."""
    at = minutes(60)
    fields = {
        A.accept: {},
        A.resolve: {"note": "road cleared"},
        A.return_: {"note": "not our business"},
        A.extend: {"note": "parts on order", "until": ticket.resolve_due + timedelta(days=1)},
        A.extend_decision: {"approve": True},
        A.verify: {"passed": True},
        A.redispatch: {"department": REDISPATCH_TO},
        A.reopen: {"note": "it is back"},
        A.comment: {"note": "crew on the way"},
        A.acknowledge: {},
    }[action]
    return event(action, actor, at, **fields)


# ------------------------------------------------------------------ the expected rules, written out

# Who may take each action at all.
MAY = {
    A.accept: {"owner"},
    A.resolve: {"owner"},
    A.return_: {"owner"},
    A.extend: {"owner"},
    A.extend_decision: {"centre"},
    A.verify: {"centre"},
    A.redispatch: {"centre"},
    A.reopen: {"centre"},
    A.comment: {"owner", "centre"},
    A.acknowledge: {"owner", "centre"},
}

# From which status each action is legal, and the status it leads to.
LEADS_TO = {
    A.accept: {S.dispatched: S.accepted},
    A.resolve: {S.accepted: S.resolved},
    A.return_: {S.dispatched: S.returned, S.accepted: S.returned},
    A.extend: {S.dispatched: S.dispatched, S.accepted: S.accepted},
    A.extend_decision: {S.dispatched: S.dispatched, S.accepted: S.accepted},
    A.verify: {S.resolved: S.closed},
    A.redispatch: {S.dispatched: S.dispatched, S.accepted: S.dispatched, S.returned: S.dispatched},
    A.reopen: {S.closed: S.dispatched},
    A.comment: {S.dispatched: S.dispatched, S.accepted: S.accepted, S.resolved: S.resolved,
                S.closed: S.closed, S.returned: S.returned},
    # 已知悉 is said of a ticket still being worked on.
    A.acknowledge: {S.dispatched: S.dispatched, S.accepted: S.accepted, S.resolved: S.resolved,
                    S.returned: S.returned},
}

STATUSES = [S.dispatched, S.accepted, S.resolved, S.closed, S.returned]
ACTIONS = [A.accept, A.resolve, A.return_, A.extend, A.extend_decision, A.verify, A.redispatch, A.reopen, A.comment,
           A.acknowledge]

MATRIX = [pytest.param(status, action, role, id=f"{status.value}-{action.value}-{role}")
          for status in STATUSES for action in ACTIONS for role in ROLES]


def test_the_matrix_is_complete():
    assert len(MATRIX) == 5 * 10 * 3
    assert set(MAY) == set(LEADS_TO) == set(ACTIONS)


@pytest.mark.parametrize("status, action, role", MATRIX)
def test_transition_matrix(config, status, action, role):
    ticket = in_status(config, status, extension_pending=action is A.extend_decision
                       and status in (S.dispatched, S.accepted))
    ev = valid_event(action, ROLES[role], ticket)
    outcome = lifecycle.apply(config, ticket, ev.model_copy(update={"ticket_id": ticket.ticket_id}), ev.at)

    if role not in MAY[action]:
        assert outcome.verdict is Verdict.refused, f"{role} must not {action.value}"
        assert outcome.ticket == ticket
        if action is A.verify and role == "owner":
            assert "verify its own work" in outcome.reason
        else:
            assert outcome.reason.startswith("only "), outcome.reason
    elif status not in LEADS_TO[action]:
        assert outcome.verdict is Verdict.refused, f"{action.value} must not be legal from {status.value}"
        assert outcome.ticket == ticket
        assert outcome.reason == f"cannot {action.value} a ticket that is {status.value}"
    else:
        assert outcome.verdict is Verdict.applied, outcome.reason
        after = outcome.ticket
        assert after.status is LEADS_TO[action][status]
        assert after.version == ticket.version + 1
        assert len(after.history) == len(ticket.history) + 1
        assert after.history[-1].event_id == ev.event_id


# ------------------------------------------------------------------ rules beyond role and state

@pytest.mark.parametrize("status", STATUSES)
def test_the_leadership_comments_on_any_ticket_and_does_nothing_else(config, status):
    t = in_status(config, status)
    leadership = config.district.leadership
    after = applied(config, t, event(A.comment, leadership, minutes(60), note="请加快处置"))
    assert after.status is status and after.history[-1].note == "请加快处置"
    for action in (A.accept, A.resolve, A.verify, A.redispatch):
        assert rejected(config, t, valid_event(action, leadership, t)).startswith("only ")


def test_a_department_cannot_verify_its_own_work(config):
    t = in_status(config, S.resolved)
    why = rejected(config, t, event(A.verify, OWNER, minutes(50), passed=True))
    assert why == "a department cannot verify its own work; the operations centre verifies"


@pytest.mark.parametrize("action, status, fields, needs", [
    (A.resolve, S.accepted, {}, "resolution"),
    (A.return_, S.dispatched, {}, "reason"),
    (A.extend, S.accepted, {"until": NOW + timedelta(days=3)}, "reason"),
])
@pytest.mark.parametrize("note", ["", "   \n\t"])
def test_notes_are_required(config, action, status, fields, needs, note):
    t = in_status(config, status)
    why = rejected(config, t, event(action, OWNER, minutes(20), note=note, **fields))
    assert why == f"{action.value} needs a {needs}"


def test_verify_needs_passed(config):
    t = in_status(config, S.resolved)
    assert rejected(config, t, event(A.verify, CENTRE, minutes(50))) == "verify needs 'passed'"


@pytest.mark.parametrize("until", [None, "equal", "earlier"])
def test_extension_needs_until_later_than_the_resolve_deadline(config, until):
    t = in_status(config, S.accepted)
    value = {None: None, "equal": t.resolve_due, "earlier": t.resolve_due - timedelta(minutes=1)}[until]
    why = rejected(config, t, event(A.extend, OWNER, minutes(20), until=value, note="more time"))
    assert "later than the current resolve deadline" in why


def test_one_pending_extension_at_a_time(config):
    t = in_status(config, S.accepted, extension_pending=True)
    assert t.extension is not None and t.extension.by == f"clerk of {OWNER}"
    why = rejected(config, t, event(A.extend, OWNER, minutes(20), until=t.resolve_due + timedelta(days=2),
                                    note="even more time"))
    assert why == "an extension request is already pending"
    # After the centre decides, the department may ask again.
    decided = applied(config, t, event(A.extend_decision, CENTRE, minutes(25), approve=False))
    again = applied(config, decided, event(A.extend, OWNER, minutes(30), until=t.resolve_due + timedelta(days=2),
                                           note="even more time"))
    assert again.extension.until == t.resolve_due + timedelta(days=2)


def test_extension_decision_without_a_request_is_rejected(config):
    t = in_status(config, S.accepted)
    assert rejected(config, t, event(A.extend_decision, CENTRE, minutes(20), approve=True)) == \
        "no extension request is pending"


def test_approving_an_extension_moves_the_resolve_deadline(config):
    t = in_status(config, S.accepted)
    until = t.resolve_due + timedelta(hours=6)
    asked = applied(config, t, event(A.extend, OWNER, minutes(20), until=until, note="crane needed"))
    assert asked.resolve_due == t.resolve_due and asked.extension.reason == "crane needed"
    approved = applied(config, asked, event(A.extend_decision, CENTRE, minutes(25), approve=True))
    assert approved.resolve_due == until
    assert approved.extension is None
    assert approved.accept_due == t.accept_due
    assert approved.history[-1].action == f"extension approved until {until.isoformat()}"


def test_rejecting_an_extension_keeps_the_resolve_deadline(config):
    t = in_status(config, S.accepted, extension_pending=True)
    refused = applied(config, t, event(A.extend_decision, CENTRE, minutes(25), approve=False, note="no"))
    assert refused.resolve_due == t.resolve_due
    assert refused.extension is None
    assert refused.history[-1].action == "extension rejected"


def test_resolving_drops_a_pending_extension(config):
    t = in_status(config, S.accepted, extension_pending=True)
    done = applied(config, t, event(A.resolve, OWNER, minutes(30), note="done early"))
    assert done.extension is None


def test_failed_verification_is_rework(config):
    t = in_status(config, S.resolved)
    rework_at = minutes(90)
    back = applied(config, t, event(A.verify, CENTRE, rework_at, passed=False, note="debris still on lane 2"))
    assert back.status is S.dispatched
    assert back.reworks == t.reworks + 1 == 1
    # Orange deadlines (30 min / 8 h) counted again from the rework, not from the first dispatch.
    assert back.accept_due == rework_at + timedelta(minutes=30)
    assert back.resolve_due == rework_at + timedelta(hours=8)
    assert back.dispatched_at == t.dispatched_at
    assert (back.accepted_at, back.resolved_at, back.escalation) == (None, None, Escalation.none)
    assert back.department == OWNER
    assert back.history[-1].action == "rework" and back.history[-1].note == "debris still on lane 2"
    # The loop runs again.
    again = applied(config, back, event(A.accept, OWNER, minutes(95)))
    assert again.status is S.accepted


def test_reopen_of_a_closed_ticket_counts_as_rework(config):
    t = in_status(config, S.closed)
    reopened = applied(config, t, event(A.reopen, CENTRE, minutes(300), note="complaint again"))
    assert reopened.status is S.dispatched
    assert reopened.reworks == 1 and reopened.closed_at is None
    assert reopened.accept_due == minutes(300) + timedelta(minutes=30)


def test_redispatch_to_another_department(config):
    t = in_status(config, S.returned)
    moved = applied(config, t, event(A.redispatch, CENTRE, minutes(10), department=REDISPATCH_TO))
    assert (moved.department, moved.status) == (REDISPATCH_TO, S.dispatched)
    assert moved.accept_due == minutes(10) + timedelta(minutes=30)
    assert (moved.history[-1].kind, moved.history[-1].from_department, moved.history[-1].department) == (
        HistoryKind.redispatch, OWNER, REDISPATCH_TO)
    assert moved.returns == 1


def test_redispatch_to_an_unknown_department_is_rejected(config):
    t = in_status(config, S.returned)
    why = rejected(config, t, event(A.redispatch, CENTRE, minutes(10), department="fire_brigade"))
    assert why == "unknown department 'fire_brigade'"
    assert "unknown department" in rejected(config, t, event(A.redispatch, CENTRE, minutes(10)))


def test_redispatch_to_the_same_department_only_after_a_return(config):
    t = in_status(config, S.accepted)
    assert rejected(config, t, event(A.redispatch, CENTRE, minutes(10), department=OWNER)) == \
        f"ticket is already with {OWNER}"
    returned = in_status(config, S.returned)
    back = applied(config, returned, event(A.redispatch, CENTRE, minutes(10), department=OWNER))
    assert (back.department, back.status) == (OWNER, S.dispatched)


@pytest.mark.parametrize("start", [S.dispatched, S.accepted])
def test_return_watches_the_centre_and_counts(config, start):
    t = in_status(config, start)
    assert OPS_CENTRE not in t.watchers  # orange: nobody else watches yet
    back = applied(config, t, event(A.return_, OWNER, minutes(12), note="not ours: private road"))
    assert back.status is S.returned
    assert back.returns == t.returns + 1 == 1
    assert OPS_CENTRE in back.watchers and OPS_CENTRE in back.inboxes


def test_replay_of_an_applied_event_changes_nothing(config):
    t = new_ticket(config)
    accept = event(A.accept, OWNER, minutes(2), event_id="api-accept-1")
    once = applied(config, t, accept)
    assert rejected(config, once, accept, verdict=Verdict.replayed) == "event already applied"
    # Also for an event that left the status where it was.
    note = event(A.comment, CENTRE, minutes(3), note="please hurry", event_id="api-comment-1")
    commented = applied(config, once, note)
    assert rejected(config, commented, note, verdict=Verdict.replayed) == "event already applied"
    # A replay is recognised before the rules: an accept replayed on an accepted ticket is not refused.
    assert rejected(config, commented, accept, verdict=Verdict.replayed) == "event already applied"


def test_a_replay_hands_back_the_ticket_as_it_stands_so_the_projection_can_catch_up(config):
    # A worker killed between the table write and the Redis write replays the event after restart.
    t = new_ticket(config)
    accept = event(A.accept, OWNER, minutes(2), event_id="api-accept-1")
    once = applied(config, t, accept)
    later = applied(config, once, event(A.comment, CENTRE, minutes(3), note="ok", event_id="api-comment-1"))
    outcome = lifecycle.apply(config, later, accept, minutes(4))
    assert (outcome.verdict, outcome.ticket) == (Verdict.replayed, later)
    assert outcome.ticket.model_dump_json() == later.model_dump_json()
    # A refused transition is not a replay: nothing to write again.
    assert lifecycle.apply(config, later, event(A.accept, OWNER, minutes(5), event_id="api-accept-2"),
                           minutes(5)).verdict is Verdict.refused


@pytest.mark.parametrize("action", [A.expire])
def test_actions_of_the_ticket_step_are_not_handled_here(config, action):
    t = new_ticket(config)
    outcome = lifecycle.apply(config, t, event(action, PIPELINE, minutes(1), ticket_id=t.ticket_id), minutes(1))
    assert (outcome.verdict, outcome.ticket) == (Verdict.refused, t)
    assert outcome.reason == f"action {action.value} is not handled here"


def test_history_records_who_what_when_why(config):
    t = new_ticket(config)
    first = t.history[0]
    assert (first.at, first.by, first.action, first.note) == (NOW, PIPELINE, "dispatch", OWNER)
    accepted = applied(config, t, event(A.accept, OWNER, minutes(2), by="Officer Li", note="on my way",
                                        event_id="e-acc"))
    entry = accepted.history[-1]
    assert (entry.at, entry.by, entry.action, entry.note, entry.event_id) == \
        (minutes(2), f"Officer Li ({OWNER})", "accept", "on my way", "e-acc")
    # When the person is the department itself, `by` is not repeated.
    resolved = applied(config, accepted, event(A.resolve, OWNER, minutes(30), by=OWNER, note="cleared"))
    assert (resolved.history[-1].by, resolved.history[-1].action, resolved.history[-1].note) == \
        (OWNER, "resolve", "cleared")
    closed = applied(config, resolved, event(A.verify, CENTRE, minutes(40), by="Duty officer Wang", passed=True,
                                             note="checked on camera 17"))
    assert (closed.history[-1].by, closed.history[-1].action, closed.history[-1].note) == \
        (f"Duty officer Wang ({CENTRE})", "verified and closed", "checked on camera 17")
    assert closed.closed_at == minutes(40)
    assert [h.action for h in closed.history] == ["dispatch", "accept", "resolve", "verified and closed"]


def test_version_goes_up_by_one_per_applied_change(config):
    t = new_ticket(config)
    assert t.version == 1
    steps = [event(A.accept, OWNER, minutes(2)),
             event(A.comment, CENTRE, minutes(3), note="hurry"),
             event(A.extend, OWNER, minutes(4), until=t.resolve_due + timedelta(hours=1), note="traffic"),
             event(A.extend_decision, CENTRE, minutes(5), approve=True),
             event(A.resolve, OWNER, minutes(30), note="done"),
             event(A.verify, CENTRE, minutes(40), passed=False),
             event(A.accept, OWNER, minutes(41)),
             event(A.resolve, OWNER, minutes(50), note="done properly"),
             event(A.verify, CENTRE, minutes(55), passed=True)]
    versions = [t.version]
    for ev in steps:
        # A rejected event between changes does not move the version.
        assert rejected(config, t, event(A.reopen, OTHER, ev.at)).startswith("only ")
        t = applied(config, t, ev)
        versions.append(t.version)
    assert versions == list(range(1, len(steps) + 2))
    assert t.status is S.closed and t.reworks == 1


def test_timestamps_come_from_the_injected_clock(config):
    t = new_ticket(config)
    # The event says when the person acted; `now` is when the pipeline applied it.
    later = minutes(7)
    accepted = applied(config, t, event(A.accept, OWNER, minutes(2)), now=later)
    assert accepted.accepted_at == later
    assert accepted.history[-1].at == minutes(2)


def test_acknowledging_a_red_ticket_is_an_entry_of_its_own_kind_by_whoever_watches_it(config):
    t = in_status(config, S.dispatched)
    seen = applied(config, t, event(A.acknowledge, CENTRE, minutes(1), by="张值班"))
    assert (seen.status, seen.history[-1].kind, seen.history[-1].by, seen.history[-1].note) == (
        S.dispatched, HistoryKind.acknowledged, "张值班 (ops_centre)", "")
    leader = applied(config, seen, event(A.acknowledge, config.district.leadership, minutes(2)))
    assert leader.history[-1].kind is HistoryKind.acknowledged
