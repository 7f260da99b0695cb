"""Who holds a department's service credential, and the closed loop's second person, over real HTTP on the
running stack: what the centre's service token resolved, the duty account of a person recorded as its holder
does not verify, another duty officer does; no service credential verifies what a service credential
resolved. Holdings are recorded by an admin (/api/users) or an operator (`soc users hold`), and audited."""
from __future__ import annotations

import re
import uuid

import pytest

from streams.accounts import service_actor
from tests.integration.test_accounts import centre_ticket
from tests.integration.test_users_cli import soc_users
from tests.support import CONFIG, Pipeline, poll

pytestmark = pytest.mark.integration

CENTRE_TOKEN = service_actor(CONFIG, "ops_centre").name  # 街道智慧运行中心·接口凭据
CHINESE_FIRST = re.compile(r"^[\u4e00-\u9fff]")


def resolved_through(pipeline: Pipeline, ticket_id: str, department: str) -> None:
    for action, body in (("accept", {}), ("resolve", {"resolution": "已处置"})):
        status, ticket = pipeline.post(f"/api/tickets/{ticket_id}/{action}", department, body)
        assert status == 200, (action, ticket)
        assert ticket["history"][-1]["user"]["user_id"] == f"service:{department}"


def verify(pipeline: Pipeline, ticket_id: str, **credential) -> tuple[int, dict]:
    return pipeline.post(f"/api/tickets/{ticket_id}/verify", None, {"passed": True}, **credential)


def audit(pipeline: Pipeline, admin_token: str, what: str, target: str) -> list[dict]:
    status, body = pipeline.get(f"/api/audit?what={what}&limit=500", token=admin_token)
    assert status == 200, body
    return [r for r in body["records"] if r["target"] == target]


def test_what_the_centres_token_resolved_its_holder_does_not_verify_and_another_duty_officer_does(pipeline, build):
    run = uuid.uuid4().hex[:6]
    holder = pipeline.add_user(f"hold{run}.a", "ops_centre", "duty_officer", name="张持证")
    other = pipeline.add_user(f"hold{run}.b", "ops_centre", "duty_officer", name="李值班")
    admin_token = pipeline.user_token(pipeline.add_user(f"hold{run}.admin", "ops_centre", "admin"))

    # Only an admin records a holding, of a department the district has.
    status, refused = pipeline.post(f"/api/users/{holder}/hold", None, {"department": "ops_centre"},
                                    token=pipeline.user_token(other))
    assert status == 403, refused
    status, refused = pipeline.post(f"/api/users/{holder}/hold", None, {"department": "nowhere"}, token=admin_token)
    assert status == 422 and refused["error"] == "unknown department 'nowhere'", refused
    status, recorded = pipeline.post(f"/api/users/{holder}/hold", None, {"department": "ops_centre"},
                                     token=admin_token)
    assert status == 200 and recorded["holds"] == ["ops_centre"], recorded
    status, listed = pipeline.get("/api/users", token=admin_token)
    assert {u["user_id"]: u["holds"] for u in listed["users"]}[holder] == ["ops_centre"]

    # The old path: resolve with the centre's token, verify with the holder's own duty account.
    ticket_id = centre_ticket(pipeline, build)
    resolved_through(pipeline, ticket_id, "ops_centre")
    status, refused = verify(pipeline, ticket_id, headers=pipeline.sign_in(holder))
    assert status == 409 and CHINESE_FIRST.match(refused["error"]), refused
    assert refused["error"].startswith(f"您是{CENTRE_TOKEN}的持有人") and refused["status"] == "resolved"
    status, refused = verify(pipeline, ticket_id, token=pipeline.tokens["ops_centre"])
    assert status == 409 and refused["error"] == "you resolved this ticket: someone else verifies it", refused
    assert pipeline.ticket(ticket_id).status.value == "resolved"

    status, closed = verify(pipeline, ticket_id, token=pipeline.user_token(other))
    assert status == 200 and closed["status"] == "closed", closed
    assert closed["history"][-1]["user"]["user_id"] == other

    [held] = poll(lambda: audit(pipeline, admin_token, "users.hold", holder), 30, "the holding in the trail")
    assert held["actor"]["user_id"] == f"hold{run}.admin" and held["detail"] == "ops_centre"
    refusals = poll(lambda: [r for r in audit(pipeline, admin_token, "ticket.verify", ticket_id)
                             if r["outcome"] == "refused" and r["user_id"] == holder], 30, "the refusal in the trail")
    assert refusals[0]["detail"].startswith(f"您是{CENTRE_TOKEN}的持有人")


def test_no_service_credential_verifies_what_a_service_credential_resolved(pipeline, build):
    officer = pipeline.add_user(f"hold{uuid.uuid4().hex[:6]}.d", "ops_centre", "duty_officer", name="王值班")
    event = build.traffic()
    pipeline.send("soc.raw.traffic", event)
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the ticket")
    resolved_through(pipeline, ticket.ticket_id, ticket.department)
    status, refused = verify(pipeline, ticket.ticket_id, token=pipeline.tokens["ops_centre"])
    assert status == 409 and CHINESE_FIRST.match(refused["error"]), refused
    assert "a person verifies it, not a service credential" in refused["error"]
    # Nobody is recorded as holding the department's token: any duty officer is the second person.
    status, closed = verify(pipeline, ticket.ticket_id, token=pipeline.user_token(officer))
    assert status == 200 and closed["status"] == "closed", closed


def test_an_operator_records_and_ends_a_holding_with_soc_users(pipeline, build):
    holder = pipeline.add_user(f"hold{uuid.uuid4().hex[:6]}.c", "ops_centre", "duty_officer", name="赵持证")
    token = pipeline.user_token(holder)
    held = soc_users(pipeline, "hold", holder, "ops_centre")
    assert held.returncode == 0 and "warning" not in held.stderr, held.stderr
    [line] = [ln for ln in soc_users(pipeline, "list").stdout.splitlines() if ln.startswith(holder + " ")]
    assert line.endswith("active holds ops_centre"), line

    ticket_id = centre_ticket(pipeline, build)
    resolved_through(pipeline, ticket_id, "ops_centre")
    status, refused = verify(pipeline, ticket_id, token=token)
    assert status == 409 and refused["error"].startswith(f"您是{CENTRE_TOKEN}的持有人"), refused

    released = soc_users(pipeline, "release", holder, "ops_centre")
    assert released.returncode == 0, released.stderr
    status, closed = verify(pipeline, ticket_id, token=token)
    assert status == 200 and closed["status"] == "closed", closed

    unknown = soc_users(pipeline, "hold", holder, "nowhere")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "soc users hold: unknown department 'nowhere'")
