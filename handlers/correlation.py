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
from schemas.correlation import CorrelationRule, Part, Partner, Related, Sighting
from schemas.enums import SEVERITY_RANK, Severity
from schemas.records import HistoryEntry, HistoryKind, KeyState, Ticket, TicketAction, TicketEvent
from schemas.response import duration_s

PREFIX = "corr:"
# A cell keeps the latest this many sightings of each part (besides the rule's window): a jam beside a
# flooded underpass in a storm sights a ticket every few seconds, and the cell's state is read and
# written per batch. An older one of a denser part is no longer paired with new sightings.
CELL_SIGHTINGS = 64
_LAT_STEP_M = 111_320.0


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
    rule = rule_named(config, sighting.rule)
    if rule is None:  # a rule removed from config since the sighting was sent
        return Linked(True, state, reason=f"no correlation rule {sighting.rule!r}")
    known = state.linked.get(sighting.event_id)
    if known is not None:
        return Linked(True, state, _commands(rule, sighting, known), "sighting already matched")
    window = timedelta(seconds=duration_s(rule.window))
    newest = max([sighting.at, *(s.at for s in state.sightings.values())])
    # Kept two windows behind the newest, so a replay of a recent sighting still finds its own entry.
    kept = {k: s for k, s in state.sightings.items() if s.at >= newest - 2 * window}
    matches = sorted((s for s in kept.values() if _pair(rule, s, sighting, window)), key=lambda s: s.ticket_id)
    partners = [Partner(ticket_id=s.ticket_id, dedup_key=s.dedup_key, at=s.at) for s in matches]
    sightings = _latest_of_part({**kept, sighting.event_id: sighting}, sighting.role)
    new = state.model_copy(update={
        "sightings": sightings,
        "linked": {**{k: v for k, v in state.linked.items() if k in sightings}, sighting.event_id: partners},
    })
    return Linked(False, new, _commands(rule, sighting, partners))


def _latest_of_part(sightings: dict[str, Sighting], role: str) -> dict[str, Sighting]:
    """The sightings with only the latest CELL_SIGHTINGS of one part (in the order they came)."""
    same = [k for k, s in sightings.items() if s.role == role]
    if len(same) <= CELL_SIGHTINGS:
        return sightings
    dropped = set(same[:-CELL_SIGHTINGS])
    return {k: s for k, s in sightings.items() if k not in dropped}


def _commands(rule: CorrelationRule, sighting: Sighting, partners: list[Partner]) -> tuple[tuple[str, TicketEvent], ...]:
    """The relate commands of a sighting's pairs, each with the dedup key it goes to."""
    other = "effect" if sighting.role == "cause" else "cause"
    mine = (sighting.ticket_id, sighting.dedup_key, sighting.at, sighting.role)
    return tuple(c for p in partners
                 for c in relate_commands(rule, *((mine, (p.ticket_id, p.dedup_key, p.at, other)) if sighting.role == "cause"
                                                  else ((p.ticket_id, p.dedup_key, p.at, other), mine))))


def _pair(rule: CorrelationRule, one: Sighting, other: Sighting, window: timedelta) -> bool:
    if one.role == other.role or one.ticket_id == other.ticket_id or abs(one.at - other.at) > window:
        return False
    if rule.within_m is not None and distance_m(one.lat, one.lon, other.lat, other.lon) > rule.within_m:
        return False
    return all(getattr(one, label) is not None and getattr(one, label) == getattr(other, label) for label in rule.equal)


def relate_commands(rule: CorrelationRule, cause: tuple, effect: tuple) -> list[tuple[str, TicketEvent]]:
    """One command to each ticket, naming the other and its part; one id for the pair. Each side is
    (ticket id, dedup key, dispatch time, part)."""
    event_id = f"relate-{rule.name}-{cause[0]}-{effect[0]}"
    at = max(cause[2], effect[2])
    return [(mine[1], TicketEvent(event_id=event_id, ticket_id=mine[0], action=TicketAction.relate, by=PIPELINE,
                                  actor=PIPELINE, at=at, related_ticket_id=other[0], rule=rule.name, role=other[3]))
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
                                             note=f"{rule.name}: {_ROLE_LABEL[event.role]} {event.related_ticket_id}",
                                             kind=HistoryKind.related, related_ticket_id=event.related_ticket_id,
                                             rule=rule.name, role=event.role)]
    severity = _graded(rule, ticket.severity) if mine == "effect" and ticket.is_open else ticket.severity
    if severity is not ticket.severity:
        history.append(HistoryEntry(at=event.at, by=PIPELINE, action="severity_raised", event_id=event.event_id,
                                    note=f"{ticket.severity.value} -> {severity.value} ({rule.name})",
                                    kind=HistoryKind.severity_raised, from_severity=ticket.severity,
                                    to_severity=severity, rule=rule.name))
    return ticket.model_copy(update={"related": links, "watchers": watchers, "severity": severity,
                                     "history": history, "version": ticket.version + 1})


_ORDER = (Severity.blue, Severity.yellow, Severity.orange, Severity.red)


def _graded(rule: CorrelationRule, severity: Severity) -> Severity:
    raised = _ORDER[min(_ORDER.index(severity) + rule.effect_severity_steps, len(_ORDER) - 1)]
    return raised.raise_to(rule.effect_severity_floor) if rule.effect_severity_floor else raised
