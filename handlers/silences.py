"""Which silence, if any, covers an incident: Alertmanager's matcher semantics over the incident's labels.

Every matcher must match. A regex is anchored (it must match the whole value). `ref` may have several
values (a traffic event has its intersection, road and camera): an equal matcher needs one of them to
match, a not-equal matcher none. Whether a silence applies is decided by the incident's own
`received_at` (its Kafka timestamp) and the silence's times, never by a clock, so a replay decides again
exactly as the first run did.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from handlers.geo import distance_m
from handlers.intervals import CompiledInterval
from schemas.records import Incident
from schemas.response import Maintenance
from schemas.silences import Inhibitor, InhibitRule, Matcher, Silence

# The raw fields that name the source's own thing (station, site, camera, intersection, road).
REF_FIELDS = ("station_id", "site_id", "camera_id", "intersection_id", "road")


def labels(incident: Incident, department: str) -> dict[str, tuple[str, ...]]:
    refs = tuple(str(incident.details[f]) for f in REF_FIELDS if incident.details.get(f))
    return {
        "source": (incident.source.value,),
        "category": (incident.category.value,),
        "subcategory": (incident.subcategory,),
        "severity": (incident.severity.value,),
        "community": (incident.community,) if incident.community else (),
        "department": (department,),
        "ref": refs,
    }


@lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern:
    return re.compile(value)


def _one(matcher: Matcher, value: str) -> bool:
    return bool(_pattern(matcher.value).fullmatch(value)) if matcher.is_regex else value == matcher.value


def matches(matcher: Matcher, values: tuple[str, ...]) -> bool:
    hit = any(_one(matcher, v) for v in values)
    return hit if matcher.is_equal else not hit


def covers(silence: Silence | Maintenance, found: dict[str, tuple[str, ...]]) -> bool:
    return all(matches(m, found[m.name]) for m in silence.matchers)


def applies_at(silence: Silence, at: datetime) -> bool:
    """Active at `at`, and made before it (a silence never reaches back to earlier reports)."""
    return silence.created_at <= at and silence.starts_at <= at < silence.ends_at


def state(silence: Silence, now: datetime) -> str:
    if now < silence.starts_at:
        return "pending"
    return "active" if now < silence.ends_at else "expired"


@dataclass(frozen=True)
class Cover:
    """What silences an incident: a silence, or a maintenance window of rules.yaml (id `maintenance:<name>`)."""

    silence_id: str
    mode: str
    ends_at: datetime


# A maintenance window's end is looked for this far ahead, minute by minute, when a quiet ticket needs it.
WINDOW_LOOKAHEAD = timedelta(days=7)


def _window_end(intervals: Sequence[CompiledInterval], start: datetime, tz) -> datetime:
    at = start.replace(second=0, microsecond=0)
    while at - start < WINDOW_LOOKAHEAD and any(i.contains(at.astimezone(tz)) for i in intervals):
        at += timedelta(minutes=1)
    return at


# Each window's intervals compiled once (config is loaded once; the window is kept so its id stays its own).
_COMPILED: dict[int, tuple[Maintenance, list[CompiledInterval]]] = {}


def _compiled(window: Maintenance) -> list[CompiledInterval]:
    hit = _COMPILED.get(id(window))
    if hit is None or hit[0] is not window:
        hit = _COMPILED[id(window)] = (window, [CompiledInterval.of(i) for i in window.time_intervals])
    return hit[1]


def silencing(silences: Iterable[Silence], incident: Incident, department: str,
              maintenance: Sequence[Maintenance] = (), tz=None) -> Cover | None:
    """What covers the incident when it arrived: a suppress silence or window before a quiet one, then the
    lowest id, so every worker and every replay picks the same. Windows are read in the zone `tz`."""
    found = labels(incident, department)
    at = incident.received_at
    hits = [Cover(s.silence_id, s.mode, s.ends_at) for s in silences if applies_at(s, at) and covers(s, found)]
    for window in maintenance:
        if not covers(window, found):
            continue
        intervals = _compiled(window)
        if any(i.contains(at.astimezone(tz)) for i in intervals):
            hits.append(Cover(f"maintenance:{window.name}", window.mode, _window_end(intervals, at, tz)))
    return min(hits, key=lambda c: (c.mode != "suppress", c.silence_id), default=None)


# ---------------------------------------------------------------- inhibition

def all_match(matchers: Sequence[Matcher], found: dict[str, tuple[str, ...]]) -> bool:
    return all(matches(m, found[m.name]) for m in matchers)


def inhibitor_of(rules: Sequence[InhibitRule], incident: Incident, department: str) -> tuple[list[str], dict]:
    """The rules a ticket opened for this incident is the source of, and its labels those rules compare."""
    found = labels(incident, department)
    hits = [r for r in rules if all_match(r.source, found)]
    names = sorted({n for r in hits for n in r.equal})
    return [r.name for r in hits], {n: list(found[n]) for n in names}


@dataclass(frozen=True)
class Inhibition:
    rule: str
    ticket_id: str  # the source ticket the incident is linked to


def inhibiting(rules: Sequence[InhibitRule], inhibitors: Iterable[Inhibitor], incident: Incident,
               department: str) -> Inhibition | None:
    """The first rule (in file order) and source ticket (by id) that inhibit the incident when it arrived."""
    found = labels(incident, department)
    at = incident.received_at
    candidates = sorted(inhibitors, key=lambda i: i.ticket_id)
    for rule in rules:
        if not all_match(rule.target, found):
            continue
        for source in candidates:
            if rule.name not in source.rules or at < source.opened_at:
                continue
            if source.closed_at is not None and at >= source.closed_at:
                continue
            if any(set(found[n]) != set(source.labels.get(n, ())) for n in rule.equal):
                continue
            if rule.within_m is not None and distance_m(incident.lat, incident.lon, source.lat, source.lon) > rule.within_m:
                continue
            return Inhibition(rule.name, source.ticket_id)
    return None


def inhibitor_record(ticket) -> Inhibitor:
    return Inhibitor(ticket_id=ticket.ticket_id, rules=ticket.inhibits, labels=ticket.inhibit_labels, lat=ticket.lat,
                     lon=ticket.lon, opened_at=ticket.dispatched_at, closed_at=ticket.closed_at)
