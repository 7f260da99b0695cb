"""The ticket step's table over a long simulated storm, without the broker: the simulator's rainstorm at
`--rate` events per simulated second, parsed and decided as bench/handlers_only.py decides them (the
worker's context, every incident with its offset), each input received at its simulated time. Reports
the largest key state after `--early` minutes and at the end, and their ratio: `hot_key_growth` (and
`dedup_key_growth`, the same of the dedup keys alone, without the correlation cells).

    python -m bench.hot_keys [--minutes 120] [--early 10] [--rate 5] [--seed 7]
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone

import orjson

from bench.handlers_only import TicketStep, parsed_incidents
from bench.workload import Generator

STEP = timedelta(seconds=10)  # one batch per ten simulated seconds


def largest(table: dict[str, bytes]) -> dict:
    """The largest state of all, and of the dedup keys alone (a correlation cell's key starts corr:)."""
    key = max(table, key=lambda k: len(table[k]))
    dedup = max((k for k in table if not k.startswith("corr:")), key=lambda k: len(table[k]))
    return {"key": key, "bytes": len(table[key]), "dedup_key": dedup, "dedup_key_bytes": len(table[dedup])}


def run(minutes: int, early: int, rate: float, seed: int) -> dict:
    start = datetime(2026, 7, 1, 0, 0, tzinfo=timezone.utc)
    gen = Generator(seed, "rainstorm", start)
    step = TicketStep(gen.config, start)
    per_batch = rate * STEP.total_seconds()
    owed, events, at_early = 0.0, 0, None
    started = time.perf_counter()
    now = start
    while now < start + timedelta(minutes=minutes):
        now += STEP
        owed += per_batch
        n, owed = int(owed), owed - int(owed)
        events += n
        step.batch(parsed_incidents(gen.config, gen.batch(now, n), gen.sites, now))
        if at_early is None and now >= start + timedelta(minutes=early):
            at_early = largest(step.table)
    at_end = largest(step.table)
    return {"minutes": minutes, "early_minutes": early, "rate": rate, "events": events, "keys": len(step.table),
            "largest_early": at_early, "largest_end": at_end,
            "hot_key_growth": round(at_end["bytes"] / at_early["bytes"], 2),
            "dedup_key_growth": round(at_end["dedup_key_bytes"] / at_early["dedup_key_bytes"], 2),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--early", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(orjson.dumps(run(args.minutes, args.early, args.rate, args.seed)).decode())


if __name__ == "__main__":
    main()
