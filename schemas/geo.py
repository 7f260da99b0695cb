"""The district's offline map layers: deploy/config/map.geojson (roads, rivers, underpasses, pump stations,
flood stations), drawn under the board's markers with no tile server.

One GeoJSON FeatureCollection (RFC 7946: [lon, lat] in WGS84). Strict like the other config files: unknown
members are refused, each layer has its geometry type, ids are unique, and every point lies in a community
of district.yaml (a line's every vertex within 2 km of the district). Errors name the file and the path
inside it, one line per problem, as schemas/config.py does. The file is optional: no file, no layers.
Registered sites (with their radius) are not in it: they are the whitelist (soc.sites), drawn from /api/sites.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.problems import ConfigError, error_path

if TYPE_CHECKING:  # schemas.config loads the map with load_map: the type alone, for annotations
    from schemas.config import Config

FILE = "map.geojson"
LINE_LAYERS = ("road", "river")
POINT_LAYERS = ("underpass", "pump_station", "flood_station")
LAYERS = (*LINE_LAYERS, *POINT_LAYERS)
MARGIN_DEG = 0.02  # about 2 km: a road may run on a little past the boundary


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Lon = Annotated[float, Field(ge=-180, le=180)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Position = tuple[Lon, Lat]


class Point(Strict):
    type: Literal["Point"]
    coordinates: Position


class LineString(Strict):
    type: Literal["LineString"]
    coordinates: Annotated[list[Position], Field(min_length=2, max_length=10_000)]


Geometry = Annotated[Union[Point, LineString], Field(discriminator="type")]


class Properties(Strict):
    layer: Literal[LAYERS]
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    # A flood station's kind: what it reports on soc.raw.flood.
    kind: Literal["water_level", "rainfall", "waterlogging"] | None = None


class Feature(Strict):
    type: Literal["Feature"]
    geometry: Geometry
    properties: Properties


class MapLayers(Strict):
    type: Literal["FeatureCollection"]
    name: str | None = None
    features: Annotated[list[Feature], Field(max_length=20_000)]

    def of(self, layer: str) -> list[Feature]:
        return [f for f in self.features if f.properties.layer == layer]

    def stations(self) -> dict[str, tuple[str, str | None, float, float]]:
        """Flood stations, pump stations and underpasses: id -> (layer, kind, lat, lon), for the simulator."""
        return {f.properties.id: (f.properties.layer, f.properties.kind, f.geometry.coordinates[1], f.geometry.coordinates[0])
                for f in self.features if isinstance(f.geometry, Point)}


def _inside(polygon, lon: float, lat: float) -> bool:
    inside = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _check(layers: MapLayers, config: Config) -> list[str]:
    errors: list[str] = []
    district = config.district
    polygons = [c.polygon for c in district.communities.values()]
    lons = [p[0] for poly in polygons for p in poly]
    lats = [p[1] for poly in polygons for p in poly]
    box = (min(lons) - MARGIN_DEG, max(lons) + MARGIN_DEG, min(lats) - MARGIN_DEG, max(lats) + MARGIN_DEG)
    seen: dict[str, int] = {}
    for n, feature in enumerate(layers.features):
        p, g = feature.properties, feature.geometry
        where = f"{FILE}: features.{n}"
        if p.id in seen:
            errors.append(f"{where}.properties.id: duplicate id {p.id!r} (also features.{seen[p.id]})")
        seen.setdefault(p.id, n)
        wanted = "LineString" if p.layer in LINE_LAYERS else "Point"
        if g.type != wanted:
            errors.append(f"{where}.geometry.type: a {p.layer} is a {wanted}, not a {g.type}")
            continue
        if p.kind is not None and p.layer != "flood_station":
            errors.append(f"{where}.properties.kind: only a flood_station has a kind")
        if p.layer == "flood_station" and p.kind is None:
            errors.append(f"{where}.properties.kind: a flood_station needs its kind (water_level, rainfall, waterlogging)")
        if isinstance(g, Point):
            lon, lat = g.coordinates
            if not any(_inside(poly, lon, lat) for poly in polygons):
                errors.append(f"{where}.geometry.coordinates: ({lon}, {lat}) is outside {district.name}")
        else:
            for i, (lon, lat) in enumerate(g.coordinates):
                if not (box[0] <= lon <= box[1] and box[2] <= lat <= box[3]):
                    errors.append(f"{where}.geometry.coordinates.{i}: ({lon}, {lat}) is more than 2 km outside {district.name}")
                    break
    return errors


def load_map(config_dir: str | Path, config: Config) -> MapLayers | None:
    """map.geojson of config_dir checked against the loaded district; None when the file is absent.

    Raises ConfigError listing every problem found."""
    path = Path(config_dir) / FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{FILE}: not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"]) from None
    except OSError as exc:
        raise ConfigError([f"{FILE}: cannot read: {exc.strerror or exc}"]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([f"{FILE}: not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    try:
        layers = MapLayers.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{FILE}: {error_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                           for e in exc.errors()]) from None
    errors = _check(layers, config)
    if errors:
        raise ConfigError(errors)
    return layers
