"""What each role may do: the one table the HTTP views consult (the lifecycle's owner and centre rules,
handlers/lifecycle.py, apply on top: a clerk accepts only the tickets of their own department)."""
from __future__ import annotations

from enum import Enum

from schemas.accounts import UserRole as R
from schemas.records import TicketAction as A


class Can(str, Enum):
    read_tickets = "read the tickets"
    watch_board = "watch the board"
    manage_silences = "manage silences"
    set_response = "set the response level"
    edit_duty = "edit the duty roster"
    register_sites = "manage the site whitelist"
    read_audit = "read the audit trail"
    manage_users = "manage users"
    write_reviews = "write a review's findings and actions"


_WORK = {A.accept, A.resolve, A.return_, A.extend, A.comment, A.acknowledge, A.evidence, A.dispute, A.support_accept,
         A.support_feedback}
_CENTRE = {*_WORK, A.extend_decision, A.verify, A.redispatch, A.reopen, A.followup, A.add_support, A.rule}
TICKET_ACTIONS: dict[R, frozenset[A]] = {
    R.clerk: frozenset(_WORK),
    # Deciding extensions also needs district.yaml sign_in.supervisors_decide_extensions.
    R.supervisor: frozenset({*_WORK, A.extend_decision}),
    R.duty_officer: frozenset(_CENTRE),
    R.leader: frozenset({A.comment, A.acknowledge}),  # 批示: the leadership's instruction on a ticket
    R.admin: frozenset(),
    R.service: frozenset(_CENTRE),
}

_EVERYONE_BUT_ADMIN = frozenset({R.clerk, R.supervisor, R.duty_officer, R.leader, R.service})
CAPABILITIES: dict[Can, frozenset[R]] = {
    Can.read_tickets: _EVERYONE_BUT_ADMIN,
    # The centre and the leadership see the whole district; a community workstation its community.
    Can.watch_board: _EVERYONE_BUT_ADMIN,
    Can.manage_silences: frozenset({R.duty_officer, R.service}),
    Can.set_response: frozenset({R.duty_officer, R.leader, R.service}),
    Can.edit_duty: frozenset({R.duty_officer, R.service}),
    Can.register_sites: frozenset({R.clerk, R.supervisor, R.duty_officer, R.service}),
    Can.read_audit: frozenset({R.admin}),
    Can.manage_users: frozenset({R.admin}),
    # A review's findings and actions are a person's judgement: a duty officer of the centre (the view checks the
    # department), never a service credential.
    Can.write_reviews: frozenset({R.duty_officer}),
}


def may(role: R, capability: Can) -> bool:
    return role in CAPABILITIES[capability]


def may_act(role: R, action: A) -> bool:
    return action in TICKET_ACTIONS[role]
