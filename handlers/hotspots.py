"""Recurring places (高发点位): where the same kind of problem keeps coming back. No I/O.

A place is found per category by greedy clustering in time order: each ticket (oldest first, then by
ticket id) joins the first place, in the order the places were founded, whose founding ticket lies within
`radius_m` of it (haversine, handlers/geo.py); otherwise it founds a new place at its own point. Anchoring
on the founding ticket rather than on a moving centre keeps a place from creeping along a chain of near
neighbours, so two spots 600 m apart stay two places at 200 m whatever lies between them, and the fixed
order gives the same places on every read. Places are looked up through a grid of cells a little wider than
the radius, so a founder within the radius is always in the 3 x 3 cells around a ticket: the same answer as
comparing with every place, without the cost of it.

A place is recurring by either rule of rules.yaml `hotspots`, over open and closed tickets alike:
- days: at least `min_count` of its tickets opened in the last `days` days;
- storms: one of its tickets opened in each of the last `storms` storms that are over. A storm is a
  stretch with an emergency-response level in force (any trigger: the centre's decisions, a gauge, a
  typhoon or rainstorm warning) or a CAP rainstorm warning up, overlapping stretches joined. A storm still
  going on is not counted yet, so a place does not stop being recurring the moment the next storm begins.
Only the tickets those rules look at (opened in the last `days` days or in one of those storms) are
clustered.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum

from handlers import response
from handlers.geo import EARTH_RADIUS_M, distance_m
from handlers.performance import Facts
from schemas.cap import CapRecord, Kind
from schemas.config import HotspotRules
from schemas.enums import Category, TicketStatus
from schemas.response import ResponseChange

# A place lists its newest few days and ticket ids, not all of them (a station can alarm hundreds of times).
LAST_DATES = 5
LAST_TICKETS = 10


class Rule(str, Enum):
    days = "days"
    storms = "storms"


@dataclass(frozen=True)
class Sighting:
    """One ticket as the recurring places need it."""

    ticket_id: str
    category: Category
    lat: float
    lon: float
    opened_at: datetime
    department: str
    open: bool


@dataclass(frozen=True)
class Storm:
    start: datetime
    end: datetime | None  # None: still going on


@dataclass(frozen=True)
class Place:
    category: Category
    lat: float  # the founding ticket's point
    lon: float
    rules: tuple[Rule, ...]  # the rules it meets, in Rule's order
    count: int  # its tickets opened in the last `days` days
    storms: int  # of the last `storms` storms over, how many it came back in
    open: int  # of its tickets looked at, how many are still open
    last_dates: tuple[str, ...]  # local dates (YYYY-MM-DD) of its tickets, newest first
    departments: tuple[str, ...]  # the departments its tickets went to, most tickets first
    ticket_ids: tuple[str, ...]  # newest first
    last_opened_at: datetime


def sightings(facts: Mapping[str, Facts]) -> list[Sighting]:
    """The tickets of the store's facts (ticket id -> facts) that say where and what they were; a plan's
    tasks are not problems reported at a place, and are left out."""
    out = []
    for ticket_id, f in facts.items():
        if f.category is None or f.lat is None or f.lon is None or f.task:
            continue
        out.append(Sighting(ticket_id, Category(f.category), f.lat, f.lon,
                            datetime.fromtimestamp(f.dispatched_at, timezone.utc), f.department,
                            f.status != TicketStatus.closed.value))
    return out


def rainstorm_warnings(records: Iterable[CapRecord]) -> list[Storm]:
    return cap_warnings(records, "rainstorm")


def cap_warnings(records: Iterable[CapRecord], kind: Kind) -> list[Storm]:
    """Each Actual warning chain of `kind` (Alert -> Update -> Cancel): from its first alert's receipt to
    its Cancel or to the lowering of its signal on expiry; still up when neither has come."""
    chains: dict[str, list[CapRecord]] = defaultdict(list)
    for record in records:
        if record.status == "Actual":
            chains[record.chain].append(record)
    out = []
    for chain in chains.values():
        if not any(r.kind == kind for r in chain):
            continue
        chain.sort(key=lambda r: (r.received_at, r.key))
        last = chain[-1]
        end = last.received_at if last.msg_type == "Cancel" else last.lowered_at
        out.append(Storm(chain[0].received_at, end))
    return out


def storms(histories: Mapping[str, list[ResponseChange]], hold: timedelta,
           warnings: Iterable[Storm] = ()) -> list[Storm]:
    """Response-level stretches and rainstorm warnings, overlapping ones joined, oldest first."""
    every = [(s.start, s.end) for key, changes in histories.items() for s in response.spans(key, changes, hold)]
    every += [(w.start, w.end) for w in warnings]
    every.sort(key=lambda p: (p[0], p[1] is None, p[1] or p[0]))
    joined: list[list] = []
    for start, end in every:
        if joined and (joined[-1][1] is None or start <= joined[-1][1]):
            joined[-1][1] = None if end is None or joined[-1][1] is None else max(joined[-1][1], end)
        else:
            joined.append([start, end])
    return [Storm(start, end) for start, end in joined]


def recurring(found: Iterable[Sighting], every_storm: list[Storm], rules: HotspotRules, now: datetime,
              zone: tzinfo) -> list[Place]:
    """The recurring places as of `now`, most tickets first (then newest, then category)."""
    since = now - timedelta(days=rules.days)
    over = [s for s in every_storm if s.end is not None and s.end <= now]
    counted = over[-rules.storms:] if rules.storms else []
    kinds = set(rules.categories)

    def storm_of(at: datetime) -> int | None:
        return next((i for i, s in enumerate(counted) if s.start <= at < s.end), None)

    looked_at = sorted((s for s in found if (not kinds or s.category in kinds) and s.opened_at <= now
                        and (s.opened_at >= since or storm_of(s.opened_at) is not None)),
                       key=lambda s: (s.opened_at, s.ticket_id))
    places: dict[Category, list[list[Sighting]]] = defaultdict(list)
    cell = _Cells(rules.radius_m, looked_at)
    founders: dict[tuple[Category, int, int], list[int]] = defaultdict(list)  # cell -> places founded there
    for sighting in looked_at:
        group = places[sighting.category]
        y, x = cell(sighting)
        near = sorted(i for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                      for i in founders.get((sighting.category, y + dy, x + dx), ()))
        home = next((i for i in near if distance_m(group[i][0].lat, group[i][0].lon, sighting.lat, sighting.lon)
                     <= rules.radius_m), None)
        if home is None:
            founders[sighting.category, y, x].append(len(group))
            group.append([sighting])
        else:
            group[home].append(sighting)
    out = []
    for category, group in places.items():
        for members in group:
            place = _place(category, members, since, storm_of, len(counted), rules, zone)
            if place is not None:
                out.append(place)
    out.sort(key=lambda p: (-p.count, -p.storms, -p.last_opened_at.timestamp(), p.category.value, p.lat, p.lon))
    return out


class _Cells:
    """Grid cells at least `radius_m` (and 1 % more, for the sphere) wide everywhere among these sightings."""

    def __init__(self, radius_m: float, among: list[Sighting]):
        widest = max((abs(s.lat) for s in among), default=0.0)
        metres_per_degree = EARTH_RADIUS_M * math.pi / 180
        self.lat_step = radius_m * 1.01 / metres_per_degree
        self.lon_step = radius_m * 1.01 / (metres_per_degree * max(math.cos(math.radians(widest)), 1e-6))

    def __call__(self, s: Sighting) -> tuple[int, int]:
        return math.floor(s.lat / self.lat_step), math.floor(s.lon / self.lon_step)


def _place(category: Category, members: list[Sighting], since: datetime, storm_of, storms_counted: int,
           rules: HotspotRules, zone: tzinfo) -> Place | None:
    count = sum(s.opened_at >= since for s in members)
    returned = {i for s in members if (i := storm_of(s.opened_at)) is not None}
    met = []
    if count >= rules.min_count:
        met.append(Rule.days)
    if rules.storms and storms_counted == rules.storms and len(returned) == rules.storms:
        met.append(Rule.storms)
    if not met:
        return None
    newest = sorted(members, key=lambda s: (s.opened_at, s.ticket_id), reverse=True)
    dates = list(dict.fromkeys(s.opened_at.astimezone(zone).date().isoformat() for s in newest))
    departments = Counter(s.department for s in members)
    first = members[0]
    return Place(category, first.lat, first.lon, tuple(met), count, len(returned), sum(s.open for s in members),
                 tuple(dates[:LAST_DATES]), tuple(sorted(departments, key=lambda d: (-departments[d], d))),
                 tuple(s.ticket_id for s in newest[:LAST_TICKETS]), newest[0].opened_at)
