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

from schemas.enums import TicketStatus
from schemas.records import Ticket

RESOLVED = (TicketStatus.resolved, TicketStatus.closed)


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
        if is_resolved:
            row.resolved += 1
            if t.resolved_at is not None and t.resolved_at <= t.resolve_due:
                row.resolved_on_time += 1
        if is_resolved or t.resolve_due <= now:
            row.due += 1
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
