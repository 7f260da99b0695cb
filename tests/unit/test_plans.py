"""Pre-plans at work (handlers/plans.py through the ticket step): a run starts once per trigger (across a
replay, another worker, two triggers of one storm), its tasks are tickets of kind task, the stand-down
cancels the open ones and keeps the done ones, checklist ticks by the task's department, and every plan
command replayed with any subset of its outputs lost emits the same outputs."""
from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest

from handlers import cap, escalation, hotspots, performance, plans, ticketing
from handlers.base import Context
from handlers.intake import to_incident
from handlers.lifecycle import Verdict
from handlers.tickets import PIPELINE
from schemas.enums import OPS_CENTRE, Category, Hazard, Severity, Source, TicketKind, TicketStatus
from schemas.correlation import Sighting
from schemas.plans import CorrelationTrigger, PlanActivate, Plans, PlanStandDown
from schemas.records import HistoryKind, Incident, KeyState, TicketAction, TicketEvent
from schemas.response import MANUAL, ResponseChange
from streams.ops.simulator import Simulator
from tests.unit.conftest import DATA, NOW

A = TicketAction
T0 = NOW


def manual(at: timedelta, level: str | None, hazard: Hazard | None = Hazard.flood) -> ResponseChange:
    return ResponseChange(at=T0 + at, level=level, reason="暴雨橙色预警", trigger=MANUAL, by="张值班", hazard=hazard)


def rule(at: timedelta, level: str | None, name: str = "rainstorm_red") -> ResponseChange:
    return ResponseChange(at=T0 + at, level=level, reason="雨量站 red", trigger=name, by=PIPELINE)


def only(found: list[PlanActivate], plan_id: str) -> PlanActivate:
    [activation] = [a for a in found if a.plan_id == plan_id]
    return PlanActivate.model_validate_json(activation.model_dump_json())  # as it comes off the topic


def start(config, activation: PlanActivate, state: KeyState | None = None) -> ticketing.Outcome:
    return ticketing.step(config, state, activation, plans.run_key(activation.run_id))


def command(action: A, ticket_id: str, actor: str, at: timedelta, **fields) -> TicketEvent:
    event = TicketEvent(event_id=f"api-{action.value}-{ticket_id}-{int(at.total_seconds())}", ticket_id=ticket_id,
                        action=action, by=f"clerk of {actor}", actor=actor, at=T0 + at, **fields)
    return TicketEvent.model_validate_json(event.model_dump_json())


def stand_down(run_id: str, at: timedelta, n: int = 1) -> PlanStandDown:
    return PlanStandDown(event_id=f"api-stand-down-{n}", run_id=run_id, at=T0 + at, by="张值班", actor=OPS_CENTRE,
                         reason="雨停，解除Ⅱ级响应")


def after(config, state: KeyState, *items) -> KeyState:
    for item in items:
        key = plans.run_key(item.run_id) if isinstance(item, (PlanActivate, PlanStandDown)) else state.dedup_key
        outcome = ticketing.step(config, state, item, key)
        assert outcome.verdict is Verdict.applied, outcome.reason
        state = outcome.state
    return state


# ------------------------------------------------------------------ the level trigger

def test_a_flood_level_ii_starts_the_flood_ii_plan_with_a_ticket_per_task(config):
    histories = {MANUAL: [manual(timedelta(0), "II")]}
    activation = only(plans.level_activations(config, histories, T0 + timedelta(minutes=1)), "flood_ii")
    assert [a.plan_id for a in plans.level_activations(config, histories, T0)] == ["flood_ii"]  # not I, not typhoon
    assert activation.at == T0 and activation.run_id.startswith("flood_ii@")
    outcome = start(config, activation)
    assert outcome.verdict is Verdict.applied
    plan = config.plans.get("flood_ii")
    assert outcome.counts == tuple(ticketing.Opened(task.department, plan.severity) for task in plan.tasks)
    tickets = outcome.tickets
    assert [t.department for t in tickets] == [task.department for task in plan.tasks]
    assert len({t.department for t in tickets}) >= 3
    first = tickets[0]
    assert (first.kind, first.status, first.source, first.category) == (TicketKind.task, TicketStatus.dispatched,
                                                                       Source.flood, Category.flood_rainfall)
    assert first.title == "防汛Ⅱ级应急响应预案：低洼点位值守"
    assert (first.accept_due, first.resolve_due) == (T0 + timedelta(minutes=10), T0 + timedelta(minutes=30))
    assert first.dedup_key == plans.run_key(activation.run_id)
    assert (first.task.run_id, first.task.role) == (activation.run_id, "lead")
    assert [line.item for line in first.task.checklist] == plan.tasks[0].checklist
    assert not any(line.done for line in first.task.checklist)
    [run] = outcome.runs
    assert (run.run_id, run.plan_id, run.started_at, run.ended_at) == (activation.run_id, "flood_ii", T0, None)
    assert run.tickets == [t.ticket_id for t in tickets] and run.fired.level == "II"
    assert plans.progress(tickets, len(tickets), T0) == {"done": 0, "total": len(tickets), "overdue": 0}
    assert plans.progress(tickets, len(tickets), T0 + timedelta(minutes=16))["overdue"] == len(tickets)


def test_two_triggers_of_one_storm_start_one_run(config):
    """The centre's II, then a rain gauge's rule at II while it holds, then the centre's I: one II stretch."""
    histories = {MANUAL: [manual(timedelta(0), "II"), manual(timedelta(minutes=40), "I")],
                 "rainstorm_red@flood:flood_rainfall:QX-HW": [rule(timedelta(minutes=5), "II")]}
    seen = {only(plans.level_activations(config, histories, T0 + timedelta(minutes=m)), "flood_ii")
            for m in (1, 10, 39, 45, 90)}
    assert len(seen) == 1  # the same command whenever (and so wherever) it is built
    [activation] = seen
    first = start(config, activation)
    again = start(config, only(plans.level_activations(config, histories, T0 + timedelta(minutes=45)), "flood_ii"),
                  first.state)
    assert again.verdict is Verdict.replayed and again.state == first.state and again.counts == ()
    assert [t.model_dump_json() for t in again.tickets] == [t.model_dump_json() for t in first.tickets]
    # Level I adds its own plan's run, once.
    assert only(plans.level_activations(config, histories, T0 + timedelta(minutes=45)), "flood_i").at == \
        T0 + timedelta(minutes=40)


def test_a_new_stretch_after_the_level_ended_is_a_new_run(config):
    hold = timedelta(minutes=30)  # rules.yaml response.hold
    histories = {"rainstorm_red@flood:flood_rainfall:QX-HW": [rule(timedelta(0), "II"), rule(timedelta(minutes=10), None),
                                                             rule(timedelta(hours=3), "II")]}
    first = only(plans.level_activations(config, histories, T0 + timedelta(minutes=20)), "flood_ii")
    assert plans.level_activations(config, histories, T0 + timedelta(minutes=10) + hold + timedelta(minutes=1)) == []
    second = only(plans.level_activations(config, histories, T0 + timedelta(hours=3, minutes=1)), "flood_ii")
    assert first.run_id != second.run_id and second.at == T0 + timedelta(hours=3)


def test_a_level_for_another_hazard_or_none_starts_only_its_own_plans(config):
    typhoon = {MANUAL: [manual(timedelta(0), "II", Hazard.typhoon)]}
    assert [a.plan_id for a in plans.level_activations(config, typhoon, T0)] == ["typhoon_ii"]
    assert plans.level_activations(config, {MANUAL: [manual(timedelta(0), "I", None)]}, T0) == []
    # The typhoon signal rule speaks for the typhoon, not the flood.
    signal = {"typhoon_orange@flood:typhoon:QX": [rule(timedelta(0), "II", "typhoon_orange")]}
    assert [a.plan_id for a in plans.level_activations(config, signal, T0)] == ["typhoon_ii"]
    # The centre's next decision for another hazard ends its flood level.
    moved = {MANUAL: [manual(timedelta(0), "II"), manual(timedelta(minutes=5), "III", Hazard.typhoon)]}
    assert plans.level_activations(config, moved, T0 + timedelta(minutes=6)) == []


# ------------------------------------------------------------------ the ticket trigger

def accident(severity: Severity, n: int = 1) -> Incident:
    built = Incident(incident_id=f"traf-{n:016x}", source=Source.traffic, category=Category.traffic_accident,
                     subcategory="accident", severity=severity, title="滨海大道多车相撞", lat=22.52, lon=113.91,
                     community="haibin", observed_at=T0, received_at=T0 + timedelta(seconds=2),
                     dedup_key="traffic:traffic_accident:binhai", source_ref=f"ACC-{n}")
    return Incident.model_validate_json(built.model_dump_json())


def test_a_red_accident_ticket_starts_the_accident_plan_once(config):
    incident = accident(Severity.red)
    position = ticketing.Position(0, 7)
    opened = ticketing.step(config, None, incident, incident.dedup_key, position=position)
    [activation] = opened.activations
    [ticket] = opened.tickets
    assert (activation.plan_id, activation.run_id) == ("major_accident", f"major_accident@{ticket.ticket_id}")
    assert (activation.at, activation.lat, activation.community) == (ticket.dispatched_at, ticket.lat, "haibin")
    replayed = ticketing.step(config, opened.state, incident, incident.dedup_key, position=position)
    assert replayed.verdict is Verdict.replayed and replayed.activations == opened.activations
    run = start(config, activation)
    assert run.tickets[0].community == "haibin" and run.runs[0].fired.ticket_id == ticket.ticket_id
    assert start(config, activation, run.state).verdict is Verdict.replayed
    # A later report merged into the ticket starts nothing more; an orange accident starts nothing.
    later = accident(Severity.red, 2).model_copy(update={"observed_at": T0 + timedelta(minutes=1)})
    assert ticketing.step(config, opened.state, later, incident.dedup_key, position=ticketing.Position(0, 8)).activations == ()
    assert ticketing.step(config, None, accident(Severity.orange, 3), "k", position=position).activations == ()


# ------------------------------------------------------------------ stand-down and checklist

@pytest.fixture
def running(config) -> KeyState:
    activation = only(plans.level_activations(config, {MANUAL: [manual(timedelta(0), "II")]}, T0), "flood_ii")
    return start(config, activation).state


def test_stand_down_cancels_the_open_tasks_and_keeps_the_done_ones(config, running):
    done, accepted, *waiting = running.run.tickets
    lead_dept, second_dept = running.tickets[done].department, running.tickets[accepted].department
    state = after(config, running,
                  command(A.accept, done, lead_dept, timedelta(minutes=2)),
                  command(A.resolve, done, lead_dept, timedelta(minutes=9), note="已值守"),
                  command(A.verify, done, OPS_CENTRE, timedelta(minutes=10), passed=True),
                  command(A.accept, accepted, second_dept, timedelta(minutes=3)))
    assert plans.progress(state.tickets.values(), 4, T0 + timedelta(minutes=11))["done"] == 1
    outcome = ticketing.step(config, state, stand_down(running.run.run_id, timedelta(minutes=20)),
                             plans.run_key(running.run.run_id))
    assert outcome.verdict is Verdict.applied
    assert {t.ticket_id for t in outcome.tickets} == {accepted, *waiting}  # the done one is not written
    for ticket in outcome.tickets:
        assert (ticket.status, ticket.task.cancelled, ticket.closed_at) == (TicketStatus.closed, True,
                                                                          T0 + timedelta(minutes=20))
        assert (ticket.history[-1].kind, ticket.history[-1].note) == (HistoryKind.stood_down, "雨停，解除Ⅱ级响应")
    assert outcome.state.tickets[done].task.cancelled is False
    [run] = outcome.runs
    assert (run.ended_at, run.ended_reason) == (T0 + timedelta(minutes=20), "雨停，解除Ⅱ级响应")
    assert plans.progress(outcome.state.tickets.values(), 4, T0 + timedelta(hours=5)) == \
        {"done": 1, "total": 4, "overdue": 0}
    again = ticketing.step(config, outcome.state, stand_down(running.run.run_id, timedelta(minutes=20)),
                           plans.run_key(running.run.run_id))
    assert again.verdict is Verdict.replayed and again.runs == outcome.runs
    other = ticketing.step(config, outcome.state, stand_down(running.run.run_id, timedelta(minutes=30), n=2),
                           plans.run_key(running.run.run_id))
    assert (other.verdict, other.reason) == (Verdict.refused, "plan run already stood down")
    unknown = ticketing.step(config, None, stand_down("flood_ii@nothing", timedelta(0)), "plan:flood_ii@nothing")
    assert (unknown.verdict, unknown.reason) == (Verdict.refused, "unknown plan run flood_ii@nothing")


def test_checklist_ticks_by_the_tasks_department_only(config, running):
    ticket_id = running.run.tickets[2]  # 抽排, city_management
    department = running.tickets[ticket_id].department
    tick = command(A.check, ticket_id, department, timedelta(minutes=4), item=0, done=True)
    outcome = ticketing.step(config, running, tick, running.dedup_key)
    assert outcome.verdict is Verdict.applied
    [ticket] = outcome.tickets
    line = ticket.task.checklist[0]
    assert (line.done, line.by, line.at) == (True, f"clerk of {department}", T0 + timedelta(minutes=4))
    assert (ticket.history[-1].kind, ticket.history[-1].item, ticket.history[-1].done) == (HistoryKind.checked, 0, True)
    assert ticketing.step(config, outcome.state, tick, running.dedup_key).verdict is Verdict.replayed
    untick = command(A.check, ticket_id, department, timedelta(minutes=5), item=0, done=False)
    assert ticketing.step(config, outcome.state, untick, running.dedup_key).tickets[0].task.checklist[0].done is False
    for refused, why in [
        (command(A.check, ticket_id, "flood_control", timedelta(minutes=6), item=1, done=True),
         f"only the task's department ({department}) ticks its checklist"),
        (command(A.check, ticket_id, department, timedelta(minutes=7), item=9, done=True),
         "no checklist item 9: the task has 3 (0 is the first)"),
    ]:
        result = ticketing.step(config, outcome.state, refused, running.dedup_key)
        assert (result.verdict, result.reason) == (Verdict.refused, why)


# ------------------------------------------------------------------ exact replays with outputs lost

def outputs(outcome: ticketing.Outcome) -> tuple:
    """What the agent writes for one input: the tickets (Redis, soc.tickets), the runs (soc.plan-runs) and
    the start commands (soc.ticket-events), as bytes."""
    return (tuple(t.model_dump_json() for t in outcome.tickets), tuple(r.model_dump_json() for r in outcome.runs),
            tuple(a.model_dump_json() for a in outcome.activations))


@pytest.mark.parametrize("which", ["activate", "tick", "stand_down"])
def test_each_plan_command_replayed_after_losing_each_subset_of_its_outputs(config, running, which):
    """Outputs are the table write, the tickets and the run record: whichever were lost, processing the
    input again (from the state as the table's changelog restores it) writes the same run and tickets, and
    a projection built from what survived plus the replay equals the first run's."""
    run_id = running.run.run_id
    activation = only(plans.level_activations(config, {MANUAL: [manual(timedelta(0), "II")]}, T0), "flood_ii")
    ticket_id = running.run.tickets[1]
    item, before = {
        "activate": (activation, None),
        "tick": (command(A.check, ticket_id, running.tickets[ticket_id].department, timedelta(minutes=3), item=1,
                         done=True), running),
        "stand_down": (stand_down(run_id, timedelta(minutes=20)), running),
    }[which]
    key = plans.run_key(run_id)
    first = ticketing.step(config, before, item, key)
    assert first.verdict is Verdict.applied
    lost_parts = ("table", "tickets", "run")
    for lost in itertools.chain.from_iterable(itertools.combinations(lost_parts, n) for n in range(4)):
        state = before if "table" in lost else KeyState.model_validate_json(first.state.model_dump_json())
        again = ticketing.step(config, state, item, key)
        assert outputs(again) == outputs(first), lost
        projection = {t.ticket_id: t.model_dump_json() for t in (() if "tickets" in lost else first.tickets)}
        projection.update({t.ticket_id: t.model_dump_json() for t in again.tickets})
        assert {i: projection[i] for i in (t.ticket_id for t in first.tickets)} == \
            {t.ticket_id: t.model_dump_json() for t in first.tickets}, lost
        runs = {} if "run" in lost else {r.run_id: r for r in first.runs}
        runs.update({r.run_id: r for r in again.runs})
        assert [r.model_dump_json() for r in runs.values()] == [r.model_dump_json() for r in first.runs], lost


def test_the_simulated_rainstorm_starts_the_flood_plan(config):
    """`make run SCENARIO=rainstorm`: the storm's peak readings, through parse and the ticket step, raise the
    flood level (rules.yaml rainstorm_red) and that level starts the flood II plan."""
    sim = Simulator(5, "rainstorm", config.district, start=T0)
    peak = sim.peak_time()
    histories, states = {}, {}
    for event in sim.generate(peak, 1500):
        if event.source != "flood" or event.malformed:
            continue
        incident = to_incident("flood", json.dumps(event.payload).encode(), Context(config, peak))
        if incident is None:
            continue
        outcome = ticketing.step(config, states.get(incident.dedup_key), incident, incident.dedup_key)
        states[incident.dedup_key] = outcome.state
        histories.update(outcome.response)
    assert any(key.startswith("rainstorm_red@") for key in histories)
    assert "flood_ii" in {a.plan_id for a in plans.level_activations(config, histories, peak)}


def sighted(role: str, n: int, minutes: float) -> Sighting:
    return Sighting(event_id=f"sight-积水致拥堵-{role}-T{n}", cell="corr:积水致拥堵:2506:6341", rule="积水致拥堵",
                    role=role, ticket_id=f"T{n}", dedup_key=f"key-{n}", severity=Severity.yellow, lat=22.5297,
                    lon=113.9098, at=T0 + timedelta(minutes=minutes))


def test_a_correlation_rule_linking_a_cause_starts_its_plan_once_per_cause(config):
    plan = config.plans.get("flood_ii").model_copy(update={
        "id": "underpass_jam", "trigger": CorrelationTrigger(by="correlation", rule="积水致拥堵")})
    config = config.model_copy(update={"plans": Plans(plans=[plan])})
    cell = "corr:积水致拥堵:2506:6341"
    state = ticketing.step(config, KeyState(dedup_key=cell), sighted("cause", 0, 0), cell).state
    assert ticketing.step(config, KeyState(dedup_key=cell), sighted("cause", 0, 0), cell).activations == ()
    first = ticketing.step(config, state, sighted("effect", 1, 5), cell)
    [activation] = first.activations
    assert (activation.run_id, activation.fired.ticket_id, activation.fired.rule) == ("underpass_jam@T0", "T0", "积水致拥堵")
    # A replay of the sighting sends the same start; a second jam linked to the same cause names the same run.
    assert ticketing.step(config, state, sighted("effect", 1, 5), cell).activations == first.activations
    second = ticketing.step(config, first.state, sighted("effect", 2, 8), cell)
    assert [a.run_id for a in second.activations] == ["underpass_jam@T0"]
    run = start(config, activation)
    assert start(config, second.activations[0], run.state).verdict is Verdict.replayed


def test_a_plans_tasks_are_not_counted_as_problems_at_a_place(config):
    """The recurring places (handlers/hotspots.py) cluster reports of problems: a task the plan sent is not one."""
    incident = accident(Severity.red)
    opened = ticketing.step(config, None, incident, incident.dedup_key, position=ticketing.Position(0, 1))
    [ticket] = opened.tickets
    tasks = start(config, opened.activations[0]).tickets
    facts = {t.ticket_id: performance.stored_facts(performance.gauge_facts(t)) for t in (ticket, *tasks)}
    assert [s.ticket_id for s in hotspots.sightings(facts)] == [ticket.ticket_id]
    assert all(facts[t.ticket_id].task for t in tasks)


def test_a_cap_typhoon_warning_starts_the_typhoon_plan(config):
    """A CAP orange typhoon signal (tests/data/cap) becomes a reading, the reading the typhoon_orange level, and
    that level the typhoon II plan's start: a warning starts a plan as the centre's decision does."""
    alert = cap.parse((DATA / "cap" / "typhoon_orange_actual.xml").read_bytes())
    received = alert.sent + timedelta(seconds=5)
    [reading] = cap.decide(alert, "szmb", {}, config, received).readings
    incident = to_incident("flood", reading.model_dump_json().encode(), Context(config, received))
    histories = ticketing.step(config, None, incident, incident.dedup_key).response
    assert [a.plan_id for a in plans.level_activations(config, histories, received)] == ["typhoon_ii"]


def test_a_task_climbs_the_escalation_ladder_of_its_own_deadlines(config, running):
    """A task's 催办 falls due a fifth of its accept span before the plan's accept deadline (routing.yaml
    escalation), and the step takes it like any ticket's."""
    ticket = running.tickets[running.run.tickets[0]]  # 低洼点位值守: accept within 10 minutes
    assert escalation.due_steps(config, ticket, T0 + timedelta(minutes=7)) == []
    [step] = escalation.due_steps(config, ticket, T0 + timedelta(minutes=8))
    assert (step.stage, step.step.value, step.at) == ("accept", "reminded", T0 + timedelta(minutes=8))
    taken = ticketing.step(config, running, escalation.escalation_event(ticket, step, step.at), running.dedup_key)
    assert taken.verdict is Verdict.applied and taken.tickets[0].escalation.value == "reminded"
