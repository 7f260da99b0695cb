"""The handlers alone, in one process with no Kafka or Redis: what the two hops do per event (parse;
the ticket step) with the same JSON round trips the topics and the table force, batched as the
worker batches. The ceiling for one core before any Faust, Kafka or Redis cost.

    python -m bench.handlers_only [--events 20000] [--profile out.prof]
"""
from __future__ import annotations

import argparse
import cProfile
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone

import orjson

from bench.harness import _config, backlog
from handlers import performance, ticketing
from handlers.base import Context
from handlers.intake import Rejected, to_incident
from schemas.records import Incident, KeyState, Ticket
from schemas.raw import SiteRegistration
from streams import topics

BATCH = 2000  # as the worker's agents take them (streams/topology/app.py)


def run(n: int) -> dict:
    workload = backlog(n, seed=7, scenario="rainstorm")
    config = _config()
    sites = {k.decode(): SiteRegistration.model_validate_json(v) for k, v in workload.sites}
    source_of = {t: s for s, t in topics.RAW_TOPICS.items()}
    table: dict[str, bytes] = {}
    ticket_table: dict[str, bytes] = {}
    writes = 0
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    for start in range(0, len(workload.events), BATCH):
        incidents = []
        for topic, _, value in workload.events[start:start + BATCH]:
            try:
                incident = to_incident(source_of[topic], value, Context(config, now, sites))
            except Rejected:
                continue
            if incident is not None:
                incidents.append(incident.model_dump_json().encode())  # soc.incidents
        # The ticket step: each key parsed and written once per batch, each touched ticket serialized once.
        states: dict[str, KeyState | None] = {}
        touched: dict[str, Ticket] = {}
        for raw in incidents:
            incident = Incident.model_validate_json(raw)
            key = incident.dedup_key
            if key not in states:
                states[key] = KeyState.model_validate_json(table[key]) if key in table else None
            outcome = ticketing.step(config, states[key], incident, key)
            states[key] = outcome.state
            touched.update((t.ticket_id, t) for t in outcome.tickets)
        for ticket in touched.values():
            ticket_table[ticket.ticket_id] = ticket.model_dump_json().encode()
            writes += 1
        for key, state in states.items():
            table[key] = state.model_dump_json().encode()
    elapsed = time.perf_counter() - started
    n = len(workload.events)
    sizes = sorted(len(v) for v in ticket_table.values())
    return {"events": n, "seconds": round(elapsed, 2), "events_per_s": round(n / elapsed),
            "ticket_writes": writes, "tickets": len(ticket_table),
            "ticket_bytes_p50": sizes[len(sizes) // 2], "ticket_bytes_max": sizes[-1],
            **state_costs(ticket_table, now)}


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
    parser.add_argument("--profile")
    args = parser.parse_args()
    if args.profile:
        with cProfile.Profile() as profile:
            result = run(args.events)
        profile.dump_stats(args.profile)
    else:
        result = run(args.events)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
