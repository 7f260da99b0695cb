"""A run's result as the table printed at its end."""
from __future__ import annotations

from bench.goals import recorded_targets

def _rate(figures: dict | None) -> str:
    if not figures:
        return "not run"
    if figures.get("skipped"):
        return f"skipped: {figures.get('reason')}"
    if figures.get("error"):
        return f"FAILED: {figures['error'][:120]}"
    return f"{figures['events_per_s']:,.0f} ev/s"


def _pcts(run: dict) -> str:
    return f"p50 {run.get('p50_ms')} / p95 {run.get('p95_ms')} / p99 {run.get('p99_ms')} ms"


def table(result: dict) -> str:
    rows = [("phase", "figure", "value")]
    phases = result["phases"]
    for name, k in phases.items():
        if isinstance(k, dict) and k.get("error") and name != "latency":
            rows.append((name, "FAILED", k["error"].splitlines()[0][:160]))
    if "baseline" in phases and not phases["baseline"].get("error"):
        b = phases["baseline"]
        rows.append(("baseline", "raw aiokafka consume->parse->produce", _rate(b)))
        for key, what in (("faust_batch_echo", "Faust agent, take_events(2000, 50 ms), send_soon, worker's settings"),
                          ("quixstreams_echo", "quixstreams (librdkafka)"),
                          ("faust_default", "Faust agent per event, Faust defaults"),
                          ("faust_worker_settings", "Faust agent per event, worker's settings")):
            if key in b:
                rows.append(("baseline", f"same work, {what}", _rate(b[key])))
        if "handlers_only" in b:
            rows.append(("baseline", "the handlers alone (parse, ticket step), no Kafka, Redis or Faust",
                         _rate(b["handlers_only"])))
    if "pipeline" in phases and not phases["pipeline"].get("error"):
        p = phases["pipeline"]
        rows.append(("pipeline", "full pipeline, 1 worker, backlog", f"{p['events_per_s']:,.0f} ev/s "
                     f"({p['ticket_writes_per_s']:,.0f} ticket writes/s, cpu {p['worker_cpu_share'][0]:.0%})"
                     + ("" if p["drained"] else " NOT DRAINED")))
    if "latency" in phases:
        lat = phases["latency"]
        if lat.get("error"):
            rows.append(("latency", "pipeline: FAILED", lat["error"].splitlines()[0][:160]))
        hop = lat.get("raw_single_hop") or {}
        for label, run in lat.get("runs", {}).items():
            rows.append(("latency", f"pipeline, {label} ev/s offered ({run['achieved_per_s']:,.0f} sent)",
                         _pcts(run) + ("" if run["drained"] else " NOT DRAINED")))
        if hop.get("error"):
            rows.append(("latency", "raw single hop: FAILED", hop["error"].splitlines()[0][:160]))
        for label, run in hop.get("runs", {}).items():
            rows.append(("latency", f"raw single hop, {label} ev/s offered ({run['achieved_per_s']:,.0f} sent)",
                         _pcts(run)))
    if "scale" in phases and not phases["scale"].get("error"):
        s = phases["scale"]
        rows.append(("scale", "1 worker", f"{s['one']['events_per_s']:,.0f} ev/s"))
        rows.append(("scale", f"{s['many']['workers']} workers ({s['partitions']} partitions)",
                     f"{s['many']['events_per_s']:,.0f} ev/s, x{s['speedup']}, split {s['many']['events_per_worker']}"))
    if "soak" in phases and not phases["soak"].get("error"):
        k = phases["soak"]
        rows.append(("soak", f"{k['seconds']:g} s at {k['rate_per_s']}/s, RSS warm -> end of load",
                     f"{k['rss_after_warmup_mib']} -> {k['rss_end_of_load_mib']} MiB (x{k['rss_ratio']})"
                     if k.get("rss_ratio") is not None else "n/a"))
        rows.append(("soak", "latency over the soak", f"p50 {k['latency']['p50_ms']} / p99 {k['latency']['p99_ms']} ms"))
        clerk = k.get("clerk") or {}
        if clerk:
            rows.append(("soak", f"clerk at {clerk.get('rate_per_s')} tickets/s",
                         f"{clerk.get('closed')} closed of {clerk.get('started')} started "
                         f"({clerk.get('conflicts')} conflicts, {clerk.get('timeouts')} timeouts, "
                         f"{clerk.get('errors')} errors)"))
    if "hot_keys" in phases and not phases["hot_keys"].get("error"):
        h = phases["hot_keys"]
        for label, at in ((f"largest key state after {h['early_minutes']} min", h["largest_early"]),
                          (f"largest key state after {h['minutes']} min", h["largest_end"])):
            rows.append(("hot_keys", label, f"{at['bytes']:,} B ({at['key']}); dedup keys {at['dedup_key_bytes']:,} B"))
    for t in recorded_targets(result):
        verdict = "met" if t["met"] else "NOT met"
        value = "n/a" if t["measured"] is None else t["measured"]
        rows.append(("target", t["name"], f"{value} (goal {t['goal']}): {verdict}"
                     + (f" - {t['reason']}" if t.get("reason") else "")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(result: dict) -> int:
    print()
    print(table(result))
    print(f"\nmachine: {result['machine']['nproc']} x {result['machine']['cpu_model']}, "
          f"{result['machine']['ram_gib']} GiB; load {result['load_at_start']} -> {result['load_at_end']}")
    print(f"results: {result['path']}")
    return 0
