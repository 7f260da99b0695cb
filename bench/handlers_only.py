"""The handlers alone, in one process with no Kafka or Redis: what the three agents do per event
(parse, triage, apply) with the same JSON round trips the topics force. The ceiling for one core
before any Faust, Kafka or Redis cost.

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
from handlers import dedup, lifecycle, performance
from handlers.base import Context
from handlers.intake import Rejected, to_incident
from handlers.triage import triage
from schemas.records import Incident, Ticket, TicketEvent
from schemas.raw import SiteRegistration
from streams import topics


def run(n: int) -> dict:
    workload = backlog(n, seed=7, scenario="rainstorm")
    config = _config()
    sites = {k.decode(): SiteRegistration.model_validate_json(v) for k, v in workload.sites}
    source_of = {t: s for s, t in topics.RAW_TOPICS.items()}
    dedup_table: dict[str, bytes] = {}
    ticket_table: dict[str, bytes] = {}
    parsed: dict[str, Ticket] = {}  # the worker's parsed-ticket cache, which hot tickets always hit
    writes = 0
    started = time.perf_counter()
    for topic, _, value in workload.events:
        now = datetime.now(timezone.utc)
        try:
            incident = to_incident(source_of[topic], value, Context(config, now, sites))
        except Rejected:
            continue
        if incident is None:
            continue
        incident = Incident.model_validate_json(incident.model_dump_json())  # soc.incidents
        known = dedup_table.get(incident.dedup_key)
        decision = triage(config, dedup.DedupEntry.model_validate_json(known) if known else None, incident, now)
        dedup_table[incident.dedup_key] = decision.entry.model_dump_json().encode()
        event = TicketEvent.model_validate_json(decision.event.model_dump_json())  # soc.ticket-events
        outcome = lifecycle.apply(config, parsed.get(event.ticket_id), event, now)
        if outcome.ticket is not None:
            ticket_table[event.ticket_id] = outcome.ticket.model_dump_json().encode()  # as the worker's _remember
            parsed[event.ticket_id] = outcome.ticket
            writes += 1
    elapsed = time.perf_counter() - started
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
