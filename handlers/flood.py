"""Flood-prevention readings (三防): river and tide gauges, rain gauges, waterlogging, pumps, typhoon."""
from __future__ import annotations

from datetime import timezone

from handlers.base import Classification, Context, Heard
from handlers.severity import grade
from schemas.enums import Category
from schemas.raw import FloodKind, FloodReading, PumpStatus, TyphoonSignal

SOURCE = "flood"
MODEL = FloodReading

CATEGORY = {
    FloodKind.water_level: Category.flood_water_level,
    FloodKind.rainfall: Category.flood_rainfall,
    FloodKind.waterlogging: Category.flood_waterlogging,
    FloodKind.pump_station: Category.flood_pump_station,
    FloodKind.typhoon_signal: Category.typhoon,
}
LABEL = {
    FloodKind.water_level: "水位",
    FloodKind.rainfall: "降雨",
    FloodKind.waterlogging: "积水",
    FloodKind.pump_station: "泵站",
    FloodKind.typhoon_signal: "台风信号",
}
UNIT = {FloodKind.water_level: "m", FloodKind.rainfall: "mm/h", FloodKind.waterlogging: "cm"}
SIGNAL_LEVEL = {
    TyphoonSignal.white: 0, TyphoonSignal.blue: 1, TyphoonSignal.yellow: 2,
    TyphoonSignal.orange: 3, TyphoonSignal.red: 4,
}
SIGNAL_LABEL = {TyphoonSignal.white: "白色", TyphoonSignal.blue: "蓝色", TyphoonSignal.yellow: "黄色",
                TyphoonSignal.orange: "橙色", TyphoonSignal.red: "红色"}
PUMP_LABEL = {PumpStatus.running: "运行", PumpStatus.standby: "待命", PumpStatus.fault: "故障",
              PumpStatus.offline: "离线"}


def parse(data: dict) -> FloodReading:
    return FloodReading.model_validate(data)


def device(reading: FloodReading, ctx: Context) -> Heard | None:
    """Every gauge and pump reports periodically; a typhoon signal is an announcement, not a device."""
    if reading.kind is FloodKind.typhoon_signal:
        return None
    return Heard(f"flood.{reading.kind.value}", reading.station_id, reading.lat, reading.lon, ctx.received_at,
                 reading.observed_at)


def _measures(r: FloodReading) -> dict[str, float | None]:
    def over(level: float | None) -> float | None:
        return None if r.value is None or level is None else r.value - level

    return {
        "value": r.value,
        "above_warning": over(r.warning_level),
        "above_danger": over(r.danger_level),
        "pump_fault": None if r.status is None else float(r.status is PumpStatus.fault),
        "pump_offline": None if r.status is None else float(r.status is PumpStatus.offline),
        "signal_level": None if r.signal is None else float(SIGNAL_LEVEL[r.signal]),
    }


def _reading_text(r: FloodReading) -> str:
    if r.kind is FloodKind.pump_station:
        return PUMP_LABEL[r.status]
    if r.kind is FloodKind.typhoon_signal:
        return SIGNAL_LABEL[r.signal]
    return f"{r.value:g} {UNIT[r.kind]}"


def station_name(reading: FloodReading, ctx: Context) -> str:
    """The station as people call it: its name in the feed, else on the district map, else its id."""
    on_map = next((p.name for p in ctx.config.places if p.id == reading.station_id), None)
    return reading.station_name or on_map or reading.station_id


def classify(reading: FloodReading, ctx: Context) -> Classification:
    details = {k: v for k, v in reading.model_dump(mode="json").items()
               if k in ("station_id", "value", "status", "signal", "warning_level", "danger_level")
               and v is not None}
    return Classification(
        category=CATEGORY[reading.kind],
        subcategory=reading.kind.value,
        severity=grade(ctx.config.rules.flood[reading.kind.value], _measures(reading)),
        title=f"{station_name(reading, ctx)} {LABEL[reading.kind]} {_reading_text(reading)}",
        # In UTC, so one reading re-sent with another offset is the same reading.
        source_ref=f"{reading.station_id}@{reading.observed_at.astimezone(timezone.utc).isoformat()}",
        # One station, one ongoing problem: a rising river is one ticket, not one per reading.
        identity=reading.station_id,
        observed_at=reading.observed_at,
        lat=reading.lat,
        lon=reading.lon,
        details=details,
    )
