"""Ticket state machine (GB/T 30428 closed loop): one TicketEvent applied to a ticket, no I/O.

dispatched -accept-> accepted -resolve-> resolved -verify(passed)-> closed
                                          resolved -verify(failed)-> dispatched (rework, 返工)
dispatched|accepted -return-> returned -redispatch-> dispatched (another department, 改派)
closed -reopen-> dispatched
closed (a hotline or app case, owed a 回访) -followup(unsatisfied)-> dispatched (发回重办)
dispatched|accepted -dispute-> returned (派单异议) -rule(uphold)-> dispatched (the same department, fresh deadlines)
                                                 -rule(reassign)-> dispatched (the named department)
open: add_support (the centre), support_accept and support_feedback (a supporting department, 协办: handlers/joint.py)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from handlers import correlation, escalation, joint, plans, response
from handlers.deadlines import due, due_dates
from handlers.routing import red_watchers
from handlers.tickets import PIPELINE
from schemas.accounts import Actor, UserRole
from schemas.config import Config
from schemas.enums import OPS_CENTRE, Escalation, TicketStatus
from schemas.evidence import EvidenceStage
from schemas.records import ExtensionRequest, Followup, HistoryEntry, HistoryKind, Ruling, SupportStatus, Ticket, \
    TicketAction, TicketEvent

A = TicketAction
S = TicketStatus
K = HistoryKind

# action -> (who may do it, the states it may start from)
OWNER, CENTRE, SUPPORT = "owner", "centre", "support"
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
    A.acknowledge: (OWNER + "|" + CENTRE, frozenset(S) - {S.closed}),
    A.evidence: (OWNER + "|" + CENTRE, frozenset(S) - {S.closed}),
    A.followup: (CENTRE, frozenset({S.closed})),
    A.add_support: (CENTRE, frozenset(S) - {S.closed}),
    A.support_accept: (SUPPORT, frozenset(S) - {S.closed}),
    A.support_feedback: (SUPPORT, frozenset(S) - {S.closed}),
    A.dispute: (OWNER, frozenset({S.dispatched, S.accepted})),
    A.rule: (CENTRE, frozenset({S.returned})),
}
MAX_EXTENSION = timedelta(days=365)
NEEDS_NOTE = {A.resolve: "resolution", A.return_: "reason", A.extend: "reason", A.dispute: "reason",
              A.support_feedback: "note"}


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
        event.action in (A.comment, A.acknowledge) and event.actor == config.district.leadership) or (
        SUPPORT in who and joint.part_of(ticket, event.actor) is not None)
    if not allowed:
        role = {CENTRE: "the operations centre", SUPPORT: "a supporting department"}.get(
            who, f"the owning department ({ticket.department})")
        if event.action is A.verify and is_owner:
            raise Conflict("a department cannot verify its own work; the operations centre verifies")
        raise Conflict(f"only {role} may {event.action.value} this ticket")
    if ticket.status not in states:
        raise Conflict(f"cannot {event.action.value} a ticket that is {ticket.status.value}")
    if event.action in NEEDS_NOTE and not event.note.strip():
        raise Conflict(f"{event.action.value} needs a {NEEDS_NOTE[event.action]}")
    if event.action is A.evidence and event.photo is None:
        raise Conflict("evidence needs 'photo'")
    if event.action is A.resolve and ticket.category in config.routing.evidence.after_photo_to_resolve \
            and not after_photo(ticket, event.at):
        raise Conflict(AFTER_PHOTO_NEEDED)
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
    if event.action is A.verify:
        _second_person(resolved_by(ticket), event)
    if event.action is A.extend_decision and _service(event) and _asked_by_person(ticket.extension):
        raise Conflict("a person asked for this extension: a person decides it, not a service credential")
    if event.action is A.followup and ticket.followup_due is None:
        raise Conflict("no follow-up is owed on this ticket")
    if event.action is A.followup and event.result is None:
        raise Conflict("followup needs 'result'")
    if event.action is A.verify and event.passed:
        _every_part_fed_back(config, ticket, event)
    if event.action in (A.add_support, A.support_accept, A.support_feedback):
        _support_problem(config, ticket, event)
    if event.action in (A.dispute, A.rule):
        _dispute_problem(config, ticket, event)
    if event.action is A.redispatch:
        if ticket.dispute is not None and _service(event):
            raise Conflict(RULED_BY_A_PERSON)
        if event.department not in config.district.departments:
            raise Conflict(f"unknown department {event.department!r}")
        if event.department == ticket.department and ticket.status is not S.returned:
            raise Conflict(f"ticket is already with {event.department}")


def _every_part_fed_back(config: Config, ticket: Ticket, event: TicketEvent) -> None:
    """The centre closes a jointly handled ticket once every supporting department has given feedback, or
    overrides that with a reason (the note), recorded on the closing entry."""
    waiting = joint.awaiting_feedback(ticket)
    if not waiting or (event.override and event.note.strip()):
        return
    if event.override:
        raise Conflict("closing without every supporting department's feedback needs a note saying why")
    names = "、".join(config.district.departments[d].name if d in config.district.departments else d for d in waiting)
    raise Conflict(f"协办单位{names}尚未反馈，暂不能核验结案 (supporting departments have not given feedback: "
                   f"{', '.join(waiting)}; verify with 'override' and a note to close anyway)")


def _support_problem(config: Config, ticket: Ticket, event: TicketEvent) -> None:
    if event.action is A.add_support:
        if not event.departments:
            raise Conflict("add_support needs 'departments'")
        for department in event.departments:
            if department not in config.district.departments:
                raise Conflict(f"unknown department {department!r}")
            if department == ticket.department:
                raise Conflict(f"{department} leads this ticket")
            if joint.part_of(ticket, department) is not None:
                raise Conflict(f"{department} already supports this ticket")
        return
    part = joint.part_of(ticket, event.actor)
    if event.action is A.support_accept and part.status is not SupportStatus.asked:
        raise Conflict("your part of this ticket is already accepted")
    if event.action is A.support_feedback and part.status is SupportStatus.asked:
        raise Conflict("accept your part of this ticket before giving feedback")
    if event.action is A.support_feedback and part.status is SupportStatus.fed_back:
        raise Conflict("your feedback on this ticket is already given")


def _dispute_problem(config: Config, ticket: Ticket, event: TicketEvent) -> None:
    if event.department is not None and event.department not in config.district.departments:
        raise Conflict(f"unknown department {event.department!r}")
    if event.action is A.dispute:
        if event.department == ticket.department:
            raise Conflict("a dispute suggests another department than the disputing one")
        return
    if ticket.dispute is None:
        raise Conflict("no dispute is pending on this ticket")
    if _service(event):
        raise Conflict(RULED_BY_A_PERSON)
    if event.decision is None:
        raise Conflict("rule needs 'decision' (uphold or reassign)")
    if event.decision is Ruling.reassign and event.department is None:
        raise Conflict("reassigning needs 'department'")
    if event.decision is Ruling.reassign and event.department == ticket.dispute.department:
        raise Conflict(f"the ticket is already with {event.department}: to send it back, uphold the dispatch")
    if event.decision is Ruling.uphold and event.department not in (None, ticket.dispute.department):
        raise Conflict("upholding sends the ticket back to the disputing department: name no other")


RULED_BY_A_PERSON = "派单异议由值班员本人裁定 (a duty officer rules on a dispute, not a service credential)"
AFTER_PHOTO_NEEDED = ("此类工单须先上传处置后照片才能办结 (a ticket of this category is resolved only with a photo "
                      "taken after the work: upload one with stage 'after' first)")


def after_photo(ticket: Ticket, by: datetime) -> bool:
    """Whether a photo of stage `after` was uploaded since the ticket was last accepted (a photo from before a
    rework shows the work that failed verification), at or before `by`, the resolve's own time: a resolve
    refused for want of one stays refused when it is processed again after a photo came."""
    for entry in reversed(ticket.history):
        if entry.kind is K.evidence and entry.at > by:
            continue
        if entry.kind is K.evidence and entry.photo is not None and entry.photo.stage is EvidenceStage.after:
            return True
        if entry.kind is K.accept:
            return False
    return False


def _supervisor(config: Config, event: TicketEvent) -> bool:
    return (event.user is not None and event.user.role is UserRole.supervisor
            and config.district.sign_in.supervisors_decide_extensions)


def _same_person(event: TicketEvent, user_id: str | None) -> bool:
    return event.user is not None and user_id is not None and event.user.user_id == user_id


def _service(event: TicketEvent) -> bool:
    return event.user is not None and event.user.role is UserRole.service


def _asked_by_person(request: ExtensionRequest) -> bool:
    return request.user_id is not None and not request.by_service


def _second_person(resolving: Actor | None, event: TicketEvent) -> None:
    """The closed loop's second person. A department's shared machine token names no one, so it never
    stands in for either person: what a person resolved, a person verifies; what a service credential
    resolved, a person verifies too, and not one recorded as holding that credential (they may have
    resolved it through the token). Whoever is not recorded as a holder counts as not holding it."""
    if resolving is None:
        return
    if resolving.role is not UserRole.service:
        if _service(event):
            raise Conflict("a person resolved this ticket: a duty officer verifies it, not a service credential")
        return
    if event.user is None or event.user.role is UserRole.service:
        raise Conflict(f"{resolving.name}办结的工单须由值班员本人核验，不能再用接口凭据核验 "
                       "(a service credential resolved this ticket: a person verifies it, not a service credential)")
    if resolving.department in event.holds:
        raise Conflict(f"您是{resolving.name}的持有人，它办结的工单须由未持有它的值班员核验 "
                       "(you hold the service credential that resolved this ticket: someone who does not hold it "
                       "verifies it)")


def resolved_by(ticket: Ticket) -> Actor | None:
    """Who the latest resolve names (None for a resolve from before sign-in)."""
    for entry in reversed(ticket.history):
        if entry.kind is K.resolve:
            return entry.user
    return None


def resolver(ticket: Ticket) -> str | None:
    """The user id behind the latest resolve: the one person who may not verify it."""
    resolving = resolved_by(ticket)
    return resolving.user_id if resolving is not None else None


# The kind of entry each transition makes, where it does not depend on the outcome (verify, extend_decision).
KIND_OF_ACTION = {A.accept: K.accept, A.resolve: K.resolve, A.return_: K.return_, A.extend: K.extension_requested,
                  A.comment: K.comment, A.acknowledge: K.acknowledged, A.redispatch: K.redispatch, A.reopen: K.reopen,
                  A.followup: K.followup, A.evidence: K.evidence, A.add_support: K.support_added,
                  A.support_accept: K.support_accepted, A.support_feedback: K.support_feedback, A.dispute: K.disputed}


def _history(ticket: Ticket, event: TicketEvent, kind: HistoryKind, what: str | None = None,
             **details) -> list[HistoryEntry]:
    who = event.by if event.actor in (PIPELINE, event.by) else f"{event.by} ({event.actor})"
    entry = HistoryEntry(at=event.at, by=who, action=what or event.action.value,
                         note=event.note, event_id=event.event_id, user=event.user,
                         kind=kind, actor=None if event.actor == PIPELINE else event.actor, **details)
    return [*ticket.history, entry]


def _redispatched(config: Config, ticket: Ticket, department: str, now: datetime) -> dict:
    accept_due, resolve_due = due_dates(config, ticket.category, ticket.severity, now)
    watchers = list(red_watchers(config, department, ticket.severity))
    return {"department": department, "watchers": watchers, "status": S.dispatched, "accept_due": accept_due,
            "resolve_due": resolve_due, "accepted_at": None, "resolved_at": None, "extension": None,
            "escalation": Escalation.none, "dispute": None,
            # A supporting department the ticket is sent to leads it now: its part is the whole.
            "support": [p for p in ticket.support if p.department != department]}


def _transition(config: Config, ticket: Ticket, event: TicketEvent, now: datetime) -> Ticket:
    action = event.action
    change: dict = {}
    what = None
    kind = KIND_OF_ACTION.get(action)  # verify and extend_decision set theirs below
    details: dict = {}
    if action is A.accept:
        change = {"status": S.accepted, "accepted_at": now, "escalation": Escalation.none}
    elif action is A.resolve:
        # A pending extension is moot once the work is reported done (and could never be decided).
        change = {"status": S.resolved, "resolved_at": now, "extension": None}
    elif action is A.return_:
        change = {"status": S.returned, "returns": ticket.returns + 1, "watchers": [OPS_CENTRE], "extension": None}
    elif action is A.extend:
        change = {"extension": ExtensionRequest(by=event.by, until=event.until, reason=event.note, requested_at=now,
                                                   user_id=event.user.user_id if event.user else None,
                                                   by_service=_service(event))}
        details["until"] = event.until
    elif action is A.extend_decision:
        what = "extension approved" if event.approve else "extension rejected"
        kind = K.extension_approved if event.approve else K.extension_rejected
        details["until"] = ticket.extension.until
        change = {"extension": None}
        if event.approve:
            change["resolve_due"] = ticket.extension.until
            change["escalation"] = Escalation.none
            what += f" until {ticket.extension.until.isoformat()}"
    elif action is A.verify:
        if event.passed:
            change, what = {"status": S.closed, "closed_at": now, **_owed_followup(config, ticket, now)}, \
                "verified and closed"
            kind = K.closed
            # Closed before every supporting department's feedback: the override is on the record.
            details["overridden"] = joint.awaiting_feedback(ticket) or None
        else:
            change = _redispatched(config, ticket, ticket.department, now)
            change["reworks"] = ticket.reworks + 1
            what = "rework"
            kind = K.rework
    elif action is A.redispatch:
        change = _redispatched(config, ticket, event.department, now)
        details.update(from_department=ticket.department, department=event.department)
        # Sending a disputed ticket on is the centre's ruling on the dispute, counted as one: back to the
        # disputing department upholds the dispatch, anywhere else reassigns it.
        if ticket.dispute is not None:
            kind = K.dispute_upheld if event.department == ticket.dispute.department else K.dispute_reassigned
    elif action is A.followup:
        change, what = _followed_up(config, ticket, event, now)
        details["result"] = event.result
    elif action is A.reopen:
        change = _redispatched(config, ticket, ticket.department, now)
        change.update(reworks=ticket.reworks + 1, closed_at=None)
    elif action is A.evidence:
        details["photo"] = event.photo
    elif action is A.add_support:
        added = response.parts_under(
            joint.parts(config, ticket.category, ticket.severity, event.departments, ticket.department, now),
            response.effects(config, ticket.response_level))
        change = {"support": [*ticket.support, *added]}
        details["departments"] = [p.department for p in added]
    elif action in (A.support_accept, A.support_feedback):
        part = joint.part_of(ticket, event.actor)
        if action is A.support_accept:
            part = part.model_copy(update={"status": SupportStatus.accepted, "accepted_at": now})
        else:
            part = part.model_copy(update={"status": SupportStatus.fed_back, "feedback": event.note,
                                           "fed_back_at": now})
        change = {"support": joint.with_part(ticket, part)}
        details["department"] = event.actor
    elif action is A.dispute:
        change = {"status": S.returned, "watchers": [OPS_CENTRE], "extension": None,
                  "dispute": joint.dispute(config, ticket.department, event.note, event.department, now)}
        details["department"] = event.department
    elif action is A.rule:
        disputing = ticket.dispute.department
        if event.decision is Ruling.uphold:
            change, kind = _redispatched(config, ticket, disputing, now), K.dispute_upheld
            details["department"] = disputing
        else:
            change, kind = _redispatched(config, ticket, event.department, now), K.dispute_reassigned
            details.update(from_department=disputing, department=event.department)
    return ticket.model_copy(update={**change, "version": ticket.version + 1,
                                     "history": _history(ticket, event, kind, what, **details)})


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


def _late(ticket: Ticket, step: escalation.Step) -> str:
    """The department whose deadline a ladder step is about: a supporting part's, the centre for its ruling
    on a dispute, else the holder."""
    if step.department is not None:
        return step.department
    return OPS_CENTRE if step.stage == escalation.RULING else ticket.department


def _escalate(config: Config, ticket: Ticket, event: TicketEvent) -> Outcome:
    step = escalation.still_due(config, ticket, event)
    if step is None:
        return _refused(ticket, "escalation no longer due")
    entry = HistoryEntry(at=event.at, by=PIPELINE, action=escalation.STEP_LABEL[step.step],
                         note=f"{step.stage} due {step.due.isoformat()}", event_id=event.event_id,
                         kind=escalation.KIND_OF_STEP[step.step], stage=step.stage, due=step.due,
                         department=_late(ticket, step))
    # The mark on the board only climbs: a resolve-stage reminder after an accept-stage report
    # does not make the ticket look less urgent.
    level = max(ticket.escalation, step.step, key=escalation.LEVEL.__getitem__)
    return _applied(ticket.model_copy(update={
        "escalation": level,
        "watchers": escalation.recipients(config, ticket, step.step, step.stage, step.department),
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
                                                  "history": _history(ticket, event, K.source_cleared,
                                                                                     "source_cleared")}))
    if event.action is A.recover:
        return _applied(ticket.model_copy(update={"version": ticket.version + 1, "history": _history(
            ticket, event, K.device_recovered, "device_recovered")}))
    if event.action is A.relate:
        changed = correlation.related(config, ticket, event)
        return _refused(ticket, changed) if isinstance(changed, str) else _applied(changed)
    if event.action is A.respond:
        changed = response.retroactively(config, ticket, event)
        return _refused(ticket, changed) if isinstance(changed, str) else _applied(changed)
    if event.action is A.check:
        changed = plans.ticked(ticket, event)
        return _refused(ticket, changed) if isinstance(changed, str) else _applied(changed)
    if event.action in (A.assign_resource, A.release_resource):
        # Decided at the resource's key (handlers/resources.py): here only written into the history.
        kind = K.resource_assigned if event.action is A.assign_resource else K.resource_released
        return _applied(ticket.model_copy(update={"version": ticket.version + 1, "history": _history(
            ticket, event, kind, event.action.value, resource_id=event.resource_id)}))
    if event.action not in TRANSITIONS:
        return _refused(ticket, f"action {event.action.value} is not handled here")
    try:
        check(config, ticket, event)
    except Conflict as conflict:
        return _refused(ticket, str(conflict))
    return _applied(_transition(config, ticket, event, now))
