"""The benchmark's targets (bench/README.md): each a {"name", "what", "measured", "goal", "met"} record,
with a "reason" when it could not be measured, computed from a run's phases."""
from __future__ import annotations

from bench.options import Options

# The storm hot_key_growth is measured over (bench/hot_keys.py), and the early point it is compared with.
HOT_KEY_MINUTES, HOT_KEY_EARLY = 120, 10


SOAK_TARGET_S = 600.0


def _target(name: str, what: str, goal: str, measured, met: bool | None, reason: str | None = None,
            **extra) -> dict:
    out = {"name": name, "what": what, "measured": measured, "goal": goal,
           "met": bool(met) if measured is not None else False, **extra}
    if measured is None or reason:
        out["reason"] = reason or "not measured"
    return out


def _figure(phase: dict | None, key: str | None = None, phase_name: str = "") -> tuple[dict | None, str | None]:
    """(the figures, None) or (None, why they are missing)."""
    if phase is None:
        return None, f"phase {phase_name} did not run" if phase_name else "did not run"
    if key is not None:
        phase = phase.get(key)
        if phase is None:
            return None, f"{phase_name}.{key} did not run"
    if phase.get("skipped"):
        return None, f"skipped: {phase.get('reason')}"
    if phase.get("error"):
        return None, f"failed: {phase['error'][:300]}"
    return phase, None


def targets(phases: dict, opts: Options | None = None) -> list[dict]:
    """The targets, each {"name", "measured", "goal", "met"} (+ "reason" when not measured)."""
    out = []
    pipe, why_pipe = _figure(phases.get("pipeline"), phase_name="pipeline")
    echo, why_echo = _figure(phases.get("baseline"), "faust_batch_echo", "baseline")
    if pipe and echo and echo.get("events_per_s"):
        ratio = round(pipe["events_per_s"] / echo["events_per_s"], 3)
        out.append(_target("pipeline_vs_faust_batch_echo", "full pipeline throughput / Faust batched echo", ">= 1.0",
                           ratio, ratio >= 1.0 and pipe.get("drained", False),
                           None if pipe.get("drained", False) else "the pipeline did not drain its backlog",
                           pipeline_events_per_s=pipe["events_per_s"], echo_events_per_s=echo["events_per_s"]))
    else:
        out.append(_target("pipeline_vs_faust_batch_echo", "full pipeline throughput / Faust batched echo", ">= 1.0",
                           None, False, why_pipe or why_echo))
    latency, why_lat = _figure(phases.get("latency"), phase_name="latency")
    lat = hop = None
    if latency:
        lat = latency.get("runs", {}).get("1000")
        hop_phase, why_hop = _figure(latency, "raw_single_hop", "latency")
        hop = (hop_phase or {}).get("runs", {}).get("1000")
        why_lat = (None if lat and lat.get("p99_ms") is not None else "no pipeline p99 at 1000 ev/s (rates: "
                   f"{','.join(latency.get('runs', {})) or 'none'})") or \
                  (why_hop if hop_phase is None else None) or \
                  (None if hop and hop.get("p99_ms") else "no raw single-hop p99 at 1000 ev/s")
    if not why_lat:
        ratio = round(lat["p99_ms"] / hop["p99_ms"], 1)
        out.append(_target("p99_ratio_1000", "pipeline p99 produce -> ticket / raw single-hop p99, 1,000 ev/s offered",
                           "<= 4", ratio, ratio <= 4 and lat.get("drained", False),
                           None if lat.get("drained", False) else "the worker did not drain the 1,000 ev/s run",
                           pipeline_p99_ms=lat["p99_ms"], raw_hop_p99_ms=hop["p99_ms"]))
    else:
        out.append(_target("p99_ratio_1000", "pipeline p99 produce -> ticket / raw single-hop p99, 1,000 ev/s offered",
                           "<= 4", None, False, why_lat))
    scale, why_scale = _figure(phases.get("scale"), phase_name="scale")
    if scale and scale.get("speedup") is not None:
        shape = scale["many"]["workers"] == 2 and scale.get("partitions") == 8
        drained = scale["many"].get("drained") and scale["one"].get("drained")
        out.append(_target("scale_2_workers", "two workers / one worker, 8 partitions", ">= 1.8", scale["speedup"],
                           scale["speedup"] >= 1.8 and shape and drained,
                           None if shape and drained else
                           f"{scale['many']['workers']} workers on {scale.get('partitions')} partitions, drained: "
                           f"{bool(drained)}"))
    else:
        out.append(_target("scale_2_workers", "two workers / one worker, 8 partitions", ">= 1.8", None, False,
                           why_scale or "no speedup measured"))
    soak, why_soak = _figure(phases.get("soak"), phase_name="soak")
    if soak and soak.get("rss_ratio") is not None:
        long_enough = soak["seconds"] >= SOAK_TARGET_S
        out.append(_target("soak_rss_growth", "worker RSS at the end of the soak / RSS after warm-up", "<= 1.10",
                           soak["rss_ratio"], soak["rss_ratio"] <= 1.10 and long_enough,
                           None if long_enough else f"soak of {soak['seconds']:g} s, the goal is for {SOAK_TARGET_S:g} s",
                           soak_seconds=soak["seconds"], soak_rate_per_s=soak["rate_per_s"],
                           clerk_closed=(soak.get("clerk") or {}).get("closed")))
    else:
        out.append(_target("soak_rss_growth", "worker RSS at the end of the soak / RSS after warm-up", "<= 1.10",
                           None, False, why_soak or "no RSS after warm-up"))
    hot, why_hot = _figure(phases.get("hot_keys"), phase_name="hot_keys")
    what = f"largest key state after a {HOT_KEY_MINUTES}-minute simulated storm / after {HOT_KEY_EARLY} minutes"
    if hot:
        out.append(_target("hot_key_growth", what, "<= 2", hot["hot_key_growth"], hot["hot_key_growth"] <= 2,
                           largest=hot["largest_end"], dedup_key_growth=hot["dedup_key_growth"]))
    else:
        out.append(_target("hot_key_growth", what, "<= 2", None, False, why_hot))
    base, why_base = _figure(phases.get("baseline"), phase_name="baseline")
    if pipe and base:
        ratio = round(pipe["events_per_s"] / base["events_per_s"], 3)
        out.append(_target("pipeline_vs_raw_aiokafka", "full pipeline throughput / raw aiokafka loop", ">= 0.10",
                           ratio, ratio >= 0.10))
    handlers, why_handlers = _figure(phases.get("baseline"), "handlers_only", "baseline")
    what = "the handlers alone, with the worker's context / raw aiokafka loop"
    if handlers and base and base.get("events_per_s"):
        out.append(_target("handlers_vs_raw", what, "reported", round(handlers["events_per_s"] / base["events_per_s"], 3),
                           True, handlers_events_per_s=handlers["events_per_s"], raw_events_per_s=base["events_per_s"]))
    else:
        out.append(_target("handlers_vs_raw", what, "reported", None, False, why_base or why_handlers))
    return out


def recorded_targets(result: dict) -> list[dict]:
    """A result file's targets as a list of {"name", "measured", "goal", "met"}; results written before the
    list kept a {name: {"value", "target", "met"}} mapping, read here the same way."""
    recorded = result.get("targets") or []
    if isinstance(recorded, dict):
        return [{"name": name, "measured": t.get("value"), "goal": t.get("target"), "met": bool(t.get("met")),
                 **({"reason": t["reason"]} if t.get("reason") else {})} for name, t in recorded.items()]
    return recorded
