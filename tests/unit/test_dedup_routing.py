"""Dedup windows (并单), routing (派遣) and the geometry they stand on.

How the ticket step uses them (open, occurrence, successor) is in test_ticketing.py."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from handlers import ticketing
from handlers.dedup import forget_expired, latest, match, remember, window
from handlers.geo import community_at, contains, distance_m, grid_cell
from handlers.routing import route, workstation_of
from schemas.enums import OPS_CENTRE, Category, Severity
from schemas.records import Seen


def at(minutes: float, base="2026-05-12T09:12:40+08:00") -> str:
    return (datetime.fromisoformat(base) + timedelta(minutes=minutes)).isoformat()


# ------------------------------------------------------------------ windows

def test_windows_per_source(config):
    assert {s: window(config, s) for s in ("traffic", "flood", "city", "construction")} == {
        "traffic": timedelta(minutes=30), "flood": timedelta(hours=3),
        "city": timedelta(days=1), "construction": timedelta(hours=4)}


@pytest.mark.parametrize("minutes_after, repeat", [
    (0, True), (29.99, True), (30, True),   # the window is inclusive
    (30.02, False), (120, False),
    (-5, True), (-30, True),                # late readings inside the window belong to the ticket
    (-30.02, False), (-600, False),         # a report from long before is another problem
])
def test_match_inside_at_and_after_the_window(incident, minutes_after, repeat):
    seen = remember([], incident(), "T1")
    later = incident(event_id="TP-2", observed_at=at(minutes_after))
    assert (match(seen, later, timedelta(minutes=30)) == seen[0]) is repeat


def test_nothing_remembered_matches_nothing(incident):
    assert match([], incident(), timedelta(days=365)) is None
    assert latest([]) is None


def test_remember_slides_the_window_forward_but_never_back(incident, clock):
    first = incident()
    seen = remember([], first, "T1")
    assert [(s.ticket_id, s.first_seen_at, s.last_seen_at, s.last_received_at) for s in seen] == \
        [("T1", first.observed_at, first.observed_at, clock)]
    later = remember(seen, incident(event_id="TP-2", observed_at=at(20), received_at=clock + timedelta(minutes=20)),
                     "T1")
    assert latest(later).last_seen_at == first.observed_at + timedelta(minutes=20)
    assert latest(later).first_seen_at == first.observed_at
    assert latest(later).last_received_at == clock + timedelta(minutes=20)
    # A late copy from between the two changes nothing (it arrived earlier than the newest too).
    late = remember(later, incident(event_id="TP-3", observed_at=at(5), received_at=clock + timedelta(minutes=10)),
                    "T1")
    assert late == later
    # 45 minutes after the first report is still a repeat: the window slid with the report at +20.
    assert match(late, incident(event_id="TP-4", observed_at=at(45)), timedelta(minutes=30)).ticket_id == "T1"
    assert match(late, incident(event_id="TP-5", observed_at=at(51)), timedelta(minutes=30)) is None
    # An earlier observation widens the span backwards.
    earlier = remember(late, incident(event_id="TP-6", observed_at=at(-10)), "T1")
    assert latest(earlier).first_seen_at == first.observed_at - timedelta(minutes=10)


def test_a_new_ticket_is_added_and_the_earlier_one_still_matches_its_late_reports(incident):
    span = timedelta(minutes=30)
    seen = remember([], incident(observed_at=at(0)), "T1")
    seen = remember(seen, incident(event_id="TP-2", observed_at=at(300)), "T2")
    assert [s.ticket_id for s in seen] == ["T1", "T2"]
    assert latest(seen).ticket_id == "T2"
    # A replayed partition delivers the first problem's report after the second problem opened.
    assert match(seen, incident(event_id="TP-3", observed_at=at(10)), span).ticket_id == "T1"
    assert match(seen, incident(event_id="TP-4", observed_at=at(290)), span).ticket_id == "T2"


def test_every_ticket_inside_its_window_is_remembered_in_observation_order(incident):
    # No per-key cap: a key with many problems still finds the right one for an old problem's late
    # report, however many newer ones opened since (the window alone ends a span: forget_expired).
    span = timedelta(minutes=30)
    seen: list[Seen] = []
    for n in range(12):
        seen = remember(seen, incident(event_id=f"TP-{n}", observed_at=at(60 * n)), f"T{n}")
    assert [s.ticket_id for s in seen] == [f"T{n}" for n in range(12)]
    assert match(seen, incident(event_id="TP-late-0", observed_at=at(5)), span).ticket_id == "T0"
    # An old problem's late report lands in the middle: it is kept in observation order.
    seen = remember(seen, incident(event_id="TP-late", observed_at=at(60 * 4 + 45)), "T-late")
    assert [s.ticket_id for s in seen][3:7] == ["T3", "T4", "T-late", "T5"]


def test_remember_returns_a_new_list(incident):
    seen = remember([], incident(), "T1")
    again = remember(seen, incident(event_id="TP-2", observed_at=at(300)), "T2")
    assert [s.ticket_id for s in seen] == ["T1"] and len(again) == 2


@pytest.mark.parametrize("after, kept", [
    (timedelta(0), True), (timedelta(minutes=30), True),   # inclusive, like match
    (timedelta(minutes=30, seconds=1), False), (timedelta(days=1), False),
])
def test_a_span_is_forgotten_a_whole_window_after_its_latest_observation(incident, clock, after, kept):
    span = timedelta(minutes=30)
    first = incident(observed_at=clock.isoformat())
    seen = remember([], first, "T1")
    assert (forget_expired(seen, clock + after, span) == seen) is kept
    if not kept:
        assert forget_expired(seen, clock + after, span) == []


def test_a_late_delivery_keeps_its_span_alive(incident, clock):
    # Readings observed an hour ago keep arriving: the span lives a window past the latest arrival.
    span = timedelta(minutes=30)
    old = (clock - timedelta(hours=1)).isoformat()
    seen = remember([], incident(observed_at=old), "T1")
    assert forget_expired(seen, clock + timedelta(minutes=30), span) == seen
    assert forget_expired(seen, clock + timedelta(minutes=31), span) == []
    # Only the expired span goes; the others keep their order.
    newer = remember(seen, incident(event_id="TP-9", observed_at=at(300), received_at=clock + timedelta(hours=5)),
                     "T2")
    assert [s.ticket_id for s in forget_expired(newer, clock + timedelta(hours=5), span)] == ["T2"]


# ------------------------------------------------------------------ routing

@pytest.mark.parametrize("category, department", [
    (Category.traffic_accident, "traffic_police"),
    (Category.traffic_congestion, "traffic_police"),
    (Category.traffic_violation, "traffic_police"),
    (Category.traffic_facility, "traffic_police"),
    (Category.road_obstruction, "traffic_police"),
    (Category.flood_water_level, "flood_control"),
    (Category.flood_rainfall, "flood_control"),
    (Category.flood_waterlogging, "flood_control"),
    (Category.flood_pump_station, "flood_control"),
    (Category.typhoon, "flood_control"),
    (Category.city_sanitation, "ws_haibin"),       # to_workstation
    (Category.city_street_order, "city_management"),
    (Category.city_facility, "ws_haibin"),         # to_workstation
    (Category.city_noise, "environment"),
    (Category.city_illegal_construction, "city_management"),
    (Category.city_road_damage, "city_management"),
    (Category.city_manhole, "city_management"),
    (Category.city_other, "ws_haibin"),            # to_workstation
    (Category.site_unregistered, "construction_safety"),
    (Category.site_out_of_hours, "construction_safety"),
    (Category.site_permit_invalid, "construction_safety"),
    (Category.site_safety, "construction_safety"),
    (Category.site_noise, "environment"),
    (Category.site_dust, "environment"),
    (Category.flood_device_offline, "flood_control"),
    (Category.site_device_offline, "construction_safety"),
])
def test_category_to_department(config, category, department):
    assert len(Category) == 26  # a new category needs a line above
    r = route(config, category, Severity.yellow, "haibin")
    assert (r.department, r.watchers, r.out_of_jurisdiction) == (department, (), False)


@pytest.mark.parametrize("community", ["haibin", "wanghai", "yugang", "xingang", "liyuan", "guiwan",
                                       "rongshu", "shahe"])
def test_to_workstation_goes_to_the_community_workstation(config, community):
    r = route(config, Category.city_sanitation, Severity.blue, community)
    assert (r.department, r.watchers, r.out_of_jurisdiction) == (f"ws_{community}", (), False)
    assert workstation_of(config, community) == f"ws_{community}"


def test_community_override_yugang_street_order(config):
    assert route(config, Category.city_street_order, Severity.blue, "yugang").department == "ws_yugang"
    assert route(config, Category.city_street_order, Severity.blue, "xingang").department == "city_management"
    # The override is for street order only.
    assert route(config, Category.city_manhole, Severity.orange, "yugang").department == "city_management"


def test_captured_vending_case_in_yugang_goes_to_its_workstation(config, incident, clock):
    vending = incident("city", "camera_ai_vending")
    assert (vending.community, vending.category) == ("yugang", Category.city_street_order)
    outcome = ticketing.step(config, None, vending, vending.dedup_key)
    [ticket] = outcome.tickets
    assert ticket.department == "ws_yugang"


@pytest.mark.parametrize("severity, watchers", [
    (Severity.red, (OPS_CENTRE,)), (Severity.orange, ()), (Severity.yellow, ()), (Severity.blue, ()),
])
def test_red_adds_the_ops_centre_as_watcher(config, severity, watchers):
    assert route(config, Category.flood_waterlogging, severity, "liyuan").watchers == watchers


@pytest.mark.parametrize("severity", list(Severity))
def test_outside_every_polygon_goes_to_the_ops_centre(config, severity):
    r = route(config, Category.city_sanitation, severity, None)
    # The ops centre owns it; it is not its own watcher.
    assert (r.department, r.out_of_jurisdiction, r.watchers) == (OPS_CENTRE, True, ())


# ------------------------------------------------------------------ geometry

SQUARE = [(113.90, 22.50), (113.91, 22.50), (113.91, 22.51), (113.90, 22.51)]


@pytest.mark.parametrize("lon, lat, inside", [
    (113.905, 22.505, True), (113.9001, 22.5099, True),
    (113.899, 22.505, False), (113.911, 22.505, False), (113.905, 22.4999, False), (113.905, 22.511, False),
])
def test_contains(lon, lat, inside):
    assert contains(SQUARE, lon, lat) is inside


def test_contains_a_concave_polygon():
    # An L shape: the notch at the top right is outside.
    ell = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]
    assert contains(ell, 0.5, 1.5) and contains(ell, 1.5, 0.5)
    assert not contains(ell, 1.5, 1.5)


@pytest.mark.parametrize("lat, lon, community", [
    (22.5085, 113.9102, "haibin"), (22.5297, 113.9098, "liyuan"), (22.5288, 113.9467, "rongshu"),
    (22.5621, 113.9350, None), (22.5200, 113.8850, None), (22.4950, 113.9400, None),
])
def test_community_at(config, lat, lon, community):
    assert community_at(config.district.communities, lat, lon) == community


def test_communities_cover_the_district_without_overlap(config):
    communities = config.district.communities
    hits = 0
    for i in range(1, 40):
        for j in range(1, 80):
            lat, lon = 22.50 + 0.04 * i / 40, 113.90 + 0.08 * j / 80
            inside = [c for c, com in communities.items() if contains(com.polygon, lon, lat)]
            assert len(inside) <= 1, (lat, lon, inside)
            hits += len(inside)
    assert hits == 39 * 79   # every interior grid point is in exactly one community


def test_distance(config):
    assert distance_m(22.5, 113.9, 22.5, 113.9) == 0
    assert distance_m(22.5, 113.9, 23.5, 113.9) == pytest.approx(111_195, rel=1e-3)
    assert distance_m(22.5, 113.9, 22.5, 113.91) == pytest.approx(1028, rel=1e-2)


def test_grid_cell_size(config):
    size = config.rules.dedup.grid_m
    assert size == 150
    base = grid_cell(22.5081, 113.9276, size)
    assert base == grid_cell(22.5081, 113.9276, size)
    # Points 300 m apart never share a cell (cells are 150 m); points 10 m apart usually do.
    assert grid_cell(22.5081 + 300 / 111_320, 113.9276, size) != base
    assert grid_cell(22.5081, 113.9276 + 300 / (111_320 * 0.9238), size) != base
    cells = {grid_cell(22.5081 + k * 1e-5, 113.9276, size) for k in range(10)}
    assert len(cells) <= 2
    # A coarser grid merges what a finer one separates.
    assert grid_cell(22.5081, 113.9276, 1000) == grid_cell(22.5081 + 150 / 111_320, 113.9276, 1000) or \
        grid_cell(22.5081, 113.9276, 1000) == grid_cell(22.5081 - 150 / 111_320, 113.9276, 1000)
