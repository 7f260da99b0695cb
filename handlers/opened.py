"""Tickets opened per slot of time (an hour, a day), by source and by severity: the stats page's hourly
charts and the review's chart count with this one function. No I/O."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from schemas.enums import Severity, Source
from schemas.records import Ticket

SEVERITIES = [s.value for s in Severity]
SOURCES = [s.value for s in Source]


def per_slot(tickets: Iterable[Ticket], start: datetime, slots: int, width: timedelta = timedelta(hours=1)) -> dict:
    """The tickets dispatched in each of `slots` slots of `width` from `start`, by source and by severity;
    those outside them are left out."""
    by_source = {s: [0] * slots for s in SOURCES}
    by_severity = {s: [0] * slots for s in SEVERITIES}
    for t in tickets:
        slot = int((t.dispatched_at - start) // width)
        if 0 <= slot < slots:
            by_source[t.source.value][slot] += 1
            by_severity[t.severity.value][slot] += 1
    return {"starts": [start + n * width for n in range(slots)], "by_source": by_source, "by_severity": by_severity}
