"""Numbers each source handler derives from a payload, which rules.yaml thresholds may name.

Kept here, not in handlers/, so the config loader can reject an undefined measure at start-up.
"""
from schemas.enums import Category
from schemas.raw import CityCategory, FloodKind, TrafficType

MEASURES: dict[str, frozenset[str]] = {
    "traffic": frozenset({"injuries", "lanes_blocked", "vehicles", "speed_deficit_kmh", "confidence"}),
    "flood": frozenset({"value", "above_warning", "above_danger", "pump_fault", "pump_offline", "signal_level"}),
    "city": frozenset({"danger_mentioned", "hotline"}),
    "construction": frozenset({"night", "over_limit_db", "pm10_ratio", "permit_expired_days"}),
}

# The kinds rules.yaml sets severities for: the source's own kind for the first three,
# the outcome of the whitelist check for construction.
KINDS: dict[str, frozenset[str]] = {
    "traffic": frozenset(t.value for t in TrafficType),
    "flood": frozenset(k.value for k in FloodKind),
    "city": frozenset(c.value for c in CityCategory),
    # A silent site sensor is found by its heartbeat, not graded from a reading.
    "construction": frozenset(c.value for c in Category if c.value.startswith("site_")
                              and c is not Category.site_device_offline),
}
