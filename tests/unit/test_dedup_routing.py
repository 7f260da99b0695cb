"""Dedup windows (并单), triage decisions, routing (派遣) and the geometry they stand on."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from handlers.dedup import TICKETS_PER_KEY, Seen, latest, match, remember, window
from handlers.geo import community_at, contains, distance_m, grid_cell
from handlers.intake import to_incident
from handlers.routing import route, workstation_of
from handlers.triage import triage
from schemas.enums import OPS_CENTRE, Category, Severity
from schemas.records import TicketAction


@pytest.fixture
def incident(ctx, sample):
    """make(source, name, **changes) -> the Incident of a captured payload with some fields changed."""
    def make(source="traffic", name="accident_minor", **changes):
        data = sample(source, name)
        data.update(changes)
        return to_incident(source, json.dumps(data, ensure_ascii=False).encode(), ctx)
    return make


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
def test_match_inside_at_and_after_the_window(incident, clock, minutes_after, repeat):
    entry = remember(None, incident(), "T1", clock)
    later = incident(event_id="TP-2", observed_at=at(minutes_after))
    assert (match(entry, later, timedelta(minutes=30)) == entry.tickets[0]) is repeat


def test_nothing_remembered_matches_nothing(incident):
    assert match(None, incident(), timedelta(days=365)) is None


def test_remember_slides_the_window_forward_but_never_back(incident, clock):
    first = incident()
    entry = remember(None, first, "T1", clock)
    assert [(s.ticket_id, s.opened_at, s.last_seen_at) for s in entry.tickets] == [("T1", clock, first.observed_at)]
    later = remember(entry, incident(event_id="TP-2", observed_at=at(20)), "T1", clock + timedelta(minutes=20))
    assert latest(later).last_seen_at == first.observed_at + timedelta(minutes=20)
    assert latest(later).opened_at == clock
    late = remember(later, incident(event_id="TP-3", observed_at=at(5)), "T1", clock + timedelta(minutes=25))
    assert late == later
    # 45 minutes after the first report is still a repeat: the window slid with the report at +20.
    assert match(late, incident(event_id="TP-4", observed_at=at(45)), timedelta(minutes=30)).ticket_id == "T1"
    assert match(late, incident(event_id="TP-5", observed_at=at(51)), timedelta(minutes=30)) is None


def test_a_new_ticket_is_added_and_the_earlier_one_still_matches_its_late_reports(incident, clock):
    span = timedelta(minutes=30)
    entry = remember(None, incident(observed_at=at(0)), "T1", clock)
    entry = remember(entry, incident(event_id="TP-2", observed_at=at(300)), "T2", clock + timedelta(hours=5))
    assert [s.ticket_id for s in entry.tickets] == ["T1", "T2"]
    assert latest(entry).opened_at == clock + timedelta(hours=5)
    # A replayed partition delivers the first problem's report after the second problem opened.
    assert match(entry, incident(event_id="TP-3", observed_at=at(10)), span).ticket_id == "T1"
    assert match(entry, incident(event_id="TP-4", observed_at=at(290)), span).ticket_id == "T2"


def test_only_the_latest_tickets_per_key_are_remembered(incident, clock):
    entry = None
    for n in range(TICKETS_PER_KEY + 3):
        entry = remember(entry, incident(event_id=f"TP-{n}", observed_at=at(60 * n)), f"T{n}", clock)
    assert [s.ticket_id for s in entry.tickets] == [f"T{n}" for n in range(3, TICKETS_PER_KEY + 3)]
    # An old problem's late report lands in the middle: it is kept in observation order.
    entry = remember(entry, incident(event_id="TP-late", observed_at=at(60 * 4 + 45)), "T-late", clock)
    assert [s.ticket_id for s in entry.tickets][:3] == ["T4", "T-late", "T5"]


# ------------------------------------------------------------------ triage

def test_first_incident_opens_a_ticket(config, incident, clock):
    first = incident()
    result = triage(config, None, first, clock)
    event, ticket = result.event, result.event.ticket
    assert event.action is TicketAction.open
    assert event.event_id == f"open-{first.incident_id}"
    assert event.ticket_id == ticket.ticket_id
    assert ticket.department == "traffic_police" and ticket.community == "wanghai"
    assert ticket.dedup_key == first.dedup_key and ticket.incident_ids == [first.incident_id]
    assert ticket.previous_ticket_id is None
    assert ticket.dispatched_at == clock
    assert ticket.accept_due == clock + timedelta(hours=2)       # yellow: accept 2h
    assert result.entry.tickets == (Seen(ticket_id=ticket.ticket_id, opened_at=clock, first_seen_at=first.observed_at,
                                         last_seen_at=first.observed_at),)


def test_the_same_incident_always_opens_the_same_ticket_id(config, incident, clock):
    a = triage(config, None, incident(), clock).event.ticket_id
    b = triage(config, None, incident(), clock + timedelta(minutes=1)).event.ticket_id
    assert a == b


def test_repeat_inside_the_window_is_an_occurrence_of_the_same_ticket(config, incident, clock):
    opened = triage(config, None, incident(), clock)
    repeat = incident(event_id="TP-20260512-000325", observed_at=at(25), injuries=1)
    result = triage(config, opened.entry, repeat, clock + timedelta(minutes=25))
    assert result.event.action is TicketAction.occurrence
    assert result.event.ticket_id == opened.event.ticket_id
    assert result.event.event_id == f"occ-{repeat.incident_id}"
    assert result.event.incident == repeat and result.event.ticket is None
    assert [s.ticket_id for s in result.entry.tickets] == [opened.event.ticket_id]
    assert latest(result.entry).last_seen_at == repeat.observed_at
    assert latest(result.entry).opened_at == clock


def test_after_the_window_a_new_ticket_points_to_the_previous_one(config, incident, clock):
    opened = triage(config, None, incident(), clock)
    later = incident(event_id="TP-20260512-000399", observed_at=at(31))
    result = triage(config, opened.entry, later, clock + timedelta(minutes=31))
    assert result.event.action is TicketAction.open
    assert result.event.ticket.ticket_id != opened.event.ticket_id
    assert result.event.ticket.previous_ticket_id == opened.event.ticket_id
    assert [s.ticket_id for s in result.entry.tickets] == [opened.event.ticket_id, result.event.ticket.ticket_id]
    assert latest(result.entry).opened_at == clock + timedelta(minutes=31)


def test_each_source_uses_its_own_window(config, incident, clock):
    # Two hours later: a new ticket for traffic (30 min), the same one for a flood station (3 h).
    traffic = triage(config, None, incident(), clock)
    assert triage(config, traffic.entry, incident(event_id="TP-9", observed_at=at(120)),
                  clock).event.action is TicketAction.open
    gauge = incident("flood", "water_level_near_warning")
    flood = triage(config, None, gauge, clock)
    rising = incident("flood", "water_level_near_warning", value=4.6,
                      observed_at=at(120, base="2026-05-12T09:00:00+08:00"))
    assert rising.dedup_key == gauge.dedup_key
    assert triage(config, flood.entry, rising, clock).event.action is TicketAction.occurrence


def test_out_of_jurisdiction_incident_goes_to_the_ops_centre(config, incident, clock):
    outside = incident("traffic", "outside_district")
    assert outside.community is None
    ticket = triage(config, None, outside, clock).event.ticket
    assert (ticket.department, ticket.out_of_jurisdiction) == (OPS_CENTRE, True)
    assert "out of jurisdiction" in ticket.history[0].note


def test_red_incident_ticket_is_watched_by_the_ops_centre(config, incident, clock):
    ticket = triage(config, None, incident("traffic", "accident_pileup"), clock).event.ticket
    assert (ticket.severity, ticket.department, ticket.watchers) == (Severity.red, "traffic_police", [OPS_CENTRE])


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
])
def test_category_to_department(config, category, department):
    assert len(Category) == 24  # a new category needs a line above
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
    assert triage(config, None, vending, clock).event.ticket.department == "ws_yugang"


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
