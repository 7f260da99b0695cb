"""The latency phase: produce -> ticket visible in Redis at each offered load, one worker, one run
after another; and first, on a broker of its own, the raw single hop at the same loads (aiokafka
produce -> aiokafka consume in a child process, `python -m bench --hop-child`), the floor the
pipeline's latency is compared with."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.board import BoardReader, percentiles
from bench.machine import proc_cpu_seconds
from bench.options import REPO, Options
from bench.phases.common import guarded, warmup, worker_fetch_wait_ms
from bench.stack import BenchStack, Worker, start_profilers, stop_profilers, wait_drained
from bench.workload import STORM_CYCLE, Generator, paced, produce
from streams import topics


def phase_latency(opts: Options) -> dict:
    """Produce -> ticket visible in Redis at each offered load, one worker, one run after another;
    and first, on a broker of its own, the raw single hop at the same loads (aiokafka produce ->
    aiokafka consume), the floor the pipeline's latency is compared with."""
    raw = guarded(lambda: raw_single_hop(opts))
    try:
        result = pipeline_latency(opts)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:3000], "runs": {}}
    result["raw_single_hop"] = raw
    return result


HOP_TOPIC = "bench.hop"
HOP_PAD = 160  # a hop event is about 210 bytes, the workload's average


def raw_single_hop(opts: Options) -> dict:
    """aiokafka producer (the latency phase's: acks=all, linger 0) at each offered rate -> an
    aiokafka consumer in its own process (fetch wait as the worker's); latency = consume time minus
    the send time carried in the value, per event."""
    warm_rate, warm_s = warmup(opts)
    plan = [("warmup", warm_rate, int(warm_rate * warm_s))] + [(str(r), r, int(r * opts.latency_seconds))
                                                             for r in opts.rates]
    fetch_wait = worker_fetch_wait_ms()
    with BenchStack("latency-hop", opts) as bs:
        admin = KafkaAdminClient(bootstrap_servers=bs.stack.bootstrap, client_id="soc-bench")
        admin.create_topics([NewTopic(HOP_TOPIC, opts.partitions, 1)])
        admin.close()
        argv = [sys.executable, "-m", "bench", "--hop-child", "--bootstrap", bs.stack.bootstrap,
                "--hop-plan", json.dumps({label: n for label, _, n in plan}), "--hop-fetch-wait-ms", str(fetch_wait)]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                 env=bs.env())
        try:
            line = child.stdout.readline()  # "ready": assigned every partition, positioned at the end
            if line.strip() != "ready":
                raise RuntimeError(f"hop consumer did not start: {line!r} {child.stderr.read()[-2000:]}")
            sent = asyncio.run(_hop_produce(bs.stack.bootstrap, plan))
            out, err = child.communicate(timeout=opts.drain_timeout)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
        if child.returncode != 0:
            raise RuntimeError(f"hop consumer failed ({child.returncode}): {err[-2000:]}")
        received = json.loads(out.strip().splitlines()[-1])
    runs = {}
    for label, rate, n in plan:
        runs[label] = {"offered_per_s": rate, "achieved_per_s": sent[label], "events": n,
                       **received["runs"].get(label, {})}
    runs.pop("warmup", None)
    return {"runs": runs, "consumer_cpu_share": received.get("cpu_share"), "fetch_max_wait_ms": fetch_wait,
            "partitions": opts.partitions, "producer": {"acks": "all", "linger_ms": 0},
            "seconds_per_rate": opts.latency_seconds, "warmup": f"{warm_rate}/s for {warm_s:g} s"}


async def _hop_produce(bootstrap: str, plan: list[tuple[str, int, int]]) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    pad = "x" * HOP_PAD
    achieved = {}
    try:
        for label, rate, n in plan:
            t0 = time.perf_counter()
            i = 0
            while i < n:
                due = min(n, int((time.perf_counter() - t0) * rate) + 1)
                while i < due:
                    value = orjson.dumps({"l": label, "i": i, "t": time.time(), "pad": pad})
                    await producer.send(HOP_TOPIC, value=value)
                    i += 1
                await asyncio.sleep(0.002)
            achieved[label] = round(n / max(time.perf_counter() - t0, 1e-6), 1)
            await producer.flush()
            await asyncio.sleep(1.0)  # the consumer finishes this rate before the next starts
    finally:
        await producer.stop()
    return achieved


async def hop_consume(bootstrap: str, plan: dict[str, int], fetch_wait_ms: int, idle_s: float = 60.0) -> dict:
    consumer = AIOKafkaConsumer(HOP_TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms)
    await consumer.start()
    latencies: dict[str, list[float]] = {label: [] for label in plan}
    expect = sum(plan.values())
    seen = 0
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        print("ready", flush=True)
        cpu0, last = time.process_time(), time.monotonic()
        t0 = None
        while seen < expect and time.monotonic() - last < idle_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    data = orjson.loads(record.value)
                    latencies[data["l"]].append((now - data["t"]) * 1000)
                    seen += 1
                    last = time.monotonic()
                    t0 = t0 or last
        wall = max(time.monotonic() - (t0 or time.monotonic()), 1e-3)
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
    return {"runs": {label: percentiles(values) for label, values in latencies.items()}, "received": seen,
            "expected": expect, "cpu_share": round(cpu / wall, 2)}


def pipeline_latency(opts: Options) -> dict:
    with BenchStack("latency", opts) as bs:
        start = datetime.now(timezone.utc) - STORM_CYCLE * 0.3
        gen = Generator(opts.seed + 1, opts.scenario, start)
        asyncio.run(produce(bs.stack.bootstrap, [(topics.SITES, k, v) for k, v in gen.site_messages]))
        workers = bs.start_workers(1)
        # Generate every run's events (and their incident ids) while the consumer group forms.
        now = datetime.now(timezone.utc)
        warm_rate, warm_s = warmup(opts)
        plan = [("warmup", warm_rate, gen.batch(now, int(warm_rate * warm_s)))]
        for rate in opts.rates:
            plan.append((str(rate), rate, gen.batch(now, int(rate * opts.latency_seconds))))
        ids = [gen.incident_ids(msgs, now) for _, _, msgs in plan]
        ready_s = bs.wait_ready(workers)
        worker = workers[0]
        profilers = start_profilers(bs, workers) if opts.profile else []
        try:
            result = asyncio.run(_latency_runs(bs, worker, plan, ids, opts))
        finally:
            profiles = stop_profilers(profilers)
        if profiles:
            result["profiles"] = profiles
        result["ready_s"] = round(ready_s, 1)
        result["settings"] = {"seconds_per_rate": opts.latency_seconds, "warmup": f"{warm_rate}/s for {warm_s:g} s"}
        return result


async def _latency_runs(bs: BenchStack, worker: Worker, plan, ids, opts: Options) -> dict:
    reader = BoardReader(bs.stack.redis_url, bs.board_key)
    reader.start()
    producer = AIOKafkaProducer(bootstrap_servers=bs.stack.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    runs: dict = {}
    sent_total = 0
    index: dict[str, tuple[str, int]] = {}
    sent_at: dict[str, list[float]] = {}
    try:
        broker_pid = bs.stack.processes[0].popen.pid
        for (label, rate, messages), incident_ids in zip(plan, ids):
            times = [0.0] * len(messages)
            cpu0 = proc_cpu_seconds(worker.pid)
            broker_cpu0 = proc_cpu_seconds(broker_pid)
            own_cpu0 = time.process_time()
            t0 = time.monotonic()
            achieved = await paced(producer, messages, rate, times, 0)
            await producer.flush()
            sent_total += len(messages)
            ok, _ = await asyncio.to_thread(wait_drained, [worker.port], sent_total, opts.drain_timeout, [worker])
            wall = time.monotonic() - t0
            sent_at[label] = times
            expected = 0
            for i, incident_id in enumerate(incident_ids):
                if incident_id and incident_id not in index:
                    index[incident_id] = (label, i)
                    expected += 1
            runs[label] = {"offered_per_s": rate, "achieved_per_s": round(achieved, 1), "events": len(messages),
                           "expected_ticket_writes": expected, "drained": ok,
                           "drain_after_s": round(wall - len(messages) / rate, 1),
                           "worker_cpu_share": round((proc_cpu_seconds(worker.pid) - cpu0) / wall, 2),
                           "broker_cpu_share": round((proc_cpu_seconds(broker_pid) - broker_cpu0) / wall, 2),
                           "harness_cpu_share": round((time.process_time() - own_cpu0) / wall, 2)}
        await asyncio.sleep(0.3)
    finally:
        await producer.stop()
        await reader.stop()
    latencies: dict[str, list[float]] = {label: [] for label in runs}
    for ms, incident_id in reader.writes:
        where = index.pop(incident_id, None)
        if where is not None:
            label, i = where
            latencies[label].append(ms - sent_at[label][i] * 1000)
    for label, values in latencies.items():
        runs[label].update(percentiles(values))
    runs.pop("warmup", None)
    return {"runs": runs, "board_entries": reader.entries}
