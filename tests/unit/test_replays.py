"""Exact replays (docs/architecture.md): processing an input again, with any subset of its earlier outputs lost,
emits the same outputs: same ids, byte-identical ticket JSON for the same version.

One test per stage: feed an input, drop each subset of its outputs, replay, compare.

- parse: raw bytes + received_at -> Incident JSON (or a dead letter), one output.
- the ticket step: an incident or a command -> the table write (the key's new KeyState) and the
  ticket records (Redis and soc.tickets: the ticket JSON per id and version, and the evictions from
  Redis's hot sets). The projection is what Redis keeps: the highest version of each ticket.

Inputs and restored state go through JSON as they do in the worker (topics, the table's changelog).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from handlers import escalation, response, ticketing
from handlers.base import Context
from handlers.intake import Rejected, dead_letter, to_incident
from handlers.lifecycle import Verdict
from handlers.ticketing import Outcome
from handlers.tickets import PIPELINE, ticket_id_for
from schemas.enums import OPS_CENTRE, Category, Escalation, Severity, Source, TicketStatus
from schemas.evidence import EvidenceStage, MediaType, Photo
from schemas.raw import SiteRegistration
from schemas.records import Incident, Kept, KeyState, Ruling, TicketAction, TicketEvent, Touched
from schemas.silences import Matcher, Silence
from schemas.response import MANUAL, ResponseChange
from tests.unit.conftest import DATA, NOW

A = TicketAction

# ================================================================== parse

SOURCES = ("traffic", "flood", "city", "construction")
PAYLOADS = sorted([(s, p) for s in SOURCES for p in (DATA / s).glob("*.json")] +
                  [(p.name.split("_", 1)[0], p) for p in (DATA / "malformed").glob("*.json")
                   if p.name.split("_", 1)[0] in SOURCES])


def parse(source: str, raw: bytes, context: Context) -> bytes:
    """The one output of the parse stage: the Incident on soc.incidents, a dead letter, or nothing."""
    try:
        incident = to_incident(source, raw, context)
    except Rejected as rejected:
        return b"deadletter:" + dead_letter(f"soc.raw.{source}", 0, 7, raw, rejected,
                                             context.received_at).model_dump_json().encode()
    return b"none" if incident is None else incident.model_dump_json().encode()


def fresh_sites() -> dict[str, SiteRegistration]:
    regs = [SiteRegistration.model_validate_json(p.read_bytes()) for p in sorted((DATA / "sites").glob("*.json"))]
    return {reg.site_id: reg for reg in regs}


def test_the_parse_stage_sees_every_captured_payload():
    assert len(PAYLOADS) >= 40
    assert {s for s, _ in PAYLOADS} == set(SOURCES)


@pytest.mark.parametrize("source, path", PAYLOADS, ids=[f"{s}/{Path(p).name}" for s, p in PAYLOADS])
def test_parse_replay_is_byte_identical(config, source, path):
    raw = path.read_bytes()
    received_at = NOW + timedelta(seconds=17, microseconds=250)
    first = parse(source, raw, Context(config, received_at, fresh_sites()))
    # The output is lost (or was written): the raw record is parsed again, by another worker, later,
    # with its own copy of the whitelist. Same bytes and same received_at: the same output.
    again = parse(source, bytes(raw), Context(config, received_at, fresh_sites()))
    assert again == first
    if first.startswith(b"{"):
        incident = Incident.model_validate_json(first)
        # The record survives the trip through soc.incidents unchanged.
        assert incident.model_dump_json().encode() == first
        assert incident.received_at == received_at
        # Received at another time (a new delivery, not a replay): only received_at differs.
        later = Incident.model_validate_json(parse(source, raw, Context(config, received_at + timedelta(hours=1),
                                                                        fresh_sites())))
        assert later.model_copy(update={"received_at": received_at}) == incident
        assert later.incident_id == incident.incident_id


def test_the_captured_payloads_include_incidents_and_rejections(config):
    outputs = [parse(s, p.read_bytes(), Context(config, NOW, fresh_sites())) for s, p in PAYLOADS]
    assert sum(o.startswith(b"{") for o in outputs) >= 30
    assert sum(o.startswith(b"deadletter:") for o in outputs) >= 5


# ================================================================== the ticket step

KEY = "flood:flood_waterlogging:JS-LY-05"
OWNER = "flood_control"
RETENTION = timedelta(days=30)
T0 = NOW


def incident(n: int, observed: timedelta, received: timedelta | None = None,
             severity: Severity = Severity.orange) -> Incident:
    """A waterlogging report on one underpass, as it comes off soc.incidents (through JSON)."""
    observed_at = T0 + observed
    built = Incident(
        incident_id=f"floo-{n:016x}", source=Source.flood, category=Category.flood_waterlogging,
        subcategory="underpass", severity=severity, title=f"积水 report {n}", lat=22.5297, lon=113.9098,
        community="liyuan", observed_at=observed_at,
        received_at=T0 + (received if received is not None else observed + timedelta(seconds=2)),
        dedup_key=KEY, source_ref=f"JS-LY-05@{observed_at.isoformat()}",
        details={"depth_cm": 10 + n})
    return Incident.model_validate_json(built.model_dump_json())


def command(action: TicketAction, ticket_id: str, actor: str, at: timedelta, **fields) -> TicketEvent:
    ev = TicketEvent(event_id=f"api-{action.value}-{ticket_id}-{int(at.total_seconds())}", ticket_id=ticket_id,
                     action=action, by=f"clerk of {actor}", actor=actor, at=T0 + at, **fields)
    return TicketEvent.model_validate_json(ev.model_dump_json())


def photo(ticket_id: str, at: timedelta, stage: EvidenceStage = EvidenceStage.after) -> TicketEvent:
    """A photo uploaded on the ticket (the image itself is on soc.evidence; the command names it)."""
    image = Photo(sha256=f"{int(at.total_seconds()):064x}", stage=stage, media_type=MediaType.jpeg, width=4000,
                  height=3000, bytes=2_000_000, lat=22.5297, lon=113.9098)
    return command(A.evidence, ticket_id, OWNER, at, note=f"{stage.value} photo", photo=image)


def at(item: Incident | TicketEvent) -> ticketing.Position | None:
    """Where the worker read an input: this file's incidents sit on one soc.incidents partition in
    the order of their numbers (commands come on soc.ticket-events and need no place)."""
    return ticketing.Position(0, int(item.incident_id.split("-")[1], 16)) if isinstance(item, Incident) else None


def decide(config, state: KeyState | None, item: Incident | TicketEvent, around=ticketing.Around()) -> Outcome:
    return ticketing.step(config, state, item, KEY, around, position=at(item))


def wire(ev: TicketEvent) -> TicketEvent:
    return TicketEvent.model_validate_json(ev.model_dump_json())


def restored(state: KeyState | None) -> KeyState | None:
    """The state as a restarted worker reads it back from the table's changelog."""
    return None if state is None else KeyState.model_validate_json(state.model_dump_json())


@dataclass(frozen=True)
class Script:
    inputs: tuple[Incident | TicketEvent, ...]
    labels: tuple[str, ...]
    # The first run: the state after each input (as kept in memory) and each outcome.
    states: tuple[KeyState | None, ...]
    outcomes: tuple[Outcome, ...]


def build_script(config, with_expire: bool = True) -> Script:
    """Open, occurrence, red occurrence, escalation, accept, refused commands, resolve, failed and
    passed verification, recurrence after closure (successor), escalation of the successor, and
    the retention sweep's expire. Timer commands are built from the state at the time, as the
    escalation timer and the sweep build them."""
    state: KeyState | None = None
    inputs, labels, states, outcomes = [], [], [], []

    def feed(label: str, item):
        nonlocal state
        outcome = decide(config, state, item)
        inputs.append(item)
        labels.append(label)
        states.append(outcome.state)
        outcomes.append(outcome)
        state = outcome.state
        return outcome

    def escalate(ticket_id: str, stage: str, step: Escalation, late: timedelta = timedelta(seconds=4)):
        ticket = state.tickets[ticket_id]
        [due] = [s for s in escalation.ladder(config, ticket) if (s.stage, s.step) == (stage, step)]
        return wire(escalation.escalation_event(ticket, due, due.at + late))

    first = incident(1, timedelta(minutes=-2), timedelta(0))
    t1 = ticket_id_for(first)
    feed("open", first)
    feed("occurrence", incident(2, timedelta(minutes=3)))
    feed("late copy", incident(3, timedelta(minutes=-4), timedelta(minutes=4)))
    feed("red occurrence", incident(4, timedelta(minutes=6), severity=Severity.red))
    feed("remind", escalate(t1, "accept", Escalation.reminded))
    feed("escalate", escalate(t1, "accept", Escalation.escalated))
    stale_report = escalate(t1, "accept", Escalation.reported)
    feed("accept", command(A.accept, t1, OWNER, timedelta(minutes=16), note="on the way"))
    feed("stale report (refused)", stale_report)
    feed("self-verify (refused)", command(A.verify, t1, OWNER, timedelta(minutes=17), passed=True))
    feed("occurrence after accept", incident(5, timedelta(minutes=18)))
    feed("photo before", photo(t1, timedelta(minutes=17, seconds=30), EvidenceStage.before))
    feed("resolve without a photo after (refused)", command(A.resolve, t1, OWNER, timedelta(minutes=28), note="done"))
    feed("photo after", photo(t1, timedelta(minutes=29)))
    feed("resolve", command(A.resolve, t1, OWNER, timedelta(minutes=30), note="pumped out"))
    feed("rework", command(A.verify, t1, OPS_CENTRE, timedelta(minutes=35), passed=False, note="still 5 cm"))
    feed("accept again", command(A.accept, t1, OWNER, timedelta(minutes=36)))
    feed("photo after the rework", photo(t1, timedelta(minutes=49)))
    feed("resolve again", command(A.resolve, t1, OWNER, timedelta(minutes=50), note="drain cleared"))
    feed("verify", command(A.verify, t1, OPS_CENTRE, timedelta(minutes=55), passed=True, note="checked on camera"))
    recurrence = incident(6, timedelta(minutes=70))
    t2 = ticket_id_for(recurrence)
    feed("recurrence (successor)", recurrence)
    feed("occurrence of successor", incident(7, timedelta(minutes=75)))
    feed("late report of closed problem", incident(8, timedelta(minutes=20), timedelta(minutes=76)))
    feed("successor remind", escalate(t2, "accept", Escalation.reminded))
    level_i = response.in_force({MANUAL: [ResponseChange(at=T0 + timedelta(minutes=85), level="I", trigger=MANUAL,
                                                         by=OPS_CENTRE, reason="I级")]}, T0 + timedelta(minutes=86),
                                response.hold_of(config))
    feed("retroactive level", wire(response.retroactive_event(config, state.tickets[t2], level_i,
                                                              T0 + timedelta(minutes=86))))
    feed("successor comment", command(A.comment, t2, OPS_CENTRE, timedelta(minutes=90), note="crew?"))
    if with_expire:
        closed = state.tickets[t1]
        sweep = ticketing.expire_event(closed, RETENTION, closed.closed_at + RETENTION + timedelta(minutes=1))
        feed("expire closed", wire(sweep))
        feed("report after expiry", incident(9, RETENTION + timedelta(hours=2)))
    return Script(tuple(inputs), tuple(labels), tuple(states), tuple(outcomes))


@dataclass
class Projection:
    """What Redis holds: the highest version of each ticket, and the tickets evicted from the hot sets."""

    tickets: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    evicted: set[str] = field(default_factory=set)
    # Every (ticket id, version) ever written, with its bytes: a version must never change.
    written: dict[tuple[str, int], bytes] = field(default_factory=dict)

    def write(self, outcome: Outcome) -> None:
        for ticket in outcome.tickets:
            js = ticket.model_dump_json().encode()
            seen = self.written.setdefault((ticket.ticket_id, ticket.version), js)
            assert seen == js, f"{ticket.ticket_id} v{ticket.version} written with other bytes"
            if ticket.version > self.tickets.get(ticket.ticket_id, (0, b""))[0]:
                self.tickets[ticket.ticket_id] = (ticket.version, js)
        self.evicted |= set(outcome.evicted) - {t.ticket_id for t in outcome.tickets}

    def copy(self) -> Projection:
        return Projection(dict(self.tickets), set(self.evicted), dict(self.written))


def reference(script: Script) -> tuple[list[Projection], Projection]:
    """The projection before each input of the run without loss, and the final one."""
    before, projection = [], Projection()
    for outcome in script.outcomes:
        before.append(projection.copy())
        projection.write(outcome)
    return before, projection


def table_written(outcome: Outcome) -> bool:
    # The agent writes the table only for an applied input (design: one table write per input).
    return outcome.verdict is Verdict.applied


def state_json(state: KeyState | None) -> bytes | None:
    return None if state is None else state.model_dump_json().encode()


@pytest.fixture(scope="module")
def script(config) -> Script:
    return build_script(config)


def test_the_script_covers_every_kind_of_input(script):
    verdicts = dict(zip(script.labels, (o.verdict for o in script.outcomes)))
    assert [label for label, v in verdicts.items() if v is not Verdict.applied] == \
        ["stale report (refused)", "self-verify (refused)", "resolve without a photo after (refused)"]
    by_label = dict(zip(script.labels, script.outcomes))
    t1 = ticket_id_for(script.inputs[0])
    assert by_label["red occurrence"].tickets[0].severity is Severity.red
    assert by_label["late copy"].tickets[0].ticket_id == t1
    assert [c.__class__.__name__ for c in by_label["escalate"].counts] == ["Escalated"]
    assert by_label["rework"].tickets[0].reworks == 1
    old, successor = by_label["recurrence (successor)"].tickets
    assert (old.ticket_id, old.status, successor.previous_ticket_id) == (t1, TicketStatus.closed, t1)
    assert by_label["late report of closed problem"].tickets[0].ticket_id == successor.ticket_id
    assert by_label["retroactive level"].tickets[0].response_level == "I"
    assert by_label["expire closed"].evicted == (t1,)
    assert t1 not in script.states[-1].tickets and successor.ticket_id in script.states[-1].tickets
    assert by_label["report after expiry"].tickets[0].previous_ticket_id == successor.ticket_id


LOSSES = [frozenset(s) for s in ([], ["table"], ["tickets"], ["table", "tickets"])]


def test_each_input_replayed_after_losing_each_subset_of_its_outputs(config, script):
    check_each_loss(config, script)


def check_each_loss(config, script: Script) -> None:
    """Each input of `script` processed again after losing each subset of its outputs, then the rest."""
    before, final = reference(script)
    final_state = state_json(script.states[-1])
    cases = 0
    for i, (item, first) in enumerate(zip(script.inputs, script.outcomes)):
        previous_state = script.states[i - 1] if i else None
        for lost in LOSSES:
            where = f"input {i} ({script.labels[i]}), lost {sorted(lost) or 'nothing'}"
            projection = before[i].copy()
            if "tickets" not in lost:
                projection.write(first)
            # The table holds the new state if its write survived (a restarted worker reads it back).
            kept_table = "table" not in lost and table_written(first)
            state = restored(first.state if kept_table else previous_state)
            replay = decide(config, state, item)
            # What the replay emits is what the first run emitted, byte for byte.
            assert [t.model_dump_json() for t in replay.tickets] == [t.model_dump_json() for t in first.tickets], where
            assert (replay.evicted, replay.counts if not kept_table else first.counts) == \
                (first.evicted, first.counts), where
            if kept_table:
                expected = Verdict.replayed if first.verdict is not Verdict.refused else Verdict.refused
                assert replay.verdict is expected, where
            else:
                assert replay.verdict is first.verdict, where
            assert state_json(replay.state) == state_json(first.state), where
            # ... and the rest of the stream goes on as if nothing was lost.
            projection.write(replay)
            state = replay.state
            for later_item, later_first in zip(script.inputs[i + 1:], script.outcomes[i + 1:]):
                outcome = decide(config, state, later_item)
                assert outcome.verdict is later_first.verdict, where
                projection.write(outcome)
                state = outcome.state
            assert projection.tickets == final.tickets, where
            assert projection.evicted == final.evicted, where
            assert projection.written == final.written, where
            assert state_json(state) == final_state, where
            cases += 1
    assert cases == 4 * len(script.inputs)


def build_joint_script(config) -> Script:
    """Joint handling and a disputed dispatch on one waterlogging ticket: supporting departments added (and a
    refused repeat), a part accepted and fed back, a dispute upheld, a second one reassigned, the new owner's
    work, a verify refused for a missing feedback and the centre's override; the timer's steps of a part's
    ladder and of the ruling's."""
    state: KeyState | None = None
    inputs, labels, states, outcomes = [], [], [], []
    new_owner = "environment"

    def feed(label: str, item):
        nonlocal state
        outcome = decide(config, state, item)
        inputs.append(item)
        labels.append(label)
        states.append(outcome.state)
        outcomes.append(outcome)
        state = outcome.state

    def escalate(stage: str, department: str | None = None):
        """The timer's step of a supporting part's or the ruling's ladder, built from the state then."""
        ticket = state.tickets[t]
        [due] = [s for s in escalation.ladder(config, ticket)
                 if (s.stage, s.step, s.department) == (stage, Escalation.reminded, department)]
        return wire(escalation.escalation_event(ticket, due, due.at + timedelta(seconds=3)))

    first = incident(1, timedelta(minutes=-2), timedelta(0))
    t = ticket_id_for(first)
    feed("open", first)
    feed("add support", command(A.add_support, t, OPS_CENTRE, timedelta(minutes=2),
                                departments=["traffic_police", "city_management"], note="封路"))
    feed("add support again (refused)", command(A.add_support, t, OPS_CENTRE, timedelta(minutes=3),
                                                departments=["traffic_police"]))
    feed("support accept", command(A.support_accept, t, "traffic_police", timedelta(minutes=4)))
    feed("support part remind", escalate("support_accept", "city_management"))
    feed("support feedback", command(A.support_feedback, t, "traffic_police", timedelta(minutes=5), note="已封路"))
    feed("accept", command(A.accept, t, OWNER, timedelta(minutes=6)))
    feed("dispute", command(A.dispute, t, OWNER, timedelta(minutes=7), note="系管网破裂", department=new_owner))
    feed("ruling remind", escalate("ruling"))
    feed("rule uphold", command(A.rule, t, OPS_CENTRE, timedelta(minutes=120), decision=Ruling.uphold, note="属积水"))
    feed("dispute again", command(A.dispute, t, OWNER, timedelta(minutes=121), note="确非积水"))
    feed("rule reassign", command(A.rule, t, OPS_CENTRE, timedelta(minutes=122), decision=Ruling.reassign,
                                  department=new_owner))
    feed("new owner accepts", command(A.accept, t, new_owner, timedelta(minutes=123)))
    image = Photo(sha256="e" * 64, stage=EvidenceStage.after, media_type=MediaType.jpeg, width=4000, height=3000,
                  bytes=2_000_000, lat=22.5297, lon=113.9098)
    feed("photo after", command(A.evidence, t, new_owner, timedelta(minutes=130), note="after", photo=image))
    feed("resolve", command(A.resolve, t, new_owner, timedelta(minutes=131), note="管网已修复"))
    feed("verify without every feedback (refused)", command(A.verify, t, OPS_CENTRE, timedelta(minutes=135),
                                                           passed=True))
    feed("verify overriding", command(A.verify, t, OPS_CENTRE, timedelta(minutes=136), passed=True, override=True,
                                      note="城管电话确认"))
    return Script(tuple(inputs), tuple(labels), tuple(states), tuple(outcomes))


def test_joint_handling_and_disputes_are_replayed_exactly_after_any_loss(config):
    script = build_joint_script(config)
    verdicts = dict(zip(script.labels, (o.verdict for o in script.outcomes)))
    assert [label for label, v in verdicts.items() if v is not Verdict.applied] == \
        ["add support again (refused)", "verify without every feedback (refused)"]
    closed = script.outcomes[-1].tickets[0]
    assert (closed.status, closed.department, closed.history[-1].overridden) == \
        (TicketStatus.closed, "environment", ["city_management"])
    assert [h.kind.value for h in closed.history if h.kind.value.startswith(("support", "disput"))] == \
        ["support_added", "support_accepted", "support_feedback", "disputed", "dispute_upheld", "disputed",
         "dispute_reassigned"]
    check_each_loss(config, script)
    check_full_replay(config, script)


def replay_everything(config, script: Script, inputs, state: KeyState | None, projection: Projection):
    outcomes = []
    for item in inputs:
        outcome = decide(config, state, item)
        projection.write(outcome)
        outcomes.append(outcome)
        state = outcome.state
    return state, outcomes


def check_full_replay(config, script: Script):
    _, final = reference(script)
    projection = final.copy()
    state, second = replay_everything(config, script, script.inputs, restored(script.states[-1]), projection)
    problems = []
    for label, first, again in zip(script.labels, script.outcomes, second):
        expected = Verdict.refused if first.verdict is Verdict.refused else Verdict.replayed
        # Once its ticket left by retention, a command refused the first time is recognised as from
        # before the closure: either way it writes nothing.
        past_retention = again.reason == "ticket past retention" and not again.tickets
        if again.verdict is not expected and not past_retention:
            problems.append(f"{label}: second pass {again.verdict.value} ({again.reason or 'no reason'}), "
                            f"expected {expected.value}; wrote {[(t.ticket_id, t.version) for t in again.tickets]}")
    assert problems == []
    assert state_json(state) == state_json(script.states[-1])
    assert projection.tickets == final.tickets and projection.written == final.written
    assert projection.evicted == final.evicted


def test_processing_the_whole_sequence_twice_changes_nothing(config):
    # Everything up to (not including) the retention sweep; the next test adds the sweep.
    check_full_replay(config, build_script(config, with_expire=False))


def test_processing_the_whole_sequence_twice_changes_nothing_across_a_retention_sweep(config, script):
    check_full_replay(config, script)


def test_a_rewind_to_any_earlier_offset_replays_exactly(config):
    # A worker restarts with the table at input k but its committed offset at j <= k: inputs j..k
    # come again (after-the-fact state), then the rest of the stream.
    script = build_script(config, with_expire=False)
    _, final = reference(script)
    n = len(script.inputs)
    for k, j in ((k, j) for k in range(n) for j in range(k + 1)):
        projection = final.copy()
        state, outcomes = replay_everything(config, script, script.inputs[j:k + 1], restored(script.states[k]),
                                            projection)
        for label, first, again in zip(script.labels[j:], script.outcomes[j:], outcomes):
            expected = Verdict.refused if first.verdict is Verdict.refused else Verdict.replayed
            assert again.verdict is expected, f"table at {k}, rewound to {j}: {label} {again.reason}"
        state, _ = replay_everything(config, script, script.inputs[k + 1:], state, projection)
        assert state_json(state) == state_json(script.states[-1]), (j, k)
        assert projection.tickets == final.tickets and projection.written == final.written, (j, k)


def test_a_replay_after_more_than_200_later_occurrences_is_still_recognised(config):
    first = incident(1, timedelta(0))
    # One report every 30 s for almost two hours: inside the 3 h flood window throughout.
    reports = [first] + [incident(n, timedelta(seconds=30 * n)) for n in range(2, 2 + 230)]
    state, projection = None, Projection()
    for item in reports:
        outcome = decide(config, state, item)
        assert outcome.verdict is Verdict.applied
        projection.write(outcome)
        state = outcome.state
    [ticket] = state.tickets.values()
    assert ticket.occurrences == 231 and first.incident_id not in ticket.incident_ids
    final_state, final_tickets = state_json(state), dict(projection.tickets)
    for early in (reports[0], reports[1], reports[5], reports[-201]):
        for table in (state, restored(state)):
            outcome = decide(config, table, early)
            assert (outcome.verdict, outcome.counts) == (Verdict.replayed, ()), early.incident_id
            assert [t.model_dump_json() for t in outcome.tickets] == [ticket.model_dump_json()]
            assert state_json(outcome.state) == final_state
            projection.write(outcome)
    assert projection.tickets == final_tickets


def test_timer_commands_are_the_same_whichever_worker_builds_them(config, script):
    # The escalation timer and the retention sweep on another worker, from the restored table,
    # build the same command ids (a replayed command, not a second one).
    t1 = ticket_id_for(script.inputs[0])
    state = script.states[3]   # after the red occurrence, before the reminder
    ticket, again = state.tickets[t1], restored(state).tickets[t1]
    assert [escalation.escalation_event(ticket, s, s.at).event_id for s in escalation.ladder(config, ticket)] == \
        [escalation.escalation_event(again, s, s.at).event_id for s in escalation.ladder(config, again)]
    closed = script.states[-3].tickets[t1]
    when = closed.closed_at + RETENTION + timedelta(hours=1)
    assert ticketing.expire_event(closed, RETENTION, when) == \
        ticketing.expire_event(restored(script.states[-3]).tickets[t1], RETENTION, when)
    assert ticketing.expire_event(closed, RETENTION, when).by == PIPELINE


def test_every_loss_pattern_of_one_crash_in_the_middle_of_the_stream(config, script):
    # Losses at two different inputs in one run: each input's outputs may be lost independently
    # before a crash; the replay resumes from the first input whose output went missing.
    before, final = reference(script)
    n = len(script.inputs)
    t1, sweep = ticket_id_for(script.inputs[0]), script.labels.index("expire closed")
    failures = []
    for i, k in itertools.combinations(range(n), 2):
        for lost_i, lost_k in itertools.product(LOSSES[1:], LOSSES[1:]):
            projection = before[i].copy()
            # Input i loses `lost_i`, the inputs between keep everything, input k loses `lost_k`.
            state = script.states[i - 1] if i else None
            for m in range(i, k + 1):
                lost = lost_i if m == i else lost_k if m == k else frozenset()
                first = script.outcomes[m]
                if "tickets" not in lost:
                    projection.write(first)
                if "table" not in lost and table_written(first):
                    state = first.state
            # Restart: inputs from i on come again against what the table kept.
            table = state
            state, _ = replay_everything(config, script, script.inputs[i:], restored(state), projection)
            where = f"lost {sorted(lost_i)} at {script.labels[i]}, {sorted(lost_k)} at {script.labels[k]}"
            # A restart whose table already holds the
            # retention sweep of T1 while the replay starts before the sweep re-decides T1's
            # incidents. Those patterns are left to the xfail tests; every other one must be exact.
            if t1 not in (table.tickets if table else {}) and i <= sweep:
                continue
            if state_json(state) != state_json(script.states[-1]) or projection.tickets != final.tickets:
                failures.append(where)
            # A version superseded before its write was replayed may never be written (the replay
            # writes the ticket as it stands), but no version is ever written with other bytes.
            assert projection.evicted == final.evicted, where
    assert failures == []


def test_an_incident_redelivered_after_its_ticket_expired_is_a_replay(config):
    # The minimal case: open, accept, resolve, verify, expire (the key keeps only when its last
    # ticket closed), then the opening incident again.
    first = incident(1, timedelta(0))
    t1 = ticket_id_for(first)
    inputs = [first,
              command(A.accept, t1, OWNER, timedelta(minutes=5)),
              photo(t1, timedelta(minutes=19)),
              command(A.resolve, t1, OWNER, timedelta(minutes=20), note="pumped out"),
              command(A.verify, t1, OPS_CENTRE, timedelta(minutes=25), passed=True)]
    state = None
    for item in inputs:
        state = decide(config, state, item).state
    sweep = wire(ticketing.expire_event(state.tickets[t1], RETENTION, T0 + RETENTION + timedelta(hours=1)))
    expired = decide(config, state, sweep)
    assert (expired.verdict, expired.evicted) == (Verdict.applied, (t1,))
    assert (expired.state.tickets, expired.state.seen, expired.state.recent, expired.state.runs) == ({}, [], {}, [])
    assert expired.state.expired_through == T0 + timedelta(minutes=25)
    again = decide(config, expired.state, first)
    assert (again.verdict, again.counts) == (Verdict.replayed, ())
    assert decide(config, again.state, sweep).verdict is Verdict.replayed


def test_a_report_of_an_expired_ticket_redelivered_is_not_counted_on_its_successor(config):
    first = incident(1, timedelta(0))
    t1 = ticket_id_for(first)
    recurrence = incident(3, timedelta(minutes=40))
    inputs = [first, incident(2, timedelta(minutes=2)),
              command(A.accept, t1, OWNER, timedelta(minutes=5)),
              photo(t1, timedelta(minutes=19)),
              command(A.resolve, t1, OWNER, timedelta(minutes=20), note="pumped out"),
              command(A.verify, t1, OPS_CENTRE, timedelta(minutes=25), passed=True),
              recurrence]
    state = None
    for item in inputs:
        state = decide(config, state, item).state
    t2 = ticket_id_for(recurrence)
    # A short retention here, so the successor's span is still inside the dedup window.
    closed_at = state.tickets[t1].closed_at
    sweep = wire(ticketing.expire_event(state.tickets[t1], timedelta(minutes=1), closed_at + timedelta(minutes=1)))
    state = decide(config, state, sweep).state
    successor = state.tickets[t2]
    again = decide(config, state, inputs[1])
    # Observed: applied, T2 gets occurrences 2 -> 3 and a new version.
    assert again.verdict is Verdict.replayed
    assert again.state.tickets[t2] == successor


# ================================================================== bounded key state

def occurrences(first_n: int, count: int, start: timedelta, step: timedelta = timedelta(seconds=20)) -> list[Incident]:
    return [incident(first_n + k, start + step * k) for k in range(count)]


def test_a_replay_older_than_the_recent_window_still_comes_out_replayed(config):
    """Incidents suppressed by a silence, a ticket with more occurrences than the window holds, its
    closure and a successor with as many: each early input again (from the table as it is, and as
    a restarted worker reads it back) is a replay emitting its first run's tickets as they stand."""
    quiet_ends = T0 + timedelta(minutes=5)
    silence = Silence(silence_id="s-maint", matchers=[Matcher(name="community", value="liyuan")],
                      starts_at=T0 - timedelta(hours=1), ends_at=quiet_ends, comment="泵站检修",
                      created_by="duty", created_at=T0 - timedelta(hours=1))
    around = ticketing.Around(silences=(silence,))
    suppressed = occurrences(1, 3, timedelta(minutes=-3), timedelta(minutes=1))
    opening = occurrences(4, ticketing.RECENT + 30, timedelta(minutes=6))
    t1 = ticket_id_for(opening[0])
    closing = [command(A.accept, t1, OWNER, timedelta(minutes=40)),
               photo(t1, timedelta(minutes=49)),
               command(A.resolve, t1, OWNER, timedelta(minutes=50), note="pumped out"),
               command(A.verify, t1, OPS_CENTRE, timedelta(minutes=55), passed=True)]
    n = 4 + len(opening)
    recurring = occurrences(n, ticketing.RECENT + 30, timedelta(minutes=70))
    inputs = [*suppressed, *opening, *closing, *recurring]
    state, projection, first_run = None, Projection(), {}
    for item in inputs:
        outcome = decide(config, state, item, around)
        assert outcome.verdict is Verdict.applied
        projection.write(outcome)
        first_run[item.incident_id if isinstance(item, Incident) else item.event_id] = outcome
        state = outcome.state
    assert [o.verdict for o in map(first_run.get, (i.incident_id for i in suppressed))] == [Verdict.applied] * 3
    assert first_run[suppressed[0].incident_id].suppressed and not first_run[suppressed[0].incident_id].tickets
    closed, successor = first_run[recurring[0].incident_id].tickets
    assert (closed.ticket_id, successor.previous_ticket_id) == (t1, t1)
    final_state, final_tickets = state_json(state), dict(projection.tickets)
    early = [*suppressed, opening[0], opening[1], opening[40], recurring[0], recurring[1]]
    assert not {i.incident_id for i in early} & set(state.recent)
    for item in early:
        first = first_run[item.incident_id]
        for table in (state, restored(state)):
            again = decide(config, table, wire_incident(item), ticketing.Around())
            where = item.incident_id
            assert (again.verdict, again.counts) == (Verdict.replayed, ()), where
            # The tickets it wrote, as they stand now (a later version of the same ids) ...
            assert [t.ticket_id for t in again.tickets] == [t.ticket_id for t in first.tickets], where
            assert [t.model_dump_json() for t in again.tickets] == \
                [state.tickets[t.ticket_id].model_dump_json() for t in first.tickets], where
            assert [(s.incident, s.silence_id) for s in again.suppressed] == \
                [(s.incident, s.silence_id) for s in first.suppressed], where
            assert state_json(again.state) == final_state, where
            projection.write(again)  # and never a version with other bytes
    assert projection.tickets == final_tickets


def wire_incident(item: Incident) -> Incident:
    return Incident.model_validate_json(item.model_dump_json())


def test_a_copy_of_a_recent_incident_under_a_new_offset_is_a_replay(config):
    # The parse step replayed after a crash sends the incident again, later on soc.incidents.
    reports = occurrences(1, 10, timedelta(0))
    state = None
    for item in reports:
        state = decide(config, state, item).state
    later = ticketing.Position(0, 10_000)
    again = ticketing.step(config, state, reports[3], KEY, position=later)
    assert (again.verdict, again.counts, again.state) == (Verdict.replayed, (), state)
    assert [t.model_dump_json() for t in again.tickets] == [t.model_dump_json() for t in state.tickets.values()]
    # A new incident at that offset is counted.
    new = ticketing.step(config, state, incident(99, timedelta(minutes=4)), KEY, position=later)
    assert new.verdict is Verdict.applied and new.state.marks == {0: 10_000}


def test_the_key_state_of_a_storm_hours_long_stays_the_size_it_had_after_minutes(config):
    # One report every 20 s for 3 hours on one underpass: the state after 540 reports is the state
    # after 90 with other ids and numbers in it.
    state, sizes = None, {}
    for k, item in enumerate(occurrences(1, 540, timedelta(0)), start=1):
        state = decide(config, state, item).state
        if k in (90, 540):
            sizes[k] = len(state_json(state))
    assert len(state.recent) == ticketing.RECENT and len(state.runs) == 1
    assert sizes[540] < sizes[90] * 1.1


def test_a_table_value_written_before_the_bounded_shape_reads_into_it(config):
    # The state of a real key after two reports and one inhibited one, as the earlier shape wrote it.
    first = incident(1, timedelta(0))
    t1 = ticket_id_for(first)
    state = decide(config, None, first).state
    state = decide(config, state, incident(2, timedelta(minutes=1))).state
    old = orjson.loads(state.model_dump_json())
    for field_name in ("marks", "runs", "recent"):
        del old[field_name]
    old["counted"] = {first.incident_id: [t1], incident(2, timedelta(minutes=1)).incident_id: [t1]}
    old["silenced"], old["inhibited"] = {"floo-00000000000000ff": "inhibit:rule"}, {"floo-00000000000000ff": "T-x"}
    migrated = KeyState.model_validate_json(orjson.dumps(old))
    assert migrated.recent == {first.incident_id: Touched(tickets=[t1]),
                               incident(2, timedelta(minutes=1)).incident_id: Touched(tickets=[t1]),
                               "floo-00000000000000ff": Kept(cover="inhibit:rule", source_ticket_id="T-x")}
    assert (migrated.marks, migrated.runs, migrated.tickets) == ({}, [], state.tickets)
    assert not {"counted", "silenced", "inhibited"} & set(orjson.loads(migrated.model_dump_json()))
    # Its ids are replays (the old value knew no offsets: the ids decide) ...
    again = ticketing.step(config, migrated, first, KEY, position=ticketing.Position(0, 1))
    assert (again.verdict, [t.ticket_id for t in again.tickets]) == (Verdict.replayed, [t1])
    kept = ticketing.step(config, migrated, incident(255, timedelta(minutes=2)), KEY)
    assert (kept.verdict, kept.suppressed[0].silence_id, kept.suppressed[0].source_ticket_id) == \
        (Verdict.replayed, "inhibit:rule", "T-x")
    # ... and the next report counts once, from then on in the bounded shape.
    later = ticketing.step(config, migrated, incident(3, timedelta(minutes=3)), KEY, position=ticketing.Position(0, 3))
    assert later.verdict is Verdict.applied and later.tickets[0].occurrences == 3
    assert later.state.marks == {0: 3} and len(later.state.runs) == 1


def test_a_phones_resend_of_a_command_is_a_replay_whenever_it_comes(config):
    # The inbox on a phone sends an action queued offline again until it gets an answer; the API makes the
    # event id from the phone's own id (streams/http/api.py command_event_id), so each resend carries the
    # first one's id with its own time. Resent before the step saw the first, or after later commands,
    # it changes nothing.
    first = incident(1, timedelta(0))
    t1 = ticket_id_for(first)
    state = decide(config, None, first).state

    def phone(action: TicketAction, client_id: str, sent: timedelta, **fields) -> TicketEvent:
        return wire(TicketEvent(event_id=f"client-clerk-{client_id}", ticket_id=t1, action=action, by="李工",
                                actor=OWNER, at=T0 + sent, **fields))

    accept = phone(A.accept, "a1b2c3d4", timedelta(minutes=5))
    comment = phone(A.comment, "e5f6a7b8", timedelta(minutes=6), note="到场")
    verdicts = []
    for item in (accept, phone(A.accept, "a1b2c3d4", timedelta(minutes=5, seconds=3)), comment):
        outcome = decide(config, state, item)
        state = outcome.state
        verdicts.append(outcome.verdict)
    assert verdicts == [Verdict.applied, Verdict.replayed, Verdict.applied]
    ticket = state.tickets[t1]
    assert [h.event_id for h in ticket.history].count(accept.event_id) == 1
    assert [h.event_id for h in ticket.history].count(comment.event_id) == 1
    for resend in (phone(A.accept, "a1b2c3d4", timedelta(minutes=30)),
                   phone(A.comment, "e5f6a7b8", timedelta(minutes=31), note="到场")):
        again = decide(config, restored(state), resend)
        assert again.verdict is Verdict.replayed
        assert again.state.tickets[t1] == ticket and again.tickets == (ticket,)
