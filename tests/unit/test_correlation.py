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
from schemas.correlation import Sighting
from schemas.enums import Severity
from schemas.records import KeyState
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


def sighted(role: str, n: int, minutes: float, cell: str = "corr:积水致拥堵:2506:6341") -> Sighting:
    return Sighting(event_id=f"sight-积水致拥堵-{role}-T{n}", cell=cell, rule="积水致拥堵", role=role, ticket_id=f"T{n}",
                    dedup_key=f"key-{n}", severity=Severity.yellow, lat=UNDERPASS[0], lon=UNDERPASS[1],
                    at=T0 + timedelta(minutes=minutes))


def test_a_cell_keeps_the_latest_sightings_of_each_part_and_still_pairs_its_older_cause(config):
    # One flooded underpass, then a jam sighted every 10 s for 20 minutes above it.
    cell = "corr:积水致拥堵:2506:6341"
    state = KeyState(dedup_key=cell)
    cause = sighted("cause", 0, 0)
    state = correlation.on_sighting(config, state, cause).state
    effects = [sighted("effect", n, n / 6) for n in range(1, 121)]
    for effect in effects:
        linked = correlation.on_sighting(config, state, effect)
        assert [(key, c.ticket_id, c.related_ticket_id) for key, c in linked.commands] == \
            [("key-0", "T0", effect.ticket_id), (effect.dedup_key, effect.ticket_id, "T0")]
        state = linked.state
    kept = [s.ticket_id for s in state.sightings.values()]
    assert kept == ["T0"] + [e.ticket_id for e in effects[-correlation.CELL_SIGHTINGS:]]
    assert set(state.linked) == set(state.sightings)
    # A second cause is paired with the effects the cell still holds.
    late = correlation.on_sighting(config, state, sighted("cause", 200, 21))
    assert [c.related_ticket_id for _, c in late.commands[0::2]] == \
        [e.ticket_id for e in sorted(effects[-correlation.CELL_SIGHTINGS:], key=lambda e: e.ticket_id)]
    # Replayed, from the state and as a restarted worker reads it back: the same commands.
    for table in (late.state, KeyState.model_validate_json(late.state.model_dump_json())):
        again = correlation.on_sighting(config, table, sighted("cause", 200, 21))
        assert (again.replayed, again.commands, again.state) == (True, late.commands, table)


def test_a_cell_value_with_relate_commands_per_sighting_reads_as_their_partners(config):
    cell = "corr:积水致拥堵:2506:6341"
    cause, effect = sighted("cause", 1, 0), sighted("effect", 2, 5)
    state = correlation.on_sighting(config, KeyState(dedup_key=cell), cause).state
    paired = correlation.on_sighting(config, state, effect)
    old = json.loads(paired.state.model_dump_json())
    # As the earlier shape wrote it: the commands themselves under each sighting.
    old["linked"] = {cause.event_id: [], effect.event_id: [json.loads(c.model_dump_json()) for _, c in paired.commands]}
    migrated = KeyState.model_validate_json(json.dumps(old))
    assert migrated == paired.state
    again = correlation.on_sighting(config, migrated, effect)
    assert (again.replayed, again.commands) == (True, paired.commands)
