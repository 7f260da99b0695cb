"""Cross-source correlation through the ticket step, no broker: incidents open tickets, the tickets'
sightings meet on their rule's cells, and the relate commands link the pair. The pipeline's queue is
played here in order: an input's sightings and commands go to the back of the queue."""
from __future__ import annotations

import json
import math
from collections import deque
from datetime import datetime, timedelta

import pytest

from handlers import correlation, ticketing
from handlers.base import Context
from handlers.intake import to_incident
from handlers.lifecycle import Verdict
from schemas.enums import Severity
from tests.unit.conftest import SHANGHAI

T0 = datetime(2026, 5, 12, 9, 0, tzinfo=SHANGHAI)
UNDERPASS = (22.5297, 113.9098)


def north_of(point, metres):
    return point[0] + metres / 111_320.0, point[1]


def east_of(point, metres):
    return point[0], point[1] + metres / (111_320.0 * math.cos(math.radians(point[0])))


def waterlogging(config, cm, at, point=UNDERPASS, station="JS-LY-05"):
    raw = {"station_id": station, "kind": "waterlogging", "value": cm, "lat": point[0], "lon": point[1],
           "observed_at": at.isoformat()}
    return to_incident("flood", json.dumps(raw).encode(), Context(config, at, {}))


def congestion(config, at, point, road="荔园路", event_id="SC-1", speed=35.0):
    raw = {"event_id": event_id, "type": "congestion", "road": road, "lat": point[0], "lon": point[1],
           "observed_at": at.isoformat(), "speed_kmh": speed}
    return to_incident("traffic", json.dumps(raw).encode(), Context(config, at, {}))


class Pipeline:
    """The ticket step's table and a FIFO of inputs, as the decide agent plays them."""

    def __init__(self, config):
        self.config, self.states, self.queue = config, {}, deque()
        self.outcomes: list[tuple[str, object, ticketing.Outcome]] = []

    def feed(self, *incidents):
        for incident in incidents:
            self.queue.append((incident.dedup_key, incident))
        while self.queue:
            key, item = self.queue.popleft()
            outcome = ticketing.step(self.config, self.states.get(key), item, key)
            self.outcomes.append((key, item, outcome))
            if outcome.verdict is Verdict.applied:
                self.states[key] = outcome.state
            self.queue.extend((s.cell, s) for s in outcome.sightings)
            self.queue.extend(outcome.commands)
        return self

    def ticket(self, incident):
        [ticket] = [t for t in self.states[incident.dedup_key].tickets.values() if t.incident_id == incident.incident_id]
        return ticket


def test_waterlogging_and_congestion_300_m_and_10_min_apart_are_linked(config):
    flood = waterlogging(config, 20, T0)                                 # 20 cm: yellow
    jam = congestion(config, T0 + timedelta(minutes=10), north_of(UNDERPASS, 300))   # 35 km/h: blue
    run = Pipeline(config).feed(flood, jam)
    cause, effect = run.ticket(flood), run.ticket(jam)
    assert [(r.ticket_id, r.rule, r.role) for r in cause.related] == [(effect.ticket_id, "积水致拥堵", "effect")]
    assert [(r.ticket_id, r.rule, r.role) for r in effect.related] == [(cause.ticket_id, "积水致拥堵", "cause")]
    # The effect graded to the rule's floor, each side watched by the other's department.
    assert (effect.opened_severity, effect.severity) == (Severity.blue, Severity.orange)
    assert "flood_control" in effect.watchers and "traffic_police" in cause.watchers
    assert cause.severity is Severity.yellow
    assert [h.action for h in effect.history][-2:] == ["related", "severity_raised"]


@pytest.mark.parametrize("apart, minutes", [(800, 10), (300, 40)])
def test_too_far_or_too_late_is_not_linked(config, apart, minutes):
    flood = waterlogging(config, 20, T0)
    jam = congestion(config, T0 + timedelta(minutes=minutes), east_of(UNDERPASS, apart))
    run = Pipeline(config).feed(flood, jam)
    assert run.ticket(flood).related == [] and run.ticket(jam).related == []


def test_a_waterlogging_ticket_that_deepens_to_yellow_becomes_a_cause_then(config):
    shallow = waterlogging(config, 8, T0)                                            # blue: no cause yet
    jam = congestion(config, T0 + timedelta(minutes=5), north_of(UNDERPASS, 200))
    deeper = waterlogging(config, 20, T0 + timedelta(minutes=10))                     # the same ticket, yellow
    run = Pipeline(config).feed(shallow, jam)
    assert run.ticket(shallow).related == []
    run.feed(deeper)
    ticket = run.ticket(shallow)
    assert ticket.severity is Severity.yellow and [r.ticket_id for r in ticket.related] == [run.ticket(jam).ticket_id]
    # Sighted once, by the report that made it qualify.
    assert [(i, [p.role for p in parts]) for i, parts in run.states[shallow.dedup_key].sighted.items()] == \
        [(deeper.incident_id, ["cause"])]


def test_the_effect_first_then_the_cause_is_linked_too_and_a_blue_cause_is_not_one(config):
    jam = congestion(config, T0, east_of(UNDERPASS, 450))
    shallow = waterlogging(config, 8, T0 + timedelta(minutes=5), station="JS-LY-06")  # blue: below the rule
    flood = waterlogging(config, 20, T0 + timedelta(minutes=20))
    run = Pipeline(config).feed(jam, shallow, flood)
    assert [r.ticket_id for r in run.ticket(jam).related] == [run.ticket(flood).ticket_id]
    assert run.ticket(shallow).related == []


def test_replaying_both_incidents_and_every_sighting_and_command_changes_nothing(config):
    flood = waterlogging(config, 20, T0)
    jam = congestion(config, T0 + timedelta(minutes=10), north_of(UNDERPASS, 300))
    run = Pipeline(config).feed(flood, jam)
    before = {k: s.model_dump_json() for k, s in run.states.items()}
    first = [(key, item, outcome) for key, item, outcome in run.outcomes]
    again = Pipeline(config)
    again.states = dict(run.states)
    for key, item, outcome in first:  # every input once more, against the state after all of them
        replay = ticketing.step(config, again.states.get(key), item, key)
        assert replay.verdict is Verdict.replayed, item
        assert replay.commands == outcome.commands  # a cell sends exactly what it sent
        assert replay.sightings == outcome.sightings  # and an incident's tickets are sighted as the first time
    assert {k: s.model_dump_json() for k, s in again.states.items()} == before


def test_an_accident_links_the_congestion_on_the_same_road_only(config):
    accident = to_incident("traffic", json.dumps({
        "event_id": "TP-1", "type": "accident", "road": "荔园路", "lat": UNDERPASS[0], "lon": UNDERPASS[1],
        "observed_at": T0.isoformat(), "lanes_blocked": 2, "vehicles": 2}).encode(), Context(config, T0, {}))
    same = congestion(config, T0 + timedelta(minutes=5), north_of(UNDERPASS, 400), event_id="SC-2", speed=25.0)
    other = congestion(config, T0 + timedelta(minutes=5), east_of(UNDERPASS, 300), road="南海大道", event_id="SC-3",
                       speed=25.0)
    run = Pipeline(config).feed(accident, same, other)
    assert [r.ticket_id for r in run.ticket(accident).related] == [run.ticket(same).ticket_id]
    assert run.ticket(same).severity is Severity.yellow


def test_cells_put_any_two_points_within_the_distance_in_a_shared_cell(config):
    rule = config.rules.correlations[0]
    for bearing in range(0, 360, 15):
        for metres in (10, 250, 499):
            here = (22.52 + bearing * 1e-5, 113.93)
            there = north_of(east_of(here, metres * math.sin(math.radians(bearing))),
                             metres * math.cos(math.radians(bearing)))
            assert set(correlation.cells(rule, *here)) & set(correlation.cells(rule, *there))
