"""The emergency-response level at a given time, the signals that raise it, and its effects. No I/O.

Every trigger (`manual`, or `<rule>@<dedup key>`) has a history of changes. The centre's decisions are in
force from their time until its next decision. A rule's change is in force from its time until the rule's
next change, then `hold` longer (so a typhoon signal lowered and raised again does not flap the level).
Sources below every threshold send nothing (a rain gauge back to normal, a typhoon signal withdrawn), so a
rule also lets go `hold` after its last supporting report: a report that keeps the level writes the same
level again once half a hold has passed, and a level lapses `hold` after its last such change, then
holds `hold` more. The level in force is the most severe of all triggers' levels. All times come from the inputs (an incident's
received_at, a decision's time), so a replay sees the level the first run saw.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.escalation import deadlines_set_at
from handlers.tickets import PIPELINE
from schemas.config import Config
from schemas.enums import SEVERITY_RANK, Severity, TicketStatus
from schemas.records import (HistoryEntry, HistoryKind, Incident, KeyState, SupportPart, SupportStatus, Ticket,
                             TicketAction, TicketEvent)
from schemas.response import MANUAL, RANK, Level, LevelDecision, LevelEffects, ResponseChange, duration_s

# A trigger's changes older than this before its latest one are dropped (the level of a time that far
# back is never asked again: replays are of recent inputs).
KEEP_HISTORY = timedelta(days=30)
_UP = {s: t for s, t in zip((Severity.blue, Severity.yellow, Severity.orange), (Severity.yellow, Severity.orange,
                                                                                   Severity.red))}


@dataclass(frozen=True)
class InForce:
    level: Level
    change: ResponseChange  # the change that set it (since, reason, trigger)


def in_force(histories: Mapping[str, list[ResponseChange]], at: datetime, hold: timedelta) -> InForce | None:
    best: tuple | None = None
    for order, (key, changes) in enumerate(histories.items()):
        for span in spans(key, changes, hold):
            if span.start <= at and (span.end is None or at < span.end):
                best = _better(best, span, order)
    return best[-1] if best else None


@dataclass(frozen=True)
class Span:
    """One change of a trigger in force: from `start` until `end` (None: until the centre decides again)."""

    start: datetime
    end: datetime | None
    in_force: InForce


def spans(key: str, changes: list[ResponseChange], hold: timedelta) -> list[Span]:
    manual = key == MANUAL
    found = []
    for i, change in enumerate(changes):
        if change.level is None:
            continue
        following = changes[i + 1].at if i + 1 < len(changes) else None
        if manual:
            ends = following
        else:
            lapse = change.at + hold
            ends = (lapse if following is None else min(following, lapse)) + hold
        if ends is None or change.at < ends:
            found.append(Span(change.at, ends, InForce(change.level, change)))
    return found


def _better(best: tuple | None, span: Span, order: int) -> tuple:
    """The most severe level; of equal ones the earliest change; of equal times the first trigger."""
    change = span.in_force.change
    candidate = (RANK[change.level], -change.at.timestamp(), -order, span.in_force)
    return candidate if best is None or candidate[:3] > best[:3] else best


class Levels:
    """`in_force` for many inputs against the same triggers (the ticket step's batch): each trigger's
    spans worked out once, and the best level of every stretch between their ends, found by bisection."""

    def __init__(self):
        self._source: Mapping[str, list[ResponseChange]] | None = None
        self._hold: timedelta | None = None
        self._spans: dict[str, tuple[list[ResponseChange], list[Span]]] = {}
        self._order: dict[str, int] = {}
        self._bounds: list[datetime] = []
        self._best: list[tuple | None] = []

    def in_force(self, histories: Mapping[str, list[ResponseChange]], at: datetime, hold: timedelta,
                 own: Mapping[str, list[ResponseChange]]) -> InForce | None:
        """As in_force({**histories, **own}, at, hold): `own` are the histories the input itself
        publishes (its key's triggers), which take the place of theirs in `histories`."""
        self._follow(histories, hold)
        i = bisect_right(self._bounds, at) - 1
        top = self._best[i] if i >= 0 else None  # (rank, -time, -order, trigger, InForce)
        best = None if top is None else top[:3] + top[4:]
        if top is not None and top[3] in own:
            # The best was one of the input's own triggers as it stood before the input: ask the others.
            best = None
            for key, (_, found) in self._spans.items():
                if key not in own:
                    for span in found:
                        if span.start <= at and (span.end is None or at < span.end):
                            best = _better(best, span, self._order[key])
        extra = len(self._order)
        for n, (key, changes) in enumerate(own.items()):
            cached = self._spans.get(key)
            found = cached[1] if cached is not None and cached[0] is changes else spans(key, changes, hold)
            for span in found:
                if span.start <= at and (span.end is None or at < span.end):
                    best = _better(best, span, self._order.get(key, extra + n))
        return best[-1] if best else None

    def _follow(self, histories: Mapping[str, list[ResponseChange]], hold: timedelta) -> None:
        if histories is self._source and hold == self._hold:
            return
        known = self._spans if hold == self._hold else {}
        changed = list(histories) != list(self._order) or not known
        following = {}
        for key, changes in histories.items():
            cached = known.get(key)
            if cached is not None and (cached[0] is changes or cached[0] == changes):
                following[key] = (changes, cached[1])
            else:
                following[key] = (changes, spans(key, changes, hold))
                changed = True
        self._spans, self._source, self._hold = following, histories, hold
        if changed:
            self._order = {key: order for order, key in enumerate(histories)}
            self._timeline()

    def _timeline(self) -> None:
        every = [(span, self._order[key], key) for key, (_, found) in self._spans.items() for span in found]
        self._bounds = sorted({s.start for s, _, _ in every} | {s.end for s, _, _ in every if s.end is not None})
        self._best = []
        for bound in self._bounds:
            best = None
            for span, order, key in every:
                if span.start <= bound and (span.end is None or bound < span.end):
                    found = _better(None, span, order)
                    if best is None or found[:3] > best[:3]:
                        best = found[:3] + (key, found[-1])
            self._best.append(best)


def hold_of(config: Config) -> timedelta:
    return timedelta(seconds=duration_s(config.rules.response.hold))


def effects(config: Config, level: Level | None) -> LevelEffects | None:
    return config.rules.response.levels.get(level) if level else None


# The ticket step's key for the people's level decisions (schemas/response.py LevelDecision).
DECISIONS_KEY = "response:manual"


def decided(state: KeyState | None, decision: LevelDecision,
            published: Mapping[str, list[ResponseChange]]) -> tuple[KeyState, list[ResponseChange], bool]:
    """The manual history with the decision in it (in time order), the key's new state, and whether it was
    there already (a replay). The first decision at the key starts from the history on soc.response, which
    decisions published before they went through the step."""
    state = state or KeyState(dedup_key=DECISIONS_KEY)
    history = state.response[MANUAL] if MANUAL in state.response else list(published.get(MANUAL, []))
    if decision.change in history:
        return state.model_copy(update={"response": {**state.response, MANUAL: history}}), history, True
    history = sorted([*history, decision.change], key=lambda c: c.at)
    return state.model_copy(update={"response": {**state.response, MANUAL: history}}), history, False


def trigger_key(rule: str, dedup_key: str) -> str:
    return f"{rule}@{dedup_key}"


def signals(config: Config, current: Mapping[str, list[ResponseChange]], incident: Incident) -> dict[str, list[ResponseChange]]:
    """The rules this incident changes (or keeps up), each with its new history (per rule of this key)."""
    hold = hold_of(config)
    changed = {}
    for rule in config.rules.response.triggers:
        if rule.category is not incident.category:
            continue
        wanted = rule.level if SEVERITY_RANK[incident.severity] >= SEVERITY_RANK[rule.min_severity] else None
        history = current.get(rule.name, [])
        last = history[-1] if history else None
        kept = last is not None and last.level == wanted
        if (last is None and wanted is None) or (kept and (wanted is None or incident.received_at - last.at < hold / 2)):
            continue
        change = ResponseChange(at=incident.received_at, level=wanted, trigger=rule.name, by="pipeline",
                                reason=incident.title)  # the title names the colour (台风信号 橙色): no enum value after it
        changed[rule.name] = [c for c in history if c.at >= incident.received_at - KEEP_HISTORY] + [change]
    return changed


def bumped(incident: Incident, effect: LevelEffects | None) -> Incident:
    """Graded one step higher under a level that lists its category (red stays red)."""
    if effect is None or incident.category not in effect.severity_bump or incident.severity is Severity.red:
        return incident
    return incident.model_copy(update={"severity": _UP[incident.severity]})


def under(ticket: Ticket, level: Level, effect: LevelEffects | None, start: datetime, entry: HistoryEntry) -> Ticket:
    """The ticket under a level: its deadlines (running from `start`) shortened, never lengthened, and
    the level's watchers on a red one; `entry` (whose note gets the effects) goes to its history."""
    change: dict = {"response_level": level}
    note = entry.note
    if effect is not None:
        change["accept_due"] = min(ticket.accept_due, shortened(start, ticket.accept_due, effect))
        change["resolve_due"] = min(ticket.resolve_due, shortened(start, ticket.resolve_due, effect))
        change["support"] = parts_under(ticket.support, effect)
        if ticket.severity is Severity.red and effect.red_watchers:
            change["watchers"] = list(dict.fromkeys([*ticket.watchers, *effect.red_watchers]))
        if effect.deadline_factor != 1:
            note += f": 时限 x{effect.deadline_factor:g}"
        if ticket.category in effect.severity_bump:
            note += "，分级提高一级"
    return ticket.model_copy(update={**change, "history": [*ticket.history, entry.model_copy(update={"note": note})]})


# ------------------------------------------------------------------ a `retroactive` level on open tickets

OPEN = (TicketStatus.dispatched, TicketStatus.accepted)


def retroactive_event(config: Config, ticket: Ticket, in_force: InForce, now: datetime) -> TicketEvent | None:
    """The owner's command putting an open ticket under a retroactive level now in force; None when the
    level is not retroactive or the ticket is closed or already under it (or a more severe one). The
    event id names the level and the change that set it, so each ticket takes it once."""
    if not retroactive(config, in_force.level) or ticket.status not in OPEN or _under_at_least(ticket, in_force.level):
        return None
    change = in_force.change
    return TicketEvent(event_id=f"response-{in_force.level}-{change.trigger}-{int(change.at.timestamp())}",
                       ticket_id=ticket.ticket_id, action=TicketAction.respond, by=PIPELINE, actor=PIPELINE, at=now,
                       level=in_force.level, note=f"{in_force.level}级应急响应 ({change.trigger}) 追溯 retroactive")


def retroactively(config: Config, ticket: Ticket, event: TicketEvent) -> Ticket | str:
    """An open ticket under the event's level, its deadlines shortened from their own start; or why not."""
    if not retroactive(config, event.level):
        return f"level {event.level} is not retroactive"
    if ticket.status not in OPEN:
        return f"ticket is {ticket.status.value}"
    if _under_at_least(ticket, event.level):
        return f"ticket is already under level {ticket.response_level}"
    entry = HistoryEntry(at=event.at, by=PIPELINE, action="response", note=event.note, event_id=event.event_id,
                         kind=HistoryKind.response, level=event.level)
    changed = under(ticket, event.level, effects(config, event.level), deadlines_set_at(ticket), entry)
    return changed.model_copy(update={"version": ticket.version + 1})


def retroactive(config: Config, level: Level | None) -> bool:
    effect = effects(config, level)
    return effect is not None and effect.retroactive


def _under_at_least(ticket: Ticket, level: Level) -> bool:
    return ticket.response_level is not None and RANK[ticket.response_level] >= RANK[level]


def parts_under(parts: list[SupportPart], effect: LevelEffects | None) -> list[SupportPart]:
    """Supporting departments' parts under a level: the deadlines still ahead of each part shortened from when
    it was asked, as the lead's are (a supporting crew is hurried in a storm like the lead)."""
    if effect is None or effect.deadline_factor == 1:
        return parts
    hurried = []
    for part in parts:
        change = {}
        if part.status is SupportStatus.asked:
            change["accept_due"] = min(part.accept_due, shortened(part.asked_at, part.accept_due, effect))
        if part.status is not SupportStatus.fed_back:
            change["due"] = min(part.due, shortened(part.asked_at, part.due, effect))
        hurried.append(part.model_copy(update=change))
    return hurried


def shortened(start: datetime, due: datetime, effect: LevelEffects | None) -> datetime:
    if effect is None or effect.deadline_factor == 1:
        return due
    floor = timedelta(seconds=duration_s(effect.deadline_floor))
    return start + max((due - start) * effect.deadline_factor, min(floor, due - start))
