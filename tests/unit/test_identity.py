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
from schemas.records import ExtensionRequest, TicketAction
from streams.accounts import password_problem, role_problem, service_actor
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
    # A person's extension request is decided by a person.
    asked = outcome(config, in_status(config, S.accepted), by(CLERK, A.extend, 10, until=resolved.resolve_due
                                                                + timedelta(days=1), note="parts")).ticket
    assert outcome(config, asked, by(service, A.extend_decision, 11, approve=True)).verdict is Verdict.refused
    # A machine's request is the machine's to decide too; a request stored before `by_service` reads the same.
    tp_service = person("service:traffic_police", "traffic_police", R.service)
    by_machine = outcome(config, in_status(config, S.accepted), by(tp_service, A.extend, 10, until=resolved.resolve_due
                                                                   + timedelta(days=1), note="parts")).ticket
    assert by_machine.extension.by_service
    older = by_machine.extension.model_dump(mode="json", exclude={"by_service"})
    assert ExtensionRequest.model_validate(older).by_service
    assert outcome(config, by_machine, by(service, A.extend_decision, 11, approve=True)).verdict is Verdict.applied


def service_resolved(config, credential: Actor, department: str):
    """A ticket of `department` accepted and resolved through a department's service credential."""
    ticket = outcome(config, new_ticket(config).model_copy(update={"department": department}),
                     by(credential, A.accept, 2)).ticket
    ticket = outcome(config, ticket, by(credential, A.resolve, 5, note="cleared")).ticket
    assert ticket.status is S.resolved and lifecycle.resolved_by(ticket) == credential
    return ticket


def test_what_a_service_credential_resolved_a_person_verifies_never_a_service_credential(config):
    centre_token, traffic_token = service_actor(config, OPS_CENTRE), service_actor(config, OWNER)
    resolved = service_resolved(config, traffic_token, OWNER)
    refused = outcome(config, resolved, by(centre_token, A.verify, 6, passed=True))
    assert refused.verdict is Verdict.refused and refused.ticket == resolved
    assert refused.reason == ("交警大队海湾中队·接口凭据办结的工单须由值班员本人核验，不能再用接口凭据核验 (a service "
                              "credential resolved this ticket: a person verifies it, not a service credential)")
    # Nobody is recorded as holding the traffic police's token: any duty officer is a second person.
    verified = outcome(config, resolved, by(DUTY_A, A.verify, 6, passed=True))
    assert verified.verdict is Verdict.applied and verified.ticket.status is S.closed
    # A command that names no one (not from the API) is no person either.
    anonymous = outcome(config, resolved, event(A.verify, OPS_CENTRE, minutes(6), passed=True))
    assert anonymous.verdict is Verdict.refused and "a person verifies it" in anonymous.reason


def test_a_holder_of_the_credential_that_resolved_a_centre_ticket_does_not_verify_it(config):
    centre_token = service_actor(config, OPS_CENTRE)
    resolved = service_resolved(config, centre_token, OPS_CENTRE)
    holder = outcome(config, resolved, by(DUTY_A, A.verify, 6, passed=True, holds=[OPS_CENTRE]))
    assert holder.verdict is Verdict.refused and holder.ticket == resolved
    assert holder.reason == ("您是街道智慧运行中心·接口凭据的持有人，它办结的工单须由未持有它的值班员核验 (you hold the "
                             "service credential that resolved this ticket: someone who does not hold it verifies it)")
    same_token = outcome(config, resolved, by(centre_token, A.verify, 6, passed=True))
    assert same_token.reason == "you resolved this ticket: someone else verifies it"
    # Holding another department's credential does not count; a duty officer holding none verifies.
    assert outcome(config, resolved, by(DUTY_A, A.verify, 6, passed=True, holds=[OWNER])).verdict is Verdict.applied
    other = outcome(config, resolved, by(DUTY_B, A.verify, 7, passed=False, note="仍有积水"))
    assert other.verdict is Verdict.applied and other.ticket.status is S.dispatched


def test_what_a_holder_resolved_in_person_follows_the_person_rule(config):
    ticket = outcome(config, new_ticket(config).model_copy(update={"department": OPS_CENTRE}),
                     by(DUTY_A, A.accept, 2, holds=[OPS_CENTRE])).ticket
    resolved = outcome(config, ticket, by(DUTY_A, A.resolve, 5, note="cleared", holds=[OPS_CENTRE])).ticket
    # The other duty officer holds the centre's token too: they did not resolve it, so they verify.
    assert outcome(config, resolved, by(DUTY_B, A.verify, 6, passed=True, holds=[OPS_CENTRE])).verdict \
        is Verdict.applied
    refused = outcome(config, resolved, by(service_actor(config, OPS_CENTRE), A.verify, 6, passed=True))
    assert refused.reason == "a person resolved this ticket: a duty officer verifies it, not a service credential"
