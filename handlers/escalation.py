"""The escalation ladder (催办 -> 督办 -> 通报): which steps are due for a ticket now, no I/O.

Each step is identified by ticket, stage, step and the deadline it is about, so it is taken
exactly once per deadline however many workers notice it; a moved deadline (extension, rework)
is a new deadline with its own ladder.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.tickets import PIPELINE
from schemas.config import Config
from schemas.enums import OPS_CENTRE, Escalation, TicketStatus
from schemas.records import HistoryKind, SupportStatus, Ticket, TicketAction, TicketEvent

FOLLOWUP = "followup"  # the stage of the centre's own deadline: the follow-up call after closure
RULING = "ruling"  # the centre's other own deadline: the ruling on a disputed dispatch (派单异议)
# A supporting department's part (协办): its accept and feedback deadlines, each with a ladder of its own.
SUPPORT_ACCEPT, SUPPORT_FEEDBACK = "support_accept", "support_feedback"
STEPS = (Escalation.reminded, Escalation.escalated, Escalation.reported)
LEVEL = {Escalation.none: 0, Escalation.reminded: 1, Escalation.escalated: 2, Escalation.reported: 3}
STEP_LABEL = {Escalation.reminded: "催办 reminder", Escalation.escalated: "督办 escalation",
              Escalation.reported: "通报 report"}
KIND_OF_STEP = {Escalation.reminded: HistoryKind.reminded, Escalation.escalated: HistoryKind.escalated,
                Escalation.reported: HistoryKind.reported}


@dataclass(frozen=True)
class Step:
    stage: str  # "accept", "resolve", FOLLOWUP, RULING, SUPPORT_ACCEPT or SUPPORT_FEEDBACK
    step: Escalation
    due: datetime
    at: datetime
    # Whose deadline a supporting part's step is about (parts asked together share their deadlines).
    department: str | None = None

    @property
    def event_id(self) -> str:
        part = f"{self.department}-" if self.department else ""
        return f"esc-{self.stage}-{part}{self.step.value}-{int(self.due.timestamp())}"


# History entries that (re)start the deadlines from their own time (lifecycle: dispatch, rework, redispatch,
# reopen, a dispute's ruling); an extension keeps the start and moves only the resolve deadline.
RESTARTS = frozenset({HistoryKind.dispatch, HistoryKind.rework, HistoryKind.redispatch, HistoryKind.reopen,
                      HistoryKind.dispute_upheld, HistoryKind.dispute_reassigned})


def deadlines_set_at(ticket: Ticket) -> datetime:
    """When the current deadlines started: the last (re)dispatch, else the first dispatch."""
    return max((h.at for h in ticket.history if h.kind in RESTARTS),
               default=ticket.dispatched_at)


def ladder(config: Config, ticket: Ticket) -> list[Step]:
    """Every step of the ladder for the deadlines that apply to the ticket's current state: the
    department's accept and resolve deadlines, each open supporting part's accept and feedback deadlines,
    the centre's ruling on a dispute, or the centre's follow-up (回访) after closure."""
    # Measured from the current deadlines' start: after a rework or redispatch the time allowed is
    # the new span, not the span from the first dispatch (which made the reminder fire at once).
    start = deadlines_set_at(ticket)
    stages = []
    if ticket.status is TicketStatus.dispatched:
        stages.append(("accept", ticket.accept_due, start))
    if ticket.status in (TicketStatus.dispatched, TicketStatus.accepted):
        stages.append(("resolve", ticket.resolve_due, start))
    if ticket.status is TicketStatus.closed and ticket.followup_due is not None:
        stages.append((FOLLOWUP, ticket.followup_due, followup_set_at(ticket)))
    if ticket.status is TicketStatus.returned and ticket.dispute is not None:
        stages.append((RULING, ticket.dispute.rule_due, ticket.dispute.at))
    parts = []
    if ticket.status is not TicketStatus.closed:
        for part in ticket.support:
            if part.status is SupportStatus.asked:
                parts.append((SUPPORT_ACCEPT, part.accept_due, part.asked_at, part.department))
            if part.status is not SupportStatus.fed_back:
                parts.append((SUPPORT_FEEDBACK, part.due, part.asked_at, part.department))
    rules = config.routing.escalation
    steps = []
    for stage, due, begun, department in [(*s, None) for s in stages] + parts:
        allowed = max(due - begun, timedelta(0))
        steps += [
            Step(stage, Escalation.reminded, due, due - allowed * rules.remind_before, department),
            Step(stage, Escalation.escalated, due, due, department),
            Step(stage, Escalation.reported, due, due + allowed * rules.report_after, department),
        ]
    return steps


def followup_set_at(ticket: Ticket) -> datetime:
    """When the owed follow-up's time started: the last unreachable call, else the closure."""
    return max([ticket.closed_at, *(f.at for f in ticket.followups
                                    if f.result == "unreachable" and f.at >= ticket.closed_at)])


LADDER = frozenset(KIND_OF_STEP.values())


def taken(ticket: Ticket) -> set[str]:
    """The ladder steps already on the ticket (each step's event id names its stage, rung and deadline)."""
    return {h.event_id for h in ticket.history if h.kind in LADDER}


def due_steps(config: Config, ticket: Ticket, now: datetime) -> list[Step]:
    done = taken(ticket)
    return [s for s in ladder(config, ticket) if s.at <= now and s.event_id not in done]


def next_due(config: Config, ticket: Ticket) -> datetime | None:
    """When the ticket's next untaken step falls due; None when nothing more can fall due. Kept in
    the store's due index, so the escalation timer reads only the tickets that are due."""
    done = taken(ticket)
    return min((s.at for s in ladder(config, ticket) if s.event_id not in done), default=None)


class Dues:
    """next_due per ticket version, for one worker: a version never changes (exact replays), and the
    ticket step checks each ticket it writes before the store indexes it, so each version is laddered
    once. Keeps the latest `size` versions."""

    def __init__(self, config: Config, size: int = 4096):
        self.config, self.size = config, size
        self._due: dict[tuple[str, int], datetime | None] = {}

    def __call__(self, ticket: Ticket) -> datetime | None:
        version = (ticket.ticket_id, ticket.version)
        if version in self._due:
            return self._due[version]
        due = self._due[version] = next_due(self.config, ticket)
        if len(self._due) > self.size:
            del self._due[next(iter(self._due))]
        return due


def escalation_event(ticket: Ticket, step: Step, now: datetime) -> TicketEvent:
    return TicketEvent(event_id=step.event_id, ticket_id=ticket.ticket_id, action=TicketAction.escalate,
                       by=PIPELINE, actor=PIPELINE, at=now, stage=step.stage, step=step.step, until=step.due)


def still_due(config: Config, ticket: Ticket, event: TicketEvent) -> Step | None:
    """The step an escalate event stands for, if the ticket still warrants it."""
    for step in ladder(config, ticket):
        if step.event_id == event.event_id and step.at <= event.at:
            return step
    return None


def recipients(config: Config, ticket: Ticket, step: Escalation, stage: str,
               department: str | None = None) -> list[str]:
    """Who else sees the ticket after this step: the holder's supervisor and the centre on 督办, the
    leadership on 通报. The follow-up and the ruling are the centre's own deadlines: its supervisor, then the
    leadership; a supporting part's are its `department`'s."""
    holder = OPS_CENTRE if stage in (FOLLOWUP, RULING) else department or ticket.department
    extra: list[str] = []
    if step in (Escalation.escalated, Escalation.reported):
        supervisor = config.district.departments[holder].supervisor
        extra += [d for d in (supervisor, OPS_CENTRE) if d and d != holder]
    if step is Escalation.reported:
        extra.append(config.district.leadership)
    return [d for d in dict.fromkeys([*ticket.watchers, *extra]) if d != ticket.department]
