"""Ticket actions carrying the client's own id (`client_id`, made by the inbox on a phone for an action it
queued offline): a resend with the same id is answered as replayed and changes nothing, whether it comes
after the first was applied or races it; the id is the sender's own, and a malformed id is a 422."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.test_api import act, open_ticket

pytestmark = pytest.mark.integration


def entries(pipeline, ticket_id: str, action: str) -> list[dict]:
    status, ticket = pipeline.get(f"/api/tickets/{ticket_id}", "ops_centre")
    assert status == 200, ticket
    return [h for h in ticket["history"] if h["action"] == action]


def test_a_resend_with_the_same_client_id_is_replayed_and_changes_nothing(pipeline, build):
    ticket_id = open_ticket(pipeline, build)["ticket_id"]
    status, accepted = act(pipeline, ticket_id, "accept", "traffic_police", {"note": "已签收", "client_id": f"acc-{build.unique}"})
    assert status == 200 and accepted["status"] == "accepted" and "replayed" not in accepted, accepted

    status, again = act(pipeline, ticket_id, "accept", "traffic_police", {"note": "已签收", "client_id": f"acc-{build.unique}"})
    assert status == 200 and again["replayed"] is True, again
    assert (again["status"], again["version"]) == ("accepted", accepted["version"])

    resolve = {"resolution": "事故车辆已拖离", "client_id": f"res-{build.unique}"}
    status, resolved = act(pipeline, ticket_id, "resolve", "traffic_police", resolve)
    assert status == 200 and resolved["status"] == "resolved", resolved
    # Both again, after the ticket moved on: answered as replayed, not as a conflict.
    for action, body in (("accept", {"note": "已签收", "client_id": f"acc-{build.unique}"}), ("resolve", resolve)):
        status, again = act(pipeline, ticket_id, action, "traffic_police", body)
        assert status == 200 and again["replayed"] is True and again["version"] == resolved["version"], again
    assert len(entries(pipeline, ticket_id, "accept")) == 1
    assert len(entries(pipeline, ticket_id, "resolve")) == 1


def test_resends_racing_the_first_are_applied_once(pipeline, build):
    ticket_id = open_ticket(pipeline, build)["ticket_id"]
    body = {"note": "到场", "client_id": f"race-{build.unique}"}
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: act(pipeline, ticket_id, "accept", "traffic_police", body), range(4)))
    assert all(status == 200 for status, _ in answers), answers
    assert len(entries(pipeline, ticket_id, "accept")) == 1


def test_a_client_id_is_the_senders_own_and_well_formed(pipeline, build):
    ticket_id = open_ticket(pipeline, build)["ticket_id"]
    client_id = f"own-{build.unique}"
    assert act(pipeline, ticket_id, "comment", "traffic_police", {"note": "一", "client_id": client_id})[0] == 200
    # The centre using the same id is another command: its comment is applied too.
    status, ticket = act(pipeline, ticket_id, "comment", "ops_centre", {"note": "二", "client_id": client_id})
    assert status == 200 and "replayed" not in ticket, ticket
    assert [h["note"] for h in entries(pipeline, ticket_id, "comment")] == ["一", "二"]
    for bad in ("short", "x" * 65, "has space!", 42):
        status, body = act(pipeline, ticket_id, "comment", "traffic_police", {"note": "三", "client_id": bad})
        assert status == 422 and body["fields"][0]["loc"] == "client_id", body
