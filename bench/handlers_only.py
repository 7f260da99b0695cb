"""The handlers alone, in one process with no Kafka or Redis: what the two hops do per event (parse;
the ticket step) with the same JSON round trips the topics and the table force, batched as the
worker batches. The ceiling for one core before any Faust, Kafka or Redis cost.

    python -m bench.handlers_only [--events 20000] [--seed 7] [--scenario rainstorm] [--profile out.prof]
"""
from __future__ import annotations

import argparse
import cProfile
import sys
import time
import tracemalloc
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import orjson

from bench.workload import backlog, district_config
from handlers import performance, ticketing
from handlers import silences as silence_rules
from handlers.base import Context
from handlers.intake import Rejected, to_incident
from schemas.config import Config
from schemas.correlation import Sighting
from schemas.records import Incident, KeyState, Ticket, TicketEvent
from schemas.raw import SiteRegistration
from schemas.response import ResponseChange
from schemas.silences import Inhibitor, Matcher, Silence
from streams import topics

BATCH = 2000  # as the worker's agents take them (streams/topology/pipeline.py)


def silences_in_force(now: datetime) -> tuple[Silence, ...]:
    """What a duty officer keeps on in a storm: a pump station under maintenance (suppress) and the
    blue traffic readings of one community quietened."""
    def silence(sid: str, mode: str, *matchers: tuple[str, str]) -> Silence:
        return Silence(silence_id=sid, matchers=[Matcher(name=n, value=v) for n, v in matchers], mode=mode,
                       starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=1), comment="bench",
                       created_by="duty", created_at=now - timedelta(days=1))
    return (silence("bench-pump", "suppress", ("source", "flood"), ("community", "haibin")),
            silence("bench-blue", "quiet", ("source", "traffic"), ("severity", "blue")))


class TicketStep:
    """The ticket step as the worker runs it over batches, with its context: every input with its
    offset on soc.incidents, the silences, the response levels the inputs themselves publish, the
    inhibitors their tickets raise, and the sightings and relate commands fed back on soc.ticket-events."""

    def __init__(self, config: Config, now: datetime):
        self.config = config
        self.table: dict[str, bytes] = {}
        self.ticket_table: dict[str, bytes] = {}
        self.writes = 0
        self.offset = 0
        self.silences = silences_in_force(now)
        self.response: dict[str, list[ResponseChange]] = {}
        self.inhibitors: dict[str, Inhibitor] = {}
        self.events: list[tuple[str, bytes]] = []  # soc.ticket-events, read with the next batch

    def batch(self, incidents: list[bytes]) -> None:
        """One batch of soc.incidents records (JSON) and what the last batch sent to soc.ticket-events."""
        inputs: list[tuple[bytes, ticketing.Position | None]] = []
        for raw in incidents:
            inputs.append((raw, ticketing.Position(0, self.offset)))
            self.offset += 1
        events, self.events = self.events, []
        # Each key parsed and written once per batch, each touched ticket serialized once.
        states: dict[str, KeyState | None] = {}
        touched: dict[str, Ticket] = {}
        evicted: set[str] = set()
        around = ticketing.Around(self.silences, dict(self.response), tuple(self.inhibitors.values()))
        decoded = [(Incident.model_validate_json(raw), position) for raw, position in inputs]
        decoded += [(Sighting.model_validate_json(raw) if b'"kind":"sighting"' in raw
                     else TicketEvent.model_validate_json(raw), None) for _, raw in events]
        keys = [item.dedup_key if isinstance(item, Incident) else key
                for (item, _), key in zip(decoded, [None] * len(inputs) + [k for k, _ in events])]
        for (item, position), key in zip(decoded, keys):
            if key not in states:
                states[key] = KeyState.model_validate_json(self.table[key]) if key in self.table else None
            outcome = ticketing.step(self.config, states[key], item, key, around, position)
            if outcome.state is not None:
                states[key] = outcome.state
            touched.update((t.ticket_id, t) for t in outcome.tickets)
            evicted.update(outcome.evicted)
            if outcome.response:
                self.response.update(outcome.response)
                around = replace(around, response={**around.response, **outcome.response})
            self.events += [(s.cell, s.model_dump_json().encode()) for s in outcome.sightings]
            self.events += [(k, c.model_dump_json().encode()) for k, c in outcome.commands]
        for ticket in touched.values():
            self.ticket_table[ticket.ticket_id] = ticket.model_dump_json().encode()
            self.writes += 1
            if ticket.inhibits:
                self.inhibitors[ticket.ticket_id] = silence_rules.inhibitor_record(ticket)
        for ticket_id in evicted - set(touched):
            self.inhibitors.pop(ticket_id, None)
        for key, state in states.items():
            if state is not None:
                self.table[key] = state.model_dump_json().encode()


def parsed_incidents(config: Config, events, sites, now: datetime) -> list[bytes]:
    source_of = {t: s for s, t in topics.RAW_TOPICS.items()}
    incidents = []
    for topic, _, value in events:
        try:
            incident = to_incident(source_of[topic], value, Context(config, now, sites))
        except Rejected:
            continue
        if incident is not None:
            incidents.append(incident.model_dump_json().encode())  # soc.incidents
    return incidents


def run(n: int, seed: int = 7, scenario: str = "rainstorm") -> dict:
    workload = backlog(n, seed=seed, scenario=scenario)
    config = district_config()
    sites = {k.decode(): SiteRegistration.model_validate_json(v) for k, v in workload.sites}
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    step = TicketStep(config, now)
    in_step = in_step_cpu = 0.0
    for start in range(0, len(workload.events), BATCH):
        incidents = parsed_incidents(config, workload.events[start:start + BATCH], sites, now)
        batch_started, batch_cpu = time.perf_counter(), time.process_time()
        step.batch(incidents)
        in_step += time.perf_counter() - batch_started
        in_step_cpu += time.process_time() - batch_cpu
    elapsed = time.perf_counter() - started
    n = len(workload.events)
    sizes = sorted(len(v) for v in step.ticket_table.values())
    states = sorted(len(v) for v in step.table.values())
    return {"events": n, "seconds": round(elapsed, 2), "events_per_s": round(n / elapsed),
            "ticket_step_seconds": round(in_step, 2), "ticket_step_events_per_s": round(n / in_step),
            # CPU time: on a machine shared with other work, the figure to compare between runs.
            "ticket_step_cpu_seconds": round(in_step_cpu, 2), "ticket_step_events_per_cpu_s": round(n / in_step_cpu),
            "ticket_writes": step.writes, "tickets": len(step.ticket_table),
            "ticket_bytes_p50": sizes[len(sizes) // 2], "ticket_bytes_max": sizes[-1],
            "key_state_bytes_max": states[-1], **state_costs(step.ticket_table, now)}


def state_costs(ticket_table: dict[str, bytes], now: datetime) -> dict:
    """What holding the tickets costs: heap as parsed dicts (the tables' values before) against
    JSON bytes (now), and one timer pass parsing every ticket (the escalation and gauge timers
    before) against one gauge pass over the stored facts (now)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    as_dicts = [orjson.loads(v) for v in ticket_table.values()]
    dict_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    json_bytes = sum(sys.getsizeof(v) for v in ticket_table.values())
    started = time.perf_counter()
    tickets = [Ticket.model_validate_json(v) for v in ticket_table.values()]
    full_scan_s = time.perf_counter() - started
    facts = [performance.gauge_facts(t) for t in tickets]
    started = time.perf_counter()
    performance.gauges(facts, now - timedelta(days=30), now, now)
    facts_scan_s = time.perf_counter() - started
    del as_dicts
    return {"tables_mib_as_dicts": round(dict_bytes / 2**20, 1), "tables_mib_as_json": round(json_bytes / 2**20, 1),
            "timer_pass_ms_parsing_every_ticket": round(full_scan_s * 1000), "timer_pass_ms_from_facts": round(facts_scan_s * 1000)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scenario", default="rainstorm")
    parser.add_argument("--profile")
    args = parser.parse_args()
    if args.profile:
        with cProfile.Profile() as profile:
            result = run(args.events, args.seed, args.scenario)
        profile.dump_stats(args.profile)
    else:
        result = run(args.events, args.seed, args.scenario)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
