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
