"""Emergency pre-plans at work (plans.yaml): when a plan starts, its tasks as tickets, the stand-down,
checklist ticks and a run's progress. No I/O.

A run is named by what started it, so the same trigger seen again (a replay, another worker's timer, a
second rule raising the same storm's level) names the same run, and a run starts once:

    the level for the plan's hazard at the plan's level or above   <plan>@<start of that stretch>
    a ticket of the trigger's category opened at its severity      <plan>@<ticket id>
    a correlation rule linking a cause ticket to an effect         <plan>@<cause ticket id>
    the centre's own decision (POST /api/plans/{id}/activate)      <plan>@manual-<time>

The start travels on soc.ticket-events keyed `plan:<run id>` (PlanActivate) and meets the run's state
in the ticket step's table: the run and its task tickets live there, so commands on the tasks (accept,
resolve, verify, check) and the stand-down are decided beside them like any ticket's.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from handlers import response
from handlers.intake import digest
from handlers.privacy import never_masked
from handlers.routing import red_watchers
from handlers.tickets import PIPELINE
from schemas.config import Config
from schemas.enums import SEVERITY_RANK, Hazard, TicketKind, TicketStatus
from schemas.plans import (HAZARD_OF, TASK_CATEGORY, TASK_SOURCE, ChecklistItem, Fired, Plan, PlanActivate, PlanRun,
                           PlanStandDown, TaskPart)
from schemas.records import HistoryEntry, HistoryKind, Incident, KeyState, Ticket, TicketEvent
from schemas.response import MANUAL, RANK, ResponseChange, duration_s

KEY_PREFIX = "plan:"


def run_key(run_id: str) -> str:
    """The run's key on soc.ticket-events and in the ticket step's table."""
    return f"{KEY_PREFIX}{run_id}"


def _stamp(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def manual_run_id(plan: Plan, at: datetime) -> str:
    return f"{plan.id}@manual-{_stamp(at)}"


def district_centre(config: Config) -> tuple[float, float]:
    """(lat, lon) of the middle of the communities' extent: where a district-wide run's tasks are put."""
    lons = [lon for c in config.district.communities.values() for lon, _ in c.polygon]
    lats = [lat for c in config.district.communities.values() for _, lat in c.polygon]
    return (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2


# ------------------------------------------------------------------ triggers

def hazard_histories(config: Config, histories: Mapping[str, list[ResponseChange]],
                     hazard: Hazard) -> dict[str, list[ResponseChange]]:
    """The response histories that speak for one hazard: its rules' (by their category), and the centre's
    decisions, where one for another hazard (or for none) ends the centre's level for this one."""
    rules = {rule.name: HAZARD_OF.get(rule.category) for rule in config.rules.response.triggers}
    found = {}
    for key, changes in histories.items():
        if key == MANUAL:
            found[key] = [c if c.hazard is hazard or c.level is None else c.model_copy(update={"level": None})
                          for c in changes]
        elif changes and rules.get(changes[-1].trigger) is hazard:
            found[key] = changes
    return found


def level_stretch(config: Config, plan: Plan, histories: Mapping[str, list[ResponseChange]],
                  now: datetime) -> tuple[datetime, response.InForce] | None:
    """When the stretch in which the plan's hazard has stood at its level or above, unbroken, began (and
    the level that began it), if `now` is in one; every trigger that overlaps it belongs to the one stretch."""
    hold = response.hold_of(config)
    at_least = RANK[plan.trigger.level]
    spans = sorted((s for key, changes in hazard_histories(config, histories, plan.hazard).items()
                    for s in response.spans(key, changes, hold) if RANK[s.in_force.level] >= at_least),
                   key=lambda s: s.start)
    stretches: list[list] = []  # [start, end (None: open-ended), the level that began it]
    for span in spans:
        last = stretches[-1] if stretches else None
        if last is not None and (last[1] is None or span.start <= last[1]):
            last[1] = None if last[1] is None or span.end is None else max(last[1], span.end)
        else:
            stretches.append([span.start, span.end, span.in_force])
    for start, end, first in stretches:
        if start <= now and (end is None or now < end):
            return start, first
    return None


def level_activations(config: Config, histories: Mapping[str, list[ResponseChange]],
                      now: datetime) -> list[PlanActivate]:
    """The start of every level-triggered plan whose stretch `now` is in: the same command whenever and
    wherever it is built (its time is the stretch's start), so the run's key takes it once."""
    lat, lon = district_centre(config)
    found = []
    for plan in config.plans.plans:
        if plan.trigger.by != "level":
            continue
        stretch = level_stretch(config, plan, histories, now)
        if stretch is None:
            continue
        start, first = stretch
        run_id = f"{plan.id}@{_stamp(start)}"
        fired = Fired(on="level", level=first.level, by=first.change.by, reason=first.change.reason)
        found.append(PlanActivate(event_id=f"activate-{run_id}", run_id=run_id, plan_id=plan.id, fired=fired, at=start,
                                  by=PIPELINE, lat=lat, lon=lon))
    return found


def ticket_activations(config: Config, tickets: Iterable[Ticket], incident: Incident) -> list[PlanActivate]:
    """The starts of ticket-triggered plans for the tickets this incident opened (on its replay too:
    the tickets name the incident that opened them)."""
    found = []
    for ticket in tickets:
        if ticket.incident_id != incident.incident_id or ticket.kind is TicketKind.task:
            continue
        opened = ticket.opened_severity or ticket.severity
        for plan in config.plans.plans:
            trigger = plan.trigger
            if (trigger.by == "ticket" and trigger.category is ticket.category
                    and SEVERITY_RANK[opened] >= SEVERITY_RANK[trigger.min_severity]):
                found.append(_for_ticket(plan, ticket.ticket_id, Fired(on="ticket", ticket_id=ticket.ticket_id,
                                                                        reason=ticket.title),
                                         ticket.dispatched_at, ticket.lat, ticket.lon, ticket.community))
    return found


def correlation_activations(config: Config, rule: str, commands: Iterable[tuple[str, TicketEvent]], lat: float,
                            lon: float, at: datetime) -> list[PlanActivate]:
    """The starts of correlation-triggered plans for the cause tickets a sighting's relate commands link."""
    causes = list(dict.fromkeys(c.related_ticket_id for _, c in commands if c.role == "cause" and c.related_ticket_id))
    found = []
    for plan in config.plans.plans:
        if plan.trigger.by == "correlation" and plan.trigger.rule == rule:
            found += [_for_ticket(plan, cause, Fired(on="correlation", ticket_id=cause, rule=rule), at, lat, lon, None)
                      for cause in causes]
    return found


def _for_ticket(plan: Plan, ticket_id: str, fired: Fired, at: datetime, lat: float, lon: float,
                community: str | None) -> PlanActivate:
    run_id = f"{plan.id}@{ticket_id}"
    return PlanActivate(event_id=f"activate-{run_id}", run_id=run_id, plan_id=plan.id, fired=fired, at=at,
                        by=PIPELINE, lat=lat, lon=lon, community=community)


# ------------------------------------------------------------------ the run's key in the ticket step

@dataclass(frozen=True)
class Decided:
    """What the step does with a plan command: keep `state`, write `tickets` and publish `run`."""

    state: KeyState | None
    tickets: tuple[Ticket, ...] = ()
    run: PlanRun | None = None
    replayed: bool = False
    refused: str = ""


def on_command(config: Config, state: KeyState | None, command: PlanActivate | PlanStandDown, key: str) -> Decided:
    if isinstance(command, PlanActivate):
        return _activate(config, state, command, key)
    return _stand_down(state, command)


def _as_they_stand(state: KeyState) -> tuple[Ticket, ...]:
    return tuple(state.tickets[t] for t in state.run.tickets if t in state.tickets)


def _activate(config: Config, state: KeyState | None, command: PlanActivate, key: str) -> Decided:
    if state is not None and state.run is not None:
        # Started before (a replay, another worker, a second trigger of the same stretch): as it stands.
        return Decided(state, _as_they_stand(state), state.run, replayed=True)
    plan = config.plans.get(command.plan_id)
    if plan is None:
        return Decided(state, refused=f"unknown plan {command.plan_id}")
    tickets = [_task_ticket(config, plan, n, command, key) for n in range(len(plan.tasks))]
    run = PlanRun(run_id=command.run_id, plan_id=plan.id, name=plan.name, fired=command.fired,
                  started_at=command.at, tickets=[t.ticket_id for t in tickets])
    new = (state or KeyState(dedup_key=key)).model_copy(update={"run": run, "tickets": {t.ticket_id: t for t in tickets}})
    return Decided(new, tuple(tickets), run)


def _task_ticket(config: Config, plan: Plan, n: int, command: PlanActivate, key: str) -> Ticket:
    task = plan.tasks[n]
    at = command.at
    ticket_id = never_masked(f"T{at.astimezone(config.district.tz):%Y%m%d}-{digest(command.run_id, str(n), size=4)}")
    return Ticket(
        ticket_id=ticket_id, incident_id=f"{command.run_id}#{n}", source_ref=command.run_id, dedup_key=key,
        department=task.department, watchers=list(red_watchers(config, task.department, plan.severity)),
        source=TASK_SOURCE[plan.hazard], category=TASK_CATEGORY[plan.hazard], subcategory=plan.id,
        severity=plan.severity, opened_severity=plan.severity, title=f"{plan.name}：{task.title}",
        description=command.fired.reason, community=command.community, lat=command.lat, lon=command.lon,
        status=TicketStatus.dispatched, incident_ids=[], observed_at=at, received_at=at, last_seen_at=at,
        dispatched_at=at, accept_due=at + timedelta(seconds=duration_s(task.accept)),
        resolve_due=at + timedelta(seconds=duration_s(task.due)),
        kind=TicketKind.task,
        task=TaskPart(run_id=command.run_id, plan_id=plan.id, role=task.role,
                      checklist=[ChecklistItem(item=line) for line in task.checklist], resources=task.resources),
        history=[HistoryEntry(at=at, by=PIPELINE, action="dispatch", note=plan.name, event_id=command.event_id,
                              kind=HistoryKind.dispatch, department=task.department)],
    )


def _stand_down(state: KeyState | None, command: PlanStandDown) -> Decided:
    run = state.run if state is not None else None
    if run is None:
        return Decided(state, refused=f"unknown plan run {command.run_id}")
    if run.ended_at is not None:
        if run.ended_event == command.event_id:
            return Decided(state, _as_they_stand(state), run, replayed=True)
        return Decided(state, refused="plan run already stood down")
    changed = []
    for ticket in _as_they_stand(state):
        if ticket.status is TicketStatus.closed:
            continue  # done work stays done
        entry = HistoryEntry(at=command.at, by=command.by, action="stood_down", note=command.reason,
                             event_id=command.event_id, kind=HistoryKind.stood_down, actor=command.actor)
        changed.append(ticket.model_copy(update={
            "status": TicketStatus.closed, "closed_at": command.at, "extension": None,
            "task": ticket.task.model_copy(update={"cancelled": True}), "version": ticket.version + 1,
            "history": [*ticket.history, entry]}))
    ended = run.model_copy(update={"ended_at": command.at, "ended_reason": command.reason, "ended_by": command.by,
                                   "ended_event": command.event_id})
    new = state.model_copy(update={"run": ended, "tickets": {**state.tickets, **{t.ticket_id: t for t in changed}}})
    return Decided(new, tuple(changed), ended)


# ------------------------------------------------------------------ checklist

def tick_problem(ticket: Ticket, event: TicketEvent) -> str | None:
    """Why `event` may not tick this ticket's checklist now; None when it may."""
    if ticket.task is None:
        return "only a plan's task has a checklist"
    if event.actor != ticket.department:
        return f"only the task's department ({ticket.department}) ticks its checklist"
    if ticket.status is TicketStatus.closed:
        return "the task is closed"
    if event.item is None or event.done is None:
        return "a tick needs 'item' and 'done'"
    if not 0 <= event.item < len(ticket.task.checklist):
        return f"no checklist item {event.item}: the task has {len(ticket.task.checklist)} (0 is the first)"
    return None


def ticked(ticket: Ticket, event: TicketEvent) -> Ticket | str:
    """The task with one checklist line set as the event says; or why not."""
    problem = tick_problem(ticket, event)
    if problem is not None:
        return problem
    checklist = list(ticket.task.checklist)
    line = checklist[event.item]
    checklist[event.item] = line.model_copy(update={"done": event.done, "by": event.by, "at": event.at})
    entry = HistoryEntry(at=event.at, by=event.by, action="checked", note=line.item, event_id=event.event_id,
                         user=event.user, kind=HistoryKind.checked, actor=event.actor, item=event.item, done=event.done)
    return ticket.model_copy(update={"task": ticket.task.model_copy(update={"checklist": checklist}),
                                     "version": ticket.version + 1, "history": [*ticket.history, entry]})


# ------------------------------------------------------------------ progress

def overdue(ticket: Ticket, now: datetime) -> bool:
    if ticket.status is TicketStatus.dispatched:
        return ticket.accept_due < now
    return ticket.status is TicketStatus.accepted and ticket.resolve_due < now


def progress(tickets: Iterable[Ticket], total: int, now: datetime) -> dict:
    """done: tasks closed by their work (not by a stand-down); overdue: open ones past their deadline."""
    tickets = list(tickets)
    done = sum(t.status is TicketStatus.closed and not (t.task and t.task.cancelled) for t in tickets)
    return {"done": done, "total": total, "overdue": sum(overdue(t, now) for t in tickets)}
