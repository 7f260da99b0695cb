"""Point-in-polygon for communities, distance for site radii, a grid cell for dedup keys."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from schemas.config import Community

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
