"""Benchmark harness: the pipeline against a raw aiokafka loop on the same broker and payloads.

    python -m bench [--phases baseline,pipeline,latency,scale,soak,hot_keys] [--events N] [--soak-seconds S] [--quick]

Every phase gets its own Tansu broker (memory storage), a fresh Redis key prefix and its own
SOC_APP_ID, so consumer groups, tables and keys never mix. Phases:

- baseline: a raw aiokafka consume -> orjson.loads -> produce loop, in its own process (so it gets
  a core like a worker does), over the same preloaded payloads as the pipeline phase; then the
  same work in a Faust agent over take_events batches with un-awaited sends and the worker's
  settings (faust_batch_echo, the throughput target's reference), in quixstreams if the `bench`
  extra is installed (quixstreams_echo, else a recorded skip), and in a per-event Faust agent with
  Faust's defaults and with the worker's settings (not in --quick).
- pipeline: one worker drains a preloaded backlog (the simulator's four-source mix) through
  parse -> classify -> dedup -> route -> ticket in Redis and on soc.tickets.
- latency: events produced at paced rates; produce -> ticket visible in Redis, p50/p95/p99; and
  the raw single hop (aiokafka produce -> aiokafka consume) at the same rates on its own broker.
- scale: the same backlog drained by N workers (default 2) on 8 partitions, against one worker.
- soak: one worker at a paced rate for S seconds; worker RSS after warm-up and at the end, while
  a clerk closes tickets through the HTTP API (accept, resolve, verify).

Every result has `targets`: a list of {"name", "measured", "goal", "met"} (bench/README.md, bench/goals.py).

How "done" and "when" are measured (what is reliable on Tansu):
- Start and end of a drain are the Redis stream IDs (server milliseconds) of the first and last
  entries on `<prefix>:board`: the worker XADDs there atomically with every ticket write.
- Completion is read from the workers' live /metrics: every raw event counted (soc_events_total
  == events sent) and every assigned partition read to its end (soc_consumer_lag, which the
  worker's watchdog refreshes every 5 s, all 0), with no soc_* counter moving for QUIET_S, longer
  than two refreshes. Faust's own sensors, which would say what is in flight, are off in the
  worker (they cost throughput, docs/performance.md). Committed consumer offsets are not used: Faust
  commits them on an interval, so they trail.
- Latency is per event: the harness keeps each event's produce time (time.time() at send) and
  its incident id (computed offline with handlers.intake.to_incident), reads the board stream as
  it grows (XREAD BLOCK) and matches each ticket write's newest incident id back to its event.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bench.options import add_arguments, options_from
from bench.phases.baseline import baseline_loop
from bench.phases.latency import hop_consume
from bench.report import report
from bench.run import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--hop-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hop-plan", help=argparse.SUPPRESS)
    parser.add_argument("--hop-fetch-wait-ms", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # The phases run these children as `python -m bench`, so each gets a process (and a core) of its own.
    if args.hop_child:
        print(json.dumps(asyncio.run(hop_consume(args.bootstrap, json.loads(args.hop_plan), args.hop_fetch_wait_ms))))
        return 0
    if args.baseline_child:
        print(json.dumps(asyncio.run(baseline_loop(args.bootstrap, args.events))))
        return 0
    return report(run(options_from(args)))


if __name__ == "__main__":
    sys.exit(main())
