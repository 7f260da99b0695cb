"""Department performance from ticket histories (GB/T 30428.4 style indicators and the 12345 hotline's
assessment figures), no I/O.

A ticket counts for the department that holds it now and for the period its dispatch falls in.
- on-time handling rate = resolved on time / due (tickets whose resolve deadline has passed by
  `now`, or that are resolved already)
- closure rate = closed / dispatched
- rework rate = tickets sent back at least once / tickets ever reported resolved
- 按时签收率 accepted on time = accepted by the holder by its accept deadline / tickets whose accept
  deadline has passed or that were accepted
- 按期办结率 resolved on time = as on-time handling, but tickets with an approved extension (缓办) are
  left out of both counts
- 回访率 follow-up = tickets followed up (at least one call) / tickets owed a follow-up
- 满意率 satisfaction = satisfied (and basically satisfied, when config counts it) / rated tickets
  (the last rating; a case closed unrated is not rated)
- 发回重办率 sent back = tickets sent back after an unsatisfied follow-up / tickets with a rated call
- 派单异议 disputes: counted for the department that disputed (whoever holds the ticket now); upheld share =
  disputes the centre upheld (the dispatch stood) / disputes ruled
- 协办按时反馈率 support on time = supporting parts fed back by their own deadline / parts whose deadline has
  passed or that are fed back, counted for the supporting department
- times (`Row.times`): from the reading (the incident's observation) to the ticket, to its holder's acceptance
  and to its closure, in seconds: how many tickets have each, their mean, median and longest
- escalations: tickets that reached 催办, 督办 or 通报 (the highest rung each reached); preventive tickets opened

The rows are per department by default; `by="severity"` groups the same figures by the ticket's severity and
`by="district"` counts every ticket in one row (`ALL`), so a review (handlers/review.py) reads its tables from
here too.

Every figure is computed from one small record per ticket (`Facts`), which the store keeps beside the
ticket: the API's table and the Prometheus gauges read the same facts and agree.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, astuple, dataclass, field
from datetime import datetime
from statistics import median
from typing import Literal

import orjson

from schemas.enums import Escalation, TicketKind, TicketStatus
from schemas.records import HistoryKind, Ticket

RESOLVED = (TicketStatus.resolved, TicketStatus.closed)
RATED = ("satisfied", "basically_satisfied", "unsatisfied")
# The rungs of the escalation ladder, lowest first: a ticket at a rung has passed the ones before it.
LADDER = (Escalation.reminded.value, Escalation.escalated.value, Escalation.reported.value)
TIMES = ("to_ticket", "to_accept", "to_close")
ALL = "*"
Grouping = Literal["department", "severity", "district"]


@dataclass(frozen=True)
class Facts:
    """What the figures need of one ticket (times as POSIX seconds)."""

    department: str
    severity: str
    status: str
    dispatched_at: float
    resolve_due: float
    resolved_at: float | None
    accept_due: float = 0.0
    accepted_at: float | None = None
    reworked: bool = False
    submitted: bool = False
    returned: bool = False
    extended: bool = False
    followup_owed: bool = False
    followed_up: bool = False
    rating: str | None = None
    called_rated: bool = False
    sent_back: bool = False
    # Where and what, for the recurring places (handlers/hotspots.py); facts stored before these were
    # added have none and are left out there.
    category: str | None = None
    lat: float | None = None
    lon: float | None = None
    # A pre-plan's task (handlers/plans.py) or a preventive ticket (handlers/preventive.py): work the centre
    # sent, not a report of a problem at its place.
    task: bool = False
    # 派单异议: per dispute, [the disputing department, upheld (True), reassigned (False) or not ruled (None)].
    disputes: tuple = ()
    # 协办: per supporting part, [its department, its feedback deadline, when fed back (None: not yet)].
    support: tuple = ()
    # For the review's times and counts; facts stored before these were added have none and count in neither.
    observed_at: float | None = None
    closed_at: float | None = None
    escalation: str = Escalation.none.value
    kind: str = TicketKind.incident.value


def disputes_of(t: Ticket) -> list[list]:
    found: list[list] = []
    for h in t.history:
        if h.kind is HistoryKind.disputed:
            found.append([h.actor, None])
        elif h.kind in (HistoryKind.dispute_upheld, HistoryKind.dispute_reassigned) and found:
            found[-1][1] = h.kind is HistoryKind.dispute_upheld
    return found


def facts_of(t: Ticket) -> Facts:
    results = [f.result for f in t.followups]
    return Facts(
        t.department, t.severity.value, t.status.value, t.dispatched_at.timestamp(), t.resolve_due.timestamp(),
        t.resolved_at.timestamp() if t.resolved_at else None, t.accept_due.timestamp(),
        t.accepted_at.timestamp() if t.accepted_at else None, t.reworks > 0,
        any(h.kind is HistoryKind.resolve for h in t.history), t.returns > 0,
        any(h.kind is HistoryKind.extension_approved for h in t.history),
        bool(results) or t.followup_due is not None, bool(results), t.rating,
        any(r in RATED for r in results), "unsatisfied" in results, t.category.value, t.lat, t.lon,
        t.kind is not TicketKind.incident, tuple(disputes_of(t)),
        tuple([p.department, p.due.timestamp(), p.fed_back_at.timestamp() if p.fed_back_at else None]
              for p in t.support),
        t.observed_at.timestamp(), t.closed_at.timestamp() if t.closed_at else None, t.escalation.value, t.kind.value)


def gauge_facts(ticket: Ticket) -> bytes:
    """The ticket's facts as the store keeps them beside it: a refresh reads these few fields for
    every ticket instead of parsing every ticket in full."""
    return orjson.dumps(astuple(facts_of(ticket)))


def stored_facts(raw: bytes) -> Facts:
    # Facts written before a field was added have fewer values: the defaults fill them.
    return Facts(*orjson.loads(raw))


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
    due_to_accept: int = 0
    # 按期办结率 without the tickets given an extension (缓办)
    due_not_deferred: int = 0
    resolved_on_time_not_deferred: int = 0
    followup_owed: int = 0
    followed_up: int = 0
    rated: int = 0
    satisfied: int = 0
    called_rated: int = 0
    sent_back: int = 0
    disputes: int = 0
    disputes_ruled: int = 0
    disputes_upheld: int = 0
    support_parts: int = 0
    support_due: int = 0
    support_on_time: int = 0
    # accepted after the accept deadline, or not accepted by it yet
    accepted_late: int = 0
    # the escalation rung each ticket reached: reminded counts every ticket reminded or more, and so on
    reminded: int = 0
    escalated: int = 0
    reported: int = 0
    preventive: int = 0
    rates: dict[str, float | None] = field(default_factory=dict)
    # TIMES -> {"count", "mean_s", "median_s", "max_s"} (None when no ticket has that time yet)
    times: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def on_time(status: TicketStatus, resolved_at: float | None, resolve_due: float, now: float) -> tuple[bool, bool]:
    """One ticket's part in the on-time handling rate: (due, resolved on time)."""
    is_resolved = status in RESOLVED
    return (is_resolved or resolve_due <= now,
            is_resolved and resolved_at is not None and resolved_at <= resolve_due)


def _times(samples: list[float]) -> dict:
    """How many, their mean, median and longest, in seconds (None when there are none)."""
    if not samples:
        return {"count": 0, "mean_s": None, "median_s": None, "max_s": None}
    return {"count": len(samples), "mean_s": round(sum(samples) / len(samples), 1),
            "median_s": round(median(samples), 1), "max_s": round(max(samples), 1)}


spread = _times


def _group(f: Facts, by: Grouping) -> str:
    return f.department if by == "department" else f.severity if by == "severity" else ALL


def table(facts: Iterable[Facts], start: float, end: float, now: float, basically_counts: bool = True,
          by: Grouping = "department") -> dict[str, Row]:
    out: dict[str, Row] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    satisfied = ("satisfied", "basically_satisfied") if basically_counts else ("satisfied",)
    for f in facts:
        if not (start <= f.dispatched_at < end):
            continue
        key = _group(f, by)
        row = out.setdefault(key, Row(key))
        status = TicketStatus(f.status)
        row.dispatched += 1
        # The current holder's own acceptance (cleared on redispatch and rework), not a predecessor's.
        accepted_on_time = f.accepted_at is not None and f.accepted_at <= f.accept_due
        row.accepted_on_time += accepted_on_time
        due_to_accept = f.accepted_at is not None or f.accept_due <= now
        row.due_to_accept += due_to_accept
        row.accepted_late += due_to_accept and not accepted_on_time
        if f.escalation in LADDER:
            rung = LADDER.index(f.escalation)
            row.reminded += 1
            row.escalated += rung >= 1
            row.reported += rung >= 2
        row.preventive += f.kind == TicketKind.preventive.value
        if f.observed_at is not None:
            times = samples.setdefault(key, {name: [] for name in TIMES})
            times["to_ticket"].append(f.dispatched_at - f.observed_at)
            if f.accepted_at is not None:
                times["to_accept"].append(f.accepted_at - f.observed_at)
            if f.closed_at is not None:
                times["to_close"].append(f.closed_at - f.observed_at)
        is_resolved = status in RESOLVED
        due, resolved_on_time = on_time(status, f.resolved_at, f.resolve_due, now)
        row.resolved += is_resolved
        row.resolved_on_time += resolved_on_time
        row.due += due
        if not f.extended:
            row.due_not_deferred += due
            row.resolved_on_time_not_deferred += resolved_on_time
        row.closed += status is TicketStatus.closed
        row.reworked += f.reworked
        row.submitted += f.submitted
        row.returned += f.returned
        row.extended += f.extended
        if status is not TicketStatus.closed:
            row.still_open += 1
            if not is_resolved and f.resolve_due < now:
                row.overdue += 1
        row.followup_owed += f.followup_owed
        row.followed_up += f.followed_up
        row.rated += f.rating in RATED
        row.satisfied += f.rating in satisfied
        row.called_rated += f.called_rated
        row.sent_back += f.sent_back
        # A dispute and a supporting part count for their own department in a table of departments, else
        # in the ticket's own row.
        for department, upheld in f.disputes:
            department = department if by == "department" else key
            disputing = out.setdefault(department, Row(department))
            disputing.disputes += 1
            disputing.disputes_ruled += upheld is not None
            disputing.disputes_upheld += upheld is True
        for department, part_due, fed_back_at in f.support:
            department = department if by == "department" else key
            supporting = out.setdefault(department, Row(department))
            supporting.support_parts += 1
            supporting.support_due += fed_back_at is not None or part_due <= now
            supporting.support_on_time += fed_back_at is not None and fed_back_at <= part_due
    for row in out.values():
        row.rates = {
            "on_time_handling": _ratio(row.resolved_on_time, row.due),
            "closure": _ratio(row.closed, row.dispatched),
            "rework": _ratio(row.reworked, row.submitted),
            "accepted_on_time": _ratio(row.accepted_on_time, row.due_to_accept),
            "resolved_on_time": _ratio(row.resolved_on_time_not_deferred, row.due_not_deferred),
            "followup": _ratio(row.followed_up, row.followup_owed),
            "satisfaction": _ratio(row.satisfied, row.rated),
            "sent_back": _ratio(row.sent_back, row.called_rated),
            "disputes_upheld": _ratio(row.disputes_upheld, row.disputes_ruled),
            "support_on_time": _ratio(row.support_on_time, row.support_due),
        }
        found = samples.get(row.department, {})
        row.times = {name: _times(found.get(name, [])) for name in TIMES}
    return out


def rows(tickets: Iterable[Ticket], start: datetime, end: datetime, now: datetime,
         basically_counts: bool = True) -> dict[str, Row]:
    return table((facts_of(t) for t in tickets), start.timestamp(), end.timestamp(), now.timestamp(), basically_counts)


@dataclass
class Gauges:
    open_tickets: dict[tuple[str, str], int]  # (department, severity) -> open tickets
    rows: dict[str, Row]  # department -> its counts and rates, as table() computes them

    @property
    def rates(self) -> dict[str, dict[str, float | None]]:
        return {department: row.rates for department, row in self.rows.items()}


def gauges(raws: Iterable[bytes], start: datetime, end: datetime, now: datetime,
           basically_counts: bool = True) -> Gauges:
    """The gauges' figures from the facts the store keeps."""
    facts = [stored_facts(raw) for raw in raws]
    open_tickets: dict[tuple[str, str], int] = {}
    for f in facts:
        if f.status != TicketStatus.closed.value:
            open_tickets[f.department, f.severity] = open_tickets.get((f.department, f.severity), 0) + 1
    found = table(facts, start.timestamp(), end.timestamp(), now.timestamp(), basically_counts)
    return Gauges(open_tickets, found)
