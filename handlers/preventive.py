"""Acting before the call (未诉先办): when a rainstorm or typhoon warning comes, each recurring place
(handlers/hotspots.py) of the kinds rules.yaml `preventive` names gets one preventive ticket for its
department, with the place's history in its description, before any resident calls. No I/O.

A warning period is a stretch in which a warning of the rule's kind is up (a CAP chain, from its first
alert to its Cancel or its expiry) or the response level of the rule's hazard is in force (flood for a
rainstorm; any trigger, the centre's decisions too), overlapping stretches joined. It is named by its kind
and its start, so a second warning inside it, a replay or another worker's timer names the same period.

The places are those recurring by the tickets opened before the period began: a resident's call during the
storm does not make a place, it is what the preventive ticket is there to forestall. Each place's ticket
is opened by a command on soc.ticket-events keyed `preventive:<period>:<place>` (a place is its category
and its founding ticket's point), and the ticket step opens it only when the key holds no ticket yet:
exactly one per place and period, however often and by whomever the command is sent.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone

from handlers import hotspots, plans, response
from handlers.deadlines import due_dates
from handlers.geo import community_at
from handlers.hotspots import Place, Sighting
from handlers.intake import digest
from handlers.privacy import never_masked
from handlers.routing import red_watchers
from handlers.tickets import PIPELINE
from schemas.cap import CapRecord
from schemas.config import Config, PreventiveRule
from schemas.enums import Hazard, Source, TicketKind, TicketStatus
from schemas.preventive import PreventiveOpen
from schemas.records import HistoryEntry, HistoryKind, KeyState, Ticket
from schemas.response import ResponseChange

KEY_PREFIX = "preventive:"
# The hazard whose response level a warning of each kind raises (rules.yaml response.triggers).
HAZARD = {"rainstorm": Hazard.flood, "typhoon": Hazard.typhoon}
WARNING_NAME = {"rainstorm": "暴雨", "typhoon": "台风"}
# The newest dates of a place's history the description names.
DATES = 3


@dataclass(frozen=True)
class Period:
    rule: PreventiveRule
    start: datetime

    @property
    def id(self) -> str:
        return f"{self.rule.warning}@{self.start.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def periods(config: Config, histories: Mapping[str, list[ResponseChange]], records: Iterable[CapRecord],
            now: datetime) -> list[Period]:
    """The warning periods `now` is in, one at most per rule."""
    records = list(records)
    hold = response.hold_of(config)
    found = []
    for rule in config.rules.preventive:
        stretches = hotspots.storms(plans.hazard_histories(config, histories, HAZARD[rule.warning]), hold,
                                    hotspots.cap_warnings(records, rule.warning))
        found += [Period(rule, s.start) for s in stretches if s.start <= now and (s.end is None or now < s.end)]
    return found


def places(config: Config, period: Period, found: Iterable[Sighting], every_storm: list[hotspots.Storm],
           now: datetime) -> list[Place]:
    """The recurring places of the rule's kinds by the tickets opened before the period began."""
    before = [s for s in found if s.opened_at < period.start and s.category in period.rule.categories]
    return hotspots.recurring(before, every_storm, config.rules.hotspots, now, config.district.tz)


def place_id(place: Place) -> str:
    return f"{place.category.value}:{place.lat:.6f},{place.lon:.6f}"


def key_of(command: PreventiveOpen) -> str:
    """The command's key on soc.ticket-events and in the ticket step's table."""
    return f"{KEY_PREFIX}{command.period}:{command.category.value}:{command.lat:.6f},{command.lon:.6f}"


def openings(config: Config, period: Period, found: Iterable[Place], at: datetime) -> list[PreventiveOpen]:
    """One command per place, built at `at` (the first one the ticket step takes opens the ticket)."""
    rule = period.rule
    warning = WARNING_NAME[rule.warning]
    out = []
    for place in found:
        problem = rule.categories[place.category]
        out.append(PreventiveOpen(
            event_id=f"preventive-{period.id}-{place_id(place)}", period=period.id, warning=rule.warning,
            period_start=period.start, at=at, category=place.category, severity=rule.severity,
            department=place.departments[0], lat=place.lat, lon=place.lon,
            community=community_at(config.district.communities, place.lat, place.lon),
            title=f"未诉先办：{warning}预警，{problem}高发点位提前处置",
            description=history_text(config, place, problem)))
    return out


def history_text(config: Config, place: Place, problem: str) -> str:
    """"此处近30天积水4次（最近：8月3日、8月20日、8月28日）", and the storms it came back in."""
    rules = config.rules.hotspots
    dates = "、".join(_day(d) for d in reversed(place.last_dates[:DATES]))
    text = f"此处近{rules.days}天{problem}{place.count}次（最近：{dates}）"
    if hotspots.Rule.storms in place.rules:
        text += f"，近{rules.storms}场风雨每场都有"
    return text


def _day(iso: str) -> str:
    day = date.fromisoformat(iso)
    return f"{day.month}月{day.day}日"


# ------------------------------------------------------------------ the place's key in the ticket step

@dataclass(frozen=True)
class Decided:
    state: KeyState
    tickets: tuple[Ticket, ...]
    replayed: bool = False


def ticket_id_of(config: Config, command: PreventiveOpen) -> str:
    return never_masked(f"T{command.period_start.astimezone(config.district.tz):%Y%m%d}-{digest(key_of(command), size=4)}")


def on_command(config: Config, state: KeyState | None, command: PreventiveOpen, key: str) -> Decided:
    if state is not None and state.tickets:
        # Opened before (a replay, another worker, the next tick, a second warning of the period): as it stands.
        return Decided(state, tuple(state.tickets.values()), replayed=True)
    ticket = _ticket(config, command, key)
    return Decided((state or KeyState(dedup_key=key)).model_copy(update={"tickets": {ticket.ticket_id: ticket}}),
                   (ticket,))


def _ticket(config: Config, command: PreventiveOpen, key: str) -> Ticket:
    at = command.at
    accept_due, resolve_due = due_dates(config, command.category, command.severity, at)
    return Ticket(
        ticket_id=ticket_id_of(config, command), incident_id=command.event_id, source_ref=command.period,
        dedup_key=key, department=command.department,
        watchers=list(red_watchers(config, command.department, command.severity)),
        # The warning that calls for it is the flood-prevention (三防) system's, as a typhoon plan's tasks are.
        source=Source.flood, category=command.category, subcategory=command.warning,
        severity=command.severity, opened_severity=command.severity, title=command.title,
        description=command.description, community=command.community, lat=command.lat, lon=command.lon,
        status=TicketStatus.dispatched, incident_ids=[], observed_at=at, received_at=at, last_seen_at=at,
        dispatched_at=at, accept_due=accept_due, resolve_due=resolve_due, kind=TicketKind.preventive,
        history=[HistoryEntry(at=at, by=PIPELINE, action="dispatch", note=command.title, event_id=command.event_id,
                              kind=HistoryKind.dispatch, department=command.department)],
    )
