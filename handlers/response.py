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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.config import Config
from schemas.enums import SEVERITY_RANK, Severity
from schemas.records import Incident
from schemas.response import MANUAL, RANK, Level, LevelEffects, ResponseChange, duration_s

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
    best: InForce | None = None
    for key, changes in histories.items():
        manual = key == MANUAL
        for i, change in enumerate(changes):
            if change.level is None or change.at > at:
                continue
            following = changes[i + 1].at if i + 1 < len(changes) else None
            if manual:
                ends = following
            else:
                lapse = change.at + hold
                ends = (lapse if following is None else min(following, lapse)) + hold
            if ends is not None and at >= ends:
                continue
            if best is None or (RANK[change.level], -change.at.timestamp()) > (RANK[best.level],
                                                                             -best.change.at.timestamp()):
                best = InForce(change.level, change)
    return best


def hold_of(config: Config) -> timedelta:
    return timedelta(seconds=duration_s(config.rules.response.hold))


def effects(config: Config, level: Level | None) -> LevelEffects | None:
    return config.rules.response.levels.get(level) if level else None


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
                                reason=f"{incident.title} ({incident.severity.value})")
        changed[rule.name] = [c for c in history if c.at >= incident.received_at - KEEP_HISTORY] + [change]
    return changed


def bumped(incident: Incident, effect: LevelEffects | None) -> Incident:
    """Graded one step higher under a level that lists its category (red stays red)."""
    if effect is None or incident.category not in effect.severity_bump or incident.severity is Severity.red:
        return incident
    return incident.model_copy(update={"severity": _UP[incident.severity]})


def shortened(start: datetime, due: datetime, effect: LevelEffects | None) -> datetime:
    if effect is None or effect.deadline_factor == 1:
        return due
    floor = timedelta(seconds=duration_s(effect.deadline_floor))
    return start + max((due - start) * effect.deadline_factor, min(floor, due - start))
