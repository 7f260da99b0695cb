"""The baseline's work done by a Faust agent: consume -> orjson.loads -> produce one small JSON.

Run by the harness as `python -m bench.faust_echo worker -l warn` with:
  BENCH_BROKER       host:port
  BENCH_APP_ID       consumer group / app id
  BENCH_EXPECT       events to process before reporting
  BENCH_RESULT       where to write the result JSON
  BENCH_SETTINGS     JSON of Faust settings (the worker's, as streams.app configures them), or {}
                     for Faust's defaults ("untuned")
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
from streams.logs import logging_config

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


@app.agent(source)
async def echo(stream):
    async for event in stream.events():
        message = event.message
        if not state["n"]:
            state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
        try:
            data = orjson.loads(message.value)
            ref = (data.get("event_id") or data.get("case_no") or data.get("station_id")) \
                if isinstance(data, dict) else None
        except orjson.JSONDecodeError:
            state["bad"] += 1
            ref = None
        await out.send(key=message.key, value=orjson.dumps({"topic": message.topic, "offset": message.offset,
                                                            "ref": ref}))
        state["n"] += 1
        if state["n"] == EXPECT:
            await app.producer.flush()
            seconds = time.perf_counter() - state["t0"]
            cpu = time.process_time() - state["cpu0"]
            tmp = RESULT.with_suffix(".tmp")
            tmp.write_text(json.dumps({"events": state["n"], "unparseable": state["bad"],
                                       "seconds": round(seconds, 3), "events_per_s": round(state["n"] / seconds, 1),
                                       "cpu_s": round(cpu, 2), "cpu_share": round(cpu / seconds, 2),
                                       "settings": kwargs or "faust defaults"}))
            tmp.replace(RESULT)


if __name__ == "__main__":
    app.main()
