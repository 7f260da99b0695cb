"""The closed vocabularies every source is mapped into (metric labels come only from these)."""
from enum import Enum


class Source(str, Enum):
    traffic = "traffic"
    flood = "flood"
    city = "city"
    construction = "construction"


class Severity(str, Enum):
    """National four-colour scale: red (I) is the most severe."""

    red = "red"
    orange = "orange"
    yellow = "yellow"
    blue = "blue"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self]

    def raise_to(self, other: "Severity") -> "Severity":
        return other if other.rank > self.rank else self


SEVERITY_RANK = {Severity.blue: 1, Severity.yellow: 2, Severity.orange: 3, Severity.red: 4}


class Category(str, Enum):
    """What kind of problem it is; routing.yaml maps each one to a department."""

    traffic_accident = "traffic_accident"
    traffic_congestion = "traffic_congestion"
    traffic_violation = "traffic_violation"
    traffic_facility = "traffic_facility"
    road_obstruction = "road_obstruction"
    flood_water_level = "flood_water_level"
    flood_rainfall = "flood_rainfall"
    flood_waterlogging = "flood_waterlogging"
    flood_pump_station = "flood_pump_station"
    typhoon = "typhoon"
    city_sanitation = "city_sanitation"
    city_street_order = "city_street_order"
    city_facility = "city_facility"
    city_noise = "city_noise"
    city_illegal_construction = "city_illegal_construction"
    city_road_damage = "city_road_damage"
    city_manhole = "city_manhole"
    city_other = "city_other"
    site_unregistered = "site_unregistered"
    site_out_of_hours = "site_out_of_hours"
    site_permit_invalid = "site_permit_invalid"
    site_safety = "site_safety"
    site_noise = "site_noise"
    site_dust = "site_dust"
    # A device that reports periodically has gone silent (rules.yaml heartbeats).
    flood_device_offline = "flood_device_offline"
    site_device_offline = "site_device_offline"


class Hazard(str, Enum):
    """What kind of emergency a response level or a pre-plan (plans.yaml) is about."""

    flood = "flood"
    typhoon = "typhoon"
    traffic = "traffic"


class TicketKind(str, Enum):
    """incident: opened from a source's report; task: a pre-plan's task for a department (schemas/plans.py);
    preventive: work at a recurring place before a warned storm, ahead of any report (handlers/preventive.py)."""

    incident = "incident"
    task = "task"
    preventive = "preventive"


class TicketStatus(str, Enum):
    dispatched = "dispatched"
    accepted = "accepted"
    resolved = "resolved"
    closed = "closed"
    returned = "returned"


class Escalation(str, Enum):
    none = "none"
    reminded = "reminded"
    escalated = "escalated"
    reported = "reported"


class Relation(str, Enum):
    """How a ticket stands to the department reading it (the API's `relation` of each ticket)."""
    own = "own"          # the department handles it
    watched = "watched"  # copied to it: red watchers, correlation watchers, the centre on a return
    in_view = "in_view"  # neither: the centre's and the leadership's district, a workstation's community


OPS_CENTRE = "ops_centre"
