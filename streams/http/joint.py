"""Joint handling (主办/协办) and disputed dispatch (派单异议) over HTTP (docs/api.md): the centre adds supporting
departments, each accepts its part and gives feedback; the owner disputes a dispatch and the centre rules.
Every change is a command through the ticket step (handlers/lifecycle.py decides it, handlers/joint.py helps)."""
from __future__ import annotations

from typing import Annotated, Literal

from faust import web
from pydantic import Field

from handlers.permissions import Can
from schemas.records import Ruling, TicketAction
from streams.http.api import ActionBody, Name, Note, Required, TicketAction_, validate


class SupportBody(ActionBody):
    departments: Annotated[list[Name], Field(min_length=1, max_length=20)]
    note: Note = ""


class SupportAcceptBody(ActionBody):
    note: Note = ""


class SupportFeedbackBody(ActionBody):
    note: Required


class DisputeBody(ActionBody):
    reason: Required
    suggest: Name | None = None


class RuleBody(ActionBody):
    decision: Literal["uphold", "reassign"]
    department: Name | None = None
    note: Note = ""


class _Command(TicketAction_):
    """One command on a ticket, checked here as the ticket step will decide it (409 with the reason), then
    sent and waited for as the ticket API's actions are."""

    action: TicketAction
    body: type[ActionBody]

    def fields(self, body) -> dict:
        return {"note": body.note}

    async def post(self, request: web.Request, ticket_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        ticket = await self.http.visible_ticket(ticket_id, who)
        body = validate(self.body, await self.http.read_json(request))
        return await self.command(request, who, ticket, self.new_event(who, ticket.ticket_id, self.action, body.client_id,
                                                                    self.fields(body)))


class AddSupport(_Command):
    action, body = TicketAction.add_support, SupportBody

    def fields(self, body: SupportBody) -> dict:
        return {"note": body.note, "departments": body.departments}


class SupportAccept(_Command):
    action, body = TicketAction.support_accept, SupportAcceptBody


class SupportFeedback(_Command):
    action, body = TicketAction.support_feedback, SupportFeedbackBody


class Dispute(_Command):
    action, body = TicketAction.dispute, DisputeBody

    def fields(self, body: DisputeBody) -> dict:
        return {"note": body.reason, "department": body.suggest}


class Rule(_Command):
    action, body = TicketAction.rule, RuleBody

    def fields(self, body: RuleBody) -> dict:
        return {"note": body.note, "decision": Ruling(body.decision), "department": body.department}


# Before api.ROUTES: /api/tickets/{id}/support would otherwise be taken as the action route's `{action}`.
ROUTES = [
    ("/api/tickets/{ticket_id}/support", "ticket-support", AddSupport),
    ("/api/tickets/{ticket_id}/support/accept", "ticket-support-accept", SupportAccept),
    ("/api/tickets/{ticket_id}/support/feedback", "ticket-support-feedback", SupportFeedback),
    ("/api/tickets/{ticket_id}/dispute", "ticket-dispute", Dispute),
    ("/api/tickets/{ticket_id}/rule", "ticket-rule", Rule),
]
