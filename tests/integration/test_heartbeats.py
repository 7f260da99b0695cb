"""Heartbeats through their own stack (a short heartbeat would make every other test's stations go
silent): a water-level station that stops reporting while another reports opens one flood_device_offline
ticket, counted in soc_devices_silent, and its next reading adds the recovery to that ticket."""
from __future__ import annotations

import json
import re
import time
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


def send_at(stack, reading: dict, seconds_ago: float) -> None:
    """A reading whose Kafka record time (the heartbeat's time) is `seconds_ago` in the past."""
    stack.producer.send("soc.raw.flood", value=json.dumps(reading).encode(),
                        timestamp_ms=int((time.time() - seconds_ago) * 1000))
    stack.producer.flush()


def test_a_station_silent_while_the_others_report_opens_one_ticket_and_its_next_reading_recovers_it(stack):
    build = Builder(CONFIG, "heartbeat")
    silent, other = f"SW-{build.unique}", f"SW-{build.unique}-B"
    # Silence is judged against the kind's newest heartbeat (not the clock): the other station reported
    # 60 s after this one, four times the 15 s this stack's heartbeat allows.
    send_at(stack, build.flood(station_id=silent, value=2.0), 60)
    send_at(stack, build.flood(station_id=other, value=2.0), 0)
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.category.value == "flood_device_offline"
                                                and t.source_ref.startswith(silent + "@")), 60, "the offline ticket")
    assert (ticket.department, ticket.severity.value) == ("flood_control", "blue")
    assert not stack.tickets_where(lambda t: t.source_ref.startswith(other + "@"))
    poll(lambda: silent_gauge(stack) == 1.0, 30, "soc_devices_silent at 1")
    # The other station reports again too: later than 15 s after its last reading it would be silent itself.
    send_at(stack, build.flood(station_id=other, value=2.0), 0)
    send_at(stack, build.flood(station_id=silent, value=2.1), 0)
    poll(lambda: silent_gauge(stack) == 0.0, 30, "soc_devices_silent back at 0")
    poll(lambda: "device_recovered" in [h.action for h in stack.ticket(ticket.ticket_id).history], 30,
         "the recovery in the ticket's history")
    assert len(stack.tickets_where(lambda t: t.source_ref.startswith(silent + "@"))) == 1


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
