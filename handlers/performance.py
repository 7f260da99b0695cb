"""Department performance from ticket histories (GB/T 30428.4 style indicators), no I/O.

A ticket counts for the department that holds it now and for the period its dispatch falls in.
- on-time handling rate = resolved on time / due (tickets whose resolve deadline has passed by
  `now`, or that are resolved already)
- closure rate = closed / dispatched
- rework rate = tickets sent back at least once / tickets ever reported resolved
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TypeVar

import orjson

from schemas.enums import TicketStatus
from schemas.records import Ticket

RESOLVED = (TicketStatus.resolved, TicketStatus.closed)
T = TypeVar("T", datetime, float)


@dataclass
class Row:
    department: str
    dispatched: int = 0
    accepted_on_time: int = 0
    resolved: int = 0
    resolved_on_time: int = 0
    closed: int = 0
    reworked: int = 0
    submitted: int = 0
    returned: int = 0
    extended: int = 0
    overdue: int = 0
    still_open: int = 0
    due: int = 0
    rates: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def on_time(status: TicketStatus, resolved_at: T | None, resolve_due: T, now: T) -> tuple[bool, bool]:
    """One ticket's part in the on-time handling rate: (due, resolved on time)."""
    is_resolved = status in RESOLVED
    return (is_resolved or resolve_due <= now,
            is_resolved and resolved_at is not None and resolved_at <= resolve_due)


def gauge_facts(ticket: Ticket) -> bytes:
    """What the Prometheus gauges need of a ticket, kept beside it in the store: a refresh reads
    these few fields for every ticket instead of parsing every ticket in full."""
    return orjson.dumps([ticket.department, ticket.severity.value, ticket.status.value, ticket.dispatched_at.timestamp(),
                         ticket.resolve_due.timestamp(), ticket.resolved_at.timestamp() if ticket.resolved_at else None])


@dataclass
class Gauges:
    open_tickets: dict[tuple[str, str], int]  # (department, severity) -> open tickets
    on_time_handling: dict[str, float | None]  # department -> rate, as rows() computes it


def gauges(facts: Iterable[bytes], start: datetime, end: datetime, now: datetime) -> Gauges:
    open_tickets: dict[tuple[str, str], int] = {}
    due_and_on_time: dict[str, list[int]] = {}
    start_ts, end_ts, now_ts = start.timestamp(), end.timestamp(), now.timestamp()
    for raw in facts:
        department, severity, status, dispatched_at, resolve_due, resolved_at = orjson.loads(raw)
        status = TicketStatus(status)
        if status is not TicketStatus.closed:
            open_tickets[department, severity] = open_tickets.get((department, severity), 0) + 1
        if start_ts <= dispatched_at < end_ts:
            counts = due_and_on_time.setdefault(department, [0, 0])
            due, resolved_on_time = on_time(status, resolved_at, resolve_due, now_ts)
            counts[0] += due
            counts[1] += resolved_on_time
    return Gauges(open_tickets, {d: _ratio(good, due) for d, (due, good) in due_and_on_time.items()})


def rows(tickets: Iterable[Ticket], start: datetime, end: datetime, now: datetime) -> dict[str, Row]:
    table: dict[str, Row] = {}
    for t in tickets:
        if not (start <= t.dispatched_at < end):
            continue
        row = table.setdefault(t.department, Row(t.department))
        row.dispatched += 1
        # The current holder's own acceptance (cleared on redispatch and rework), not a predecessor's.
        if t.accepted_at is not None and t.accepted_at <= t.accept_due:
            row.accepted_on_time += 1
        is_resolved = t.status in RESOLVED
        due, resolved_on_time = on_time(t.status, t.resolved_at, t.resolve_due, now)
        row.resolved += is_resolved
        row.resolved_on_time += resolved_on_time
        row.due += due
        row.closed += t.status is TicketStatus.closed
        row.reworked += t.reworks > 0
        row.submitted += any(h.action == "resolve" for h in t.history)
        row.returned += t.returns > 0
        row.extended += any(h.action.startswith("extension approved") for h in t.history)
        if t.status is not TicketStatus.closed:
            row.still_open += 1
            if not is_resolved and t.resolve_due < now:
                row.overdue += 1
    for row in table.values():
        row.rates = {
            "on_time_handling": _ratio(row.resolved_on_time, row.due),
            "closure": _ratio(row.closed, row.dispatched),
            "rework": _ratio(row.reworked, row.submitted),
        }
    return table
