"""Who may do what: the role tables, and the lifecycle's rules about the person behind an action
(no verifying your own resolution, no deciding your own extension request, supervisors' decisions)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import lifecycle
from handlers.lifecycle import Verdict
from handlers.permissions import CAPABILITIES, TICKET_ACTIONS, Can, may, may_act
from schemas.accounts import Actor, UserRole
from schemas.enums import OPS_CENTRE, TicketStatus
from schemas.records import TicketAction
from streams.accounts import password_problem, role_problem
from tests.unit.test_lifecycle import OWNER, event, in_status, minutes, new_ticket

A, R, S = TicketAction, UserRole, TicketStatus


def person(user_id: str, department: str, role: UserRole) -> Actor:
    return Actor(user_id=user_id, name=user_id.title(), department=department, role=role)


DUTY_A = person("duty.a", OPS_CENTRE, R.duty_officer)
DUTY_B = person("duty.b", OPS_CENTRE, R.duty_officer)
CLERK = person("clerk", OWNER, R.clerk)
LEAD = person("lead", OWNER, R.supervisor)
LEAD_2 = person("lead.2", OWNER, R.supervisor)


def by(actor: Actor, action: TicketAction, minute: float, **fields):
    return event(action, actor.department, minutes(minute), by=actor.name, user=actor, **fields)


def outcome(config, ticket, ev):
    return lifecycle.apply(config, ticket, ev.model_copy(update={"ticket_id": ticket.ticket_id}), ev.at)


def test_every_role_has_its_ticket_actions_and_capabilities():
    assert set(TICKET_ACTIONS) == set(UserRole)
    for capability in Can:
        assert CAPABILITIES[capability] <= set(UserRole)
    # The people the issue names, in the words of their job.
    assert may_act(R.clerk, A.accept) and not may_act(R.clerk, A.verify) and not may_act(R.clerk, A.extend_decision)
    assert may_act(R.supervisor, A.extend_decision) and not may_act(R.supervisor, A.verify)
    assert may_act(R.duty_officer, A.verify) and may_act(R.duty_officer, A.redispatch)
    assert not may_act(R.leader, A.accept) and may(R.leader, Can.set_response) and may(R.leader, Can.read_tickets)
    assert not may(R.admin, Can.read_tickets) and may(R.admin, Can.read_audit) and may(R.admin, Can.manage_users)
    assert not any(may(role, Can.read_audit) for role in UserRole if role is not R.admin)
    assert may(R.duty_officer, Can.manage_silences) and not may(R.clerk, Can.manage_silences)


def test_a_duty_officer_does_not_verify_what_they_resolved_on_the_centres_own_ticket(config):
    ticket = new_ticket(config).model_copy(update={"department": OPS_CENTRE})
    ticket = outcome(config, ticket, by(DUTY_A, A.accept, 2)).ticket
    ticket = outcome(config, ticket, by(DUTY_A, A.resolve, 5, note="cleared on camera")).ticket
    assert ticket.status is S.resolved and lifecycle.resolver(ticket) == DUTY_A.user_id
    own = outcome(config, ticket, by(DUTY_A, A.verify, 6, passed=True))
    assert own.verdict is Verdict.refused and own.reason == "you resolved this ticket: someone else verifies it"
    other = outcome(config, ticket, by(DUTY_B, A.verify, 7, passed=True))
    assert other.verdict is Verdict.applied and other.ticket.status is S.closed
    assert other.ticket.history[-1].user == DUTY_B


def test_the_history_names_the_person_with_department_and_role(config):
    ticket = outcome(config, new_ticket(config), by(CLERK, A.accept, 2, note="on my way")).ticket
    entry = ticket.history[-1]
    assert entry.user == CLERK and entry.by == f"{CLERK.name} ({OWNER})"


def test_a_supervisor_decides_the_departments_extensions_but_not_their_own_request(config):
    ticket = in_status(config, S.accepted)
    until = ticket.resolve_due + timedelta(hours=4)
    asked = outcome(config, ticket, by(LEAD, A.extend, 10, until=until, note="crane needed")).ticket
    assert asked.extension.user_id == LEAD.user_id
    own = outcome(config, asked, by(LEAD, A.extend_decision, 11, approve=True))
    assert own.verdict is Verdict.refused and own.reason == "you asked for this extension: someone else decides it"
    decided = outcome(config, asked, by(LEAD_2, A.extend_decision, 12, approve=True))
    assert decided.verdict is Verdict.applied and decided.ticket.resolve_due == until
    # A clerk of the department does not decide, and a supervisor of another department is not the owner.
    assert outcome(config, asked, by(CLERK, A.extend_decision, 12, approve=True)).verdict is Verdict.refused
    stranger = person("lead.x", "flood_control", R.supervisor)
    assert outcome(config, asked, by(stranger, A.extend_decision, 12, approve=True)).verdict is Verdict.refused


def test_supervisors_do_not_decide_when_the_district_says_the_centre_does(config):
    rules = config.district.sign_in.model_copy(update={"supervisors_decide_extensions": False})
    centre_decides = config.model_copy(update={"district": config.district.model_copy(update={"sign_in": rules})})
    ticket = in_status(config, S.accepted)
    asked = outcome(config, ticket, by(CLERK, A.extend, 10, until=ticket.resolve_due + timedelta(hours=4),
                                       note="crane needed")).ticket
    assert outcome(centre_decides, asked, by(LEAD, A.extend_decision, 11, approve=True)).verdict is Verdict.refused
    assert outcome(centre_decides, asked, by(DUTY_A, A.extend_decision, 11, approve=True)).verdict is Verdict.applied


@pytest.mark.parametrize("department, role, problem", [
    ("ops_centre", R.duty_officer, None),
    ("traffic_police", R.duty_officer, "a duty officer works in ops_centre"),
    ("district_leadership", R.leader, None),
    ("ops_centre", R.leader, "a leader belongs to district_leadership"),
    ("ws_haibin", R.clerk, None),
    ("ops_centre", R.clerk, "ops_centre has duty officers and leaders, not clerks"),
    ("ops_centre", R.admin, None),
    ("traffic_police", R.service, "service credentials are the departments' tokens in the environment, not users"),
    ("nowhere", R.clerk, "unknown department 'nowhere'"),
])
def test_a_role_fits_its_department(config, department, role, problem):
    assert role_problem(config, department, role) == problem


def test_passwords_have_a_length():
    assert password_problem("short") == "a password has at least 10 characters"
    assert password_problem("x" * 257) == "a password has at most 256 characters"
    assert password_problem("a sensible passphrase") is None


def test_a_service_credential_is_not_the_second_person_of_the_closed_loop(config):
    service = person("service:ops_centre", OPS_CENTRE, R.service)
    ticket = outcome(config, new_ticket(config), by(CLERK, A.accept, 2)).ticket
    resolved = outcome(config, ticket, by(CLERK, A.resolve, 5, note="cleared")).ticket
    refused = outcome(config, resolved, by(service, A.verify, 6, passed=True))
    assert refused.verdict is Verdict.refused
    assert refused.reason == "a person resolved this ticket: a duty officer verifies it, not a service credential"
    assert outcome(config, resolved, by(DUTY_A, A.verify, 6, passed=True)).verdict is Verdict.applied
    # Machine to machine: what a department's service credential resolved, the centre's may verify.
    machine = person("service:traffic_police", OWNER, R.service)
    ticket = outcome(config, new_ticket(config), by(machine, A.accept, 2)).ticket
    resolved = outcome(config, ticket, by(machine, A.resolve, 5, note="cleared")).ticket
    assert outcome(config, resolved, by(service, A.verify, 6, passed=True)).verdict is Verdict.applied
    # A person's extension request is decided by a person.
    asked = outcome(config, in_status(config, S.accepted), by(CLERK, A.extend, 10, until=resolved.resolve_due
                                                                + timedelta(days=1), note="parts")).ticket
    assert outcome(config, asked, by(service, A.extend_decision, 11, approve=True)).verdict is Verdict.refused
