"""Joint handling (主办/协办) and disputed dispatch (派单异议) against a running worker, real broker and Redis."""
from __future__ import annotations

import pytest

from tests.support import DUTY_OFFICER, poll

pytestmark = pytest.mark.integration


def opened(pipeline, event: dict) -> dict:
    pipeline.send("soc.raw.traffic", event)
    found = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the new ticket")
    status, body = pipeline.get(f"/api/tickets/{found[0].ticket_id}", "ops_centre")
    assert status == 200, body
    return body


def test_supporting_departments_take_their_parts_and_the_centre_closes_after_every_feedback(pipeline, build):
    # A road obstruction: traffic police lead, city management supports (routing.yaml).
    ticket = opened(pipeline, build.traffic(type="road_obstruction"))
    ticket_id = ticket["ticket_id"]
    assert ticket["department"] == "traffic_police"
    assert [(p["department"], p["status"]) for p in ticket["support"]] == [("city_management", "asked")]
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/support", DUTY_OFFICER,
                                 {"departments": ["flood_control"], "note": "排查路面积水"})
    assert status == 200, body
    assert [p["department"] for p in body["support"]] == ["city_management", "flood_control"]
    assert body["history"][-1]["text"].endswith("增派街道三防办协办：排查路面积水")
    # Each supporting department finds the ticket in its inbox.
    for department in ("city_management", "flood_control"):
        poll(lambda: ticket_id in {t.ticket_id for t in pipeline.inbox(department)}, 10, f"{department}'s inbox")
        status, listing = pipeline.get("/api/tickets", department)
        assert status == 200 and ticket_id in {t["ticket_id"] for t in listing["items"]}
    # The lead works as always.
    for action, body in (("accept", {}), ("resolve", {"resolution": "障碍物已移除"})):
        status, shown = pipeline.post(f"/api/tickets/{ticket_id}/{action}", "traffic_police", body)
        assert status == 200, shown
    status, refused = pipeline.post(f"/api/tickets/{ticket_id}/verify", DUTY_OFFICER, {"passed": True})
    assert status == 409 and "尚未反馈" in refused["error"]
    # Feedback before accepting is refused; a department without a part is refused too.
    status, _ = pipeline.post(f"/api/tickets/{ticket_id}/support/feedback", "city_management", {"note": "已清障"})
    assert status == 409
    status, _ = pipeline.post(f"/api/tickets/{ticket_id}/support/accept", "traffic_police", {})
    assert status == 409
    status, shown = pipeline.post(f"/api/tickets/{ticket_id}/support/accept", "city_management", {})
    assert status == 200 and shown["support"][0]["status"] == "accepted" and shown["support"][0]["accepted_at"]
    status, shown = pipeline.post(f"/api/tickets/{ticket_id}/support/feedback", "city_management",
                                  {"note": "残留物已清运"})
    assert status == 200, shown
    part = shown["support"][0]
    assert (part["status"], part["feedback"]) == ("fed_back", "残留物已清运") and part["due"]
    # flood_control never answered: the centre closes anyway, saying why, and the record says so.
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/verify", DUTY_OFFICER,
                                 {"passed": True, "override": True, "note": "三防办电话确认无积水"})
    assert status == 200 and body["status"] == "closed", body
    assert body["history"][-1]["overridden"] == ["flood_control"]
    assert "街道三防办未反馈时核验通过" in body["history"][-1]["text"]
    status, bad = pipeline.post(f"/api/tickets/{ticket_id}/support", DUTY_OFFICER, {"departments": "all"})
    assert status == 422 and "error" in bad


def test_a_disputed_dispatch_is_upheld_then_reassigned_and_counted(pipeline, build):
    ticket_id = opened(pipeline, build.traffic())["ticket_id"]
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/dispute", "traffic_police",
                                 {"reason": "系路面塌陷，非交通事故", "suggest": "city_management"})
    assert status == 200 and body["status"] == "returned", body
    assert (body["dispute"]["department"], body["dispute"]["suggest"]) == ("traffic_police", "city_management")
    assert body["history"][-1]["text"].endswith("提出派单异议，建议派至城管执法队：系路面塌陷，非交通事故")
    # Only a duty officer rules.
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/rule", "traffic_police", {"decision": "uphold"})
    assert status == 409 and "only the operations centre" in body["error"]
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/rule", "ops_centre", {"decision": "uphold"})
    assert status == 409 and "not a service credential" in body["error"]
    status, bad = pipeline.post(f"/api/tickets/{ticket_id}/rule", DUTY_OFFICER, {"decision": "maybe"})
    assert status == 422 and "error" in bad
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/rule", DUTY_OFFICER,
                                 {"decision": "uphold", "note": "有车辆受损，属交通事故"})
    assert status == 200, body
    assert (body["status"], body["department"], body["dispute"]) == ("dispatched", "traffic_police", None)
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/dispute", "traffic_police", {"reason": "现场无车辆"})
    assert status == 200, body
    status, body = pipeline.post(f"/api/tickets/{ticket_id}/rule", DUTY_OFFICER,
                                 {"decision": "reassign", "department": "city_management"})
    assert status == 200, body
    assert (body["status"], body["department"]) == ("dispatched", "city_management")
    poll(lambda: ticket_id in {t.ticket_id for t in pipeline.inbox("city_management")}, 10, "the new owner's inbox")

    def disputes() -> tuple:
        _, table = pipeline.get("/api/performance", "ops_centre")
        row = next((r for r in table["departments"] if r["department"] == "traffic_police"), {})
        return row.get("disputes", 0), row.get("disputes_ruled", 0), row.get("disputes_upheld", 0)

    # Other tests' disputes count as well: this one adds two, ruled, one upheld.
    counted = poll(lambda: (lambda d: d if d[0] >= 2 and d[1] >= 2 and d[2] >= 1 else None)(disputes()), 10,
                   "the disputes in /api/performance")
    assert counted[2] <= counted[1] <= counted[0]
