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
from schemas.enums import Escalation, TicketStatus
from schemas.records import Ticket, TicketAction, TicketEvent

STEPS = (Escalation.reminded, Escalation.escalated, Escalation.reported)
LEVEL = {Escalation.none: 0, Escalation.reminded: 1, Escalation.escalated: 2, Escalation.reported: 3}
STEP_LABEL = {Escalation.reminded: "催办 reminder", Escalation.escalated: "督办 escalation",
              Escalation.reported: "通报 report"}


@dataclass(frozen=True)
class Step:
    stage: str  # "accept" or "resolve"
    step: Escalation
    due: datetime
    at: datetime

    @property
    def event_id(self) -> str:
        return f"esc-{self.stage}-{self.step.value}-{int(self.due.timestamp())}"


# History actions that (re)start the deadlines from their own time (lifecycle: dispatch, rework,
# "redispatch a -> b", reopen); an extension keeps the start and moves only the resolve deadline.
RESTARTS = ("dispatch", "rework", "redispatch", "reopen")


def deadlines_set_at(ticket: Ticket) -> datetime:
    """When the current deadlines started: the last (re)dispatch, else the first dispatch."""
    return max((h.at for h in ticket.history if h.action.split(" ", 1)[0] in RESTARTS),
               default=ticket.dispatched_at)


def ladder(config: Config, ticket: Ticket) -> list[Step]:
    """Every step of the ladder for the deadlines that apply to the ticket's current state."""
    stages = []
    if ticket.status is TicketStatus.dispatched:
        stages.append(("accept", ticket.accept_due))
    if ticket.status in (TicketStatus.dispatched, TicketStatus.accepted):
        stages.append(("resolve", ticket.resolve_due))
    rules = config.routing.escalation
    steps = []
    # Measured from the current deadlines' start: after a rework or redispatch the time allowed is
    # the new span, not the span from the first dispatch (which made the reminder fire at once).
    start = deadlines_set_at(ticket)
    for stage, due in stages:
        allowed = max(due - start, timedelta(0))
        steps += [
            Step(stage, Escalation.reminded, due, due - allowed * rules.remind_before),
            Step(stage, Escalation.escalated, due, due),
            Step(stage, Escalation.reported, due, due + allowed * rules.report_after),
        ]
    return steps


def taken(ticket: Ticket) -> set[str]:
    return {h.event_id for h in ticket.history if h.event_id.startswith("esc-")}


def due_steps(config: Config, ticket: Ticket, now: datetime) -> list[Step]:
    done = taken(ticket)
    return [s for s in ladder(config, ticket) if s.at <= now and s.event_id not in done]


def next_due(config: Config, ticket: Ticket) -> datetime | None:
    """When the ticket's next untaken step falls due; None when nothing more can fall due. Kept in
    the store's due index, so the escalation timer reads only the tickets that are due."""
    done = taken(ticket)
    return min((s.at for s in ladder(config, ticket) if s.event_id not in done), default=None)


def escalation_event(ticket: Ticket, step: Step, now: datetime) -> TicketEvent:
    return TicketEvent(event_id=step.event_id, ticket_id=ticket.ticket_id, action=TicketAction.escalate,
                       by=PIPELINE, actor=PIPELINE, at=now, stage=step.stage, step=step.step, until=step.due)


def still_due(config: Config, ticket: Ticket, event: TicketEvent) -> Step | None:
    """The step an escalate event stands for, if the ticket still warrants it."""
    for step in ladder(config, ticket):
        if step.event_id == event.event_id and step.at <= event.at:
            return step
    return None


def recipients(config: Config, ticket: Ticket, step: Escalation) -> list[str]:
    """Who else sees the ticket after this step: supervisor and centre on 督办, leadership on 通报."""
    extra: list[str] = []
    if step in (Escalation.escalated, Escalation.reported):
        supervisor = config.district.departments[ticket.department].supervisor
        extra += [d for d in (supervisor, "ops_centre") if d]
    if step is Escalation.reported:
        extra.append(config.district.leadership)
    return [d for d in dict.fromkeys([*ticket.watchers, *extra]) if d != ticket.department]
