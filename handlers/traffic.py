"""Traffic events (traffic police platform, signal controllers, camera AI)."""
from __future__ import annotations

from handlers.base import Classification, Context, Heard
from handlers.geo import grid_cell
from handlers.severity import grade
from schemas.enums import Category
from schemas.raw import TrafficEvent, TrafficType

SOURCE = "traffic"
MODEL = TrafficEvent

CATEGORY = {
    TrafficType.accident: Category.traffic_accident,
    TrafficType.congestion: Category.traffic_congestion,
    TrafficType.illegal_parking: Category.traffic_violation,
    TrafficType.wrong_way: Category.traffic_violation,
    TrafficType.signal_fault: Category.traffic_facility,
    TrafficType.road_obstruction: Category.road_obstruction,
}
LABEL = {
    TrafficType.accident: "交通事故",
    TrafficType.congestion: "交通拥堵",
    TrafficType.illegal_parking: "违法停车",
    TrafficType.signal_fault: "信号灯故障",
    TrafficType.road_obstruction: "道路障碍",
    TrafficType.wrong_way: "车辆逆行",
}
# Free-flow speed on the sub-district's urban roads; congestion is measured against it.
FREE_FLOW_KMH = 60.0


def parse(data: dict) -> TrafficEvent:
    return TrafficEvent.model_validate(data)


def device(event: TrafficEvent, ctx: Context) -> Heard | None:
    """Traffic reports are events, not readings: no heartbeat."""
    return None


def classify(event: TrafficEvent, ctx: Context) -> Classification:
    measures = {
        "injuries": event.injuries,
        "lanes_blocked": event.lanes_blocked,
        "vehicles": event.vehicles,
        "confidence": event.confidence,
        "speed_deficit_kmh": None if event.speed_kmh is None else FREE_FLOW_KMH - event.speed_kmh,
    }
    details = {k: v for k, v in event.model_dump(mode="json").items()
               if k in ("road", "intersection_id", "lanes_blocked", "injuries", "vehicles",
                        "speed_kmh", "camera_id", "confidence") and v is not None}
    return Classification(
        category=CATEGORY[event.type],
        subcategory=event.type.value,
        severity=grade(ctx.config.rules.traffic[event.type.value], measures),
        title=f"{event.road} {LABEL[event.type]}",
        source_ref=event.event_id,
        identity=grid_cell(event.lat, event.lon, ctx.config.rules.dedup.grid_m),
        observed_at=event.observed_at,
        lat=event.lat,
        lon=event.lon,
        details=details,
    )
