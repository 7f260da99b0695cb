"""Pre-plans through the real agents: the timer sends a level-triggered plan's start once, to its run's key,
only from the worker that owns it; decide_tickets takes the start (the run on soc.plan-runs, a ticket per
task on soc.tickets), and the same start again, or a second worker's, opens nothing more."""
from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import plans
from schemas.enums import Hazard, TicketKind
from schemas.plans import PlanActivate, PlanRun
from schemas.records import KeyState, Ticket
from schemas.response import MANUAL, ResponseChange
from streams.topology import sweeps
from streams.topology.pipeline import SentSteps
from tests.stream.conftest import NOW, eventually, put_on

pytestmark = pytest.mark.asyncio(loop_scope="session")


def flood_ii(monkeypatch, pipeline) -> None:
    change = ResponseChange(at=NOW - timedelta(minutes=2), level="II", reason="暴雨", trigger=MANUAL, by="张值班",
                            hazard=Hazard.flood)
    monkeypatch.setattr(pipeline.books.response, "by_key", lambda: {MANUAL: [change]})


async def test_the_timer_sends_a_plans_start_once_and_only_from_the_owner(pipeline, sent, monkeypatch):
    flood_ii(monkeypatch, pipeline)
    monkeypatch.setattr(pipeline, "sent_activations", SentSteps())
    monkeypatch.setattr(pipeline, "owns", lambda key: False)
    await sweeps.activate_plans(pipeline)
    assert sent["ticket_events"].calls == []
    monkeypatch.setattr(pipeline, "owns", lambda key: key.startswith("plan:flood_ii@"))
    await sweeps.activate_plans(pipeline)
    await sweeps.activate_plans(pipeline)  # the next tick, the start not yet taken
    [(key, value)] = sent["ticket_events"].calls
    start = PlanActivate.model_validate_json(value)
    assert key == plans.run_key(start.run_id).encode() and start.at == NOW - timedelta(minutes=2)


async def test_decide_tickets_starts_a_run_once_per_start(pipeline, sent, store, monkeypatch):
    flood_ii(monkeypatch, pipeline)
    [start] = [a for a in plans.level_activations(pipeline.config, pipeline.books.response.by_key(), NOW)
               if a.plan_id == "flood_ii"]
    key = plans.run_key(start.run_id)
    async with pipeline.agents["decide_tickets"].test_context() as agent:
        for _ in range(2):  # a replay, or the same start from a second worker
            await put_on(agent, "soc.ticket-events", start.model_dump_json().encode(), key=key.encode())
    await eventually(lambda: pipeline.dedup_key_to_tickets.get(key) is not None, "the run's table write")
    held = KeyState.model_validate_json(pipeline.dedup_key_to_tickets[key])
    tasks = len(pipeline.config.plans.get("flood_ii").tasks)
    assert held.run.run_id == start.run_id and len(held.tickets) == tasks
    await eventually(lambda: len(sent["tickets"].calls) >= tasks, "the tasks' tickets")
    written = [Ticket.model_validate_json(v) for _, v in sent["tickets"].calls]
    assert {t.ticket_id for t in written} == set(held.run.tickets)
    # However the two were batched, each task opened once: every write is its first version.
    assert all(t.kind is TicketKind.task and t.version == 1 for t in written)
    # The run on soc.plan-runs, the same bytes each time.
    runs = {value for topic_key, value in sent_runs(sent) if topic_key == start.run_id.encode()}
    assert [PlanRun.model_validate_json(v).tickets for v in runs] == [held.run.tickets]
    kinds = {write[1] for call in store.save_with_retry.await_args_list for write in call.args[0]}
    assert kinds == {"plan_activate"}


def sent_runs(sent) -> list[tuple[bytes, bytes]]:
    """The sends to soc.plan-runs (recorded with the other topics': a run record names its plan)."""
    return [(k, v) for k, v in sent["other topics"].calls if v and b'"plan_id"' in v and b'"fired"' in v]
