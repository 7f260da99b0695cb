"""Cross-source correlation: sightings of new tickets on a rule's cells, matched into relate commands.
No I/O; every time comes from the tickets, so a replay sends what the first run sent.

    ticket newly at a side's severity -> sightings(rule, role) on the 2 x 2 cells around it
                                      -> soc.ticket-events (by cell key)
    sighting   -> the cell's state: matched with the other part's sightings inside the rule's window
                  and distance -> a relate command to each ticket of a pair (the ticket step links them)

A pair can meet in more than one cell: both copies of its commands carry one id, so the second is a
replay where it lands. Either order works: whichever ticket is sighted second finds the first.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from handlers.geo import distance_m
from handlers.tickets import PIPELINE
from schemas.config import Config
from schemas.correlation import CorrelationRule, Part, Related, Sighting
from schemas.enums import SEVERITY_RANK, Severity
from schemas.records import HistoryEntry, KeyState, Ticket, TicketAction, TicketEvent
from schemas.response import duration_s

PREFIX = "corr:"
_LAT_STEP_M = 111_320.0


def is_cell(key: str) -> bool:
    return key.startswith(PREFIX)


def cells(rule: CorrelationRule, lat: float, lon: float) -> list[str]:
    """The four cells around the grid corner nearest a point. A cell is 2 x within_m tall and twice
    that many degrees wide (at least 2 x within_m on the ground below 60° latitude). Two points within_m
    apart always share a cell: the second lies inside the first's 2 x 2 block, so its own cell is one
    of the first's four. Four cells, not nine: fewer writes for every sighting."""
    if rule.within_m is None:
        return [f"{PREFIX}{rule.name}:district"]
    step = 2 * rule.within_m / _LAT_STEP_M
    y, x = lat / step, lon / (2 * step)
    row, col = math.floor(y), math.floor(x)
    dr, dc = (1 if y - row >= 0.5 else -1), (1 if x - col >= 0.5 else -1)
    return [f"{PREFIX}{rule.name}:{row + r}:{col + c}" for r in (0, dr) for c in (0, dc)]


def _plays(side, ticket: Ticket) -> bool:
    return ticket.is_open and ticket.category is side.category and \
        SEVERITY_RANK[ticket.severity] >= SEVERITY_RANK[side.min_severity]


def parts_due(config: Config, state: KeyState, tickets: Iterable[Ticket]) -> list[Part]:
    """The parts these tickets play now and were never sighted in: a ticket opened at a side's
    severity, or raised to it (a waterlogging ticket opens blue and deepens to yellow)."""
    done = {(p.rule, p.role, p.ticket_id) for parts in state.sighted.values() for p in parts}
    return [Part(rule=rule.name, role=role, ticket_id=t.ticket_id, severity=t.severity)
            for t in tickets for rule in config.rules.correlations
            for role, side in (("cause", rule.cause), ("effect", rule.effect))
            if _plays(side, t) and (rule.name, role, t.ticket_id) not in done]


def sightings(config: Config, parts: Iterable[Part], tickets: dict[str, Ticket]) -> list[Sighting]:
    """Each part on its rule's cells (a part of a ticket that left by retention is dropped)."""
    found = []
    for part in parts:
        rule, ticket = rule_named(config, part.rule), tickets.get(part.ticket_id)
        if rule is None or ticket is None:
            continue
        for cell in cells(rule, ticket.lat, ticket.lon):
            found.append(Sighting(event_id=f"sight-{rule.name}-{part.role}-{ticket.ticket_id}", cell=cell,
                                  rule=rule.name, role=part.role, ticket_id=ticket.ticket_id,
                                  dedup_key=ticket.dedup_key, severity=part.severity, lat=ticket.lat, lon=ticket.lon,
                                  at=ticket.dispatched_at, road=ticket.road, community=ticket.community))
    return found


@dataclass(frozen=True)
class Linked:
    """What a cell does with a sighting: keep `state`, send `commands` (dedup key, command)."""

    replayed: bool
    state: KeyState
    commands: tuple[tuple[str, TicketEvent], ...] = ()
    reason: str = ""


def rule_named(config: Config, name: str | None) -> CorrelationRule | None:
    return next((r for r in config.rules.correlations if r.name == name), None)


def on_sighting(config: Config, state: KeyState, sighting: Sighting) -> Linked:
    known = state.linked.get(sighting.event_id)
    if known is not None:
        return Linked(True, state, _addressed(known, state, sighting), "sighting already matched")
    rule = rule_named(config, sighting.rule)
    if rule is None:  # a rule removed from config since the sighting was sent
        return Linked(True, state, reason=f"no correlation rule {sighting.rule!r}")
    window = timedelta(seconds=duration_s(rule.window))
    newest = max([sighting.at, *(s.at for s in state.sightings.values())])
    # Kept two windows behind the newest, so a replay of a recent sighting still finds its own entry.
    kept = {k: s for k, s in state.sightings.items() if s.at >= newest - 2 * window}
    matches = sorted((s for s in kept.values() if _pair(rule, s, sighting, window)), key=lambda s: s.ticket_id)
    commands = [c for other in matches for c in relate_commands(rule, *((other, sighting) if other.role == "cause"
                                                                       else (sighting, other)))]
    new = state.model_copy(update={
        "sightings": {**kept, sighting.event_id: sighting},
        "linked": {**{k: v for k, v in state.linked.items() if k in kept}, sighting.event_id: [e for _, e in commands]},
    })
    return Linked(False, new, tuple(commands))


def _addressed(events: list[TicketEvent], state: KeyState, sighting: Sighting) -> tuple[tuple[str, TicketEvent], ...]:
    """A replay's commands with their dedup keys, from the sightings the cell still holds."""
    keys = {s.ticket_id: s.dedup_key for s in (*state.sightings.values(), sighting)}
    return tuple((keys[e.ticket_id], e) for e in events if e.ticket_id in keys)


def _pair(rule: CorrelationRule, one: Sighting, other: Sighting, window: timedelta) -> bool:
    if one.role == other.role or one.ticket_id == other.ticket_id or abs(one.at - other.at) > window:
        return False
    if rule.within_m is not None and distance_m(one.lat, one.lon, other.lat, other.lon) > rule.within_m:
        return False
    return all(getattr(one, label) is not None and getattr(one, label) == getattr(other, label) for label in rule.equal)


def relate_commands(rule: CorrelationRule, cause: Sighting, effect: Sighting) -> list[tuple[str, TicketEvent]]:
    """One command to each ticket, naming the other and its part; one id for the pair."""
    event_id = f"relate-{rule.name}-{cause.ticket_id}-{effect.ticket_id}"
    at = max(cause.at, effect.at)
    return [(mine.dedup_key, TicketEvent(event_id=event_id, ticket_id=mine.ticket_id, action=TicketAction.relate,
                                         by=PIPELINE, actor=PIPELINE, at=at, related_ticket_id=other.ticket_id,
                                         rule=rule.name, role=other.role))
            for mine, other in ((cause, effect), (effect, cause))]


_ROLE_LABEL = {"cause": "起因 cause", "effect": "影响 effect"}


def related(config: Config, ticket: Ticket, event: TicketEvent) -> Ticket | str:
    """The ticket linked to the event's ticket: the link, the rule's watchers for its own part and,
    for the effect of an open ticket, its grade raised; or why not."""
    rule = rule_named(config, event.rule)
    if rule is None:
        return f"no correlation rule {event.rule!r}"
    mine = "effect" if event.role == "cause" else "cause"
    links = [*ticket.related, Related(ticket_id=event.related_ticket_id, rule=rule.name, role=event.role)]
    watchers = [d for d in dict.fromkeys([*ticket.watchers, *getattr(rule.add_watchers, mine)]) if d != ticket.department]
    history = [*ticket.history, HistoryEntry(at=event.at, by=PIPELINE, action="related", event_id=event.event_id,
                                             note=f"{rule.name}: {_ROLE_LABEL[event.role]} {event.related_ticket_id}")]
    severity = _graded(rule, ticket.severity) if mine == "effect" and ticket.is_open else ticket.severity
    if severity is not ticket.severity:
        history.append(HistoryEntry(at=event.at, by=PIPELINE, action="severity_raised", event_id=event.event_id,
                                    note=f"{ticket.severity.value} -> {severity.value} ({rule.name})"))
    return ticket.model_copy(update={"related": links, "watchers": watchers, "severity": severity,
                                     "history": history, "version": ticket.version + 1})


_ORDER = (Severity.blue, Severity.yellow, Severity.orange, Severity.red)


def _graded(rule: CorrelationRule, severity: Severity) -> Severity:
    raised = _ORDER[min(_ORDER.index(severity) + rule.effect_severity_steps, len(_ORDER) - 1)]
    return raised.raise_to(rule.effect_severity_floor) if rule.effect_severity_floor else raised
