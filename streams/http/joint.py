"""Joint handling (主办/协办) and disputed dispatch (派单异议) over HTTP (docs/api.md): the centre adds supporting
departments, each accepts its part and gives feedback; the owner disputes a dispatch and the centre rules.
Every change is a command through the ticket step (handlers/lifecycle.py decides it, handlers/joint.py helps)."""
from __future__ import annotations

from typing import Annotated, Literal

from faust import web
from pydantic import Field

from handlers.lifecycle import Conflict, check
from handlers.permissions import Can, may_act
from schemas.records import Ruling, TicketAction, TicketEvent
from streams.http.api import ActionBody, ApiError, Name, Note, Principal, Required, TicketAction_, command_event_id, \
    ticket_json, validate


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

    def event(self, body: ActionBody, who: Principal, ticket_id: str) -> TicketEvent:
        return TicketEvent(event_id=command_event_id(who, body.client_id), ticket_id=ticket_id, action=self.action,
                           by=who.actor.name, actor=who.department, user=who.actor, holds=list(who.holds),
                           at=self.http.clock(), **self.fields(body))

    def fields(self, body) -> dict:
        return {"note": body.note}

    async def post(self, request: web.Request, ticket_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        ticket = await self.http.visible_ticket(ticket_id, who)
        body = validate(self.body, await self.http.read_json(request))
        kind = self.action

        def audit(outcome: str, detail: str) -> None:
            self.http.audit(request, "action", f"ticket.{kind.value}", who, target=ticket.ticket_id,
                            outcome=outcome, detail=detail)

        if not may_act(who.role, kind):
            audit("refused", f"role {who.role.value}")
            raise ApiError(403, f"the {who.role.value} role may not {kind.value} tickets")
        event = self.event(body, who, ticket.ticket_id)
        if any(h.event_id == event.event_id for h in ticket.history):
            audit("replayed", event.note)
            return self.json({**ticket_json(ticket, who), "replayed": True})
        try:
            check(self.http.config, ticket, event)
        except Conflict as conflict:
            audit("refused", str(conflict))
            raise ApiError(409, str(conflict), status=ticket.status.value, ticket=ticket_json(ticket, who)) from None
        self.http.pipeline.send_command(event, ticket.dedup_key)
        try:
            response = await self._outcome(ticket, event, who)
        except ApiError as refused:
            audit("refused", refused.error)
            raise
        audit("queued" if response.status == 202 else "ok", event.note)
        return response


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
