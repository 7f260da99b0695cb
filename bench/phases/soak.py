"""The soak phase: one worker at a paced rate for soak_seconds while the clerk closes tickets through
the HTTP API; the worker's RSS after warm-up and at the end of the load, latency per minute."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from aiokafka import AIOKafkaProducer

from bench.board import BoardReader, percentiles
from bench.clerk import VERIFIER, Clerk
from bench.machine import proc_cpu_seconds, proc_rss_mib
from bench.options import Options
from bench.stack import BenchStack, Worker, redis_client, wait_drained
from bench.workload import STORM_CYCLE, Generator, paced, produce
from streams import topics


def _open_tickets(bs: BenchStack) -> dict | None:
    """Tickets in Redis at the end of the soak: all of them, and how many the clerk closed."""
    try:
        client = redis_client(bs.stack.redis_url)
        total = client.zcard(f"{bs.stack.redis_prefix}:tickets")
        client.close()
        return {"tickets": total}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def phase_soak(opts: Options) -> dict:
    """One worker at a paced rate for soak_seconds; RSS after warm-up and at the end."""
    with BenchStack("soak", opts) as bs:
        start = datetime.now(timezone.utc) - STORM_CYCLE * 0.3
        gen = Generator(opts.seed + 2, opts.scenario, start)
        asyncio.run(produce(bs.stack.bootstrap, [(topics.SITES, k, v) for k, v in gen.site_messages]))
        workers = bs.start_workers(1)
        ready_s = bs.wait_ready(workers)
        result = asyncio.run(_soak(bs, workers[0], gen, opts))
        result["ready_s"] = round(ready_s, 1)
        return result


async def _soak(bs: BenchStack, worker: Worker, gen: Generator, opts: Options) -> dict:
    warmup_s = min(60.0, opts.soak_seconds * 0.2)
    reader = BoardReader(bs.stack.redis_url, bs.board_key)
    reader.start()
    producer = AIOKafkaProducer(bootstrap_servers=bs.stack.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    samples: list[dict] = []
    rss_start = proc_rss_mib(worker.pid)
    rss_warm = None
    sent = 0
    clerk = Clerk(f"http://127.0.0.1:{worker.port}", {**bs.tokens, VERIFIER: bs.verifier_token}, reader,
                  opts.soak_close_rate)
    clerk.start()
    t0 = time.monotonic()
    next_sample = t0
    try:
        second = 0
        while time.monotonic() - t0 < opts.soak_seconds:
            now = datetime.now(timezone.utc)
            messages = gen.batch(now, opts.soak_rate)
            ids = gen.incident_ids(messages, now)
            times = [0.0] * len(messages)
            # Pace this second's events over what is left of the second.
            target = t0 + second + 1
            rate = len(messages) / max(target - time.monotonic(), 0.2)
            await paced(producer, messages, rate, times, 0)
            for incident_id, at in zip(ids, times):
                if incident_id and incident_id not in sent_at:
                    sent_at[incident_id] = at
            sent += len(messages)
            second += 1
            if rss_warm is None and time.monotonic() - t0 >= warmup_s:
                rss_warm = proc_rss_mib(worker.pid)
            if time.monotonic() >= next_sample:
                samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mib": proc_rss_mib(worker.pid),
                                "cpu_s": round(proc_cpu_seconds(worker.pid), 1), "sent": sent,
                                "board_entries": reader.entries, "closed": clerk.stats["closed"]})
                next_sample += 10
            await asyncio.sleep(max(0.0, target - time.monotonic()))
        await producer.flush()
        rss_end_load = proc_rss_mib(worker.pid)
        await clerk.stop()
        ok, counters = await asyncio.to_thread(wait_drained, [worker.port], sent, opts.drain_timeout, [worker])
        drain_s = time.monotonic() - t0 - opts.soak_seconds
        await asyncio.sleep(0.3)
    finally:
        await clerk.stop()
        await producer.stop()
        await reader.stop()
    rss_end = proc_rss_mib(worker.pid)
    # Latency per minute of the soak, to show drift.
    latencies = []
    by_minute: dict[int, list[float]] = {}
    soak_start_wall = time.time() - (time.monotonic() - t0)
    for ms, incident_id in reader.writes:
        at = sent_at.pop(incident_id, None)
        if at is not None:
            value = ms - at * 1000
            latencies.append(value)
            by_minute.setdefault(int((at - soak_start_wall) // 60), []).append(value)
    growth = (rss_end - rss_warm) / rss_warm if rss_warm and rss_end else None
    return {
        "seconds": opts.soak_seconds, "rate_per_s": opts.soak_rate, "events": sent, "drained": ok,
        "drain_after_s": round(drain_s, 1), "warmup_s": warmup_s,
        "incidents": counters.get("soc_incidents_total"), "ticket_writes": counters.get("soc_pipeline_latency_seconds_count"),
        "rss_start_mib": rss_start, "rss_after_warmup_mib": rss_warm, "rss_end_of_load_mib": rss_end_load,
        "rss_end_mib": rss_end, "rss_growth": round(growth, 3) if growth is not None else None,
        # The target's figure: at the end of the load, before the drain wait.
        "rss_ratio": round(rss_end_load / rss_warm, 3) if rss_warm and rss_end_load else None,
        "tickets_open_at_end": _open_tickets(bs),
        "clerk": clerk.report(),
        "latency": percentiles(latencies),
        "latency_by_minute": {m: {k: v for k, v in percentiles(vals).items() if k in ("n", "p50_ms", "p99_ms")}
                              for m, vals in sorted(by_minute.items())},
        "samples": samples,
    }
