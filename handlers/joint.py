"""Joint handling (主办/协办) and disputed dispatch (派单异议) on one ticket, no I/O.

A ticket's lead is its `department`; supporting departments each hold a part (`Ticket.support`), set at
opening for the categories routing.yaml lists them on, or added by the centre. A part is accepted by its
accept deadline and fed back by its own deadline (the category's accept and resolve spans from when the
part was asked); the centre closes the ticket only once every part has its feedback, or says why not.

A disputed ticket waits, status returned, for the centre's ruling (`Ticket.dispute`) by routing.yaml
`disputes.rule_within`; handlers/lifecycle.py applies the commands and their checks.
"""
from __future__ import annotations

from datetime import datetime

from handlers.deadlines import due, due_dates
from schemas.config import Config
from schemas.enums import Category, Severity
from schemas.records import Dispute, SupportPart, SupportStatus, Ticket


def parts(config: Config, category: Category, severity: Severity, departments: list[str], lead: str,
          now: datetime) -> list[SupportPart]:
    """New parts for `departments` (the lead never supports itself), with the category's deadlines from `now`."""
    accept_due, feedback_due = due_dates(config, category, severity, now)
    return [SupportPart(department=d, asked_at=now, accept_due=accept_due, due=feedback_due)
            for d in dict.fromkeys(departments) if d != lead]


def routed(config: Config, category: Category, severity: Severity, lead: str, now: datetime) -> list[SupportPart]:
    """The parts routing.yaml gives every ticket of the category."""
    return parts(config, category, severity, config.routing.categories[category].support, lead, now)


def part_of(ticket: Ticket, department: str) -> SupportPart | None:
    return next((p for p in ticket.support if p.department == department), None)


def awaiting_feedback(ticket: Ticket) -> list[str]:
    """The supporting departments that have not given their feedback yet."""
    return [p.department for p in ticket.support if p.status is not SupportStatus.fed_back]


def with_part(ticket: Ticket, part: SupportPart) -> list[SupportPart]:
    return [part if p.department == part.department else p for p in ticket.support]


def dispute(config: Config, department: str, reason: str, suggest: str | None, now: datetime) -> Dispute:
    return Dispute(department=department, reason=reason, suggest=suggest, at=now,
                   rule_due=due(config, now, config.routing.disputes.rule_within))


def on_time(part: SupportPart) -> bool:
    """A part fed back by its own deadline."""
    return part.fed_back_at is not None and part.fed_back_at <= part.due
