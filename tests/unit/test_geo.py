"""deploy/config/map.geojson (schemas/geo.py): the shipped layers load, and a bad file is refused with the
exact errors, one line per problem, naming the file and the path inside it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schemas.config import ConfigError, load_config
from schemas.geo import load_map
from streams.ops.cli import main as soc

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "deploy" / "config"
CONFIG = load_config(CONFIG_DIR)


def feature(layer: str, fid: str, geometry: dict, **props) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": {"layer": layer, "id": fid, "name": fid, **props}}


def point(lon: float, lat: float) -> dict:
    return {"type": "Point", "coordinates": [lon, lat]}


def errors_of(tmp_path: Path, document) -> list[str]:
    (tmp_path / "map.geojson").write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_map(tmp_path, CONFIG)
    return caught.value.errors


def test_the_shipped_layers_load_with_the_simulators_station_ids():
    layers = load_map(CONFIG_DIR, CONFIG)
    assert {f.properties.layer for f in layers.features} == {"road", "river", "underpass", "pump_station", "flood_station"}
    stations = layers.stations()
    for sid in ("WL-01", "WL-02", "WL-03", "TD-01", "RG-01", "RG-05", "PS-01", "PS-03", "WLG-01", "WLG-05"):
        assert sid in stations
    assert stations["WLG-02"][:2] == ("flood_station", "waterlogging")
    assert {f.properties.name for f in layers.of("river")} == {"海湾河", "沙河"}


def test_no_file_means_no_layers(tmp_path):
    assert load_map(tmp_path, CONFIG) is None


def test_a_bad_file_gets_exact_errors(tmp_path):
    document = {"type": "FeatureCollection", "features": [
        feature("road", "R1", point(113.92, 22.51)),                                              # 0: a road as a point
        feature("pump_station", "P1", point(113.92, 22.51)),                                      # 1: fine
        feature("pump_station", "P1", point(113.93, 22.51)),                                      # 2: duplicate id
        feature("flood_station", "F1", point(113.92, 22.51)),                                     # 3: no kind
        feature("underpass", "U1", point(114.2, 22.6)),                                           # 4: outside
        feature("river", "V1", {"type": "LineString", "coordinates": [[113.92, 22.51], [113.5, 22.51]]}),  # 5
        feature("underpass", "U2", point(113.92, 22.51), kind="rainfall"),                        # 6: kind on an underpass
    ]}
    assert errors_of(tmp_path, document) == [
        "map.geojson: features.0.geometry.type: a road is a LineString, not a Point",
        "map.geojson: features.2.properties.id: duplicate id 'P1' (also features.1)",
        "map.geojson: features.3.properties.kind: a flood_station needs its kind (water_level, rainfall, waterlogging)",
        "map.geojson: features.4.geometry.coordinates: (114.2, 22.6) is outside 海湾街道",
        "map.geojson: features.5.geometry.coordinates.1: (113.5, 22.51) is more than 2 km outside 海湾街道",
        "map.geojson: features.6.properties.kind: only a flood_station has a kind",
    ]


def test_schema_errors_name_the_path(tmp_path):
    document = {"type": "FeatureCollection", "features": [
        feature("lake", "L1", point(113.92, 22.51)),
        {**feature("road", "R2", {"type": "LineString", "coordinates": [[113.92, 22.51]]}), "style": "bold"},
        feature("underpass", "U 3", point(200, 22.51)),
    ]}
    assert errors_of(tmp_path, document) == [
        "map.geojson: features.0.properties.layer: Input should be 'road', 'river', 'underpass', 'pump_station' or 'flood_station'",
        "map.geojson: features.1.geometry.LineString.coordinates: List should have at least 2 items after validation, not 1",
        "map.geojson: features.1.style: Extra inputs are not permitted",
        "map.geojson: features.2.geometry.Point.coordinates.0: Input should be less than or equal to 180",
        "map.geojson: features.2.properties.id: String should match pattern '^[A-Za-z0-9_.-]{1,64}$'",
    ]


def test_not_json_and_not_a_feature_collection(tmp_path):
    assert errors_of(tmp_path, '{"type": "FeatureCollection", "features": [,]}') == [
        "map.geojson: not valid JSON: line 1, column 44: Expecting value"]
    assert errors_of(tmp_path, {"type": "Feature", "features": []}) == [
        "map.geojson: type: Input should be 'FeatureCollection'"]


def test_check_config_reports_a_bad_map(tmp_path, capsys):
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "map.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("underpass", "U1", point(114.2, 22.6))]}), encoding="utf-8")
    assert soc(["check-config", str(config_dir)]) == 1
    assert "map.geojson: features.0.geometry.coordinates: (114.2, 22.6) is outside 海湾街道" in capsys.readouterr().err
