"""The baseline's work done by a Faust agent: consume -> orjson.loads -> produce one small JSON.

Run by the harness as `python -m bench.faust_echo worker -l warn` with:
  BENCH_BROKER       host:port
  BENCH_APP_ID       consumer group / app id
  BENCH_EXPECT       events to process before reporting
  BENCH_RESULT       where to write the result JSON
  BENCH_SETTINGS     JSON of Faust settings (the worker's, as build_app configures them), or {}
                     for Faust's defaults ("untuned")
  BENCH_MODE         "event" (default): `stream.events()`, one awaited `topic.send()` per event;
                     "batch": `stream.take_events(2000, within=0.05)` and un-awaited `topic.send_soon()`
                     for each event of the batch (Faust's cheapest path: one task wake-up per batch)
  BENCH_FETCH_MAX_WAIT_MS  if set, the consumer's fetch_max_wait_ms (Faust hard-codes 1500 ms; the
                     worker caps it the same way, streams/topology/faust_compat/)
It isolates what Faust itself costs per event, apart from the pipeline's own work.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import faust
import orjson

from streams import topics

try:
    from streams.logs import logging_config
except ImportError:  # streams/ is being rewritten: the echo needs only quiet loggers
    def logging_config(level: str) -> dict:
        return {"version": 1, "disable_existing_loggers": False, "root": {"level": level.upper()}}

MODE = os.environ.get("BENCH_MODE", "event")
BATCH, WITHIN_S = 2000, 0.05
FETCH_MAX_WAIT_MS = os.environ.get("BENCH_FETCH_MAX_WAIT_MS")
SETTINGS = json.loads(os.environ.get("BENCH_SETTINGS") or "{}")
EXPECT = int(os.environ["BENCH_EXPECT"])
RESULT = Path(os.environ["BENCH_RESULT"])
OUT_TOPIC = "bench.faust.out"
# Names as Faust's App() takes them; producer_linger is reported in seconds, taken in ms.
PASSED = ("stream_buffer_maxsize", "broker_max_poll_records", "broker_commit_every", "broker_commit_interval",
          "producer_max_batch_size", "producer_acks", "consumer_max_fetch_size", "stream_wait_empty")

kwargs = {k: SETTINGS[k] for k in PASSED if SETTINGS.get(k) is not None}
if SETTINGS.get("producer_linger") is not None:
    kwargs["producer_linger_ms"] = int(round(float(SETTINGS["producer_linger"]) * 1000))

app = faust.App(os.environ["BENCH_APP_ID"], broker=f"kafka://{os.environ['BENCH_BROKER']}", store="memory://",
                web_enabled=False, topic_allow_declare=True, datadir=str(RESULT.parent / "faust-echo-data"),
                logging_config=logging_config("warning"), **kwargs)
source = app.topic(*topics.RAW_TOPICS.values(), key_serializer="raw", value_serializer="raw")
out = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw", partitions=8)
state = {"n": 0, "bad": 0, "t0": 0.0, "cpu0": 0.0}

if FETCH_MAX_WAIT_MS:
    from streams.topology.faust_compat import cap_fetch_wait

    cap_fetch_wait(app, int(FETCH_MAX_WAIT_MS))  # as the worker does


def _echo_value(message) -> bytes:
    try:
        data = orjson.loads(message.value)
        ref = (data.get("event_id") or data.get("case_no") or data.get("station_id")) \
            if isinstance(data, dict) else None
    except orjson.JSONDecodeError:
        state["bad"] += 1
        ref = None
    return orjson.dumps({"topic": message.topic, "offset": message.offset, "ref": ref})


async def _finish() -> None:
    await app.producer.flush()
    seconds = time.perf_counter() - state["t0"]
    cpu = time.process_time() - state["cpu0"]
    tmp = RESULT.with_suffix(".tmp")
    tmp.write_text(json.dumps({"events": state["n"], "unparseable": state["bad"], "mode": MODE,
                               **({"batch": BATCH, "within_s": WITHIN_S} if MODE == "batch" else {}),
                               "fetch_max_wait_ms": int(FETCH_MAX_WAIT_MS) if FETCH_MAX_WAIT_MS else "faust's 1500",
                               "seconds": round(seconds, 3), "events_per_s": round(state["n"] / seconds, 1),
                               "cpu_s": round(cpu, 2), "cpu_share": round(cpu / seconds, 2),
                               "settings": kwargs or "faust defaults"}))
    tmp.replace(RESULT)


def _start_clock() -> None:
    if not state["n"]:
        state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()


async def echo(stream):
    """One event at a time, each send awaited (it returns once the record is in the producer's batch)."""
    async for event in stream.events():
        message = event.message
        _start_clock()
        await out.send(key=message.key, value=_echo_value(message))
        state["n"] += 1
        if state["n"] == EXPECT:
            await _finish()


async def echo_batch(stream):
    """Batches of up to 2,000 events (or what arrived within 50 ms); sends are buffered, not awaited:
    Faust's producer buffer hands them to aiokafka in the background."""
    async for events in stream.take_events(BATCH, within=WITHIN_S):
        _start_clock()
        for event in events:
            message = event.message
            out.send_soon(key=message.key, value=_echo_value(message))
        before = state["n"]
        state["n"] += len(events)
        if before < EXPECT <= state["n"]:
            await _finish()


app.agent(source, name="bench-echo")(echo_batch if MODE == "batch" else echo)


if __name__ == "__main__":
    app.main()
