"""The escalation ladder against a running worker, with deadlines of seconds (a test config)."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.support import CONFIG, DUTY_OFFICER, poll, running_pipeline
from tests.integration.payloads import Builder
from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration

# Red: accept in 4 s, resolve in 10 s. Reminder at half the allowed time, report at half again overdue.
# accept ladder: remind +2 s, escalate +4 s, report +6 s; resolve ladder: +5 s, +10 s, +15 s.
FAST = {"accept": "4s", "resolve": "10s"}


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    config_dir = tmp_path_factory.mktemp("fast-config")
    for name in ("district.yaml", "rules.yaml", "routing.yaml"):
        shutil.copy(REPO_ROOT / "deploy" / "config" / name, config_dir / name)
    routing = yaml.safe_load((config_dir / "routing.yaml").read_text())
    routing["deadlines"]["red"] = FAST
    routing["category_deadlines"] = {}
    routing["escalation"] = {"remind_before": 0.5, "report_after": 0.5}
    (config_dir / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True))
    with running_pipeline(Path(tmp_path_factory.mktemp("fast-stack")), config_dir,
                          SOC_ESCALATION_INTERVAL_S="0.3", SOC_GAUGES_INTERVAL_S="1",
                          # Closed tickets leave the table and the hot sets 3 s after closing.
                          SOC_TICKET_RETENTION_DAYS=str(3 / 86400), SOC_RETENTION_INTERVAL_S="0.5") as running:
        yield running


def red_ticket(pipeline, build):
    reading = build.flood(value=4.5)
    pipeline.send("soc.raw.flood", reading)
    ref = f'{reading["station_id"]}@{reading["observed_at"]}'
    return poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(reading["station_id"])), 30,
                f"the red ticket {ref}")[0]


def steps(ticket) -> Counter:
    return Counter(h.event_id.split("-")[1] + ":" + h.event_id.split("-")[2]
                   for h in ticket.history if h.event_id.startswith("esc-"))


def test_an_ignored_red_ticket_climbs_the_whole_ladder_once_and_a_restart_repeats_nothing(fast, unique):
    ticket = red_ticket(fast, Builder(CONFIG, unique))
    climbed = poll(lambda: (t := fast.ticket(ticket.ticket_id)) and steps(t)["resolve:reported"] and t, 40,
                   "the resolve report step")
    assert steps(climbed) == Counter({f"{stage}:{step}": 1 for stage in ("accept", "resolve")
                                      for step in ("reminded", "escalated", "reported")})
    assert climbed.escalation.value == "reported"
    assert {"ops_centre", "district_leadership"} <= set(climbed.watchers)
    assert ticket.ticket_id in {t.ticket_id for t in fast.inbox("district_leadership")}
    status, body = fast.get(f"/api/tickets/{ticket.ticket_id}", "district_leadership")
    assert status == 200

    counted(fast, 'soc_sla_breaches_total{department="flood_control",stage="resolve"} 1.0',
            'soc_escalations_total{department="flood_control",step="reported"} 2.0')

    version = climbed.version
    fast.restart_worker()
    # Give the restarted worker's escalation timer many ticks on the same ticket.
    probe = red_ticket(fast, Builder(CONFIG, unique + "b"))
    poll(lambda: steps(fast.ticket(probe.ticket_id))["accept:escalated"], 30, "the new worker to escalate")
    after = fast.ticket(ticket.ticket_id)
    assert after.version == version and steps(after) == steps(climbed)
    counted(fast, 'soc_sla_breaches_total{department="flood_control",stage="accept"} 1.0')


def counted(pipeline, *lines: str) -> None:
    """Each line shows on /metrics. A batch counts its steps after the broker took its outputs, a moment
    after the ticket in Redis shows them: wait for the counts, which must then be exact."""
    def shown() -> bool:
        text = _metrics_text(pipeline)
        return all(line in text for line in lines)

    poll(shown, 15, f"{lines} on /metrics", interval=0.2)


def _metrics_text(pipeline) -> str:
    import urllib.request

    with urllib.request.urlopen(pipeline.worker.url + "/metrics", timeout=10) as response:
        return response.read().decode()


def test_accepting_stops_the_accept_ladder_but_not_the_resolve_one(fast, unique):
    ticket = red_ticket(fast, Builder(CONFIG, unique))
    status, body = fast.post(f"/api/tickets/{ticket.ticket_id}/accept", "flood_control", {})
    assert status == 200, body
    resolved_escalation = poll(lambda: (t := fast.ticket(ticket.ticket_id)) and steps(t)["resolve:escalated"] and t,
                               40, "the resolve escalation")
    taken = steps(resolved_escalation)
    assert not any(k.startswith("accept:") for k in taken), taken
    assert taken["resolve:reminded"] == 1 and taken["resolve:escalated"] == 1


def test_a_closed_ticket_past_retention_leaves_the_lists_and_is_still_found_by_id(fast, unique):
    ticket = red_ticket(fast, Builder(CONFIG, unique))
    for action, department, body in (("accept", "flood_control", {}),
                                     ("resolve", "flood_control", {"resolution": "已抽排"}),
                                     ("verify", DUTY_OFFICER, {"passed": True})):
        status, answer = fast.post(f"/api/tickets/{ticket.ticket_id}/{action}", department, body)
        assert status == 200, answer
    poll(lambda: ticket.ticket_id not in {t.ticket_id for t in fast.tickets_where(lambda t: True)}, 30,
         "the sweep to take the closed ticket out of the lists")
    assert ticket.ticket_id not in {t.ticket_id for t in fast.inbox("flood_control")}
    status, listed = fast.get("/api/tickets?status=closed&limit=200", "ops_centre")
    assert status == 200 and ticket.ticket_id not in {t["ticket_id"] for t in listed["items"]}
    status, found = fast.get(f"/api/tickets/{ticket.ticket_id}", "ops_centre")
    assert status == 200 and found["status"] == "closed"
    # The same station reporting again a year later is a new problem, with a ticket of its own.
    again = Builder(CONFIG, unique).flood(value=4.5, observed_at=ticket.observed_at.replace(year=ticket.observed_at.year + 1).isoformat())
    fast.send("soc.raw.flood", again)
    successor = poll(lambda: [t for t in fast.tickets_where(lambda t: t.source_ref.startswith(again["station_id"]))
                              if t.ticket_id != ticket.ticket_id], 30, "a new ticket for the station")[0]
    assert successor.status.value == "dispatched"
