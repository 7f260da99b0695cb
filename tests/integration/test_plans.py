"""Pre-plans on the stack (their own, since a response level changes every other test's tickets): the
centre's flood level II starts the flood plan within seconds, its tasks in three departments' inboxes at
0 of N and notified to the flood office's robot; ticking, then closing every task brings the run to N of N;
the centre starts a plan by hand (once) and stands it down, open tasks cancelled with the reason; resources
nearest first, held by one ticket at a time."""
from __future__ import annotations

import subprocess

import pytest

from streams.ops.devstack import soc_command
from tests.integration.test_notify_pipeline import Receivers, notifying_pipeline
from tests.support import DUTY_OFFICER, poll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def receivers():
    """The channels' receivers (DingTalk, WeCom, webhook), checking signatures as the vendors do."""
    running = Receivers()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receivers):
    with notifying_pipeline(tmp_path_factory.mktemp("plans-stack"), receivers, SOC_ESCALATION_INTERVAL_S="1") as running:
        yield running


def active_run(stack, plan_id: str) -> dict | None:
    status, body = stack.get("/api/plan-runs?active=true", "ops_centre")
    assert status == 200, body
    return next((r for r in body["items"] if r["plan_id"] == plan_id), None)


def run_of(stack, run_id: str, who: str = "ops_centre") -> dict:
    status, body = stack.get(f"/api/plan-runs/{run_id}", who)
    assert status == 200, body
    return body


def accident_run(stack) -> dict:
    """The major-accident plan's run: started here, or the one another test of this module started."""
    status, run = stack.post("/api/plans/major_accident/activate", DUTY_OFFICER, {"reason": "演练：滨海大道多车相撞"})
    if status == 409:
        return run_of(stack, run["run_id"])
    assert status == 201, run
    return run


def test_a_flood_level_ii_starts_the_flood_plan_and_closing_its_tasks_completes_it(stack, receivers):
    status, body = stack.post("/api/response", "ops_centre",
                              {"level": "II", "hazard": "flood", "reason": "区防指启动防汛II级应急响应"})
    assert status == 201, body
    run = poll(lambda: active_run(stack, "flood_ii"), 10, "the flood II run within 10 s")
    tasks = run["tasks"]
    departments = {t["department"] for t in tasks}
    assert len(departments) >= 3
    assert run["progress"] == {"done": 0, "total": len(tasks), "overdue": 0}
    assert (run["trigger"]["on"], run["trigger"]["level"]) == ("level", "II")
    assert [t["title"].split("：")[1] for t in tasks][:3] == ["低洼点位值守", "下穿通道封闭", "抽排"]
    for task in tasks:  # each one a ticket of kind task in its department's inbox
        inbox = {t.ticket_id: t for t in stack.inbox(task["department"])}
        assert inbox[task["ticket_id"]].kind.value == "task"
        assert inbox[task["ticket_id"]].task.run_id == run["run_id"]
    assert active_run(stack, "flood_i") is None
    lead = next(t for t in tasks if t["department"] == "flood_control")
    poll(lambda: any(lead["ticket_id"] in m["markdown"]["text"] for m in receivers.accepted["dingtalk"]), 30,
         "the flood office's task at its DingTalk robot")

    first = tasks[0]
    status, ticked = stack.post(f"/api/tickets/{first['ticket_id']}/checklist", first["department"],
                                {"item": 0, "done": True})
    assert status == 200, ticked
    assert ticked["task"]["checklist"][0]["done"] is True and "完成清单第1项" in ticked["history"][-1]["text"]
    other = next(d for d in departments if d != first["department"])
    status, refused = stack.post(f"/api/tickets/{first['ticket_id']}/checklist", other, {"item": 1, "done": True})
    assert status == 404, refused  # another department's ticket looks like a missing one
    status, refused = stack.post(f"/api/tickets/{first['ticket_id']}/checklist", first["department"],
                                 {"item": 99, "done": True})
    assert status == 409 and refused["error"].startswith("no checklist item 99"), refused
    assert run_of(stack, run["run_id"])["tasks"][0]["checklist"][0]["done"] is True

    for task in tasks:
        ticket_id, owner = task["ticket_id"], task["department"]
        for action, who, body in (("accept", owner, {}), ("resolve", owner, {"resolution": "已完成"}),
                                  ("verify", DUTY_OFFICER, {"passed": True})):
            status, answer = stack.post(f"/api/tickets/{ticket_id}/{action}", who, body)
            assert status == 200, (action, answer)
    done = poll(lambda: (lambda r: r if r["progress"]["done"] == len(tasks) else None)(run_of(stack, run["run_id"])),
                10, "every task done")
    assert done["progress"] == {"done": len(tasks), "total": len(tasks), "overdue": 0}
    # A department sees the run through its own task only.
    mine = run_of(stack, run["run_id"], first["department"])
    assert {t["department"] for t in mine["tasks"]} == {first["department"]}


def test_the_centre_starts_a_plan_by_hand_once_and_stands_it_down(stack):
    assert stack.post("/api/plans/typhoon_ii/activate", "flood_control", {"reason": "x"})[0] == 403
    assert stack.post("/api/plans/no_such/activate", DUTY_OFFICER, {"reason": "x"})[0] == 404
    assert stack.post("/api/plans/typhoon_ii/activate", DUTY_OFFICER, {})[0] == 422
    status, run = stack.post("/api/plans/typhoon_ii/activate", DUTY_OFFICER, {"reason": "台风蓝色预警，提前部署"})
    assert status == 201, run
    assert (run["trigger"]["on"], run["progress"]["done"], len(run["tasks"])) == ("manual", 0, 3)
    status, again = stack.post("/api/plans/typhoon_ii/activate", DUTY_OFFICER, {"reason": "again"})
    assert status == 409 and again["run_id"] == run["run_id"]

    done, *open_ = run["tasks"]
    for action, who, body in (("accept", done["department"], {}),
                              ("resolve", done["department"], {"resolution": "已全部停工"}),
                              ("verify", DUTY_OFFICER, {"passed": True})):
        assert stack.post(f"/api/tickets/{done['ticket_id']}/{action}", who, body)[0] == 200
    status, ended = stack.post(f"/api/plan-runs/{run['run_id']}/stand-down", DUTY_OFFICER, {"reason": "台风转向"})
    assert status == 200, ended
    assert ended["ended_reason"] == "台风转向" and ended["active"] is False
    by_id = {t["ticket_id"]: t for t in ended["tasks"]}
    assert (by_id[done["ticket_id"]]["status"], by_id[done["ticket_id"]]["cancelled"]) == ("closed", False)
    assert all((by_id[t["ticket_id"]]["status"], by_id[t["ticket_id"]]["cancelled"]) == ("closed", True)
               for t in open_)
    assert ended["progress"] == {"done": 1, "total": 3, "overdue": 0}
    cancelled = stack.ticket(open_[0]["ticket_id"])
    assert cancelled.history[-1].note == "台风转向"
    assert stack.post(f"/api/plan-runs/{run['run_id']}/stand-down", DUTY_OFFICER, {"reason": "x"})[0] == 409
    assert active_run(stack, "typhoon_ii") is None
    assert stack.get("/api/plan-runs/nothing-here", "ops_centre")[0] == 404
    assert stack.get("/api/plan-runs?active=maybe", "ops_centre")[0] == 400


def test_resources_nearest_first_assigned_to_one_ticket_at_a_time_and_in_its_history(stack):
    status, body = stack.get("/api/resources?near=22.5291,113.9104&kind=pump_truck", "flood_control")
    assert status == 200, body
    assert [r["id"] for r in body["items"]] == ["pump_truck_01", "pump_truck_03", "pump_truck_02"]
    assert body["items"][0]["distance_m"] == 0 and body["items"][0]["state"] == "available"
    assert stack.get("/api/resources?near=north", "flood_control")[0] == 400
    assert stack.get("/api/resources?kind=helicopter", "flood_control")[0] == 400

    run = accident_run(stack)
    police = next(t for t in run["tasks"] if t["department"] == "traffic_police")
    cleanup = next(t for t in run["tasks"] if t["department"] == "city_management")
    assert stack.post("/api/resources/tow_truck_01/assign", "city_management",
                      {"ticket_id": cleanup["ticket_id"]})[0] == 403
    status, assigned = stack.post("/api/resources/tow_truck_01/assign", "traffic_police",
                                  {"ticket_id": police["ticket_id"]})
    assert status == 200, assigned
    assert (assigned["state"], assigned["ticket_id"]) == ("assigned", police["ticket_id"])
    status, refused = stack.post("/api/resources/tow_truck_01/assign", DUTY_OFFICER, {"ticket_id": cleanup["ticket_id"]})
    assert status == 409 and refused["error"] == f"清障拖车1号 is already assigned to ticket {police['ticket_id']}"
    assert stack.post("/api/resources/tow_truck_02/assign", DUTY_OFFICER, {"ticket_id": cleanup["ticket_id"]}) == (
        409, {"error": "清障拖车2号（维修中） is out of service"})
    entry = poll(lambda: next((h for h in stack.ticket(police["ticket_id"]).history
                               if h.kind.value == "resource_assigned"), None), 10, "the entry in the ticket's history")
    assert entry.resource_id == "tow_truck_01"
    states = {r["id"]: r["state"] for r in stack.get("/api/resources?kind=tow_truck", "ops_centre")[1]["items"]}
    assert states == {"tow_truck_01": "assigned", "tow_truck_02": "out_of_service"}

    status, released = stack.post("/api/resources/tow_truck_01/release", "traffic_police", {})
    assert status == 200 and (released["state"], released["ticket_id"]) == ("available", None), released
    poll(lambda: any(h.kind.value == "resource_released" for h in stack.ticket(police["ticket_id"]).history), 10,
         "the release in the ticket's history")
    status, shelter = stack.post("/api/resources/shelter_01/occupancy", "flood_control", {"occupancy": 240})
    assert status == 200 and shelter["occupancy"] == 240, shelter
    assert stack.post("/api/resources/shelter_01/occupancy", "flood_control", {"occupancy": "many"})[0] == 422


def test_soc_rebuild_restores_the_tasks_and_the_runs_stay(stack):
    run = accident_run(stack)
    task = run["tasks"][0]
    status, ticked = stack.post(f"/api/tickets/{task['ticket_id']}/checklist", task["department"], {"item": 1, "done": True})
    assert status == 200, ticked
    done = subprocess.run([*soc_command(), "rebuild"], env=stack.stack.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    again = run_of(stack, run["run_id"])
    assert [t["ticket_id"] for t in again["tasks"]] == [t["ticket_id"] for t in run["tasks"]]
    assert again["tasks"][0]["checklist"][1]["done"] is True
    assert task["ticket_id"] in {t.ticket_id for t in stack.inbox(task["department"])}
