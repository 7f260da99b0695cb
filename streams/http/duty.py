"""The duty roster over HTTP: who is on duty now, the shifts of a period, and shift handovers.

Names and member ids only: the roster's phone numbers (environment variables) never leave the
worker through these routes.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from faust import web

from handlers import duty
from handlers.duty import OnDuty
from handlers.privacy import mask_personal, never_masked
from handlers.permissions import Can
from schemas.enums import OPS_CENTRE, Severity
from schemas.records import Ticket
from streams.http.api import ApiError, Body, JsonView, Note, only_params, time_param, validate

DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=62)
SNAPSHOT_LIMIT = 500
SNAPSHOT_SEVERITIES = (Severity.red.value, Severity.orange.value)


class HandoverBody(Body):
    note: Note = ""


def person(stretch: OnDuty | None) -> dict | None:
    if stretch is None:
        return None
    return {"member_id": stretch.member_id, "name": stretch.name,
            "from": stretch.start.isoformat(), "to": stretch.end.isoformat()}


def shift_json(stretch: OnDuty) -> dict:
    return {"role": stretch.role, **person(stretch)}


def on_duty_json(found: dict[str, OnDuty]) -> dict:
    return {"leader": person(found.get("leader")), "officer": person(found.get("officer"))}


def snapshot_json(ticket: Ticket) -> dict:
    return {"ticket_id": ticket.ticket_id, "title": mask_personal(ticket.title), "severity": ticket.severity.value,
            "status": ticket.status.value, "escalation": ticket.escalation.value, "department": ticket.department,
            "accept_due": ticket.accept_due.isoformat(), "resolve_due": ticket.resolve_due.isoformat()}


class DutyNow(JsonView):
    """Any department may ask who is on duty."""

    async def get(self, request: web.Request) -> web.Response:
        await self.http.authenticate(request)
        district = self.http.config.district
        now = self.http.clock().astimezone(district.tz)
        found = duty.on_duty(district, now)
        # The shift is the officer's: the 值班员 changes daily, the 带班领导 weekly.
        current = found.get("officer") or found.get("leader")
        return self.json({"at": now.isoformat(), "timezone": district.timezone, **on_duty_json(found),
                          "shift": None if current is None else {"from": current.start.isoformat(),
                                                                 "to": current.end.isoformat()}})


class DutyRoster(JsonView):
    """The operations centre and the leadership: the shifts of a period and its handovers."""

    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        district = self.http.config.district
        if not who.reads_all:
            raise ApiError(403, "the duty roster and its handovers are for the operations centre and the leadership")
        who.require(Can.read_tickets)  # the handovers list open tickets
        only_params(request.query, {"from", "to"})
        start = time_param(request.query, "from") or self.http.clock()
        end = time_param(request.query, "to") or start + DEFAULT_SPAN
        if end <= start:
            raise ApiError(400, "to must be after from")
        if end - start > MAX_SPAN:
            raise ApiError(400, f"at most {MAX_SPAN.days} days from from to to")
        start, end = start.astimezone(district.tz), end.astimezone(district.tz)
        return self.json({"from": start.isoformat(), "to": end.isoformat(), "timezone": district.timezone,
                          "shifts": [shift_json(s) for s in duty.shifts(district, start, end)],
                          "handovers": await self.http.store.handovers(start, end)})


class DutyHandover(JsonView):
    """The operations centre hands a shift over: who to whom, a note, and the open red and orange tickets."""

    async def post(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        if who.department != OPS_CENTRE:
            raise ApiError(403, "only the operations centre records a shift handover")
        who.require(Can.edit_duty)
        body = validate(HandoverBody, await self.http.read_json(request))
        district = self.http.config.district
        now = self.http.clock().astimezone(district.tz)
        change, outgoing, incoming = duty.handover(district, now)
        total, tickets = await self.http.store.open_of_severity(SNAPSHOT_SEVERITIES, SNAPSHOT_LIMIT)
        record = {
            "handover_id": never_masked(f"H{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}"),
            "at": now.isoformat(),
            "by": who.actor.name,
            "user": who.actor.model_dump(mode="json"),
            "shift_change": change.isoformat(),
            "outgoing": on_duty_json(outgoing),
            "incoming": on_duty_json(incoming),
            "note": body.note,
            "open_total": total,
            "open_tickets": [snapshot_json(t) for t in tickets],
        }
        await self.http.store.record_handover(record, now)
        self.http.audit(request, "action", "duty.handover", who, target=record["handover_id"], detail=body.note)
        return self.json(record, status=201)


ROUTES = [
    ("/api/duty", "duty", DutyRoster),
    ("/api/duty/now", "duty-now", DutyNow),
    ("/api/duty/handover", "duty-handover", DutyHandover),
]
