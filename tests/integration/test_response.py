"""The emergency-response level through its own stack (a level would change every other test's tickets):
a typhoon signal raises it, tickets opened under it are graded up with shorter deadlines, the level ends
after its hold, the centre sets and clears it, and two workers agree on the level and the silences."""
from __future__ import annotations

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from tests.integration.payloads import Builder
from tests.support import CONFIG, Worker, config_with_rules, poll, running_pipeline, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # A short hold, so that "ends after the hold" takes seconds here.
    config_dir = config_with_rules(tmp_path_factory, "response", (r"^  hold: .*$", "  hold: 20s"))
    with running_pipeline(tmp_path_factory.mktemp("response-stack"), config_dir=config_dir) as running:
        yield running


def level(pipeline, worker: Worker | None = None) -> dict:
    status, body = pipeline.request("GET", "/api/response", "flood_control") if worker is None else get_on(
        pipeline, worker, "/api/response")
    assert status == 200, body
    return body


def get_on(pipeline, worker: Worker, path: str) -> tuple[int, dict]:
    saved = pipeline.worker
    pipeline.worker = worker
    try:
        return pipeline.get(path, "ops_centre")
    finally:
        pipeline.worker = saved


def post_on(pipeline, worker: Worker, path: str, body: dict) -> int:
    request = urllib.request.Request(f"{worker.url}{path}", data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {pipeline.credential('ops_centre')}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status


def typhoon(build: Builder, signal: str, minutes: float) -> dict:
    return {"station_id": f"TY-{build.unique}", "kind": "typhoon_signal", "signal": signal, "lat": 22.52,
            "lon": 113.93, "observed_at": build.at(minutes=minutes)}


def test_only_the_centre_and_the_leadership_set_the_level(stack):
    assert stack.post("/api/response", "flood_control", {"level": "II", "reason": "x"}) == (
        403, {"error": "only the operations centre or the leadership sets the response level"})
    status, body = stack.post("/api/response", "ops_centre", {"level": "V", "reason": "x"})
    assert status == 422 and body["fields"][0]["loc"] == "level"


def test_a_typhoon_signal_raises_the_level_grades_new_tickets_and_the_level_ends_after_its_hold(stack):
    build = Builder(CONFIG, "response-typhoon")
    stack.send("soc.raw.flood", typhoon(build, "yellow", 0))
    found = poll(lambda: (lambda b: b if b["level"] == "III" else None)(level(stack)), 30, "level III")
    assert (found["trigger"], found["colour"], found["number"]) == ("typhoon_yellow", "yellow", 3)
    poll(lambda: 'soc_response_level 3.0' in urllib.request.urlopen(f"{stack.worker.url}/metrics", timeout=10)
         .read().decode(), 30, "the gauge at 3")

    reading = build.flood(station_id=f"JS-{build.unique}", kind="waterlogging", value=20, warning_level=None,
                          danger_level=None)
    stack.send("soc.raw.flood", reading)
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.source_ref.startswith(f"JS-{build.unique}")), 30,
                    "the waterlogging ticket")
    assert (ticket.severity.value, ticket.response_level) == ("orange", "III")  # 20 cm is yellow on a quiet day

    stack.send("soc.raw.flood", typhoon(build, "blue", 10))  # lowered below yellow
    poll(lambda: level(stack)["level"] is None, 60, "the level to end after its 20 s hold")


def test_the_centre_sets_a_level_and_clears_it(stack):
    status, body = stack.post("/api/response", "ops_centre", {"level": "II", "reason": "区防指启动II级应急响应"})
    assert status == 201 and (body["level"], body["trigger"], body["colour"]) == ("II", "manual", "orange")
    poll(lambda: level(stack)["level"] == "II", 30, "level II on the worker")
    status, body = stack.post("/api/response", "district_leadership", {"level": "none", "reason": "解除"})
    assert status == 201 and body["level"] is None
    poll(lambda: level(stack)["level"] is None, 30, "the level cleared")
    assert [h["reason"] for h in level(stack)["history"][:2]] == ["解除", "区防指启动II级应急响应"]


def test_two_workers_agree_on_the_level_and_the_silences(stack):
    process, port = stack.stack.start_worker(name="worker-2")
    second = Worker(process, port)
    try:
        wait_ready(second)
        now = datetime.now(timezone.utc)
        status, silence = stack.post("/api/silences", "ops_centre", {
            "matchers": [{"name": "ref", "value": "SW-TWO-01"}], "comment": "两个工作进程",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()})
        assert status == 201
        assert stack.post("/api/response", "ops_centre", {"level": "IV", "reason": "两个工作进程"})[0] == 201
        for worker in (stack.worker, second):
            poll(lambda: level(stack, worker)["level"] == "IV", 30, f"level IV on {worker.url}")
        # Two duty officers decide at the same moment, one on each worker: both decisions are on the record.
        at_once = threading.Barrier(2)

        def decide(worker: Worker, reason: str) -> int:
            at_once.wait(10)
            return post_on(stack, worker, "/api/response", {"level": "III", "reason": reason})

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(decide, (stack.worker, second), ("一号台决定", "二号台决定")))
        assert answers == [201, 201]
        for worker in (stack.worker, second):
            poll(lambda: {"一号台决定", "二号台决定"} <= {h["reason"] for h in level(stack, worker)["history"]}, 30,
                 f"both decisions on {worker.url}")
            poll(lambda: any(s["silence_id"] == silence["silence_id"]
                             for s in get_on(stack, worker, "/api/silences")[1]["silences"]), 30,
                 f"the silence on {worker.url}")
    finally:
        stack.post("/api/response", "ops_centre", {"level": "none", "reason": "测试结束"})
        second.process.stop()
        stack.stack.processes.remove(second.process)


def test_level_i_is_retroactive_a_ticket_already_open_gets_its_deadlines(stack):
    build = Builder(CONFIG, "response-retro")
    stack.send("soc.raw.flood", build.flood(station_id=f"JS-{build.unique}", kind="waterlogging", value=20,
                                            warning_level=None, danger_level=None))
    [before] = poll(lambda: stack.tickets_where(lambda t: t.source_ref.startswith(f"JS-{build.unique}")), 30,
                    "the waterlogging ticket")
    assert before.response_level is None
    try:
        assert stack.post("/api/response", "ops_centre", {"level": "I", "reason": "区防指启动I级应急响应"})[0] == 201
        after = poll(lambda: (lambda t: t if t.response_level == "I" else None)(stack.ticket(before.ticket_id)), 60,
                     "the open ticket under level I")
    finally:
        stack.post("/api/response", "ops_centre", {"level": "none", "reason": "测试结束"})
    # A quarter of each span from the ticket's own dispatch (level I's factor), with the 5-minute floor.
    start = before.dispatched_at
    assert after.resolve_due - start == (before.resolve_due - start) / 4
    assert after.accept_due - start == max((before.accept_due - start) / 4, timedelta(minutes=5))
    assert after.history[-1].action == "response" and "追溯" in after.history[-1].note
