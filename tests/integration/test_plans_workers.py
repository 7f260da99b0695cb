"""One plan run with two workers, on the stack (its own: a response level changes every other test's tickets).
Both workers' timers see the centre's flood level II, and the flood II plan starts once: one run, the same
on both workers, each of its tasks one ticket. The worker that owns the run's key is killed and the other
takes over its partitions, then it comes back and they rebalance: still one run and no task twice."""
from __future__ import annotations

import re
import urllib.request
from collections import Counter
from dataclasses import replace

import pytest

from handlers import plans
from streams import topics
from streams.ops.devstack import http_ok
from streams.ops.repartition import input_partition
from tests.support import DUTY_OFFICER, Pipeline, Worker, poll, running_pipeline, wait_ready

pytestmark = pytest.mark.integration

PLAN = "flood_ii"
# A killed worker leaves the group only when the broker gives up on it (its session timeout), then
# the group rebalances and the survivor recovers the tables.
TAKEOVER_S = 180


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("plans-workers-stack"), SOC_ESCALATION_INTERVAL_S="1") as running:
        yield running


def on(stack: Pipeline, worker: Worker) -> Pipeline:
    """The stack's client, talking to `worker`."""
    return replace(stack, worker=worker)


def processing(worker: Worker) -> bool:
    if worker.process.popen.poll() is not None:
        pytest.fail(f"{worker.process.name} exited with {worker.process.popen.returncode}:\n{worker.log_tail()}")
    return http_ok(f"{worker.url}/readyz/processing")


def holds(worker: Worker, partition: int) -> bool:
    """Whether the worker reads this partition of soc.ticket-events (its lag gauge covers the partitions it holds)."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    held = [dict(re.findall(r'(\w+)="([^"]*)"', labels))
            for labels in re.findall(r"^soc_consumer_lag\{(.*)\} ", text, re.M)]
    return {"topic": topics.TICKET_EVENTS, "partition": str(partition)} in held


def active_runs(stack: Pipeline, worker: Worker) -> list[dict]:
    status, body = on(stack, worker).get("/api/plan-runs?active=true", "ops_centre")
    assert status == 200, body
    return [r for r in body["items"] if r["plan_id"] == PLAN]


def level_on(stack: Pipeline, worker: Worker) -> str | None:
    status, body = on(stack, worker).get("/api/response", "ops_centre")
    assert status == 200, body
    return body["level"]


def the_one_run(stack: Pipeline, workers: list[Worker]) -> dict:
    """The plan's single active run, the same on every worker, each of its tasks a ticket in the store once."""
    seen = {worker.url: [r["run_id"] for r in active_runs(stack, worker)] for worker in workers}
    ids = set(sum(seen.values(), []))
    assert len(ids) == 1 and all(len(found) == 1 for found in seen.values()), seen
    [run] = active_runs(stack, workers[0])
    plan = stack.config.plans.get(PLAN)
    stored = stack.tickets_where(lambda t: t.task is not None and t.task.plan_id == PLAN)
    assert {t.task.run_id for t in stored} == {run["run_id"]}
    assert Counter((t.department, t.title) for t in stored) == Counter(
        (task.department, f"{plan.name}：{task.title}") for task in plan.tasks)
    assert sorted(t.ticket_id for t in stored) == sorted(t["ticket_id"] for t in run["tasks"])
    assert all(t.kind.value == "task" for t in stored)
    return run


def test_two_workers_start_the_flood_plan_once_and_a_takeover_starts_nothing_again(stack):
    first = stack.worker
    process, port = stack.stack.start_worker(name="worker-2")
    workers = [first, Worker(process, port)]
    try:
        wait_ready(workers[1])
        poll(lambda: all(processing(w) for w in workers), TAKEOVER_S, "both workers holding partitions")
        status, body = stack.post("/api/response", "ops_centre",
                                  {"level": "II", "hazard": "flood", "reason": "区防指启动防汛II级应急响应"})
        assert status == 201, body
        for worker in workers:
            poll(lambda: level_on(stack, worker) == "II", 30, f"level II on {worker.process.name}")
        poll(lambda: all(active_runs(stack, w) for w in workers), 30, "the flood II run on both workers")
        run = the_one_run(stack, workers)
        run_id = run["run_id"]

        # The worker that holds the run's key dies; the other takes over its partitions and the run's state.
        partition = input_partition(plans.run_key(run_id).encode(), stack.stack.partitions)
        owner = poll(lambda: next((w for w in workers if holds(w, partition)), None), 60, "the run key's owner")
        survivor = next(w for w in workers if w is not owner)
        owner.process.kill()
        stack.stack.processes.remove(owner.process)
        workers.remove(owner)
        poll(lambda: processing(survivor) and holds(survivor, partition), TAKEOVER_S,
             "the survivor holding the run key's partition")
        assert the_one_run(stack, workers)["run_id"] == run_id
        # The survivor decides on the run's key: a task's checklist tick goes through it.
        task = run["tasks"][0]
        status, ticked = on(stack, survivor).post(f"/api/tickets/{task['ticket_id']}/checklist", task["department"],
                                                  {"item": 0, "done": True})
        assert status == 200 and ticked["task"]["checklist"][0]["done"] is True, ticked

        # It comes back: the group rebalances again, and still one run.
        process, _ = stack.stack.start_worker(name=f"{owner.process.name}-again", web_port=owner.port)
        workers.append(Worker(process, owner.port))
        wait_ready(workers[-1])
        poll(lambda: all(processing(w) for w in workers), TAKEOVER_S, "both workers holding partitions again")
        poll(lambda: all(active_runs(stack, w) for w in workers), 30, "the run on the restarted worker")
        again = the_one_run(stack, workers)
        assert again["run_id"] == run_id
        assert again["tasks"][0]["checklist"][0]["done"] is True

        status, ended = on(stack, workers[0]).post(f"/api/plan-runs/{run_id}/stand-down", DUTY_OFFICER,
                                                   {"reason": "演练结束"})
        assert status == 200 and ended["active"] is False, ended
        poll(lambda: not any(active_runs(stack, w) for w in workers), 30, "no active run on either worker")
    finally:
        # The module's client talks to a worker still running; the stack stops every worker it started.
        stack.worker = next(w for w in workers if w.process.popen.poll() is None)
        stack.post("/api/response", "ops_centre", {"level": "none", "reason": "测试结束"})
