"""Ticket state machine: one TicketEvent applied to the current ticket, no I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from handlers.tickets import add_occurrence
from schemas.config import Config
from schemas.enums import Severity
from schemas.records import Ticket, TicketAction, TicketEvent


@dataclass(frozen=True)
class Outcome:
    ticket: Ticket | None = None
    # Why nothing changed: a replay, or a transition that is not allowed from the current state.
    rejected: str | None = None
    follow_ups: list[TicketEvent] = field(default_factory=list)


def _watch_if_red(config: Config, ticket: Ticket) -> Ticket:
    if ticket.severity is not Severity.red:
        return ticket
    watchers = list(dict.fromkeys([*ticket.watchers, *(d for d in config.routing.red_also if d != ticket.department)]))
    return ticket.model_copy(update={"watchers": watchers})


def apply(config: Config, ticket: Ticket | None, event: TicketEvent, now: datetime) -> Outcome:
    if event.action is TicketAction.open:
        if ticket is not None:
            return Outcome(rejected="replay: ticket already open")
        return Outcome(ticket=event.ticket)
    if ticket is None:
        return Outcome(rejected=f"unknown ticket {event.ticket_id}")
    if event.action is TicketAction.occurrence:
        updated = add_occurrence(ticket, event.incident, now)
        if updated is None:
            return Outcome(rejected="replay: occurrence already counted")
        return Outcome(ticket=_watch_if_red(config, updated))
    return Outcome(rejected=f"action {event.action.value} not supported")
