"""The baseline's work done by quixstreams (librdkafka): consume -> orjson.loads -> produce one small JSON.

    python -m bench.quix_echo --bootstrap HOST:PORT --events N --group GROUP --result PATH

A StreamingDataFrame for each of the four raw topics, an `apply` that parses the value and
builds the same output as the raw loop and the Faust echo, and `to_topic` onto bench.quix.out.
quixstreams is the optional `bench` extra (`pip install -e '.[bench]'`); without it this exits
with code 3 and a one-line JSON reason, which the harness records as a skip.

At-least-once (Tansu has no transactions, so exactly-once cannot run here: docs/architecture.md). The clock
starts at the first record processed and stops when the application has stopped after the N-th
(its producer flushed and offsets committed), as the Faust echo stops after its producer's flush.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import orjson

OUT_TOPIC = "bench.quix.out"
NOT_INSTALLED = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=50,
                        help="librdkafka fetch.wait.max.ms (default 500; Tansu holds a multi-partition fetch "
                             "for the whole wait): the worker's consumer setting")
    args = parser.parse_args(argv)
    try:
        import quixstreams
        from quixstreams import Application, message_context
    except ImportError as exc:
        print(json.dumps({"skipped": f"quixstreams not installed ({exc}); pip install -e '.[bench]'"}))
        return NOT_INSTALLED

    state = {"n": 0, "bad": 0, "t0": 0.0, "cpu0": 0.0}
    app = Application(broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
                      processing_guarantee="at-least-once", loglevel="WARNING", use_changelog_topics=False,
                      # The worker's producer settings where librdkafka has them (acks=all, linger 1 ms).
                      producer_extra_config={"acks": "all", "linger.ms": 1},
                      consumer_extra_config={"fetch.wait.max.ms": args.fetch_max_wait_ms})
    sources = [app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
               for name in args.topics.split(",")]
    out = app.topic(OUT_TOPIC, key_serializer="bytes", value_serializer="bytes")

    def echo(value: bytes) -> bytes:
        if not state["n"]:
            state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
        try:
            data = orjson.loads(value)
            ref = (data.get("event_id") or data.get("case_no") or data.get("station_id")) \
                if isinstance(data, dict) else None
        except orjson.JSONDecodeError:
            state["bad"] += 1
            ref = None
        state["n"] += 1
        if state["n"] == args.events:
            state["t_last"] = time.perf_counter()
            app.stop()
        context = message_context()
        return orjson.dumps({"topic": context.topic, "offset": context.offset, "ref": ref})

    # One StreamingDataFrame per topic, not one concat(): a concat reads the topics timestamp-aligned
    # (buffering and pausing partitions), which ran at a third of this speed on the bench's backlog.
    for topic in sources:
        app.dataframe(topic).apply(echo).to_topic(out)
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    app.run(timeout=args.timeout)
    seconds = time.perf_counter() - state["t0"] if state["n"] else 0.0
    cpu = time.process_time() - state["cpu0"] if state["n"] else 0.0
    result = {"events": state["n"], "unparseable": state["bad"], "seconds": round(seconds, 3),
              "seconds_to_last_record": round(state.get("t_last", 0) - state["t0"], 3) if state["n"] else None,
              "events_per_s": round(state["n"] / seconds, 1) if seconds else None,
              "cpu_s": round(cpu, 2), "cpu_share": round(cpu / seconds, 2) if seconds else None,
              "quixstreams": quixstreams.__version__, "processing_guarantee": "at-least-once",
              "producer": {"acks": "all", "linger.ms": 1}, "fetch_max_wait_ms": args.fetch_max_wait_ms}
    if state["n"] < args.events:
        result["error"] = f"stopped after {state['n']} of {args.events} events (no record for {args.timeout:g} s)"
    args.result.write_text(json.dumps(result))
    print(json.dumps(result))
    return 0 if state["n"] >= args.events else 1


if __name__ == "__main__":
    sys.exit(main())
