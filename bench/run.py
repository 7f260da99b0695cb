"""One benchmark run: the asked phases one after another, each on its own stack, their targets, and
the result written to `<out>/<run id>.json`."""
from __future__ import annotations

import json
import signal
import threading
import time
from datetime import datetime, timezone

from bench.goals import targets
from bench.machine import loadavg, machine_info, versions
from bench.options import PHASES, Options
from bench.phases.baseline import phase_baseline
from bench.phases.common import guarded
from bench.phases.latency import phase_latency
from bench.phases.pipeline import phase_hot_keys, phase_pipeline, phase_scale
from bench.phases.soak import phase_soak
from bench.workload import backlog
from streams.ops.devstack import LOCAL_REDIS, redis_answers


def run(opts: Options) -> dict:
    unknown = set(opts.phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}; use {', '.join(PHASES)}")
    if threading_main():
        signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(timezone.utc)
    result: dict = {
        "run_id": started.strftime("%Y%m%dT%H%M%SZ") + (f"-{opts.label}" if opts.label else ""),
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_at_start": loadavg(),
        "settings": {
            "phases": list(opts.phases), "events": opts.events, "rates": list(opts.rates),
            "latency_seconds": opts.latency_seconds, "soak_seconds": opts.soak_seconds,
            "soak_rate": opts.soak_rate, "soak_close_rate": opts.soak_close_rate, "workers": opts.workers,
            "partitions": opts.partitions,
            "scenario": opts.scenario, "seed": opts.seed, "quick": opts.quick, "worker_env": opts.worker_env,
        },
        "phases": {},
    }
    workload = None
    if {"baseline", "pipeline", "scale"} & set(opts.phases):
        t0 = time.perf_counter()
        workload = backlog(opts.events, opts.seed, opts.scenario)
        result["workload"] = {"events": len(workload.events), "avg_bytes": round(workload.avg_bytes, 1),
                              "sources": workload.sources, "malformed": workload.malformed,
                              "sites": len(workload.sites), "generated_in_s": round(time.perf_counter() - t0, 1)}
    phases = result["phases"]
    for name in PHASES:
        if name not in opts.phases:
            continue
        print(f"[bench] {name} ... (load {loadavg()})", flush=True)
        t0 = time.perf_counter()
        # A failed phase is recorded, and the others still run: its targets get the reason.
        if name == "baseline":
            phases[name] = guarded(lambda: phase_baseline(opts, workload))
        elif name == "pipeline":
            phases[name] = guarded(lambda: phase_pipeline(opts, workload))
        elif name == "latency":
            phases[name] = phase_latency(opts)
        elif name == "scale":
            one = phases.get("pipeline")
            phases[name] = guarded(lambda: phase_scale(opts, workload, None if one is None or one.get("error")
                                                        else one))
        elif name == "soak":
            phases[name] = guarded(lambda: phase_soak(opts))
        elif name == "hot_keys":
            phases[name] = guarded(lambda: phase_hot_keys(opts))
        if phases[name].get("error"):
            print(f"[bench] {name} FAILED: {phases[name]['error'][:2000]}", flush=True)
        phases[name]["load_after"] = loadavg()
        phases[name]["phase_wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"[bench] {name} done in {phases[name]['phase_wall_s']} s", flush=True)
    result["versions"] = versions(_redis_url_hint())
    result["targets"] = targets(phases, opts)
    result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["load_at_end"] = loadavg()
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / f"{result['run_id']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)
    result["path"] = str(path)
    return result


def threading_main() -> bool:
    return threading.current_thread() is threading.main_thread()


def _redis_url_hint() -> str | None:
    return "redis://127.0.0.1:6379/0" if redis_answers(*LOCAL_REDIS) else None


def _terminate(signum, _frame):
    # SIGTERM (a timeout, a test runner) unwinds like Ctrl-C so every stack is stopped.
    raise KeyboardInterrupt(f"signal {signum}")
