"""streams.ops.simulator: the pure generator (seeded, clock injected), no broker."""
from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from handlers.construction import find_site, findings
from handlers.geo import community_at, grid_cell
from handlers.privacy import mask_phones
from schemas.config import load_config
from schemas.raw import RAW_MODELS, SiteRegistration
from streams.ops.simulator import SOURCES, Simulator, storm_curve

CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Wednesday, 10:00 local: outside rush hours, inside working hours.
NOW = datetime(2024, 5, 15, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIG_DIR)


@pytest.fixture(scope="module")
def normal_batch(config):
    sim = Simulator(42, "normal", config.district)
    return sim, sim.generate(NOW, 5000)


def decode(payload: bytes | dict):
    """What the pipeline sees: JSON text decoded into Python (ValueError when it is not JSON)."""
    if isinstance(payload, bytes):
        return json.loads(payload)
    return json.loads(json.dumps(payload, ensure_ascii=False))


def valid(source: str, payload: bytes | dict):
    """The validated model, or None when decoding or validation fails."""
    try:
        return RAW_MODELS[source].model_validate(decode(payload))
    except (ValueError, ValidationError):
        return None


def test_same_seed_same_output(config):
    a, b = Simulator(7, "rainstorm", config.district), Simulator(7, "rainstorm", config.district)
    assert a.whitelist(NOW) == b.whitelist(NOW)
    for step in range(3):
        now = NOW + timedelta(minutes=5 * step)
        assert a.next_batch(now, 300) == b.next_batch(now, 300)
    c = Simulator(8, "rainstorm", config.district)
    assert c.next_batch(NOW, 50) != Simulator(7, "rainstorm", config.district).next_batch(NOW, 50)


def test_next_batch_matches_generate(config):
    pairs = Simulator(3, "normal", config.district).next_batch(NOW, 200)
    events = Simulator(3, "normal", config.district).generate(NOW, 200)
    assert pairs == [(e.source, e.payload) for e in events]
    assert all(source in SOURCES for source, _ in pairs)


def test_good_payloads_validate_and_malformed_do_not(normal_batch):
    sim, events = normal_batch
    bad = [e for e in events if e.malformed]
    for e in events:
        if not e.malformed:
            assert isinstance(e.payload, dict)
            RAW_MODELS[e.source].model_validate(decode(e.payload))  # raises on a bug
    assert all(valid(e.source, e.payload) is None for e in bad)
    assert 25 <= len(bad) <= 85, len(bad)  # ~1% of 5000
    assert sim.malformed == len(bad)
    assert any(isinstance(e.payload, bytes) for e in bad) and any(isinstance(e.payload, dict) for e in bad)


def test_all_sources_present_and_ids_unique(normal_batch):
    sim, events = normal_batch
    counts = Counter(e.source for e in events)
    assert set(counts) == set(SOURCES)
    assert counts == Counter(sim.counts)
    good = [e for e in events if not e.malformed]
    for source, field in (("traffic", "event_id"), ("construction", "event_id"), ("city", "case_no")):
        ids = [e.payload[field] for e in good if e.source == source]
        assert len(ids) == len(set(ids)), source


def test_whitelist(config):
    sim = Simulator(42, "normal", config.district)
    sites = [SiteRegistration.model_validate(s) for s in sim.whitelist(NOW)]
    assert 10 <= len(sites) <= 15
    assert {s.kind.value for s in sites} == {"major", "small_scattered"}
    assert {s.status.value for s in sites} == {"active", "suspended", "revoked"}
    assert any(s.status.value == "active" and s.permit_until < NOW for s in sites)  # expired permit
    assert all(s.permit_from.utcoffset() == timedelta(hours=8) for s in sites)
    assert len({s.site_id for s in sites}) == len(sites)
    communities = config.district.communities
    assert all(community_at(communities, s.lat, s.lon) for s in sites)


def test_points_mostly_inside_communities(normal_batch, config):
    _, events = normal_batch
    points = [(e.payload["lat"], e.payload["lon"]) for e in events if not e.malformed]
    inside = sum(community_at(config.district.communities, lat, lon) is not None for lat, lon in points)
    share = inside / len(points)
    assert 0.96 <= share < 1.0, share


def test_rainstorm_peaks_cross_danger(config):
    sim = Simulator(5, "rainstorm", config.district, start=NOW)
    peak = sim.peak_time()
    assert sim.storm_intensity(peak) == pytest.approx(1.0)
    assert sim.storm_intensity(NOW) == pytest.approx(0.0)
    readings = [e.payload for e in sim.generate(peak, 1500) if e.source == "flood" and not e.malformed]
    levels = [r for r in readings if r["kind"] == "water_level"]
    assert levels and any(r["value"] > r["danger_level"] for r in levels)
    assert max(r["value"] for r in readings if r["kind"] == "rainfall") > 100
    assert max(r["value"] for r in readings if r["kind"] == "waterlogging") >= 50
    assert any(r["kind"] == "typhoon_signal" for r in readings)
    # Before the storm: calm.
    calm = [e.payload for e in Simulator(5, "rainstorm", config.district, start=NOW).generate(NOW, 500)
            if e.source == "flood" and not e.malformed]
    calm_levels = [r for r in calm if r["kind"] == "water_level"]
    assert calm_levels and all(r["value"] < r["warning_level"] for r in calm_levels)


def test_normal_scenario_never_crosses_danger(config):
    sim = Simulator(5, "normal", config.district)
    readings = []
    for hour in range(0, 24, 3):
        readings += [e.payload for e in sim.generate(NOW + timedelta(hours=hour), 400)
                     if e.source == "flood" and not e.malformed]
    levels = [r for r in readings if r["kind"] == "water_level"]
    assert levels and all(r["value"] < r["danger_level"] for r in levels)
    assert all(r["value"] < 30 for r in readings if r["kind"] == "rainfall")
    assert not any(r["kind"] == "typhoon_signal" for r in readings)


def test_storm_curve_rises_peaks_falls():
    values = [storm_curve(i / 100) for i in range(100)]
    assert values[0] == 0 and values[45] == 1
    assert values[10] < values[20] < values[30] < values[40]
    assert values[60] > values[70] > values[80]
    assert values[95] == 0


def traffic_share(sim: Simulator, now: datetime, n: int = 2000) -> float:
    return sum(s == "traffic" for s, _ in sim.next_batch(now, n)) / n


def test_rush_hour_shapes_traffic(config):
    at_8 = NOW.replace(hour=8)
    at_3 = NOW.replace(hour=3)
    share_8 = traffic_share(Simulator(1, "normal", config.district), at_8)
    share_3 = traffic_share(Simulator(1, "normal", config.district), at_3)
    assert share_8 > share_3 + 0.2
    forced = traffic_share(Simulator(1, "rush_hour", config.district), at_3)
    assert forced > share_3 + 0.2


def test_city_reports_are_chinese_with_phones(normal_batch):
    _, events = normal_batch
    reports = [e.payload for e in events if e.source == "city" and not e.malformed]
    assert all(re.search(r"[\u4e00-\u9fff]", r["description"]) for r in reports)
    hotline = [r for r in reports if r["channel"] == "hotline_12345"]
    assert hotline and all(re.fullmatch(r"1[3-9]\d{9}", r["reporter_phone"]) for r in hotline)
    with_phone = [r for r in reports if mask_phones(r["description"]) != r["description"]]
    assert 0 < len(with_phone) < len(reports) * 0.2
    assert {r["category"] for r in reports} >= {"garbage_overflow", "illegal_vending", "manhole_cover_missing",
                                                 "noise_complaint", "road_damage"}


def test_repeats_exercise_dedup(normal_batch):
    _, events = normal_batch
    good = [e.payload for e in events if e.source == "city" and not e.malformed]
    cells = Counter((r["category"], grid_cell(r["lat"], r["lon"], 150)) for r in good)
    assert sum(1 for c in cells.values() if c > 1) >= 10
    stations = Counter(e.payload["station_id"] for e in events if e.source == "flood" and not e.malformed)
    assert max(stations.values()) > 5


def test_construction_mix_against_whitelist(config, normal_batch):
    sim, events = normal_batch
    sites = {s["site_id"]: SiteRegistration.model_validate(s) for s in sim.whitelist(NOW)}
    limits = config.rules.construction_limits
    found = Counter()
    for e in events:
        if e.source != "construction" or e.malformed:
            continue
        event = RAW_MODELS["construction"].model_validate(decode(e.payload))
        result = findings(event, find_site(event, sites), event.observed_at.astimezone(SHANGHAI), limits)
        found.update(c.value for c in result) if result else found.update(["compliant"])
    assert found["compliant"] > max(v for k, v in found.items() if k != "compliant")
    for category in ("site_unregistered", "site_permit_invalid", "site_noise", "site_dust", "site_safety"):
        assert found[category] > 0, category


def test_night_noise_breaches_the_night_limit(config):
    sim = Simulator(9, "normal", config.district)
    night = NOW.replace(hour=23)
    noise = [e.payload["value"] for e in sim.generate(night, 3000)
             if e.source == "construction" and not e.malformed and e.payload["kind"] == "noise"]
    assert noise and any(v > 55 for v in noise) and any(v <= 55 for v in noise)


def test_naive_now_is_rejected(config):
    with pytest.raises(ValueError):
        Simulator(1, "normal", config.district).next_batch(datetime(2024, 5, 15, 10), 1)
    with pytest.raises(ValueError):
        Simulator(1, "typhoon", config.district)


def test_the_rainstorm_silences_one_river_gauge_longer_than_its_heartbeat_and_brings_it_back(config):
    sim = Simulator(5, "rainstorm", config.district, start=NOW)
    gauge = sim.silent_station(NOW + timedelta(minutes=15))

    def reports(minute: float) -> int:
        batch = sim.generate(NOW + timedelta(minutes=minute), 1500)
        return sum(1 for e in batch if e.source == "flood" and not e.malformed
                   and e.payload["kind"] == "water_level" and e.payload["station_id"] == gauge)

    assert gauge is not None and reports(5) > 0
    assert reports(12) == reports(30) == reports(49) == 0      # 40 minutes: more than 10 min x 3 missed
    assert reports(52) > 0 and sim.silent_station(NOW + timedelta(minutes=52)) is None
    assert Simulator(5, "normal", config.district, start=NOW).silent_station(NOW + timedelta(minutes=15)) is None


def test_at_the_storms_peak_congestion_builds_above_the_flooded_underpasses(config):
    from handlers.geo import distance_m
    sim = Simulator(5, "rainstorm", config.district, start=NOW)
    peak = sim.peak_time()
    flooded = sim._flooded_spots(peak)
    jams = [e.payload for e in sim.generate(peak, 3000) if e.source == "traffic" and not e.malformed
            and e.payload["type"] == "congestion"]
    near = [j for j in jams if any(distance_m(j["lat"], j["lon"], s[4], s[5]) < 300 for s in flooded)]
    assert flooded and len(near) >= len(jams) // 3


def test_the_simulators_stations_stand_where_the_map_draws_them(config):
    from schemas.geo import load_map
    from streams.ops.simulator import LOW_SPOTS, PUMPS, RAIN_GAUGES, WATER_STATIONS
    stations = load_map(CONFIG_DIR, load_config(CONFIG_DIR)).stations()
    ids = [s[0] for s in (*WATER_STATIONS, *RAIN_GAUGES, *LOW_SPOTS, *PUMPS)]
    assert set(ids) <= set(stations)  # every station the simulator reports is on the map
    places = {sid: (lat, lon) for sid, (_, _, lat, lon) in stations.items()}
    placed = Simulator(5, "rainstorm", config.district, start=NOW, places=places)
    readings = [e.payload for e in placed.generate(placed.peak_time(), 800) if e.source == "flood" and not e.malformed]
    assert readings and all((r["lat"], r["lon"]) == places[r["station_id"]] for r in readings if r["station_id"] in places)
    # The rest of the layout (sites, the other stations) is the seed's, with or without the map.
    assert placed.whitelist(NOW) == Simulator(5, "rainstorm", config.district, start=NOW).whitelist(NOW)
