"""The pipeline phase (one worker drains a preloaded backlog), the scale phase (N workers on the same
backlog against one) and the hot_keys phase (the ticket step's largest state over a simulated storm,
handlers only)."""
from __future__ import annotations

from bench import hot_keys
from bench.goals import HOT_KEY_EARLY, HOT_KEY_MINUTES
from bench.machine import worker_settings
from bench.options import Options
from bench.stack import BenchStack, drain
from bench.workload import Workload, preload


def phase_pipeline(opts: Options, workload: Workload) -> dict:
    with BenchStack("pipeline", opts) as bs:
        preload_s = preload(bs.stack.bootstrap, workload)
        settings = worker_settings(bs.env())
        result = drain(bs, 1, len(workload.events))
        result["preload_s"] = round(preload_s, 3)
        result["faust_settings"] = settings
        return result


def phase_hot_keys(opts: Options) -> dict:
    """The largest ticket-table value after a simulated storm against after 10 minutes: handlers only,
    no broker (the simulator's time, not the clock's)."""
    return hot_keys.run(HOT_KEY_MINUTES, HOT_KEY_EARLY, rate=5.0, seed=opts.seed)


def phase_scale(opts: Options, workload: Workload, one: dict | None) -> dict:
    """N workers on the same backlog, started together after the preload; one worker for reference."""
    out: dict = {"partitions": opts.partitions}
    if one is None:
        with BenchStack("scale1", opts) as bs:
            preload(bs.stack.bootstrap, workload)
            one = drain(bs, 1, len(workload.events))
        out["one_worker_from"] = "scale phase"
    else:
        out["one_worker_from"] = "pipeline phase (same backlog, same run)"
    with BenchStack("scale", opts) as bs:
        preload(bs.stack.bootstrap, workload)
        many = drain(bs, opts.workers, len(workload.events))
    out["one"] = one
    out["many"] = many
    out["speedup"] = round(many["events_per_s"] / one["events_per_s"], 2) if one["events_per_s"] else None
    return out
