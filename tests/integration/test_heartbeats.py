"""Heartbeats through their own stack (a short heartbeat would make every other test's stations go
silent): a water-level station that stops reporting opens one flood_device_offline ticket, counted in
soc_devices_silent, and its next reading adds the recovery to that ticket."""
from __future__ import annotations

import re
import urllib.request

import pytest

from tests.integration.payloads import Builder
from tests.support import CONFIG, config_with_rules, poll, running_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config_dir = config_with_rules(tmp_path_factory, "heartbeats", (r"flood\.water_level: \{every: 10m, missing: 3\}",
                                                                    "flood.water_level: {every: 5s, missing: 3}"))
    with running_pipeline(tmp_path_factory.mktemp("heartbeats-stack"), config_dir=config_dir) as running:
        yield running


def silent_gauge(stack) -> float | None:
    text = urllib.request.urlopen(f"{stack.worker.url}/metrics", timeout=10).read().decode()
    found = re.search(r'^soc_devices_silent\{source="flood"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_a_silent_station_opens_one_ticket_and_its_next_reading_recovers_it(stack):
    build = Builder(CONFIG, "heartbeat")
    station = f"SW-{build.unique}"
    stack.send("soc.raw.flood", build.flood(station_id=station, value=2.0))  # a normal reading: a heartbeat only
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.category.value == "flood_device_offline"
                                                and t.source_ref.startswith(station)), 60, "the offline ticket")
    assert (ticket.department, ticket.severity.value) == ("flood_control", "blue")
    poll(lambda: silent_gauge(stack) == 1.0, 30, "soc_devices_silent at 1")
    stack.send("soc.raw.flood", build.flood(station_id=station, value=2.1))
    # Recovered, and counted so, until it has been silent for 15 s again.
    poll(lambda: silent_gauge(stack) == 0.0, 30, "soc_devices_silent back at 0")
    poll(lambda: "device_recovered" in [h.action for h in stack.ticket(ticket.ticket_id).history], 30,
         "the recovery in the ticket's history")
    assert len(stack.tickets_where(lambda t: t.source_ref.startswith(station))) == 1


def test_an_alarms_station_back_to_normal_marks_its_ticket_and_leaves_it_open(stack):
    build = Builder(CONFIG, "all-clear")
    station = f"JS-{build.unique}"

    def waterlogging(cm: float, minutes: float) -> dict:
        return build.flood(station_id=station, kind="waterlogging", value=cm, warning_level=None, danger_level=None,
                           observed_at=build.at(minutes=minutes))

    stack.send("soc.raw.flood", waterlogging(32, -40))
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.source_ref.startswith(station)), 30, "the waterlogging ticket")
    for minutes in (-30, -20, -10):  # three normal readings spanning 20 minutes (rules.yaml all_clear)
        stack.send("soc.raw.flood", waterlogging(0.5, minutes))
    cleared = poll(lambda: (lambda t: t if t.source_cleared_at else None)(stack.ticket(ticket.ticket_id)), 30,
                   "source back to normal on the ticket")
    assert cleared.status.value == "dispatched" and cleared.history[-1].action == "source_cleared"
