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
from handlers.privacy import mask_personal
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
    with_phone = [r for r in reports if mask_personal(r["description"]) != r["description"]]
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


# ------------------------------------------------------------------ `due`: a sub-district's volumes

def run_due(sim: Simulator, start: datetime, minutes: float, step_s: int = 60) -> list[tuple[datetime, object]]:
    """(now, event) for every event `due` gives, called every step_s seconds from `start`."""
    out = [(start, e) for e in sim.due(start)]
    for k in range(1, int(minutes * 60 / step_s) + 1):
        now = start + timedelta(seconds=step_s * k)
        out += [(now, e) for e in sim.due(now)]
    return out


def opening(config, sim: Simulator, start: datetime, events) -> list:
    """The well-formed reports that intake turns into an incident (one that opens or joins a ticket)."""
    from handlers.base import Context
    from handlers.intake import to_incident
    sites = {s["site_id"]: SiteRegistration.model_validate(s) for s in sim.whitelist(start)}
    found = []
    for now, e in events:
        if not e.malformed and to_incident(e.source, json.dumps(e.payload).encode(), Context(config, now, sites)):
            found.append(e)
    return found


def test_each_station_reads_at_its_interval_and_on_connecting(config):
    once = Simulator(5, "rainstorm", config.district, start=NOW)
    first = once.due(NOW)
    assert Counter(e.source for e in first) == {"flood": 18}  # 5 gauges, 4 rivers, 5 low spots, 3 pumps, the signal
    assert once.due(NOW) == []  # nothing twice
    sim = Simulator(5, "rainstorm", config.district, start=NOW)
    events = [e for _, e in run_due(sim, NOW, 60, step_s=10)]
    per_station = Counter(e.payload["station_id"] for e in events if e.source == "flood" and not e.malformed)
    malformed = sum(e.malformed for e in events if e.source == "flood")
    silent = sim.silent_station(NOW + timedelta(minutes=15))
    # In the hour: on connecting, then every 5 minutes (rivers, pumps), 2 (low spots), 1 (rain, the signal).
    expected = {**{s: 13 for s in ("WL-02", "WL-03", "TD-01", "PS-01", "PS-02", "PS-03")},
                **{s: 31 for s in ("WLG-01", "WLG-02", "WLG-03", "WLG-04", "WLG-05")},
                **{s: 61 for s in ("RG-01", "RG-02", "RG-03", "RG-04", "RG-05", "TY-HW")}}
    expected[silent] = 13 - 8  # silent from minute 10 to 50: its readings at 10, 15, ... 45 are missing
    assert sum(expected.values()) == sum(per_station.values()) + malformed
    assert all(expected[s] - malformed <= n <= expected[s] for s, n in per_station.items()), per_station
    assert set(per_station) == set(expected)
    # In time order, each made at its own moment.
    times = [datetime.fromisoformat(e.payload["observed_at"].replace("Z", "+00:00")) for e in events
             if not e.malformed and e.source == "flood"]
    assert max(times) <= NOW + timedelta(hours=1) and min(times) >= NOW - timedelta(seconds=15)
    assert "TY-HW" not in {e.payload["station_id"] for e in Simulator(5, "normal", config.district).due(NOW)}


def test_due_is_seeded_and_takes_its_time_only_from_now(config):
    a, b = (Simulator(7, "rainstorm", config.district, intensity=3) for _ in range(2))
    assert run_due(a, NOW, 30, step_s=7) == run_due(b, NOW, 30, step_s=7)
    assert run_due(Simulator(8, "rainstorm", config.district), NOW, 30) != run_due(
        Simulator(7, "rainstorm", config.district), NOW, 30)
    with pytest.raises(ValueError):
        Simulator(7, "normal", config.district, intensity=0)


# By day in calm weather at intensity 1 (docs/simulator.md): 12345 2 cases an hour; reports that open or
# join a ticket about 9 an hour (city 5.5, traffic 2.35, construction violations about 1).
@pytest.mark.parametrize("intensity,seeds,tolerance", [(1, (11, 12, 13, 14), 0.3), (10, (11,), 0.12)])
def test_reports_per_hour_by_day_are_a_sub_districts_times_the_intensity(config, intensity, seeds, tolerance):
    hours = 6 * len(seeds)  # 10:00-16:00 on a Wednesday (no rush hour, no night), once per seed
    hotline, reports, flood = 0, Counter(), []
    for seed in seeds:
        sim = Simulator(seed, "normal", config.district, intensity=intensity)
        events = run_due(sim, NOW, 6 * 60)
        # Some are calls about a problem already reported: they join its ticket.
        hotline += sum(e.source == "city" and not e.malformed and e.payload["channel"] == "hotline_12345"
                       for _, e in events)
        found = opening(config, sim, NOW, events)
        reports.update(e.source for e in found)
        flood += [e for e in found if e.source == "flood"]
    assert hotline / hours == pytest.approx(2.0 * intensity, rel=tolerance)
    others = sum(n for source, n in reports.items() if source != "flood")
    assert others / hours == pytest.approx(9.0 * intensity, rel=tolerance), reports
    assert reports["city"] / hours == pytest.approx(5.5 * intensity, rel=tolerance)
    # Calm readings open nothing, but a pump's rare fault.
    assert all(e.payload["kind"] == "pump_station" for e in flood)
    assert len(flood) <= hours


def test_a_storm_brings_several_times_the_calls_and_a_rainstorms_hour_some_tens_of_tickets(config):
    sim = Simulator(11, "rainstorm", config.district, start=NOW, intensity=30)
    events = run_due(sim, NOW, 180)  # three storms of 20 minutes, each with 40 calm minutes after it

    def in_storm(now: datetime) -> bool:
        return (now - NOW) % (sim.storm + sim.calm) <= sim.storm

    calls = Counter(in_storm(now) for now, e in events if e.source == "city" and not e.malformed
                    and e.payload["channel"] == "hotline_12345")
    # Per hour: 1 + 4 x the storm's mean intensity (0.5) = 3 times the calm rate.
    ratio = (calls[True] / 20) / (calls[False] / 40)
    assert 2.2 <= ratio <= 3.8, calls
    one = Simulator(11, "rainstorm", config.district, start=NOW)
    storm = run_due(one, NOW, 60)
    found = opening(config, one, NOW, storm)
    first_flood = min(now for now, e in storm if e in found and e.source == "flood")
    assert first_flood - NOW <= timedelta(minutes=4)  # the rain passes 30 mm/h about 3 minutes in
    # Some tens of tickets in the storm's hour: most stations over a threshold (their readings join one
    # ticket each) and some tens of reports, not the thousands a fixed 5 events/s made.
    stations = {e.payload["station_id"] for e in found if e.source == "flood"}
    reports = [e for e in found if e.source != "flood"]
    assert 10 <= len(stations) <= 18 and 5 <= len(reports) <= 30, (stations, Counter(e.source for e in reports))
