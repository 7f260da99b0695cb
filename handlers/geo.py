"""Point-in-polygon for communities, distance for site radii, a grid cell for dedup keys, and the words
a person names a spot by (the nearest named feature of the district map)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from schemas.config import Community, Config, Place

EARTH_RADIUS_M = 6_371_000.0


def contains(polygon: Sequence[tuple[float, float]], lon: float, lat: float) -> bool:
    """Ray casting; polygon vertices are (lon, lat). Points on an edge may fall either side."""
    inside = False
    j = len(polygon) - 1
    for i, (xi, yi) in enumerate(polygon):
        xj, yj = polygon[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def community_at(communities: Mapping[str, Community], lat: float, lon: float) -> str | None:
    for community_id, community in communities.items():
        west, south, east, north = community.bounds
        if west <= lon <= east and south <= lat <= north and contains(community.polygon, lon, lat):
            return community_id
    return None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def grid_cell(lat: float, lon: float, size_m: float) -> str:
    """Snap to a square grid of about size_m metres, so nearby reports share a dedup key."""
    lat_step = size_m / 111_320.0
    lon_step = size_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6))
    return f"{math.floor(lat / lat_step)}:{math.floor(lon / lon_step)}"


def _local_xy(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """Metres east and north of (lat0, lon0): flat enough at a district's scale."""
    return (math.radians(lon - lon0) * EARTH_RADIUS_M * math.cos(math.radians(lat0)),
            math.radians(lat - lat0) * EARTH_RADIUS_M)


def _segment_distance_m(lat: float, lon: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    """From (lat, lon) to the segment a-b, whose ends are (lon, lat)."""
    ax, ay = _local_xy(lat, lon, a[1], a[0])
    bx, by = _local_xy(lat, lon, b[1], b[0])
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy)))
    return math.hypot(ax + t * dx, ay + t * dy)


def _crosses(p1, p2, q1, q2) -> bool:
    def side(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0


def polygons_meet(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> bool:
    """Whether two (lon, lat) polygons overlap: a vertex of one inside the other, or two edges crossing."""
    if any(contains(b, x, y) for x, y in a) or any(contains(a, x, y) for x, y in b):
        return True
    return any(_crosses(p1, p2, q1, q2) for p1, p2 in _edges(a) for q1, q2 in _edges(b))


def _edges(polygon: Sequence[tuple[float, float]]):
    return zip(polygon, [*polygon[1:], polygon[0]])


def circle_meets(polygon: Sequence[tuple[float, float]], lat: float, lon: float, radius_m: float) -> bool:
    """Whether a circle overlaps a (lon, lat) polygon: its centre inside, or an edge within the radius."""
    if contains(polygon, lon, lat):
        return True
    return any(_segment_distance_m(lat, lon, p, q) <= radius_m for p, q in _edges(polygon))


def centroid(polygon: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The vertices' mean as (lat, lon): inside the convex communities of district.yaml."""
    return (sum(p[1] for p in polygon) / len(polygon), sum(p[0] for p in polygon) / len(polygon))


# Within this distance a spot is "on" the road or at the place; farther, it is near it (附近).
ON_PLACE_M = 60.0
# Past this distance the map's nearest feature says little: the community names the spot instead.
NEAR_PLACE_M = 800.0


def place_distance_m(place: Place, lat: float, lon: float) -> float:
    """From (lat, lon) to a point feature, or to the nearest stretch of a line feature."""
    if len(place.points) == 1:
        (plon, plat), = place.points
        return distance_m(lat, lon, plat, plon)
    return min(_segment_distance_m(lat, lon, a, b) for a, b in zip(place.points, place.points[1:]))


def nearest_place(places: Sequence[Place], lat: float, lon: float) -> tuple[Place, float] | None:
    """The named feature closest to (lat, lon) and its distance in metres; None on a map without features."""
    return min(((p, place_distance_m(p, lat, lon)) for p in places), key=lambda found: (found[1], found[0].id),
               default=None)


def place_name(config: Config, lat: float, lon: float) -> str:
    """How a person names the spot: a place of the map it is at ("望海路下穿通道"), else the nearest road
    or river ("学府路", "学府路附近"), else a place nearby, else the community it lies in ("荔园社区"),
    else the district ("海湾街道附近"). Never coordinates."""
    points = [p for p in config.places if len(p.points) == 1]
    lines = [p for p in config.places if len(p.points) > 1]
    at = nearest_place(points, lat, lon)
    if at is not None and at[1] <= ON_PLACE_M:
        return at[0].name
    for found in (nearest_place(lines, lat, lon), at):
        if found is not None and found[1] <= NEAR_PLACE_M:
            place, metres = found
            return place.name if metres <= ON_PLACE_M else f"{place.name}附近"
    community = community_at(config.district.communities, lat, lon)
    if community is not None:
        return config.district.communities[community].name
    return f"{config.district.name}附近"
