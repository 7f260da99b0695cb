"""Emergency resources (resources.yaml, handlers/resources.py through the ticket step): the file is checked,
the nearest of a kind come first with their state, a resource is held by one ticket at a time (a second
assignment refused), released by the ticket holding it, a shelter's occupancy set by its department, the
assignment written into the ticket's history, and each command replayed with its outputs lost emits the same."""
from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from handlers import resources, ticketing
from handlers.lifecycle import Verdict
from handlers.routing import route
from handlers.tickets import open_ticket
from schemas.config import ConfigError, load_config
from schemas.enums import OPS_CENTRE, Category, Severity, Source
from schemas.records import HistoryKind, Incident, KeyState
from schemas.resources import ResourceCommand
from tests.unit.conftest import NOW

T0 = NOW
LIYUAN = (22.5291, 113.9104)


def errors_after(copy: Path, change) -> list[str]:
    path = copy / "resources.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(copy)
    return info.value.errors


def test_the_districts_resources_load(config):
    kinds = {r.kind for r in config.resources.resources}
    assert {"pump_truck", "rescue_crew", "sandbag_depot", "shelter"} <= kinds
    assert all(r.department in config.district.departments for r in config.resources.resources)


@pytest.mark.parametrize("change, line", [
    (lambda d: d["resources"][0].update(department="fire_brigade"),
     "resources.yaml: resources.0.department: undefined department 'fire_brigade'"),
    (lambda d: d["resources"][1].update(id="pump_truck_01"), "resources.yaml: resources: resource ids must be unique: pump_truck_01"),
    (lambda d: d["resources"][0].update(capacity=-1), "resources.yaml: resources.0.capacity: Input should be greater than or equal to 0"),
    (lambda d: d["resources"][0].update(lat=95), "resources.yaml: resources.0.lat: Input should be less than or equal to 90"),
])
def test_a_bad_resource_is_refused_with_its_line(copy, change, line):
    assert errors_after(copy, change) == [line]


def test_the_nearest_of_a_kind_come_first_with_their_state(config):
    pumps = resources.listing(config, {}, LIYUAN, "pump_truck")
    assert [p.resource.id for p in pumps] == ["pump_truck_01", "pump_truck_03", "pump_truck_02"]
    assert pumps[0].distance_m < 1 < pumps[1].distance_m < pumps[2].distance_m
    assert {p.state for p in pumps} == {"available"}
    [tow_1, tow_2] = resources.listing(config, {}, None, "tow_truck")
    assert (tow_1.state, tow_2.state) == ("available", "out_of_service")


def ticket(config, n: int = 1):
    incident = Incident(incident_id=f"floo-{n:016x}", source=Source.flood, category=Category.flood_waterlogging,
                        subcategory="underpass", severity=Severity.orange, title="积水", lat=LIYUAN[0], lon=LIYUAN[1],
                        community="liyuan", observed_at=T0, received_at=T0, dedup_key=f"flood:key-{n}",
                        source_ref=f"JS-{n}")
    return open_ticket(config, incident, route(config, incident.category, incident.severity, "liyuan"), T0)


def command(action: str, resource_id: str = "pump_truck_01", ticket_id: str | None = None, dedup_key: str | None = None,
            actor: str = "city_management", minutes: int = 1, **fields) -> ResourceCommand:
    built = ResourceCommand(event_id=f"api-{action}-{resource_id}-{minutes}", resource_id=resource_id, action=action,
                            at=T0 + timedelta(minutes=minutes), by="刘城管", actor=actor, ticket_id=ticket_id,
                            dedup_key=dedup_key, **fields)
    return ResourceCommand.model_validate_json(built.model_dump_json())


def step(config, state, item):
    return ticketing.step(config, state, item, resources.resource_key(item.resource_id))


def test_a_resource_is_held_by_one_ticket_at_a_time(config):
    first, second = ticket(config, 1), ticket(config, 2)
    assigned = step(config, None, command("assign", ticket_id=first.ticket_id, dedup_key=first.dedup_key))
    assert assigned.verdict is Verdict.applied
    [hold] = assigned.holds
    assert (hold.ticket_id, hold.since, hold.by) == (first.ticket_id, T0 + timedelta(minutes=1), "刘城管")
    [(key, entry)] = assigned.commands
    assert (key, entry.ticket_id, entry.resource_id) == (first.dedup_key, first.ticket_id, "pump_truck_01")
    assert resources.listing(config, {"pump_truck_01": hold}, LIYUAN, "pump_truck")[0].state == "assigned"
    # The entry in the ticket's history, once.
    written = ticketing.step(config, KeyState(dedup_key=first.dedup_key, tickets={first.ticket_id: first}), entry,
                             first.dedup_key)
    last = written.tickets[0].history[-1]
    assert (last.kind, last.resource_id, last.note) == (HistoryKind.resource_assigned, "pump_truck_01", "移动泵车1号（荔园）")
    assert ticketing.step(config, written.state, entry, first.dedup_key).verdict is Verdict.replayed

    double = step(config, assigned.state, command("assign", ticket_id=second.ticket_id, dedup_key=second.dedup_key,
                                                  minutes=2))
    assert (double.verdict, double.reason) == (Verdict.refused,
                                               f"移动泵车1号（荔园） is already assigned to ticket {first.ticket_id}")
    wrong = step(config, assigned.state, command("release", ticket_id=second.ticket_id, dedup_key=second.dedup_key,
                                                 minutes=3))
    assert (wrong.verdict, wrong.reason) == (Verdict.refused, f"移动泵车1号（荔园） is not assigned to ticket {second.ticket_id}")
    released = step(config, assigned.state, command("release", ticket_id=first.ticket_id, dedup_key=first.dedup_key,
                                                    minutes=4))
    assert released.verdict is Verdict.applied and released.holds[0].ticket_id is None
    assert released.commands[0][1].action.value == "release_resource"
    again = step(config, released.state, command("assign", ticket_id=second.ticket_id, dedup_key=second.dedup_key,
                                                 minutes=5))
    assert again.verdict is Verdict.applied and again.holds[0].ticket_id == second.ticket_id


@pytest.mark.parametrize("item, why", [
    (command("assign", "tow_truck_02", "T1", "k", actor="traffic_police"), "清障拖车2号（维修中） is out of service"),
    (command("assign", "pump_truck_01", "T1", "k", actor="traffic_police"),
     "only city_management or the operations centre assigns 移动泵车1号（荔园）"),
    (command("occupancy", "pump_truck_01", occupancy=3), "only a shelter has an occupancy"),
    (command("occupancy", "shelter_01", actor="city_management", occupancy=3),
     "only the shelter's department (flood_control) sets its occupancy"),
    (command("occupancy", "shelter_01", actor="flood_control", occupancy=601), "occupancy must be 0 to 600"),
    (command("assign", "no_such", "T1", "k"), "unknown resource no_such"),
])
def test_refused_commands(config, item, why):
    outcome = step(config, None, item)
    assert (outcome.verdict, outcome.reason) == (Verdict.refused, why)


def test_a_shelters_department_sets_its_occupancy_and_the_centre_may_assign_any(config):
    filled = step(config, None, command("occupancy", "shelter_01", actor="flood_control", occupancy=240))
    assert filled.holds[0].occupancy == 240 and filled.commands == ()
    first = ticket(config)
    centre = step(config, filled.state, command("assign", "shelter_01", first.ticket_id, first.dedup_key,
                                                actor=OPS_CENTRE, minutes=2))
    assert centre.verdict is Verdict.applied and centre.holds[0].occupancy == 240


@pytest.mark.parametrize("action", ["assign", "release", "occupancy"])
def test_each_resource_command_replayed_after_losing_each_subset_of_its_outputs(config, action):
    first = ticket(config)
    held = step(config, None, command("assign", ticket_id=first.ticket_id, dedup_key=first.dedup_key)).state
    item, before = {
        "assign": (command("assign", ticket_id=first.ticket_id, dedup_key=first.dedup_key), None),
        "release": (command("release", ticket_id=first.ticket_id, dedup_key=first.dedup_key, minutes=5), held),
        "occupancy": (command("occupancy", "shelter_01", actor="flood_control", occupancy=12), None),
    }[action]
    done = step(config, before, item)
    assert done.verdict is Verdict.applied
    wanted = ([h.model_dump_json() for h in done.holds], [(k, c.model_dump_json()) for k, c in done.commands])
    for lost in itertools.chain.from_iterable(itertools.combinations(("table", "hold", "command"), n) for n in range(4)):
        state = before if "table" in lost else KeyState.model_validate_json(done.state.model_dump_json())
        again = step(config, state, item)
        assert ([h.model_dump_json() for h in again.holds], [(k, c.model_dump_json()) for k, c in again.commands]) \
            == wanted, lost
