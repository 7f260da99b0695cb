"""Ticket state machine (GB/T 30428 closed loop): one TicketEvent applied to a ticket, no I/O.

dispatched -accept-> accepted -resolve-> resolved -verify(passed)-> closed
                                          resolved -verify(failed)-> dispatched (rework, 返工)
dispatched|accepted -return-> returned -redispatch-> dispatched (another department, 改派)
closed -reopen-> dispatched
closed (a hotline or app case, owed a 回访) -followup(unsatisfied)-> dispatched (发回重办)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from handlers import correlation, escalation, response
from handlers.deadlines import due, due_dates
from handlers.routing import red_watchers
from handlers.tickets import PIPELINE
from schemas.accounts import UserRole
from schemas.config import Config
from schemas.enums import OPS_CENTRE, Escalation, TicketStatus
from schemas.records import ExtensionRequest, Followup, HistoryEntry, Ticket, TicketAction, TicketEvent

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
    A.followup: (CENTRE, frozenset({S.closed})),
}
MAX_EXTENSION = timedelta(days=365)
NEEDS_NOTE = {A.resolve: "resolution", A.return_: "reason", A.extend: "reason"}


class Verdict(str, Enum):
    applied = "applied"
    # Already applied: nothing changes, and the ticket as it stands is written out again, since a
    # worker killed between its table write and its Redis write replays the input to finish them.
    replayed = "replayed"
    # Not allowed from the ticket's state, or for this actor: nothing changes.
    refused = "refused"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    # applied: the changed ticket; replayed: the ticket as it stands; refused: unchanged.
    ticket: Ticket
    reason: str = ""


def _applied(ticket: Ticket) -> Outcome:
    return Outcome(Verdict.applied, ticket)


def _refused(ticket: Ticket, why: str) -> Outcome:
    return Outcome(Verdict.refused, ticket, why)


class Conflict(Exception):
    """The action is not allowed for this actor or from the ticket's current state (HTTP 409)."""


def check(config: Config, ticket: Ticket, event: TicketEvent) -> None:
    """Raise Conflict if `event` may not be applied to `ticket` now."""
    who, states = TRANSITIONS[event.action]
    is_owner = event.actor == ticket.department
    is_centre = event.actor == OPS_CENTRE
    allowed = (OWNER in who and is_owner) or (CENTRE in who and is_centre) or (
        event.action is A.extend_decision and is_owner and _supervisor(config, event)) or (
        # 批示: the leadership's instruction on any ticket (handlers/permissions.py lets a leader comment).
        event.action is A.comment and event.actor == config.district.leadership)
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
        if event.until > ticket.resolve_due + MAX_EXTENSION:
            raise Conflict(f"an extension is at most {MAX_EXTENSION.days} days past the current resolve deadline")
        if ticket.extension is not None:
            raise Conflict("an extension request is already pending")
    if event.action is A.extend_decision and ticket.extension is None:
        raise Conflict("no extension request is pending")
    if event.action is A.extend_decision and _same_person(event, ticket.extension.user_id):
        raise Conflict("you asked for this extension: someone else decides it")
    if event.action is A.verify and event.passed is None:
        raise Conflict("verify needs 'passed'")
    if event.action is A.verify and _same_person(event, resolver(ticket)):
        raise Conflict("you resolved this ticket: someone else verifies it")
    # A department's shared machine token names no one: it may not stand in for the second person.
    if event.action is A.verify and _service(event) and _person(resolver(ticket)):
        raise Conflict("a person resolved this ticket: a duty officer verifies it, not a service credential")
    if event.action is A.extend_decision and _service(event) and _person(ticket.extension.user_id):
        raise Conflict("a person asked for this extension: a person decides it, not a service credential")
    if event.action is A.followup and ticket.followup_due is None:
        raise Conflict("no follow-up is owed on this ticket")
    if event.action is A.followup and event.result is None:
        raise Conflict("followup needs 'result'")
    if event.action is A.redispatch:
        if event.department not in config.district.departments:
            raise Conflict(f"unknown department {event.department!r}")
        if event.department == ticket.department and ticket.status is not S.returned:
            raise Conflict(f"ticket is already with {event.department}")


def _supervisor(config: Config, event: TicketEvent) -> bool:
    return (event.user is not None and event.user.role is UserRole.supervisor
            and config.district.sign_in.supervisors_decide_extensions)


def _same_person(event: TicketEvent, user_id: str | None) -> bool:
    return event.user is not None and user_id is not None and event.user.user_id == user_id


def _service(event: TicketEvent) -> bool:
    return event.user is not None and event.user.role is UserRole.service


def _person(user_id: str | None) -> bool:
    return user_id is not None and not user_id.startswith("service:")


def resolver(ticket: Ticket) -> str | None:
    """The user id behind the latest resolve: the one person who may not verify it."""
    for entry in reversed(ticket.history):
        if entry.action == A.resolve.value:
            return entry.user.user_id if entry.user is not None else None
    return None


def _history(ticket: Ticket, event: TicketEvent, what: str | None = None, note: str | None = None) -> list[HistoryEntry]:
    who = event.by if event.actor in (PIPELINE, event.by) else f"{event.by} ({event.actor})"
    entry = HistoryEntry(at=event.at, by=who, action=what or event.action.value,
                         note=event.note if note is None else note, event_id=event.event_id, user=event.user)
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
    what = note = None
    if action is A.accept:
        change = {"status": S.accepted, "accepted_at": now, "escalation": Escalation.none}
    elif action is A.resolve:
        # A pending extension is moot once the work is reported done (and could never be decided).
        change = {"status": S.resolved, "resolved_at": now, "extension": None}
    elif action is A.return_:
        change = {"status": S.returned, "returns": ticket.returns + 1, "watchers": [OPS_CENTRE], "extension": None}
    elif action is A.extend:
        change = {"extension": ExtensionRequest(by=event.by, until=event.until, reason=event.note, requested_at=now,
                                                   user_id=event.user.user_id if event.user else None)}
    elif action is A.extend_decision:
        what = "extension approved" if event.approve else "extension rejected"
        change = {"extension": None}
        if event.approve:
            change["resolve_due"] = ticket.extension.until
            change["escalation"] = Escalation.none
            what += f" until {ticket.extension.until.isoformat()}"
    elif action is A.verify:
        if event.passed:
            change, what = {"status": S.closed, "closed_at": now, **_owed_followup(config, ticket, now)}, \
                "verified and closed"
        else:
            change = _redispatched(config, ticket, ticket.department, now)
            change["reworks"] = ticket.reworks + 1
            what = "rework"
    elif action is A.redispatch:
        change = _redispatched(config, ticket, event.department, now)
        note = f"{ticket.department} -> {event.department}" + (f": {event.note}" if event.note else "")
    elif action is A.followup:
        change, what = _followed_up(config, ticket, event, now)
    elif action is A.reopen:
        change = _redispatched(config, ticket, ticket.department, now)
        change.update(reworks=ticket.reworks + 1, closed_at=None)
    return ticket.model_copy(update={**change, "version": ticket.version + 1,
                                     "history": _history(ticket, event, what, note)})


def _owed_followup(config: Config, ticket: Ticket, closed_at: datetime) -> dict:
    """A hotline or app case is owed a call to the citizen (回访) once verified."""
    rules = config.routing.followup
    if ticket.channel not in rules.channels:
        return {}
    return {"followup_due": due(config, closed_at, rules.within), "rating": None}


FOLLOWUP_LABEL = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意",
                  "unreachable": "未接通"}


def _followed_up(config: Config, ticket: Ticket, event: TicketEvent, now: datetime) -> tuple[dict, str]:
    """satisfied / basically: rated, done. unsatisfied: 发回重办 to the same department with fresh
    deadlines, and the nth time (config) also 提级督办 to the leadership. unreachable: try again
    within the same time, and after the nth call (config) close unrated."""
    rules = config.routing.followup
    followups = [*ticket.followups, Followup(at=now, by=event.by, result=event.result, note=event.note)]
    times = sum(f.result == event.result for f in followups)
    what = f"回访 followup: {FOLLOWUP_LABEL[event.result]}"
    change: dict = {"followups": followups}
    if event.result in ("satisfied", "basically_satisfied"):
        change.update(followup_due=None, rating=event.result)
    elif event.result == "unsatisfied":
        change.update(_redispatched(config, ticket, ticket.department, now), reworks=ticket.reworks + 1,
                      closed_at=None, followup_due=None, rating="unsatisfied")
        what += ", 发回重办 sent back"
        if times >= rules.escalate_after_unsatisfied:
            leadership = config.district.leadership
            change.update(escalation=Escalation.escalated,
                          watchers=list(dict.fromkeys([*change["watchers"], OPS_CENTRE, leadership])))
            what += f", 提级督办 escalated to {leadership} ({times} times unsatisfied)"
    elif times >= rules.close_after_unreachable:
        change.update(followup_due=None, rating="unrated")
        what += f", 不评价 closed unrated ({times} calls)"
    else:
        change["followup_due"] = due(config, now, rules.within)
    return change, what


def _escalate(config: Config, ticket: Ticket, event: TicketEvent) -> Outcome:
    step = escalation.still_due(config, ticket, event)
    if step is None:
        return _refused(ticket, "escalation no longer due")
    entry = HistoryEntry(at=event.at, by=PIPELINE, action=escalation.STEP_LABEL[step.step],
                         note=f"{step.stage} due {step.due.isoformat()}", event_id=event.event_id)
    # The mark on the board only climbs: a resolve-stage reminder after an accept-stage report
    # does not make the ticket look less urgent.
    level = max(ticket.escalation, step.step, key=escalation.LEVEL.__getitem__)
    return _applied(ticket.model_copy(update={
        "escalation": level,
        "watchers": escalation.recipients(config, ticket, step.step, step.stage),
        "version": ticket.version + 1,
        "history": [*ticket.history, entry],
    }))


def apply(config: Config, ticket: Ticket, event: TicketEvent, now: datetime) -> Outcome:
    """One command on a ticket. `now` is the command's own time (event.at), so a replay applies it
    exactly as the first run did."""
    if any(h.event_id == event.event_id for h in ticket.history if h.event_id):
        return Outcome(Verdict.replayed, ticket, "event already applied")
    if event.action is A.escalate:
        return _escalate(config, ticket, event)
    if event.action is A.clear:
        if ticket.status is S.closed:
            return _refused(ticket, "ticket is closed")
        return _applied(ticket.model_copy(update={"source_cleared_at": event.at, "version": ticket.version + 1,
                                                  "history": _history(ticket, event, "source_cleared")}))
    if event.action is A.recover:
        return _applied(ticket.model_copy(update={"version": ticket.version + 1, "history": _history(
            ticket, event, "device_recovered")}))
    if event.action is A.relate:
        changed = correlation.related(config, ticket, event)
        return _refused(ticket, changed) if isinstance(changed, str) else _applied(changed)
    if event.action is A.respond:
        changed = response.retroactively(config, ticket, event)
        return _refused(ticket, changed) if isinstance(changed, str) else _applied(changed)
    if event.action not in TRANSITIONS:
        return _refused(ticket, f"action {event.action.value} is not handled here")
    try:
        check(config, ticket, event)
    except Conflict as conflict:
        return _refused(ticket, str(conflict))
    return _applied(_transition(config, ticket, event, now))
