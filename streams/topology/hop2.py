"""Hop 2: soc.incidents | soc.ticket-events --decide_tickets--> the keys' states, Redis, soc.tickets.
Each input decided against its key's state by handlers.ticketing, in offset order; a batch's outcomes
collected in a `BatchEffects` and flushed once, in the order its `flush` numbers."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

import orjson

from handlers import plans, ticketing
from handlers import silences as silence_rules
from handlers.intake import Rejected
from handlers.lifecycle import Verdict
from handlers.tickets import PIPELINE
from schemas.correlation import Sighting
from schemas.enums import Escalation
from schemas.plans import PlanActivate, PlanRun, PlanStandDown
from schemas.records import Incident, KeyState, Ticket, TicketEvent
from schemas.resources import ResourceCommand, ResourceHold
from schemas.response import ResponseChange
from schemas.ticket_events import STEP_INPUT, StepInput
from streams import topics
from streams.topology import faust_compat
from streams.topology.outputs import Outputs
from streams.topology.pipeline import BATCH, BATCH_WITHIN_S, Pipeline
from streams.topology.watchdog import InOrder

log = logging.getLogger("soc.pipeline")

# Parsed key states kept, so a hot key (a flood station in a storm) is parsed once, not per batch.
PARSED_STATES = 4096


def add_decide_agent(p: Pipeline, agent) -> None:
    # Both inputs of the ticket step in one stream: the table write goes to the partition they share.
    decide_topic = p.app.topic(topics.INCIDENTS, topics.TICKET_EVENTS, key_serializer="raw", value_serializer="raw")
    p.agents["decide_tickets"] = agent(decide_topic, "decide_tickets")(_decide_tickets(p))


class States:
    """The batch's view of dedup_key_to_tickets: each key read and parsed once, written once."""

    def __init__(self, table, cache: dict):
        self.table, self.cache = table, cache
        self.current: dict[str, KeyState | None] = {}
        self.changed: dict[str, object] = {}  # key -> the last event that changed it (its partition)

    def get(self, key: str) -> KeyState | None:
        if key not in self.current:
            raw = self.table.get(key)
            hit = self.cache.get(key)
            if raw is None:
                state = None
            elif hit is not None and hit[0] is raw:
                state = hit[1]
            else:
                state = KeyState.model_validate_json(raw)
            self.current[key] = state
        return self.current[key]

    def put(self, key: str, state: KeyState, event) -> None:
        self.current[key] = state
        self.changed[key] = event


def decode_input(message) -> Incident | StepInput:
    """An incident, or what soc.ticket-events carries (commands on tickets, correlation sightings, plan and
    resource commands, preventive openings, level decisions), told apart by its `kind`."""
    if message.topic == topics.INCIDENTS:
        return Incident.model_validate_json(message.value)
    return STEP_INPUT.validate_json(message.value)



class BatchEffects:
    """What one batch of the ticket step decided, collected input by input (`take`) and then done at once
    (`flush`), in the order flush numbers: each output after what it depends on, and the key's state in
    the table after everything it records was done."""

    def __init__(self, p: Pipeline, out: Outputs, states: States):
        self.p, self.out, self.states = p, out, states
        self.written: dict[str, tuple[Ticket, str]] = {}
        self.evicted: set[str] = set()
        self.counts: list[ticketing.Count] = []
        self.refused: list[tuple[str, str]] = []
        self.latencies: list[datetime] = []
        self.suppressed: list[ticketing.Suppressed] = []
        self.moved: dict[str, list[ResponseChange]] = {}
        self.sightings: list[Sighting] = []
        self.commands: list[tuple[str, TicketEvent]] = []
        self.runs: dict[str, PlanRun] = {}
        self.holds: dict[str, ResourceHold] = {}
        self.activations: list[PlanActivate] = []

    def take(self, key: str, item, outcome: ticketing.Outcome, event) -> None:
        """One input's outcome."""
        kind = item.action.value if isinstance(item, TicketEvent) else \
            "incident" if isinstance(item, Incident) else item.kind
        if outcome.verdict is Verdict.applied:
            self.states.put(key, outcome.state, event)
            self.counts += outcome.counts
            if isinstance(item, Incident):
                self.latencies.append(item.received_at)
        elif outcome.verdict is Verdict.refused:
            _log_refused(item, outcome.reason)
            # For the API, which waits on a person's command: the reason it was not applied.
            if (isinstance(item, (TicketEvent, PlanStandDown, ResourceCommand)) and item.actor != PIPELINE
                    or isinstance(item, PlanActivate) and item.by != PIPELINE):
                self.refused.append((item.event_id, outcome.reason))
        for ticket in outcome.tickets:
            self.written[ticket.ticket_id] = (ticket, kind)
        self.sightings += outcome.sightings
        self.commands += outcome.commands
        self.runs.update((run.run_id, run) for run in outcome.runs)
        self.holds.update((hold.resource_id, hold) for hold in outcome.holds)
        self.activations += outcome.activations
        self.evicted.update(outcome.evicted)
        self.suppressed += outcome.suppressed
        self.moved.update(outcome.response)

    async def flush(self, cache: dict[str, tuple[bytes, KeyState]]) -> None:
        """The batch's effects, in this order (the batch is acked only after it: faust_compat.finished_batches):
        1. Redis: the touched tickets, the evicted ones, the suppressed incidents (one round trip);
        2. soc.tickets: one record per touched ticket;
        3. soc.inhibitors: the tickets that inhibit others, and tombstones for those that left;
        4. soc.ticket-events: the sightings, commands and plan starts the batch made (after the tickets
           they name; a lost send is sent again by the input's replay);
        5. soc.plan-runs and soc.resources: the runs and holds it changed;
        6. soc.response: the response levels it moved;
        7. the table: each touched key's state, its changelog record to the partition of the input that
           changed it last (and the parsed states kept for the next batch);
        8. every send above acknowledged by the broker;
        9. Redis: why each person's refused command was not applied (the API waits on it);
        10. the metrics."""
        p, out, states = self.p, self.out, self.states
        written, evicted = self.written, self.evicted
        # 1.
        tickets = [(t, kind, t.model_dump_json().encode()) for t, kind in written.values()]
        if tickets or evicted or self.suppressed:
            await p.store.save_with_retry(tickets, evicted=sorted(evicted - set(written)),
                                          suppressed=[(s.incident, s.silence_id, s.source_ticket_id)
                                                      for s in self.suppressed])
        # 2.
        for ticket, _, js in tickets:
            await out.send(topics.TICKETS, ticket.ticket_id.encode(), js)
        # 3. (streams/topology/mirror.py)
        for ticket, _, _ in tickets:
            if ticket.inhibits:
                await out.send(topics.INHIBITORS, ticket.ticket_id.encode(),
                               silence_rules.inhibitor_record(ticket).model_dump_json().encode())
        for ticket_id in evicted - set(written):
            await out.send(topics.INHIBITORS, ticket_id.encode(), None)
        # 4.
        for sighting in self.sightings:
            await out.send(topics.TICKET_EVENTS, sighting.cell.encode(), sighting.model_dump_json().encode())
        for key, command in self.commands:
            await out.send(topics.TICKET_EVENTS, key.encode(), command.model_dump_json().encode())
        for activation in self.activations:
            await out.send(topics.TICKET_EVENTS, plans.run_key(activation.run_id).encode(),
                           activation.model_dump_json().encode())
        # 5.
        for run in self.runs.values():
            await out.send(topics.PLAN_RUNS, run.run_id.encode(), run.model_dump_json().encode())
        for hold in self.holds.values():
            await out.send(topics.RESOURCES, hold.resource_id.encode(), hold.model_dump_json().encode())
        # 6.
        for trigger, changes in self.moved.items():
            await out.send(topics.RESPONSE, trigger.encode(), orjson.dumps([c.model_dump(mode="json") for c in changes]))
        # 7.
        for key, last_event in states.changed.items():
            value = states.current[key].model_dump_json().encode()
            await out.send(*faust_compat.set_for_changelog(p.dedup_key_to_tickets, key, value),
                           partition=last_event.message.partition)
            cache[key] = (value, states.current[key])
        while len(cache) > PARSED_STATES:
            cache.pop(next(iter(cache)))
        # 8.
        await out.acknowledged()
        # 9.
        for event_id, why in self.refused:
            await p.store.record_result(event_id, why)
        # 10.
        _count(p, self.counts, self.latencies)


def _decide_tickets(p: Pipeline):
    cache: dict[str, tuple[bytes, KeyState]] = {}
    in_order = InOrder(p.app, p.metrics)

    async def decide_tickets(stream):
        """Per batch: each input decided against its key's state in order; then the batch's effects
        (BatchEffects.flush): one Redis round trip, one soc.tickets record per touched ticket, one table
        write per touched key, in that order: the table records what was done only after it was done."""
        for one in p.mirrors:  # never decide with half the silences or response levels
            await one.ready.wait()
        # Each partition in offset order: the first ticket of a key is the first reading's (on a replay too).
        async for events in faust_compat.finished_batches(stream, BATCH, BATCH_WITHIN_S, in_order):
            out = Outputs(p.app.producer)
            effects = BatchEffects(p, out, States(p.dedup_key_to_tickets, cache))
            around = ticketing.Around(p.books.silences.all(), p.books.response.by_key(), p.books.inhibitors.all())
            for event in events:
                message = event.message
                key = message.key.decode("utf-8", "replace") if message.key else ""
                try:
                    item = decode_input(message)
                    # Its offset tells a replay (inputs are admitted in offset order): handlers/ticketing.py.
                    position = ticketing.Position(message.partition, message.offset) if isinstance(item, Incident) else None
                    outcome = ticketing.step(p.config, effects.states.get(key), item, key, around, position)
                    # The store's due index needs each ticket's next escalation time: a date past what
                    # datetime holds (an extension to the year 9999 from an older API) fails here, as this
                    # input's fault, not later in the batch's write, which would stop the partition.
                    for ticket in outcome.tickets:
                        p.store.next_due(ticket)
                except Exception as exc:  # bad input or a handler bug: dead-lettered, the partition goes on
                    reason = "invalid" if isinstance(exc, ValueError) else "handler_error"
                    if reason == "handler_error":
                        log.exception("ticket step failed", extra={"topic": message.topic, "offset": message.offset})
                    await p.dead_letter(message.topic.removeprefix("soc."), message,
                                        Rejected(reason, f"{type(exc).__name__}: {str(exc)[:400]}"), out)
                    continue
                effects.take(key, item, outcome, event)
                if outcome.response:  # later inputs of this batch see the level it set
                    around = replace(around, response={**around.response, **outcome.response})
            await effects.flush(cache)

    return decide_tickets


def _log_refused(item, reason: str) -> None:
    if isinstance(item, TicketEvent):
        level = log.debug if item.actor == PIPELINE else log.info
        level("ticket command not applied",
              extra={"ticket_id": item.ticket_id, "action": item.action.value, "why": reason})


def _count(p: Pipeline, counts: list[ticketing.Count], received: list[datetime]) -> None:
    m = p.metrics
    for count in counts:
        if isinstance(count, ticketing.Opened):
            m.tickets_opened.labels(count.department, count.severity.value).inc()
        elif isinstance(count, ticketing.Merged):
            m.duplicates.labels(count.source).inc()
        elif isinstance(count, ticketing.Silenced):
            m.incidents_silenced.labels(count.source).inc()
        elif isinstance(count, ticketing.Escalated):
            m.escalations.labels(count.department, count.step.value).inc()
            if count.step is Escalation.escalated:
                m.sla_breaches.labels(count.department, count.stage).inc()
    now = p.clock()
    for received_at in received:
        m.latency.observe(max((now - received_at).total_seconds(), 0.0))
