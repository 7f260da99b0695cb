"""district.yaml, rules.yaml and routing.yaml: strict models, cross-checked once at load.

Every error names the file, the path inside it and what is wrong, e.g.
``routing.yaml: categories.traffic_accident.department: undefined department 'trafic_police'``.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator, model_validator

from schemas.enums import OPS_CENTRE, Category, Severity
from schemas.correlation import CorrelationRule
from schemas.evidence import EvidenceRules
from schemas.geo import load_map
from schemas.plans import Plans
from schemas.problems import ConfigError, error_path
from schemas.resources import Resources
from schemas.response import Duration, Maintenance, ResponseRules, duration_s
from schemas.silences import InhibitRule
from schemas.strict import Strict, unique_names
from schemas.measures import KINDS, MEASURES




# ---------------------------------------------------------------- district.yaml

class Community(Strict):
    name: str
    # [lon, lat] pairs, WGS84, first point not repeated at the end.
    polygon: Annotated[list[tuple[float, float]], Field(min_length=3)]

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat): rules most points out without the ray cast."""
        lons, lats = zip(*self.polygon)
        return min(lons), min(lats), max(lons), max(lats)


class Department(Strict):
    name: str
    name_en: str = ""
    token_env: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
    community: str | None = None
    supervisor: str | None = None


class WorkCalendar(Strict):
    work_days: list[Annotated[int, Field(ge=1, le=7)]] = [1, 2, 3, 4, 5]
    work_hours: list[str] = ["08:30-12:00", "14:00-18:00"]
    holidays: list[date] = []
    # Weekend days worked to make up for a holiday (调休).
    make_up_days: list[date] = []

    @field_validator("work_hours")
    @classmethod
    def _spans(cls, spans: list[str]) -> list[str]:
        for span in spans:
            parse_span(span)
        return spans


LOCAL_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")


def _local_minute(value: Any) -> datetime:
    """'2026-11-30T08:30' -> a naive datetime, read in the district's time zone."""
    if isinstance(value, str) and LOCAL_MINUTE.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"bad local time {value!r}: use YYYY-MM-DDTHH:MM in the district time zone, quoted")


LocalMinute = Annotated[datetime, BeforeValidator(_local_minute)]
DutyRole = Literal["leader", "officer"]
# 带班领导 and 值班员: check-config wants both on duty at every minute.
DUTY_ROLES: tuple[str, ...] = ("leader", "officer")


class DutyMember(Strict):
    name: Annotated[str, Field(min_length=1)]
    # The variable holding the member's mobile number: numbers never sit in the config files.
    phone_env: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]


class DutyRotation(Strict):
    role: DutyRole
    every: Literal["daily", "weekly"]
    # The first shift's start; every shift starts at this clock time and lasts 1 day or 7 days.
    start: LocalMinute
    # Which shifts this rotation staffs, by the calendar day a shift starts on.
    days: Literal["all", "workdays", "restdays"] = "all"
    members: Annotated[list[str], Field(min_length=1)]


class DutyOverride(Strict):
    role: DutyRole
    member: str
    start: LocalMinute = Field(alias="from")
    end: LocalMinute = Field(alias="to")
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> "DutyOverride":
        if self.end <= self.start:
            raise ValueError("to must be after from")
        return self


class Duty(Strict):
    """The duty roster. For one role and one minute: an override if one covers it, else the first
    rotation (in file order) whose shift at that minute it staffs."""

    members: dict[str, DutyMember] = {}
    rotations: list[DutyRotation] = []
    overrides: list[DutyOverride] = []

    @field_validator("overrides")
    @classmethod
    def _no_overlap(cls, overrides: list[DutyOverride]) -> list[DutyOverride]:
        for i, later in enumerate(overrides):
            for j, earlier in enumerate(overrides[:i]):
                if later.role == earlier.role and later.start < earlier.end and earlier.start < later.end:
                    raise ValueError(f"overrides {j} and {i} overlap for the {later.role} role")
        return overrides


EnvName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]


class Open311Client(Strict):
    """A calling system of the Open311 interface: its api_key is in `key_env`; its reports carry `channel`."""

    key_env: EnvName
    channel: Literal["mobile_app", "hotline_12345"] = "mobile_app"


class CapFeed(Strict):
    """A CAP 1.2 warning feed (a meteorological bureau): it sends `Authorization: Bearer <token_env>`."""

    name: str
    token_env: EnvName


class Intake(Strict):
    """The machine clients of the standard interfaces (Open311, CAP), each with its own secret."""

    open311: dict[str, Open311Client] = {}
    cap_feeds: dict[str, CapFeed] = {}
    # The <sender> of the CAP alerts this district publishes (GET /api/tickets/{id}/cap).
    cap_sender: Annotated[str, Field(pattern=r"^[^\s,<>&'\"]+$")] = "soc.example.gov.cn"
    # The district's administrative division codes: a CAP area naming one of them (or a division containing
    # it) covers the whole district.
    cap_geocodes: list[Annotated[str, Field(pattern=r"^\d{6,12}$")]] = []
    # A CAP alert `sent` further ahead of the receiving worker's clock than this is refused: a feed's
    # clock gone wrong or a forged date, which would otherwise hold a signal up until then.
    cap_clock_skew: Duration = "10m"

    @cached_property
    def cap_skew(self) -> timedelta:
        return timedelta(seconds=duration_s(self.cap_clock_skew))


class StreamsPerRole(Strict):
    """Live-board streams (SSE) open at once on one worker by all the people of a role together."""

    clerk: Annotated[int, Field(ge=0)] = 300
    supervisor: Annotated[int, Field(ge=0)] = 100
    duty_officer: Annotated[int, Field(ge=0)] = 100
    leader: Annotated[int, Field(ge=0)] = 50
    admin: Annotated[int, Field(ge=0)] = 20
    # The departments' machine credentials (scripts, feeds): one each, shared by whatever holds it.
    service: Annotated[int, Field(ge=0)] = 40


class BoardStreams(Strict):
    """How many live-board streams one worker serves, and to whom (streams/http/board_hub.py): one
    person or one role cannot take the board from the duty officers and the wall screens."""

    total: Annotated[int, Field(ge=1, le=10_000)] = 500
    # Of `total`, the last ones: only the centre's duty officers and the wall screens may take them.
    reserved: Annotated[int, Field(ge=0)] = 50
    # One person's streams, every session and token of theirs together (a board in a few tabs).
    per_person: Annotated[int, Field(ge=1)] = 8
    # The wall screens (大屏), which all show the board with the one wall token.
    wall_screens: Annotated[int, Field(ge=1)] = 16
    per_role: StreamsPerRole = StreamsPerRole()

    @model_validator(mode="after")
    def _reserve_within_total(self) -> "BoardStreams":
        if self.reserved >= self.total:
            raise ValueError(f"reserved ({self.reserved}) must be less than total ({self.total})")
        return self


class SignIn(Strict):
    """How people sign in to the pages and the API (streams/accounts.py, handlers/sign_in.py).

    Failed sign-ins slow down whoever makes them, never lock an account: failures from one address
    against one account delay that address's next tries on that account (OWASP's progressive delay),
    so a guesser elsewhere cannot keep the owner out."""

    # A session nobody used this long is signed out (every request the pages make keeps it alive).
    idle_expiry: Duration = "8h"
    # Failures from one address against one account that cost nothing (typing mistakes) ...
    free_failures: Annotated[int, Field(ge=1, le=100)] = 5
    # ... then the next try from there waits this long after the last failure, doubling with each
    # further failure up to max_delay.
    first_delay: Duration = "30s"
    max_delay: Duration = "15m"
    # Failures are forgotten this long after the last one (at least max_delay).
    failure_memory: Duration = "1h"
    # An address with a successful sign-in to the account this recent is the owner's usual one: the
    # account's ceiling below never slows it.
    known_address_for: Duration = "720h"
    # Failures against one account from all addresses together (within failure_memory) past which
    # addresses not known for the account are slowed on the same schedule, counted from the ceiling.
    account_ceiling: Annotated[int, Field(ge=1, le=100_000)] = 100
    # A supervisor decides the extensions of their own department's tickets; false: the centre does.
    supervisors_decide_extensions: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_lockout(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"max_failures", "lockout"} & set(data):
            raise ValueError("max_failures and lockout are gone: accounts are no longer locked; failures slow "
                             "the address that makes them (free_failures, first_delay, max_delay)")
        return data

    @model_validator(mode="after")
    def _memory_outlasts_the_delay(self) -> "SignIn":
        if self.failure_memory_s < self.max_delay_s:
            raise ValueError(f"failure_memory ({self.failure_memory}) must be at least max_delay "
                             f"({self.max_delay}): else a guesser who waits out the delay starts afresh")
        if self.first_delay_s > self.max_delay_s:
            raise ValueError(f"first_delay ({self.first_delay}) must be at most max_delay ({self.max_delay})")
        return self

    @cached_property
    def idle_expiry_s(self) -> int:
        return int(duration_s(self.idle_expiry))

    @cached_property
    def first_delay_s(self) -> float:
        return duration_s(self.first_delay)

    @cached_property
    def max_delay_s(self) -> float:
        return duration_s(self.max_delay)

    @cached_property
    def failure_memory_s(self) -> int:
        return int(duration_s(self.failure_memory))

    @cached_property
    def known_address_for_s(self) -> int:
        return int(duration_s(self.known_address_for))


class District(Strict):
    name: str
    timezone: str = "Asia/Shanghai"
    leadership: str = OPS_CENTRE
    communities: dict[str, Community]
    departments: dict[str, Department]
    calendar: WorkCalendar = WorkCalendar()
    # Optional so that older files load; `soc check-config` still refuses a district without one.
    duty: Duty = Duty()
    intake: Intake = Intake()
    # The variable holding the wall screens' token: it reads what the operations centre reads and may
    # not act (the big screen signs in once; nobody at it can verify or silence anything).
    wall_token_env: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")] | None = None
    board_streams: BoardStreams = BoardStreams()
    sign_in: SignIn = SignIn()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# ---------------------------------------------------------------- rules.yaml

class Threshold(Strict):
    measure: str
    at_least: float
    severity: Severity


class KindRule(Strict):
    # `none`: readings below every threshold are normal, not incidents (a pump running, light rain).
    base: Severity | None

    @field_validator("base", mode="before")
    @classmethod
    def _none(cls, value):
        return None if value == "none" else value

    thresholds: list[Threshold] = []


class ConstructionLimits(Strict):
    noise_day_db: float = 70.0
    noise_night_db: float = 55.0
    pm10_ugm3: float = 150.0
    day_starts: str = "06:00"
    night_starts: str = "22:00"

    @field_validator("day_starts", "night_starts")
    @classmethod
    def _clock_time(cls, text: str) -> str:
        # Checked here: the construction handler parses these for every event.
        if not re.fullmatch(r"\d{2}:\d{2}", text):
            raise ValueError(f"bad time {text!r}: use HH:MM")
        try:
            time.fromisoformat(text)
        except ValueError:
            raise ValueError(f"bad time {text!r}: use HH:MM") from None
        return text


SOURCES = ("traffic", "flood", "city", "construction")


class DedupRules(Strict):
    window_minutes: dict[Literal["traffic", "flood", "city", "construction"], Annotated[int, Field(gt=0)]]
    grid_m: Annotated[float, Field(gt=0)] = 100.0

    @field_validator("window_minutes")
    @classmethod
    def _every_source(cls, windows: dict[str, int]) -> dict[str, int]:
        # Triage looks the window up for every incident of every source.
        missing = [source for source in SOURCES if source not in windows]
        if missing:
            raise ValueError(f"no window for {', '.join(missing)}")
        return windows


class Heartbeat(Strict):
    """A kind of device that reports every `every`: silent for `every` x `missing`, it is offline."""

    every: Duration
    missing: Annotated[int, Field(ge=1, le=100)] = 3

    @cached_property
    def silent_after(self) -> timedelta:
        return timedelta(seconds=duration_s(self.every) * self.missing)


HEARTBEAT_KINDS = ("flood.water_level", "flood.rainfall", "flood.waterlogging", "flood.pump_station",
                   "construction.noise", "construction.dust", "construction.activity_detected")


class AllClear(Strict):
    """An alarm's source back to normal: at least `readings` readings below every threshold, spanning `after`."""

    after: Duration
    readings: Annotated[int, Field(ge=3, le=100)] = 3

    @cached_property
    def span(self) -> timedelta:
        return timedelta(seconds=duration_s(self.after))


class Heartbeats(Strict):
    kinds: dict[Literal[HEARTBEAT_KINDS], Heartbeat] = {}
    # Devices taken out of service: no longer tracked, never reported silent.
    retired: list[str] = []


class HotspotRules(Strict):
    """高发点位 (handlers/hotspots.py): a place where tickets of one category came back at least
    `min_count` times within `radius_m` metres over the last `days` days, or in each of the last `storms`
    storms (0 turns that rule off). `categories` narrows both to these kinds; empty means every kind."""

    radius_m: Annotated[float, Field(gt=0, le=2000)] = 100.0
    min_count: Annotated[int, Field(ge=2, le=1000)] = 3
    days: Annotated[int, Field(ge=1, le=366)] = 30
    storms: Annotated[int, Field(ge=0, le=20)] = 3
    categories: list[Category] = []

    @field_validator("categories")
    @classmethod
    def _once_each(cls, categories: list[Category]) -> list[Category]:
        doubled = sorted({c.value for c in categories if categories.count(c) > 1})
        if doubled:
            raise ValueError(f"categories listed twice: {', '.join(doubled)}")
        return categories


class PreventiveRule(Strict):
    """未诉先办 (handlers/preventive.py): when a `warning` (a CAP warning of that kind, or the response level
    of its hazard raised) comes, each recurring place of these `categories` gets one ticket of `severity`
    for its department. Each category names the problem in the words of the ticket's description
    ("此处近30天积水4次")."""

    warning: Literal["rainstorm", "typhoon"]
    categories: Annotated[dict[Category, Annotated[str, Field(min_length=1, max_length=20)]], Field(min_length=1)]
    severity: Severity = Severity.blue


class Rules(Strict):
    dedup: DedupRules
    construction_limits: ConstructionLimits = ConstructionLimits()
    traffic: dict[str, KindRule]
    flood: dict[str, KindRule]
    city: dict[str, KindRule]
    construction: dict[str, KindRule]
    maintenance: list[Maintenance] = []
    inhibit: list[InhibitRule] = []
    response: ResponseRules = ResponseRules()
    correlations: list[CorrelationRule] = []
    heartbeats: Heartbeats = Heartbeats()
    all_clear: dict[Literal["flood.water_level", "flood.rainfall", "flood.waterlogging"], AllClear] = {}
    hotspots: HotspotRules = HotspotRules()
    preventive: list[PreventiveRule] = []

    @field_validator("preventive")
    @classmethod
    def _preventive_places_are_looked_for(cls, rules: list[PreventiveRule], info) -> list[PreventiveRule]:
        """One rule per warning, and only categories the recurring places are found for (`hotspots` is
        validated first: it is declared first)."""
        warnings = [r.warning for r in rules]
        doubled = sorted({w for w in warnings if warnings.count(w) > 1})
        if doubled:
            raise ValueError(f"warnings listed twice: {', '.join(doubled)}")
        hotspots = info.data.get("hotspots")
        looked_for = set(hotspots.categories) if hotspots is not None else set()
        for n, rule in enumerate(rules):
            unknown = [c.value for c in rule.categories if looked_for and c not in looked_for]
            if unknown:
                raise ValueError(f"rule {n} ({rule.warning}): not among hotspots.categories: {', '.join(unknown)}")
        return rules

    @field_validator("correlations")
    @classmethod
    def _unique_correlations(cls, rules: list[CorrelationRule]) -> list[CorrelationRule]:
        return unique_names(rules, "correlation")


# ---------------------------------------------------------------- routing.yaml

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d|wh)$")


def routing_duration(text: str) -> str:
    if not DURATION.match(text):
        raise ValueError(f"bad duration {text!r}: use a number and s, m, h, d or wh (working hours)")
    return text


class Deadline(Strict):
    accept: str
    resolve: str

    @field_validator("accept", "resolve")
    @classmethod
    def _duration(cls, text: str) -> str:
        return routing_duration(text)


class FollowupRules(Strict):
    """回访: after verification, a case from these channels is owed a call to the citizen."""

    channels: list[Literal["hotline_12345", "mobile_app", "grid_patrol", "camera_ai"]] = ["hotline_12345",
                                                                                         "mobile_app"]
    within: str = "2wh"  # from closure; the centre's escalation ladder runs on it
    # Whether 基本满意 counts as satisfied in 满意率.
    basically_satisfied_counts: bool = True
    # The nth `unsatisfied` (发回重办 each time) also escalates to the leadership (提级督办).
    escalate_after_unsatisfied: int = Field(3, ge=1)
    # After this many `unreachable` calls the case closes unrated.
    close_after_unreachable: int = Field(2, ge=1)

    @field_validator("within")
    @classmethod
    def _duration(cls, text: str) -> str:
        return routing_duration(text)


class CategoryRoute(Strict):
    department: str
    to_workstation: bool = False
    # 协办: departments that always support the lead on this category (each with its own part of the ticket).
    support: list[str] = []


class DisputeRules(Strict):
    """派单异议: a disputed ticket waits for the centre's ruling at most `rule_within`."""

    rule_within: str = "2h"

    @field_validator("rule_within")
    @classmethod
    def _duration(cls, text: str) -> str:
        return routing_duration(text)


class EscalationLadder(Strict):
    remind_before: float = Field(0.2, gt=0, lt=1, description="fraction of the allowed time left")
    report_after: float = Field(0.5, gt=0, description="fraction of the allowed time overdue")


class Routing(Strict):
    categories: dict[Category, CategoryRoute]
    community_overrides: dict[str, dict[Category, str]] = {}
    red_also: list[str] = [OPS_CENTRE]
    out_of_jurisdiction: str = OPS_CENTRE
    deadlines: dict[Severity, Deadline]
    category_deadlines: dict[Category, dict[Severity, Deadline]] = {}
    escalation: EscalationLadder = EscalationLadder()
    followup: FollowupRules = FollowupRules()
    evidence: EvidenceRules = EvidenceRules()
    disputes: DisputeRules = DisputeRules()

    @field_validator("categories")
    @classmethod
    def _every_category(cls, categories: dict[Category, CategoryRoute]) -> dict[Category, CategoryRoute]:
        missing = [c.value for c in Category if c not in categories]
        if missing:
            raise ValueError(f"no route for {', '.join(missing)}")
        return categories

    @field_validator("deadlines")
    @classmethod
    def _every_severity(cls, deadlines: dict[Severity, Deadline]) -> dict[Severity, Deadline]:
        missing = [s.value for s in Severity if s not in deadlines]
        if missing:
            raise ValueError(f"no deadline for {', '.join(missing)}")
        return deadlines


# ---------------------------------------------------------------- board.yaml (optional)

class AlarmKind(str, Enum):
    """The changes on the board that may sound. Anything else (a merge, an accept, a 催办) never does."""

    new_red = "new_red"                        # a new red ticket, or one raised to red
    unacknowledged_red = "unacknowledged_red"  # a red ticket nobody has marked 已知悉 for `repeat_after`
    escalated = "escalated"                    # 督办
    reported = "reported"                      # 通报
    response_raised = "response_raised"        # the emergency-response level went up


class Tone(Strict):
    """One alarm's sound: `beeps` short square-wave tones of `frequency_hz`."""

    frequency_hz: Annotated[int, Field(ge=200, le=2000)]
    beeps: Annotated[int, Field(ge=1, le=5)] = 2


class Alarms(Strict):
    """Which board changes sound, how, and how often (docs/board.md, the alarm policy)."""

    # At most one sound in this long: what comes meanwhile waits and is announced with the next one.
    interval: Duration = "30s"
    # A red ticket without 已知悉 sounds again after this long (and again after as long, until seen).
    repeat_after: Duration = "5m"
    # The kinds that sound, each with its own tone; a kind left out is shown but never sounds.
    tones: dict[AlarmKind, Tone] = {
        AlarmKind.new_red: Tone(frequency_hz=1040, beeps=3),
        AlarmKind.unacknowledged_red: Tone(frequency_hz=880, beeps=1),
        AlarmKind.escalated: Tone(frequency_hz=660, beeps=2),
        AlarmKind.reported: Tone(frequency_hz=520, beeps=3),
        AlarmKind.response_raised: Tone(frequency_hz=440, beeps=4),
    }

    @field_validator("interval")
    @classmethod
    def _calm(cls, text: str) -> str:
        # The point of the policy: a wall that sounds more than twice a minute gets muted.
        if duration_s(text) < 30:
            raise ValueError(f"{text!r} is under 30s: the board sounds at most twice a minute")
        return text

    @field_validator("repeat_after")
    @classmethod
    def _repeat(cls, text: str) -> str:
        if duration_s(text) < 60:
            raise ValueError(f"{text!r} is under 1m")
        return text

    @field_validator("tones")
    @classmethod
    def _distinct(cls, tones: dict[AlarmKind, Tone]) -> dict[AlarmKind, Tone]:
        # A tone is how a person tells the kinds apart without looking: two kinds may not share one.
        seen: dict[tuple[int, int], AlarmKind] = {}
        for kind, tone in tones.items():
            key = (tone.frequency_hz, tone.beeps)
            if key in seen:
                raise ValueError(f"{kind.value} sounds like {seen[key].value} "
                                 f"({tone.frequency_hz} Hz x {tone.beeps}): give each kind its own tone")
            seen[key] = kind
        return tones

    @property
    def interval_s(self) -> float:
        return duration_s(self.interval)

    @property
    def repeat_after_s(self) -> float:
        return duration_s(self.repeat_after)


TILE_URL = re.compile(r"^https?://[^/\s{}]*(\{s\})?[^/\s{}]*(:\d+)?/\S*$")


class Basemap(Strict):
    """Tiles under the board's map: an XYZ template such as an offline tile server's or 天地图's
    (`{z}`, `{x}`, `{y}`, and `{s}` for one of `subdomains`), in Web Mercator (EPSG:3857)."""

    url: str
    attribution: Annotated[str, Field(min_length=1, max_length=200)]
    subdomains: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,20}$")]] = []
    min_zoom: Annotated[int, Field(ge=0, le=22)] = 10
    max_zoom: Annotated[int, Field(ge=0, le=22)] = 18

    @field_validator("url")
    @classmethod
    def _template(cls, url: str) -> str:
        if not TILE_URL.match(url):
            raise ValueError(f"{url!r} is not an http(s) address ({{s}} may only stand in the host)")
        missing = [p for p in ("{z}", "{x}", "{y}") if p not in url]
        if missing:
            raise ValueError(f"{url!r} lacks {', '.join(missing)}")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> Basemap:
        if ("{s}" in self.url) != bool(self.subdomains):
            raise ValueError("subdomains and {s} in url go together: give both or neither")
        if self.min_zoom > self.max_zoom:
            raise ValueError(f"min_zoom {self.min_zoom} is above max_zoom {self.max_zoom}")
        return self

    @property
    def origins(self) -> list[str]:
        """Where the page fetches tiles from (its CSP allows these and no other)."""
        root = re.match(r"^(https?://[^/]+)", self.url).group(1)
        return sorted({root.replace("{s}", s) for s in self.subdomains} if self.subdomains else {root})


class Board(Strict):
    alarms: Alarms = Alarms()
    # None: the map draws map.geojson's sketch only, offline.
    basemap: Basemap | None = None


# ---------------------------------------------------------------- loading

class Place(Strict):
    """A named feature of the district map (map.geojson): what a ticket's title names a spot by."""
    id: str
    name: str
    layer: str
    # (lon, lat) vertices: one for a point, two or more for a road or a river.
    points: tuple[tuple[float, float], ...]


class Config(Strict):
    district: District
    rules: Rules
    routing: Routing
    # board.yaml: the board's alarm policy and basemap; the defaults when the file is absent.
    board: Board = Board()
    # The map's named features; none when the deployment ships no map.geojson.
    places: tuple[Place, ...] = ()
    # The emergency pre-plans (plans.yaml); none when the deployment ships no plans.yaml.
    plans: Plans = Plans()
    # The emergency resources (resources.yaml); none when the deployment ships no resources.yaml.
    resources: Resources = Resources()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where and what, without PyYAML's multi-line excerpt and caret."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return " ".join(str(exc).split())
    mark = exc.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context:
        where = exc.context_mark
        text += f" ({exc.context}" + (f" at line {where.line + 1}, column {where.column + 1})" if where else ")")
    return text


def _read(path: Path, model: type[BaseModel], errors: list[str]) -> Any:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        errors.append(f"{path.name}: file not found in {path.parent}")
        return None
    except UnicodeDecodeError as exc:
        errors.append(f"{path.name}: not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}")
        return None
    except OSError as exc:
        errors.append(f"{path.name}: cannot read: {exc.strerror or exc}")
        return None
    except yaml.YAMLError as exc:
        errors.append(f"{path.name}: not valid YAML: {_yaml_problem(exc)}")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            errors.append(f"{path.name}: {error_path(err['loc'])}: {msg}")
        return None


def _check_references(district: District, rules: Rules, routing: Routing) -> list[str]:
    errors: list[str] = []
    departments = district.departments
    for dept_id, dept in departments.items():
        if dept.community is not None and dept.community not in district.communities:
            errors.append(f"district.yaml: departments.{dept_id}.community: undefined community {dept.community!r}")
        if dept.supervisor is not None and dept.supervisor not in departments:
            errors.append(f"district.yaml: departments.{dept_id}.supervisor: undefined department {dept.supervisor!r}")
    if OPS_CENTRE not in departments:
        errors.append(f"district.yaml: departments: {OPS_CENTRE} must be defined")
    if district.leadership not in departments:
        errors.append(f"district.yaml: leadership: undefined department {district.leadership!r}")
    duty = district.duty
    for i, rotation in enumerate(duty.rotations):
        for j, member in enumerate(rotation.members):
            if member not in duty.members:
                errors.append(f"district.yaml: duty.rotations.{i}.members.{j}: undefined duty member {member!r}")
    for i, override in enumerate(duty.overrides):
        if override.member not in duty.members:
            errors.append(f"district.yaml: duty.overrides.{i}.member: undefined duty member {override.member!r}")

    owners: dict[str, str] = {dept.token_env: f"departments.{d}.token_env" for d, dept in departments.items()}
    secrets = [(f"intake.open311.{n}.key_env", c.key_env) for n, c in district.intake.open311.items()]
    secrets += [(f"intake.cap_feeds.{n}.token_env", f.token_env) for n, f in district.intake.cap_feeds.items()]
    if district.wall_token_env:
        secrets.append(("wall_token_env", district.wall_token_env))
    for path, env in secrets:
        if env in owners:
            errors.append(f"district.yaml: {path}: {env} is already {owners[env]}")
        owners.setdefault(env, path)

    for source in MEASURES:
        for kind, rule in getattr(rules, source).items():
            if kind not in KINDS[source]:
                errors.append(f"rules.yaml: {source}.{kind}: unknown {source} kind {kind!r}")
            for i, threshold in enumerate(rule.thresholds):
                if threshold.measure not in MEASURES[source]:
                    errors.append(
                        f"rules.yaml: {source}.{kind}.thresholds.{i}.measure: undefined measure "
                        f"{threshold.measure!r} (known: {', '.join(sorted(MEASURES[source]))})"
                    )
        missing = sorted(KINDS[source] - set(getattr(rules, source)))
        if missing:
            errors.append(f"rules.yaml: {source}: no rule for {', '.join(missing)}")

    def dept_ref(path: str, dept: str) -> None:
        if dept not in departments:
            errors.append(f"routing.yaml: {path}: undefined department {dept!r}")

    for level, effects in rules.response.levels.items():
        for i, dept in enumerate(effects.red_watchers):
            if dept not in departments:
                errors.append(f"rules.yaml: response.levels.{level}.red_watchers.{i}: undefined department {dept!r}")
    for n, rule in enumerate(rules.correlations):
        for part in ("cause", "effect"):
            for i, dept in enumerate(getattr(rule.add_watchers, part)):
                if dept not in departments:
                    errors.append(f"rules.yaml: correlations.{n}.add_watchers.{part}.{i}: undefined department {dept!r}")

    for category, route in routing.categories.items():
        dept_ref(f"categories.{category.value}.department", route.department)
        for i, dept in enumerate(route.support):
            dept_ref(f"categories.{category.value}.support.{i}", dept)
            if dept == route.department:
                errors.append(f"routing.yaml: categories.{category.value}.support.{i}: {dept!r} is the lead department")
    for community, overrides in routing.community_overrides.items():
        if community not in district.communities:
            errors.append(f"routing.yaml: community_overrides.{community}: undefined community {community!r}")
        for category, dept in overrides.items():
            dept_ref(f"community_overrides.{community}.{category.value}", dept)
    for i, dept in enumerate(routing.red_also):
        dept_ref(f"red_also.{i}", dept)
    dept_ref("out_of_jurisdiction", routing.out_of_jurisdiction)
    if any(route.to_workstation for route in routing.categories.values()):
        for community in district.communities:
            if not any(d.community == community for d in departments.values()):
                errors.append(f"district.yaml: communities.{community}: no workstation department for this community")
    return errors


def _plans_of(root: Path, config: Config) -> Plans:
    """plans.yaml (optional) checked against the loaded files: its departments and correlation rules."""
    if not (root / "plans.yaml").exists():
        return Plans()
    errors: list[str] = []
    plans = _read(root / "plans.yaml", Plans, errors)
    if errors:
        raise ConfigError(errors)
    correlations = {rule.name for rule in config.rules.correlations}
    for n, plan in enumerate(plans.plans):
        if plan.trigger.by == "correlation" and plan.trigger.rule not in correlations:
            errors.append(f"plans.yaml: plans.{n}.trigger.rule: undefined correlation rule {plan.trigger.rule!r}")
        for i, task in enumerate(plan.tasks):
            if task.department not in config.district.departments:
                errors.append(f"plans.yaml: plans.{n}.tasks.{i}.department: undefined department {task.department!r}")
            if duration_s(task.accept) > duration_s(task.due):
                errors.append(f"plans.yaml: plans.{n}.tasks.{i}.accept: {task.accept} is later than due {task.due}")
    if errors:
        raise ConfigError(errors)
    return plans


def _resources_of(root: Path, config: Config) -> Resources:
    """resources.yaml (optional) checked against the loaded files: its departments."""
    if not (root / "resources.yaml").exists():
        return Resources()
    errors: list[str] = []
    resources = _read(root / "resources.yaml", Resources, errors)
    if errors:
        raise ConfigError(errors)
    for n, resource in enumerate(resources.resources):
        if resource.department not in config.district.departments:
            errors.append(f"resources.yaml: resources.{n}.department: undefined department {resource.department!r}")
    if errors:
        raise ConfigError(errors)
    return resources


def load_config(config_dir: str | Path) -> Config:
    """Load and cross-check the three files, board.yaml (optional) and the map (map.geojson, optional) against them; raise
    ConfigError listing every problem found."""
    root = Path(config_dir)
    errors: list[str] = []
    district = _read(root / "district.yaml", District, errors)
    rules = _read(root / "rules.yaml", Rules, errors)
    routing = _read(root / "routing.yaml", Routing, errors)
    board = _read(root / "board.yaml", Board, errors) if (root / "board.yaml").exists() else Board()
    if not errors:
        errors = _check_references(district, rules, routing)
    if errors:
        raise ConfigError(errors)
    config = Config(district=district, rules=rules, routing=routing, board=board)
    config = config.model_copy(update={"plans": _plans_of(root, config), "resources": _resources_of(root, config)})
    layers = load_map(root, config)
    if layers is None:
        return config
    places = tuple(Place(id=f.properties.id, name=f.properties.name, layer=f.properties.layer,
                         points=(f.geometry.coordinates,) if f.geometry.type == "Point" else tuple(f.geometry.coordinates))
                   for f in layers.features)
    return config.model_copy(update={"places": places})


# ---------------------------------------------------------------- small parsers shared with handlers

def parse_span(span: str) -> tuple[time, time]:
    """'07:00-12:00' -> (07:00, 12:00); raises ValueError with the offending text."""
    try:
        start, end = span.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)
    except ValueError:
        raise ValueError(f"bad time span {span!r}: use HH:MM-HH:MM") from None


def parse_duration(text: str) -> tuple[timedelta, bool]:
    """'15m' -> (15 min, False); '8wh' -> (8 h, True): True means count working hours only."""
    number, unit = DURATION.match(text).groups()
    value = float(number)
    if unit == "wh":
        return timedelta(hours=value), True
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: value}), False
