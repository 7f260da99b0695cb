"""Ticket state machine (GB/T 30428 closed loop): one TicketEvent applied to a ticket, no I/O.

dispatched -accept-> accepted -resolve-> resolved -verify(passed)-> closed
                                          resolved -verify(failed)-> dispatched (rework, 返工)
dispatched|accepted -return-> returned -redispatch-> dispatched (another department, 改派)
closed -reopen-> dispatched
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from handlers import escalation
from handlers.deadlines import due_dates
from handlers.routing import red_watchers, route
from handlers.tickets import PIPELINE, add_occurrence, open_ticket
from schemas.config import Config
from schemas.enums import OPS_CENTRE, Escalation, Severity, TicketStatus
from schemas.records import ExtensionRequest, HistoryEntry, Ticket, TicketAction, TicketEvent

A = TicketAction
S = TicketStatus

# action -> (who may do it, the states it may start from)
OWNER, CENTRE = "owner", "centre"
TRANSITIONS: dict[TicketAction, tuple[str, frozenset[TicketStatus]]] = {
    A.accept: (OWNER, frozenset({S.dispatched})),
    A.resolve: (OWNER, frozenset({S.accepted})),
    A.return_: (OWNER, frozenset({S.dispatched, S.accepted})),
    A.extend: (OWNER, frozenset({S.dispatched, S.accepted})),
    A.extend_decision: (CENTRE, frozenset({S.dispatched, S.accepted})),
    A.verify: (CENTRE, frozenset({S.resolved})),
    A.redispatch: (CENTRE, frozenset({S.dispatched, S.accepted, S.returned})),
    A.reopen: (CENTRE, frozenset({S.closed})),
    A.comment: (OWNER + "|" + CENTRE, frozenset(S)),
}
NEEDS_NOTE = {A.resolve: "resolution", A.return_: "reason", A.extend: "reason"}


@dataclass(frozen=True)
class Outcome:
    ticket: Ticket | None = None
    # Why nothing changed: a replay, or a transition that is not allowed from the current state.
    rejected: str | None = None
    follow_ups: list[TicketEvent] = field(default_factory=list)
    # On a replay, the ticket as the table holds it: written to Redis and soc.tickets again, since
    # a worker killed between the table write and those writes replays the event to finish them.
    replayed: Ticket | None = None


def _replay(ticket: Ticket, why: str) -> Outcome:
    return Outcome(rejected=f"replay: {why}", replayed=ticket)


class Conflict(Exception):
    """The action is not allowed for this actor or from the ticket's current state (HTTP 409)."""


def can_see(ticket: Ticket, department: str) -> bool:
    return department == OPS_CENTRE or department in ticket.inboxes


def check(config: Config, ticket: Ticket, event: TicketEvent) -> None:
    """Raise Conflict if `event` may not be applied to `ticket` now."""
    who, states = TRANSITIONS[event.action]
    is_owner = event.actor == ticket.department
    is_centre = event.actor == OPS_CENTRE
    allowed = (OWNER in who and is_owner) or (CENTRE in who and is_centre)
    if not allowed:
        role = "the operations centre" if who == CENTRE else f"the owning department ({ticket.department})"
        if event.action is A.verify and is_owner:
            raise Conflict("a department cannot verify its own work; the operations centre verifies")
        raise Conflict(f"only {role} may {event.action.value} this ticket")
    if ticket.status not in states:
        raise Conflict(f"cannot {event.action.value} a ticket that is {ticket.status.value}")
    if event.action in NEEDS_NOTE and not event.note.strip():
        raise Conflict(f"{event.action.value} needs a {NEEDS_NOTE[event.action]}")
    if event.action is A.extend:
        if event.until is None or event.until <= ticket.resolve_due:
            raise Conflict("an extension needs 'until' later than the current resolve deadline")
        if ticket.extension is not None:
            raise Conflict("an extension request is already pending")
    if event.action is A.extend_decision and ticket.extension is None:
        raise Conflict("no extension request is pending")
    if event.action is A.verify and event.passed is None:
        raise Conflict("verify needs 'passed'")
    if event.action is A.redispatch:
        if event.department not in config.district.departments:
            raise Conflict(f"unknown department {event.department!r}")
        if event.department == ticket.department and ticket.status is not S.returned:
            raise Conflict(f"ticket is already with {event.department}")


def _history(ticket: Ticket, event: TicketEvent, what: str | None = None) -> list[HistoryEntry]:
    who = event.by if event.actor in (PIPELINE, event.by) else f"{event.by} ({event.actor})"
    entry = HistoryEntry(at=event.at, by=who, action=what or event.action.value, note=event.note, event_id=event.event_id)
    return [*ticket.history, entry]


def _redispatched(config: Config, ticket: Ticket, department: str, now: datetime) -> dict:
    accept_due, resolve_due = due_dates(config, ticket.category, ticket.severity, now)
    watchers = list(red_watchers(config, department, ticket.severity))
    return {"department": department, "watchers": watchers, "status": S.dispatched, "accept_due": accept_due,
            "resolve_due": resolve_due, "accepted_at": None, "resolved_at": None, "extension": None,
            "escalation": Escalation.none}


def _transition(config: Config, ticket: Ticket, event: TicketEvent, now: datetime) -> Ticket:
    action = event.action
    change: dict = {}
    what = None
    if action is A.accept:
        change = {"status": S.accepted, "accepted_at": now, "escalation": Escalation.none}
    elif action is A.resolve:
        # A pending extension is moot once the work is reported done (and could never be decided).
        change = {"status": S.resolved, "resolved_at": now, "extension": None}
    elif action is A.return_:
        change = {"status": S.returned, "returns": ticket.returns + 1, "watchers": [OPS_CENTRE], "extension": None}
    elif action is A.extend:
        change = {"extension": ExtensionRequest(by=event.by, until=event.until, reason=event.note, requested_at=now)}
    elif action is A.extend_decision:
        what = "extension approved" if event.approve else "extension rejected"
        change = {"extension": None}
        if event.approve:
            change["resolve_due"] = ticket.extension.until
            change["escalation"] = Escalation.none
            what += f" until {ticket.extension.until.isoformat()}"
    elif action is A.verify:
        if event.passed:
            change, what = {"status": S.closed, "closed_at": now}, "verified and closed"
        else:
            change = _redispatched(config, ticket, ticket.department, now)
            change["reworks"] = ticket.reworks + 1
            what = "rework"
    elif action is A.redispatch:
        change = _redispatched(config, ticket, event.department, now)
        what = f"redispatch {ticket.department} -> {event.department}"
    elif action is A.reopen:
        change = _redispatched(config, ticket, ticket.department, now)
        change.update(reworks=ticket.reworks + 1, closed_at=None)
    return ticket.model_copy(update={**change, "version": ticket.version + 1,
                                     "history": _history(ticket, event, what)})


def _watch_if_red(config: Config, ticket: Ticket) -> Ticket:
    if ticket.severity is not Severity.red:
        return ticket
    watchers = list(dict.fromkeys([*ticket.watchers, *red_watchers(config, ticket.department, ticket.severity)]))
    return ticket.model_copy(update={"watchers": watchers})


def _occurrence(config: Config, ticket: Ticket, event: TicketEvent, now: datetime) -> Outcome:
    incident = event.incident
    if incident.incident_id in ticket.incident_ids:
        # Checked first: a redelivered occurrence must not open (or count in) a successor.
        return _replay(ticket, "occurrence already counted")
    if ticket.status is S.closed:
        # After closure the problem is back: a new ticket that points at the old one.
        if ticket.successor_ticket_id:
            forward = event.model_copy(update={"ticket_id": ticket.successor_ticket_id,
                                               "event_id": f"{event.event_id}>{ticket.successor_ticket_id}"})
            return Outcome(rejected="closed: forwarded to successor", follow_ups=[forward])
        successor = open_ticket(config, incident, route(config, incident.category, incident.severity,
                                                        incident.community), now, previous_ticket_id=ticket.ticket_id)
        closed = ticket.model_copy(update={
            "successor_ticket_id": successor.ticket_id, "version": ticket.version + 1,
            "history": [*ticket.history, HistoryEntry(at=now, by=PIPELINE, action="recurred",
                                                      note=f"new ticket {successor.ticket_id}",
                                                      event_id=event.event_id)]})
        opening = TicketEvent(event_id=f"open-{incident.incident_id}", ticket_id=successor.ticket_id,
                              action=A.open, by=PIPELINE, actor=PIPELINE, at=now, incident=incident, ticket=successor)
        return Outcome(ticket=closed, follow_ups=[opening])
    updated = add_occurrence(ticket, incident, now)
    if updated is None:
        return _replay(ticket, "occurrence already counted")
    return Outcome(ticket=_watch_if_red(config, updated))


def _escalate(config: Config, ticket: Ticket, event: TicketEvent) -> Outcome:
    step = escalation.still_due(config, ticket, event)
    if step is None:
        return Outcome(rejected="escalation no longer due")
    entry = HistoryEntry(at=event.at, by=PIPELINE, action=escalation.STEP_LABEL[step.step],
                         note=f"{step.stage} due {step.due.isoformat()}", event_id=event.event_id)
    # The mark on the board only climbs: a resolve-stage reminder after an accept-stage report
    # does not make the ticket look less urgent.
    level = max(ticket.escalation, step.step, key=escalation.LEVEL.__getitem__)
    return Outcome(ticket=ticket.model_copy(update={
        "escalation": level,
        "watchers": escalation.recipients(config, ticket, step.step),
        "version": ticket.version + 1,
        "history": [*ticket.history, entry],
    }))


def apply(config: Config, ticket: Ticket | None, event: TicketEvent, now: datetime) -> Outcome:
    if event.action is A.open:
        if ticket is not None:
            return _replay(ticket, "ticket already open")
        return Outcome(ticket=event.ticket)
    if ticket is None:
        return Outcome(rejected=f"unknown ticket {event.ticket_id}")
    if any(h.event_id == event.event_id for h in ticket.history if h.event_id):
        return _replay(ticket, "event already applied")
    if event.action is A.occurrence:
        return _occurrence(config, ticket, event, now)
    if event.action is A.escalate:
        return _escalate(config, ticket, event)
    if event.action not in TRANSITIONS:
        return Outcome(rejected=f"action {event.action.value} is not handled here")
    try:
        check(config, ticket, event)
    except Conflict as conflict:
        return Outcome(rejected=str(conflict))
    return Outcome(ticket=_transition(config, ticket, event, now))
