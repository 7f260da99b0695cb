"""The payloads source systems send, validated strictly: unknown enum values are errors."""
from __future__ import annotations

import re
from datetime import date, datetime, time
from enum import Enum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.times import SaneTime

Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=4000)]


class RawPayload(BaseModel):
    # Sources add fields over time; ignore extras instead of dead-lettering good events.
    model_config = ConfigDict(extra="ignore", frozen=True)


class TrafficType(str, Enum):
    accident = "accident"
    congestion = "congestion"
    illegal_parking = "illegal_parking"
    signal_fault = "signal_fault"
    road_obstruction = "road_obstruction"
    wrong_way = "wrong_way"


class TrafficEvent(RawPayload):
    event_id: ShortText
    type: TrafficType
    road: ShortText
    lat: Lat
    lon: Lon
    observed_at: SaneTime
    intersection_id: ShortText | None = None
    lanes_blocked: Annotated[int, Field(ge=0, le=20)] | None = None
    injuries: Annotated[int, Field(ge=0, le=1000)] | None = None
    vehicles: Annotated[int, Field(ge=0, le=1000)] | None = None
    speed_kmh: Annotated[float, Field(ge=0, le=300, allow_inf_nan=False)] | None = None
    camera_id: ShortText | None = None
    confidence: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None


class FloodKind(str, Enum):
    water_level = "water_level"
    rainfall = "rainfall"
    waterlogging = "waterlogging"
    pump_station = "pump_station"
    typhoon_signal = "typhoon_signal"


class PumpStatus(str, Enum):
    running = "running"
    standby = "standby"
    fault = "fault"
    offline = "offline"


class TyphoonSignal(str, Enum):
    white = "white"
    blue = "blue"
    yellow = "yellow"
    orange = "orange"
    red = "red"


class FloodReading(RawPayload):
    station_id: ShortText
    # What people call the station (海湾河上游水位站), when the feed says it.
    station_name: ShortText | None = None
    kind: FloodKind
    value: Finite | None = None
    status: PumpStatus | None = None
    signal: TyphoonSignal | None = None
    lat: Lat
    lon: Lon
    observed_at: SaneTime
    warning_level: Finite | None = None
    danger_level: Finite | None = None

    @model_validator(mode="after")
    def _reading_present(self) -> "FloodReading":
        needed = {
            FloodKind.pump_station: ("status", self.status),
            FloodKind.typhoon_signal: ("signal", self.signal),
        }.get(self.kind, ("value", self.value))
        if needed[1] is None:
            raise ValueError(f"{self.kind.value} reading needs '{needed[0]}'")
        return self


class CityChannel(str, Enum):
    hotline_12345 = "hotline_12345"
    grid_patrol = "grid_patrol"
    camera_ai = "camera_ai"
    mobile_app = "mobile_app"


class CityCategory(str, Enum):
    garbage_overflow = "garbage_overflow"
    illegal_vending = "illegal_vending"
    illegal_advertising = "illegal_advertising"
    damaged_facility = "damaged_facility"
    noise_complaint = "noise_complaint"
    illegal_construction = "illegal_construction"
    road_damage = "road_damage"
    manhole_cover_missing = "manhole_cover_missing"
    other = "other"


class CityReport(RawPayload):
    case_no: ShortText
    channel: CityChannel
    category: CityCategory
    description: LongText
    address: Annotated[str, Field(max_length=500)]
    lat: Lat
    lon: Lon
    reported_at: SaneTime
    reporter_phone: Annotated[str, Field(max_length=40)] | None = None
    # From the citizens' apps (Open311): a photo's address and the service's attributes.
    media_url: Annotated[str, Field(max_length=1000)] | None = None
    attributes: Annotated[dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]],
                          Field(max_length=20)] = {}


class SiteEventKind(str, Enum):
    activity_detected = "activity_detected"
    dust = "dust"
    noise = "noise"
    no_helmet = "no_helmet"
    unsafe_scaffold = "unsafe_scaffold"


class SiteEvent(RawPayload):
    event_id: ShortText
    kind: SiteEventKind
    lat: Lat
    lon: Lon
    observed_at: SaneTime
    site_id: ShortText | None = None
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    camera_id: ShortText | None = None

    @model_validator(mode="after")
    def _measurement_present(self) -> "SiteEvent":
        if self.kind in (SiteEventKind.dust, SiteEventKind.noise) and self.value is None:
            raise ValueError(f"{self.kind.value} event needs 'value'")
        return self


class SiteKind(str, Enum):
    major = "major"
    small_scattered = "small_scattered"


class SiteStatus(str, Enum):
    active = "active"
    suspended = "suspended"
    revoked = "revoked"


class PermitState(str, Enum):
    """Where a moment falls in a site's permit, counted in the district's days."""
    not_yet_valid = "not_yet_valid"
    valid = "valid"
    expired = "expired"


PLAIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SPAN = re.compile(r"^\d{2}:\d{2}-\d{2}:\d{2}$")


def _permit(value: Any) -> date | datetime:
    """A plain date (YYYY-MM-DD: a day in the district's time zone) or an RFC 3339 time with its offset."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if PLAIN_DATE.match(value) else datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"bad date {value[:40]!r}: use YYYY-MM-DD or an RFC 3339 time with its offset") from None
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("needs a UTC offset (RFC 3339), or a plain date YYYY-MM-DD")
    if not isinstance(value, date):
        raise ValueError("use YYYY-MM-DD or an RFC 3339 time with its offset")
    return value


def _work_hours(value: Any) -> str:
    """'07:00-12:00,14:00-22:00': each span HH:MM-HH:MM, real clock times, not empty (an end before its
    start runs past midnight)."""
    if not isinstance(value, str):
        raise ValueError("use HH:MM-HH:MM spans separated by commas, e.g. 07:00-12:00,14:00-22:00")
    for span in value.split(","):
        start, _, end = span.partition("-")
        try:
            if not SPAN.match(span) or time.fromisoformat(start) == time.fromisoformat(end):
                raise ValueError
        except ValueError:
            raise ValueError(f"bad time span {span[:20]!r}: use HH:MM-HH:MM, e.g. 07:00-12:00,14:00-22:00") from None
    return value


PermitTime = Annotated[date | datetime, BeforeValidator(_permit)]
WorkHours = Annotated[str, BeforeValidator(_work_hours)]


class SiteRegistration(RawPayload):
    site_id: ShortText
    name: ShortText
    contractor: ShortText
    kind: SiteKind
    lat: Lat
    lon: Lon
    radius_m: Annotated[float, Field(gt=0, le=5000, allow_inf_nan=False)]
    # A plain date's until-day is included (handlers/construction.py: permit_bounds).
    permit_from: PermitTime
    permit_until: PermitTime
    work_hours: WorkHours
    status: SiteStatus


RAW_MODELS: dict[str, type[RawPayload]] = {
    "traffic": TrafficEvent,
    "flood": FloodReading,
    "city": CityReport,
    "construction": SiteEvent,
}
