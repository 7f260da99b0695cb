"""Emergency pre-plans over HTTP (docs/plans.md): the plans, their runs and their progress, the centre's
start and stand-down, and a task department's checklist ticks. Runs are read from soc.plan-runs (mirrored
on every worker), their tasks from the ticket store; every change is a command through the ticket step."""
from __future__ import annotations

import uuid
from typing import Annotated

from faust import web
from pydantic import AfterValidator, Field, StrictBool, StrictInt

from handlers import plans, wording
from handlers.permissions import Can, may_act
from handlers.privacy import mask_personal
from schemas.enums import OPS_CENTRE
from schemas.plans import Fired, PlanActivate, PlanRun, PlanStandDown
from schemas.records import Ticket, TicketAction, TicketEvent
from streams.http.api import ApiError, Body, JsonView, Principal, only_params, ticket_json, validate, with_event

Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(mask_personal)]


class ReasonBody(Body):
    reason: Reason


class TickBody(Body):
    item: Annotated[StrictInt, Field(ge=0, le=100)]
    done: StrictBool


def _centre(who: Principal, what: str) -> None:
    if who.department != OPS_CENTRE or not may_act(who.role, TicketAction.verify):
        raise ApiError(403, f"only the operations centre's duty officers {what}")


def fired_json(fired: Fired) -> dict:
    """What started a run, as its record says and in words (Chinese, and English for the switched pages)."""
    why = fired.reason
    if fired.on == "level":
        text = f"{fired.level}级应急响应" + (f"（{why}）" if why else "")
        text_en = f"level {fired.level} emergency response" + (f" ({why})" if why else "")
    elif fired.on == "ticket":
        text = f"工单 {fired.ticket_id}" + (f"：{why}" if why else "")
        text_en = f"ticket {fired.ticket_id}" + (f": {why}" if why else "")
    elif fired.on == "correlation":
        text, text_en = f"关联规则 {fired.rule}：工单 {fired.ticket_id}", f"rule {fired.rule}: ticket {fired.ticket_id}"
    else:
        text, text_en = f"{fired.by}手动启动：{why}", f"started by {fired.by}: {why}"
    return {**fired.model_dump(mode="json", exclude_none=True), "text": text, "text_en": text_en}


def run_json(http, run: PlanRun, tickets: dict[str, Ticket], who: Principal) -> dict:
    now = http.clock()
    district = http.config.district
    tasks = []
    for ticket_id in run.tickets:
        ticket = tickets.get(ticket_id)
        if ticket is None or ticket.task is None or not who.can_see(ticket):
            continue
        tasks.append({
            "ticket_id": ticket.ticket_id, "department": ticket.department,
            "department_name": wording.department_name(district, ticket.department),
            "department_name_en": wording.department_name(district, ticket.department, "en"),
            "role": ticket.task.role, "title": ticket.title, "status": ticket.status.value,
            "cancelled": ticket.task.cancelled, "due": ticket.resolve_due.isoformat(),
            "due_text": wording.local_time(district, ticket.resolve_due), "overdue": plans.overdue(ticket, now),
            "resources": list(ticket.task.resources),
            "checklist": [{"item": line.item, "done": line.done, "by": line.by,
                           "at": line.at.isoformat() if line.at else None} for line in ticket.task.checklist],
        })
    found = [tickets[t] for t in run.tickets if t in tickets]
    plan = http.config.plans.get(run.plan_id)
    return {
        "run_id": run.run_id, "plan_id": run.plan_id, "name": run.name,
        "name_en": plan.name_en if plan is not None and plan.name_en else run.name, "trigger": fired_json(run.fired),
        "started_at": run.started_at.isoformat(), "started_text": wording.local_time(district, run.started_at),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None, "ended_reason": run.ended_reason or None,
        "active": run.ended_at is None, "tasks": tasks, "progress": plans.progress(found, len(run.tickets), now),
    }


class _Runs(JsonView):
    async def runs_json(self, runs: list[PlanRun], who: Principal) -> list[dict]:
        ids = [t for run in runs for t in run.tickets]
        tickets = {t.ticket_id: t for t in await self.http.store.many(ids)} if ids else {}
        return [run_json(self.http, run, tickets, who) for run in runs]

    def run(self, run_id: str) -> PlanRun:
        run = self.http.pipeline.books.plan_runs.get(run_id) if len(run_id) <= 200 else None
        if run is None:
            raise ApiError(404, f"no plan run {run_id}")
        return run


class PlanList(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        only_params(request.query, set())
        return self.json({"plans": [plan.model_dump(mode="json") for plan in self.http.config.plans.plans]})


class Activate(_Runs):
    async def post(self, request: web.Request, plan_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        _centre(who, "start a plan")
        plan = self.http.config.plans.get(plan_id)
        if plan is None:
            raise ApiError(404, f"no plan {plan_id}")
        body = validate(ReasonBody, await self.http.read_json(request))
        book = self.http.pipeline.books.plan_runs
        running = [r.run_id for r in book.all() if r.plan_id == plan.id and r.ended_at is None]
        if running:
            raise ApiError(409, f"plan {plan.id} is already running as {running[0]}", run_id=running[0])
        now = self.http.clock()
        run_id = plans.manual_run_id(plan, now)
        lat, lon = plans.district_centre(self.http.config)
        command = PlanActivate(event_id=f"api-{uuid.uuid4().hex}", run_id=run_id, plan_id=plan.id,
                               fired=Fired(on="manual", by=who.actor.name, reason=body.reason), at=now,
                               by=who.actor.name, lat=lat, lon=lon)
        await self.http.pipeline.topics.ticket_events.send(key=plans.run_key(run_id).encode(),
                                                           value=command.model_dump_json().encode())
        self.http.audit(request, "action", "plan.activate", who, target=run_id, detail=body.reason)
        if not await self.http.applied(lambda: book.get(run_id) is not None, command.event_id):
            return self.json({"accepted": True, "run_id": run_id}, status=202)
        [found] = await self.runs_json([book.get(run_id)], who)
        return self.json(found, status=201)


class StandDown(_Runs):
    async def post(self, request: web.Request, run_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        _centre(who, "stand a plan run down")
        run = self.run(run_id)
        body = validate(ReasonBody, await self.http.read_json(request))
        if run.ended_at is not None:
            raise ApiError(409, "plan run already stood down")
        command = PlanStandDown(event_id=f"api-{uuid.uuid4().hex}", run_id=run.run_id, at=self.http.clock(),
                                by=who.actor.name, actor=who.department, reason=body.reason)
        await self.http.pipeline.topics.ticket_events.send(key=plans.run_key(run.run_id).encode(),
                                                           value=command.model_dump_json().encode())
        self.http.audit(request, "action", "plan.stand_down", who, target=run.run_id, detail=body.reason)
        book = self.http.pipeline.books.plan_runs
        if not await self.http.applied(lambda: (book.get(run_id) or run).ended_event == command.event_id,
                                       command.event_id):
            return self.json({"accepted": True, "run_id": run.run_id}, status=202)
        [found] = await self.runs_json([book.get(run_id)], who)
        return self.json(found)


class RunList(_Runs):
    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        only_params(request.query, {"active"})
        active = request.query.get("active")
        if active not in (None, "true", "false"):
            raise ApiError(400, "active must be true or false")
        runs = sorted(self.http.pipeline.books.plan_runs.all(), key=lambda r: r.started_at, reverse=True)
        if active is not None:
            runs = [r for r in runs if (r.ended_at is None) == (active == "true")]
        found = await self.runs_json(runs, who)
        if not who.reads_all:  # a department sees the runs it has tasks in
            found = [r for r in found if r["tasks"]]
        return self.json({"items": found})


class RunDetail(_Runs):
    async def get(self, request: web.Request, run_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        [found] = await self.runs_json([self.run(run_id)], who)
        if not who.reads_all and not found["tasks"]:
            raise ApiError(404, f"no plan run {run_id}")
        return self.json(found)


class Checklist(JsonView):
    async def post(self, request: web.Request, ticket_id: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        ticket = await self.http.visible_ticket(ticket_id, who)
        body = validate(TickBody, await self.http.read_json(request))
        if not may_act(who.role, TicketAction.accept):
            raise ApiError(403, f"the {who.role.value} role may not tick a checklist")
        event = TicketEvent(event_id=f"api-{uuid.uuid4().hex}", ticket_id=ticket.ticket_id, action=TicketAction.check,
                            by=who.actor.name, actor=who.department, user=who.actor, holds=list(who.holds),
                            at=self.http.clock(), item=body.item, done=body.done)
        problem = plans.tick_problem(ticket, event)
        if problem is not None:
            raise ApiError(409, problem)
        self.http.pipeline.send_command(event, ticket.dedup_key)
        self.http.audit(request, "action", "ticket.check", who, target=ticket.ticket_id,
                        detail=f"{body.item}={'done' if body.done else 'not done'}")
        current = await self.http.applied(lambda: with_event(self.http, ticket.ticket_id, event.event_id),
                                          event.event_id)
        if current is not None:
            return self.json(ticket_json(current, who))
        return self.json({"accepted": True, "event_id": event.event_id}, status=202)


# Before the ticket routes: /api/tickets/{id}/checklist is this view's, not an action of the ticket API's.
ROUTES = [
    ("/api/plans", "plans", PlanList),
    ("/api/plans/{plan_id}/activate", "plan-activate", Activate),
    ("/api/plan-runs", "plan-runs", RunList),
    ("/api/plan-runs/{run_id}", "plan-run", RunDetail),
    ("/api/plan-runs/{run_id}/stand-down", "plan-run-stand-down", StandDown),
    ("/api/tickets/{ticket_id}/checklist", "ticket-checklist", Checklist),
]
