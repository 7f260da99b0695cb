"""The baseline phase: the pipeline's work without the pipeline, on the same preloaded payloads. A raw
aiokafka consume -> orjson.loads -> produce loop in a child process (`python -m bench --baseline-child`),
then the same work in a Faust agent (batched, the throughput target's reference), in quixstreams if the
`bench` extra is installed, and in per-event Faust agents (not in --quick)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from bench.machine import worker_settings
from bench.options import REPO, Options
from bench.phases.common import guarded, worker_fetch_wait_ms
from bench.stack import BenchStack
from bench.workload import Workload, preload
from streams import topics
from streams.ops.devstack import spawn

BASELINE_OUT = "bench.baseline.out"
FAUST_OUT = "bench.faust.out"       # bench/faust_echo.py
QUIX_OUT = "bench.quix.out"         # bench/quix_echo.py


def phase_baseline(opts: Options, workload: Workload) -> dict:
    """Raw aiokafka consume -> orjson.loads -> produce, in a child process, on the same payloads."""
    with BenchStack("baseline", opts) as bs:
        admin = KafkaAdminClient(bootstrap_servers=bs.stack.bootstrap, client_id="soc-bench")
        admin.create_topics([NewTopic(name, opts.partitions, 1) for name in (BASELINE_OUT, FAUST_OUT, QUIX_OUT)])
        admin.close()
        preload_s = preload(bs.stack.bootstrap, workload)
        argv = [sys.executable, "-m", "bench", "--baseline-child", "--bootstrap", bs.stack.bootstrap,
                "--events", str(len(workload.events))]
        child = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), env=bs.env(),
                               timeout=opts.drain_timeout)
        if child.returncode != 0:
            raise RuntimeError(f"baseline child failed ({child.returncode}):\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result["preload_s"] = round(preload_s, 3)
        result["preload_events_per_s"] = round(len(workload.events) / preload_s, 1)
        n = len(workload.events)
        # The same work in a Faust agent over take_events batches with un-awaited sends, with the
        # worker's settings: the ceiling for anything built on Faust streams, and the target's
        # reference. Then quixstreams (librdkafka), if the `bench` extra is installed.
        tuned = worker_settings(bs.env())

        def worker_faust_settings() -> dict:
            if "error" in tuned:  # an echo without the worker's settings would measure something else
                raise RuntimeError(tuned["error"])
            return tuned

        result["faust_batch_echo"] = guarded(lambda: faust_echo(bs, n, worker_faust_settings(), "batch", opts,
                                                                 mode="batch", fetch_max_wait_ms=worker_fetch_wait_ms()))
        result["quixstreams_echo"] = guarded(lambda: quix_echo(bs, n, opts))
        # The handlers alone on the same backlog, in a process of their own as the raw loop is: what the
        # two hops' own work costs against what the transport costs (the handlers_vs_raw target).
        result["handlers_only"] = guarded(lambda: handlers_only(n, opts))
        # The per-event agent, with Faust's defaults and with the worker's settings (not in --quick:
        # two more consumer groups to form would double the smoke test's time).
        if not opts.quick:
            result["faust_default"] = guarded(lambda: faust_echo(bs, n, {}, "default", opts))
            result["faust_worker_settings"] = guarded(lambda: faust_echo(bs, n, worker_faust_settings(), "tuned", opts))
        return result


def handlers_only(n: int, opts: Options) -> dict:
    """bench.handlers_only in a child process, on the run's backlog (its scenario and seed)."""
    argv = [sys.executable, "-m", "bench.handlers_only", "--events", str(n), "--seed", str(opts.seed),
            "--scenario", opts.scenario]
    child = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), timeout=opts.drain_timeout)
    if child.returncode != 0:
        raise RuntimeError(f"handlers only exited with {child.returncode}:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def quix_echo(bs: BenchStack, n: int, opts: Options) -> dict:
    """bench.quix_echo in its own process on the preloaded topics; a recorded skip without quixstreams."""
    path = bs.stack.log_dir / "echo-quix.json"
    argv = [sys.executable, "-m", "bench.quix_echo", "--bootstrap", bs.stack.bootstrap, "--events", str(n),
            "--group", f"bench-quix-{uuid.uuid4().hex[:6]}", "--result", str(path),
            "--topics", ",".join(topics.RAW_TOPICS.values()), "--timeout", str(min(opts.drain_timeout, 120.0)),
            "--fetch-max-wait-ms", str(worker_fetch_wait_ms())]
    log = bs.stack.log_dir / "echo-quix.log"
    with open(log, "w") as sink:
        child = subprocess.run(argv, stdout=subprocess.PIPE, stderr=sink, text=True, cwd=str(REPO), env=bs.env(),
                               timeout=opts.ready_timeout + opts.drain_timeout)
    last = (child.stdout.strip().splitlines() or ["{}"])[-1]
    if child.returncode == 3:
        return {"skipped": True, "reason": json.loads(last).get("skipped", "quixstreams not installed")}
    if path.exists():
        out = json.loads(path.read_text())
        if child.returncode != 0:
            out.setdefault("error", f"exit {child.returncode}: see {log}")
        return out
    tail = log.read_text(errors="replace")[-2000:]
    return {"error": f"quix echo exited with {child.returncode} and no result: {tail}"}


def faust_echo(bs: BenchStack, n: int, settings: dict, label: str, opts: Options, mode: str = "event",
               fetch_max_wait_ms: int | None = None) -> dict:
    """bench.faust_echo in its own process on the preloaded topics (a new consumer group each)."""
    path = bs.stack.log_dir / f"echo-{label}.json"
    env = bs.env()
    env.update(BENCH_BROKER=bs.stack.bootstrap, BENCH_APP_ID=f"bench-echo-{label}-{uuid.uuid4().hex[:6]}",
               BENCH_EXPECT=str(n), BENCH_RESULT=str(path), BENCH_SETTINGS=json.dumps(settings),
               BENCH_MODE=mode, BENCH_FETCH_MAX_WAIT_MS=str(fetch_max_wait_ms or ""))
    proc = spawn(f"echo-{label}", [sys.executable, "-m", "bench.faust_echo", "worker", "-l", "warn"],
                 bs.stack.log_dir, env)
    bs.stack.processes.append(proc)
    deadline = time.monotonic() + opts.ready_timeout + opts.drain_timeout
    try:
        while not path.exists():
            if proc.popen.poll() is not None:
                raise RuntimeError(f"faust echo ({label}) exited with {proc.popen.returncode}: see {proc.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"faust echo ({label}) did not finish")
            time.sleep(0.2)
        return json.loads(path.read_text())
    finally:
        proc.stop()


async def baseline_loop(bootstrap: str, expect: int) -> dict:
    consumer = AIOKafkaConsumer(*topics.RAW_TOPICS.values(), bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    # The producer settings the worker uses (acks=all, linger 1 ms, default batch size).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    seen = bad = 0
    t0 = None
    try:
        pending = []
        while seen < expect:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if t0 is None and batches:
                t0 = time.perf_counter()
                cpu0 = time.process_time()
            for records in batches.values():
                for record in records:
                    seen += 1
                    try:
                        data = orjson.loads(record.value)
                        ref = data.get("event_id") or data.get("case_no") or data.get("station_id") \
                            if isinstance(data, dict) else None
                    except orjson.JSONDecodeError:
                        bad += 1
                        ref = None
                    out = orjson.dumps({"topic": record.topic, "offset": record.offset, "ref": ref})
                    pending.append(await producer.send(BASELINE_OUT, out, key=record.key))
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await producer.stop()
        await consumer.stop()
    return {"events": seen, "unparseable": bad, "seconds": round(seconds, 3),
            "events_per_s": round(seen / seconds, 1), "cpu_s": round(cpu, 2),
            "cpu_share": round(cpu / seconds, 2), "producer": {"acks": "all", "linger_ms": 1}}
